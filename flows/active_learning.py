"""ACE batch active learning as a dynamic jobflow flow (the NaFePO4 campaign).

    random cells → high-T MD labeled by the reference labeler → dataset v1 → ACE fit (iteration 0)
    → [explore (γ-tracked melt-quench) → select (MaxVol) + label + merge → refit → decide] × n
    → stability test (first and final potential) → campaign summary with plots

Each iteration is a job that replaces itself with that iteration's sub-flow; the sub-flow's
last job (``decide``) replaces itself with the next iteration unless a stopping rule holds:
the iteration limit, no frame above the lower γ threshold, or no improvement of the test error.
"""

from __future__ import annotations

import logging
from typing import Any

from jobflow import Flow, Response, job
from pydantic import ValidationError

from mlipflow.errors import UserError
from mlipflow.makers.active_learning import (
    AceFitDatasetMaker,
    ExploreMaker,
    InitialDatasetMaker,
    InitialStructuresMaker,
    SelectLabelMaker,
    StabilityTestMaker,
    generate_cells,
    potential_files,
)
from mlipflow.schemas import ALIterationDoc, CampaignDoc, content_hash
from mlipflow.schemas.active_learning import ActiveLearningConfig

log = logging.getLogger("mlipflow.al")


def _test_rmse(metrics: dict | None) -> float | None:
    if not metrics:
        return None
    return metrics.get("force_rmse")


@job
def al_iteration(config: dict, iteration: int, potential: str, dataset: Any, history: list,
                 campaign: str | None = None):
    """Replace this job with iteration ``iteration``'s sub-flow."""
    cfg = ActiveLearningConfig(**config)
    log.info("active learning: iteration %d with potential %s", iteration, potential[:12])
    n = cfg.explore.structures_per_iteration
    cells = generate_cells(cfg.structures, seed=cfg.structures.seed + 1000 * iteration, n_structures=n)
    explores = []
    for k, (st, info) in enumerate(cells):
        j = ExploreMaker(name=f"explore_{iteration}_{k}").make(
            potential, st.as_dict(), cfg.explore.model_dump(), run_id=f"it{iteration}-{k}-{info.get('label', '')}",
            seed=1000 * iteration + k, campaign=campaign)
        explores.append(j)
    sel = SelectLabelMaker(name=f"select_label_{iteration}").make(
        [j.output for j in explores], potential, dataset, cfg.labeler, cfg.select.model_dump(), iteration,
        cfg.explore.model_dump(), campaign=campaign)
    fit = AceFitDatasetMaker(name=f"fit_{iteration}").make(sel.output.dataset, cfg.fit, iteration,
                                                          warm_start=potential, campaign=campaign)
    dec = decide(config, iteration, sel.output, fit.output.input_hash, fit.output.test_metrics, history, campaign)
    dec.name = f"decide_{iteration}"
    return Response(replace=Flow([*explores, sel, fit, dec], output=dec.output, name=f"iteration_{iteration}"))


