"""Named MD protocols: the published numbers as defaults, every number an argument.

Each builder returns one :class:`~mlipflow.schemas.MDProtocol`, which both MD engines run
(:mod:`mlipflow.engines.ase_md`, :mod:`mlipflow.engines.lammps`). Stage labels name the parts
analysis reads (``protocol.window(label)``), and ``discard_fraction`` marks the equilibration
part of a stage that analysis drops.

* :func:`melt_quench_protocol` — the active-learning exploration (NVT melt, linear quench, γ rules).
* :func:`glass_protocol` — NaFePO4 paper §2.3: minimise; 300 K 10 ps NVT + 10 ps NPT (0 bar);
  3000 K 100 ps NVT + 100 ps NPT; cool to 300 K at 1 K/ps (NPT); 100 ps NPT at 300 K;
  Nosé–Hoover, τ_T = 100 fs, τ_P = 1000 fs, 1 fs step.
* :func:`diffusion_protocol` — from a glass at 300 K: heat at 1 K/ps to T (NVT or NPT heating),
  100 ps at T, then 10 ns NVT sampling with a dump for MSD, van Hove and fast/slow ions.
* :func:`lfp_cycle_protocol`, :func:`lfp_ordering_protocol`, :func:`lfp_interface_protocol` —
  LixFePO4 paper SI I.C: NPT at 1 bar, τ_T = 0.1 ps, τ_P = 1 ps, 1 fs; temperature cycles
  (1000 → 20 K, back to 1000 K, down again; first third of each temperature discarded),
  80 ps orderings at 300 K (first eighth discarded), the LiFePO4/FePO4 interface at 300 K.

The LixFePO4 builders take ``ensemble: nvt`` to keep the cell fixed (e.g. a potential whose
own lattice differs from the DFT one). ``time_scale`` shrinks every duration (mini profiles: e.g. 0.001 turns 10 ns into 10 ps) without
changing temperatures, rates' meaning or the stage structure.
"""

from __future__ import annotations

from typing import Literal, Sequence

from mlipflow.errors import UserError
from mlipflow.schemas.md import MDProtocol, MDStage


def _steps(ps: float, timestep_fs: float, time_scale: float = 1.0) -> int:
    if ps < 0:
        raise UserError(f"a duration is negative ({ps} ps)", "give durations in ps >= 0")
    return max(0, int(round(ps * time_scale * 1000.0 / timestep_fs)))


def melt_quench_protocol(t_melt: float = 5000.0, melt_ps: float = 10.0, cooling_rate_K_per_ps: float = 10.0,
                         t_final: float = 10.0, timestep_fs: float = 1.0, gamma_lo: float = 2.5,
                         gamma_hi: float = 30.0, collect_every_kelvin: float = 1000.0, gamma_every: int = 10,
                         thermo_every: int = 100, dump_every: int = 1000, seed: int = 0,
                         thermostat: str = "nose-hoover", name: str = "melt-quench") -> MDProtocol:
    """The paper's exploration protocol: NVT melt at ``t_melt`` then a linear quench to ``t_final``.

    Defaults: 5000 K for 10 ps, cooling at 10 K/ps, frames every 1000 K and whenever max γ > 2.5,
    stop when max γ > 30. Every number is an argument.
    """
    steps_per_ps = int(round(1000.0 / timestep_fs))
    melt_steps = int(round(melt_ps * steps_per_ps))
    quench_steps = int(round((t_melt - t_final) / cooling_rate_K_per_ps * steps_per_ps))
    return MDProtocol(
        name=name, timestep_fs=timestep_fs, thermostat=thermostat, seed=seed, gamma_every=gamma_every,
        gamma_lo=gamma_lo, gamma_hi=gamma_hi, collect_every_kelvin=collect_every_kelvin,
        thermo_every=thermo_every, dump_every=dump_every,
        stages=[MDStage(ensemble="nvt", steps=melt_steps, t_start=t_melt, label="melt"),
                MDStage(ensemble="nvt", steps=quench_steps, t_start=t_melt, t_end=t_final, label="quench")],
    )


