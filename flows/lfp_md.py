"""Production MD of the LixFePO4 campaign: temperature cycles, Li orderings and the interface.

    olivine supercells (``mlipflow.generation.olivine``) → NPT MD with one potential
      · temperature cycles at x = 0.25, 0.50, 0.75 (:func:`~mlipflow.engines.protocols.lfp_cycle_protocol`)
      · ordering runs at x = 0.5: D1, D2, D3 (seeded disordered), x-order, y-order
        (:func:`~mlipflow.engines.protocols.lfp_ordering_protocol`)
      · the LiFePO4/FePO4 interface along y at each of ``interface_temperatures``
        (:func:`~mlipflow.engines.protocols.lfp_interface_protocol`)
    → polaron analysis of every run (each temperature of a cycle separately, its first third
      discarded) → campaign summary (:class:`LfpCampaignSummary`) with the Arrhenius fits of the
      flip and hop rates of the cycles and of the interface series

The LixFePO4 campaign (DPA-2 fine-tuning) supplies the potential; any kind runs here (a DeePMD
model, the ``pedone2006`` rigid-ion comparator in LAMMPS, ...). A rigid-ion model keeps every Fe
at one charge, so its runs test the pipeline, not polaron kinetics.
"""

from __future__ import annotations

from typing import Any, Literal

from jobflow import Flow, OnMissing, job
from pydantic import Field, PositiveFloat

from mlipflow.errors import UserError, parse_parameters
from mlipflow.generation.olivine import NAMED_CONFIGURATIONS
from mlipflow.makers.analysis_polarons import PolaronAnalysisMaker
from mlipflow.makers.md import MDMaker
from mlipflow.schemas import CampaignDoc, PotentialRef, content_hash
from mlipflow.schemas.base import Model, as_data

#: The LixFePO4 paper's orderings at x = 0.5 (:data:`mlipflow.generation.olivine.NAMED_CONFIGURATIONS`).
ORDERINGS = ("D1", "D2", "D3", "x-order", "y-order")


class LfpMDConfig(Model):
    """Parameters of the ``lfp_md`` flow (campaign files' ``parameters:``)."""

    potential: Any = Field(..., description="File, shipped classical set, reference or {campaign: NAME, which: final}.")
    engine: str = Field("lammps", description="MD engine (registry name).")
    supercell: list[int] = Field(default_factory=lambda: [2, 4, 6], description="Olivine supercell (the paper: 2×4×6, 192 f.u.).")
    cycle_x: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75])
    cycle: dict[str, Any] = Field(default_factory=dict, description="lfp_cycle_protocol arguments.")
    orderings: list[Literal["D1", "D2", "D3", "x-order", "y-order"]] = Field(default_factory=lambda: list(ORDERINGS))
    ordering: dict[str, Any] = Field(default_factory=dict, description="lfp_ordering_protocol arguments.")
    interface_temperatures: list[PositiveFloat] = Field(default_factory=lambda: [300.0])
    interface: dict[str, Any] = Field(default_factory=dict, description="lfp_interface_protocol arguments.")
    polaron_analysis: dict[str, Any] = Field(default_factory=dict, description="PolaronAnalysisMaker fields (params, axis, ...).")
    trajectory: Literal["full", "none"] = "full"
    seed: int = 0


@job
def olivine_cell(supercell: list[int], x: float = 1.0, ordering: str = "random", seed: int = 0,
                 interface: str | None = None, configuration: str | None = None) -> dict:
    """One olivine Li_xFePO4 supercell (random polarons, seeded): a named configuration
    (``D1`` ... ``y-order``, ``interface``; ``seed`` added to its own) or the given x/ordering."""
    from mlipflow.generation.olivine import named_configuration, olivine_supercell

    if configuration is not None:
        st, _ = named_configuration(configuration, supercell, seed=seed)
    else:
        st, _ = olivine_supercell(supercell, x=x, ordering=ordering, polarons="random", seed=seed, interface=interface)
    return st.as_dict()


