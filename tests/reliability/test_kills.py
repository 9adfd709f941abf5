"""SIGKILL a campaign mid-run, run the same command again: nothing finished is recomputed and the
store ends with exactly the documents of an uninterrupted run (counted by type, kind and campaign).

The AL campaign killed after its first fit is tests/conftest.py::tiny_al_killed (checked in
tests/active_learning/test_loop.py and, against an uninterrupted FireWorks run, in
tests/scaleout/test_fireworks_al.py). Here: the production glass campaign killed during an MD run.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def _finished_md(home) -> dict[str, str]:
    """MD runs in the cache (key -> when stored), read straight from the embedded store's table."""
    import bson

    db = home / "data" / "store" / "cache.sqlite"
    if not db.exists():
        return {}
    conn = sqlite3.connect(db, timeout=30)
    try:
        rows = conn.execute("SELECT key, doc FROM docs WHERE key LIKE 'md:%'").fetchall()
    except sqlite3.OperationalError:  # the table is being created
        return {}
    finally:
        conn.close()
    return {k[3:]: bson.decode(v)["created_at"] for k, v in rows}


def test_glass_campaign_killed_during_md_then_rerun(tiny_glass, tmp_path, campaign_tools):
    campaign_env, type_counts = campaign_tools
    camp = tiny_glass["campaign_file"]
    home = tmp_path / "home"
    env = campaign_env(home)
    proc = subprocess.Popen([sys.executable, "-m", "mlipflow.cli.main", "run", str(camp)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    workdirs = home / "data" / "cache" / "md-workdir"
    done: dict = {}
    t0 = time.time()
    while time.time() - t0 < 600:
        done = _finished_md(home)
        dirs = list(workdirs.iterdir()) if workdirs.exists() else []
        running = [d for d in dirs if d.name not in {k[:24] for k in done} and (d / "log.lammps").exists()]
        if len(done) >= 2 and running:
            break
        if proc.poll() is not None:
            pytest.fail("the campaign ended before it could be killed: " + proc.stdout.read()[-3000:])
        time.sleep(0.2)
    assert len(done) >= 2, "two MD runs did not finish within 10 min"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run, with LAMMPS, mid-MD
    proc.wait()
    done = _finished_md(home)

    rerun = subprocess.run([sys.executable, "-m", "mlipflow.cli.main", "run", str(camp)], capture_output=True,
                           text=True, env=env, timeout=900, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-4000:]
    after = _finished_md(home)
    assert all(after[k] == v for k, v in done.items())  # finished MD runs were not run (or stored) again
    assert "from the cache:" in rerun.stdout and "md " in rerun.stdout.split("from the cache:")[-1]
    assert type_counts(home) == type_counts(tiny_glass["home"])
