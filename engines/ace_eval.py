"""Errors of a potential on labeled data, and parity plots.

``evaluate_potential(potential, data)`` works for every potential kind
(:mod:`mlipflow.engines.potentials`: ACE ``.yaml``/``.yace``, frozen DeePMD ``.pth``/``.pb``, or a
stored potential's reference). ``data`` is a pacemaker pickle (``*.pkl.gz``/``*.pckl.gzip``, a pandas
DataFrame with ``ase_atoms``, ``forces`` and ``energy_corrected`` and/or ``energy``), an extxyz
file, a DataFrame or a list of ``ase.Atoms`` carrying energies and forces.

Energies are compared per atom:

* ``energy_corrected`` present: it is the reference (ACE is fitted to it);
* else ``energy`` minus the isolated-atom ``reference_energies`` when given;
* else total ``energy`` per atom.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlipflow.errors import UserError
from mlipflow.schemas.potentials import ErrorMetrics

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".pkl.gz", ".pckl.gzip", ".pkl", ".pckl", ".pkl.gzip", ".pickle")


@dataclass
class Evaluation:
    """Per-structure energies (eV/atom) and force components (eV/Å), reference and predicted."""

    metrics: ErrorMetrics
    energy_ref: np.ndarray
    energy_pred: np.ndarray
    force_ref: np.ndarray
    force_pred: np.ndarray
    energy_kind: str = "energy_corrected"
    plot: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"metrics": self.metrics.model_dump(), "energy_kind": self.energy_kind, "plot": self.plot,
                **self.extra}


# ----------------------------------------------------------------------------- data loading

def _read_pickle(path: Path):
    import pandas as pd

    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        compression = "gzip" if magic == b"\x1f\x8b" else None
        return pd.read_pickle(path, compression=compression)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is bad input
        raise UserError(f"cannot read {path} as a pacemaker pickle ({type(exc).__name__}: {exc})",
                        "give a gzip-compressed pandas pickle with columns ase_atoms, forces and "
                        "energy_corrected or energy (as written by `mlipflow dataset export`)") from exc


def load_labeled(data: Any, reference_energies: dict[str, float] | None = None):
    """(atoms list, reference energies in eV (total), forces list, energy kind) from ``data``."""
    import pandas as pd

    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.exists():
            raise UserError(f"data file {path} does not exist", "check the path")
        name = path.name.lower()
        if name.endswith(PICKLE_SUFFIXES):
            data = _read_pickle(path)
        elif name.endswith((".xyz", ".extxyz")):
            from ase.io import read

            try:
                data = read(path, index=":")
            except Exception as exc:  # noqa: BLE001
                raise UserError(f"cannot read {path} as extxyz ({exc})", "give a valid extxyz file") from exc
        else:
            raise UserError(f"unknown data format for {path.name}",
                            "use a pacemaker pickle (.pkl.gz, .pckl.gzip) or extxyz (.xyz, .extxyz)")
    if isinstance(data, pd.DataFrame):
        if "ase_atoms" not in data.columns or "forces" not in data.columns:
            raise UserError("the data table has no 'ase_atoms' or 'forces' column",
                            "give a pacemaker pickle with ase_atoms, forces and energy_corrected/energy")
        atoms = list(data["ase_atoms"])
        forces = [np.asarray(f, dtype=float) for f in data["forces"]]
        if "energy_corrected" in data.columns:
            energies = np.asarray(data["energy_corrected"], dtype=float)
            kind = "energy_corrected"
        elif "energy" in data.columns:
            energies = np.asarray(data["energy"], dtype=float)
            kind = "energy"
        else:
            raise UserError("the data table has neither 'energy_corrected' nor 'energy'",
                            "add an energy column")
    else:
        atoms = list(data)
        if not atoms:
            raise UserError("no structures in the data", "give at least one labeled structure")
        energies, forces = [], []
        for i, at in enumerate(atoms):
            try:
                energies.append(at.get_potential_energy())
                forces.append(np.asarray(at.get_forces(), dtype=float))
            except Exception as exc:  # noqa: BLE001
                raise UserError(f"structure {i} carries no energy/forces ({exc})",
                                "give labeled frames (extxyz with energy and forces)") from exc
        energies = np.asarray(energies, dtype=float)
        kind = "energy"
    if kind == "energy" and reference_energies:
        missing = {s for at in atoms for s in at.get_chemical_symbols()} - set(reference_energies)
        if missing:
            raise UserError(f"no reference energy for {sorted(missing)}",
                            "add them to the reference-energies file")
        energies = np.array([e - sum(reference_energies[s] for s in at.get_chemical_symbols())
                             for e, at in zip(energies, atoms)])
        kind = "energy_corrected"
    if len(atoms) == 0:
        raise UserError("no structures in the data", "give at least one labeled structure")
    return atoms, energies, forces, kind


def load_reference_energies(path: str | Path | None) -> dict[str, float] | None:
    """Isolated-atom energies from JSON or YAML ``{El: eV}``."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise UserError(f"reference-energies file {p} does not exist", "check the path")
    text = p.read_text()
    try:
        import yaml

        data = yaml.safe_load(text) if p.suffix.lower() in (".yaml", ".yml") else json.loads(text)
        out = {str(k): float(v) for k, v in dict(data).items()}
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read reference energies from {p} ({exc})",
                        'write a JSON/YAML mapping like {"Na": -1.3, "Fe": -3.5}') from exc
    return out


