"""Datasets in and out of files: exporters, importers, sampling, summaries and plots.

* Exporters: pacemaker gzip pandas pickle (``ase_atoms``, ``energy``, ``forces``,
  ``energy_corrected``), extxyz, DeePMD npy through dpdata (``set.000/*.npy``, ``type.raw``,
  ``type_map.raw``).
* Importers: VASP runs (vasprun.xml or OUTCAR), extxyz and pacemaker pickles.
* :func:`sample_frames`, :func:`collect_frames` and :func:`frames_summary` for the labeling
  makers; :func:`plot_dataset` for a dataset version.

Frames are built in :mod:`mlipflow.engines.frames`; the frame store and the dataset versions
are in :mod:`mlipflow.engines.repository`.

Units: energies eV, forces eV/Å, stress GPa with the ASE sign convention (positive = tensile),
magnetic moments µB.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlipflow.engines.frames import (
    DEFAULT_FORCE_THRESHOLD,
    EV_A3_TO_GPA,
    _energy_corrected,
    _frame_from_doc,
    frame_to_atoms,
    frames_to_atoms,
    make_frame,
    structure_key,
    to_structure,
)
from mlipflow.engines.repository import load_frames
from mlipflow.errors import UserError
from mlipflow.schemas import DatasetDoc, FrameStatus, LabeledFrame, content_hash

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- exporters


def pacemaker_dataframe(frames: Sequence[LabeledFrame], reference_energies: dict[str, float] | None = None):
    """pandas DataFrame with the columns pacemaker reads: ``ase_atoms``, ``energy``, ``forces``,
    ``energy_corrected`` (= E − Σ isolated-atom energies; = E when no references are given)."""
    import pandas as pd

    ok = [f for f in frames if f.status == FrameStatus.ok]
    atoms = frames_to_atoms(ok)
    for a in atoms:
        a.calc = None  # pacemaker reads the columns, not a calculator
    return pd.DataFrame(
        {
            "ase_atoms": atoms,
            "energy": [float(f.energy) for f in ok],
            "forces": [np.asarray(f.forces, dtype=float) for f in ok],
            "energy_corrected": [_energy_corrected(f, reference_energies) for f in ok],
            "name": [f.frame_id for f in ok],
        }
    )


def export_pacemaker(frames: Sequence[LabeledFrame], path: str | Path, reference_energies: dict[str, float] | None = None) -> Path:
    """Write the pacemaker training file (gzip-compressed pandas pickle, ``*.pkl.gz``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pacemaker_dataframe(frames, reference_energies)
    df.to_pickle(path, compression="gzip", protocol=4)
    log.info("wrote %d frames to %s", len(df), path)
    return path


def export_extxyz(frames: Sequence[LabeledFrame], path: str | Path) -> Path:
    """Write frames as extended XYZ (energy, forces, stress, magmoms, frame_id in info)."""
    from ase.io import write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = [f for f in frames if f.status == FrameStatus.ok]
    write(path, frames_to_atoms(ok), format="extxyz")
    return path


def export_deepmd(frames: Sequence[LabeledFrame], directory: str | Path, type_map: Sequence[str] | None = None) -> Path:
    """Write DeePMD npy systems (one sub-directory per formula/atom order) via dpdata.

    Each system has ``type.raw``, ``type_map.raw`` and ``set.000/{box,coord,energy,force[,virial]}.npy``.
    ``type_map`` defaults to the sorted elements of all frames; every element must be in it.
    """
    import dpdata

    directory = Path(directory)
    ok = [f for f in frames if f.status == FrameStatus.ok]
    if not ok:
        raise UserError("no usable (status ok) frames to export", "label some structures first")
    elements = sorted({el for f in ok for el in f.elements})
    type_map = list(type_map) if type_map else elements
    missing = [el for el in elements if el not in type_map]
    if missing:
        raise UserError(f"type map {type_map} lacks {missing}", "add them to --type-map (order = model type indices)")
    groups: dict[tuple, list[LabeledFrame]] = {}
    for f in ok:
        species = tuple(site["species"][0]["element"] for site in f.structure["sites"])
        groups.setdefault(species, []).append(f)
    ms = dpdata.MultiSystems(type_map=type_map)
    has_virial = all(f.stress is not None for f in ok)
    for species, group in groups.items():
        atom_types = np.array([type_map.index(s) for s in species], dtype=int)
        cells, coords, energies, forces, virials = [], [], [], [], []
        for f in group:
            atoms = frame_to_atoms(f)
            cells.append(np.asarray(atoms.cell))
            coords.append(atoms.get_positions())
            energies.append(f.energy)
            forces.append(np.asarray(f.forces, dtype=float))
            if has_virial:
                virials.append(-np.asarray(f.stress, dtype=float) / EV_A3_TO_GPA * atoms.get_volume())
        data = {
            "atom_names": list(type_map),
            "atom_numbs": [int(np.sum(atom_types == i)) for i in range(len(type_map))],
            "atom_types": atom_types,
            "orig": np.zeros(3),
            "cells": np.array(cells),
            "coords": np.array(coords),
            "energies": np.array(energies, dtype=float),
            "forces": np.array(forces),
            "nopbc": False,
        }
        if has_virial:
            data["virials"] = np.array(virials)
        ms.append(dpdata.LabeledSystem(data=data, type_map=list(type_map)))
    directory.mkdir(parents=True, exist_ok=True)
    ms.to_deepmd_npy(str(directory))
    return directory


def deepmd_systems(directory: str | Path) -> list[Path]:
    """The system directories (those with ``type.raw``) under an exported DeePMD folder."""
    return sorted(p.parent for p in Path(directory).rglob("type.raw"))


# ----------------------------------------------------------------------------- importers


def _import_frame(atoms, labeler: str, settings: dict, source: str, step: int | None = None,
                  trajectory_id: str | None = None, metadata: dict | None = None,
                  energy: float | None = None, forces=None, force_threshold=DEFAULT_FORCE_THRESHOLD) -> LabeledFrame:
    from ase.calculators.calculator import PropertyNotImplementedError

    s = to_structure(atoms)
    calc = atoms.calc
    stress = magmoms = None
    if calc is not None:
        if energy is None:
            try:
                energy = atoms.get_potential_energy()
            except (PropertyNotImplementedError, RuntimeError):
                energy = None
        if forces is None:
            try:
                forces = atoms.get_forces()
            except (PropertyNotImplementedError, RuntimeError):
                forces = None
        try:
            stress = atoms.get_stress(voigt=False) * EV_A3_TO_GPA
        except (PropertyNotImplementedError, RuntimeError, AttributeError):
            stress = None
        try:
            magmoms = calc.get_property("magmoms", atoms, allow_calculation=False)
        except (PropertyNotImplementedError, RuntimeError, AttributeError):
            magmoms = None
    fid = content_hash(structure_key(s), labeler, settings, energy if energy is not None else "none")
    return make_frame(s, frame_id=fid, labeler=labeler, labeler_settings=settings, energy=energy,
                      forces=forces, stress_gpa=stress, magmoms=magmoms, source=source, step=step,
                      trajectory_id=trajectory_id, metadata=metadata, force_threshold=force_threshold)


def import_vasp(path: str | Path, every: int = 1, labeler: str = "import:vasp") -> list[LabeledFrame]:
    """Frames from a VASP run: a ``vasprun.xml`` or ``OUTCAR`` file, or a directory holding one.

    Every ``every``-th ionic step becomes a frame (the last one always); an unconverged
    electronic step or an unfinished run becomes a failed frame with its reason.
    """
    from mlipflow.engines import vasp as vasp_engine

    return vasp_engine.parse_vasp_outputs(path, every=every, labeler=labeler)


def import_extxyz(path: str | Path, labeler: str = "import:extxyz") -> list[LabeledFrame]:
    """Frames from an (extended) XYZ file with energies/forces (stress, magmoms if present)."""
    from ase.io import iread

    path = Path(path)
    out = []
    for i, atoms in enumerate(iread(str(path), index=":")):
        meta = {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool))}
        out.append(_import_frame(atoms, labeler, {"file": path.name}, f"import:{path.name}", step=i, metadata=meta))
    return out


