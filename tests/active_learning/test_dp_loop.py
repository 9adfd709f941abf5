"""The active-learning loop with a DeePMD ensemble (`potential: dp`), real DeePMD-kit, EMT labels.

Explorations track the ensemble's max force deviation, the selection labels the candidates between
the trust levels, and the loop stops at the accurate-ratio target or the iteration limit. The run is
killed (SIGKILL) right after the first ensemble finished training and rerun: nothing finished is
trained again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CAMPAIGN = ROOT / "examples" / "al_tiny_dp.yaml"

pytestmark = pytest.mark.slow


def _cli(args, env, timeout=1500):
    return subprocess.run([sys.executable, "-m", "mlipflow.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _trained(cache: Path) -> list[Path]:
    """Finished cache directories that hold a frozen DeePMD model."""
    return [m.parent for m in cache.glob("*/*/.mlipflow-complete.json") if list(m.parent.glob("*.pth"))]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    home = tmp_path_factory.mktemp("dp_al") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIPFLOW_")}
    env.update(MLIPFLOW_HOME=str(home), HOME=str(home.parent))
    cache = home / "data" / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "mlipflow.cli.main", "run", str(CAMPAIGN)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    t0 = time.time()
    while time.time() - t0 < 900:
        if len(_trained(cache)) >= 2:  # both members of the first ensemble
            break
        if proc.poll() is not None:
            pytest.fail("the campaign ended before its first ensemble: " + proc.stdout.read()[-3000:])
        time.sleep(0.5)
    else:
        pytest.fail("the first ensemble did not finish within 15 min")
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {d: {p.name: p.stat().st_mtime_ns for p in d.iterdir() if p.is_file()} for d in _trained(cache)}
    rerun = _cli(["run", str(CAMPAIGN)], env)
    return {"env": env, "first": first, "rerun": rerun}


def test_dp_campaign_completes_after_a_kill(campaign):
    r = campaign["rerun"]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    for d, files in campaign["first"].items():
        for name, mtime in files.items():
            assert (d / name).stat().st_mtime_ns == mtime, f"{d.name}/{name} was trained again on resume"


def test_dp_documents(campaign):
    env = campaign["env"]
    camp = json.loads(_cli(["query", "--type", "campaign", "--json"], env).stdout)[0]["output"]["summary"]
    assert camp["stop_reason"] in ("iteration_limit", "accurate_ratio_reached", "no_uncertain_frames")
    assert camp["first_potential"]["kind"] == "dp" and camp["iterations"] >= 1
    iters = [d["output"] for d in json.loads(_cli(["query", "--type", "al_iteration", "--limit", "0", "--json"],
                                                  env).stdout) if d["output"].get("new_potential")]
    assert iters
    for doc in iters:
        r = doc["trust_ratios"]
        assert abs(r["accurate"] + r["candidate"] + r["failed"] - 1) < 1e-9
        assert doc["n_selected"] <= 12
        chosen = [c for c in doc["candidates"] if c["selected"]]
        assert all(0.02 <= c["max_gamma"] < 2.0 for c in chosen)  # candidates between the trust levels
    pots = json.loads(_cli(["query", "--type", "potential", "--limit", "0", "--json"], env).stdout)
    assert all(p["output"]["kind"] == "dp" for p in pots)
    assert any(len([r for r in p["output"]["roles"] if r.startswith("model")]) == 2 for p in pots)  # ensembles
