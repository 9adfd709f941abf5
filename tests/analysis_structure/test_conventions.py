"""The NaFePO4 paper's bridging convention (Table 1: P–O–P and P–O–Fe bonds per P), computed by hand
on a built cluster, and LAMMPS data files written by accelerated styles."""

from __future__ import annotations

import numpy as np
import pytest

from mlipflow.analysis.io import Frame, read_frames
from mlipflow.analysis.structure import analyze_structure, bridging


def _cluster() -> Frame:
    """P2O7 dimer along x (P–O 1.5 Å, one bridging O between P1 and P2). On P1: an NBO at +y bonded
    to one Fe, and an NBO at −y bonded to two Fe. P2's oxygens touch no Fe."""
    c = np.array([20.0, 20.0, 20.0])
    p1, p2 = c, c + [3.0, 0, 0]
    pos = [p1, p2,
           c + [1.5, 0, 0],                                       # O bridging P1-P2
           c + [-1.5, 0, 0], c + [0, 1.5, 0], c + [0, -1.5, 0],   # P1's other O
           c + [4.5, 0, 0], c + [3.0, 1.5, 0], c + [3.0, -1.5, 0],  # P2's other O
           c + [0, 3.5, 0],                                       # Fe1 on O(+y) of P1 (2.0 Å)
           c + [-1.2, -3.2, 0], c + [1.2, -3.2, 0]]               # Fe2, Fe3 on O(−y) of P1 (2.08 Å)
    sym = ["P", "P"] + ["O"] * 7 + ["Fe"] * 3
    return Frame(positions=np.array(pos), cell=np.eye(3) * 40.0, symbols=np.array(sym))


CUT = {("P", "O"): 1.9, ("Fe", "O"): 2.3}


def test_published_convention_by_hand():
    br = bridging(_cluster(), CUT, formers=["P"])
    paths, pub = br["bridging"], br["bridging_oxygens_per_former"]
    # path counts per centre: the P-O-P linkage for both P (2 / 2 P), each Fe of an O counted
    assert paths["P-O-P"] == 1.0
    assert paths["P-O-Fe"] == 1.5  # P1: 1 (Fe1) + 2 (Fe2, Fe3); P2: 0; over 2 P
    # the paper's convention: one linkage shared by 2 P -> 0.5 per P; O neighbours of a P bonded to
    # at least one Fe: P1 has 2, P2 has 0 -> 1.0 per P
    assert pub["P-O-P"] == 0.5
    assert pub["P-O-Fe"] == 1.0
    assert set(pub) == {"P-O-P", "P-O-Fe"}  # only formers are centres


def test_three_p_on_one_oxygen_make_three_linkages():
    c = np.array([20.0, 20.0, 20.0])
    ang = np.radians([90, 210, 330])
    ps = [c + 1.5 * np.array([np.cos(a), np.sin(a), 0]) for a in ang]
    fr = Frame(positions=np.array([c, *ps]), cell=np.eye(3) * 40.0, symbols=np.array(["O", "P", "P", "P"]))
    br = bridging(fr, {("P", "O"): 1.9}, formers=["P"])
    assert br["bridging_oxygens_per_former"]["P-O-P"] == pytest.approx(3 / 3)  # C(3,2) = 3 linkages, 3 P
    assert br["bridging"]["P-O-P"] == pytest.approx(6 / 3)  # 6 ordered paths


def test_analyze_structure_reports_both():
    res = analyze_structure(_cluster(), cutoffs={"P-O": 1.9, "Fe-O": 2.3}, rings=False, formers=["P"])
    assert res["bridging_oxygens_per_former"] == {"P-O-P": 0.5, "P-O-Fe": 1.0}
    assert res["bridging"]["P-O-P"] == 1.0


DATA = """LAMMPS data file via write_data, version 2 Aug 2023, timestep = 1000, units = metal

3 atoms
2 atom types

0 10 xlo xhi
0 10 ylo yhi
0 10 zlo zhi

Masses

1 22.98977{na}
2 15.9994{o}

Atoms # {style}

1 1 1.0 1.0 1.0 0 0 0
2 2 2.5 1.0 1.0 0 0 0
3 2 1.0 2.5 1.0 0 0 1

Velocities

1 0 0 0
2 0 0 0
3 0 0 0
"""


@pytest.mark.parametrize("style", ["atomic/kk", "atomic/gpu", "atomic/omp", "atomic/intel", "atomic"])
@pytest.mark.parametrize("comments", [True, False])
def test_lammps_data_of_accelerated_styles(tmp_path, style, comments):
    p = tmp_path / "final.data"
    p.write_text(DATA.format(style=style, na=" # Na" if comments else "", o=" # O" if comments else ""))
    fr = read_frames(p, format="lammps-data")[0]
    assert fr.symbols.tolist() == ["Na", "O", "O"]  # types from the Masses section, no type map given
    assert fr.images is not None and fr.images[2].tolist() == [0, 0, 1]