def lfp_md_flow(campaign: str = "lfp-md", **parameters) -> Flow:
    """The LixFePO4 MD campaign (parameters: :class:`LfpMDConfig`)."""
    from mlipflow.engines.potentials import potential_ref

    cfg = parse_parameters(LfpMDConfig, parameters, "lfp_md parameters",
                           "see examples/lfp_md_mini.yaml")
    ref = potential_ref(cfg.potential)
    jobs, analyses = lfp_md_jobs(cfg, ref, campaign)
    summary = summarize_lfp(analyses, ref.model_dump(mode="json"), cfg.model_dump(mode="json"), campaign=campaign)
    summary.name = "lfp md summary"
    summary.config.on_missing_references = OnMissing.NONE  # a failed analysis is a row, not the end
    return Flow([*jobs, summary], output=summary.output, name=campaign)


def lfp_md_jobs(cfg: LfpMDConfig, ref: Any, campaign: str | None) -> tuple[list, dict[str, list]]:
    """The MD and polaron-analysis jobs of :class:`LfpMDConfig` with potential ``ref`` (a
    :class:`PotentialRef` or a job's output reference to one), and the analyses by group
    (``cycles``, ``orderings``, ``interface``: ``{label, stage, doc}`` with ``doc`` the analysis
    job's output) for :func:`lfp_md_summary`."""
    from mlipflow.engines.protocols import lfp_cycle_protocol, lfp_interface_protocol, lfp_ordering_protocol
    from mlipflow.registry import MD_ENGINES

    MD_ENGINES.check(cfg.engine)
    try:
        cycle = lfp_cycle_protocol(**cfg.cycle)
        order = lfp_ordering_protocol(**cfg.ordering)
        ifaces = {T: lfp_interface_protocol(temperature_K=T, **cfg.interface) for T in cfg.interface_temperatures}
    except TypeError as exc:
        raise UserError(f"protocol arguments: {exc}", "see mlipflow.engines.protocols") from None
    jobs: list = []
    analyses: dict[str, list] = {"cycles": [], "orderings": [], "interface": []}

    def md(tag: str, cell, prot, seed: int):
        run = MDMaker(name=f"md {tag}", engine=cfg.engine, trajectory=cfg.trajectory,
                      protocol=prot.model_copy(update={"seed": seed})).make(cell.output, ref, run_id=f"lfp-{tag}",
                                                                            campaign=campaign)
        jobs.extend([cell, run])
        return run

    for i, x in enumerate(cfg.cycle_x):
        cell = olivine_cell(cfg.supercell, x=x, seed=cfg.seed + i)
        cell.name = f"cell x={x:g}"
        run = md(f"cycle-x{x:g}", cell, cycle, cfg.seed + i)
        for w in cycle.windows():
            pa = PolaronAnalysisMaker(name=f"polarons cycle x={x:g} {w.label}", stage=w.label, label=f"x={x:g}",
                                      **cfg.polaron_analysis).make(run.output)
            jobs.append(pa)
            analyses["cycles"].append({"label": f"x={x:g}", "stage": w.label, "doc": pa.output})
    for name in cfg.orderings:
        cell = olivine_cell(cfg.supercell, configuration=name, seed=cfg.seed)
        cell.name = f"cell {name}"
        run = md(f"ordering-{name}", cell, order, cfg.seed + NAMED_CONFIGURATIONS[name]["seed"])
        pa = PolaronAnalysisMaker(name=f"polarons {name}", stage="production", label=name,
                                  **cfg.polaron_analysis).make(run.output)
        jobs.append(pa)
        analyses["orderings"].append({"label": name, "stage": "production", "doc": pa.output})
    for T, prot in ifaces.items():
        cell = olivine_cell(cfg.supercell, configuration="interface", seed=cfg.seed)
        cell.name = f"cell interface {T:g} K"
        run = md(f"interface-{T:g}K", cell, prot, cfg.seed)
        pa = PolaronAnalysisMaker(name=f"polarons interface {T:g} K", stage="production", label=f"interface {T:g} K",
                                  **({"axis": "y"} | cfg.polaron_analysis)).make(run.output)
        jobs.append(pa)
        analyses["interface"].append({"label": f"interface {T:g} K", "stage": "production", "doc": pa.output})
    return jobs, analyses