def import_pacemaker(path: str | Path, labeler: str = "import:pacemaker") -> list[LabeledFrame]:
    """Frames from a pacemaker pickle (``ase_atoms`` plus ``energy`` and/or ``energy_corrected``,
    ``forces``). With only ``energy_corrected`` that value becomes the energy and
    ``metadata.energy_is_corrected`` is set."""
    import pandas as pd

    path = Path(path)
    df = pd.read_pickle(path, compression="infer")
    if "ase_atoms" not in df.columns:
        raise UserError(f"{path} has no 'ase_atoms' column", "give a pacemaker dataset pickle (ase_atoms, energy/energy_corrected, forces)")
    if "energy" not in df.columns and "energy_corrected" not in df.columns:
        raise UserError(f"{path} has neither 'energy' nor 'energy_corrected'", "give a pacemaker dataset pickle")
    out = []
    for i, row in enumerate(df.itertuples(index=False)):
        r = row._asdict()
        meta: dict[str, Any] = {}
        if "energy" in r and r["energy"] is not None and not (isinstance(r["energy"], float) and math.isnan(r["energy"])):
            energy = float(r["energy"])
            if "energy_corrected" in r:
                meta["energy_corrected"] = float(r["energy_corrected"])
        else:
            energy = float(r["energy_corrected"])
            meta["energy_is_corrected"] = True
        if "name" in r and isinstance(r["name"], str):
            meta["name"] = r["name"]
        forces = np.asarray(r["forces"], dtype=float) if "forces" in r else None
        out.append(_import_frame(r["ase_atoms"], labeler, {"file": path.name}, f"import:{path.name}", step=i,
                                 metadata=meta, energy=energy, forces=forces))
    return out


