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


def _tiny_al_cli(args, env, timeout=1500):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "mlipflow.cli.main", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def _frame_count(env) -> int:
    import subprocess
    import sys

    code = ("from mlipflow.store import collection; c=collection('frames', key='frame_id'); c.connect(); "
            "print(c.count())")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip())


@pytest.fixture(scope="session")
def tiny_al_killed(tmp_path_factory):
    """`mlipflow run examples/al_tiny_emt.yaml` SIGKILLed right after its first fit finished, then
    the same command run again. Shared by the AL loop tests and the FireWorks test (which compares
    its uninterrupted FireWorks run's documents with this interrupted one's)."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    tiny = Path(__file__).resolve().parents[1] / "examples" / "al_tiny_emt.yaml"
    home = tmp_path_factory.mktemp("al") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIPFLOW_")}
    env.update(MLIPFLOW_HOME=str(home), HOME=str(home.parent))
    fits = home / "data" / "cache" / "ace-fit"
    proc = subprocess.Popen([sys.executable, "-m", "mlipflow.cli.main", "run", str(tiny)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    t0 = time.time()
    first_fit = None
    while time.time() - t0 < 900:
        done = list(fits.glob("*/.mlipflow-complete.json")) if fits.exists() else []  # the cache's marker
        if done:
            first_fit = done[0].parent
            break
        if proc.poll() is not None:
            pytest.fail("the campaign ended before its first fit: " + proc.stdout.read()[-3000:])
        time.sleep(0.5)
    assert first_fit is not None, "first fit did not finish within 15 min"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # kill the whole run, mid-campaign
    proc.wait()
    killed_log = proc.stdout.read()
    snapshot = {p.name: p.stat().st_mtime_ns for p in first_fit.iterdir() if p.is_file()}
    frames_before = _frame_count(env)
    rerun = _tiny_al_cli(["run", str(tiny)], env)
    return {"env": env, "home": home, "first_fit": first_fit, "snapshot": snapshot, "killed_log": killed_log,
            "frames_before": frames_before, "rerun": rerun, "campaign_file": tiny}


def campaign_env(home) -> dict:
    """The environment of a `mlipflow` subprocess with its own MLIPFLOW_HOME (nothing else leaks in)."""
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIPFLOW_")}
    env.update(MLIPFLOW_HOME=str(home), HOME=str(Path(home).parent), PYTHONPATH=str(Path(__file__).parents[1]))
    return env


def type_counts(home) -> dict:
    """Job output documents in a home's store, counted by (type, kind, campaign)."""
    import collections
    import json
    import subprocess
    import sys

    code = ("import json; from mlipflow.store import query_outputs; print(json.dumps([[d['output'].get('type'), "
            "d['output'].get('kind'), d['output'].get('campaign')] if isinstance(d.get('output'), dict) else [None] * 3 "
            "for d in query_outputs()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=campaign_env(home),
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(collections.Counter(tuple(x) for x in json.loads(out.stdout.strip().splitlines()[-1])))


@pytest.fixture(scope="session")
def tiny_glass(tmp_path_factory):
    """tests/production/tiny_glass.yaml run once, uninterrupted (shared by the production-flow and
    reliability tests)."""
    import subprocess
    import sys
    from pathlib import Path

    camp = Path(__file__).parent / "production" / "tiny_glass.yaml"
    base = tmp_path_factory.mktemp("tiny_glass")
    home = base / "home"
    proc = subprocess.run([sys.executable, "-m", "mlipflow.cli.main", "run", str(camp)], capture_output=True,
                          text=True, env=campaign_env(home), timeout=900, cwd=base)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {"home": home, "proc": proc, "campaign_file": camp}


@pytest.fixture(scope="session")
def tiny_lfp(tmp_path_factory):
    """tests/lfp/tiny_lfp.yaml run once (the LixFePO4 campaign with tiny settings; shared by the
    campaign and report tests); ``run()`` runs it again."""
    import subprocess
    import sys
    from pathlib import Path

    camp = Path(__file__).parent / "lfp" / "tiny_lfp.yaml"
    base = tmp_path_factory.mktemp("lfp")
    home = base / "home"
    env = campaign_env(home)

    def run():
        return subprocess.run([sys.executable, "-m", "mlipflow.cli.main", "run", str(camp)], capture_output=True,
                              text=True, env=env, timeout=1200, cwd=base)

    return {"home": home, "env": env, "first": run(), "run": run, "base": base}


@pytest.fixture(scope="session")
def campaign_tools():
    """Helpers for tests that run `mlipflow` in subprocesses: (campaign_env, type_counts)."""
    return campaign_env, type_counts


# ------------------------------------------------------------------ two workers (pytest-xdist)

#: Session fixtures that run a whole campaign or a fit: the tests that use one of a set run on one
#: xdist worker (``--dist loadgroup``), so each is computed once. The report tests use all three
#: campaigns, hence one group for them.
XDIST_GROUPS = {
    "campaigns": {"tiny_al_killed", "tiny_glass", "tiny_lfp"},
    "ace-fits": {"tiny_fit", "emt_data"},
    "dp-models": {"dp_pair", "dp_base", "dp_data"},
}


def pytest_collection_modifyitems(config, items):
    """The tests that use an expensive session fixture run in that fixture's xdist group (so it is
    computed once); every other test in the group of its file, so a file's tests run on one worker
    in the order they are written, as in a serial run (module fixtures are computed once, and a
    test that finds a cache entry an earlier test of its file wrote sees it on two workers too).
    Whole files are not merged into the fixture groups: with that, the suite took 31 min on two
    workers (fresh clone, 2026-12-07)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        group = next((g for g, fixtures in XDIST_GROUPS.items() if names & fixtures), None)
        item.add_marker(pytest.mark.xdist_group(group or item.nodeid.split("::")[0]))
