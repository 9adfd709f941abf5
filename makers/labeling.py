"""Labeling makers: structure sets -> labeled frames -> sampled frames -> versioned datasets.

* :class:`LabelMaker` — an embedded labeler (``chgnet``, ``emt``, ``module:Class``): static, relax
  or MD frames (:class:`LabelStructuresMaker`, :class:`EmbeddedAIMDMaker` are its presets).
* :func:`reference_job` — one reference calculation as its own job, for any labeler (the flows'
  fan-out: VASP through the atomate2 makers below, embedded labelers through :class:`LabelMaker`).
* :class:`VaspStaticMaker`, :class:`VaspRelaxMaker`, :class:`VaspAIMDMaker` — atomate2
  ``StaticMaker``/``RelaxMaker``/``MDMaker`` (custodian, handlers on) followed by a job that
  parses the run directory into frames (every ionic step / every k-th MD step).
* :class:`FrameSamplerMaker` — k frames per trajectory or per composition
  (41 from each of 20 relaxations; 150 at each of 5 compositions).
* :class:`BuildDatasetMaker` — a new dataset version (split, de-duplication, references).

Job outputs are small summaries (``frame_ids``, counts, failure reasons); the frames live in
the ``frames`` collection (the label cache) and are loaded by id downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from jobflow import Flow, Maker, job

from mlipflow.schemas import DatasetDoc


def _structures(structures: Any) -> list:
    """pymatgen Structures from a list (Structures, Atoms, dicts) or a StructureSetDoc(-dict)."""
    from pymatgen.core import Structure

    from mlipflow.engines.frames import to_structure

    if hasattr(structures, "structures") and not isinstance(structures, (list, tuple)):
        structures = structures.structures
    elif isinstance(structures, dict) and "structures" in structures:
        structures = structures["structures"]
    if isinstance(structures, (Structure,)) or (isinstance(structures, dict) and "lattice" in structures):
        structures = [structures]
    return [to_structure(s) for s in structures]


def _entries(structures: Any) -> list[dict[str, Any]] | None:
    entries = getattr(structures, "entries", None)
    if entries is None and isinstance(structures, dict):
        entries = structures.get("entries")
    return [dict(e) for e in entries] if entries else None


@dataclass
class LabelMaker(Maker):
    """Label structures with an embedded labeler, in this job: ``mode`` static (single points),
    relax (every ``every``-th step of an ASE relaxation to ``fmax`` in at most ``steps`` steps, and
    the last) or md (NVT at ``temperature``, ``steps`` steps, a frame every ``every`` steps;
    structure ``i`` uses seed ``seed + i``). Cached by content hash; failures kept.

    One reference calculation per job is what the flows create (:func:`reference_job`); a list
    of structures in one job is for small interactive use.
    """

    need: ClassVar[str] = "cpu"
    name: str = "label"
    labeler: str = "chgnet"
    labeler_kwargs: dict[str, Any] = field(default_factory=dict)
    mode: str = "static"
    source: str | None = None
    temperature: float = 5000.0
    steps: int = 100
    timestep_fs: float = 2.0
    every: int = 20
    seed: int = 0
    fmax: float = 0.05

    @job
    def make(self, structures: Any, metadata: dict[str, Any] | None = None, campaign: str | None = None) -> dict:
        from mlipflow.engines.dataset_io import frames_summary
        from mlipflow.engines.labelers import get_labeler
        from mlipflow.errors import UserError

        structs = _structures(structures)
        entries = _entries(structures)
        metas = [{**(metadata or {}), **(entries[i] if entries and i < len(entries) else {})} for i in range(len(structs))]
        if campaign:
            metas = [{**m, "campaign": campaign} for m in metas]
        lab = get_labeler(self.labeler, **self.labeler_kwargs)
        if self.mode == "static":
            source = self.source or "static"
            frames = lab.label(structs, source=source, metadata=metas, progress=True)
        elif self.mode in ("md", "relax"):
            source = self.source or ("aimd" if self.mode == "md" else "relax")
            frames = []
            for i, (s, meta) in enumerate(zip(structs, metas)):
                if self.mode == "md":
                    frames += lab.md(s, temperature=self.temperature, steps=self.steps, timestep_fs=self.timestep_fs,
                                     every=self.every, seed=self.seed + i, source=source, metadata=meta)
                else:
                    frames += lab.relax(s, every=self.every, source=source, metadata=meta, fmax=self.fmax,
                                        steps=self.steps)
        else:
            raise UserError(f"unknown labeling mode {self.mode!r}", "use static, relax or md")
        return frames_summary(frames, labeler=lab.name, source=source)


@dataclass
class LabelStructuresMaker(LabelMaker):
    """Static labels of a structure set (see :class:`LabelMaker`)."""

    name: str = "label structures"
    mode: str = "static"


@dataclass
class EmbeddedAIMDMaker(LabelMaker):
    """NVT MD with an embedded calculator (default CHGNet); a frame every ``every`` steps.

    Defaults: the NaFePO4 initial-dataset protocol (5000 K, 100 × 2 fs, a frame every 40 fs).
    """

    name: str = "embedded aimd"
    mode: str = "md"


def reference_job(labeler: str, mode: str, structure: Any, name: str, metadata: dict[str, Any] | None = None,
                  source: str | None = None, **md: Any):
    """One reference calculation as its own job (or atomate2 sub-flow), whose output has ``frame_ids``.

    VASP labelers (``vasp:<set>``) become atomate2's Static/Relax/MD maker plus the parsing job;
    embedded labelers a :class:`LabelMaker` job. ``md``: temperature, steps, timestep_fs, every, seed
    (and fmax for an embedded relaxation; VASP relaxations stop at the input set's EDIFFG).
    """
    from mlipflow.engines.labelers import get_labeler

    lab = get_labeler(labeler)
    if lab.kind == "vasp":
        cls = {"static": VaspStaticMaker, "relax": VaspRelaxMaker, "md": VaspAIMDMaker}[mode]
        kwargs = {k: md[k] for k in ("temperature", "steps", "timestep_fs") if mode == "md" and k in md}
        if mode != "static" and "every" in md:
            kwargs["every"] = md["every"]
        if source == "isolated_atom":  # a free atom: no symmetry, Γ only (as VaspLabeler.reference_energies)
            from mlipflow.engines.vasp import _gamma_only

            kwargs["labeler_kwargs"] = {"user_incar_settings": {"ISYM": 0}, "user_kpoints_settings": _gamma_only()}
        return cls(name=name, input_set=lab.set_name, **kwargs, **({"source": source} if source else {})).make(structure)
    maker = LabelMaker(name=name, labeler=labeler, mode=mode, source=source,
                       **{k: v for k, v in md.items() if k in ("temperature", "steps", "timestep_fs", "every", "seed", "fmax")})
    return maker.make(structure, metadata=metadata)


@job
def vasp_frames(
    dir_name: str | None,
    structure: Any,
    labeler_spec: str,
    labeler_kwargs: dict[str, Any],
    calc_type: str,
    every: int = 1,
    source: str = "static",
    upstream: str = "",
) -> dict:
    """Parse an atomate2 VASP run directory into frames (and store them in the frame cache).

    Runs even when the VASP job failed (``dir_name`` is then None): the structure becomes a
    failed frame saying so.
    """
    from mlipflow.engines.dataset_io import frames_summary
    from mlipflow.engines.frames import make_frame, structure_key, to_structure
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.engines.repository import save_frames
    from mlipflow.engines.vasp import parse_vasp_outputs
    from mlipflow.schemas import content_hash

    lab = get_labeler(labeler_spec, **labeler_kwargs)
    s = to_structure(structure)
    settings = {**lab.settings, "calc_type": calc_type}
    traj = content_hash(structure_key(s, True), lab.name, lab.hash_settings(), calc_type, every) if calc_type != "static" else None
    if not dir_name:
        frames = [make_frame(s, frame_id=lab.frame_id(s), labeler=lab.name, labeler_settings=settings,
                             failure_reason=f"atomate2 VASP job {upstream!r} failed (custodian gave up or the job raised)",
                             source=source)]
    else:
        path = Path(str(dir_name).split(":", 1)[-1]) if ":" in str(dir_name) and not Path(str(dir_name)).exists() else Path(dir_name)

        def fid(st, energy):
            if calc_type == "static":
                return lab.frame_id(s)
            return content_hash(structure_key(st), lab.name, lab.hash_settings(), traj, energy)

        frames = parse_vasp_outputs(path, every=every, labeler=lab.name, settings=settings, frame_id_fn=fid,
                                    source=source, trajectory_id=traj, metadata={"run_dir": str(path)},
                                    force_threshold=lab.force_threshold, last_only=calc_type == "static")
    save_frames(frames)
    return frames_summary(frames, labeler=lab.name, source=source)


@dataclass
class _VaspFramesMaker(Maker):
    name: str = "vasp"
    input_set: str = "nafepo4_ace"
    labeler_kwargs: dict[str, Any] = field(default_factory=dict)
    run_vasp_kwargs: dict[str, Any] = field(default_factory=dict)
    calc_type: str = "static"
    every: int = 1
    source: str = "static"

    def _maker_kwargs(self) -> dict[str, Any]:
        return {}

    def atomate2_maker(self):
        from mlipflow.engines.vasp import make_maker

        overrides = {k: v for k, v in self.labeler_kwargs.items() if k.startswith("user_")}
        return make_maker(self.input_set, self.calc_type, run_vasp_kwargs=self.run_vasp_kwargs or None,
                          **self._maker_kwargs(), **overrides)

    def make(self, structure: Any, prev_dir: str | None = None) -> Flow:
        from jobflow import OnMissing

        from mlipflow.engines.frames import to_structure

        s = to_structure(structure)
        vasp_job = self.atomate2_maker().make(s, prev_dir=prev_dir)
        frames_job = vasp_frames(vasp_job.output.dir_name, s, f"vasp:{self.input_set}",
                                 {k: v for k, v in self.labeler_kwargs.items() if k != "workdir"},
                                 self.calc_type, self.every, self.source, vasp_job.name)
        frames_job.config.on_missing_references = OnMissing.NONE
        frames_job.name = f"{self.name} frames"
        return Flow([vasp_job, frames_job], output=frames_job.output, name=self.name)


@dataclass
class VaspStaticMaker(_VaspFramesMaker):
    """atomate2 StaticMaker with a named input set, then its frame."""

    name: str = "vasp static"
    calc_type: str = "static"
    source: str = "static"


@dataclass
class VaspRelaxMaker(_VaspFramesMaker):
    """atomate2 RelaxMaker with a named input set; every ``every``-th ionic step becomes a frame."""

    name: str = "vasp relax"
    calc_type: str = "relax"
    source: str = "relax"


@dataclass
class VaspAIMDMaker(_VaspFramesMaker):
    """atomate2 MDMaker (NVT) with a named input set; a frame every ``every`` steps.

    ``temperature``/``steps``/``timestep_fs``/``every`` default to the set's paper preset.
    """

    name: str = "vasp aimd"
    calc_type: str = "md"
    source: str = "aimd"
    temperature: float | None = None
    steps: int | None = None
    timestep_fs: float | None = None
    every: int | None = None  # type: ignore[assignment]

    def __post_init__(self):
        from mlipflow.engines.vasp import aimd_preset

        if self.every is None:
            self.every = aimd_preset(self.input_set)["every"]

    def _maker_kwargs(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "steps": self.steps, "timestep_fs": self.timestep_fs}


@dataclass
class FrameSamplerMaker(Maker):
    """Pick ``k`` frames per trajectory or per composition (uniform along the trajectory or random)."""

    name: str = "sample frames"
    k: int = 41
    per: str = "trajectory"
    method: str = "uniform"
    seed: int = 0

    @job
    def make(self, frames: Any) -> dict:
        from mlipflow.engines.dataset_io import collect_frames, frames_summary, sample_frames

        picked = sample_frames(collect_frames(frames), self.k, per=self.per, method=self.method, seed=self.seed)
        return frames_summary(picked, sampled={"k": self.k, "per": self.per, "method": self.method, "seed": self.seed})


@dataclass
class BuildDatasetMaker(Maker):
    """A new version of dataset ``dataset_name`` from frames (failed ones excluded, duplicates removed).

    Reference energies: ``reference_energies`` if given, else computed by ``reference_labeler``
    (isolated atoms, cached) when set, else none (energy_corrected = energy).
    """

    name: str = "build dataset"
    dataset_name: str = "dataset"
    split: str = "random"
    test_fraction: float = 0.1
    seed: int = 0
    reference_energies: dict[str, float] | None = None
    reference_labeler: str | None = None
    reference_labeler_kwargs: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None

    @job
    def make(self, frames: Any, campaign: str | None = None) -> DatasetDoc:
        from mlipflow.engines.dataset_io import collect_frames
        from mlipflow.engines.labelers import get_labeler
        from mlipflow.engines.repository import build_dataset

        fr = collect_frames(frames)
        refs = self.reference_energies
        if refs is None and self.reference_labeler:
            elements = sorted({el for f in fr for el in f.elements})
            refs = get_labeler(self.reference_labeler, **self.reference_labeler_kwargs).reference_energies(elements)
        return build_dataset(self.dataset_name, fr, split=self.split, test_fraction=self.test_fraction,
                             seed=self.seed, reference_energies=refs, parent=self.parent, campaign=campaign)
