"""`mlipflow analyze diffusion|arrhenius|tg|elastic` (exit codes, JSON keys, plots) and the jobflow
makers run with run_locally against the real on-disk store fixture."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlipflow.analysis import dynamics as dyn
from mlipflow.analysis.io import Frame, write_lammps_dump
from mlipflow.cli.main import main

from .test_msd import brownian

D_NA, D_O = 1.5, 0.05  # Å²/ps
DT_FS, DUMP = 2.0, 25  # frames every 50 fs


@pytest.fixture(scope="module")
def walk_dump(tmp_path_factory):
    """A wrapped LAMMPS dump (x y z + image flags) of Brownian Na (fast) and O (slow) atoms."""
    rng = np.random.default_rng(21)
    T, L = 600, 15.0
    dt_ps = DT_FS * DUMP / 1000
    x = np.concatenate([brownian(rng, T, 30, D_NA, dt_ps), brownian(rng, T, 30, D_O, dt_ps)], axis=1)
    cell = np.eye(3) * L
    sym = np.array(["Na"] * 30 + ["O"] * 30)
    frames = []
    for t in range(T):
        img = np.floor(x[t] / L).astype(int)
        frames.append(Frame(positions=x[t] - img * L, cell=cell, symbols=sym, images=img, step=t * DUMP,
                            ids=np.arange(1, 61)))
    path = tmp_path_factory.mktemp("walk") / "walk.dump"
    write_lammps_dump(path, frames, columns=("id", "type", "x", "y", "z", "ix", "iy", "iz"),
                      type_of={"Na": 1, "O": 2})
    return path, x


def test_cli_diffusion_json_and_plots(walk_dump, tmp_path, capsys):
    path, x = walk_dump
    out = tmp_path / "d.json"
    rc = main(["analyze", "diffusion", str(path), "--timestep", str(DT_FS), "--types", "1=Na,2=O",
               "--json", str(out), "--plots", str(tmp_path / "plots"), "--temperature", "900",
               "--van-hove", "1,5", "--fast-slow", "Na"])
    assert rc == 0, capsys.readouterr()
    data = json.loads(out.read_text())
    assert data["frame_interval_ps"] == pytest.approx(0.05)
    assert data["temperature_K"] == 900
    na = data["diffusion"]["Na"]
    assert set(na) >= {"D_cm2_s", "sigma", "window_ps", "D_A2_ps", "n_blocks"}
    assert abs(na["D_A2_ps"] - D_NA) < 3 * na["sigma_A2_ps"]
    assert na["D_cm2_s"] == pytest.approx(na["D_A2_ps"] * 1e-4)
    # same numbers as the library on the exact (unwrapped) arrays
    lib, _ = dyn.diffusion_coefficients(x, ["Na"] * 30 + ["O"] * 30, 0.05)
    assert na["D_A2_ps"] == pytest.approx(lib["Na"].D_A2_ps, rel=1e-6)
    for k in ("msd", "van_hove", "fast_slow"):
        assert (tmp_path / "plots" / f"{k if k != 'fast_slow' else 'fast_slow_rdf'}.png").stat().st_size > 1000
    assert set(data["fast_slow"]["classes"]["fast"]).isdisjoint(data["fast_slow"]["classes"]["slow"])
    text = capsys.readouterr().out
    assert "Na" in text and "±" in text
    # given window and species selection
    rc = main(["analyze", "diffusion", str(path), "--timestep", str(DT_FS), "--types", "1=Na,2=O",
               "--species", "Na", "--window", "0.5,5", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert list(data["diffusion"]) == ["Na"] and data["diffusion"]["Na"]["window_ps"] == [0.5, 5.0]


def test_cli_diffusion_bad_input_exit_2(walk_dump, tmp_path, capsys):
    path, _ = walk_dump
    assert main(["analyze", "diffusion", str(tmp_path / "missing.dump"), "--timestep", "1"]) == 2
    assert main(["analyze", "diffusion", str(path), "--timestep", "1", "--window", "1"]) == 2
    assert main(["analyze", "diffusion", str(path), "--timestep", "-1"]) == 2
    assert main(["analyze", "diffusion", str(path), "--timestep", "1", "--types", "1=Na,2=O", "--species", "Li"]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err


def test_cli_arrhenius_from_csv_and_diffusion_jsons(tmp_path, capsys):
    Ea, D0 = 0.5, 2e-3
    T = np.array([700, 800, 900, 1000, 1100.0])
    D = D0 * np.exp(-Ea / (dyn.KB_EV * T))
    csv = tmp_path / "d.csv"
    csv.write_text("T,D,sigma\n" + "\n".join(f"{t},{d},{0.03 * d}" for t, d in zip(T, D)))
    out = tmp_path / "a.json"
    assert main(["analyze", "arrhenius", str(csv), "--json", str(out), "--plots", str(tmp_path)]) == 0
    res = json.loads(out.read_text())["arrhenius"]
    assert res["Ea_eV"] == pytest.approx(Ea, rel=1e-6) and res["sigma_Ea_eV"] > 0
    assert (tmp_path / "arrhenius_Na.png").exists()
    jsons = []
    for t, d in zip(T, D):
        p = tmp_path / f"diff_{int(t)}.json"
        p.write_text(json.dumps({"temperature_K": t, "diffusion": {"Na": {"D_cm2_s": d, "sigma": 0.05 * d}}}))
        jsons.append(str(p))
    assert main(["analyze", "arrhenius", *jsons, "--species", "Na", "--t-min", "750", "--json", str(out)]) == 0
    res = json.loads(out.read_text())["arrhenius"]
    assert res["n_fit"] == 4 and len(res["below"]) == 1
    assert main(["analyze", "arrhenius", *jsons, "--species", "Li"]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    assert main(["analyze", "arrhenius", str(bad)]) == 2


def test_cli_tg_and_elastic(tmp_path):
    T = np.linspace(1400, 400, 21)
    rho = np.where(T <= 800, 2.6 - 5e-5 * (T - 800), 2.6 - 2e-4 * (T - 800))
    p = tmp_path / "cool.csv"
    p.write_text("T,density\n" + "\n".join(f"{a},{b}" for a, b in zip(T, rho)))
    out = tmp_path / "tg.json"
    assert main(["analyze", "tg", str(p), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["tg"]["Tg"] == pytest.approx(800, abs=1)
    from ase.build import bulk
    from ase.io import write

    s = tmp_path / "Cu.cif"
    write(s, bulk("Cu", "fcc", a=3.59, cubic=True))
    out = tmp_path / "el.json"
    assert main(["analyze", "elastic", str(s), "--calculator", "emt", "--steps", "3", "--json", str(out),
                 "--plots", str(tmp_path)]) == 0
    el = json.loads(out.read_text())["elastic"]
    assert 140 < el["C11"] < 200 and el["poisson_ratio"] == pytest.approx(el["C12"] / (el["C11"] + el["C12"]))
    assert (tmp_path / "stress_strain.png").exists()
    assert main(["analyze", "elastic", str(s), "--calculator", "nonsense"]) == 2
    assert main(["analyze", "elastic", str(s), "--lammps-deck", str(tmp_path / "deck"),
                 "--potential", "pair_style lj/cut 8.5", "--potential", "pair_coeff * * 0.0104 3.4"]) == 0
    assert "change_box all xy delta" in (tmp_path / "deck" / "in.elastic").read_text()


def test_makers_run_locally_into_store(walk_dump, store, tmp_path):
    from jobflow import Flow, run_locally

    from mlipflow.makers.analysis_dynamics import (
        ArrheniusMaker,
        DiffusionAnalysisMaker,
        ElasticMaker,
        GlassTransitionMaker,
    )
    from mlipflow.schemas.md import AnalysisDoc

    path, _ = walk_dump
    j1 = DiffusionAnalysisMaker(timestep_fs=DT_FS, types="1=Na,2=O", temperature_K=800.0,
                                plot_dir=str(tmp_path / "p1")).make(str(path))
    j2 = DiffusionAnalysisMaker(timestep_fs=DT_FS, types="1=Na,2=O", temperature_K=1000.0, every=2,
                                plot_dir=str(tmp_path / "p2")).make(str(path))
    j3 = ArrheniusMaker(species="Na", plot_dir=str(tmp_path / "p3")).make([j1.output, j2.output])
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    al = AseAtomsAdaptor.get_structure(bulk("Al", "fcc", a=4.05, cubic=True))  # jobflow serialises inputs
    j4 = ElasticMaker(steps=2, plot_dir=str(tmp_path / "p4")).make(al)
    T = list(np.linspace(1200, 400, 17))
    j5 = GlassTransitionMaker(plot_dir=str(tmp_path / "p5")).make(
        temperatures=T, values=[2.5 - (1e-4 if t > 700 else 3e-5) * (t - 700) for t in T])
    responses = run_locally(Flow([j1, j2, j3, j4, j5]), store=store, create_folders=True, root_dir=tmp_path)
    docs = {j.name: AnalysisDoc.model_validate(responses[j.uuid][1].output) for j in (j1, j3, j4, j5)}
    d = docs["diffusion analysis"]
    assert d.kind == "diffusion" and d.results["temperature_K"] == 800.0
    assert abs(d.results["diffusion"]["Na"]["D_A2_ps"] - D_NA) < 3 * d.results["diffusion"]["Na"]["sigma_A2_ps"]
    assert d.parameters["frame_interval_ps"] == pytest.approx(0.05)
    assert all(p.endswith(".png") for p in d.plots.values())
    a = docs["arrhenius"].results["arrhenius"]
    assert a["n_fit"] == 2 and np.isfinite(a["Ea_eV"])
    e = docs["elastic"].results["elastic"]
    assert e["C11"] > e["C12"] > 0
    assert docs["glass transition"].results["tg"]["Tg"] == pytest.approx(700, abs=1)
    # stored in the real store
    stored = store.query_one({"output.kind": "diffusion"}, load=True)
    assert stored is not None and stored["output"]["results"]["diffusion"]["Na"]["D_cm2_s"] > 0


def test_diffusion_maker_on_md_run_document(walk_dump, store, tmp_path):
    """An MDRunDoc with a trajectory blob (wrapped positions, no step numbers): the timestep and dump
    interval come from its protocol, the temperature from its last stage, unwrapping from displacements."""
    from jobflow import run_locally

    from mlipflow.makers.analysis_dynamics import DiffusionAnalysisMaker
    from mlipflow.schemas.md import AnalysisDoc, MDProtocol, MDRunDoc, MDStage

    _, x = walk_dump
    L = 15.0
    run = MDRunDoc(protocol=MDProtocol(timestep_fs=DT_FS, dump_every=DUMP, stages=[MDStage(steps=15000, t_start=950.0)]),
                   engine="ase", input_hash="run-1",
                   trajectory={"positions": (x % L).tolist(), "cell": [(np.eye(3) * L).tolist()] * len(x),
                               "numbers": [[11] * 30 + [8] * 30] * len(x)})
    job = DiffusionAnalysisMaker(plots=False).make(run.model_dump())
    resp = run_locally(job, store=store, create_folders=True, root_dir=tmp_path)
    doc = AnalysisDoc.model_validate(resp[job.uuid][1].output)
    assert doc.source == "run-1" and doc.results["temperature_K"] == 950.0
    assert doc.parameters["frame_interval_ps"] == pytest.approx(0.05)
    lib, _ = dyn.diffusion_coefficients(x, ["Na"] * 30 + ["O"] * 30, 0.05)
    assert doc.results["diffusion"]["Na"]["D_A2_ps"] == pytest.approx(lib["Na"].D_A2_ps, rel=1e-6)
