"""Olivine Li_xFePO4: symmetry, orderings (checked geometrically), polarons, interface, rattle."""

import numpy as np
import pytest
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from mlipflow.errors import UserError
from mlipflow.generation import olivine_supercell, olivine_unit_cell
from mlipflow.generation.olivine import LATTICE


def _sym(st):
    return np.array([s.specie.symbol for s in st])


def test_unit_cell_is_pnma_lifepo4_with_sane_bonds():
    st = olivine_unit_cell()
    assert st.composition.reduced_formula == "LiFePO4" and len(st) == 28
    sga = SpacegroupAnalyzer(st, symprec=1e-3)
    assert sga.get_space_group_symbol() == "Pnma" and sga.get_space_group_number() == 62
    assert np.allclose(st.lattice.abc, LATTICE)
    nn = {el: [] for el in ("Li", "Fe", "P")}
    for site in st:
        if site.specie.symbol in nn:
            d = sorted(n.nn_distance for n in st.get_neighbors(site, 2.6) if n.specie.symbol == "O")
            nn[site.specie.symbol].append(d)
    assert all(len(d) == 4 and 1.48 < min(d) and max(d) < 1.58 for d in nn["P"])  # PO4 tetrahedra
    assert all(len(d) == 6 and 2.0 < min(d) and max(d) < 2.3 for d in nn["Fe"])  # FeO6 octahedra
    assert all(len(d) == 6 and 2.0 < min(d) and max(d) < 2.25 for d in nn["Li"])  # LiO6 octahedra
    assert sum(st.site_properties["oxidation_state"]) == 0
    assert {m for m, s in zip(st.site_properties["magmom"], _sym(st)) if s == "Fe"} == {4.0}
    # full supercell keeps composition and symmetry
    big, info = olivine_supercell((2, 4, 6), x=1.0)
    assert len(big) == 28 * 48 and big.composition.reduced_formula == "LiFePO4"
    assert SpacegroupAnalyzer(big, symprec=1e-3).get_space_group_symbol() == "Pnma"


def _li_planes(st, axis, n_unit):
    """Occupancy of the Li planes (2 per unit cell) normal to ``axis``."""
    sym = _sym(st)
    f = np.mod(st.frac_coords[sym == "Li", axis], 1.0)
    k = np.rint(f * 2 * n_unit).astype(int) % (2 * n_unit)
    return np.bincount(k, minlength=2 * n_unit)


