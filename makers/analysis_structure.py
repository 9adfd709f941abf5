"""Maker for the structure analysis of a structure, a trajectory file or a stored MD run.

Thin jobflow wrapper around :func:`mlipflow.analysis.structure.analyze_structure`; returns an
:class:`~mlipflow.schemas.md.AnalysisDoc` (``kind="structure"``) whose ``results`` carry the
JSON keys documented in docs/analysis.md plus the g(r) and S(Q) curves, and whose ``plots``
map plot names to PNG paths (written in the job's working directory).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jobflow import Maker, job

from mlipflow.errors import UserError
from mlipflow.schemas.base import as_data, content_hash
from mlipflow.schemas.md import AnalysisDoc


def _frames_from_blob(blob: dict[str, Any]):
    from mlipflow.analysis.io import Frame

    n = len(blob.get("numbers", []))
    from ase.data import chemical_symbols

    for i in range(n):
        yield Frame(positions=np.asarray(blob["positions"][i], dtype=float), cell=np.asarray(blob["cell"][i], dtype=float),
                    symbols=np.array([chemical_symbols[z] for z in blob["numbers"][i]]),
                    ids=np.arange(1, len(blob["numbers"][i]) + 1),
                    step=(blob.get("step") or [None] * n)[i], unwrapped=bool(blob.get("unwrapped")))


def source_frames(source: Any, fmt: str | None = None, types: Any = None, start: int = 0, stop: int | None = None,
                  every: int = 1, stage: str | None = None):
    """Like :func:`_source_frames`; with ``stage`` (an MD run document's stage label) only the frames
    of that stage after its ``discard_fraction`` (``MDProtocol.window``), then ``start:stop:every``."""
    if stage is None:
        return _source_frames(source, fmt, types, start, stop, every)
    from mlipflow.schemas.md import MDProtocol

    run = as_data(source)
    if not (isinstance(run, dict) and run.get("protocol")):
        raise UserError(f"stage={stage!r} needs an MD run document (its protocol names the stages)",
                        "give the MD run, or leave stage unset")
    w = MDProtocol.model_validate(run["protocol"]).window(stage)
    factory, label = _source_frames(run, fmt, types, 0, None, 1)

    def frames():
        inside = (f for f in factory() if f.step is not None and w.analysis_first_step <= f.step <= w.last_step)
        return itertools.islice(inside, start, stop, every)

    return frames, f"{label}:{stage}"


def _source_frames(source: Any, fmt: str | None = None, types: Any = None, start: int = 0, stop: int | None = None,
                   every: int = 1):
    """(zero-argument factory of a fresh frame iterator, source label) for any supported source.

    ``source``: a file path, an :class:`ase.Atoms`, a pymatgen Structure (or its dict), an
    :class:`~mlipflow.schemas.md.MDRunDoc` (or its dict): its trajectory blob, else its
    ``trajectory_path``, else its final structure.
    """
    from mlipflow.analysis.io import Frame, iter_frames

    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise UserError(f"no such file: {path}", "check the path")
        return (lambda: iter_frames(path, format=fmt, types=types, start=start, stop=stop, step=every)), str(path)
    if hasattr(source, "model_dump"):
        source = source.model_dump()
    if isinstance(source, dict) and ("protocol" in source or "trajectory" in source or "trajectory_path" in source):
        label = source.get("input_hash") or source.get("uuid")
        if source.get("trajectory"):
            blob = source["trajectory"]
            return (lambda: itertools.islice(_frames_from_blob(blob), start, stop, every)), label
        if source.get("trajectory_path") and Path(source["trajectory_path"]).is_file():
            p = source["trajectory_path"]
            return (lambda: iter_frames(p, format=fmt, types=types, start=start, stop=stop, step=every)), label
        if source.get("final_structure"):
            source = source["final_structure"]
        else:
            raise UserError("the MD run has no trajectory, trajectory file or final structure to analyse")
    if isinstance(source, dict) and "lattice" in source:
        from pymatgen.core import Structure

        source = Structure.from_dict(source)
    if hasattr(source, "get_positions") or hasattr(source, "lattice"):
        fr = Frame.from_atoms(source)
        return (lambda: iter([fr])), getattr(source, "formula", None) or fr.to_atoms().get_chemical_formula()
    if isinstance(source, (list, tuple)):
        frames = [f if isinstance(f, Frame) else Frame.from_atoms(f) for f in source]
        return (lambda: iter(frames[start:stop:every])), None
    raise UserError(f"cannot analyse a {type(source).__name__}",
                    "give a file path, a structure, a list of structures or an MD run document")


@dataclass
class StructureAnalysisMaker(Maker):
    """Density, coordination, bridging/Qn, bond angles, Guttman rings, g(r) and S(Q), with plots."""

    name: str = "structure analysis"
    cutoffs: dict[str, float] = field(default_factory=dict)  # {"Fe-O": 2.8}; others: first minimum of g(r)
    formers: list[str] | None = None  # Qn/ring formers; None: Si, P, B, Ge, Al present
    bridge_species: list[str] | None = None  # X, Y of X-O-Y; None: all non-modifier cations
    angle_triplets: list[str] | None = None  # ["O-P-O", "P-O-Fe"]; None: defaults
    rings: bool = True
    ring_formers: list[str] | None = None  # ring network atoms; None: the formers
    max_ring: int = 12
    rmax: float | None = None
    dr: float = 0.02
    lorch: bool = True
    format: str | None = None  # noqa: A003
    types: dict[int, str] | str | None = None
    start: int = 0
    stop: int | None = None
    every: int = 1
    stage: str | None = None  # MD run documents: only this stage's frames (after its discard_fraction)
    plots: bool = True
    plot_dir: str | None = None  # default: <job cwd>/structure_plots

    def parameters(self) -> dict[str, Any]:
        return {"cutoffs": dict(self.cutoffs), "formers": self.formers, "bridge_species": self.bridge_species,
                "angle_triplets": self.angle_triplets, "rings": self.rings, "ring_formers": self.ring_formers,
                "max_ring": self.max_ring,
                "rmax": self.rmax, "dr": self.dr, "lorch": self.lorch, "format": self.format,
                "types": self.types if not isinstance(self.types, dict) else {str(k): v for k, v in self.types.items()},
                "start": self.start, "stop": self.stop, "every": self.every, "stage": self.stage}

    @job
    def make(self, source: Any) -> AnalysisDoc:
        from mlipflow.analysis.structure import analyze_structure, to_json_dict

        run = as_data(source)
        if self.stage is not None and isinstance(run, dict) and run.get("terminated"):
            return AnalysisDoc(kind="structure", source=run.get("input_hash") or run.get("run_id"),
                               parameters=self.parameters(),
                               results={"error": f"MD run stopped early: {run.get('termination_reason')}"},
                               input_hash=content_hash("structure-analysis", self.parameters(), run.get("run_id")))
        factory, label = source_frames(source, fmt=self.format, types=self.types, start=self.start, stop=self.stop,
                                       every=self.every, stage=self.stage)
        res = analyze_structure(factory, cutoffs=self.cutoffs, rmax=self.rmax, dr=self.dr, formers=self.formers,
                                bridge_species=self.bridge_species, angle_triplets=self.angle_triplets,
                                rings=self.rings, ring_formers=self.ring_formers or self.formers, max_ring=self.max_ring, lorch=self.lorch,
                                progress=True)
        results = to_json_dict(res)
        results["rdf"] = res["_rdf"].to_dict()
        if res.get("_sq"):
            results["sq"] = {k: v.to_dict() for k, v in res["_sq"].items()}
        results["angle_distributions"] = {k: {"edges": v["edges"], "density": v["density"]}
                                          for k, v in res.get("_angles_full", {}).items()}
        plots: dict[str, str] = {}
        if self.plots:
            from mlipflow.analysis.plots_structure import plot_all

            outdir = Path(self.plot_dir) if self.plot_dir else Path.cwd() / "structure_plots"
            plots = {k: str(Path(v).resolve()) for k, v in plot_all(res, outdir).items()}
        params = self.parameters()
        return AnalysisDoc(kind="structure", source=label, parameters=params, results=results, plots=plots,
                           input_hash=content_hash("structure-analysis", params, label))
