"""``mlipflow dataset``: show, export and import versioned datasets.

    mlipflow dataset show [NAME] [--version N]
    mlipflow dataset export NAME --format pacemaker|extxyz|deepmd --out PATH [--type-map Na,Fe,P,O] [--split train]
    mlipflow dataset import PATH... --dataset NAME
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from mlipflow.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Versioned datasets: show, export (pacemaker, extxyz, DeePMD), import.")
console = Console()

FORMATS = ("pacemaker", "extxyz", "deepmd")


@app.command("show")
def show(
    name: Optional[str] = typer.Argument(None, help="Dataset name (omit to list all datasets)."),
    version: Optional[int] = typer.Option(None, "--version", "-v", help="Version (default: latest)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write energy/force/composition histograms (PNG)."),
) -> None:
    """List datasets, or show one version: sizes, split, compositions, reference energies, exports."""
    from mlipflow.engines.repository import list_datasets, load_dataset

    if name is None:
        docs = list_datasets()
        if not docs:
            console.print("no datasets yet: build one with `mlipflow label FILES... --dataset NAME` or `mlipflow dataset import`")
            return
        table = Table(title="datasets (latest versions)")
        for col in ("name", "version", "frames", "train", "test", "failed excl.", "created"):
            table.add_column(col)
        for d in sorted(docs, key=lambda d: d.name):
            table.add_row(d.name, str(d.version), str(len(d.frame_ids)), str(len(d.train_ids)), str(len(d.test_ids)),
                          str(d.n_failed_excluded), d.created_at.strftime("%Y-%m-%d %H:%M"))
        console.print(table)
        return
    doc, frames = load_dataset(name, version)
    console.print(f"[bold]{doc.name}[/] version {doc.version}" + (f" (parent {doc.parent})" if doc.parent else ""))
    console.print(f"  frames: {len(doc.frame_ids)} ({len(doc.train_ids)} train / {len(doc.test_ids)} test), "
                  f"split {doc.split}")
    console.print(f"  failed frames excluded: {doc.n_failed_excluded}; duplicates removed: {doc.n_duplicates_removed}")
    labelers = Counter(f.labeler for f in frames)
    sources = Counter(f.source or "-" for f in frames)
    console.print(f"  labelers: {dict(labelers)}; sources: {dict(sources)}")
    comps = Counter(f.formula for f in frames)
    console.print(f"  compositions ({len(comps)}): " + ", ".join(f"{k}×{v}" for k, v in comps.most_common(12)))
    if doc.reference_energies:
        console.print("  reference energies (eV): " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(doc.reference_energies.items())))
    if doc.exports:
        console.print(f"  exports: {doc.exports}")
    if plot is not None:
        from mlipflow.engines.dataset_io import plot_dataset

        console.print(f"  plot: {plot_dataset(doc, frames, plot)}")


@app.command("export")
def export(
    name: str = typer.Argument(..., help="Dataset name."),
    fmt: str = typer.Option(..., "--format", "-f", help="pacemaker | extxyz | deepmd."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (pacemaker: .pkl.gz, extxyz) or directory (deepmd)."),
    type_map: Optional[str] = typer.Option(None, "--type-map", help="DeePMD type map, comma-separated (default: sorted elements)."),
    version: Optional[int] = typer.Option(None, "--version", "-v", help="Version (default: latest)."),
    split: str = typer.Option("all", "--split", help="all | train | test."),
) -> None:
    """Export a dataset version for pacemaker (gzip pandas pickle), as extxyz, or as DeePMD npy."""
    from mlipflow.engines.dataset_io import export_deepmd, export_extxyz, export_pacemaker
    from mlipflow.engines.repository import load_dataset, record_export

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}", f"use --format {' | '.join(FORMATS)}")
    if split not in ("all", "train", "test"):
        raise UserError(f"unknown split {split!r}", "use --split all, train or test")
    doc, frames = load_dataset(name, version)
    if split != "all":
        keep = set(doc.train_ids if split == "train" else doc.test_ids)
        frames = [f for f in frames if f.frame_id in keep]
    if not frames:
        raise UserError(f"dataset {name}:{doc.version} has no frames in split {split!r}", "choose another split")
    if fmt == "pacemaker":
        path = export_pacemaker(frames, out, doc.reference_energies or None)
    elif fmt == "extxyz":
        path = export_extxyz(frames, out)
    else:
        tm = [t.strip() for t in type_map.split(",")] if type_map else None
        path = export_deepmd(frames, out, tm)
    record_export(doc, fmt if split == "all" else f"{fmt}-{split}", path)
    console.print(f"exported {len(frames)} frames of {doc.name}:{doc.version} ({split}) as {fmt} to {path}")


@app.command("import")
def import_(
    paths: List[Path] = typer.Argument(..., help="vasprun.xml / OUTCAR / VASP run directories, *.extxyz, pacemaker *.pkl.gz; directories of "
                             "such files and quoted glob patterns."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset to add the frames to (a new version)."),
    split: str = typer.Option("random", "--split", help="random | composition."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", help="Fraction of new frames in the test split."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split."),
    extend: bool = typer.Option(True, "--extend/--new", help="Extend the latest version of the dataset if it exists."),
) -> None:
    """Import labeled frames from VASP runs, extxyz or pacemaker pickles into a dataset."""
    from mlipflow.engines.dataset_io import expand_inputs, import_files
    from mlipflow.engines.repository import build_dataset, list_datasets

    frames = import_files(expand_inputs(list(paths), keep_dirs=True))
    parent = dataset if extend and any(d.name == dataset for d in list_datasets()) else None
    doc = build_dataset(dataset, frames, split=split, test_fraction=test_fraction, seed=seed, parent=parent)
    console.print(f"imported {len(frames)} frames -> dataset [bold]{doc.name}[/] version {doc.version}: "
                  f"{len(doc.frame_ids)} frames, {doc.n_failed_excluded} failed excluded, "
                  f"{doc.n_duplicates_removed} duplicates removed")
