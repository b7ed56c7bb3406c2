"""Verdict maps: a claim verified at every point of a grid of setup knobs.

A PASS at one hand-picked setting may be a property of the setting rather than of the
phenomenon. A map runs the whole claim — every job, every verdict — at each point of a grid
(``--map claim.data.weak_norm=0.1,0.15,0.2 --map claim.data.noise_std=0.04,0.05``) and tabulates
grid point × verdict → effect, interval, status. Each point is an ordinary verify output, so
``lrlab report`` works on it; jobs whose inputs a knob does not touch are run once and shared
between points (see ``job_inputs`` in :mod:`lrlab.claims.protocol`). Layout::

    OUT/maps/<claim>/<map>/map.json                the grid, the fixed settings, each point's knobs
    OUT/maps/<claim>/<map>/points/p00/<claim>/…    a verify output of the claim at each point
    OUT/maps/<claim>/<map>/map.parquet, map.csv    the verdict map (one row per point × verdict)
    OUT/maps/<claim>/<map>/<claim>-<map>.png, map.md  the heat-map and the report section

A point whose jobs or judge raised is kept in the table with status ERROR and its error, so a
failure at one point never hides the others.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import yaml
from matplotlib.patches import Rectangle

from . import driver, experiment, store
from .claims.protocol import default_workers
from .config import ConfigError, parse_override, read_yaml
from .exec.local import TaskError
from .report.figures import save, subplots
from .report.markdown import table_cell
from .store import StoreError, write_atomic, write_parquet

ERROR = "ERROR"
STATUS_COLORS = {"PASS": "#2a9d8f", "FAIL": "#e76f51", "INCONCLUSIVE": "#e9c46a", ERROR: "#9e9e9e"}
COLUMNS = ["point", "knobs", "regime", "verdict", "test", "effect", "low", "high", "min_effect", "status",
           "status_holm", "failed_seeds", "error"]


@dataclass(frozen=True)
class MapSpec:
    """A grid over config keys (``knobs``: key → values, in order) with ``fixed`` overrides
    applied at every point; ``note`` says why these knobs (the report prints it)."""

    name: str
    knobs: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", self.name):
            raise ConfigError(f"map name {self.name!r} must be a plain file name (letters, digits, _ . -)")
        if not self.knobs:
            raise ConfigError(f"map {self.name!r} has no knobs")
        for key, values in self.knobs.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"map {self.name!r}: knob {key} needs a non-empty list of values, got {values!r}")
            if len({_text(v) for v in values}) != len(values):
                raise ConfigError(f"map {self.name!r}: knob {key} repeats a value: {values}")
        both = set(self.knobs) & set(self.fixed)
        if both:
            raise ConfigError(f"map {self.name!r}: {sorted(both)} are both knobs and fixed settings")

    def points(self) -> list[dict[str, Any]]:
        """Every grid point (knob → value), the last knob varying fastest."""
        keys = list(self.knobs)
        return [dict(zip(keys, combo)) for combo in itertools.product(*self.knobs.values())]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "knobs": self.knobs, "fixed": self.fixed, "note": self.note}


def _text(value: Any) -> str:
    """A knob value as it is written in an override (YAML flow style)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def short(key: str) -> str:
    """A knob's display name: the last part of its dotted key."""
    return key.rsplit(".", 1)[-1]


def parse_map_option(text: str) -> tuple[str, list[Any]]:
    """``KEY=V1,V2,…`` (values YAML-typed; a list value is written in brackets, e.g.
    ``claim.ps=[0.5],[0.8]``) → (key, values)."""
    if "=" not in text:
        raise ConfigError(f"--map {text!r} is not of the form KEY=V1,V2,…")
    key, raw = text.split("=", 1)
    parts = [p for p in re.split(r",(?![^\[]*\])", raw) if p.strip()]
    if not parts:
        raise ConfigError(f"--map {text!r} lists no values")
    values = [parse_override(f"{key}={p.strip()}")[1] for p in parts]
    return key.strip(), values


