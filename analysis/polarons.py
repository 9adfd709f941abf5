"""Polarons in olivine Li_xFePO4 MD: Fe valence from Fe–O bonds, valence flips, Li hops, rates,
Arrhenius, event-pair statistics, layer profiles and Li–Fe2+/Fe3+ g(r).

Pure numpy/scipy/scikit-learn (no jobflow). The trajectory is streamed once, in chunks of frames
(:mod:`mlipflow.analysis.io` readers); what is kept per frame is one float32 mean Fe–O bond length
per Fe (an ``(n_frames, n_fe)`` array, 6 MB for 8000 frames × 192 Fe), the step number, the Li site
transitions (a few bytes each) and, for at most ``rdf_max_frames`` evenly spread frames, the Li–Fe
pair distances. Positions are never accumulated.

Method (the published one, every threshold a :class:`PolaronParams` field)
-------------------------------------------------------------------------
1. **Bond length**: per frame and Fe, the mean distance to its ``n_oxygen`` = 6 nearest O (minimum
   image; explicit periodic images for triclinic cells), all of which must lie within
   ``fe_o_cutoff_A`` (3.0 Å; the 7th O of olivine is at ~3.4 Å).
2. **Valence classifier**: a two-component Gaussian mixture (scikit-learn, ``random_state``
   seeded, started from the 10th/90th percentiles) fitted to the raw per-frame bond lengths of
   the run (one composition and temperature), at most ``gmm_max_samples`` of them drawn with a
   seeded generator. The short-bond component is Fe3+ (≈ 2.08 Å in DFT), the long one Fe2+
   (≈ 2.16 Å). Decision boundary: the bond length between the two means where
   w1 N(x; μ1, σ1) = w2 N(x; μ2, σ2). Bayes error BE = E_x[1 − max_c P(c|x)] over all the
   (kept) bond lengths.
3. **Valence flips**: each Fe's bond-length series is smoothed by a Gaussian filter in time
   (``scipy.ndimage.gaussian_filter1d``, σ = ``filter_sigma_ps`` = 0.02 ps by default, i.e. about
   half the period of the Fe–O stretching vibration; the issue text does not quote the paper's
   width, so this default is ours) and classified with the boundary. A state counts only if it
   lasts at least ``min_state_ps`` = 0.08 ps (a run of L frames lasts L·dt); shorter excursions
   are absorbed into the state before them. A flip is a change between two consecutive counting
   states, dated at the first frame of the new one; +1 = Fe2+→Fe3+ (oxidation), −1 = Fe3+→Fe2+.
4. **Li hops**: each frame, each Li is assigned to its nearest Li site (olivine 4a sites derived
   from the cell, or every Li of a reference structure file); with ``li_site_radius_A`` set, only
   within that radius (otherwise "in transit"). A hop is a change of site to a neighbouring site
   along ``hop_axis`` (y, the b channels: displacement within ``hop_max_angle_deg`` of the axis
   and no longer than 1.2 × the shortest such site spacing) completed within ``li_hop_max_ps`` =
   0.01 ps (from the last frame on the old site to the first on the new one; when frames are
   further apart than that, a change between adjacent frames is accepted and a warning given).
5. **Rates**: flips per Fe per ps and hops per Li per ps over the kept duration (n_frames − 1)·dt,
   with σ from ``n_blocks`` = 5 consecutive time blocks (std/√n) and the Poisson σ = √n/(N·t).
   Arrhenius: :func:`mlipflow.analysis.dynamics.arrhenius_fit` on (T, rate, σ).
6. **Event pairs**: every pair of flip events on two different Fe at Fe–Fe distance (first frame,
   minimum image) in [3.0, 6.5] Å and time lag |Δt| ≤ 1.0 ps, counted separately for same-sign and
   opposite-sign pairs. r_s = N_s / P_s with P_opp = N₊N₋ and P_same = N₊(N₊−1)/2 + N₋(N₋−1)/2
   the number of possible pairs of that kind, so uncorrelated events give PR = r_opp/r_same = 1.
   PR is given for d ≤ 4.4 Å / > 4.4 Å × Δt ≤ 0.05 ps / > 0.05 ps; the maps are
   N_s(d, Δt) / (P_s Δd Δt).
7. **Layers**: Fe grouped into layers along ``layer_axis`` by their first-frame fractional
   coordinate (a new layer wherever the gap exceeds ``layer_gap_A``; periodic), centre = mean
   coordinate × the lattice-plane spacing (the Cartesian coordinate for orthorhombic cells).
   Per layer: time-averaged Fe3+ fraction, flip rate per Fe, and the Fe3+ fraction against time.
8. **Li–Fe2+ / Li–Fe3+ g(r)**: from ≤ ``rdf_max_frames`` frames spread evenly over the run
   (stride doubling while streaming), each Fe labelled by its valence state in that frame;
   g_c(r) = ⟨n_Li-Fe_c(r)⟩ / (N_Li N_c / V · shell volume), and the running integral = mean
   number of Li within r of an Fe_c.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from mlipflow.analysis.io import Frame, iter_frames, read_frame
from mlipflow.analysis.structure import inscribed_radius, neighbor_pairs, to_json_dict
from mlipflow.errors import UserError
from mlipflow.generation.olivine import AXES

log = logging.getLogger(__name__)

__all__ = [
    "PolaronParams", "PolaronResult", "PolaronAccumulator", "LiSites", "periodic_knn", "fe_o_bond_lengths",
    "fit_valence_gmm", "GMMFit", "smooth_bonds", "valence_states", "olivine_li_sites", "li_sites_from_file",
    "li_hops", "event_pair_statistics", "fe_layers", "resolve_frame_interval", "polaron_statistics",
    "analyze_polarons", "rate_arrhenius", "PR_KEYS",
]

#: keys of ``pairs.preference_ratio`` (d split 4.4 Å, Δt split 0.05 ps with the default parameters).
PR_KEYS = ("d_le_4.4_dt_le_0.05", "d_gt_4.4_dt_le_0.05", "d_le_4.4_dt_gt_0.05", "d_gt_4.4_dt_gt_0.05")


@dataclass
class PolaronParams:
    """Every threshold of the analysis (defaults: the published values where published)."""

    fe_o_cutoff_A: float = 3.0  # the 6 nearest O of every Fe must lie within this (first frame; later: 1.5x)
    n_oxygen: int = 6  # FeO6 octahedron
    filter_sigma_ps: float = 0.02  # σ of the temporal Gaussian filter (0: none); our default, see module doc
    min_state_ps: float = 0.08  # a valence state must last this long to count
    boundary_A: float | None = None  # override the GMM decision boundary (Å)
    gmm_random_state: int = 0
    gmm_max_samples: int = 200_000
    li_hops: bool = True  # track Li hops (needs Li sites: olivine cell or a site file)
    li_hop_max_ps: float = 0.01  # a Li hop must be completed within this
    li_site_radius_A: float | None = None  # None: nearest site (Voronoi); a value: only within it
    li_site_search_A: float = 3.5  # Li farther than this from every site are "in transit"
    hop_axis: str = "y"
    hop_max_angle_deg: float = 30.0
    pair_d_min_A: float = 3.0
    pair_d_max_A: float = 6.5
    pair_dt_max_ps: float = 1.0
    pair_d_split_A: float = 4.4
    pair_dt_split_ps: float = 0.05
    pair_d_bin_A: float = 0.1
    pair_dt_bin_ps: float = 0.02
    layer_axis: str = "y"
    layer_gap_A: float = 1.0
    rdf_rmax_A: float = 8.0
    rdf_dr_A: float = 0.05
    rdf_max_frames: int = 200
    n_blocks: int = 5
    discard_fraction: float = 0.0  # drop this leading fraction of the frames (equilibration)
    chunk: int = 64  # frames read per chunk

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> PolaronParams:
        if not d:
            return cls()
        names = {f.name for f in fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise UserError(f"unknown polaron analysis parameter(s) {bad}", f"use any of {sorted(names)}")
        return cls(**dict(d))

    def validate(self) -> None:
        if not 0.0 <= self.discard_fraction < 1.0:
            raise UserError(f"discard fraction {self.discard_fraction} is outside [0, 1)",
                            "give the leading fraction of frames to drop, e.g. --discard-fraction 0.2")
        if self.fe_o_cutoff_A <= 0 or self.n_oxygen < 1:
            raise UserError("the Fe–O cutoff must be positive and n_oxygen >= 1")
        if self.min_state_ps < 0 or self.filter_sigma_ps < 0 or self.li_hop_max_ps <= 0:
            raise UserError("the filter width, minimum state duration and hop time must not be negative")
        if not (0 <= self.pair_d_min_A < self.pair_d_split_A < self.pair_d_max_A) or \
                not (0 <= self.pair_dt_split_ps < self.pair_dt_max_ps):
            raise UserError("pair ranges must satisfy d_min < d_split < d_max and dt_split < dt_max")
        if self.n_blocks < 2:
            raise UserError(f"n_blocks must be >= 2 (got {self.n_blocks})")
        axis_index(self.hop_axis)
        axis_index(self.layer_axis)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def axis_index(axis: str | int) -> int:
    """'x'/'y'/'z' (or 'a'/'b'/'c', or 0/1/2) -> 0/1/2."""
    if isinstance(axis, (int, np.integer)) and 0 <= int(axis) <= 2:
        return int(axis)
    a = str(axis).strip().lower()
    if a not in AXES:
        raise UserError(f"unknown axis {axis!r}", "use x, y or z (or a, b, c)")
    return AXES[a]


# --------------------------------------------------------------------------------------------- neighbours
def _is_ortho(cell: np.ndarray) -> bool:
    return bool(np.allclose(cell - np.diag(np.diag(cell)), 0.0, atol=1e-10))


def _wrap_ortho(pos: np.ndarray, origin: np.ndarray, L: np.ndarray) -> np.ndarray:
    w = np.mod(pos - origin, L)
    w[w >= L] = 0.0
    return w


def periodic_knn(centres: np.ndarray, targets: np.ndarray, cell: np.ndarray, origin: np.ndarray | None = None,
                 k: int = 1, rmax: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest ``targets`` of every centre within ``rmax`` in a periodic cell.

    Returns ``(d, j)`` of shape ``(n_centres, k)``, sorted by distance, ``inf`` / ``-1`` where fewer
    than k lie within rmax. Orthorhombic cells with rmax < L/2: a periodic ``cKDTree`` (minimum
    image); any other cell: :func:`mlipflow.analysis.structure.neighbor_pairs` with explicit images.
    """
    cell = np.asarray(cell, dtype=float)
    origin = np.zeros(3) if origin is None else np.asarray(origin, dtype=float)
    centres = np.asarray(centres, dtype=float)
    targets = np.asarray(targets, dtype=float)
    nc = len(centres)
    L = np.diag(cell).copy()
    if _is_ortho(cell) and rmax < 0.5 * L.min():
        tree = cKDTree(_wrap_ortho(targets, origin, L), boxsize=L)
        d, j = tree.query(_wrap_ortho(centres, origin, L), k=k, distance_upper_bound=rmax)
        d = np.asarray(d, dtype=float).reshape(nc, k)
        j = np.where(np.isfinite(d), np.asarray(j).reshape(nc, k), -1)
        return d, j
    frame = Frame(positions=np.concatenate([centres, targets]), cell=cell, origin=origin)
    i, jj, dd, _ = neighbor_pairs(frame, rmax, full=True, method="images")
    m = (i < nc) & (jj >= nc)
    i, jj, dd = i[m], jj[m] - nc, dd[m]
    order = np.lexsort((dd, i))
    i, jj, dd = i[order], jj[order], dd[order]
    rank = np.arange(len(i)) - np.searchsorted(i, np.arange(nc))[i]
    keep = rank < k
    d = np.full((nc, k), np.inf)
    j = np.full((nc, k), -1, dtype=np.int64)
    d[i[keep], rank[keep]] = dd[keep]
    j[i[keep], rank[keep]] = jj[keep]
    return d, j