@pytest.mark.parametrize("order,axis,other", [("x", 0, 1), ("y", 1, 0)])
def test_x_and_y_orderings_geometrically(order, axis, other):
    sc = (2, 2, 2)
    full_per_plane = 4 * 2 * 2 * 2 // 4  # 32 Li in 4 planes
    st, info = olivine_supercell(sc, x=0.5, ordering=order, polarons="random", seed=4)
    occ = _li_planes(st, axis, sc[axis])
    # alternating planes normal to the ordering axis: full, empty, full, empty
    assert occ.tolist() == [full_per_plane, 0, full_per_plane, 0]
    # along the other in-plane axis every plane is half full (distinguishes x- from y-order)
    occ2 = _li_planes(st, other, sc[other])
    assert occ2.tolist() == [full_per_plane // 2] * 4
    assert info["x_actual"] == 0.5 and st.composition["Li"] == 16
    assert sum(st.site_properties["oxidation_state"]) == 0


def test_random_and_explicit_removal_and_polarons():
    st, info = olivine_supercell((1, 2, 2), x=0.25, ordering="random", polarons="random", seed=11)
    assert st.composition["Li"] == 4 and info["n_fe3"] == 12
    oxi = np.array(st.site_properties["oxidation_state"])
    mag = np.array(st.site_properties["magmom"])
    sym = _sym(st)
    assert np.sum((sym == "Fe") & (oxi == 3)) == 12 and np.all(mag[(sym == "Fe") & (oxi == 3)] == 5.0)
    assert np.all(mag[(sym == "Fe") & (oxi == 2)] == 4.0) and oxi.sum() == 0
    again, info2 = olivine_supercell((1, 2, 2), x=0.25, ordering="random", polarons="random", seed=11)
    assert np.array_equal(again.cart_coords, st.cart_coords) and info2["fe3_sites"] == info["fe3_sites"]
    other, info3 = olivine_supercell((1, 2, 2), x=0.25, ordering="random", polarons="random", seed=12)
    assert info3["removed_li_sites"] != info["removed_li_sites"]
    st, info = olivine_supercell((1, 1, 1), ordering=[0, 3], polarons="random")
    assert info["removed_li_sites"] == [0, 3] and st.composition["Li"] == 2
    with pytest.raises(UserError):
        olivine_supercell((1, 1, 1), ordering=[0, 9])
    with pytest.raises(UserError):
        olivine_supercell((1, 1, 1), x=0.5, ordering="z")


def test_near_vacancy_polarons_sit_next_to_vacancies():
    st, info = olivine_supercell((2, 2, 2), x=0.75, ordering="random", polarons="near-vacancy", seed=5)
    vac = np.array(info["vacancy_frac_coords"])
    fe3 = st.frac_coords[info["fe3_sites"]]
    lat = st.lattice.matrix

    def dists(a, b):
        df = b[None] - a[:, None]
        df -= np.rint(df)
        return np.linalg.norm(df @ lat, axis=-1)

    fe_all = st.frac_coords[_sym(st) == "Fe"]
    nearest_li_fe = dists(vac, fe_all).min()
    d = dists(fe3, vac).min(axis=1)  # each Fe3+ sits at the nearest Li-Fe distance of some vacancy
    assert np.all(d < nearest_li_fe + 0.05)
    rnd, rinfo = olivine_supercell((2, 2, 2), x=0.75, ordering="random", polarons="random", seed=5)
    assert rinfo["removed_li_sites"] == info["removed_li_sites"]
    d_rnd = dists(rnd.frac_coords[rinfo["fe3_sites"]], vac).min(axis=1)
    assert d.mean() <= d_rnd.mean()


def test_interface_cell_has_lifepo4_and_fepo4_sides():
    st, info = olivine_supercell((1, 4, 1), interface="y:0.5")
    sym = _sym(st)
    oxi = np.array(st.site_properties["oxidation_state"])
    y = np.mod(st.frac_coords[:, 1], 1.0)
    left, right = y < 0.5, y >= 0.5
    for side, li_per_fe, fe_state in ((left, 1.0, 2), (right, 0.0, 3)):
        n_li, n_fe, n_p, n_o = (np.sum(side & (sym == e)) for e in ("Li", "Fe", "P", "O"))
        assert n_li == li_per_fe * n_fe and n_fe == n_p and n_o == 4 * n_p
        assert np.all(oxi[side & (sym == "Fe")] == fe_state)
    assert oxi.sum() == 0 and info["interface"]["axis"] == "y"
    with pytest.raises(UserError, match="unevenly"):
        olivine_supercell((1, 2, 1), interface="y:0.3")


def test_contraction_of_fe3_octahedron():
    base, _ = olivine_supercell((1, 1, 1), ordering=[1], polarons="random", seed=2)
    con, info = olivine_supercell((1, 1, 1), ordering=[1], polarons="random", seed=2, contraction=0.97)
    i = info["fe3_sites"][0]

    def fe_o(st):
        return np.array(sorted(n.nn_distance for n in st.get_neighbors(st[i], 2.6) if n.specie.symbol == "O"))

    assert np.allclose(fe_o(con), 0.97 * fe_o(base), atol=1e-6)
    j = [k for k in range(len(base)) if base[k].specie.symbol == "Fe" and k != i][0]
    assert np.allclose(base[j].coords, con[j].coords)  # Fe2+ untouched


def test_rattle_amplitude_and_reproducibility():
    base, _ = olivine_supercell((2, 2, 2), x=1.0)
    r1, _ = olivine_supercell((2, 2, 2), x=1.0, rattle=0.12, seed=3)
    r2, _ = olivine_supercell((2, 2, 2), x=1.0, rattle=0.12, seed=3)
    assert np.array_equal(r1.cart_coords, r2.cart_coords)
    df = r1.frac_coords - base.frac_coords
    df -= np.rint(df)
    d = df @ base.lattice.matrix
    assert abs(d.std() - 0.12) < 0.015 and abs(d.mean()) < 0.02
    ru, _ = olivine_supercell((2, 2, 2), x=1.0, rattle=0.05, rattle_mode="uniform", seed=3)
    df = ru.frac_coords - base.frac_coords
    df -= np.rint(df)
    assert np.linalg.norm(df @ base.lattice.matrix, axis=1).max() <= 0.05 + 1e-9
