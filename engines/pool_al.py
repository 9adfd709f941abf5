"""Pool-based active learning: grow a training set from a labelled pool, batch by batch, and
measure the test error against the number of labels (the label-efficiency curve).

:func:`run_pool_al` starts from ``init`` frames drawn at random from the pool (``init_seed``: the
same start for every strategy), fits, evaluates on a fixed test set, then adds ``batch`` frames
chosen by the strategy and refits, ``rounds`` times:

* ``random`` — uniformly from the frames not yet chosen (``seed``);
* ``maxvol`` — ACE: D-optimality (:func:`mlipflow.engines.selection.select_maxvol`) against the
  current potential's active set, repeated on the frames not yet chosen until the batch is full
  (``repeat_maxvol``) or no frame has γ above ``gamma_tolerance``;
* ``deviation`` — DP: the highest max force deviation of an ensemble of ``n_models`` members
  (DP-GEN's indicator, :func:`mlipflow.engines.deepmd.model_deviation`), below ``f_trust_hi``.

Filters that the data of the label-efficiency benchmark called for (docs/active_learning.md):
``gamma_cap`` (frames extrapolating beyond it never enter MaxVol), ``max_force`` (frames whose
reference force has a component above it are never added: the pool's labels are known, and in a
loop the labeler's force threshold rejects the same frames after labelling), ``fill="random"``
(top the batch up at random when the uncertainty runs out of candidates).

Every fit is a :mod:`mlipflow.cache` entry keyed by the chosen frames and the settings, so a
rerun recomputes nothing and a killed run continues. No jobflow here: the ``mlipflow potential
distil`` command and ``benchmarks/bench_al_efficiency.py`` call it directly.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from mlipflow.engines.frames import max_force_component
from mlipflow.errors import UserError
from mlipflow.schemas import (
    DistilDoc,
    DistilRound,
    ErrorMetrics,
    FrameStatus,
    LabeledFrame,
    PotentialRef,
    UncertaintyStats,
)

log = logging.getLogger(__name__)

STRATEGIES = {"ace": ("random", "maxvol"), "dp": ("random", "deviation")}


def _usable(frames: Sequence[LabeledFrame], what: str) -> list[LabeledFrame]:
    seen: dict[str, LabeledFrame] = {}
    for f in frames:
        if f.status == FrameStatus.ok and f.energy is not None and f.forces is not None:
            seen.setdefault(f.frame_id, f)
    if not seen:
        raise UserError(f"the {what} has no usable labelled frame", f"give a {what} of frames with energies and forces")
    return list(seen.values())


def _stats(values: Sequence[float], lo: float) -> UncertaintyStats:
    from mlipflow.engines.selection import gamma_stats

    st = gamma_stats(values)
    v = np.asarray(values, dtype=float)
    return UncertaintyStats(**{k: st.get(k) for k in ("max", "mean", "median", "p90")},
                            n_above_lo=int((v[np.isfinite(v)] > lo).sum()))


class _AceFitter:
    def __init__(self, settings, reference_energies, progress):
        from mlipflow.engines.pacemaker import AceFitSettings

        self.settings = settings or AceFitSettings.tiny()
        self.refs = reference_energies
        self.progress = progress

    def params(self) -> dict[str, Any]:
        return {"ace": self.settings.model_dump(mode="json"), "reference_energies": self.refs}

    def fit(self, frames: list[LabeledFrame]):
        from mlipflow import cache
        from mlipflow.engines.dataset_io import export_pacemaker
        from mlipflow.engines.pacemaker import fit_ace

        frames = sorted(frames, key=lambda f: f.frame_id)  # the fit does not depend on the order of choice
        wd = cache.entry_path("pool-al-ace", [[f.frame_id for f in frames], self.params()])
        wd.mkdir(parents=True, exist_ok=True)
        train = wd / "train.pkl.gz"
        if not train.is_file():
            tmp = export_pacemaker(frames, wd / "train.tmp.pkl.gz", self.refs)
            tmp.replace(train)
        res = fit_ace(train, None, self.settings, wd / "fit", progress=self.progress)
        if not res.active_set:
            raise UserError("the ACE fit wrote no active set", "keep compute_active_set=True in the fit settings")
        ref = PotentialRef(kind="ace", name=f"pool-al-{len(frames)}", input_hash=res.input_hash,
                           paths={"model": res.potential_yaml, "active_set": res.active_set})
        return ref, res.fit_time_s, res.cached, res

    def test_data(self, frames):
        from mlipflow.engines.dataset_io import pacemaker_dataframe

        return pacemaker_dataframe(frames, self.refs)


class _DPFitter:
    def __init__(self, settings, n_models, type_map, seed, progress):
        from mlipflow.engines.deepmd import DPSettings

        if n_models < 1:
            raise UserError(f"n_models={n_models}", "give at least one model (two or more for the deviation)")
        self.settings = settings or DPSettings.tiny()
        self.n_models = n_models
        self.type_map = list(type_map)
        self.seed = seed
        self.progress = progress

    def params(self) -> dict[str, Any]:
        return {"dp": self.settings.model_dump(mode="json"), "n_models": self.n_models, "type_map": self.type_map,
                "train_seed": self.seed}

    def fit(self, frames: list[LabeledFrame]):
        from mlipflow import cache
        from mlipflow.engines.dataset_io import deepmd_systems, export_deepmd
        from mlipflow.engines.deepmd import fit_dp_member

        frames = sorted(frames, key=lambda f: f.frame_id)

        def export(path: Path) -> Path:
            export_deepmd(frames, path / "systems", self.type_map)
            return path

        data = cache.cached_directory("pool-al-dp-data", [[f.frame_id for f in frames], self.type_map], export)
        systems = deepmd_systems(data / "systems")
        docs = [fit_dp_member(self.settings, systems, None, seed=self.seed + m, member=m, type_map=self.type_map,
                              progress=self.progress, include_files=False) for m in range(self.n_models)]
        models = [d.model for d in docs]
        paths = {"model": models[0], **{f"model_{m}": p for m, p in enumerate(models[1:], start=1)}}
        ref = PotentialRef(kind="dp", name=f"pool-al-{len(frames)}", input_hash=docs[0].input_hash, paths=paths)
        return ref, sum(d.train_time_s or 0.0 for d in docs), all(d.cached for d in docs), models

    def test_data(self, frames):
        from mlipflow.engines.dataset_io import pacemaker_dataframe

        return pacemaker_dataframe(frames, None)  # DeePMD predicts total energies


def run_pool_al(
    pool: Sequence[LabeledFrame],
    test: Sequence[LabeledFrame],
    *,
    kind: Literal["ace", "dp"] = "ace",
    strategy: str = "maxvol",
    init: int = 40,
    batch: int = 30,
    rounds: int = 5,
    seed: int = 0,
    init_seed: int = 0,
    reference_energies: dict[str, float] | None = None,
    ace_settings: Any = None,
    dp_settings: Any = None,
    n_models: int = 2,
    gamma_tolerance: float = 1.01,
    gamma_cap: float | None = None,
    repeat_maxvol: bool = True,
    f_trust_hi: float | None = None,
    max_force: float | None = None,
    fill: Literal["random", "none"] = "random",
    high_force: float = 30.0,
    pool_origin: Sequence[str] = (),
    progress: bool = False,
    on_round: Callable[[DistilRound], None] | None = None,
) -> DistilDoc:
    """Pool-based active learning (see the module docstring) -> :class:`DistilDoc`."""
    t_start = time.time()
    kind = kind.lower()  # type: ignore[assignment]
    if kind not in STRATEGIES:
        raise UserError(f"unknown potential kind {kind!r} for pool-based active learning", "use ace or dp")
    if strategy not in STRATEGIES[kind]:
        raise UserError(f"strategy {strategy!r} does not apply to {kind}",
                        f"use one of {', '.join(STRATEGIES[kind])} for {kind}")
    if fill not in ("random", "none"):
        raise UserError(f"fill={fill!r}", "use fill random or none")
    pool = _usable(pool, "pool")
    test = _usable(test, "test set")
    overlap = {f.frame_id for f in pool} & {f.frame_id for f in test}
    if overlap:
        raise UserError(f"{len(overlap)} test frames are also in the pool",
                        "give a test set apart from the pool (e.g. from other MD runs)")
    for name, value in (("init", init), ("batch", batch)):
        if value < 1:
            raise UserError(f"{name}={value}", f"give {name} >= 1")
    if rounds < 0:
        raise UserError(f"rounds={rounds}", "give rounds >= 0")
    if init + batch * rounds > len(pool):
        raise UserError(f"init + batch × rounds = {init + batch * rounds} labels, but the pool has {len(pool)} frames",
                        "use fewer rounds or smaller batches, or a larger pool")
    elements = sorted({e for f in pool + test for e in f.elements})
    if kind == "ace":
        if reference_energies:
            missing = [e for e in elements if e not in reference_energies]
            if missing:
                raise UserError(f"no reference energy for {missing}", "give isolated-atom energies of every element")
        fitter: Any = _AceFitter(ace_settings, reference_energies, progress)
    else:
        if strategy == "deviation" and n_models < 2:
            raise UserError("the deviation strategy needs an ensemble", "give n_models >= 2")
        fitter = _DPFitter(dp_settings, n_models, elements, seed=0, progress=progress)
    fmax = np.array([max_force_component(f) for f in pool])
    eligible = np.ones(len(pool), bool) if max_force is None else fmax <= max_force
    init_idx = list(np.random.default_rng(init_seed).choice(len(pool), size=init, replace=False))
    chosen: list[int] = [int(i) for i in init_idx]
    test_data = fitter.test_data(test)
    params = {"init": init, "batch": batch, "rounds": rounds, "init_seed": init_seed,
              "gamma_tolerance": gamma_tolerance, "gamma_cap": gamma_cap, "repeat_maxvol": repeat_maxvol,
              "f_trust_hi": f_trust_hi, "max_force": max_force, "fill": fill, "high_force": high_force,
              **fitter.params()}
    doc = DistilDoc(kind=kind, strategy=strategy, seed=seed, parameters=params, pool=list(pool_origin),
                    n_pool=len(pool), n_test=len(test))
    pool_atoms: list | None = None
    pending: dict[str, Any] = {"n_added": 0, "n_unc": 0, "high": None}
    from mlipflow.engines.ace_eval import evaluate_potential

    for rnd in range(rounds + 1):
        ref, fit_time, cached, extra = fitter.fit([pool[i] for i in chosen])
        ev = evaluate_potential(ref, test_data)
        row = DistilRound(round=rnd, n_labels=len(chosen), n_added=pending["n_added"], n_by_uncertainty=pending["n_unc"],
                          test=ErrorMetrics.model_validate(ev.metrics.model_dump()),
                          added_high_force_fraction=pending["high"], fit_time_s=fit_time, cached=cached)
        doc.final_potential = ref
        if rnd < rounds:
            t0 = time.time()
            taken = set(chosen)
            remaining = [i for i in range(len(pool)) if eligible[i] and i not in taken]
            rng = np.random.default_rng([seed, rnd])
            picked: list[int] = []
            if strategy != "random":
                if pool_atoms is None:
                    from mlipflow.engines.frames import frames_to_atoms

                    pool_atoms = frames_to_atoms(pool)
                cands = [pool_atoms[i] for i in remaining]
                if strategy == "maxvol":
                    from mlipflow.engines.selection import select_maxvol

                    res = select_maxvol(cands, ref.paths["model"], ref.paths["active_set"], max_structures=batch,
                                        gamma_tolerance=gamma_tolerance, gamma_cap=gamma_cap,
                                        fill_to=batch if repeat_maxvol else None)
                    picked = [remaining[k] for k in res.selected_indices]
                    row.pool_uncertainty = _stats(res.gamma, gamma_tolerance)
                else:
                    from mlipflow.engines.deepmd import model_deviation

                    dev = model_deviation(extra, cands).max_devi_f
                    order = [k for k in np.argsort(-dev, kind="stable")
                             if np.isfinite(dev[k]) and (f_trust_hi is None or dev[k] < f_trust_hi)]
                    picked = [remaining[k] for k in order[:batch]]
                    row.pool_uncertainty = _stats(dev, 0.0)
            n_unc = len(picked)
            if len(picked) < batch and (strategy == "random" or fill == "random"):
                got = set(picked)
                rest = [i for i in remaining if i not in got]
                picked += [int(i) for i in rng.choice(rest, size=min(batch - len(picked), len(rest)), replace=False)]
            row.select_time_s = time.time() - t0
            if not picked:
                log.warning("round %d: the strategy chose nothing and fill is 'none': stopping", rnd)
            pending = {"n_added": len(picked), "n_unc": n_unc if strategy != "random" else 0,
                       "high": float(np.mean(fmax[picked] > high_force)) if picked else None}
            chosen += picked
        doc.rounds.append(row)
        log.info("pool AL %s/%s seed %d round %d: %d labels, test force RMSE %.3f eV/Å, energy RMSE %.4f eV/atom",
                 kind, strategy, seed, rnd, row.n_labels, row.test.force_rmse or float("nan"),
                 row.test.energy_rmse or float("nan"))
        if on_round:
            on_round(row)
        if rnd < rounds and not pending["n_added"]:
            break
    doc.chosen = [pool[i].frame_id for i in chosen]
    doc.time_s = time.time() - t_start
    return doc


# ----------------------------------------------------------------------------- summaries


def labels_to_reach(rounds: Sequence[DistilRound], target: float, metric: str = "force_rmse") -> float | None:
    """Labels at which the test error first falls to ``target`` (linear between rounds), or None."""
    prev = None
    for r in rounds:
        v = getattr(r.test, metric)
        if v is None:
            continue
        if v <= target:
            if prev is None or prev[1] == v:
                return float(r.n_labels)
            (n0, v0) = prev
            return float(n0 + (v0 - target) / (v0 - v) * (r.n_labels - n0))
        prev = (r.n_labels, v)
    return None


def curve_label(doc: DistilDoc) -> str:
    """Strategy name with the filters that distinguish it (groups seeds in plots and tables)."""
    p = doc.parameters
    bits = [f"{doc.kind} {doc.strategy}"]
    if p.get("gamma_cap") is not None and doc.strategy == "maxvol":
        bits.append(f"γ≤{p['gamma_cap']:g}")
    if p.get("f_trust_hi") is not None and doc.strategy == "deviation":
        bits.append(f"σ_f<{p['f_trust_hi']:g}")
    if p.get("max_force") is not None:
        bits.append(f"F_max≤{p['max_force']:g}")
    if doc.strategy != "random" and p.get("fill") == "none":
        bits.append("no fill")
    return " ".join(bits)


def group_curves(docs: Sequence[DistilDoc]) -> dict[str, list[DistilDoc]]:
    out: dict[str, list[DistilDoc]] = {}
    for d in docs:
        out.setdefault(curve_label(d), []).append(d)
    return out


def mean_curve(docs: Sequence[DistilDoc], metric: str = "force_rmse") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(labels, mean, min, max) of ``metric`` over runs (seeds) with the same label counts."""
    n = min(len(d.rounds) for d in docs)
    labels = np.array([docs[0].rounds[k].n_labels for k in range(n)], float)
    vals = np.array([[getattr(d.rounds[k].test, metric) or np.nan for k in range(n)] for d in docs], float)
    return labels, np.nanmean(vals, 0), np.nanmin(vals, 0), np.nanmax(vals, 0)


