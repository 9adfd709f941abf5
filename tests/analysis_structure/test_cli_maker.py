"""`mlipflow analyze structure` (exit codes, JSON keys, plots) and StructureAnalysisMaker with a real store."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest

from mlipflow.analysis.io import Frame, write_lammps_dump

from .conftest import quartz


def _olivine_dump(path, n_frames=2):
    """LiFePO4 olivine (generator of this package) as a LAMMPS dump with types only."""
    from mlipflow.generation.olivine import olivine_unit_cell

    frames = []
    s = olivine_unit_cell() * (2, 2, 2)
    rng = np.random.default_rng(0)
    for k in range(n_frames):
        fr = Frame.from_atoms(s, step=k * 10)
        fr.positions = fr.positions + rng.normal(0, 0.03, fr.positions.shape)
        frames.append(fr)
    write_lammps_dump(path, frames, columns=("id", "type", "x", "y", "z"),
                      type_of={"Li": 1, "Fe": 2, "P": 3, "O": 4})
    return path


def test_cli_structure_json_keys_and_plots(tmp_path, mlipflow_home):
    from mlipflow.cli.main import main

    dump = _olivine_dump(tmp_path / "olivine.dump")
    out = tmp_path / "res.json"
    plots = tmp_path / "plots"
    rc = main(["analyze", "structure", str(dump), "--types", "1=Li,2=Fe,3=P,4=O", "--cutoff", "Fe-O=2.6",
               "--ring-formers", "P,Fe", "--json", str(out), "--plots", str(plots)])
    assert rc == 0
    res = json.loads(out.read_text())
    for key in ("density_g_cm3", "coordination", "bridging", "qn", "rings", "angles", "oxygen", "n_frames"):
        assert key in res
    assert res["n_frames"] == 2
    fe = res["coordination"]["Fe-O"]
    assert fe["cutoff"] == 2.6 and fe["cutoff_source"] == "explicit" and fe["mean"] == 6.0
    assert fe["distribution"] == {"6": 1.0}
    po = res["coordination"]["P-O"]
    assert po["cutoff_source"] == "first_min" and 1.6 < po["cutoff"] < 2.4 and po["mean"] == 4.0
    # isolated PO4: no P-O-P, Q0 only; counts are consistent: N_P * (P-O-Fe) = N_Fe * (Fe-O-P)
    assert res["bridging"]["P-O-P"] == 0.0 and res["qn"]["P"]["Q0"] == 1.0
    comp = res["composition"]
    assert comp["P"] * res["bridging"]["P-O-Fe"] == pytest.approx(comp["Fe"] * res["bridging"]["Fe-O-P"])
    assert res["density_g_cm3"] == pytest.approx(3.6, abs=0.1)  # LiFePO4 ~3.6 g/cm3
    assert "O-P-O" in res["angles"] and abs(res["angles"]["O-P-O"]["mean"] - 109.4) < 1.0
    assert res["rings"]["formers"] == ["P", "Fe"]
    for name in ("rdf", "sq", "angles", "cn"):
        assert (plots / f"{name}.png").stat().st_size > 1000


def test_cli_quartz_rings_extxyz(tmp_path, mlipflow_home):
    from pymatgen.io.ase import AseAtomsAdaptor

    from mlipflow.cli.main import main

    atoms = AseAtomsAdaptor.get_atoms(quartz() * (2, 2, 2))
    atoms.rattle(0.02, seed=0)
    p = tmp_path / "q.xyz"
    ase.io.write(p, atoms)
    out = tmp_path / "q.json"
    assert main(["analyze", "structure", str(p), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["coordination"]["Si-O"]["mean"] == 4.0
    assert res["bridging"]["Si-O-Si"] == 4.0
    assert set(res["rings"]["counts"]) == {"6"}


@pytest.mark.parametrize("extra", [
    ["--types", "1=Xx,2=Fe,3=P,4=O"],
    ["--types", "nonsense"],
    ["--format", "no-such-format"],
    ["--cutoff", "Fe-O"],
    ["--cutoff", "Fe-Q=2"],
    [],  # a dump with types only and no --types
])
def test_cli_bad_input_exits_2(tmp_path, mlipflow_home, extra):
    from mlipflow.cli.main import main

    dump = _olivine_dump(tmp_path / "olivine.dump", n_frames=1)
    assert main(["analyze", "structure", str(dump), *extra]) == 2


def test_cli_missing_file_exits_2(tmp_path, mlipflow_home):
    from mlipflow.cli.main import main

    assert main(["analyze", "structure", str(tmp_path / "nope.dump")]) == 2


def test_structure_maker_file_and_md_run_blob(store, tmp_path, monkeypatch):
    """The maker on a file and on an MD-run document carrying a trajectory blob (format of engines.ase_md)."""
    from jobflow import Flow, run_locally

    from mlipflow.engines.ase_md import frames_to_dict
    from mlipflow.makers.analysis_structure import StructureAnalysisMaker

    monkeypatch.chdir(tmp_path)
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(quartz() * (2, 2, 2))
    p = tmp_path / "q.xyz"
    ase.io.write(p, atoms)
    run_doc = {"protocol": {"name": "md"}, "engine": "ase", "input_hash": "abc123",
               "trajectory": frames_to_dict([atoms, atoms])}
    maker = StructureAnalysisMaker(cutoffs={"Si-O": 2.0}, plot_dir=str(tmp_path / "plots"))
    j1 = maker.make(str(p))
    j2 = maker.make(run_doc)
    run_locally(Flow([j1, j2]), store=store, log=False)
    d1 = store.query_one({"uuid": j1.uuid}, load=True)["output"]
    d2 = store.query_one({"uuid": j2.uuid}, load=True)["output"]
    for d, nf in ((d1, 1), (d2, 2)):
        assert d["kind"] == "structure"
        r = d["results"]
        assert r["n_frames"] == nf
        assert r["coordination"]["Si-O"] == {**r["coordination"]["Si-O"], "cutoff": 2.0, "mean": 4.0}
        assert set(r["rings"]["counts"]) == {"6"}
        assert len(r["rdf"]["r"]) == len(r["rdf"]["g_total"]) and "neutron" in r["sq"]
        assert set(d["plots"]) >= {"rdf", "sq", "angles", "cn", "rings"}
    assert d2["source"] == "abc123"
    assert d1["results"]["density_g_cm3"] == pytest.approx(d2["results"]["density_g_cm3"])
