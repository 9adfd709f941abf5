"""Labeled frames and versioned datasets: storage, splits, exporters and importers.

* Frames live in the ``frames`` collection (:func:`mlipflow.store.collection`), keyed by
  ``frame_id`` (content hash of structure + labeler settings) — the label cache shared by all
  processes. :func:`save_frames` / :func:`load_frames` read and write it.
* :func:`build_dataset` makes a new *version* of a named dataset in the ``datasets``
  collection: only ``ok`` frames, identical structures removed, a seeded random or
  by-composition train/test split, the isolated-atom reference energies.
* Exporters: pacemaker gzip pandas pickle (``ase_atoms``, ``energy``, ``forces``,
  ``energy_corrected``), extxyz, DeePMD npy through dpdata (``set.000/*.npy``, ``type.raw``,
  ``type_map.raw``).
* Importers: VASP runs (vasprun.xml or OUTCAR), extxyz and pacemaker pickles.

Units: energies eV, forces eV/Å, stress GPa with the ASE sign convention (positive = tensile),
magnetic moments µB.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlipflow.errors import UserError
from mlipflow.schemas import DatasetDoc, FrameStatus, LabeledFrame, content_hash

log = logging.getLogger(__name__)

FRAMES_COLLECTION = "frames"
DATASETS_COLLECTION = "datasets"
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
_DATASET_FIELDS = set(DatasetDoc.model_fields)


def _frame_from_doc(doc: dict[str, Any]) -> LabeledFrame:
    return LabeledFrame(**{k: v for k, v in doc.items() if k in _FRAME_FIELDS})


def frames_store(settings=None):
    """The (unconnected) frame-cache collection, keyed by ``frame_id``."""
    from mlipflow.store import collection

    return collection(FRAMES_COLLECTION, settings, key="frame_id")


def _monty_sqlite(store):
    """(sqlite file, montydb collection) when ``store`` is an embedded montydb (sqlite) store.

    montydb answers every query by decoding all documents; the frame cache looks frames up by
    primary key instead (documents are stored with ``_id = frame_id``), which keeps a label-cache
    check fast at 10⁴–10⁵ frames. MongoDB does the same through its ``_id`` index.
    """
    coll = getattr(store, "_collection", None)
    storage = getattr(coll, "_storage", None)
    if coll is None or type(storage).__name__ != "SQLiteStorage":
        return None
    try:
        path = Path(storage._repository) / coll.database.name / f"{coll.name}.collection"
    except AttributeError:  # pragma: no cover - other montydb versions
        return None
    return path, coll


def _by_key(store, ids: Sequence[str], keys_only: bool = False) -> dict[str, Any] | None:
    """Documents (or just presence) by ``_id`` through sqlite primary-key lookups; None = no fast path."""
    info = _monty_sqlite(store)
    if info is None:
        return None
    path, coll = info
    if not path.exists():
        return {}
    import sqlite3

    from montydb.types import bson

    enc = {bson.id_encode(i): i for i in ids}
    keys = list(enc)
    out: dict[str, Any] = {}
    con = sqlite3.connect(str(path), timeout=60)
    try:
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            if keys_only:
                for (k,) in con.execute(f"SELECT k FROM documents WHERE k IN ({marks})", chunk):
                    out[enc[bytes(k) if not isinstance(k, bytes) else k]] = True
            else:
                for (v,) in con.execute(f"SELECT v FROM documents WHERE k IN ({marks})", chunk):
                    d = bson.document_decode(v, codec_options=coll.codec_options)
                    out[d["_id"]] = d
    finally:
        con.close()
    return out


def save_frames(frames: Sequence[LabeledFrame], replace: bool = False, store=None) -> int:
    """Write frames to the ``frames`` collection; returns how many were written.

    Frames already stored (same ``frame_id``) are left alone unless ``replace``.
    Documents carry ``_id = frame_id`` (primary-key lookups in montydb and MongoDB).
    """
    frames = list(frames)
    if not frames:
        return 0
    own = store is None
    store = store or frames_store()
    if own:
        store.connect()
    try:
        ids = list(dict.fromkeys(f.frame_id for f in frames))
        fast = _by_key(store, ids, keys_only=True)
        if fast is not None:
            existing = set(fast)
        else:
            existing = {d["_id"] for d in store._collection.find({"_id": {"$in": ids}}, {"_id": 1})}
        new_docs, replaced, seen = [], 0, set()
        for f in frames:
            if f.frame_id in seen:
                continue
            seen.add(f.frame_id)
            doc = {"_id": f.frame_id, **f.model_dump(mode="json")}
            if f.frame_id in existing:
                if replace:
                    store._collection.replace_one({"_id": f.frame_id}, doc, upsert=True)
                    replaced += 1
                continue
            new_docs.append(doc)
        if new_docs:
            try:
                store._collection.insert_many(new_docs, ordered=False)
            except Exception:  # noqa: BLE001 - another process stored some of them meanwhile
                for doc in new_docs:
                    store._collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        return len(new_docs) + replaced
    finally:
        if own:
            store.close()


def load_frames(frame_ids: Sequence[str] | None = None, criteria: dict | None = None, store=None) -> list[LabeledFrame]:
    """Frames by id (returned in the order of ``frame_ids``, missing ones skipped) or by query."""
    own = store is None
    store = store or frames_store()
    if own:
        store.connect()
    try:
        docs = None
        if frame_ids is not None and not criteria:
            docs = _by_key(store, list(dict.fromkeys(frame_ids)))
            if docs is None:
                docs = {d["_id"]: d for d in store._collection.find({"_id": {"$in": list(frame_ids)}})}
        if docs is None:
            crit = dict(criteria or {})
            if frame_ids is not None:
                crit["frame_id"] = {"$in": list(frame_ids)}
            docs = {d["frame_id"]: d for d in store.query(crit)}
    finally:
        if own:
            store.close()
    if frame_ids is None:
        return [_frame_from_doc(d) for d in docs.values()]
    return [_frame_from_doc(docs[i]) for i in frame_ids if i in docs]


TRAJECTORIES_COLLECTION = "trajectories"


def save_trajectory(trajectory_id: str, frame_ids: Sequence[str], info: dict[str, Any] | None = None) -> None:
    """Index of a labeled trajectory (``trajectory_id`` -> ordered frame ids), for fast reuse."""
    from mlipflow.store import collection

    store = collection(TRAJECTORIES_COLLECTION, key="trajectory_id")
    store.connect()
    try:
        doc = {"_id": trajectory_id, "trajectory_id": trajectory_id, "frame_ids": list(frame_ids), **(info or {})}
        store._collection.replace_one({"_id": trajectory_id}, doc, upsert=True)
    finally:
        store.close()


def load_trajectory(trajectory_id: str) -> list[LabeledFrame] | None:
    """Frames of a stored trajectory in order, or None if it was never stored."""
    from mlipflow.store import collection

    store = collection(TRAJECTORIES_COLLECTION, key="trajectory_id")
    store.connect()
    try:
        docs = _by_key(store, [trajectory_id])
        if docs is None:
            docs = {d["_id"]: d for d in store._collection.find({"_id": trajectory_id})}
    finally:
        store.close()
    doc = docs.get(trajectory_id)
    if doc is None:
        return None
    frames = load_frames(doc["frame_ids"])
    return frames if len(frames) == len(doc["frame_ids"]) else None


# ----------------------------------------------------------------------------- datasets


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


def _split(frames: list[LabeledFrame], method: str, test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    ids = [f.frame_id for f in frames]
    if not 0 <= test_fraction < 1:
        raise UserError(f"test_fraction must be in [0, 1) (got {test_fraction})", "use e.g. 0.1")
    if method == "random":
        n_test = int(round(test_fraction * len(ids)))
        if test_fraction > 0 and len(ids) > 1:
            n_test = max(1, n_test)
        order = rng.permutation(len(ids))
        test = {ids[i] for i in order[:n_test]}
    elif method == "composition":
        groups: dict[str, list[str]] = {}
        for f in frames:
            groups.setdefault(f.formula, []).append(f.frame_id)
        names = sorted(groups)
        order = rng.permutation(len(names))
        target = test_fraction * len(ids)
        test = set()
        for i in order:
            if len(test) >= target or len(test) + len(groups[names[i]]) >= len(ids):
                break
            test.update(groups[names[i]])
    else:
        raise UserError(f"unknown split {method!r}", "use 'random' or 'composition'")
    return [i for i in ids if i not in test], [i for i in ids if i in test]


def datasets_store(settings=None):
    from mlipflow.store import collection

    return collection(DATASETS_COLLECTION, settings, key="dataset_key")


def _dataset_versions(name: str, store) -> list[int]:
    return sorted(int(d["version"]) for d in store.query({"name": name}, properties=["version"]))


def _parse_parent(parent) -> tuple[str, int | None]:
    if isinstance(parent, DatasetDoc):
        return parent.name, parent.version
    name, _, ver = str(parent).partition(":")
    return name, int(ver) if ver else None


def build_dataset(
    name: str,
    frames: Sequence[LabeledFrame],
    split: str = "random",
    test_fraction: float = 0.1,
    seed: int = 0,
    reference_energies: dict[str, float] | None = None,
    parent: str | DatasetDoc | None = None,
    campaign: str | None = None,
    save: bool = True,
) -> DatasetDoc:
    """A new version of dataset ``name`` from ``frames`` (stored in the ``datasets`` collection).

    Failed frames are excluded (counted in ``n_failed_excluded``) but kept in the frame store;
    identical structures (same lattice, species and positions) are kept once. With ``parent``
    (``DatasetDoc`` or ``'name:version'``, version optional = latest) the parent's frames and
    its train/test assignment are kept, and only the new frames are split.
    """
    if not name or any(c in name for c in "/\\ :"):
        raise UserError(f"invalid dataset name {name!r}", "use letters, digits, '-', '_' and '.'")
    frames = list(frames)
    if save:
        save_frames(frames)
    parent_doc, parent_frames = None, []
    if parent is not None:
        pname, pver = _parse_parent(parent)
        parent_doc, parent_frames = load_dataset(pname, pver)
        if reference_energies is None:
            reference_energies = parent_doc.reference_energies or None

    n_failed = sum(1 for f in frames if f.status != FrameStatus.ok)
    seen: set[str] = set()
    for f in parent_frames:
        seen.add(structure_hash(f.structure))
    kept: list[LabeledFrame] = []
    n_dup = 0
    for f in frames:
        if f.status != FrameStatus.ok:
            continue
        h = structure_hash(f.structure)
        if h in seen:
            n_dup += 1
            continue
        seen.add(h)
        kept.append(f)
    if reference_energies:
        for f in kept:  # fail early on a missing element
            _energy_corrected(f, reference_energies)
    train, test = _split(kept, split, test_fraction, seed)
    if parent_doc is not None:
        train = list(parent_doc.train_ids) + train
        test = list(parent_doc.test_ids) + test
        n_failed += parent_doc.n_failed_excluded
        n_dup += parent_doc.n_duplicates_removed
    all_ids = [*(parent_doc.frame_ids if parent_doc else []), *(f.frame_id for f in kept)]

    store = datasets_store()
    store.connect()
    try:
        versions = _dataset_versions(name, store)
        version = (versions[-1] + 1) if versions else 1
        doc = DatasetDoc(
            name=name,
            version=version,
            frame_ids=all_ids,
            train_ids=train,
            test_ids=test,
            split={"method": split, "test_fraction": test_fraction, "seed": seed},
            reference_energies=dict(reference_energies or {}),
            n_failed_excluded=n_failed,
            n_duplicates_removed=n_dup,
            parent=f"{parent_doc.name}:{parent_doc.version}" if parent_doc else None,
            campaign=campaign,
            input_hash=content_hash(sorted(all_ids), split, test_fraction, seed, reference_energies or {}),
        )
        if save:
            d = doc.model_dump(mode="json")
            d["dataset_key"] = f"{name}:{version}"
            store.update([d])
    finally:
        store.close()
    log.info("dataset %s v%d: %d frames (%d train / %d test), %d failed excluded, %d duplicates removed",
             name, doc.version, len(all_ids), len(train), len(test), n_failed, n_dup)
    return doc


def list_datasets() -> list[DatasetDoc]:
    """Latest version of every dataset."""
    store = datasets_store()
    store.connect()
    try:
        latest: dict[str, dict] = {}
        for d in store.query({}):
            if d["name"] not in latest or d["version"] > latest[d["name"]]["version"]:
                latest[d["name"]] = d
    finally:
        store.close()
    return [DatasetDoc(**{k: v for k, v in d.items() if k in _DATASET_FIELDS}) for d in latest.values()]


def load_dataset(name: str, version: int | None = None, with_frames: bool = True) -> tuple[DatasetDoc, list[LabeledFrame]]:
    """Dataset document (latest version unless given) and its frames (order of ``frame_ids``)."""
    store = datasets_store()
    store.connect()
    try:
        versions = _dataset_versions(name, store)
        if not versions:
            raise UserError(f"no dataset named {name!r}", "list datasets with `mlipflow dataset show`, or build one with `mlipflow label ... --dataset NAME`")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise UserError(f"dataset {name!r} has no version {version}", f"existing versions: {versions}")
        d = store.query_one({"name": name, "version": version})
    finally:
        store.close()
    doc = DatasetDoc(**{k: v for k, v in d.items() if k in _DATASET_FIELDS})
    frames = load_frames(doc.frame_ids) if with_frames else []
    if with_frames and len(frames) != len(doc.frame_ids):
        log.warning("dataset %s:%d: %d of %d frames missing from the frame store", name, version,
                    len(doc.frame_ids) - len(frames), len(doc.frame_ids))
    return doc, frames


def record_export(doc: DatasetDoc, fmt: str, path: str | Path) -> None:
    """Remember where a dataset version was exported (``exports`` field)."""
    store = datasets_store()
    store.connect()
    try:
        store._collection.update_one(
            {"dataset_key": f"{doc.name}:{doc.version}"}, {"$set": {f"exports.{fmt}": str(path)}}
        )
    finally:
        store.close()


# ----------------------------------------------------------------------------- ASE / exporters


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


def pacemaker_dataframe(frames: Sequence[LabeledFrame], reference_energies: dict[str, float] | None = None):
    """pandas DataFrame with the columns pacemaker reads: ``ase_atoms``, ``energy``, ``forces``,
    ``energy_corrected`` (= E − Σ isolated-atom energies; = E when no references are given)."""
    import pandas as pd

    ok = [f for f in frames if f.status == FrameStatus.ok]
    atoms = frames_to_atoms(ok)
    for a in atoms:
        a.calc = None  # pacemaker reads the columns, not a calculator
    return pd.DataFrame(
        {
            "ase_atoms": atoms,
            "energy": [float(f.energy) for f in ok],
            "forces": [np.asarray(f.forces, dtype=float) for f in ok],
            "energy_corrected": [_energy_corrected(f, reference_energies) for f in ok],
            "name": [f.frame_id for f in ok],
        }
    )


def export_pacemaker(frames: Sequence[LabeledFrame], path: str | Path, reference_energies: dict[str, float] | None = None) -> Path:
    """Write the pacemaker training file (gzip-compressed pandas pickle, ``*.pkl.gz``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pacemaker_dataframe(frames, reference_energies)
    df.to_pickle(path, compression="gzip", protocol=4)
    log.info("wrote %d frames to %s", len(df), path)
    return path


def export_extxyz(frames: Sequence[LabeledFrame], path: str | Path) -> Path:
    """Write frames as extended XYZ (energy, forces, stress, magmoms, frame_id in info)."""
    from ase.io import write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = [f for f in frames if f.status == FrameStatus.ok]
    write(path, frames_to_atoms(ok), format="extxyz")
    return path


def export_deepmd(frames: Sequence[LabeledFrame], directory: str | Path, type_map: Sequence[str] | None = None) -> Path:
    """Write DeePMD npy systems (one sub-directory per formula/atom order) via dpdata.

    Each system has ``type.raw``, ``type_map.raw`` and ``set.000/{box,coord,energy,force[,virial]}.npy``.
    ``type_map`` defaults to the sorted elements of all frames; every element must be in it.
    """
    import dpdata

    directory = Path(directory)
    ok = [f for f in frames if f.status == FrameStatus.ok]
    if not ok:
        raise UserError("no usable (status ok) frames to export", "label some structures first")
    elements = sorted({el for f in ok for el in f.elements})
    type_map = list(type_map) if type_map else elements
    missing = [el for el in elements if el not in type_map]
    if missing:
        raise UserError(f"type map {type_map} lacks {missing}", "add them to --type-map (order = model type indices)")
    groups: dict[tuple, list[LabeledFrame]] = {}
    for f in ok:
        species = tuple(site["species"][0]["element"] for site in f.structure["sites"])
        groups.setdefault(species, []).append(f)
    ms = dpdata.MultiSystems(type_map=type_map)
    has_virial = all(f.stress is not None for f in ok)
    for species, group in groups.items():
        atom_types = np.array([type_map.index(s) for s in species], dtype=int)
        cells, coords, energies, forces, virials = [], [], [], [], []
        for f in group:
            atoms = frame_to_atoms(f)
            cells.append(np.asarray(atoms.cell))
            coords.append(atoms.get_positions())
            energies.append(f.energy)
            forces.append(np.asarray(f.forces, dtype=float))
            if has_virial:
                virials.append(-np.asarray(f.stress, dtype=float) / EV_A3_TO_GPA * atoms.get_volume())
        data = {
            "atom_names": list(type_map),
            "atom_numbs": [int(np.sum(atom_types == i)) for i in range(len(type_map))],
            "atom_types": atom_types,
            "orig": np.zeros(3),
            "cells": np.array(cells),
            "coords": np.array(coords),
            "energies": np.array(energies, dtype=float),
            "forces": np.array(forces),
            "nopbc": False,
        }
        if has_virial:
            data["virials"] = np.array(virials)
        ms.append(dpdata.LabeledSystem(data=data, type_map=list(type_map)))
    directory.mkdir(parents=True, exist_ok=True)
    ms.to_deepmd_npy(str(directory))
    return directory


def deepmd_systems(directory: str | Path) -> list[Path]:
    """The system directories (those with ``type.raw``) under an exported DeePMD folder."""
    return sorted(p.parent for p in Path(directory).rglob("type.raw"))


# ----------------------------------------------------------------------------- importers


def _import_frame(atoms, labeler: str, settings: dict, source: str, step: int | None = None,
                  trajectory_id: str | None = None, metadata: dict | None = None,
                  energy: float | None = None, forces=None, force_threshold=DEFAULT_FORCE_THRESHOLD) -> LabeledFrame:
    from ase.calculators.calculator import PropertyNotImplementedError

    s = to_structure(atoms)
    calc = atoms.calc
    stress = magmoms = None
    if calc is not None:
        if energy is None:
            try:
                energy = atoms.get_potential_energy()
            except (PropertyNotImplementedError, RuntimeError):
                energy = None
        if forces is None:
            try:
                forces = atoms.get_forces()
            except (PropertyNotImplementedError, RuntimeError):
                forces = None
        try:
            stress = atoms.get_stress(voigt=False) * EV_A3_TO_GPA
        except (PropertyNotImplementedError, RuntimeError, AttributeError):
            stress = None
        try:
            magmoms = calc.get_property("magmoms", atoms, allow_calculation=False)
        except (PropertyNotImplementedError, RuntimeError, AttributeError):
            magmoms = None
    fid = content_hash(structure_key(s), labeler, settings, energy if energy is not None else "none")
    return make_frame(s, frame_id=fid, labeler=labeler, labeler_settings=settings, energy=energy,
                      forces=forces, stress_gpa=stress, magmoms=magmoms, source=source, step=step,
                      trajectory_id=trajectory_id, metadata=metadata, force_threshold=force_threshold)


def import_vasp(path: str | Path, every: int = 1, labeler: str = "import:vasp") -> list[LabeledFrame]:
    """Frames from a VASP run: a ``vasprun.xml`` or ``OUTCAR`` file, or a directory holding one.

    Every ``every``-th ionic step becomes a frame (the last one always); an unconverged
    electronic step or an unfinished run becomes a failed frame with its reason.
    """
    from mlipflow.engines import vasp as vasp_engine

    return vasp_engine.parse_vasp_outputs(path, every=every, labeler=labeler)


def import_extxyz(path: str | Path, labeler: str = "import:extxyz") -> list[LabeledFrame]:
    """Frames from an (extended) XYZ file with energies/forces (stress, magmoms if present)."""
    from ase.io import iread

    path = Path(path)
    out = []
    for i, atoms in enumerate(iread(str(path), index=":")):
        meta = {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool))}
        out.append(_import_frame(atoms, labeler, {"file": path.name}, f"import:{path.name}", step=i, metadata=meta))
    return out


