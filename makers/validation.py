"""Validation of a potential before production (issue 16): one flow, one job per check.

:class:`ValidationMaker` ``.make(potential, dataset=None, trajectories=None)`` builds

* ``validate_errors`` — energy/force errors per composition region on a dataset version's test
  split (:func:`mlipflow.engines.validation.errors_by_composition`);
* ``validate_eos`` — one job per reference crystal: the potential's E–V curve against the
  reference labeler's (:func:`~mlipflow.engines.validation.eos_check`);
* the melt-stability run at the target temperature (:class:`~mlipflow.makers.active_learning.StabilityMaker`);
* ``validate_uncertainty`` — the fraction of production-MD frames (trajectory files, or the
  stored trajectories of MD runs) whose γ / deviation exceeds the collection threshold;
* ``validate_gather`` — the :class:`~mlipflow.schemas.ValidationDoc` with the list of problems.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jobflow import Flow, Maker, job

from mlipflow.schemas import DatasetRef, PotentialRef, StabilityResult, ValidationDoc
from mlipflow.schemas.active_learning import StabilityConfig, StructuresConfig
from mlipflow.workers import needs

log = logging.getLogger(__name__)


@needs("gpu")
@job
def validate_errors(potential: PotentialRef, dataset: DatasetRef, split: str = "test",
                    reference_energies: dict[str, float] | None = None) -> dict:
    from mlipflow.engines.repository import load_dataset
    from mlipflow.engines.validation import errors_by_composition

    ds = DatasetRef.coerce(dataset)
    doc, frames = load_dataset(ds.name, ds.version)
    if split != "all":
        ids = set(getattr(doc, f"{split}_ids", None) or [])
        if not ids:
            log.info("dataset %s:%d has no %s split: all its frames are used", ds.name, ds.version, split)
        frames = [f for f in frames if not ids or f.frame_id in ids]
    overall, rows = errors_by_composition(PotentialRef.coerce(potential), frames,
                                          reference_energies or doc.reference_energies or None)
    return {"overall": overall.model_dump(), "by_composition": [r.model_dump() for r in rows], "dataset": ds.model_dump()}


@needs("gpu")
@job
def validate_eos(potential: PotentialRef, crystal: str, labeler: str | None = None, strain: float = 0.06,
                 points: int = 7, reference: list | None = None) -> dict:
    """``reference``: outputs of the reference jobs of the strained cells (``frame_ids``), when the
    labeler runs as jobs of its own (VASP); else the embedded labeler runs here."""
    from mlipflow.engines.validation import eos_check

    frames = None
    if reference is not None:
        from mlipflow.engines.repository import load_frames

        ids = [i for out in reference for i in (out or {}).get("frame_ids", [])[:1]]
        frames = load_frames(ids)
    return eos_check(PotentialRef.coerce(potential), crystal, labeler, strain, points,
                     reference_frames=frames).model_dump()


@needs("gpu")
@job
def validate_uncertainty(potential: PotentialRef, trajectories: list[str], threshold: float, every: int = 1,
                         types: list[str] | None = None) -> dict:
    """γ / deviation of every ``every``-th frame of trajectory files (LAMMPS dumps need ``types``,
    the elements of types 1, 2, ... unless the dump carries element names)."""
    from mlipflow.analysis.io import iter_frames
    from mlipflow.engines.validation import uncertainty_fraction

    frames = [fr.to_atoms() for path in trajectories
              for fr in iter_frames(str(path), types=types, step=max(1, every))]
    return uncertainty_fraction(PotentialRef.coerce(potential), frames, threshold,
                                source=", ".join(map(str, trajectories))).model_dump()


@job
def validate_gather(potential: PotentialRef, errors: dict | None, eos: list, stability: Any, uncertainty: dict | None,
                    thresholds: dict[str, float], campaign: str | None = None) -> ValidationDoc:
    from mlipflow.schemas import CompositionErrors, EosCheck, ErrorMetrics, UncertaintyFraction, content_hash

    ref = PotentialRef.coerce(potential)
    doc = ValidationDoc(potential=ref, thresholds=dict(thresholds), campaign=campaign,
                        eos=[EosCheck.model_validate(e) for e in eos or [] if e is not None])
    problems = []
    if errors:
        doc.overall = ErrorMetrics.model_validate(errors["overall"])
        doc.by_composition = [CompositionErrors.model_validate(r) for r in errors["by_composition"]]
        doc.dataset = DatasetRef.model_validate(errors["dataset"])
        limit = thresholds.get("force_rmse_eV_A")
        for row in doc.by_composition:
            f = row.errors.force_rmse
            if limit is not None and f is not None and f > limit:
                problems.append(f"force RMSE {f:.3g} eV/Å on {row.composition} ({row.n_frames} frames) is above {limit:g}")
    for e in doc.eos:
        if e.note:
            problems.append(f"E–V of {e.name}: {e.note}")
        lim = thresholds.get("v0_error")
        if lim is not None and e.v0_error is not None and abs(e.v0_error) > lim:
            problems.append(f"E–V of {e.name}: equilibrium volume off by {e.v0_error:+.1%} (limit ±{lim:.0%})")
        lim = thresholds.get("b0_error")
        if lim is not None and e.b0_error is not None and abs(e.b0_error) > lim:
            problems.append(f"E–V of {e.name}: bulk modulus off by {e.b0_error:+.0%} (limit ±{lim:.0%})")
    if stability is not None:
        st = stability if isinstance(stability, dict) else stability.model_dump()
        doc.stability = StabilityResult(label=st.get("label") or "validate", potential=ref, bounded=bool(st.get("bounded")),
                                        steps_done=st.get("steps_done", 0), terminated=bool(st.get("terminated")),
                                        reason=st.get("termination_reason"), natoms=st.get("nsites", 0))
        if not doc.stability.bounded:
            problems.append(f"melt stability: not bounded ({doc.stability.reason or 'unknown reason'}) after "
                            f"{doc.stability.steps_done} steps")
    if uncertainty:
        doc.uncertainty = UncertaintyFraction.model_validate(uncertainty)
        lim = thresholds.get("uncertain_fraction")
        u = doc.uncertainty
        if lim is not None and u.fraction_above is not None and u.fraction_above > lim:
            problems.append(f"{u.fraction_above:.1%} of {u.n_frames} production frames have {u.signal} above "
                            f"{u.threshold:g} (limit {lim:.0%}): the potential extrapolates there")
    doc.problems = problems
    doc.input_hash = content_hash("validation", ref.identity(), errors, [e.model_dump() for e in doc.eos],
                                  doc.stability.model_dump() if doc.stability else None, uncertainty, thresholds)
    log.info("validation of %s: %s", ref.label, "; ".join(problems) if problems else "all checks passed")
    return doc


@dataclass
class ValidationMaker(Maker):
    """The checks a glass or battery modeller runs before trusting a potential in production."""

    need: ClassVar[str] = "light"
    name: str = "validate"
    crystals: list[str] = field(default_factory=lambda: ["Na2O", "FeO", "NaFePO4-olivine"])
    labeler: str | None = "chgnet"
    eos_strain: float = 0.06
    eos_points: int = 7
    stability: StabilityConfig | None = field(default_factory=lambda: StabilityConfig(atoms=297, temperature=2000.0, ps=0.5))
    structures: StructuresConfig = field(default_factory=StructuresConfig)
    engine: str = "ase"
    gamma_threshold: float = 2.5
    trajectory_every: int = 1
    trajectory_types: list[str] | None = None
    split: str = "test"
    thresholds: dict[str, float] = field(default_factory=lambda: {
        "force_rmse_eV_A": 1.0, "v0_error": 0.05, "b0_error": 0.3, "uncertain_fraction": 0.01})

    def make(self, potential: PotentialRef, dataset: DatasetRef | None = None, trajectories: list | None = None,
             campaign: str | None = None, stability_result: Any = None) -> Flow:
        """``stability_result``: the output of a stability run made elsewhere (a campaign's final
        one), used instead of running :attr:`stability` again."""
        from mlipflow.engines.labelers import get_labeler
        from mlipflow.makers.active_learning import StabilityMaker

        jobs = []
        errors = None
        if dataset is not None:
            errors = validate_errors(potential, dataset, self.split)
            errors.name = "validate_errors"
            jobs.append(errors)
        eos = []
        vasp = bool(self.labeler) and get_labeler(self.labeler).kind == "vasp"
        for c in self.crystals:
            reference = None
            if vasp:
                # one reference calculation per strained cell, each its own job (no VASP inside this one)
                from mlipflow.engines.validation import crystal, strained
                from mlipflow.makers.labeling import reference_job

                refs = [reference_job(self.labeler, "static", cell, name=f"validate_eos_{c}_ref_{k}",
                                      source=f"validate-eos:{c}")
                        for k, cell in enumerate(strained(crystal(c), self.eos_strain, self.eos_points))]
                jobs.extend(refs)
                reference = [r.output for r in refs]
            j = validate_eos(potential, c, self.labeler, self.eos_strain, self.eos_points, reference)
            j.name = f"validate_eos_{c}"
            jobs.append(j)
            eos.append(j.output)
        stab = stability_result
        if stab is None and self.stability is not None:
            sj = StabilityMaker(stability=self.stability, structures=self.structures, engine=self.engine).make(
                potential, label="validate", campaign=campaign)
            jobs.append(sj)
            stab = sj.output
        unc = None
        if trajectories:
            uj = validate_uncertainty(potential, [str(t) for t in trajectories], self.gamma_threshold,
                                      self.trajectory_every, self.trajectory_types)
            uj.name = "validate_uncertainty"
            jobs.append(uj)
            unc = uj.output
        thresholds = {**self.thresholds, "gamma_threshold": self.gamma_threshold}
        if stability_result is None and self.stability is not None:
            thresholds.update(stability_temperature_K=self.stability.temperature, stability_atoms=self.stability.atoms)
        g = validate_gather(potential, errors.output if errors is not None else None, eos, stab, unc, thresholds, campaign)
        g.name = "validate_gather"
        jobs.append(g)
        return Flow(jobs, output=g.output, name=self.name)