def adhoc_spec(options: Sequence[str], fixed: Sequence[str] = ()) -> MapSpec:
    """The map ``--map`` options describe (``fixed``: the ``--set`` options, held at every point);
    named after its knobs."""
    knobs: dict[str, list[Any]] = {}
    for text in options:
        key, values = parse_map_option(text)
        if key in knobs:
            raise ConfigError(f"--map {key} is given twice")
        knobs[key] = values
    name = "-".join(short(k) for k in knobs)
    digest = hashlib.sha256(json.dumps(sorted(knobs)).encode()).hexdigest()[:6]
    return MapSpec(f"{name}-{digest}", knobs, dict(_fixed(f) for f in fixed))


def _fixed(text: str) -> tuple[str, Any]:
    path, value = parse_override(text)
    return ".".join(path), value


def declared(name: str, scale: str = "quick") -> dict[str, MapSpec]:
    """The maps a claim's config declares under ``maps:`` (name → spec)."""
    path = driver.claim_config_path(name, scale)
    raw = read_yaml(path).get("maps") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: maps must be a section of named maps")
    specs = {}
    for mname, m in raw.items():
        if not isinstance(m, dict) or set(m) - {"knobs", "fixed", "note"}:
            raise ConfigError(f"{path}: maps.{mname} must have knobs (and optionally fixed, note), got {m!r}")
        specs[mname] = MapSpec(str(mname), dict(m.get("knobs") or {}), dict(m.get("fixed") or {}),
                               str(m.get("note", "")).strip())
    return specs


# ------------------------------------------------------------------------------------ layout
def map_dir(out: Path, claim: str, spec_name: str) -> Path:
    return Path(out) / "maps" / claim / spec_name


def point_dir(mdir: Path, i: int) -> Path:
    return Path(mdir) / "points" / f"p{i:02d}"


def stored_maps(out: Path) -> list[Path]:
    """Every map folder under ``out`` (those with a map.json), claims in registry order."""
    found = []
    for claim in driver._claims.CLAIMS:
        base = Path(out) / "maps" / claim
        if base.is_dir():
            found += sorted(p for p in base.iterdir() if (p / "map.json").is_file())
    return found


def point_label(point: dict[str, Any]) -> str:
    return ", ".join(f"{short(k)}={_text(v)}" for k, v in point.items())


# ------------------------------------------------------------------------------------ running
def _overrides(spec: MapSpec, point: dict[str, Any], overrides: Sequence[str]) -> list[str]:
    return (list(overrides) + [f"{k}={_text(v)}" for k, v in spec.fixed.items()]
            + [f"{k}={_text(v)}" for k, v in point.items()])


def _copy_job(src: Path, dst: Path) -> None:
    """Put a stored job folder at ``dst`` (hard links where the file system allows), atomically."""
    tmp = dst.parent / f".{dst.name}.incoming"
    if tmp.exists():
        shutil.rmtree(tmp)
    dst.parent.mkdir(parents=True, exist_ok=True)

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, tmp, copy_function=link)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


