"""``mlipflow analyze polarons`` and ``mlipflow analyze rate-arrhenius``.

Registered on the ``analyze`` sub-app by :func:`register` (called from ``mlipflow.cli.analyze``).
JSON keys are documented in docs/analysis.md ("Polarons").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from mlipflow.cli.analyze_dynamics import _write_json
from mlipflow.errors import UserError

console = Console()


def _fmt(x, spec: str = ".4g") -> str:
    return "-" if x is None else format(x, spec)


def polarons(
    files: list[Path] = typer.Argument(..., help="Trajectory file(s) (LAMMPS dump, extxyz, ASE .traj); several files are consecutive segments."),
    timestep_ps: Optional[float] = typer.Option(None, "--timestep-ps", help="Time between stored frames in ps (MD time step × dump interval); default: from the file's ITEM: TIME."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Temperature of the run in K (stored for `analyze rate-arrhenius`)."),
    li_sites: Optional[Path] = typer.Option(None, "--li-sites", help="Structure file with every Li site (occupied or not); default: the olivine 4a sites of the cell."),
    axis: str = typer.Option("y", "--axis", help="Axis of the Fe layer profile (x, y, z)."),
    discard_fraction: float = typer.Option(0.0, "--discard-fraction", help="Drop this leading fraction of the frames (equilibration)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON here."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write PNG plots into this directory."),
    types: Optional[str] = typer.Option(None, "--types", help="LAMMPS type map, e.g. 1=Li,2=Fe,3=P,4=O."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="lammps-dump, extxyz, traj, ... (default: guessed)."),  # noqa: A002
    label: Optional[str] = typer.Option(None, "--label", help="Label of the run (e.g. its Li ordering), grouped by `rate-arrhenius`."),
    fe_o_cutoff: float = typer.Option(3.0, "--fe-o-cutoff", help="The 6 nearest O of every Fe must lie within this (Å)."),
    filter_sigma_ps: float = typer.Option(0.02, "--filter-sigma-ps", help="σ of the temporal Gaussian filter of the bond lengths (ps; 0: none)."),
    min_state_ps: float = typer.Option(0.08, "--min-state-ps", help="Minimum duration of a valence state (ps)."),
    hop_time_ps: float = typer.Option(0.01, "--hop-time-ps", help="A Li hop must be completed within this (ps)."),
    hop_axis: str = typer.Option("y", "--hop-axis", help="Axis of the Li channels (x, y, z)."),
    li_site_radius: Optional[float] = typer.Option(None, "--li-site-radius", help="A Li is on a site only within this (Å); default: nearest site."),
    boundary: Optional[float] = typer.Option(None, "--boundary", help="Fe2+/Fe3+ bond-length boundary (Å) instead of the fitted one."),
    no_li_hops: bool = typer.Option(False, "--no-li-hops", help="Skip the Li hop analysis (no Li sites needed)."),
) -> None:
    """Fe valence from Fe–O bonds (Gaussian mixture), valence flips, Li hops, rates, event pairs, layer profiles."""
    from mlipflow.analysis.io import parse_type_map
    from mlipflow.analysis.polarons import PolaronParams, analyze_polarons
    from mlipflow.engines.dataset_io import expand_inputs

    files = expand_inputs(files)  # directories and quoted globs too (segments in name order)
    missing = [str(f) for f in [*files, *([li_sites] if li_sites else [])] if not f.is_file()]
    if missing:  # (the format is checked by the reader, before the first frame)
        raise UserError(f"no such file: {', '.join(missing)}", "check the path")
    params = PolaronParams(fe_o_cutoff_A=fe_o_cutoff, filter_sigma_ps=filter_sigma_ps, min_state_ps=min_state_ps,
                           li_hop_max_ps=hop_time_ps, hop_axis=hop_axis, layer_axis=axis,
                           li_site_radius_A=li_site_radius, boundary_A=boundary, discard_fraction=discard_fraction,
                           li_hops=not no_li_hops)
    res = analyze_polarons([str(f) for f in files], timestep_ps, temperature_K=temperature, params=params,
                           li_sites=li_sites, format=format, types=parse_type_map(types), label=label)
    out = res.results
    if plot is not None:
        from mlipflow.analysis.plots_polarons import plot_run

        out["plots"] = plot_run(res, plot)
    _print(out)
    _write_json(json_out, out)


def _print(r: dict) -> None:
    g = r["gmm"]
    console.print(f"{r['n_fe']} Fe, {r['n_li']} Li, {r['n_frames']} frames every {r['timestep_ps']:g} ps "
                  f"({r['duration_ps']:.4g} ps{', T = %g K' % r['temperature_K'] if r.get('temperature_K') else ''})")
    console.print(f"bond lengths: Fe3+ {g['means_A'][0]:.4f} ± {g['sigmas_A'][0]:.4f} Å (w {g['weights'][0]:.3f}), "
                  f"Fe2+ {g['means_A'][1]:.4f} ± {g['sigmas_A'][1]:.4f} Å; boundary {g['boundary_A']:.4f} Å, "
                  f"Bayes error {g['bayes_error']:.4f}")
    t = Table(title="valence flips and Li hops")
    for c in ("", "events", "rate (1/ps per atom)", "σ (blocks)"):
        t.add_column(c)
    t.add_row("Fe flips", str(r["n_flips"]), _fmt(r["flip_rate_per_fe_per_ps"]), _fmt(r["flip_rate_sigma_per_fe_per_ps"], ".2g"))
    t.add_row("Li hops", str(r["n_li_hops"]), _fmt(r["li_hop_rate_per_li_per_ps"]),
              _fmt(r["li_hop_rate_sigma_per_li_per_ps"], ".2g"))
    console.print(t)
    console.print(f"Fe3+ fraction {r['fe3_fraction']:.4f}   preference ratio (opposite/same): " + "  ".join(
        f"{k} {_fmt(v, '.3f')}" for k, v in r["pairs"]["preference_ratio"].items()))
    lay = r["layers"]
    console.print(f"{len(lay['centers_A'])} Fe layers along {lay['axis']}: Fe3+ fraction "
                  + " ".join(f"{v:.2f}" for v in lay["fe3_fraction"]))
    for w in r.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")


def rate_arrhenius(
    inputs: list[Path] = typer.Argument(..., help="JSON results of `mlipflow analyze polarons`, one per temperature."),
    rate: str = typer.Option("flip", "--rate", help="flip (Fe valence flips per Fe) or hop (Li hops per Li)."),
    t_min: Optional[float] = typer.Option(None, "--t-min", help="Fit only T >= this (K)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Flip rate of these Fe layers only, e.g. 3,4 (indices into layers.centers_A: interfacial Fe)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the fit as JSON here."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the Arrhenius, per-label, bond-histogram and Bayes-error plots here."),
) -> None:
    """Arrhenius fit ln r = ln A − Ea/(kB T) of flip or hop rates: A (1/ps), Ea ± σ (eV)."""
    from mlipflow.analysis.polarons import rate_arrhenius as fit_rates
    from mlipflow.analysis.structure import to_json_dict

    results = []
    for p in inputs:
        if not p.is_file():
            raise UserError(f"no such file: {p}", "check the path")
        try:
            results.append(json.loads(p.read_text()))
        except json.JSONDecodeError as exc:
            raise UserError(f"{p} is not JSON ({exc})", "give the files written by `mlipflow analyze polarons --json`") from None
    sel = None
    if layers:
        try:
            sel = [int(x) for x in layers.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"cannot read --layers {layers!r}", "give comma-separated layer indices, e.g. --layers 3,4") from None
    fit = fit_rates(results, rate, T_min=t_min, names=[str(p) for p in inputs], layers=sel)
    out = to_json_dict(fit)
    console.print(f"{rate} rate: A = {fit['A_per_ps']:.4g} 1/ps, Ea = {fit['Ea_eV']:.4f} ± {fit['Ea_sigma_eV']:.4f} eV "
                  f"({fit['n_points']} points{'' if fit['weighted'] else ', unweighted'})")
    for lab, e in fit["by_label"].items():
        if "Ea_eV" in e:
            console.print(f"  {lab}: A = {e['A_per_ps']:.4g} 1/ps, Ea = {e['Ea_eV']:.4f} ± {e['Ea_sigma_eV']:.4f} eV")
    if plot is not None:
        from mlipflow.analysis.plots_polarons import plot_rates

        out["plots"] = plot_rates(fit, [r.get("results", r) for r in results], plot)
    _write_json(json_out, out)


def register(app: typer.Typer) -> None:
    """Add the polaron commands to the ``mlipflow analyze`` sub-app."""
    app.command("polarons")(polarons)
    app.command("rate-arrhenius")(rate_arrhenius)
