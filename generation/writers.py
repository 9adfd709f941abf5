"""Structure writers: extended XYZ, POSCAR and LAMMPS data (atomic / charge styles).

ASE writes extxyz; LAMMPS data goes through :func:`mlipflow.engines.lammps.write_lammps_data`
(with a ``Masses`` section whose lines carry the element as a comment); pymatgen writes
POSCAR. Site properties travel where the format allows: extxyz gets per-atom
``oxidation_state``, ``initial_magmoms`` and ``initial_charges`` arrays plus the scalar
entries of ``info``; LAMMPS ``charge`` style takes the formal oxidation states as charges
unless other charges are given.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from mlipflow.errors import UserError

FORMATS = {"extxyz": ".extxyz", "poscar": ".vasp", "lammps": ".data"}


def to_atoms(structure, info: Mapping[str, Any] | None = None):
    """ASE Atoms from a pymatgen Structure (magmom -> initial magmoms, oxidation_state -> charges)."""
    from ase import Atoms

    atoms = Atoms(
        symbols=[s.specie.symbol for s in structure],
        positions=structure.cart_coords,
        cell=structure.lattice.matrix,
        pbc=True,
    )
    props = structure.site_properties
    if "magmom" in props:
        atoms.set_initial_magnetic_moments(np.asarray(props["magmom"], dtype=float))
    if "oxidation_state" in props:
        oxi = np.asarray(props["oxidation_state"], dtype=float)
        atoms.set_initial_charges(oxi)
        atoms.arrays["oxidation_state"] = oxi.astype(int)
    for key, val in (info or {}).items():
        if isinstance(val, (bool, int, float, str, np.integer, np.floating)) and val is not None:
            atoms.info[key] = val
        elif isinstance(val, (list, tuple)) and val and all(isinstance(v, (int, float)) for v in val):
            atoms.info[key] = np.asarray(val)
    return atoms


def _charges(structure, charges: str | Mapping[str, float]) -> np.ndarray:
    symbols = [s.specie.symbol for s in structure]
    if isinstance(charges, Mapping):
        missing = sorted(set(symbols) - set(charges))
        if missing:
            raise UserError(f"no charge given for {', '.join(missing)}", "give a charge for every element")
        return np.array([float(charges[s]) for s in symbols])
    if charges == "zero":
        return np.zeros(len(symbols))
    if charges == "formal":
        if "oxidation_state" not in structure.site_properties:
            raise UserError("structure has no oxidation states for formal charges",
                            "give charges explicitly or use atom style atomic")
        return np.asarray(structure.site_properties["oxidation_state"], dtype=float)
    raise UserError(f"unknown charges {charges!r}", "use formal, zero or a mapping element -> charge")


def write_structure(
    structure,
    path: str | Path,
    fmt: str | None = None,
    info: Mapping[str, Any] | None = None,
    lammps_style: str = "atomic",
    specorder: Sequence[str] | None = None,
    charges: str | Mapping[str, float] = "formal",
) -> Path:
    """Write one structure; ``fmt`` from the suffix when not given (.extxyz/.xyz, POSCAR/.vasp, .data/.lmp)."""
    path = Path(path)
    fmt = (fmt or _guess_format(path)).lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "extxyz":
        from ase.io import write

        write(path, to_atoms(structure, info), format="extxyz")
    elif fmt == "poscar":
        from pymatgen.io.vasp import Poscar

        comment = str((info or {}).get("label") or structure.composition.reduced_formula)
        # POSCAR needs the species grouped; keep the first-appearance order
        Poscar(structure, comment=comment, sort_structure=False).write_file(path)
    elif fmt == "lammps":
        from mlipflow.engines.lammps import write_lammps_data

        if lammps_style not in ("atomic", "charge"):
            raise UserError(f"unsupported LAMMPS atom style {lammps_style!r}", "use atomic or charge")
        atoms = to_atoms(structure)
        if lammps_style == "charge":
            atoms.set_initial_charges(_charges(structure, charges))
        order = list(specorder) if specorder else list(dict.fromkeys(a.symbol for a in atoms))
        missing = sorted(set(atoms.get_chemical_symbols()) - set(order))
        if missing:
            raise UserError(f"specorder lacks {', '.join(missing)}", "list every element in the type order")
        write_lammps_data(atoms, path, order, atom_style=lammps_style, masses=True)
    else:
        raise UserError(f"unknown structure format {fmt!r}", "use extxyz, poscar or lammps")
    return path


def _guess_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".extxyz", ".xyz")):
        return "extxyz"
    if name.endswith(".vasp") or "poscar" in name or "contcar" in name:
        return "poscar"
    if name.endswith((".data", ".lmp", ".lammps")):
        return "lammps"
    raise UserError(f"cannot tell the format of {path.name}", "use a .extxyz, .vasp (POSCAR) or .data suffix, or give fmt")


def structure_filename(info: Mapping[str, Any], fmt: str, index: int) -> str:
    """``0007_0.3Na2O-0.3FeO-0.4P2O5_s1.00.extxyz``-style names (safe characters only)."""
    label = str(info.get("label", "structure")).replace("/", "_").replace(" ", "")
    scale = info.get("scale")
    tail = f"_s{float(scale):.2f}" if scale is not None else ""
    return f"{index:04d}_{label}{tail}{FORMATS[fmt]}"


SUMMARY_COLUMNS = ["index", "file", "label", "formula", "natoms", "scale", "density", "nominal_density",
                   "density_source", "seed"]


def write_structures(
    items: Iterable[tuple[Any, Mapping[str, Any]]],
    out_dir: str | Path,
    fmt: str = "extxyz",
    progress: bool = False,
    **kwargs,
) -> list[Path]:
    """One file per structure plus ``summary.json`` (all info) and ``summary.csv`` (main columns)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown structure format {fmt!r}", "use extxyz, poscar or lammps")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = list(items)
    it = items
    if progress:
        from tqdm import tqdm

        it = tqdm(items, desc="writing", unit="file")
    paths, rows = [], []
    for k, (st, info) in enumerate(it):
        p = write_structure(st, out / structure_filename(info, fmt, k), fmt=fmt, info=info, **kwargs)
        paths.append(p)
        rows.append({"file": p.name, **{key: _jsonable(v) for key, v in info.items()}})
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c) for c in SUMMARY_COLUMNS})
    return paths


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v
