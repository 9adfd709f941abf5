"""Embedded ACE MD: steps per second of run_ase_md vs the raw calculator evaluation time.

    .venv/bin/python benchmarks/bench_ace_md.py [--potential pot.yaml --asi pot.asi] [--steps 200]

Without --potential a tiny Cu/Al ACE (EMT labels, ~15 functions/element) is fitted once with
the real pacemaker and cached in /tmp/mlipflow-bench-ace. The overhead of the MD loop is
(time per MD step - time per raw energy+forces evaluation) / raw time; γ is tracked every
step (gamma_every=1) and every 10 steps. EMT is timed the same way for comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_k, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import logging  # noqa: E402

import numpy as np  # noqa: E402

logging.getLogger("mlipflow").setLevel(logging.WARNING)


def tiny_potential(workdir: Path = Path("/tmp/mlipflow-bench-ace")):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "ace"))
    from conftest import emt_structures, write_pickle  # type: ignore

    from mlipflow.engines.pacemaker import AceFitSettings, fit_ace

    workdir.mkdir(parents=True, exist_ok=True)
    items = emt_structures(36)
    train = write_pickle(items[:30], workdir / "train.pkl.gz")
    test = write_pickle(items[30:], workdir / "test.pkl.gz")
    r = fit_ace(train, test, AceFitSettings.tiny(), workdir / "fit", progress=True)
    return r.potential_yaml, r.active_set


def raw_eval_time(calc, atoms, n: int) -> float:
    a = atoms.copy()
    a.calc = calc
    rng = np.random.default_rng(0)
    base = a.get_positions()
    a.get_forces()
    t = time.perf_counter()
    for _ in range(n):
        a.set_positions(base + rng.normal(0, 0.01, base.shape))
        a.get_potential_energy()
        a.get_forces()
    return (time.perf_counter() - t) / n


def md_step_time(calc, atoms, steps: int, gamma_every: int) -> float:
    from mlipflow.engines.ase_md import run_ase_md
    from mlipflow.schemas import MDProtocol, MDStage

    p = MDProtocol(stages=[MDStage(ensemble="nvt", steps=steps, t_start=800, t_end=600)], gamma_every=gamma_every,
                   thermo_every=max(steps // 10, 1), gamma_lo=1e9, gamma_hi=None, collect_every_kelvin=100)
    r = run_ase_md(atoms, calc, p, progress=False)
    return r.wall_time_s / r.steps_done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--potential")
    ap.add_argument("--asi")
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from pyace import PyACECalculator

    yaml, asi = (args.potential, args.asi) if args.potential else tiny_potential()
    print(f"potential: {yaml}\nactive set: {asi}")
    print(f"{'atoms':>6} {'calculator':<22} {'raw eval ms':>11} {'MD step ms':>10} {'steps/s':>8} {'overhead':>8}")
    for reps in ((2, 2, 2), (3, 3, 3), (4, 4, 4)):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * reps
        syms = atoms.get_chemical_symbols()
        for j in range(0, len(syms), 4):
            syms[j] = "Al"
        atoms.set_chemical_symbols(syms)
        ace = PyACECalculator(yaml)
        ace.set_active_set(asi)
        cases = [("ACE+γ (γ every 1)", ace, 1), ("ACE+γ (γ every 10)", ace, 10), ("EMT", EMT(), 10)]
        for name, calc, ge in cases:
            raw = raw_eval_time(calc, atoms, max(args.steps // 3, 20))
            md = md_step_time(calc, atoms, args.steps, ge)
            print(f"{len(atoms):>6} {name:<22} {raw * 1e3:>11.3f} {md * 1e3:>10.3f} {1 / md:>8.0f} "
                  f"{(md - raw) / raw * 100:>7.0f}%")


if __name__ == "__main__":
    main()
