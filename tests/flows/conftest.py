"""Every flow test runs in its own folder with no data directory chosen by the environment."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RHEOS_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(autouse=True, params=["stream-first", "micro-batch"])
def run_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every flow test runs in both modes (``Flow.run`` reads ``RHEOS_RUN_MODE``)."""
    monkeypatch.setenv("RHEOS_RUN_MODE", request.param)
    return str(request.param)
