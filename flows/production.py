"""Production MD of the NaFePO4 glass campaign: glasses and Na diffusion for each potential.

    cells (N replicas) → for each potential (ML in ASE or LAMMPS, classical comparators in LAMMPS):
        melt-quench glass (:func:`~mlipflow.engines.protocols.glass_protocol`)
        → structure analysis of the final 300 K stage, Tg from the cooling stage, elastic moduli
        → for each heating variant (NVT, NPT) and T: heat + equilibrate + NVT sampling
          (:func:`~mlipflow.engines.protocols.diffusion_protocol`) → MSD, D ± σ, van Hove, fast/slow ions
        → Arrhenius per variant (fitted at and above Tg; the sub-Tg points are compared to it)
    → campaign summary: Table-1-style numbers with σ over the replicas (:class:`GlassCampaignSummary`)

Every MD run is its own job (:class:`~mlipflow.makers.md.MDMaker`, any engine and potential
kind), cached and continued from its last restart after a kill; analyses read the runs from
their outputs (the trajectory travels in the store with ``trajectory: full``, or stays a file
reference with ``trajectory: none`` for runs too large for the store).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from jobflow import Flow, job
from pydantic import Field, PositiveFloat

from mlipflow.errors import UserError, parse_parameters
from mlipflow.makers.analysis_dynamics import (
    ArrheniusMaker,
    DiffusionAnalysisMaker,
    ElasticMaker,
    GlassTransitionMaker,
)
from mlipflow.makers.analysis_structure import StructureAnalysisMaker
from mlipflow.makers.md import MDMaker
from mlipflow.schemas import CampaignDoc, PotentialRef, content_hash
from mlipflow.schemas.base import Model, as_data
from mlipflow.schemas.production import ArrheniusSummary, GlassCampaignSummary, GlassPotentialSummary, MeanStd

log = logging.getLogger("mlipflow.production")


class PotentialEntry(Model):
    """One potential of the comparison."""

    name: str = Field(..., description="Label in the tables, e.g. 'ACE', 'Pedone'.")
    potential: Any = Field(..., description="File, shipped classical set (pedone2006), reference, or {campaign: NAME, which: final}.")
    engine: str = Field("lammps", description="MD engine (registry name): lammps, ase.")
    required: bool = Field(True, description="False: skip it (with a note) when it cannot be found, e.g. an AL campaign not run yet.")
    replicas: int | None = Field(None, ge=1, description="This potential's number of glasses (default: the campaign's).")
    temperatures: list[PositiveFloat] | None = Field(None, description="This potential's diffusion temperatures (default: the campaign's).")
    heating: list[Literal["nvt", "npt"]] | None = Field(None, description="This potential's heating variants.")
    glass: dict[str, Any] = Field(default_factory=dict, description="glass_protocol arguments overriding the campaign's.")
    diffusion: dict[str, Any] = Field(default_factory=dict, description="diffusion_protocol arguments overriding the campaign's.")


class GlassCellsConfig(Model):
    formula: str = "NaFePO4"
    atoms: int = Field(3003, gt=0, description="Target atom count (the paper: 3003).")
    density: float = Field(3.38, gt=0, description="g/cm³ (the paper: 3.38).")
    min_distance: float = Field(1.7, gt=0, description="Å between any two atoms of a random cell.")


class GlassCampaignConfig(Model):
    """Parameters of the ``nafepo4_glass`` flow (campaign files' ``parameters:``)."""

    potentials: list[PotentialEntry] = Field(..., min_length=1)
    replicas: int = Field(5, ge=1, description="Independent glasses per potential (the paper: 5).")
    cells: GlassCellsConfig = Field(default_factory=GlassCellsConfig)
    glass: dict[str, Any] = Field(default_factory=dict, description="glass_protocol arguments (time_scale, cooling_rate_K_per_ps, ...).")
    temperatures: list[PositiveFloat] = Field(default_factory=lambda: [500.0, 700.0, 900.0, 1100.0, 1300.0, 1500.0])
    heating: list[Literal["nvt", "npt"]] = Field(default_factory=lambda: ["nvt", "npt"])
    diffusion: dict[str, Any] = Field(default_factory=dict, description="diffusion_protocol arguments (sample_ps, equil_ps, ...).")
    species: str = Field("Na", description="The diffusing species.")
    structure_analysis: dict[str, Any] = Field(default_factory=dict, description="StructureAnalysisMaker fields (cutoffs, formers, ...).")
    dynamics_analysis: dict[str, Any] = Field(default_factory=dict, description="DiffusionAnalysisMaker fields (van_hove_lags_ps, fast_slow_lag_ps, n_blocks, ...).")
    elastic: dict[str, Any] | None = Field(default_factory=dict, description="ElasticMaker fields; null: no elastic moduli.")
    trajectory: Literal["full", "none"] = Field("full", description="full: trajectories go to the store; none: file references only.")
    seed: int = 0


@job
def glass_cells(cells: dict[str, Any], replicas: int, seed: int = 0) -> list[dict]:
    """``replicas`` random cells of the formula at the density (seeds seed, seed+1, ...)."""
    from mlipflow.generation.amorphous import random_structure

    cfg = GlassCellsConfig(**cells)
    out = []
    for r in range(replicas):
        st, _ = random_structure(cfg.formula, density=cfg.density, atoms=cfg.atoms, seed=seed + r,
                                 min_distance=cfg.min_distance, use_mp=False)
        out.append(st.as_dict())
    return out


def _resolve(entries: list[PotentialEntry]) -> tuple[list[tuple[PotentialEntry, PotentialRef]], list[str]]:
    from mlipflow.engines.potentials import potential_ref
    from mlipflow.registry import MD_ENGINES

    found, skipped = [], []
    for e in entries:
        MD_ENGINES.check(e.engine)
        try:
            found.append((e, potential_ref(e.potential)))
        except UserError as exc:
            if e.required:
                raise UserError(f"potential {e.name!r}: {exc.problem}", exc.fix) from None
            skipped.append(f"{e.name}: {exc.problem}")
            log.warning("skipping the optional potential %s: %s", e.name, exc.problem)
    if not found:
        raise UserError("none of the potentials is available", "; ".join(skipped) or "list potentials")
    return found, skipped


def nafepo4_glass_flow(campaign: str = "nafepo4-glass", **parameters) -> Flow:
    """The glass and diffusion campaign (parameters: :class:`GlassCampaignConfig`)."""
    from mlipflow.engines.protocols import diffusion_protocol, glass_protocol

    cfg = parse_parameters(GlassCampaignConfig, parameters, "glass-campaign parameters",
                           "see examples/nafepo4_glass_mini.yaml and mlipflow.flows.production")

    def protocols(entry: PotentialEntry):
        """(glass protocol, {(heating, T): diffusion protocol}) of one potential."""
        try:
            glass = glass_protocol(**(cfg.glass | entry.glass))
            diff = {(h, T): diffusion_protocol(T, heating=h, **(cfg.diffusion | entry.diffusion))
                    for h in (entry.heating or cfg.heating) for T in (entry.temperatures or cfg.temperatures)}
        except TypeError as exc:
            raise UserError(f"potential {entry.name!r}: protocol arguments: {exc}",
                            "see mlipflow.engines.protocols") from None
        return glass, diff

    for entry in cfg.potentials:
        protocols(entry)  # bad protocol arguments are refused before anything runs
    pots, skipped = _resolve(cfg.potentials)
    n_cells = max(e.replicas or cfg.replicas for e, _ in pots)
    cells = glass_cells(cfg.cells.model_dump(), n_cells, cfg.seed)
    cells.name = "glass cells"
    jobs: list = [cells]
    per_pot: list[dict[str, Any]] = []
    for entry, ref in pots:
        glass_prot, diff_prots = protocols(entry)
        cooling_npt = next(s for s in glass_prot.stages if s.label == "cool").ensemble == "npt"
        heatings = entry.heating or cfg.heating
        outs: dict[str, Any] = {"name": entry.name, "engine": entry.engine, "ref": ref, "glass": [], "structure": [],
                                "tg": [], "elastic": [], "diffusion": {h: {} for h in heatings}, "arrhenius": {}}
        for r in range(entry.replicas or cfg.replicas):
            tag = f"{entry.name} r{r}"
            md = MDMaker(name=f"glass {tag}", engine=entry.engine, trajectory=cfg.trajectory,
                         protocol=glass_prot.model_copy(update={"seed": cfg.seed + r}))
            glass = md.make(cells.output[r], ref, run_id=f"glass-{entry.name}-{r}", campaign=campaign)
            sa = StructureAnalysisMaker(name=f"structure {tag}", stage="glass", **cfg.structure_analysis).make(glass.output)
            tg = GlassTransitionMaker(name=f"Tg {tag}", stage="cool",
                                      quantity="density" if cooling_npt else "enthalpy").make(glass.output)
            jobs += [glass, sa, tg]
            outs["glass"].append(glass.output)
            outs["structure"].append(sa.output)
            outs["tg"].append(tg.output)
            if cfg.elastic is not None:
                el = ElasticMaker(name=f"elastic {tag}", calculator=ref.model_dump(mode="json"),
                                  **cfg.elastic).make(glass.output.final_structure, stopped=glass.output.terminated,
                                                      reason=glass.output.termination_reason)
                jobs.append(el)
                outs["elastic"].append(el.output)
            for (h, T), prot in diff_prots.items():
                run = MDMaker(name=f"diffusion {tag} {T:g} K {h}", engine=entry.engine, trajectory=cfg.trajectory,
                              protocol=prot.model_copy(update={"seed": cfg.seed + r})
                              ).make(glass.output.final_structure, ref, run_id=f"diff-{entry.name}-{r}-{h}-{T:g}",
                                     campaign=campaign, after=glass.output)
                da = DiffusionAnalysisMaker(name=f"MSD {tag} {T:g} K {h}", stage="sample", temperature_K=T,
                                            **({"fast_slow_ion": cfg.species} | cfg.dynamics_analysis)).make(run.output)
                jobs += [run, da]
                outs["diffusion"][h].setdefault(f"{T:g}", []).append(da.output)
        for h in heatings:
            arr = ArrheniusMaker(name=f"Arrhenius {entry.name} {h}", species=cfg.species).make(
                [d for runs in outs["diffusion"][h].values() for d in runs])
            jobs.append(arr)
            outs["arrhenius"][h] = arr.output
        per_pot.append(outs)
    summary = summarize_glass(per_pot, config=cfg.model_dump(mode="json"), skipped=skipped, campaign=campaign)
    summary.name = "glass campaign summary"
    jobs.append(summary)
    return Flow(jobs, output=summary.output, name=campaign)


def _get(d: Any, *path, default=None):
    for p in path:
        if d is None:
            return default
        d = d.get(p) if isinstance(d, dict) else getattr(d, p, None)
    return default if d is None else d


@job
def summarize_glass(per_potential: list[dict[str, Any]], config: dict[str, Any], skipped: list[str],
                    campaign: str | None = None) -> CampaignDoc:
    """The campaign document: per potential, Table-1-style means ± σ over the replicas."""
    from mlipflow.analysis.dynamics import arrhenius_fit

    species = config.get("species", "Na")
    out = GlassCampaignSummary(skipped=skipped, species=species, temperatures_K=config.get("temperatures", []))
    for p in per_potential:
        glass = [as_data(g) for g in p["glass"]]
        struct = [as_data(s)["results"] for s in p["structure"]]
        tgs = [_get(as_data(t), "results", "tg", "Tg") for t in p["tg"]]
        tg = MeanStd.of(tgs)
        row = GlassPotentialSummary(name=p["name"], potential=PotentialRef.coerce(p["ref"]), engine=p["engine"],
                                    replicas=len(glass), atoms=int(glass[0].get("nsites") or 0) if glass else 0, tg_K=tg)
        row.density_g_cm3 = MeanStd.of(r.get("density_g_cm3") for r in struct)
        pairs = sorted({k for r in struct for k in (r.get("coordination") or {})})
        row.coordination = {k: MeanStd.of(_get(r, "coordination", k, "mean") for r in struct) for k in pairs}
        row.bridging_oxygen_fraction = MeanStd.of(_get(r, "oxygen", "BO") for r in struct)
        bo = sorted({k for r in struct for k in (r.get("bridging_oxygens_per_former") or {})})
        row.bridging_per_former = {k: MeanStd.of(_get(r, "bridging_oxygens_per_former", k) for r in struct) for k in bo}
        qn = sorted({f"{el}-{q}" for r in struct for el, d in (r.get("qn") or {}).items() for q in d if q.startswith("Q")})
        row.qn = {k: MeanStd.of(_get(r, "qn", *k.split("-")) for r in struct) for k in qn}
        for h, by_T in p["diffusion"].items():
            row.diffusion_cm2_s[h] = {T: MeanStd.of(_get(as_data(d), "results", "diffusion", species, "D_cm2_s")
                                                    for d in docs) for T, docs in by_T.items()}
            T = [float(t) for t, m in row.diffusion_cm2_s[h].items() if m.mean and m.mean > 0]
            D = [row.diffusion_cm2_s[h][f"{t:g}"].mean for t in T]
            summary = ArrheniusSummary(species=species, heating=h, T_min=tg.mean)
            if len(T) >= 2:
                use_tg = tg.mean is not None and sum(t >= tg.mean for t in T) >= 2
                fit = arrhenius_fit(T, D, None, T_min=tg.mean if use_tg else None)
                summary = ArrheniusSummary(species=species, heating=h, Ea_eV=fit.Ea_eV, sigma_Ea_eV=fit.sigma_Ea_eV,
                                           D0_cm2_s=fit.D0, T_min=fit.T_min, below_Tg=list(fit.below))
            row.arrhenius.append(summary)
        for el in p["elastic"]:
            res = _get(as_data(el), "results", "elastic") or {}
            for key, name in (("K_VRH", "bulk"), ("G_VRH", "shear"), ("youngs_modulus_GPa", "young"),
                              ("poisson_ratio", "poisson")):
                row.elastic_GPa.setdefault(name, [])
                row.elastic_GPa[name].append(res.get(key))
        row.elastic_GPa = {k: MeanStd.of(v) for k, v in row.elastic_GPa.items()}
        row.unstable_runs = [f"{g.get('run_id')}: {g.get('termination_reason')}" for g in glass if g.get("terminated")]
        row.unstable_runs += [f"{_get(as_data(d), 'source')}: {_get(as_data(d), 'results', 'error')}" for by_T in
                              p["diffusion"].values() for docs in by_T.values() for d in docs
                              if _get(as_data(d), "results", "error")]
        for kind, docs in (("structure", p["structure"]), ("tg", p["tg"]), ("elastic", p["elastic"]),
                           ("diffusion", [d for by_T in p["diffusion"].values() for ds in by_T.values() for d in ds]),
                           ("arrhenius", list(p["arrhenius"].values()))):
            out.analyses.setdefault(kind, []).extend(_get(as_data(d), "input_hash") for d in docs)
        out.potentials.append(row)
    return CampaignDoc(name=campaign or "nafepo4-glass", campaign=campaign, status="completed", config=config,
                       summary=out.model_dump(mode="json"), input_hash=content_hash("glass-campaign", config))


__all__ = ["GlassCampaignConfig", "PotentialEntry", "glass_cells", "nafepo4_glass_flow", "summarize_glass"]