#: What `mlipflow generate` writes beside the structures (generation/writers.py): not structures.
GENERATOR_SUMMARIES = ("summary.json", "summary.csv")


def expand_inputs(items: Sequence[str | Path], keep_dirs: bool = False, skipped: list | None = None) -> list[Path]:
    """Files named by ``items`` as users give them: paths, directories (the files inside, sorted)
    and glob patterns (quoted, so the shell did not expand them); the generator's summary files and
    hidden files are skipped (and appended to ``skipped`` when given). ``keep_dirs``: a VASP run
    directory stays itself."""
    import glob

    out: list[Path] = []
    for item in items:
        text = str(item)
        if is_pattern(text):
            hits = sorted(glob.glob(text, recursive=True))
            if not hits:
                raise UserError(f"no file matches {text!r}", "check the pattern (quote it to let mlipflow expand it)")
            out += [Path(h) for h in hits]
            continue
        p = Path(text)
        if not p.exists():
            raise UserError(f"{p} does not exist", "check the path")
        if p.is_dir() and not (keep_dirs and _is_vasp_dir(p)):
            out += sorted(f for f in p.iterdir() if f.is_file())
        else:
            out.append(p)
    drop = [p for p in out if p.name in GENERATOR_SUMMARIES or p.name.startswith(".")]
    if skipped is not None:
        skipped += drop
    return [p for p in out if p not in drop]


def is_pattern(text: str) -> bool:
    """A glob pattern to expand (not an existing path that happens to hold ``*?[``)."""
    return not Path(text).exists() and any(c in text for c in "*?[")


def _is_vasp_dir(p: Path) -> bool:
    return any(p.glob("vasprun*.xml*")) or any(p.glob("OUTCAR*"))