def fe_o_bond_lengths(frame: Frame, fe_idx: np.ndarray, o_idx: np.ndarray, cutoff: float = 3.0, n_oxygen: int = 6,
                      frame_index: int | None = None) -> np.ndarray:
    """Mean distance of every Fe to its ``n_oxygen`` nearest O (Å), all within ``cutoff``."""
    d, _ = periodic_knn(frame.positions[fe_idx], frame.positions[o_idx], frame.cell, frame.origin, n_oxygen, cutoff)
    bad = ~np.isfinite(d[:, -1])
    if bad.any():
        n_found = np.isfinite(d[bad]).sum(axis=1)
        where = "" if frame_index is None else f" in frame {frame_index}"
        raise UserError(
            f"{int(bad.sum())} of {len(fe_idx)} Fe have fewer than {n_oxygen} O within {cutoff} Å{where} "
            f"(e.g. Fe #{int(np.flatnonzero(bad)[0])} has {int(n_found[0])}): no FeO{n_oxygen} octahedra",
            "check the type map (which LAMMPS type is O?) and the cell, or raise the Fe–O cutoff (--fe-o-cutoff)")
    return d.mean(axis=1)


# --------------------------------------------------------------------------------------------- valence classifier
@dataclass
class GMMFit:
    """Two-component Gaussian mixture of the bond lengths, components by ascending mean (Fe3+, Fe2+)."""

    means_A: list[float]
    sigmas_A: list[float]
    weights: list[float]
    boundary_A: float
    bayes_error: float
    boundary_source: str = "gmm"  # gmm | given
    n_samples_fit: int = 0
    n_values: int = 0
    ashman_d: float = 0.0
    histogram: dict[str, list[float]] = field(default_factory=dict)

    def posterior_low(self, x: np.ndarray) -> np.ndarray:
        """P(short-bond component | x)."""
        x = np.asarray(x, dtype=np.float64)
        logp = [np.log(w) - np.log(s) - 0.5 * ((x - m) / s) ** 2
                for m, s, w in zip(self.means_A, self.sigmas_A, self.weights)]
        return 1.0 / (1.0 + np.exp(np.clip(logp[1] - logp[0], -700, 700)))

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """Weighted component densities, shape (2, len(x))."""
        x = np.asarray(x, dtype=float)
        return np.array([w / (s * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((x - m) / s) ** 2)
                         for m, s, w in zip(self.means_A, self.sigmas_A, self.weights)])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _equal_probability_boundary(m1: float, s1: float, w1: float, m2: float, s2: float, w2: float) -> float:
    """x in [m1, m2] where w1 N(x; m1, s1) = w2 N(x; m2, s2) (the root nearest the midpoint otherwise)."""
    A = 0.5 / s2**2 - 0.5 / s1**2
    B = m1 / s1**2 - m2 / s2**2
    C = 0.5 * m2**2 / s2**2 - 0.5 * m1**2 / s1**2 + math.log((w1 * s2) / (w2 * s1))
    if abs(A) < 1e-12 * max(abs(B), 1e-300):
        roots = [-C / B] if B != 0 else []
    else:
        disc = B * B - 4 * A * C
        roots = [] if disc < 0 else [(-B + sgn * math.sqrt(disc)) / (2 * A) for sgn in (1, -1)]
    mid = 0.5 * (m1 + m2)
    inside = [r for r in roots if m1 <= r <= m2]
    pool = inside or roots
    return float(min(pool, key=lambda r: abs(r - mid))) if pool else mid


