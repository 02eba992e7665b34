"""The docs' Python API snippet (docs/api.md) runs as written on a store (no CLI)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from bench.store.results import Store
from tests.helpers import default_grid_results

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_docs_python_api_snippet_runs_on_a_store(tmp_path, monkeypatch, capsys):
    store = Store(tmp_path / "results")
    results = default_grid_results()
    for run in results.runs:
        episodes = results.episodes[results.episodes["run"] == run["hash"]]
        store.start_run(run["hash"], run)
        store.finish_run(
            run["hash"],
            run,
            episodes[["episode", "user_id", "mode", "acc@1", "recall@5", "recall@10", "mrr", "ndcg@10"]].reset_index(drop=True),
            pd.DataFrame({"iteration": [1]}),
        )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("bench.plan.grid.grid_run_labels", lambda grid, runs, **_: {r["hash"]: r["cell"] for r in runs})
    code = re.search(r"```python\n(.*?)```", API_PAGE.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/api.md", "exec"), namespace)
    assert isinstance(namespace["episodes"], pd.DataFrame) and len(namespace["episodes"]) == len(results.episodes)
    assert {"cell", "mode", "acc@1_mean", "diff_mean"} <= set(namespace["board"].columns)
    assert namespace["why_none"] is None and len(namespace["answered"][0].rows) >= 1
    assert "Does a warm start help MAML?" in capsys.readouterr().out
