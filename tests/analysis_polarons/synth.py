"""Synthetic olivine Li_xFePO4 trajectories with planted truth (also used by benchmarks/bench_polarons.py).

* Fe valence: each Fe's state per frame (2 or 3) is given; an Fe3+ octahedron has its 6 O pulled
  in by ``contraction`` (mean Fe–O 2.14 Å -> 2.08 Å), as ``generation.olivine`` does for polarons.
* Thermal noise: independent Gaussian displacements of every atom in every frame.
* Li: on their (4a) sites plus noise; planted moves change a Li's site from a given frame on.
Every random number comes from a seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mlipflow.analysis.io import Frame
from mlipflow.analysis.polarons import periodic_knn

MEAN_FE2 = 2.1396  # mean Fe–O of mlipflow's olivine cell (Å)
CONTRACTION = 2.08 / MEAN_FE2
TYPES = {"Li": 1, "Fe": 2, "P": 3, "O": 4}
TYPE_MAP = "1=Li,2=Fe,3=P,4=O"


class Olivine:
    """An olivine supercell and the O displacements that make chosen Fe trivalent."""

    def __init__(self, supercell=(1, 2, 2), x: float = 1.0, seed: int = 0, ordering: str = "random",
                 contraction: float = CONTRACTION, interface: str | None = None):
        from mlipflow.generation.olivine import olivine_supercell

        st, info = olivine_supercell(supercell, x=x, ordering=ordering, polarons="random" if x < 1 else None,
                                     seed=seed, interface=interface)
        self.info = info
        self.symbols = np.array([s.specie.symbol for s in st])
        self.pos = np.array(st.cart_coords)
        self.cell = np.array(st.lattice.matrix)
        self.fe = np.flatnonzero(self.symbols == "Fe")
        self.o = np.flatnonzero(self.symbols == "O")
        self.li = np.flatnonzero(self.symbols == "Li")
        _, j = periodic_knn(self.pos[self.fe], self.pos[self.o], self.cell, np.zeros(3), k=6, rmax=3.0)
        n_at, n_fe = len(self.pos), len(self.fe)
        # M[atom*3 + c, fe]: displacement of that atom's coordinate c when Fe becomes Fe3+
        M = np.zeros((n_at * 3, n_fe))
        for f in range(n_fe):
            vec = self.pos[self.o[j[f]]] - self.pos[self.fe[f]]
            vec -= np.rint(vec @ np.linalg.inv(self.cell)) @ self.cell
            for oi, v in zip(self.o[j[f]], vec):
                M[oi * 3:oi * 3 + 3, f] += (contraction - 1.0) * v
        self.M = M

    @property
    def n_fe(self) -> int:
        return len(self.fe)

    def li_sites(self) -> np.ndarray:
        """All 4a sites of the supercell (Cartesian), occupied or not."""
        from mlipflow.generation.olivine import olivine_supercell

        full, _ = olivine_supercell(self.info["supercell"], x=1.0, polarons=None)
        sym = np.array([s.specie.symbol for s in full])
        return np.array(full.cart_coords)[sym == "Li"]

    def frames(self, states: np.ndarray, *, noise: float = 0.03, seed: int = 1, dump_every: int = 5,
               li_positions: np.ndarray | None = None, cell: np.ndarray | None = None) -> Iterator[Frame]:
        """One frame per row of ``states`` (T, n_fe) in {2, 3}; ``li_positions`` (T, n_li, 3) overrides the Li."""
        rng = np.random.default_rng(seed)
        cell = self.cell if cell is None else cell
        n_at = len(self.pos)
        for k, s in enumerate(np.asarray(states)):
            disp = (self.M @ (np.asarray(s) == 3).astype(float)).reshape(n_at, 3)
            pos = self.pos + disp + rng.normal(scale=noise, size=(n_at, 3))
            if li_positions is not None:
                pos[self.li] = li_positions[k] + rng.normal(scale=noise, size=(len(self.li), 3))
            yield Frame(positions=pos, cell=cell, symbols=self.symbols, ids=np.arange(1, n_at + 1),
                        step=k * dump_every)


def markov_states(n_frames: int, n_fe: int, dt_ps: float, rate_per_ps: float, rng: np.random.Generator) -> np.ndarray:
    """Symmetric two-state (2/3) Markov switching: each state lasts an exponential time of mean 1/rate."""
    out = np.empty((n_frames, n_fe), dtype=np.int8)
    t_end = n_frames * dt_ps
    for f in range(n_fe):
        state = 2 + int(rng.random() < 0.5)
        t = 0.0
        col = np.empty(n_frames, dtype=np.int8)
        while t < t_end:
            life = rng.exponential(1.0 / rate_per_ps)
            a, b = int(np.ceil(t / dt_ps - 1e-9)), int(np.ceil((t + life) / dt_ps - 1e-9))
            col[a:min(b, n_frames)] = state
            state = 5 - state
            t += life
        out[:, f] = col
    return out


def bond_series(states: np.ndarray, rng: np.random.Generator, noise: float = 0.02, fe3: float = 2.08,
                fe2: float = 2.16) -> np.ndarray:
    """Mean Fe–O bond lengths (T, n_fe) of the planted states plus white noise (float32)."""
    b = np.where(np.asarray(states) == 3, fe3, fe2) + rng.normal(scale=noise, size=np.shape(states))
    return b.astype(np.float32)


def expected_observed_rate(rate: float, min_state_ps: float) -> float:
    """Flip rate seen with a minimum state duration τ for symmetric memoryless switching at ``rate``:
    counting runs (length ≥ τ, probability p = e^{-rate τ}) occur at rate·p and the next one has the
    other state when an even number of short runs lie between: probability 1/(2 − p)."""
    p = np.exp(-rate * min_state_ps)
    return float(rate * p / (2 - p))


def insert_times(path, dt_ps: float, dump_every: int) -> None:
    """Add ``ITEM: TIME`` to every frame of a dump (step × dt / dump_every ps)."""
    lines = open(path).read().splitlines(keepends=True)
    out = []
    k = 0
    while k < len(lines):
        out.append(lines[k])
        if lines[k].startswith("ITEM: TIMESTEP"):
            step = int(lines[k + 1])
            out.append(lines[k + 1])
            out.append(f"ITEM: TIME\n{step / dump_every * dt_ps:.8f}\n")
            k += 2
            continue
        k += 1
    open(path, "w").write("".join(out))
