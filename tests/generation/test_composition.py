"""Composition grid: counts, integer formulas, oxidation states, charge checks."""

import math

import pytest

from mlipflow.errors import UserError
from mlipflow.generation.composition import composition_grid, integer_formula, magmom_for, parse_unit, parse_units


def test_grid_sizes_and_end_members():
    pts = composition_grid("Na2O,FeO,P2O5", step=0.1)
    assert len(pts) == 66
    fr = [p.fractions for p in pts]
    assert len(set(fr)) == 66 and all(abs(sum(f) - 1) < 1e-9 for f in fr)
    assert {p.label for p in pts if max(p.fractions) == 1.0} == {"Na2O", "FeO", "P2O5"}
    assert len(composition_grid("Na2O,FeO,P2O5", step=0.1, end_members=False)) == 63
    assert len(composition_grid("Na2O,P2O5", step=0.25)) == 5
    assert len(composition_grid("Li2O,Na2O,FeO,P2O5", step=0.25)) == math.comb(4 + 3, 3)


def test_integer_formulas_are_exact_and_closest_to_target():
    pts = composition_grid(["Na2O", "FeO", "P2O5"], step=0.1, atoms=100)
    for p in pts:
        assert p.charge == 0
        counts = p.unit_counts
        # stoichiometry exact: unit counts proportional to the mole fractions
        total = sum(counts)
        assert all(abs(c / total - f) < 1e-9 for c, f in zip(counts, p.fractions))
        assert p.natoms == 3 * counts[0] + 2 * counts[1] + 7 * counts[2]
        # no other multiple of the reduced ratio is closer to 100 atoms
        g = math.gcd(*[c for c in counts if c])
        per = p.natoms // g
        best = min(range(1, 201), key=lambda m: abs(m * per - 100))
        assert abs(p.natoms - 100) == abs(best * per - 100)
    nfp = integer_formula(parse_units("Na2O,FeO,P2O5"), [1, 2, 1], atoms=100)
    assert nfp == (7, 14, 7)  # 14 NaFePO4 = 98 atoms


def test_oxidation_states_from_units():
    assert dict(parse_unit("FeO").oxidation_states)["Fe"] == 2
    assert dict(parse_unit("Fe2O3").oxidation_states)["Fe"] == 3
    assert dict(parse_unit("P2O5").oxidation_states) == {"P": 5, "O": -2}
    assert dict(parse_unit("NaPO3").oxidation_states) == {"Na": 1, "P": 5, "O": -2}
    assert dict(parse_unit("Na2SO4").oxidation_states) == {"Na": 1, "S": 6, "O": -2}
    assert dict(parse_unit("FeS").oxidation_states) == {"Fe": 2, "S": -2}
    pts = composition_grid("FeO,Fe2O3", step=0.5)
    mixed = [p for p in pts if 0 < p.fractions[0] < 1][0]
    states = sorted({q for el, q in mixed.species if el == "Fe"})
    assert states == [2, 3] and mixed.charge == 0
    assert magmom_for("Fe", 2) == 4 and magmom_for("Fe", 3) == 5 and magmom_for("Na", 1) == 0


@pytest.mark.parametrize("unit,expect", [
    ("NaO", "'NaO' is not charge-neutral"),
    ("Fe2O3:Fe=2", "total charge -2"),
    ("Fe3O4", "Fe would need oxidation state +2.67"),
])
def test_non_neutral_unit_is_one_clear_error(unit, expect):
    with pytest.raises(UserError) as exc:
        composition_grid(f"Na2O,{unit}", step=0.5)
    assert expect in exc.value.problem
    assert unit.split(":")[0] in exc.value.problem and exc.value.fix


def test_bad_grid_input():
    with pytest.raises(UserError, match="does not divide 1"):
        composition_grid("Na2O,FeO", step=0.3)
    with pytest.raises(UserError, match="between 1 and 5"):
        composition_grid("Na2O,FeO,P2O5,Li2O,K2O,CaO", step=0.5)
    with pytest.raises(UserError, match="cannot parse"):
        composition_grid("Na2O,Xx2O", step=0.5)