def fit_valence_gmm(values: np.ndarray, *, random_state: int = 0, max_samples: int = 200_000,
                    boundary_A: float | None = None, bins: int = 120) -> GMMFit:
    """Two-Gaussian mixture of mean Fe–O bond lengths, equal-probability boundary and Bayes error."""
    from sklearn.mixture import GaussianMixture

    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 10:
        raise UserError(f"only {x.size} bond lengths: too few for a two-Gaussian valence classifier",
                        "analyse more frames (or more Fe)")
    rng = np.random.default_rng(random_state)
    sample = x if x.size <= max_samples else x[rng.choice(x.size, size=max_samples, replace=False)]
    q10, q90 = np.percentile(sample, [10, 90])
    if q90 - q10 < 1e-6:
        q10, q90 = q10 - 1e-3, q90 + 1e-3
    gm = GaussianMixture(n_components=2, covariance_type="full", random_state=random_state, max_iter=500, tol=1e-7,
                         means_init=[[q10], [q90]], reg_covar=1e-8)
    gm.fit(sample[:, None])
    m = gm.means_.ravel()
    s = np.sqrt(gm.covariances_.reshape(2))
    w = gm.weights_.ravel()
    o = np.argsort(m)
    m, s, w = m[o].tolist(), s[o].tolist(), w[o].tolist()
    b = _equal_probability_boundary(m[0], s[0], w[0], m[1], s[1], w[1]) if boundary_A is None else float(boundary_A)
    fit = GMMFit(means_A=m, sigmas_A=s, weights=w, boundary_A=b, bayes_error=0.0,
                 boundary_source="gmm" if boundary_A is None else "given", n_samples_fit=int(sample.size),
                 n_values=int(x.size), ashman_d=float(abs(m[1] - m[0]) * math.sqrt(2.0 / (s[0] ** 2 + s[1] ** 2))))
    be = 0.0
    for lo in range(0, x.size, 1_000_000):  # E_x[1 - max_c P(c|x)], in chunks
        p = fit.posterior_low(x[lo:lo + 1_000_000])
        be += float(np.minimum(p, 1.0 - p).sum())
    fit.bayes_error = be / x.size
    lo_, hi_ = np.percentile(x, [0.05, 99.95])
    pad = 0.05 * (hi_ - lo_ + 1e-3)
    dens, edges = np.histogram(x, bins=bins, range=(lo_ - pad, hi_ + pad), density=True)
    fit.histogram = {"edges_A": edges.tolist(), "density": dens.tolist()}
    return fit


# --------------------------------------------------------------------------------------------- valence states and flips
def smooth_bonds(bonds: np.ndarray, timestep_ps: float, sigma_ps: float) -> np.ndarray:
    """Gaussian filter of each Fe's bond-length series along time (axis 0); σ in ps."""
    if sigma_ps <= 0:
        return np.asarray(bonds)
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.asarray(bonds), sigma=sigma_ps / timestep_ps, axis=0, mode="nearest")


