"""Composition grids over charge-neutral oxide units.

A *unit* is a formula such as ``Na2O``, ``FeO`` or ``P2O5``. Oxidation states come from the
formula: oxygen is -2 (and F/Cl -1) and a single cation takes the balancing state, which must
be one of the element's known oxidation states; units with several cations use pymatgen's
``Composition.oxi_state_guesses``. Explicit states can be given per element
(``oxidation_states={"Fe": 3}``) or inside the unit string (``"Fe2O3:Fe=3"``); they must make the
unit neutral.

:func:`composition_grid` enumerates every mixture on a grid of mole-fraction ``step`` (0.1 and
three units give 66 points, end members included) and turns each mixture into an exact integer
formula: the smallest integer unit ratio is repeated ``m`` times, ``m`` chosen so that the atom
count is closest to ``atoms``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import reduce
from typing import Iterable, Mapping, Sequence

from mlipflow.errors import UserError

#: Anions with a fixed oxidation state.
FIXED_ANIONS = {"O": -2, "F": -1, "Cl": -1, "S": -2, "N": -3}


@dataclass(frozen=True)
class OxideUnit:
    """A charge-neutral formula unit with an oxidation state per element."""

    formula: str
    counts: tuple[tuple[str, int], ...]  # (element, count) in formula order
    oxidation_states: tuple[tuple[str, int], ...]  # (element, state)

    @property
    def natoms(self) -> int:
        return sum(n for _, n in self.counts)

    @property
    def mass(self) -> float:
        from pymatgen.core import Element

        return sum(float(Element(el).atomic_mass) * n for el, n in self.counts)

    def oxi(self, el: str) -> int:
        return dict(self.oxidation_states)[el]

    def species(self) -> list[tuple[str, int, int]]:
        """(element, oxidation state, count) per element."""
        ox = dict(self.oxidation_states)
        return [(el, ox[el], n) for el, n in self.counts]


def _fmt_charge(q: int) -> str:
    return f"{q:+d}"


def parse_unit(unit: str | OxideUnit, oxidation_states: Mapping[str, int] | None = None) -> OxideUnit:
    """Parse a unit formula (``"Na2O"``, ``"Fe2O3:Fe=3"``) into a charge-neutral :class:`OxideUnit`.

    Raises :class:`~mlipflow.errors.UserError` naming the unit when no set of oxidation states
    makes it neutral, or when explicit states do not sum to zero.
    """
    if isinstance(unit, OxideUnit):
        return unit
    from pymatgen.core import Composition, Element

    text = str(unit).strip()
    explicit: dict[str, int] = {k: int(v) for k, v in (oxidation_states or {}).items()}
    formula = text
    if ":" in text:
        formula, spec = text.split(":", 1)
        for item in filter(None, (s.strip() for s in re.split(r"[;,\s]+", spec))):
            m = re.fullmatch(r"([A-Z][a-z]?)\s*=\s*([+-]?\d+)", item)
            if not m:
                raise UserError(
                    f"cannot read oxidation state {item!r} in unit {text!r}",
                    "write explicit states as 'Fe2O3:Fe=3' (element=integer state)",
                )
            explicit[m.group(1)] = int(m.group(2))
    formula = formula.strip()
    try:
        comp = Composition(formula)
        _ = [Element(str(e)) for e in comp.elements]
    except Exception as exc:  # pymatgen raises ValueError/ CompositionError
        raise UserError(
            f"cannot parse unit formula {formula!r}: {exc}",
            "give units as chemical formulas, e.g. Na2O,FeO,P2O5",
        ) from None
    if len(comp) == 0:
        raise UserError(f"unit {text!r} is empty", "give units as chemical formulas, e.g. Na2O,FeO,P2O5")
    amounts = comp.get_el_amt_dict()
    for el, n in amounts.items():
        if abs(n - round(n)) > 1e-8 or n <= 0:
            raise UserError(
                f"unit {text!r} has a non-integer amount of {el} ({n})",
                "give integer formulas such as Fe2O3",
            )
    # element order as written
    order = []
    for el in re.findall(r"[A-Z][a-z]?", formula):
        if el in amounts and el not in order:
            order.append(el)
    counts = tuple((el, int(round(amounts[el]))) for el in order)
    elements = [el for el, _ in counts]

    states: dict[str, int] = {}
    relevant_explicit = {k: v for k, v in explicit.items() if k in amounts}
    unknown = [el for el in elements if el not in relevant_explicit]
    anions = [el for el in elements if el in FIXED_ANIONS]
    # a single anion element (O in oxides) has its fixed state; with several (Na2SO4: S and O)
    # pymatgen's guesses decide
    fixed = {el: FIXED_ANIONS[el] for el in unknown if el in FIXED_ANIONS} if len(anions) == 1 else {}
    # with a single anion element and explicit states for the rest, the anion is fixed too
    states.update(relevant_explicit)
    free = [el for el in unknown if el not in fixed]
    if not free or (len(free) == 1 and len(fixed) >= 1):
        states.update(fixed)
        if free:
            el = free[0]
            n = dict(counts)[el]
            rest = sum(states[e] * m for e, m in counts if e != el)
            q = -rest / n
            known = set(Element(el).oxidation_states) | set(Element(el).common_oxidation_states)
            if abs(q - round(q)) > 1e-8 or int(round(q)) not in known or int(round(q)) == 0:
                raise UserError(
                    f"unit {text!r} is not charge-neutral: {el} would need oxidation state "
                    f"{q:+.3g}, which {el} does not take (known: {sorted(known)})",
                    f"use a neutral oxide, e.g. {_suggest(el)}, or give explicit states "
                    "('Fe2O3:Fe=3') that sum to zero",
                )
            states[el] = int(round(q))
    else:
        guesses = comp.oxi_state_guesses(oxi_states_override={k: [v] for k, v in states.items()} or None,
                                         max_sites=-1)
        if not guesses:
            raise UserError(
                f"unit {text!r} is not charge-neutral: no combination of known oxidation states of "
                f"{', '.join(elements)} sums to zero",
                "use neutral oxide units (e.g. Na2O, FeO, Fe2O3, P2O5) or give explicit states "
                "('NaFePO4:Fe=2')",
            )
        g = guesses[0]
        for el in elements:
            v = g[el]
            if abs(v - round(v)) > 1e-8:
                raise UserError(
                    f"unit {text!r} has a mixed-valence guess ({el} {v:+.3g})",
                    f"give the states explicitly, e.g. '{formula}:{el}=...'",
                )
            states[el] = int(round(v))
    total = sum(states[el] * n for el, n in counts)
    if total != 0:
        desc = ", ".join(f"{el}{_fmt_charge(states[el])}" for el in elements)
        raise UserError(
            f"unit {text!r} is not charge-neutral with states {desc} (total charge {total:+d})",
            "give oxidation states that sum to zero, e.g. 'Fe2O3:Fe=3', or a neutral formula",
        )
    return OxideUnit(formula=formula, counts=counts, oxidation_states=tuple((el, states[el]) for el in elements))


def _suggest(el: str) -> str:
    from pymatgen.core import Element

    sugg = []
    for q in Element(el).common_oxidation_states:
        if q <= 0:
            continue
        # El_a O_b with a*q = 2b
        a, b = (2, q) if q % 2 else (1, q // 2)
        sugg.append(f"{el}{a if a > 1 else ''}O{b if b > 1 else ''}")
    return " or ".join(sugg) if sugg else f"an oxide of {el}"


def parse_units(units: str | Sequence[str | OxideUnit],
                oxidation_states: Mapping[str, int] | None = None) -> list[OxideUnit]:
    """Parse 2-5 units given as a comma-separated string or a list."""
    if isinstance(units, str):
        items = [u.strip() for u in units.split(",") if u.strip()]
    else:
        items = list(units)
    if not 1 <= len(items) <= 5:
        raise UserError(
            f"{len(items)} units given ({', '.join(map(str, items))}); between 1 and 5 are supported",
            "give 2-5 oxide units, e.g. --units Na2O,FeO,P2O5",
        )
    parsed = [parse_unit(u, oxidation_states) for u in items]
    seen = Counter(p.formula for p in parsed)
    dup = [f for f, n in seen.items() if n > 1]
    if dup:
        raise UserError(f"unit(s) given twice: {', '.join(dup)}", "list each unit once")
    return parsed


@dataclass
class GridPoint:
    """One mixture: mole fractions of the units and its exact integer formula."""

    units: list[OxideUnit]
    fractions: tuple[float, ...]
    unit_counts: tuple[int, ...]  # number of each unit in the structure
    label: str
    species: list[tuple[str, int]] = field(default_factory=list)  # (element, oxidation state) per atom

    @property
    def natoms(self) -> int:
        return len(self.species)

    @property
    def composition(self):
        from pymatgen.core import Composition

        return Composition(Counter(el for el, _ in self.species))

    @property
    def formula(self) -> str:
        return self.composition.formula.replace(" ", "")

    @property
    def reduced_formula(self) -> str:
        return self.composition.reduced_formula

    @property
    def charge(self) -> int:
        return sum(q for _, q in self.species)

    @property
    def mass_amu(self) -> float:
        return sum(u.mass * n for u, n in zip(self.units, self.unit_counts))

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "units": [u.formula for u in self.units],
            "fractions": list(self.fractions),
            "unit_counts": list(self.unit_counts),
            "formula": self.formula,
            "reduced_formula": self.reduced_formula,
            "natoms": self.natoms,
        }


def grid_fractions(nunits: int, step: float, end_members: bool = True) -> list[tuple[int, ...]]:
    """Integer compositions (summing to ``round(1/step)``) of ``nunits`` parts."""
    n = round(1.0 / step)
    if step <= 0 or step > 1 or abs(n * step - 1.0) > 1e-6:
        raise UserError(
            f"mole-fraction step {step} does not divide 1",
            "use a step such as 0.5, 0.25, 0.2, 0.1, 0.05",
        )
    pts = []
    for combo in itertools.product(range(n + 1), repeat=nunits - 1):
        s = sum(combo)
        if s > n:
            continue
        pt = (n - s,) + combo
        if not end_members and max(pt) == n:
            continue
        pts.append(pt)
    # order: first unit decreasing, then lexicographic (stable, readable)
    pts.sort(key=lambda p: tuple(-x for x in p))
    return pts


def label_for(units: Sequence[OxideUnit], fractions: Sequence[float]) -> str:
    """Composition label, e.g. ``0.3Na2O-0.3FeO-0.4P2O5`` (zero fractions omitted)."""
    parts = [u.formula if abs(f - 1.0) < 1e-12 else f"{f:.4g}{u.formula}" for u, f in zip(units, fractions) if f > 0]
    return "-".join(parts)


def integer_formula(units: Sequence[OxideUnit], weights: Sequence[int], atoms: int = 100) -> tuple[int, ...]:
    """Unit counts with the exact ratio ``weights`` and an atom count closest to ``atoms``.

    The reduced integer ratio is repeated ``m >= 1`` times; ties go to the larger cell.
    """
    if atoms < 1:
        raise UserError(f"atoms must be positive (got {atoms})", "use e.g. --atoms 100")
    nz = [w for w in weights if w > 0]
    g = reduce(math.gcd, nz)
    base = [w // g for w in weights]
    per = sum(b * u.natoms for b, u in zip(base, units))
    m_lo = max(1, atoms // per)
    m_best = min((m_lo, m_lo + 1), key=lambda m: (abs(m * per - atoms), -m))
    return tuple(b * m_best for b in base)


def point_from_counts(units: Sequence[OxideUnit], unit_counts: Sequence[int]) -> GridPoint:
    """A :class:`GridPoint` from explicit unit counts."""
    total = sum(unit_counts)
    fractions = tuple(round(c / total, 10) for c in unit_counts)
    species: list[tuple[str, int]] = []
    for u, c in zip(units, unit_counts):
        for el, q, n in u.species():
            species.extend([(el, q)] * (n * c))
    # group by element (stable order of first appearance), then by state
    order: dict[str, int] = {}
    for el, _ in species:
        order.setdefault(el, len(order))
    species.sort(key=lambda s: (order[s[0]], s[1]))
    return GridPoint(units=list(units), fractions=fractions, unit_counts=tuple(unit_counts),
                     label=label_for(units, fractions), species=species)


def composition_grid(
    units: str | Sequence[str | OxideUnit],
    step: float = 0.1,
    atoms: int = 100,
    end_members: bool = True,
    oxidation_states: Mapping[str, int] | None = None,
) -> list[GridPoint]:
    """Every mixture of ``units`` on a mole-fraction grid of ``step``, as integer formulas.

    >>> pts = composition_grid("Na2O,FeO,P2O5", step=0.1)
    >>> len(pts), pts[0].label
    (66, 'Na2O')
    """
    parsed = parse_units(units, oxidation_states)  # one unit: a single point (that unit alone)
    n = round(1.0 / step)
    grid = grid_fractions(len(parsed), step, end_members)
    out = []
    for weights in grid:
        counts = integer_formula(parsed, weights, atoms)
        pt = point_from_counts(parsed, counts)
        pt.fractions = tuple(w / n for w in weights)
        pt.label = label_for(parsed, pt.fractions)
        out.append(pt)
    worst = max(out, key=lambda p: abs(p.natoms - atoms) / atoms, default=None)
    if worst is not None and not 0.5 * atoms <= worst.natoms <= 1.5 * atoms:
        ok = next((a for a in range(atoms + 1, 20 * max(atoms, 10)) if all(
            0.5 * a <= sum(c * u.natoms for c, u in zip(integer_formula(parsed, w, a), parsed)) <= 1.5 * a
            for w in grid)), None)
        sizes = sorted(p.natoms for p in out)
        raise UserError(
            f"atoms={atoms} cannot be met on this grid: the exact formula of {worst.label} ({worst.formula}) "
            f"needs {worst.natoms} atoms, and the cells would range from {sizes[0]} to {sizes[-1]} atoms",
            f"use atoms >= {ok} (--atoms), or a coarser step (--step) so that every composition's "
            "reduced formula is small" if ok else "use a coarser step (--step) or fewer units")
    return out


def species_counts(points: Iterable[GridPoint]) -> list[dict[str, int]]:
    """Element counts per point (convenience for summaries)."""
    return [dict(Counter(el for el, _ in p.species)) for p in points]


def magmom_for(element: str, oxidation_state: int) -> float:
    """High-spin initial magnetic moment (µB) of a 3d transition-metal ion, else 0.

    Number of unpaired d electrons: n for d^n with n <= 5, 10 - n above (Fe2+ d6 -> 4, Fe3+ d5 -> 5).
    """
    from pymatgen.core import Element

    e = Element(element)
    if not e.is_transition_metal or e.row != 4:
        return 0.0
    nd = e.group - oxidation_state
    if nd < 0 or nd > 10:
        return 0.0
    return float(nd if nd <= 5 else 10 - nd)
