"""The LixFePO4 campaign (LixFePO4 paper): labels → DPA-2 fine-tuning → validation → MD → polarons.

    random olivine configurations (relaxation starts) + olivine cells at nine x (AIMD)
    → reference labels, one job per relaxation and per AIMD run (:class:`LfpLabelMaker`)
    → the published sampling: configurations × frames per relaxation, compositions × AIMD frames
      → dataset version (:func:`sample_lfp_dataset`)
    → the base: a given DPA-2 checkpoint (the paper: DPA-2.3.1, branch Domains_Anode) or the local
      multi-task base trained in the flow (:class:`DPPretrainMaker`, the laptop path)
    → fine-tuning, optionally an ensemble (:class:`DPFitMaker`)
    → validation (:class:`LfpValidationMaker`): Fe valence recovery from frames before convergence
      and from perturbed structures, Fe–O radius distribution
    → the MD campaign of :mod:`mlipflow.flows.lfp_md` with the fine-tuned model (temperature
      cycles, orderings, interface) and the polaron analysis of every run
    → the campaign document (:class:`~mlipflow.schemas.lfp.LfpDpaSummary`; ``final_potential`` is
      what ``{campaign: NAME, which: final}`` names elsewhere).
"""

from __future__ import annotations

from typing import Any, Literal

from jobflow import Flow, OnMissing, job
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

from mlipflow.errors import UserError, parse_parameters
from mlipflow.schemas import CampaignDoc, DatasetRef, PotentialDoc, PotentialRef, content_hash
from mlipflow.schemas.base import Model, as_data
from mlipflow.schemas.lfp import LfpDpaSummary, LfpLabelingDoc, LfpValidationDoc
from mlipflow.workers import needs


class LfpRelaxConfig(Model):
    """Relaxation trajectories (paper: 126 cells 1×2×2 at various x, 9379 frames; 20 configurations × 41 frames)."""

    n_cells: PositiveInt = Field(126, description="Distinct random Li/vacancy/polaron configurations relaxed.")
    supercell: list[int] = Field(default_factory=lambda: [1, 2, 2])
    x_values: list[float] | None = Field(None, description="x of the cells in turn (default: every multiple of 1/n_Li in (0, 1)).")
    rattle: float = Field(0.05, ge=0, description="Normal displacements of the starts (Å), so relaxations have a path.")
    fmax: PositiveFloat = Field(0.02, description="Convergence: max force (eV/Å); VASP's EDIFFG = -0.02 in the input set.")
    steps: PositiveInt = Field(200, description="Most ionic steps of an embedded relaxation.")
    every: PositiveInt = Field(1, description="Keep every n-th step.")
    n_configurations: PositiveInt = Field(20, description="Relaxations sampled into the dataset.")
    frames_per_configuration: PositiveInt = Field(41)
    seed: int = 0


class LfpAimdConfig(Model):
    """AIMD (paper: 550 K NVT, 1 ps, 4 fs, nine 1×2×2 cells x = 0 … 1; 5 compositions × 150 frames)."""

    x_values: list[float] = Field(default_factory=lambda: [k / 8 for k in range(9)])
    supercell: list[int] = Field(default_factory=lambda: [1, 2, 2])
    temperature: PositiveFloat = 550.0
    ps: PositiveFloat = 1.0
    timestep_fs: PositiveFloat = 4.0
    every: PositiveInt = 1
    compositions: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    frames_per_composition: PositiveInt = 150
    seed: int = 100


class LfpFitConfig(Model):
    """DPA-2 fine-tuning (paper: DPA-2.3.1-v3.0.0rc0, branch Domains_Anode, the lixfepo4_paper schedule)."""

    preset: Literal["lixfepo4_paper", "mini", "tiny_dpa2", "tiny"] = "lixfepo4_paper"
    numb_steps: PositiveInt | None = Field(None, description="Override the preset's steps (else epochs × frames).")
    settings: dict[str, Any] = Field(default_factory=dict, description="Other DPSettings fields.")
    base: str | None = Field(None, description="Pretrained .pt checkpoint; 'pretrained': the configured dp_pretrained.")
    pretrain: dict[str, Any] | None = Field(None, description="Train the local base in the flow instead "
                                            "(DPPretrainMaker fields: profile, labeler, structures, steps, seed).")
    branch: str | None = "Domains_Anode"
    ensemble: PositiveInt = 1
    seed: int = 0


class LfpValidationConfig(Model):
    """SI II.A: relax from frames before convergence and from perturbed structures (0.05, 0.12 Å)."""

    n_structures: NonNegativeInt = Field(20, description="Reference relaxations validated against (0: no validation).")
    steps_before: PositiveInt = Field(50, description="Start this many steps before the reference converged.")
    perturbations: list[PositiveFloat] = Field(default_factory=lambda: [0.05, 0.12])
    fmax: PositiveFloat = 0.02
    steps: PositiveInt = 500
    magmom_threshold: float | None = Field(None, description="µB above which a reference Fe is Fe3+ (None: two-Gaussian boundary).")
    boundary_A: float | None = Field(None, description="Fe–O radius below which a relaxed Fe is Fe3+ (None: two-Gaussian boundary).")
    seed: int = 0