def valence_states(smoothed: np.ndarray, boundary_A: float, min_frames: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Valence states (T, n_fe) int8 (2 or 3) and the flips of the smoothed bond lengths.

    Frames below the boundary are Fe3+. Runs shorter than ``min_frames`` do not count: a flip is a
    change between consecutive runs of at least ``min_frames`` frames (dated at the first frame of
    the new run); short runs take the state of the counting run before them (the first counting
    run's state before it). An Fe without any counting run keeps its frame-by-frame class.
    Returns ``(states, {"frame", "fe", "sign"})`` with sign +1 for Fe2+→Fe3+.
    """
    c = np.ascontiguousarray((np.asarray(smoothed) < boundary_A).T)  # (n_fe, T), True = Fe3+
    n_fe, T = c.shape
    empty = {"frame": np.zeros(0, np.int64), "fe": np.zeros(0, np.int64), "sign": np.zeros(0, np.int8)}
    if T == 0:
        return np.zeros((0, n_fe), np.int8), empty
    start = np.ones((n_fe, T), dtype=bool)
    start[:, 1:] = c[:, 1:] != c[:, :-1]
    flat_start = np.flatnonzero(start.ravel())  # run starts, row-major: rows in order
    lengths = np.diff(np.append(flat_start, n_fe * T))
    row, col = np.divmod(flat_start, T)
    long = lengths >= max(1, int(min_frames))
    lr, lc, ls = row[long], col[long], c.ravel()[flat_start[long]]
    same_row = lr[1:] == lr[:-1]
    flip = same_row & (ls[1:] != ls[:-1])
    flips = {"frame": lc[1:][flip].astype(np.int64), "fe": lr[1:][flip].astype(np.int64),
             "sign": np.where(ls[1:][flip], 1, -1).astype(np.int8)}
    # fill: the state of the latest counting run at or before each frame
    marker = np.full((n_fe, T), -1, dtype=np.int8)
    marker[lr, lc] = ls.astype(np.int8)
    idx = np.where(marker >= 0, np.arange(T)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    filled = np.take_along_axis(marker, idx, axis=1)
    has = np.zeros(n_fe, dtype=bool)
    has[lr] = True
    first = np.full(n_fe, -1, dtype=np.int8)
    first_pos = np.searchsorted(lr, np.arange(n_fe))
    first[has] = ls[first_pos[has]].astype(np.int8)
    filled = np.where(filled < 0, first[:, None], filled)
    filled = np.where(has[:, None], filled, c.astype(np.int8))
    states = (2 + filled).astype(np.int8).T  # (T, n_fe)
    return np.ascontiguousarray(states), flips


# --------------------------------------------------------------------------------------------- Li sites and hops
@dataclass
class LiSites:
    """Li sites as fractional coordinates of the trajectory cell, and the hop-neighbour pairs."""

    frac: np.ndarray
    source: str
    neighbours: set[int] = field(default_factory=set)  # from * n_sites + to, both directions

    @property
    def n_sites(self) -> int:
        return int(len(self.frac))

    def cartesian(self, cell: np.ndarray, origin: np.ndarray) -> np.ndarray:
        return np.asarray(origin) + self.frac @ np.asarray(cell)


def _assign_sites(points: np.ndarray, sites: LiSites, cell, origin, radius: float | None, search: float):
    r = search if radius is None else min(radius, search)
    d, j = periodic_knn(points, sites.cartesian(cell, origin), cell, origin, k=1, rmax=r)
    return j[:, 0], d[:, 0]


def _check_sites_fit(sites: LiSites, li_pos: np.ndarray, cell, origin, tol: float = 1.0) -> float:
    """Fraction of the Li within ``tol`` of a site."""
    if len(li_pos) == 0:
        return 1.0
    j, _ = _assign_sites(li_pos, sites, cell, origin, tol, tol)
    return float(np.mean(j >= 0))


def _mean_offset(frac: np.ndarray, li_pos: np.ndarray, cell, origin, tol: float = 1.0) -> np.ndarray:
    """Mean fractional displacement of the Li from their sites (those within ``tol``)."""
    sites = LiSites(frac=np.mod(frac, 1.0), source="")
    j, _ = _assign_sites(li_pos, sites, cell, origin, tol, tol)
    if not (j >= 0).any():
        return np.zeros(3)
    df = (np.asarray(li_pos)[j >= 0] - origin) @ np.linalg.inv(cell) - sites.frac[j[j >= 0]]
    df -= np.rint(df)
    return df.mean(axis=0)


def _hop_neighbours(sites: LiSites, cell, origin, axis: str, max_angle_deg: float) -> set[int]:
    cell = np.asarray(cell, dtype=float)
    pos = sites.cartesian(cell, origin)
    n = len(pos)
    if n < 2:
        return set()
    k = axis_index(axis)
    u = cell[k] / np.linalg.norm(cell[k])
    rmax = 0.999 * min(np.linalg.norm(cell[k]), 8.0)
    i, j, d, vec = neighbor_pairs(Frame(positions=pos, cell=cell, origin=origin), rmax, full=True, method="images")
    ok = (i != j) & (np.abs(vec @ u) >= np.cos(np.radians(max_angle_deg)) * d)
    if not ok.any():
        return set()
    dmin = d[ok].min()
    ok &= d <= 1.2 * dmin
    return set((i[ok] * n + j[ok]).tolist())


class LiOffSites(UserError):
    """Fewer than 90 % of the Li of the first frame lie within 1 Å of the Li sites."""


def _finish_sites(frac: np.ndarray, source: str, cell, origin, li_pos, params: PolaronParams, fix: str) -> LiSites:
    sites = LiSites(frac=np.mod(frac, 1.0), source=source)
    frac_ok = _check_sites_fit(sites, li_pos, cell, origin)
    if frac_ok < 0.9:
        raise LiOffSites(f"only {100 * frac_ok:.0f} % of the Li lie within 1 Å of the Li sites ({source})", fix)
    sites.neighbours = _hop_neighbours(sites, cell, origin, params.hop_axis, params.hop_max_angle_deg)
    return sites


def olivine_li_sites(cell: np.ndarray, origin: np.ndarray, li_positions: np.ndarray,
                     params: PolaronParams | None = None) -> LiSites:
    """All olivine (Pnma, 4a) Li sites of a supercell of the olivine cell (axes a, b, c = x, y, z).

    The supercell multiplicity is the cell lengths over mlipflow's olivine lattice
    (:data:`mlipflow.generation.olivine.LATTICE`, within 12 %); the site lattice is shifted so the
    observed Li sit on sites (the best of the candidate origins taking the first Li to a site).
    """
    from mlipflow.generation.olivine import LATTICE, olivine_unit_cell

    params = params or PolaronParams()
    cell = np.asarray(cell, dtype=float)
    lengths = np.linalg.norm(cell, axis=1)
    mult = np.maximum(1, np.rint(lengths / np.asarray(LATTICE))).astype(int)
    fix = "give the Li sites with --li-sites FILE (a structure with every Li site, occupied or not), or --no-li-hops"
    if np.any(np.abs(lengths / (mult * np.asarray(LATTICE)) - 1) > 0.12):
        raise UserError(f"cannot derive olivine Li sites: the cell lengths {np.round(lengths, 3).tolist()} Å are not "
                        f"multiples of the olivine cell {list(LATTICE)} Å (a, b, c along x, y, z)", fix)
    unit = np.array([s.frac_coords for s in olivine_unit_cell() if s.specie.symbol == "Li"])
    grid = np.array(list(itertools.product(*(range(m) for m in mult))), dtype=float)
    frac = ((unit[None, :, :] + grid[:, None, :]) / mult).reshape(-1, 3)
    if len(li_positions):
        # the site set is periodic in the unit cell: try putting the first Li on each of its 4 sites
        f0 = (np.asarray(li_positions[0]) - origin) @ np.linalg.inv(cell)
        best, best_shift = -1.0, np.zeros(3)
        for u in unit / mult:
            shift = np.mod(f0 - u + 0.5 / mult, 1.0 / mult) - 0.5 / mult
            score = _check_sites_fit(LiSites(frac=np.mod(frac + shift, 1.0), source="olivine"), li_positions, cell, origin)
            if score > best + 1e-12:
                best, best_shift = score, shift
        frac = frac + best_shift + _mean_offset(frac + best_shift, li_positions, cell, origin)
    return _finish_sites(frac, f"olivine {mult[0]}x{mult[1]}x{mult[2]} (4a)", cell, origin, li_positions, params, fix)


def li_sites_from_file(path: str | Path, cell: np.ndarray, origin: np.ndarray, li_positions: np.ndarray,
                       params: PolaronParams | None = None, format: str | None = None,  # noqa: A002
                       types: Any = None) -> LiSites:
    """Every Li of a reference structure file is a site (tiled if the trajectory cell is a multiple of its cell)."""
    params = params or PolaronParams()
    ref = read_frame(path, index=0, format=format, types=types)
    if ref.symbols is None:
        raise UserError(f"{path}: no element names", "give a file with elements (POSCAR, extxyz, data with Masses)")
    li = np.asarray(ref.symbols) == "Li"
    if not li.any():
        raise UserError(f"{path}: the Li-site file has no Li", "give a structure with an Li on every Li site")
    rcell = np.asarray(ref.cell, dtype=float)
    frac = (ref.positions[li] - ref.origin) @ np.linalg.inv(rcell)
    cell = np.asarray(cell, dtype=float)
    mult_m = cell @ np.linalg.inv(rcell)  # trajectory cell rows in units of the reference rows
    mult = np.rint(np.diag(mult_m)).astype(int)
    if np.any(mult < 1) or np.abs(mult_m - np.diag(mult)).max() > 0.12 * max(1, mult.max()):
        raise UserError(f"{path}: the trajectory cell is not a supercell of the Li-site file's cell",
                        "give a Li-site file with the trajectory's cell (or its unit cell)")
    grid = np.array(list(itertools.product(*(range(m) for m in mult))), dtype=float)
    frac = ((frac[None, :, :] + grid[:, None, :]) / mult).reshape(-1, 3)
    return _finish_sites(frac, f"file {path}", cell, origin, li_positions, params,
                         "check that the Li-site file has the trajectory's origin and axes")


class _LiHopTracker:
    """Streaming per-Li site state; records every change of site (li, from, to, departure, arrival)."""

    def __init__(self, n_li: int):
        self.last_site = np.full(n_li, -1, dtype=np.int64)
        self.last_frame = np.full(n_li, -1, dtype=np.int64)
        self.events: list[np.ndarray] = []

    def add(self, k: int, site: np.ndarray) -> None:
        on = site >= 0
        moved = on & (self.last_site >= 0) & (site != self.last_site)
        if moved.any():
            li = np.flatnonzero(moved)
            self.events.append(np.stack([li, self.last_site[li], site[li], self.last_frame[li],
                                         np.full(len(li), k)], axis=1))
        self.last_site[on] = site[on]
        self.last_frame[on] = k

    def transitions(self) -> np.ndarray:
        return np.concatenate(self.events) if self.events else np.zeros((0, 5), dtype=np.int64)


def li_hops(transitions: np.ndarray, sites: LiSites, timestep_ps: float, max_hop_ps: float,
            start_frame: int = 0) -> dict[str, np.ndarray | int | float]:
    """Classify site changes ``(li, from, to, departure, arrival)`` into hops along the axis.

    A hop: the two sites are hop neighbours and (arrival − departure)·dt ≤ max(max_hop_ps, dt).
    Only changes whose departure frame is ≥ ``start_frame`` count.
    """
    tr = np.asarray(transitions, dtype=np.int64).reshape(-1, 5)
    tr = tr[tr[:, 3] >= start_frame]
    limit = max(max_hop_ps, timestep_ps) * (1 + 1e-9)
    nb = np.array([int(f) * sites.n_sites + int(t) in sites.neighbours for f, t in tr[:, 1:3]], dtype=bool)
    fast = (tr[:, 4] - tr[:, 3]) * timestep_ps <= limit
    hop = nb & fast
    return {"li": tr[hop, 0], "from": tr[hop, 1], "to": tr[hop, 2], "departure": tr[hop, 3] - start_frame,
            "arrival": tr[hop, 4] - start_frame, "n_slow": int((nb & ~fast).sum()), "n_other": int((~nb).sum())}


# --------------------------------------------------------------------------------------------- event pairs
def event_pair_statistics(frames: np.ndarray, fe: np.ndarray, sign: np.ndarray, fe_positions: np.ndarray,
                          cell: np.ndarray, origin: np.ndarray | None, timestep_ps: float,
                          params: PolaronParams | None = None) -> dict[str, Any]:
    """Same- and opposite-sign flip-event pairs by Fe–Fe distance and time lag; preference ratios.

    ``frames``/``fe``/``sign``: one entry per event (frame index, Fe index, ±1). Fe–Fe distances
    from ``fe_positions`` (minimum image / explicit images; an Fe is never paired with its own images).
    """
    p = params or PolaronParams()
    frames = np.asarray(frames, dtype=np.int64)
    fe = np.asarray(fe, dtype=np.int64)
    sign = np.asarray(sign, dtype=np.int8)
    n_plus, n_minus = int((sign > 0).sum()), int((sign < 0).sum())
    P_opp = float(n_plus) * n_minus
    P_same = n_plus * (n_plus - 1) / 2.0 + n_minus * (n_minus - 1) / 2.0
    d_edges = np.arange(p.pair_d_min_A, p.pair_d_max_A + 1e-9, p.pair_d_bin_A)
    if d_edges[-1] < p.pair_d_max_A - 1e-9:
        d_edges = np.append(d_edges, p.pair_d_max_A)
    n_d = len(d_edges) - 1
    n_t = max(1, int(math.ceil(p.pair_dt_max_ps / p.pair_dt_bin_ps - 1e-9)))
    t_edges = np.arange(n_t + 1) * p.pair_dt_bin_ps
    t_edges[-1] = p.pair_dt_max_ps
    hist = {"same": np.zeros((n_d, n_t)), "opposite": np.zeros((n_d, n_t))}
    region = {"same": np.zeros((2, 2), dtype=np.int64), "opposite": np.zeros((2, 2), dtype=np.int64)}
    max_lag = int(math.floor(p.pair_dt_max_ps / timestep_ps + 1e-9))
    n_fe = len(fe_positions)
    i, j, d, _ = neighbor_pairs(Frame(positions=np.asarray(fe_positions, dtype=float), cell=np.asarray(cell, float),
                                      origin=np.zeros(3) if origin is None else np.asarray(origin, float)),
                                p.pair_d_max_A, full=False)
    keep = (i != j) & (d >= p.pair_d_min_A) & (d <= p.pair_d_max_A)
    i, j, d = i[keep], j[keep], d[keep]
    order = np.lexsort((frames, fe))
    fs, ff, ss = frames[order], fe[order], sign[order]
    bounds = np.searchsorted(ff, np.arange(n_fe + 1))
    for a, b, dist in zip(i.tolist(), j.tolist(), d.tolist()):
        ta, sa = fs[bounds[a]:bounds[a + 1]], ss[bounds[a]:bounds[a + 1]]
        tb, sb = fs[bounds[b]:bounds[b + 1]], ss[bounds[b]:bounds[b + 1]]
        if not len(ta) or not len(tb):
            continue
        lo = np.searchsorted(tb, ta - max_lag, "left")
        hi = np.searchsorted(tb, ta + max_lag, "right")
        cnt = hi - lo
        tot = int(cnt.sum())
        if tot == 0:
            continue
        ia = np.repeat(np.arange(len(ta)), cnt)
        ib = np.repeat(lo, cnt) + np.arange(tot) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        lag = np.abs(ta[ia] - tb[ib]) * timestep_ps
        same = sa[ia] == sb[ib]
        di = min(int((dist - p.pair_d_min_A) / p.pair_d_bin_A), n_d - 1)
        tbin = np.minimum((lag / p.pair_dt_bin_ps + 1e-9).astype(np.int64), n_t - 1)
        rd = 0 if dist <= p.pair_d_split_A else 1
        late = lag > p.pair_dt_split_ps + 1e-9
        for key, sel in (("same", same), ("opposite", ~same)):
            hist[key][di] += np.bincount(tbin[sel], minlength=n_t)
            region[key][rd, 0] += int((sel & ~late).sum())
            region[key][rd, 1] += int((sel & late).sum())
    area = p.pair_d_bin_A * p.pair_dt_bin_ps
    dens = {"same": hist["same"] / (P_same * area) if P_same > 0 else np.zeros_like(hist["same"]),
            "opposite": hist["opposite"] / (P_opp * area) if P_opp > 0 else np.zeros_like(hist["opposite"])}
    names = {(0, 0): f"d_le_{p.pair_d_split_A:g}_dt_le_{p.pair_dt_split_ps:g}",
             (1, 0): f"d_gt_{p.pair_d_split_A:g}_dt_le_{p.pair_dt_split_ps:g}",
             (0, 1): f"d_le_{p.pair_d_split_A:g}_dt_gt_{p.pair_dt_split_ps:g}",
             (1, 1): f"d_gt_{p.pair_d_split_A:g}_dt_gt_{p.pair_dt_split_ps:g}"}
    pr, counts = {}, {"same": {}, "opposite": {}}
    for (rd, rt), name in names.items():
        ns, no = int(region["same"][rd, rt]), int(region["opposite"][rd, rt])
        counts["same"][name], counts["opposite"][name] = ns, no
        pr[name] = (no / P_opp) / (ns / P_same) if (ns > 0 and P_opp > 0 and P_same > 0) else None
    return {"preference_ratio": pr, "counts": counts, "n_events_plus": n_plus, "n_events_minus": n_minus,
            "possible_pairs": {"same": P_same, "opposite": P_opp}, "n_fe_pairs": int(len(d)),
            "d_edges_A": d_edges.tolist(), "dt_edges_ps": t_edges.tolist(),
            "density_same": dens["same"].tolist(), "density_opposite": dens["opposite"].tolist(),
            "units": "pairs per possible pair per Å per ps"}


# --------------------------------------------------------------------------------------------- layers
def _plane_spacing(cell: np.ndarray, k: int) -> float:
    cell = np.asarray(cell, dtype=float)
    return float(abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])))


def fe_layers(fe_positions: np.ndarray, cell: np.ndarray, origin: np.ndarray | None, axis: str = "y",
              gap_A: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Layer index of each Fe (ascending centre) and the layer centres (Å along the axis)."""
    k = axis_index(axis)
    cell = np.asarray(cell, dtype=float)
    origin = np.zeros(3) if origin is None else np.asarray(origin, dtype=float)
    width = _plane_spacing(cell, k)
    s = np.mod(((np.asarray(fe_positions) - origin) @ np.linalg.inv(cell))[:, k], 1.0) * width
    order = np.argsort(s)
    ss = s[order]
    if len(ss) == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    new = np.r_[True, np.diff(ss) > gap_A]
    lab = np.cumsum(new) - 1
    if lab[-1] > 0 and (ss[0] + width - ss[-1]) <= gap_A:  # the last layer wraps onto the first
        last = lab == lab[-1]
        ss = np.where(last, ss - width, ss)
        lab = np.where(last, 0, lab)
    n_layers = lab.max() + 1
    centres = np.array([ss[lab == m].mean() for m in range(n_layers)])
    centres = np.mod(centres, width)
    rank = np.argsort(np.argsort(centres))
    layer = np.empty(len(s), dtype=int)
    layer[order] = rank[lab]
    return layer, np.sort(centres)


# --------------------------------------------------------------------------------------------- time axis
def resolve_frame_interval(timestep_ps: float | None, steps: Sequence[int | None], times: Sequence[float | None],
                           rtol: float = 1e-3) -> tuple[float, dict[str, Any]]:
    """The time between frames (ps), checked against the file: evenly spaced step numbers, and
    ``ITEM: TIME`` values (LAMMPS metal units, ps) when the dump carries them."""
    info: dict[str, Any] = {"step_interval": None, "file_frame_interval_ps": None}
    st = [s for s in steps if s is not None]
    if len(st) == len(steps) and len(st) >= 2:
        d = np.diff(np.asarray(st, dtype=np.int64))
        if np.any(d <= 0) or np.any(d != d[0]):
            raise UserError(f"frames are not evenly spaced in time (step differences {sorted(set(d.tolist()))[:5]})",
                            "give a trajectory with a constant dump interval (concatenate segments without overlap)")
        info["step_interval"] = int(d[0])
    tt = [t for t in times if t is not None]
    if len(tt) == len(times) and len(tt) >= 2:
        dtf = np.diff(np.asarray(tt, dtype=float))
        if np.all(dtf > 0) and np.ptp(dtf) <= rtol * dtf.mean() + 1e-12:
            info["file_frame_interval_ps"] = float(dtf.mean())
    dt_file = info["file_frame_interval_ps"]
    if timestep_ps is None:
        if dt_file is None:
            raise UserError("the time between frames is unknown (the file has no times)",
                            "give it (--timestep-ps DT, timestep_ps=DT): the MD time step × the dump interval, in ps")
        return dt_file, info
    if not (math.isfinite(timestep_ps) and timestep_ps > 0):
        raise UserError(f"the time between frames must be positive (got {timestep_ps} ps)",
                        "give --timestep-ps DT: the MD time step × the dump interval, in ps")
    if dt_file is not None and abs(dt_file - timestep_ps) > rtol * dt_file:
        raise UserError(f"--timestep-ps {timestep_ps:g} disagrees with the file, whose frames are {dt_file:g} ps apart "
                        "(ITEM: TIME)", f"give --timestep-ps {dt_file:g} or leave it out")
    return float(timestep_ps), info


# --------------------------------------------------------------------------------------------- results
@dataclass
class PolaronResult:
    """JSON-ready ``results`` plus the arrays the plots need (not serialised)."""

    results: dict[str, Any]
    states: np.ndarray | None = None  # (T, n_fe) int8 valence per kept frame
    fe_layer: np.ndarray | None = None  # layer index per Fe
    gmm: GMMFit | None = None


def _rate(n_events: int, event_frames: np.ndarray, n_units: int, n_frames: int, dt: float, n_blocks: int):
    if n_units == 0 or n_frames < 2:
        return None, None, None
    dur = (n_frames - 1) * dt
    rate = n_events / (n_units * dur)
    poisson = math.sqrt(n_events) / (n_units * dur)
    nb = min(n_blocks, n_frames // 2)
    if nb < 2:
        return rate, None, poisson
    edges = np.linspace(0, n_frames, nb + 1)
    counts = np.histogram(event_frames, bins=edges)[0]
    rb = counts / (n_units * np.diff(edges) * dt)
    return rate, float(np.std(rb, ddof=1) / math.sqrt(nb)), poisson


def _thin_rows(a: np.ndarray, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of consecutive blocks of rows (≤ max_rows blocks) and the block centre indices."""
    T = len(a)
    m = max(1, int(math.ceil(T / max_rows)))
    nb = T // m
    if nb == 0:
        return a.astype(float), np.arange(T, dtype=float)
    head = a[: nb * m].reshape(nb, m, *a.shape[1:]).mean(axis=1)
    centres = np.arange(nb) * m + 0.5 * (m - 1)
    if nb * m < T:
        head = np.concatenate([head, a[nb * m:].mean(axis=0, keepdims=True)])
        centres = np.append(centres, 0.5 * (nb * m + T - 1))
    return head, centres


def _too_coarse(dt: float, p: PolaronParams) -> None:
    raise UserError(f"frames are {dt:g} ps apart, longer than the {p.min_state_ps:g} ps minimum state duration: "
                    "valence flips cannot be resolved", "check --timestep-ps (in ps, not fs) or dump frames more often")


def polaron_statistics(bonds: np.ndarray, timestep_ps: float, *, fe_positions: np.ndarray, cell: np.ndarray,
                       origin: np.ndarray | None = None, params: PolaronParams | None = None,
                       li_transitions: np.ndarray | None = None, li_sites: LiSites | None = None, n_li: int = 0,
                       rdf_samples: Mapping[int, tuple] | None = None, temperature_K: float | None = None,
                       label: str | None = None, extra: Mapping[str, Any] | None = None) -> PolaronResult:
    """Everything from the per-frame bond lengths ``(T, n_fe)`` (and the Li transitions / g(r) samples).

    ``fe_positions``/``cell``/``origin``: reference geometry (first frame) for Fe–Fe distances and layers.
    """
    p = params or PolaronParams()
    p.validate()
    bonds = np.asarray(bonds)
    if bonds.ndim != 2 or bonds.shape[1] == 0:
        raise UserError(f"bond lengths must be (frames, Fe) with at least one Fe, got shape {bonds.shape}",
                        "the trajectory needs Fe and O atoms")
    T_all, n_fe = bonds.shape
    dt = float(timestep_ps)
    if p.min_state_ps > 0 and dt > p.min_state_ps:
        _too_coarse(dt, p)
    k0 = int(math.floor(p.discard_fraction * T_all))
    T = T_all - k0
    if T < 2:
        raise UserError(f"only {T} frame(s) left after discarding {k0}", "give a longer trajectory or a smaller discard fraction")
    warnings: list[str] = []
    raw = bonds[k0:]
    gmm = fit_valence_gmm(raw, random_state=p.gmm_random_state, max_samples=p.gmm_max_samples, boundary_A=p.boundary_A)
    if gmm.ashman_d < 2.0:
        warnings.append(f"the two bond-length Gaussians overlap (Ashman D = {gmm.ashman_d:.2f} < 2, Bayes error "
                        f"{gmm.bayes_error:.3f}): Fe2+ and Fe3+ are not well separated (one valence only?)")
    smoothed = smooth_bonds(bonds, dt, p.filter_sigma_ps)[k0:]
    min_frames = max(1, int(math.ceil(p.min_state_ps / dt - 1e-6)))
    states, flips = valence_states(smoothed, gmm.boundary_A, min_frames)
    del smoothed
    dur = (T - 1) * dt
    is3 = states == 3
    n_flips = int(len(flips["frame"]))
    rate, rate_sig, rate_pois = _rate(n_flips, flips["frame"], n_fe, T, dt, p.n_blocks)
    res: dict[str, Any] = {
        "temperature_K": temperature_K, "label": label, "timestep_ps": dt, "n_frames": int(T),
        "n_frames_read": int(T_all), "n_frames_discarded": int(k0), "discard_fraction": p.discard_fraction,
        "n_fe": int(n_fe), "n_li": int(n_li), "duration_ps": dur,
        "gmm": {k: v for k, v in gmm.to_dict().items() if k != "histogram"} | {"histogram": gmm.histogram,
                                                                                 "component_valence": [3, 2]},
        "fe3_fraction": float(is3.mean()), "fe3_fraction_raw": float((raw < gmm.boundary_A).mean()),
        "n_flips": n_flips, "n_flips_oxidation": int((flips["sign"] > 0).sum()),
        "n_flips_reduction": int((flips["sign"] < 0).sum()),
        "flip_rate_per_fe_per_ps": rate, "flip_rate_sigma_per_fe_per_ps": rate_sig,
        "flip_rate_poisson_sigma_per_fe_per_ps": rate_pois, "min_state_frames": min_frames,
        "mean_bond_A": {"fe3": float(raw[is3].mean()) if is3.any() else None,
                        "fe2": float(raw[~is3].mean()) if (~is3).any() else None},
    }
    # Li hops
    res.update({"n_li_hops": 0, "li_hop_rate_per_li_per_ps": None, "li_hop_rate_sigma_per_li_per_ps": None,
                "li_hop_rate_poisson_sigma_per_li_per_ps": None, "n_li_sites": None, "li_sites_source": None,
                "n_li_site_changes_not_hops": 0, "n_li_slow_transits": 0})
    if n_li and li_sites is not None:
        if dt > p.li_hop_max_ps * (1 + 1e-9):
            warnings.append(f"frames are {dt:g} ps apart, longer than the {p.li_hop_max_ps:g} ps hop time: a site change "
                            "between adjacent frames is counted as a hop")
        hops = li_hops(li_transitions if li_transitions is not None else np.zeros((0, 5)), li_sites, dt,
                       p.li_hop_max_ps, start_frame=k0)
        n_h = int(len(hops["li"]))
        hr, hs, hp = _rate(n_h, hops["departure"], n_li, T, dt, p.n_blocks)
        res.update({"n_li_hops": n_h, "li_hop_rate_per_li_per_ps": hr, "li_hop_rate_sigma_per_li_per_ps": hs,
                    "li_hop_rate_poisson_sigma_per_li_per_ps": hp, "n_li_sites": li_sites.n_sites,
                    "li_sites_source": li_sites.source, "n_li_site_changes_not_hops": hops["n_other"],
                    "n_li_slow_transits": hops["n_slow"], "li_hop_axis": p.hop_axis})
    # event pairs
    res["pairs"] = event_pair_statistics(flips["frame"], flips["fe"], flips["sign"], fe_positions, cell, origin, dt, p)
    # layers
    layer, centres = fe_layers(fe_positions, cell, origin, p.layer_axis, p.layer_gap_A)
    n_layers = len(centres)
    onehot = np.zeros((n_fe, n_layers))
    onehot[np.arange(n_fe), layer] = 1.0
    n_per = onehot.sum(axis=0)
    frac_t = (is3.astype(np.float32) @ onehot.astype(np.float32)) / n_per  # (T, n_layers)
    thin, idx = _thin_rows(frac_t, 500)
    flips_per_layer = np.bincount(layer[flips["fe"]], minlength=n_layers) if n_flips else np.zeros(n_layers)
    res["layers"] = {"axis": p.layer_axis, "centers_A": centres.tolist(), "n_fe": n_per.astype(int).tolist(),
                     "fe3_fraction": frac_t.mean(axis=0).tolist(),
                     "flip_rate_per_fe_per_ps": (flips_per_layer / (n_per * dur)).tolist(),
                     "n_flips": np.asarray(flips_per_layer, dtype=int).tolist(),
                     "time_ps": (idx * dt).tolist(), "fe3_fraction_vs_time": thin.tolist()}
    # Li–Fe2+ / Li–Fe3+ g(r)
    res["li_fe_rdf"] = _li_fe_rdf(rdf_samples, states, k0, p) if (rdf_samples and n_li) else None
    res["parameters"] = p.to_dict()
    res["warnings"] = warnings
    for w in warnings:
        log.warning(w)
    if extra:
        res.update(extra)
        if extra.get("li_hops_skipped"):
            warnings.append(str(extra["li_hops_skipped"]))
            log.warning(warnings[-1])
    return PolaronResult(results=to_json_dict(res), states=states, fe_layer=layer, gmm=gmm)


def _li_fe_rdf(samples: Mapping[int, tuple], states: np.ndarray, k0: int, p: PolaronParams) -> dict[str, Any] | None:
    use = sorted(k for k in samples if k >= k0)
    if not use:
        return None
    rmax = min(samples[k][4] for k in use)
    nb = int(math.floor(rmax / p.rdf_dr_A + 1e-9))
    edges = np.arange(nb + 1) * p.rdf_dr_A
    counts = {2: np.zeros(nb), 3: np.zeros(nb)}
    norm = {2: 0.0, 3: 0.0}
    n_centres = {2: 0, 3: 0}
    for k in use:
        fe_idx, dist, n_li, vol, _ = samples[k]
        st = states[k - k0]
        b = (dist / p.rdf_dr_A).astype(np.int64)
        ok = b < nb
        cls = st[fe_idx[ok]]
        for c in (2, 3):
            counts[c] += np.bincount(b[ok][cls == c], minlength=nb)[:nb]
            n_c = int((st == c).sum())
            norm[c] += n_li * n_c / vol
            n_centres[c] += n_c
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    out: dict[str, Any] = {"r_A": (0.5 * (edges[1:] + edges[:-1])).tolist(), "n_frames": len(use),
                           "frames": [int(k - k0) for k in use]}
    for c in (2, 3):
        out[f"g_Li_Fe{c}"] = (counts[c] / (norm[c] * shell)).tolist() if norm[c] > 0 else None
        out[f"n_li_around_Fe{c}"] = (np.cumsum(counts[c]) / n_centres[c]).tolist() if n_centres[c] else None
    return out


# --------------------------------------------------------------------------------------------- streaming driver
class PolaronAccumulator:
    """Stream frames (:meth:`add` / :meth:`add_chunk`); :meth:`result` runs :func:`polaron_statistics`."""

    def __init__(self, params: PolaronParams | None = None, li_sites: str | Path | LiSites | None = None,
                 li_sites_format: str | None = None, li_sites_types: Any = None, timestep_ps: float | None = None):
        self.p = params or PolaronParams()
        self.timestep_ps = timestep_ps  # checked against the first two frames (fail before reading the rest)
        self.p.validate()
        self.li_sites_arg = li_sites
        self.li_sites_format, self.li_sites_types = li_sites_format, li_sites_types
        self.n = 0
        self._chunks: list[np.ndarray] = []
        self._pending: list[np.ndarray] = []
        self.steps: list[int | None] = []
        self.times: list[float | None] = []
        self.sites: LiSites | None = None
        self.tracker: _LiHopTracker | None = None
        self.rdf_stride = 1
        self.rdf: dict[int, tuple] = {}
        self.li_hops_skipped: str | None = None

    def _first(self, fr: Frame) -> None:
        if fr.symbols is None:
            raise UserError("the trajectory has LAMMPS types but no element names",
                            "give a type map, e.g. --types 1=Li,2=Fe,3=P,4=O")
        sym = np.asarray(fr.symbols).astype(str)
        self.fe = np.flatnonzero(sym == "Fe")
        self.o = np.flatnonzero(sym == "O")
        self.li = np.flatnonzero(sym == "Li")
        present = sorted(set(sym.tolist()))
        for name, idx in (("Fe", self.fe), ("O", self.o)):
            if len(idx) == 0:
                raise UserError(f"the trajectory has no {name} atoms (elements: {', '.join(present)})",
                                "the polaron analysis needs Fe and O; check the type map, e.g. --types 1=Li,2=Fe,3=P,4=O")
        self.n_atoms = fr.n_atoms
        self.fe_ref = fr.positions[self.fe].copy()
        self.cell_ref = np.asarray(fr.cell, dtype=float).copy()
        self.origin_ref = np.asarray(fr.origin, dtype=float).copy()
        if len(self.li) and self.p.li_hops:
            li_pos = fr.positions[self.li]
            if isinstance(self.li_sites_arg, LiSites):
                self.sites = self.li_sites_arg
            elif self.li_sites_arg is not None:
                self.sites = li_sites_from_file(self.li_sites_arg, fr.cell, fr.origin, li_pos, self.p,
                                                format=self.li_sites_format, types=self.li_sites_types)
            else:
                try:
                    self.sites = olivine_li_sites(fr.cell, fr.origin, li_pos, self.p)
                except LiOffSites as exc:  # Li off the ideal sites (a melted cell, a poor model): no hops, said so
                    self.li_hops_skipped = f"{exc.problem}; Li hops not analysed"
                    return
            self.tracker = _LiHopTracker(len(self.li))

    def add(self, fr: Frame) -> None:
        k = self.n
        if k == 0:
            self._first(fr)
        elif fr.n_atoms != self.n_atoms:
            raise UserError(f"the number of atoms changes from {self.n_atoms} to {fr.n_atoms} at frame {k}",
                            "analyse a trajectory with a fixed number of atoms")
        # the cutoff checks the first frame (a wrong type map has no FeO6); later frames search 1.5 x as
        # far, so one stretched Fe-O bond in a hot frame is data, not an error
        cutoff = self.p.fe_o_cutoff_A if k == 0 else 1.5 * self.p.fe_o_cutoff_A
        self._pending.append(fe_o_bond_lengths(fr, self.fe, self.o, cutoff, self.p.n_oxygen,
                                               frame_index=k).astype(np.float32))
        if self.tracker is not None:
            site, _ = _assign_sites(fr.positions[self.li], self.sites, fr.cell, fr.origin, self.p.li_site_radius_A,
                                    self.p.li_site_search_A)
            self.tracker.add(k, site)
        if len(self.li) and k % self.rdf_stride == 0:
            self._rdf_sample(k, fr)
        self.steps.append(fr.step)
        self.times.append(fr.time)
        self.n += 1
        if self.n == 2:
            dt, _ = resolve_frame_interval(self.timestep_ps, self.steps, self.times)
            if self.p.min_state_ps > 0 and dt > self.p.min_state_ps:
                _too_coarse(dt, self.p)
        if len(self._pending) >= self.p.chunk:
            self._flush()

    def add_chunk(self, frames: Iterable[Frame]) -> None:
        for fr in frames:
            self.add(fr)

    def _flush(self) -> None:
        if self._pending:
            self._chunks.append(np.stack(self._pending))
            self._pending = []

    def _rdf_sample(self, k: int, fr: Frame) -> None:
        rmax = min(self.p.rdf_rmax_A, 0.999 * inscribed_radius(fr.cell))
        nl = len(self.li)
        sub = Frame(positions=np.concatenate([fr.positions[self.li], fr.positions[self.fe]]), cell=fr.cell,
                    origin=fr.origin)
        i, j, d, _ = neighbor_pairs(sub, rmax, full=False)
        m = (i < nl) & (j >= nl)
        self.rdf[k] = ((j[m] - nl).astype(np.int32), d[m].astype(np.float32), nl, fr.volume, rmax)
        if len(self.rdf) > self.p.rdf_max_frames:
            self.rdf_stride *= 2
            self.rdf = {kk: v for kk, v in self.rdf.items() if kk % self.rdf_stride == 0}

    def bonds(self) -> np.ndarray:
        self._flush()
        if not self._chunks:
            raise UserError("no frames were read", "check the file, --format and --types")
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0]

    def result(self, timestep_ps: float | None = None, temperature_K: float | None = None, label: str | None = None,
               extra: Mapping[str, Any] | None = None) -> PolaronResult:
        bonds = self.bonds()
        dt, info = resolve_frame_interval(timestep_ps, self.steps, self.times)
        if info["step_interval"]:
            info["md_timestep_fs_implied"] = dt * 1000.0 / info["step_interval"]
        return polaron_statistics(
            bonds, dt, fe_positions=self.fe_ref, cell=self.cell_ref, origin=self.origin_ref, params=self.p,
            li_transitions=self.tracker.transitions() if self.tracker else None, li_sites=self.sites,
            n_li=len(self.li), rdf_samples=self.rdf, temperature_K=temperature_K, label=label,
            extra=dict(info) | {"n_o": int(len(self.o)), "li_hops_skipped": self.li_hops_skipped} | dict(extra or {}))


def _frames_of(source: Any, format: str | None, types: Any) -> Iterator[Frame]:  # noqa: A002
    if isinstance(source, (str, Path)):
        return iter_frames(source, format=format, types=types)
    if isinstance(source, (list, tuple)) and source and isinstance(source[0], (str, Path)):
        return itertools.chain.from_iterable(iter_frames(s, format=format, types=types) for s in source)
    if callable(source):
        return iter(source())
    return iter(source)


def analyze_polarons(source: Any, timestep_ps: float | None = None, *, temperature_K: float | None = None,
                     params: PolaronParams | Mapping[str, Any] | None = None, li_sites: str | Path | LiSites | None = None,
                     format: str | None = None, types: Any = None, label: str | None = None,  # noqa: A002
                     progress: bool = False) -> PolaronResult:
    """The whole polaron analysis of a trajectory, streamed once in chunks of frames.

    ``source``: a file, a list of consecutive files, an iterable of :class:`Frame` or a zero-argument
    callable returning one. ``timestep_ps``: time between frames (None: from the file's ``ITEM: TIME``).
    """
    p = params if isinstance(params, PolaronParams) else PolaronParams.from_dict(params)
    acc = PolaronAccumulator(p, li_sites=li_sites, timestep_ps=timestep_ps)
    it = _frames_of(source, format, types)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="polarons", unit="frame")
    while True:
        block = list(itertools.islice(it, p.chunk))
        if not block:
            break
        acc.add_chunk(block)
    files = [str(s) for s in (source if isinstance(source, (list, tuple)) else [source])
             if isinstance(s, (str, Path))]
    return acc.result(timestep_ps, temperature_K=temperature_K, label=label, extra={"files": files} if files else None)


# --------------------------------------------------------------------------------------------- Arrhenius of rates
_RATE_KEYS = {"flip": ("flip_rate_per_fe_per_ps", "flip_rate_sigma_per_fe_per_ps", "flip_rate_poisson_sigma_per_fe_per_ps"),
              "hop": ("li_hop_rate_per_li_per_ps", "li_hop_rate_sigma_per_li_per_ps",
                      "li_hop_rate_poisson_sigma_per_li_per_ps")}


def _layer_rate(r: Mapping[str, Any], layers: Sequence[int], name: str) -> tuple[float, float]:
    lay = r.get("layers") or {}
    n_fe, n_fl = lay.get("n_fe") or [], lay.get("n_flips") or []
    if not layers or max(layers) >= len(n_fe) or min(layers) < -len(n_fe):
        raise UserError(f"{name}: has {len(n_fe)} Fe layers, cannot select {list(layers)}",
                        "give layer indices as listed in layers.centers_A (0 = lowest)")
    n = sum(n_fl[k] for k in layers)
    fe_time = sum(n_fe[k] for k in layers) * r["duration_ps"]
    return n / fe_time, math.sqrt(n) / fe_time


def rate_arrhenius(results: Sequence[Mapping[str, Any]], rate: str = "flip", *, T_min: float | None = None,
                   names: Sequence[str] | None = None, layers: Sequence[int] | None = None) -> dict[str, Any]:
    """Arrhenius fit ln r = ln A − Ea/(kB T) of flip or hop rates from polaron results (one per T).

    Weighted by the block σ of each rate (the Poisson σ where the block σ is missing or zero).
    ``layers``: flip rate of those Fe layers only (indices into ``layers.centers_A``, e.g. the
    interfacial ones), with its Poisson σ. Returns ``A_per_ps``, ``Ea_eV``, ``Ea_sigma_eV``,
    ``n_points`` and the points; per ``label`` (e.g. the Li ordering) the same under ``by_label``
    where a label has ≥ 2 temperatures.
    """
    from mlipflow.analysis.dynamics import arrhenius_fit

    if rate not in _RATE_KEYS:
        raise UserError(f"unknown rate {rate!r}", "use --rate flip or --rate hop")
    key, skey, pkey = _RATE_KEYS[rate]
    names = list(names) if names is not None else [f"result {k}" for k in range(len(results))]
    pts = []
    for nm, r in zip(names, results):
        r = r.get("results", r) if isinstance(r, Mapping) else r
        if key not in r:
            raise UserError(f"{nm}: not a polaron result (no {key})", "give JSON files written by `mlipflow analyze polarons`")
        if r.get("temperature_K") is None:
            raise UserError(f"{nm}: no temperature_K", "rerun `mlipflow analyze polarons` with --temperature K")
        v = r.get(key)
        s = r.get(skey) or r.get(pkey)
        if layers is not None and rate == "flip":
            v, s = _layer_rate(r, list(layers), nm)
        if v is None or not v > 0:
            raise UserError(f"{nm}: the {rate} rate at {r['temperature_K']} K is {v}: an Arrhenius fit needs positive rates",
                            "drop that result or analyse a longer run")
        pts.append({"T": float(r["temperature_K"]), "rate": float(v), "sigma": float(s) if s else None,
                    "label": r.get("label"), "bayes_error": (r.get("gmm") or {}).get("bayes_error"), "name": nm})
    temps = sorted({q["T"] for q in pts})
    if len(temps) < 2:
        raise UserError(f"an Arrhenius fit needs results at two or more temperatures, got {len(pts)} result(s) at "
                        f"{', '.join(f'{t:g} K' for t in temps) or 'none'}",
                        "run `mlipflow analyze polarons` at several temperatures and pass all the JSON files")

    def fit(sel):
        T = [q["T"] for q in sel]
        y = [q["rate"] for q in sel]
        sg = [q["sigma"] for q in sel]
        f = arrhenius_fit(T, y, sg if all(s and s > 0 for s in sg) else None, T_min=T_min)
        return f, {"A_per_ps": f.D0, "lnA_sigma": f.sigma_lnD0, "Ea_eV": f.Ea_eV, "Ea_sigma_eV": f.sigma_Ea_eV,
                   "n_points": f.n_fit, "chi2_red": f.chi2_red, "weighted": f.sigma is not None}

    f_all, out = fit(pts)
    out = {"rate": rate, "rate_key": key, "layers": None if layers is None else list(layers)} | out | {
        "T_min": T_min, "points": pts, "units": "A in 1/ps, Ea in eV"}
    by_label: dict[str, Any] = {}
    labels = sorted({q["label"] for q in pts if q["label"] is not None})
    for lab in labels:
        sel = [q for q in pts if q["label"] == lab]
        entry: dict[str, Any] = {"points": sel}
        if len({q["T"] for q in sel}) >= 2:
            entry |= fit(sel)[1]
        by_label[lab] = entry
    out["by_label"] = by_label
    out["_fit"] = f_all
    return out
