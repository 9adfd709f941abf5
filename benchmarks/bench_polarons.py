"""Polaron analysis of a 2x4x6 olivine LiFePO4 supercell (1344 atoms at x = 1): time and peak memory
for two trajectory lengths (memory must not grow with the number of frames).

Run: .venv/bin/python benchmarks/bench_polarons.py [--frames 4000 8000] [--workdir DIR] [--keep]

A synthetic LAMMPS dump (``id type x y z``, written by ``mlipflow.analysis.io.write_lammps_dump``)
is generated for the longest length: every Fe switches between Fe2+ and Fe3+ octahedra (O pulled
in by 2.08/2.14) as a symmetric Markov process at 0.5 / ps, all atoms get 0.03 Å Gaussian noise,
frames every 0.01 ps (tests/analysis_polarons/synth.py). Shorter lengths are the first frames of that
file. For each length a fresh child process pinned to one core (``sched_setaffinity``, one BLAS/OpenMP
thread) imports mlipflow, runs :func:`mlipflow.analysis.polarons.analyze_polarons` on the file and
reports wall and CPU seconds and its peak RSS (``ru_maxrss``) against the baseline after imports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, resource, sys, time
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
import numpy as np, pandas, sklearn.mixture, scipy.ndimage  # noqa: F401 - imported before the baseline
from mlipflow.analysis.polarons import analyze_polarons
path = sys.argv[1]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r0 = resource.getrusage(resource.RUSAGE_SELF)
t = time.perf_counter()
res = analyze_polarons(path, 0.01, temperature_K=600.0, types="1=Li,2=Fe,3=P,4=O").results
wall = time.perf_counter() - t
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"frames": res["n_frames"], "wall_s": wall, "cpu_s": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
                  "baseline_rss_mb": base / 1024, "peak_rss_mb": r1.ru_maxrss / 1024, "growth_mb": (r1.ru_maxrss - base) / 1024,
                  "n_flips": res["n_flips"], "flip_rate": res["flip_rate_per_fe_per_ps"], "bayes_error": res["gmm"]["bayes_error"],
                  "fe3_fraction": res["fe3_fraction"], "pr": res["pairs"]["preference_ratio"]}))
"""


def write_dump(path: Path, n_frames: int, seed: int = 0) -> float:
    sys.path.insert(0, str(ROOT / "tests" / "analysis_polarons"))
    from synth import TYPES, Olivine, markov_states

    from mlipflow.analysis.io import write_lammps_dump

    ol = Olivine((2, 4, 6), x=1.0, seed=seed)
    assert len(ol.pos) == 1344
    states = markov_states(n_frames, ol.n_fe, 0.01, 0.5, np.random.default_rng(seed))
    t = time.perf_counter()
    write_lammps_dump(path, ol.frames(states, noise=0.03, seed=seed + 1), columns=("id", "type", "x", "y", "z"),
                      type_of=TYPES)
    return time.perf_counter() - t


def head_frames(src: Path, dst: Path, n_frames: int, n_atoms: int = 1344) -> None:
    n_lines = n_frames * (9 + n_atoms)
    with open(src) as fi, open(dst, "w") as fo:
        for k, line in enumerate(fi):
            if k >= n_lines:
                break
            fo.write(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[4000, 8000])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the generated dumps")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mlipflow_bench_polarons_"))
    work.mkdir(parents=True, exist_ok=True)
    lengths = sorted(args.frames)
    big = work / f"olivine_2x4x6_{lengths[-1]}.dump"
    if not big.exists():
        print(f"writing {big} ...", flush=True)
        print(f"  {write_dump(big, lengths[-1]):.0f} s", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    rows = []
    for n in lengths:
        path = big if n == lengths[-1] else work / f"olivine_2x4x6_{n}.dump"
        if not path.exists():
            head_frames(big, path, n)
        load = os.getloadavg()[0]
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env, cwd=ROOT)
        if out.returncode:
            sys.exit(out.stderr)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row |= {"file_mb": path.stat().st_size / 1e6, "load_avg_1min_before": load, "cpus": os.cpu_count()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| frames | file (MB) | wall (s) | CPU (s) | peak RSS (MB) | growth over imports (MB) | load avg |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['frames']} | {r['file_mb']:.0f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | "
              f"{r['growth_mb']:.0f} | {r['load_avg_1min_before']:.1f} |")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
