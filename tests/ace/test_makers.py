"""AceFitMaker -> MDMaker (exploration) -> AceSelectMaker as a jobflow flow into the real on-disk store.

The fit reuses the session's tiny fit (same data + settings in the same workdir = cache hit),
so this checks the makers' plumbing, blobs and references rather than refitting."""

from __future__ import annotations

from pathlib import Path

from jobflow import Flow, run_locally

from mlipflow.engines.pacemaker import AceFitSettings
from mlipflow.engines.potentials import materialize
from mlipflow.engines.protocols import melt_quench_protocol
from mlipflow.makers.ace import AceFitMaker, AceSelectMaker, MaxVolSelector
from mlipflow.makers.md import MDMaker


def test_fit_explore_select_flow(store, tiny_fit, emt_data, tmp_path):
    from pymatgen.io.ase import AseAtomsAdaptor

    fit = AceFitMaker(settings=AceFitSettings.tiny(), workdir=tiny_fit.workdir, potential_name="emt").make(
        str(emt_data["train"]), test_pickle=str(emt_data["test"]))
    proto = melt_quench_protocol(t_melt=2000, melt_ps=0.04, cooling_rate_K_per_ps=50_000, t_final=300,
                                 timestep_fs=2, gamma_lo=1.0, gamma_hi=1e6, gamma_every=5,
                                 collect_every_kelvin=500)
    start = AseAtomsAdaptor.get_structure(emt_data["items"][3][0] * (1, 2, 2))
    explores = [MDMaker(protocol=proto.model_copy(update={"seed": s})).make(start.as_dict(), fit.output.ref)
                for s in (1, 2)]
    select = AceSelectMaker(selector=MaxVolSelector(max_structures=3, add_final=True)).make(
        [e.output for e in explores], fit.output.ref)
    flow = Flow([fit, *explores, select])
    responses = run_locally(flow, store=store, create_folders=True, root_dir=tmp_path, ensure_success=True)

    pot = responses[fit.uuid][1].output
    assert pot.input_hash == tiny_fit.input_hash and pot.has_active_set and pot.name == "emt"
    assert pot.ref.uuid == fit.uuid and pot.ref.kind == "ace"
    run_doc = responses[explores[0].uuid][1].output
    assert run_doc.engine == "ase" and run_doc.steps_done == proto.total_steps
    assert run_doc.potential.input_hash == pot.input_hash
    sel = responses[select.uuid][1].output
    n_final = 2
    assert sel["n_candidates"] >= n_final and len(sel["records"]) == sel["n_candidates"]
    assert sel["n_selected"] <= 3 + n_final and len(sel["selected"]) == sel["n_selected"]
    assert sum(r["reason"].startswith("forced") for r in sel["records"]) <= n_final

    # stored: the potential's files went to the blob store and come back on load
    out = store.query_one({"uuid": fit.uuid}, load=True)
    files = out["output"]["files"]
    assert "output_potential.asi.b64" in files and "output_potential.yaml" in files
    raw = store.query_one({"uuid": fit.uuid}, load=False)["output"]["files"]
    assert "blob_uuid" in raw  # a reference, not the content
    a = materialize(pot.ref).path("active_set")  # from the store, by the job's uuid
    assert Path(a).read_bytes() == Path(tiny_fit.active_set).read_bytes()
    traj = store.query_one({"uuid": explores[1].uuid}, load=False)["output"]["trajectory"]
    assert "blob_uuid" in traj


def test_explore_maker_lammps_engine_renders_ace_deck(mlipflow_home, tiny_fit, emt_data, tmp_path):
    """The LAMMPS engine with an ACE potential: the deck is written with the ACE pair style and the
    potential files are copied next to it; this LAMMPS has no ML-PACE, so running ends in the clear
    UserError before anything is written (on a cluster the same call runs)."""
    import pytest

    from mlipflow.engines.lammps import LammpsEngine
    from mlipflow.engines.md import run_md, to_atoms
    from mlipflow.engines.potentials import ref_from_path
    from mlipflow.errors import UserError

    proto = melt_quench_protocol(t_melt=1000, melt_ps=0.01, cooling_rate_K_per_ps=100_000, t_final=500)
    ref = ref_from_path(tiny_fit.potential_yaml)  # the .asi beside it comes along
    with pytest.raises(UserError, match="ML-PACE"):
        MDMaker.make.original(MDMaker(engine="lammps", protocol=proto), emt_data["items"][3][0], ref)
    with pytest.raises(UserError, match="ML-PACE"):
        run_md("lammps", proto, emt_data["items"][3][0], ref, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    LammpsEngine().prepare(proto, to_atoms(emt_data["items"][3][0]), materialize(ref), tmp_path / "deck")
    text = (tmp_path / "deck" / "in.lammps").read_text()
    assert "pair_coeff * * potential.yaml potential.asi Al Cu" in text
    assert (tmp_path / "deck" / "potential.asi").read_bytes() == Path(tiny_fit.active_set).read_bytes()


def test_warm_start_without_new_labels_keeps_the_potential(store, tmp_path, monkeypatch):
    """AceFitMaker given the dataset version its warm-start potential was fitted on: no fit runs
    (pacemaker would fail here) and that potential comes back with ``reused_from`` set."""
    from jobflow import job

    import mlipflow.engines.pacemaker as pm
    from mlipflow.schemas import DatasetRef, PotentialDoc, PotentialRef

    ds = DatasetRef(name="cu-al", version=3)

    @job
    def fitted():
        return PotentialDoc(kind="ace", name="it2", elements=["Al", "Cu"], dataset=ds)

    first = fitted()
    run_locally(Flow([first]), store=store, create_folders=True, root_dir=tmp_path, ensure_success=True)
    monkeypatch.setattr(pm, "fit_ace", lambda *a, **k: (_ for _ in ()).throw(AssertionError("a fit ran")))
    ref = PotentialRef(kind="ace", uuid=first.uuid, name="it2")
    again = AceFitMaker(settings=AceFitSettings.tiny()).make(ds, warm_start=ref)
    out = run_locally(Flow([again]), store=store, create_folders=True, root_dir=tmp_path,
                      ensure_success=True)[again.uuid][1].output
    assert out.reused_from == ref and out.ref == ref and out.name == "it2" and out.dataset == ds