def import_pacemaker(path: str | Path, labeler: str = "import:pacemaker") -> list[LabeledFrame]:
    """Frames from a pacemaker pickle (``ase_atoms`` plus ``energy`` and/or ``energy_corrected``,
    ``forces``). With only ``energy_corrected`` that value becomes the energy and
    ``metadata.energy_is_corrected`` is set."""
    import pandas as pd

    path = Path(path)
    df = pd.read_pickle(path, compression="infer")
    if "ase_atoms" not in df.columns:
        raise UserError(f"{path} has no 'ase_atoms' column", "give a pacemaker dataset pickle (ase_atoms, energy/energy_corrected, forces)")
    if "energy" not in df.columns and "energy_corrected" not in df.columns:
        raise UserError(f"{path} has neither 'energy' nor 'energy_corrected'", "give a pacemaker dataset pickle")
    out = []
    for i, row in enumerate(df.itertuples(index=False)):
        r = row._asdict()
        meta: dict[str, Any] = {}
        if "energy" in r and r["energy"] is not None and not (isinstance(r["energy"], float) and math.isnan(r["energy"])):
            energy = float(r["energy"])
            if "energy_corrected" in r:
                meta["energy_corrected"] = float(r["energy_corrected"])
        else:
            energy = float(r["energy_corrected"])
            meta["energy_is_corrected"] = True
        if "name" in r and isinstance(r["name"], str):
            meta["name"] = r["name"]
        forces = np.asarray(r["forces"], dtype=float) if "forces" in r else None
        out.append(_import_frame(r["ase_atoms"], labeler, {"file": path.name}, f"import:{path.name}", step=i,
                                 metadata=meta, energy=energy, forces=forces))
    return out


