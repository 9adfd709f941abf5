"""Batch active learning as a dynamic jobflow flow (the NaFePO4 ACE campaign).

    random cells → high-T MD labeled by the reference labeler → dataset v1 → fit (iteration 0)
    → [explore (uncertainty-tracked melt-quench) → select + label + merge → refit → decide] × n
    → stability test (first and final potential) → campaign summary with plots

:class:`ActiveLearningMaker` holds the sub-makers (atomate2 style): the initial structures and
dataset makers, an :class:`~mlipflow.makers.md.MDMaker` for exploration (any engine, any
potential kind with an uncertainty signal), a :class:`~mlipflow.makers.active_learning.SelectLabelMaker`
(selector + labeler), a fit maker and the stability maker. Each iteration is a job
(:class:`ActiveLearningIterationMaker`) that replaces itself with that iteration's sub-flow; the
sub-flow's last job (:func:`decide`) replaces itself with the next iteration unless a stopping
rule holds: the iteration limit, no frame above the lower threshold, or no improvement of the test
error of the new potential over the previous one on the same test set. Everything a later job
needs comes from job outputs and the store (no shared local directory). Jobs of the submitted flow
(stability runs, the summary) get potentials as references to their fit's output, which the manager
resolves with the files (:func:`~mlipflow.engines.potentials.job_input`); jobs an iteration creates
at run time get a :class:`~mlipflow.schemas.PotentialRef` and read the files from the store
(jobflow-remote refuses references to jobs outside a replacing flow).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from jobflow import Flow, Maker, Response, job

from mlipflow.engines.potentials import job_input
from mlipflow.errors import UserError, parse_parameters
from mlipflow.makers.ace import AceFitMaker, MaxVolSelector, fit_settings
from mlipflow.makers.active_learning import (
    FixedTestSetMaker,
    InitialDatasetMaker,
    InitialStructuresMaker,
    SelectLabelMaker,
    StabilityMaker,
    exploration_protocol,
    fixed_set_errors,
    generate_cells,
    split_errors,
)
from mlipflow.makers.md import MDMaker
from mlipflow.makers.validation import ValidationMaker
from mlipflow.schemas import (
    ActiveLearningSummary,
    ALIterationDoc,
    CampaignDoc,
    DatasetDoc,
    DatasetRef,
    FixedTestSetComparison,
    IterationSummary,
    MDRunDoc,
    PotentialDoc,
    PotentialRef,
    StabilityResult,
    StopReason,
    ValidationDoc,
    content_hash,
)
from mlipflow.schemas.active_learning import ActiveLearningConfig, LoopConfig, StructuresConfig
from mlipflow.workers import assign_needs, replace_with

log = logging.getLogger("mlipflow.al")


def _model(cls, obj):
    if obj is None or isinstance(obj, cls):
        return obj
    return cls.model_validate({k: v for k, v in dict(obj).items() if not k.startswith("@")})


@dataclass
class ActiveLearningIterationMaker(Maker):
    """One iteration: explore new cells, select + label + merge, refit, decide."""

    need: ClassVar[str] = "light"
    name: str = "iteration"
    structures: StructuresConfig = field(default_factory=StructuresConfig)
    structures_per_iteration: int | None = None
    explore_maker: MDMaker = field(default_factory=MDMaker)
    select_label_maker: SelectLabelMaker = field(default_factory=SelectLabelMaker)
    fit_maker: Maker = field(default_factory=AceFitMaker)
    loop: LoopConfig = field(default_factory=LoopConfig)

    @job
    def make(self, iteration: int, potential: PotentialRef, dataset: DatasetRef, history: list,
             campaign: str | None = None, fixed_test: DatasetRef | None = None):
        """Replace this job with iteration ``iteration``'s sub-flow."""
        potential = PotentialRef.coerce(potential)
        log.info("active learning: iteration %d with potential %s", iteration, potential.label)
        cells = generate_cells(self.structures, seed=self.structures.seed + 1000 * iteration,
                               n_structures=self.structures_per_iteration)
        explores = []
        for k, (st, info) in enumerate(cells):
            maker = replace(self.explore_maker, name=f"explore_{iteration}_{k}",
                            protocol=self.explore_maker.protocol.model_copy(update={"seed": 1000 * iteration + k}))
            explores.append(maker.make(st.as_dict(), potential, run_id=f"it{iteration}-{k}-{info.get('label', '')}",
                                       campaign=campaign))
        sel = replace(self.select_label_maker, name=f"select_label_{iteration}").make(
            [j.output for j in explores], potential, dataset, iteration, campaign=campaign)
        fit = replace(self.fit_maker, name=f"fit_{iteration}").make(
            sel.output.dataset, warm_start=potential, campaign=campaign)
        dec = decide(self, iteration, sel.output, fit.output, history, campaign, fixed_test)
        dec.name = f"decide_{iteration}"
        return replace_with([*explores, sel, fit, dec], dec.output, name=f"iteration_{iteration}")


