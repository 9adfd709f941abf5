"""`mlipflow analyze polarons` / `rate-arrhenius` (JSON keys, plots, exit codes and messages for bad input)
and the jobflow makers on an MD run document, with the real on-disk store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlipflow.analysis import polarons as pol
from mlipflow.analysis.io import Frame, write_lammps_dump
from mlipflow.cli.main import main
from mlipflow.errors import UserError

from .synth import TYPE_MAP, TYPES, Olivine, insert_times, markov_states

DT, DUMP = 0.01, 5  # ps between frames, MD steps between frames (2 fs steps)


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    d = tmp_path_factory.mktemp("polaron_dumps")
    ol = Olivine((1, 2, 2), x=0.75, seed=4)
    rng = np.random.default_rng(8)
    st = markov_states(400, ol.n_fe, DT, 1.0, rng)
    frames = list(ol.frames(st, noise=0.03, dump_every=DUMP))
    path = d / "run.dump"
    write_lammps_dump(path, frames, columns=("id", "type", "x", "y", "z"), type_of=TYPES)
    timed = d / "timed.dump"
    write_lammps_dump(timed, frames[:50], columns=("id", "type", "x", "y", "z"), type_of=TYPES)
    insert_times(timed, DT, DUMP)
    no_fe = d / "no_fe.dump"
    keep = ol.symbols != "Fe"
    write_lammps_dump(no_fe, [Frame(positions=f.positions[keep], cell=f.cell, symbols=f.symbols[keep], step=f.step)
                              for f in frames[:20]], columns=("id", "type", "x", "y", "z"), type_of=TYPES)
    scaled = d / "scaled.dump"  # not an olivine cell: Li sites cannot be derived
    write_lammps_dump(scaled, [Frame(positions=f.positions * 1.2, cell=f.cell * 1.2, symbols=f.symbols, step=f.step)
                               for f in frames[:20]], columns=("id", "type", "x", "y", "z"), type_of=TYPES)
    return {"run": path, "timed": timed, "no_fe": no_fe, "scaled": scaled, "states": st, "ol": ol}


def _one_error(err: str) -> None:
    assert err.count("error:") == 1 and err.count("fix:") == 1 and "Traceback" not in err, err


def test_cli_polarons_json_keys_and_plots(dumps, tmp_path, capsys):
    out = tmp_path / "p.json"
    rc = main(["analyze", "polarons", str(dumps["run"]), "--timestep-ps", str(DT), "--temperature", "600",
               "--types", TYPE_MAP, "--axis", "y", "--discard-fraction", "0.1", "--json", str(out),
               "--plot", str(tmp_path / "plots")])
    assert rc == 0, capsys.readouterr()
    r = json.loads(out.read_text())
    for k in ("n_frames", "n_fe", "n_li", "duration_ps", "gmm", "fe3_fraction", "n_flips", "flip_rate_per_fe_per_ps",
              "n_li_hops", "li_hop_rate_per_li_per_ps", "pairs", "layers"):
        assert k in r, k
    assert set(r["gmm"]) >= {"means_A", "sigmas_A", "weights", "boundary_A", "bayes_error"}
    assert len(r["gmm"]["means_A"]) == 2 and r["gmm"]["means_A"][0] < r["gmm"]["means_A"][1]
    assert set(r["pairs"]["preference_ratio"]) == set(pol.PR_KEYS)
    assert set(r["layers"]) >= {"axis", "centers_A", "fe3_fraction", "flip_rate_per_fe_per_ps"}
    assert r["n_frames"] == 360 and r["n_frames_discarded"] == 40 and r["n_fe"] == 16 and r["n_li"] == 12
    assert r["duration_ps"] == pytest.approx(359 * DT) and r["temperature_K"] == 600
    assert r["step_interval"] == DUMP and r["md_timestep_fs_implied"] == pytest.approx(2.0)
    assert r["n_li_hops"] == 0 and r["li_hop_rate_per_li_per_ps"] == 0.0
    _, planted = pol.valence_states(np.where(dumps["states"][40:] == 3, 0.0, 1.0), 0.5, 8)
    assert r["n_flips"] == pytest.approx(len(planted["frame"]), abs=3)
    for name in ("bond_histogram", "pair_maps", "layer_profiles", "valence_time", "li_fe_rdf"):
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 5000
        assert r["plots"][name].endswith(f"{name}.png")
    text = capsys.readouterr().out
    assert "Bayes error" in text and "Fe flips" in text


def test_cli_rate_arrhenius(tmp_path, capsys):
    """Three runs (array level, known Arrhenius rates) -> JSON files -> `rate-arrhenius`."""
    ol = Olivine((2, 2, 2))
    rng = np.random.default_rng(9)
    files = []
    for T, lab in ((300.0, "x-ordered"), (350.0, "x-ordered"), (400.0, "random")):
        k = 5.0 * np.exp(-0.1 / (8.617333262e-5 * T))
        st = markov_states(3000, ol.n_fe, DT, k, rng)
        bonds = (np.where(st == 3, 2.08, 2.16) + rng.normal(scale=0.02, size=st.shape)).astype(np.float32)
        res = pol.polaron_statistics(bonds, DT, fe_positions=ol.pos[ol.fe], cell=ol.cell, temperature_K=T, label=lab)
        files.append(tmp_path / f"r{T:.0f}.json")
        files[-1].write_text(json.dumps(res.results))
    out = tmp_path / "arr.json"
    rc = main(["analyze", "rate-arrhenius", *map(str, files), "--rate", "flip", "--json", str(out),
               "--plot", str(tmp_path / "ap")])
    assert rc == 0, capsys.readouterr()
    a = json.loads(out.read_text())
    assert set(a) >= {"A_per_ps", "Ea_eV", "Ea_sigma_eV", "n_points"} and a["n_points"] == 3
    assert abs(a["Ea_eV"] - 0.1) < 4 * a["Ea_sigma_eV"] and a["A_per_ps"] > 0
    assert "Ea_eV" in a["by_label"]["x-ordered"] and "Ea_eV" not in a["by_label"]["random"]
    for name in ("arrhenius_flip", "rate_by_label_flip", "bond_histograms", "bayes_error"):
        assert (tmp_path / "ap" / f"{name}.png").stat().st_size > 5000
    # the flip rate of chosen layers only (e.g. the interfacial ones)
    assert main(["analyze", "rate-arrhenius", *map(str, files), "--layers", "0,1", "--json", str(out)]) == 0
    a2 = json.loads(out.read_text())
    r0 = json.loads(files[0].read_text())
    lay = r0["layers"]
    want = (lay["n_flips"][0] + lay["n_flips"][1]) / ((lay["n_fe"][0] + lay["n_fe"][1]) * r0["duration_ps"])
    assert a2["layers"] == [0, 1] and a2["points"][0]["rate"] == pytest.approx(want)
    assert main(["analyze", "rate-arrhenius", *map(str, files), "--layers", "0,99"]) == 2
    capsys.readouterr()
    # one temperature only: a clear message, exit 2
    rc = main(["analyze", "rate-arrhenius", str(files[0]), str(files[0]), "--json", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    _one_error(err)
    assert "two or more temperatures" in err
    # hops: there are no Li in these results
    assert main(["analyze", "rate-arrhenius", *map(str, files), "--rate", "hop"]) == 2
    _one_error(capsys.readouterr().err)


@pytest.mark.parametrize("case, args, message", [
    ("no_fe", ["--timestep-ps", "0.01"], "no Fe atoms"),
    ("run", ["--timestep-ps", "0.01", "--types", "1=Li,2=Fe,3=P,4=Na"], "no O atoms"),
    ("run", [], "time between frames is unknown"),
    ("timed", ["--timestep-ps", "0.02"], "disagrees with the file"),
    ("run", ["--timestep-ps", "10"], "minimum state duration"),
    ("run", ["--timestep-ps", "0.01", "--types", "1=Li,2=Fe,3=O,4=P"], "fewer than 6 O within 3.0"),
    ("run", ["--timestep-ps", "0.01", "--fe-o-cutoff", "1.9"], "fewer than 6 O within 1.9"),
    ("run", ["--timestep-ps", "0.01", "--discard-fraction", "1.5"], "discard fraction"),
    ("scaled", ["--timestep-ps", "0.01"], "cannot derive olivine Li sites"),
])
def test_cli_polarons_bad_input_one_message_exit_2(dumps, capsys, case, args, message):
    argv = ["analyze", "polarons", str(dumps[case])] + args
    if "--types" not in args:
        argv += ["--types", TYPE_MAP]
    assert main(argv) == 2
    err = capsys.readouterr().err
    _one_error(err)
    assert message in " ".join(err.split()), err


def test_no_li_hops_without_li_sites(dumps, tmp_path):
    out = tmp_path / "s.json"
    assert main(["analyze", "polarons", str(dumps["scaled"]), "--timestep-ps", "0.01", "--types", TYPE_MAP,
                 "--no-li-hops", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["n_li"] == 12 and r["li_hop_rate_per_li_per_ps"] is None and r["li_fe_rdf"]["n_frames"] == 20


def test_timed_dump_gives_its_own_timestep(dumps):
    res = pol.analyze_polarons(dumps["timed"], None, types=TYPE_MAP).results
    assert res["timestep_ps"] == pytest.approx(DT) and res["file_frame_interval_ps"] == pytest.approx(DT)


def test_maker_on_md_run_document(dumps, store, tmp_path):
    from jobflow import Flow, run_locally

    from mlipflow.makers.analysis_polarons import PolaronAnalysisMaker, PolaronArrheniusMaker, md_frame_interval_ps
    from mlipflow.schemas import AnalysisDoc, MDProtocol, MDRunDoc, MDStage

    def run_doc(T, every=DUMP):
        return MDRunDoc(protocol=MDProtocol(timestep_fs=2.0, dump_every=every, stages=[MDStage(steps=2000, t_start=T)]),
                        engine="lammps", input_hash=f"run-{T:.0f}", label="random",
                        trajectory_path=str(dumps["run"]))

    j1 = PolaronAnalysisMaker(types=TYPE_MAP, plot_dir=str(tmp_path / "p1")).make(run_doc(700.0))
    j2 = PolaronAnalysisMaker(types=TYPE_MAP, temperature_K=800.0, timestep_ps=DT, plots=False).make(str(dumps["run"]))
    j3 = PolaronArrheniusMaker(plot_dir=str(tmp_path / "p3")).make([j1.output, j2.output])
    resp = run_locally(Flow([j1, j2, j3]), store=store, create_folders=True, root_dir=tmp_path)
    doc = AnalysisDoc.model_validate(resp[j1.uuid][1].output)
    assert doc.kind == "polarons" and doc.source == "run-700"
    r = doc.results
    assert r["temperature_K"] == 700.0 and r["timestep_ps"] == pytest.approx(0.01) and r["label"] == "random"
    assert set(r["pairs"]["preference_ratio"]) == set(pol.PR_KEYS) and r["n_fe"] == 16
    assert set(doc.plots) >= {"bond_histogram", "pair_maps", "layer_profiles", "valence_time", "li_fe_rdf"}
    doc2 = AnalysisDoc.model_validate(resp[j2.uuid][1].output)
    assert doc2.results["n_flips"] == r["n_flips"] and doc2.results["temperature_K"] == 800.0
    arr = AnalysisDoc.model_validate(resp[j3.uuid][1].output)
    assert arr.kind == "polaron-arrhenius" and arr.results["n_points"] == 2
    assert arr.results["Ea_eV"] == pytest.approx(0.0, abs=1e-9)  # same trajectory at two temperatures
    assert store.query_one({"output.kind": "polarons"}, load=True) is not None
    # the protocol says frames every 10 steps, the file has them every 5: inconsistent
    from mlipflow.makers.analysis_structure import source_frames

    factory, _ = source_frames(run_doc(700.0, every=10).model_dump(), types=TYPE_MAP)
    with pytest.raises(UserError, match="5 MD steps apart"):
        md_frame_interval_ps(run_doc(700.0, every=10).model_dump(), factory)
