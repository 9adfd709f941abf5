"""Plots of the dynamics, Tg and elastic analyses (matplotlib, Agg backend; each returns the path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mlipflow.analysis.dynamics import ArrheniusResult, DiffusionResult, MSDResult


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    _plt().close(fig)
    return str(path)


def plot_msd(msd: MSDResult, diffusion: Mapping[str, DiffusionResult] | None, path) -> str:
    """MSD per species on log–log axes; the fitted window is shaded and the fit drawn on it."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    t = msd.lag_ps[1:]
    for s, m in msd.msd.items():
        line, = ax.loglog(t, m[1:], label=s, lw=1.4)
        if diffusion and s in diffusion:
            r = diffusion[s]
            t0, t1 = r.window_ps
            tt = np.linspace(t0, t1, 50)
            ax.loglog(tt, r.intercept_A2 + r.slope_A2_ps * tt, "--", color="k", lw=1)
            ax.axvspan(t0, t1, color=line.get_color(), alpha=0.12)
            line.set_label(f"{s}: D = {r.D_cm2_s:.3g} ± {r.sigma_cm2_s:.2g} cm²/s")
    if len(t) > 2:
        ref = msd.msd[next(iter(msd.msd))][1:]
        i = max(1, len(t) // 100)
        ax.loglog(t[:len(t) // 4], ref[i] * (t[:len(t) // 4] / t[i]), ":", color="gray", lw=0.8, label="slope 1")
    ax.set_xlabel("t (ps)")
    ax.set_ylabel("MSD (Å²)")
    ax.legend(fontsize=7)
    ax.set_title("Mean squared displacement (all time origins)", fontsize=9)
    return _save(fig, path)


def plot_arrhenius(res: ArrheniusResult, path, label: str = "D") -> str:
    """ln D against 1000/T with error bars; points excluded from the fit (T < T_min) hollow."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    T = np.asarray(res.T)
    D = np.asarray(res.D)
    used = np.asarray(res.used, dtype=bool)
    err = None if res.sigma is None else np.asarray(res.sigma)
    x = 1000.0 / T
    for sel, kw in ((used, {"fmt": "o", "color": "C0", "label": "fitted"}),
                    (~used, {"fmt": "o", "mfc": "white", "color": "C3", "label": "excluded (T < T_min)"})):
        if sel.any():
            ax.errorbar(x[sel], D[sel], yerr=None if err is None else err[sel], capsize=3, **kw)
    xx = np.linspace(x.min() * 0.97, x.max() * 1.03, 100)
    ax.plot(xx, res.predict(1000.0 / xx), "k-", lw=1,
            label=f"Ea = {res.Ea_eV:.3f} ± {res.sigma_Ea_eV:.3f} eV")
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(f"{label}")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_van_hove(vh: Mapping[str, Mapping[str, Any]], path) -> str:
    """4π r² G_s(r, t) per species and lag."""
    plt = _plt()
    n = len(vh)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    for ax, (s, d) in zip(axes[0], vh.items()):
        for k, lag in enumerate(d["lags_ps"]):
            ax.plot(d["r"], d["P"][k], label=f"t = {lag:.3g} ps")
        ax.set_xlabel("r (Å)")
        ax.set_ylabel("4πr² G_s(r,t) (1/Å)")
        ax.set_title(f"self van Hove, {s} ({d['n_atoms']} atoms)", fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_fast_slow_rdf(out: Mapping[str, Any], path) -> str:
    """Partial g(r) of fast and slow ions against each partner."""
    plt = _plt()
    keys = list(out["rdf"]["fast"])
    n = len(keys)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.ravel(), keys):
        for cls, c in (("fast", "C3"), ("slow", "C0")):
            d = out["rdf"][cls][key]
            ax.plot(d["r"], d["g"], color=c, label=cls)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("r (Å)")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return _save(fig, path)


def plot_tg(res, path) -> str:
    """y(T) with the two-line fit and Tg."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    T = np.asarray(res.T)
    ax.plot(T, res.y, "o", ms=3, label=res.quantity)
    tt = np.linspace(T.min(), T.max(), 200)
    ax.plot(tt, res.predict(tt), "k-", lw=1)
    ax.axvline(res.Tg, color="C3", ls="--", label=f"Tg = {res.Tg:.0f} ± {res.sigma_Tg:.0f} K")
    ax.set_xlabel("T (K)")
    ax.set_ylabel(res.quantity)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_stress_strain(res, path) -> str:
    """σ_i(ε_j) for the six strain directions with the regression lines (GPa)."""
    from mlipflow.analysis.elastic import VOIGT

    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(10, 6), squeeze=False)
    eps = np.asarray(res.strains)
    C = np.asarray(res.C)
    for j, ax in enumerate(axes.ravel()):
        sig = np.asarray(res.stresses[VOIGT[j]])
        for i in range(6):
            if abs(C[i, j]) < 1e-3 * max(abs(C[j, j]), 1e-12) and i != j:
                continue
            ax.plot(eps * 1e3, sig[:, i] - sig[:, i].mean(), "o", ms=2.5, label=f"σ_{VOIGT[i]}: {C[i, j]:.1f}")
        ax.set_title(f"strain {VOIGT[j]}", fontsize=9)
        ax.set_xlabel("ε (10⁻³)")
        ax.set_ylabel("Δσ (GPa)")
        ax.legend(fontsize=6)
    fig.suptitle(f"C11 {res.C11:.1f}  C12 {res.C12:.1f}  C44 {res.C44:.1f}  K {res.bulk_modulus_GPa:.1f}  "
                 f"E {res.youngs_modulus_GPa:.1f} GPa  ν {res.poisson_ratio:.3f}", fontsize=9)
    return _save(fig, path)


__all__ = ["plot_msd", "plot_arrhenius", "plot_van_hove", "plot_fast_slow_rdf", "plot_tg", "plot_stress_strain"]
