"""Named production protocols: the published numbers, stage windows, both engines' renderings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlipflow.engines.lammps import render_lammps_deck
from mlipflow.engines.protocols import (
    DIFFUSION_TEMPERATURES,
    LFP_TEMPERATURES,
    build_protocol,
    diffusion_protocol,
    glass_protocol,
    lfp_cycle_protocol,
    lfp_interface_protocol,
    lfp_ordering_protocol,
)
from mlipflow.errors import UserError
from mlipflow.schemas import MDProtocol, MDStage


def test_glass_protocol_paper_numbers():
    p = glass_protocol()
    st = {s.label: s for s in p.stages}
    assert [s.label for s in p.stages] == ["minimize", "equil_nvt", "equil_npt", "melt_nvt", "melt_npt", "cool", "glass"]
    assert (st["equil_nvt"].steps, st["equil_npt"].steps) == (10_000, 10_000)  # 10 ps each at 1 fs
    assert (st["melt_nvt"].t_start, st["melt_nvt"].steps, st["melt_npt"].steps) == (3000, 100_000, 100_000)
    assert (st["cool"].t_start, st["cool"].t_end, st["cool"].steps) == (3000, 300, 2_700_000)  # 1 K/ps
    assert st["cool"].ensemble == "npt" and st["cool"].pressure == 0.0
    assert (st["glass"].ensemble, st["glass"].t_start, st["glass"].steps) == ("npt", 300, 100_000)
    assert (p.timestep_fs, p.tdamp_fs, p.pdamp_fs, p.thermostat) == (1.0, 100.0, 1000.0, "nose-hoover")
    w = p.window("cool")
    assert (w.first_step, w.last_step) == (230_000, 2_930_000)
    assert glass_protocol(cooling_ensemble="nvt").window("cool") == w
    small = glass_protocol(time_scale=0.01)
    assert small.window("cool").last_step - small.window("cool").first_step == 27_000


def test_diffusion_protocol_both_heating_variants():
    assert DIFFUSION_TEMPERATURES == (500.0, 700.0, 900.0, 1100.0, 1300.0, 1500.0)
    nvt, npt = diffusion_protocol(1100, heating="nvt"), diffusion_protocol(1100, heating="npt")
    for p in (nvt, npt):
        heat, eq, sample = p.stages
        assert (heat.t_start, heat.t_end, heat.steps) == (300, 1100, 800_000)  # 1 K/ps
        assert (eq.t_start, eq.steps) == (1100, 100_000)
        assert (sample.ensemble, sample.steps, sample.dump_every) == ("nvt", 10_000_000, 1000)  # 10 ns
    assert nvt.stages[0].ensemble == "nvt" and npt.stages[0].ensemble == "npt" and npt.stages[0].pressure == 0.0
    assert nvt.window("sample").first_step == 900_000


def test_lfp_protocols_paper_numbers():
    assert LFP_TEMPERATURES == (1000, 800, 600, 500, 400, 300, 200, 100, 20)
    c = lfp_cycle_protocol()
    labels = [s.label for s in c.stages]
    assert labels[:9] == [f"cool1_{T:g}K" for T in LFP_TEMPERATURES]
    assert labels[9:17] == [f"heat_{T:g}K" for T in LFP_TEMPERATURES[::-1][1:]]
    assert labels[17:] == [f"cool2_{T:g}K" for T in LFP_TEMPERATURES[1:]]
    for s in c.stages:
        assert (s.ensemble, s.pressure, s.coupling, s.steps) == ("npt", 1.0, "aniso", 20_000)
        assert s.discard_fraction == pytest.approx(1 / 3)
    assert (c.tdamp_fs, c.pdamp_fs, c.timestep_fs) == (100.0, 1000.0, 1.0)
    w = c.window("cool1_800K")
    assert (w.first_step, w.analysis_first_step, w.last_step) == (20_000, 26_667, 40_000)
    o = lfp_ordering_protocol()
    assert (o.stages[0].steps, o.stages[0].t_start, o.stages[0].discard_fraction) == (80_000, 300, 0.125)
    i = lfp_interface_protocol(temperature_K=500)
    assert i.stages[0].t_start == 500 and i.name == "lfp-interface-500K"
    assert lfp_ordering_protocol(ensemble="nvt").stages[0].pressure is None


def test_bad_protocols_are_refused_clearly():
    with pytest.raises(ValidationError, match="has no pressure"):
        MDStage(ensemble="npt", steps=10, label="squeeze")
    with pytest.raises(UserError, match="has no stage 'anneal'"):
        glass_protocol().window("anneal")
    with pytest.raises(UserError, match="unknown protocol builder"):
        build_protocol({"builder": "quench"})
    with pytest.raises(UserError, match="protocol 'glass'"):
        build_protocol({"builder": "glass", "melt_temperature": 3000})
    with pytest.raises(UserError, match="positive cooling"):
        glass_protocol(cooling_rate_K_per_ps=0)
    assert build_protocol({"builder": "glass", "time_scale": 0.5}).window("glass").last_step == 1_520_000  # minimisation is not scaled


def test_lammps_deck_renders_production_stages():
    p = MDProtocol(timestep_fs=1.0, dump_every=100, thermo_every=10, restart_every=500, stages=[
        MDStage(ensemble="min", steps=50, label="relax"),
        MDStage(ensemble="npt", steps=200, t_start=300, pressure=1.0, coupling="aniso", label="a", thermo_every=20),
        MDStage(ensemble="npt", steps=200, t_start=300, t_end=600, pressure=0.0, coupling="tri", label="b",
                dump_every=50)])
    lines = [ln.split("#")[0].strip() for ln in render_lammps_deck(p, "d.data", ["pair_style zero 5.0", "pair_coeff * *"],
                                                                    ["Cu"]).splitlines()]
    assert "dump traj all custom 100 traj.dump id type x y z ix iy iz" in lines
    assert "thermo_style custom step time temp pe press vol density" in lines
    assert "restart 500 restart.*.bin" in lines
    i_min = lines.index("minimize 1.0e-8 1.0e-6 50 500")
    assert lines[i_min + 1: i_min + 3] == ["undump traj", "reset_timestep 50"]  # steps stay aligned with the protocol
    assert "fix md1 all npt temp 300 300 0.1 aniso 1 1 1" in lines and "thermo 20" in lines
    assert "fix md2 all npt temp 300 600 0.1 tri 0 0 1" in lines and "dump_modify traj every 50" in lines
    assert "run 200 start 250 stop 450" in lines  # ramps on absolute steps
    # a continuation at step 350: read_restart, no new velocities, stage a skipped, b's remaining 100 steps
    cont = [ln.split("#")[0].strip() for ln in render_lammps_deck(
        p, "d.data", ["pair_style zero 5.0", "pair_coeff * *"], ["Cu"], resume=("restart.350.bin", 350)).splitlines()]
    assert "read_restart restart.350.bin" in cont and "read_data d.data" not in cont
    assert not any(ln.startswith("velocity") for ln in cont) and not any(ln.startswith("minimize") for ln in cont)
    assert "fix md1 all npt temp 300 300 0.1 aniso 1 1 1" not in cont
    assert "run 100 start 250 stop 450" in cont
    assert "dump_modify traj sort id format float %.8g append yes" in cont


def test_ase_engine_runs_every_coupling():
    """The same NPT stages in ASE: iso (IsotropicMTKNPT), aniso (MaskedMTKNPT: a, b, c
    independently) and tri (MTKNPT), with per-stage thermo and dump intervals."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from mlipflow.engines.ase_md import run_ase_md

    atoms = bulk("Cu", "fcc", a=3.6, orthorhombic=True) * (2, 2, 2)
    p = MDProtocol(timestep_fs=2.0, thermo_every=5, dump_every=10, seed=3, stages=[
        MDStage(ensemble="npt", steps=20, t_start=300, pressure=1e4, coupling=c, label=c, thermo_every=10)
        for c in ("iso", "aniso", "tri")])
    r = run_ase_md(atoms, EMT(), p, progress=False)
    assert r.steps_done == 60 and not r.terminated
    assert r.thermo["step"] == [0, 10, 20, 30, 40, 50, 60]
    assert all(np.isfinite(r.thermo["density_g_cm3"]))
