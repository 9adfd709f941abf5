"""Guttman (shortest-path) rings of a former-O-former network.

Network: nodes are the chosen *former* atoms (e.g. P, Si, Fe); an edge joins two formers that
share an oxygen (both former-O distances below their cutoffs). An O bonded to k formers gives
k(k-1)/2 edges; two formers sharing two O (edge-sharing polyhedra) are joined by two edges.

Guttman's criterion (L. Guttman, J. Non-Cryst. Solids 116 (1990) 145): for every edge
u-(O)-v, the ring is that edge plus the shortest path from u to v that does not use that
edge (breadth-first search up to ``max_size - 1`` edges). Rings found from several edges
are counted once (identified by their set of edges). When several shortest paths exist,
one is taken.

**Ring size** is the number of former atoms in the ring, which equals the number of
bridging oxygens in it (each edge carries one O); the ring has 2n atoms in total. So a
"6-ring" has 6 formers and 6 O (the 6-rings of alpha-quartz).

Periodic images: the search runs on the periodic (lifted) graph, each edge carrying the cell
shift of its far end, and a ring must return to the same image of its first atom; loops
that wind around the periodic cell (possible in small cells) are therefore never counted.

Ring centres (mean of the unwrapped former and O positions, folded back into the cell) are
returned by :func:`find_rings` / :func:`ring_centres` for ring-centre correlations.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlipflow.analysis.io import Frame
from mlipflow.analysis.structure import _symbols, as_frames, bonded_pairs
from mlipflow.errors import UserError

__all__ = ["Ring", "former_network", "find_rings", "ring_statistics", "ring_centres", "rings_from_graph"]

SIZE_DEFINITION = "number of former atoms in the ring (= number of bridging O; 2n atoms in all)"


@dataclass
class Ring:
    formers: list[int]  # atom indices in ring order
    oxygens: list[int]  # bridging O indices in ring order (O k joins formers k and k+1)
    centre: np.ndarray  # Å, folded into the cell

    @property
    def size(self) -> int:
        return len(self.formers)


def former_network(frame: Frame, cutoffs: Mapping[tuple[str, str], float], formers: Sequence[str],
                   anion: str = "O"):
    """Edges of the former network: arrays ``u, v, o, vec, uo`` (vec = r_v - r_u through O o; uo = r_o - r_u)."""
    sym = _symbols(frame)
    cut = {}
    for s in formers:
        rc = cutoffs.get((s, anion), cutoffs.get((anion, s)))
        if not rc:
            raise UserError(f"no {s}-{anion} cutoff for the ring analysis", f"give one, e.g. --cutoff {s}-{anion}=2.2")
        cut[(s, anion)] = rc
    i, j, d, vec, _ = bonded_pairs(frame, cut)
    m = (sym[i] == anion) & np.isin(sym[j], list(formers))
    oi, fj, ov = i[m], j[m], vec[m]  # ov: O -> former
    order = np.argsort(oi, kind="stable")
    oi, fj, ov = oi[order], fj[order], ov[order]
    uniq, start, cnt = np.unique(oi, return_index=True, return_counts=True)
    us, vs, os_, vecs, uos = [], [], [], [], []
    for mcount in np.unique(cnt):
        if mcount < 2:
            continue
        sel = start[cnt == mcount]
        idx = sel[:, None] + np.arange(mcount)[None, :]
        p, q = np.triu_indices(mcount, 1)
        us.append(fj[idx][:, p].ravel())
        vs.append(fj[idx][:, q].ravel())
        os_.append(np.repeat(oi[sel], len(p)))
        vecs.append((ov[idx][:, q] - ov[idx][:, p]).reshape(-1, 3))
        uos.append((-ov[idx][:, p]).reshape(-1, 3))
    if not us:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e, np.zeros((0, 3)), np.zeros((0, 3))
    return (np.concatenate(us), np.concatenate(vs), np.concatenate(os_), np.concatenate(vecs), np.concatenate(uos))


def rings_from_graph(n_nodes: int, u: np.ndarray, v: np.ndarray, shifts: np.ndarray | None = None,
                     max_size: int = 12) -> tuple[list[tuple[list[int], list[int], list[bool]]], int]:
    """Guttman rings on a graph given as edge arrays (multi-edges allowed).

    ``shifts`` (E, 3) integer cell shifts: edge e joins u[e] (in cell 0) to the image of v[e] in
    cell ``shifts[e]``. With shifts the search runs on the periodic (lifted) graph, so a closed
    path must return to the *same image* of its start: loops that wind around the periodic
    cell are never rings. ``None``: a plain (non-periodic) graph.

    Returns (rings, n_edges_without_ring); each ring is (node list, edge-id list, forward flags)
    in ring order: edge k joins node k and node k+1, traversed u->v when its flag is True.
    """
    E = len(u)
    sh = np.zeros((E, 3), dtype=np.int64) if shifts is None else np.asarray(shifts, dtype=np.int64)
    # adjacency: (neighbour, edge, image shift of the step, traversed u->v?)
    adj: list[list[tuple[int, int, tuple[int, int, int], bool]]] = [[] for _ in range(n_nodes)]
    for e in range(E):
        a, b = int(u[e]), int(v[e])
        t = tuple(int(x) for x in sh[e])
        adj[a].append((b, e, t, True))
        adj[b].append((a, e, (-t[0], -t[1], -t[2]), False))
    seen: set[frozenset] = set()
    rings = []
    n_none = 0
    zero = (0, 0, 0)
    for e0 in range(E):
        src, dst = int(u[e0]), int(v[e0])
        start = (dst, tuple(int(x) for x in sh[e0]))
        target = (src, zero)
        if start == target:
            continue
        excluded = {start, target}  # the lifted instance of e0 that the ring closes with
        # BFS from dst (image shifts[e0]) back to src (image 0) without that instance of e0
        parent = {start: (None, -1, zero, True)}
        dq = deque([(start, 0)])
        found = False
        while dq and not found:
            state, depth = dq.popleft()
            if depth >= max_size - 1:
                continue
            node, img = state
            for nb, e, t, fwd in adj[node]:
                ns = (nb, (img[0] + t[0], img[1] + t[1], img[2] + t[2]))
                if e == e0 and {state, ns} == excluded:
                    continue
                if ns in parent:
                    continue
                parent[ns] = (state, e, img if fwd else ns[1], fwd)  # image of the edge's u end
                if ns == target:
                    found = True
                    break
                dq.append((ns, depth + 1))
        if not found:
            n_none += 1
            continue
        back_nodes, back_edges, back_fwd, lifted = [], [], [], [(e0, zero)]
        st = target
        while st != start:
            pst, e, img_u, fwd = parent[st]
            back_edges.append(e)
            back_fwd.append(fwd)
            lifted.append((e, img_u))
            st = pst
            back_nodes.append(st[0])
        # ring order: src -e0-> dst -> ... -> src
        path_nodes = [src] + back_nodes[::-1]
        path_edges = [e0] + back_edges[::-1]
        # the same ring found from another edge differs by a lattice translation: canonical form
        ref = min(lifted)[1]
        key = frozenset((e, (i[0] - ref[0], i[1] - ref[1], i[2] - ref[2])) for e, i in lifted)
        if key in seen:
            continue
        seen.add(key)
        rings.append((path_nodes, path_edges, [True] + back_fwd[::-1]))
    return rings, n_none


def find_rings(frame: Frame, cutoffs: Mapping[tuple[str, str], float], formers: Sequence[str],
               max_size: int = 12, anion: str = "O") -> tuple[list[Ring], dict[str, int]]:
    """Guttman rings of one frame, with their centres. Returns (rings, counters)."""
    u, v, o, vec, uo = former_network(frame, cutoffs, formers, anion=anion)
    n = frame.n_atoms
    pos = np.asarray(frame.positions, dtype=float)
    inv = np.linalg.inv(frame.cell)
    shifts = np.round((pos[u] + vec - pos[v]) @ inv).astype(np.int64) if len(u) else np.zeros((0, 3), int)
    raw, n_none = rings_from_graph(n, u, v, shifts, max_size=max_size)
    rings = []
    for nodes, edges, fwd_flags in raw:
        # unwrapped walk: node k -> node k+1 through edge edges[k]
        cur = pos[nodes[0]].copy()
        pts = []
        oxy = []
        for k, e in enumerate(edges):
            step = vec[e] if fwd_flags[k] else -vec[e]
            d_ao = uo[e] if fwd_flags[k] else uo[e] - vec[e]  # former nodes[k] -> the edge O
            pts.append(cur.copy())
            pts.append(cur + d_ao)
            oxy.append(int(o[e]))
            cur = cur + step
        centre = np.mean(pts, axis=0)
        fc = (centre - frame.origin) @ inv
        fc -= np.floor(fc)
        rings.append(Ring(formers=[int(x) for x in nodes], oxygens=oxy, centre=frame.origin + fc @ frame.cell))
    counters = {"n_edges": int(len(u)), "n_edges_without_ring": int(n_none)}
    return rings, counters


def ring_centres(frame: Frame, cutoffs: Mapping[tuple[str, str], float], formers: Sequence[str],
                 max_size: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """(centres (M, 3) Å, sizes (M,) = number of formers = number of O) of the Guttman rings."""
    rings, _ = find_rings(frame, cutoffs, formers, max_size=max_size)
    if not rings:
        return np.zeros((0, 3)), np.zeros(0, dtype=int)
    return np.array([r.centre for r in rings]), np.array([r.size for r in rings])


def ring_statistics(frames: Any, cutoffs: Mapping[tuple[str, str], float], formers: Sequence[str],
                    max_size: int = 12) -> dict[str, Any]:
    """Ring-size distribution pooled over frames (JSON-ready; keys documented in docs/analysis.md)."""
    counts: dict[int, int] = {}
    tot = {"n_edges": 0, "n_edges_without_ring": 0}
    nf = 0
    n_formers = 0
    for fr in as_frames(frames):
        rings, c = find_rings(fr, cutoffs, formers, max_size=max_size)
        for r in rings:
            counts[r.size] = counts.get(r.size, 0) + 1
        for k in tot:
            tot[k] += c[k]
        nf += 1
        n_formers += int(np.isin(_symbols(fr), list(formers)).sum())
    n = sum(counts.values())
    return {
        "size_definition": SIZE_DEFINITION, "formers": list(formers), "max_size": max_size, "n_frames": nf,
        "counts": {str(k): counts[k] for k in sorted(counts)},
        "fraction": {str(k): counts[k] / n for k in sorted(counts)} if n else {},
        "n_rings": n, "mean_size": (sum(k * v for k, v in counts.items()) / n) if n else None,
        "rings_per_former": n / n_formers if n_formers else None, **tot,
    }