def run_map(claim: str, spec: MapSpec, scale: str, out: Path, seeds: int | None = None,
            overrides: Sequence[str] = (), device: str | None = None, threads: int | None = None,
            workers: int | None = None, executor: str = "local", address: str | None = None,
            retries: int = 2, progress: bool = False, log=print, amp: bool | None = None) -> pd.DataFrame:
    """Run ``claim`` at every point of ``spec`` into ``out/maps/<claim>/<map>/`` (jobs already
    stored at some point, or in ``out/<claim>``, are reused), then judge every point and write
    the map table, heat-map and section. Returns the table."""
    points = spec.points()
    cfgs = []
    for i, point in enumerate(points):  # every point is validated before anything runs
        try:
            cfg = driver.load_claim_config(claim, scale, seeds, _overrides(spec, point, overrides), device,
                                           threads, workers, amp)
            driver.check_local_device(cfg, executor)
            driver._claim(claim).preflight(cfg)
        except (ConfigError, ValueError) as e:
            raise ConfigError(f"map {spec.name}, point p{i:02d} ({point_label(point)}): {e}") from None
        cfgs.append(cfg)
    ex = driver.make_executor(executor, address, retries)
    mdir = map_dir(out, claim, spec.name)
    mdir.mkdir(parents=True, exist_ok=True)
    options = {"seeds": seeds, "overrides": list(overrides), "device": device, "threads": threads,
               **({"amp": amp} if amp is not None else {})}
    with store.lock(mdir, "verdict map"), experiment.terminate_as_interrupt():
        write_atomic(mdir / "map.json", json.dumps({
            "claim": claim, "scale": scale, "map": spec.to_dict(),
            "options": options, "sessions": _earlier_sessions(mdir),
            "points": [{"point": f"p{i:02d}", "knobs": p} for i, p in enumerate(points)]}, indent=2, default=str))
        sources = [Path(out)] + [point_dir(mdir, i) for i in range(len(points))]
        todo: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        reused = 0
        for i, cfg in enumerate(cfgs):
            pdir = point_dir(mdir, i)
            driver._write_claim_files(pdir, claim, cfg, scale, {**options, "map": spec.name, "point": points[i]})
            for job in driver._claim(claim).jobs(cfg):
                if driver.is_done(pdir, claim, cfg, job):
                    continue
                src = next((s for s in sources if s != pdir and driver.is_done(s, claim, cfg, job)), None)
                if src is not None:
                    _copy_job(driver.job_dir(src, claim, job), driver.job_dir(pdir, claim, job))
                    reused += 1
                    continue
                key = (job.key, driver.fingerprint(cfg, job, driver._jobs_version(claim)))
                todo.setdefault(key, []).append((i, job))
        runs = [v[0] for v in todo.values()]
        items = [(claim, cfgs[i], job, point_dir(mdir, i)) for i, job in runs]
        labels = [f"p{i:02d} {job.key}" for i, job in runs]
        nw = (cfgs[0].execution.workers or default_workers(len(items)))
        log(f"[{claim} map {spec.name}] {len(points)} points × {len(driver._claim(claim).jobs(cfgs[0]))} jobs: "
            f"{reused} reused, {len(items)} to run ({sum(len(v) for v in todo.values()) - len(items)} shared "
            f"between points) on {f'{nw} worker(s)' if ex is None else 'Ray'}")
        failures: dict[str, str] = {}
        t0 = time.perf_counter()
        session = {"jobs_reused": reused, "workers": nw if ex is None else 0}
        try:
            driver.run_jobs(items, nw, ex, log=log, progress=progress, labels=labels)
        except TaskError as e:
            failures = e.failures
        except BaseException:  # interrupted: record what this session did, then stop
            done = sum((driver.job_dir(out_, claim, job) / "done.json").is_file() for _, _, job, out_ in items)
            _append_session(mdir, {"at": store.now(), "jobs_run": done, **session,
                                   "wall_s": round(time.perf_counter() - t0, 1), "interrupted": True})
            raise
        finally:
            if ex is not None:
                ex.shutdown()
        wall = time.perf_counter() - t0
        for shared in todo.values():  # a job shared between points ran at the first: copy it
            first_i, first_job = shared[0]
            src = driver.job_dir(point_dir(mdir, first_i), claim, first_job)
            for i, job in shared[1:]:
                if (src / "done.json").is_file():
                    _copy_job(src, driver.job_dir(point_dir(mdir, i), claim, job))
        errors = {}
        for label, msg in failures.items():
            p, jkey = label.split(" ", 1)
            errors.setdefault(p, []).append(f"{jkey}: {msg}")
        for (jkey, _), shared in todo.items():
            for i, _job in shared[1:]:
                first = f"p{shared[0][0]:02d}"
                if first in errors and any(m.startswith(f"{jkey}:") for m in errors[first]):
                    errors.setdefault(f"p{i:02d}", []).append(f"{jkey}: failed at {first} (shared job)")
        _append_session(mdir, {"at": store.now(), "jobs_run": len(items), **session, "wall_s": round(wall, 1),
                                "failures": failures},
                        job_errors={p: "; ".join(m) for p, m in errors.items()})
        return report_map(mdir, log=log)


