"""Versioned datasets, splits, de-duplication, exporters/importers, and the real consumers:
a ``pacemaker`` fit on an exported pickle and a ``dp --pt train`` on a DeePMD export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from labeling_helpers import cu_cells

from mlipflow.schemas import FrameStatus

THREADS = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
           "DP_INTRA_OP_PARALLELISM_THREADS": "1", "DP_INTER_OP_PARALLELISM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _bin(name: str) -> str:
    import sys

    p = Path(sys.executable).parent / name
    return str(p) if p.exists() else (shutil.which(name) or name)


@pytest.fixture
def emt_frames(mlipflow_home):
    from mlipflow.engines.labelers import get_labeler

    lab = get_labeler("emt")
    frames = lab.label(cu_cells(12))
    return lab, frames


def test_versions_split_dedup_and_parent(emt_frames):
    from mlipflow.engines.repository import build_dataset, list_datasets, load_dataset

    lab, frames = emt_frames
    dup = lab.label([cu_cells(12)[0]])  # same structure again
    doc1 = build_dataset("cu", frames + dup, test_fraction=0.25, seed=3)
    assert doc1.version == 1 and len(doc1.frame_ids) == 12 and doc1.n_duplicates_removed == 1
    assert len(doc1.test_ids) == 3 and set(doc1.train_ids) | set(doc1.test_ids) == set(doc1.frame_ids)
    assert not set(doc1.train_ids) & set(doc1.test_ids)
    same_seed = build_dataset("cu", frames, test_fraction=0.25, seed=3)
    assert same_seed.version == 2 and same_seed.test_ids == doc1.test_ids  # seeded
    other_seed = build_dataset("cu-other", frames, test_fraction=0.25, seed=4)
    assert other_seed.test_ids != doc1.test_ids

    more = lab.label(cu_cells(16, seed=9)[12:])
    child = build_dataset("cu", more, parent="cu:1", test_fraction=0.25)
    assert child.version == 3 and str(child.parent) == "cu:1" and len(child.frame_ids) == 16
    assert set(doc1.test_ids) <= set(child.test_ids) and set(doc1.train_ids) <= set(child.train_ids)

    latest, fr = load_dataset("cu")
    assert latest.version == 3 and [f.frame_id for f in fr] == latest.frame_ids
    v1, _ = load_dataset("cu", 1)
    assert v1.frame_ids == doc1.frame_ids
    assert {d.name: d.version for d in list_datasets()} == {"cu": 3, "cu-other": 1}


def test_composition_split_keeps_formulas_together(emt_frames):
    from mlipflow.engines.repository import build_dataset

    _, frames = emt_frames
    doc = build_dataset("by-comp", frames, split="composition", test_fraction=0.3, seed=0)
    by_id = {f.frame_id: f.formula for f in frames}
    test_f = {by_id[i] for i in doc.test_ids}
    train_f = {by_id[i] for i in doc.train_ids}
    assert test_f and train_f and not test_f & train_f


def test_missing_dataset_and_bad_inputs_are_user_errors(mlipflow_home, emt_frames):
    from mlipflow.engines.repository import build_dataset, load_dataset
    from mlipflow.errors import UserError

    _, frames = emt_frames
    with pytest.raises(UserError):
        load_dataset("nope")
    with pytest.raises(UserError):
        build_dataset("x", frames, split="weird")
    with pytest.raises(UserError, match="reference energy"):
        build_dataset("x", frames, reference_energies={"Cu": -1.0})  # Al missing


def test_pacemaker_export_and_import_roundtrip(emt_frames, tmp_path):
    from mlipflow.engines.dataset_io import export_pacemaker, import_pacemaker

    lab, frames = emt_frames
    refs = lab.reference_energies(["Al", "Cu"])
    path = export_pacemaker(frames, tmp_path / "train.pkl.gz", refs)
    df = pd.read_pickle(path, compression="gzip")
    assert {"ase_atoms", "energy", "forces", "energy_corrected"} <= set(df.columns) and len(df) == 12
    for f, row in zip(frames, df.itertuples()):
        syms = row.ase_atoms.get_chemical_symbols()
        expect = f.energy - sum(refs[s] for s in syms)
        assert row.energy == pytest.approx(f.energy) and row.energy_corrected == pytest.approx(expect)
        assert np.allclose(row.forces, f.forces) and row.forces.shape == (len(syms), 3)
    back = import_pacemaker(path)
    assert [b.energy for b in back] == pytest.approx([f.energy for f in frames])
    assert back[0].metadata["energy_corrected"] == pytest.approx(df.energy_corrected[0])
    # a pickle with only energy_corrected (as some published datasets are)
    df2 = df.drop(columns=["energy"])
    df2.to_pickle(tmp_path / "corr_only.pkl.gz", compression="gzip")
    back2 = import_pacemaker(tmp_path / "corr_only.pkl.gz")
    assert back2[0].energy == pytest.approx(df.energy_corrected[0]) and back2[0].metadata["energy_is_corrected"]


def test_extxyz_roundtrip(emt_frames, tmp_path):
    from mlipflow.engines.dataset_io import export_extxyz, import_files

    _, frames = emt_frames
    path = export_extxyz(frames, tmp_path / "frames.extxyz")
    back = import_files([path])
    assert len(back) == 12 and all(b.status == FrameStatus.ok for b in back)
    for f, b in zip(frames, back):
        assert b.energy == pytest.approx(f.energy) and np.allclose(b.forces, f.forces, atol=1e-6)
        assert np.allclose(b.stress, f.stress, atol=1e-5)


def test_deepmd_export_layout_and_values(emt_frames, tmp_path):
    from mlipflow.engines.dataset_io import deepmd_systems, export_deepmd

    _, frames = emt_frames
    out = export_deepmd(frames, tmp_path / "dp", type_map=["Cu", "Al"])
    systems = deepmd_systems(out)
    assert len(systems) == 4  # 4 distinct species orders/sizes in cu_cells
    n = 0
    for sysdir in systems:
        assert (sysdir / "type_map.raw").read_text().split() == ["Cu", "Al"]
        types = np.loadtxt(sysdir / "type.raw", dtype=int, ndmin=1)
        e = np.load(sysdir / "set.000" / "energy.npy")
        f = np.load(sysdir / "set.000" / "force.npy")
        assert f.shape == (len(e), 3 * len(types))
        assert (sysdir / "set.000" / "virial.npy").exists() and (sysdir / "set.000" / "box.npy").exists()
        n += len(e)
    assert n == 12
    all_e = sorted(float(x) for s in systems for x in np.load(s / "set.000" / "energy.npy"))
    assert all_e == pytest.approx(sorted(f.energy for f in frames))
    from mlipflow.errors import UserError

    with pytest.raises(UserError):
        export_deepmd(frames, tmp_path / "bad", type_map=["Cu"])


@pytest.mark.slow
def test_exported_pickle_is_accepted_by_real_pacemaker(emt_frames, tmp_path):
    """Tiny real fit (6 functions/element, 5 BFGS iterations) on the exported pickle (~50 s)."""
    from mlipflow.engines.dataset_io import export_pacemaker

    lab, frames = emt_frames
    export_pacemaker(frames, tmp_path / "train.pkl.gz", lab.reference_energies(["Al", "Cu"]))
    cfg = {
        "cutoff": 5.0, "seed": 1, "data": {"filename": "train.pkl.gz"},
        "potential": {
            "deltaSplineBins": 0.001, "elements": ["Al", "Cu"],
            "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}},
            "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 5.0, "dcut": 0.01,
                              "NameOfCutoffFunction": "cos"}},
            "functions": {"number_of_functions_per_element": 6,
                          "ALL": {"nradmax_by_orders": [4, 2], "lmax_by_orders": [0, 1]}},
        },
        "fit": {"loss": {"kappa": 0.3, "L1_coeffs": 1e-8, "L2_coeffs": 1e-8}, "optimizer": "BFGS", "maxiter": 5},
        "backend": {"evaluator": "tensorpot", "batch_size": 20, "display_step": 5},
    }
    (tmp_path / "input.yaml").write_text(yaml.safe_dump(cfg))
    res = subprocess.run([_bin("pacemaker"), "input.yaml"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, **THREADS}, timeout=400)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert "12 structures found" in log
    pot = yaml.safe_load((tmp_path / "output_potential.yaml").read_text())
    blocks = [b["speciesblock"] for b in pot["species"]]
    assert "Al" in blocks and "Cu" in blocks
    from pyace import PyACECalculator

    from mlipflow.engines.frames import frame_to_atoms

    atoms = frame_to_atoms(frames[0])
    atoms.calc = PyACECalculator(str(tmp_path / "output_potential.yaml"))
    assert np.isfinite(atoms.get_potential_energy()) and np.all(np.isfinite(atoms.get_forces()))


@pytest.mark.slow
def test_deepmd_export_is_accepted_by_real_dp_train(emt_frames, tmp_path):
    """A few steps of `dp --pt train` (tiny se_e2_a) on the exported systems (~30 s)."""
    from mlipflow.engines.dataset_io import deepmd_systems, export_deepmd

    _, frames = emt_frames
    systems = [str(s) for s in deepmd_systems(export_deepmd(frames, tmp_path / "data", ["Al", "Cu"]))]
    cfg = {
        "model": {"type_map": ["Al", "Cu"],
                  "descriptor": {"type": "se_e2_a", "sel": [40, 40], "rcut_smth": 0.5, "rcut": 4.0,
                                 "neuron": [4, 8], "axis_neuron": 4, "seed": 1},
                  "fitting_net": {"neuron": [8, 8], "seed": 1}},
        "learning_rate": {"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-4, "decay_steps": 5},
        "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1,
                 "start_pref_v": 0, "limit_pref_v": 0},
        "training": {"training_data": {"systems": systems, "batch_size": 1}, "numb_steps": 6, "seed": 1,
                     "disp_file": "lcurve.out", "disp_freq": 3, "save_freq": 6},
    }
    (tmp_path / "input.json").write_text(json.dumps(cfg))
    res = subprocess.run([_bin("dp"), "--pt", "train", "input.json"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, **THREADS}, timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    lc = np.loadtxt(tmp_path / "lcurve.out", ndmin=2)
    assert lc[-1, 0] == 6 and np.all(np.isfinite(lc[:, 1:]))
    assert (tmp_path / "model.ckpt.pt").exists()
