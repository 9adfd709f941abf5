"""Labelers: the reference calculators that turn structures into labeled frames.

``get_labeler(spec, **overrides)`` resolves a spec through :data:`mlipflow.registry.LABELERS`:

* ``chgnet`` — CHGNet (weights ship in its package), the default embedded labeler;
* ``emt`` — ASE's EMT (Cu, Al, Ni, Pd, Ag, Pt, Au; fast, for tests and demos); ``lj`` — ASE's
  Lennard-Jones (tests);
* ``vasp:nafepo4_ace`` / ``vasp:lixfepo4_dpa`` — VASP through atomate2 makers and custodian
  with the named input sets of :mod:`mlipflow.engines.vasp` (``<name>:<argument>`` goes to the
  registered ``<name>`` factory);
* ``module.path:ClassName`` — any ASE calculator by import path (``overrides`` are its
  keyword arguments).

Every labeler offers the same three protocols: :meth:`Labeler.label` (static single points),
:meth:`Labeler.relax` (relaxation trajectory frames) and :meth:`Labeler.md` (NVT MD frames).

Every labeler checks the frame cache first (``frames`` collection, ``frame_id`` = content
hash of structure + labeler name + settings), so the same structure with the same settings
is never computed twice, also across processes. A frame that cannot be labeled (exception,
unconverged SCF, custodian give-up, NaN/inf, |F| above ``force_threshold``) becomes a frame
with ``status='failed'`` and a ``failure_reason``: one bad frame never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import metadata as importlib_metadata
from typing import Any

import numpy as np

from mlipflow.engines.frames import (
    DEFAULT_FORCE_THRESHOLD,
    EV_A3_TO_GPA,
    make_frame,
    structure_key,
    to_structure,
)
from mlipflow.engines.repository import load_frames, save_frames
from mlipflow.errors import MissingDependencyError, UserError
from mlipflow.registry import LABELERS, import_object
from mlipflow.schemas import FrameStatus, LabeledFrame, LabelerSpec, content_hash

log = logging.getLogger(__name__)

#: Default side of the cubic box for isolated-atom reference energies (Å).
ISOLATED_ATOM_BOX = 15.0


def _progress(iterable, total: int, desc: str, enabled: bool):
    from mlipflow.output import progress_enabled

    if not progress_enabled(enabled):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="frame")


class Labeler:
    """Base class: caching, failure handling, reference energies. Subclasses implement
    :meth:`_compute` (and :meth:`md`)."""

    kind: str = "ase"

    def __init__(
        self,
        name: str,
        settings: dict[str, Any] | None = None,
        force_threshold: float | None = DEFAULT_FORCE_THRESHOLD,
        reference_energies: dict[str, float] | None = None,
        use_cache: bool = True,
    ):
        self.name = name
        self.settings = dict(settings or {})
        self.force_threshold = force_threshold
        self.configured_reference_energies = dict(reference_energies or {})
        self.use_cache = use_cache

    # ------------------------------------------------------------------ identity
    #: whether the ``magmom`` site property changes the result (initial moments for VASP)
    uses_magmom: bool = False

    @property
    def spec(self) -> LabelerSpec:
        return LabelerSpec(kind=self.kind, name=self.name, settings=self.settings)

    def hash_settings(self) -> dict[str, Any]:
        """What, besides the structure, determines a label (goes into ``frame_id``)."""
        return self.settings

    def frame_id(self, structure) -> str:
        return content_hash(structure_key(structure, with_magmom=self.uses_magmom), self.name, self.hash_settings())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # ------------------------------------------------------------------ labeling
    def label(
        self,
        structures: Sequence[Any],
        source: str | None = "static",
        metadata: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        progress: bool = False,
        retry_failed: bool = False,
    ) -> list[LabeledFrame]:
        """Label ``structures`` (pymatgen Structures or ASE Atoms), in order.

        Stored frames with the same ``frame_id`` are returned instead of recomputing
        (``retry_failed=True`` recomputes stored failed frames). New frames are stored.
        ``metadata`` is one dict for all structures or one per structure.
        """
        structs = [to_structure(s) for s in structures]
        if isinstance(metadata, dict) or metadata is None:
            metas = [dict(metadata or {}) for _ in structs]
        else:
            metas = [dict(m or {}) for m in metadata]
            if len(metas) != len(structs):
                raise UserError(f"{len(metas)} metadata dicts for {len(structs)} structures", "give one per structure or a single dict")
        ids = [self.frame_id(s) for s in structs]
        cached: dict[str, LabeledFrame] = {}
        if self.use_cache:
            for f in load_frames(list(dict.fromkeys(ids))):
                if retry_failed and f.status != FrameStatus.ok:
                    continue
                cached[f.frame_id] = f
        todo = [i for i, fid in enumerate(ids) if fid not in cached]
        # same structure twice in one call: compute once
        first: dict[str, int] = {}
        todo = [i for i in todo if first.setdefault(ids[i], i) == i]
        if cached:
            log.info("%s: %d of %d frames from the cache", self.name, len(structs) - len(todo), len(structs))
        new: dict[str, LabeledFrame] = {}
        if todo:
            batch = self._compute([structs[i] for i in todo], [ids[i] for i in todo], source, [metas[i] for i in todo], progress)
            for f in batch:
                new[f.frame_id] = f
            if self.use_cache:
                save_frames(list(new.values()), replace=retry_failed)
        out = []
        for fid in ids:
            out.append(new.get(fid) or cached[fid])
        n_failed = sum(f.status != FrameStatus.ok for f in new.values())
        if n_failed:
            log.warning("%s: %d of %d new frames failed", self.name, n_failed, len(new))
        return out

    def _compute(self, structures, frame_ids, source, metadatas, progress) -> list[LabeledFrame]:
        raise NotImplementedError

    def md(
        self,
        structure,
        temperature: float,
        steps: int,
        timestep_fs: float,
        every: int,
        **kwargs: Any,
    ) -> list[LabeledFrame]:
        """NVT molecular dynamics with this labeler; a frame every ``every`` steps."""
        raise NotImplementedError

    def relax(self, structure, every: int = 1, source: str = "relax", metadata: dict | None = None,
              **kwargs: Any) -> list[LabeledFrame]:
        """Relaxation with this labeler; every ``every``-th ionic step (and the last) becomes a frame."""
        raise NotImplementedError

    def trajectory(self, structure, protocol: str, parameters: dict[str, Any], compute) -> list[LabeledFrame]:
        """Frames of a relaxation or MD run of ``structure``: cached by structure, labeler, settings,
        protocol and parameters (:mod:`mlipflow.cache`), else ``compute()`` stored."""
        from mlipflow import cache

        if not self.use_cache:
            return compute()

        def encode(frames):
            save_frames(frames)
            return [f.frame_id for f in frames]

        def decode(ids):
            by_id = {f.frame_id: f for f in load_frames(ids)}
            return [by_id[i] for i in ids if i in by_id]

        key = [structure_key(to_structure(structure), with_magmom=self.uses_magmom), self.name,
               self.hash_settings(), protocol, parameters]
        return cache.get_or_compute("trajectory", key, compute, encode=encode, decode=decode)

    # ------------------------------------------------------------------ references
    def isolated_atom(self, element: str, box: float = ISOLATED_ATOM_BOX):
        """One atom of ``element`` in a (slightly orthorhombic, symmetry-breaking) large box."""
        from pymatgen.core import Lattice, Structure

        lat = Lattice.orthorhombic(box, box + 0.5, box + 1.0)
        return Structure(lat, [element], [[0.5, 0.5, 0.5]])

    def reference_energies(self, elements: Sequence[str], box: float = ISOLATED_ATOM_BOX) -> dict[str, float]:
        """Isolated-atom energies (eV): configured values first, the rest computed (and cached)."""
        out = {el: float(self.configured_reference_energies[el]) for el in elements if el in self.configured_reference_energies}
        todo = [el for el in elements if el not in out]
        if todo:
            frames = self.label([self.isolated_atom(el, box) for el in todo], source="isolated_atom",
                                metadata=[{"element": el, "box": box} for el in todo])
            for el, f in zip(todo, frames):
                if f.status != FrameStatus.ok or f.energy is None:
                    raise UserError(
                        f"{self.name} could not compute the isolated-atom energy of {el}: {f.failure_reason}",
                        "give reference energies in the configuration (reference_energies: {El: eV})",
                    )
                out[el] = float(f.energy)
        return {el: out[el] for el in elements}


# ============================================================================ embedded (ASE)


def _dist_version(module_path: str) -> str | None:
    top = module_path.split(":")[0].split(".")[0]
    for dist in (top, top.replace("_", "-")):
        try:
            return importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            continue
    return None


class ASELabeler(Labeler):
    """Any ASE calculator, created once from ``calculator`` (import path) and ``kwargs``."""

    kind = "ase"

    def __init__(self, name: str, calculator: str, kwargs: dict[str, Any] | None = None, **options: Any):
        self.calculator_path = calculator
        self.calc_kwargs = dict(kwargs or {})
        settings = {"calculator": calculator, "kwargs": self.calc_kwargs}
        version = _dist_version(calculator)
        if version:
            settings["version"] = version
        super().__init__(name, settings, **options)
        self._calc = None

    @property
    def calculator(self):
        if self._calc is None:
            cls = import_object(self.calculator_path)
            kwargs = dict(self.calc_kwargs)
            if self.calculator_path.startswith("chgnet."):
                kwargs.setdefault("on_isolated_atoms", "ignore")
            import sys

            if "torch" in sys.modules:  # torch-based calculators: honour settings.threads
                from mlipflow.settings import get_settings

                sys.modules["torch"].set_num_threads(get_settings().threads)
            from mlipflow.output import third_party_prints

            try:
                with third_party_prints():  # CHGNet prints its banner ("CHGNet v0.3.0 initialized ...")
                    self._calc = cls(**kwargs)
            except ImportError as exc:
                raise MissingDependencyError(self.calculator_path, f"pip install {self.calculator_path.split('.')[0]}") from exc
        return self._calc

    def _results(self, atoms) -> dict[str, Any]:
        """Energy, forces, stress (GPa), magmoms from the attached calculator."""
        from ase.calculators.calculator import PropertyNotImplementedError

        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        stress = None
        if atoms.pbc.all():
            try:
                stress = np.asarray(atoms.get_stress(voigt=False)) * EV_A3_TO_GPA
            except (PropertyNotImplementedError, NotImplementedError):
                stress = None
        magmoms = atoms.calc.results.get("magmoms") if atoms.calc is not None else None
        return {"energy": float(energy), "forces": forces, "stress_gpa": stress, "magmoms": magmoms}

    def _atoms(self, structure):
        from pymatgen.io.ase import AseAtomsAdaptor

        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = self.calculator
        return atoms

    def _compute(self, structures, frame_ids, source, metadatas, progress) -> list[LabeledFrame]:
        out = []
        calc = self.calculator  # fail loudly (UserError) if the calculator cannot be made
        del calc
        for s, fid, meta in _progress(zip(structures, frame_ids, metadatas), len(structures), f"label {self.name}", progress):
            common = dict(frame_id=fid, labeler=self.name, labeler_settings=self.settings, source=source,
                          metadata=meta, force_threshold=self.force_threshold)
            try:
                res = self._results(self._atoms(s))
                out.append(make_frame(s, **res, **common))
            except Exception as exc:  # noqa: BLE001 - a bad frame is data, not a crash
                log.debug("labeling failed", exc_info=True)
                out.append(make_frame(s, failure_reason=f"{type(exc).__name__}: {exc}", **common))
        return out

    def _frame(self, atoms, common: dict[str, Any], failure: str | None = None) -> LabeledFrame:
        """A frame from ``atoms`` with the attached calculator's current results (no recomputation)."""
        snap = to_structure(atoms.copy())
        common = {**common, "frame_id": self.frame_id(snap)}
        if failure is None:
            try:
                return make_frame(snap, **self._results(atoms), **common)
            except Exception as exc:  # noqa: BLE001 - a bad frame is data, not a crash
                failure = f"{type(exc).__name__}: {exc}"
        return make_frame(snap, failure_reason=failure, **common)

    def md(
        self,
        structure,
        temperature: float = 300.0,
        steps: int = 100,
        timestep_fs: float = 2.0,
        every: int = 10,
        seed: int = 0,
        friction_per_fs: float = 0.01,
        include_start: bool = False,
        source: str = "aimd",
        metadata: dict[str, Any] | None = None,
        progress: bool = False,
    ) -> list[LabeledFrame]:
        """Langevin NVT MD with this calculator ("AIMD" on a laptop); a frame every ``every`` steps.

        Runs through the one ASE MD loop (:func:`mlipflow.engines.ase_md.run_ase_md`). Frames carry
        the calculator's results at that step (no recomputation) and share a ``trajectory_id``; the
        trajectory is cached (re-running the same one returns the stored frames). The run stops at
        the first failed frame (exception, NaN, force above threshold).
        """
        from mlipflow.engines.ase_md import run_ase_md
        from mlipflow.schemas import MDProtocol, MDStage

        s0 = to_structure(structure)
        md_settings = {"ensemble": "nvt", "thermostat": "langevin", "temperature_K": float(temperature),
                       "steps": int(steps), "timestep_fs": float(timestep_fs), "every": int(every),
                       "seed": int(seed), "friction_per_fs": float(friction_per_fs), "include_start": include_start}

        def compute() -> list[LabeledFrame]:
            from mlipflow.schemas.base import content_hash

            traj_id = content_hash(structure_key(s0), self.name, self.hash_settings(), md_settings)
            protocol = MDProtocol(name=f"{self.name}-md", timestep_fs=timestep_fs, thermostat="langevin",
                                  tdamp_fs=1.0 / friction_per_fs, dump_every=every, thermo_every=max(every, 100),
                                  gamma_every=every, seed=seed,
                                  stages=[MDStage(ensemble="nvt", steps=steps, t_start=temperature)])
            meta = {**(metadata or {}), "temperature_K": float(temperature), "timestep_fs": float(timestep_fs)}
            settings = {**self.settings, "md": md_settings}
            frames: list[LabeledFrame] = []

            def on_dump(atoms, step) -> bool:
                common = dict(labeler=self.name, labeler_settings=settings, source=source, trajectory_id=traj_id,
                              step=step, metadata={**meta, "time_fs": step * timestep_fs},
                              force_threshold=self.force_threshold)
                frames.append(self._frame(atoms, common))
                if frames[-1].status != FrameStatus.ok:
                    log.warning("%s MD stopped at step %d: %s", self.name, step, frames[-1].failure_reason)
                    return True
                return False

            log.info("%s MD: %d steps × %g fs at %g K on %s (%d atoms), a frame every %d steps",
                     self.name, steps, timestep_fs, temperature, s0.composition.reduced_formula, len(s0), every)
            atoms = self._atoms(s0)
            try:
                run_ase_md(atoms, self.calculator, protocol, progress=progress, max_force=None, on_dump=on_dump,
                           dump_start=include_start, gamma_fn=lambda _a: None)
            except Exception as exc:  # noqa: BLE001
                done = frames[-1].step if frames else 0
                common = dict(labeler=self.name, labeler_settings=settings, source=source, trajectory_id=traj_id,
                              step=done, metadata={**meta, "time_fs": done * timestep_fs},
                              force_threshold=self.force_threshold)
                frames.append(self._frame(atoms, common, failure=f"MD failed after step {done}: "
                                                                 f"{type(exc).__name__}: {exc}"))
            return frames

        return self.trajectory(s0, "md", md_settings, compute)

    def relax(self, structure, every: int = 1, source: str = "relax", metadata: dict | None = None,
              fmax: float = 0.05, steps: int = 200, optimizer: str = "BFGS", **_ignored: Any) -> list[LabeledFrame]:
        """ASE relaxation (positions; ``optimizer`` BFGS or FIRE) keeping every ``every``-th step and the last."""
        from ase import optimize

        s0 = to_structure(structure)
        params = {"fmax": float(fmax), "steps": int(steps), "optimizer": optimizer, "every": int(every)}

        def compute() -> list[LabeledFrame]:
            from mlipflow.schemas.base import content_hash

            traj_id = content_hash(structure_key(s0), self.name, self.hash_settings(), "relax", params)
            atoms = self._atoms(s0)
            opt = getattr(optimize, optimizer)(atoms, logfile=None)
            frames: list[LabeledFrame] = []
            settings = {**self.settings, "relax": params}

            def common(step):
                return dict(labeler=self.name, labeler_settings=settings, source=source, trajectory_id=traj_id,
                            step=step, metadata=dict(metadata or {}), force_threshold=self.force_threshold)

            step = 0
            try:
                for step, _ in enumerate(opt.irun(fmax=fmax, steps=steps)):
                    if step % every == 0:
                        frames.append(self._frame(atoms, common(step)))
                        if frames[-1].status != FrameStatus.ok:
                            return frames
                if not frames or frames[-1].step != step:
                    frames.append(self._frame(atoms, common(step)))
            except Exception as exc:  # noqa: BLE001
                frames.append(self._frame(atoms, common(step), failure=f"relaxation failed at step {step}: "
                                                                        f"{type(exc).__name__}: {exc}"))
            return frames

        return self.trajectory(s0, "relax", params, compute)