def _earlier_sessions(mdir: Path) -> list[dict[str, Any]]:
    """The sessions an earlier run of this map recorded (none when there is no readable map.json):
    kept across re-runs, so the map's wall time counts every session that ran its jobs."""
    try:
        sessions = json.loads((Path(mdir) / "map.json").read_text()).get("sessions", [])
    except (OSError, json.JSONDecodeError, AttributeError):
        return []
    return sessions if isinstance(sessions, list) else []


def _append_session(mdir: Path, session: dict[str, Any], job_errors: dict[str, str] | None = None) -> None:
    meta = json.loads((mdir / "map.json").read_text())
    meta.setdefault("sessions", []).append(session)
    if job_errors is not None:
        meta["job_errors"] = job_errors
    write_atomic(mdir / "map.json", json.dumps(meta, indent=2, default=str))


# ------------------------------------------------------------------------------------ judging
def _rows(i: int, point: dict[str, Any], verdicts, error: str = "") -> list[dict[str, Any]]:
    knobs = json.dumps(point, default=str)
    base = {"point": f"p{i:02d}", "knobs": knobs, **{f"knob:{k}": _text(v) for k, v in point.items()}}
    if error:
        return [{**base, "regime": "", "verdict": "", "test": "", "effect": np.nan, "low": np.nan, "high": np.nan,
                 "min_effect": np.nan, "status": ERROR, "status_holm": ERROR, "failed_seeds": 0, "error": error}]
    return [{**base, "regime": v.regime, "verdict": v.id, "test": v.test, "effect": v.interval.mean,
             "low": v.interval.low, "high": v.interval.high, "min_effect": v.min_effect, "status": v.status,
             "status_holm": v.status_holm, "failed_seeds": v.failed_seeds, "error": ""} for v in verdicts]


