"""The ASE engine's production output: trajectory chunks, atomic checkpoints, continuation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read

from mlipflow.engines.ase_md import run_ase_md
from mlipflow.schemas import MDProtocol, MDStage

PROTOCOL = MDProtocol(timestep_fs=2.0, thermo_every=5, dump_every=10, restart_every=20, seed=7, stages=[
    MDStage(ensemble="nvt", steps=40, t_start=600, label="hot"),
    MDStage(ensemble="npt", steps=60, t_start=600, t_end=300, pressure=1.0, coupling="aniso", label="cool",
            dump_every=5)])


def cu():
    return bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2)


def chunk_steps(res) -> list[int]:
    return [fr.info["step"] for path in res.trajectory_files for fr in read(path, ":")]


def expected() -> list[int]:
    return [0, 10, 20, 30, 40] + list(range(45, 101, 5))


def test_chunks_and_checkpoints(tmp_path):
    res = run_ase_md(cu(), EMT(), PROTOCOL, workdir=tmp_path, progress=False)
    assert res.steps_done == 100 and not res.terminated
    assert chunk_steps(res) == expected()
    assert len(res.trajectory_files) == 5  # a new chunk after each checkpoint (steps 20, 40, 60, 80, 100)
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert state["step"] == 100 and not (tmp_path / "checkpoint.json.tmp").exists()


def test_crash_then_continue_from_checkpoint(tmp_path):
    """A crash at step 75 (after the checkpoint at 60): the rerun continues from step 60, drops the
    chunk written after it, and the trajectory and thermo have every step once."""

    def crash(atoms, step):
        if step == 75:
            raise RuntimeError("node lost")

    with pytest.raises(RuntimeError, match="node lost"):
        run_ase_md(cu(), EMT(), PROTOCOL, workdir=tmp_path, progress=False, on_dump=crash)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 60
    res = run_ase_md(cu(), EMT(), PROTOCOL, workdir=tmp_path, progress=False)
    assert res.extra["resumed_from_step"] == [60] and res.steps_done == 100
    assert chunk_steps(res) == expected()
    th = res.thermo["step"]
    assert th == [float(s) for s in range(0, 101, 5)]
    assert np.all(np.isfinite(res.thermo["temperature_K"]))
    # the continuation starts from the checkpointed state, not from the initial structure
    fresh = run_ase_md(cu(), EMT(), PROTOCOL, workdir=tmp_path / "fresh", progress=False)
    assert res.thermo["potential_energy_eV"][:13] == pytest.approx(fresh.thermo["potential_energy_eV"][:13])