@job
def decide(config: dict, iteration: int, selection: ALIterationDoc | dict, new_potential: str,
           test_metrics: dict, history: list, campaign: str | None = None):
    """Record the iteration and continue with the next one unless a stopping rule holds."""
    from mlipflow.engines.ace_eval import evaluate_potential

    cfg = ActiveLearningConfig(**config)
    doc = ALIterationDoc(**{k: v for k, v in _d(selection).items() if k in ALIterationDoc.model_fields and k not in ("type", "created_at", "versions")})
    doc.new_potential = new_potential
    doc.test_metrics = _d(test_metrics)
    # compare the previous potential with the new one on the same (new) test set
    prev = history[-1]["potential"] if history else doc.potential
    prev_rmse = None
    test_pkl = _test_pickle(doc.dataset)
    if test_pkl is not None and prev:
        files = potential_files(prev)
        yaml_path = next(p for n, p in files.items() if n.endswith(".yaml") and n != "input.yaml")
        prev_eval = evaluate_potential(yaml_path, str(test_pkl))
        prev_rmse = prev_eval.metrics.force_rmse
    new_rmse = _test_rmse(doc.test_metrics)
    history = list(history) + [{
        "iteration": iteration, "potential": new_potential, "explored_with": doc.potential,
        "n_runs": doc.n_runs, "n_terminated": len(doc.terminated_runs), "n_candidates": doc.n_candidates,
        "n_selected": doc.n_selected, "n_labeled": doc.n_labeled, "gamma_max": doc.gamma_stats.get("max"),
        "dataset": doc.dataset, "test_force_rmse": new_rmse, "test_energy_rmse": doc.test_metrics.get("energy_rmse"),
        "previous_test_force_rmse_same_set": prev_rmse,
    }]
    doc.history = history
    stop = None
    if doc.gamma_stats.get("n_above_lo", 0) == 0:
        stop = f"no frame exceeded the lower γ threshold ({cfg.explore.gamma_lo})"
    elif iteration >= cfg.loop.max_iterations:
        stop = f"iteration limit ({cfg.loop.max_iterations}) reached"
    elif prev_rmse is not None and new_rmse is not None and \
            new_rmse > prev_rmse * (1 - cfg.loop.min_relative_improvement):
        stop = (f"test force RMSE stopped improving ({new_rmse:.4f} vs {prev_rmse:.4f} eV/Å for the previous "
                "potential on the same test set)")
    doc.stop_reason = stop
    doc.campaign = campaign
    if stop:
        log.info("active learning stops after iteration %d: %s", iteration, stop)
        return doc
    nxt = al_iteration(config, iteration + 1, new_potential, doc.dataset, history, campaign)
    nxt.name = f"iteration_{iteration + 1}"
    return Response(output=doc, replace=nxt)


def _d(x) -> dict:
    if x is None:
        return {}
    return x.model_dump(mode="json") if hasattr(x, "model_dump") else dict(x)


def _test_pickle(dataset_ref: str | None):
    from mlipflow.settings import get_settings

    if not dataset_ref:
        return None
    name, _, version = dataset_ref.rpartition(":")
    p = get_settings().data_dir / "datasets" / f"{name}-v{version}" / "test.pkl.gz"
    return p if p.exists() else None


@job
def summarize(config: dict, first_potential: str, first_test: dict, loop_result: Any, stability: list,
              initial_dataset: Any, campaign: str | None = None) -> CampaignDoc:
    """Campaign document: iterations, labels, errors, γ, stability; plots of the loop."""
    from mlipflow.settings import get_settings

    cfg = ActiveLearningConfig(**config)
    loop = _d(loop_result)
    history = loop.get("history", [])
    final_potential = loop.get("new_potential") or first_potential
    init = _d(initial_dataset)
    summary: dict[str, Any] = {
        "iterations": len(history),
        "stop_reason": loop.get("stop_reason") or ("no active-learning iterations requested" if not history else None),
        "initial_frames": len(init.get("frame_ids", [])),
        "al_labels": sum(h.get("n_labeled", 0) for h in history),
        "first_potential": first_potential,
        "final_potential": final_potential,
        "first_test_force_rmse": _d(first_test).get("force_rmse"),
        "first_test_energy_rmse": _d(first_test).get("energy_rmse"),
        "final_test_force_rmse": history[-1]["test_force_rmse"] if history else _d(first_test).get("force_rmse"),
        "gamma_max_per_iteration": [h.get("gamma_max") for h in history],
        "selected_per_iteration": [h.get("n_selected") for h in history],
        "terminated_runs_per_iteration": [h.get("n_terminated") for h in history],
    }
    # first vs final potential on the same test sets: the initial one (high-T MD frames) and the
    # final one (plus the frames active learning added)
    if history:
        from mlipflow.engines.ace_eval import evaluate_potential

        init_ref = f"{init.get('name')}:{init.get('version')}"
        for set_name, ref in (("initial", init_ref), ("final", history[-1]["dataset"])):
            test_pkl = _test_pickle(ref)
            if test_pkl is None:
                continue
            for key, h in (("first", first_potential), ("final", final_potential)):
                files = potential_files(h)
                yaml_path = next(p for n, p in files.items() if n.endswith(".yaml") and n != "input.yaml")
                m = evaluate_potential(yaml_path, str(test_pkl)).metrics
                summary[f"{key}_on_{set_name}_test_set"] = {"energy_rmse_eV_atom": m.energy_rmse,
                                                            "force_rmse_eV_A": m.force_rmse}
    for st in stability or []:
        st = _d(st)
        tags = st.get("tags", [])
        label = next((t.split(":", 1)[1] for t in tags if t.startswith("stability:")), "?")
        bounded = next((t.split(":", 1)[1] == "True" for t in tags if t.startswith("bounded:")), None)
        summary[f"stability_{label}"] = {"bounded": bounded, "steps_done": st.get("steps_done"),
                                         "terminated": st.get("terminated"), "reason": st.get("termination_reason"),
                                         "natoms": st.get("nsites")}
    plots = {}
    if cfg.plots and history:
        out = get_settings().data_dir / "campaigns" / (campaign or "al") / "plots"
        plots = _plot_history(history, summary, out)
    summary["plots"] = plots
    return CampaignDoc(name=campaign or "al", campaign=campaign, status="completed", config=config,
                       summary=summary, children={"potentials": [first_potential] + [h["potential"] for h in history]},
                       input_hash=content_hash("campaign", config))


