"""Figures and the Markdown report."""

from __future__ import annotations

import math
import warnings

import pandas as pd

from lrlab.report import group_curves, verdict_bars, verdict_table, write_report
from lrlab.stats import verdict

PNG = b"\x89PNG\r\n\x1a\n"


def _records():
    rows = []
    for member in (0, 1):
        for step in (0, 10, 20):
            for metric in ("train.g.acc", "test.g.acc"):
                rows.append((member, step, metric, 0.5 + step / 100 + member / 10))
    records = pd.DataFrame(rows, columns=["member", "step", "metric", "value"])
    members = pd.DataFrame({"member": [0, 1], "name": ["s", "s"], "seed": [0, 1]})
    return records, members


def _curves(tmp_path):
    records, members = _records()
    return group_curves([("panel", records, members, "s", [10])], ["g", "missing"],
                        tmp_path / "f" / "curves.png", title="t")


def test_figures_are_pngs(tmp_path):
    path = _curves(tmp_path)
    assert path.read_bytes()[:8] == PNG
    bars = verdict_bars([("a", 0.1, 0.0, 0.2, "PASS"), ("b", 0.0, -math.inf, math.inf, "INCONCLUSIVE")],
                        tmp_path / "bars.png", title="x")
    assert bars.read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars.png", "f"]


def test_report_markdown(tmp_path):
    vs = [verdict("c", "i1", "st", "eff", [0.1, 0.12, 0.11], 0.01),
          verdict("c", "i2", "st2", "eff2", [0.3], 0.01)]
    table = verdict_table(vs)
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| claim |")
    assert "**PASS**" in lines[2] and "**INCONCLUSIVE**" in lines[3] and "[−∞, ∞]" in lines[3]
    path = write_report(tmp_path / "r.md", "Title", "intro", vs, ["## Section", "body"])
    text = path.read_text()
    assert text.startswith("# Title\n\nintro\n") and table in text and text.endswith("body\n")


def test_figures_use_no_deprecated_pandas_api(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        _curves(tmp_path)
