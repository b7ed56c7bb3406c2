"""Shared fixtures for the fast test suite.

Every test runs single-threaded (stable timings and bitwise-reproducible float sums) and
writes only into pytest's ``tmp_path``.
"""

from __future__ import annotations

import os

import pytest

from lrlab.threads import set_threads

set_threads(1)
# pytest-xdist workers inherit COLUMNS=80/LINES=24; Rich would fix the CLI consoles' width at
# import from them, and the tests that pass their own COLUMNS to the CLI would not be heard.
for _var in ("COLUMNS", "LINES"):
    os.environ.pop(_var, None)


@pytest.fixture(autouse=True)
def _single_thread():
    """Keep torch at one thread even if a test's config changes it (``train.threads``)."""
    yield
    set_threads(1)


@pytest.fixture(autouse=True)
def _no_runs_env(monkeypatch):
    """Tests never inherit a runs folder from the environment."""
    monkeypatch.delenv("LRLAB_RUNS", raising=False)


@pytest.fixture
def data_cfg():
    from tests.helpers import tiny_data_cfg

    return tiny_data_cfg()


@pytest.fixture
def split(data_cfg):
    from lrlab.data import li2019_mixture

    return li2019_mixture(data_cfg, 0)


@pytest.fixture(scope="session", autouse=True)
def _bytecode_cache():
    """Child interpreters (import checks, verify workers, kill -9 tests, Ray workers) may cache
    lrlab's bytecode in its __pycache__ folders, as Python does by default: with
    PYTHONDONTWRITEBYTECODE set, as on this machine, each would recompile every lrlab module
    (≈ 0.4 s a process). A child under a file-size limit must not (tests/test_faults.py)."""
    saved = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    yield
    if saved is not None:
        os.environ["PYTHONDONTWRITEBYTECODE"] = saved


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("lrlab-cache")


@pytest.fixture(autouse=True)
def _cache_env(monkeypatch, _session_cache):
    """Image caches go to a per-session temp folder; no test reads the user's data location."""
    monkeypatch.setenv("LRLAB_CACHE", str(_session_cache))
    monkeypatch.delenv("LRLAB_DATA", raising=False)


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory):
    """A tiny official-format CIFAR-10 folder: 10 classes × 6 train, × 3 test images."""
    from tests.helpers import write_cifar_pickles

    return write_cifar_pickles(tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py")