def import_files(paths: Sequence[str | Path]) -> list[LabeledFrame]:
    """Import by file type: ``*.pkl``/``*.pkl.gz`` (pacemaker), ``*.xyz``/``*.extxyz``,
    ``vasprun*.xml``/``OUTCAR*`` or a VASP run directory."""
    out: list[LabeledFrame] = []
    for p in map(Path, paths):
        name = p.name.lower()
        if not p.exists():
            raise UserError(f"{p} does not exist", "check the path")
        if name.endswith((".pkl", ".pkl.gz", ".pckl.gzip", ".pkl.gzip")):
            out += import_pacemaker(p)
        elif name.endswith((".xyz", ".extxyz")):
            out += import_extxyz(p)
        elif p.is_dir() or "vasprun" in name or "outcar" in name:
            out += import_vasp(p)
        else:
            raise UserError(f"unknown file type {p.name}", "give *.pkl.gz, *.extxyz/*.xyz, vasprun.xml, OUTCAR or a VASP run directory")
    return out


# ----------------------------------------------------------------------------- sampling


def sample_frames(
    frames: Sequence[LabeledFrame],
    k: int,
    per: str = "trajectory",
    method: str = "uniform",
    seed: int = 0,
) -> list[LabeledFrame]:
    """Pick ``k`` ok frames per trajectory or per composition, as the papers did
    (41 frames from each of 20 relaxations; 150 frames at each of 5 compositions).

    ``per``: ``'trajectory'`` (``trajectory_id``; frames without one form their own group),
    ``'composition'`` (reduced formula) or ``'all'``. ``method``: ``'uniform'`` (evenly spaced
    along the trajectory/step order, always including the first and last) or ``'random'``
    (seeded). Groups with ≤ k frames are kept whole. Failed frames are never picked.
    """
    if k < 1:
        raise UserError(f"k must be ≥ 1 (got {k})", "pick at least one frame per group")
    if per not in ("trajectory", "composition", "all"):
        raise UserError(f"unknown grouping {per!r}", "use per='trajectory', 'composition' or 'all'")
    if method not in ("uniform", "random"):
        raise UserError(f"unknown sampling method {method!r}", "use 'uniform' or 'random'")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[LabeledFrame]] = {}
    for f in frames:
        if f.status != FrameStatus.ok:
            continue
        key = {"trajectory": f.trajectory_id or f.frame_id, "composition": f.formula, "all": "all"}[per]
        groups.setdefault(key, []).append(f)
    out: list[LabeledFrame] = []
    for key in groups:
        g = sorted(groups[key], key=lambda f: (f.trajectory_id or "", f.step if f.step is not None else -1))
        if len(g) <= k:
            out += g
        elif method == "uniform":
            idx = np.unique(np.round(np.linspace(0, len(g) - 1, k)).astype(int))
            out += [g[i] for i in idx]
        else:
            idx = np.sort(rng.choice(len(g), size=k, replace=False))
            out += [g[i] for i in idx]
    return out


