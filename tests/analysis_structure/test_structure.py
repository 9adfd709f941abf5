"""g(r), coordination, bridging/Qn, angles, S(Q) and density against independent references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.neighborlist import neighbor_list
from scipy.signal import find_peaks

from mlipflow.analysis.io import Frame
from mlipflow.analysis.structure import (
    NEUTRON_B_FM,
    WAASMAIER_KIRFEL,
    RDFAccumulator,
    bond_angles,
    bridging,
    coordination,
    density_g_cm3,
    first_minimum,
    neighbor_pairs,
    parse_cutoffs,
    rdf,
    structure_factor,
    xray_form_factor,
)
from mlipflow.errors import UserError

from .conftest import quartz, rotation_to, tetrahedron


def test_ideal_gas_gives_one():
    rng = np.random.default_rng(0)
    L, n = 20.0, 2000
    acc = RDFAccumulator(rmax=9.0, dr=0.25)
    for _ in range(6):
        sym = np.array(["Na"] * 500 + ["O"] * 1500)
        acc.add(Frame(positions=rng.random((n, 3)) * L, cell=np.eye(3) * L, symbols=sym))
    g = acc.result()
    sel = g.r > 1.0  # few pairs at small r
    for key, gab in list(g.partials.items()) + [("total", g.g_total)]:
        assert abs(gab[sel].mean() - 1.0) < 0.01, key
        assert np.all(np.abs(gab[sel] - 1.0) < 0.15), key


@pytest.mark.parametrize("kind,a,shells", [
    ("fcc", 3.6, [(1 / np.sqrt(2), 12), (1.0, 6), (np.sqrt(1.5), 24), (np.sqrt(2), 12)]),
    ("bcc", 3.0, [(np.sqrt(3) / 2, 8), (1.0, 6), (np.sqrt(2), 12), (np.sqrt(11) / 2, 24)]),
])
def test_crystal_shells_and_coordination(kind, a, shells):
    """Peaks at the known shell radii with exactly the textbook shell populations."""
    atoms = bulk("Cu" if kind == "fcc" else "Fe", kind, a=a, cubic=True).repeat(5)
    sym = atoms.get_chemical_symbols()[0]
    g = rdf(Frame.from_atoms(atoms), rmax=(shells[-1][0] + 0.1) * a, dr=0.005)
    cn = g.running_cn(sym, sym)
    cum = 0
    for k, (d, n) in enumerate(shells):
        r_shell = d * a
        i = int(np.argmin(np.abs(g.r - r_shell)))
        peak = int(np.argmax(g.g_total[max(i - 3, 0): i + 4])) + max(i - 3, 0)
        assert abs(g.r[peak] - r_shell) <= 0.005
        cum += n
        nxt = shells[k + 1][0] * a if k + 1 < len(shells) else r_shell + 0.05
        between = int(np.searchsorted(g.edges, 0.5 * (r_shell + nxt))) - 1
        assert cn[between] == pytest.approx(cum, abs=1e-9)
    assert np.all(g.g_total[g.r < shells[0][0] * a - 0.02] == 0)


def test_rocksalt_partials_and_first_minimum():
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(3)
    atoms.rattle(0.08, seed=3)
    fr = Frame.from_atoms(atoms)
    g = rdf(fr, rmax=7.0, dr=0.02)
    rc = first_minimum(g.r, g.partial("Na", "Cl"))
    assert 5.64 / 2 < rc < 5.64 * np.sqrt(3) / 2
    res = coordination(fr, {("Na", "Cl"): rc, ("Na", "Na"): 4.6}, pairs=[("Na", "Cl"), ("Cl", "Na"), ("Na", "Na")])
    assert res["Na-Cl"]["mean"] == 6 and res["Na-Cl"]["distribution"] == {"6": 1.0}
    assert res["Cl-Na"]["mean"] == 6
    assert res["Na-Na"]["mean"] == 12
    assert res["Na-Cl"]["cutoff"] == rc


def test_triclinic_equals_orthorhombic_and_matches_ase_neighbor_list():
    """Same atoms in a sheared (but equivalent) cell give the same g(r); distances match ASE's neighbour list."""
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(3)
    atoms.rattle(0.1, seed=7)
    ortho = Frame.from_atoms(atoms)
    c = atoms.cell.array
    sheared_cell = np.array([c[0], c[1] + c[0], c[2] + c[0] - c[1]])  # same lattice, non-orthogonal basis
    tri = Frame(positions=atoms.positions, cell=sheared_cell, symbols=ortho.symbols)
    assert not tri.is_orthorhombic
    g1 = rdf(ortho, rmax=8.0, dr=0.05)
    g2 = rdf(tri, rmax=8.0, dr=0.05)
    assert g1.method == "kdtree" and g2.method == "images"
    assert np.allclose(g1.g_total, g2.g_total, atol=1e-10)
    for k in g1.partials:
        assert np.allclose(g1.partials[k], g2.partials[k], atol=1e-10)
    # a genuinely triclinic cell vs ASE's neighbour list, past half the cell width (images)
    prim = bulk("NaCl", "rocksalt", a=5.64).repeat((3, 2, 2))
    prim.rattle(0.1, seed=1)
    i, j, d, vec = neighbor_pairs(Frame.from_atoms(prim), 7.0, full=True)
    ai, aj, ad = neighbor_list("ijd", prim, 7.0)
    assert len(d) == len(ad)
    assert np.allclose(np.sort(d), np.sort(ad))
    assert np.allclose(np.linalg.norm(vec, axis=1), d)


