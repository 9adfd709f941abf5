"""Potential kinds: one reference type -> files, ASE calculator, LAMMPS pair block, uncertainty."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

BUCK = {"pair_style": "buck/coul/long 6.0",
        "pair_coeff": {"*-*": [0.0, 1.0, 0.0], "Na-O": [1226.84, 0.3065, 0.0], "Fe-O": [1105.24, 0.3106, 0.0],
                       "P-O": [897.26, 0.3577, 0.0], "O-O": [22764.0, 0.149, 27.88]},
        "kspace_style": "pppm 1.0e-5", "charges": {"Na": 0.6, "Fe": 1.2, "P": 3.0, "O": -1.2},
        "source": "test parameters (stand-in; not a published set)"}


def nafepo4_like(seed=0):
    rng = np.random.default_rng(seed)
    syms = (["Na", "Fe", "P"] + ["O"] * 4) * 4
    g, a = 4, 2.6
    sites = np.array([(i, j, k) for i in range(g) for j in range(g) for k in range(g)], float) * a
    rng.shuffle(sites)
    return Atoms(syms, positions=sites[: len(syms)] + rng.normal(0, 0.05, (len(syms), 3)), cell=[g * a] * 3, pbc=True)


def test_registry_lists_kinds_without_importing_them():
    from mlipflow.registry import POTENTIAL_KINDS

    assert POTENTIAL_KINDS.names() == ["ace", "classical", "dp"]


def test_classical_kind_same_energy_in_ase_and_lammps(mlipflow_home, tmp_path):
    """The classical kind's ASE calculator (LAMMPSlib) and its pair block in an lmp deck agree."""
    from mlipflow.engines.lammps import LammpsEngine, parse_thermo, run_lammps
    from mlipflow.engines.md import to_atoms
    from mlipflow.engines.potentials import calculator, materialize
    from mlipflow.schemas import MDProtocol, MDStage, PotentialRef

    ref = PotentialRef(kind="classical", name="buck", parameters=BUCK)
    atoms = nafepo4_like()
    atoms.calc = calculator(ref)
    e_ase = atoms.get_potential_energy()
    pot = materialize(ref)
    assert pot.elements == ["Fe", "Na", "O", "P"]
    block = pot.lammps_pair()
    assert block.atom_style == "charge" and block.packages == ["KSPACE"]
    assert "set type 2 charge 0.6" in block.lines
    kk = pot.lammps_pair(kokkos=True)
    assert "pair_style buck/coul/long/kk 6.0" in kk.lines and "kspace_style pppm/kk 1.0e-5" in kk.lines
    assert kk.packages == ["KSPACE", "KOKKOS"]
    prot = MDProtocol(stages=[MDStage(ensemble="nve", steps=0)], thermo_every=1)
    deck, elements, _ = LammpsEngine().prepare(prot, to_atoms(atoms), pot, tmp_path)
    deck = deck.replace("# final structure", "run 0\n# final structure")
    run_lammps(deck, tmp_path, elements=elements, protocol=prot, progress=False)
    e_lmp = parse_thermo((tmp_path / "log.lammps").read_text())["potential_energy_eV"][0]
    assert e_lmp == pytest.approx(e_ase, rel=1e-4)  # PPPM accuracy 1e-5 (relative) in both, 8-digit thermo


def test_classical_md_runs_in_both_engines(mlipflow_home, tmp_path):
    from mlipflow.engines.md import run_md
    from mlipflow.schemas import MDProtocol, MDStage, PotentialRef

    ref = PotentialRef(kind="classical", name="buck", parameters=BUCK)
    prot = MDProtocol(timestep_fs=1.0, thermostat="bussi", thermo_every=10,
                      stages=[MDStage(ensemble="min", steps=20), MDStage(ensemble="nvt", steps=40, t_start=1000)])
    for engine in ("ase", "lammps"):
        res = run_md(engine, prot, nafepo4_like(), ref, tmp_path / engine, run_id=engine)
        assert not res.terminated and res.steps_done >= 40 and res.engine == engine
        assert np.isfinite(res.thermo["potential_energy_eV"]).all()


