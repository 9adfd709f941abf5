"""Labeling makers run with jobflow (real embedded store) and the `label`/`dataset` CLI.

The VASP makers run atomate2's real StaticMaker/RelaxMaker with ``monkeypatch_vasp`` (no VASP
here: reference inputs are checked and real VASP outputs copied, see test_vasp.py)."""

from __future__ import annotations

import shutil

import pytest
from labeling_helpers import OUT_C2_DIR, cu_cells, olivine


def _run(flow, store):
    from jobflow import run_locally

    return run_locally(flow, store=store, create_folders=False, log=False, ensure_success=True)


def _output(responses, job):
    return responses[job.uuid][1].output


def test_label_sample_build_flow(store, tmp_path):
    from jobflow import Flow
    from pymatgen.io.ase import AseAtomsAdaptor

    from mlipflow.engines.repository import load_dataset
    from mlipflow.makers.labeling import BuildDatasetMaker, EmbeddedAIMDMaker, FrameSamplerMaker, LabelStructuresMaker

    cells = [AseAtomsAdaptor.get_structure(a) for a in cu_cells(4)]
    label = LabelStructuresMaker(labeler="emt").make(cells, metadata={"stage": "init"})
    aimd = EmbeddedAIMDMaker(labeler="emt", temperature=800, steps=20, timestep_fs=2, every=2).make(cells[:2])
    sample = FrameSamplerMaker(k=4, per="trajectory").make(aimd.output)
    build = BuildDatasetMaker(dataset_name="flowset", test_fraction=0.25, reference_labeler="emt").make(
        [label.output, sample.output])
    responses = _run(Flow([label, aimd, sample, build]), store)
    lab_out = _output(responses, label)
    assert lab_out["n_ok"] == 4 and lab_out["labeler"] == "emt"
    aimd_out = _output(responses, aimd)
    assert aimd_out["n_frames"] == 20 and len(aimd_out["trajectory_ids"]) == 2
    assert _output(responses, sample)["n_frames"] == 8  # 4 of 10 per trajectory
    doc = _output(responses, build)
    assert doc.name == "flowset" and len(doc.frame_ids) == 12 and set(doc.reference_energies) == {"Al", "Cu"}
    stored, frames = load_dataset("flowset")
    assert stored.frame_ids == doc.frame_ids and len(frames) == 12
    # the job outputs are in the real on-disk JobStore
    assert store.query_one({"uuid": build.uuid})["output"]["name"] == "flowset"


def test_sampler_uniform_and_per_composition(mlipflow_home):
    from mlipflow.engines.dataset_io import sample_frames
    from mlipflow.engines.labelers import get_labeler

    lab = get_labeler("emt")
    traj = lab.md(cu_cells(1)[0], temperature=600, steps=41 * 2, timestep_fs=2, every=2)  # 41 frames
    picked = sample_frames(traj, 5, per="trajectory")
    assert [f.step for f in picked] == [2, 22, 42, 62, 82]
    assert len(sample_frames(traj, 100)) == 41
    statics = lab.label(cu_cells(6))
    per_comp = sample_frames(statics + traj, 2, per="composition", method="random", seed=1)
    counts = {}
    for f in per_comp:
        counts[f.formula] = counts.get(f.formula, 0) + 1
    assert set(counts.values()) <= {1, 2} and max(counts.values()) == 2
    assert sample_frames(statics, 2, per="composition", method="random", seed=1) == \
        sample_frames(statics, 2, per="composition", method="random", seed=1)


@pytest.fixture
def mock_vasp(monkeypatch, tmp_path):
    from atomate2.utils.testing.vasp import monkeypatch_vasp

    gen = monkeypatch_vasp(monkeypatch, tmp_path / "vasp_ref")
    yield next(gen)
    try:
        next(gen)
    except StopIteration:
        pass


def test_vasp_makers_flow_yields_frames(store, tmp_path, mock_vasp, monkeypatch):
    from jobflow import Flow
    from labeling_helpers import VASP_REF

    from mlipflow.makers.labeling import VaspRelaxMaker, VaspStaticMaker

    root = tmp_path / "vasp_ref"
    for job in ("nafepo4_ace_static", "nafepo4_ace_relax"):
        shutil.copytree(VASP_REF / job / "inputs", root / job / "inputs")
        shutil.copytree(OUT_C2_DIR, root / job / "outputs")
    mock_vasp({"nafepo4_ace static": "nafepo4_ace_static", "nafepo4_ace relax": "nafepo4_ace_relax"})
    monkeypatch.chdir(tmp_path)
    s = olivine("Na")
    static = VaspStaticMaker(input_set="nafepo4_ace").make(s)
    relax = VaspRelaxMaker(input_set="nafepo4_ace").make(s)
    from jobflow import run_locally

    responses = run_locally(Flow([static, relax]), store=store, create_folders=True, log=False, ensure_success=True)
    out = responses[static.jobs[-1].uuid][1].output
    assert out["n_ok"] == 1 and out["labeler"] == "vasp:nafepo4_ace"
    from mlipflow.engines.repository import load_frames

    (frame,) = load_frames(out["frame_ids"])
    assert frame.energy == pytest.approx(-20.23985977) and frame.labeler_settings["calc_type"] == "static"
    rel = responses[relax.jobs[-1].uuid][1].output
    assert rel["n_frames"] == 1 and rel["trajectory_ids"]


