"""Production-MD campaign summaries: the glass table (σ over replicas), Tg, diffusion and Arrhenius."""

from __future__ import annotations

import math

from pydantic import Field

from mlipflow.schemas.base import Model
from mlipflow.schemas.potentials import PotentialRef


class MeanStd(Model):
    """Mean and sample standard deviation over replicas (σ = 0 for one replica)."""

    mean: float | None = None
    std: float | None = None
    n: int = 0

    @classmethod
    def of(cls, values) -> MeanStd:
        v = [float(x) for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
        if not v:
            return cls(n=0)
        m = sum(v) / len(v)
        s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
        return cls(mean=m, std=s, n=len(v))

    def __str__(self) -> str:
        return "n/a" if self.mean is None else f"{self.mean:.4g} ± {self.std:.2g}"


class ArrheniusSummary(Model):
    """D(T) = D0 exp(−Ea / kB T) over the temperatures at or above ``T_min`` (Tg when known)."""

    species: str
    heating: str = Field(..., description="'nvt' or 'npt': how the glass was heated to each T.")
    Ea_eV: float | None = None
    sigma_Ea_eV: float | None = None
    D0_cm2_s: float | None = None
    T_min: float | None = Field(None, description="Lowest T in the fit (Tg: the sub-Tg points are compared to it).")
    below_Tg: list[dict[str, float]] = Field(default_factory=list, description="Per T < T_min: D measured / D extrapolated.")


class GlassPotentialSummary(Model):
    """One potential's glasses: Table-1-style numbers with σ over the replicas."""

    name: str
    potential: PotentialRef
    engine: str
    replicas: int
    atoms: int
    density_g_cm3: MeanStd = Field(default_factory=MeanStd)
    tg_K: MeanStd = Field(default_factory=MeanStd)
    coordination: dict[str, MeanStd] = Field(default_factory=dict, description="Pair 'A-B' -> mean CN of A by B.")
    bridging_oxygen_fraction: MeanStd = Field(default_factory=MeanStd, description="Fraction of O bonded to two formers (BO).")
    bridging_per_former: dict[str, MeanStd] = Field(
        default_factory=dict, description="P-O-P and P-O-Fe bonds per P in the NaFePO4 paper's convention "
        "(analysis key bridging_oxygens_per_former).")
    qn: dict[str, MeanStd] = Field(default_factory=dict, description="'P-Q1' -> fraction of the former's Q^n units.")
    diffusion_cm2_s: dict[str, dict[str, MeanStd]] = Field(
        default_factory=dict, description="heating -> temperature (K, as text) -> D of the diffusing species.")
    arrhenius: list[ArrheniusSummary] = Field(default_factory=list)
    elastic_GPa: dict[str, MeanStd] = Field(default_factory=dict, description="bulk, shear, young (VRH), poisson.")
    unstable_runs: list[str] = Field(default_factory=list, description="Runs that stopped early, with the reason.")


class GlassCampaignSummary(Model):
    """The NaFePO4 glass campaign: one entry per potential (ML and classical comparators)."""

    potentials: list[GlassPotentialSummary] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="Optional potentials not available, with why.")
    species: str = "Na"
    temperatures_K: list[float] = Field(default_factory=list)
    analyses: dict[str, list[str | None]] = Field(default_factory=dict, description="Kind -> input hashes of the AnalysisDocs (structure, tg, elastic, diffusion, arrhenius).")
