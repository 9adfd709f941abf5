"""DPFitMaker: an ensemble of two through jobflow's run_locally into the real on-disk store -> one
PotentialDoc whose files come back through materialize(ref) as a working calculator with
uncertainty; reuse without new labels; warm-start fine-tuning; the CLI `potential fit` (cache
hits) writing the members' models; a failed member keeping its lcurve and log in the store."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from jobflow import Flow, run_locally

from .conftest import emt_atoms
from .test_training import FAKE_DP


def _dataset(name="cual", n=20, seed=3, parent=None):
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.engines.repository import build_dataset

    frames = get_labeler("emt").label(emt_atoms(n, seed))
    return build_dataset(name, frames, test_fraction=0.25, seed=0, parent=parent)


@pytest.mark.slow
def test_dp_fit_maker_ensemble_through_the_store(store, tmp_path):
    from mlipflow.cli.main import main
    from mlipflow.engines.deepmd import DPSettings, model_deviation
    from mlipflow.engines.potentials import calculator, materialize
    from mlipflow.makers.deepmd import DPFitMaker
    from mlipflow.workers import assign_needs, need_of

    ds = _dataset()
    settings = DPSettings.tiny(numb_steps=20)
    maker = DPFitMaker(settings=settings, ensemble=2, seed=0)
    flow = maker.make(ds)
    assert isinstance(flow, Flow) and len(flow.jobs) == 3
    assert [need_of(j) for j in flow.jobs] == ["gpu", "gpu", "light"]
    assign_needs(flow, {"gpu": "gpu-node", "light": "light-node"})
    assert flow.jobs[0].config.manager_config["_category"] == "gpu-node"
    responses = run_locally(flow, store=store, create_folders=True, root_dir=tmp_path / "jobs", ensure_success=True)
    gather = flow.jobs[-1]
    doc = responses[gather.uuid][1].output
    assert doc.kind == "dp" and doc.ref.kind == "dp" and doc.ref.uuid == gather.uuid and doc.ref.input_hash
    assert {"model", "model_1", "checkpoint", "checkpoint_1", "lcurve", "lcurve_1", "input"} <= set(doc.roles)
    assert doc.dataset.name == "cual" and doc.dataset.version == ds.version and doc.elements == ["Al", "Cu"]
    assert doc.test_metrics.n_structures == len(ds.test_ids) and doc.train_metrics.n_structures == len(ds.train_ids)
    assert doc.fit_settings["training"]["numb_steps"] == 20 and doc.cutoff == pytest.approx(4.5)
    assert doc.warm_start_test_metrics is None and doc.reused_from is None
    members = [responses[j.uuid][1].output for j in flow.jobs[:2]]
    assert [m.seed for m in members] == [0, 1] and all(m.status == "ok" for m in members)
    assert members[0].test_metrics == doc.test_metrics
    # stored: files in the blob store, back through materialize(ref) by the gather job's uuid
    raw = store.query_one({"uuid": gather.uuid}, load=False)["output"]["files"]
    assert "blob_uuid" in raw
    pot = materialize(doc.ref)
    names = {p.name for p in pot.files.values()}
    assert {"model.pth", "model_1.pth", "checkpoint.pt", "checkpoint_1.pt", "lcurve.out", "lcurve_1.out"} <= names
    assert pot.path("model").read_bytes() == Path(members[0].model).read_bytes()
    at = emt_atoms(1, 99)[0]
    at.calc = calculator(doc.ref, uncertainty=True)
    assert np.isfinite(at.get_potential_energy())
    u = pot.uncertainty_of(at)
    dev = model_deviation([pot.path("model"), pot.path("model_1")], [at]).max_devi_f[0]
    assert u > 0 and u == pytest.approx(dev, rel=1e-6)

    # no new labels: the warm-start potential comes back unchanged, nothing trains
    again = maker.make(ds, warm_start=doc.ref)
    r2 = run_locally(again, store=store, create_folders=True, root_dir=tmp_path / "jobs2", ensure_success=True)
    kept = r2[again.jobs[-1].uuid][1].output
    assert kept.reused_from == doc.ref and kept.ref == doc.ref and kept.input_hash == doc.input_hash
    assert all(r2[j.uuid][1].output.status == "skipped" for j in again.jobs[:2])

    # new labels: one member fine-tunes from the warm start's checkpoint (--finetune)
    ds2 = _dataset(n=8, seed=4, parent=f"cual:{ds.version}")
    ft = DPFitMaker(settings=DPSettings.tiny(numb_steps=5), ensemble=1).make(ds2, warm_start=doc.ref)
    r3 = run_locally(ft, store=store, create_folders=True, root_dir=tmp_path / "jobs3", ensure_success=True)
    new = r3[ft.jobs[-1].uuid][1].output
    member = r3[ft.jobs[0].uuid][1].output
    assert new.warm_start_from == doc.ref and new.dataset.version == ds2.version and new.reused_from is None
    assert member.finetune.endswith("checkpoint.pt") and "--finetune" in Path(member.log_path).read_text()
    assert new.warm_start_test_metrics is not None
    assert new.warm_start_test_metrics.n_structures == len(ds2.test_ids) == new.test_metrics.n_structures

    # the CLI with the same settings: both members come from the cache; --out writes the models
    out = tmp_path / "out"
    rc = main(["potential", "fit", f"cual:{ds.version}", "--kind", "dp", "--preset", "tiny", "--steps", "20",
               "--ensemble", "2", "--out", str(out), "--workdir", str(tmp_path / "cli"), "--no-progress"])
    assert rc == 0
    assert (out / "model.pth").read_bytes() == pot.path("model").read_bytes()
    assert (out / "model_1.pth").read_bytes() == pot.path("model_1").read_bytes()
    assert (out / "checkpoint.pt").is_file() and (out / "potential.json").is_file()
    assert main(["potential", "fit", "nope:3", "--kind", "dp"]) == 2
    assert main(["potential", "fit", f"cual:{ds.version}", "--kind", "dp", "--finetune", str(out / "model.pth")]) == 2
    assert main(["potential", "fit", f"cual:{ds.version}", "--kind", "xyz"]) == 2


def test_failed_member_keeps_lcurve_and_log_in_the_store(store, tmp_path, monkeypatch):
    """A member whose `dp train` dies: its stored output has status 'failed', the lcurve and the log
    (parsed and as files); the gather job fails with a message naming the member and the cause."""
    from mlipflow.engines.deepmd import DPSettings
    from mlipflow.makers.deepmd import DPFitMaker
    from mlipflow.settings import get_settings

    fake = tmp_path / "fake_dp.py"
    fake.write_text(FAKE_DP)
    monkeypatch.setenv("MLIPFLOW_EXECUTABLES__DP_CMD", f"{sys.executable} {fake}")
    get_settings.cache_clear()
    ds = _dataset("bad", n=6)
    flow = DPFitMaker(settings=DPSettings.tiny(), ensemble=1).make(ds)
    responses = run_locally(flow, store=store, create_folders=True, root_dir=tmp_path / "jobs", ensure_success=False)
    assert flow.jobs[-1].uuid not in responses  # the gather job failed
    out = store.query_one({"uuid": flow.jobs[0].uuid}, load=True)["output"]
    assert out["status"] == "failed" and "out of memory" in out["error"]
    assert out["lcurve"]["rmse_trn"] == [30.0, 12.0, 6.0] and "CUDA out of memory" in out["log_tail"]
    assert "lcurve.out" in out["files"] and "train.log" in out["files"]
    from mlipflow.errors import UserError

    with pytest.raises(UserError, match="failed for 1 of 1 ensemble members: member 0 .*out of memory"):
        run_locally(flow, store=store, root_dir=tmp_path / "jobs2", raise_immediately=True)


def test_maker_bad_inputs(store):
    from mlipflow.engines.deepmd import DPSettings
    from mlipflow.errors import UserError
    from mlipflow.makers.deepmd import DPFitMaker

    with pytest.raises(UserError, match="ensemble must be at least 1"):
        DPFitMaker(ensemble=0).make({"name": "x", "version": 1})
    with pytest.raises(UserError, match=r"frozen model \(\.pth\)"):
        DPFitMaker(finetune="base.pth").make({"name": "x", "version": 1})
    ds = _dataset("allfailed", n=2)
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.engines.repository import build_dataset

    failed = get_labeler("emt", force_threshold=1e-9).label(emt_atoms(2, 8))  # every frame fails the threshold
    empty = build_dataset("empty", failed)
    flow = DPFitMaker(settings=DPSettings.tiny(), ensemble=1).make(empty)
    with pytest.raises(UserError, match="has no usable training frames"):
        run_locally(flow, store=store, raise_immediately=True)
    assert ds.version == 1
