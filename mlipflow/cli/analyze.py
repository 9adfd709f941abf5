"""``mlipflow analyze``: structure of glasses and crystals from structure/trajectory files.

``mlipflow analyze structure FILE... [--format F] [--types 1=Fe,2=Na,...] [--cutoff Fe-O=2.8 ...]
[--json OUT] [--plots DIR]`` prints density, coordination numbers (mean and cutoff), bridging
statistics, Qn and Guttman ring statistics. JSON keys are documented in docs/analysis.md.
The dynamics commands (diffusion, arrhenius, elastic, ...) and the polaron commands (polarons,
rate-arrhenius) are added by ``mlipflow.cli.analyze_dynamics.register`` and
``mlipflow.cli.analyze_polarons.register`` when those modules are present.
"""

from __future__ import annotations

import importlib
import itertools
import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from mlipflow.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Analyse structures and MD trajectories.")
console = Console()


def _fmt(x, nd=3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


@app.command("structure")
def structure(
    files: list[Path] = typer.Argument(..., help="Structure/trajectory files (pooled as frames of one system)."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="lammps-dump, lammps-data, extxyz, traj, xdatcar or an ASE format (default: guessed)."),  # noqa: A002
    types: Optional[str] = typer.Option(None, "--types", help="LAMMPS type map, e.g. 1=Fe,2=Na,3=P,4=O (or a data file with named Masses)."),
    cutoff: Optional[list[str]] = typer.Option(None, "--cutoff", help="Pair cutoff in Å, e.g. Fe-O=2.8 (repeatable); other pairs use the first minimum of g(r)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON here."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Write PNG plots into this directory."),
    rmax: Optional[float] = typer.Option(None, "--rmax", help="g(r) range in Å (default min(10, half the cell width))."),
    dr: float = typer.Option(0.02, "--dr", help="g(r) bin width in Å."),
    start: int = typer.Option(0, "--start", help="First frame (per file)."),
    stop: Optional[int] = typer.Option(None, "--stop", help="Stop before this frame (per file)."),
    every: int = typer.Option(1, "--every", help="Use every n-th frame."),
    formers: Optional[str] = typer.Option(None, "--formers", help="Network formers for Qn and rings, e.g. P,Fe (default: Si,P,B,Ge,Al present)."),
    ring_formers: Optional[str] = typer.Option(None, "--ring-formers", help="Atoms of the ring network, e.g. P,Fe (default: the formers)."),
    max_ring: int = typer.Option(12, "--max-ring", help="Largest ring searched (formers per ring)."),
    no_rings: bool = typer.Option(False, "--no-rings", help="Skip the ring analysis."),
) -> None:
    """Density, coordination, bridging, Qn, bond angles, rings (and g(r), S(Q) plots)."""
    from mlipflow.analysis.io import detect_format, iter_frames, parse_type_map
    from mlipflow.analysis.structure import analyze_structure, parse_cutoffs, to_json_dict
    from mlipflow.engines.dataset_io import expand_inputs

    files = expand_inputs(files)  # directories and quoted globs too
    for f in files:
        if not f.is_file():
            raise UserError(f"no such file: {f}", "check the path")
    if every < 1:
        raise UserError(f"--every must be >= 1 (got {every})")
    for f in files:
        detect_format(f, format)
    tmap = parse_type_map(types)
    cut = parse_cutoffs(cutoff or [])
    former_list = [s.strip() for s in formers.split(",") if s.strip()] if formers else None
    ring_list = [s.strip() for s in ring_formers.split(",") if s.strip()] if ring_formers else former_list

    def frames():
        return itertools.chain.from_iterable(
            iter_frames(f, format=format, types=tmap, start=start, stop=stop, step=every) for f in files)

    res = analyze_structure(frames, cutoffs=cut, rmax=rmax, dr=dr, formers=former_list, rings=not no_rings,
                            ring_formers=ring_list, max_ring=max_ring, progress=False)
    out = to_json_dict(res)
    out["files"] = [str(f) for f in files]
    if plots is not None:
        from mlipflow.analysis.plots_structure import plot_all

        out["plots"] = plot_all(res, plots)
    _print(out)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(out, indent=1))
        console.print(f"wrote {json_out}")


def _print(out: dict) -> None:
    comp = " ".join(f"{k}{v}" for k, v in out["composition"].items())
    console.print(f"[bold]{comp}[/]  {out['n_atoms']} atoms, {out['n_frames']} frame(s)   "
                  f"density {out['density_g_cm3']:.4f} g/cm³")
    t = Table(title="coordination (B around A)")
    for c in ("pair", "cutoff Å", "source", "mean CN", "distribution"):
        t.add_column(c)
    for k, v in out["coordination"].items():
        dist = " ".join(f"{n}:{p:.2f}" for n, p in (v.get("distribution") or {}).items() if p >= 0.005)
        t.add_row(k, _fmt(v.get("cutoff"), 2), v.get("cutoff_source", ""), _fmt(v.get("mean")), dist)
    console.print(t)
    if out.get("bridging"):
        t = Table(title="bridging: X-O-Y bonds per X")
        t.add_column("X-O-Y")
        t.add_column("per X")
        for k, v in out["bridging"].items():
            t.add_row(k, _fmt(v))
        console.print(t)
    if out.get("qn"):
        t = Table(title="Qn (bridging O per former)")
        t.add_column("former")
        t.add_column("<n>")
        t.add_column("distribution")
        for k, v in out["qn"].items():
            t.add_row(k, _fmt(v["mean_n"]), " ".join(f"{q}:{p:.2f}" for q, p in v.items() if q.startswith("Q")))
        console.print(t)
    if out.get("oxygen"):
        console.print("oxygen: " + "  ".join(f"{k} {v:.3f}" for k, v in out["oxygen"].items()))
    if out.get("angles"):
        console.print("angles: " + "  ".join(f"{k} {v['mean']:.1f}±{v['std']:.1f}°" for k, v in out["angles"].items()))
    r = out.get("rings")
    if r:
        t = Table(title=f"Guttman rings of {'/'.join(r['formers'])} (size = formers = bridging O)")
        t.add_column("size")
        t.add_column("count")
        t.add_column("fraction")
        for k, n in r["counts"].items():
            t.add_row(k, str(n), _fmt(r["fraction"][k]))
        console.print(t)
        console.print(f"rings: {r['n_rings']}, mean size {_fmt(r['mean_size'], 2)}, "
                      f"edges without a ring <= {r['max_size']}: {r['n_edges_without_ring']}")


# the dynamics (diffusion, arrhenius, elastic, ...) and polaron commands live in their own modules
for _mod_name in ("mlipflow.cli.analyze_dynamics", "mlipflow.cli.analyze_polarons"):
    try:
        _mod = importlib.import_module(_mod_name)
    except ModuleNotFoundError as _exc:  # pragma: no cover - depends on what is installed
        if _exc.name != _mod_name:
            raise
    else:
        _mod.register(app)