def read_pool(items: Sequence[str]) -> tuple[list, list[str]]:
    """Frames to choose from, as ASE ``Atoms`` (labels kept as single-point results) with their
    origins: files (extxyz/xyz/traj or any format ASE reads, pacemaker pickles, vasprun.xml/OUTCAR),
    directories, glob patterns, or stored dataset versions ``NAME[:VERSION]``."""
    from mlipflow.engines.repository import list_datasets, load_dataset

    atoms, origins = [], []
    names = None
    for item in items:
        text = str(item)
        if not Path(text).exists() and not is_pattern(text):
            names = names if names is not None else {d.name for d in list_datasets()}
            name, sep, ver = text.rpartition(":")
            if not sep or not ver.isdigit():
                name, ver = text, ""
            if name not in names:
                raise UserError(f"{text!r} is neither a file nor a stored dataset",
                                "give structure files, a directory, a quoted glob, or a dataset NAME[:VERSION] "
                                "(mlipflow dataset list)")
            doc, frames = load_dataset(name, int(ver) if ver else None)
            atoms += frames_to_atoms(frames)
            origins += [f"{doc.name}:{doc.version}#{k}" for k in range(len(frames))]
            continue
        for p in expand_inputs([text], keep_dirs=True):
            importer = _importer(p)
            if importer is not None and importer is not import_extxyz:  # xyz: ASE keeps unlabelled frames too
                got = frames_to_atoms(importer(p))
            else:
                from ase.io import read

                try:
                    got = read(str(p), index=":")
                except Exception as exc:  # noqa: BLE001 - any reader error is bad input
                    raise UserError(f"cannot read frames from {p} ({type(exc).__name__}: {exc})",
                                    "give extxyz/xyz, .traj, a pacemaker pickle, vasprun.xml/OUTCAR or any "
                                    "format ASE reads") from None
            atoms += got
            origins += [f"{p.name}#{k}" for k in range(len(got))]
    if not atoms:
        raise UserError("the pool has no frames", "give files or datasets with at least one frame")
    return atoms, origins


def import_files(paths: Sequence[str | Path]) -> list[LabeledFrame]:
    """Import by file type: ``*.pkl``/``*.pkl.gz`` (pacemaker), ``*.xyz``/``*.extxyz``,
    ``vasprun*.xml``/``OUTCAR*`` or a VASP run directory."""
    out: list[LabeledFrame] = []
    for p in map(Path, paths):
        if not p.exists():
            raise UserError(f"{p} does not exist", "check the path")
        importer = _importer(p)
        if importer is None:
            raise UserError(f"unknown file type {p.name}", "give *.pkl.gz, *.extxyz/*.xyz, vasprun.xml, OUTCAR or a VASP run directory")
        out += importer(p)
    return out


def _importer(p: Path):
    """The importer of a labelled file by its type (None: not one of them)."""
    name = p.name.lower()
    if name.endswith((".pkl", ".pkl.gz", ".pckl.gzip", ".pkl.gzip")):
        return import_pacemaker
    if name.endswith((".xyz", ".extxyz")):
        return import_extxyz
    if p.is_dir() or "vasprun" in name or "outcar" in name:
        return import_vasp
    return None


# ----------------------------------------------------------------------------- sampling


def sample_frames(
    frames: Sequence[LabeledFrame],
    k: int,
    per: str = "trajectory",
    method: str = "uniform",
    seed: int = 0,
) -> list[LabeledFrame]:
    """Pick ``k`` ok frames per trajectory or per composition, as the papers did
    (41 frames from each of 20 relaxations; 150 frames at each of 5 compositions).

    ``per``: ``'trajectory'`` (``trajectory_id``; frames without one form their own group),
    ``'composition'`` (reduced formula) or ``'all'``. ``method``: ``'uniform'`` (evenly spaced
    along the trajectory/step order, always including the first and last) or ``'random'``
    (seeded). Groups with ≤ k frames are kept whole. Failed frames are never picked.
    """
    if k < 1:
        raise UserError(f"k must be ≥ 1 (got {k})", "pick at least one frame per group")
    if per not in ("trajectory", "composition", "all"):
        raise UserError(f"unknown grouping {per!r}", "use per='trajectory', 'composition' or 'all'")
    if method not in ("uniform", "random"):
        raise UserError(f"unknown sampling method {method!r}", "use 'uniform' or 'random'")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[LabeledFrame]] = {}
    for f in frames:
        if f.status != FrameStatus.ok:
            continue
        key = {"trajectory": f.trajectory_id or f.frame_id, "composition": f.formula, "all": "all"}[per]
        groups.setdefault(key, []).append(f)
    out: list[LabeledFrame] = []
    for key in groups:
        g = sorted(groups[key], key=lambda f: (f.trajectory_id or "", f.step if f.step is not None else -1))
        if len(g) <= k:
            out += g
        elif method == "uniform":
            idx = np.unique(np.round(np.linspace(0, len(g) - 1, k)).astype(int))
            out += [g[i] for i in idx]
        else:
            idx = np.sort(rng.choice(len(g), size=k, replace=False))
            out += [g[i] for i in idx]
    return out


