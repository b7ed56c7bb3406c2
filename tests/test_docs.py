"""docs/adding-a-claim.md: its Python blocks form a claim that follows the protocol and runs
through the driver."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import yaml

from lrlab import driver
from lrlab.claims import CLAIMS, Claim

DOC = Path(__file__).resolve().parent.parent / "docs" / "adding-a-claim.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_worked_example_is_a_working_claim(tmp_path, monkeypatch):
    mod = types.ModuleType("lr_speed")
    monkeypatch.setitem(sys.modules, "lr_speed", mod)  # pydantic resolves annotations through it
    for code in _blocks("python"):
        exec(compile(code, str(DOC), "exec"), mod.__dict__)  # noqa: S102 - our own docs
    assert isinstance(mod, Claim)
    cfgdir = tmp_path / "configs" / mod.NAME
    cfgdir.mkdir(parents=True)
    (cfgdir / "quick.yaml").write_text(_blocks("yaml")[0])
    assert yaml.safe_load(_blocks("yaml")[0])["execution"]["seeds"] == [0, 1, 2]
    monkeypatch.setenv("LRLAB_CONFIGS", str(tmp_path / "configs"))
    monkeypatch.setitem(CLAIMS, mod.NAME, mod)
    vs = driver.verify([mod.NAME], "quick", tmp_path / "out", workers=1, log=lambda m: None)
    assert [(v.id, v.status, v.interval.n) for v in vs] == [("large-lower", "PASS", 3)]
    assert (tmp_path / "out" / mod.NAME / "figures" / f"{mod.NAME}-loss.png").is_file()
