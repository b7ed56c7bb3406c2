"""The Markdown report: verdict table, per-claim sections with figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from ..stats import Verdict
from ..store import write_atomic


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "∞" if x and x > 0 else ("−∞" if x else "—")
    return f"{x:.4g}"


def verdict_table(verdicts: Sequence[Verdict]) -> str:
    """A Markdown table, one row per verdict."""
    lines = ["| claim | regime | id | statement | effect | mean | 95% interval | n | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        ci = v.interval
        lines.append(f"| {v.claim} | {v.regime} | {v.id} | {v.statement} | {v.effect} | "
                     f"{_num(ci.mean)} | [{_num(ci.low)}, {_num(ci.high)}] | {ci.n} | **{v.status}** |")
    return "\n".join(lines)


def write_report(path: Path, title: str, intro: str, verdicts: Sequence[Verdict],
                 sections: Sequence[str]) -> Path:
    """Write the report atomically: title, intro, the verdict table, then claim sections."""
    text = [f"# {title}", "", intro, "", "## Verdicts", "", verdict_table(verdicts), "",
            "PASS: the 95% interval of the effect lies above 0. FAIL: it lies below the smallest "
            "effect that matters (min_effect), i.e. no effect or the opposite. Otherwise "
            "INCONCLUSIVE.", ""]
    text += list(sections)
    write_atomic(path, "\n".join(text) + "\n")
    return path
