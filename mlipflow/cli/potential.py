"""``mlipflow potential ...``: evaluate fitted potentials on labeled data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="Fitted potentials (ACE .yaml/.yace; DeePMD .pth when installed).")
console = Console()


@app.command("evaluate")
def evaluate(
    potential: Path = typer.Argument(..., help="Potential file: ACE .yaml/.yace or a frozen DeePMD .pth."),
    data: Path = typer.Argument(..., help="Labeled data: pacemaker pickle (.pkl.gz/.pckl.gzip) or extxyz."),
    reference_energies: Optional[Path] = typer.Option(
        None, "--reference-energies", help="JSON/YAML {element: isolated-atom energy (eV)}; used when the "
        "data has no energy_corrected column."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the metrics as JSON here."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Parity plot PNG (default: <data>_parity.png "
                                        "next to --json, else none)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Energy (eV/atom) and force (eV/Å) MAE/RMSE of POTENTIAL on DATA, with a parity plot."""
    from mlipflow.engines.ace_eval import evaluate_potential, load_reference_energies

    refs = load_reference_energies(reference_energies)
    if plot is None and json_out is not None:
        plot = json_out.with_suffix(".png")
    ev = evaluate_potential(potential, data, reference_energies=refs, plot=plot, progress=progress)
    m = ev.metrics
    table = Table(title=f"{potential.name} on {data.name} ({m.n_structures} structures, {ev.energy_kind})")
    for col in ("quantity", "MAE", "RMSE"):
        table.add_column(col)
    table.add_row("energy (eV/atom)", f"{m.energy_mae:.5g}", f"{m.energy_rmse:.5g}")
    table.add_row("force (eV/Å)", f"{m.force_mae:.5g}", f"{m.force_rmse:.5g}")
    console.print(table)
    if "note" in ev.extra:
        console.print(f"[yellow]note:[/] {ev.extra['note']}")
    payload = {"potential": str(potential), "data": str(data), **ev.summary()}
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(payload, indent=1))
        console.print(f"metrics written to {json_out}")
    if ev.plot:
        console.print(f"parity plot: {ev.plot}")
