"""Committed results: copy a verify output's verdicts, configs and provenance into
``docs/results/<claim>/`` and regenerate the README's results blocks from them.

Every result number in the README sits between ``<!-- results:<claim> -->`` and
``<!-- /results:<claim> -->`` markers and is written by :func:`update_readme` from the
committed files; ``tests/test_readme.py`` fails when the README and docs/results disagree.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
from pathlib import Path
from typing import Any, Sequence

from ..stats import FAIL, INCONCLUSIVE, PASS, Verdict, uncontrolled_passes, verdict_from_dict, with_controls
from ..store import StoreError, code_version, write_atomic
from .markdown import table_cell

MARK = "<!-- results:{claim} -->"
END = "<!-- /results:{claim} -->"


def _num(x: float | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—" if x is None or math.isnan(x) else ("∞" if x > 0 else "−∞")
    return f"{x:.3g}"


def publish(out: Path, claim: str, results: Path, figures: Path | None = None,
            only: Sequence[str] | None = None) -> Path:
    """Copy one claim of a finished verify folder into ``results/<claim>/``: verdicts.json, the
    resolved config and provenance.json (job code commits, scale, seeds, machine, compute time).
    Figures go to ``figures`` when given (only those named in ``only``, e.g. the README's)."""
    src = Path(out) / claim
    if not (src / "verdicts.json").is_file():
        raise StoreError(f"{src}: no verdicts.json (run `lrlab verify {claim} --out {out}` first)")
    dst = Path(results) / claim
    dst.mkdir(parents=True, exist_ok=True)
    payload = json.loads((src / "verdicts.json").read_text())
    write_atomic(dst / "verdicts.json", json.dumps(payload, indent=2) + "\n")
    write_atomic(dst / "config.yaml", (src / "config.yaml").read_text())
    meta = json.loads((src / "claim.json").read_text())
    commits, walls = set(), []
    for done in sorted((src / "jobs").glob("*/done.json")):
        d = json.loads(done.read_text())
        walls.append(float(d.get("wall_time_s", 0)))
        code = d.get("code", {})
        commits.add(code.get("git_commit", "?") + ("-dirty" if code.get("git_dirty") else ""))
    judge = code_version()
    prov = {"claim": claim, "scale": meta.get("scale"),
            "options": {k: v for k, v in meta.items() if k not in ("claim", "scale", "sessions")},
            "sessions": meta.get("sessions", []),
            "jobs": len(walls), "job_compute_s": round(sum(walls), 1),
            "jobs_ran_at_commits": sorted(commits),
            "judged_at_commit": judge.get("git_commit", "?") + ("-dirty" if judge.get("git_dirty") else ""),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "python": platform.python_version()}}
    write_atomic(dst / "provenance.json", json.dumps(prov, indent=2) + "\n")
    if figures is not None:
        Path(figures).mkdir(parents=True, exist_ok=True)
        for png in sorted((src / "figures").glob("*.png")):
            if only is None or png.name in only:
                shutil.copyfile(png, Path(figures) / png.name)
    return dst


def readme_figures(readme: Path) -> set[str]:
    """The PNG file names a README shows."""
    return set(re.findall(r"\(docs/figures/([\w.-]+\.png)\)", Path(readme).read_text()))


def load_results(results: Path, claim: str) -> tuple[list[Verdict], dict[str, Any], dict[str, Any]]:
    """The committed verdicts, verdicts.json header and provenance of one claim."""
    d = Path(results) / claim
    payload = json.loads((d / "verdicts.json").read_text())
    prov = json.loads((d / "provenance.json").read_text())
    return [verdict_from_dict(v) for v in payload["verdicts"]], payload, prov