# ----------------------------------------------------------------------------- metrics and plots

def error_metrics(e_ref, e_pred, f_ref, f_pred, n_structures: int | None = None) -> ErrorMetrics:
    e_ref, e_pred = np.asarray(e_ref, float), np.asarray(e_pred, float)
    f_ref, f_pred = np.asarray(f_ref, float).ravel(), np.asarray(f_pred, float).ravel()
    de, df = e_pred - e_ref, f_pred - f_ref
    return ErrorMetrics(
        n_structures=int(n_structures if n_structures is not None else len(e_ref)),
        energy_rmse=float(np.sqrt(np.mean(de**2))) if de.size else None,
        energy_mae=float(np.mean(np.abs(de))) if de.size else None,
        force_rmse=float(np.sqrt(np.mean(df**2))) if df.size else None,
        force_mae=float(np.mean(np.abs(df))) if df.size else None,
    )


def parity_plot(ev: Evaluation, path: str | Path, title: str = "") -> str:
    """Energy and force parity plots side by side (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = ev.metrics
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, ref, pred, unit, what, rmse, mae in (
        (axes[0], ev.energy_ref, ev.energy_pred, "eV/atom", "Energy", m.energy_rmse, m.energy_mae),
        (axes[1], ev.force_ref, ev.force_pred, "eV/Å", "Force component", m.force_rmse, m.force_mae),
    ):
        ref, pred = np.asarray(ref).ravel(), np.asarray(pred).ravel()
        if ref.size:
            lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
            pad = 0.05 * (hi - lo or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
            ax.scatter(ref, pred, s=6, alpha=0.6)
        ax.set_xlabel(f"reference {what.lower()} ({unit})")
        ax.set_ylabel(f"predicted {what.lower()} ({unit})")
        if rmse is not None:
            ax.set_title(f"{what}: RMSE {rmse:.4g}, MAE {mae:.4g} {unit}", fontsize=9)
    if title:
        fig.suptitle(title)
    from mlipflow.analysis.plots_structure import _save

    return _save(fig, path)


def evaluate_calculator(calc, atoms_list: Sequence, energies, forces, kind: str = "energy_corrected",
                        progress: bool = False) -> Evaluation:
    """Evaluate ``calc`` on structures with reference total energies (eV) and forces."""
    from tqdm.auto import tqdm

    from mlipflow.output import progress_enabled

    e_ref, e_pred, f_ref, f_pred = [], [], [], []
    for at, e, f in tqdm(list(zip(atoms_list, energies, forces)), desc="evaluate", disable=not progress_enabled(progress),
                         leave=False):
        a = at.copy()
        a.calc = calc
        n = len(a)
        e_pred.append(float(a.get_potential_energy()) / n)
        e_ref.append(float(e) / n)
        f_pred.append(np.asarray(a.get_forces(), float).ravel())
        f_ref.append(np.asarray(f, float).ravel())
    ev = Evaluation(
        metrics=error_metrics(e_ref, e_pred, np.concatenate(f_ref), np.concatenate(f_pred), len(e_ref)),
        energy_ref=np.asarray(e_ref), energy_pred=np.asarray(e_pred),
        force_ref=np.concatenate(f_ref), force_pred=np.concatenate(f_pred), energy_kind=kind,
    )
    return ev


def evaluate_potential(potential: Any, data: Any, reference_energies: dict[str, float] | None = None,
                       plot: str | Path | None = None, title: str | None = None,
                       progress: bool = False) -> Evaluation:
    """Energy (per atom) and force-component errors of ``potential`` (a file of any potential kind,
    a PotentialRef or a stored PotentialDoc) on ``data`` (+ parity plot)."""
    from mlipflow.engines.potentials import calculator

    atoms, energies, forces, kind = load_labeled(data, reference_energies)
    calc = calculator(potential)
    try:
        ev = evaluate_calculator(calc, atoms, energies, forces, kind=kind, progress=progress)
    except ValueError as exc:
        if "Unsupported species" in str(exc):
            raise UserError(f"the data has elements the potential does not cover ({exc})",
                            "evaluate on data with the potential's elements only") from exc
        raise
    if kind == "energy" and not reference_energies:
        ev.extra["note"] = ("no energy_corrected and no reference energies: total energies per atom "
                            "compared (a constant offset per element shows up as energy error)")
    if plot:
        ev.plot = parity_plot(ev, plot, title or getattr(potential, 'label', None) or Path(str(potential)).name)
    return ev


def _gunzipped_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return raw