def stop_rule(doc: ALIterationDoc, loop: LoopConfig, gamma_lo: float) -> tuple[StopReason | None, str | None]:
    """The first stopping rule that holds after an iteration, with its explanation."""
    new = doc.test_metrics.force_rmse
    prev = doc.previous_test_metrics.force_rmse if doc.previous_test_metrics else None
    if doc.gamma_stats.n_above_lo == 0:
        return StopReason.no_uncertain_frames, f"no frame exceeded the lower uncertainty threshold ({gamma_lo})"
    if doc.iteration >= loop.max_iterations:
        return StopReason.iteration_limit, f"iteration limit ({loop.max_iterations}) reached"
    if loop.accurate_ratio is not None and doc.trust_ratios is not None and doc.trust_ratios.accurate >= loop.accurate_ratio:
        return StopReason.accurate_ratio_reached, (f"{doc.trust_ratios.accurate:.1%} of the explored frames are accurate "
                                                   f"(target {loop.accurate_ratio:.0%})")
    if prev is not None and new is not None and new > prev * (1 - loop.min_relative_improvement):
        return StopReason.no_improvement, (f"test force RMSE stopped improving ({new:.4f} vs {prev:.4f} eV/Å for the "
                                           "previous potential on the same test set)")
    return None, None


@job
def decide(maker: ActiveLearningIterationMaker, iteration: int, selection: ALIterationDoc | dict,
           fitted: PotentialDoc | dict, history: list, campaign: str | None = None,
           fixed_test: DatasetRef | None = None):
    """Record the iteration (with the new potential's errors on the fixed test set) and continue
    with the next one unless a stopping rule holds."""
    doc = _model(ALIterationDoc, selection)
    pot = _model(PotentialDoc, fitted)
    doc.new_potential = PotentialRef.coerce(pot)
    doc.potential_output = job_input(doc.new_potential)
    doc.test_metrics = pot.test_metrics
    doc.previous_test_metrics = pot.warm_start_test_metrics
    rows = [_model(IterationSummary, h) for h in history]
    rows.append(IterationSummary(
        iteration=iteration, explored_with=doc.potential, potential=doc.new_potential, dataset=doc.dataset,
        n_runs=doc.n_runs, n_terminated=len(doc.terminated_runs), n_candidates=doc.n_candidates,
        n_selected=doc.n_selected, n_labeled=doc.n_labeled, n_label_failed=doc.n_label_failed,
        n_label_rejected=doc.n_label_rejected,
        uncertainty_max=doc.gamma_stats.max, trust_ratios=doc.trust_ratios, test=doc.test_metrics,
        previous_test=doc.previous_test_metrics, fixed_test=fixed_set_errors(pot, fixed_test),
        t_melt=maker.explore_maker.protocol.max_temperature))
    doc.history = rows
    doc.stop_reason, doc.stop_message = stop_rule(doc, maker.loop, maker.select_label_maker.gamma_lo)
    doc.campaign = campaign
    if doc.stop_reason is not None:
        log.info("active learning stops after iteration %d: %s", iteration, doc.stop_message)
        return doc
    nxt = replace(maker, name=f"iteration_{iteration + 1}").make(
        iteration + 1, doc.new_potential, doc.dataset, [r.model_dump(mode="json") for r in rows], campaign,
        fixed_test)
    return Response(output=doc, replace=assign_needs(nxt))


