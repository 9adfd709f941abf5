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

from jobflow import Flow, job
from pydantic import Field, PositiveFloat

from mlipflow.errors import UserError, parse_parameters
from mlipflow.makers.analysis_polarons import PolaronAnalysisMaker
from mlipflow.makers.md import MDMaker
from mlipflow.schemas import CampaignDoc, PotentialRef, content_hash
from mlipflow.schemas.base import Model, as_data

#: The LixFePO4 paper's orderings at x = 0.5: name -> (olivine ``ordering``, seed).
ORDERINGS = {"D1": ("random", 1), "D2": ("random", 2), "D3": ("random", 3), "x-order": ("x", 0), "y-order": ("y", 0)}


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
                 interface: str | None = None) -> dict:
    """One olivine Li_xFePO4 supercell (polarons next to the vacancies' Fe by default)."""
    from mlipflow.generation.olivine import olivine_supercell

    st, _ = olivine_supercell(supercell, x=x, ordering=ordering, polarons="random", seed=seed, interface=interface)
    return st.as_dict()


def lfp_md_flow(campaign: str = "lfp-md", **parameters) -> Flow:
    """The LixFePO4 MD campaign (parameters: :class:`LfpMDConfig`)."""
    from mlipflow.engines.potentials import potential_ref
    from mlipflow.engines.protocols import lfp_cycle_protocol, lfp_interface_protocol, lfp_ordering_protocol
    from mlipflow.registry import MD_ENGINES

    cfg = parse_parameters(LfpMDConfig, parameters, "lfp_md parameters",
                           "see examples/lfp_md_mini.yaml")
    MD_ENGINES.check(cfg.engine)
    ref = potential_ref(cfg.potential)
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
            analyses["cycles"].append(pa.output)
    for name in cfg.orderings:
        ordering, seed = ORDERINGS[name]
        cell = olivine_cell(cfg.supercell, x=0.5, ordering=ordering, seed=cfg.seed + seed)
        cell.name = f"cell {name}"
        run = md(f"ordering-{name}", cell, order, cfg.seed + seed)
        pa = PolaronAnalysisMaker(name=f"polarons {name}", stage="production", label=name,
                                  **cfg.polaron_analysis).make(run.output)
        jobs.append(pa)
        analyses["orderings"].append(pa.output)
    for T, prot in ifaces.items():
        cell = olivine_cell(cfg.supercell, interface="y:0.5", seed=cfg.seed)
        cell.name = f"cell interface {T:g} K"
        run = md(f"interface-{T:g}K", cell, prot, cfg.seed)
        pa = PolaronAnalysisMaker(name=f"polarons interface {T:g} K", stage="production", label=f"interface {T:g} K",
                                  **({"axis": "y"} | cfg.polaron_analysis)).make(run.output)
        jobs.append(pa)
        analyses["interface"].append(pa.output)
    summary = summarize_lfp(analyses, ref.model_dump(mode="json"), cfg.model_dump(mode="json"), campaign=campaign)
    summary.name = "lfp md summary"
    jobs.append(summary)
    return Flow(jobs, output=summary.output, name=campaign)


class LfpRunSummary(Model):
    label: str
    stage: str | None = None
    temperature_K: float | None = None
    flip_rate_per_ps: float | None = Field(None, description="Fe valence flips per Fe per ps.")
    hop_rate_per_ps: float | None = Field(None, description="Li hops per Li per ps.")
    n_flips: int | None = None
    n_hops: int | None = None


class LfpCampaignSummary(Model):
    potential: PotentialRef
    runs: dict[str, list[LfpRunSummary]] = Field(default_factory=dict, description="cycles / orderings / interface.")
    arrhenius: dict[str, dict[str, Any]] = Field(default_factory=dict, description="'cycles-flip' ... -> A_per_ps, Ea_eV, Ea_sigma_eV, n_points, or error: why no fit.")


@job
def summarize_lfp(analyses: dict[str, list], potential: dict, config: dict,
                  campaign: str | None = None) -> CampaignDoc:
    """The campaign document: every run's rates, and the Arrhenius fits of the flip and hop rates
    of the cycles and of the interface series (or why a fit is impossible, e.g. no events)."""
    from mlipflow.analysis.polarons import rate_arrhenius
    from mlipflow.analysis.structure import to_json_dict

    out = LfpCampaignSummary(potential=PotentialRef.coerce(potential))
    for group, docs in analyses.items():
        rows = []
        for d in docs:
            d = as_data(d)
            r = d.get("results", {})
            rows.append(LfpRunSummary(label=r.get("label") or "", stage=(d.get("parameters") or {}).get("stage"),
                                      temperature_K=r.get("temperature_K"),
                                      flip_rate_per_ps=r.get("flip_rate_per_fe_per_ps"),
                                      hop_rate_per_ps=r.get("li_hop_rate_per_li_per_ps"),
                                      n_flips=r.get("n_flips"), n_hops=r.get("n_li_hops")))
        out.runs[group] = rows
    for group in ("cycles", "interface"):
        results = [as_data(d).get("results", {}) for d in analyses.get(group, [])]
        for rate in ("flip", "hop"):
            try:
                fit = to_json_dict(rate_arrhenius(results, rate))
                out.arrhenius[f"{group}-{rate}"] = {k: fit.get(k) for k in ("A_per_ps", "Ea_eV", "Ea_sigma_eV", "n_points")}
            except UserError as exc:  # e.g. no events at some temperature: recorded, the campaign goes on
                out.arrhenius[f"{group}-{rate}"] = {"error": exc.problem}
    return CampaignDoc(name=campaign or "lfp-md", campaign=campaign, status="completed", config=config,
                       summary=out.model_dump(mode="json"), input_hash=content_hash("lfp-md", config))


__all__ = ["LfpMDConfig", "ORDERINGS", "lfp_md_flow", "olivine_cell", "summarize_lfp"]
