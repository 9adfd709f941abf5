"""g(r) of 3003 atoms: mlipflow.analysis.structure.rdf against freud (freud-analysis).

Run: .venv/bin/python benchmarks/bench_rdf.py [--repeat 7] [--rmax 10] [--threads 1]

System: 3003 atoms (Na/Fe/P/O in a 1:1:2:... glass-like ratio, random positions with a
minimum separation, number density 0.075 Å⁻³, cubic box ~34 Å). Timings are the best of
``--repeat`` runs of one frame (neighbour search + histogram + normalization).
Cases: total g(r) (one freud call) and all 10 partials (freud: one call per species pair;
mlipflow: one pass). freud is pinned to ``--threads`` threads (default 1, like ours).
Also checks that both give the same g(r).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def make_system(n=3003, rho=0.075, seed=0, dmin=1.2):
    rng = np.random.default_rng(seed)
    L = (n / rho) ** (1 / 3)
    from scipy.spatial import cKDTree

    pos = rng.random((n, 3)) * L
    for _ in range(50):  # push apart overlapping points (cheap relaxation, not physics)
        tree = cKDTree(pos, boxsize=L)
        pairs = tree.query_pairs(dmin, output_type="ndarray")
        if len(pairs) == 0:
            break
        pos[pairs[:, 1]] = rng.random((len(pairs), 3)) * L
    pos = np.mod(pos, L)
    counts = {"Na": 546, "Fe": 364, "P": 546, "O": 1547}  # 3003 atoms
    sym = np.concatenate([[s] * c for s, c in counts.items()])
    return pos, L, sym


def best(fn, repeat):
    ts = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return min(ts), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--rmax", type=float, default=10.0)
    ap.add_argument("--dr", type=float, default=0.02)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import freud

    from mlipflow.analysis.io import Frame
    from mlipflow.analysis.structure import rdf

    freud.parallel.set_num_threads(args.threads)
    pos, L, sym = make_system()
    n = len(pos)
    bins = int(round(args.rmax / args.dr))
    frame = Frame(positions=pos, cell=np.eye(3) * L, symbols=sym)
    box = freud.box.Box.cube(L)
    fpos = (pos - L / 2).astype(np.float32)  # freud boxes are centred at the origin

    t_ours, g = best(lambda: rdf(frame, rmax=args.rmax, dr=args.dr), args.repeat)

    def freud_total():
        r = freud.density.RDF(bins=bins, r_max=args.rmax)
        r.compute(system=(box, fpos), reset=True)
        return r

    t_freud, fr = best(freud_total, args.repeat)
    species = list(dict.fromkeys(sym.tolist()))

    def freud_partials():
        out = {}
        for i, a in enumerate(species):
            for b in species[i:]:
                pa, pb = fpos[sym == a], fpos[sym == b]
                r = freud.density.RDF(bins=bins, r_max=args.rmax)
                if a == b:
                    r.compute(system=(box, pb), reset=True)
                else:
                    r.compute(system=(box, pb), query_points=pa, reset=True)
                out[f"{a}-{b}"] = np.array(r.rdf)
        return out

    t_freud_p, fp = best(freud_partials, args.repeat)
    # agreement (freud normalizes like-pairs by N^2 / V; ours by N (N - 1) / V)
    d_tot = np.max(np.abs(g.g_total * (n - 1) / n - fr.rdf))
    d_part = max(np.max(np.abs(g.partials[k] * ((1 - 1 / (sym == k.split("-")[0]).sum())
                                                  if k.split("-")[0] == k.split("-")[1] else 1.0) - v))
                 for k, v in fp.items())
    print(f"atoms {n}, box {L:.2f} Å, rmax {args.rmax} Å, {bins} bins, freud {freud.__version__} "
          f"on {args.threads} thread(s), best of {args.repeat}")
    print(f"total g(r):     mlipflow {t_ours * 1e3:7.1f} ms (all partials included)   freud {t_freud * 1e3:7.1f} ms"
          f"   ratio mlipflow/freud {t_ours / t_freud:.2f}")
    print(f"10 partials:    mlipflow {t_ours * 1e3:7.1f} ms   freud {t_freud_p * 1e3:7.1f} ms (10 calls)"
          f"   ratio {t_ours / t_freud_p:.2f}")
    print(f"max |Δg| total {d_tot:.2e}, partials {d_part:.2e} (after the N/(N-1) normalization factor)")


if __name__ == "__main__":
    main()