@job
def summarize(config: dict, first: PotentialDoc | dict, loop_result: Any, stability: list,
              initial_dataset: DatasetDoc | dict, campaign: str | None = None,
              fixed_test: DatasetRef | None = None, final: PotentialDoc | dict | None = None,
              validation: ValidationDoc | dict | None = None) -> CampaignDoc:
    """Campaign document: iterations, labels, errors, uncertainty, stability; plots of the loop.
    ``first``/``final``: the first and the final potential (documents with their files)."""
    from mlipflow import cache
    from mlipflow.settings import get_settings

    first = _model(PotentialDoc, first)
    loop = _model(ALIterationDoc, loop_result)
    init = _model(DatasetDoc, initial_dataset)
    history = loop.history if loop else []
    first_ref = PotentialRef.coerce(first)
    final_ref = loop.new_potential if loop and loop.new_potential else first_ref
    final = _model(PotentialDoc, final) if final is not None else first
    summary = ActiveLearningSummary(
        iterations=len(history), stop_reason=loop.stop_reason if loop else None,
        stop_message=(loop.stop_message if loop else "no active-learning iterations requested"),
        initial_frames=len(init.frame_ids), al_labels=sum(h.n_labeled for h in history),
        first_potential=first_ref, final_potential=final_ref, first_test=first.test_metrics,
        final_test=history[-1].test if history else first.test_metrics, history=history)
    if fixed_test is not None:
        fixed = DatasetRef.coerce(fixed_test)
        summary.fixed_test_set = FixedTestSetComparison(
            dataset=fixed, first=fixed_set_errors(first, fixed), final=fixed_set_errors(final, fixed))
    # first vs final potential on the same test sets: the initial one (high-T MD frames) and the
    # final one (plus the frames active learning added), read from the store
    if history:
        for set_name, ref in (("initial", init.ref), ("final", history[-1].dataset)):
            if ref is None:
                continue
            summary.comparisons[set_name] = {key: split_errors(pot, ref)
                                             for key, pot in (("first", first), ("final", final))}
    for st in stability or []:
        st = _model(MDRunDoc, st)
        summary.stability[st.label or "?"] = StabilityResult(
            label=st.label or "?", potential=st.potential, bounded=bool(st.bounded), steps_done=st.steps_done,
            terminated=st.terminated, reason=st.termination_reason, natoms=st.nsites)
    if validation is not None:
        summary.validation_problems = list(_model(ValidationDoc, validation).problems)
    if ActiveLearningConfig(**config).plots and history:
        out = get_settings().data_dir / "campaigns" / (campaign or "al") / "plots"
        summary.plots = plot_history(summary, out)
    summary.cache = cache.STATS.as_dict()
    return CampaignDoc(name=campaign or "al", campaign=campaign, status="completed", config=config,
                       summary=summary.model_dump(mode="json"),
                       children={"potentials": [first_ref.input_hash or ""] + [h.potential.input_hash or ""
                                                                               for h in history if h.potential]},
                       input_hash=content_hash("campaign", config))


