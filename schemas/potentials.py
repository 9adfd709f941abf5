"""Potentials and active-learning iterations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mlipflow.schemas.base import MlipflowDocument


class ErrorMetrics(BaseModel):
    """Errors of a potential on a set of frames."""

    n_structures: int = Field(0, description="Frames evaluated.")
    energy_rmse: float | None = Field(None, description="Energy RMSE (eV/atom).")
    energy_mae: float | None = Field(None, description="Energy MAE (eV/atom).")
    force_rmse: float | None = Field(None, description="Force-component RMSE (eV/Å).")
    force_mae: float | None = Field(None, description="Force-component MAE (eV/Å).")


class PotentialDoc(MlipflowDocument):
    """A fitted potential (ACE via pacemaker, or DeePMD)."""

    doc_type = "potential"
    kind: Literal["ace", "dp"] = Field(..., description="'ace' (pacemaker) or 'dp' (DeePMD-kit).")
    name: str = Field("", description="Human label, e.g. 'nafepo4-iter2'.")
    elements: list[str] = Field(default_factory=list, description="Chemical species the potential covers.")
    cutoff: float | None = Field(None, description="Cutoff radius (Å).")
    dataset: str | None = Field(None, description="'name:version' of the training dataset.")
    fit_settings: dict[str, Any] = Field(default_factory=dict, description="Rendered fit input (pacemaker input.yaml / DeePMD input.json).")
    train_metrics: ErrorMetrics = Field(default_factory=ErrorMetrics, description="Errors on the training split.")
    test_metrics: ErrorMetrics = Field(default_factory=ErrorMetrics, description="Errors on the test split.")
    files: dict[str, str] = Field(default_factory=dict, description="Blob: file name -> content (text) or base64 (binary, name ends in '.b64').")
    paths: dict[str, str] = Field(default_factory=dict, description="Where the files were written on disk when fitted.")
    has_active_set: bool = Field(False, description="Whether an ACE active set (.asi) is included.")
    warm_start_from: str | None = Field(None, description="input_hash of the potential it started from.")
    fit_time_s: float | None = Field(None, description="Wall time of the fit (s).")
    plots: dict[str, str] = Field(default_factory=dict, description="Plot name -> path (parity plots).")


class CandidateRecord(BaseModel):
    """One exploration frame considered for labeling."""

    run: str = Field(..., description="Exploration run id.")
    step: int = Field(..., description="MD step at which it was collected.")
    temperature: float | None = Field(None, description="Temperature at collection (K).")
    max_gamma: float = Field(..., description="Maximum per-atom extrapolation grade γ.")
    selected: bool = Field(False, description="Chosen for labeling.")
    reason: str = Field("", description="Why it was or was not chosen.")


class ALIterationDoc(MlipflowDocument):
    """One batch active-learning iteration."""

    doc_type = "al_iteration"
    iteration: int = Field(..., description="Iteration number (0 = initial fit).")
    potential: str | None = Field(None, description="input_hash of the potential used for exploration.")
    n_runs: int = Field(0, description="Exploration runs.")
    terminated_runs: list[str] = Field(default_factory=list, description="Runs stopped early at γ above the upper threshold.")
    n_candidates: int = Field(0, description="Frames collected (γ above the lower threshold or periodic).")
    n_selected: int = Field(0, description="Frames chosen by D-optimality (MaxVol).")
    candidates: list[CandidateRecord] = Field(default_factory=list, description="Every candidate with its γ and fate.")
    gamma_stats: dict[str, float] = Field(default_factory=dict, description="max, mean, median, p90 of per-frame max γ.")
    test_metrics: dict[str, Any] = Field(default_factory=dict, description="Test errors of the potential fitted at the end of the iteration.")
    stop_reason: str | None = Field(None, description="Why the loop stopped after this iteration, if it did.")
    dataset: str | None = Field(None, description="'name:version' of the dataset after merging the new labels.")
    new_potential: str | None = Field(None, description="input_hash of the potential refitted at the end of the iteration.")
    n_labeled: int = Field(0, description="New frames labeled in this iteration (status ok).")
    n_label_failed: int = Field(0, description="Selected frames whose labeling failed (kept, excluded from the dataset).")
    history: list[dict[str, Any]] = Field(default_factory=list, description="Per iteration so far: iteration, potential hash, test energy/force RMSE.")
