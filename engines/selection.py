"""D-optimality (MaxVol) selection of exploration frames relative to the current active set.

``select_maxvol(candidates, potential_yaml, active_set_asi)`` goes through pyace's Python API
(not the ``pace_select`` CLI and its fixed file names):

1. per-candidate γ: ``pyace.activelearning.compute_B_projections`` + ``compute_extrapolation_grade``
   with the inverted active set (``.asi``), max over atoms;
2. the D-optimal set: ``pyace.aceselect.select_structures_maxvol`` with the current active set's
   projections as ``extra_A0_projections_dict`` (``pinv`` of the stored inverse), so only frames
   that enlarge the volume spanned by the existing active set are chosen; ranked by the number
   of atoms each frame contributes, truncated to ``max_structures``;
3. optional forced additions (e.g. all final quenched structures) and a
   :class:`~mlipflow.schemas.CandidateRecord` per candidate saying why it was or was not chosen.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from mlipflow.errors import UserError
from mlipflow.schemas.potentials import CandidateRecord

log = logging.getLogger(__name__)


@dataclass
class SelectionResult:
    selected_indices: list[int]
    selected: list[Atoms]
    records: list[CandidateRecord]
    gamma: np.ndarray
    n_candidates: int
    max_structures: int
    gamma_tolerance: float
    maxvol_indices: list[int] = field(default_factory=list)
    time_s: float = 0.0
    collapsed_indices: list[int] = field(default_factory=list)

    @property
    def n_selected(self) -> int:
        return len(self.selected_indices)

    def gamma_stats(self) -> dict[str, float]:
        return gamma_stats(self.gamma)

    def summary(self) -> dict[str, Any]:
        return {"n_candidates": self.n_candidates, "n_selected": self.n_selected,
                "n_maxvol": len(self.maxvol_indices), "max_structures": self.max_structures,
                "gamma_tolerance": self.gamma_tolerance, "gamma_stats": self.gamma_stats(),
                "time_s": self.time_s}


def gamma_stats(gamma: Sequence[float]) -> dict[str, float]:
    g = np.asarray([x for x in gamma if x is not None and np.isfinite(x)], dtype=float)
    if g.size == 0:
        return {}
    return {"max": float(g.max()), "mean": float(g.mean()), "median": float(np.median(g)),
            "p90": float(np.percentile(g, 90)), "min": float(g.min()), "n": float(g.size)}


def _load(potential_yaml: str, active_set_asi: str):
    from pyace import BBasisConfiguration
    from pyace.activelearning import compute_A_active_inverse, load_active_inverse_set

    try:
        bconf = BBasisConfiguration(str(potential_yaml))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read ACE potential {potential_yaml} ({exc})",
                        "give pacemaker's output_potential.yaml") from exc
    try:
        asi = load_active_inverse_set(str(active_set_asi))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read active set {active_set_asi} ({exc})",
                        "give the .asi written by pace_activeset for this potential") from exc
    return bconf, asi, compute_A_active_inverse(asi)


def _check_elements(candidates: Sequence[Atoms], bconf) -> None:
    from pyace.activelearning import convert_to_bbasis

    elements = set(convert_to_bbasis(bconf).elements_name)
    present = {s for at in candidates for s in at.get_chemical_symbols()}
    if present - elements:
        raise UserError(f"candidates contain {sorted(present - elements)}, not covered by the potential "
                        f"({sorted(elements)})", "explore only with the potential's elements")


def candidate_gammas(candidates: Sequence[Atoms], potential_yaml: str, active_set_asi: str,
                     _loaded=None, progress: bool | None = None, chunk: int = 64) -> np.ndarray:
    """Max per-atom γ of each candidate (pyace functional API), ``chunk`` frames at a time with a
    progress bar for large pools (each frame's γ depends on that frame alone)."""
    from pyace.activelearning import compute_B_projections, compute_extrapolation_grade
    from tqdm.auto import tqdm

    from mlipflow.output import progress_enabled

    bconf, asi, _ = _loaded or _load(potential_yaml, active_set_asi)
    candidates = list(candidates)
    out = np.zeros(len(candidates))
    starts = range(0, len(candidates), chunk)
    bar = tqdm(starts, desc="γ", unit="chunk", leave=False,
               disable=len(starts) < 2 or not progress_enabled(progress))
    for start in bar:
        part = candidates[start:start + chunk]
        proj, struct_ind = compute_B_projections(bconf, part, return_structure_ind_dict=True)
        gdict = compute_extrapolation_grade(proj, asi)
        for st, g in gdict.items():
            if len(g):
                np.maximum.at(out, start + struct_ind[st].astype(int), g)
    return out


def closest_contact(atoms: Atoms) -> tuple[float, str, float]:
    """The closest pair of atoms relative to the sum of their covalent radii (ASE's):
    ``(d / (r_i + r_j), "A-B", d)``; ``(inf, "", inf)`` for fewer than two atoms in range.

    Exploration frames collected while a potential runs away have pairs at 0.1–0.5 of that sum
    (O–O at 0.3–0.8 Å in the NaFePO4 mini campaign); no reference labels them sensibly.
    """
    from ase.data import covalent_radii
    from ase.neighborlist import neighbor_list

    r = covalent_radii[atoms.numbers]
    if len(atoms) < 2:
        return float("inf"), "", float("inf")
    i, j, d = neighbor_list("ijd", atoms, float(2 * r.max()))
    if not len(d):
        return float("inf"), "", float("inf")
    ratio = d / (r[i] + r[j])
    k = int(np.argmin(ratio))
    sym = atoms.get_chemical_symbols()
    return float(ratio[k]), f"{sym[i[k]]}-{sym[j[k]]}", float(d[k])


def select_maxvol(candidates: Sequence[Atoms], potential_yaml: str, active_set_asi: str,
                  max_structures: int = 500, gamma_tolerance: float = 1.01,
                  force_include: Sequence[int] = (), force_reason: str = "forced: final quenched structure",
                  maxvol_iters: int = 300, batch_size_option: str | int = "auto",
                  min_contact: float | None = None, gamma_cap: float | None = None,
                  fill_to: int | None = None) -> SelectionResult:
    """Choose up to ``max_structures`` candidates by D-optimality relative to the active set.

    ``force_include``: candidate indices added regardless (counted against ``max_structures``
    only after the MaxVol choices; they are never dropped for it). ``min_contact``: candidates
    whose :func:`closest_contact` is below it never enter MaxVol (collapsed geometries).
    ``gamma_cap``: candidates extrapolating beyond it never enter MaxVol (they sit where no
    potential of this basis is meaningful, and the reference often cannot label them either).
    ``fill_to``: one MaxVol pass picks only the few frames that enlarge the active-set volume
    (a handful per element's basis size); with ``fill_to`` the pass is repeated on the frames not
    yet chosen, each round a D-optimal set against the *same* active set, until this many frames
    (at most ``max_structures``) are chosen or no extrapolative frame is left.
    """
    import pandas as pd

    t0 = time.time()
    candidates = list(candidates)
    if max_structures < 0:
        raise UserError("max_structures must be >= 0", "give a positive number of frames to label")
    loaded = _load(potential_yaml, active_set_asi)
    bconf, asi, a0_active = loaded
    _check_elements(candidates, bconf)
    gamma = candidate_gammas(candidates, potential_yaml, active_set_asi, _loaded=loaded)
    ranked: list[int] = []
    # Only extrapolative frames (max γ above the tolerance) enter MaxVol: a frame whose environments
    # all lie inside the active set's parallelepiped adds no volume to it, but MaxVol's row swaps
    # (each swap changes the basis) could still pick it once other frames entered.
    contact = {}
    if min_contact:
        contact = {i: c for i, c in ((i, closest_contact(a)) for i, a in enumerate(candidates)) if c[0] < min_contact}
    capped = {i for i in range(len(candidates)) if gamma_cap is not None and float(gamma[i]) > gamma_cap
              and i not in contact}
    pool = [i for i in range(len(candidates))
            if float(gamma[i]) > gamma_tolerance and i not in contact and i not in capped]
    round_of: dict[int, int] = {}
    target = min(max_structures, fill_to) if fill_to else max_structures
    while pool and max_structures > 0:
        select_structures_maxvol = _import_aceselect()
        df = pd.DataFrame({"ase_atoms": [candidates[i] for i in pool]}, index=pool)
        # copy: compute_active_set stacks onto the arrays of this dict in place
        extra = {k: np.array(v, copy=True) for k, v in a0_active.items()}
        df_sel = select_structures_maxvol(df, bconf, extra_A0_projections_dict=extra,
                                          batch_size_option=batch_size_option,
                                          gamma_tolerance=gamma_tolerance, max_structures=-1,
                                          maxvol_iters=maxvol_iters)
        new = [int(i) for i in df_sel.index if int(i) not in round_of]
        if not new:
            break
        rnd = 1 + max(round_of.values(), default=0)
        for i in new:
            round_of[i] = rnd
        ranked.extend(new)
        if not fill_to or len(ranked) >= target:
            break
        pool = [i for i in pool if i not in round_of]
    chosen = ranked[:max_structures]
    chosen_set = set(chosen)
    forced = [int(i) for i in force_include if int(i) not in chosen_set and int(i) not in contact]
    rank_of = {i: r for r, i in enumerate(ranked)}
    records = []
    for i, at in enumerate(candidates):
        info = at.info
        g = float(gamma[i])
        if i in chosen_set:
            rnd = f" (round {round_of[i]})" if fill_to else ""
            sel, reason = True, (f"selected: MaxVol (D-optimality){rnd} rank {rank_of[i] + 1} of {len(ranked)}; "
                                 f"its environments enlarge the active-set volume (max γ {g:.3g})")
        elif i in forced:
            sel, reason = True, f"{force_reason} (max γ {g:.3g})"
        elif i in contact:
            ratio, pair, dist = contact[i]
            sel, reason = False, (f"not selected: collapsed geometry, {pair} at {dist:.2f} Å = {ratio:.2f} of the "
                                  f"covalent-radii sum (< min_contact {min_contact})")
        elif i in capped:
            sel, reason = False, (f"not selected: max γ {g:.3g} above gamma_cap {gamma_cap} (extrapolating too far "
                                  "to be a useful label)")
        elif i in rank_of:
            sel, reason = False, (f"not selected: MaxVol rank {rank_of[i] + 1} beyond max_structures="
                                  f"{max_structures}")
        elif g <= gamma_tolerance:
            sel, reason = False, (f"not selected: max γ {g:.3g} <= tolerance {gamma_tolerance}; "
                                  "interpolative w.r.t. the active set")
        else:
            sel, reason = False, (f"not selected: max γ {g:.3g} > tolerance but its environments are "
                                  "spanned by the frames chosen (redundant)")
        records.append(CandidateRecord(
            run=str(info.get("run", info.get("run_id", ""))), step=int(info.get("step", i) or 0),
            temperature=_f(info.get("temperature_K", info.get("target_T"))), max_gamma=g, selected=sel,
            reason=reason))
    sel_idx = chosen + forced
    res = SelectionResult(selected_indices=sel_idx, selected=[candidates[i] for i in sel_idx], records=records,
                          gamma=gamma, n_candidates=len(candidates), max_structures=max_structures,
                          gamma_tolerance=gamma_tolerance, maxvol_indices=ranked, time_s=time.time() - t0,
                          collapsed_indices=sorted(contact))
    log.info("MaxVol selection: %d of %d candidates (%d in the D-optimal set, %d forced) in %.1f s",
             res.n_selected, len(candidates), len(ranked), len(forced), res.time_s)
    return res


def _import_aceselect():
    """pyace.aceselect calls logging.basicConfig at import; keep it from configuring our root logger."""
    root = logging.getLogger()
    guard = None
    if not root.handlers:
        guard = logging.NullHandler()
        root.addHandler(guard)
    try:
        from pyace.aceselect import select_structures_maxvol
    finally:
        if guard is not None:
            root.removeHandler(guard)
    return select_structures_maxvol


def _f(x):
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None
