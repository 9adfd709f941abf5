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
    energy_mae_eV_atom: float | None = Field(None, description="Energy MAE (eV/atom).")
    force_mae_eV_A: float | None = Field(None, description="Force-component MAE (eV/Å): the typical error, which "
                                         "a few extrapolating frames do not dominate as they do the RMSE.")

    @classmethod
    def of(cls, m: ErrorMetrics) -> "FixedSetErrors":
        return cls(n_frames=m.n_structures, energy_rmse_eV_atom=m.energy_rmse, force_rmse_eV_A=m.force_rmse,
                   energy_mae_eV_atom=m.energy_mae, force_mae_eV_A=m.force_mae)


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


class DistilRound(Model):
    """One round of pool-based active learning: the labels so far, the refit's test errors, and
    what the strategy's next choice looked like."""

    round: int = Field(..., description="0 = the initial set; k = after the k-th batch.")
    n_labels: int = Field(..., description="Labelled frames the potential of this round was fitted on.")
    n_added: int = Field(0, description="Frames added by the batch that led to this round (0 for round 0).")
    n_by_uncertainty: int = Field(0, description="Of those, frames chosen by the uncertainty (the rest filled at random).")
    test: ErrorMetrics = Field(default_factory=ErrorMetrics, description="Errors on the fixed test set.")
    added_high_force_fraction: float | None = Field(
        None, description="Fraction of the added frames with a reference force component above high_force.")
    pool_uncertainty: UncertaintyStats | None = Field(
        None, description="γ (ACE) or max force deviation (DP) over the frames not yet chosen, as the "
        "next selection saw it; n_above_lo = frames above the tolerance.")
    fit_time_s: float | None = Field(None, description="Fit wall time (s; cached fits: the original time).")
    select_time_s: float | None = Field(None, description="Wall time of the next selection (s).")
    cached: bool = Field(False, description="The fit came from the cache.")


class DistilDoc(MlipflowDocument):
    """Pool-based active learning (``mlipflow potential distil``): from a small initial set, add
    labelled pool frames in batches chosen by a strategy, refit after each, and measure the test
    error against the number of labels (the label-efficiency curve)."""

    doc_type = "distillation"
    kind: str = Field(..., description="Potential kind fitted ('ace' or 'dp').")
    strategy: str = Field(..., description="'random', 'maxvol' (ACE D-optimality) or 'deviation' (DP ensemble).")
    seed: int = Field(0, description="Seed of the random choices of this strategy (the initial set has its own).")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Every setting of the run (sizes, filters, fit settings).")
    pool: list[str] = Field(default_factory=list, description="Where the pool came from (files, dataset versions).")
    n_pool: int = Field(0, description="Usable labelled frames in the pool.")
    n_test: int = Field(0, description="Frames in the fixed test set.")
    rounds: list[DistilRound] = Field(default_factory=list, description="One row per fit.")
    chosen: list[str] = Field(default_factory=list, description="frame_ids of the labels, in the order they were added.")
    final_potential: PotentialRef | None = Field(None, description="The last fit (files in the cache).")
    time_s: float | None = Field(None, description="Wall time of the whole run (s).")


class CompositionErrors(Model):
    """Errors of a potential on the labelled frames of one composition region."""

    composition: str = Field(..., description="Composition label (generated cells) or reduced formula.")
    formula: str = Field("", description="Reduced formula of the first frame.")
    n_frames: int = Field(0, description="Frames of this composition.")
    errors: ErrorMetrics = Field(default_factory=ErrorMetrics, description="Energy (eV/atom) and force (eV/Å) errors.")