def collect_frames(*inputs: Any) -> list[LabeledFrame]:
    """Frames from anything the labeling makers pass around: LabeledFrame objects or dicts,
    lists (nested) of them, maker outputs (``{'frame_ids': [...]}``) or frame-id strings
    (loaded from the frame store)."""
    out: list[LabeledFrame] = []
    ids: list[str] = []

    def walk(x):
        if x is None:
            return
        if isinstance(x, LabeledFrame):
            out.append(x)
        elif isinstance(x, str):
            ids.append(x)
        elif isinstance(x, dict):
            if "frame_id" in x and "structure" in x:
                out.append(_frame_from_doc(x))
            elif "frame_ids" in x:
                walk(list(x["frame_ids"]))
            else:
                raise UserError(f"cannot read frames from a dict with keys {sorted(x)[:6]}", "pass frames or labeling outputs")
        elif isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
        else:
            raise UserError(f"cannot read frames from {type(x).__name__}", "pass frames or labeling outputs")

    for i in inputs:
        walk(i)
    if ids:
        have = {f.frame_id for f in out}
        loaded = load_frames([i for i in dict.fromkeys(ids) if i not in have])
        missing = set(ids) - have - {f.frame_id for f in loaded}
        if missing:
            log.warning("%d frame ids not found in the frame store", len(missing))
        out += loaded
    return out


def frames_summary(frames: Sequence[LabeledFrame], **extra: Any) -> dict[str, Any]:
    """Small job output for a list of frames (the frames themselves are in the frame store)."""
    failed = [f for f in frames if f.status != FrameStatus.ok]
    return {
        "frame_ids": [f.frame_id for f in frames],
        "n_frames": len(frames),
        "n_ok": len(frames) - len(failed),
        "n_failed": len(failed),
        "failures": {f.frame_id: f.failure_reason for f in failed},
        "formulas": sorted({f.formula for f in frames}),
        "trajectory_ids": sorted({f.trajectory_id for f in frames if f.trajectory_id}),
        **extra,
    }


# ----------------------------------------------------------------------------- plots


def plot_dataset(doc: DatasetDoc, frames: Sequence[LabeledFrame], path: str | Path) -> Path:
    """Histograms of energy per atom (corrected when references exist) and force components,
    train vs test, plus frames per composition (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    by_id = {f.frame_id: f for f in frames}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    refs = doc.reference_energies or None
    for ids, label in ((doc.train_ids, "train"), (doc.test_ids, "test")):
        fr = [by_id[i] for i in ids if i in by_id]
        if not fr:
            continue
        e = [_energy_corrected(f, refs) / f.nsites for f in fr]
        axes[0].hist(e, bins=30, alpha=0.6, label=f"{label} ({len(fr)})")
        fcomp = np.concatenate([np.asarray(f.forces).ravel() for f in fr])
        axes[1].hist(fcomp, bins=60, alpha=0.6, label=label, log=True)
    axes[0].set_xlabel("energy per atom (eV)" + (" − references" if refs else ""))
    axes[0].set_ylabel("frames")
    axes[1].set_xlabel("force component (eV/Å)")
    axes[1].set_ylabel("count")
    comps: dict[str, int] = {}
    for f in frames:
        comps[f.formula] = comps.get(f.formula, 0) + 1
    top = sorted(comps.items(), key=lambda kv: -kv[1])[:15]
    axes[2].barh([k for k, _ in top][::-1], [v for _, v in top][::-1])
    axes[2].set_xlabel("frames")
    axes[2].set_title("compositions (top 15)")
    for ax in axes[:2]:
        ax.legend()
    fig.suptitle(f"dataset {doc.name} v{doc.version}: {len(doc.frame_ids)} frames, {doc.n_failed_excluded} failed excluded")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
