"""Writers (read back with ASE), makers run with jobflow into a real on-disk store, and the CLI."""

import json

import numpy as np
import pytest
from ase.io import read

from mlipflow.generation import olivine_supercell, random_structure, write_structure


@pytest.fixture(scope="module")
def nfp():
    return random_structure({"Na2O": 1, "FeO": 2, "P2O5": 1}, density=3.38, seed=1)


def test_extxyz_roundtrip(tmp_path, nfp):
    st, info = nfp
    p = write_structure(st, tmp_path / "a.extxyz", info=info)
    atoms = read(p)
    assert np.allclose(atoms.positions, st.cart_coords) and np.allclose(atoms.cell[:], st.lattice.matrix)
    assert atoms.arrays["oxidation_state"].tolist() == st.site_properties["oxidation_state"]
    assert np.allclose(atoms.get_initial_magnetic_moments(), st.site_properties["magmom"])
    assert atoms.info["label"] == info["label"] and abs(atoms.info["density"] - 3.38) < 1e-6


def test_poscar_and_lammps(tmp_path, nfp):
    st, info = nfp
    atoms = read(write_structure(st, tmp_path / "POSCAR", info=info), format="vasp")
    assert atoms.get_chemical_symbols() == [s.specie.symbol for s in st]
    assert np.allclose(atoms.positions, st.cart_coords, atol=1e-6)
    ol, _ = olivine_supercell((1, 1, 1), x=0.5, ordering="y", seed=0)
    for style in ("atomic", "charge"):
        p = write_structure(ol, tmp_path / f"ol_{style}.data", lammps_style=style)
        text = p.read_text()
        assert "Masses" in text and "# Li" in text and "# Fe" in text and f"Atoms # {style}" in text
        back = read(p, format="lammps-data", atom_style=style, units="metal")
        assert len(back) == len(ol) and np.allclose(back.cell.lengths(), ol.lattice.abc)
        if style == "charge":
            q = back.get_initial_charges()
            assert abs(q.sum()) < 1e-9 and sorted(set(np.round(q).astype(int))) == [-2, 1, 2, 3, 5]


def test_amorphous_maker_into_store(store):
    from jobflow import run_locally

    from mlipflow.makers.generation import AmorphousStructuresMaker

    job = AmorphousStructuresMaker(units=["Na2O", "FeO", "P2O5"], step=0.5, atoms=60, scales=[0.9, 1.0],
                                   seed=3).make()
    run_locally(job, store=store, log=False)
    raw = store.docs_store.query_one({"uuid": job.uuid})
    assert "blob_uuid" in raw["output"]["structures"]  # structures went to the blob store
    doc = store.query_one({"uuid": job.uuid}, load=True)["output"]
    assert doc["type"] == "structure_set" and doc["generator"] == "amorphous" and doc["seed"] == 3
    assert len(doc["structures"]) == len(doc["entries"]) == 12
    e = doc["entries"][0]
    for key in ("formula", "label", "scale", "density", "density_source", "natoms"):
        assert key in e
    assert doc["parameters"]["density_sources"]
    from pymatgen.core import Structure

    st = Structure.from_dict(doc["structures"][1])
    assert len(st) == doc["entries"][1]["natoms"] and "oxidation_state" in st.site_properties


def test_olivine_maker(store):
    from jobflow import run_locally

    from mlipflow.makers.generation import OlivineMaker

    job = OlivineMaker(supercell=[1, 2, 2], x=0.5, ordering="x", polarons="near-vacancy", rattle=0.05,
                       n_structures=2, seed=4).make()
    run_locally(job, store=store, log=False)
    doc = store.query_one({"uuid": job.uuid}, load=True)["output"]
    assert doc["generator"] == "olivine" and len(doc["structures"]) == 2
    assert [e["seed"] for e in doc["entries"]] == [4, 5] and doc["entries"][0]["n_fe3"] == 8
    assert doc["entries"][0]["formula"] == "Li8Fe16P16O64"


def test_cli_amorphous_and_olivine(tmp_path, mlipflow_home):
    from mlipflow.cli.main import main

    out = tmp_path / "am"
    rc = main(["generate", "amorphous", "--units", "Na2O,FeO,P2O5", "--step", "0.5", "--atoms", "50",
               "--scales", "0.8,1,1.2", "--seed", "0", "--no-end-members", "--format", "lammps",
               "--lammps-style", "charge", "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary) == 9 and len(list(out.glob("*.data"))) == 9
    assert (out / "summary.csv").read_text().splitlines()[0].startswith("index,file,label")
    f = tmp_path / "ol.extxyz"
    rc = main(["generate", "olivine", "--supercell", "1,2,2", "--x", "0.5", "--ordering", "y", "--polarons",
               "near-vacancy", "--seed", "0", "--rattle", "0.05", "--out", str(f)])
    assert rc == 0 and len(read(f)) == 104
    assert json.loads((tmp_path / "ol.extxyz.json").read_text())["n_fe3"] == 8
    rc = main(["generate", "olivine", "--supercell", "1,4,1", "--interface", "y:0.5", "--out",
               str(tmp_path / "if.vasp")])
    assert rc == 0


@pytest.mark.parametrize("args,needle", [
    (["amorphous", "--units", "NaO,FeO,P2O5"], "'NaO' is not charge-neutral"),
    (["amorphous", "--units", "Na2O,FeO", "--density", "12"], "packing fraction"),
    (["amorphous", "--units", "Na2O,FeO", "--scales", "0.8,x"], "cannot read scales"),
    (["olivine", "--x", "1.5"], "outside [0, 1]"),
])
def test_cli_bad_input_exit_code_2(tmp_path, mlipflow_home, capsys, args, needle):
    from mlipflow.cli.main import main

    rc = main(["generate", *args, "--out", str(tmp_path / "o.extxyz")])
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in " ".join(err.split()) and err.count("error:") == 1 and "fix:" in err
    assert "Traceback" not in err
