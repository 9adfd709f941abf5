"""The ACE active-learning loop end to end with the real pacemaker (EMT-labelled Cu–Al).

One campaign run is killed right after its first fit finished; rerunning the same command
must finish the campaign without relabeling or refitting what was done.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "al_tiny_emt.yaml"

pytestmark = pytest.mark.slow


def _cli(args, env, timeout=1500):
    return subprocess.run([sys.executable, "-m", "mlipflow.cli.main", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def campaign(tiny_al_killed):
    log = tiny_al_killed["killed_log"]
    assert "start  fit_0" in log and "done   summarize" not in log  # killed in the loop (one line per job event)
    return tiny_al_killed


def test_rerun_completes(campaign):
    r = campaign["rerun"]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "iteration limit (2) reached" in r.stdout


def test_resume_did_not_refit_or_relabel(campaign):
    fit0 = campaign["first_fit"]
    after = {p.name: p.stat().st_mtime_ns for p in fit0.iterdir() if p.is_file()}
    for name, mtime in campaign["snapshot"].items():
        assert after.get(name) == mtime, f"{name} of the first fit was rewritten on resume"
    out = campaign["rerun"].stdout
    assert "from the cache" in out  # AIMD trajectories came back from the frame store
    # frames of the initial dataset were not labeled again: only AL labels were added
    env = campaign["env"]
    code = ("from mlipflow.store import collection; c=collection('frames', key='frame_id'); c.connect(); "
            "import json; print(json.dumps([d['source'] for d in c.query({}, properties=['source'])]))")
    sources = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                        env=env).stdout)
    n_aimd = sum(s == "aimd" for s in sources)
    assert n_aimd == 60  # 6 cells x 10 frames, once
    assert len(sources) >= campaign["frames_before"]


def test_documents_in_store(campaign):
    env = campaign["env"]
    iters = json.loads(_cli(["query", "--type", "al_iteration", "--limit", "0", "--json"], env).stdout)
    # per iteration, the merge of its labels and the decision, once each although the run was
    # killed and run again (issue 17: a rerun used to add a second copy of every finished job)
    assert sorted(d["name"] for d in iters) == ["decide_1", "decide_2", "merge_1", "merge_2"]
    by_it = {d["output"]["iteration"]: d["output"] for d in iters if d["name"].startswith("decide")}
    for it, doc in by_it.items():
        assert doc["n_selected"] <= 12  # select.max_structures
        assert doc["n_candidates"] == len(doc["candidates"]) > 0
        above = [c for c in doc["candidates"] if c["max_gamma"] > 1.5]  # explore.gamma_lo
        assert doc["gamma_stats"]["n_above_lo"] == len(above) > 0
        chosen = [c for c in doc["candidates"] if c["selected"]]
        assert len(chosen) == doc["n_selected"] and all(c["reason"] for c in doc["candidates"])
        assert all(c["max_gamma"] > 1.0 for c in chosen)  # MaxVol picks extrapolative frames
        assert doc["new_potential"]["input_hash"] and doc["dataset"]["version"] == it + 1
        assert doc["gamma_stats"]["max"] > 1.5
    camp = json.loads(_cli(["query", "--type", "campaign", "--json"], env).stdout)[0]["output"]
    s = camp["summary"]
    assert s["iterations"] == 2 and s["initial_frames"] == 60 and s["al_labels"] > 0
    assert s["final_potential"] != s["first_potential"]
    assert {"first", "final"} <= set(s["stability"])
    assert Path(s["plots"]["active_learning"]).is_file()
    # the fixed test set: labelled once before the loop (test-only dataset), every potential scored on it
    fixed = s["fixed_test_set"]
    assert fixed["dataset"]["name"] == "al-tiny-emt-fixed-test" and fixed["dataset"]["version"] == 1
    shown = _cli(["dataset", "show", "al-tiny-emt-fixed-test"], env).stdout
    n_fixed = fixed["first"]["n_frames"]
    assert f"frames: {n_fixed} (0 train / {n_fixed} test)" in " ".join(shown.split()) and n_fixed >= 10
    for key in ("first", "final"):
        assert fixed[key]["force_rmse_eV_A"] > 0 and fixed[key]["energy_rmse_eV_atom"] >= 0
    rows = s["history"]
    assert all(r["fixed_test"]["n_frames"] == n_fixed for r in rows)
    assert rows[-1]["fixed_test"]["force_rmse_eV_A"] == pytest.approx(fixed["final"]["force_rmse_eV_A"])
    assert [r["t_melt"] for r in rows] == [2500.0, 2500.0]
    pots = json.loads(_cli(["query", "--type", "potential", "--limit", "0", "--json"], env).stdout)
    hashes = {p["output"]["input_hash"] for p in pots}
    assert {s["first_potential"]["input_hash"], s["final_potential"]["input_hash"]} <= hashes
    # potentials carry their files as blobs (loaded on show)
    shown = json.loads(_cli(["show", s["final_potential"]["input_hash"]], env).stdout)
    assert shown["output"]["kind"] == "ace" and shown["output"]["has_active_set"]


def test_bad_parameters_exit_2(tmp_path, mlipflow_home, capsys):
    from mlipflow.cli.main import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("gamma_lo: 1.5, gamma_hi: 50", "gamma_lo: 5, gamma_hi: 2"))
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "gamma_hi" in err and "fix" in err
