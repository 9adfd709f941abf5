"""Frame-store throughput: write and read N labeled frames in the embedded montydb store.

    .venv/bin/python benchmarks/bench_store.py [--n 10000] [--atoms 32] [--batch 500]

Writes go through ``save_frames`` (existence check + insert_many per batch), reads through
``load_frames`` by id (batches) and one full query by ``trajectory_id``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np


def make_frames(n: int, atoms: int):
    from pymatgen.core import Lattice, Structure

    from mlipflow.engines.frames import make_frame
    from mlipflow.schemas import content_hash

    rng = np.random.default_rng(0)
    base = Structure(Lattice.cubic(10.0), ["Na", "Fe", "P", "O"] * (atoms // 4), rng.random((atoms // 4 * 4, 3)))
    frames = []
    for i in range(n):
        s = Structure(base.lattice, base.species, base.cart_coords + rng.normal(0, 0.01, (len(base), 3)),
                      coords_are_cartesian=True)
        frames.append(make_frame(
            s, frame_id=content_hash("bench", i), labeler="bench", energy=float(rng.normal(-300, 1)),
            forces=rng.normal(0, 1, (len(s), 3)), stress_gpa=rng.normal(0, 1, (3, 3)), magmoms=rng.normal(0, 1, len(s)),
            source="bench", trajectory_id=f"traj-{i // 100}", step=i % 100,
        ))
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--atoms", type=int, default=32)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="mlipflow-bench-store-")
    os.environ["MLIPFLOW_HOME"] = home
    from mlipflow.engines.repository import frames_store, load_frames, save_frames

    t0 = time.perf_counter()
    frames = make_frames(args.n, args.atoms)
    print(f"built {len(frames)} frames of {args.atoms} atoms in {time.perf_counter() - t0:.1f} s")
    store = frames_store()
    store.connect()
    try:
        t0 = time.perf_counter()
        for i in range(0, len(frames), args.batch):
            save_frames(frames[i:i + args.batch], store=store)
        t_write = time.perf_counter() - t0
        ids = [f.frame_id for f in frames]
        t0 = time.perf_counter()
        n_read = 0
        for i in range(0, len(ids), args.batch):
            n_read += len(load_frames(ids[i:i + args.batch], store=store))
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        one_traj = load_frames(criteria={"trajectory_id": "traj-7"}, store=store)
        t_query = time.perf_counter() - t0
        t0 = time.perf_counter()
        save_frames(frames[: args.batch], store=store)  # all cached: existence check only
        t_recheck = time.perf_counter() - t0
    finally:
        store.close()
    size = sum(p.stat().st_size for p in __import__("pathlib").Path(home).rglob("*") if p.is_file())
    print(f"write: {args.n} frames in {t_write:.1f} s = {args.n / t_write:.0f} frames/s (batches of {args.batch})")
    print(f"read by id: {n_read} frames in {t_read:.1f} s = {n_read / t_read:.0f} frames/s")
    print(f"query one trajectory_id ({len(one_traj)} frames) over {args.n}: {t_query:.2f} s")
    print(f"cache check of {args.batch} stored frames: {t_recheck:.2f} s")
    print(f"store size on disk: {size / 1e6:.0f} MB ({size / args.n / 1e3:.1f} kB/frame)")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
