"""Embedded MD (ASE) for an :class:`~mlipflow.schemas.MDProtocol`, with γ tracking.

``run_ase_md(atoms, calculator, protocol)`` runs the protocol's stages in order (NVT with a
Nosé–Hoover chain, Bussi or Langevin thermostat; isotropic MTK NPT where a stage asks for it;
NVE; ``min`` = FIRE relaxation), ramping the thermostat target linearly from ``t_start`` to
``t_end`` within a stage. It is generic over ASE calculators; when the calculator is a
``PyACECalculator`` with an active set it reads the per-atom extrapolation grade
(``calc.results["gamma"]``) every ``protocol.gamma_every`` steps and

* keeps the frame when max γ > ``protocol.gamma_lo``,
* stops the run when max γ > ``protocol.gamma_hi`` (``terminated``, reason recorded).

Frames are also kept each time the thermostat target crosses a multiple of
``collect_every_kelvin`` and at the end (the final, e.g. quenched, structure). The same
protocol renders to a LAMMPS deck in :mod:`mlipflow.engines.lammps`.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from ase import Atoms, units

from mlipflow.schemas.md import MDProtocol, MDRunDoc, MDStage

log = logging.getLogger(__name__)

THERMO_COLUMNS = ("step", "time_ps", "temperature_K", "potential_energy_eV", "pressure_bar", "volume_A3",
                  "density_g_cm3", "max_gamma")


@dataclass
class MDResult:
    """Outcome of one MD run (either engine)."""

    protocol: MDProtocol
    engine: str
    steps_done: int = 0
    terminated: bool = False
    termination_reason: str | None = None
    thermo: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in THERMO_COLUMNS})
    frames: list[Atoms] = field(default_factory=list)
    final_atoms: Atoms | None = None
    wall_time_s: float = 0.0
    gamma_tracked: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    trajectory_path: str | None = None
    trajectory_files: list[str] = field(default_factory=list)
    restart_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def max_gamma(self) -> float | None:
        vals = [f.info.get("max_gamma") for f in self.frames if f.info.get("max_gamma") is not None]
        col = [g for g in self.thermo.get("max_gamma", []) if g is not None and not math.isnan(g)]
        allv = [v for v in vals + col if v is not None and not math.isnan(v)]
        return max(allv) if allv else None

    def to_doc(self, potential=None, include_frames: bool = True) -> MDRunDoc:
        from pymatgen.io.ase import AseAtomsAdaptor

        fa = self.final_atoms
        final = None
        if fa is not None:
            try:
                final = AseAtomsAdaptor.get_structure(fa).as_dict() if fa.cell.rank == 3 else None
            except Exception:  # noqa: BLE001 - a structure that pymatgen cannot hold
                final = None
        return MDRunDoc(
            protocol=self.protocol, engine=self.engine, potential=potential,
            formula=fa.get_chemical_formula(mode="metal", empirical=True) if fa is not None else "",
            nsites=len(fa) if fa is not None else 0, steps_done=self.steps_done, terminated=self.terminated,
            termination_reason=self.termination_reason, thermo={k: list(map(_nan_none, v)) for k, v in self.thermo.items()},
            trajectory=frames_to_dict(self.frames) if include_frames else None,
            trajectory_path=self.trajectory_path, final_structure=final, wall_time_s=self.wall_time_s,
            run_id=self.run_id, trajectory_files=list(self.trajectory_files), restart_file=self.restart_file,
            resumed_from_step=list(self.extra.get("resumed_from_step") or []),
        )


def _nan_none(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def frames_to_dict(frames: list[Atoms]) -> dict[str, Any]:
    """JSON-able trajectory blob: per frame positions (Å), cell (Å), numbers, step and info."""
    keys = ("step", "temperature_K", "target_T", "max_gamma", "reason", "time_ps", "run")
    return {
        "numbers": [f.numbers.tolist() for f in frames],
        "positions": [np.round(f.positions, 6).tolist() for f in frames],
        "cell": [np.asarray(f.cell).tolist() for f in frames],
        "pbc": [f.pbc.tolist() for f in frames],
        **{k: [_json_scalar(f.info.get(k)) for f in frames] for k in keys},
    }


def _json_scalar(x):
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def frames_from_dict(d: dict[str, Any] | None) -> list[Atoms]:
    """Inverse of :func:`frames_to_dict`."""
    if not d:
        return []
    out = []
    n = len(d.get("numbers", []))
    for i in range(n):
        at = Atoms(numbers=d["numbers"][i], positions=d["positions"][i], cell=d["cell"][i],
                   pbc=d.get("pbc", [[True] * 3] * n)[i])
        for k in ("step", "temperature_K", "target_T", "max_gamma", "reason", "time_ps", "run"):
            if k in d and d[k][i] is not None:
                at.info[k] = d[k][i]
        out.append(at)
    return out


# ----------------------------------------------------------------------------- uncertainty

def results_max(atoms: Atoms, key: str = "gamma") -> float | None:
    """Max of a per-atom quantity the attached calculator reported in ``results`` (ACE: γ), else None."""
    calc = atoms.calc
    results = getattr(calc, "results", None) if calc is not None else None
    g = results.get(key) if results else None
    if g is None or len(g) == 0:
        return None
    return float(np.max(g))


# ----------------------------------------------------------------------------- integrators

def _make_dynamics(atoms: Atoms, stage: MDStage, protocol: MDProtocol, rng: np.random.Generator):
    dt = protocol.timestep_fs * units.fs
    t0 = max(stage.t_start, stage.t_end if stage.t_end is not None else 0.0, 1.0)
    if stage.ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt)
    if stage.ensemble == "npt":
        from ase.md.nose_hoover_chain import MTKNPT, IsotropicMTKNPT, MaskedMTKNPT

        kw = dict(timestep=dt, temperature_K=t0, pressure_au=stage.pressure * units.bar,
                  tdamp=protocol.tdamp_fs * units.fs, pdamp=protocol.pdamp_fs * units.fs)
        if stage.coupling == "aniso":  # a, b, c independently (LAMMPS 'aniso')
            return MaskedMTKNPT(atoms, mask=(True, True, True), **kw)
        if stage.coupling == "tri":  # the full cell (LAMMPS 'tri')
            return MTKNPT(atoms, **kw)
        return IsotropicMTKNPT(atoms, **kw)
    if protocol.thermostat == "nose-hoover":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=t0, tdamp=protocol.tdamp_fs * units.fs)
    if protocol.thermostat == "bussi":
        from ase.md.bussi import Bussi

        if atoms.get_kinetic_energy() < 1e-12:
            _init_velocities(atoms, max(stage.t_start, 1.0), rng)
        return Bussi(atoms, timestep=dt, temperature_K=t0, taut=protocol.tdamp_fs * units.fs, rng=rng)
    from ase.md.langevin import Langevin

    return Langevin(atoms, timestep=dt, temperature_K=t0, friction=1.0 / (protocol.tdamp_fs * units.fs), rng=rng,
                    fixcm=False)


def set_target_temperature(dyn, temperature_K: float) -> None:
    """Change the thermostat target of an ASE integrator in place (linear ramps)."""
    kT = units.kB * temperature_K
    name = type(dyn).__name__
    if name == "NoseHooverChainNVT":
        dyn._thermostat._kT = kT
    elif name in ("IsotropicMTKNPT", "MTKNPT", "MaskedMTKNPT"):
        dyn._temperature_K = temperature_K
        dyn._kT = kT
        dyn._thermostat._kT = kT
        dyn._barostat._kT = kT
    elif name == "Bussi":
        dyn.temp = kT
        dyn.target_kinetic_energy = 0.5 * kT * dyn.ndof
    elif hasattr(dyn, "set_temperature"):
        dyn.set_temperature(temperature_K=temperature_K)


def _init_velocities(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)  # what MaxwellBoltzmannDistribution calls
    Stationary(atoms)


# ----------------------------------------------------------------------------- run

def run_ase_md(atoms: Atoms, calculator, protocol: MDProtocol, *, init_velocities: bool = True,
               workdir: str | Path | None = None, progress: bool = True,
               gamma_fn: Callable[[Atoms], float | None] | None = None, run_id: str | None = None,
               max_force: float | None = 1e3, on_dump: Callable[[Atoms, int], bool | None] | None = None,
               dump_start: bool = False) -> MDResult:
    """Run ``protocol`` on a copy of ``atoms`` with ``calculator`` (see module docstring).

    ``gamma_fn(atoms) -> uncertainty | None`` is the uncertainty source (default: the per-atom
    ``gamma`` an ACE calculator with an active set reports; :class:`AseEngine` passes the potential
    kind's). Frames in ``MDResult.frames`` carry ``info`` keys step, time_ps, temperature_K,
    target_T, max_gamma and reason ('gamma' above gamma_lo, 'gamma_hi' at the stop,
    'temperature', 'final'). ``on_dump(atoms, step) -> stop?`` is called every dump interval
    (and at step 0 with ``dump_start``), with the calculator's results of that step.

    With a ``workdir`` the trajectory is written there in chunks (``traj/chunk_<k>.traj``, a new
    chunk after each checkpoint) at the protocol's (or stage's) dump interval, and with
    ``restart_every`` a checkpoint (positions, momenta, cell, step, random state, thermo and kept
    frames; ``checkpoint.json``, written atomically) every that many steps. Calling again with the
    same ``workdir`` continues from the checkpoint: chunks written after it are dropped, so the
    trajectory has no gap and no repeated frame. The thermostat's chain variables restart from
    zero at a continuation (the velocities carry the temperature).
    """
    from tqdm.auto import tqdm

    from mlipflow.output import progress_enabled

    atoms = atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(protocol.seed)
    result = MDResult(protocol=protocol, engine="ase", run_id=run_id or uuid.uuid4().hex[:12])
    gamma_fn = gamma_fn or results_max
    stages = protocol.stages or [MDStage(steps=0)]
    wd = Path(workdir) if workdir is not None else None
    state = _load_checkpoint(wd) if wd is not None and protocol.restart_every else None
    chunk = 0
    traj = None
    resumed_at = None
    if state is not None:
        resumed_at = _restore_checkpoint(state, atoms, result, rng)
        chunk = int(state["next_chunk"])
        result.extra["resumed_from_step"] = list(state.get("resumed_from_step", [])) + [resumed_at]
    if wd is not None and (protocol.dump_every or 0) > 0:
        (wd / "traj").mkdir(parents=True, exist_ok=True)
        for old in (wd / "traj").glob("chunk_*.traj"):
            if state is None or int(old.stem.split("_")[1]) >= chunk:
                old.unlink()  # written after the checkpoint (or by an earlier, unrelated attempt)

    def chunk_path(k: int) -> Path:
        return wd / "traj" / f"chunk_{k:05d}.traj"

    last_written = -1

    def write_frame():
        nonlocal traj, last_written
        if wd is None or not protocol.dump_every or last_written == step:
            return
        last_written = step
        if traj is None:
            from ase.io import Trajectory

            traj = Trajectory(str(chunk_path(chunk)), "w")
        fr = atoms.copy()
        fr.calc = None
        fr.info["step"] = step
        traj.write(fr)

    def checkpoint():
        nonlocal traj, chunk
        if traj is not None:
            traj.close()
            traj = None
            chunk += 1
        _write_checkpoint(wd, atoms, step, result, rng, chunk)

    if state is None and init_velocities and stages[0].ensemble != "min":
        _init_velocities(atoms, stages[0].t_start, rng)
    total = protocol.total_steps
    bar = tqdm(total=total, initial=resumed_at or 0, desc=f"md {protocol.name}", disable=not progress_enabled(progress), leave=False,
               unit="step")
    t_wall = time.time()
    step = resumed_at or 0
    every_k = protocol.collect_every_kelvin
    gamma_every = max(1, int(protocol.gamma_every))
    last_gamma = float("nan")

    def record_thermo(target_T):
        nonlocal last_gamma
        row = _thermo_row(atoms, step, protocol.timestep_fs, last_gamma)
        for k, v in zip(THERMO_COLUMNS, row):
            result.thermo[k].append(v)

    def keep(reason: str, target_T: float, g: float | None):
        fr = atoms.copy()
        fr.calc = None
        fr.info.update(step=step, time_ps=step * protocol.timestep_fs / 1000.0,
                       temperature_K=float(atoms.get_temperature()), target_T=float(target_T),
                       max_gamma=None if g is None or math.isnan(g) else float(g), reason=reason,
                       run=result.run_id)
        result.frames.append(fr)

    def check_gamma(target_T) -> tuple[float | None, bool]:
        """γ now: record it, keep the frame above gamma_lo, stop above gamma_hi."""
        nonlocal last_gamma
        g = gamma_fn(atoms)
        if g is None:
            return None, False
        result.gamma_tracked = True
        last_gamma = g
        if protocol.gamma_hi is not None and g > protocol.gamma_hi:
            keep("gamma_hi", target_T, g)
            result.terminated = True
            result.termination_reason = f"max gamma {g:.3g} > gamma_hi {protocol.gamma_hi} at step {step}"
            return g, True
        if step > 0 and protocol.gamma_lo is not None and g > protocol.gamma_lo:
            keep("gamma", target_T, g)
        return g, False

    try:
        target_T = stages[0].t_start
        atoms.get_potential_energy()  # step 0: uncertainty of the starting structure
        stop = False
        if state is None:
            _, stop = check_gamma(target_T)
            record_thermo(target_T)
            write_frame()
            if not stop and on_dump is not None and dump_start:
                stop = bool(on_dump(atoms, step))
        first = 0
        for stage in stages:
            stage_first, first = first, first + stage.steps
            if stop:
                break
            if stage.steps == 0 or first <= step:
                continue  # empty, or finished before the checkpoint
            if stage.ensemble == "min":
                from ase.optimize import FIRE

                opt = FIRE(atoms, logfile=None)
                for _ in opt.irun(fmax=0.05, steps=stage.steps):
                    pass
                bar.update(first - step)
                step = first  # step numbers stay aligned with the LAMMPS deck
                continue
            dyn = _make_dynamics(atoms, stage, protocol, rng)
            t_a = stage.t_start
            t_b = stage.t_end if stage.t_end is not None else stage.t_start
            thermo_every = stage.thermo_every or protocol.thermo_every
            dump_every = stage.dump_every or protocol.dump_every
            if step == stage_first and dump_every and step % dump_every == 0:
                write_frame()  # a stage starting on its dump interval has that frame too, as in LAMMPS
            if step > stage_first and stage.ensemble != "nve" and t_b != t_a:  # continued mid-ramp
                set_target_temperature(dyn, t_a + (t_b - t_a) * (step - stage_first) / stage.steps)
            for i in range(step - stage_first, stage.steps):
                prev_T = target_T
                target_T = t_a + (t_b - t_a) * (i + 1) / stage.steps
                if stage.ensemble != "nve" and t_b != t_a:
                    set_target_temperature(dyn, target_T)
                dyn.step()
                step += 1
                bar.update(1)
                g = None
                if step % gamma_every == 0:
                    g, stop = check_gamma(target_T)
                if not stop and every_k and math.floor(prev_T / every_k + 1e-9) != math.floor(target_T / every_k + 1e-9):
                    keep("temperature", target_T, g if g is not None else gamma_fn(atoms))
                if not stop and max_force is not None and step % gamma_every == 0:
                    f = atoms.get_forces()
                    if not np.all(np.isfinite(f)) or np.abs(f).max() > max_force:
                        result.terminated, stop = True, True
                        result.termination_reason = f"unstable: force above {max_force} eV/Å at step {step}"
                if step % thermo_every == 0 or stop:
                    record_thermo(target_T)
                if dump_every and step % dump_every == 0:
                    write_frame()
                    if not stop and on_dump is not None and on_dump(atoms, step):
                        result.terminated, stop = True, True
                        result.termination_reason = result.termination_reason or f"stopped by the caller at step {step}"
                if not stop and wd is not None and protocol.restart_every and step % protocol.restart_every == 0:
                    checkpoint()
                if stop:
                    break
        if not result.terminated:
            g = gamma_fn(atoms)
            keep("final", target_T, g if g is not None else None)
            if result.thermo["step"] and result.thermo["step"][-1] != step:
                record_thermo(target_T)
    finally:
        bar.close()
        if traj is not None:
            traj.close()
    result.steps_done = step
    result.final_atoms = atoms.copy()
    result.final_atoms.calc = None
    result.wall_time_s = time.time() - t_wall
    if wd is not None:
        result.trajectory_files = [str(p) for p in sorted((wd / "traj").glob("chunk_*.traj"))]
        if (wd / CHECKPOINT).exists():
            result.restart_file = str(wd / CHECKPOINT)
        if result.terminated:
            result.termination_reason += (f"; last checkpoint at step {_load_checkpoint(wd)['step']}"
                                          if result.restart_file else "; no checkpoint")
    log.info("ASE MD %s: %d steps in %.1f s%s", protocol.name, step, result.wall_time_s,
             f", terminated ({result.termination_reason})" if result.terminated else "")
    return result


CHECKPOINT = "checkpoint.json"


def _write_checkpoint(wd: Path, atoms: Atoms, step: int, result: MDResult, rng: np.random.Generator,
                      next_chunk: int) -> None:
    """checkpoint.json, atomically (a kill never leaves a half checkpoint that a rerun trusts)."""
    import json
    import os

    state = {"step": step, "positions": atoms.positions.tolist(), "momenta": atoms.get_momenta().tolist(),
             "cell": np.asarray(atoms.cell).tolist(), "rng": rng.bit_generator.state, "next_chunk": next_chunk,
             "thermo": {k: [_json_scalar(x) for x in v] for k, v in result.thermo.items()},
             "frames": frames_to_dict(result.frames), "gamma_tracked": result.gamma_tracked,
             "resumed_from_step": result.extra.get("resumed_from_step", [])}
    tmp = wd / (CHECKPOINT + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, wd / CHECKPOINT)


def _load_checkpoint(wd: Path | None) -> dict | None:
    import json

    if wd is None or not (wd / CHECKPOINT).exists():
        return None
    return json.loads((wd / CHECKPOINT).read_text())


def _restore_checkpoint(state: dict, atoms: Atoms, result: MDResult, rng: np.random.Generator) -> int:
    atoms.set_cell(state["cell"])
    atoms.positions = np.asarray(state["positions"])
    atoms.set_momenta(np.asarray(state["momenta"]))
    rng.bit_generator.state = state["rng"]
    result.thermo = {k: [float("nan") if x is None else x for x in v] for k, v in state["thermo"].items()}
    result.frames = frames_from_dict(state["frames"])
    result.gamma_tracked = bool(state.get("gamma_tracked"))
    return int(state["step"])


def _thermo_row(atoms: Atoms, step: int, dt_fs: float, max_gamma: float) -> list[float]:
    epot = float(atoms.get_potential_energy())
    vol = float(atoms.get_volume()) if atoms.cell.rank == 3 else float("nan")
    try:
        stress = atoms.get_stress(voigt=True, include_ideal_gas=True)
        pressure = float(-np.mean(stress[:3]) / units.bar)
    except Exception:  # noqa: BLE001 - calculators without stress
        pressure = float("nan")
    density = float(atoms.get_masses().sum() * 1.66053906660 / vol) if vol == vol and vol > 0 else float("nan")
    return [float(step), step * dt_fs / 1000.0, float(atoms.get_temperature()), epot, pressure, vol, density,
            float(max_gamma)]


class AseEngine:
    """The ``ase`` MD engine: the protocol with the potential kind's ASE calculator, in this process."""

    name = "ase"

    def preflight(self, kind, ref, protocol: MDProtocol) -> None:
        if protocol.tracks_uncertainty and kind.uncertainty is None:
            kind.require_uncertainty({})

    def run(self, protocol: MDProtocol, atoms: Atoms, potential, workdir=None, *, run_id: str | None = None,
            progress: bool = False, max_force: float | None = 1e3, **_: object) -> MDResult:
        track = protocol.tracks_uncertainty
        calc = potential.ase_calculator(uncertainty=track)
        return run_ase_md(atoms, calc, protocol, run_id=run_id, progress=progress, max_force=max_force, workdir=workdir,
                          gamma_fn=potential.uncertainty_of if track else (lambda _a: None))