def plot_history(summary: ActiveLearningSummary, out) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = summary.history
    out.mkdir(parents=True, exist_ok=True)
    its = [h.iteration for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    axes[0].plot([0] + its, [summary.first_test.force_rmse] + [h.test.force_rmse for h in history], "o-", label="new")
    axes[0].plot(its, [h.previous_test.force_rmse if h.previous_test else None for h in history], "s--",
                 label="previous, same test set")
    axes[0].set(xlabel="iteration", ylabel="test force RMSE (eV/Å)", title="errors (growing test set)")
    axes[0].legend()
    axes[1].bar(its, [h.n_selected for h in history], label="selected")
    axes[1].bar(its, [h.n_terminated for h in history], label="terminated runs", alpha=0.6)
    axes[1].set(xlabel="iteration", ylabel="count", title="selection")
    axes[1].legend()
    axes[2].semilogy(its, [h.uncertainty_max or float("nan") for h in history], "s-")
    axes[2].set(xlabel="iteration", ylabel="max uncertainty in exploration", title="extrapolation grade")
    fig.tight_layout()
    path = out / "active_learning.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"active_learning": str(path)}


@dataclass
class ActiveLearningMaker(Maker):
    """The whole campaign as one flow; every stage is a configured sub-maker."""

    name: str = "active_learning"
    structures_maker: InitialStructuresMaker = field(default_factory=InitialStructuresMaker)
    initial_dataset_maker: InitialDatasetMaker = field(default_factory=InitialDatasetMaker)
    fit_maker: Maker = field(default_factory=AceFitMaker)
    iteration_maker: ActiveLearningIterationMaker = field(default_factory=ActiveLearningIterationMaker)
    stability_maker: StabilityMaker | None = field(default_factory=StabilityMaker)
    test_set_maker: FixedTestSetMaker | None = field(default_factory=FixedTestSetMaker)
    validation_maker: ValidationMaker | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def make(self, campaign: str | None = None) -> Flow:
        gen = self.structures_maker.make(campaign)
        init = self.initial_dataset_maker.make(gen.output, campaign)
        fit0 = replace(self.fit_maker, name="fit_0").make(init.output, campaign=campaign)
        jobs = [gen, init, fit0]
        fixed_ref = None
        if self.test_set_maker is not None:
            fixed = self.test_set_maker.make(init.output.reference_energies, campaign)
            jobs.append(fixed)
            fixed_ref = fixed.output.ref
        loop_output = final = None
        if self.iteration_maker.loop.max_iterations > 0:
            loop = replace(self.iteration_maker, name="iteration_1").make(
                1, fit0.output.ref, init.output.ref, [], campaign, fixed_ref)
            jobs.append(loop)
            loop_output = loop.output
            final = loop.output.potential_output  # the last fit's output, files included
        stability, validation = [], None
        if self.stability_maker is not None:
            s0 = replace(self.stability_maker, name="stability_first").make(fit0.output, "first", campaign)
            jobs.append(s0)
            stability.append(s0.output)
            if loop_output is not None:
                s1 = replace(self.stability_maker, name="stability_final").make(final, "final", campaign)
                jobs.append(s1)
                stability.append(s1.output)
        if self.validation_maker is not None:
            # the potential the campaign hands to production, checked on the fixed test set (else the
            # dataset's test split), with the campaign's own last stability run
            dataset = fixed_ref if fixed_ref is not None else (loop_output.dataset if loop_output is not None
                                                               else init.output.ref)
            val = self.validation_maker.make(final if final is not None else fit0.output, dataset, campaign=campaign,
                                             stability_result=stability[-1] if stability else None)
            jobs.append(val)
            validation = val.output
        summ = summarize(self.config, fit0.output, loop_output, stability, init.output, campaign, fixed_ref,
                         final=final, validation=validation)
        summ.name = "summarize"
        jobs.append(summ)
        return assign_needs(Flow(jobs, output=summ.output, name=f"{campaign}:{self.name}"))

    @classmethod
    def from_config(cls, cfg: ActiveLearningConfig, campaign: str | None = None) -> ActiveLearningMaker:
        """The makers of a campaign file's ``parameters``."""
        fit, selector = AL_KINDS[cfg.potential](cfg)
        explore = MDMaker(name="explore", engine=cfg.explore.engine, protocol=exploration_protocol(cfg.explore, 0))
        select = SelectLabelMaker(selector=selector, labeler=cfg.labeler, gamma_lo=cfg.explore.gamma_lo,
                                  max_label_force=cfg.select.max_label_force)
        return cls(
            structures_maker=InitialStructuresMaker(structures=cfg.structures),
            initial_dataset_maker=InitialDatasetMaker(labeler=cfg.labeler, aimd=cfg.aimd,
                                                      dataset_name=cfg.dataset_name or campaign or "dataset",
                                                      reference_energies=cfg.reference_energies),
            fit_maker=fit,
            iteration_maker=ActiveLearningIterationMaker(
                structures=cfg.structures, structures_per_iteration=cfg.explore.structures_per_iteration,
                explore_maker=explore, select_label_maker=select, fit_maker=fit, loop=cfg.loop),
            stability_maker=(StabilityMaker(stability=cfg.stability, structures=cfg.structures)
                             if cfg.stability.enabled else None),
            test_set_maker=(FixedTestSetMaker(labeler=cfg.labeler, structures=cfg.structures, test_set=cfg.test_set,
                                              dataset_name=f"{cfg.dataset_name or campaign or 'dataset'}-fixed-test")
                            if cfg.test_set.enabled else None),
            validation_maker=(ValidationMaker(crystals=cfg.validation.crystals, labeler=cfg.labeler,
                                              eos_strain=cfg.validation.eos_strain, eos_points=cfg.validation.eos_points,
                                              stability=None, structures=cfg.structures,
                                              thresholds={**ValidationMaker().thresholds, **cfg.validation.thresholds})
                              if cfg.validation.enabled else None),
            config=cfg.model_dump(mode="json"),
        )


def _ace_makers(cfg: ActiveLearningConfig):
    """ACE: pacemaker fits, MaxVol D-optimality against the active set."""
    return AceFitMaker(settings=fit_settings(cfg.fit)), MaxVolSelector(
        max_structures=cfg.select.max_structures, gamma_tolerance=cfg.select.gamma_tolerance,
        add_final=cfg.select.add_final_structures, min_contact=cfg.select.min_contact,
        gamma_cap=cfg.select.gamma_cap, fill_to=cfg.select.fill_to)


def _dp_makers(cfg: ActiveLearningConfig):
    """DP: an ensemble of DeePMD-kit models (fine-tuned from a base when given), selection by deviation."""
    from mlipflow.engines.deepmd import DPSettings
    from mlipflow.makers.deepmd import DeviationSelector, DPFitMaker

    fit = dict(cfg.fit or {})
    preset = fit.pop("preset", "tiny")
    options = {k: fit.pop(k) for k in ("ensemble", "finetune", "model_branch", "seed") if k in fit}
    if not hasattr(DPSettings, preset):
        raise UserError(f"unknown DP fit preset {preset!r}", "use tiny or lixfepo4_paper")
    fit_maker = DPFitMaker(settings=getattr(DPSettings, preset)(**fit), **options)
    return fit_maker, DeviationSelector(f_trust_lo=cfg.select.f_trust_lo, f_trust_hi=cfg.select.f_trust_hi,
                                  max_structures=cfg.select.max_structures, thin=cfg.select.thin)


#: What the campaign option ``potential`` switches: kind -> (fit maker, selector) from the config.
AL_KINDS = {"ace": _ace_makers, "dp": _dp_makers}


def active_learning_flow(campaign: str = "nafepo4", **parameters) -> Flow:
    """The whole campaign as one flow (parameters: :class:`ActiveLearningConfig`)."""
    cfg = parse_parameters(ActiveLearningConfig, parameters, "active-learning parameters",
                           "see examples/nafepo4_mini.yaml and mlipflow.schemas.active_learning")
    return ActiveLearningMaker.from_config(cfg, campaign).make(campaign)


__all__ = ["ActiveLearningMaker", "ActiveLearningIterationMaker", "decide", "summarize", "stop_rule",
           "active_learning_flow"]
