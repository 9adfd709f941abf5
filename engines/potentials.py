"""Potentials as values with a kind: one reference type, one place that turns it into files,
an ASE calculator, a LAMMPS pair block or an uncertainty signal.

* :class:`~mlipflow.schemas.PotentialRef` travels between jobs (kind + where the content is).
* :class:`PotentialKind` — one subclass per kind, registered in
  :data:`mlipflow.registry.POTENTIAL_KINDS` (``ace``, ``dp``, ``classical``): how its files are
  written, its ASE calculator, its LAMMPS ``pair_style``/``pair_coeff`` block (plain and KOKKOS),
  and its uncertainty signal.
* :func:`materialize` — the one function that writes a potential's files on this node: into the
  content-addressed cache (:mod:`mlipflow.cache`), atomically, once.
* :func:`calculator` — the one factory that turns a name, a file, a reference or a stored
  potential into an ASE calculator (labelers, evaluation, elastic constants and MD all use it).
"""

from __future__ import annotations

import base64
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlipflow.errors import UserError
from mlipflow.registry import LABELERS, POTENTIAL_KINDS, import_object
from mlipflow.schemas.potentials import PotentialDoc, PotentialRef

log = logging.getLogger(__name__)


@dataclass
class PairBlock:
    """LAMMPS lines defining the interaction, plus what the deck and the binary need."""

    lines: list[str]
    atom_style: str = "atomic"
    packages: list[str] = field(default_factory=list)   # LAMMPS packages the lines need
    files: dict[str, str] = field(default_factory=dict)  # name in the work dir -> source path
    uncertainty: Any = None  # mlipflow.engines.lammps.GammaSource when the block tracks uncertainty
    charge_per_oxidation_state: float | None = None  # per-atom charges = this × the structure's oxidation states


class PotentialKind:
    """Base class of a potential kind. Subclasses set the class attributes and implement the methods."""

    name: str = ""
    #: file suffixes by which a bare file is recognised as this kind (``calculator("pot.yaml")``)
    suffixes: tuple[str, ...] = ()
    #: name of the uncertainty signal ('gamma', 'deviation') or None
    uncertainty: str | None = None
    #: role of the file a user names when giving a potential by path
    main_role: str = "model"
    #: the energy it is fitted to and predicts: "energy_corrected" (minus isolated-atom references,
    #: pacemaker) or "energy" (total, DeePMD, classical)
    energy_target: str = "energy"

    # ---- files
    def stem(self, role: str) -> str | None:
        """Canonical file stem of a role in a materialised directory (the source's suffix is kept)."""
        return None

    def write_files(self, ref: PotentialRef, doc: PotentialDoc | None, directory: Path) -> dict[str, Path]:
        """Write the potential's files into ``directory`` under canonical names; role -> path.
        Default: the document's blobs, or the user's files on disk."""
        if doc is not None:
            files = write_blobs(doc, directory)
        else:
            files = {}
            for role, src in ref.paths.items():
                target = directory / Path(src).name
                shutil.copyfile(src, target)
                files[role] = target
        out = {}
        for role, path in files.items():
            stem = self.stem(role)
            target = directory / (stem + "".join(path.suffixes[-1:])) if stem else path
            if target != path:
                path.replace(target)
            out[role] = target
        return out

    def elements(self, files: dict[str, Path]) -> list[str]:
        return []

    # ---- engines
    def ase_calculator(self, files: dict[str, Path], uncertainty: bool = False, **options: Any):
        raise UserError(f"potential kind {self.name!r} has no ASE calculator", "use the lammps engine")

    def uncertainty_of(self, atoms) -> float | None:
        """The uncertainty of the last calculation on ``atoms`` (None: not available)."""
        return None

    def lammps_packages(self, ref: PotentialRef, kokkos: bool = False) -> list[str]:
        """LAMMPS packages a deck with this potential needs (checked before anything runs)."""
        return ["KOKKOS"] if kokkos else []

    def lammps_pair(self, files: dict[str, Path], elements: list[str], kokkos: bool = False,
                    uncertainty: bool = False, **options: Any) -> PairBlock:
        raise UserError(f"potential kind {self.name!r} has no LAMMPS pair style", "use the ase engine")

    # ---- helpers
    def require_uncertainty(self, files: dict[str, Path]) -> None:
        if self.uncertainty is None:
            raise UserError(f"potential kind {self.name!r} has no uncertainty signal",
                            "remove gamma_lo/gamma_hi from the protocol, or explore with an ACE or DP potential")


