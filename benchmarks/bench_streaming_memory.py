"""Peak memory when streaming a LAMMPS dump: independent of the file length, and below a cap
smaller than the file.

Run: .venv/bin/python benchmarks/bench_streaming_memory.py [--atoms 3000] [--sizes-mb 50 500]
     [--cap-mb 200] [--workdir /tmp/mlipflow_bench]

For each size a dump (id type xu yu zu ix iy iz, 3000 atoms per frame) is generated, then a
fresh child process (1) imports mlipflow, (2) limits its own address space to its current
size + ``--cap-mb`` (``resource.setrlimit(RLIMIT_AS)``), i.e. far less than the 500 MB file,
(3) streams every frame through :func:`mlipflow.analysis.io.iter_frames` + :func:`unwrap`
and accumulates a per-species mean-squared displacement from frame 0 (so each frame is
really parsed and used), and (4) reports the growth of its peak RSS (``ru_maxrss``) over
the baseline after imports. The same child also tries :func:`read_frames` (load everything)
under the same cap when ``--try-load-all`` is given, which must fail for the big file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, os, resource, sys, time
import numpy as np
import pandas  # noqa: F401 - the dump parser's C reader, imported before the baseline
from mlipflow.analysis.io import iter_frames, read_frames, unwrap
path, cap_mb, load_all, trace = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"
def vm_kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
vm = vm_kb("VmSize:")
limit = int((vm + cap_mb * 1024) * 1024)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import tracemalloc
if trace:
    tracemalloc.start()
t = time.perf_counter()
n = 0
ref = None
msd = 0.0
for fr in unwrap(iter_frames(path, types={1: "Na", 2: "O"})):
    if ref is None:
        ref = fr.positions.copy()
    msd = float(((fr.positions - ref) ** 2).sum(axis=1).mean())
    n += 1
dt = time.perf_counter() - t
py_peak = tracemalloc.get_traced_memory()[1] if trace else float("nan")
tracemalloc.stop()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {"frames": n, "seconds": dt, "baseline_rss_mb": base_rss / 1024, "peak_rss_mb": peak / 1024,
       "growth_mb": (peak - base_rss) / 1024, "python_peak_alloc_mb": py_peak / 1e6, "cap_mb": cap_mb, "msd_last": msd}
if load_all:
    try:
        frames = read_frames(path)
        out["load_all"] = f"loaded {len(frames)} frames"
    except MemoryError:
        out["load_all"] = "MemoryError (as expected: the file does not fit under the cap)"
print(json.dumps(out))
"""


def write_dump(path: Path, n_atoms: int, target_mb: float, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    L = 34.0
    pos = rng.random((n_atoms, 3)) * L
    img = np.zeros((n_atoms, 3), dtype=np.int64)
    ids = np.arange(1, n_atoms + 1)
    types = np.where(ids % 3 == 0, 1, 2)
    step = 0
    with open(path, "w") as fh:
        while fh.tell() < target_mb * 1e6:
            pos += rng.normal(0, 0.1, pos.shape)
            shift = np.floor(pos / L).astype(np.int64)
            img += shift
            pos -= shift * L
            fh.write(f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{n_atoms}\nITEM: BOX BOUNDS pp pp pp\n"
                     f"0 {L}\n0 {L}\n0 {L}\nITEM: ATOMS id type x y z ix iy iz\n")
            data = np.column_stack([ids, types, pos, img])
            np.savetxt(fh, data, fmt="%d %d %.5f %.5f %.5f %d %d %d")
            step += 100
    return step // 100


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--atoms", type=int, default=3000)
    ap.add_argument("--sizes-mb", type=float, nargs="+", default=[50, 500])
    ap.add_argument("--cap-mb", type=float, default=200)
    ap.add_argument("--workdir", default="/tmp/mlipflow_bench")
    ap.add_argument("--try-load-all", action="store_true")
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slow)")
    ap.add_argument("--keep", action="store_true", help="keep the generated dumps")
    args = ap.parse_args()
    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rows = []
    for mb in args.sizes_mb:
        path = wd / f"stream_{int(mb)}mb.dump"
        t = time.perf_counter()
        nframes = write_dump(path, args.atoms, mb)
        size = path.stat().st_size / 1e6
        print(f"wrote {path} ({size:.0f} MB, {nframes} frames) in {time.perf_counter() - t:.0f} s", flush=True)
        res = subprocess.run([sys.executable, "-c", CHILD, str(path), str(args.cap_mb),
                              "1" if args.try_load_all else "0", "1" if args.tracemalloc else "0"], capture_output=True, text=True, env=env)
        if res.returncode != 0:
            print(res.stderr[-2000:])
            raise SystemExit(1)
        out = json.loads(res.stdout.strip().splitlines()[-1])
        out["file_mb"] = size
        rows.append(out)
        print(json.dumps(out), flush=True)
        if not args.keep:
            path.unlink()
    print("\nfile MB | frames | peak RSS MB (growth over baseline) | tracemalloc peak MB | cap above baseline MB | "
          "MB/s parsed")
    for r in rows:
        print(f"{r['file_mb']:7.0f} | {r['frames']:6d} | {r['peak_rss_mb']:6.1f} ({r['growth_mb']:+.1f}) | "
              f"{r['python_peak_alloc_mb']:6.2f} | {r['cap_mb']:6.0f} | "
              f"{r['file_mb'] / r['seconds']:6.1f}" + (f" | load all: {r['load_all']}" if "load_all" in r else ""))


if __name__ == "__main__":
    main()