def report_map(mdir: Path, log=print) -> pd.DataFrame:
    """Judge every point of a stored map from its tables (no training) and write map.parquet,
    map.csv, the heat-map and map.md. A point that cannot be judged is an ERROR row."""
    mdir = Path(mdir)
    try:
        meta = json.loads((mdir / "map.json").read_text())
        claim, spec = meta["claim"], meta["map"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise StoreError(f"{mdir}: not a readable verdict map ({type(e).__name__})") from None
    job_errors = meta.get("job_errors", {})
    rows: list[dict[str, Any]] = []
    for i, p in enumerate(meta["points"]):
        pdir = point_dir(mdir, i)
        try:
            _, verdicts, section, wall, _ = driver.judge_claim(pdir, claim)
            write_atomic(driver.claim_dir(pdir, claim) / "verdicts.json",
                         driver._dump(verdicts, claim=claim, scale=meta["scale"], job_wall_time_s=round(wall, 1)))
            rows += _rows(i, p["knobs"], verdicts)
        except Exception as e:  # noqa: BLE001 - a point that cannot be judged is recorded, the map goes on
            why = job_errors.get(p["point"]) or f"{type(e).__name__}: {' '.join(str(e).split())}"
            rows += _rows(i, p["knobs"], [], error=why)
    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df:
            df[c] = pd.Series(dtype=object)
    knob_cols = [c for c in df.columns if c.startswith("knob:")]
    df = df[["point", *knob_cols, *[c for c in COLUMNS if c != "point"]]]
    write_parquet(mdir / "map.parquet", df)
    write_atomic(mdir / "map.csv", df.to_csv(index=False))
    fig = heatmap(df, spec, mdir / f"{claim}-{spec['name']}.png", title=f"{claim}: verdict map {spec['name']}")
    write_atomic(mdir / "map.md", map_section(df, meta, fig.name))
    n_err = int((df["status"] == ERROR).sum())
    log(f"[{claim} map {spec['name']}] judged {len(meta['points'])} points"
        + (f", {n_err} with errors" if n_err else "") + f": {mdir / 'map.csv'}")
    return df


def heatmap(df: pd.DataFrame, spec: dict[str, Any], path: Path, title: str = "") -> Path:
    """Verdicts (rows) × grid points (columns): each cell coloured by status, with the effect's mean."""
    points = list(dict.fromkeys(df["point"]))
    labels = {}
    for p in points:
        knobs = json.loads(df.loc[df["point"] == p, "knobs"].iloc[0])
        labels[p] = "\n".join(f"{short(k)}={_text(v)}" for k, v in knobs.items())
    ok = df[df["status"] != ERROR]
    rows = list(dict.fromkeys(zip(ok["regime"], ok["verdict"])))
    fig, ax = subplots(figsize=(max(5.0, 1.1 * len(points) + 3.5), 0.32 * max(len(rows), 1) + 1.6))
    for r, (regime, vid) in enumerate(rows):
        for c, p in enumerate(points):
            sel = df[(df["point"] == p) & (df["regime"] == regime) & (df["verdict"] == vid)]
            err = df[(df["point"] == p) & (df["status"] == ERROR)]
            if len(sel):
                status, text = sel["status"].iloc[0], f"{sel['effect'].iloc[0]:.3g}"
            elif len(err):
                status, text = ERROR, "error"
            else:
                status, text = ERROR, "—"
            ax.add_patch(_rect(c, r, STATUS_COLORS.get(status, "#ffffff")))
            ax.text(c, r, text, ha="center", va="center", fontsize=6.5)
    if not rows:  # every point failed
        for c, _p in enumerate(points):
            ax.add_patch(_rect(c, 0, STATUS_COLORS[ERROR]))
            ax.text(c, 0, "error", ha="center", va="center", fontsize=7)
    ax.set_xlim(-0.5, len(points) - 0.5)
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
    ax.set_xticks(range(len(points)), [labels[p] for p in points], fontsize=7)
    ax.xaxis.tick_top()
    multi = len({r for r, _ in rows}) > 1
    ax.set_yticks(range(len(rows)), [f"{g}: {v}" if multi else v for g, v in rows] or ["(no verdicts)"], fontsize=7)
    handles = [_rect(0, 0, col, legend=True) for col in STATUS_COLORS.values()]
    ax.legend(handles, list(STATUS_COLORS), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title + " (cell: effect mean)", fontsize=9, pad=12 + 9 * len(spec.get("knobs", {})))
    return save(fig, path)


def _rect(c: float, r: float, color: str, legend: bool = False) -> Rectangle:
    return Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=color, edgecolor="white", lw=1 if not legend else 0)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per verdict: at how many points it PASSed, FAILed, was INCONCLUSIVE (and how many points erred)."""
    ok = df[df["status"] != ERROR]
    counts = ok.groupby(["regime", "verdict"], sort=False)["status"].value_counts().unstack(fill_value=0)
    for s in ("PASS", "FAIL", "INCONCLUSIVE"):
        if s not in counts:
            counts[s] = 0
    return counts[["PASS", "FAIL", "INCONCLUSIVE"]].reset_index()


def map_section(df: pd.DataFrame, meta: dict[str, Any], figure: str, fig_prefix: str = "") -> str:
    """The Markdown section of one map: what was varied, the heat-map, where each verdict holds."""
    spec = meta["map"]
    knobs = "; ".join(f"`{k}` ∈ {{{', '.join(_text(v) for v in vs)}}}" for k, vs in spec["knobs"].items())
    fixed = ", ".join(f"`{k}={_text(v)}`" for k, v in spec.get("fixed", {}).items())
    npts = len(meta["points"])
    err = df[df["status"] == ERROR]
    lines = [f"### Verdict map `{spec['name']}` ({meta['claim']}, scale `{meta['scale']}`)", "",
             f"The claim verified at each of {npts} points: {knobs}" + (f"; fixed at every point: {fixed}" if fixed
                                                                         else "") + ".",
             ""]
    if spec.get("note"):
        lines += [spec["note"], ""]
    lines += [f"![verdict map]({fig_prefix}{figure})", "", "| verdict | PASS | FAIL | INCONCLUSIVE | passes at |",
              "|---|---|---|---|---|"]
    s = summary(df)
    ok = df[df["status"] != ERROR]
    multi = ok["regime"].nunique() > 1
    for _, r in s.iterrows():
        sel = ok[(ok["regime"] == r["regime"]) & (ok["verdict"] == r["verdict"]) & (ok["status"] == "PASS")]
        where = ("every point" if r["PASS"] == npts else "; ".join(
            point_label(json.loads(k)) for k in sel["knobs"]) or "nowhere")
        name = f"{r['regime']}: {r['verdict']}" if multi else r["verdict"]
        lines.append(f"| {table_cell(name)} | {r['PASS']} | {r['FAIL']} | {r['INCONCLUSIVE']} | {table_cell(where)} |")
    if len(err):
        lines += ["", "Points that could not be judged:", ""]
        for _, r in err.iterrows():
            lines.append(f"- {r['point']} ({point_label(json.loads(r['knobs']))}): {table_cell(r['error'])}")
    return "\n".join(lines) + "\n"


def report_all(out: Path, names: Sequence[str] | None = None, log=print) -> list:
    """Re-judge every claim and every verdict map stored under ``out`` (no training) and write
    OUT/report.md with a section per map. Returns the claims' verdicts."""
    out = Path(out)
    sections = []
    for mdir in stored_maps(out):
        df = report_map(mdir, log=log)
        meta = json.loads((mdir / "map.json").read_text())
        fig = f"{meta['claim']}-{meta['map']['name']}.png"
        sections.append(map_section(df, meta, fig, fig_prefix=f"{mdir.relative_to(out).as_posix()}/"))
    return driver.report(out, names, log=log, extra_sections=sections)