def kind_of(name: str) -> PotentialKind:
    cls = POTENTIAL_KINDS.get(name)
    return cls() if isinstance(cls, type) else cls


def write_blobs(doc: PotentialDoc | dict, directory: str | Path) -> dict[str, Path]:
    """Write a PotentialDoc's blobs into ``directory`` (decoding ``*.b64``): role -> path
    (by ``doc.roles``; files without a role are written under their own name and role)."""
    doc = doc if isinstance(doc, PotentialDoc) else PotentialDoc.model_validate(_clean(doc))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    by_name: dict[str, Path] = {}
    for name, content in doc.files.items():
        if name.endswith(".b64"):
            target = directory / name[:-4]
            target.write_bytes(base64.b64decode(content))
        else:
            target = directory / name
            target.write_text(content)
        by_name[name] = target
    out = {role: by_name[fname] for role, fname in doc.roles.items() if fname in by_name}
    for path in by_name.values():
        if path not in out.values():
            out[path.name] = path
    return out


def _clean(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("@") and k != "_id"}


# ----------------------------------------------------------------------------- store access


def load_potential_doc(ref: PotentialRef) -> PotentialDoc:
    """The stored :class:`PotentialDoc` (files loaded) that ``ref`` points to: from the running
    job's store, else from mlipflow's configured store (a jobflow-remote job's own store is a file
    in its job directory that holds only its inputs; the project's job store is mlipflow's)."""
    from mlipflow.store import current_store, describe, job_store

    def find(store):
        if ref.uuid:
            return store.query_one({"uuid": ref.uuid, "output.type": "potential"}, properties=["output"], load=True,
                                   sort={"index": -1})
        if ref.input_hash:
            return store.query_one({"output.type": "potential", "output.input_hash": ref.input_hash},
                                   properties=["output"], load=True)
        return None

    store = current_store()
    doc = find(store)
    if doc is None and (ref.uuid or ref.input_hash):
        configured = job_store()
        configured.connect()
        try:
            doc = find(configured)
        finally:
            configured.close()
    if doc is None:
        raise UserError(f"potential {ref.label} ({ref.kind}) is not in the store ({describe()})",
                        "run the fit first, or check the store settings (mlipflow config)")
    return PotentialDoc.model_validate(_clean(doc["output"]))


def job_input(potential: Any) -> Any:
    """How a flow hands ``potential`` to a new job: a fitted potential (a reference carrying the
    uuid of the job that fitted it) as a reference to that job's output, which the manager
    (jobflow, FireWorks, jobflow-remote's runner) resolves, files included, before the job starts;
    the job then reads no store, so it also runs where the store is out of reach (a jobflow-remote
    worker's store is a file in the job directory). Files on disk, inline parameters and
    references already unresolved are handed on as they are."""
    from jobflow import OutputReference

    if potential is None or isinstance(potential, OutputReference):
        return potential
    ref = PotentialRef.coerce(potential)
    if ref.uuid and not ref.paths and not ref.parameters:
        return OutputReference(ref.uuid)
    return ref


def as_doc(potential: Any) -> PotentialDoc:
    """The :class:`PotentialDoc` of a potential handed to a job: the document itself when the
    manager resolved it (see :func:`job_input`), else the one its reference names in the store."""
    if isinstance(potential, PotentialDoc):
        return potential
    if isinstance(potential, dict) and potential.get("files"):
        return PotentialDoc.model_validate(_clean(potential))
    return load_potential_doc(PotentialRef.coerce(potential))


