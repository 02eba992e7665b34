"""`python -m bench perf ...`: benchmarks, not tests. Each measuring function returns its figures (a
dict, the JSON written by ``--json``) and reports progress through a callback; the printing is
bench/output/perf.py's, the options bench/commands/perf.py's.

- engines.py: `bench perf engines`, the inner-loop engines and arms on generated episodes;
- full.py: `bench perf full`, the batched engine at the `full` grid's settings on a dataset;
- baselines.py: `bench perf baselines`, the baselines' fit and scoring, SASRec/GRU4Rec training;
- common.py: what they share (generated tasks, FLOP counts, the matmul ceiling, timing helpers).

What a grid would cost is `python -m bench project` (bench/run/projection.py), from measured runs.
"""