def test_rmax_beyond_half_box_equals_bigger_supercell():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=2)
    small = rdf(Frame.from_atoms(atoms), rmax=6.0, dr=0.05)  # > L/2 = 3.6: explicit images
    big = rdf(Frame.from_atoms(atoms.repeat(4)), rmax=6.0, dr=0.05)  # L/2 = 14.4: periodic kd-tree
    assert small.method == "images" and big.method == "kdtree"
    # the same neighbours per atom at every r ...
    assert np.allclose(small.running_cn("Cu", "Cu"), big.running_cn("Cu", "Cu"), atol=1e-9)
    # ... and g differs only by the documented N(N-1) normalization (self-images are counted as pairs)
    assert np.allclose(small.g_total * (31 / 32), big.g_total * (2047 / 2048), atol=1e-10)


def _p2o7_fe_cluster():
    """Hand-built P2O7 dimer (P-O-P 140°) + one Fe on an NBO of P1 with two more O, in a big box."""
    bond = 1.55
    p1 = np.array([20.0, 20.0, 20.0])
    # P1 tetrahedron with one vertex (the bridging O) along +x
    R1 = rotation_to(np.array([1, 1, 1.0]), np.array([1.0, 0, 0]))
    t1 = tetrahedron(p1, bond, R1)
    ob = t1[0]
    half = np.radians(140.0) / 2
    # P2 placed so that the P1-Ob-P2 angle is 140°
    dir2 = np.array([np.cos(np.pi - 2 * half), np.sin(np.pi - 2 * half), 0.0])
    p2 = ob + bond * dir2
    R2 = rotation_to(np.array([1, 1, 1.0]), ob - p2)
    t2 = tetrahedron(p2, bond, R2)
    nbo1 = t1[1]
    fe = nbo1 + 2.0 * (nbo1 - p1) / np.linalg.norm(nbo1 - p1)
    o_fe = [fe + np.array([0, 0, 2.0]), fe + np.array([0, 0, -2.0])]
    pos = [p1, p2, *t1, *t2[1:], fe, *o_fe]
    sym = ["P", "P"] + ["O"] * 4 + ["O"] * 3 + ["Fe"] + ["O"] * 2
    return Frame(positions=np.array(pos), cell=np.eye(3) * 40.0, symbols=np.array(sym))


def test_cn_bridging_qn_angles_on_hand_built_cluster():
    fr = _p2o7_fe_cluster()
    cut = {("P", "O"): 1.9, ("Fe", "O"): 2.3}
    cn = coordination(fr, cut, pairs=[("P", "O"), ("Fe", "O")])
    assert cn["P-O"]["distribution"] == {"4": 1.0}
    assert cn["Fe-O"]["distribution"] == {"3": 1.0}
    br = bridging(fr, cut, formers=["P"])
    b = br["bridging"]
    assert b["P-O-P"] == 1.0  # one bridge, counted for both P: 2/2
    assert b["P-O-Fe"] == 0.5  # one P-O-Fe link over two P
    assert b["Fe-O-P"] == 1.0
    assert b["Fe-O-Fe"] == 0.0
    assert br["qn"]["P"]["Q1"] == 1.0 and br["qn"]["P"]["mean_n"] == 1.0
    n_o = 9
    assert br["oxygen"]["BO"] == pytest.approx(1 / n_o)
    assert br["oxygen"]["NBO"] == pytest.approx(6 / n_o)
    assert br["oxygen"]["free"] == pytest.approx(2 / n_o)
    ang = bond_angles(fr, cut, triplets=["O-P-O", "P-O-P", "P-O-Fe", "O-Fe-O"])
    assert ang["O-P-O"]["mean"] == pytest.approx(np.degrees(np.arccos(-1 / 3)), abs=1e-6)
    assert ang["O-P-O"]["n"] == 12
    assert ang["P-O-P"]["mean"] == pytest.approx(140.0, abs=1e-6) and ang["P-O-P"]["n"] == 1
    assert ang["P-O-Fe"]["mean"] == pytest.approx(180.0, abs=1e-6)
    assert ang["O-Fe-O"]["n"] == 3
    d = np.asarray(ang["O-P-O"]["density"])
    assert d.sum() * 1.0 == pytest.approx(1.0)


