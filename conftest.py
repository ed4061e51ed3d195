"""Every test (and doctest) gets a data directory of its own, so that the default one
(``./.rheos`` in the current directory) is never written by the test suite."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_data_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RHEOS_DATA_DIR", str(tmp_path_factory.mktemp("data")))
