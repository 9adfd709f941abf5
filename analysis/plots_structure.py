"""Matplotlib (Agg) plots of the structure analysis: g(r), S(Q), bond angles, CN histograms, rings.

Each function writes one PNG and returns its path. They take the objects returned by
:mod:`mlipflow.analysis.structure` (``RDF``, ``SQ``) or the JSON-ready dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = ["plot_rdf", "plot_sq", "plot_angles", "plot_cn", "plot_rings", "plot_all"]


def _save(fig, path) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def plot_rdf(rdf_res, path, cutoffs: Mapping[str, float] | None = None, pairs: list[str] | None = None) -> str:
    """Partial g_ab(r) (one panel) and total g(r); cutoffs drawn as dashed lines."""
    keys = pairs or list(rdf_res.partials)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for k in keys:
        (line,) = ax1.plot(rdf_res.r, rdf_res.partials[k], lw=1.2, label=k)
        rc = (cutoffs or {}).get(k)
        if rc:
            ax1.axvline(rc, color=line.get_color(), ls="--", lw=0.8)
    ax1.axhline(1.0, color="k", lw=0.5)
    ax1.set_ylabel("g$_{ab}$(r)")
    ax1.legend(ncol=3, fontsize=8)
    ax2.plot(rdf_res.r, rdf_res.g_total, "k", lw=1.2)
    ax2.axhline(1.0, color="gray", lw=0.5)
    ax2.set_xlabel("r (Å)")
    ax2.set_ylabel("g(r) total")
    ax1.set_title(f"radial distribution ({rdf_res.n_frames} frame(s))")
    return _save(fig, path)


def plot_sq(sqs: Mapping[str, Any], path) -> str:
    """Neutron and/or X-ray Faber-Ziman S(Q)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, s in sqs.items():
        ax.plot(s.q, s.s, lw=1.2, label=f"{name}{' (Lorch)' if s.lorch else ''}")
    ax.axhline(1.0, color="gray", lw=0.5)
    ax.set_xlabel("Q (Å$^{-1}$)")
    ax.set_ylabel("S(Q)")
    ax.legend()
    return _save(fig, path)


def plot_angles(angles: Mapping[str, Mapping[str, Any]], path) -> str:
    """Bond-angle distributions (from :func:`~mlipflow.analysis.structure.bond_angles`)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, v in angles.items():
        e = np.asarray(v["edges"])
        ax.plot(0.5 * (e[1:] + e[:-1]), v["density"], lw=1.2, label=f"{k} ({v['mean']:.1f}°)")
    ax.set_xlabel("angle (degrees)")
    ax.set_ylabel("probability density (1/degree)")
    ax.set_xlim(0, 180)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_cn(coordination: Mapping[str, Mapping[str, Any]], path) -> str:
    """Histograms of the coordination-number distributions per pair."""
    items = [(k, v) for k, v in coordination.items() if v.get("distribution")]
    n = max(1, len(items))
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.8 * nrow), squeeze=False)
    for ax, (k, v) in zip(axes.ravel(), items):
        xs = [int(x) for x in v["distribution"]]
        ys = list(v["distribution"].values())
        ax.bar(xs, ys, color="C0")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        rc = v.get("cutoff")
        ax.set_title(f"{k}: <CN>={v['mean']:.2f}" + (f", rc={rc:.2f} Å" if rc else ""), fontsize=9)
        ax.set_xlabel("CN")
        ax.set_ylabel("fraction")
    for ax in axes.ravel()[len(items):]:
        ax.axis("off")
    return _save(fig, path)


def plot_rings(rings: Mapping[str, Any], path) -> str:
    """Ring-size distribution (size = formers per ring = bridging O per ring)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    frac = rings.get("fraction") or {}
    ax.bar([int(k) for k in frac], list(frac.values()), color="C2")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("ring size (formers = bridging O)")
    ax.set_ylabel("fraction of rings")
    ax.set_title(f"Guttman rings of {'/'.join(rings.get('formers', []))}: {rings.get('n_rings', 0)} rings")
    return _save(fig, path)


def plot_all(result: Mapping[str, Any], outdir, prefix: str = "") -> dict[str, str]:
    """All structure plots for an :func:`~mlipflow.analysis.structure.analyze_structure` result."""
    outdir = Path(outdir)
    plots = {}
    if result.get("_rdf") is not None:
        plots["rdf"] = plot_rdf(result["_rdf"], outdir / f"{prefix}rdf.png", cutoffs=result.get("cutoffs"))
    if result.get("_sq"):
        plots["sq"] = plot_sq(result["_sq"], outdir / f"{prefix}sq.png")
    if result.get("_angles_full"):
        plots["angles"] = plot_angles(result["_angles_full"], outdir / f"{prefix}angles.png")
    if result.get("coordination"):
        plots["cn"] = plot_cn(result["coordination"], outdir / f"{prefix}cn.png")
    if result.get("rings") and result["rings"].get("n_rings"):
        plots["rings"] = plot_rings(result["rings"], outdir / f"{prefix}rings.png")
    return plots