def results_block(results: Path, claim: str) -> str:
    """The README block of one claim, from its committed results only."""
    vs, payload, prov = load_results(results, claim)
    seeds = prov["options"].get("seeds")
    lines = [MARK.format(claim=claim),
             f"Scale `{prov['scale']}`" + (f", `--seeds {seeds}`" if seeds else "")
             + f"; {prov['jobs']} jobs, {prov['job_compute_s'] / 60:.1f} min of compute; jobs ran at "
             + ", ".join(f"`{c[:10]}`" for c in prov["jobs_ran_at_commits"])
             + f", judged at `{prov['judged_at_commit'][:10]}`. Files: `docs/results/{claim}/`.", "",
             "| id | statement | test | effect: mean [95% interval] | seeds | verdict | Holm |",
             "|---|---|---|---|---|---|---|"]
    several = len({v.regime for v in vs}) > 1  # name the regime only where a claim has several

    def name(v: Verdict) -> str:
        return f"`{v.id}`" + (f" [{v.regime}]" if several else "")

    for v, is_control in with_controls(vs):
        ci = v.interval
        test = v.test + ("" if v.test == "bound" else f" ({_num(v.min_effect)})")
        n = f"{ci.n}" + (f" + {v.failed_seeds} failed" if v.failed_seeds else "")
        id_ = ("↳ " if is_control else "") + name(v)
        lines.append(f"| {id_} | {table_cell(v.statement)} | {test} | {_num(ci.mean)} [{_num(ci.low)}, "
                     f"{_num(ci.high)}] | {n} | {v.status} | {v.status_holm or '—'} |")
    by = {s: [name(v) for v in vs if (v.status_holm or v.status) == s] for s in (PASS, FAIL, INCONCLUSIVE)}
    lines += ["", f"After Holm's correction, **{len(by[PASS])} hold** ({', '.join(by[PASS]) or 'none'}), "
              f"**{len(by[FAIL])} fail** ({', '.join(by[FAIL]) or 'none'}) and **{len(by[INCONCLUSIVE])} stay "
              f"open** ({', '.join(by[INCONCLUSIVE]) or 'none'})."]
    if any(v.control_of for v in vs):
        lines += ["", "↳ marks a control of the comparison above it (the small rate given the same Σηt, or runs "
                  "trained to convergence)."]
        weak = uncontrolled_passes(vs)
        if weak:
            lines += ["Comparisons that hold while a control of theirs does not: " + "; ".join(
                f"{name(v)} (" + ", ".join(f"{name(c)} {c.status_holm or c.status}" for c in bad) + ")"
                for v, bad in weak) + "."]
    lines.append(END.format(claim=claim))
    return "\n".join(lines)


def summary_block(results: Path) -> str:
    """The README's overview: per committed claim, its verdict counts (raw and after Holm), its
    compute time and, where recorded, the wall time of the verify runs that trained it."""
    lines = [MARK.format(claim="summary"),
             "| claim | scale | verdicts | PASS / FAIL / open | after Holm | compute (min) | wall (min) |",
             "|---|---|---|---|---|---|---|"]
    claims = sorted(p.name for p in Path(results).iterdir() if (p / "verdicts.json").is_file())
    for claim in claims:
        vs, _, prov = load_results(results, claim)
        raw = [sum(v.status == s for v in vs) for s in (PASS, FAIL, INCONCLUSIVE)]
        adj = [sum(v.status_holm == s for v in vs) for s in (PASS, FAIL, INCONCLUSIVE)]
        wall = sum(float(x.get("wall_s", 0)) for x in prov.get("sessions", []))
        lines.append(f"| `{claim}` | {prov['scale']} | {len(vs)} | {' / '.join(map(str, raw))} | "
                     f"{' / '.join(map(str, adj))} | {prov['job_compute_s'] / 60:.1f} | "
                     f"{f'{wall / 60:.1f}' if wall else '—'} |")
    lines += ["", "Compute is the sum of the jobs' own times (2 jobs run side by side on 2 cores); wall is "
              "the time `lrlab verify` spent running them, where the run recorded it.", END.format(claim="summary")]
    return "\n".join(lines)


def update_readme(readme: Path, results: Path, claims: Sequence[str] | None = None, check: bool = False) -> list[str]:
    """Rewrite every results block of ``readme`` from ``results`` (or only ``claims``); returns
    the claims whose block changed. With ``check``, write nothing."""
    text = Path(readme).read_text()
    found = re.findall(r"<!-- results:([\w.-]+) -->", text)
    changed = []
    for claim in found:
        if claims and claim not in claims and claim != "summary":
            continue
        pat = re.compile(re.escape(MARK.format(claim=claim)) + r".*?" + re.escape(END.format(claim=claim)), re.S)
        if not pat.search(text):
            raise ValueError(f"{readme}: results block of {claim} has no end marker {END.format(claim=claim)}")
        block = summary_block(results) if claim == "summary" else results_block(results, claim)
        new = pat.sub(lambda _m, b=block: b, text)
        if new != text:
            changed.append(claim)
            text = new
    if changed and not check:
        write_atomic(readme, text)
    return changed
