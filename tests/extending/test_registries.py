"""Adding an MD engine and a labeler is one module plus one registry line each.

A "user plugin" module is written to disk (as a user would put it on PYTHONPATH): a toy MD engine
(velocity-Verlet with velocity rescaling to the protocol's target temperature, uncertainty from the
potential kind) and a toy labeler (EMT energies shifted by a constant per atom). Both are
registered with one line each and the tiny active-learning campaign runs with them end to end,
with the real pacemaker.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

PLUGIN = '''
"""A user's plugin: one MD engine, one labeler calculator."""
import numpy as np
from ase import units
from ase.calculators.emt import EMT
from ase.md.verlet import VelocityVerlet

from mlipflow.engines.ase_md import MDResult, THERMO_COLUMNS

RUNS = []


class ShiftedEMT(EMT):
    """EMT with a constant energy offset per atom (a 'different reference method')."""

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.results["energy"] += -0.1 * len(self.atoms)
        self.results["free_energy"] = self.results["energy"]


class RescaleEngine:
    """Velocity Verlet, velocities rescaled to the target T every step; uncertainty from the kind."""

    name = "rescale"

    def preflight(self, kind, ref, protocol):
        """Nothing to check before the run (a LAMMPS-like engine checks its binary here)."""

    def run(self, protocol, atoms, potential, workdir, *, run_id=None, progress=False, **_):
        RUNS.append(run_id)
        atoms = atoms.copy()
        atoms.calc = potential.ase_calculator(uncertainty=protocol.tracks_uncertainty)
        rng = np.random.default_rng(protocol.seed)
        atoms.set_velocities(rng.normal(0, 0.01, (len(atoms), 3)))
        res = MDResult(protocol=protocol, engine=self.name, run_id=run_id or "run")
        dyn = VelocityVerlet(atoms, timestep=protocol.timestep_fs * units.fs)
        step = 0
        for stage in protocol.stages:
            for i in range(stage.steps):
                t_end = stage.t_end if stage.t_end is not None else stage.t_start
                target = stage.t_start + (t_end - stage.t_start) * (i + 1) / stage.steps
                dyn.run(1)
                step += 1
                t_now = max(atoms.get_temperature(), 1e-6)
                atoms.set_velocities(atoms.get_velocities() * np.sqrt(target / t_now))
                if step % protocol.gamma_every:
                    continue
                g = potential.uncertainty_of(atoms)
                for k, v in zip(THERMO_COLUMNS, [step, step * protocol.timestep_fs / 1000, atoms.get_temperature(),
                                                 atoms.get_potential_energy(), float("nan"), atoms.get_volume(),
                                                 float("nan") if g is None else g]):
                    res.thermo[k].append(v)
                if g is not None and protocol.gamma_lo is not None and g > protocol.gamma_lo:
                    fr = atoms.copy()
                    fr.calc = None
                    fr.info.update(step=step, max_gamma=g, reason="gamma", temperature_K=target, run=res.run_id)
                    res.frames.append(fr)
                if g is not None and protocol.gamma_hi is not None and g > protocol.gamma_hi:
                    res.terminated, res.termination_reason = True, f"gamma {g:.3g} > gamma_hi"
                    break
            if res.terminated:
                break
        res.steps_done = step
        res.final_atoms = atoms.copy()
        res.final_atoms.calc = None
        return res
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "my_mlip_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_mlip_plugin

    from mlipflow.engines.labelers import ase_labeler
    from mlipflow.registry import LABELERS, MD_ENGINES

    # the two registry lines a user adds
    MD_ENGINES.register("rescale", "my_mlip_plugin:RescaleEngine")
    LABELERS.register("shifted-emt", ase_labeler("shifted-emt", "my_mlip_plugin:ShiftedEMT"))
    yield my_mlip_plugin
    MD_ENGINES.unregister("rescale")
    LABELERS.unregister("shifted-emt")
    sys.modules.pop("my_mlip_plugin", None)


def test_unknown_names_are_clear_errors(mlipflow_home):
    from mlipflow.errors import UserError
    from mlipflow.flows.active_learning import active_learning_flow

    with pytest.raises(UserError, match="unknown MD engine 'warp'"):
        active_learning_flow("x", labeler="emt", explore={"engine": "warp"})
    with pytest.raises(UserError, match="unknown labeler 'nonesuch'"):
        active_learning_flow("x", labeler="nonesuch")


@pytest.mark.slow
def test_tiny_campaign_with_a_registered_engine_and_labeler(plugin, store, tmp_path):
    from jobflow import run_locally

    from mlipflow.engines.repository import load_frames
    from mlipflow.flows.active_learning import active_learning_flow

    flow = active_learning_flow(
        "toy", labeler="shifted-emt",
        structures={"units": ["Cu", "Al"], "step": 0.5, "atoms": 16, "min_distance": 1.9, "scales": [0.95, 1.05],
                    "density": 4.0, "seed": 0},
        aimd={"temperature": 1500, "steps": 24, "timestep_fs": 2.0, "every": 4, "test_fraction": 0.2},
        fit={"preset": "tiny"},
        explore={"engine": "rescale", "t_melt": 2500, "melt_ps": 0.06, "cooling_rate_K_per_ps": 40000, "t_final": 300,
                 "timestep_fs": 2.0, "gamma_lo": 1.2, "gamma_hi": 1e4, "gamma_every": 5, "collect_every_kelvin": None,
                 "structures_per_iteration": 2},
        select={"max_structures": 6}, loop={"max_iterations": 1, "min_relative_improvement": -100.0},
        stability={"enabled": False}, plots=False)
    responses = run_locally(flow, store=store, create_folders=True, root_dir=tmp_path, ensure_success=True)
    outputs = [r.output for rs in responses.values() for r in rs.values() if r.output is not None]
    camp = next(o for o in outputs if getattr(o, "type", "") == "campaign")
    s = camp.summary
    assert s["iterations"] == 1 and s["stop_message"] == "iteration limit (1) reached"
    assert len(plugin.RUNS) == 2  # both explorations went through the registered engine
    runs = [o for o in outputs if getattr(o, "type", "") == "md_run"]
    assert len(runs) == 2 and all(r.engine == "rescale" for r in runs)
    frames = load_frames(criteria={})
    assert frames and {f.labeler for f in frames} == {"shifted-emt"}
    assert s["al_labels"] > 0 and s["final_potential"]["input_hash"] != s["first_potential"]["input_hash"]