class EosCheck(Model):
    """E–V curve of a reference crystal with the potential, and with the reference labeler."""

    name: str = Field(..., description="Crystal name (or the file's stem).")
    formula: str = Field("", description="Empirical formula.")
    natoms: int = Field(0, description="Atoms in the cell.")
    volumes_A3_atom: list[float] = Field(default_factory=list, description="Volumes (Å³/atom).")
    energies_eV_atom: list[float] = Field(default_factory=list, description="Potential energies (eV/atom).")
    v0_A3_atom: float | None = Field(None, description="Birch–Murnaghan equilibrium volume of the potential.")
    b0_GPa: float | None = Field(None, description="Birch–Murnaghan bulk modulus of the potential (GPa).")
    reference_labeler: str | None = Field(None, description="Labeler of the reference curve.")
    reference_energies_eV_atom: list[float] | None = Field(None, description="Reference energies (eV/atom).")
    reference_v0_A3_atom: float | None = Field(None, description="Reference equilibrium volume.")
    reference_b0_GPa: float | None = Field(None, description="Reference bulk modulus (GPa).")
    v0_error: float | None = Field(None, description="V0 / V0_ref - 1.")
    b0_error: float | None = Field(None, description="B0 / B0_ref - 1.")
    shape_rmse_eV_atom: float | None = Field(None, description="RMSE of E - E_min between the two curves (eV/atom).")
    note: str | None = Field(None, description="What went wrong, if anything.")


class UncertaintyFraction(Model):
    """How much of a set of (production-MD) frames the potential extrapolates on."""

    signal: str = Field(..., description="'gamma' (ACE) or 'deviation' (DP ensemble max force deviation, eV/Å).")
    threshold: float = Field(..., description="Threshold (the collection threshold of the campaign, e.g. γ 2.5).")
    n_frames: int = Field(0, description="Frames evaluated.")
    n_above: int = Field(0, description="Frames above the threshold.")
    fraction_above: float | None = Field(None, description="n_above / frames with a finite value.")
    median: float | None = Field(None, description="Median per-frame value.")
    max: float | None = Field(None, description="Largest per-frame value.")
    source: str = Field("", description="Where the frames came from.")


class ValidationDoc(MlipflowDocument):
    """Checks of one potential before production (``mlipflow potential validate``)."""

    doc_type = "validation"
    potential: PotentialRef = Field(..., description="The potential checked.")
    overall: ErrorMetrics | None = Field(None, description="Errors on all labelled frames given.")
    by_composition: list[CompositionErrors] = Field(default_factory=list, description="Errors per composition region.")
    dataset: DatasetRef | None = Field(None, description="The labelled frames (a dataset version's test split).")
    eos: list[EosCheck] = Field(default_factory=list, description="E–V curves of reference crystals.")
    stability: StabilityResult | None = Field(None, description="Melt stability at the target temperature.")
    uncertainty: UncertaintyFraction | None = Field(None, description="Production-MD frames above the collection threshold.")
    problems: list[str] = Field(default_factory=list, description="What failed the checks, one sentence each (empty: all passed).")
    thresholds: dict[str, float] = Field(default_factory=dict, description="The limits the checks used.")


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
    n_label_rejected: int = Field(0, description="Labels kept out by select.max_label_force.")
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
    potential_output: Any = Field(None, description=(
        "The refit's output as a jobflow reference (set by decide): a job given the loop's "
        "`potential_output` receives the potential document with its files, resolved by the manager."))
    n_labeled: int = Field(0, description="New frames labeled in this iteration (status ok).")
    n_label_failed: int = Field(0, description="Selected frames whose labeling failed (kept, excluded from the dataset).")
    n_label_rejected: int = Field(0, description="Labelled frames kept out of the dataset by select.max_label_force.")
    label_rejections: list[str] = Field(default_factory=list, description="Each rejected label: frame id and its largest force component.")
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
    validation_problems: list[str] | None = Field(None, description="Problems the validation of the final potential found (validation.enabled; None: not validated, []: all checks passed).")
    cache: dict[str, dict[str, int]] = Field(default_factory=dict, description="Cache hits and computations per kind.")
    plots: dict[str, str] = Field(default_factory=dict, description="Plot name -> path.")


ValidationDoc.model_rebuild()  # its stability field is a StabilityResult, defined further down