def glass_protocol(*, t_low: float = 300.0, t_melt: float = 3000.0, equil_nvt_ps: float = 10.0,
                   equil_npt_ps: float = 10.0, melt_nvt_ps: float = 100.0, melt_npt_ps: float = 100.0,
                   cooling_rate_K_per_ps: float = 1.0, final_ps: float = 100.0, pressure_bar: float = 0.0,
                   cooling_ensemble: Literal["npt", "nvt"] = "npt", minimize_steps: int = 10000,
                   timestep_fs: float = 1.0, tdamp_fs: float = 100.0, pdamp_fs: float = 1000.0,
                   thermo_every: int = 1000, dump_every: int = 10000, final_dump_every: int = 1000,
                   restart_every: int | None = 100000, time_scale: float = 1.0, seed: int = 0,
                   name: str = "nafepo4-glass") -> MDProtocol:
    """Melt-quench of a NaFePO4 glass (NaFePO4 paper §2.3; see the module docstring).

    Stage labels: ``minimize``, ``equil_nvt``, ``equil_npt``, ``melt_nvt``, ``melt_npt``,
    ``cool`` (the run Tg is read from; NVT or NPT by ``cooling_ensemble``) and ``glass`` (the
    final 300 K NPT stage that structure analysis reads, dumped every ``final_dump_every``).
    ``time_scale`` multiplies every duration and divides the cooling time accordingly (the mini
    profile cools faster; the rate actually used is the stage's temperature span over its time).
    """
    if cooling_rate_K_per_ps <= 0:
        raise UserError(f"cooling rate {cooling_rate_K_per_ps} K/ps", "give a positive cooling_rate_K_per_ps")
    dt = timestep_fs
    cool_ps = abs(t_melt - t_low) / cooling_rate_K_per_ps
    stages = [MDStage(ensemble="min", steps=minimize_steps, t_start=t_low, label="minimize") if minimize_steps else None,
              MDStage(ensemble="nvt", steps=_steps(equil_nvt_ps, dt, time_scale), t_start=t_low, label="equil_nvt"),
              MDStage(ensemble="npt", steps=_steps(equil_npt_ps, dt, time_scale), t_start=t_low,
                      pressure=pressure_bar, label="equil_npt"),
              MDStage(ensemble="nvt", steps=_steps(melt_nvt_ps, dt, time_scale), t_start=t_melt, label="melt_nvt"),
              MDStage(ensemble="npt", steps=_steps(melt_npt_ps, dt, time_scale), t_start=t_melt,
                      pressure=pressure_bar, label="melt_npt"),
              MDStage(ensemble=cooling_ensemble, steps=_steps(cool_ps, dt, time_scale), t_start=t_melt, t_end=t_low,
                      pressure=pressure_bar if cooling_ensemble == "npt" else None, label="cool"),
              MDStage(ensemble="npt", steps=_steps(final_ps, dt, time_scale), t_start=t_low, pressure=pressure_bar,
                      label="glass", dump_every=final_dump_every)]
    return MDProtocol(name=name, timestep_fs=dt, thermostat="nose-hoover", tdamp_fs=tdamp_fs, pdamp_fs=pdamp_fs,
                      thermo_every=thermo_every, dump_every=dump_every, restart_every=restart_every, seed=seed,
                      stages=[s for s in stages if s is not None])


#: NaFePO4 paper: the Na diffusion temperatures (K).
DIFFUSION_TEMPERATURES = (500.0, 700.0, 900.0, 1100.0, 1300.0, 1500.0)


