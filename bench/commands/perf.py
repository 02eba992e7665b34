"""`python -m bench perf` (the inner-loop engines) and `python -m bench perf-baselines` (the
baselines on one dataset): benchmarks that print figures, not tests."""

from __future__ import annotations

from bench.run import perf, perf_baselines


def register(subparsers) -> None:
    register_engines(subparsers)
    register_baselines(subparsers)


def register_engines(subparsers) -> None:
    parser = subparsers.add_parser("perf", help="benchmark the inner-loop engines (tasks/s, episodes/s, GFLOP/s, RSS)")
    parser.add_argument("--engines", default=perf.DEFAULT_ENGINES, help=f"comma-separated engines (default {perf.DEFAULT_ENGINES})")
    parser.add_argument("--arms", default=perf.DEFAULT_ARMS, help=f"other meta-learning algorithms to time, each on the --engines that implement it (default {perf.DEFAULT_ARMS}; '' for none)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: $BENCH_THREADS or all cores)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="torch device")
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--hidden-dim", type=int, default=64)
    parser.add_argument("--items", type=int, default=1518, help="real items (the vocabulary adds padding id 0)")
    parser.add_argument("--K", type=int, default=5)
    parser.add_argument("--Q", type=int, default=10)
    parser.add_argument("--inner-steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds; medians over them")
    parser.add_argument("--train-iterations", type=int, default=2, help="meta-iterations timed per round and engine")
    parser.add_argument("--eval-episodes", type=int, default=313, help="few-shot episodes scored per round and engine")
    parser.add_argument("--rss-iterations", type=int, default=150, help="long loop (fastest engine) for RSS growth; 0 skips")
    parser.add_argument("--json", dest="json_path", default=None, help="write the figures to this JSON file")
    parser.add_argument("--mean-length", type=float, default=perf.MEAN_LENGTH, help="mean generated prefix length (1 + geometric, capped at 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", choices=("synthetic", "full"), default="synthetic",
                        help="synthetic (default): generated episodes at the options above, every engine and arm; "
                        "full: the `full` grid's settings (E 64, H 128, dropout 0.2, meta-batch 32, K 5, Q 10, 5 steps) on --dataset's "
                        "train/val episodes, batched against batched-segmented, at each of --thread-counts")
    parser.add_argument("--dataset", default="xuetangx-synth", help="with --settings full: the dataset whose episodes are timed (default xuetangx-synth)")
    parser.add_argument("--data-dir", default=None, help="with --settings full: its data folder (default: the project's)")
    parser.add_argument("--thread-counts", default="1,2", help="with --settings full: comma-separated torch thread counts, measured one after the other (default 1,2)")
    parser.add_argument("--val-episodes", type=int, default=0, help="with --settings full: cap on val episodes per validation (default 0: all)")
    parser.set_defaults(func=perf.perf_command)


def register_baselines(subparsers) -> None:
    parser = subparsers.add_parser("perf-baselines", help="benchmark the baselines' fit and scoring on one dataset, and SASRec/GRU4Rec training throughput")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=313, help="test episodes scored (XuetangX has 313)")
    parser.add_argument("--methods", default="markov,sr,sknn,vsknn")
    parser.add_argument("--batches", type=int, default=30, help="training batches timed per model and round; 0 skips")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--K", type=int, default=5)
    parser.add_argument("--Q", type=int, default=10)
    parser.set_defaults(func=perf_baselines.perf_baselines_command)