# ------------------------------------------------------------------------------------ publishing
MAP_MARK = "<!-- map:{claim} -->"
MAP_END = "<!-- /map:{claim} -->"


def publish_map(mdir: Path, results: Path, figures: Path | None = None) -> Path:
    """Copy a judged map into ``results/maps/<claim>/<map>/`` (map.csv, map.json with the grid,
    sessions and provenance) and its heat-map into ``figures``."""
    mdir = Path(mdir)
    meta = json.loads((mdir / "map.json").read_text())
    claim, name = meta["claim"], meta["map"]["name"]
    if not (mdir / "map.csv").is_file():
        raise StoreError(f"{mdir}: no map.csv (run `lrlab report` on its output folder first)")
    dst = Path(results) / "maps" / claim / name
    dst.mkdir(parents=True, exist_ok=True)
    seen, commits = {}, set()
    for done in sorted(mdir.glob(f"points/*/{claim}/jobs/*/done.json")):
        d = json.loads(done.read_text())
        seen[(d["job"], d["fingerprint"])] = float(d.get("wall_time_s", 0))  # a shared job counts once
        code = d.get("code", {})
        commits.add(code.get("git_commit", "?") + ("-dirty" if code.get("git_dirty") else ""))
    judge = store.code_version()
    judged = judge.get("git_commit", "?") + ("-dirty" if judge.get("git_dirty") else "")
    meta["provenance"] = {"unique_jobs": len(seen), "job_compute_s": round(sum(seen.values()), 1),
                          "jobs_ran_at_commits": sorted(commits), "judged_at_commit": judged, "cpus": os.cpu_count()}
    meta.pop("job_errors", None)
    write_atomic(dst / "map.json", json.dumps(meta, indent=2, default=str) + "\n")
    write_atomic(dst / "map.csv", (mdir / "map.csv").read_text())
    if figures is not None:
        Path(figures).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mdir / f"{claim}-{name}.png", Path(figures) / f"{claim}-{name}.png")
    return dst


def committed_maps(results: Path, claim: str) -> list[Path]:
    base = Path(results) / "maps" / claim
    return sorted(p for p in base.iterdir() if (p / "map.csv").is_file()) if base.is_dir() else []