def diffusion_protocol(temperature_K: float, *, heating: Literal["nvt", "npt"] = "nvt", t_start: float = 300.0,
                       heating_rate_K_per_ps: float = 1.0, equil_ps: float = 100.0, sample_ps: float = 10000.0,
                       pressure_bar: float = 0.0, timestep_fs: float = 1.0, tdamp_fs: float = 100.0,
                       pdamp_fs: float = 1000.0, thermo_every: int = 1000, dump_every: int = 1000,
                       sample_dump_every: int = 1000, restart_every: int | None = 100000, time_scale: float = 1.0,
                       seed: int = 0, name: str | None = None,
                          ensemble: Literal["npt", "nvt"] = "npt") -> MDProtocol:
    """Na diffusion at ``temperature_K`` from a glass at ``t_start`` (see the module docstring).

    Stages: ``heat`` (``heating`` ensemble, ramp at ``heating_rate_K_per_ps``), ``equilibrate``
    (same ensemble, at T) and ``sample`` (NVT at T, dumped every ``sample_dump_every`` steps:
    the MSD window).
    """
    if heating_rate_K_per_ps <= 0:
        raise UserError(f"heating rate {heating_rate_K_per_ps} K/ps", "give a positive heating_rate_K_per_ps")
    dt = timestep_fs
    p = pressure_bar if heating == "npt" else None
    heat_ps = abs(temperature_K - t_start) / heating_rate_K_per_ps
    stages = [MDStage(ensemble=heating, steps=_steps(heat_ps, dt, time_scale), t_start=t_start, t_end=temperature_K,
                      pressure=p, label="heat"),
              MDStage(ensemble=heating, steps=_steps(equil_ps, dt, time_scale), t_start=temperature_K, pressure=p,
                      label="equilibrate"),
              MDStage(ensemble="nvt", steps=_steps(sample_ps, dt, time_scale), t_start=temperature_K, label="sample",
                      dump_every=sample_dump_every)]
    return MDProtocol(name=name or f"diffusion-{temperature_K:g}K-{heating}", timestep_fs=dt, thermostat="nose-hoover",
                      tdamp_fs=tdamp_fs, pdamp_fs=pdamp_fs, thermo_every=thermo_every, dump_every=dump_every,
                      restart_every=restart_every, seed=seed, stages=[s for s in stages if s.steps > 0])


#: LixFePO4 paper: the temperatures of one cooling pass (K).
LFP_TEMPERATURES = (1000.0, 800.0, 600.0, 500.0, 400.0, 300.0, 200.0, 100.0, 20.0)


def _lfp(name: str, stages: list[MDStage], timestep_fs: float, thermo_every: int, dump_every: int,
         restart_every: int | None, seed: int) -> MDProtocol:
    return MDProtocol(name=name, timestep_fs=timestep_fs, thermostat="nose-hoover", tdamp_fs=100.0, pdamp_fs=1000.0,
                      thermo_every=thermo_every, dump_every=dump_every, restart_every=restart_every, seed=seed,
                      stages=stages)


def lfp_cycle_protocol(*, temperatures: Sequence[float] = LFP_TEMPERATURES, ps_per_temperature: float = 20.0,
                       discard_fraction: float = 1.0 / 3.0, pressure_bar: float = 1.0,
                       coupling: Literal["iso", "aniso", "tri"] = "aniso", timestep_fs: float = 1.0,
                       thermo_every: int = 100, dump_every: int = 10, restart_every: int | None = 10000,
                       time_scale: float = 1.0, seed: int = 0, name: str = "lfp-cycle",
                       ensemble: Literal["npt", "nvt"] = "npt") -> MDProtocol:
    """Temperature cycle (LixFePO4 paper SI I.C): NPT at each of ``temperatures`` (cooling),
    back up in reverse order (heating; the lowest is not repeated), down again (second cooling;
    the highest is not repeated). Labels ``cool1_<T>K``, ``heat_<T>K``, ``cool2_<T>K``; the first
    ``discard_fraction`` of each is equilibration. The paper's time per temperature is 10–30 ps."""
    temps = [float(t) for t in temperatures]
    if len(temps) < 2:
        raise UserError("a temperature cycle needs at least two temperatures", "give temperatures: [1000, 300, ...]")
    passes = [("cool1", temps), ("heat", temps[::-1][1:]), ("cool2", temps[1:])]
    n = _steps(ps_per_temperature, timestep_fs, time_scale)
    stages = [MDStage(ensemble=ensemble, steps=n, t_start=T, pressure=pressure_bar if ensemble == "npt" else None,
                      coupling=coupling, label=f"{tag}_{T:g}K", discard_fraction=discard_fraction)
              for tag, ts in passes for T in ts]
    return _lfp(name, stages, timestep_fs, thermo_every, dump_every, restart_every, seed)