def test_quartz_coordination_bridging_angles_density():
    q = quartz() * (2, 2, 2)
    fr = Frame.from_atoms(q)
    cut = {("Si", "O"): 2.0}
    cn = coordination(fr, cut, pairs=[("Si", "O"), ("O", "Si")])
    assert cn["Si-O"]["mean"] == 4 and cn["O-Si"]["mean"] == 2
    br = bridging(fr, cut)
    assert br["bridging"]["Si-O-Si"] == 4.0 and br["qn"]["Si"]["Q4"] == 1.0 and br["oxygen"]["BO"] == 1.0
    # Si-O-Si angle from pymatgen for one bridge
    o_idx = [k for k, s in enumerate(q) if s.specie.symbol == "O"][0]
    nb = [n for n in q.get_neighbors(q[o_idx], 2.0)]
    v1, v2 = nb[0].coords - q[o_idx].coords, nb[1].coords - q[o_idx].coords
    ref = np.degrees(np.arccos(v1 @ v2 / np.linalg.norm(v1) / np.linalg.norm(v2)))
    ang = bond_angles(fr, cut, triplets=["Si-O-Si"])
    assert ang["Si-O-Si"]["mean"] == pytest.approx(ref, abs=0.05)
    assert density_g_cm3(fr) == pytest.approx(q.density, rel=1e-4)  # ASE vs pymatgen atomic masses


def test_sq_peaks_at_bragg_positions_vs_pymatgen():
    """Neutron and X-ray S(Q) maxima of rattled NaCl sit at pymatgen's Bragg Q = 2π/d."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    unit = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    pat = XRDCalculator().get_pattern(AseAtomsAdaptor.get_structure(unit), two_theta_range=(0, 110))
    bragg_q = 2 * np.pi / np.array(pat.d_hkls)
    # strong reflections with no other reflection within 0.25 1/Å (peaks of a 25 Å g(r) are ~0.25 wide)
    isolated = np.array([np.sum(np.abs(bragg_q - x) < 0.25) == 1 for x in bragg_q])
    strong = bragg_q[(np.array(pat.y) > 9) & isolated]  # (200) (220) (400) (422)
    assert len(strong) >= 4
    atoms = unit.repeat(3)
    atoms.rattle(0.05, seed=1)
    g = rdf(Frame.from_atoms(atoms), rmax=25.0, dr=0.01)
    q = np.linspace(0.5, 7.0, 1300)
    for kind in ("neutron", "xray"):
        s = structure_factor(g, q=q, kind=kind, lorch=True)
        pk, _ = find_peaks(s.s, prominence=0.3)
        peaks = q[pk]
        for qb in strong:
            assert np.min(np.abs(peaks - qb)) < 0.03, (kind, qb, peaks)
        assert np.min(np.abs(bragg_q - q[np.argmax(s.s)])) < 0.04
    # without the Lorch window and for an ideal gas: S(Q) ~ 1
    rng = np.random.default_rng(0)
    gas = rdf([Frame(positions=rng.random((1500, 3)) * 20, cell=np.eye(3) * 20,
                     symbols=np.array(["Na"] * 500 + ["O"] * 1000)) for _ in range(3)], rmax=9.9, dr=0.05)
    s = structure_factor(gas, q=np.linspace(2, 15, 200), kind="neutron", lorch=True)
    assert np.all(np.abs(s.s - 1) < 0.1)


def test_scattering_tables_against_independent_sources():
    """b_coh equals pymatgen's table (NIST values); f0(Q=0) equals Z (Waasmaier-Kirfel normalization)."""
    import pymatgen.analysis.diffraction as diff
    from ase.data import atomic_numbers

    pm = json.loads((Path(diff.__file__).parent / "neutron_scattering_length.json").read_text())
    for el, b in NEUTRON_B_FM.items():
        ref = pm[el]
        ref = ref.real if isinstance(ref, complex) else (ref[0] if isinstance(ref, list) else ref)
        assert b == pytest.approx(float(ref), abs=1e-3), el
    for el in WAASMAIER_KIRFEL:
        assert xray_form_factor(el, np.array([0.0]))[0] == pytest.approx(atomic_numbers[el], abs=0.1), el
    f = xray_form_factor("O", np.array([0.0, 4 * np.pi * 0.5]))
    assert f[1] < f[0]
    with pytest.raises(UserError):
        xray_form_factor("Og", np.array([1.0]))


def test_parse_cutoffs():
    assert parse_cutoffs(["Fe-O=2.8", "P-O=2.0,Na-O=3.1"]) == {("Fe", "O"): 2.8, ("P", "O"): 2.0, ("Na", "O"): 3.1}
    assert parse_cutoffs({"Fe-O": 2.5}) == {("Fe", "O"): 2.5}
    for bad in (["Fe-O"], ["Fe-Xx=2"], ["Fe-O=abc"], ["Fe-O=-1"]):
        with pytest.raises(UserError):
            parse_cutoffs(bad)
