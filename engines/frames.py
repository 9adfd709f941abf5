"""Labeled frames: building, checking, identifying and converting them.

* :func:`make_frame` builds a :class:`~mlipflow.schemas.LabeledFrame` from a structure and its
  labels, checking them (:func:`check_labels`: missing, NaN/inf, force above threshold) and
  recording failures;
* :func:`to_structure`, :func:`structure_key` and :func:`structure_hash` turn Structures, ASE
  ``Atoms``, dicts or frames into pymatgen Structures and their canonical content (hashing,
  de-duplication);
* :func:`frame_to_atoms` / :func:`frames_to_atoms` give ASE ``Atoms`` with single-point results.

Nothing here talks to the store (:mod:`mlipflow.engines.repository`) or writes files
(:mod:`mlipflow.engines.dataset_io`).

Units: energies eV, forces eV/Å, stress GPa with the ASE sign convention (positive = tensile),
magnetic moments µB.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from mlipflow.errors import UserError
from mlipflow.schemas import FrameStatus, LabeledFrame, content_hash

#: Default threshold on any force component norm; above it a frame is marked failed (eV/Å).
DEFAULT_FORCE_THRESHOLD = 100.0
#: eV/Å³ -> GPa
EV_A3_TO_GPA = 160.21766208


# ----------------------------------------------------------------------------- structures


def to_structure(obj: Any):
    """A pymatgen ``Structure`` from a Structure, ASE ``Atoms``, a Structure dict or a frame."""
    from pymatgen.core import Structure

    if isinstance(obj, Structure):
        return obj
    if isinstance(obj, LabeledFrame):
        return Structure.from_dict(obj.structure)
    if isinstance(obj, dict):
        return Structure.from_dict(obj)
    try:
        from ase import Atoms
    except ImportError:  # pragma: no cover
        Atoms = ()  # type: ignore[assignment]
    if isinstance(obj, Atoms):
        from pymatgen.core import Lattice

        if obj.cell.rank < 3:
            raise UserError("a structure without a 3D cell cannot be labeled",
                            "put molecules/clusters in a periodic box (atoms.center(vacuum=8); atoms.pbc = True)")
        s = Structure(Lattice(np.asarray(obj.cell)), obj.get_chemical_symbols(), obj.get_positions(),
                      coords_are_cartesian=True)
        if obj.has("initial_magmoms") and np.any(obj.get_initial_magnetic_moments()):
            s.add_site_property("magmom", [float(m) for m in np.ravel(obj.get_initial_magnetic_moments())])
        return s
    raise UserError(f"cannot make a structure from {type(obj).__name__}", "pass pymatgen Structures or ASE Atoms")


def structure_key(structure, with_magmom: bool = False) -> dict[str, Any]:
    """Canonical content of a structure for hashing: lattice, species, wrapped fractional coords.

    ``with_magmom`` adds the ``magmom`` site property (initial moments matter for VASP).
    """
    s = to_structure(structure)
    frac = np.round(np.mod(s.frac_coords, 1.0), 8) % 1.0
    key: dict[str, Any] = {
        "lattice": np.round(s.lattice.matrix, 8).tolist(),
        "species": [str(sp) for sp in s.species],
        "frac": frac.tolist(),
    }
    if with_magmom and "magmom" in s.site_properties:
        key["magmom"] = [float(np.linalg.norm(m)) if np.ndim(m) else float(m) for m in s.site_properties["magmom"]]
    return key


def structure_hash(structure, with_magmom: bool = False) -> str:
    """Content hash of a structure alone (used for de-duplication)."""
    return content_hash(structure_key(structure, with_magmom))


# ----------------------------------------------------------------------------- frames


def check_labels(
    energy: float | None,
    forces: Any,
    stress: Any = None,
    force_threshold: float | None = DEFAULT_FORCE_THRESHOLD,
) -> str | None:
    """Reason why these labels are unusable (missing, NaN/inf, force above threshold) or ``None``."""
    if energy is None:
        return "no energy returned"
    if not math.isfinite(float(energy)):
        return f"non-finite energy ({energy})"
    if forces is None:
        return "no forces returned"
    f = np.asarray(forces, dtype=float)
    if not np.all(np.isfinite(f)):
        return "non-finite forces (NaN/inf)"
    if stress is not None and not np.all(np.isfinite(np.asarray(stress, dtype=float))):
        return "non-finite stress (NaN/inf)"
    if force_threshold is not None and f.size:
        fmax = float(np.max(np.linalg.norm(f.reshape(-1, 3), axis=1)))
        if fmax > force_threshold:
            return f"max force {fmax:.3g} eV/Å above threshold {force_threshold:g} eV/Å"
    return None


def max_force_component(frame: LabeledFrame) -> float:
    """Largest |force component| of a labelled frame (eV/Å; 0 without forces)."""
    return float(np.abs(np.asarray(frame.forces, dtype=float)).max()) if frame.forces else 0.0


def stress_to_3x3(stress: Any) -> list[list[float]] | None:
    """A 3×3 list from a 3×3 or Voigt-6 (xx, yy, zz, yz, xz, xy) stress, same units."""
    if stress is None:
        return None
    a = np.asarray(stress, dtype=float)
    if a.shape == (6,):
        xx, yy, zz, yz, xz, xy = a
        a = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return a.reshape(3, 3).tolist()


def _magmoms_list(magmoms: Any) -> list[float] | None:
    if magmoms is None:
        return None
    m = np.asarray(magmoms, dtype=float)
    if m.ndim == 2:  # non-collinear: keep the norm
        m = np.linalg.norm(m, axis=1)
    return [float(x) for x in m]


def make_frame(
    structure,
    *,
    frame_id: str,
    labeler: str,
    labeler_settings: dict[str, Any] | None = None,
    energy: float | None = None,
    forces: Any = None,
    stress_gpa: Any = None,
    magmoms: Any = None,
    failure_reason: str | None = None,
    force_threshold: float | None = DEFAULT_FORCE_THRESHOLD,
    source: str | None = None,
    trajectory_id: str | None = None,
    step: int | None = None,
    metadata: dict[str, Any] | None = None,
    input_hash: str | None = None,
) -> LabeledFrame:
    """A :class:`LabeledFrame`; labels are checked (NaN/inf, force threshold) and failures recorded.

    ``failure_reason`` given → the frame is failed with that reason (labels kept if present).
    """
    s = to_structure(structure)
    reason = failure_reason or check_labels(energy, forces, stress_gpa, force_threshold)

    def _finite_or_none(x):
        return float(x) if x is not None and math.isfinite(float(x)) else None

    def _arr(x):
        if x is None:
            return None
        a = np.asarray(x, dtype=float)
        if not np.all(np.isfinite(a)):
            return None  # JSON cannot carry NaN; the reason says what was wrong
        return a.tolist()

    return LabeledFrame(
        frame_id=frame_id,
        structure=s.as_dict(),
        formula=s.composition.reduced_formula,
        elements=sorted({el.symbol for el in s.composition.elements}),
        nsites=len(s),
        energy=_finite_or_none(energy) if energy is not None else None,
        forces=_arr(forces),
        stress=_arr(stress_to_3x3(stress_gpa)) if stress_gpa is not None else None,
        magmoms=_magmoms_list(magmoms),
        labeler=labeler,
        labeler_settings=dict(labeler_settings or {}),
        status=FrameStatus.failed if reason else FrameStatus.ok,
        failure_reason=reason,
        source=source,
        trajectory_id=trajectory_id,
        step=step,
        metadata=dict(metadata or {}),
        input_hash=input_hash or frame_id,
    )


_FRAME_FIELDS = set(LabeledFrame.model_fields)


def _frame_from_doc(doc: dict[str, Any]) -> LabeledFrame:
    """A frame from a stored document or dict (keys that are not frame fields, e.g. ``_id``, dropped)."""
    return LabeledFrame(**{k: v for k, v in doc.items() if k in _FRAME_FIELDS})


def _energy_corrected(frame: LabeledFrame, refs: dict[str, float] | None) -> float:
    assert frame.energy is not None
    if not refs:
        return float(frame.energy)
    from pymatgen.core import Structure

    comp = Structure.from_dict(frame.structure).composition
    missing = [el.symbol for el in comp.elements if el.symbol not in refs]
    if missing:
        raise UserError(
            f"no reference energy for {', '.join(missing)}",
            "compute them with Labeler.reference_energies(elements) or give them in the configuration",
        )
    return float(frame.energy - sum(refs[el.symbol] * n for el, n in comp.items()))


# ----------------------------------------------------------------------------- ASE


def frame_to_atoms(frame: LabeledFrame):
    """ASE ``Atoms`` with a ``SinglePointCalculator`` holding energy, forces, stress, magmoms."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    s = Structure.from_dict(frame.structure)
    atoms = AseAtomsAdaptor.get_atoms(s)
    for k in list(atoms.arrays):  # keep the arrays small and pickle-friendly
        if k not in ("numbers", "positions", "initial_magmoms"):
            del atoms.arrays[k]
    results: dict[str, Any] = {}
    if frame.energy is not None:
        results["energy"] = frame.energy
        results["free_energy"] = frame.energy
    if frame.forces is not None:
        results["forces"] = np.asarray(frame.forces, dtype=float)
    if frame.stress is not None:
        st = np.asarray(frame.stress, dtype=float) / EV_A3_TO_GPA
        results["stress"] = st[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    if frame.magmoms is not None:
        results["magmoms"] = np.asarray(frame.magmoms, dtype=float)
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info.update({"frame_id": frame.frame_id, "labeler": frame.labeler, "status": frame.status.value})
    if frame.source:
        atoms.info["source"] = frame.source
    return atoms


def frames_to_atoms(frames: Iterable[LabeledFrame]) -> list:
    """ASE ``Atoms`` (with single-point results) for each frame."""
    return [frame_to_atoms(f) for f in frames]