def _plot_history(history: list[dict], summary: dict, out) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    it = [0] + [h["iteration"] for h in history]
    rmse = [summary.get("first_test_force_rmse")] + [h.get("test_force_rmse") for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    axes[0].plot(it, rmse, "o-")
    axes[0].set(xlabel="iteration", ylabel="test force RMSE (eV/Å)", title="errors (growing test set)")
    axes[1].bar([h["iteration"] for h in history], [h.get("n_selected") or 0 for h in history], label="selected")
    axes[1].bar([h["iteration"] for h in history], [h.get("n_terminated") or 0 for h in history], label="terminated runs", alpha=0.6)
    axes[1].set(xlabel="iteration", ylabel="count", title="selection")
    axes[1].legend()
    axes[2].semilogy([h["iteration"] for h in history], [h.get("gamma_max") or float("nan") for h in history], "s-")
    axes[2].set(xlabel="iteration", ylabel="max γ in exploration", title="extrapolation grade")
    fig.tight_layout()
    path = out / "active_learning.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"active_learning": str(path)}


def active_learning_flow(campaign: str = "nafepo4", **parameters) -> Flow:
    """The whole campaign as one flow (parameters: :class:`ActiveLearningConfig`)."""
    try:
        cfg = ActiveLearningConfig(**parameters)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"invalid active-learning parameters: {msgs}",
                        "see examples/nafepo4_mini.yaml and mlipflow.schemas.active_learning") from None
    config = cfg.model_dump(mode="json")
    name = cfg.dataset_name or campaign
    gen = InitialStructuresMaker().make(cfg.structures.model_dump(), campaign)
    init = InitialDatasetMaker().make(gen.output, cfg.labeler, cfg.aimd.model_dump(), name,
                                      cfg.reference_energies, campaign)
    fit0 = AceFitDatasetMaker(name="fit_0").make(init.output, cfg.fit, 0, None, campaign)
    jobs = [gen, init, fit0]
    loop_output = None
    final_hash = fit0.output.input_hash
    if cfg.loop.max_iterations > 0:
        history0: list = []
        loop = al_iteration(config, 1, fit0.output.input_hash, init.output, history0, campaign)
        loop.name = "iteration_1"
        jobs.append(loop)
        loop_output = loop.output
        final_hash = loop.output.new_potential
    stability = []
    if cfg.stability.enabled:
        s0 = StabilityTestMaker(name="stability_first").make(fit0.output.input_hash, cfg.structures.model_dump(),
                                                             cfg.stability.model_dump(), "first", campaign)
        jobs.append(s0)
        stability.append(s0.output)
        if loop_output is not None:
            s1 = StabilityTestMaker(name="stability_final").make(final_hash, cfg.structures.model_dump(),
                                                                 cfg.stability.model_dump(), "final", campaign)
            jobs.append(s1)
            stability.append(s1.output)
    summ = summarize(config, fit0.output.input_hash, fit0.output.test_metrics, loop_output, stability,
                     init.output, campaign)
    summ.name = "summarize"
    jobs.append(summ)
    return Flow(jobs, output=summ.output, name=f"{campaign}:active_learning")