# ----------------------------------------------------------------------------- CLI


def _cli(args):
    from mlipflow.cli.main import main

    return main(args)


def test_cli_label_export_import_show(mlipflow_home, tmp_path, capsys):
    from ase.io import write

    write(tmp_path / "cells.extxyz", cu_cells(6))
    assert _cli(["label", "--labeler", "emt", str(tmp_path / "cells.extxyz"), "--dataset", "cli-set",
                 "--test-fraction", "0.34"]) == 0
    out = capsys.readouterr().out
    assert "6 ok, 0 failed" in out and "cli-set" in out and "version 1" in out
    # the same files again: all from the cache, a new version extending the first (the copies dropped)
    assert _cli(["label", "--labeler", "emt", str(tmp_path / "cells.extxyz"), "--dataset", "cli-set"]) == 0
    out = capsys.readouterr().out
    assert "version 2: 6 frames" in out and "duplicates removed" in " ".join(out.split()).split("version 2")[1]
    assert "0 failed excluded, 6 duplicates" in " ".join(out.split())
    assert _cli(["label", "--labeler", "emt", str(tmp_path / "cells.extxyz"), "--dataset", "cli-new", "--new"]) == 0
    assert "version 1: 6 frames" in capsys.readouterr().out

    assert _cli(["dataset", "export", "cli-set", "--format", "pacemaker", "--out", str(tmp_path / "d.pkl.gz")]) == 0
    assert _cli(["dataset", "export", "cli-set", "--format", "extxyz", "--out", str(tmp_path / "d.extxyz"), "--split", "train"]) == 0
    assert _cli(["dataset", "export", "cli-set", "--format", "deepmd", "--out", str(tmp_path / "dp"), "--type-map", "Al,Cu"]) == 0
    import pandas as pd

    df = pd.read_pickle(tmp_path / "d.pkl.gz", compression="gzip")
    assert len(df) == 6 and (df.energy_corrected != df.energy).all()  # references were computed
    assert (tmp_path / "dp").is_dir() and any((tmp_path / "dp").rglob("type_map.raw"))
    capsys.readouterr()

    assert _cli(["dataset", "import", str(tmp_path / "d.pkl.gz"), str(OUT_C2_DIR / "vasprun.xml"),
                 "--dataset", "imported", "--new"]) == 0
    assert "imported 7 frames" in capsys.readouterr().out
    assert _cli(["dataset", "show"]) == 0
    listing = capsys.readouterr().out
    assert "cli-set" in listing and "imported" in listing
    assert _cli(["dataset", "show", "cli-set", "--plot", str(tmp_path / "cli-set.png")]) == 0
    shown = capsys.readouterr().out
    assert "version 2" in shown and "reference energies" in shown and "pacemaker" in shown
    assert (tmp_path / "cli-set.png").stat().st_size > 10_000


def test_cli_label_aimd_mode(mlipflow_home, tmp_path, capsys):
    from ase.io import write

    write(tmp_path / "cell.extxyz", cu_cells(1))
    assert _cli(["label", "--labeler", "emt", "--mode", "aimd", "--temperature", "700", "--steps", "12",
                 "--timestep", "2", "--every", "4", str(tmp_path / "cell.extxyz"), "--dataset", "md-set"]) == 0
    out = capsys.readouterr().out
    assert "3 ok, 0 failed" in out and "md-set version 1: 3 frames" in out
    # every labeler offers relaxation trajectories (the labeler protocol): EMT through an ASE optimiser
    assert _cli(["label", "--labeler", "emt", "--mode", "relax", str(tmp_path / "cell.extxyz")]) == 0
    assert "0 failed" in capsys.readouterr().out
    assert _cli(["label", "--labeler", "emt", "--mode", "anneal", str(tmp_path / "cell.extxyz")]) == 2