class LfpDpaConfig(Model):
    """Parameters of the ``lfp_dpa`` flow (campaign files' ``parameters:``)."""

    labeler: str = Field("vasp:lixfepo4_dpa", description="Reference labeler (vasp:<set> or an embedded one).")
    relax: LfpRelaxConfig = Field(default_factory=LfpRelaxConfig)
    aimd: LfpAimdConfig = Field(default_factory=LfpAimdConfig)
    dataset_name: str = "lixfepo4"
    test_fraction: float = Field(0.1, ge=0, lt=1)
    split_seed: int = 0
    fit: LfpFitConfig = Field(default_factory=LfpFitConfig)
    validation: LfpValidationConfig = Field(default_factory=LfpValidationConfig)
    md: dict[str, Any] | None = Field(default_factory=dict, description="lfp_md parameters except potential "
                                      "(engine, supercell, cycle_x, cycle, orderings, ...); null: no MD stage.")


def _base_checkpoint(fit: LfpFitConfig) -> str | None:
    """The base checkpoint's path (validated now, so a typo fails before any job runs)."""
    from pathlib import Path

    if fit.base is None:
        return None
    path = fit.base
    if path == "pretrained":
        from mlipflow.settings import get_settings

        configured = get_settings().dp_pretrained
        if configured is None:
            raise UserError("fit.base: pretrained, but no pretrained checkpoint is configured",
                            "set dp_pretrained in ~/.mlipflow.yaml, give the path, or use fit.pretrain to train "
                            "the local base in the flow")
        path = str(configured)
    p = Path(path).expanduser()
    if p.suffix != ".pt":
        raise UserError(f"fit.base {p.name} is not a training checkpoint (.pt)", "give the base's .pt checkpoint "
                        "(e.g. DPA-2.3.1-v3.0.0rc0.pt); a frozen .pth cannot be fine-tuned")
    return str(p)


def lfp_dpa_flow(campaign: str = "lixfepo4", **parameters) -> Flow:
    """The LixFePO4 campaign end to end (parameters: :class:`LfpDpaConfig`)."""
    from mlipflow.engines.deepmd import DPSettings
    from mlipflow.engines.labelers import check_labeler
    from mlipflow.flows.lfp_md import LfpMDConfig, lfp_md_jobs
    from mlipflow.makers.deepmd import DPFitMaker, DPPretrainMaker
    from mlipflow.makers.lfp import LfpLabelMaker, LfpValidationMaker, OlivineConfigurationsMaker

    cfg = parse_parameters(LfpDpaConfig, parameters, "lfp_dpa parameters", "see examples/lfp_mini.yaml")
    check_labeler(cfg.labeler)
    if cfg.fit.base is not None and cfg.fit.pretrain is not None:
        raise UserError("fit gives both base and pretrain", "give a base checkpoint or pretrain the local base, not both")
    base_path = _base_checkpoint(cfg.fit)
    md_cfg = None
    if cfg.md is not None:
        if "potential" in cfg.md:
            raise UserError("md.potential is set, but the MD stage uses the fine-tuned model",
                            "remove md.potential (run flow lfp_md for another potential)")
        md_cfg = parse_parameters(LfpMDConfig, {"potential": "(fine-tuned)", **cfg.md}, "lfp_dpa md parameters",
                                  "see examples/lfp_md_mini.yaml for the keys")
    try:
        dps = DPSettings.preset(cfg.fit.preset, **cfg.fit.settings,
                                **({"numb_steps": cfg.fit.numb_steps} if cfg.fit.numb_steps else {}))
    except (TypeError, ValueError) as exc:
        raise UserError(f"fit.settings: {exc}", "see DPSettings in docs/deepmd.md") from None

    relax_cells = OlivineConfigurationsMaker(name="relaxation starts", n_structures=cfg.relax.n_cells,
                                             supercell=cfg.relax.supercell, x_values=cfg.relax.x_values,
                                             rattle=cfg.relax.rattle, seed=cfg.relax.seed).make(campaign=campaign)
    aimd_cells = OlivineConfigurationsMaker(name="aimd cells", n_structures=len(cfg.aimd.x_values),
                                            supercell=cfg.aimd.supercell, x_values=cfg.aimd.x_values,
                                            seed=cfg.aimd.seed).make(campaign=campaign)
    labels = LfpLabelMaker(labeler=cfg.labeler, relax=cfg.relax.model_dump(), aimd=cfg.aimd.model_dump(),
                           dataset_name=cfg.dataset_name, test_fraction=cfg.test_fraction, split_seed=cfg.split_seed,
                           validation_structures=cfg.validation.n_structures,
                           validation_steps_before=cfg.validation.steps_before
                           ).make(relax_cells.output, aimd_cells.output, campaign=campaign)
    jobs: list = [relax_cells, aimd_cells, labels]
    base_out = None
    if cfg.fit.pretrain is not None:
        try:
            pre = DPPretrainMaker(**{"branch": cfg.fit.branch, **cfg.fit.pretrain}).make(campaign=campaign)
        except TypeError as exc:
            raise UserError(f"fit.pretrain: {exc}", "keys: profile, labeler, structures, steps, seed, branch") from None
        jobs.append(pre)
        base_out = pre.output
    fit = DPFitMaker(name="dp finetune", settings=dps, ensemble=cfg.fit.ensemble, finetune=base_path,
                     model_branch=cfg.fit.branch, seed=cfg.fit.seed,
                     potential_name=f"{campaign}-dpa").make(labels.output.dataset, campaign=campaign,
                                                            base=base_out.ref if base_out is not None else None)
    jobs.append(fit)
    validation = None
    if cfg.validation.n_structures:
        v = cfg.validation
        validation = LfpValidationMaker(perturbations=v.perturbations, fmax=v.fmax, steps=v.steps,
                                        magmom_threshold=v.magmom_threshold, boundary_A=v.boundary_A,
                                        seed=v.seed).make(fit.output, labels.output, campaign=campaign)
        jobs.append(validation)
    analyses: dict[str, list] = {}
    if md_cfg is not None:
        md_jobs, analyses = lfp_md_jobs(md_cfg, fit.output, campaign)
        jobs.extend(md_jobs)
    summary = summarize_lfp_dpa(labels.output, fit.output, validation.output if validation else None,
                                base_out, analyses, cfg.model_dump(mode="json"), campaign=campaign)
    summary.name = "lfp summary"
    summary.config.on_missing_references = OnMissing.NONE  # a failed validation or analysis is recorded, not the end
    jobs.append(summary)
    return Flow(jobs, output=summary.output, name=campaign)


