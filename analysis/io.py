"""Streaming trajectory I/O: LAMMPS dump and data, extxyz, ASE ``.traj``, VASP XDATCAR.

Every reader is a generator that holds **one frame** in memory at a time (the LAMMPS dump and
XDATCAR readers parse the file line by line; extxyz and ``.traj`` go through ASE's lazy
readers), so trajectories larger than memory can be analysed frame by frame or in chunks of
frames (:func:`iter_chunks`).

Conventions of :class:`Frame`:

* ``positions``: (N, 3) float64 Cartesian coordinates in Å, as stored in the file (wrapped
  for ``x y z`` / ``xs ys zs``; unwrapped for ``xu yu zu`` / ``xsu ysu zsu``; ``unwrapped``
  says which);
* ``cell``: (3, 3) rows are the lattice vectors a, b, c in Å (LAMMPS' restricted triclinic
  a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz)); ``origin`` is the box corner (xlo, ylo, zlo);
* atoms are sorted by their id (LAMMPS ``id`` column; file order elsewhere), so that index i is
  the same atom in every frame;
* ``symbols``: element symbols (from an explicit ``types`` map, an ``element`` column, the
  Masses section of a data file, or the file itself); ``types``: LAMMPS integer types when known;
* ``images``: (N, 3) int image flags when the file has them (``ix iy iz``);
* ``per_atom``: every numeric column of a LAMMPS dump other than ``id``, ``type`` and the
  positions used (e.g. ``f_pace_gamma``, ``c_pe``, ``q``, ``vx``), by column name, in atom-id order.

Type maps (``types=``) may be ``{1: "Fe", 2: "Na"}``, a list ``["Fe", "Na"]`` (type i+1 -> item
i), a string ``"1=Fe,2=Na"`` (what the CLI passes) or the path of a LAMMPS data file whose
Masses section names the elements.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlipflow.errors import UserError

__all__ = [
    "Frame", "FORMATS", "detect_format", "iter_frames", "iter_chunks", "read_frames", "read_frame",
    "unwrap", "parse_type_map", "type_map_from_data", "lammps_box_to_cell", "write_lammps_dump",
]

#: formats read by mlipflow's own streaming readers (anything else known to ASE is passed to ``ase.io.iread``).
FORMATS = ("lammps-dump", "lammps-data", "extxyz", "traj", "xdatcar")

_FORMAT_ALIASES = {
    "dump": "lammps-dump", "lammpstrj": "lammps-dump", "lammps-dump-text": "lammps-dump", "lammps_dump": "lammps-dump",
    "data": "lammps-data", "lmp": "lammps-data", "lammps_data": "lammps-data", "lammpsdata": "lammps-data",
    "xyz": "extxyz", "ase": "traj", "ase-traj": "traj", "vasp-xdatcar": "xdatcar", "XDATCAR": "xdatcar",
}


# --------------------------------------------------------------------------------------------- Frame
@dataclass
class Frame:
    """One configuration. See the module docstring for the conventions."""

    positions: np.ndarray
    cell: np.ndarray
    symbols: np.ndarray | None = None
    types: np.ndarray | None = None
    ids: np.ndarray | None = None
    step: int | None = None
    time: float | None = None
    images: np.ndarray | None = None
    velocities: np.ndarray | None = None
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    pbc: tuple[bool, bool, bool] = (True, True, True)
    unwrapped: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    per_atom: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return int(len(self.positions))

    @property
    def volume(self) -> float:
        """Cell volume in Å^3."""
        return float(abs(np.linalg.det(self.cell)))

    @property
    def numbers(self) -> np.ndarray:
        """Atomic numbers (needs ``symbols``)."""
        from ase.data import atomic_numbers

        if self.symbols is None:
            raise UserError("the frame has no element symbols (only LAMMPS types)",
                            "give a type map, e.g. --types 1=Fe,2=Na,3=P,4=O")
        return np.array([atomic_numbers[s] for s in self.symbols], dtype=int)

    @property
    def is_orthorhombic(self) -> bool:
        c = self.cell
        return bool(np.allclose(c - np.diag(np.diag(c)), 0.0, atol=1e-10))

    def unwrapped_positions(self) -> np.ndarray:
        """Positions + image flags @ cell (or the positions if already unwrapped)."""
        if self.unwrapped or self.images is None:
            return self.positions
        return self.positions + self.images @ self.cell

    def wrapped_positions(self) -> np.ndarray:
        """Positions folded into the cell [origin, origin + cell)."""
        frac = (self.positions - self.origin) @ np.linalg.inv(self.cell)
        frac -= np.floor(frac)
        return self.origin + frac @ self.cell

    def to_atoms(self, per_atom: bool = False):
        """An :class:`ase.Atoms` (positions as stored, origin subtracted).

        ``per_atom``: also copy the extra dump columns (:attr:`per_atom`) into ``atoms.arrays``.
        """
        from ase import Atoms

        if self.symbols is None:
            raise UserError("the frame has no element symbols (only LAMMPS types)",
                            "give a type map, e.g. --types 1=Fe,2=Na,3=P,4=O")
        atoms = Atoms(symbols=list(self.symbols), positions=self.positions - self.origin, cell=self.cell,
                      pbc=self.pbc)
        if self.velocities is not None:
            atoms.set_velocities(self.velocities)
        if per_atom:
            for name, values in self.per_atom.items():
                atoms.arrays[name] = np.array(values, dtype=float)
        return atoms

    @classmethod
    def from_atoms(cls, atoms, step: int | None = None) -> "Frame":
        """A frame from an :class:`ase.Atoms` (or a pymatgen Structure)."""
        if not hasattr(atoms, "get_positions"):  # pymatgen Structure / Molecule
            from pymatgen.io.ase import AseAtomsAdaptor

            atoms = AseAtomsAdaptor.get_atoms(atoms)
        cell = np.array(atoms.get_cell(), dtype=float)
        vel = None
        if atoms.has("momenta"):
            vel = atoms.get_velocities()
        info = dict(getattr(atoms, "info", {}) or {})
        return cls(positions=np.array(atoms.get_positions(), dtype=float), cell=cell,
                   symbols=np.array(atoms.get_chemical_symbols()), ids=np.arange(1, len(atoms) + 1), step=step,
                   velocities=vel, pbc=tuple(bool(x) for x in atoms.pbc), info=info)


# --------------------------------------------------------------------------------------------- type maps
def parse_type_map(types: Any) -> dict[int, str] | None:
    """Normalize a type map: dict, list, ``"1=Fe,2=Na"`` string or LAMMPS data file path."""
    from ase.data import atomic_numbers

    if types is None:
        return None
    if isinstance(types, Mapping):
        out = {int(k): str(v) for k, v in types.items()}
    elif isinstance(types, (str, os.PathLike)) and Path(types).is_file():
        return type_map_from_data(types)
    elif isinstance(types, str):
        out = {}
        for item in re.split(r"[,\s]+", types.strip()):
            if not item:
                continue
            if "=" not in item and ":" not in item:
                raise UserError(f"bad type map entry {item!r} in {types!r}", "write it as 1=Fe,2=Na,3=P,4=O")
            k, v = re.split(r"[=:]", item, maxsplit=1)
            try:
                out[int(k)] = v.strip()
            except ValueError:
                raise UserError(f"bad type map entry {item!r}: the type must be an integer",
                                "write it as 1=Fe,2=Na,3=P,4=O") from None
    elif isinstance(types, Sequence):
        out = {i + 1: str(s) for i, s in enumerate(types)}
    else:
        raise UserError(f"cannot read a type map from {types!r}", "give a dict, a list or '1=Fe,2=Na'")
    for k, v in out.items():
        if v not in atomic_numbers or v == "X":
            raise UserError(f"unknown element {v!r} for type {k} in the type map", "use element symbols like Fe, Na, O")
    return out


def _element_from_mass(mass: float, tol: float = 0.2) -> str | None:
    from ase.data import atomic_masses, chemical_symbols

    d = np.abs(atomic_masses[1:] - mass)
    i = int(np.argmin(d))
    return chemical_symbols[i + 1] if d[i] < tol else None


def type_map_from_data(path: str | os.PathLike) -> dict[int, str]:
    """Type -> element from the Masses section of a LAMMPS data file (comment names first, then masses)."""
    from ase.data import atomic_numbers

    out: dict[int, str] = {}
    with open(path) as fh:
        in_masses = False
        for line in fh:
            s = line.strip()
            if not in_masses:
                if s.split("#")[0].strip() == "Masses":
                    in_masses = True
                continue
            if not s:
                if out:
                    break
                continue
            body, _, comment = s.partition("#")
            parts = body.split()
            if len(parts) < 2 or not parts[0].isdigit():
                break
            sym = comment.strip().split()[0] if comment.strip() else None
            if sym not in atomic_numbers:
                sym = _element_from_mass(float(parts[1]))
            if sym is None:
                raise UserError(f"{path}: cannot tell the element of type {parts[0]} (mass {parts[1]})",
                                "give a type map, e.g. --types 1=Fe,2=Na")
            out[int(parts[0])] = sym
    if not out:
        raise UserError(f"{path}: no Masses section", "give a type map, e.g. --types 1=Fe,2=Na")
    return out


def _apply_types(frame: Frame, tmap: dict[int, str] | None) -> Frame:
    if tmap is not None and frame.types is not None:
        missing = set(np.unique(frame.types).tolist()) - set(tmap)
        if missing:
            raise UserError(f"the type map has no element for LAMMPS type(s) {sorted(missing)}",
                            "add them, e.g. --types 1=Fe,2=Na,3=P,4=O")
        lut = np.empty(max(max(tmap), int(frame.types.max())) + 1, dtype=object)
        for k, v in tmap.items():
            lut[k] = v
        frame.symbols = lut[frame.types].astype(str)
    return frame


# --------------------------------------------------------------------------------------------- boxes
def lammps_box_to_cell(bounds: np.ndarray, tilts: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """LAMMPS dump ``BOX BOUNDS`` (bound values, tilts xy xz yz) -> (cell rows, origin)."""
    bounds = np.asarray(bounds, dtype=float)
    if tilts is None:
        xlo, xhi = bounds[0]
        ylo, yhi = bounds[1]
        zlo, zhi = bounds[2]
        xy = xz = yz = 0.0
    else:
        xy, xz, yz = (float(t) for t in tilts)
        xlo = bounds[0, 0] - min(0.0, xy, xz, xy + xz)
        xhi = bounds[0, 1] - max(0.0, xy, xz, xy + xz)
        ylo = bounds[1, 0] - min(0.0, yz)
        yhi = bounds[1, 1] - max(0.0, yz)
        zlo, zhi = bounds[2]
    cell = np.array([[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, zhi - zlo]])
    return cell, np.array([xlo, ylo, zlo])


def cell_to_lammps(cell: np.ndarray) -> np.ndarray:
    """Rotate a general cell to LAMMPS' lower-triangular form (same lengths and angles)."""
    a, b, c = np.asarray(cell, dtype=float)
    lx = np.linalg.norm(a)
    ahat = a / lx
    xy = b @ ahat
    ly = np.linalg.norm(np.cross(ahat, b))
    xz = c @ ahat
    yz = (b @ c - xy * xz) / ly
    lz = np.sqrt(max(c @ c - xz**2 - yz**2, 0.0))
    return np.array([[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]])