@dataclass
class Materialized:
    """A potential's files on this node."""

    ref: PotentialRef
    kind: PotentialKind
    directory: Path
    files: dict[str, Path]

    def ase_calculator(self, uncertainty: bool = False, **options: Any):
        if uncertainty:
            self.kind.require_uncertainty(self.files)
        return self.kind.ase_calculator(self.files, uncertainty=uncertainty, **options)

    def lammps_pair(self, elements: list[str] | None = None, kokkos: bool = False,
                    uncertainty: bool = False, per_atom_charges: bool = False) -> PairBlock:
        """``per_atom_charges``: the structure carries oxidation states the kind may take charges from."""
        if uncertainty:
            self.kind.require_uncertainty(self.files)
        return self.kind.lammps_pair(self.files, elements or self.elements, kokkos=kokkos, uncertainty=uncertainty,
                                     per_atom_charges=per_atom_charges)

    @property
    def elements(self) -> list[str]:
        return list(self.ref.elements) or self.kind.elements(self.files)

    def uncertainty_of(self, atoms) -> float | None:
        return self.kind.uncertainty_of(atoms)

    def path(self, role: str) -> Path | None:
        return self.files.get(role)


def materialize(potential: PotentialRef | PotentialDoc | dict) -> Materialized:
    """The potential's files on this node, written once into the cache (atomic, marker-completed)."""
    from mlipflow import cache

    doc = None
    if isinstance(potential, PotentialDoc) or (isinstance(potential, dict) and potential.get("files")):
        doc = potential if isinstance(potential, PotentialDoc) else PotentialDoc.model_validate(_clean(potential))
        ref = doc.ref or PotentialRef(kind=doc.kind, name=doc.name, input_hash=doc.input_hash, elements=doc.elements)
    else:
        ref = PotentialRef.coerce(potential)
    kind = kind_of(ref.kind)
    for role, p in ref.paths.items():
        if not Path(p).is_file():
            raise UserError(f"potential file {p} ({role}) does not exist", "check the path")

    def build(directory: Path) -> dict[str, Path]:
        source = doc
        if source is None and (ref.uuid or ref.input_hash) and not ref.paths and not ref.parameters:
            source = load_potential_doc(ref)
        return kind.write_files(ref, source, directory)

    def load(directory: Path) -> dict[str, Path]:
        import json

        roles = json.loads((directory / "roles.json").read_text())
        return {role: directory / name for role, name in roles.items()}

    def build_and_record(directory: Path) -> dict[str, Path]:
        import json

        files = build(directory)
        (directory / "roles.json").write_text(json.dumps({r: p.name for r, p in files.items()}))
        return files

    files = cache.cached_directory("potential", [ref.identity()], build_and_record, load)
    entry = cache.entry_path("potential", [ref.identity()])
    return Materialized(ref=ref, kind=kind, directory=entry, files=files)


# ----------------------------------------------------------------------------- the calculator factory


