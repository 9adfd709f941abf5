"""Benchmark: random packing of 3003 atoms of NaFePO4 at 3.38 g/cm³, 1.7 Å minimum distance.

Target: under 2 s median. Also times the full Na2O-FeO-P2O5 grid (66 compositions x 3 scales).
Run: .venv/bin/python benchmarks/bench_packing.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from mlipflow.generation import amorphous_structures, random_pack  # noqa: E402
from mlipflow.generation.packing import cell_for_density  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    n_fu = 429
    species = ["Na"] * n_fu + ["Fe"] * n_fu + ["P"] * n_fu + ["O"] * (4 * n_fu)
    mass = n_fu * (22.98977 + 55.845 + 30.973762 + 4 * 15.9994)
    lat = cell_for_density(mass, 3.38)
    times = []
    for seed in range(args.repeats):
        t0 = time.perf_counter()
        pos = random_pack(species, lat, 1.7, rng=seed)
        times.append(time.perf_counter() - t0)
        L = lat[0, 0]
        tree = cKDTree(np.mod(pos, L), boxsize=L * (1 + 1e-12))
        assert not tree.query_pairs(1.7 * (1 - 1e-9)), "minimum distance violated"
    phi = len(species) * np.pi / 6 * 1.7**3 / L**3
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}")
    print(f"packing {len(species)} atoms NaFePO4, 3.38 g/cm3, box {L:.3f} Å, d_min 1.7 Å (hard-sphere phi {phi:.3f})")
    print(f"runs (s): {', '.join(f'{t:.3f}' for t in times)}")
    print(f"median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
          f"(target < 2 s): {'PASS' if statistics.median(times) < 2 else 'FAIL'}")
    t0 = time.perf_counter()
    items = amorphous_structures("Na2O,FeO,P2O5", step=0.1, atoms=100, scales=(0.8, 1.0, 1.2), seed=0)
    print(f"full Na2O-FeO-P2O5 grid: {len(items)} structures in {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