# ============================================================================ factory


def ase_labeler(name: str, calculator: str, defaults: dict[str, Any] | None = None):
    """A registry factory for an embedded labeler: ``LABELERS.register(name, ase_labeler(name, path))``."""

    def factory(spec: str, **overrides: Any) -> ASELabeler:
        options = {k: overrides.pop(k) for k in ("force_threshold", "reference_energies", "use_cache") if k in overrides}
        return ASELabeler(name, calculator, {**(defaults or {}), **overrides}, **options)

    return factory


chgnet_labeler = ase_labeler("chgnet", "chgnet.model.dynamics:CHGNetCalculator", {"use_device": "cpu"})
emt_labeler = ase_labeler("emt", "ase.calculators.emt:EMT")
lj_labeler = ase_labeler("lj", "ase.calculators.lj:LennardJones")


def labeler_name(spec: str) -> str:
    """The registry entry a spec resolves to: ``chgnet`` -> chgnet, ``vasp:set`` -> vasp, ``module:Class`` -> ''."""
    if spec in LABELERS:
        return spec
    head = spec.partition(":")[0]
    return head if head in LABELERS else ""


def check_labeler(spec: str) -> None:
    """Raise the clear error for a spec that names no labeler (without importing calculators)."""
    name = labeler_name(spec)
    if name:
        checker = getattr(LABELERS.get(name), "check", None)
        if checker is not None:
            checker(spec)
        return
    if ":" in spec:
        import_object(spec)
        return
    LABELERS.check(spec)