def ref_from_path(path: str | Path, active_set: str | Path | None = None) -> PotentialRef:
    """A PotentialRef for a potential file on disk, its kind recognised by the file suffix."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"potential file {p} does not exist", "check the path")
    name = p.name.lower()
    # the longest matching suffix wins: x.classical.yaml is classical, not ACE (.yaml)
    matches = sorted(((len(suf), kname) for kname in POTENTIAL_KINDS.names() for suf in kind_of(kname).suffixes
                      if name.endswith(suf)), reverse=True)
    for _, kname in matches[:1]:
        # absolute: jobs run in their own directories
        paths = {kind_of(kname).main_role: str(p.resolve())}
        if active_set:
            paths["active_set"] = str(Path(active_set).resolve())
        return PotentialRef(kind=kname, name=p.name, paths=paths)
    suffixes = sorted({s for k in POTENTIAL_KINDS.names() for s in kind_of(k).suffixes})
    raise UserError(f"unknown potential type {p.name}", f"give a potential file ending in one of {', '.join(suffixes)}")


def potential_ref(spec: Any) -> PotentialRef:
    """A :class:`PotentialRef` from any way a campaign file names a potential.

    ``spec``: a reference/document or its dict (``{kind: ace, paths: {...}}``); a potential file
    (kind by suffix); a shipped classical set's name (``pedone2006``); or
    ``{campaign: NAME, which: final|first}``: that finished active-learning campaign's potential,
    read from the store.
    """
    from mlipflow.engines.kind_classical import shipped

    if isinstance(spec, (PotentialRef, PotentialDoc)):
        return PotentialRef.coerce(spec)
    if isinstance(spec, dict) and "campaign" in spec:
        from mlipflow.store import query_outputs

        which = spec.get("which", "final")
        if which not in ("first", "final"):
            raise UserError(f"which: {which!r}", "use which: final or which: first")
        docs = query_outputs(doc_type="campaign", campaign=spec["campaign"], limit=1)
        ref = ((docs[0]["output"].get("summary") or {}).get(f"{which}_potential")) if docs else None
        if not ref:
            raise UserError(f"no finished campaign {spec['campaign']!r} with a {which} potential in the store",
                            "run that campaign first (mlipflow run ...), or name the potential by file")
        return PotentialRef.coerce(ref)
    if isinstance(spec, dict):
        return PotentialRef.coerce(spec)
    if isinstance(spec, str) and spec in shipped():
        return ref_from_path(shipped(spec))
    if isinstance(spec, (str, Path)):
        return ref_from_path(spec)
    raise UserError(f"cannot read a potential from {spec!r}",
                    f"give a file, a shipped classical set ({', '.join(shipped())}), a reference or "
                    "{campaign: NAME, which: final}")


def calculator(spec: Any, uncertainty: bool = False, **kwargs: Any):
    """An ASE calculator from any way a user names one.

    ``spec``: a :class:`PotentialRef`, :class:`PotentialDoc` or its dict; a potential file
    (kind by suffix: ACE ``.yaml``/``.yace``, DeePMD ``.pth``/``.pb``); an embedded labeler's name
    (``emt``, ``lj``, ``chgnet``); or an import path ``'package.module:Class'`` (``kwargs`` are
    its keyword arguments).
    """
    from mlipflow.engines.kind_classical import shipped

    if isinstance(spec, dict) and "campaign" in spec:
        spec = potential_ref(spec)
    if isinstance(spec, (PotentialRef, PotentialDoc)) or isinstance(spec, dict):
        return materialize(spec).ase_calculator(uncertainty=uncertainty, **kwargs)
    if isinstance(spec, str) and spec in shipped():
        return materialize(potential_ref(spec)).ase_calculator(uncertainty=uncertainty, **kwargs)
    if isinstance(spec, Path) or (isinstance(spec, str) and Path(spec).suffix and Path(spec).exists()):
        return materialize(ref_from_path(spec)).ase_calculator(uncertainty=uncertainty, **kwargs)
    if not isinstance(spec, str):
        raise UserError(f"cannot make a calculator from {type(spec).__name__}", "give a name, a file or a reference")
    if spec in LABELERS:
        from mlipflow.engines.labelers import get_labeler

        lab = get_labeler(spec, **kwargs)
        if not hasattr(lab, "calculator"):
            raise UserError(f"labeler {spec!r} is not an ASE calculator", "use an embedded labeler or a potential")
        return lab.calculator
    if ":" in spec:
        cls = import_object(spec)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise UserError(f"cannot create {spec} with {kwargs}: {exc}", "check the calculator keyword arguments") from exc
    if Path(spec).suffix:
        raise UserError(f"potential file {spec} does not exist", "check the path")
    LABELERS.check(spec)  # raises the registry's error listing the names
    return None
