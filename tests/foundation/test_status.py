"""`mlipflow status`: completed, failed (with the failing job and its error), interrupted runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EOS = ROOT / "examples" / "example_eos.yaml"


def _cli(args, env):
    return subprocess.run([sys.executable, "-m", "mlipflow.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_status_of_completed_failed_and_interrupted_runs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIPFLOW_")}
    env.update(MLIPFLOW_HOME=str(tmp_path / "home"), HOME=str(tmp_path), COLUMNS="200")
    bad = tmp_path / "eos_zr.yaml"
    bad.write_text(EOS.read_text().replace("element: Cu", "element: Zr").replace("name: example-eos", "name: eos-zr"))
    assert _cli(["run", str(EOS)], env).returncode == 0
    r = _cli(["run", str(bad)], env)
    assert r.returncode == 1 and "mlipflow status eos-zr" in r.stdout

    listing = _cli(["status"], env).stdout
    assert "example-eos" in listing and "completed" in listing and "eos-zr" in listing and "failed" in listing
    failed = _cli(["status", "eos-zr"], env).stdout
    assert "failed eos_step_0" in failed and "No EMT-potential for Zr" in failed
    done = _cli(["status", "example-eos"], env).stdout
    assert "completed" in done and "eos_iteration" in done

    # a run killed without recording its end: its process is gone -> interrupted
    code = ("import os; from mlipflow.campaign import load_campaign, record_status; "
            f"record_status(load_campaign({str(bad)!r}), 'running', pid=2**22 + 12345, host=os.uname().nodename)")
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True).returncode == 0
    assert "interrupted" in _cli(["status", "eos-zr"], env).stdout

    nothing = _cli(["status", "no-such-campaign"], env)
    assert nothing.returncode == 2 and "no run of campaign" in nothing.stderr
