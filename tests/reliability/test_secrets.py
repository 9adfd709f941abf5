"""No secret in any file a run leaves behind, nor in what it prints: FireWorks (LaunchPad database,
launcher directories, job directories, the store) and jobflow-remote (job directories, queue).

The secrets are the settings' database password, the Materials Project key and the password of
a MongoDB URI. No MongoDB server can run here: the FireWorks LaunchPad is a mongomock file and the
job store is the embedded one, so the database password is configured but not used to connect;
what is checked is that it is never written or printed. The URI case is the unreachable-server
message (tests/reliability/test_bad_inputs.py) and `mlipflow config` (tests/foundation).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EOS = ROOT / "examples" / "example_eos.yaml"
SECRETS = {"MLIPFLOW_DATABASE__PASSWORD": "pw-9f3e1c", "MLIPFLOW_MP_API_KEY": "mpkey-77ab20"}


def _leaks(root: Path, texts: list[str]) -> list[str]:
    """Files under ``root`` (bytes) and texts that contain a secret."""
    found = []
    for p in root.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            found += [f"{p}: {k}" for k, s in SECRETS.items() if s.encode() in data]
    for t in texts:
        found += [f"output: {k}" for k, s in SECRETS.items() if s in t]
    return found


def _cli(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "mlipflow.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_fireworks_run_leaves_no_secret(tmp_path):
    mm = tmp_path / "mongomock.json"
    mm.write_text("{}")
    lp = tmp_path / "my_launchpad.yaml"
    lp.write_text("host: localhost\nport: 27017\nname: fw_secrets\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIPFLOW_")}
    env.update(MLIPFLOW_HOME=str(tmp_path / "home"), HOME=str(tmp_path), MONGOMOCK_SERVERSTORE_FILE=str(mm), **SECRETS)
    outs = []
    for args in (["config"], ["submit", str(EOS), "--launchpad", str(lp)], ["worker", "--launchpad", str(lp)],
                 ["query", "--limit", "0", "--json"]):
        r = _cli(args, env, tmp_path)
        assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
        outs += [r.stdout, r.stderr]
    assert '"campaign"' in outs[-2]  # the flow ran and stored its documents
    assert not _leaks(tmp_path, outs)


def test_local_run_and_a_failing_job_leave_no_secret(tmp_path):
    """A job that fails writes its traceback to the log and the job directory: no secret there."""
    camp = tmp_path / "bad_eos.yaml"
    camp.write_text(EOS.read_text().replace("element: Cu", "element: Zr"))  # EMT has no Zr: the job raises
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIPFLOW_")}
    env.update(MLIPFLOW_HOME=str(tmp_path / "home"), HOME=str(tmp_path), **SECRETS)
    r = _cli(["run", str(camp)], env, tmp_path)
    assert r.returncode == 1 and "did not complete" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert "failed eos_step_0" in " ".join(r.stdout.split()) and "Traceback" not in r.stdout  # one line by default
    v = _cli(["-v", "run", str(camp), "--restart"], env, tmp_path)
    assert v.returncode == 1 and "Traceback" in v.stdout + v.stderr  # the failure logged in full with -v ...
    assert not _leaks(tmp_path, [r.stdout, r.stderr, v.stdout, v.stderr])  # ... without a secret
