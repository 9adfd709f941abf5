"""Potentials and active-learning iterations."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import ConfigDict, Field

from mlipflow.schemas.base import MlipflowDocument, Model
from mlipflow.schemas.frames import DatasetRef


class ErrorMetrics(Model):
    """Errors of a potential on a set of frames."""

    n_structures: int = Field(0, description="Frames evaluated.")
    energy_rmse: float | None = Field(None, description="Energy RMSE (eV/atom).")
    energy_mae: float | None = Field(None, description="Energy MAE (eV/atom).")
    force_rmse: float | None = Field(None, description="Force-component RMSE (eV/Å).")
    force_mae: float | None = Field(None, description="Force-component MAE (eV/Å).")


class FixedSetErrors(Model):
    """Errors of one potential on the campaign's fixed independent test set."""

    n_frames: int = Field(0, description="Frames evaluated.")
    energy_rmse_eV_atom: float | None = Field(None, description="Energy RMSE (eV/atom).")
    force_rmse_eV_A: float | None = Field(None, description="Force-component RMSE (eV/Å).")

    @classmethod
    def of(cls, m: ErrorMetrics) -> "FixedSetErrors":
        return cls(n_frames=m.n_structures, energy_rmse_eV_atom=m.energy_rmse, force_rmse_eV_A=m.force_rmse)


class FixedTestSetComparison(Model):
    """The first and the final potential on the same fixed test set (labelled once, before the loop)."""

    dataset: DatasetRef | None = Field(None, description="The fixed test set (a test-only dataset version).")
    first: FixedSetErrors = Field(default_factory=FixedSetErrors, description="First potential (iteration 0).")
    final: FixedSetErrors = Field(default_factory=FixedSetErrors, description="Final potential.")


class PotentialRef(Model):
    """One potential, as it travels between jobs: its kind plus where its content is.

    Exactly one source: ``uuid`` (the job whose output is the stored :class:`PotentialDoc`, files
    as blobs), ``paths`` (files on disk given by a user: role -> path) or ``parameters`` (a
    classical potential written out in full). ``input_hash`` is the content identity (the fit's
    inputs), used in cache keys.
    """

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(..., description="Potential kind (registry name): 'ace', 'dp', 'classical', ...")
    name: str = Field("", description="Human label.")
    input_hash: str | None = Field(None, description="Content hash of what produced the potential.")
    uuid: str | None = Field(None, description="uuid of the job whose output document holds the potential.")
    paths: dict[str, str] = Field(default_factory=dict, description="Files on disk, role -> path (e.g. model, active_set).")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Inline parameters (classical potentials).")
    elements: list[str] = Field(default_factory=list, description="Chemical species covered.")

    @classmethod
    def coerce(cls, obj: Any) -> PotentialRef:
        """A PotentialRef from itself, its dict, or a PotentialDoc (or its dict)."""
        if isinstance(obj, PotentialRef):
            return obj
        if isinstance(obj, PotentialDoc):
            return obj.ref or cls(kind=obj.kind, name=obj.name, input_hash=obj.input_hash, elements=obj.elements)
        if isinstance(obj, dict):
            if obj.get("type") == "potential" or "files" in obj:
                return cls.coerce(obj.get("ref")) if obj.get("ref") else cls(kind=obj["kind"], name=obj.get("name", ""),
                                                                            input_hash=obj.get("input_hash"),
                                                                            elements=obj.get("elements", []))
            return cls(**{k: v for k, v in obj.items() if not k.startswith("@")})
        raise TypeError(f"cannot make a PotentialRef from {type(obj).__name__}")

    def identity(self) -> dict[str, Any]:
        """What identifies the potential's content (for cache keys)."""
        from mlipflow.schemas.base import content_hash

        if self.input_hash:
            return {"kind": self.kind, "input_hash": self.input_hash}
        if self.paths:
            from mlipflow.engines.pacemaker import file_digest

            return {"kind": self.kind, "files": {r: file_digest(p) for r, p in sorted(self.paths.items())}}
        return {"kind": self.kind, "parameters": content_hash(self.parameters)}

    @property
    def label(self) -> str:
        return self.name or (self.input_hash or "")[:12] or next(iter(self.paths.values()), self.kind)


