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
from typing import Any, ClassVar

from jobflow import Maker, job

from mlipflow.schemas import MDProtocol, MDRunDoc, PotentialRef

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


def run_md_cached(engine: str, protocol: MDProtocol, structure: Any, potential: Any, run_id: str,
                  progress: bool = False, include_frames: bool = True, max_force: float | None = 1e3) -> MDRunDoc:
    """:func:`mlipflow.engines.md.run_md` through the cache; returns the run document."""
    from mlipflow import cache
    from mlipflow.engines.md import run_md

    ref = PotentialRef.coerce(potential)
    sdict = structure_dict(structure)
    key = [engine, protocol, sdict, ref.identity(), include_frames, max_force]

    def compute() -> MDRunDoc:
        workdir = cache.entry_path("md-workdir", key)
        res = run_md(engine, protocol, sdict, potential, workdir, run_id=run_id, progress=progress,
                     max_force=max_force)
        doc = res.to_doc(potential=ref, include_frames=include_frames)
        doc.run_id = run_id
        doc.input_hash = cache.cache_key("md", *key)
        return doc

    return cache.get_or_compute("md", key, compute, decode=lambda v: MDRunDoc.model_validate(v))


@dataclass
class MDMaker(Maker):
    """Run ``protocol`` with ``engine`` on a structure and a potential -> :class:`MDRunDoc`."""

    need: ClassVar[str] = "gpu"
    name: str = "md"
    engine: str = "ase"
    protocol: MDProtocol = field(default_factory=MDProtocol)
    progress: bool = False
    include_frames: bool = True

    @job(data=["trajectory"])
    def make(self, structure: Any, potential: PotentialRef | dict, run_id: str | None = None,
             campaign: str | None = None) -> MDRunDoc:
        import uuid

        protocol = self.protocol if isinstance(self.protocol, MDProtocol) else MDProtocol(**self.protocol)
        run_id = run_id or uuid.uuid4().hex[:12]
        doc = run_md_cached(self.engine, protocol, structure, potential, run_id, progress=self.progress,
                            include_frames=self.include_frames)
        doc.campaign = campaign
        return doc


__all__ = ["MDMaker", "run_md_cached", "structure_dict"]