def get_labeler(spec: str | None = None, **overrides: Any) -> Labeler:
    """Labeler from a spec: a registered name (``chgnet``, ``emt``, ``lj``), ``<name>:<argument>``
    (``vasp:<input set>``) or an ASE calculator ``module.path:ClassName``.

    Options taken by every labeler: ``force_threshold`` (eV/Å, default 100; ``None`` = off),
    ``reference_energies`` ({element: eV} from the configuration), ``use_cache``.
    The remaining ``overrides`` are calculator keyword arguments (ASE) or input-set
    overrides (VASP: ``user_incar_settings``, ``user_kpoints_settings``, ``calc_type``, ...).
    """
    from mlipflow.settings import get_settings

    settings = get_settings()
    spec = spec or settings.default_labeler
    configured = (getattr(settings, "reference_energies", None) or {}).get(spec)  # {element: eV} for this labeler
    if configured and "reference_energies" not in overrides:
        overrides["reference_energies"] = dict(configured)
    name = labeler_name(spec)
    if name:
        return LABELERS.get(name)(spec, **overrides)
    if ":" in spec:
        import_object(spec)  # check it imports now: a clear error instead of N failed frames
        options = {k: overrides.pop(k) for k in ("force_threshold", "reference_energies", "use_cache") if k in overrides}
        return ASELabeler(spec, spec, overrides, **options)
    LABELERS.check(spec)
    raise AssertionError("unreachable")
