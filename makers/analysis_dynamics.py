"""Makers for the dynamics analyses: diffusion (MSD, D ± σ, van Hove, fast/slow ions),
Arrhenius, glass transition and elastic constants.

Thin jobflow wrappers around :mod:`mlipflow.analysis.dynamics`, :mod:`mlipflow.analysis.thermo`
and :mod:`mlipflow.analysis.elastic`; each returns an :class:`~mlipflow.schemas.md.AnalysisDoc`
whose ``results`` carry the JSON keys documented in docs/analysis.md ("Dynamics") and whose
``plots`` map plot names to PNG paths (written in the job's working directory or ``plot_dir``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from jobflow import Maker, job

from mlipflow.errors import UserError
from mlipflow.schemas.base import as_data, content_hash
from mlipflow.schemas.md import AnalysisDoc


def _as_dict(doc: Any) -> dict[str, Any]:
    doc = as_data(doc)
    if isinstance(doc, dict):
        return doc
    raise UserError(f"expected a document, got {type(doc).__name__}")


def _md_temperature(run: dict[str, Any]) -> float | None:
    prot = run.get("protocol") or {}
    stages = [s for s in prot.get("stages", []) if s.get("ensemble") != "min"]
    if not stages:
        return None
    last = stages[-1]
    return float(last.get("t_end") if last.get("t_end") is not None else last.get("t_start"))


def diffusion_results(traj, dt_ps: float, *, species: list[str] | None = None, window: tuple[float, float] | None = None,
                      n_blocks: int = 5, remove_drift: bool = False, van_hove_lags_ps: list[float] | None = None,
                      fast_slow_ion: str | None = None, fast_slow_lag_ps: float | None = None,
                      ring_cutoffs: dict | None = None, ring_formers: list[str] | None = None,
                      plot_dir: str | Path | None = None, progress: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """Everything the diffusion maker and CLI compute on a :class:`~mlipflow.analysis.dynamics.Trajectory`.

    Returns ``(results, plots)``; ``results["diffusion"]`` is ``{species: {"D_cm2_s", "sigma", ...}}``.
    """
    from mlipflow.analysis import dynamics as dyn

    res, msd = dyn.diffusion_coefficients(traj.positions, traj.species, dt_ps, select=species, window=window,
                                          n_blocks=n_blocks, remove_drift=remove_drift, progress=progress)
    T = traj.positions.shape[0]
    step = max(1, T // 2000)
    results: dict[str, Any] = {
        "diffusion": {s: r.to_dict() for s, r in res.items()},
        "msd": {"lag_ps": msd.lag_ps[::step].tolist(), "msd_A2": {s: m[::step].tolist() for s, m in msd.msd.items()}},
        "frame_interval_ps": dt_ps, "n_frames": int(T), "n_atoms": int(traj.positions.shape[1]),
        "duration_ps": float((T - 1) * dt_ps),
    }
    plots: dict[str, str] = {}
    out = Path(plot_dir) if plot_dir is not None else None
    if out is not None:
        from mlipflow.analysis import plots_dynamics as pd

        plots["msd"] = pd.plot_msd(msd, res, out / "msd.png")
    if van_hove_lags_ps:
        vh = dyn.van_hove_self(traj.positions, traj.species, dt_ps, lags_ps=van_hove_lags_ps, select=list(res))
        results["van_hove"] = {s: {"r": v["r"].tolist(), "lags_ps": v["lags_ps"], "G": v["G"].tolist(),
                                   "fraction_in_range": v["fraction_in_range"]} for s, v in vh.items()}
        if out is not None:
            from mlipflow.analysis import plots_dynamics as pd

            plots["van_hove"] = pd.plot_van_hove(vh, out / "van_hove.png")
    if fast_slow_ion:
        lag = fast_slow_lag_ps or min(max(r.window_ps[0] for r in res.values()), (T - 1) * dt_ps / 2)
        frames = np.unique(np.linspace(0, T - 1, min(T, 10)).astype(int))
        rings = None
        if ring_cutoffs and ring_formers:
            from mlipflow.analysis.io import Frame
            from mlipflow.analysis.rings import ring_centres
            from mlipflow.analysis.structure import parse_cutoffs

            cut = parse_cutoffs(ring_cutoffs)
            rings = [ring_centres(Frame(positions=np.asarray(traj.positions[t]), cell=traj.cells[t],
                                        symbols=traj.species), cut, ring_formers) for t in frames]
        fs = dyn.fast_slow_rdfs(traj.positions, traj.species, traj.cells, dt_ps, lag, ion=fast_slow_ion,
                                ring_centres=rings, frames=frames)
        results["fast_slow"] = {
            "ion": fast_slow_ion, "lag_ps": fs["lag_ps"], "classes": fs["classes"], "frames": fs["frames"],
            "rdf": {c: {k: {"r": np.asarray(v["r"]).tolist(), "g": np.asarray(v["g"]).tolist()} for k, v in d.items()}
                    for c, d in fs["rdf"].items()}}
        if out is not None:
            from mlipflow.analysis import plots_dynamics as pd

            plots["fast_slow_rdf"] = pd.plot_fast_slow_rdf(fs, out / "fast_slow_rdf.png")
    return results, plots


@dataclass
class DiffusionAnalysisMaker(Maker):
    """MSD per species (all origins, FFT), D ± σ (block average), optional van Hove and fast/slow ions.

    ``make(source)``: a trajectory file (or list of consecutive files), an MDRunDoc (dict) with a
    trajectory blob or file, or a list of structures. The frame interval is ``timestep_fs`` ×
    the step difference between frames (from the file or the MD protocol) × ``every``.
    """

    name: str = "diffusion analysis"
    timestep_fs: float | None = None  # None: from the MD run's protocol
    dump_every: int | None = None  # steps between frames when the file has no step numbers
    every: int = 1
    species: list[str] | None = None
    window_ps: tuple[float, float] | None = None
    n_blocks: int = 5
    remove_drift: bool = False
    temperature_K: float | None = None
    format: str | None = None  # noqa: A003
    types: dict[int, str] | str | None = None
    van_hove_lags_ps: list[float] | None = None
    fast_slow_ion: str | None = None
    fast_slow_lag_ps: float | None = None
    ring_cutoffs: dict[str, float] | None = None
    ring_formers: list[str] | None = None
    plots: bool = True
    plot_dir: str | None = None
    memmap_dir: str | None = None  # stream positions to a memmap file here (trajectories larger than RAM)
    stage: str | None = None  # MD run documents: only this stage's frames (e.g. 'sample'), after its discard_fraction

    def parameters(self) -> dict[str, Any]:
        return {"timestep_fs": self.timestep_fs, "dump_every": self.dump_every, "every": self.every,
                "species": self.species, "window_ps": list(self.window_ps) if self.window_ps else None,
                "n_blocks": self.n_blocks, "remove_drift": self.remove_drift, "format": self.format,
                "types": self.types if not isinstance(self.types, dict) else {str(k): v for k, v in self.types.items()},
                "van_hove_lags_ps": self.van_hove_lags_ps, "fast_slow_ion": self.fast_slow_ion,
                "fast_slow_lag_ps": self.fast_slow_lag_ps, "stage": self.stage,
                "error_method": "block average over time (see docs)"}

    @job
    def make(self, source: Any) -> AnalysisDoc:
        from mlipflow.analysis import dynamics as dyn
        from mlipflow.makers.analysis_structure import source_frames

        timestep_fs, temperature, dump_every = self.timestep_fs, self.temperature_K, self.dump_every
        run = None
        if hasattr(source, "model_dump") or (isinstance(source, dict) and "protocol" in source):
            run = _as_dict(source)
            prot = run.get("protocol") or {}
            timestep_fs = timestep_fs or prot.get("timestep_fs")
            temperature = temperature if temperature is not None else _md_temperature(run)
            if run.get("terminated"):  # a run that stopped early has no sampling window to fit D in
                return AnalysisDoc(kind="diffusion", source=run.get("input_hash") or run.get("run_id"),
                                   parameters=self.parameters(),
                                   results={"error": f"MD run stopped early: {run.get('termination_reason')}",
                                            "temperature_K": temperature},
                                   input_hash=content_hash("diffusion-analysis", self.parameters(),
                                                           run.get("input_hash") or run.get("run_id")))
        if timestep_fs is None:
            raise UserError("the MD timestep is unknown", "set DiffusionAnalysisMaker(timestep_fs=...)")
        memmap = None
        if self.memmap_dir:
            Path(self.memmap_dir).mkdir(parents=True, exist_ok=True)
            memmap = str(Path(self.memmap_dir) / "positions.f64")
        if isinstance(source, (list, tuple)) and source and isinstance(source[0], (str, Path)):
            traj = dyn.load_trajectory([str(p) for p in source], format=self.format, types=self.types,
                                       every=self.every, memmap_path=memmap, progress=True)
            label = ", ".join(map(str, source))
        else:
            factory, label = source_frames(source, fmt=self.format, types=self.types, every=self.every, stage=self.stage)
            traj = dyn.stack_frames(factory(), memmap_path=memmap, progress=True, path=label)
        if dump_every is None and run is not None and (len(traj.steps) < 2 or np.any(traj.steps < 0)):
            dump_every = (run.get("protocol") or {}).get("dump_every")  # frames without step numbers
        dt_ps = dyn.frame_interval_ps(traj, timestep_fs, dump_every * self.every if dump_every else None)
        outdir = None
        if self.plots:
            outdir = Path(self.plot_dir) if self.plot_dir else Path.cwd() / "dynamics_plots"
        results, plots = diffusion_results(
            traj, dt_ps, species=self.species, window=tuple(self.window_ps) if self.window_ps else None,
            n_blocks=self.n_blocks, remove_drift=self.remove_drift, van_hove_lags_ps=self.van_hove_lags_ps,
            fast_slow_ion=self.fast_slow_ion, fast_slow_lag_ps=self.fast_slow_lag_ps,
            ring_cutoffs=self.ring_cutoffs, ring_formers=self.ring_formers, plot_dir=outdir, progress=True)
        results["temperature_K"] = temperature
        params = self.parameters() | {"timestep_fs": timestep_fs, "frame_interval_ps": dt_ps}
        source_id = (run or {}).get("input_hash") or label
        return AnalysisDoc(kind="diffusion", source=source_id, parameters=params, results=results,
                           plots={k: str(Path(v).resolve()) for k, v in plots.items()},
                           input_hash=content_hash("diffusion-analysis", params, source_id))


def arrhenius_points(docs: list[Any], species: str) -> tuple[list[float], list[float], list[float]]:
    """(T, D cm²/s, σ cm²/s) of ``species`` from diffusion AnalysisDocs (or their ``results`` dicts /
    diffusion JSON files' content) carrying ``temperature_K``."""
    T, D, S = [], [], []
    for k, d in enumerate(docs):
        d = _as_dict(d)
        res = d.get("results", d)
        if "diffusion" not in res:
            raise UserError(f"document {k} has no diffusion results")
        if res.get("temperature_K") is None:
            raise UserError(f"document {k} has no temperature_K", "set the temperature of each diffusion run")
        if species not in res["diffusion"]:
            raise UserError(f"document {k} has no D for {species} (has {sorted(res['diffusion'])})")
        e = res["diffusion"][species]
        T.append(float(res["temperature_K"]))
        D.append(float(e["D_cm2_s"]))
        S.append(float(e.get("sigma", e.get("sigma_cm2_s"))))
    return T, D, S


@dataclass
class ArrheniusMaker(Maker):
    """Arrhenius fit (D0, Ea ± σ) of D(T) from diffusion documents (or explicit T, D, σ lists)."""

    name: str = "arrhenius"
    species: str = "Na"
    T_min: float | None = None
    plots: bool = True
    plot_dir: str | None = None

    @job
    def make(self, diffusion_docs: list[Any] | None = None, temperatures: list[float] | None = None,
             D_cm2_s: list[float] | None = None, sigma_cm2_s: list[float] | None = None) -> AnalysisDoc:
        from mlipflow.analysis.dynamics import arrhenius_fit

        if diffusion_docs:  # runs that stopped early carry an error instead of D: left out
            docs = [d for d in diffusion_docs if "diffusion" in (_as_dict(d).get("results", _as_dict(d)))]
            if not docs:
                return AnalysisDoc(kind="arrhenius", parameters={"species": self.species},
                                   results={"arrhenius": None, "error": "no diffusion results (every run stopped early)"},
                                   input_hash=content_hash("arrhenius-none", self.species, len(diffusion_docs)))
            T, D, S = arrhenius_points(docs, self.species)
        elif temperatures is not None and D_cm2_s is not None:
            T, D, S = list(temperatures), list(D_cm2_s), sigma_cm2_s
        else:
            raise UserError("no data for the Arrhenius fit", "give diffusion documents or temperatures and D")
        # a non-diffusive point (D <= 0: the MSD did not grow within the window) is dropped and
        # recorded; with fewer than two points left there is no fit, and the document says why
        keep = [i for i, d in enumerate(D) if d > 0 and T[i] > 0]
        dropped = [{"T": float(T[i]), "D_cm2_s": float(D[i])} for i in range(len(D)) if i not in keep]
        params = {"species": self.species, "T_min": self.T_min, "units": "cm2/s",
                  "method": "weighted least squares of ln D vs 1/(kB T), weights (D/σ)²"}
        if len(keep) < 2:
            return AnalysisDoc(kind="arrhenius", parameters=params,
                               results={"arrhenius": None, "dropped": dropped,
                                        "error": f"{len(keep)} diffusive point(s) (D > 0): an Arrhenius fit needs two"},
                               input_hash=content_hash("arrhenius", params, T, D, S))
        T, D = [T[i] for i in keep], [D[i] for i in keep]
        S = [S[i] for i in keep] if S else S
        fit = arrhenius_fit(T, D, S if S and all(s > 0 for s in S) else None, T_min=self.T_min)
        plots = {}
        if self.plots:
            from mlipflow.analysis.plots_dynamics import plot_arrhenius

            outdir = Path(self.plot_dir) if self.plot_dir else Path.cwd() / "dynamics_plots"
            plots["arrhenius"] = str(Path(plot_arrhenius(fit, outdir / f"arrhenius_{self.species}.png",
                                                         label=f"D({self.species}) (cm²/s)")).resolve())
        results = {"arrhenius": fit.to_dict() | {"species": self.species}, "dropped": dropped}
        return AnalysisDoc(kind="arrhenius", parameters=params, results=results, plots=plots,
                           input_hash=content_hash("arrhenius", params, T, D, S))


@dataclass
class GlassTransitionMaker(Maker):
    """Tg from a cooling run: density (or volume, or enthalpy) against T, continuous two-line fit."""

    name: str = "glass transition"
    quantity: str = "density"  # density | volume | enthalpy
    min_points: int = 3
    stage: str | None = None  # MD run documents: only this stage's thermo (e.g. 'cool')
    plots: bool = True
    plot_dir: str | None = None

    @job
    def make(self, md_run: Any = None, temperatures: list[float] | None = None,
             values: list[float] | None = None) -> AnalysisDoc:
        from mlipflow.analysis.thermo import glass_transition

        source = None
        if md_run is not None:
            run = _as_dict(md_run)
            th = run.get("thermo") or {}
            if self.stage is not None and run.get("terminated"):
                params = {"quantity": self.quantity, "stage": self.stage}
                return AnalysisDoc(kind="tg", source=run.get("input_hash") or run.get("run_id"), parameters=params,
                                   results={"error": f"MD run stopped early: {run.get('termination_reason')}"},
                                   input_hash=content_hash("tg", params, run.get("run_id")))
            if self.stage is not None:
                from mlipflow.schemas.md import MDProtocol

                w = MDProtocol.model_validate(run["protocol"]).window(self.stage)
                keep = [i for i, st in enumerate(th.get("step") or []) if w.analysis_first_step <= st <= w.last_step]
                th = {k: [v[i] for i in keep] for k, v in th.items() if v and len(v) == len(th["step"])}
            T = th.get("temperature_K")
            if not T:
                raise UserError("the MD run has no temperature_K thermo column")
            if self.quantity in ("density", "volume"):
                V = np.asarray(th.get("volume_A3") or [], dtype=float)
                if V.size != len(T):
                    raise UserError("the MD run has no volume_A3 column (an NPT cooling run is needed)")
                if self.quantity == "density" and len(th.get("density_g_cm3") or []) == len(T) and all(
                        d is not None for d in th["density_g_cm3"]):
                    y = np.asarray(th["density_g_cm3"], dtype=float)  # the engines' own density column
                elif self.quantity == "density":
                    if not run.get("final_structure"):
                        raise UserError("density needs the composition (final_structure) of the run")
                    from pymatgen.core import Structure

                    mass_g = float(Structure.from_dict(run["final_structure"]).composition.weight) * 1.66053906660e-24
                    y = mass_g / (V * 1e-24)
                else:
                    y = V
            elif self.quantity == "enthalpy":
                E = np.asarray(th.get("potential_energy_eV") or [], dtype=float)
                P = np.asarray(th.get("pressure_bar") or np.zeros(len(E)), dtype=float)
                V = np.asarray(th.get("volume_A3") or np.zeros(len(E)), dtype=float)
                y = E + P * 1e5 * V * 1e-30 / 1.602176634e-19  # eV (potential enthalpy)
            else:
                raise UserError(f"unknown quantity {self.quantity!r}", "use density, volume or enthalpy")
            source = run.get("input_hash")
        elif temperatures is not None and values is not None:
            T, y = temperatures, values
        else:
            raise UserError("no data for Tg", "give an MD run or temperatures and values")
        res = glass_transition(T, y, min_points=self.min_points, quantity=self.quantity)
        plots = {}
        if self.plots:
            from mlipflow.analysis.plots_dynamics import plot_tg

            outdir = Path(self.plot_dir) if self.plot_dir else Path.cwd() / "dynamics_plots"
            plots["tg"] = str(Path(plot_tg(res, outdir / "tg.png")).resolve())
        params = {"quantity": self.quantity, "min_points": self.min_points, "stage": self.stage,
                  "method": "continuous two-line fit"}
        return AnalysisDoc(kind="tg", source=source, parameters=params, results={"tg": res.to_dict()}, plots=plots,
                           input_hash=content_hash("tg", params, list(map(float, T)), list(map(float, y))))


@dataclass
class ElasticMaker(Maker):
    """Elastic constants by stepwise ±strain with fixed-cell relaxation and stress–strain regression."""

    need: ClassVar[str] = "gpu"  # relaxations with the potential, like MD
    name: str = "elastic"
    calculator: Any = "emt"  # a labeler name, a potential file, a shipped classical set or a reference
    calculator_kwargs: dict[str, Any] = field(default_factory=dict)
    strain: float = 1e-4
    steps: int = 20
    fmax: float = 1e-4
    optimizer: str = "BFGS"
    plots: bool = True
    plot_dir: str | None = None

    @job
    def make(self, structure: Any, stopped: bool = False, reason: str | None = None) -> AnalysisDoc:
        """Elastic constants of ``structure``; ``stopped``/``reason``: the MD run that made it stopped
        early (blew up), so there is no glass to strain and the document records why."""
        from mlipflow.analysis.elastic import elastic_constants
        from mlipflow.analysis.io import Frame

        if stopped:
            params = {"calculator": self.calculator, "strain": self.strain}
            return AnalysisDoc(kind="elastic", source=None, parameters=params,
                               results={"error": f"MD run stopped early: {reason}"},
                               input_hash=content_hash("elastic", params, "stopped", reason))
        if isinstance(structure, dict) and "lattice" in structure:
            from pymatgen.core import Structure

            structure = Structure.from_dict(structure)
        if isinstance(structure, (str, Path)):
            from ase.io import read

            atoms = read(str(structure))
        elif hasattr(structure, "get_positions"):
            atoms = structure
        else:
            atoms = Frame.from_atoms(structure).to_atoms()
        from mlipflow.engines.potentials import calculator

        calc = calculator(self.calculator, **self.calculator_kwargs)
        res = elastic_constants(atoms, calc, strain=self.strain, steps=self.steps, fmax=self.fmax,
                                optimizer=self.optimizer, progress=True)
        plots = {}
        if self.plots:
            from mlipflow.analysis.plots_dynamics import plot_stress_strain

            outdir = Path(self.plot_dir) if self.plot_dir else Path.cwd() / "dynamics_plots"
            plots["stress_strain"] = str(Path(plot_stress_strain(res, outdir / "stress_strain.png")).resolve())
        params = {"calculator": self.calculator, "calculator_kwargs": self.calculator_kwargs, "strain": self.strain,
                  "steps": self.steps, "fmax": self.fmax, "optimizer": self.optimizer}
        formula = atoms.get_chemical_formula()
        return AnalysisDoc(kind="elastic", source=formula, parameters=params, results={"elastic": res.to_dict()},
                           plots=plots, input_hash=content_hash("elastic", params, formula,
                                                                np.round(atoms.get_positions(), 6),
                                                                np.round(np.array(atoms.get_cell()), 6)))
