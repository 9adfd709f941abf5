"""Guttman rings on alpha-quartz, hand-built graphs and a periodic square network."""

from __future__ import annotations

import numpy as np
import pytest

from mlipflow.analysis.io import Frame
from mlipflow.analysis.rings import find_rings, ring_centres, ring_statistics, rings_from_graph

from .conftest import quartz


@pytest.mark.parametrize("rep", [(1, 1, 1), (2, 2, 2), (3, 3, 3)])
def test_alpha_quartz_has_only_six_rings(rep):
    """Guttman rings of alpha-quartz are all 6-membered (6 Si + 6 O), whatever the supercell."""
    fr = Frame.from_atoms(quartz() * rep)
    stats = ring_statistics(fr, {("Si", "O"): 2.0}, ["Si"])
    assert set(stats["counts"]) == {"6"}
    assert stats["n_edges"] == 2 * int(np.prod(rep)) * 3  # 4 bridges per Si / 2
    assert stats["n_edges_without_ring"] == 0
    rings, _ = find_rings(fr, {("Si", "O"): 2.0}, ["Si"])
    sym = fr.symbols
    for r in rings:
        assert len(set(r.oxygens)) == 6 and all(sym[o] == "O" for o in r.oxygens)
        assert all(sym[s] == "Si" for s in r.formers)


def test_hand_built_graph_fused_rings():
    """A hexagon and a square sharing one edge: rings of 4 and 6 only; a tree: no ring."""
    # square 0-1-2-3, hexagon 0-1-4-5-6-7 sharing edge 0-1
    edges = [(0, 1), (1, 2), (2, 3), (3, 0), (1, 4), (4, 5), (5, 6), (6, 7), (7, 0)]
    u, v = np.array(edges).T
    rings, none = rings_from_graph(8, u, v, max_size=12)
    sizes = sorted(len(r[0]) for r in rings)
    assert sizes == [4, 6] and none == 0
    # max_size below 6: the hexagon-only edges find no ring
    rings, none = rings_from_graph(8, u, v, max_size=5)
    assert sorted(len(r[0]) for r in rings) == [4] and none == 5
    # a tree has no rings; a doubled edge (edge-sharing polyhedra) is a 2-ring
    rings, none = rings_from_graph(4, np.array([0, 1, 1]), np.array([1, 2, 3]))
    assert rings == [] and none == 3
    rings, _ = rings_from_graph(2, np.array([0, 0]), np.array([1, 1]))
    assert [len(r[0]) for r in rings] == [2]


def _square_network(n: int, a: float = 3.0):
    """Periodic 2-D square net of Si (in a slab with a big vacuum gap along z), O at bond midpoints."""
    pos, sym = [], []
    for i in range(n):
        for j in range(n):
            pos.append([i * a, j * a, 5.0])
            sym.append("Si")
            pos.append([i * a + a / 2, j * a, 5.0])
            sym.append("O")
            pos.append([i * a, j * a + a / 2, 5.0])
            sym.append("O")
    return Frame(positions=np.array(pos), cell=np.diag([n * a, n * a, 30.0]), symbols=np.array(sym))


@pytest.mark.parametrize("n", [1, 2, 4])
def test_periodic_square_net_rings_and_centres(n):
    """Square plaquettes are 4-rings even when the cell is 1x1 (winding loops are not rings)."""
    fr = _square_network(n)
    rings, counters = find_rings(fr, {("Si", "O"): 1.6}, ["Si"])
    assert counters["n_edges_without_ring"] == 0
    assert {r.size for r in rings} == {4}
    centres, sizes = ring_centres(fr, {("Si", "O"): 1.6}, ["Si"])
    assert np.all(sizes == 4)
    # every centre is a plaquette centre ((i+1/2)a, (j+1/2)a, z)
    frac = centres[:, :2] / 3.0 - 0.5
    assert np.allclose(frac, np.round(frac), atol=1e-9)
    assert np.allclose(centres[:, 2], 5.0)