def collect_frames(*inputs: Any) -> list[LabeledFrame]:
    """Frames from anything the labeling makers pass around: LabeledFrame objects or dicts,
    lists (nested) of them, maker outputs (``{'frame_ids': [...]}``) or frame-id strings
    (loaded from the frame store)."""
    out: list[LabeledFrame] = []
    ids: list[str] = []

    def walk(x):
        if x is None:
            return
        if isinstance(x, LabeledFrame):
            out.append(x)
        elif isinstance(x, str):
            ids.append(x)
        elif isinstance(x, dict):
            if "frame_id" in x and "structure" in x:
                out.append(_frame_from_doc(x))
            elif "frame_ids" in x:
                walk(list(x["frame_ids"]))
            else:
                raise UserError(f"cannot read frames from a dict with keys {sorted(x)[:6]}", "pass frames or labeling outputs")
        elif isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
        else:
            raise UserError(f"cannot read frames from {type(x).__name__}", "pass frames or labeling outputs")

    for i in inputs:
        walk(i)
    if ids:
        have = {f.frame_id for f in out}
        loaded = load_frames([i for i in dict.fromkeys(ids) if i not in have])
        missing = set(ids) - have - {f.frame_id for f in loaded}
        if missing:
            log.warning("%d frame ids not found in the frame store", len(missing))
        out += loaded
    return out