@needs("light")
@job
def summarize_lfp_dpa(labeling: LfpLabelingDoc | dict, potential: PotentialDoc | dict,
                      validation: LfpValidationDoc | dict | None, base: PotentialDoc | dict | None,
                      analyses: dict[str, list], config: dict, campaign: str | None = None) -> CampaignDoc:
    """The campaign document: labels and sampling, fine-tuning errors (and the base's, zero-shot),
    validation rates, the MD stage's rates and Arrhenius fits."""
    from mlipflow.engines.repository import load_dataset
    from mlipflow.flows.lfp_md import lfp_md_summary
    from mlipflow.makers.active_learning import split_errors

    if labeling is None or potential is None:
        raise UserError("the labels or the fine-tuning did not complete", "see `mlipflow status`, fix the cause and rerun")
    lab = LfpLabelingDoc.model_validate(as_data(labeling))
    pot = PotentialDoc.model_validate(as_data(potential))
    val = LfpValidationDoc.model_validate(as_data(validation)) if validation is not None else None
    base_doc = PotentialDoc.model_validate(as_data(base)) if base is not None else None
    base_metrics = None
    if base_doc is not None and "model" in base_doc.roles:
        base_metrics = split_errors(base_doc.ref, DatasetRef.coerce(lab.dataset))
    plots = dict(pot.plots) | (val.plots if val else {})
    md = lfp_md_summary(analyses, pot.ref).model_dump(mode="json") if analyses else {}
    ds, _ = load_dataset(lab.dataset.name, lab.dataset.version, with_frames=False)
    out = LfpDpaSummary(
        labeler=lab.labeler, dataset=lab.dataset, n_train_frames=len(ds.train_ids), n_test_frames=len(ds.test_ids),
        labeling={k: getattr(lab, k) for k in ("n_relaxations", "n_relaxations_ok", "n_relaxations_converged",
                                               "n_relax_frames", "n_aimd_runs", "n_aimd_frames", "n_sampled_relax",
                                               "n_sampled_aimd")} | {"n_failures": len(lab.failures)},
        base=base_doc.ref if base_doc is not None else (PotentialRef(kind="dp", name=str(config["fit"]["base"]))
                                                         if config["fit"].get("base") else None),
        base_test_metrics=base_metrics, final_potential=pot.ref, train_metrics=pot.train_metrics,
        test_metrics=pot.test_metrics, validation=val.rates if val else [], gmm=val.gmm if val else {}, md=md,
        plots=plots)
    return CampaignDoc(name=campaign or "lixfepo4", campaign=campaign, status="completed", config=config,
                       summary=out.model_dump(mode="json"), input_hash=content_hash("lfp-dpa", config))


__all__ = ["LfpDpaConfig", "LfpRelaxConfig", "LfpAimdConfig", "LfpFitConfig", "LfpValidationConfig", "lfp_dpa_flow",
           "summarize_lfp_dpa"]
