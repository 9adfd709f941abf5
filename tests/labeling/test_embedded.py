"""Embedded labelers for real: CHGNet (weights ship in its wheel) and ASE EMT; the frame cache
(content hash) within and across processes; failures as data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from labeling_helpers import cu_cells, nafepo4_cells

from mlipflow.schemas import FrameStatus


@pytest.fixture(scope="module")
def chgnet():
    from mlipflow.engines.labelers import get_labeler

    return get_labeler("chgnet")


def test_chgnet_labels_20_generated_nafepo4_cells(mlipflow_home, chgnet):
    cells, how = nafepo4_cells(20)
    frames = chgnet.label(cells, source="static", metadata={"generator": how}, progress=True)
    assert len(frames) == 20
    ok = [f for f in frames if f.status == FrameStatus.ok]
    assert len(ok) >= 18, [f.failure_reason for f in frames if f.status != FrameStatus.ok]
    for f, s in zip(frames, cells):
        assert f.formula == "NaFePO4" and f.nsites == len(s)
        assert f.labeler == "chgnet" and f.labeler_settings["version"]
    f = ok[0]
    assert np.isfinite(f.energy) and f.energy / f.nsites < -3  # bound oxide, eV/atom
    assert np.asarray(f.forces).shape == (f.nsites, 3) and np.asarray(f.stress).shape == (3, 3)
    assert len(f.magmoms) == f.nsites  # CHGNet predicts magnetic moments
    fe = [m for m, site in zip(f.magmoms, f.structure["sites"]) if site["species"][0]["element"] == "Fe"]
    assert min(fe) > 2.0  # Fe2+/Fe3+ moments, not zero
    assert len({f.frame_id for f in frames}) == 20


def test_chgnet_aimd_yields_sampled_frames(mlipflow_home, chgnet):
    from mlipflow.engines.repository import load_frames

    cells, _ = nafepo4_cells(1, seed=7)
    frames = chgnet.md(cells[0], temperature=1500, steps=12, timestep_fs=2.0, every=4, seed=1)
    assert [f.step for f in frames] == [4, 8, 12]
    assert all(f.status == FrameStatus.ok for f in frames), [f.failure_reason for f in frames]
    assert len({f.trajectory_id for f in frames}) == 1 and frames[0].source == "aimd"
    assert frames[-1].metadata["time_fs"] == 24.0
    pos = [np.array([s["xyz"] for s in f.structure["sites"]]) for f in frames]
    assert np.abs(pos[1] - pos[0]).max() > 1e-3  # atoms moved
    assert {f.frame_id for f in load_frames([f.frame_id for f in frames])} == {f.frame_id for f in frames}
    # the same trajectory again comes from the store
    again = chgnet.md(cells[0], temperature=1500, steps=12, timestep_fs=2.0, every=4, seed=1)
    assert [f.created_at for f in again] == [f.created_at for f in frames]


def test_cache_returns_stored_frame_and_settings_change_the_key(mlipflow_home):
    from mlipflow.engines.labelers import get_labeler

    lab = get_labeler("emt")
    cells = cu_cells(3)
    first = lab.label(cells)
    calls = []
    orig = lab._compute
    lab._compute = lambda *a, **k: calls.append(len(a[0])) or orig(*a, **k)
    again = lab.label(cells + [cells[0]])
    assert calls == [] and [f.created_at for f in again[:3]] == [f.created_at for f in first]
    assert again[3].frame_id == first[0].frame_id
    other = get_labeler("emt", asap_cutoff=True)
    assert other.frame_id(cells[0]) != lab.frame_id(cells[0])
    moved = cells[0].copy()
    moved.positions[0, 0] += 0.01
    assert lab.frame_id(moved) != lab.frame_id(cells[0])


def test_cache_across_processes(mlipflow_home, tmp_path):
    """A frame labeled in another process is returned from the store, not recomputed (both ways)."""
    from monty.serialization import dumpfn
    from pymatgen.io.ase import AseAtomsAdaptor

    from mlipflow.engines.labelers import get_labeler

    cells = [AseAtomsAdaptor.get_structure(a) for a in cu_cells(2, seed=3)]
    dumpfn(cells, tmp_path / "cells.json")  # exact floats (a text format with fewer digits changes the hash)
    lab = get_labeler("emt")
    (mine,) = lab.label(cells[:1])
    script = textwrap.dedent(f"""
        import json
        from monty.serialization import loadfn
        from mlipflow.engines.labelers import get_labeler
        lab = get_labeler("emt")
        calls = []
        orig = lab._compute
        lab._compute = lambda *a, **k: calls.append(len(a[0])) or orig(*a, **k)
        frames = lab.label(loadfn("{tmp_path / 'cells.json'}"))
        print(json.dumps({{"ids": [f.frame_id for f in frames], "created": [f.created_at.isoformat() for f in frames],
                          "calls": calls}}))
    """)
    env = {**os.environ, "MLIPFLOW_HOME": str(mlipflow_home), "HOME": os.environ["HOME"]}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["ids"][0] == mine.frame_id and res["created"][0] == mine.created_at.isoformat()
    assert res["calls"] == [1]  # only the second cell was new in the other process
    lab2 = get_labeler("emt")
    lab2._compute = lambda *a, **k: pytest.fail("recomputed a frame stored by another process")
    (theirs,) = lab2.label(cells[1:])
    assert theirs.frame_id == res["ids"][1] and theirs.created_at.isoformat() == res["created"][1]


@pytest.mark.parametrize("mode,reason", [("nan", "non-finite energy"), ("huge", "above threshold"), ("raise", "SCF exploded")])
def test_bad_frames_become_failed_frames(mlipflow_home, mode, reason):
    from mlipflow.engines.labelers import get_labeler

    lab = get_labeler("labeling_helpers:BadCalculator", mode=mode, bad_every=2)
    frames = lab.label(cu_cells(4, seed=1))  # every 2nd calculation misbehaves; never raises
    status = [f.status for f in frames]
    assert status == [FrameStatus.ok, FrameStatus.failed, FrameStatus.ok, FrameStatus.failed]
    assert all(reason in f.failure_reason for f in frames if f.status == FrameStatus.failed)
    # failed frames are stored too (data), and excluded from datasets
    from mlipflow.engines.repository import build_dataset, load_frames

    assert len(load_frames([f.frame_id for f in frames])) == 4
    doc = build_dataset(f"bad-{mode}", frames)
    assert len(doc.frame_ids) == 2 and doc.n_failed_excluded == 2


def test_force_threshold_is_configurable(mlipflow_home):
    from mlipflow.engines.labelers import get_labeler

    cells = cu_cells(2, seed=5)
    strict = get_labeler("emt", force_threshold=1e-6, use_cache=False).label(cells)
    assert all(f.status == FrameStatus.failed and "above threshold" in f.failure_reason for f in strict)


def test_reference_energies(mlipflow_home, chgnet):
    from mlipflow.engines.labelers import get_labeler

    emt = get_labeler("emt", reference_energies={"Al": -0.5})
    refs = emt.reference_energies(["Cu", "Al"])
    assert refs["Al"] == -0.5  # configured value wins
    from ase import Atoms
    from ase.calculators.emt import EMT

    a = Atoms("Cu", positions=[[7.5, 7.75, 8.0]], cell=[15, 15.5, 16], pbc=True)
    a.calc = EMT()
    assert refs["Cu"] == pytest.approx(a.get_potential_energy())
    ch = chgnet.reference_energies(["Fe", "O"])
    assert all(np.isfinite(v) for v in ch.values()) and ch["Fe"] != ch["O"]


def test_unknown_labeler_is_a_user_error():
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.errors import UserError

    for spec in ("nope", "vasp:unknown_set", "no.such.module:Calc"):
        with pytest.raises(UserError):
            get_labeler(spec)


def test_atoms_with_calculator_results_hash_like_plain_atoms(mlipflow_home):
    """Frames picked from MD (ASE Atoms carrying a calculator and info) label like plain cells."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from mlipflow.engines.labelers import get_labeler

    lab = get_labeler("emt")
    plain = cu_cells(1, seed=11)[0]
    dressed = plain.copy()
    dressed.calc = SinglePointCalculator(dressed, energy=1.0, forces=np.ones((len(dressed), 3)))
    dressed.info["max_gamma"] = 7.5
    assert lab.frame_id(dressed) == lab.frame_id(plain)
    (f,) = lab.label([dressed])
    assert f.energy != 1.0 and set(f.structure["sites"][0].get("properties", {})) <= {"magmom"}
