"""Embedded (ASE) exploration MD: protocol stages, ramps, frames, γ tracking and early stop."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from mlipflow.engines.ase_md import (
    frames_from_dict,
    frames_to_dict,
    run_ase_md,
    set_target_temperature,
)
from mlipflow.engines.protocols import melt_quench_protocol
from mlipflow.schemas import MDProtocol, MDStage


def cu_cell():
    return bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2)


def test_melt_quench_protocol_numbers():
    p = melt_quench_protocol()
    assert [s.label for s in p.stages] == ["melt", "quench"]
    assert p.stages[0].steps == 10_000 and p.stages[0].t_start == 5000
    assert p.stages[1].t_end == 10.0 and p.stages[1].steps == 499_000  # 4990 K at 10 K/ps, 1 fs
    assert (p.gamma_lo, p.gamma_hi, p.collect_every_kelvin) == (2.5, 30.0, 1000.0)


@pytest.mark.parametrize("thermostat", ["nose-hoover", "bussi", "langevin"])
def test_ramp_frames_and_thermo(thermostat):
    p = melt_quench_protocol(t_melt=2000, melt_ps=0.1, cooling_rate_K_per_ps=5_000, t_final=10,
                             timestep_fs=2, collect_every_kelvin=500, thermo_every=10, thermostat=thermostat)
    p = p.model_copy(update={"tdamp_fs": 20.0})
    r = run_ase_md(cu_cell(), EMT(), p, progress=False)
    assert r.steps_done == p.total_steps and not r.terminated and not r.gamma_tracked
    reasons = [f.info["reason"] for f in r.frames]
    assert reasons.count("temperature") == 4 and reasons[-1] == "final"  # 2000->10 K crosses 2000,1500,1000,500
    targets = [f.info["target_T"] for f in r.frames if f.info["reason"] == "temperature"]
    assert np.all(np.diff(targets) < 0) and abs(targets[0] - 2000) < 25
    assert r.frames[-1].info["target_T"] == pytest.approx(10)
    for col in ("step", "time_ps", "temperature_K", "potential_energy_eV", "pressure_bar", "volume_A3", "max_gamma"):
        assert len(r.thermo[col]) == len(r.thermo["step"]) > 5
    assert r.thermo["step"][-1] == p.total_steps
    # the quench cools: last thermo temperatures far below the melt's
    assert np.mean(r.thermo["temperature_K"][-3:]) < 0.5 * np.mean(r.thermo["temperature_K"][1:6])


def test_set_target_temperature_changes_thermostats():
    from ase import units
    from ase.md.bussi import Bussi
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    at = cu_cell()
    at.calc = EMT()
    at.set_momenta(np.ones((len(at), 3)) * 0.01)
    nh = NoseHooverChainNVT(at, 1 * units.fs, temperature_K=1000, tdamp=100 * units.fs)
    set_target_temperature(nh, 300)
    assert nh._thermostat._kT == pytest.approx(units.kB * 300)
    b = Bussi(at, 1 * units.fs, temperature_K=1000, taut=100 * units.fs)
    set_target_temperature(b, 300)
    assert b.target_kinetic_energy == pytest.approx(0.5 * units.kB * 300 * b.ndof)


def test_npt_stage_changes_volume():
    p = MDProtocol(stages=[MDStage(ensemble="npt", steps=60, t_start=300, pressure=50_000.0)], thermo_every=20,
                   pdamp_fs=100.0)
    r = run_ase_md(cu_cell(), EMT(), p, progress=False)
    v = r.thermo["volume_A3"]
    assert v[-1] < v[0]  # 5 GPa compresses the cell
    assert np.isfinite(r.thermo["pressure_bar"]).all()


def test_doc_and_frame_roundtrip():
    p = melt_quench_protocol(t_melt=1000, melt_ps=0.02, cooling_rate_K_per_ps=50_000, timestep_fs=2,
                             collect_every_kelvin=250)
    r = run_ase_md(cu_cell(), EMT(), p, progress=False)
    doc = r.to_doc()
    back = frames_from_dict(doc.trajectory)
    assert len(back) == len(r.frames) and doc.nsites == 32 and doc.formula == "Cu"
    assert np.allclose(back[-1].positions, r.frames[-1].positions, atol=1e-5)
    assert back[0].info["reason"] == r.frames[0].info["reason"]
    assert frames_to_dict(back)["step"] == frames_to_dict(r.frames)["step"]
    assert doc.final_structure is not None and doc.thermo["step"][-1] == p.total_steps


@pytest.fixture(scope="module")
def ace_calc(tiny_fit):
    from pyace import PyACECalculator

    calc = PyACECalculator(tiny_fit.potential_yaml)
    calc.set_active_set(tiny_fit.active_set)
    return calc


def test_gamma_equals_pyace_functional_api(tiny_fit, ace_calc, emt_data):
    from mlipflow.engines.selection import candidate_gammas

    start = emt_data["items"][3][0] * (1, 2, 2)  # a Cu-Al cell like the training data
    p = melt_quench_protocol(t_melt=1500, melt_ps=0.04, cooling_rate_K_per_ps=50_000, t_final=300,
                             timestep_fs=2, gamma_lo=0.0, gamma_hi=None, gamma_every=5)
    r = run_ase_md(start, ace_calc, p, progress=False)
    assert r.gamma_tracked
    frames = [f for f in r.frames if f.info["max_gamma"] is not None]
    assert len(frames) >= 8
    g_md = np.array([f.info["max_gamma"] for f in frames])
    g_api = candidate_gammas(frames, tiny_fit.potential_yaml, tiny_fit.active_set)
    assert np.allclose(g_md, g_api, rtol=1e-8, atol=1e-10)
    assert np.nanmax(r.thermo["max_gamma"]) > 0


def test_gamma_thresholds_collect_and_stop(ace_calc, emt_data):
    start = emt_data["items"][3][0] * (1, 2, 2)
    base = melt_quench_protocol(t_melt=2500, melt_ps=0.1, cooling_rate_K_per_ps=50_000, t_final=300,
                                timestep_fs=2, gamma_lo=0.0, gamma_hi=None, gamma_every=5,
                                collect_every_kelvin=None)
    free = run_ase_md(start, ace_calc, base, progress=False)
    g = np.array([f.info["max_gamma"] for f in free.frames if f.info["reason"] == "gamma"])
    lo, hi = np.percentile(g, 30), np.percentile(g, 80)
    p = base.model_copy(update={"gamma_lo": float(lo), "gamma_hi": float(hi)})
    r = run_ase_md(start, ace_calc, p, progress=False)
    assert r.terminated and "gamma_hi" in r.termination_reason
    assert r.steps_done < p.total_steps
    assert r.frames[-1].info["reason"] == "gamma_hi" and r.frames[-1].info["max_gamma"] > hi
    kept = [f.info["max_gamma"] for f in r.frames if f.info["reason"] == "gamma"]
    assert kept and all(lo < x <= hi for x in kept)
    assert not any(f.info["reason"] == "final" for f in r.frames)
    assert r.to_doc().terminated
