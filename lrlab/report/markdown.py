"""The Markdown report: verdict table, per-claim sections with figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from ..stats import Verdict, with_controls
from ..store import write_atomic


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "∞" if x and x > 0 else ("−∞" if x else "—")
    return f"{x:.4g}"


def table_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def verdict_table(verdicts: Sequence[Verdict]) -> str:
    """A Markdown table, one row per verdict; each control (↳) right under the comparison it controls."""
    lines = ["| claim | regime | id | statement | effect | test | mean | 95% interval | n | verdict | Holm |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for v, is_control in with_controls(verdicts):
        ci = v.interval
        test = v.test + ("" if v.test == "bound" else f" ({_num(v.min_effect)})")
        n = f"{ci.n}" + (f" + {v.failed_seeds} failed" if v.failed_seeds else "")
        id_ = ("↳ " if is_control else "") + v.id
        lines.append(f"| {v.claim} | {v.regime} | {id_} | {table_cell(v.statement)} | {table_cell(v.effect)} | "
                     f"{test} | "
                     f"{_num(ci.mean)} | [{_num(ci.low)}, {_num(ci.high)}] | {n} | **{v.status}** | "
                     f"{v.status_holm or '—'} |")
    return "\n".join(lines)


RULE = ("How verdicts are decided: each effect is oriented so that positive is what the paper predicts; "
        "the interval is a Student-t 95% interval over seeds. *superiority (m)*: PASS when the interval lies "
        "above 0 and its mean reaches m, FAIL when it lies wholly below m. *bound*: the effect is "
        "threshold − measure; PASS above 0, FAIL below 0. *equivalence (δ)*: PASS inside (−δ, δ), FAIL wholly "
        "outside. Otherwise INCONCLUSIVE. A non-finite seed is a failed seed: any failed seed rules out PASS, "
        "more than half FAIL. *Holm*: the same decisions with Holm's correction over the claim's verdicts. "
        "↳ marks a control (equal Σηt, or trained to convergence) of the comparison above it.")


def write_report(path: Path, title: str, intro: str, verdicts: Sequence[Verdict],
                 sections: Sequence[str]) -> Path:
    """Write the report atomically: title, intro, the verdict table, then claim sections."""
    text = [f"# {title}", "", intro, "", "## Verdicts", "", verdict_table(verdicts), "",
            RULE, ""]
    text += list(sections)
    write_atomic(path, "\n".join(text) + "\n")
    return path
