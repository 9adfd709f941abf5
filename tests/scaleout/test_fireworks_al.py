"""The tiny active-learning campaign through FireWorks: `mlipflow submit` + `mlipflow worker`.

No MongoDB server can run on this machine, so the LaunchPad is a mongomock-persistence file and
one worker process runs the Fireworks (mongomock keeps its state per process). The submitter and
the worker use different data and scratch directories and share only the database (here the
embedded store's path): nothing passes between jobs through a local directory. Every Firework
carries the category of the kind of node it needs, the dynamic iterations included, and the
worker pulls only those categories.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "al_tiny_emt.yaml"
CATEGORIES = {"cpu": "cpu", "gpu": "gpu", "light": "light"}

pytestmark = pytest.mark.slow


def _cli(args, env, cwd=None, timeout=1500):
    return subprocess.run([sys.executable, "-m", "mlipflow.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def _env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIPFLOW_")}
    env.update(MLIPFLOW_HOME=str(home), HOME=str(home.parent), **extra)
    return env


def _type_counts(env) -> collections.Counter:
    docs = json.loads(_cli(["query", "--limit", "0", "--json"], env).stdout)
    return collections.Counter((d.get("output") or {}).get("type") if isinstance(d.get("output"), dict) else None
                               for d in docs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_al_killed):
    """The local run to compare with is the AL tests' run that was killed after its first fit and
    run again: its store must hold exactly the documents of this uninterrupted FireWorks run."""
    base = tmp_path_factory.mktemp("fw_al")
    local = tiny_al_killed["env"]
    r = tiny_al_killed["rerun"]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    mm = base / "launchpad.json"
    mm.write_text("{}")
    lp = base / "my_launchpad.yaml"
    lp.write_text("host: localhost\nport: 27017\nname: fw_al\n")
    shared = {"MONGOMOCK_SERVERSTORE_FILE": str(mm), "MLIPFLOW_DATABASE__PATH": str(base / "shared_store"),
              "MLIPFLOW_CATEGORIES": json.dumps(CATEGORIES)}
    submitter = _env(base / "submitter" / "home", **shared)
    worker = _env(base / "worker" / "home", **shared)
    sub = _cli(["submit", str(TINY), "--launchpad", str(lp)], submitter, cwd=base)
    assert sub.returncode == 0, sub.stdout + sub.stderr
    w = _cli(["worker", "--launchpad", str(lp), "--category", "cpu", "--category", "gpu", "--category", "light"],
             worker, cwd=base)
    assert w.returncode == 0, w.stdout[-3000:] + w.stderr[-3000:]
    code = ("import json; from fireworks import LaunchPad; lp = LaunchPad.from_file(%r); "
            "print(json.dumps([[fw['name'], fw['state'], fw['spec'].get('_category')] for fw in "
            "lp.fireworks.find({}, {'name': 1, 'state': 1, 'spec._category': 1})]))") % str(lp)
    fws = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=submitter,
                                    cwd=base).stdout)
    return {"local": local, "submitter": submitter, "worker": worker, "submit": json.loads(sub.stdout.splitlines()[-1]),
            "fireworks": fws, "base": base, "lp": lp}


def test_same_documents_as_a_local_run_that_was_killed_and_rerun(runs):
    local, fw = _type_counts(runs["local"]), _type_counts(runs["submitter"])
    assert fw == local, (fw, local)
    assert fw["campaign"] == 1 and fw["al_iteration"] >= 2 and fw["potential"] == 3


def test_same_labels_and_potentials_as_the_local_run(runs):
    """Determinism (issue 16): the FireWorks run computed everything again in its own directories
    and store, yet its potentials (content hashes of data, settings and warm start) and its errors on
    the fixed test set equal those of the local run."""
    def summary(env):
        return json.loads(_cli(["query", "--type", "campaign", "--json"], env).stdout)[0]["output"]["summary"]

    local, fw = summary(runs["local"]), summary(runs["submitter"])
    for key in ("first_potential", "final_potential"):
        assert fw[key]["input_hash"] == local[key]["input_hash"], key
    assert [h["potential"]["input_hash"] for h in fw["history"]] == [h["potential"]["input_hash"] for h in local["history"]]
    assert [h["n_labeled"] for h in fw["history"]] == [h["n_labeled"] for h in local["history"]]
    for key in ("first", "final"):
        assert fw["fixed_test_set"][key]["force_rmse_eV_A"] == pytest.approx(local["fixed_test_set"][key]["force_rmse_eV_A"],
                                                                           rel=1e-9)


def test_every_firework_completed_with_its_category(runs):
    fws = runs["fireworks"]
    assert fws and all(state == "COMPLETED" for _, state, _ in fws), [f for f in fws if f[1] != "COMPLETED"]
    by_name = {name: cat for name, _, cat in fws}
    expected = {"fit_0": "gpu", "fit_1": "gpu", "fit_2": "gpu", "explore_1_0": "gpu", "stability_first": "gpu",
                "aimd_0": "cpu", "label_1_0": "cpu", "isolated_Cu": "cpu", "al_structures": "light",
                "gather_initial_dataset": "light", "select_label_1": "light", "decide_2": "light", "summarize": "light"}
    for name, cat in expected.items():
        assert by_name.get(name) == cat, (name, by_name.get(name))
    assert {cat for _, _, cat in fws} == {"cpu", "gpu", "light"}  # nothing without a category
    # dynamic iterations appeared as new Fireworks: far more than were submitted
    assert len(fws) > runs["submit"]["fireworks"] and runs["submit"]["categories"]


def test_improvement_rule_evaluated_without_shared_directory(runs):
    """The worker's data directory is not the submitter's: test sets came from the store."""
    iters = json.loads(_cli(["query", "--type", "al_iteration", "--limit", "0", "--json"], runs["submitter"]).stdout)
    decided = [d["output"] for d in iters if d["output"].get("new_potential")]
    assert decided and all(d["previous_test_metrics"]["force_rmse"] is not None for d in decided)
    assert not (runs["base"] / "submitter" / "home" / "data" / "cache").exists()  # the submitter computed nothing


def test_worker_with_a_category_nothing_uses(runs):
    w = _cli(["worker", "--launchpad", str(runs["lp"]), "--category", "quantum"], runs["worker"], cwd=runs["base"])
    assert w.returncode == 2 and "quantum" in w.stderr and "fix" in w.stderr and "Traceback" not in w.stderr


def test_campaign_category_that_names_no_worker(tmp_path):
    camp = tmp_path / "c.yaml"
    camp.write_text(TINY.read_text() + "categories: {gpu: h100}\n")
    env = _env(tmp_path / "home", MLIPFLOW_CATEGORIES=json.dumps(CATEGORIES))
    r = _cli(["run", str(camp)], env)
    assert r.returncode == 2 and "h100" in r.stderr and "no configured worker" in r.stderr


def test_unreachable_launchpad_fails_fast(tmp_path):
    import time

    lp = tmp_path / "lp.yaml"
    lp.write_text("host: 127.0.0.1\nport: 1\nname: nowhere\n")
    t0 = time.time()
    r = _cli(["submit", str(TINY), "--launchpad", str(lp)], _env(tmp_path / "home"))
    assert r.returncode == 2 and "cannot connect" in r.stderr and "Traceback" not in r.stderr
    assert time.time() - t0 < 25  # a 5 s server selection, not pymongo's 30 s
