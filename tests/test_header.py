"""The dataset header of every report: phrases wrapped by the renderer, never a number cut in two."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest
from rich.console import Console

from bench.analysis.select import dataset_header
from bench.data.diagnostics import summary_items
from bench.output.markdown import header_to_markdown
from bench.output.terminal import print_header, wrap_items

NUMBER = re.compile(r"[x+-]?\d[\d,.]*%?")  # a figure as printed: 1,234  62.7%  x14.86  +0.2


def _wide_header(manifest: dict) -> list[tuple[str, ...]]:
    """The header with the widest figures a dataset can print (100.0%, 10,000+ episodes, x14.86)."""
    d = {**manifest["diagnostics"], "test_episodes": 123456}
    d["support_signal"] = {"own": 0.999, "shuffled": 0.0673, "ratio": 14.8571}
    d["markov_support"] = {**d["markov_support"], "acc_with": 1.0, "acc_without": 1.0, "gain": 0.0}
    return [("Dataset xuetangx-synth (data 1234abcd),", "model-free diagnostics:"), *summary_items({"diagnostics": d})]


def _printed(header, width: int) -> list[str]:
    out = io.StringIO()
    print_header(Console(file=out, width=width, force_terminal=True, color_system=None), header)
    return out.getvalue().rstrip("\n").splitlines()


def test_wrap_items_breaks_between_phrases_only():
    items = ("alpha 12.5%;", "beta 3,456 episodes;", "gamma x14.86")
    assert wrap_items(items, 80) == ["alpha 12.5%; beta 3,456 episodes; gamma x14.86"]
    assert wrap_items(items, 33) == ["alpha 12.5%; beta 3,456 episodes;", "  gamma x14.86"]
    assert wrap_items(items, 22) == ["alpha 12.5%;", "  beta 3,456 episodes;", "  gamma x14.86"]
    assert wrap_items(("one two three four",), 9) == ["one two", "  three", "  four"]  # alone too wide: between its words


@pytest.mark.parametrize("width", [80, 100, 120])
def test_no_number_is_split_at_any_terminal_width(tiny_dataset, width):
    header = _wide_header(tiny_dataset.manifest)
    lines = _printed(header, width)
    assert all(len(line) <= width for line in lines)
    printed = " ".join(line.strip() for line in lines)
    assert NUMBER.findall(printed) == NUMBER.findall(" ".join(" ".join(items) for items in header))
    for items in header:  # every phrase printed whole, on one line
        for item in items:
            assert any(item in line for line in lines), item


def test_the_header_reads_as_one_line_per_line_in_markdown(tiny_dataset):
    header = _wide_header(tiny_dataset.manifest)
    text = header_to_markdown(header)
    assert text.splitlines()[:-1] == [" ".join(items) + "  " for items in header] and text.endswith("  \n\n")
    assert header_to_markdown([]) == ""


def test_dataset_header_names_the_data_version_and_states_the_repeat_only_ceiling(tiny_dataset):
    table = SimpleNamespace(dataset="tiny", dataset_hash=tiny_dataset.content_hash)
    header = dataset_header([table], tiny_dataset.root.parent.parent)
    assert header[0] == (f"Dataset tiny (data {tiny_dataset.content_hash[:8]}),", "model-free diagnostics:")
    share = tiny_dataset.manifest["diagnostics"]["scored_queries"]["label_in_prefix"]
    text = "\n".join(" ".join(items) for items in header)
    assert f"a rule that only repeats prefix courses can score at most {100 * share:.1f}% Acc@1" in text
    assert "Acc@1 on repeat | explore queries:" in text
    assert dataset_header([SimpleNamespace(dataset="tiny", dataset_hash="other")], tiny_dataset.root.parent.parent) == []