def lfp_ordering_protocol(*, temperature_K: float = 300.0, ps: float = 80.0, discard_fraction: float = 1.0 / 8.0,
                          pressure_bar: float = 1.0, coupling: Literal["iso", "aniso", "tri"] = "aniso",
                          timestep_fs: float = 1.0, thermo_every: int = 100, dump_every: int = 10,
                          restart_every: int | None = 10000, time_scale: float = 1.0, seed: int = 0,
                          name: str = "lfp-ordering",
                          ensemble: Literal["npt", "nvt"] = "npt") -> MDProtocol:
    """One ordering run (D1, D2, D3, x-order, y-order at x = 0.5): NPT at 300 K for 80 ps, the
    first eighth discarded; label ``production``."""
    stage = MDStage(ensemble=ensemble, steps=_steps(ps, timestep_fs, time_scale), t_start=temperature_K,
                    pressure=pressure_bar if ensemble == "npt" else None, coupling=coupling, label="production",
                    discard_fraction=discard_fraction)
    return _lfp(name, [stage], timestep_fs, thermo_every, dump_every, restart_every, seed)


def lfp_interface_protocol(*, temperature_K: float = 300.0, ps: float = 80.0, discard_fraction: float = 1.0 / 8.0,
                           pressure_bar: float = 1.0, coupling: Literal["iso", "aniso", "tri"] = "aniso",
                           timestep_fs: float = 1.0, thermo_every: int = 100, dump_every: int = 10,
                           restart_every: int | None = 10000, time_scale: float = 1.0, seed: int = 0,
                           name: str | None = None,
                          ensemble: Literal["npt", "nvt"] = "npt") -> MDProtocol:
    """The LiFePO4/FePO4 interface along y at ``temperature_K`` (one point of the interfacial
    Arrhenius series): NPT, label ``production``, the first ``discard_fraction`` discarded."""
    stage = MDStage(ensemble=ensemble, steps=_steps(ps, timestep_fs, time_scale), t_start=temperature_K,
                    pressure=pressure_bar if ensemble == "npt" else None, coupling=coupling, label="production",
                    discard_fraction=discard_fraction)
    return _lfp(name or f"lfp-interface-{temperature_K:g}K", [stage], timestep_fs, thermo_every, dump_every,
                restart_every, seed)


#: Named builders, for campaign files (``protocol: {builder: glass, time_scale: 0.01}``).
PROTOCOLS = {"melt_quench": melt_quench_protocol, "glass": glass_protocol, "diffusion": diffusion_protocol,
             "lfp_cycle": lfp_cycle_protocol, "lfp_ordering": lfp_ordering_protocol,
             "lfp_interface": lfp_interface_protocol}


def build_protocol(spec: dict | MDProtocol) -> MDProtocol:
    """An MDProtocol from a mapping: ``{builder: name, **arguments}`` or the protocol's own fields."""
    if isinstance(spec, MDProtocol):
        return spec
    spec = dict(spec or {})
    builder = spec.pop("builder", None)
    if builder is None:
        return MDProtocol(**spec)
    if builder not in PROTOCOLS:
        raise UserError(f"unknown protocol builder {builder!r}", f"use one of {sorted(PROTOCOLS)}")
    try:
        return PROTOCOLS[builder](**spec)
    except TypeError as exc:
        raise UserError(f"protocol {builder!r}: {exc}", f"see mlipflow.engines.protocols.{PROTOCOLS[builder].__name__}") from exc