def frames_summary(frames: Sequence[LabeledFrame], **extra: Any) -> dict[str, Any]:
    """Small job output for a list of frames (the frames themselves are in the frame store)."""
    failed = [f for f in frames if f.status != FrameStatus.ok]
    return {
        "frame_ids": [f.frame_id for f in frames],
        "n_frames": len(frames),
        "n_ok": len(frames) - len(failed),
        "n_failed": len(failed),
        "failures": {f.frame_id: f.failure_reason for f in failed},
        "formulas": sorted({f.formula for f in frames}),
        "trajectory_ids": sorted({f.trajectory_id for f in frames if f.trajectory_id}),
        **extra,
    }


# ----------------------------------------------------------------------------- plots


def plot_dataset(doc: DatasetDoc, frames: Sequence[LabeledFrame], path: str | Path) -> Path:
    """Histograms of energy per atom (corrected when references exist) and force components,
    train vs test, plus frames per composition (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    by_id = {f.frame_id: f for f in frames}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    refs = doc.reference_energies or None
    for ids, label in ((doc.train_ids, "train"), (doc.test_ids, "test")):
        fr = [by_id[i] for i in ids if i in by_id]
        if not fr:
            continue
        e = [_energy_corrected(f, refs) / f.nsites for f in fr]
        axes[0].hist(e, bins=30, alpha=0.6, label=f"{label} ({len(fr)})")
        fcomp = np.concatenate([np.asarray(f.forces).ravel() for f in fr])
        axes[1].hist(fcomp, bins=60, alpha=0.6, label=label, log=True)
    axes[0].set_xlabel("energy per atom (eV)" + (" − references" if refs else ""))
    axes[0].set_ylabel("frames")
    axes[1].set_xlabel("force component (eV/Å)")
    axes[1].set_ylabel("count")
    comps: dict[str, int] = {}
    for f in frames:
        comps[f.formula] = comps.get(f.formula, 0) + 1
    top = sorted(comps.items(), key=lambda kv: -kv[1])[:15]
    axes[2].barh([k for k, _ in top][::-1], [v for _, v in top][::-1])
    axes[2].set_xlabel("frames")
    axes[2].set_title("compositions (top 15)")
    for ax in axes[:2]:
        ax.legend()
    fig.suptitle(f"dataset {doc.name} v{doc.version}: {len(doc.frame_ids)} frames, {doc.n_failed_excluded} failed excluded")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
