"""Guttman rings and the full structure analysis on ~3000-atom cells.

Run: .venv/bin/python benchmarks/bench_rings.py [--max-ring 12]

Cells: alpha-quartz 7x8x6 (3024 atoms, rattled 0.1 Å; every Si-O-Si bond in 6-rings) and a
random NaPO3-like packing of 3000 atoms from mlipflow.generation (P-O network with a wide
ring distribution and many edges without rings, the slow case for the search), and olivine
LiFePO4 3x5x7 (2940 atoms) with P and Fe as ring formers (a dense network: 2-4 rings).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-ring", type=int, default=12)
    args = ap.parse_args()
    import pymatgen.core
    from pymatgen.core import Structure

    from mlipflow.analysis.io import Frame
    from mlipflow.analysis.rings import ring_statistics
    from mlipflow.analysis.structure import analyze_structure

    path = Path(pymatgen.core.__file__).parent.parent / "util" / "structures" / "SiO2.json"
    q = Structure.from_dict(json.loads(path.read_text())) * (7, 8, 6)
    q.perturb(0.1, min_distance=0.0)
    cells = {"alpha-quartz 3024": (Frame.from_atoms(q), {("Si", "O"): 2.0}, ["Si"])}
    from mlipflow.generation.amorphous import random_structure

    s, _ = random_structure({"Na2O": 300, "P2O5": 300}, density=2.5, min_distance=1.4, seed=1, use_mp=False)
    cells[f"random NaPO3 packing {len(s)}"] = (Frame.from_atoms(s), {("P", "O"): 2.0}, ["P"])
    from mlipflow.generation.olivine import olivine_unit_cell

    ol = olivine_unit_cell() * (3, 5, 7)
    cells[f"olivine LiFePO4 {len(ol)}, P+Fe network"] = (Frame.from_atoms(ol), {("P", "O"): 1.9, ("Fe", "O"): 2.6},
                                                         ["P", "Fe"])
    for name, (fr, cut, formers) in cells.items():
        t = time.perf_counter()
        st = ring_statistics(fr, cut, formers, max_size=args.max_ring)
        t_r = time.perf_counter() - t
        t = time.perf_counter()
        analyze_structure([fr], cutoffs={f"{a}-{b}": v for (a, b), v in cut.items()}, formers=formers,
                          max_ring=args.max_ring)
        t_all = time.perf_counter() - t
        print(f"{name}: rings {t_r:.2f} s ({st['n_edges']} edges, {st['n_rings']} rings, sizes {st['counts']}, "
              f"{st['n_edges_without_ring']} edges without ring <= {args.max_ring}); full analyze_structure "
              f"(g(r), CN, bridging, angles, rings, S(Q)) {t_all:.2f} s")


if __name__ == "__main__":
    main()
