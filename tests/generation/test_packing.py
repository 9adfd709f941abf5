"""Random packing and the full Na2O-FeO-P2O5 grid (66 compositions x 3 scales = 198 cells)."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from mlipflow.errors import UserError
from mlipflow.generation import amorphous_structures, min_image_distances, random_pack
from mlipflow.generation.packing import cell_for_density

MIN_D = 1.7
SCALES = (0.8, 1.0, 1.2)


def _min_dist_cubic(st):
    """Smallest periodic pair distance of a cubic cell (kd-tree with box)."""
    L = st.lattice.a
    assert np.allclose(st.lattice.matrix, np.eye(3) * L)
    tree = cKDTree(np.mod(st.cart_coords, L), boxsize=L * (1 + 1e-12))
    d, _ = tree.query(np.mod(st.cart_coords, L), k=2)
    return d[:, 1].min()


@pytest.fixture(scope="module")
def grid():
    return amorphous_structures("Na2O,FeO,P2O5", step=0.1, atoms=100, min_distance=MIN_D, scales=SCALES, seed=0)


def test_full_grid_neutral_counts_distances_densities(grid):
    assert len(grid) == 198
    labels = {info["label"] for _, info in grid}
    assert len(labels) == 66
    natoms = {"Na2O": 3, "FeO": 2, "P2O5": 7}
    for st, info in grid:
        # charge neutral and the atom count of the unit counts
        assert sum(st.site_properties["oxidation_state"]) == 0
        assert len(st) == info["natoms"] == sum(n * natoms[u] for u, n in zip(info["units"], info["unit_counts"]))
        assert 80 <= len(st) <= 135
        comp = st.composition.get_el_amt_dict()
        assert comp.get("Fe", 0) == info["unit_counts"][1]
        # distances scale linearly from >= MIN_D at the nominal density
        assert _min_dist_cubic(st) >= info["scale"] * MIN_D - 1e-9
        # density within 1 % of target / scale^3
        target = info["nominal_density"] / info["scale"] ** 3
        assert abs(st.density - target) / target < 0.01
        assert info["density_source"]
    # scaling, not re-packing: fractional coordinates equal across the scales of one composition
    by_label = {}
    for st, info in grid:
        by_label.setdefault(info["label"], []).append(st)
    for sts in by_label.values():
        assert len(sts) == 3
        assert np.allclose(sts[0].frac_coords, sts[2].frac_coords)
        assert np.isclose(sts[2].lattice.a / sts[0].lattice.a, 1.2 / 0.8)


def test_same_seed_same_structures_other_seed_differs(grid):
    again = amorphous_structures("Na2O,FeO,P2O5", step=0.1, atoms=100, scales=SCALES, seed=0,
                                 end_members=False)
    first = {(i["label"], i["scale"]): s for s, i in grid}
    for st, info in again:  # independent of which other compositions are generated
        assert np.array_equal(st.cart_coords, first[(info["label"], info["scale"])].cart_coords)
    other = amorphous_structures("Na2O,FeO,P2O5", step=0.5, scales=[1.0], seed=1)
    same_lbl = {i["label"]: s for s, i in other}
    lbl = "0.5Na2O-0.5FeO"
    assert not np.allclose(same_lbl[lbl].cart_coords, first[(lbl, 1.0)].cart_coords)


def test_pair_overrides_and_triclinic_cell():
    rng = np.random.default_rng(3)
    species = ["Na"] * 40 + ["O"] * 40
    lat = np.array([[12.0, 0, 0], [3.0, 11.0, 0], [1.0, 2.0, 10.0]])
    pos = random_pack(species, lat, 1.5, {("Na", "O"): 2.2}, rng=rng)
    d = min_image_distances(pos, lat)
    sp = np.array(species)
    cross = d[np.ix_(sp == "Na", sp == "O")]
    same = d[np.ix_(sp == "O", sp == "O")]
    assert cross.min() >= 2.2 - 1e-9 and same.min() >= 1.5 - 1e-9
    assert cross.min() < 2.6  # the override is a minimum, not a shift of everything


def test_packing_fraction_error_is_clear():
    species = ["O"] * 300
    with pytest.raises(UserError) as exc:  # beyond any sphere packing: refused at once
        random_pack(species, 10.0, 2.0, rng=0)
    assert "packing fraction" in exc.value.problem and "density" in exc.value.fix
    # feasible on paper (0.63 < 0.74) but beyond random-insertion jamming: the budget runs out
    L = (300 * np.pi / 6 * 2.0**3 / 0.63) ** (1 / 3)
    with pytest.raises(UserError) as exc:
        random_pack(species, L, 2.0, rng=0, max_attempts=2000)
    msg = exc.value.problem
    assert "packing fraction reached" in msg and "placed" in msg
    reached = float(msg.split("packing fraction reached ")[1].split()[0])
    assert 0.3 < reached < 0.63
    assert "lower the density or the minimum distance" in exc.value.fix


def test_benchmark_size_packs_and_respects_distance():
    n_fu = 429  # 3003 atoms of NaFePO4 at 3.38 g/cm3
    species = ["Na"] * n_fu + ["Fe"] * n_fu + ["P"] * n_fu + ["O"] * 4 * n_fu
    mass = n_fu * (22.98977 + 55.845 + 30.973762 + 4 * 15.9994)
    lat = cell_for_density(mass, 3.38)
    pos = random_pack(species, lat, MIN_D, rng=7)
    L = lat[0, 0]
    tree = cKDTree(np.mod(pos, L), boxsize=L * (1 + 1e-12))
    assert len(tree.query_pairs(MIN_D * (1 - 1e-9))) == 0
    # uniform: each octant holds about 1/8 of the atoms
    octant = (np.mod(pos, L) // (L / 2)).astype(int) @ [1, 2, 4]
    counts = np.bincount(octant, minlength=8)
    assert counts.min() > 3003 / 8 * 0.8


def test_small_cells_with_fewer_than_three_bins():
    """Cells only 2 bins wide (duplicate neighbour bins) and skewed cells keep the minimum distance."""
    skew = np.array([[4.0, 0, 0], [2.0, 3.6, 0], [0.5, 0.5, 4.2]])
    for seed in range(10):
        pos = random_pack(["O"] * 8, 4.5, 1.7, rng=seed)
        assert min_image_distances(pos, 4.5).min() >= 1.7 - 1e-9
        pos = random_pack(["O"] * 5, skew, 1.7, rng=seed)
        assert min_image_distances(pos, skew).min() >= 1.7 - 1e-9
