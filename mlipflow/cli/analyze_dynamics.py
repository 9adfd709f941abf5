"""``mlipflow analyze`` dynamics commands: diffusion, arrhenius, tg, elastic.

Registered on the ``analyze`` sub-app by :func:`register` (called from ``mlipflow.cli.analyze``).
JSON keys are documented in docs/analysis.md ("Dynamics").
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from mlipflow.errors import UserError

console = Console()


def _floats(text: str | None, n: int | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        vals = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise UserError(f"cannot read {what} {text!r}", "give comma-separated numbers, e.g. 1,10") from None
    if n is not None and len(vals) != n:
        raise UserError(f"{what} needs {n} numbers, got {text!r}", "e.g. --window 2,20")
    return vals


def _write_json(path: Optional[Path], out: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=float))
    console.print(f"wrote {path}")


def diffusion(
    files: list[Path] = typer.Argument(..., help="Trajectory file(s); several files are consecutive segments of one run."),
    timestep: float = typer.Option(..., "--timestep", help="MD time step in fs."),
    dump_every: Optional[int] = typer.Option(None, "--dump-every", help="MD steps between stored frames (default: from the step numbers in the file, else 1)."),
    every: int = typer.Option(1, "--every", help="Use every n-th frame."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="lammps-dump, extxyz, traj, xdatcar, ... (default: guessed)."),  # noqa: A002
    types: Optional[str] = typer.Option(None, "--types", help="LAMMPS type map, e.g. 1=Na,2=P,3=O."),
    species: Optional[list[str]] = typer.Option(None, "--species", help="Species to analyse (repeatable or comma-separated; default all)."),
    window: Optional[str] = typer.Option(None, "--window", help="Fit window t0,t1 in ps (default: automatic, log-log slope ≈ 1)."),
    blocks: int = typer.Option(5, "--blocks", help="Time blocks for the error bar (block average)."),
    remove_drift: bool = typer.Option(False, "--remove-drift", help="Subtract the centre-of-mass drift of all atoms."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Temperature of the run in K (stored for `analyze arrhenius`)."),
    van_hove: Optional[str] = typer.Option(None, "--van-hove", help="Lag times in ps for the self van Hove function, e.g. 1,10."),
    fast_slow: Optional[str] = typer.Option(None, "--fast-slow", help="Ion for the fast/slow (top/bottom 25 %) analysis, e.g. Na."),
    fast_slow_lag: Optional[float] = typer.Option(None, "--fast-slow-lag", help="Lag in ps for the per-ion displacement (default: start of the fit window)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write results as JSON here."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Write PNG plots into this directory."),
    memmap: Optional[Path] = typer.Option(None, "--memmap", help="Stream positions to this file (trajectories larger than RAM)."),
) -> None:
    """MSD per species (all time origins) and D ± σ (block average over time)."""
    from mlipflow.analysis import dynamics as dyn
    from mlipflow.analysis.io import detect_format, parse_type_map
    from mlipflow.engines.dataset_io import expand_inputs
    from mlipflow.makers.analysis_dynamics import diffusion_results

    files = expand_inputs(files)  # directories and quoted globs too (segments in name order)
    for f in files:
        if not f.is_file():
            raise UserError(f"no such file: {f}", "check the path")
        detect_format(f, format)
    if every < 1:
        raise UserError(f"--every must be >= 1 (got {every})")
    if blocks < 2:
        raise UserError(f"--blocks must be >= 2 (got {blocks})")
    win = _floats(window, 2, "--window")
    sel = [s.strip() for item in (species or []) for s in item.split(",") if s.strip()] or None
    traj = dyn.load_trajectory([str(f) for f in files], format=format, types=parse_type_map(types), every=every,
                               memmap_path=str(memmap) if memmap else None, progress=False)
    dt_ps = dyn.frame_interval_ps(traj, timestep, dump_every * every if dump_every else None)
    results, plot_paths = diffusion_results(
        traj, dt_ps, species=sel, window=tuple(win) if win else None, n_blocks=blocks, remove_drift=remove_drift,
        van_hove_lags_ps=_floats(van_hove, None, "--van-hove"), fast_slow_ion=fast_slow,
        fast_slow_lag_ps=fast_slow_lag, plot_dir=plots)
    out = {"files": [str(f) for f in files], "temperature_K": temperature, "timestep_fs": timestep} | results
    if plot_paths:
        out["plots"] = plot_paths
    console.print(f"{results['n_atoms']} atoms, {results['n_frames']} frames every {dt_ps:.6g} ps "
                  f"({results['duration_ps']:.4g} ps)")
    t = Table(title="self-diffusion (all time origins; σ: block average)")
    for c in ("species", "N", "D ± σ (cm²/s)", "D (Å²/ps)", "window ps", "diffusive"):
        t.add_column(c, no_wrap=True)
    for s, d in results["diffusion"].items():
        t.add_row(s, str(d["n_atoms"]), f"{d['D_cm2_s']:.4g} ± {d['sigma']:.2g}", f"{d['D_A2_ps']:.4g}",
                  f"{d['window_ps'][0]:.3g}–{d['window_ps'][1]:.3g}",
                  "yes" if d["diffusive"] else "[yellow]no[/]")
    console.print(t)
    _write_json(json_out, out)


def _read_table(path: Path) -> list[dict]:
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, list):
            return data
        if isinstance(data, dict) and "diffusion" in data:
            return [data]
        if isinstance(data, dict) and isinstance(data.get("points"), list):
            return data["points"]
        raise UserError(f"{path}: not a diffusion JSON nor a list of {{T, D, sigma}}",
                        "give the JSON written by `mlipflow analyze diffusion --json` or a CSV")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise UserError(f"{path} has no rows", "give a CSV with a header T,D,sigma")
    return rows


def _get(row: dict, keys: tuple[str, ...]):
    low = {str(k).strip().lower(): v for k, v in row.items()}
    for k in keys:
        if k in low and low[k] not in (None, ""):
            return low[k]
    return None


def arrhenius(
    inputs: list[Path] = typer.Argument(..., help="CSV/JSON tables of T,D,sigma, or diffusion JSONs (one per temperature)."),
    species: str = typer.Option("Na", "--species", help="Species (for diffusion JSONs)."),
    t_min: Optional[float] = typer.Option(None, "--t-min", help="Fit only T >= this (K); report the deviation below."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write results as JSON here."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Write the Arrhenius plot into this directory."),
) -> None:
    """Arrhenius fit ln D = ln D0 − Ea/(kB T): D0, Ea ± σ (weighted least squares)."""
    from mlipflow.analysis.dynamics import arrhenius_fit

    T, D, S = [], [], []
    for p in inputs:
        if not p.is_file():
            raise UserError(f"no such file: {p}", "check the path")
        for row in _read_table(p):
            if "diffusion" in row:
                if row.get("temperature_K") is None:
                    raise UserError(f"{p}: no temperature_K", "rerun `analyze diffusion` with --temperature")
                if species not in row["diffusion"]:
                    raise UserError(f"{p}: no D for {species} (has {sorted(row['diffusion'])})", "choose --species")
                e = row["diffusion"][species]
                T.append(float(row["temperature_K"]))
                D.append(float(e["D_cm2_s"]))
                S.append(float(e.get("sigma", 0.0) or 0.0))
                continue
            tv = _get(row, ("t", "temperature", "temperature_k", "t_k"))
            dv = _get(row, ("d", "d_cm2_s", "diffusion"))
            sv = _get(row, ("sigma", "sigma_cm2_s", "err", "error", "sd"))
            if tv is None or dv is None:
                raise UserError(f"{p}: each row needs T and D (got columns {sorted(row)})", "use a header T,D,sigma")
            try:
                T.append(float(tv))
                D.append(float(dv))
                S.append(float(sv) if sv is not None else 0.0)
            except ValueError:
                raise UserError(f"{p}: non-numeric value in row {row}") from None
    sig = S if all(s > 0 for s in S) else None
    fit = arrhenius_fit(T, D, sig, T_min=t_min)
    out = {"arrhenius": fit.to_dict() | {"species": species}}
    console.print(f"Ea = {fit.Ea_eV:.4f} ± {fit.sigma_Ea_eV:.4f} eV   D0 = {fit.D0:.4g} (σ ln D0 {fit.sigma_lnD0:.3g})"
                  f"   {fit.n_fit} points" + (f" (T ≥ {t_min} K)" if t_min else "")
                  + ("" if sig else "   [yellow]no σ: unweighted fit[/]"))
    if fit.below:
        t = Table(title=f"points below T_min = {t_min} K")
        for c in ("T (K)", "D", "D fit", "D/D fit", "dev (σ)"):
            t.add_column(c)
        for b in fit.below:
            t.add_row(f"{b['T']:.0f}", f"{b['D']:.4g}", f"{b['D_pred']:.4g}", f"{b['ratio']:.3f}", f"{b['dev_sigma']:.2f}")
        console.print(t)
    if plots is not None:
        from mlipflow.analysis.plots_dynamics import plot_arrhenius

        out["plots"] = {"arrhenius": plot_arrhenius(fit, plots / f"arrhenius_{species}.png", label=f"D({species})")}
    _write_json(json_out, out)


def tg(
    table: Path = typer.Argument(..., help="CSV with a temperature column and the property column."),
    column: str = typer.Option("density", "--column", help="Property column (density, volume, enthalpy, ...)."),
    t_column: str = typer.Option("T", "--t-column", help="Temperature column."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write results as JSON here."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Write the fit plot into this directory."),
) -> None:
    """Glass transition Tg from a cooling run (continuous two-line fit)."""
    from mlipflow.analysis.thermo import glass_transition

    if not table.is_file():
        raise UserError(f"no such file: {table}", "check the path")
    rows = _read_table(table)
    try:
        T = [float(_get(r, (t_column.lower(),))) for r in rows]
        y = [float(_get(r, (column.lower(),))) for r in rows]
    except (TypeError, ValueError):
        raise UserError(f"{table}: needs numeric columns {t_column!r} and {column!r}",
                        "name them with --t-column and --column") from None
    res = glass_transition(T, y, quantity=column)
    console.print(f"Tg = {res.Tg:.1f} ± {res.sigma_Tg:.1f} K   slope glass {res.slope_glass:.4g}   "
                  f"slope liquid {res.slope_liquid:.4g} ({column}/K)")
    out = {"tg": res.to_dict()}
    if plots is not None:
        from mlipflow.analysis.plots_dynamics import plot_tg

        out["plots"] = {"tg": plot_tg(res, plots / "tg.png")}
    _write_json(json_out, out)


def elastic(
    structure: Path = typer.Argument(..., help="Structure file (any ASE-readable format)."),
    calculator: str = typer.Option("emt", "--calculator", help="emt, lj or an ASE calculator import path module:Class."),
    calc_kwargs: Optional[str] = typer.Option(None, "--calc-kwargs", help="JSON keyword arguments of the calculator."),
    strain: float = typer.Option(1e-4, "--strain", help="Strain increment."),
    steps: int = typer.Option(20, "--steps", help="Increments each way (±)."),
    fmax: float = typer.Option(1e-4, "--fmax", help="Force tolerance of the fixed-cell relaxations (eV/Å)."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="ASE format of the structure file."),  # noqa: A002
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write results as JSON here."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Write the stress–strain plot into this directory."),
    lammps_deck: Optional[Path] = typer.Option(None, "--lammps-deck", help="Instead of running, write a LAMMPS deck (and data file) here."),
    potential: Optional[list[str]] = typer.Option(None, "--potential", help="LAMMPS potential lines for --lammps-deck (repeatable)."),
) -> None:
    """Elastic constants C_ij, C11/C12/C44, K, G, E, ν by stepwise strain (ASE) or a LAMMPS deck."""
    from mlipflow.analysis import elastic as el
    from mlipflow.engines.potentials import calculator as make_calculator

    if not structure.is_file():
        raise UserError(f"no such file: {structure}", "check the path")
    try:
        from ase.io import read

        atoms = read(str(structure), format=format)
    except Exception as exc:  # ASE raises many kinds
        raise UserError(f"cannot read {structure}: {exc}", "give --format") from None
    if lammps_deck is not None:
        if not potential:
            raise UserError("--lammps-deck needs the potential lines", 'e.g. --potential "pair_style lj/cut 8.5" '
                            '--potential "pair_coeff * * 0.0104 3.4"')
        from mlipflow.engines.lammps import write_lammps_data

        lammps_deck.mkdir(parents=True, exist_ok=True)
        write_lammps_data(atoms, lammps_deck / "structure.data", None, atom_style="atomic", masses=True)
        (lammps_deck / "in.elastic").write_text(el.lammps_elastic_deck("structure.data", potential, strain=strain,
                                                                       steps=steps))
        console.print(f"wrote {lammps_deck / 'in.elastic'} and structure.data; run `lmp -in in.elastic` there, "
                      "then read elastic_stress.dat with mlipflow.analysis.elastic.parse_lammps_elastic")
        return
    try:
        kwargs = json.loads(calc_kwargs) if calc_kwargs else {}
    except json.JSONDecodeError as exc:
        raise UserError(f"--calc-kwargs is not JSON: {exc}", "e.g. --calc-kwargs '{\"sigma\": 3.4}'") from None
    calc = make_calculator(calculator, **kwargs)
    res = el.elastic_constants(atoms, calc, strain=strain, steps=steps, fmax=fmax, progress=False)
    t = Table(title=f"elastic constants (GPa) of {atoms.get_chemical_formula()}, {calculator}")
    t.add_column("")
    for v in el.VOIGT:
        t.add_column(v)
    for i, row in enumerate(res.C_sym):
        t.add_row(el.VOIGT[i], *[f"{x:.2f}" for x in row])
    console.print(t)
    console.print(f"C11 {res.C11:.2f}  C12 {res.C12:.2f}  C44 {res.C44:.2f}  K {res.bulk_modulus_GPa:.2f}  "
                  f"G {res.shear_modulus_GPa:.2f} ((C11−C12)/2 {res.shear_modulus_c11_c12_GPa:.2f})  "
                  f"E {res.youngs_modulus_GPa:.2f} GPa  ν {res.poisson_ratio:.4f}")
    out = {"elastic": res.to_dict()}
    if plots is not None:
        from mlipflow.analysis.plots_dynamics import plot_stress_strain

        out["plots"] = {"stress_strain": plot_stress_strain(res, plots / "stress_strain.png")}
    _write_json(json_out, out)


def register(app: typer.Typer) -> None:
    """Add the dynamics commands to the ``mlipflow analyze`` sub-app."""
    app.command("diffusion")(diffusion)
    app.command("arrhenius")(arrhenius)
    app.command("tg")(tg)
    app.command("elastic")(elastic)
