"""Structure generation (no jobflow dependency).

- :func:`composition_grid` — mixtures of charge-neutral oxide units on a mole-fraction grid,
  as exact integer formulas of about N atoms;
- :func:`amorphous_structures` — random cells (minimum distance, crystal density, linear
  scaling) over such a grid: ``list[(Structure, info)]``; :func:`random_structure` for one formula;
- :func:`olivine_supercell` — olivine Li_xFePO4 supercells with Li orderings, polarons,
  LiFePO4/FePO4 interface and rattling; :func:`named_configuration` (D1-D3, x-order, y-order,
  interface) and :func:`random_configurations` (distinct random Li/vacancy/polaron cells);
- :func:`estimate_density`, :func:`random_pack`, writers (:func:`write_structure`).

See docs/generation.md.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "composition_grid": "composition",
    "parse_unit": "composition",
    "parse_units": "composition",
    "GridPoint": "composition",
    "OxideUnit": "composition",
    "amorphous_structures": "amorphous",
    "random_structure": "amorphous",
    "pack_point": "amorphous",
    "estimate_density": "density",
    "DensityResult": "density",
    "random_pack": "packing",
    "scaled_structures": "packing",
    "min_image_distances": "packing",
    "olivine_unit_cell": "olivine",
    "olivine_supercell": "olivine",
    "named_configuration": "olivine",
    "random_configurations": "olivine",
    "NAMED_CONFIGURATIONS": "olivine",
    "write_structure": "writers",
    "write_structures": "writers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):  # lazy: importing the package stays cheap
    if name in _EXPORTS:
        mod = importlib.import_module(f"mlipflow.generation.{_EXPORTS[name]}")
        return getattr(mod, name)
    raise AttributeError(f"module 'mlipflow.generation' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
