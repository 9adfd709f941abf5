"""Real on-disk stores, a dynamic flow run locally, cross-process queries, documents."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "example_eos.yaml"


def _cli(args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "mlipflow.cli.main", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def test_documents_carry_provenance():
    from mlipflow.schemas import LabeledFrame, PotentialDoc, content_hash

    f = LabeledFrame(frame_id="abc", structure={}, labeler="emt")
    assert f.type == "frame" and f.schema_version and f.created_at.tzinfo is not None
    assert f.versions["numpy"] and "mlipflow" in f.versions
    p = PotentialDoc(kind="ace")
    assert p.type == "potential"
    # units are documented in field descriptions
    assert "eV" in LabeledFrame.model_fields["energy"].description
    assert "Å" in LabeledFrame.model_fields["forces"].description
    # content hash: stable, order-insensitive for dicts, sensitive to values
    assert content_hash({"a": 1, "b": 2.0}) == content_hash({"b": 2.0, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
    assert content_hash(1.00000000001) == content_hash(1.0)


def test_store_roundtrip_and_mongo_queries(store):
    from mlipflow.schemas import PotentialDoc

    docs = [{"uuid": f"u{i}", "index": 1, "output": PotentialDoc(kind="ace", name=f"p{i}",
             cutoff=5.0 + i).model_dump(mode="json"), "completed_at": f"2026-01-0{i+1}"} for i in range(3)]
    store.docs_store.update(docs, key=["uuid", "index"])
    hits = list(store.query({"output.type": "potential", "output.cutoff": {"$gte": 6.0}}))
    assert sorted(d["output"]["name"] for d in hits) == ["p1", "p2"]


def test_blobs_go_to_additional_store(store):
    from jobflow import job, run_locally

    @job(data="trajectory")
    def make():
        return {"type": "md_run", "trajectory": {"positions": [[0.0, 1.0, 2.0]] * 50}, "n": 50}

    j = make()
    run_locally(j, store=store, log=False)
    raw = store.docs_store.query_one({"uuid": j.uuid})
    assert "blob_uuid" in raw["output"]["trajectory"]  # a reference, not the data
    loaded = store.query_one({"uuid": j.uuid}, load=True)
    assert len(loaded["output"]["trajectory"]["positions"]) == 50


def test_dynamic_flow_locally_and_query_from_other_process(mlipflow_home, tmp_path):
    env = dict(os.environ, MLIPFLOW_MP_API_KEY="MPKEY-SECRET-42", MLIPFLOW_DATABASE__PASSWORD="DBPW-SECRET-42")
    r = _cli(["run", str(EXAMPLE), "--workdir", str(tmp_path / "jobs")], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    # secrets are neither printed nor stored (raw bytes of the on-disk store)
    assert "SECRET-42" not in r.stdout + r.stderr
    raw = b"".join(p.read_bytes() for p in (mlipflow_home / "data" / "store").rglob("*") if p.is_file())
    assert raw and b"SECRET-42" not in raw
    assert "converged" in r.stdout
    # another process reads what this one wrote
    q = _cli(["query", "--type", "eos_iteration", "--limit", "0", "--json"], env=env)
    assert q.returncode == 0, q.stderr
    iters = json.loads(q.stdout)
    assert len(iters) >= 5  # one document per replaced iteration
    assert sorted(d["index"] for d in iters) == list(range(1, len(iters) + 1))
    final = max(iters, key=lambda d: d["index"])["output"]
    assert final["converged"] and abs(final["a_best"] - 3.59) < 0.01  # EMT fcc Cu
    camp = json.loads(_cli(["query", "--type", "campaign", "--json"], env=env).stdout)
    assert camp[0]["output"]["summary"]["iterations"] == len(iters)
    shown = _cli(["show", camp[0]["uuid"][:8]], env=env)
    assert shown.returncode == 0 and '"summary"' in shown.stdout


def test_fireworks_submit_and_worker(mlipflow_home, tmp_path):
    """FireWorks LaunchPad on mongomock-persistence: no MongoDB server can run on this
    machine, so the LaunchPad database is a mongomock file (one worker only)."""
    mm = tmp_path / "mongomock.json"
    mm.write_text("{}")
    lp = tmp_path / "my_launchpad.yaml"
    lp.write_text("host: localhost\nport: 27017\nname: fw_test\n")
    env = dict(os.environ, MONGOMOCK_SERVERSTORE_FILE=str(mm))
    r = _cli(["submit", str(EXAMPLE), "--launchpad", str(lp)], env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    wf = json.loads(r.stdout.strip().splitlines()[-1])
    assert wf["workflow_id"] >= 1 and wf["fireworks"] == 2
    w = _cli(["worker", "--launchpad", str(lp)], env=env, cwd=tmp_path)
    assert w.returncode == 0, w.stdout + w.stderr
    camp = json.loads(_cli(["query", "--type", "campaign", "--json"], env=env).stdout)
    assert camp and camp[0]["output"]["summary"]["converged"] is True
    # the workflow's state is COMPLETED in the LaunchPad
    check = subprocess.run([sys.executable, "-c", (
        "from fireworks import LaunchPad; lp=LaunchPad.from_file(%r); "
        "print(lp.get_wf_summary_dict(%d)['state'])") % (str(lp), wf["workflow_id"])],
        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert check.stdout.strip().endswith("COMPLETED"), check.stdout + check.stderr
    st = _cli(["status", "example-eos", "--launchpad", str(lp)], env=env, cwd=tmp_path)
    assert st.returncode == 0 and "on FireWorks" in st.stdout and "COMPLETED" in st.stdout, st.stdout + st.stderr
    # no credentials or store config serialized into the Firework specs
    assert "password" not in mm.read_text().lower()


@pytest.mark.parametrize("args,needle", [
    (["run", "/nonexistent/campaign.yaml"], "does not exist"),
    (["query", "--filter", "{not json"], "not valid JSON"),
    (["show", "no-such-document"], "no document"),
    (["submit", str(EXAMPLE)], "LaunchPad"),
])
def test_cli_bad_input_exit_2(mlipflow_home, capsys, args, needle):
    from mlipflow.cli.main import main

    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "fix" in err and "Traceback" not in err


def test_bad_campaign_contents(mlipflow_home, tmp_path, capsys):
    from mlipflow.cli.main import main

    bad = tmp_path / "c.yaml"
    bad.write_text("name: x\nflow: no_such_flow\n")
    assert main(["run", str(bad)]) == 2
    assert "unknown flow" in capsys.readouterr().err
    bad.write_text("name: x\nflow: example_eos\nparameters: {bogus: 1}\n")
    assert main(["run", str(bad)]) == 2
    assert "bogus" in capsys.readouterr().err
    bad.write_text("name: [\n")
    assert main(["run", str(bad)]) == 2


def test_internal_error_exit_1(mlipflow_home, tmp_path):
    # a flow function that crashes is an internal error, not bad input
    mod = tmp_path / "crashing_flow.py"
    mod.write_text("def build(campaign):\n    raise RuntimeError('boom')\n")
    camp = tmp_path / "c.yaml"
    camp.write_text("name: crash\nflow: crashing_flow:build\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    r = _cli(["run", str(camp)], env=env)
    assert r.returncode == 1, r.stdout + r.stderr