# --------------------------------------------------------------------------------------------- format detection
def detect_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """Normalize ``fmt`` or guess it from the file name and first line."""
    if fmt:
        f = _FORMAT_ALIASES.get(fmt, _FORMAT_ALIASES.get(fmt.lower(), fmt.lower()))
        if f in FORMATS:
            return f
        from ase.io.formats import ioformats

        if f in ioformats:
            return f
        raise UserError(f"unknown trajectory format {fmt!r}",
                        f"use one of {', '.join(FORMATS)} or an ASE format name (ase info --formats)")
    p = Path(path)
    name = p.name.lower()
    if name.startswith("xdatcar") or name.endswith(".xdatcar"):
        return "xdatcar"
    suffix = p.suffix.lower()
    if suffix in (".dump", ".lammpstrj") or name.startswith("dump."):
        return "lammps-dump"
    if suffix in (".data", ".lmp") or name.startswith("data."):
        return "lammps-data"
    if suffix in (".xyz", ".extxyz"):
        return "extxyz"
    if suffix == ".traj":
        return "traj"
    try:
        with open(p, errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        head = ""
    if head.startswith("ITEM: TIMESTEP") or head.startswith("ITEM:"):
        return "lammps-dump"
    if re.search(r"^\s*\d+\s+atoms\s*$", head, re.M) and re.search(r"xlo\s+xhi", head):
        return "lammps-data"
    if "Direct configuration=" in head:
        return "xdatcar"
    try:
        from ase.io.formats import filetype

        return filetype(str(p), read=True)
    except Exception:
        raise UserError(f"cannot tell the format of {path}", "give it with --format (e.g. lammps-dump, extxyz)") from None


# --------------------------------------------------------------------------------------------- readers
def iter_frames(
    path: str | os.PathLike,
    format: str | None = None,  # noqa: A002 - mirrors ase.io
    types: Any = None,
    start: int = 0,
    stop: int | None = None,
    step: int = 1,
    atom_style: str | None = None,
) -> Iterator[Frame]:
    """Yield :class:`Frame` objects one at a time (frames ``start:stop:step``), never the whole file.

    ``types``: type map (see module docstring) for LAMMPS files.  ``atom_style`` for data files
    (``atomic``, ``charge``, ``full``, ``molecular``; default: the ``Atoms # style`` comment or the
    column count).
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"no such file: {path}", "check the path")
    fmt = detect_format(p, format)
    tmap = parse_type_map(types)
    if fmt == "lammps-dump":
        gen = _iter_lammps_dump(p)
    elif fmt == "lammps-data":
        gen = iter([_read_lammps_data(p, atom_style=atom_style)])
    elif fmt == "xdatcar":
        gen = _iter_xdatcar(p)
    else:
        gen = _iter_ase(p, fmt)
    for frame in itertools.islice(gen, start, stop, step):
        yield _apply_types(frame, tmap)


def iter_chunks(path: str | os.PathLike, chunk: int = 64, **kwargs) -> Iterator[list[Frame]]:
    """Yield lists of at most ``chunk`` frames (for vectorized per-chunk work)."""
    if chunk < 1:
        raise UserError(f"chunk must be >= 1 (got {chunk})")
    it = iter_frames(path, **kwargs)
    while True:
        block = list(itertools.islice(it, chunk))
        if not block:
            return
        yield block


def read_frames(path: str | os.PathLike, **kwargs) -> list[Frame]:
    """All frames in a list (convenience; use :func:`iter_frames` for large files)."""
    return list(iter_frames(path, **kwargs))


def read_frame(path: str | os.PathLike, index: int = -1, **kwargs) -> Frame:
    """One frame (``index`` -1: the last one; the file is streamed through)."""
    if index >= 0:
        for f in iter_frames(path, start=index, stop=index + 1, **kwargs):
            return f
        raise UserError(f"{path} has fewer than {index + 1} frames")
    last = None
    for frame in iter_frames(path, **kwargs):
        last = frame
    if last is None:
        raise UserError(f"{path} contains no frames", "check the file and --format")
    return last


_POS_SETS = (("xu", "yu", "zu", False, True), ("x", "y", "z", False, False),
             ("xsu", "ysu", "zsu", True, True), ("xs", "ys", "zs", True, False))


def _iter_lammps_dump(path: Path) -> Iterator[Frame]:
    """LAMMPS text dump (``dump custom``/``atom``), one frame parsed at a time."""
    with open(path) as fh:
        line = fh.readline()
        nframe = 0
        while line:
            if not line.startswith("ITEM: TIMESTEP"):
                if line.strip() == "":
                    line = fh.readline()
                    continue
                raise UserError(f"{path}: not a LAMMPS dump (line {line.strip()[:60]!r})", "check --format")
            step_ = int(fh.readline().split()[0])
            time_ = None
            line = fh.readline()
            while line.startswith("ITEM:") and not line.startswith("ITEM: NUMBER OF ATOMS"):
                if line.startswith("ITEM: TIME"):
                    time_ = float(fh.readline())
                else:
                    fh.readline()
                line = fh.readline()
            if not line.startswith("ITEM: NUMBER OF ATOMS"):
                raise UserError(f"{path}: frame {nframe}: expected 'ITEM: NUMBER OF ATOMS'", "is the file truncated?")
            n = int(fh.readline())
            box_hdr = fh.readline()
            if not box_hdr.startswith("ITEM: BOX BOUNDS"):
                raise UserError(f"{path}: frame {nframe}: expected 'ITEM: BOX BOUNDS'")
            words = box_hdr.split()[3:]
            rows = [fh.readline().split() for _ in range(3)]
            if "abc" in words:  # general triclinic: ax ay az xorigin ...
                m = np.array(rows, dtype=float)
                cell, origin = m[:, :3].copy(), m[:, 3].copy()
                flags = words[words.index("origin") + 1:] if "origin" in words else words[2:]
            elif "xy" in words:
                m = np.array(rows, dtype=float)
                cell, origin = lammps_box_to_cell(m[:, :2], m[:, 2])
                flags = words[3:]
            else:
                m = np.array(rows, dtype=float)
                cell, origin = lammps_box_to_cell(m[:, :2])
                flags = words
            pbc = tuple(not f.startswith("f") and not f.startswith("s") for f in flags[:3]) if len(flags) >= 3 else (True,) * 3
            atoms_hdr = fh.readline()
            if not atoms_hdr.startswith("ITEM: ATOMS"):
                raise UserError(f"{path}: frame {nframe}: expected 'ITEM: ATOMS'")
            cols = atoms_hdr.split()[2:]
            lines = list(itertools.islice(fh, n))
            if len(lines) < n:
                raise UserError(f"{path}: frame {nframe} (step {step_}) is truncated", "drop the last frame or re-run")
            yield _parse_dump_atoms(path, lines, cols, n, cell, origin, pbc, step_, time_)
            nframe += 1
            line = fh.readline()


def _parse_dump_atoms(path, lines, cols, n, cell, origin, pbc, step_, time_) -> Frame:
    ncol = len(cols)
    text_cols = [i for i, c in enumerate(cols) if c in ("element", "type_name")]
    if text_cols:
        split = "".join(lines).split()
        arr_s = np.array(split, dtype=object).reshape(n, ncol)
        num_idx = [i for i in range(ncol) if i not in text_cols]
        data = np.zeros((n, ncol))
        data[:, num_idx] = arr_s[:, num_idx].astype(float)
        elements = arr_s[:, text_cols[0]].astype(str)
    else:
        data = _parse_numbers("".join(lines), n, ncol)
        if data is None:
            raise UserError(f"{path}: step {step_}: expected {n} rows of {ncol} numbers", "is the file corrupt?")
        elements = None
    ci = {c: i for i, c in enumerate(cols)}
    if "id" in ci:
        ids = data[:, ci["id"]].astype(np.int64)
        order = np.argsort(ids, kind="stable")
        if not np.all(order == np.arange(n)):
            data = data[order]
            ids = ids[order]
            if elements is not None:
                elements = elements[order]
    else:
        ids = np.arange(1, n + 1)
    for a, b, c, scaled, unwrapped in _POS_SETS:  # noqa: B007 - unwrapped is read after the loop
        if a in ci and b in ci and c in ci:
            xyz = data[:, [ci[a], ci[b], ci[c]]]
            positions = origin + xyz @ cell if scaled else np.ascontiguousarray(xyz)
            pos_cols = (a, b, c)
            break
    else:
        raise UserError(f"{path}: the dump has no position columns (x y z, xs ys zs, xu yu zu or xsu ysu zsu)",
                        "dump custom with id type x y z (or xu yu zu)")
    images = data[:, [ci["ix"], ci["iy"], ci["iz"]]].astype(np.int64) if all(k in ci for k in ("ix", "iy", "iz")) else None
    vel = data[:, [ci["vx"], ci["vy"], ci["vz"]]] if all(k in ci for k in ("vx", "vy", "vz")) else None
    types = data[:, ci["type"]].astype(np.int64) if "type" in ci else None
    info = {}
    for extra in ("q", "c_pe", "mass"):
        if extra in ci:
            info[extra] = data[:, ci[extra]].copy()
    skip = {"id", "type", "element", "type_name", *pos_cols}
    extra_idx = [i for i, c in enumerate(cols) if c not in skip]
    block = data[:, extra_idx]  # one copy of the extra columns; the full row array is not kept
    per_atom = {cols[i]: block[:, k] for k, i in enumerate(extra_idx)}
    return Frame(positions=positions, cell=cell, symbols=elements, types=types, ids=ids, step=step_, time=time_,
                 images=images, velocities=vel, origin=origin, pbc=pbc, unwrapped=unwrapped, info=info,
                 per_atom=per_atom)


def _parse_numbers(text: str, n: int, ncol: int) -> np.ndarray | None:
    """n x ncol floats from whitespace-separated text (pandas' C parser, ~2x numpy.fromstring)."""
    try:
        import pandas as pd

        data = pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, dtype=np.float64, engine="c").to_numpy()
        if data.shape == (n, ncol):
            return data
    except (ImportError, ValueError):
        pass
    data = np.fromstring(text, sep=" ")  # noqa: NPY201 - text mode is not deprecated
    return data.reshape(n, ncol) if data.size == n * ncol else None


_DATA_NCOLS = {"atomic": 5, "charge": 6, "full": 7, "molecular": 6}


def _read_lammps_data(path: Path, atom_style: str | None = None) -> Frame:
    """LAMMPS data file (atomic, charge, full, molecular styles; orthorhombic and triclinic)."""
    n_atoms = None
    bounds = np.zeros((3, 2))
    tilts = (0.0, 0.0, 0.0)
    gen_abc: dict[str, np.ndarray] = {}
    masses: dict[int, str] = {}
    with open(path) as fh:
        fh.readline()  # title
        line = fh.readline()
        section = None
        while line:
            s = line.split("#")[0].strip()
            if s in ("Masses", "Atoms", "Velocities", "Bonds", "Angles", "Pair Coeffs") or s.endswith("Coeffs") or \
                    line.strip().startswith("Atoms"):
                section = line.strip()
                break
            parts = s.split()
            if s.endswith(" atoms") and len(parts) == 2:
                n_atoms = int(parts[0])
            elif s.endswith("xlo xhi"):
                bounds[0] = [float(parts[0]), float(parts[1])]
            elif s.endswith("ylo yhi"):
                bounds[1] = [float(parts[0]), float(parts[1])]
            elif s.endswith("zlo zhi"):
                bounds[2] = [float(parts[0]), float(parts[1])]
            elif s.endswith("xy xz yz"):
                tilts = tuple(float(x) for x in parts[:3])
            elif len(parts) == 4 and parts[3] in ("avec", "bvec", "cvec"):
                gen_abc[parts[3]] = np.array(parts[:3], dtype=float)
            elif len(parts) == 5 and parts[3:] == ["abc", "origin"]:
                gen_abc["origin"] = np.array(parts[:3], dtype=float)
            line = fh.readline()
        if n_atoms is None:
            raise UserError(f"{path}: not a LAMMPS data file (no 'N atoms' line)", "check --format")
        atoms_rows = None
        vel_rows = None
        while section is not None:
            name = section.split("#")[0].strip()
            style_comment = section.partition("#")[2].strip()
            fh.readline()  # blank line after header
            rows = []
            line = fh.readline()
            while line and line.strip() == "":
                line = fh.readline()
            while line and line.strip() != "":
                rows.append(line)
                line = fh.readline()
            if name == "Masses":
                for r in rows:
                    body, _, comment = r.partition("#")
                    parts = body.split()
                    sym = comment.strip().split()[0] if comment.strip() else None
                    from ase.data import atomic_numbers

                    if sym not in atomic_numbers:
                        sym = _element_from_mass(float(parts[1]))
                    if sym is not None:
                        masses[int(parts[0])] = sym
            elif name == "Atoms":
                atoms_rows = rows
                if atom_style is None and style_comment:
                    atom_style = style_comment.split()[0]
            elif name == "Velocities":
                vel_rows = rows
            # next section header
            while line and line.strip() == "":
                line = fh.readline()
            section = line.strip() if line else None
    if atoms_rows is None:
        raise UserError(f"{path}: no Atoms section")
    if atom_style is not None:  # accelerated styles written by KOKKOS, GPU, OpenMP and INTEL runs
        atom_style = re.sub(r"/(kk|kk/device|kk/host|gpu|omp|intel|opt)$", "", atom_style)
    body = [r.split("#")[0].split() for r in atoms_rows]
    ncol = len(body[0])
    if atom_style is None:
        atom_style = {5: "atomic", 8: "atomic", 6: "charge", 9: "charge", 7: "full", 10: "full"}.get(ncol)
        if atom_style is None:
            raise UserError(f"{path}: cannot tell the atom style from {ncol} columns", "give atom_style=...")
    if atom_style not in _DATA_NCOLS:
        raise UserError(f"{path}: atom style {atom_style!r} is not supported", "use atomic, charge, full or molecular")
    base = _DATA_NCOLS[atom_style]
    has_img = any(len(r) >= base + 3 for r in body)
    width = base + 3 if has_img else base
    arr = np.array([(r + ["0", "0", "0"])[:width] for r in body], dtype=float)  # missing image flags = 0
    ids = arr[:, 0].astype(np.int64)
    type_col = {"atomic": 1, "charge": 1, "full": 2, "molecular": 2}[atom_style]
    types = arr[:, type_col].astype(np.int64)
    pos = arr[:, base - 3: base]
    images = arr[:, base: base + 3].astype(np.int64) if arr.shape[1] >= base + 3 else None
    q = arr[:, {"charge": 2, "full": 3}[atom_style]] if atom_style in ("charge", "full") else None
    order = np.argsort(ids, kind="stable")
    if gen_abc:
        cell = np.array([gen_abc["avec"], gen_abc["bvec"], gen_abc["cvec"]])
        origin = gen_abc.get("origin", np.zeros(3))
    else:
        cell = np.array([[bounds[0, 1] - bounds[0, 0], 0, 0], [tilts[0], bounds[1, 1] - bounds[1, 0], 0],
                         [tilts[1], tilts[2], bounds[2, 1] - bounds[2, 0]]])
        origin = bounds[:, 0].copy()
    vel = None
    if vel_rows is not None:
        v = np.array([r.split()[:4] for r in vel_rows], dtype=float)
        vmap = {int(i): k for k, i in enumerate(v[:, 0])}
        vel = v[[vmap[int(i)] for i in ids[order]], 1:4]
    frame = Frame(positions=pos[order], cell=cell, types=types[order], ids=ids[order], step=0, origin=origin,
                  images=None if images is None else images[order], velocities=vel,
                  info={"q": q[order]} if q is not None else {})
    if masses and set(np.unique(types).tolist()) <= set(masses):
        _apply_types(frame, masses)
    return frame


def _iter_xdatcar(path: Path) -> Iterator[Frame]:
    """VASP XDATCAR (fixed or variable cell), one configuration at a time."""
    with open(path) as fh:

        def read_header(first_line):
            scale = float(fh.readline().split()[0])
            lat = np.array([fh.readline().split()[:3] for _ in range(3)], dtype=float)
            if scale < 0:  # volume given
                lat *= (abs(scale) / abs(np.linalg.det(lat))) ** (1 / 3)
            else:
                lat *= scale
            syms = fh.readline().split()
            counts = [int(x) for x in fh.readline().split()]
            symbols = np.repeat(np.array(syms), counts)
            return lat, symbols

        title = fh.readline()
        if not title:
            return
        cell, symbols = read_header(title)
        n = len(symbols)
        line = fh.readline()
        while line:
            s = line.strip()
            if not s:
                line = fh.readline()
                continue
            if not (s.startswith("Direct configuration") or s.startswith("Cartesian configuration")
                    or s.startswith("Direct") or s.startswith("Cartesian")):
                cell, symbols = read_header(line)  # variable-cell XDATCAR repeats the header
                n = len(symbols)
                line = fh.readline()
                continue
            m = re.search(r"=\s*(\d+)", s)
            step_ = int(m.group(1)) if m else None
            lines = list(itertools.islice(fh, n))
            if len(lines) < n:
                return  # truncated last frame
            xyz = np.array([ln.split()[:3] for ln in lines], dtype=float)
            pos = xyz @ cell if s.startswith("D") else xyz
            yield Frame(positions=pos, cell=cell.copy(), symbols=symbols, ids=np.arange(1, n + 1), step=step_)
            line = fh.readline()


def _iter_ase(path: Path, fmt: str) -> Iterator[Frame]:
    """extxyz / ASE .traj / anything ASE reads, through ase.io.iread (lazy)."""
    import ase.io

    try:
        it = ase.io.iread(str(path), index=":", format=fmt)
        for i, atoms in enumerate(it):
            yield Frame.from_atoms(atoms, step=atoms.info.get("step", i) if hasattr(atoms, "info") else i)
    except UserError:
        raise
    except (ValueError, KeyError, IndexError, OSError, StopIteration) as exc:
        raise UserError(f"{path}: cannot read as {fmt}: {exc}", "check the file or give --format") from exc


# --------------------------------------------------------------------------------------------- unwrapping
def unwrap(frames: Iterable[Frame], method: str = "auto") -> Iterator[Frame]:
    """Yield frames whose ``positions`` are unwrapped (continuous) trajectories.

    ``method``:

    * ``"images"``: positions + image flags @ cell (exact; needs ``ix iy iz`` in the dump);
    * ``"displacement"``: minimum-image displacement between consecutive frames, accumulated
      from the first frame.  **Caveat**: exact only if no atom moves more than half a box
      length between two stored frames (dump often enough); with a changing cell (NPT) the
      fractional displacement is converted with the current cell, which is the usual convention
      but not unique;
    * ``"auto"``: frames already unwrapped (``xu yu zu``) pass through, then image flags if the
      frame has them, else displacements.
    """
    if method not in ("auto", "images", "displacement"):
        raise UserError(f"unknown unwrap method {method!r}", "use auto, images or displacement")
    prev_frac = None
    acc = None
    for fr in frames:
        if method == "auto" and fr.unwrapped:
            yield fr
            continue
        if method == "images" or (method == "auto" and fr.images is not None):
            if fr.images is None:
                raise UserError("unwrapping from image flags needs ix iy iz in the dump", "use method='displacement'")
            yield replace(fr, positions=fr.positions + fr.images @ fr.cell, unwrapped=True)
            continue
        inv = np.linalg.inv(fr.cell)
        frac = (fr.positions - fr.origin) @ inv
        if prev_frac is None:
            acc = fr.positions.copy()
        else:
            if frac.shape != prev_frac.shape:
                raise UserError("the number of atoms changes between frames; cannot unwrap")
            d = frac - prev_frac
            d -= np.round(d)
            acc = acc + d @ fr.cell
        prev_frac = frac
        yield replace(fr, positions=acc.copy(), unwrapped=True)


# --------------------------------------------------------------------------------------------- writers (tests, benchmarks)
def write_lammps_dump(path: str | os.PathLike, frames: Iterable[Frame], columns: Sequence[str] = ("id", "type", "x", "y", "z"),
                      type_of: Mapping[str, int] | None = None, mode: str = "w", shuffle: bool = False,
                      seed: int = 0) -> None:
    """Write frames as a LAMMPS text dump (restricted triclinic cells only).

    ``columns`` from id type element x y z xs ys zs xu yu zu ix iy iz vx vy vz; ``shuffle`` writes
    atoms in random order (to test id sorting).
    """
    rng = np.random.default_rng(seed)
    with open(path, mode) as fh:
        for k, fr in enumerate(frames):
            cell = np.asarray(fr.cell, dtype=float)
            if abs(cell[0, 1]) > 1e-12 or abs(cell[0, 2]) > 1e-12 or abs(cell[1, 2]) > 1e-12:
                raise ValueError("write_lammps_dump needs a lower-triangular (LAMMPS) cell; use cell_to_lammps")
            lo = np.asarray(fr.origin, dtype=float)
            lx, ly, lz = cell[0, 0], cell[1, 1], cell[2, 2]
            xy, xz, yz = cell[1, 0], cell[2, 0], cell[2, 1]
            n = fr.n_atoms
            fh.write(f"ITEM: TIMESTEP\n{fr.step if fr.step is not None else k}\nITEM: NUMBER OF ATOMS\n{n}\n")
            tric = abs(xy) + abs(xz) + abs(yz) > 0
            if tric:
                fh.write("ITEM: BOX BOUNDS xy xz yz pp pp pp\n")
                fh.write(f"{lo[0] + min(0, xy, xz, xy + xz):.10f} {lo[0] + lx + max(0, xy, xz, xy + xz):.10f} {xy:.10f}\n")
                fh.write(f"{lo[1] + min(0, yz):.10f} {lo[1] + ly + max(0, yz):.10f} {xz:.10f}\n")
                fh.write(f"{lo[2]:.10f} {lo[2] + lz:.10f} {yz:.10f}\n")
            else:
                fh.write("ITEM: BOX BOUNDS pp pp pp\n")
                for d, L in enumerate((lx, ly, lz)):
                    fh.write(f"{lo[d]:.10f} {lo[d] + L:.10f}\n")
            fh.write("ITEM: ATOMS " + " ".join(columns) + "\n")
            ids = fr.ids if fr.ids is not None else np.arange(1, n + 1)
            if fr.types is not None:
                types = fr.types
            elif type_of is not None and fr.symbols is not None:
                types = np.array([type_of[s] for s in fr.symbols])
            else:
                types = np.ones(n, dtype=int)
            pos = fr.positions
            frac = (pos - lo) @ np.linalg.inv(cell)
            img = fr.images if fr.images is not None else np.zeros((n, 3), dtype=int)
            colmap: dict[str, Any] = {
                "id": ids, "type": types, "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2],
                "xs": frac[:, 0], "ys": frac[:, 1], "zs": frac[:, 2],
                "ix": img[:, 0], "iy": img[:, 1], "iz": img[:, 2],
            }
            up = fr.unwrapped_positions()
            colmap.update({"xu": up[:, 0], "yu": up[:, 1], "zu": up[:, 2]})
            if fr.velocities is not None:
                colmap.update({"vx": fr.velocities[:, 0], "vy": fr.velocities[:, 1], "vz": fr.velocities[:, 2]})
            if fr.symbols is not None:
                colmap["element"] = fr.symbols
            order = rng.permutation(n) if shuffle else np.arange(n)
            parts = []
            for c in columns:
                v = np.asarray(colmap[c])[order]
                if c in ("id", "type", "ix", "iy", "iz"):
                    parts.append(v.astype(np.int64).astype(str))
                elif c == "element":
                    parts.append(v.astype(str))
                else:
                    parts.append(np.char.mod("%.10f", v))
            rows = [" ".join(r) for r in zip(*parts)]
            fh.write("\n".join(rows) + "\n")
