"""Shared fixtures of the DeePMD-kit tests: EMT-labelled Cu-Al cells, two tiny models trained
from scratch once per session (different seeds), and a two-head DPA-2 base made once per session
by `mlipflow potential pretrain` (real DeePMD-kit, one thread)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

for _k in ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS"):
    os.environ.setdefault(_k, "1")

TYPE_MAP = ["Al", "Cu"]


@pytest.fixture(scope="session", autouse=True)
def _fast_torchscript():
    """No TorchScript graph optimisation in this process: the first calls of a frozen model with
    each new input shape then take milliseconds instead of seconds (steady-state speed is the same
    for these tiny models). Training runs in its own `dp` process and is unaffected."""
    import torch

    torch._C._set_graph_executor_optimize(False)
    yield
    torch._C._set_graph_executor_optimize(True)


def emt_atoms(n: int, seed: int, other: str = "Al", max_other: int = 4):
    """Rattled, strained 8-atom fcc Cu cells with 0..max_other Cu replaced by ``other``, EMT-labelled
    (energy, forces on a SinglePointCalculator)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        at = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 1, 1)
        syms = at.get_chemical_symbols()
        for j in rng.choice(len(at), size=int(rng.integers(0, max_other + 1)), replace=False):
            syms[j] = other
        at.set_chemical_symbols(syms)
        at.set_cell(at.cell * (1 + rng.uniform(-0.03, 0.03)), scale_atoms=True)
        at.rattle(0.05 + 0.1 * rng.random(), seed=int(rng.integers(1 << 30)))
        at.calc = EMT()
        e, f = at.get_potential_energy(), at.get_forces()
        at.calc = SinglePointCalculator(at, energy=e, forces=f)
        out.append(at)
    return out


def frames_of(atoms_list, tag: str):
    from mlipflow.engines.frames import make_frame

    return [make_frame(a, frame_id=f"{tag}-{i}", labeler="emt", energy=a.get_potential_energy(), forces=a.get_forces())
            for i, a in enumerate(atoms_list)]


@pytest.fixture(scope="session")
def dp_data(tmp_path_factory):
    """40 training and 10 test cells as DeePMD systems (type map Al, Cu)."""
    from mlipflow.engines.deepmd import export_frames

    d = tmp_path_factory.mktemp("dp_data")
    train_atoms, test_atoms = emt_atoms(40, 0), emt_atoms(10, 1)
    train = export_frames(frames_of(train_atoms, "train"), d / "train", TYPE_MAP)
    test = export_frames(frames_of(test_atoms, "test"), d / "test", TYPE_MAP)
    return {"dir": d, "train": train, "test": test, "train_atoms": train_atoms, "test_atoms": test_atoms}


@pytest.fixture(scope="session")
def dp_pair(dp_data, tmp_path_factory):
    """Two tiny se_e2_a members trained from scratch (seeds 0 and 1): DPTrainingDocs."""
    from mlipflow.engines.deepmd import DPSettings, fit_dp_member

    # MLIPFLOW_TEST_DP_CACHE=<dir> keeps the two members between sessions (cache entries: reused
    # when data and settings are unchanged); by default they are trained in a fresh directory.
    keep = os.environ.get("MLIPFLOW_TEST_DP_CACHE")
    wd = Path(keep) if keep else tmp_path_factory.mktemp("dp_pair")
    return [fit_dp_member(DPSettings.tiny(), dp_data["train"], dp_data["test"], wd / f"member_{s}", seed=s, member=s,
                          include_files=False) for s in (0, 1)]


@pytest.fixture(scope="session")
def dp_base(tmp_path_factory):
    """A two-head (CuAl, CuNi) DPA-2 base made by the real CLI: `mlipflow potential pretrain
    --profile metals` (EMT labels), in its own mlipflow home."""
    from mlipflow.cli.main import main
    from mlipflow.settings import get_settings

    home = tmp_path_factory.mktemp("dp_base_home")
    out = home / "base.pt"
    mp = pytest.MonkeyPatch()
    for key in list(os.environ):
        if key.startswith("MLIPFLOW_"):
            mp.delenv(key)
    mp.setenv("MLIPFLOW_HOME", str(home))
    mp.setenv("HOME", str(home))
    get_settings.cache_clear()
    try:
        rc = main(["potential", "pretrain", "--profile", "metals", "--structures", "12", "--steps", "80",
                   "--out", str(out), "--workdir", str(home / "train"), "--no-progress"])
    finally:
        mp.undo()
        get_settings.cache_clear()
    assert rc in (0, None)
    return {"checkpoint": out, "workdir": home / "train", "branches": ["CuAl", "CuNi"]}
