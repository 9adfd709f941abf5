"""``mlipflow label``: label structure files with a reference calculator, optionally into a dataset.

    mlipflow label --labeler chgnet cells/*.extxyz --dataset nafepo4-init
    mlipflow label --labeler vasp:nafepo4_ace POSCAR_* --set user_incar_settings.NCORE=4
    mlipflow label --labeler mypkg.calc:MyCalc a.cif --set model=/path/model.pt

Frames already labeled with the same settings come from the store (content hash); failed
frames are stored with their reason and left out of the dataset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from mlipflow.errors import UserError

console = Console()


def read_structures(files: list[Path]) -> list[tuple[Any, str]]:
    """(pymatgen Structure, origin) from extxyz/xyz (all frames), POSCAR/CONTCAR, CIF, pymatgen
    JSON, or mlipflow structure-set JSON; a directory contributes the files inside it."""
    from pymatgen.core import Structure

    from mlipflow.engines.dataset_io import expand_inputs
    from mlipflow.engines.frames import to_structure

    out: list[tuple[Any, str]] = []
    skipped: list[Path] = []
    paths = expand_inputs(files, skipped=skipped)
    if skipped:
        console.print(f"skipping {len(skipped)} file(s) that hold no structure: "
                      f"{', '.join(sorted({p.name for p in skipped}))}")
    for p in paths:
        name = p.name.lower()
        try:
            if name.endswith(".json"):
                data = json.loads(p.read_text())
                items = data.get("structures", data) if isinstance(data, dict) else data
                items = [items] if isinstance(items, dict) else items
                out += [(Structure.from_dict(d), f"{p.name}:{i}") for i, d in enumerate(items)]
            elif name.endswith((".xyz", ".extxyz", ".traj")):
                from ase.io import read

                out += [(to_structure(a), f"{p.name}:{i}") for i, a in enumerate(read(p, index=":"))]
            else:
                try:
                    out.append((Structure.from_file(p), p.name))
                except Exception:  # noqa: BLE001 - then any format ASE reads (LAMMPS data, .cfg, ...)
                    from ase.io import read

                    out += [(to_structure(a), f"{p.name}:{i}") for i, a in enumerate(read(p, index=":"))]
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"cannot read structures from {p} ({type(exc).__name__}: {exc})",
                            "give extxyz, POSCAR/CONTCAR, CIF, pymatgen/mlipflow JSON or another format ASE or "
                            "pymatgen reads") from exc
    if not out:
        raise UserError("no structures found in the given files", "give at least one structure file")
    return out


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` options (VALUE parsed as JSON when it can be; dotted keys nest)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"cannot read option {item!r}", "write it as KEY=VALUE, e.g. --set use_device=cpu")
        key, value = item.split("=", 1)
        try:
            val: Any = json.loads(value)
        except json.JSONDecodeError:
            val = value
        d = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            d = d.setdefault(part, {})
        d[parts[-1]] = val
    return out


def parse_references(text: str | None) -> dict[str, float] | None:
    if not text or text in ("auto", "none"):
        return None
    out = {}
    for item in text.split(","):
        try:
            el, val = item.split("=")
            out[el.strip()] = float(val)
        except ValueError:
            raise UserError(f"cannot read reference energy {item!r}", "write them as Fe=-3.2,O=-1.5 (eV)") from None
    return out


def command(
    files: List[Path] = typer.Argument(..., help="Structure files: extxyz (all frames), POSCAR, CIF, JSON; directories."),
    labeler: Optional[str] = typer.Option(None, "--labeler", "-l", help="chgnet | emt | vasp:nafepo4_ace | vasp:lixfepo4_dpa | package.module:Class (default: settings.default_labeler)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Add the labeled frames to a new version of this dataset."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Labeler option KEY=VALUE (repeatable), e.g. --set force_threshold=50."),
    split: str = typer.Option("random", "--split", help="Train/test split of the dataset: random | composition."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", help="Fraction of frames in the test split."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split."),
    references: str = typer.Option("auto", "--references", help="Isolated-atom energies: auto (computed by the labeler; not for VASP), none, or El=eV,... ."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Recompute frames stored as failed."),
    mode: str = typer.Option("static", "--mode", help="static (single points) | aimd (NVT MD, a frame every --every steps) | relax (every ionic step: VASP RelaxMaker or an ASE optimiser)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="aimd: temperature (K); VASP default: the set's preset."),
    steps: Optional[int] = typer.Option(None, "--steps", help="aimd: number of MD steps."),
    timestep: Optional[float] = typer.Option(None, "--timestep", help="aimd: time step (fs)."),
    every: Optional[int] = typer.Option(None, "--every", help="aimd: keep a frame every N steps."),
    extend: bool = typer.Option(True, "--extend/--new", help="Extend the latest version of --dataset if it exists "
                                "(its frames, split and reference energies kept), or start it anew."),
) -> None:
    """Label structures with a reference calculator (cached by content hash) and optionally build a dataset."""
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.engines.repository import build_dataset
    from mlipflow.schemas import FrameStatus

    lab = get_labeler(labeler, **parse_sets(set_))  # a bad labeler is named before any file is read
    items = read_structures(list(files))
    structs = [s for s, _ in items]
    console.print(f"labeling {len(structs)} structures with [bold]{lab.name}[/] ({mode})")
    if mode == "static":
        frames = lab.label(structs, source="static", metadata=[{"file": o} for _, o in items], progress=True,
                           retry_failed=retry_failed)
    elif mode == "aimd":
        md_kw = {"temperature": temperature, "steps": steps, "timestep_fs": timestep, "every": every}
        if lab.kind != "vasp":
            defaults = {"temperature": 5000.0, "steps": 100, "timestep_fs": 2.0, "every": 20}  # NaFePO4 initial protocol
            md_kw = {k: (v if v is not None else defaults[k]) for k, v in md_kw.items()}
        frames, origins = [], []
        for s, o in items:
            traj = lab.md(s, metadata={"file": o}, **md_kw)
            frames += traj
            origins += [f"{o}@{f.step}" for f in traj]
        items = list(zip([None] * len(frames), origins))
    elif mode == "relax":
        frames, origins = [], []
        for s, o in items:
            traj = lab.relax(s, metadata={"file": o})
            frames += traj
            origins += [f"{o}@{f.step}" for f in traj]
        items = list(zip([None] * len(frames), origins))
    else:
        raise UserError(f"unknown mode {mode!r}", "use --mode static, aimd or relax")
    failed = [f for f in frames if f.status != FrameStatus.ok]
    table = Table(title=f"{lab.name}: {len(frames) - len(failed)} ok, {len(failed)} failed")
    for col in ("file", "formula", "atoms", "energy (eV/atom)", "max |F| (eV/Å)", "status"):
        table.add_column(col)
    import numpy as np

    for (_, origin), f in list(zip(items, frames))[:30]:
        fmax = float(np.max(np.linalg.norm(np.asarray(f.forces), axis=1))) if f.forces else float("nan")
        e = f"{f.energy / f.nsites:.4f}" if f.energy is not None else "-"
        table.add_row(origin, f.formula, str(f.nsites), e, f"{fmax:.3f}",
                      "ok" if f.status == FrameStatus.ok else f"[red]failed[/]: {f.failure_reason}")
    if len(frames) > 30:
        table.caption = f"(first 30 of {len(frames)})"
    console.print(table)
    if dataset:
        from mlipflow.engines.repository import list_datasets

        parent = dataset if extend and any(d.name == dataset for d in list_datasets()) else None
        refs = parse_references(references)
        if refs is None and references == "auto" and lab.kind != "vasp" and parent is None:
            elements = sorted({el for f in frames if f.status == FrameStatus.ok for el in f.elements})
            refs = lab.reference_energies(elements) if elements else None
        doc = build_dataset(dataset, frames, split=split, test_fraction=test_fraction, seed=seed, reference_energies=refs,
                            parent=parent)
        console.print(f"dataset [bold]{doc.name}[/] version {doc.version}: {len(doc.frame_ids)} frames "
                      f"({len(doc.train_ids)} train / {len(doc.test_ids)} test), {doc.n_failed_excluded} failed excluded, "
                      f"{doc.n_duplicates_removed} duplicates removed")
