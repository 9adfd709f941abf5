"""Benchmark: MSD + D (with the block error) on a large synthetic trajectory against
pymatgen-analysis-diffusion's DiffusionAnalyzer and kinisi.

    .venv/bin/python benchmarks/bench_msd.py [--atoms 3000] [--frames 10000] [--mobile 1000]

Trajectory: Gaussian random walks (float32, unwrapped), ``--mobile`` "Na" atoms with D = 1 Å²/ps and
the rest "O" with D = 0.01 Å²/ps, frames every 0.1 ps. Three timings:

Times are **CPU seconds** of the process (``time.process_time``, all threads; every library runs
single-threaded here), so that other jobs on a shared machine do not distort the ratios; measured
rows are the minimum of ``--repeat`` runs.

* mlipflow: ``diffusion_coefficients`` (FFT MSD over all origins for Na + automatic window +
  5 block MSDs for σ), on the float32 array;
* pymatgen: ``DiffusionAnalyzer(structure, displacements, "Na", ..., smoothed="max")`` on the
  (sites, frames, 3) float64 displacement array (its fastest entry point: FFT MSD of all sites),
  and ``DiffusionAnalyzer.from_structures`` (the usual entry point from a list of Structures,
  including building the Structures) timed on ``--pmg-frames`` frames and scaled linearly;
* kinisi: ``DiffusionAnalyzer.from_ase`` + ``diffusion`` (MCMC) on ``--kinisi-frames`` frames
  with ``--kinisi-dt`` time intervals (its cost is O(n_dt × frames × atoms)), scaled linearly in
  frames to the full trajectory (an estimate; stated as such).

Prints a table and the D values (all in Å²/ps) so that "at the same D" can be checked.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import time

for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

import numpy as np  # noqa: E402


def make_walk(n_atoms: int, n_frames: int, n_mobile: int, dt: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    D = np.full(n_atoms, 0.01)
    D[:n_mobile] = 1.0
    x = np.empty((n_frames, n_atoms, 3), dtype=np.float32)
    x[0] = rng.uniform(0, 35, size=(n_atoms, 3))
    s = np.sqrt(2 * D * dt).astype(np.float32)[:, None]
    for t in range(1, n_frames):
        x[t] = x[t - 1] + s * rng.standard_normal((n_atoms, 3), dtype=np.float32)
    return x


def _clock() -> float:
    """CPU seconds of this process (all threads): robust to other jobs on a shared machine."""
    return time.process_time()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--atoms", type=int, default=3000)
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--mobile", type=int, default=1000)
    ap.add_argument("--dt", type=float, default=0.1, help="ps between frames")
    ap.add_argument("--pmg-frames", type=int, default=500)
    ap.add_argument("--kinisi-frames", type=int, default=2000)
    ap.add_argument("--kinisi-dt", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2, help="runs of the measured rows (the minimum is kept)")
    ap.add_argument("--skip-pymatgen", action="store_true")
    ap.add_argument("--skip-kinisi", action="store_true")
    ap.add_argument("--memmap-check", action="store_true",
                    help="also run from a memmap file and report the peak working memory (tracemalloc)")
    args = ap.parse_args()

    from mlipflow.analysis import dynamics as dyn

    t0 = _clock()
    x = make_walk(args.atoms, args.frames, args.mobile, args.dt)
    species = np.array(["Na"] * args.mobile + ["O"] * (args.atoms - args.mobile))
    print(f"trajectory {args.atoms} atoms x {args.frames} frames float32 = {x.nbytes / 1e6:.0f} MB "
          f"(generated in {_clock() - t0:.1f} s); {args.mobile} Na with D = 1 Å²/ps")
    rows = []

    dyn.compute_msd(x[:50, :4], None, args.dt)  # import/plan warm-up
    t_ours = t_msd_only = float("inf")
    for _ in range(args.repeat):
        t0 = _clock()
        res, msd = dyn.diffusion_coefficients(x, species, args.dt, select=["Na"])
        t_ours = min(t_ours, _clock() - t0)
        t0 = _clock()
        dyn.compute_msd(x, species, args.dt, select=["Na"])
        t_msd_only = min(t_msd_only, _clock() - t0)
    r = res["Na"]
    rows.append(("mlipflow (FFT, all origins, +5 blocks for σ)", t_ours, r.D_A2_ps, r.sigma_A2_ps, "measured"))
    rows.append(("mlipflow MSD only (no blocks)", t_msd_only, float("nan"), float("nan"), "measured"))
    print(f"mlipflow: D = {r.D_A2_ps:.4f} ± {r.sigma_A2_ps:.4f} Å²/ps, window {r.window_ps} ps, {t_ours:.1f} s; "
          f"peak RSS so far {peak_mb():.0f} MB")

    if args.memmap_check:
        import tempfile
        import tracemalloc

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "pos.f32")
            mm = np.memmap(path, dtype=np.float32, mode="w+", shape=x.shape)
            mm[:] = x
            mm.flush()
            del mm
            mm = np.memmap(path, dtype=np.float32, mode="r", shape=x.shape)
            tracemalloc.start()
            t0 = _clock()
            res_mm, _ = dyn.diffusion_coefficients(mm, species, args.dt, select=["Na"])
            t_mm = _clock() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert abs(res_mm["Na"].D_A2_ps - r.D_A2_ps) < 1e-9 * r.D_A2_ps
            print(f"memmap: same D, {t_mm:.1f} s, peak working memory (numpy allocations, tracemalloc) "
                  f"{peak / 1e6:.0f} MB for a {x.nbytes / 1e6:.0f} MB trajectory file")
            del mm

    if not args.skip_pymatgen:
        from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer
        from pymatgen.core import Lattice, Structure

        L = 35.0
        lat = Lattice.cubic(L)
        structure = Structure(lat, list(species), (x[0] % L) / L)
        t_pmg = float("inf")
        for _ in range(args.repeat):
            t0 = _clock()
            disp = np.ascontiguousarray(np.transpose(x - x[0], (1, 0, 2)), dtype=np.float64)
            da = DiffusionAnalyzer(structure, disp, "Na", 300, int(args.dt * 1000), 1, smoothed="max")
            t_pmg = min(t_pmg, _clock() - t0)
            if _ + 1 < args.repeat:
                del disp, da
                gc.collect()
        rows.append(("pymatgen DiffusionAnalyzer(displacements)", t_pmg, da.diffusivity * 1e4,
                     da.diffusivity_std_dev * 1e4, "measured"))
        print(f"pymatgen (array): D = {da.diffusivity * 1e4:.4f} Å²/ps, {t_pmg:.1f} s; peak RSS {peak_mb():.0f} MB")
        del disp, da
        gc.collect()
        nf = min(args.pmg_frames, args.frames)
        t0 = _clock()
        structs = [Structure(lat, list(species), (x[t] % L) / L) for t in range(nf)]
        DiffusionAnalyzer.from_structures(structs, "Na", 300, int(args.dt * 1000), 1, smoothed="max")
        t_small = _clock() - t0
        scale = args.frames / nf
        rows.append((f"pymatgen from_structures ({nf} frames x{scale:.0f})", t_small * scale, float("nan"),
                     float("nan"), "extrapolated"))
        print(f"pymatgen from_structures on {nf} frames: {t_small:.1f} s -> x{scale:.0f} = {t_small * scale:.0f} s")
        del structs
        gc.collect()

    if not args.skip_kinisi:
        try:
            import scipp as sc
            from ase import Atoms
            from kinisi.analyze import DiffusionAnalyzer as KDA
        except ImportError as exc:
            print(f"kinisi not available: {exc}")
        else:
            nf = min(args.kinisi_frames, args.frames)
            L = 35.0
            t0 = _clock()
            atoms = [Atoms(symbols=list(species), positions=x[t] % L, cell=[L, L, L], pbc=True) for t in range(nf)]
            t_end = min(r.window_ps[1], (nf - 1) * args.dt / 2)
            dts = np.unique(np.round(np.linspace(1, t_end / args.dt, args.kinisi_dt)).astype(int)) * args.dt
            k = KDA.from_ase(atoms, specie="Na", time_step=sc.scalar(args.dt, unit="ps"), step_skip=sc.scalar(1),
                             dt=sc.array(dims=["time interval"], values=dts, unit="ps"), progress=False)
            k.diffusion(start_dt=sc.scalar(max(r.window_ps[0], dts[1]), unit="ps"), progress=False, n_samples=500,
                        n_burn=200)
            t_k = _clock() - t0
            dk = float(np.mean(k.D.values)) * 1e4
            sk = float(np.std(k.D.values)) * 1e4
            scale = args.frames / nf
            rows.append((f"kinisi ({nf} frames, {len(dts)} dt, x{scale:.0f})", t_k * scale, dk, sk, "extrapolated"))
            print(f"kinisi on {nf} frames: D = {dk:.4f} ± {sk:.4f} Å²/ps, {t_k:.1f} s")

    print()
    print(f"{'method':<52} {'CPU (s)':>10} {'vs mlipflow':>12} {'D (Å²/ps)':>10} {'σ':>8}  note")
    for name, t, d, s, note in rows:
        print(f"{name:<52} {t:>10.1f} {t / t_ours:>11.1f}x {d:>10.4f} {s:>8.4f}  {note}")
    print(f"peak RSS {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
