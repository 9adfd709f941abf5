"""``mlipflow generate``: amorphous composition-grid cells and olivine Li_xFePO4 supercells."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from mlipflow.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Generate starting structures (amorphous cells, olivine supercells).")
console = Console()


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"cannot read {what} {text!r}", f"give comma-separated numbers, e.g. --{what} 0.8,1,1.2") from None
    if not vals:
        raise UserError(f"no {what} given", f"give comma-separated numbers, e.g. --{what} 0.8,1,1.2")
    return vals


def _pairs(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    out = {}
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            pair, val = item.split("=")
            a, b = pair.strip().split("-")
            out[(a.strip(), b.strip())] = float(val)
        except ValueError:
            raise UserError(f"cannot read pair distance {item!r}", "write pairs as Na-O=2.0,P-P=2.6") from None
    return out


def _check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in ("extxyz", "poscar", "lammps"):
        raise UserError(f"unknown format {fmt!r}", "use --format extxyz, poscar or lammps")
    return fmt


@app.command("amorphous")
def amorphous(
    units: str = typer.Option("Na2O,FeO,P2O5", "--units", help="Oxide units, comma-separated (2-5), e.g. Na2O,FeO,P2O5; explicit states as 'Fe2O3:Fe=3'."),
    step: float = typer.Option(0.1, "--step", help="Mole-fraction step of the grid."),
    atoms: int = typer.Option(100, "--atoms", help="Target number of atoms per cell (stoichiometry is exact)."),
    min_distance: float = typer.Option(1.7, "--min-distance", help="Minimum interatomic distance (Å) at scale 1."),
    pair_min_distance: Optional[str] = typer.Option(None, "--pair-min-distance", help="Per-pair overrides, e.g. Na-O=2.0,P-P=2.6."),
    scales: str = typer.Option("0.8,1,1.2", "--scales", help="Linear scale factors applied after packing."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    density: Optional[float] = typer.Option(None, "--density", help="Density (g/cm³) for every cell; default: matching crystal."),
    end_members: bool = typer.Option(True, "--end-members/--no-end-members", help="Include the pure units."),
    fmt: str = typer.Option("extxyz", "--format", help="extxyz, poscar or lammps."),
    lammps_style: str = typer.Option("atomic", "--lammps-style", help="LAMMPS atom style: atomic or charge (formal charges)."),
    offline: bool = typer.Option(False, "--offline", help="Do not query the Materials Project even if a key is set."),
    out: Path = typer.Option(..., "--out", help="Output directory (one file per structure + summary.json/csv)."),
):
    """Random cells over the composition grid of oxide units, one per composition and scale."""
    from mlipflow.generation import amorphous_structures
    from mlipflow.generation.writers import write_structures

    fmt = _check_format(fmt)
    items = amorphous_structures(
        units, step=step, atoms=atoms, min_distance=min_distance, scales=_floats(scales, "scales"), seed=seed,
        density=density, end_members=end_members, pair_min_distance=_pairs(pair_min_distance),
        use_mp=not offline, progress=True,
    )
    kwargs = {"lammps_style": lammps_style} if fmt == "lammps" else {}
    paths = write_structures(items, out, fmt=fmt, progress=False, **kwargs)
    ncomp = len({info["label"] for _, info in items})
    sources = sorted({info["density_method"] for _, info in items})
    console.print(f"wrote {len(paths)} structures ({ncomp} compositions × {len(_floats(scales, 'scales'))} scales) "
                  f"to {out} (density: {', '.join(sources)}); summary in {Path(out) / 'summary.csv'}")


@app.command("olivine")
def olivine(
    supercell: str = typer.Option("1,2,2", "--supercell", help="Repetitions along a,b,c, e.g. 1,2,2 or 2,4,6."),
    x: float = typer.Option(1.0, "--x", help="Li content x of Li_xFePO4."),
    ordering: str = typer.Option("random", "--ordering", help="random, x, y or explicit Li site indices '0,3,5'."),
    config: Optional[str] = typer.Option(None, "--config", help="A named configuration of the LixFePO4 paper: D1, D2, D3 "
                                         "(seeded disordered, x = 0.5), x-order, y-order (alternating planes, x = 0.5) "
                                         "or interface (LiFePO4/FePO4 along y); --x/--ordering/--interface are then "
                                         "taken from the name, --seed is added to its seed."),
    polarons: str = typer.Option("random", "--polarons", help="random, near-vacancy or none."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    interface: Optional[str] = typer.Option(None, "--interface", help="Two-phase LiFePO4/FePO4 cell split at axis:fraction, e.g. y:0.5."),
    rattle: float = typer.Option(0.0, "--rattle", help="Random displacement amplitude (Å), e.g. 0.05."),
    contraction: Optional[float] = typer.Option(None, "--contraction", help="Scale Fe3+-O bonds by this factor, e.g. 0.97."),
    fmt: Optional[str] = typer.Option(None, "--format", help="extxyz, poscar or lammps (default: from the suffix)."),
    out: Path = typer.Option(..., "--out", help="Output file (.extxyz, .vasp/POSCAR, .data)."),
):
    """An olivine Li_xFePO4 supercell with Li/vacancy ordering and seeded polarons."""
    from mlipflow.generation import named_configuration, olivine_supercell

    if config is not None:
        st, info = named_configuration(config, supercell, seed=seed, rattle=rattle, contraction=contraction)
        return _write_olivine(st, info, out, fmt)
    order: str | list[int] = ordering
    if ordering.lower() not in ("random", "x", "y"):
        try:
            order = [int(v) for v in ordering.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"unknown ordering {ordering!r}", "use random, x, y or Li site indices like 0,3,5") from None
    pol = None if polarons.lower() == "none" else polarons.lower()
    st, info = olivine_supercell(supercell, x=x, ordering=order, polarons=pol, seed=seed, interface=interface,
                                 rattle=rattle, contraction=contraction)
    _write_olivine(st, info, out, fmt)


def _write_olivine(st, info: dict, out: Path, fmt: str | None) -> None:
    from mlipflow.generation import write_structure

    path = write_structure(st, out, fmt=_check_format(fmt) if fmt else None, info=info)
    sidecar = Path(str(path) + ".json")
    sidecar.write_text(json.dumps(info, indent=1, default=str))
    console.print(f"wrote {info['formula']} ({info['natoms']} atoms, x = {info['x_actual']:.3f}, "
                  f"{info['n_fe3']} Fe3+) to {path}; details in {sidecar}")
