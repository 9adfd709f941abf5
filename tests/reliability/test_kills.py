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
from pathlib import Path

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


# ------------------------------------------------------------------ the AL campaign, stage by stage

HELPERS = Path(__file__).parent / "helpers"


def _cache_state(home) -> dict[str, str]:
    """Every finished cache entry: document entries (key -> when stored) and directory entries
    (kind/key -> mtime of the completion marker, written last)."""
    import bson

    state: dict[str, str] = {}
    db = home / "data" / "store" / "cache.sqlite"
    if db.exists():
        conn = sqlite3.connect(db, timeout=30)
        try:
            state.update({k: str(bson.decode(v).get("created_at")) for k, v in conn.execute("SELECT key, doc FROM docs")})
        except sqlite3.OperationalError:
            pass
        finally:
            conn.close()
    for marker in (home / "data" / "cache").glob("*/*/.mlipflow-complete.json"):
        state[f"{marker.parent.parent.name}/{marker.parent.name}"] = str(marker.stat().st_mtime_ns)
    return state


def _run_until(cmd, env, cwd, marker: str | None, timeout=900):
    """Run ``cmd``; with ``marker``, SIGKILL its process group as soon as a line contains it.
    Returns (return code or 'killed', output)."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, bufsize=1)
    lines = []
    t0 = time.time()
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if marker and marker in line:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return "killed", "".join(lines)
        if time.time() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no {marker!r} within {timeout} s: " + "".join(lines)[-3000:])
    proc.wait()
    if marker:
        pytest.fail(f"the run ended before {marker!r}: " + "".join(lines)[-3000:])
    return proc.returncode, "".join(lines)


def test_al_campaign_killed_in_every_stage_and_a_crashing_fit(tiny_al_killed, tmp_path, campaign_tools):
    """The tiny AL campaign with a slowed, counting EMT labeler (tests/reliability/helpers): SIGKILL
    during the initial labelling, a run whose fits crash (a pacemaker that segfaults), SIGKILL
    during an exploration and during the selection's labelling, then a run to the end. No finished
    reference calculation, fit or MD run is repeated, and the store ends with the documents (by
    type, kind and campaign) of the tiny EMT campaign (tests/conftest.py::tiny_al_killed, which
    tests/scaleout/test_fireworks_al.py compares with an uninterrupted FireWorks run)."""
    import yaml

    campaign_env, type_counts = campaign_tools
    camp = yaml.safe_load(tiny_al_killed["campaign_file"].read_text())
    camp["parameters"]["labeler"] = "counting_emt:CountingEMT"
    camp_file = tmp_path / "al_counting.yaml"
    camp_file.write_text(yaml.safe_dump(camp))
    home = tmp_path / "home"
    calc_log = tmp_path / "calculations.txt"
    env = campaign_env(home)
    env.update(PYTHONPATH=f"{HELPERS}{os.pathsep}{env['PYTHONPATH']}", PYTHONUNBUFFERED="1", COLUMNS="200",
               MLIPFLOW_TEST_CALC_LOG=str(calc_log), MLIPFLOW_TEST_CALC_SLEEP="0.08")
    crash = tmp_path / "pacemaker-crash"
    crash.write_text("#!/bin/sh\necho 'Segmentation fault (core dumped)' >&2\nexit 139\n")
    crash.chmod(0o755)
    cmd = [sys.executable, "-m", "mlipflow.cli.main", "run", str(camp_file)]

    def calcs() -> list[str]:
        return calc_log.read_text().split() if calc_log.exists() else []

    # (stage, line that triggers the kill, extra environment, most labeler calls a rerun may repeat)
    aimd_calls = camp["parameters"]["aimd"]["steps"] + 1  # one unfinished AIMD trajectory
    stages = [("initial labelling", "start  aimd_2", {}, aimd_calls),
              ("crashing fit", None, {"MLIPFLOW_EXECUTABLES__PACEMAKER_CMD": str(crash)}, 0),
              ("exploration", "start  explore_1_1", {}, 0),
              ("selection labelling", "start  label_1_2", {}, 1),
              ("to the end", None, {}, 0)]
    outputs = {}
    before = calcs()
    state = _cache_state(home)
    for stage, marker, extra, may_repeat in stages:
        rc, out = _run_until(cmd, {**env, **extra}, tmp_path, marker)
        outputs[stage] = out
        now = calcs()
        new = now[len(before):]
        repeated = set(new) & set(before)
        assert len(repeated) <= may_repeat, f"{stage}: {len(repeated)} reference calculations repeated"
        after = _cache_state(home)
        changed = [k for k, v in state.items() if after.get(k) != v]
        assert not changed, f"{stage}: finished cache entries rewritten: {changed[:5]}"
        if stage == "crashing fit":
            assert rc != 0
            text = " ".join(out.split())  # the console wraps long lines
            line = text.split("failed fit_0:")[1].split("(-v shows the traceback)")[0]
            assert "pacemaker (exit 139" in line and "Segmentation fault" in line, line
            assert "rerun the same command to continue" in text
            assert "Traceback" not in out
        elif stage == "to the end":
            assert rc == 0, out[-4000:]
        before, state = now, after
    # the crashed run labelled what the first kill left, and nothing after the crash was labelled twice
    assert type_counts(home) == type_counts(tiny_al_killed["home"])
    summary = outputs["to the end"].split("from the cache:")[-1]
    assert "trajectory" in summary.split("computed:")[0]  # the initial labels came from the cache
