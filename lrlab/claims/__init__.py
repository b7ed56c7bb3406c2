"""Claims: each paper's statements as experiments with verdicts (``lrlab verify``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

from ..config import ConfigError, apply_overrides, config_dir, read_yaml, validate
from ..store import write_atomic
from . import huang2020, lewkowycz2020, li2019_patch, li2019_toy, lu2023, you2019
from .stats import FAIL, INCONCLUSIVE, PASS, Interval, Verdict, decide, t_interval, verdict

CLAIMS = {li2019_toy.NAME: li2019_toy, li2019_patch.NAME: li2019_patch,
          lewkowycz2020.NAME: lewkowycz2020, you2019.NAME: you2019, huang2020.NAME: huang2020,
          lu2023.NAME: lu2023}
SCALES = ("quick", "paper")


def claim_config_path(name: str, scale: str) -> Path:
    if name not in CLAIMS:
        raise ConfigError(f"unknown claim {name!r}; known claims: {', '.join(sorted(CLAIMS))}")
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; expected one of {list(SCALES)}")
    return config_dir() / name / f"{scale}.yaml"


def load_claim_config(name: str, scale: str, seeds: int | None = None,
                      overrides: Sequence[str] = (), device: str | None = None):
    """A claim's typed config for ``scale``; ``seeds`` replaces every regime's seeds by 0..N-1
    and ``device`` every regime's ``train.device``."""
    path = claim_config_path(name, scale)
    raw = read_yaml(path)
    if seeds is not None:
        if seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if seeds is not None and "regimes" not in raw and isinstance(raw.get("claim"), dict):
        raw["claim"]["seeds"] = list(range(seeds))  # claims that run in-process keep seeds here
    for rc in raw.get("regimes", {}).values():
        if isinstance(rc, dict):
            if seeds is not None:
                rc.setdefault("population", {})["seeds"] = list(range(seeds))
            if device is not None:
                rc.setdefault("train", {})["device"] = device
    raw = apply_overrides(raw, list(overrides))
    return validate(CLAIMS[name].ClaimConfig, raw, source=str(path))


def verify(names: Sequence[str], scale: str, out: Path, seeds: int | None = None,
           overrides: Sequence[str] = (), progress: bool = False,
           log: Callable[[str], None] = print, workers: int | None = None,
           device: str | None = None) -> list[Verdict]:
    """Run the named claims, write verdicts.json, report.md and figures/ under ``out``.

    ``workers``: local processes for a claim's independent runs (default one per core; 1 trains
    in this process with progress bars). Verdicts do not depend on it.
    """
    names = list(names) or sorted(CLAIMS)
    cfgs = {n: load_claim_config(n, scale, seeds, overrides, device) for n in names}  # validate all first
    for n in names:
        CLAIMS[n].preflight(cfgs[n])
    from ..report import verdict_bars, write_report

    out.mkdir(parents=True, exist_ok=True)
    figdir = out / "figures"
    figdir.mkdir(exist_ok=True)
    verdicts: list[Verdict] = []
    sections = []
    t0 = time.perf_counter()
    for n in names:
        mod = CLAIMS[n]
        outcomes = mod.run(cfgs[n], out, progress=progress, log=log, workers=workers)
        vs = [v for o in outcomes for v in o.verdicts]
        verdicts += vs
        sections.append(mod.section(cfgs[n], outcomes, figdir, Path("figures")))
        rows = [(f"{v.regime}: {v.id}", v.interval.mean, v.interval.low, v.interval.high, v.status)
                for v in vs if v.effect.startswith("final")]
        if rows:
            bars = verdict_bars(rows, figdir / f"{n}-effects.png", title=f"{n}: accuracy effects")
            sections.append(f"![effects]({Path('figures') / bars.name})\n")
    wall = time.perf_counter() - t0
    payload = {"scale": scale, "claims": names, "wall_time_s": round(wall, 2),
               "verdicts": [v.to_dict() for v in verdicts]}
    write_atomic(out / "verdicts.json", json.dumps(payload, indent=2))
    intro = (f"`lrlab verify {' '.join(names)} --scale {scale}`"
             + (f" --seeds {seeds}" if seeds else "") + f" — wall time {wall:.0f} s.")
    write_report(out / "report.md", "lrlab verification report", intro, verdicts, sections)
    return verdicts


__all__ = ["CLAIMS", "FAIL", "INCONCLUSIVE", "Interval", "PASS", "SCALES", "Verdict", "decide",
           "load_claim_config", "t_interval", "verdict", "verify"]
