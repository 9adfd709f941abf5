"""Checks a modeller runs on a potential before production (no jobflow; the jobs are in
:mod:`mlipflow.makers.validation`):

* :func:`errors_by_composition` — energy/force errors on labelled frames, per composition region;
* :func:`eos_check` — the E–V curve of a reference crystal with the potential and (optionally) the
  reference labeler, Birch–Murnaghan V0/B0 of both (:class:`ase.eos.EquationOfState`);
* :func:`uncertainty_fraction` — the fraction of (production-MD) frames whose uncertainty (γ for
  ACE, ensemble force deviation for DP) is above a threshold: where the potential extrapolates;
* the melt-stability run is :class:`mlipflow.makers.active_learning.StabilityMaker`.

Reference crystals (:data:`CRYSTALS`) are built here, without a database: antifluorite Na2O,
rock-salt FeO, olivine LiFePO4 and olivine NaFePO4 (Li → Na in the olivine cell at NaFePO4's
olivine lattice); any structure file works as well.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mlipflow.errors import UserError
from mlipflow.schemas import ErrorMetrics, LabeledFrame
from mlipflow.schemas.potentials import CompositionErrors, EosCheck, UncertaintyFraction

log = logging.getLogger(__name__)

EV_A3_TO_GPA = 160.21766208

#: NaFePO4 olivine lattice (Å; Avdeev et al., Inorg. Chem. 52 (2013) 8685: a 10.41, b 6.22, c 4.95)
NA_OLIVINE_LATTICE = (10.406, 6.218, 4.947)


def _na2o():
    from ase.build import bulk

    return bulk("ONa2", "fluorite", a=5.55)  # antifluorite: O on the fcc sites


def _feo():
    from ase.build import bulk

    return bulk("FeO", "rocksalt", a=4.33)


def _olivine(alkali: str, lattice):
    from pymatgen.io.ase import AseAtomsAdaptor

    from mlipflow.generation.olivine import olivine_unit_cell

    st = olivine_unit_cell(lattice)
    if alkali != "Li":
        st.replace_species({"Li": alkali})
    for prop in list(st.site_properties):
        st.remove_site_property(prop)
    st.remove_oxidation_states()
    return AseAtomsAdaptor.get_atoms(st)


CRYSTALS = {
    "Na2O": _na2o,
    "FeO": _feo,
    "LiFePO4": lambda: _olivine("Li", (10.2362, 5.97076, 4.65492)),
    "NaFePO4-olivine": lambda: _olivine("Na", NA_OLIVINE_LATTICE),
}


def check_crystal(name: str) -> None:
    """Raise the clear error for a name that is neither a built-in crystal nor a file (without
    building or reading it)."""
    if name not in CRYSTALS and not Path(name).is_file():
        raise UserError(f"unknown reference crystal {name!r}", f"use one of {', '.join(CRYSTALS)} or a structure file")


def crystal(name: str):
    """A reference crystal by name (:data:`CRYSTALS`) or from a structure file (ASE reads it)."""
    if name in CRYSTALS:
        at = CRYSTALS[name]()
        at.info["name"] = name
        return at
    p = Path(name)
    if p.is_file():
        from ase.io import read

        try:
            at = read(str(p))
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"cannot read a crystal from {p} ({exc})", "give a CIF, POSCAR or extxyz file") from None
        at.info["name"] = p.stem
        return at
    check_crystal(name)


def _energy_target(potential) -> str:
    from mlipflow.engines.potentials import kind_of
    from mlipflow.schemas import PotentialRef

    return kind_of(PotentialRef.coerce(potential).kind).energy_target


def errors_by_composition(potential, frames: Sequence[LabeledFrame], reference_energies: dict[str, float] | None = None,
                          key: str = "composition") -> tuple[ErrorMetrics, list[CompositionErrors]]:
    """Errors of ``potential`` on ``frames`` overall and per composition region (the frame's
    ``metadata[key]`` — the composition label of generated cells — else its reduced formula)."""
    from mlipflow.engines.ace_eval import error_metrics, evaluate_potential
    from mlipflow.engines.dataset_io import pacemaker_dataframe

    ok = [f for f in frames if f.status == "ok" and f.forces is not None]
    if not ok:
        raise UserError("no labelled frames to compute errors on", "give a dataset with labelled (ok) frames")
    refs = reference_energies if _energy_target(potential) == "energy_corrected" else None
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(ok):
        groups.setdefault(str(f.metadata.get(key) or f.formula), []).append(i)
    ev = evaluate_potential(potential, pacemaker_dataframe(ok, refs))  # one pass; the groups slice it
    ends = np.cumsum([3 * f.nsites for f in ok])
    rows = []
    for name, idx in sorted(groups.items()):
        comp = np.concatenate([np.arange(ends[i] - 3 * ok[i].nsites, ends[i]) for i in idx])
        m = error_metrics(ev.energy_ref[idx], ev.energy_pred[idx], ev.force_ref[comp], ev.force_pred[comp], len(idx))
        rows.append(CompositionErrors(composition=name, formula=ok[idx[0]].formula, n_frames=len(idx), errors=m))
    return ev.metrics, rows


def strained(atoms, strain: float = 0.06, points: int = 7) -> list:
    """Isotropically scaled copies: volumes from (1-strain) to (1+strain) of the given one."""
    if points < 5:
        raise UserError(f"{points} E–V points", "give at least 5 points for a Birch–Murnaghan fit")
    if not 0 < strain < 0.3:
        raise UserError(f"volume strain {strain}", "give a strain between 0 and 0.3 (e.g. 0.06)")
    out = []
    for s in np.linspace(1 - strain, 1 + strain, points):
        a = atoms.copy()
        a.set_cell(a.cell * s ** (1 / 3), scale_atoms=True)
        out.append(a)
    return out


def fit_eos(volumes: Sequence[float], energies: Sequence[float]) -> dict[str, float | None]:
    """Birch–Murnaghan fit: V0 (Å³/atom), E0 (eV/atom), B0 (GPa); None where the fit fails."""
    from ase.eos import EquationOfState

    try:
        v0, e0, b = EquationOfState(list(volumes), list(energies), eos="birchmurnaghan").fit()
    except Exception as exc:  # noqa: BLE001 - a curve without a minimum in range
        log.info("E–V fit failed: %s", exc)
        return {"v0": None, "e0": None, "b0_GPa": None}
    return {"v0": float(v0), "e0": float(e0), "b0_GPa": float(b * EV_A3_TO_GPA)}


def eos_check(potential, name: str, labeler: str | None = None, strain: float = 0.06, points: int = 7,
              reference_frames: Sequence[Any] | None = None) -> EosCheck:
    """E–V curve of crystal ``name`` with ``potential`` (and with ``labeler`` as the reference).
    ``reference_frames``: the labeler's frames of the strained cells (:func:`strained`, same order),
    computed elsewhere (VASP: one job per cell); else the labeler runs here."""
    from mlipflow.engines.potentials import calculator

    base = crystal(name)
    n = len(base)
    cells = strained(base, strain, points)
    vols = [a.get_volume() / n for a in cells]
    calc = calculator(potential)
    e_pot = []
    for a in cells:
        a = a.copy()
        a.calc = calc
        e_pot.append(float(a.get_potential_energy()) / n)
    fp = fit_eos(vols, e_pot)
    doc = EosCheck(name=base.info["name"], formula=base.get_chemical_formula(empirical=True), natoms=n,
                   volumes_A3_atom=vols, energies_eV_atom=e_pot, v0_A3_atom=fp["v0"], b0_GPa=fp["b0_GPa"])
    if labeler:
        from mlipflow.engines.labelers import get_labeler

        frames = (list(reference_frames) if reference_frames is not None
                  else get_labeler(labeler).label(cells, source=f"validate-eos:{doc.name}"))
        if len(frames) == points and all(f.status == "ok" for f in frames):
            e_ref = [float(f.energy) / n for f in frames]
            fr = fit_eos(vols, e_ref)
            doc.reference_labeler = labeler
            doc.reference_energies_eV_atom = e_ref
            doc.reference_v0_A3_atom, doc.reference_b0_GPa = fr["v0"], fr["b0_GPa"]
            d_pot = np.asarray(e_pot) - min(e_pot)
            d_ref = np.asarray(e_ref) - min(e_ref)
            doc.shape_rmse_eV_atom = float(np.sqrt(np.mean((d_pot - d_ref) ** 2)))
            if fp["v0"] and fr["v0"]:
                doc.v0_error = fp["v0"] / fr["v0"] - 1
            if fp["b0_GPa"] and fr["b0_GPa"]:
                doc.b0_error = fp["b0_GPa"] / fr["b0_GPa"] - 1
        else:
            doc.note = (f"the reference labeler failed on {sum(f.status != 'ok' for f in frames) + points - len(frames)}"
                        f" of {points} points")
    inside = fp["v0"] is not None and min(vols) <= fp["v0"] <= max(vols)
    if not inside:
        doc.note = (doc.note + "; " if doc.note else "") + "the potential's E–V curve has no minimum in the strained range"
    return doc


def uncertainty_fraction(potential, frames: Sequence[Any], threshold: float, source: str = "") -> UncertaintyFraction:
    """Per-frame uncertainty of ``potential`` (γ for ACE, max force deviation for a DP ensemble)
    and the fraction above ``threshold``."""
    from mlipflow.engines.md import to_atoms
    from mlipflow.engines.potentials import kind_of, materialize
    from mlipflow.schemas import PotentialRef

    ref = PotentialRef.coerce(potential)
    if kind_of(ref.kind).uncertainty is None:
        raise UserError(f"a {ref.kind!r} potential has no uncertainty signal",
                        "give an ACE potential with its active set or a DeePMD ensemble")
    if not frames:
        raise UserError("no frames to compute the uncertainty on", "give production-MD frames (a trajectory)")
    mat = materialize(ref)
    calc = mat.ase_calculator(uncertainty=True)
    values = []
    for fr in frames:
        a = to_atoms(fr)
        a.calc = calc
        a.get_potential_energy()
        u = mat.uncertainty_of(a)
        values.append(float("nan") if u is None else float(u))
    v = np.asarray(values, float)
    fin = v[np.isfinite(v)]
    return UncertaintyFraction(signal=mat.kind.uncertainty, threshold=threshold, n_frames=len(v),
                               n_above=int((fin > threshold).sum()),
                               fraction_above=float((fin > threshold).mean()) if fin.size else None,
                               median=float(np.median(fin)) if fin.size else None,
                               max=float(fin.max()) if fin.size else None, source=source)


def plot_eos(checks: Sequence[Any], path: str | Path | None = None, fig=None):
    """E–V curves (E − E_min per atom against V per atom), the potential's as lines, the
    reference's as points; one panel per crystal. Returns the figure (saved when ``path`` is given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlipflow.schemas.potentials import EosCheck

    checks = [c if isinstance(c, EosCheck) else EosCheck.model_validate(c) for c in checks]
    n = max(1, len(checks))
    fig = fig or plt.figure(figsize=(3.2 * n, 3.0))
    for k, c in enumerate(checks):
        ax = fig.add_subplot(1, n, k + 1)
        e = np.asarray(c.energies_eV_atom)
        ax.plot(c.volumes_A3_atom, (e - e.min()) * 1e3, "-", label="potential")
        if c.reference_energies_eV_atom:
            r = np.asarray(c.reference_energies_eV_atom)
            ax.plot(c.volumes_A3_atom, (r - r.min()) * 1e3, "o", label=c.reference_labeler or "reference")
        ax.set_title(c.name, fontsize=9)
        ax.set_xlabel("V (Å³/atom)")
        if k == 0:
            ax.set_ylabel("E − E_min (meV/atom)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
