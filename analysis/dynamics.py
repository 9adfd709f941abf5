"""Ion dynamics from MD trajectories: MSD, diffusion coefficients with error bars, Arrhenius,
self van Hove functions and fast/slow ion classes.

Pure numpy/scipy: every function takes arrays, so it is usable without jobflow or any reader.

Conventions
-----------
* ``positions``: array ``(T, N, 3)`` of **unwrapped** Cartesian coordinates in Å (frames evenly
  spaced in time; a ``numpy.memmap`` works, atoms are processed in chunks).
* ``timestep_ps``: time between two stored frames in ps (MD timestep × dump interval).
* ``species``: sequence of ``N`` labels (e.g. ``"Na"``); results are per species.
* Diffusion coefficients are given in Å²/ps and cm²/s (1 Å²/ps = 1e-4 cm²/s).

MSD algorithm (all time origins, FFT)
-------------------------------------
For one atom with positions r(k), k = 0..T-1, the MSD averaged over all T - m time origins is

    MSD(m) = 1/(T-m) Σ_k |r(k+m) - r(k)|² = S1(m) - 2 S2(m),
    S1(m)  = 1/(T-m) Σ_k [ |r(k+m)|² + |r(k)|² ]        (cumulative sums, O(T)),
    S2(m)  = 1/(T-m) Σ_k r(k)·r(k+m)                  (autocorrelation by zero-padded FFT, O(T log T)),

(Kneller, Keiner, Kneller & Schiller, Comput. Phys. Commun. 91, 191 (1995) "nMoldyn";
Calandrini et al., Collection SFN 12, 201 (2011)). It equals the direct O(T²) average exactly up
to floating-point rounding (tested). Each atom's first position is subtracted first (MSD is
translation invariant) to keep the rounding small with float32 input. For species averages the
power spectra |FFT|² are summed over the three components and over the atoms of a species before a
single inverse FFT (S2 is linear in the power spectrum), so the cost is one forward real FFT per
atom and component plus one inverse FFT per species and chunk of atoms.

Diffusion coefficient and its error (block averaging over time)
---------------------------------------------------------------
D = slope / (2 d) of MSD(t) against t (d = 3 in 3D), fitted by ordinary least squares on the
lag times inside the *diffusive window* [t0, t1]. Without an explicit window, the window is the
longest stretch (in ln t) where the local log–log slope d ln MSD / d ln t stays within
``slope_tol`` of 1, searched for lags up to ``max_lag_fraction`` × the block length (the
ballistic start, slope ≈ 2, and the cage/sub-diffusive regime, slope < 1, are excluded).

The statistical error is a **block average over time**: the trajectory is cut into
``n_blocks`` consecutive, non-overlapping blocks of equal length; in each block the MSD is
recomputed over all origins inside the block and D_b is fitted on the same window. The blocks
are treated as independent samples: σ(D) = std(D_b, ddof=1) / √n_blocks. (The delete-one-block
jackknife gives the same σ here: with equal blocks the leave-one-out MSD is the mean of the other
blocks' MSDs and the least-squares slope is linear in the MSD.) The reported D is fitted on the
MSD of the whole trajectory (all origins); the block mean is reported as well. The window must fit
inside one block; a given window that does not is served by fewer blocks (down to 2).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from mlipflow.errors import UserError

log = logging.getLogger(__name__)

#: Boltzmann constant in eV/K.
KB_EV = 8.617333262e-5
#: 1 Å²/ps in cm²/s.
A2PS_TO_CM2S = 1e-4


# --------------------------------------------------------------------------------------------
# MSD
# --------------------------------------------------------------------------------------------


def _check_positions(positions) -> tuple[int, int]:
    shape = getattr(positions, "shape", None)
    if shape is None or len(shape) != 3 or shape[2] != 3:
        raise UserError(f"positions must have shape (frames, atoms, 3), got {shape}",
                        "pass unwrapped Cartesian coordinates as a (T, N, 3) array")
    if shape[0] < 2:
        raise UserError(f"need at least 2 frames for an MSD, got {shape[0]}", "give a longer trajectory")
    return int(shape[0]), int(shape[1])


def _msd_fft_sums(x: np.ndarray, groups: Sequence[np.ndarray] | None) -> list[np.ndarray] | np.ndarray:
    """Core of the FFT MSD for ``x`` ``(T, n, 3)``.

    ``groups`` None: per-atom MSD ``(T, n)``. Otherwise one boolean mask (over the n atoms) per
    group, and the *sum* over the group's atoms of the MSD, ``(T,)`` each: the power spectra are
    summed over the three components and over the group's atoms before one inverse FFT (the
    autocorrelation is linear in the power spectrum), so a group costs one inverse transform.
    """
    from scipy import fft as sfft

    T, n = x.shape[0], x.shape[1]
    nfft = sfft.next_fast_len(2 * T, real=True)
    # zero-padded, time on the last (contiguous) axis: 3x faster FFTs than along axis 0; the first
    # position is subtracted (translation invariance) to keep the rounding small
    # float32 trajectories are transformed in single precision (complex64): half the memory
    # traffic, ~2x faster FFTs; |r|² sums stay in float64
    work = np.float32 if np.asarray(x[:1]).dtype == np.float32 else np.float64
    y2 = np.zeros((n * 3, nfft), dtype=work)
    for t0 in range(0, T, 1024):  # transpose in cache-sized time blocks (2-3x faster than at once)
        t1 = min(t0 + 1024, T)
        y2[:, t0:t1] = np.asarray(x[t0:t1]).reshape(t1 - t0, n * 3).T
    y2[:, :T] -= y2[:, :1]
    y = y2.reshape(n, 3, nfft)
    yt = y[:, :, :T]
    d2 = np.einsum("nkt,nkt->nt", yt, yt, dtype=np.float64)  # |r(k)|², (n, T)
    f = sfft.rfft(y, axis=-1, overwrite_x=True)
    p = np.abs(f)
    p *= p
    power = p.sum(axis=1, dtype=np.float64)  # |F|² summed over x, y, z: (n, nfft//2+1)
    del f, p
    norm = np.arange(T, 0, -1, dtype=np.float64)  # T - m

    def s1_of(d2_):  # Σ_{k=m}^{T-1} |r(k)|² + Σ_{k=0}^{T-1-m} |r(k)|², along the last axis
        c = np.cumsum(d2_, axis=-1)
        tot = c[..., -1:]
        lower = np.concatenate([np.zeros_like(tot), c[..., :-1]], axis=-1)  # Σ_{k<m}
        return (tot - lower) + c[..., ::-1]  # c[T-1-m] = Σ_{k≤T-1-m}

    if groups is None:
        acf = sfft.irfft(power, n=nfft, axis=-1)[:, :T]  # (n, T)
        out = ((s1_of(d2) - 2.0 * acf) / norm).T
        np.maximum(out, 0.0, out=out)  # rounding can give -1e-16 at small lags
        out[0] = 0.0
        return out
    res = []
    for g in groups:
        acf = sfft.irfft(power[g].sum(axis=0), n=nfft)[:T]
        o = (s1_of(d2[g].sum(axis=0)) - 2.0 * acf) / norm
        o[0] = 0.0
        res.append(o)
    return res


def msd_fft_atoms(x: np.ndarray) -> np.ndarray:
    """All-origins MSD of each atom by FFT.

    ``x``: ``(T, n, 3)`` unwrapped positions of ``n`` atoms. Returns ``(T, n)`` float64, row ``m``
    the MSD at lag ``m`` frames averaged over the ``T - m`` origins.
    """
    return _msd_fft_sums(x, None)


def msd_direct_atoms(x: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """Reference all-origins MSD by the direct O(T²) double loop (for tests); ``(T, n)``."""
    x = np.asarray(x, dtype=np.float64)
    T = x.shape[0]
    max_lag = T if max_lag is None else min(max_lag, T)
    out = np.zeros((T, x.shape[1]))
    for m in range(1, max_lag):
        d = x[m:] - x[:-m]
        out[m] = np.einsum("tnk,tnk->tn", d, d).mean(axis=0)
    return out


@dataclass
class MSDResult:
    """MSD per species (Å²) on lag times (ps)."""

    lag_ps: np.ndarray
    msd: dict[str, np.ndarray]
    n_atoms: dict[str, int]
    per_atom: np.ndarray | None = None  # (T, N) when requested
    species: np.ndarray | None = None   # (N,) labels
    blocks: dict[str, list[np.ndarray]] | None = None  # per species, MSD of each time block

    def to_dict(self) -> dict[str, Any]:
        return {"lag_ps": self.lag_ps.tolist(), "msd_A2": {k: v.tolist() for k, v in self.msd.items()},
                "n_atoms": dict(self.n_atoms)}


def _species_array(species, n_atoms: int) -> np.ndarray:
    if species is None:
        return np.array(["X"] * n_atoms, dtype=object)
    sp = np.asarray(species).astype(str)
    if sp.shape != (n_atoms,):
        raise UserError(f"species has {sp.size} labels for {n_atoms} atoms",
                        "give one species label per atom")
    return sp


def _drift(positions, masses=None, indices=None, chunk_frames: int = 4096) -> np.ndarray:
    """Per-frame (mass-weighted) mean displacement from frame 0 of all atoms (or of ``indices``), ``(T, 3)``."""
    T, N = positions.shape[:2]
    idx = np.arange(N) if indices is None else np.asarray(indices, dtype=int)
    if idx.size == 0:
        raise UserError("no atoms to compute the drift from", "choose other drift atoms")
    w = np.ones(idx.size) if masses is None else np.asarray(masses, dtype=np.float64)[idx]
    w = w / w.sum()
    out = np.empty((T, 3))
    ref = np.asarray(positions[0][idx], dtype=np.float64)
    for a in range(0, T, chunk_frames):
        blk = np.asarray(positions[a:a + chunk_frames][:, idx], dtype=np.float64) - ref
        out[a:a + chunk_frames] = np.einsum("tnk,n->tk", blk, w)
    return out


def compute_msd(positions, species=None, timestep_ps: float = 1.0, *, per_atom: bool = False,
                remove_drift: Any = False, masses=None, chunk_atoms: int = 64,
                select: Iterable[str] | None = None, n_blocks: int = 0, progress: bool = False) -> MSDResult:
    """All-origins MSD per species by FFT.

    ``remove_drift`` subtracts the (mass-weighted, if ``masses``) centre-of-mass displacement of
    all atoms frame by frame (thermostat drift); an index array instead of True takes the drift
    of those atoms only (e.g. the framework, as pymatgen and kinisi do). ``select`` limits the species computed.
    Atoms are processed ``chunk_atoms`` at a time, so ``positions`` may be a memmap larger than RAM
    (memory ≈ T × chunk_atoms × 3 × 8 bytes × ~6). ``n_blocks`` > 0 also returns the MSD of each of
    ``n_blocks`` consecutive equal time blocks (``T // n_blocks`` frames each, computed in the same
    pass over the data) in ``MSDResult.blocks``.
    """
    T, N = _check_positions(positions)
    if timestep_ps <= 0:
        raise UserError(f"timestep must be positive, got {timestep_ps} ps", "give the time between frames")
    sp = _species_array(species, N)
    wanted = list(dict.fromkeys(sp)) if select is None else list(select)
    missing = [s for s in wanted if s not in set(sp)]
    if missing:
        raise UserError(f"species {missing} not in the trajectory (has {sorted(set(sp))})",
                        "choose species present in the trajectory")
    if isinstance(remove_drift, (bool, np.bool_)) or remove_drift is None:
        drift = _drift(positions, masses) if remove_drift else None
    else:
        drift = _drift(positions, masses, indices=remove_drift)
    idx_all = np.flatnonzero(np.isin(sp, wanted))
    sums = {s: np.zeros(T) for s in wanted}
    L = T // n_blocks if n_blocks else 0
    if n_blocks and L < 2:
        raise UserError(f"trajectory too short ({T} frames) for {n_blocks} blocks", "use fewer blocks")
    bsums = {s: [np.zeros(L) for _ in range(n_blocks)] for s in wanted} if n_blocks else None
    pa = np.zeros((T, N)) if per_atom else None
    chunks = range(0, len(idx_all), chunk_atoms)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="MSD", unit="chunk")
    for a in chunks:
        idx = idx_all[a:a + chunk_atoms]
        if idx.size and np.all(np.diff(idx) == 1):
            x = positions[:, idx[0]:idx[-1] + 1, :]  # a view (read lazily from a memmap)
        else:
            x = np.asarray(positions[:, idx, :])
        if drift is not None:
            x = np.asarray(x, dtype=np.float64) - drift[:, None, :]
        labels = sp[idx]
        masks = {s: labels == s for s in np.unique(labels)}
        if pa is not None:
            m = _msd_fft_sums(x, None)
            pa[:, idx] = m
            for s, mk in masks.items():
                sums[s] += m[:, mk].sum(axis=1)
        else:
            for s, v in zip(masks, _msd_fft_sums(x, list(masks.values()))):
                sums[s] += v
        for b in range(n_blocks):
            for s, v in zip(masks, _msd_fft_sums(x[b * L:(b + 1) * L], list(masks.values()))):
                bsums[s][b] += v
    counts = {s: int(np.sum(sp == s)) for s in wanted}
    msd = {s: sums[s] / counts[s] for s in wanted}
    blocks = {s: [v / counts[s] for v in bsums[s]] for s in wanted} if n_blocks else None
    return MSDResult(lag_ps=np.arange(T) * float(timestep_ps), msd=msd, n_atoms=counts,
                     per_atom=pa, species=sp, blocks=blocks)


# --------------------------------------------------------------------------------------------
# Diffusion coefficient
# --------------------------------------------------------------------------------------------


def loglog_slope(lag_ps: np.ndarray, msd: np.ndarray, n_points: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Local slope d ln MSD / d ln t on a log-spaced grid of lags (≥ 1 frame).

    Returns ``(t, beta)``: β ≈ 2 ballistic, ≈ 1 diffusive, < 1 caged/sub-diffusive.
    """
    T = len(lag_ps)
    if T < 3:
        return np.array([]), np.array([])
    idx = np.unique(np.round(np.geomspace(1, T - 1, n_points)).astype(int))
    idx = idx[msd[idx] > 0]
    if idx.size < 3:
        return np.array([]), np.array([])
    lt, lm = np.log(lag_ps[idx]), np.log(msd[idx])
    beta = np.gradient(lm, lt)
    if beta.size >= 5:  # light smoothing (3-point running mean)
        beta = np.convolve(np.pad(beta, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    return lag_ps[idx], beta


def find_diffusive_window(lag_ps: np.ndarray, msd: np.ndarray, t_max: float | None = None,
                          slope_tol: float = 0.15, min_frames: int = 5) -> tuple[tuple[float, float], bool]:
    """Automatic diffusive window ``(t0, t1)`` in ps and whether a diffusive regime was found.

    The window is the longest stretch (in ln t) of lags ≤ ``t_max`` on which the local log–log
    slope stays within ``slope_tol`` of 1 and that spans at least ``min_frames`` frames. If no
    such stretch exists, returns [t_max/4, t_max] with ``found=False`` (the caller warns: the MSD
    is not diffusive yet on this time scale).
    """
    lag_ps = np.asarray(lag_ps, dtype=float)
    dt = lag_ps[1] - lag_ps[0]
    t_max = float(lag_ps[-1]) if t_max is None else min(float(t_max), float(lag_ps[-1]))
    n = int(np.floor(t_max / dt + 1e-9)) + 1
    t, beta = loglog_slope(lag_ps[:n], np.asarray(msd[:n]))
    ok = np.abs(beta - 1.0) <= slope_tol
    best, best_len = None, -1.0
    i = 0
    while i < len(ok):
        if ok[i]:
            j = i
            while j + 1 < len(ok) and ok[j + 1]:
                j += 1
            t0, t1 = t[i], t[j]
            if (t1 - t0) / dt + 1 >= min_frames:
                length = math.log(t1 / t0)
                if length > best_len:
                    best, best_len = (float(t0), float(t1)), length
            i = j + 1
        else:
            i += 1
    if best is None:
        t0 = max(dt, t_max / 4)
        return (float(t0), float(t_max)), False
    return best, True


def fit_msd_slope(lag_ps: np.ndarray, msd: np.ndarray, window: tuple[float, float]) -> tuple[float, float, int]:
    """OLS line MSD = a + b t on ``window`` (ps, inclusive). Returns ``(slope, intercept, n_points)``."""
    lag_ps = np.asarray(lag_ps, dtype=float)
    eps = 1e-9 * (lag_ps[1] - lag_ps[0])
    sel = (lag_ps >= window[0] - eps) & (lag_ps <= window[1] + eps)
    if sel.sum() < 2:
        raise UserError(f"diffusion window {window} ps holds fewer than 2 MSD points",
                        "widen the window or store frames more often")
    b, a = np.polyfit(lag_ps[sel], np.asarray(msd)[sel], 1)
    return float(b), float(a), int(sel.sum())


@dataclass
class DiffusionResult:
    """Diffusion coefficient of one species with its block-average error."""

    species: str
    D_A2_ps: float
    sigma_A2_ps: float
    window_ps: tuple[float, float]
    slope_A2_ps: float
    intercept_A2: float
    n_atoms: int
    n_blocks: int
    D_blocks_A2_ps: list[float] = field(default_factory=list)
    diffusive: bool = True
    window_auto: bool = True
    dim: int = 3
    mean_loglog_slope: float = float("nan")

    @property
    def D_cm2_s(self) -> float:
        return self.D_A2_ps * A2PS_TO_CM2S

    @property
    def sigma_cm2_s(self) -> float:
        return self.sigma_A2_ps * A2PS_TO_CM2S

    def to_dict(self) -> dict[str, Any]:
        """Stable JSON form (documented in docs/analysis.md, "Dynamics")."""
        d = asdict(self)
        d["window_ps"] = list(self.window_ps)
        d["D_cm2_s"] = self.D_cm2_s
        d["sigma"] = self.sigma_cm2_s
        d["sigma_cm2_s"] = self.sigma_cm2_s
        d["D_blocks_mean_A2_ps"] = float(np.mean(self.D_blocks_A2_ps)) if self.D_blocks_A2_ps else None
        return d


def _block_msds(positions, sp, species: str, n_blocks: int, timestep_ps: float, remove_drift: Any,
                masses, chunk_atoms: int) -> list[np.ndarray]:
    T = positions.shape[0]
    L = T // n_blocks
    out = []
    for b in range(n_blocks):
        blk = positions[b * L:(b + 1) * L]
        r = compute_msd(blk, sp, timestep_ps, remove_drift=remove_drift,
                        masses=masses, chunk_atoms=chunk_atoms, select=[species])
        out.append(r.msd[species])
    return out


def diffusion_coefficients(positions, species=None, timestep_ps: float = 1.0, *,
                           select: Sequence[str] | None = None, window: tuple[float, float] | None = None,
                           n_blocks: int = 5, dim: int = 3, slope_tol: float = 0.15,
                           max_lag_fraction: float = 0.5, remove_drift: Any = False, masses=None,
                           chunk_atoms: int = 64, msd_result: MSDResult | None = None,
                           progress: bool = False) -> tuple[dict[str, DiffusionResult], MSDResult]:
    """D ± σ per species (see the module docstring for the window and the block-average error).

    ``window``: ``(t0, t1)`` ps, or None for the automatic window (searched on lags ≤
    ``max_lag_fraction`` × block duration). Returns ``({species: DiffusionResult}, MSDResult)``.
    """
    T, N = _check_positions(positions)
    if dim not in (1, 2, 3):
        raise UserError(f"dim must be 1, 2 or 3, got {dim}")
    if n_blocks < 2:
        raise UserError(f"n_blocks must be ≥ 2 for an error bar, got {n_blocks}")
    sp = _species_array(species, N)
    nb = n_blocks
    if window is not None:
        t0, t1 = float(window[0]), float(window[1])
        if not (0 <= t0 < t1):
            raise UserError(f"bad diffusion window {window} ps", "give t0,t1 with 0 ≤ t0 < t1")
        if t1 > (T - 1) * timestep_ps + 1e-9:
            raise UserError(f"window end {t1} ps beyond the trajectory ({(T - 1) * timestep_ps:.4g} ps)",
                            "choose a window inside the trajectory")
        while nb > 2 and t1 > (T // nb - 1) * timestep_ps + 1e-9:
            nb -= 1
        if t1 > (T // nb - 1) * timestep_ps + 1e-9:
            raise UserError(f"window end {t1} ps does not fit in half the trajectory "
                            f"({(T // 2 - 1) * timestep_ps:.4g} ps), needed for the block error",
                            "choose a shorter window or run longer")
        if nb != n_blocks:
            log.warning("window %s ps needs blocks of ≥ %.4g ps: using %d blocks instead of %d",
                        window, t1, nb, n_blocks)
    elif T // nb < 4:
        raise UserError(f"trajectory too short ({T} frames) for {nb} blocks", "run longer or store frames more often")
    res = msd_result or compute_msd(positions, sp, timestep_ps, remove_drift=remove_drift, masses=masses,
                                    chunk_atoms=chunk_atoms, select=select, n_blocks=nb, progress=progress)
    lag = res.lag_ps
    out: dict[str, DiffusionResult] = {}
    for s, msd in res.msd.items():
        if window is not None:
            win, found, auto = (t0, t1), True, False
        else:
            L = T // nb
            t_max = max(max_lag_fraction * (L - 1), 2) * timestep_ps
            win, found = find_diffusive_window(lag, msd, t_max=t_max, slope_tol=slope_tol)
            auto = True
            if not found:
                log.warning("%s: no diffusive regime (log-log slope ≈ 1) found up to %.4g ps; "
                            "fitting %s ps anyway", s, t_max, win)
        slope, icpt, _ = fit_msd_slope(lag, msd, win)
        if res.blocks is not None and s in res.blocks and len(res.blocks[s]) == nb:
            blocks = res.blocks[s]
        else:  # an MSDResult computed without (these) blocks: a second pass
            blocks = _block_msds(positions, sp, s, nb, timestep_ps, remove_drift, masses, chunk_atoms)
        d_blocks = [fit_msd_slope(lag[:len(m)], m, win)[0] / (2 * dim) for m in blocks]
        sigma = float(np.std(d_blocks, ddof=1) / math.sqrt(nb))
        t_b, beta = loglog_slope(lag, msd)
        sel = (t_b >= win[0]) & (t_b <= win[1])
        out[s] = DiffusionResult(
            species=str(s), D_A2_ps=slope / (2 * dim), sigma_A2_ps=sigma, window_ps=(float(win[0]), float(win[1])),
            slope_A2_ps=slope, intercept_A2=icpt, n_atoms=res.n_atoms[s], n_blocks=nb,
            D_blocks_A2_ps=[float(v) for v in d_blocks], diffusive=bool(found), window_auto=auto, dim=dim,
            mean_loglog_slope=float(beta[sel].mean()) if np.any(sel) else float("nan"))
    return out, res


# --------------------------------------------------------------------------------------------
# Arrhenius
# --------------------------------------------------------------------------------------------


@dataclass
class ArrheniusResult:
    """ln D = ln D0 - Ea / (kB T), weighted least squares."""

    D0: float
    sigma_lnD0: float
    Ea_eV: float
    sigma_Ea_eV: float
    T_min: float | None
    n_fit: int
    chi2_red: float | None
    T: list[float]
    D: list[float]
    sigma: list[float] | None
    used: list[bool]
    below: list[dict[str, float]]
    units: str = "as given for D"

    def predict(self, T) -> np.ndarray:
        return self.D0 * np.exp(-self.Ea_eV / (KB_EV * np.asarray(T, dtype=float)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def arrhenius_fit(T, D, sigma=None, *, T_min: float | None = None) -> ArrheniusResult:
    """Fit ln D = ln D0 − Ea/(kB T) by weighted least squares in (1/T, ln D).

    Weights 1/σ_lnD² with σ_lnD = σ_D / D (error propagation). With σ given the parameter errors
    are the absolute ones, (XᵀWX)⁻¹ (like ``curve_fit(absolute_sigma=True)``); without σ, unit
    weights and the covariance scaled by the residual variance. ``T_min``: fit only T ≥ T_min; for
    each point below, reports the observed/predicted ratio and the deviation of ln D in σ units.
    ``Ea`` in eV, ``D0`` in the units of ``D``.
    """
    T = np.asarray(T, dtype=float)
    D = np.asarray(D, dtype=float)
    if T.shape != D.shape or T.ndim != 1:
        raise UserError("T and D must be 1-D arrays of the same length")
    if np.any(T <= 0) or np.any(D <= 0):
        raise UserError("Arrhenius fit needs T > 0 and D > 0 for every point",
                        "drop non-diffusive points (D ≤ 0) or set a minimum temperature")
    sig = None if sigma is None else np.asarray(sigma, dtype=float)
    if sig is not None and (sig.shape != D.shape or np.any(~np.isfinite(sig)) or np.any(sig <= 0)):
        raise UserError("σ must be positive and one per point", "give a positive error for every D or none")
    used = np.ones_like(T, dtype=bool) if T_min is None else T >= T_min
    if used.sum() < 2:
        where = f" at T ≥ {T_min:g} K" if T_min is not None else ""
        raise UserError(f"an Arrhenius fit needs at least 2 temperatures{where}, got {int(used.sum())}",
                        "give D at two or more temperatures" + (" (or lower the minimum temperature)" if where else ""))
    x = 1.0 / (KB_EV * T)
    y = np.log(D)
    sy = None if sig is None else sig / D
    X = np.column_stack([np.ones(used.sum()), -x[used]])
    w = np.ones(used.sum()) if sy is None else 1.0 / sy[used] ** 2
    XtW = X.T * w
    cov = np.linalg.inv(XtW @ X)
    beta = cov @ (XtW @ y[used])
    resid = y[used] - X @ beta
    dof = used.sum() - 2
    chi2_red = float((w * resid ** 2).sum() / dof) if dof > 0 else None
    if sy is None:
        cov = cov * (chi2_red if chi2_red is not None else float("nan"))
    lnD0, Ea = beta
    below = []
    for i in np.flatnonzero(~used):
        pred = lnD0 - Ea * x[i]
        # σ of the prediction from the parameter covariance, plus the point's own σ
        g = np.array([1.0, -x[i]])
        s_pred = float(np.sqrt(g @ cov @ g))
        s_tot = math.hypot(s_pred, sy[i]) if sy is not None else s_pred
        below.append({"T": float(T[i]), "D": float(D[i]), "D_pred": float(np.exp(pred)),
                      "ratio": float(D[i] / np.exp(pred)), "dev_lnD": float(y[i] - pred),
                      "dev_sigma": float((y[i] - pred) / s_tot) if s_tot > 0 else float("nan")})
    return ArrheniusResult(
        D0=float(np.exp(lnD0)), sigma_lnD0=float(np.sqrt(cov[0, 0])), Ea_eV=float(Ea),
        sigma_Ea_eV=float(np.sqrt(cov[1, 1])), T_min=T_min, n_fit=int(used.sum()), chi2_red=chi2_red,
        T=T.tolist(), D=D.tolist(), sigma=None if sig is None else sig.tolist(), used=used.tolist(),
        below=below)


# --------------------------------------------------------------------------------------------
# Self van Hove function
# --------------------------------------------------------------------------------------------


def _lag_frames(lag_ps: float, timestep_ps: float, T: int) -> int:
    m = int(round(lag_ps / timestep_ps))
    if m < 1 or m >= T:
        raise UserError(f"lag {lag_ps} ps is not between one frame ({timestep_ps} ps) and the trajectory "
                        f"length ({(T - 1) * timestep_ps:.4g} ps)", "choose a lag inside the trajectory")
    return m


def van_hove_self(positions, species=None, timestep_ps: float = 1.0, lags_ps: Sequence[float] = (1.0,), *,
                  select: Sequence[str] | None = None, r_max: float | None = None, n_bins: int = 200,
                  origin_stride: int = 1) -> dict[str, dict[str, Any]]:
    """Self part of the van Hove function, per species.

    G_s(r, t) = 1/(N_s N_o) Σ_i Σ_t0 δ(r − |r_i(t0+t) − r_i(t0)|) / (4π r²)

    normalized **per species** (N_s atoms of that species, N_o time origins spaced by
    ``origin_stride`` frames), so ∫ 4π r² G_s(r,t) dr = 1 over all r. With ``r_max`` None the
    histogram covers the largest displacement and the integral over the bins is 1; with a smaller
    ``r_max`` it is the fraction of displacements below ``r_max`` (reported as ``fraction_in_range``).
    Bins use exact shell volumes (4π/3)(r₂³ − r₁³).

    Returns ``{species: {"r": centres (Å), "edges", "lags_ps", "G": (n_lags, n_bins) Å⁻³,
    "P": 4πr²G (Å⁻¹), "fraction_in_range": [...]}}``.
    """
    T, N = _check_positions(positions)
    sp = _species_array(species, N)
    wanted = list(dict.fromkeys(sp)) if select is None else list(select)
    lags = [_lag_frames(t, timestep_ps, T) for t in lags_ps]
    out = {}
    for s in wanted:
        idx = np.flatnonzero(sp == s)
        if idx.size == 0:
            raise UserError(f"species {s} not in the trajectory")
        x = np.asarray(positions[:, idx, :], dtype=np.float64)
        dists = []
        for m in lags:
            d = x[m:][::origin_stride] - x[: T - m][::origin_stride]
            dists.append(np.sqrt(np.einsum("tnk,tnk->tn", d, d)).ravel())
        rmax = r_max if r_max is not None else max(float(dd.max()) for dd in dists) * (1 + 1e-9) + 1e-12
        edges = np.linspace(0.0, rmax, n_bins + 1)
        shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
        centres = 0.5 * (edges[1:] + edges[:-1])
        G = np.zeros((len(lags), n_bins))
        frac = []
        for k, dd in enumerate(dists):
            h, _ = np.histogram(dd, bins=edges)
            G[k] = h / (dd.size * shell)
            frac.append(float(h.sum() / dd.size))
        out[s] = {"r": centres, "edges": edges, "lags_ps": [m * timestep_ps for m in lags], "G": G,
                  "P": 4 * np.pi * centres ** 2 * G, "fraction_in_range": frac, "n_atoms": int(idx.size)}
    return out


# --------------------------------------------------------------------------------------------
# Fast / slow ions
# --------------------------------------------------------------------------------------------


def ion_displacements(positions, lag_frames: int, *, indices=None, all_origins: bool = True) -> np.ndarray:
    """Per-ion displacement after ``lag_frames`` frames (Å).

    ``all_origins``: root of the per-ion MSD at that lag, averaged over all time origins
    (robust); otherwise |r(lag) − r(0)| from the first frame only.
    """
    T, N = _check_positions(positions)
    if not 1 <= lag_frames < T:
        raise UserError(f"lag of {lag_frames} frames outside the trajectory ({T} frames)")
    idx = np.arange(N) if indices is None else np.asarray(indices)
    x = np.asarray(positions[:, idx, :], dtype=np.float64)
    d = x[lag_frames:] - x[:-lag_frames] if all_origins else x[lag_frames:lag_frames + 1] - x[:1]
    return np.sqrt(np.einsum("tnk,tnk->tn", d, d).mean(axis=0))


def fast_slow_classes(displacements: np.ndarray, fraction: float = 0.25,
                      indices=None) -> dict[str, np.ndarray]:
    """Split ions into ``fast`` (top ``fraction`` of displacements) and ``slow`` (bottom ``fraction``).

    Returns atom indices (into ``indices`` if given, else positions in ``displacements``) and the
    thresholds. Ties at the thresholds are resolved by the order of ``argsort`` (stable).
    """
    disp = np.asarray(displacements, dtype=float)
    if not 0 < fraction <= 0.5:
        raise UserError(f"fraction must be in (0, 0.5], got {fraction}")
    n = max(1, int(round(fraction * disp.size)))
    order = np.argsort(disp, kind="stable")
    ids = np.arange(disp.size) if indices is None else np.asarray(indices)
    return {"fast": ids[order[-n:]], "slow": ids[order[:n]],
            "fast_threshold": float(disp[order[-n]]), "slow_threshold": float(disp[order[n - 1]])}


RING_SIZE_GROUPS = {"<6": (0, 5), "6-7": (6, 7), ">7": (8, 10 ** 9)}


def ring_size_group(size: int) -> str:
    """Ring-size group by number of oxygens: "<6", "6-7" or ">7"."""
    for k, (lo, hi) in RING_SIZE_GROUPS.items():
        if lo <= size <= hi:
            return k
    raise ValueError(size)


def fast_slow_rdfs(positions, species, cells, timestep_ps: float, lag_ps: float, ion: str = "Na", *,
                   fraction: float = 0.25, ring_centres: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
                   frames: Sequence[int] | None = None, r_max: float | None = None, dr: float = 0.05) -> dict[str, Any]:
    """Fast/slow ``ion`` classes from the per-ion displacement after ``lag_ps`` (all origins, see
    :func:`ion_displacements`) and their partial g(r) against every species and ring centres.

    ``positions`` unwrapped ``(T, N, 3)``; ``cells`` one ``(3, 3)`` cell or one per frame.
    ``ring_centres``: one ``(centres (M, 3), sizes (M,))`` per analysed frame, ring size counted in
    oxygens (= formers, :func:`mlipflow.analysis.rings.ring_centres`), grouped "<6", "6-7", ">7".
    ``frames``: frames on which g(r) is averaged (default: up to 10 spread over the run).

    The partials come from :func:`mlipflow.analysis.structure.rdf` on relabelled frames: the class
    members become ``"<ion>_fast"`` / ``"<ion>_slow"`` (the other ions stay ``ion``; the middle 50 %
    too) and ring centres are added as pseudo-atoms ``"ring<6"``, ``"ring6-7"``, ``"ring>7"``; each
    partial g_ab is normalised by its own N_a N_b / V. Returns ``{"classes", "displacements_A",
    "rdf": {"fast": {"Na-O": {"r", "g"}, "Na-Na": ..., "ring<6": ...}, "slow": {...}}}`` where
    "Na-Na" is the class against all other ions of that species.
    """
    from mlipflow.analysis.io import Frame
    from mlipflow.analysis.structure import rdf as structure_rdf

    T, N = _check_positions(positions)
    sp = _species_array(species, N)
    ion_idx = np.flatnonzero(sp == ion)
    if ion_idx.size < 4:
        raise UserError(f"need ≥ 4 {ion} ions for fast/slow classes, have {ion_idx.size}",
                        "choose the mobile species with --species")
    m = _lag_frames(lag_ps, timestep_ps, T)
    disp = ion_displacements(positions, m, indices=ion_idx)
    classes = fast_slow_classes(disp, fraction, indices=ion_idx)
    cells_arr = np.asarray(cells, dtype=float)
    cell_of = (lambda t: cells_arr) if cells_arr.ndim == 2 else (lambda t: cells_arr[t])
    if frames is None:
        frames = np.unique(np.linspace(0, T - 1, min(T, 10)).astype(int))
    if ring_centres is not None and len(ring_centres) != len(frames):
        raise UserError(f"ring centres given for {len(ring_centres)} frames, g(r) averaged over {len(frames)}",
                        "give one (centres, sizes) per analysed frame")
    fast_l, slow_l = f"{ion}_fast", f"{ion}_slow"
    labels = sp.astype(object).copy()
    labels[classes["fast"]] = fast_l
    labels[classes["slow"]] = slow_l
    rframes = []
    for k, t in enumerate(frames):
        pos = np.asarray(positions[t], dtype=float)
        sym = labels
        if ring_centres is not None:
            centres, sizes = ring_centres[k]
            centres = np.asarray(centres, dtype=float).reshape(-1, 3)
            grp = np.array(["ring" + ring_size_group(int(z)) for z in np.asarray(sizes)], dtype=object)
            pos = np.vstack([pos, centres])
            sym = np.concatenate([labels, grp])
        rframes.append(Frame(positions=pos, cell=cell_of(t), symbols=np.asarray(sym, dtype=str)))
    all_species = list(dict.fromkeys(sp)) + [fast_l, slow_l]
    if ring_centres is not None:
        all_species += ["ring" + g for g in RING_SIZE_GROUPS]
    res = structure_rdf(rframes, rmax=r_max, dr=dr, species=all_species)
    out: dict[str, dict[str, Any]] = {}
    for cls, lab in (("fast", fast_l), ("slow", slow_l)):
        out[cls] = {}
        for o in dict.fromkeys(sp):
            # same species: the class against the other ions of that species (any class)
            if o == ion:
                n_o = {ion: res.counts.get(ion, 0), fast_l: res.counts.get(fast_l, 0), slow_l: res.counts.get(slow_l, 0)}
                other = slow_l if cls == "fast" else fast_l
                tot = n_o[ion] + n_o[lab] + n_o[other]
                # weighted mix of the partials against the three ion labels -> g against all other ions
                g = (n_o[ion] * res.partial(lab, ion) + max(n_o[lab] - 1, 0) * res.partial(lab, lab)
                     + n_o[other] * res.partial(lab, other)) / max(tot - 1, 1)
            else:
                g = res.partial(lab, o)
            out[cls][f"{ion}-{o}"] = {"r": res.r, "g": g}
        if ring_centres is not None:
            for grp in RING_SIZE_GROUPS:
                out[cls][f"ring{grp}"] = {"r": res.r, "g": res.partial(lab, "ring" + grp),
                                          "n_rings_per_frame": float(res.counts.get("ring" + grp, 0.0))}
    return {"classes": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in classes.items()},
            "displacements_A": disp.tolist(), "lag_ps": m * timestep_ps, "frames": list(map(int, frames)),
            "rdf": out}


# --------------------------------------------------------------------------------------------
# Loading a trajectory (streams through mlipflow.analysis.io)
# --------------------------------------------------------------------------------------------


@dataclass
class Trajectory:
    """Unwrapped positions ``(T, N, 3)`` (ndarray or memmap), labels, cells ``(T, 3, 3)``, steps."""

    positions: np.ndarray
    species: np.ndarray
    cells: np.ndarray
    steps: np.ndarray
    path: str | None = None


def stack_frames(frames: Iterable[Any], *, unwrap_method: str = "auto", memmap_path: str | None = None,
                 dtype=np.float64, chunk: int = 256, progress: bool = False, path: str | None = None) -> Trajectory:
    """Unwrap and stack :class:`mlipflow.analysis.io.Frame` objects into a :class:`Trajectory`.

    With ``memmap_path`` the unwrapped positions are streamed to that file (raw ``dtype``) in
    chunks of ``chunk`` frames and returned as a read-only ``numpy.memmap``: memory stays at one
    chunk while reading and at one atom chunk in :func:`compute_msd`, so trajectories larger than
    RAM work. Without it the positions are held in memory.
    """
    from mlipflow.analysis import io as tio

    species = None
    cells, steps = [], []
    buf: list[np.ndarray] = []
    fh = open(memmap_path, "wb") if memmap_path else None
    n_frames = 0
    it = tio.unwrap(frames, method=unwrap_method)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="reading", unit="frame")
    pending: list[np.ndarray] = []
    try:
        for fr in it:
            if species is None:
                species = np.asarray(fr.symbols if fr.symbols is not None else
                                     (fr.types.astype(str) if fr.types is not None else ["X"] * fr.n_atoms)).astype(str)
            elif fr.n_atoms != len(species):
                raise UserError(f"atom count changes from {len(species)} to {fr.n_atoms} in the trajectory",
                                "analyse trajectories with a fixed number of atoms")
            pending.append(np.asarray(fr.positions, dtype=dtype))
            cells.append(np.asarray(fr.cell, dtype=float))
            steps.append(-1 if fr.step is None else int(fr.step))
            n_frames += 1
            if len(pending) >= chunk:
                blk = np.stack(pending)
                (fh.write(blk.tobytes()) if fh else buf.append(blk))
                pending = []
        if pending:
            blk = np.stack(pending)
            (fh.write(blk.tobytes()) if fh else buf.append(blk))
    finally:
        if fh:
            fh.close()
    if n_frames == 0:
        raise UserError(f"no frames read from {path or 'the source'}", "check the file, --format and the frame range")
    N = len(species)
    if fh:
        pos = np.memmap(memmap_path, dtype=dtype, mode="r", shape=(n_frames, N, 3))
    else:
        pos = np.concatenate(buf, axis=0)
    return Trajectory(positions=pos, species=species, cells=np.asarray(cells), steps=np.asarray(steps), path=path)


def load_trajectory(paths, *, format: str | None = None, types: Any = None, every: int = 1,  # noqa: A002
                    start: int = 0, stop: int | None = None, unwrap_method: str = "auto",
                    memmap_path: str | None = None, dtype=np.float64, chunk: int = 256,
                    progress: bool = False) -> Trajectory:
    """Read (streaming, :mod:`mlipflow.analysis.io`), unwrap and stack a trajectory: one file or
    several consecutive files (restart segments). See :func:`stack_frames` for ``memmap_path``."""
    from mlipflow.analysis import io as tio

    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        paths = [paths]
    if every < 1:
        raise UserError(f"every must be >= 1 (got {every})")

    def frames():
        for p in paths:
            yield from tio.iter_frames(p, format=format, types=types, start=start, stop=stop, step=every)

    return stack_frames(frames(), unwrap_method=unwrap_method, memmap_path=memmap_path, dtype=dtype, chunk=chunk,
                        progress=progress, path=", ".join(map(str, paths)))


def frame_interval_ps(traj: Trajectory, timestep_fs: float, dump_every: int | None = None) -> float:
    """Time between stored frames in ps: ``timestep_fs`` × the step difference between frames
    (from the frames' step numbers, which must be evenly spaced), or × ``dump_every`` when the
    file carries no step numbers (or when given explicitly)."""
    if timestep_fs is None or timestep_fs <= 0:
        raise UserError(f"the MD timestep must be positive (got {timestep_fs} fs)", "give --timestep in fs")
    if dump_every is not None:
        if dump_every < 1:
            raise UserError(f"dump interval must be >= 1 (got {dump_every})")
        return timestep_fs * dump_every / 1000.0
    st = np.asarray(traj.steps)
    if len(st) < 2 or np.any(st < 0):
        return timestep_fs / 1000.0
    d = np.diff(st)
    if np.any(d <= 0) or np.any(d != d[0]):
        raise UserError(f"frames are not evenly spaced in time (step differences {sorted(set(d.tolist()))[:5]})",
                        "give a trajectory with a constant dump interval (or concatenate segments without overlap)")
    return timestep_fs * float(d[0]) / 1000.0
