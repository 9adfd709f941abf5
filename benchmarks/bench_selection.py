"""MaxVol selection time for 10 000 candidate frames (small Cu/Al frames).

    .venv/bin/python benchmarks/bench_selection.py [--n 10000] [--atoms 8] [--potential pot.yaml --asi pot.asi]

Candidates are rattled/strained 8-atom Cu/Al cells (γ ranges from interpolative to strongly
extrapolative). Reports the per-candidate γ pass (B-projections + extrapolation grade) and the
whole select_maxvol call (which computes the projections again inside pyace's
select_structures_maxvol).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_k, "1")

import logging  # noqa: E402

import numpy as np  # noqa: E402

logging.getLogger("mlipflow").setLevel(logging.WARNING)

sys.path.insert(0, str(Path(__file__).resolve().parent))


def candidates(n: int, natoms: int, seed: int = 0):
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=3.61, cubic=True) * ((2, 1, 1) if natoms == 8 else (1, 1, 1))
    out = []
    for i in range(n):
        at = base.copy()
        syms = at.get_chemical_symbols()
        for j in rng.choice(len(at), size=int(rng.integers(0, len(at) // 2 + 1)), replace=False):
            syms[j] = "Al"
        at.set_chemical_symbols(syms)
        at.set_cell(at.cell * (1 + rng.uniform(-0.06, 0.06)), scale_atoms=True)
        at.rattle(rng.uniform(0.02, 0.3), seed=int(rng.integers(1 << 30)))
        at.info.update(run=f"r{i % 50}", step=i)
        out.append(at)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--atoms", type=int, default=8, choices=(4, 8))
    ap.add_argument("--max-structures", type=int, default=500)
    ap.add_argument("--potential")
    ap.add_argument("--asi")
    args = ap.parse_args()
    from bench_ace_md import tiny_potential

    from mlipflow.engines.selection import candidate_gammas, select_maxvol

    yaml, asi = (args.potential, args.asi) if args.potential else tiny_potential()
    t = time.perf_counter()
    cands = candidates(args.n, args.atoms)
    print(f"{len(cands)} candidates of {args.atoms} atoms built in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    g = candidate_gammas(cands, yaml, asi)
    t_gamma = time.perf_counter() - t
    t = time.perf_counter()
    res = select_maxvol(cands, yaml, asi, max_structures=args.max_structures)
    t_sel = time.perf_counter() - t
    print(f"γ pass (projections + grade):  {t_gamma:7.1f} s  ({t_gamma / len(cands) * 1e3:.2f} ms/frame)")
    print(f"select_maxvol (γ + MaxVol):    {t_sel:7.1f} s  ({t_sel / len(cands) * 1e3:.2f} ms/frame)")
    print(f"selected {res.n_selected} (D-optimal set {len(res.maxvol_indices)}), "
          f"γ median {np.median(g):.2f}, max {g.max():.1f}, frames with γ>1.01: {(g > 1.01).sum()}")


if __name__ == "__main__":
    main()