def map_block(results: Path, claim: str) -> str:
    """The README block of a claim's committed maps: per map, the grid, the heat-map, the
    wall time, and where each verdict holds, all from the committed files."""
    lines = [MAP_MARK.format(claim=claim)]
    for d in committed_maps(results, claim):
        meta = json.loads((d / "map.json").read_text())
        df = pd.read_csv(d / "map.csv", keep_default_na=False, na_values=[""])
        df["error"] = ["" if pd.isna(x) else str(x) for x in df["error"]]
        prov = meta.get("provenance", {})
        sessions = meta.get("sessions", [])
        wall = sum(float(s.get("wall_s", 0)) for s in sessions)
        recorded = sum(int(s.get("jobs_run", 0)) for s in sessions)
        unique = prov.get("unique_jobs")
        wall_text = f"{wall / 60:.1f} min wall"
        if isinstance(unique, int) and recorded < unique:  # some jobs ran in a session that left no record
            wall_text = ("no wall time recorded (the jobs ran in a session that left no record)" if not recorded
                         else wall_text + f" recorded for {recorded} of them")
        spec = meta["map"]
        fig = f"{claim}-{spec['name']}.png"
        knobs = "; ".join(f"`{k}` ∈ {{{', '.join(_text(v) for v in vs)}}}" for k, vs in spec["knobs"].items())
        s = summary(df)
        npts = len(meta["points"])
        multi = s["regime"].nunique() > 1

        def ids(rows) -> str:
            return ", ".join(f"`{r['verdict']}`" + (f" [{r['regime']}]" if multi else "") for _, r in rows.iterrows())

        every, none_ = s[s["PASS"] == npts], s[s["PASS"] == 0]
        some = s[(s["PASS"] > 0) & (s["PASS"] < npts)]
        errs = df.loc[df["status"] == ERROR, "point"].nunique()
        lines += [f"**Verdict map `{spec['name']}`**: {claim} verified at {npts} points, {knobs}. "
                  + (spec.get("note") or ""), "",
                  f"![verdict map of {claim}](docs/figures/{fig})", "",
                  f"Raw verdicts (before Holm's correction): holds at every point: {ids(every) or 'none'}. "
                  f"Holds at no point: {ids(none_) or 'none'}. "
                  f"Depends on the point: {ids(some) or 'none'}"
                  + (f". {errs} point(s) could not be judged" if errs else "")
                  + f". {prov.get('unique_jobs', '?')} distinct jobs, {prov.get('job_compute_s', 0) / 60:.1f} min "
                  f"of compute, {wall_text} on {prov.get('cpus', '?')} cores. Per point and verdict: "
                  f"`docs/results/maps/{claim}/{d.name}/map.csv`.", ""]
    published = {d.name for d in committed_maps(results, claim)}
    for spec in declared(claim, "quick").values():  # declared but not yet published: say so
        if spec.name not in published:
            knobs = "; ".join(f"`{k}` ∈ {{{', '.join(_text(v) for v in vs)}}}" for k, vs in spec.knobs.items())
            lines += [f"**Verdict map `{spec.name}`** ({knobs}): declared in the quick config, not run and "
                      f"published yet (`lrlab verify {claim} --maps`, then `lrlab publish OUT`).", ""]
    lines.append(MAP_END.format(claim=claim))
    return "\n".join(lines)


def update_map_blocks(readme: Path, results: Path, check: bool = False) -> list[str]:
    """Rewrite every ``<!-- map:<claim> -->`` block of ``readme`` from the committed maps; returns
    the claims whose block changed (with ``check``, write nothing)."""
    text = Path(readme).read_text()
    changed = []
    for claim in re.findall(r"<!-- map:([\w.-]+) -->", text):
        pat = re.compile(re.escape(MAP_MARK.format(claim=claim)) + r".*?" + re.escape(MAP_END.format(claim=claim)),
                         re.S)
        if not pat.search(text):
            raise ValueError(f"{readme}: map block of {claim} has no end marker {MAP_END.format(claim=claim)}")
        new = pat.sub(lambda _m, b=map_block(results, claim): b, text)
        if new != text:
            changed.append(claim)
            text = new
    if changed and not check:
        write_atomic(readme, text)
    return changed