def test_uncertainty_without_signal_is_clear_error(mlipflow_home):
    from mlipflow.engines.md import run_md
    from mlipflow.errors import UserError
    from mlipflow.schemas import MDProtocol, MDStage, PotentialRef

    prot = MDProtocol(stages=[MDStage(steps=5)], gamma_lo=2.5, gamma_hi=30)
    with pytest.raises(UserError, match="no uncertainty signal"):
        run_md("ase", prot, nafepo4_like(), PotentialRef(kind="classical", parameters=BUCK))


def test_dp_kind_pair_block_and_errors(tmp_path):
    from mlipflow.engines.kind_dp import DPKind
    from mlipflow.errors import UserError

    files = {"model": tmp_path / "model.pth", "model_1": tmp_path / "model_1.pth"}
    b = DPKind().lammps_pair(files, ["Li", "Fe", "P", "O"], uncertainty=True)
    assert b.lines[1] == "pair_style deepmd model.pth model_1.pth out_freq {every} out_file model_devi.out"
    assert b.packages == ["DEEPMD"] and set(b.files) == {"model.pth", "model_1.pth"}
    with pytest.raises(UserError, match="ensemble"):
        DPKind().require_uncertainty({"model": tmp_path / "model.pth"})


def test_calculator_factory_names(mlipflow_home, tmp_path):
    from ase.calculators.emt import EMT
    from ase.calculators.lj import LennardJones

    from mlipflow.engines.potentials import calculator
    from mlipflow.errors import UserError

    assert isinstance(calculator("emt"), EMT)
    assert isinstance(calculator("lj", sigma=2.0), LennardJones)
    assert isinstance(calculator("ase.calculators.emt:EMT"), EMT)
    with pytest.raises(UserError, match="unknown labeler"):
        calculator("nope")
    with pytest.raises(UserError, match="does not exist"):
        calculator(str(tmp_path / "missing.yaml"))
    (tmp_path / "x.zip").write_text("")
    with pytest.raises(UserError, match="unknown potential type"):
        calculator(tmp_path / "x.zip")



def test_potentials_travel_as_fit_outputs(mlipflow_home):
    """job_input hands a fitted potential on as a reference to its fit's output (resolved with
    the files by the manager); as_doc/materialize use a handed document without any store; a job
    whose own store lacks the potential (jobflow-remote's per-job JSON store) reads mlipflow's."""
    from jobflow import Flow, JobStore, OutputReference, job
    from jobflow.managers.local import run_locally
    from maggma.stores import MemoryStore

    from mlipflow.engines.potentials import as_doc, job_input, load_potential_doc, materialize
    from mlipflow.errors import UserError
    from mlipflow.schemas import PotentialDoc, PotentialRef
    from mlipflow.store import job_store

    fitted = PotentialRef(kind="ace", name="p", input_hash="h-travel", uuid="fit-uuid-1")
    ref = job_input(fitted)
    assert isinstance(ref, OutputReference) and ref.uuid == "fit-uuid-1"
    on_disk = PotentialRef(kind="ace", name="q", paths={"model": "/x/q.yaml"})
    assert job_input(on_disk) is on_disk and job_input(None) is None and job_input(ref) is ref

    doc = PotentialDoc(kind="ace", name="p", input_hash="h-travel", ref=fitted, roles={"model": "p.yaml"},
                       files={"p.yaml": "elements: [Cu]\n"})
    assert as_doc(doc) is doc and as_doc(doc.model_dump()).files == doc.files
    mat = materialize(doc.model_dump())  # nothing stored anywhere: the files come with the document
    assert mat.path("model").read_text() == "elements: [Cu]\n"
    with pytest.raises(UserError, match="not in the store"):
        load_potential_doc(PotentialRef(kind="ace", uuid="no-such-fit"))

    # stored in mlipflow's store only; read from inside a job that runs with another store
    store = job_store()
    store.connect()
    store.update({"uuid": "fit-uuid-1", "index": 1, "output": doc.model_dump(mode="json") | {"type": "potential"}},
                 key=["uuid", "index"])

    @job
    def read(r):
        return load_potential_doc(PotentialRef.coerce(r)).files

    j = read(fitted)
    other = JobStore(MemoryStore("other"), additional_stores={"data": MemoryStore("other_blobs")})
    out = run_locally(Flow([j]), store=other, log=False)
    assert out[j.uuid][1].output == doc.files
