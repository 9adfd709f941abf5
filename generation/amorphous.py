"""Pseudo-random (amorphous) cells over a composition grid.

For each grid point (see :mod:`.composition`): the density of the matching crystal (see
:mod:`.density`, or the user's), a cubic (or given-shape) cell of that density, atoms packed at
random with a minimum distance (:mod:`.packing`), then one copy per factor in ``scales`` with
cell and positions scaled linearly. Each composition gets its own random stream derived from
``(seed, label)``, so a structure does not change when other compositions are added or dropped.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, Mapping, Sequence

import numpy as np

from mlipflow.generation.composition import GridPoint, composition_grid, magmom_for, parse_units, point_from_counts
from mlipflow.generation.density import DensityResult, estimate_density
from mlipflow.generation.packing import AMU_PER_A3_TO_G_PER_CM3, cell_for_density, random_pack

log = logging.getLogger(__name__)


def composition_rng(seed: int | None, label: str) -> np.random.Generator:
    """The random generator of one composition: seeded by (seed, crc32(label))."""
    entropy = [int(seed) if seed is not None else 0, zlib.crc32(label.encode())]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def pack_point(
    point: GridPoint,
    density: float,
    min_distance: float = 1.7,
    pair_min_distance: Mapping | None = None,
    rng: np.random.Generator | int | None = None,
    cell_shape: Any = None,
    max_attempts: int = 20000,
):
    """One pymatgen Structure of ``point`` at ``density`` (g/cm³), site properties oxidation_state and magmom."""
    from pymatgen.core import Lattice, Structure

    lat = cell_for_density(point.mass_amu, density, cell_shape)
    elements = [el for el, _ in point.species]
    cart = random_pack(elements, lat, min_distance, pair_min_distance, rng=rng, max_attempts=max_attempts)
    oxi = [int(q) for _, q in point.species]
    mag = [magmom_for(el, q) for el, q in point.species]
    return Structure(Lattice(lat), elements, cart, coords_are_cartesian=True,
                     site_properties={"oxidation_state": oxi, "magmom": mag})


def amorphous_structures(
    units: str | Sequence[str],
    step: float = 0.1,
    atoms: int = 100,
    min_distance: float = 1.7,
    scales: Sequence[float] = (0.8, 1.0, 1.2),
    seed: int | None = 0,
    density: float | None = None,
    end_members: bool = True,
    pair_min_distance: Mapping | None = None,
    oxidation_states: Mapping[str, int] | None = None,
    use_mp: bool = True,
    cell_shape: Any = None,
    max_attempts: int = 20000,
    progress: bool = False,
    points: Sequence[GridPoint] | None = None,
) -> list[tuple[Any, dict[str, Any]]]:
    """Random cells over the composition grid of ``units``: a list of (Structure, info).

    ``info`` holds: index, label, formula, reduced_formula, fractions, unit_counts, natoms,
    scale, density (of this scaled cell, g/cm³), nominal_density, density_source,
    density_method, density_matches, seed, min_distance. Pass ``points`` to use your own
    grid points (e.g. from :func:`composition_grid` filtered) instead of the full grid.
    """
    from pymatgen.core import Structure  # noqa: F401  (fail early if pymatgen is missing)

    from mlipflow.generation.packing import scaled_structures

    if points is None:
        points = composition_grid(units, step=step, atoms=atoms, end_members=end_members,
                                  oxidation_states=oxidation_states)
    scales = [float(s) for s in scales]
    out: list[tuple[Any, dict[str, Any]]] = []
    it = points
    if progress:
        from tqdm import tqdm

        it = tqdm(points, desc="packing", unit="composition")
    unit_formulas = [u.formula for u in points[0].units] if points else []
    for k, pt in enumerate(it):
        dres: DensityResult = estimate_density(pt.reduced_formula, unit_formulas, pt.fractions, density=density,
                                               use_mp=use_mp)
        rng = composition_rng(seed, pt.label)
        base = pack_point(pt, dres.density, min_distance, pair_min_distance, rng=rng, cell_shape=cell_shape,
                          max_attempts=max_attempts)
        for s, st in zip(scales, scaled_structures(base, scales)):
            info = {
                "index": len(out),
                "composition_index": k,
                "label": pt.label,
                "formula": pt.formula,
                "reduced_formula": pt.reduced_formula,
                "units": unit_formulas,
                "fractions": [float(f) for f in pt.fractions],
                "unit_counts": [int(c) for c in pt.unit_counts],
                "natoms": len(st),
                "charge": pt.charge,
                "scale": s,
                "density": float(pt.mass_amu * AMU_PER_A3_TO_G_PER_CM3 / st.volume),
                "nominal_density": float(dres.density),
                "density_source": dres.source,
                "density_method": dres.method,
                "density_matches": dres.matches,
                "seed": seed,
                "min_distance": float(min_distance),
            }
            out.append((st, info))
    return out


def random_structure(
    formula_units: Mapping[str, int] | str,
    density: float | None = None,
    min_distance: float = 1.7,
    scale: float = 1.0,
    seed: int | None = 0,
    atoms: int = 100,
    pair_min_distance: Mapping | None = None,
    use_mp: bool = True,
):
    """One random cell of a formula, e.g. ``random_structure("NaFePO4", density=3.38)`` (98 atoms).

    ``formula_units`` is a unit formula (repeated to the atom count closest to ``atoms``) or a
    mapping unit -> count (``{"Na2O": 1, "FeO": 2, "P2O5": 1}``, ``atoms`` ignored).
    Returns (Structure, info).
    """
    from mlipflow.generation.composition import integer_formula

    if isinstance(formula_units, str):
        units = parse_units([formula_units])
        counts = integer_formula(units, [1], atoms)
    else:
        units = parse_units(list(formula_units))
        counts = tuple(int(v) for v in formula_units.values())
    pt = point_from_counts(units, counts)
    return amorphous_structures(units, scales=[scale], seed=seed, density=density, min_distance=min_distance,
                                pair_min_distance=pair_min_distance, use_mp=use_mp, points=[pt])[0]
