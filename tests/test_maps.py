"""Verdict maps: grids of config knobs, one verify output per point, shared jobs, the map table,
failures recorded per point, and every claim's declared map being valid at every point."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from lrlab import driver, maps
from lrlab.claims import CLAIMS
from lrlab.cli import app
from lrlab.config import ConfigError
from tests.test_driver import _quiet, _tiny_lu

NOISE = "claim.data.noise_std"


def test_map_options_parse_typed_values_and_bracketed_lists():
    assert maps.parse_map_option("claim.data.weak_norm=0.1,0.15") == ("claim.data.weak_norm", [0.1, 0.15])
    assert maps.parse_map_option("claim.noise.milestones=[20, 40],[30,60]") == (
        "claim.noise.milestones", [[20, 40], [30, 60]])
    assert maps.parse_map_option("claim.control=true,false")[1] == [True, False]
    with pytest.raises(ConfigError, match="not of the form KEY=V1,V2"):
        maps.parse_map_option("claim.steps")
    with pytest.raises(ConfigError, match="lists no values"):
        maps.parse_map_option("claim.steps=")


def test_map_specs_reject_bad_grids():
    with pytest.raises(ConfigError, match="repeats a value"):
        maps.MapSpec("m", {"claim.steps": [10, 10]})
    with pytest.raises(ConfigError, match="non-empty list"):
        maps.MapSpec("m", {"claim.steps": []})
    with pytest.raises(ConfigError, match="both knobs and fixed"):
        maps.MapSpec("m", {"claim.steps": [1, 2]}, {"claim.steps": 3})
    with pytest.raises(ConfigError, match="plain file name"):
        maps.MapSpec("../m", {"claim.steps": [1, 2]})
    spec = maps.adhoc_spec(["a.b=1,2", "c.d=x,y,z"])
    assert [tuple(p.values()) for p in spec.points()][:4] == [(1, "x"), (1, "y"), (1, "z"), (2, "x")]
    assert len(spec.points()) == 6 and spec.name.startswith("b-d-")
    with pytest.raises(ConfigError, match="given twice"):
        maps.adhoc_spec(["a.b=1,2", "a.b=3,4"])


@pytest.mark.parametrize("name", list(CLAIMS))
def test_every_claim_declares_a_quick_map_valid_at_every_point(name):
    specs = maps.declared(name, "quick")
    assert specs, f"{name}: configs/{name}/quick.yaml declares no maps:"
    for spec in specs.values():
        assert len(spec.knobs) == 2 and spec.note
        cfgs = [driver.load_claim_config(name, "quick", overrides=maps._overrides(spec, p, []))
                for p in spec.points()]
        for key in spec.knobs:  # every knob reaches the config it names
            seen = set()
            for c, p in zip(cfgs, spec.points()):
                node = c.model_dump(mode="json")
                for part in key.split("."):
                    node = node[part]
                assert node == p[key]
                seen.add(json.dumps(node))
            assert len(seen) == len(spec.knobs[key])


def test_a_map_runs_every_point_rejudges_without_training_and_reports(tmp_path, monkeypatch):
    _tiny_lu(tmp_path, monkeypatch)
    out = tmp_path / "out"
    spec = maps.MapSpec("noise", {NOISE: [0.05, 0.2]}, note="why")
    df = maps.run_map("lu2023", spec, "quick", out, workers=1, log=_quiet)
    mdir = maps.map_dir(out, "lu2023", "noise")
    ids = {v.id for v in driver.judge_claim(mdir / "points" / "p00", "lu2023")[1]}
    assert len(df) == 2 * len(ids) and set(df["verdict"]) == ids
    assert list(df["point"].unique()) == ["p00", "p01"] and set(df[f"knob:{NOISE}"]) == {"0.05", "0.2"}
    assert set(df["status"]) <= {"PASS", "FAIL", "INCONCLUSIVE"} and (df["error"] == "").all()
    assert (df["low"] <= df["high"]).all()
    # the two points differ (a knob that matters), and each point is an ordinary verify output
    a, b = (df[df["point"] == p].set_index("verdict")["effect"] for p in ("p00", "p01"))
    assert not a.equals(b)
    assert pd.read_csv(mdir / "map.csv")["verdict"].tolist() == df["verdict"].tolist()
    assert (mdir / "lu2023-noise.png").stat().st_size > 0
    assert "Verdict map `noise`" in (mdir / "map.md").read_text()

    def no_training(*a, **k):
        raise AssertionError("a finished map must not train")

    monkeypatch.setattr(driver, "run_one", no_training)
    again = maps.run_map("lu2023", spec, "quick", out, workers=1, log=_quiet)
    pd.testing.assert_frame_equal(again, df)
    sessions = json.loads((mdir / "map.json").read_text())["sessions"]  # the first session is kept
    assert [s["jobs_run"] for s in sessions] == [4, 0] and sessions[0]["wall_s"] > 0
    maps.report_all(out, log=_quiet)
    report = (out / "report.md").read_text()
    assert "## Verdict maps" in report and "maps/lu2023/noise/lu2023-noise.png" in report


def test_points_share_the_jobs_their_knobs_do_not_touch(tmp_path, monkeypatch):
    _tiny_lu(tmp_path, monkeypatch)
    out = tmp_path / "out"
    ran: list[str] = []
    real = driver.run_one
    monkeypatch.setattr(driver, "run_one", lambda *a, **k: ran.append(a[2].key) or real(*a, **k))
    driver.verify(["lu2023"], "quick", out, workers=1, log=_quiet)
    assert sorted(ran) == ["control", "sweep"]
    ran.clear()
    # a judge-only threshold is in no job's inputs: every point reuses the verify's jobs
    spec = maps.MapSpec("thr", {"verdicts.c_acc_min": [0.01, 0.5, 0.9]})
    df = maps.run_map("lu2023", spec, "quick", out, workers=1, log=_quiet)
    assert ran == []
    by_point = df[df["verdict"] == "c-weak-test-acc"].set_index("point")
    assert by_point["effect"].nunique() == 1 and by_point["min_effect"].tolist() == [0.01, 0.5, 0.9]
    # without the verify beside it, the points run each job once and share it
    df2 = maps.run_map("lu2023", spec, "quick", tmp_path / "fresh", workers=1, log=_quiet)
    assert sorted(ran) == ["control", "sweep"]
    pd.testing.assert_frame_equal(df2, df)


def test_a_failing_point_is_recorded_and_the_others_finish(tmp_path, monkeypatch):
    _tiny_lu(tmp_path, monkeypatch)
    out = tmp_path / "out"
    real = driver.run_one

    def fail_at_high_noise(name, cfg_data, job, out_, progress=False):
        if cfg_data["claim"]["data"]["noise_std"] > 0.1 and job.key == "sweep":
            raise RuntimeError("injected failure")
        return real(name, cfg_data, job, out_, progress)

    monkeypatch.setattr(driver, "run_one", fail_at_high_noise)
    spec = maps.MapSpec("noise", {NOISE: [0.05, 0.2]})
    df = maps.run_map("lu2023", spec, "quick", out, workers=1, log=_quiet)
    bad = df[df["point"] == "p01"]
    assert len(bad) == 1 and bad["status"].iloc[0] == maps.ERROR
    assert "sweep: RuntimeError: injected failure" in bad["error"].iloc[0]
    good = df[df["point"] == "p00"]
    assert len(good) > 1 and (good["status"] != maps.ERROR).all()
    assert "p01 (noise_std=0.2): sweep: RuntimeError: injected failure" in (
        maps.map_dir(out, "lu2023", "noise") / "map.md").read_text()
    # the next run computes only what failed
    ran: list[str] = []
    monkeypatch.setattr(driver, "run_one", lambda *a, **k: ran.append(a[2].key) or real(*a, **k))
    df = maps.run_map("lu2023", spec, "quick", out, workers=1, log=_quiet)
    assert ran == ["sweep"] and (df["status"] != maps.ERROR).all()


def test_cli_map_names_bad_input(tmp_path, monkeypatch):
    _tiny_lu(tmp_path, monkeypatch)
    runner = CliRunner()
    r = runner.invoke(app, ["verify", "--map", f"{NOISE}=0.1,0.2", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--map needs exactly one claim" in r.output
    r = runner.invoke(app, ["verify", "lu2023", "--map", "claim.nope=1,2", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "claim.nope" in r.output and "p00" in r.output
    r = runner.invoke(app, ["verify", "lu2023", "--maps", "--map", f"{NOISE}=1,2", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "either --map" in r.output
    r = runner.invoke(app, ["verify", "lu2023", "--maps", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no verdict maps declared" in r.output
    r = runner.invoke(app, ["verify", "lu2023", "--address", "1.2.3.4:6379", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--address 1.2.3.4:6379 needs --executor ray" in r.output
    r = runner.invoke(app, ["verify", "lu2023", "--executor", "slurm", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "unknown executor 'slurm'" in r.output


@pytest.mark.parametrize("name,key,value,changed", [
    ("huang2020", "claim.gaussian.flip", 0.3, {"gaussian"}),
    ("huang2020", "claim.degenerate.n", 32, {"degenerate", "depth"}),
    ("huang2020", "claim.rise_tol", 0.002, {"degenerate", "depth", "gaussian", "real"}),
    ("huang2020", "claim.real.anneal_control_seeds", 3, {"real"}),
    ("lewkowycz2020", "claim.relu.width", 128, {"core"}),
    ("lewkowycz2020", "claim.eos.steps", 100, {"eos"}),
    ("lewkowycz2020", "claim.rise_tol", 0.1, {"core", "real", "eos"}),
    ("you2019", "claim.noise.milestones", [20, 40], {"noise"}),
    ("you2019", "claim.transfer.width", 64, {"transfer"}),
    ("li2019-toy", "regimes.mechanism.data.q_scale", 4.0, {"mechanism"}),
    ("li2019-toy", "execution.threads", 2, {"default", "mechanism"}),
    ("lu2023", "claim.data.noise_std", 0.05, {"sweep", "control"}),
])
def test_a_setting_changes_only_the_jobs_that_read_it(name, key, value, changed):
    base = driver.load_claim_config(name, "quick")
    other = driver.load_claim_config(name, "quick", overrides=[f"{key}={maps._text(value)}"])
    jobs = driver._claim(name).jobs(base)
    moved = [j for j in jobs if driver.fingerprint(base, j) != driver.fingerprint(other, j)]
    tag = (lambda j: j.params["regime"]) if name == "li2019-toy" else (lambda j: j.part)
    assert {tag(j) for j in moved} == changed
    if name == "huang2020" and key.endswith("anneal_control_seeds"):
        assert {j.params["seed"] for j in moved} == {2}  # only the seed that gains the control


@pytest.mark.parametrize("name", ["huang2020", "lewkowycz2020", "you2019"])
def test_fewer_seeds_reuse_the_jobs_of_the_seeds_kept(name):
    full = driver.load_claim_config(name, "quick")
    fewer = driver.load_claim_config(name, "quick", seeds=2)
    mod = driver._claim(name)
    prints = {j.key: driver.fingerprint(full, j) for j in mod.jobs(full)}
    assert all(prints[j.key] == driver.fingerprint(fewer, j) for j in mod.jobs(fewer))


def test_publish_copies_a_map_and_regenerates_its_readme_block(tmp_path, monkeypatch):
    _tiny_lu(tmp_path, monkeypatch, control=False)
    out = tmp_path / "out"
    spec = maps.MapSpec("noise", {NOISE: [0.05, 0.2]}, note="Why these knobs.")
    df = maps.run_map("lu2023", spec, "quick", out, workers=1, log=_quiet)
    results, figures = tmp_path / "docs" / "results", tmp_path / "docs" / "figures"
    dst = maps.publish_map(maps.map_dir(out, "lu2023", "noise"), results, figures)
    assert (figures / "lu2023-noise.png").is_file()
    meta = json.loads((dst / "map.json").read_text())
    assert meta["provenance"]["unique_jobs"] == 2 and meta["provenance"]["job_compute_s"] > 0
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{maps.MAP_MARK.format(claim='lu2023')}\nstale\n{maps.MAP_END.format(claim='lu2023')}\n")
    assert maps.update_map_blocks(readme, results, check=True) == ["lu2023"]
    assert maps.update_map_blocks(readme, results) == ["lu2023"]
    assert maps.update_map_blocks(readme, results, check=True) == []
    text = readme.read_text()
    assert "stale" not in text and "(docs/figures/lu2023-noise.png)" in text and "Why these knobs." in text
    passing = set(df.groupby("verdict")["status"].apply(lambda s: (s == "PASS").all()).loc[lambda s: s].index)
    line = next(x for x in text.splitlines() if x.startswith("Raw verdicts"))
    assert all(f"`{v}`" in line.split("Holds nowhere")[0] for v in passing)


def test_an_interrupted_map_records_its_session(tmp_path, monkeypatch):
    """Ctrl-C / SIGTERM while a map trains: the session is recorded (interrupted, with the jobs it
    finished and its wall time), and the next run adds its own session to it."""
    _tiny_lu(tmp_path, monkeypatch)
    out = tmp_path / "out"
    spec = maps.MapSpec("noise", {NOISE: [0.05, 0.2]})
    real = driver.run_jobs

    def interrupted(items, *a, **k):
        real(items[:1], *a, **k)  # one job finishes, then the user presses Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "run_jobs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        maps.run_map("lu2023", spec, "quick", out, workers=1, log=_quiet)
    mdir = maps.map_dir(out, "lu2023", "noise")
    (first,) = json.loads((mdir / "map.json").read_text())["sessions"]
    assert first["interrupted"] and first["jobs_run"] == 1 and first["wall_s"] > 0
    monkeypatch.setattr(driver, "run_jobs", real)
    maps.run_map("lu2023", spec, "quick", out, workers=1, log=_quiet)
    sessions = json.loads((mdir / "map.json").read_text())["sessions"]
    assert [s["jobs_run"] for s in sessions] == [1, 3] and "interrupted" not in sessions[1]


def test_a_declared_map_not_yet_published_is_named_in_its_readme_block(tmp_path):
    block = maps.map_block(tmp_path, "li2019-patch")  # no committed maps under tmp_path
    assert "**Verdict map `patch-size`**" in block and "not run and published yet" in block
    assert "`lrlab verify li2019-patch --maps`" in block
