"""Documents of the LixFePO4 campaign (``lfp_dpa``): labels and sampling, validation, summary."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mlipflow.schemas.base import MlipflowDocument, Model
from mlipflow.schemas.frames import DatasetRef
from mlipflow.schemas.potentials import ErrorMetrics, PotentialRef


class LabelFailure(Model):
    """A reference calculation that gave no usable frames (kept out of the dataset)."""

    source: str = Field(..., description="relax | aimd.")
    configuration: str = Field("", description="Which cell (e.g. 'random-17', 'x=0.5').")
    reason: str = Field(..., description="The labeler's reason.")


class ValidationStart(Model):
    """A reference relaxation used for validation: its converged frame and the frame ``n`` steps before."""

    configuration: str = Field(..., description="The relaxation's cell.")
    final_frame_id: str = Field(..., description="The reference relaxed structure (last frame).")
    before_frame_id: str = Field(..., description="The frame `steps_before` ionic steps before convergence (or the first).")
    steps_before: int = Field(..., description="How many steps before convergence that frame is.")
    in_training: bool = Field(False, description="Whether frames of this relaxation were sampled into the dataset.")


class LfpLabelingDoc(MlipflowDocument):
    """What the labelling stage produced: counts, failures, the sampling and the dataset version."""

    doc_type = "lfp_labeling"
    dataset: DatasetRef = Field(..., description="The dataset version built from the sampled frames.")
    labeler: str = Field(..., description="Reference labeler.")
    n_relaxations: int = Field(0, description="Relaxations run.")
    n_relaxations_ok: int = Field(0, description="Relaxations that ended in a usable frame.")
    n_relaxations_converged: int = Field(0, description="... whose last frame has max |F| <= fmax.")
    n_relax_frames: int = Field(0, description="Usable relaxation frames.")
    n_aimd_runs: int = Field(0, description="AIMD runs.")
    n_aimd_frames: int = Field(0, description="Usable AIMD frames.")
    sampled_configurations: list[str] = Field(default_factory=list, description="Relaxations whose frames were sampled.")
    n_sampled_relax: int = Field(0, description="Relaxation frames in the dataset.")
    n_sampled_aimd: dict[str, int] = Field(default_factory=dict, description="AIMD frames in the dataset per composition.")
    failures: list[LabelFailure] = Field(default_factory=list, description="Reference calculations without usable frames.")
    validation: list[ValidationStart] = Field(default_factory=list, description="Relaxations kept for validation.")


class RecoveryRate(Model):
    """How often the potential recovers the reference Fe valence configuration from one kind of start."""

    start: str = Field(..., description="before_convergence | perturbed_<amplitude>.")
    n: int = Field(0, description="Relaxations from this kind of start.")
    n_recovered: int = Field(0, description="... ending with every Fe in the reference's valence.")
    fraction: float | None = Field(None, description="n_recovered / n.")
    n_structure_matched: int = Field(0, description="... whose relaxed structure StructureMatcher matches the reference.")
    n_failed: int = Field(0, description="Relaxations that raised (counted as not recovered).")
    paper_fraction: float | None = Field(None, description="The LixFePO4 paper's value (SI II.A) for this start.")


class ValidationCase(Model):
    configuration: str
    start: str
    recovered: bool
    structure_matched: bool
    n_fe3_reference: int
    n_fe3_relaxed: int | None = None
    steps: int | None = None
    error: str | None = None


class LfpValidationDoc(MlipflowDocument):
    """The LixFePO4 paper's validation (SI II.A) of a potential: Fe valence recovery and Fe–O radii."""

    doc_type = "lfp_validation"
    potential: PotentialRef
    reference_valence: str = Field(..., description="How the reference valences were read (magmom threshold or bond lengths).")
    boundary_A: float | None = Field(None, description="Fe–O radius below which an Fe is Fe3+ in the relaxed structures.")
    gmm: dict[str, Any] = Field(default_factory=dict, description="Two-Gaussian fit of the relaxed Fe–O radii (means_A, sigmas_A, weights, boundary_A, bayes_error).")
    reference_gmm: dict[str, Any] = Field(default_factory=dict, description="The same fit of the reference relaxed structures' radii.")
    rates: list[RecoveryRate] = Field(default_factory=list)
    cases: list[ValidationCase] = Field(default_factory=list)
    radii_A: dict[str, list[float]] = Field(default_factory=dict, description="Fe–O radii: reference, relaxed (every Fe of every case).")
    plots: dict[str, str] = Field(default_factory=dict)


class LfpDpaSummary(Model):
    """The campaign document's summary of ``lfp_dpa``."""

    labeler: str
    dataset: DatasetRef
    n_train_frames: int | None = None
    n_test_frames: int | None = None
    labeling: dict[str, Any] = Field(default_factory=dict, description="Counts of the labelling stage (LfpLabelingDoc).")
    base: PotentialRef | None = Field(None, description="The pretrained base fine-tuned (local base or given checkpoint).")
    base_test_metrics: ErrorMetrics | None = Field(None, description="The base's head, zero-shot, on the test split.")
    final_potential: PotentialRef = Field(..., description="The fine-tuned model (what `{campaign: NAME, which: final}` names).")
    train_metrics: ErrorMetrics = Field(default_factory=ErrorMetrics)
    test_metrics: ErrorMetrics = Field(default_factory=ErrorMetrics)
    validation: list[RecoveryRate] = Field(default_factory=list)
    gmm: dict[str, Any] = Field(default_factory=dict, description="Fe–O radius mixture of the validation relaxations.")
    md: dict[str, Any] = Field(default_factory=dict, description="LfpCampaignSummary of the MD stage: rates per run, Arrhenius fits.")
    plots: dict[str, str] = Field(default_factory=dict)


__all__ = ["LabelFailure", "ValidationStart", "LfpLabelingDoc", "RecoveryRate", "ValidationCase", "LfpValidationDoc",
           "LfpDpaSummary"]
