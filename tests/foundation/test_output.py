"""Quiet by default, -v shows everything, -q only results; read-only commands import neither
TensorFlow nor torch (they start fast)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EOS = ROOT / "examples" / "example_eos.yaml"


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIPFLOW_")}
    env.update(MLIPFLOW_HOME=str(tmp_path / "home"), HOME=str(tmp_path), COLUMNS="200")
    return env


def _cli(args, env):
    r = subprocess.run([sys.executable, "-m", "mlipflow.cli.main", *args], capture_output=True, text=True, env=env,
                       timeout=300)
    return r.returncode, r.stdout + r.stderr


def test_verbosity_levels_of_a_run(tmp_path):
    env = _env(tmp_path)
    rc, normal = _cli(["run", str(EOS), "--restart"], env)
    assert rc == 0, normal[-3000:]
    # one line per job start and finish, no uuids, no third-party warnings or jobflow chatter
    assert "start  eos_step_0" in normal and "done   eos_step_0 (" in normal
    assert "Starting job" not in normal and "cd is deprecated" not in normal and "FutureWarning" not in normal
    assert "Started executing jobs locally" not in normal
    rc, verbose = _cli(["-v", "run", str(EOS), "--restart"], env)
    assert rc == 0
    assert "Started executing jobs locally" in verbose and "start  eos_step_0" in verbose
    rc, quiet = _cli(["--quiet", "run", str(EOS), "--restart"], env)
    assert rc == 0
    assert "start  " not in quiet and "done   " not in quiet and "finished in" in quiet  # the result stays
    rc, both = _cli(["-v", "-q", "config"], env)
    assert rc == 2 and "contradict" in both


def test_read_only_commands_import_neither_tensorflow_nor_torch(tmp_path):
    """doctor (quick), config, query, status and report: the heavy frameworks stay out of the process."""
    env = _env(tmp_path)
    code = ("import sys; from mlipflow.cli.main import main; rc = main(sys.argv[1:]); "
            "heavy = sorted(m for m in ('tensorflow', 'torch', 'chgnet', 'deepmd', 'pyace', 'jobflow') if m in sys.modules); "
            "print('HEAVY', heavy); sys.exit(rc)")
    for args in (["doctor"], ["config"], ["query", "--type", "campaign"], ["status"], ["--help"]):
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("HEAVY")]
        assert line, (args, r.stdout[-2000:], r.stderr[-2000:])
        heavy = line[-1]
        assert "tensorflow" not in heavy and "torch" not in heavy and "chgnet" not in heavy, (args, heavy)
        if args != ["doctor"]:
            assert "jobflow" not in heavy, (args, heavy)


def test_failed_job_line_keeps_the_problem_and_the_fix():
    """A failed job's one-line message holds the exception's message and its fix line (a UserError
    spans two lines: the last traceback line alone was only the fix)."""
    from mlipflow.output import exception_text

    tb = ("Traceback (most recent call last):\n  File \"x.py\", line 3, in f\n    raise UserError(a, b)\n"
          "mlipflow.errors.UserError: random packing failed: placed 59 of 66 atoms\n"
          "  fix: lower the density or the minimum distance\n")
    assert exception_text(tb) == "random packing failed: placed 59 of 66 atoms; fix: lower the density or the minimum distance"
    assert exception_text("Traceback (most recent call last):\n  File \"x\", line 1\nValueError: bad value") == \
        "ValueError: bad value"
    assert exception_text("Traceback (most recent call last):\n  File \"x\", line 1\nKeyError") == "KeyError"
