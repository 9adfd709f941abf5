"""Shared fixtures for the ACE tests: an EMT-labelled Cu/Al dataset and ONE real pacemaker fit
per test session (a fit costs ~30-60 s on this machine)."""

from __future__ import annotations

import os

import numpy as np
import pytest

for _k, _v in {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
               "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}.items():
    os.environ.setdefault(_k, _v)


def emt_structures(n: int = 36, seed: int = 0):
    """Rattled and strained fcc Cu and Cu-Al cells labelled with EMT (energy, forces)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        base = bulk("Cu", "fcc", a=3.6, cubic=True)
        at = (base * (2, 1, 1)) if i % 2 == 0 else base.copy()
        if i % 3 == 0:
            syms = at.get_chemical_symbols()
            for j in rng.choice(len(at), size=max(1, len(at) // 3), replace=False):
                syms[j] = "Al"
            at.set_chemical_symbols(syms)
        at.set_cell(at.cell * (1 + rng.uniform(-0.04, 0.04)), scale_atoms=True)
        at.rattle(0.05 + 0.1 * rng.random(), seed=int(rng.integers(1 << 30)))
        at.calc = EMT()
        e, f = at.get_potential_energy(), at.get_forces()
        at.calc = None
        out.append((at, e, f))
    return out


def write_pickle(items, path):
    import pandas as pd

    df = pd.DataFrame({"ase_atoms": [a for a, _, _ in items], "energy": [e for _, e, _ in items],
                       "forces": [f for _, _, f in items], "energy_corrected": [e for _, e, _ in items]})
    df.to_pickle(path, compression="gzip")
    return path


@pytest.fixture(scope="session")
def emt_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("emt_data")
    items = emt_structures(36)
    train = write_pickle(items[:30], d / "train.pkl.gz")
    test = write_pickle(items[30:], d / "test.pkl.gz")
    return {"train": train, "test": test, "items": items, "dir": d}


@pytest.fixture(scope="session")
def tiny_fit(emt_data, tmp_path_factory):
    """One real pacemaker fit (tiny settings) shared by the whole session."""
    from mlipflow.engines.pacemaker import AceFitSettings, fit_ace

    wd = tmp_path_factory.mktemp("tiny_fit")
    return fit_ace(emt_data["train"], emt_data["test"], AceFitSettings.tiny(), wd, progress=False)


@pytest.fixture(scope="session")
def emt_factory():
    """:func:`emt_structures` itself, for tests that need their own number of frames or seed."""
    return emt_structures
