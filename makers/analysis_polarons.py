"""Makers for the polaron analysis of olivine Li_xFePO4 MD runs.

Thin jobflow wrappers around :mod:`mlipflow.analysis.polarons`: :class:`PolaronAnalysisMaker` takes an
MD run document (:class:`~mlipflow.schemas.md.MDRunDoc`, its trajectory file or blob) or a trajectory
path and returns an :class:`~mlipflow.schemas.md.AnalysisDoc` (``kind="polarons"``) whose ``results``
are the JSON documented in docs/analysis.md ("Polarons") and whose ``plots`` map plot names to PNG
paths; :class:`PolaronArrheniusMaker` fits the flip or hop rates of several of them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobflow import Maker, job

from mlipflow.errors import UserError
from mlipflow.makers.analysis_dynamics import _as_dict, _md_temperature
from mlipflow.schemas.base import content_hash
from mlipflow.schemas.md import AnalysisDoc


def md_frame_interval_ps(run: dict[str, Any], factory) -> float:
    """Time between frames of an MD run: protocol ``timestep_fs × dump_every``, checked against the
    step numbers of the first two frames (which must be ``dump_every`` apart)."""
    prot = run.get("protocol") or {}
    ts, every = prot.get("timestep_fs"), prot.get("dump_every")
    if not ts or not every:
        raise UserError("the MD run's protocol has no timestep_fs/dump_every", "set PolaronAnalysisMaker(timestep_ps=...)")
    first = list(itertools.islice(factory(), 2))
    steps = [f.step for f in first]
    if len(steps) == 2 and None not in steps and steps[1] - steps[0] != every:
        raise UserError(f"the trajectory's frames are {steps[1] - steps[0]} MD steps apart but the protocol dumps every "
                        f"{every} steps", "give PolaronAnalysisMaker(timestep_ps=...) for this trajectory")
    return float(ts) * float(every) / 1000.0


@dataclass
class PolaronAnalysisMaker(Maker):
    """Fe valence (Gaussian mixture of Fe–O bond lengths), flips, Li hops, rates, event pairs, layers, g(r).

    ``params``: overrides of :class:`mlipflow.analysis.polarons.PolaronParams` (every threshold).
    """

    name: str = "polaron analysis"
    timestep_ps: float | None = None  # None: protocol timestep_fs × dump_every (MD run) or the file's times
    temperature_K: float | None = None  # None: the MD run's last stage
    li_sites: str | None = None  # structure file with every Li site; None: olivine 4a sites
    axis: str = "y"  # layer axis
    discard_fraction: float = 0.0
    label: str | None = None  # e.g. the Li ordering; None: the MD run's label
    format: str | None = None  # noqa: A003
    types: dict[int, str] | str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    stage: str | None = None  # MD run documents: only this stage (its discard_fraction applies), at its temperature
    plots: bool = True
    plot_dir: str | None = None  # default: <job cwd>/polaron_plots

    def parameters(self) -> dict[str, Any]:
        from mlipflow.analysis.polarons import PolaronParams

        p = PolaronParams.from_dict({"layer_axis": self.axis, "discard_fraction": self.discard_fraction} | self.params)
        return p.to_dict() | {"li_sites": self.li_sites, "format": self.format, "stage": self.stage,
                              "types": self.types if not isinstance(self.types, dict)
                              else {str(k): v for k, v in self.types.items()}}

    @job
    def make(self, source: Any) -> AnalysisDoc:
        from mlipflow.analysis.polarons import PolaronParams, analyze_polarons
        from mlipflow.makers.analysis_structure import source_frames

        run = None
        if hasattr(source, "model_dump") or (isinstance(source, dict) and "protocol" in source):
            run = _as_dict(source)
        factory, label = source_frames(run if run is not None else source, fmt=self.format, types=self.types,
                                       stage=self.stage)
        dt = self.timestep_ps
        if dt is None and run is not None:
            dt = md_frame_interval_ps(run, factory)
        temperature = self.temperature_K if self.temperature_K is not None else (_md_temperature(run) if run else None)
        if self.stage is not None and self.temperature_K is None:
            from mlipflow.schemas.md import MDProtocol

            prot = MDProtocol.model_validate(run["protocol"])
            temperature = prot.stages[prot.window(self.stage).index].t_start
        p = PolaronParams.from_dict({"layer_axis": self.axis, "discard_fraction": self.discard_fraction} | self.params)
        res = analyze_polarons(factory, dt, temperature_K=temperature, params=p, li_sites=self.li_sites,
                               label=self.label or (run or {}).get("label"), progress=True)
        plots: dict[str, str] = {}
        if self.plots:
            from mlipflow.analysis.plots_polarons import plot_run

            outdir = Path(self.plot_dir) if self.plot_dir else Path.cwd() / "polaron_plots"
            plots = {k: str(Path(v).resolve()) for k, v in plot_run(res, outdir).items()}
        source_id = (run or {}).get("input_hash") or label
        params = self.parameters() | {"timestep_ps": res.results["timestep_ps"]}
        return AnalysisDoc(kind="polarons", source=source_id, parameters=params, results=res.results, plots=plots,
                           input_hash=content_hash("polaron-analysis", params, source_id))


@dataclass
class PolaronArrheniusMaker(Maker):
    """Arrhenius fit (A in 1/ps, Ea ± σ in eV) of the flip or hop rates of polaron AnalysisDocs (≥ 2 T)."""

    name: str = "polaron arrhenius"
    rate: str = "flip"  # flip | hop
    T_min: float | None = None
    plots: bool = True
    plot_dir: str | None = None

    @job
    def make(self, polaron_docs: list[Any]) -> AnalysisDoc:
        from mlipflow.analysis.polarons import rate_arrhenius
        from mlipflow.analysis.structure import to_json_dict

        runs = [_as_dict(d).get("results", _as_dict(d)) for d in polaron_docs]
        fit = rate_arrhenius(runs, self.rate, T_min=self.T_min)
        plots: dict[str, str] = {}
        if self.plots:
            from mlipflow.analysis.plots_polarons import plot_rates

            outdir = Path(self.plot_dir) if self.plot_dir else Path.cwd() / "polaron_plots"
            plots = {k: str(Path(v).resolve()) for k, v in plot_rates(fit, runs, outdir).items()}
        params = {"rate": self.rate, "T_min": self.T_min, "method": "weighted least squares of ln r vs 1/(kB T)"}
        results = to_json_dict(fit)
        return AnalysisDoc(kind="polaron-arrhenius", parameters=params, results=results, plots=plots,
                           input_hash=content_hash("polaron-arrhenius", params, results["points"]))
