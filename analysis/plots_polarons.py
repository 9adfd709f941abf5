"""Plots of the polaron analysis (matplotlib, Agg backend; each writes one PNG and returns its path).

They take the JSON-ready ``results`` of :func:`mlipflow.analysis.polarons.analyze_polarons` (one
run) or a list of them (one per temperature), so they can be redrawn from the JSON files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlipflow.analysis.dynamics import KB_EV
from mlipflow.analysis.plots_dynamics import _plt, _save

__all__ = ["plot_bond_histograms", "plot_bayes_error", "plot_valence_time", "plot_pair_maps", "plot_layer_profiles",
           "plot_li_fe_rdf", "plot_rate_by_label", "plot_rates", "plot_run"]


def _title(r: Mapping[str, Any]) -> str:
    t = r.get("temperature_K")
    lab = r.get("label")
    return " ".join(s for s in ((f"{t:g} K" if t is not None else ""), (lab or "")) if s) or "run"


def plot_bond_histograms(results: Sequence[Mapping[str, Any]], path) -> str:
    """Mean Fe–O bond-length histogram with the two fitted Gaussians and the boundary, one panel per run (T)."""
    from mlipflow.analysis.polarons import GMMFit

    plt = _plt()
    runs = sorted(results, key=lambda r: (r.get("temperature_K") is None, r.get("temperature_K") or 0))
    n = len(runs)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax, r in zip(axes.ravel(), runs):
        g = r["gmm"]
        e = np.asarray(g["histogram"]["edges_A"])
        ax.stairs(g["histogram"]["density"], e, fill=True, color="0.8", label="data")
        fit = GMMFit(**{k: g[k] for k in ("means_A", "sigmas_A", "weights", "boundary_A", "bayes_error")})
        x = np.linspace(e[0], e[-1], 400)
        comp = fit.pdf(x)
        ax.plot(x, comp[0], color="C3", label="Fe3+")
        ax.plot(x, comp[1], color="C0", label="Fe2+")
        ax.plot(x, comp.sum(axis=0), "k--", lw=0.8)
        ax.axvline(g["boundary_A"], color="k", lw=1, label=f"boundary {g['boundary_A']:.3f} Å")
        ax.set_title(f"{_title(r)}: BE = {g['bayes_error']:.3f}", fontsize=9)
        ax.set_xlabel("mean Fe–O bond length (Å)")
        ax.set_ylabel("density (1/Å)")
        ax.legend(fontsize=6)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return _save(fig, path)


def plot_bayes_error(results: Sequence[Mapping[str, Any]], path) -> str:
    """Bayes error of the valence classifier against temperature (one line per label)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.5))
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in results:
        if r.get("temperature_K") is not None:
            groups.setdefault(r.get("label") or "all", []).append((r["temperature_K"], r["gmm"]["bayes_error"]))
    for lab, pts in groups.items():
        pts.sort()
        ax.plot(*zip(*pts), "o-", label=lab)
    ax.set_xlabel("T (K)")
    ax.set_ylabel("Bayes error")
    if len(groups) > 1:
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_valence_time(results: Mapping[str, Any], states: np.ndarray, fe_layer: np.ndarray, path,
                      max_columns: int = 1500) -> str:
    """Valence of every Fe against time, Fe ordered by layer (Fig. 1c), and the Fe3+ fraction per layer."""
    plt = _plt()
    from matplotlib.colors import ListedColormap

    T = len(states)
    step = max(1, int(np.ceil(T / max_columns)))
    order = np.argsort(fe_layer, kind="stable")
    img = states[::step, order].T
    dt = results["timestep_ps"]
    lay = results["layers"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7.5, 6.0), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    ax1.imshow(img, aspect="auto", interpolation="nearest", cmap=ListedColormap(["#3b73b9", "#d1495b"]), vmin=2, vmax=3,
               extent=(0, (T - 1) * dt, len(order) - 0.5, -0.5))
    bounds = np.flatnonzero(np.diff(fe_layer[order])) + 0.5
    for b in bounds:
        ax1.axhline(b, color="w", lw=0.5)
    ax1.set_ylabel(f"Fe (by layer along {lay['axis']})")
    ax1.set_title(f"{_title(results)}: Fe2+ (blue) / Fe3+ (red)", fontsize=9)
    frac = np.asarray(lay["fe3_fraction_vs_time"])
    for m, c in enumerate(lay["centers_A"]):
        ax2.plot(lay["time_ps"], frac[:, m], lw=0.8, label=f"{c:.1f} Å")
    ax2.set_xlabel("t (ps)")
    ax2.set_ylabel("Fe3+ fraction")
    if len(lay["centers_A"]) <= 12:
        ax2.legend(fontsize=6, ncol=4)
    return _save(fig, path)


def plot_pair_maps(results: Mapping[str, Any], path) -> str:
    """Flip-event pair densities by Fe–Fe distance and lag, same and opposite sign, and their ratio (Fig. 2)."""
    plt = _plt()
    pr = results["pairs"]
    d = np.asarray(pr["d_edges_A"])
    t = np.asarray(pr["dt_edges_ps"])
    same = np.asarray(pr["density_same"])
    opp = np.asarray(pr["density_opposite"])
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    vmax = max(same.max(), opp.max(), 1e-12)
    for ax, a, name in ((axes[0], same, "same sign"), (axes[1], opp, "opposite sign")):
        m = ax.pcolormesh(t, d, a, vmin=0, vmax=vmax, cmap="viridis")
        ax.set_title(name, fontsize=9)
        fig.colorbar(m, ax=ax, label=pr["units"])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(same > 0, opp / same, np.nan)
    m = axes[2].pcolormesh(t, d, ratio, cmap="RdBu_r", vmin=0, vmax=2)
    fig.colorbar(m, ax=axes[2], label="opposite / same")
    txt = "  ".join(f"{k}: {v:.2f}" for k, v in pr["preference_ratio"].items() if v is not None)
    axes[2].set_title("PR " + txt, fontsize=6)
    for ax in axes:
        ax.set_xlabel("Δt (ps)")
        ax.set_ylabel("Fe–Fe distance (Å)")
    return _save(fig, path)


