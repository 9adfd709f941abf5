"""``mlipflow md run PROTOCOL.yaml --potential REF --structure FILE [--engine ase|lammps]``.

One MD run without a campaign file: the protocol file holds an :class:`~mlipflow.schemas.MDProtocol`
(its fields, or ``builder: <name>`` with the builder's arguments, e.g. ``{builder: lfp_ordering,
ps: 2, ensemble: nvt}``); the potential is anything a campaign file accepts (a file, a shipped
classical set, ``{campaign: NAME, which: final}`` as JSON). The run is :class:`MDMaker`'s job, run
with jobflow into the configured store like the flows (cached: the same run again is read back).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from mlipflow.errors import UserError

console = Console()
app = typer.Typer(no_args_is_help=True, help="Molecular dynamics: run a protocol with a potential on a structure.")


def parse_potential(spec: str):
    """A PotentialRef from a command-line value: JSON (a reference or {campaign, which}), a file or a
    shipped set (what :func:`~mlipflow.engines.potentials.potential_ref` reads)."""
    from mlipflow.engines.potentials import potential_ref

    text = spec.strip()
    if text.startswith("{"):
        try:
            return potential_ref(json.loads(text))
        except json.JSONDecodeError as exc:
            raise UserError(f"--potential {spec!r} is not valid JSON ({exc.msg})",
                            'write it as JSON, e.g. --potential \'{"campaign": "lfp-mini", "which": "final"}\'') from None
    return potential_ref(text)


def _protocol(path: Path):
    from pydantic import ValidationError

    from mlipflow.campaign import read_yaml_mapping
    from mlipflow.engines.protocols import build_protocol

    spec = read_yaml_mapping(path, "protocol file", "give a YAML file with an MDProtocol (see docs/production.md)",
                             "(an MDProtocol's fields or builder: NAME)", "e.g. {builder: lfp_ordering, ps: 2, ensemble: nvt}")

    try:
        return build_protocol(spec)
    except ValidationError as exc:
        from mlipflow.errors import validation_messages

        raise UserError(f"{path}: {'; '.join(validation_messages(exc))}", "see MDProtocol in docs/production.md") from None
    except TypeError as exc:
        raise UserError(f"{path}: {exc}", "see the builders in mlipflow.engines.protocols") from None


def _structure(path: Path):
    from mlipflow.engines.frames import to_structure

    if not path.is_file():
        raise UserError(f"structure file {path} does not exist", "give a structure file (extxyz, POSCAR, CIF, LAMMPS data)")
    try:
        from ase.io import read

        return to_structure(read(str(path)))
    except Exception as exc:  # noqa: BLE001 - any reader error is bad input
        try:
            from pymatgen.core import Structure

            return Structure.from_file(str(path))
        except Exception:  # noqa: BLE001
            raise UserError(f"cannot read a structure from {path} ({type(exc).__name__}: {exc})",
                            "give a format ASE or pymatgen reads (extxyz, POSCAR, CIF, ...)") from None


@app.command("run")
def run(
    protocol: Path = typer.Argument(..., help="YAML: an MDProtocol's fields, or builder: NAME plus its arguments."),
    potential: str = typer.Option(..., "--potential", "-p", help="Potential file, shipped set (pedone2006) or JSON "
                                  "reference, e.g. '{\"campaign\": \"lfp-mini\", \"which\": \"final\"}'."),
    structure: Path = typer.Option(..., "--structure", "-s", help="Starting structure (any format ASE/pymatgen read)."),
    engine: str = typer.Option("ase", "--engine", help="MD engine (registry name): ase or lammps."),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="Name of the run (default: from its inputs)."),
    progress: bool = typer.Option(True, help="Progress bar (steps)."),
) -> None:
    """Run one MD protocol and store its document (MDRunDoc) like the flows do."""
    from mlipflow.campaign import run_in_store
    from mlipflow.makers.md import MDMaker
    from mlipflow.registry import MD_ENGINES
    from mlipflow.schemas import content_hash
    from mlipflow.settings import apply_thread_settings, get_settings

    MD_ENGINES.check(engine)
    prot = _protocol(protocol)
    ref = parse_potential(potential)
    st = _structure(structure)
    settings = get_settings()
    apply_thread_settings(settings)
    rid = run_id or "md-" + content_hash("md-run-cli", prot.model_dump(mode="json"), ref.identity(), st.as_dict())[:12]
    job = MDMaker(name=f"md {rid}", engine=engine, protocol=prot, progress=progress, trajectory="full").make(
        st.as_dict(), ref, run_id=rid)
    doc = run_in_store(job, "md-run", settings)[job.uuid][1].output
    t = Table(title=f"md run {rid}: {doc.formula} ({doc.nsites} atoms), {engine}, {ref.kind} {ref.name or ''}")
    for c in ("steps", "stopped early", "T last (K)", "E_pot last (eV)", "wall (s)"):
        t.add_column(c)
    th = doc.thermo or {}

    def last(col):
        vals = [v for v in th.get(col, []) if v is not None]
        return f"{vals[-1]:.4g}" if vals else "-"

    t.add_row(str(doc.steps_done), doc.termination_reason or "no", last("temperature_K"), last("potential_energy_eV"),
              f"{doc.wall_time_s:.1f}" if doc.wall_time_s else "-")
    console.print(t)
    from mlipflow.cli.core_commands import _cache_line

    console.print(_cache_line(), highlight=False)
    console.print(f"stored: md_run {rid} (job {job.uuid}); query: mlipflow query --type md_run --filter "
                  f"'{{\"output.run_id\": \"{rid}\"}}'", highlight=False)
