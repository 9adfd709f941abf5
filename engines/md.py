"""One way to run MD: :func:`run_md` ``(engine, protocol, structure, potential)`` -> result.

The engine is a name in :data:`mlipflow.registry.MD_ENGINES` (``ase``, ``lammps``); each engine
implements ``preflight(kind, ref, protocol)`` (fail before anything is loaded, e.g. a LAMMPS
without the package a pair style needs) and ``run(protocol, atoms, materialized_potential,
workdir, run_id=..., progress=...) -> MDResult``. The uncertainty stop rule (γ, deviation) is
part of the protocol; makers never branch on the engine. Results are cached by
(engine, protocol, structure, potential identity) in :mod:`mlipflow.cache`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlipflow.registry import MD_ENGINES
from mlipflow.schemas.md import MDProtocol
from mlipflow.schemas.potentials import PotentialRef


def engine(name: str):
    cls = MD_ENGINES.get(name)
    return cls() if isinstance(cls, type) else cls


def to_atoms(structure: Any):
    """ase.Atoms (positions, numbers, cell, pbc, and oxidation states where given) from Atoms, a
    pymatgen Structure or its dict."""
    from ase import Atoms

    if isinstance(structure, Atoms):
        at = structure.copy()
    else:
        from pymatgen.core import Structure
        from pymatgen.io.ase import AseAtomsAdaptor

        if isinstance(structure, dict):
            structure = Structure.from_dict(structure)
        at = AseAtomsAdaptor.get_atoms(structure)
    at.calc = None
    for key in list(at.arrays):  # oxidation states stay: fixed-charge potentials may take charges from them
        if key not in ("numbers", "positions", "oxidation_state"):
            del at.arrays[key]
    at.info = {}
    return at


def run_md(engine_name: str, protocol: MDProtocol, structure: Any, potential: PotentialRef | Any,
           workdir: str | Path | None = None, *, run_id: str | None = None, progress: bool = False,
           **options: Any):
    """Run ``protocol`` on ``structure`` with ``potential`` through the named engine -> MDResult."""
    from mlipflow.engines.potentials import kind_of, materialize

    eng = engine(engine_name)
    ref = PotentialRef.coerce(potential)
    eng.preflight(kind_of(ref.kind), ref, protocol)
    pot = materialize(potential)
    wd = Path(workdir) if workdir is not None else Path.cwd() / f"md_{run_id or 'run'}"
    return eng.run(protocol, to_atoms(structure), pot, wd, run_id=run_id, progress=progress, **options)