def plot_layer_profiles(results: Mapping[str, Any], path) -> str:
    """Fe3+ fraction and flip rate per Fe layer along the axis (Fig. 4a, c)."""
    plt = _plt()
    lay = results["layers"]
    x = lay["centers_A"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(5.5, 5.0), sharex=True)
    ax1.plot(x, lay["fe3_fraction"], "o-", color="C3")
    ax1.set_ylabel("Fe3+ fraction")
    ax1.set_ylim(-0.05, 1.05)
    ax2.plot(x, lay["flip_rate_per_fe_per_ps"], "s-", color="C2")
    ax2.set_ylabel("flips per Fe per ps")
    ax2.set_xlabel(f"layer position along {lay['axis']} (Å)")
    ax1.set_title(_title(results), fontsize=9)
    return _save(fig, path)


def plot_li_fe_rdf(results: Mapping[str, Any], path) -> str:
    """Li–Fe2+ and Li–Fe3+ partial g(r) and the number of Li within r of each (SI Fig. 2c, d)."""
    plt = _plt()
    g = results["li_fe_rdf"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for c, col in ((2, "C0"), (3, "C3")):
        if g.get(f"g_Li_Fe{c}") is not None:
            ax1.plot(g["r_A"], g[f"g_Li_Fe{c}"], color=col, label=f"Li–Fe{c}+")
            ax2.plot(g["r_A"], g[f"n_li_around_Fe{c}"], color=col, label=f"Li around Fe{c}+")
    ax1.set_xlabel("r (Å)")
    ax1.set_ylabel("g(r)")
    ax2.set_xlabel("r (Å)")
    ax2.set_ylabel("running integral (Li per Fe)")
    for ax in (ax1, ax2):
        ax.legend(fontsize=7)
    ax1.set_title(f"{_title(results)} ({g['n_frames']} frames)", fontsize=9)
    return _save(fig, path)


def plot_rate_by_label(fit: Mapping[str, Any], path) -> str:
    """Rates against 1000/T, one series per label (e.g. the Li ordering, Fig. 3), with their Arrhenius lines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    groups = fit["by_label"] or {"all": {"points": fit["points"], **{k: fit[k] for k in ("A_per_ps", "Ea_eV")}}}
    for k, (lab, e) in enumerate(groups.items()):
        T = np.array([q["T"] for q in e["points"]])
        r = np.array([q["rate"] for q in e["points"]])
        s = [q["sigma"] or 0.0 for q in e["points"]]
        ax.errorbar(1000 / T, r, yerr=s, fmt="o", color=f"C{k}", capsize=3,
                    label=lab + (f": Ea {e['Ea_eV']:.3f} eV" if "Ea_eV" in e else ""))
        if "Ea_eV" in e:
            xx = np.linspace((1000 / T).min() * 0.97, (1000 / T).max() * 1.03, 50)
            ax.plot(xx, e["A_per_ps"] * np.exp(-e["Ea_eV"] / (KB_EV * 1000 / xx)), color=f"C{k}", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("1000 / T (1/K)")
    ax.set_ylabel(f"{fit['rate']} rate (1/ps)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_rates(fit: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], outdir) -> dict[str, str]:
    """The plots of :func:`~mlipflow.analysis.polarons.rate_arrhenius`: Arrhenius (Fig. 1b), rates per label
    (Fig. 3), bond-length histograms per T and the Bayes error against T."""
    from mlipflow.analysis.plots_dynamics import plot_arrhenius

    out = Path(outdir)
    rate = fit["rate"]
    unit = "flips per Fe per ps" if rate == "flip" else "hops per Li per ps"
    return {"arrhenius": plot_arrhenius(fit["_fit"], out / f"arrhenius_{rate}.png", label=f"{rate} rate ({unit})"),
            "rate_by_label": plot_rate_by_label(fit, out / f"rate_by_label_{rate}.png"),
            "bond_histograms": plot_bond_histograms(runs, out / "bond_histograms.png"),
            "bayes_error": plot_bayes_error(runs, out / "bayes_error.png")}


def plot_run(res, outdir) -> dict[str, str]:
    """All single-run plots of a :class:`~mlipflow.analysis.polarons.PolaronResult` into ``outdir``."""
    out = Path(outdir)
    r = res.results
    plots = {"bond_histogram": plot_bond_histograms([r], out / "bond_histogram.png"),
             "pair_maps": plot_pair_maps(r, out / "pair_maps.png"),
             "layer_profiles": plot_layer_profiles(r, out / "layer_profiles.png")}
    if res.states is not None and res.fe_layer is not None:
        plots["valence_time"] = plot_valence_time(r, res.states, res.fe_layer, out / "valence_time.png")
    if r.get("li_fe_rdf"):
        plots["li_fe_rdf"] = plot_li_fe_rdf(r, out / "li_fe_rdf.png")
    return plots
