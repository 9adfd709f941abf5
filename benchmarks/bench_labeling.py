"""Embedded labeling throughput: CHGNet labels per second on ~100-atom NaFePO4 cells, one thread.

    .venv/bin/python benchmarks/bench_labeling.py [--n 10] [--atoms 98] [--labeler chgnet]

Cache off (every structure computed); the model load is timed separately.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ[k] = "1"
os.environ.setdefault("MLIPFLOW_HOME", tempfile.mkdtemp(prefix="mlipflow-bench-"))


def cells(n: int, atoms: int, formula: str):
    try:
        from mlipflow.generation import random_structure

        return [random_structure(formula, atoms=atoms, seed=i, use_mp=False)[0] for i in range(n)]
    except Exception:  # noqa: BLE001 - fall back to rattled olivine supercells
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "labeling"))
        from labeling_helpers import olivine

        out = []
        for _ in range(n):
            s = olivine("Na", magmom=None) * (1, 2, 2)
            s.perturb(0.05)
            out.append(s)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--atoms", type=int, default=98)
    ap.add_argument("--labeler", default="chgnet")
    ap.add_argument("--formula", default="NaFePO4")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from mlipflow.engines.labelers import get_labeler

    structs = cells(args.n, args.atoms, args.formula)
    lab = get_labeler(args.labeler, use_cache=False)
    t0 = time.perf_counter()
    _ = lab.calculator if hasattr(lab, "calculator") else None
    t_load = time.perf_counter() - t0
    lab.label(structs[:1])  # warm-up (graph converter, first forward)
    t0 = time.perf_counter()
    frames = lab.label(structs)
    dt = time.perf_counter() - t0
    natoms = sum(len(s) for s in structs) / len(structs)
    ok = sum(f.status.value == "ok" for f in frames)
    print(f"labeler={args.labeler} cells={len(structs)} atoms/cell={natoms:.0f} threads=1")
    print(f"model load: {t_load:.2f} s")
    print(f"labeled {len(frames)} ({ok} ok) in {dt:.2f} s: {len(frames) / dt:.2f} labels/s, "
          f"{dt / len(frames) * 1000:.0f} ms/label, {len(frames) * natoms / dt:.0f} atoms/s")


if __name__ == "__main__":
    main()
