"""Density of the crystalline phase matching a composition.

Lookup rule (the same for every source): an exact reduced-formula match wins (the stable
polymorph, or the mean of the stable ones); otherwise the mean density of all crystals with
exactly the same set of elements. Sources, in order:

1. a density given by the user (``source="user"``);
2. the Materials Project (``mp-api``) when ``settings.mp_api_key`` is configured; only entries
   within ``MP_EHULL_MAX`` eV/atom of the hull are used, an exact match takes the lowest
   energy above hull (``source="materials_project:mp-..."``);
3. the offline table ``generation/data/densities.json`` (``source="table:<formula> (<phase>)"``),
   each value with its citation;
4. a mixing rule over the end-member units (``source="mixing_rule"``): ideal additivity of
   molar volumes, ``rho = sum(x_i M_i) / sum(x_i M_i / rho_i)`` with ``x_i`` the mole
   fractions of the units and ``rho_i`` their own crystal densities (looked up by 2./3.).

The API key is never printed, logged or stored.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

from mlipflow.errors import UserError

log = logging.getLogger(__name__)

#: Materials Project entries further above the convex hull (eV/atom) are ignored.
MP_EHULL_MAX = 0.1

#: Avogadro's number / 1e24 (g/cm³ from amu/Å³ and back)
_NA = 0.602214076


@dataclass
class DensityResult:
    """A density (g/cm³) and where it came from."""

    density: float
    source: str  # "user", "materials_project:<ids>", "table:...", "mixing_rule"
    method: str  # "user", "exact", "same_elements", "mixing_rule"
    matches: list[dict[str, Any]] = field(default_factory=list)  # formula, phase, density, citation

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def crystallographic_density(formula: str, z: int, a: float, b: float, c: float,
                             alpha: float = 90.0, beta: float = 90.0, gamma: float = 90.0) -> float:
    """Density (g/cm³) = Z·M / (N_A·V) from lattice parameters (Å, degrees)."""
    from pymatgen.core import Composition, Lattice

    v = Lattice.from_parameters(a, b, c, alpha, beta, gamma).volume
    return z * Composition(formula).weight / (_NA * v)


@lru_cache(maxsize=1)
def density_table() -> list[dict[str, Any]]:
    """Entries of the offline table (``generation/data/densities.json``)."""
    path = resources.files("mlipflow.generation").joinpath("data/densities.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["entries"]


@lru_cache(maxsize=4096)
def _reduced(formula: str) -> str:
    from pymatgen.core import Composition

    return Composition(formula).reduced_formula


@lru_cache(maxsize=4096)
def _elements(formula: str) -> frozenset[str]:
    from pymatgen.core import Composition

    return frozenset(str(e) for e in Composition(formula).elements)


def _match(entries: list[dict[str, Any]], formula: str) -> tuple[str, list[dict[str, Any]]] | None:
    """Apply the lookup rule to entries with 'formula', 'density', 'stable'."""
    red = _reduced(formula)
    exact = [e for e in entries if _reduced(e["formula"]) == red]
    if exact:
        stable = [e for e in exact if e.get("stable", True)] or exact
        return "exact", stable
    els = _elements(formula)
    same = [e for e in entries if _elements(e["formula"]) == els]
    if same:
        return "same_elements", same
    return None


def _table_lookup(formula: str, table: list[dict[str, Any]] | None = None) -> DensityResult | None:
    entries = table if table is not None else density_table()
    m = _match(entries, formula)
    if m is None:
        return None
    method, found = m
    rho = sum(e["density"] for e in found) / len(found)
    matches = [
        {"formula": e["formula"], "phase": e.get("phase"), "density": e["density"], "citation": e.get("source")}
        for e in found
    ]
    names = ", ".join(f"{e['formula']} ({e.get('phase')})" for e in found)
    return DensityResult(density=rho, source=f"table:{names}", method=method, matches=matches)


def _mp_key() -> str | None:
    try:
        from mlipflow.settings import get_settings

        key = get_settings().mp_api_key
    except Exception:  # settings invalid: the offline path still works
        return None
    return key.get_secret_value() if key is not None else None


@lru_cache(maxsize=64)
def _mp_entries(chemsys: str) -> tuple | None:
    """MP summary entries of one chemical system (cached per process); None on failure."""
    key = _mp_key()
    if not key:
        return None
    try:
        from mp_api.client import MPRester  # optional dependency, imported lazily
    except ImportError:
        log.warning("mp_api_key is set but mp-api is not installed (pip install mp-api); using the offline table")
        return None
    try:
        with MPRester(key) as mpr:
            docs = mpr.materials.summary.search(
                chemsys=chemsys, fields=["material_id", "formula_pretty", "density", "energy_above_hull"]
            )
    except Exception as exc:  # network, auth: never echo the key
        log.warning("Materials Project query failed (%s); using the offline table", type(exc).__name__)
        return None
    return tuple(
        {"formula": d.formula_pretty, "density": float(d.density), "id": str(d.material_id),
         "ehull": float(d.energy_above_hull or 0.0), "stable": True}
        for d in docs
        if d.density is not None and (d.energy_above_hull or 0.0) <= MP_EHULL_MAX
    )


def _mp_lookup(formula: str) -> DensityResult | None:
    """Materials Project lookup; None when no key, no mp-api or the query fails."""
    if not _mp_key():
        return None
    entries = _mp_entries("-".join(sorted(_elements(formula))))
    if not entries:
        return None
    entries = list(entries)
    m = _match(entries, formula)
    if m is None:
        return None
    method, found = m
    if method == "exact":
        found = [min(found, key=lambda e: e["ehull"])]
    rho = sum(e["density"] for e in found) / len(found)
    matches = [{"formula": e["formula"], "phase": e["id"], "density": e["density"],
                "citation": f"Materials Project {e['id']} (E_hull {e['ehull']:.3f} eV/atom)"} for e in found]
    return DensityResult(density=rho, source="materials_project:" + ",".join(e["id"] for e in found),
                         method=method, matches=matches)


def lookup_density(formula: str, use_mp: bool = True, table: list[dict[str, Any]] | None = None) -> DensityResult | None:
    """Density of the crystal matching ``formula`` from MP (if configured) else the table; None if nothing."""
    if use_mp:
        res = _mp_lookup(formula)
        if res is not None:
            return res
    return _table_lookup(formula, table)


def mixing_rule_density(unit_formulas: Sequence[str], fractions: Sequence[float], use_mp: bool = True,
                        table: list[dict[str, Any]] | None = None) -> DensityResult:
    """Ideal molar-volume additivity over end-member units (see module docstring)."""
    from pymatgen.core import Composition

    mass = 0.0
    vol = 0.0
    matches = []
    for f, x in zip(unit_formulas, fractions):
        if x <= 0:
            continue
        res = lookup_density(f, use_mp=use_mp, table=table)
        if res is None or res.method != "exact":
            raise UserError(
                f"no crystal density known for end member {f} (needed by the mixing rule)",
                "give the density directly (--density, g/cm³) or configure mp_api_key",
            )
        m = Composition(f).weight
        mass += x * m
        vol += x * m / res.density
        matches.append({"formula": f, "fraction": x, "density": res.density, "citation": res.source})
    return DensityResult(density=mass / vol, source="mixing_rule", method="mixing_rule", matches=matches)


def estimate_density(
    formula: str,
    unit_formulas: Sequence[str] | None = None,
    fractions: Sequence[float] | None = None,
    density: float | None = None,
    use_mp: bool = True,
    table: list[dict[str, Any]] | None = None,
) -> DensityResult:
    """Density for ``formula`` by the rule in the module docstring; ``density`` short-circuits."""
    if density is not None:
        if not density > 0:
            raise UserError(f"density must be positive (got {density})", "give a density in g/cm³, e.g. 3.38")
        return DensityResult(density=float(density), source="user", method="user")
    res = lookup_density(formula, use_mp=use_mp, table=table)
    if res is not None:
        return res
    if unit_formulas:
        return mixing_rule_density(unit_formulas, fractions or [1.0 / len(unit_formulas)] * len(unit_formulas),
                                   use_mp=use_mp, table=table)
    raise UserError(
        f"no crystal density known for {formula} or any crystal of the same elements",
        "give the density directly (--density, g/cm³) or configure mp_api_key",
    )