def test_cli_errors_are_one_message(mlipflow_home, tmp_path, capsys):
    assert _cli(["label", "--labeler", "nope", str(tmp_path)]) == 2
    assert _cli(["label", "--labeler", "emt", str(tmp_path / "missing.cif")]) == 2
    assert _cli(["dataset", "show", "no-such-set"]) == 2
    assert _cli(["dataset", "export", "x", "--format", "zip", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "fix:" in err and "Traceback" not in err


def test_cli_label_reports_failed_frames(mlipflow_home, tmp_path, capsys):
    from ase.io import write

    write(tmp_path / "cells.extxyz", cu_cells(2))
    assert _cli(["label", "--labeler", "emt", "--set", "force_threshold=1e-9", str(tmp_path / "cells.extxyz"),
                 "--dataset", "strict", "--references", "none"]) == 0
    out = capsys.readouterr().out
    assert "0 ok, 2 failed" in out and "2 failed excluded" in out
    from mlipflow.engines.repository import load_dataset

    doc, _ = load_dataset("strict")
    assert doc.frame_ids == [] and doc.n_failed_excluded == 2


def test_vasp_aimd_maker_uses_preset_and_serializes():
    from monty.json import MontyDecoder

    from mlipflow.makers.labeling import VaspAIMDMaker

    maker = VaspAIMDMaker(input_set="nafepo4_ace")
    assert maker.every == 20
    flow = maker.make(olivine("Na"))
    md_job, frames_job = flow.jobs
    gen = md_job.maker.input_set_generator if hasattr(md_job, "maker") else md_job.function.__self__.input_set_generator
    assert (gen.start_temp, gen.end_temp, gen.nsteps, gen.time_step) == (5000.0, 5000.0, 100, 2.0)
    back = MontyDecoder().process_decoded(flow.as_dict())  # FireWorks/jobflow round trip
    assert [j.name for j in back.jobs] == [j.name for j in flow.jobs]
    inc = gen.get_input_set(olivine("Na"), potcar_spec=True)["INCAR"]
    assert inc["TEBEG"] == 5000 and inc["NSW"] == 100 and inc["POTIM"] == 2 and inc["MDALGO"] == 2


def test_failed_vasp_job_still_yields_a_failed_frame(store, tmp_path, mock_vasp, monkeypatch):
    """The atomate2 job raises (inputs differ from the references): the frames job still runs."""
    from jobflow import run_locally
    from labeling_helpers import VASP_REF

    from mlipflow.engines.repository import load_frames
    from mlipflow.makers.labeling import VaspStaticMaker

    root = tmp_path / "vasp_ref"
    shutil.copytree(VASP_REF / "nafepo4_ace_static" / "inputs", root / "wrong" / "inputs")
    shutil.copytree(OUT_C2_DIR, root / "wrong" / "outputs")
    mock_vasp({"lixfepo4_dpa static": "wrong"})
    monkeypatch.chdir(tmp_path)
    flow = VaspStaticMaker(input_set="lixfepo4_dpa").make(olivine("Li"))
    responses = run_locally(flow, store=store, create_folders=True, log=False)
    out = responses[flow.jobs[-1].uuid][1].output
    assert out["n_failed"] == 1 and out["n_ok"] == 0
    (frame,) = load_frames(out["frame_ids"])
    assert "failed" in frame.failure_reason and frame.formula == "LiFePO4"


def test_cli_label_the_output_of_generate(mlipflow_home, tmp_path, capsys):
    """`mlipflow label OUTDIR/*` and `mlipflow label OUTDIR` on what `mlipflow generate amorphous`
    wrote: its summary.json/summary.csv are skipped, every structure is labelled."""
    out = tmp_path / "cells"
    assert _cli(["generate", "amorphous", "--units", "Cu,Al", "--step", "0.5", "--atoms", "8", "--scales", "1.0",
                 "--density", "5.0", "--min-distance", "1.8", "--out", str(out)]) == 0
    files = sorted(out.iterdir())
    assert {"summary.json", "summary.csv"} <= {f.name for f in files}
    capsys.readouterr()
    assert _cli(["label", "--labeler", "lj", *map(str, files)]) == 0
    text = capsys.readouterr().out
    assert "skipping 2 file(s)" in text and "3 ok, 0 failed" in text
    assert _cli(["label", "--labeler", "lj", str(out)]) == 0
    assert "3 ok, 0 failed" in capsys.readouterr().out


def test_cli_label_formats_and_globs(mlipflow_home, tmp_path, capsys):
    """Files as users give them: a quoted glob (expanded by mlipflow), POSCAR, CIF, and a format only
    ASE reads (.cfg); a pattern that matches nothing is refused with exit 2."""
    from ase.io import write

    cells = cu_cells(3)
    d = tmp_path / "in"
    d.mkdir()
    write(d / "POSCAR_a.vasp", cells[0], format="vasp")
    write(d / "b.cif", cells[1])
    write(d / "c.cfg", cells[2], format="cfg")
    assert _cli(["label", "--labeler", "emt", str(d / "*")]) == 0
    out = capsys.readouterr().out
    assert "3 ok, 0 failed" in out and "c.cfg:0" in out
    assert _cli(["label", "--labeler", "emt", str(tmp_path / "none-*.xyz")]) == 2
    assert "no file matches" in capsys.readouterr().err