def plot_label_efficiency(docs: Sequence[DistilDoc], path: str | Path, title: str = "") -> str:
    """Test force and energy RMSE and MAE against labels, one line per strategy (band: min–max over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = {"force_rmse": "test force RMSE (eV/Å)", "energy_rmse": "test energy RMSE (eV/atom)",
               "force_mae": "test force MAE (eV/Å)", "energy_mae": "test energy MAE (eV/atom)"}
    fig, grid = plt.subplots(2, 2, figsize=(10, 7.5))
    axes = grid.ravel()
    for k, (label, group) in enumerate(group_curves(docs).items()):
        for ax, metric in zip(axes, metrics):
            x, m, lo, hi = mean_curve(group, metric)
            line, = ax.plot(x, m, "o-", color=f"C{k}", label=f"{label} ({len(group)} seed{'s' if len(group) > 1 else ''})")
            if len(group) > 1:
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
    for ax, ylabel in zip(axes, metrics.values()):
        ax.set_ylabel(ylabel)
    for ax in axes:
        ax.set_xlabel("labelled frames")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    from mlipflow.analysis.plots_structure import _save

    return _save(fig, path)


def efficiency_table(docs: Sequence[DistilDoc], baseline: str | None = None) -> list[dict[str, Any]]:
    """Per strategy: final errors (mean over seeds) and the labels needed to reach the random
    baseline's final mean force and energy RMSE (None: not reached within the run)."""
    groups = group_curves(docs)
    base = baseline or next((k for k in groups if k.endswith(" random")), None)
    rows = []
    targets = {}
    if base in groups:
        for metric in ("force_rmse", "energy_rmse"):
            targets[metric] = float(mean_curve(groups[base], metric)[1][-1])
    for label, group in groups.items():
        row: dict[str, Any] = {"strategy": label, "seeds": len(group), "baseline": label == base}
        for metric in ("force_rmse", "energy_rmse"):
            x, m, lo, hi = mean_curve(group, metric)
            row[f"final_{metric}"] = float(m[-1])
            row["final_labels"] = int(x[-1])
            if metric in targets:
                reach = [labels_to_reach(d.rounds, targets[metric], metric) for d in group]
                ok = [r for r in reach if r is not None]
                row[f"labels_to_{metric}"] = float(np.mean(ok)) if len(ok) == len(reach) else None
        for metric in ("force_mae", "energy_mae"):
            row[f"final_{metric}"] = float(mean_curve(group, metric)[1][-1])
        hf = [r.added_high_force_fraction for d in group for r in d.rounds if r.added_high_force_fraction is not None]
        row["added_high_force_fraction"] = float(np.mean(hf)) if hf else None
        rows.append(row)
    return rows