class PotentialDoc(MlipflowDocument):
    """A fitted potential (ACE via pacemaker, DeePMD-kit, ...)."""

    doc_type = "potential"
    doc_schema_version = "2.0"  # 2.0: kind is a registry name; ref, roles; dataset/warm start as references
    kind: str = Field(..., description="Potential kind (registry name): 'ace' (pacemaker), 'dp' (DeePMD-kit).")
    ref: PotentialRef | None = Field(None, description="The reference later jobs use (set by the job that made it).")
    roles: dict[str, str] = Field(default_factory=dict, description="Role -> file name in `files` (model, yace, active_set, input).")
    name: str = Field("", description="Human label, e.g. 'nafepo4-iter2'.")
    elements: list[str] = Field(default_factory=list, description="Chemical species the potential covers.")
    cutoff: float | None = Field(None, description="Cutoff radius (Å).")
    dataset: DatasetRef | None = Field(None, description="The training dataset version.")
    fit_settings: dict[str, Any] = Field(default_factory=dict, description="Rendered fit input (pacemaker input.yaml / DeePMD input.json).")
    train_metrics: ErrorMetrics = Field(default_factory=ErrorMetrics, description="Errors on the training split.")
    test_metrics: ErrorMetrics = Field(default_factory=ErrorMetrics, description="Errors on the test split.")
    files: dict[str, str] = Field(default_factory=dict, description="Blob: file name -> content (text) or base64 (binary, name ends in '.b64').")
    paths: dict[str, str] = Field(default_factory=dict, description="Where the files were written on disk when fitted.")
    has_active_set: bool = Field(False, description="Whether an ACE active set (.asi) is included.")
    warm_start_from: PotentialRef | None = Field(None, description="The potential it started from.")
    reused_from: PotentialRef | None = Field(None, description="Set when no fit ran (no new labels): the potential kept.")
    warm_start_test_metrics: ErrorMetrics | None = Field(None, description="Errors of the warm-start potential on this fit's test set.")
    fit_time_s: float | None = Field(None, description="Wall time of the fit (s).")
    plots: dict[str, str] = Field(default_factory=dict, description="Plot name -> path (parity plots).")


class CandidateRecord(Model):
    """One exploration frame considered for labeling."""

    run: str = Field(..., description="Exploration run id.")
    step: int = Field(..., description="MD step at which it was collected.")
    temperature: float | None = Field(None, description="Temperature at collection (K).")
    max_gamma: float = Field(..., description="Maximum per-atom extrapolation grade γ.")
    selected: bool = Field(False, description="Chosen for labeling.")
    reason: str = Field("", description="Why it was or was not chosen.")


class StopReason(str, Enum):
    """Why an active-learning loop stopped."""

    iteration_limit = "iteration_limit"
    no_uncertain_frames = "no_uncertain_frames"
    no_improvement = "no_improvement"
    accurate_ratio_reached = "accurate_ratio_reached"


class UncertaintyStats(Model):
    """Per-frame maximum uncertainty (γ for ACE, force deviation for DP) over an iteration's runs."""

    max: float | None = Field(None, description="Largest value.")
    mean: float | None = Field(None, description="Mean.")
    median: float | None = Field(None, description="Median.")
    p90: float | None = Field(None, description="90th percentile.")
    n_above_lo: int = Field(0, description="Candidates above the collection threshold.")


