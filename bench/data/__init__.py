"""The data pipeline, shared by every source: interactions -> sessions -> pairs -> user split -> episodes.

- ``bench.data.pipeline``: the pipeline itself (``build_dataset``) and the episode builder.
- ``bench.data.dataset``: ``open_dataset(name, data_dir=None) -> Dataset``, the handle every method reads.
- ``bench.data.synth``: the XuetangX-shaped generator (``make_synthetic_dataset`` for tests).
- ``bench.data.importers``: CSV/TSV/parquet logs, the seed's raw activity JSON, the seed's episodes.
- ``bench.data.info`` / ``bench.commands.data``: ``python -m bench data ...``.
"""
