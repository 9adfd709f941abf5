"""One MD maker for every engine and potential kind.

:class:`MDMaker` runs an :class:`~mlipflow.schemas.MDProtocol` on one structure with one potential
through an MD engine of :data:`mlipflow.registry.MD_ENGINES` (``ase``, ``lammps``): configured by
its fields (engine, protocol), it never branches on either. Exploration with an uncertainty stop
rule is the same maker with thresholds in the protocol. Runs are cached in :mod:`mlipflow.cache`
by engine, protocol, structure and potential identity, so a rerun after a kill returns finished
runs; the trajectory goes to the store's blob store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from jobflow import Maker, job

from mlipflow.schemas import MDProtocol, MDRunDoc, PotentialRef
from mlipflow.schemas.base import as_data

log = logging.getLogger(__name__)


def structure_dict(structure: Any) -> dict:
    """A pymatgen Structure dict from a Structure, its dict or ase.Atoms (the cache key's form)."""
    from ase import Atoms

    if isinstance(structure, Atoms):
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_structure(structure).as_dict()
    if hasattr(structure, "as_dict"):
        return structure.as_dict()
    return dict(structure)


TrajectoryMode = Literal["kept", "full", "none"]


def full_trajectory_blob(files: list[str], elements: list[str] | None) -> dict[str, Any] | None:
    """The whole trajectory (LAMMPS dumps with image flags, ASE chunks) as one blob of unwrapped
    positions, for the store: later jobs read it from there, not from this machine's disk."""
    from mlipflow.analysis.io import iter_frames

    if not files:
        return None
    out: dict[str, list] = {k: [] for k in ("numbers", "positions", "cell", "pbc", "step")}
    for path in files:
        types = {i: el for i, el in enumerate(elements or [], start=1)} if str(path).endswith(".dump") else None
        for fr in iter_frames(path, types=types):
            out["numbers"].append(fr.numbers.tolist())
            out["positions"].append(np.round(fr.unwrapped_positions(), 6).tolist())
            out["cell"].append(np.asarray(fr.cell).tolist())
            out["pbc"].append([bool(x) for x in fr.pbc])
            out["step"].append(fr.step if fr.step is not None else fr.info.get("step"))
    out["unwrapped"] = True
    return out


def run_md_cached(engine: str, protocol: MDProtocol, structure: Any, potential: Any, run_id: str,
                  progress: bool = False, include_frames: bool = True, max_force: float | None = 1e3,
                  trajectory: TrajectoryMode | None = None) -> MDRunDoc:
    """:func:`mlipflow.engines.md.run_md` through the cache; returns the run document.

    ``trajectory``: what the document's ``trajectory`` blob holds — ``kept`` (the frames the run
    kept: uncertain frames, temperature snapshots, the final one; exploration), ``full`` (the whole
    dumped trajectory, unwrapped; production runs that fit in the store) or ``none`` (only the
    files, ``trajectory_files``; runs too large for the store). Default: ``kept`` if
    ``include_frames`` else ``none``. A killed run continues from its last checkpoint
    (``protocol.restart_every``) in the same content-addressed work directory.
    """
    from mlipflow import cache
    from mlipflow.engines.md import run_md

    mode = trajectory or ("kept" if include_frames else "none")
    ref = PotentialRef.coerce(potential)
    sdict = structure_dict(structure)
    key = [engine, protocol, sdict, ref.identity(), include_frames if trajectory is None else mode, max_force]

    def compute() -> MDRunDoc:
        workdir = cache.entry_path("md-workdir", key)
        res = run_md(engine, protocol, sdict, potential, workdir, run_id=run_id, progress=progress,
                     max_force=max_force)
        doc = res.to_doc(potential=ref, include_frames=mode == "kept")
        if mode == "full":
            doc.trajectory = full_trajectory_blob(res.trajectory_files, res.extra.get("elements"))
        doc.run_id = run_id
        doc.input_hash = cache.cache_key("md", *key)
        return doc

    return cache.get_or_compute("md", key, compute, decode=lambda v: MDRunDoc.model_validate(v))


def engine_code(engine: str) -> str | None:
    """The external code of an MD engine (``lammps``), None for in-process engines (``ase``)."""
    return "lammps" if engine == "lammps" else None


@dataclass
class MDMaker(Maker):
    """Run ``protocol`` with ``engine`` on a structure and a potential -> :class:`MDRunDoc`."""

    need: ClassVar[str] = "gpu"
    name: str = "md"
    engine: str = "ase"
    protocol: MDProtocol = field(default_factory=MDProtocol)
    progress: bool | None = None  # None: bars on an interactive terminal only
    include_frames: bool = True
    trajectory: TrajectoryMode | None = None  # kept | full | none (see run_md_cached); None: by include_frames

    @property
    def code(self) -> str | None:
        """The external code this maker's job runs (its exec_config on a cluster)."""
        return engine_code(self.engine)

    @job(data=["trajectory"])
    def make(self, structure: Any, potential: PotentialRef | dict, run_id: str | None = None,
             campaign: str | None = None, after: Any = None) -> MDRunDoc:
        """``after``: the run this one starts from; when that run stopped early (blew up), this
        one is not run and its document says why (a continuation of a broken structure is noise)."""
        import uuid

        from mlipflow.engines.protocols import build_protocol

        protocol = build_protocol(self.protocol)
        run_id = run_id or uuid.uuid4().hex[:12]
        prev = as_data(after)
        if isinstance(prev, dict) and prev.get("terminated"):
            return MDRunDoc(protocol=protocol, engine=self.engine, potential=PotentialRef.coerce(potential),
                            run_id=run_id, campaign=campaign, terminated=True,
                            termination_reason=f"not run: the run it starts from ({prev.get('run_id')}) stopped early: "
                                               f"{prev.get('termination_reason')}")
        doc = run_md_cached(self.engine, protocol, structure, potential, run_id, progress=self.progress,
                            include_frames=self.include_frames, trajectory=self.trajectory)
        doc.campaign = campaign
        return doc


__all__ = ["MDMaker", "run_md_cached", "structure_dict"]