class LfpRunSummary(Model):
    label: str
    stage: str | None = None
    temperature_K: float | None = None
    flip_rate_per_ps: float | None = Field(None, description="Fe valence flips per Fe per ps.")
    hop_rate_per_ps: float | None = Field(None, description="Li hops per Li per ps.")
    n_flips: int | None = None
    n_hops: int | None = None
    failed: bool = Field(False, description="The run or its analysis failed (its error: `mlipflow status`); left out of the fits.")
    preference_ratio: dict[str, Any] | None = Field(None, description="Same- vs opposite-sign flip pairs by distance and lag (Table II).")
    layer_fe3_fraction: list[float] | None = Field(None, description="Time-averaged Fe3+ fraction per Fe layer along the layer axis (Fig. 4).")
    layer_flip_rate_per_ps: list[float] | None = Field(None, description="Flip rate per Fe per layer.")


class LfpCampaignSummary(Model):
    potential: PotentialRef
    runs: dict[str, list[LfpRunSummary]] = Field(default_factory=dict, description="cycles / orderings / interface.")
    arrhenius: dict[str, dict[str, Any]] = Field(default_factory=dict, description="'cycles-flip' ... -> A_per_ps, Ea_eV, Ea_sigma_eV, n_points, or error: why no fit.")


def lfp_md_summary(analyses: dict[str, list], potential: Any) -> LfpCampaignSummary:
    """Every run's rates, and the Arrhenius fits of the flip and hop rates of the cycles and of the
    interface series (or why a fit is impossible, e.g. no events)."""
    from mlipflow.analysis.polarons import rate_arrhenius
    from mlipflow.analysis.structure import to_json_dict

    out = LfpCampaignSummary(potential=PotentialRef.coerce(potential))
    for group, docs in analyses.items():
        rows = []
        for entry in docs:
            d = entry.get("doc")
            if d is None:  # the MD run or its analysis failed: recorded, the summary goes on
                rows.append(LfpRunSummary(label=entry.get("label") or "", stage=entry.get("stage"), failed=True))
                continue
            d = as_data(d)
            r = d.get("results", {})
            rows.append(LfpRunSummary(label=r.get("label") or "", stage=(d.get("parameters") or {}).get("stage"),
                                      temperature_K=r.get("temperature_K"),
                                      flip_rate_per_ps=r.get("flip_rate_per_fe_per_ps"),
                                      hop_rate_per_ps=r.get("li_hop_rate_per_li_per_ps"),
                                      n_flips=r.get("n_flips"), n_hops=r.get("n_li_hops"),
                                      preference_ratio=(r.get("pairs") or {}).get("preference_ratio"),
                                      layer_fe3_fraction=(r.get("layers") or {}).get("fe3_fraction"),
                                      layer_flip_rate_per_ps=(r.get("layers") or {}).get("flip_rate_per_fe_per_ps")))
        out.runs[group] = rows
    for group in ("cycles", "interface"):
        results = [as_data(e["doc"]).get("results", {}) for e in analyses.get(group, []) if e.get("doc") is not None]
        for rate in ("flip", "hop"):
            try:
                fit = to_json_dict(rate_arrhenius(results, rate))
                out.arrhenius[f"{group}-{rate}"] = {k: fit.get(k) for k in ("A_per_ps", "Ea_eV", "Ea_sigma_eV", "n_points")}
            except UserError as exc:  # e.g. no events at some temperature: recorded, the campaign goes on
                out.arrhenius[f"{group}-{rate}"] = {"error": exc.problem}
    return out


@job
def summarize_lfp(analyses: dict[str, list], potential: dict, config: dict,
                  campaign: str | None = None) -> CampaignDoc:
    """The campaign document of the MD campaign (:func:`lfp_md_summary`)."""
    out = lfp_md_summary(analyses, potential)
    return CampaignDoc(name=campaign or "lfp-md", campaign=campaign, status="completed", config=config,
                       summary=out.model_dump(mode="json"), input_hash=content_hash("lfp-md", config))


__all__ = ["LfpMDConfig", "LfpCampaignSummary", "ORDERINGS", "lfp_md_flow", "lfp_md_jobs", "lfp_md_summary",
           "olivine_cell", "summarize_lfp"]
