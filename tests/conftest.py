"""Shared fixtures: each test gets its own embedded on-disk store and settings file."""

from __future__ import annotations

import os

# Two cores: one thread each for OpenMP, TensorFlow and torch/DeePMD (25x faster training here).
for _k, _v in {
    "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
    "DP_INTRA_OP_PARALLELISM_THREADS": "1", "DP_INTER_OP_PARALLELISM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg", "KMP_WARNINGS": "0",
}.items():
    os.environ.setdefault(_k, _v)

import pytest  # noqa: E402


@pytest.fixture
def mlipflow_home(tmp_path, monkeypatch):
    """Isolated MLIPFLOW_HOME + config file; returns the home directory."""
    home = tmp_path / "mlipflow_home"
    home.mkdir()
    monkeypatch.setenv("MLIPFLOW_HOME", str(home))
    monkeypatch.delenv("MLIPFLOW_CONFIG", raising=False)
    for key in list(os.environ):
        if key.startswith("MLIPFLOW_") and key not in ("MLIPFLOW_HOME",):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.mlipflow.yaml leaks in
    from mlipflow.settings import get_settings

    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def store(mlipflow_home):
    """A real embedded (montydb on disk) JobStore, connected."""
    from mlipflow.store import job_store

    s = job_store()
    s.connect()
    yield s
    s.close()