class SelectionDoc(MlipflowDocument):
    """Pool-based selection (``mlipflow potential select``): which frames of a pool a potential's
    uncertainty chose (MaxVol for ACE, ensemble deviation for DP), and why each was or was not."""

    doc_type = "selection"
    method: str = Field(..., description="'maxvol' (ACE D-optimality) or 'deviation' (DP ensemble).")
    potential: PotentialRef = Field(..., description="The potential whose uncertainty chose.")
    pool: list[str] = Field(default_factory=list, description="Where the frames came from (files, dataset versions).")
    n_candidates: int = Field(0, description="Frames in the pool.")
    n_selected: int = Field(0, description="Frames chosen.")
    selected_indices: list[int] = Field(default_factory=list, description="Pool indices of the chosen frames, in order.")
    records: list[CandidateRecord] = Field(default_factory=list, description="One record per pool frame (run = its origin).")
    uncertainty: UncertaintyStats = Field(default_factory=lambda: UncertaintyStats(), description="γ or deviation over the pool.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="The selector's settings.")
    out_file: str | None = Field(None, description="extxyz the chosen frames were written to (labels kept).")


class TrustRatios(Model):
    """DP-GEN's classification of explored frames by the ensemble's max force deviation."""

    accurate: float = Field(0.0, description="Fraction below f_trust_lo.")
    candidate: float = Field(0.0, description="Fraction in [f_trust_lo, f_trust_hi).")
    failed: float = Field(0.0, description="Fraction at or above f_trust_hi.")


class IterationSummary(Model):
    """One row of the active-learning history."""

    iteration: int = Field(..., description="Iteration number.")
    explored_with: PotentialRef | None = Field(None, description="Potential used for exploration.")
    potential: PotentialRef | None = Field(None, description="Potential fitted at the end of the iteration.")
    dataset: DatasetRef | None = Field(None, description="Dataset after merging the new labels.")
    n_runs: int = Field(0, description="Exploration runs.")
    n_terminated: int = Field(0, description="Runs stopped at the upper uncertainty threshold.")
    n_candidates: int = Field(0, description="Candidate frames.")
    n_selected: int = Field(0, description="Frames selected.")
    n_labeled: int = Field(0, description="New frames labelled (ok).")
    n_label_failed: int = Field(0, description="Selected frames whose label failed.")
    uncertainty_max: float | None = Field(None, description="Largest per-frame uncertainty in the exploration.")
    trust_ratios: TrustRatios | None = Field(None, description="DP: accurate/candidate/failed fractions of the explored frames.")
    test: ErrorMetrics = Field(default_factory=ErrorMetrics, description="New potential on this iteration's test set.")
    previous_test: ErrorMetrics | None = Field(None, description="Previous potential on the same test set.")
    fixed_test: FixedSetErrors | None = Field(None, description="New potential on the fixed independent test set.")
    t_melt: float | None = Field(None, description="Melt temperature of this iteration's explorations (K).")


class ALIterationDoc(MlipflowDocument):
    """One batch active-learning iteration."""

    doc_type = "al_iteration"
    doc_schema_version = "2.0"  # 2.0: references, metrics, stop reasons and history as models
    iteration: int = Field(..., description="Iteration number (0 = initial fit).")
    potential: PotentialRef | None = Field(None, description="Potential used for exploration.")
    n_runs: int = Field(0, description="Exploration runs.")
    terminated_runs: list[str] = Field(default_factory=list, description="Runs stopped early at γ above the upper threshold.")
    n_candidates: int = Field(0, description="Frames collected (γ above the lower threshold or periodic).")
    n_selected: int = Field(0, description="Frames chosen by D-optimality (MaxVol).")
    candidates: list[CandidateRecord] = Field(default_factory=list, description="Every candidate with its γ and fate.")
    gamma_stats: UncertaintyStats = Field(default_factory=UncertaintyStats, description="Statistics of per-frame max γ (DP: max force deviation).")
    trust_ratios: TrustRatios | None = Field(None, description="DP: accurate/candidate/failed fractions of the explored frames.")
    test_metrics: ErrorMetrics = Field(default_factory=ErrorMetrics, description="Test errors of the potential fitted at the end of the iteration.")
    previous_test_metrics: ErrorMetrics | None = Field(None, description="Errors of the exploring potential on the same test set.")
    stop_reason: StopReason | None = Field(None, description="Why the loop stopped after this iteration, if it did.")
    stop_message: str | None = Field(None, description="The stopping rule's explanation, with numbers.")
    dataset: DatasetRef | None = Field(None, description="Dataset after merging the new labels.")
    new_potential: PotentialRef | None = Field(None, description="Potential refitted at the end of the iteration.")
    n_labeled: int = Field(0, description="New frames labeled in this iteration (status ok).")
    n_label_failed: int = Field(0, description="Selected frames whose labeling failed (kept, excluded from the dataset).")
    history: list[IterationSummary] = Field(default_factory=list, description="Per iteration so far.")


class StabilityResult(Model):
    """Outcome of a stability run."""

    label: str = Field(..., description="Which potential: 'first' or 'final'.")
    potential: PotentialRef | None = Field(None, description="The potential tested.")
    bounded: bool = Field(..., description="Energies and forces stayed bounded for the whole run.")
    steps_done: int = Field(0, description="Steps completed.")
    terminated: bool = Field(False, description="Stopped early.")
    reason: str | None = Field(None, description="Why it is not bounded.")
    natoms: int = Field(0, description="Atoms in the test cell.")


class ActiveLearningSummary(Model):
    """Headline results of an active-learning campaign (CampaignDoc.summary)."""

    iterations: int = Field(0, description="Iterations run.")
    stop_reason: StopReason | None = Field(None, description="Why the loop stopped.")
    stop_message: str | None = Field(None, description="The stopping rule's explanation.")
    initial_frames: int = Field(0, description="Frames in the initial dataset.")
    al_labels: int = Field(0, description="Frames labelled by active learning.")
    first_potential: PotentialRef = Field(..., description="Potential fitted on the initial dataset.")
    final_potential: PotentialRef = Field(..., description="Last potential.")
    first_test: ErrorMetrics = Field(default_factory=ErrorMetrics, description="First potential on the initial test set.")
    final_test: ErrorMetrics = Field(default_factory=ErrorMetrics, description="Final potential on the last test set.")
    fixed_test_set: FixedTestSetComparison | None = Field(None, description="First and final potential on the fixed independent test set.")
    comparisons: dict[str, dict[str, ErrorMetrics]] = Field(default_factory=dict, description="Test set ('initial'|'final') -> potential ('first'|'final') -> errors.")
    history: list[IterationSummary] = Field(default_factory=list, description="Per-iteration table.")
    stability: dict[str, StabilityResult] = Field(default_factory=dict, description="'first'/'final' -> stability run.")
    cache: dict[str, dict[str, int]] = Field(default_factory=dict, description="Cache hits and computations per kind.")
    plots: dict[str, str] = Field(default_factory=dict, description="Plot name -> path.")
