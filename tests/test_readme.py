"""The README's results are generated: every block between results markers equals what
`lrlab publish` writes from the committed docs/results/ files. Its "Your own model and data"
example runs as written."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from lrlab.maps import update_map_blocks
from lrlab.report.results import END, MARK, results_block, summary_block, update_readme
from lrlab.stats import verdict

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results"


def test_readme_results_blocks_match_the_committed_results():
    claims = re.findall(r"<!-- results:([\w.-]+) -->", README.read_text())
    assert "summary" in claims and len(claims) >= 7
    for claim in claims:
        if claim != "summary":
            assert (RESULTS / claim / "verdicts.json").is_file(), f"no committed results for {claim}"
    assert update_readme(README, RESULTS, check=True) == [], (
        "README results differ from docs/results: run `lrlab publish OUT` (or regenerate the blocks)")


def test_every_committed_result_has_provenance():
    for d in sorted(p for p in RESULTS.iterdir() if p.is_dir() and p.name != "maps"):
        prov = json.loads((d / "provenance.json").read_text())
        assert prov["claim"] == d.name and prov["scale"] in ("quick", "paper")
        assert prov["jobs"] > 0 and prov["jobs_ran_at_commits"] and prov["machine"]["cpus"]
        assert (d / "config.yaml").is_file()


def _fake_results(tmp_path: Path) -> Path:
    res = tmp_path / "results" / "toy"
    res.mkdir(parents=True)
    vs = [verdict("toy", "a", "large beats small", "acc diff", [0.1, 0.12, 0.11], 0.01),
          verdict("toy", "b", "never rises", "tol − rise", [-0.2, -0.21, -0.19], 0.0, test="bound")]
    (res / "verdicts.json").write_text(json.dumps({"verdicts": [v.to_dict() for v in vs]}))
    (res / "provenance.json").write_text(json.dumps({
        "claim": "toy", "scale": "quick", "options": {"seeds": None}, "sessions": [{"wall_s": 120.0}], "jobs": 2,
        "job_compute_s": 90.0, "jobs_ran_at_commits": ["abc"], "judged_at_commit": "def",
        "machine": {"cpus": 2}}))
    return res.parent


def test_update_readme_rewrites_only_the_blocks(tmp_path):
    results = _fake_results(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{MARK.format(claim='toy')}\nold 0.99\n{END.format(claim='toy')}\noutro\n")
    assert update_readme(readme, results, check=True) == ["toy"]
    assert "old 0.99" in readme.read_text()  # check writes nothing
    assert update_readme(readme, results) == ["toy"]
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old 0.99" not in text
    assert "| `a` | large beats small | superiority (0.01) | 0.11 [" in text
    assert "**1 hold** (`a`)" in text and "**1 fail** (`b`)" in text
    assert update_readme(readme, results) == []  # idempotent
    assert results_block(results, "toy") in text


def test_summary_and_missing_end_marker(tmp_path):
    results = _fake_results(tmp_path)
    s = summary_block(results)
    assert "| `toy` | quick | 2 | 1 / 1 / 0 |" in s and "| 1.5 | 2.0 |" in s
    readme = tmp_path / "R.md"
    readme.write_text(f"{MARK.format(claim='toy')}\nno end\n")
    with pytest.raises(ValueError, match="no end marker"):
        update_readme(readme, results)
    shutil.rmtree(results / "toy")


def _bench_summary():
    """benchmarks/summary.py, loaded from its path (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_summary", ROOT / "benchmarks" / "summary.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_performance_blocks_match_the_committed_benchmarks():
    summary = _bench_summary()
    text = README.read_text()
    assert "<!-- bench:population -->" in text
    assert summary.update_readme(README, check=True) == [], (
        "README performance numbers differ from benchmarks/results*.json: run `python benchmarks/summary.py`")


def test_bench_summary_rewrites_only_its_blocks(tmp_path):
    summary = _bench_summary()
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench:population -->\nW1 0.1 s typed by hand\n<!-- /bench:population -->\noutro\n")
    assert summary.update_readme(readme, check=True) == ["population"]
    assert "typed by hand" in readme.read_text()
    assert summary.update_readme(readme) == ["population"]
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "typed by hand" not in text
    assert "| W1 |" in text


def test_readme_map_blocks_match_the_committed_maps():
    blocks = set(re.findall(r"<!-- map:([\w.-]+) -->", README.read_text()))
    committed = {p.name for p in (RESULTS / "maps").iterdir()} if (RESULTS / "maps").is_dir() else set()
    assert committed <= blocks, f"committed maps without a README block: {sorted(committed - blocks)}"
    assert update_map_blocks(README, RESULTS, check=True) == [], (
        "README map blocks differ from docs/results/maps: run `lrlab publish OUT`")


def test_the_your_own_data_example_runs_as_written():
    section = README.read_text().split("### Your own model and data", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)[:1]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    res, pdg = scope["res"], scope["pdg"]
    assert set(res.labels.values()) == {"large-seed0", "large-seed1", "small-seed0", "small-seed1"}
    assert res.named().name.isin(["large", "small"]).all()
    assert pdg.divergence_edge is not None and pdg.table().test_acc.between(0, 1).all()
