"""VASP through atomate2 makers and custodian: the ONE place for the named input sets.

Input sets (every INCAR value with its source is in :data:`INPUT_SETS`; ``docs/labeling.md``
prints the same table):

* ``nafepo4_ace`` — NaFePO4 ACE paper: PBE, PAW PBE_54, ENCUT 520 eV, Γ-only 1×1×1, DFT+U
  (Dudarev, LDAUTYPE 2) U(Fe) = 5.1 eV, spin-polarized, EDIFF = 1e-5 eV per atom.
* ``lixfepo4_dpa`` — LixFePO4 DPA paper: PBE, ENCUT 520 eV, Γ-centred mesh from a k-point
  spacing of 0.4 Å⁻¹ (VASP KSPACING convention, 2π included), U(Fe) = 5.3 eV, collinear
  ferromagnetic with per-site MAGMOM from the structure's ``magmom`` site property, Li_sv and
  Fe_pv POTCARs, EDIFF 1e-6, EDIFFG −0.02 for relaxations.

They are atomate2 input-set generators (``StaticSetGenerator``/``RelaxSetGenerator``/
``MDSetGenerator`` subclasses that add ``kpoint_spacing``) with ``user_incar_settings``,
``user_kpoints_settings``, ``user_potcar_settings`` and ``user_potcar_functional``; user
overrides merge on top. :func:`make_maker` returns atomate2 ``StaticMaker``/``RelaxMaker``/
``MDMaker`` (custodian with its error handlers). :func:`parse_vasp_outputs` turns a run
directory (vasprun.xml, else OUTCAR) into :class:`LabeledFrame` documents, one per ionic step
(every k-th for MD); unconverged SCF steps and unfinished runs become failed frames.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlipflow.engines.frames import (
    DEFAULT_FORCE_THRESHOLD,
    make_frame,
    structure_key,
    to_structure,
)
from mlipflow.engines.labelers import ISOLATED_ATOM_BOX, Labeler, _progress
from mlipflow.errors import UserError
from mlipflow.schemas import FrameStatus, LabeledFrame, content_hash

log = logging.getLogger(__name__)

# ============================================================================ input sets

#: value, source — shared by both sets unless a set overrides a key.
_COMMON_INCAR: dict[str, tuple[Any, str]] = {
    "GGA": ("PE", "paper: PBE (atomate2's base set would use PBEsol 'PS')"),
    "ENCUT": (520, "paper: 520 eV"),
    "ISPIN": (2, "paper: spin-polarized"),
    "LDAU": (True, "paper: DFT+U on Fe"),
    "LDAUTYPE": (2, "paper: Dudarev (simplified rotationally invariant) +U"),
    "LDAUL": ({"Fe": 2}, "+U acts on Fe d states (l = 2)"),
    "LDAUJ": ({"Fe": 0}, "Dudarev: only U − J matters, J = 0"),
    "LMAXMIX": (4, "VASP wiki: 4 for d elements with +U (pymatgen default)"),
    "LASPH": (True, "VASP wiki / pymatgen: recommended for +U"),
    "ISMEAR": (0, "mlipflow: Gaussian smearing (tetrahedron needs ≥4 k-points; amorphous cells)"),
    "SIGMA": (0.05, "mlipflow: 0.05 eV (MP/atomate2 insulator value)"),
    "PREC": ("Accurate", "atomate2 base set"),
    "ALGO": ("Normal", "mlipflow: robust Davidson for magnetic +U cells far from equilibrium"),
    "NELM": (200, "atomate2 base set"),
    "LREAL": (False, "atomate2 base set: exact projection (accurate forces)"),
    "LWAVE": (False, "mlipflow: no WAVECAR (labels only)"),
    "LCHARG": (False, "mlipflow: no CHGCAR (labels only)"),
    "LAECHG": (False, "mlipflow: no AECCAR (labels only)"),
    "LVTOT": (False, "mlipflow: no LOCPOT (labels only)"),
    "LORBIT": (11, "atomate2 base set: site-projected moments (frame magmoms)"),
    "KSPACING": (None, "unset: an explicit KPOINTS file is written"),
    "LMIXTAU": (None, "unset (meta-GGA only)"),
}

INPUT_SETS: dict[str, dict[str, Any]] = {
    "nafepo4_ace": {
        "description": "NaFePO4 ACE paper: PBE+U (U_Fe = 5.1 eV), PBE_54 PAW, 520 eV, Γ-only, EDIFF 1e-5 eV/atom",
        "incar": {
            **_COMMON_INCAR,
            "LDAUU": ({"Fe": 5.1}, "paper: U(Fe) = 5.1 eV"),
        },
        # EDIFF scales with the number of atoms (pymatgen EDIFF_PER_ATOM in the config dict)
        "ediff_per_atom": (1e-5, "paper: 1e-5 eV per atom"),
        "relax_incar": {"EDIFFG": (-0.02, "atomate2 base set (forces < 0.02 eV/Å)")},
        "kpoints": {"gamma_mesh": (1, 1, 1), "source": "paper: Γ-only 1×1×1"},
        "potcar_functional": ("PBE_54", "paper: PAW PBE_54"),
        "potcar_settings": ({}, "atomate2/pymatgen defaults for PBE_54: Na_pv, Fe, P, O"),
        "magmom": "site property 'magmom' if set, else Fe 5 µB, others 0.6 µB (pymatgen defaults)",
        "aimd": {"temperature": 5000.0, "time_fs": 200.0, "timestep_fs": 2.0, "every_fs": 40.0,
                 "source": "paper: initial dataset, NVT 5000 K, 200 fs, 2 fs step, a frame every 40 fs"},
    },
    "lixfepo4_dpa": {
        "description": "LixFePO4 DPA paper: PBE+U (U_Fe = 5.3 eV), FM, Li_sv/Fe_pv, 520 eV, k-spacing 0.4 Å⁻¹, EDIFF 1e-6",
        "incar": {
            **_COMMON_INCAR,
            "LDAUU": ({"Fe": 5.3}, "paper: U(Fe) = 5.3 eV"),
            "EDIFF": (1e-6, "paper: EDIFF 1e-6"),
        },
        "relax_incar": {"EDIFFG": (-0.02, "paper: EDIFFG −0.02 (forces < 0.02 eV/Å)")},
        "kpoints": {"spacing": 0.4, "source": "paper: Γ-centred mesh, k-spacing 0.4 Å⁻¹ (N_i = ⌈|b_i|/0.4⌉, 2π in b)"},
        "potcar_functional": ("PBE_54", "paper: PAW PBE (PBE_54 set)"),
        "potcar_settings": ({"Li": "Li_sv", "Fe": "Fe_pv"}, "paper: Li_sv and Fe_pv"),
        "magmom": "collinear ferromagnetic: site property 'magmom' (per site) if set, else Fe 5 µB, others 0.6 µB",
        "aimd": {"temperature": 550.0, "time_fs": 1000.0, "timestep_fs": 4.0, "every_fs": 4.0,
                 "source": "paper: NVT 550 K, 1 ps, 4 fs step (every step kept; sample later)"},
    },
}

#: Calculation types and the atomate2 maker/generator behind each.
CALC_TYPES = ("static", "relax", "md")


def gamma_mesh(structure, spacing: float) -> tuple[int, int, int]:
    """Γ-centred mesh from a k-point spacing (Å⁻¹), VASP KSPACING rule N_i = max(1, ⌈|b_i|/spacing⌉)
    with reciprocal vectors b_i including 2π."""
    recip = to_structure(structure).lattice.reciprocal_lattice.abc
    return tuple(int(max(1, math.ceil(b / spacing - 1e-9))) for b in recip)  # type: ignore[return-value]


def _generator_classes():
    from atomate2.vasp.sets.core import MDSetGenerator, RelaxSetGenerator, StaticSetGenerator
    from pymatgen.io.vasp import Kpoints

    def _kpts(self, base):
        if self.kpoint_spacing:
            return Kpoints.gamma_automatic(gamma_mesh(self.structure, self.kpoint_spacing))
        return base

    @dataclass
    class SpacingStaticSetGenerator(StaticSetGenerator):
        """atomate2 StaticSetGenerator + ``kpoint_spacing`` (Γ-centred mesh, Å⁻¹)."""

        kpoint_spacing: float | None = None

        @property
        def kpoints_updates(self):
            return _kpts(self, super().kpoints_updates)

    @dataclass
    class SpacingRelaxSetGenerator(RelaxSetGenerator):
        """atomate2 RelaxSetGenerator + ``kpoint_spacing`` (Γ-centred mesh, Å⁻¹)."""

        kpoint_spacing: float | None = None

        @property
        def kpoints_updates(self):
            return _kpts(self, super().kpoints_updates)

    @dataclass
    class SpacingMDSetGenerator(MDSetGenerator):
        """atomate2 MDSetGenerator + ``kpoint_spacing`` (Γ-centred mesh, Å⁻¹)."""

        kpoint_spacing: float | None = None

        @property
        def kpoints_updates(self):
            return _kpts(self, super().kpoints_updates)

    return SpacingStaticSetGenerator, SpacingRelaxSetGenerator, SpacingMDSetGenerator


_GENERATORS: dict[str, type] = {}


def generator_class(kind: str) -> type:
    if not _GENERATORS:
        st, rl, md = _generator_classes()
        _GENERATORS.update(static=st, relax=rl, md=md)
        # make them importable by name (jobflow/monty serialization of makers)
        for cls in (st, rl, md):
            cls.__module__ = __name__
            cls.__qualname__ = cls.__name__
            globals()[cls.__name__] = cls
    if kind not in _GENERATORS:
        raise UserError(f"unknown VASP calculation type {kind!r}", f"use one of {CALC_TYPES}")
    return _GENERATORS[kind]


def __getattr__(name):  # SpacingStaticSetGenerator & co. are built lazily (atomate2 import is slow)
    if name in ("SpacingStaticSetGenerator", "SpacingRelaxSetGenerator", "SpacingMDSetGenerator"):
        generator_class("static")
        return globals()[name]
    raise AttributeError(name)


def input_set_values(set_name: str, kind: str = "static") -> dict[str, tuple[Any, str]]:
    """INCAR key -> (value, source) of a named set for a calculation type (before user overrides)."""
    if set_name not in INPUT_SETS:
        raise UserError(f"unknown VASP input set {set_name!r}", f"use one of {sorted(INPUT_SETS)}")
    spec = INPUT_SETS[set_name]
    values = dict(spec["incar"])
    if kind == "relax":
        values.update(spec["relax_incar"])
    return values


def input_set_generator(
    set_name: str,
    kind: str = "static",
    user_incar_settings: dict[str, Any] | None = None,
    user_kpoints_settings: Any = None,
    user_potcar_settings: dict[str, str] | None = None,
    user_potcar_functional: str | None = None,
    **generator_kwargs: Any,
):
    """The atomate2 input-set generator of a named set; user overrides merge on top.

    ``generator_kwargs`` go to the generator (e.g. ``start_temp``, ``end_temp``, ``nsteps``,
    ``time_step``, ``ensemble`` for ``kind='md'``).
    """
    from atomate2.vasp.sets.base import _BASE_VASP_SET
    from pymatgen.io.vasp import Kpoints

    spec = INPUT_SETS.get(set_name)
    if spec is None:
        raise UserError(f"unknown VASP input set {set_name!r}", f"use one of {sorted(INPUT_SETS)}")
    config = copy.deepcopy(_BASE_VASP_SET)
    if "ediff_per_atom" in spec:
        config["INCAR"].pop("EDIFF", None)
        config["INCAR"]["EDIFF_PER_ATOM"] = spec["ediff_per_atom"][0]
    config["INCAR"].setdefault("MAGMOM", {})["Fe"] = 5
    incar = {k: v for k, (v, _src) in input_set_values(set_name, kind).items()}
    incar.update(user_incar_settings or {})
    kpt_spec = spec["kpoints"]
    spacing = None
    if user_kpoints_settings is None:
        if "gamma_mesh" in kpt_spec:
            user_kpoints_settings = Kpoints.gamma_automatic(kpt_spec["gamma_mesh"])
        else:
            user_kpoints_settings = {}
            spacing = kpt_spec["spacing"]
    potcar = {**spec["potcar_settings"][0], **(user_potcar_settings or {})}
    cls = generator_class(kind)
    return cls(
        config_dict=config,
        user_incar_settings=incar,
        user_kpoints_settings=user_kpoints_settings,
        user_potcar_settings=potcar,
        user_potcar_functional=user_potcar_functional or spec["potcar_functional"][0],
        kpoint_spacing=spacing,
        **generator_kwargs,
    )


def aimd_preset(set_name: str) -> dict[str, Any]:
    """The paper's AIMD protocol of a set: temperature (K), steps, timestep_fs, every (steps)."""
    a = INPUT_SETS[set_name]["aimd"]
    steps = int(round(a["time_fs"] / a["timestep_fs"]))
    every = max(1, int(round(a["every_fs"] / a["timestep_fs"])))
    return {"temperature": a["temperature"], "steps": steps, "timestep_fs": a["timestep_fs"], "every": every}


def make_maker(
    set_name: str,
    kind: str = "static",
    name: str | None = None,
    run_vasp_kwargs: dict[str, Any] | None = None,
    temperature: float | None = None,
    steps: int | None = None,
    timestep_fs: float | None = None,
    **overrides: Any,
):
    """atomate2 ``StaticMaker`` / ``RelaxMaker`` / ``MDMaker`` (NVT) for a named set.

    ``overrides``: ``user_incar_settings``, ``user_kpoints_settings``, ``user_potcar_settings``,
    ``user_potcar_functional``. ``run_vasp_kwargs`` go to atomate2's ``run_vasp`` (custodian:
    ``vasp_cmd``, ``handlers``, ``custodian_kwargs``...). MD defaults to the set's AIMD preset.
    """
    from atomate2.vasp.jobs.core import RelaxMaker, StaticMaker
    from atomate2.vasp.jobs.md import MDMaker

    if kind == "md":
        preset = aimd_preset(set_name)
        t = float(temperature if temperature is not None else preset["temperature"])
        gen = input_set_generator(
            set_name, "md", ensemble="nvt", start_temp=t, end_temp=t,
            nsteps=int(steps if steps is not None else preset["steps"]),
            time_step=float(timestep_fs if timestep_fs is not None else preset["timestep_fs"]), **overrides,
        )
        maker = MDMaker(name=name or f"{set_name} md", input_set_generator=gen)
    elif kind == "relax":
        maker = RelaxMaker(name=name or f"{set_name} relax", input_set_generator=input_set_generator(set_name, "relax", **overrides))
    elif kind == "static":
        maker = StaticMaker(name=name or f"{set_name} static", input_set_generator=input_set_generator(set_name, "static", **overrides))
    else:
        raise UserError(f"unknown VASP calculation type {kind!r}", f"use one of {CALC_TYPES}")
    run_vasp_kwargs = dict(run_vasp_kwargs or {})
    if "vasp_cmd" not in run_vasp_kwargs:
        from mlipflow.settings import get_settings

        cmd = get_settings().executables.vasp_cmd  # else atomate2's VASP_CMD
        if cmd:
            run_vasp_kwargs["vasp_cmd"] = cmd
    if run_vasp_kwargs:
        maker.run_vasp_kwargs = {**maker.run_vasp_kwargs, **run_vasp_kwargs}
    # keep the run directory's files even when the SCF did not converge: frames say why
    maker.stop_children_kwargs = {"handle_unsuccessful": False, **maker.stop_children_kwargs}
    return maker


# ============================================================================ outputs -> frames


def _find(directory: Path, name: str) -> Path | None:
    for cand in (directory / name, directory / f"{name}.gz", directory / f"{name}.bz2", directory / f"{name}.xz"):
        if cand.exists():
            return cand
    relax = sorted(directory.glob(f"{name}.relax*"))  # custodian double-relaxation naming
    return relax[-1] if relax else None


def _outcar_magmoms(outcar: Path | None, nsites: int) -> list[float] | None:
    if outcar is None:
        return None
    try:
        from pymatgen.io.vasp import Outcar

        mags = Outcar(str(outcar)).magnetization
        if mags and len(mags) == nsites:
            return [float(m["tot"]) for m in mags]
    except Exception:  # noqa: BLE001 - magmoms are optional
        log.debug("no magnetization in %s", outcar, exc_info=True)
    return None


def parse_vasp_outputs(
    path: str | Path,
    every: int = 1,
    labeler: str = "import:vasp",
    settings: dict[str, Any] | None = None,
    frame_id_fn: Callable[[Any, float | None], str] | None = None,
    source: str | None = None,
    trajectory_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    force_threshold: float | None = DEFAULT_FORCE_THRESHOLD,
    last_only: bool = False,
) -> list[LabeledFrame]:
    """Frames from a VASP run (directory, vasprun.xml or OUTCAR): every ``every``-th ionic
    step and the last one (``last_only``: just the last one).

    Energies are the force-consistent free energy (TOTEN, ``e_fr_energy``); stress is converted
    from VASP kB to GPa with the ASE sign; magmoms (last step) come from OUTCAR. An electronic
    loop that hit NELM marks that step failed ("unconverged SCF"); a run without ionic steps is
    one failed frame.
    """
    p = Path(path)
    directory = p if p.is_dir() else p.parent
    vasprun = p if p.is_file() and "vasprun" in p.name else (_find(directory, "vasprun.xml") if p.is_dir() else None)
    outcar = p if p.is_file() and "OUTCAR" in p.name.upper() else _find(directory, "OUTCAR")
    settings = dict(settings or {})
    meta = dict(metadata or {})
    src = source or f"import:{p.name}"

    def fid(structure, energy):
        if frame_id_fn is not None:
            return frame_id_fn(structure, energy)
        return content_hash(structure_key(structure), labeler, settings, str(p.resolve()), energy if energy is not None else "none")

    def failed_from_inputs(reason: str) -> list[LabeledFrame]:
        poscar = _find(directory, "POSCAR") or _find(directory, "CONTCAR")
        if poscar is None:
            raise UserError(f"{p}: {reason}, and no POSCAR to say which structure", "give a complete VASP run directory")
        from pymatgen.io.vasp import Poscar

        s = Poscar.from_file(str(poscar)).structure
        return [make_frame(s, frame_id=fid(s, None), labeler=labeler, labeler_settings=settings, failure_reason=reason,
                           source=src, trajectory_id=trajectory_id, metadata=meta)]

    if vasprun is not None:
        from pymatgen.io.vasp import Vasprun

        try:
            vr = Vasprun(str(vasprun), parse_dos=False, parse_eigen=False, parse_projected_eigen=False,
                         parse_potcar_file=False, exception_on_bad_xml=False)
        except Exception as exc:  # noqa: BLE001
            return failed_from_inputs(f"unreadable vasprun.xml ({type(exc).__name__}: {exc})")
        steps = vr.ionic_steps
        if not steps:
            return failed_from_inputs("VASP wrote no ionic step (crashed or killed before the first SCF finished)")
        nelm = int(vr.parameters.get("NELM", 60))
        settings.setdefault("incar", {k: v for k, v in vr.incar.items() if isinstance(v, (int, float, str, bool))})
        n = len(steps)
        idx = [n - 1] if last_only else sorted({*range(0, n, max(1, every)), n - 1})
        frames = []
        for i in idx:
            st = steps[i]
            s = st["structure"]
            energy = st.get("e_fr_energy")
            n_elec = len(st.get("electronic_steps", []))
            reason = None
            if n_elec >= nelm:
                reason = f"unconverged SCF at ionic step {i} (NELM = {nelm} electronic steps reached)"
            stress = st.get("stress")
            stress_gpa = None if stress is None else -0.1 * np.asarray(stress, dtype=float)
            magmoms = _outcar_magmoms(outcar, len(s)) if i == n - 1 else None
            frames.append(make_frame(
                s, frame_id=fid(s, energy), labeler=labeler, labeler_settings=settings, energy=energy,
                forces=st.get("forces"), stress_gpa=stress_gpa, magmoms=magmoms, failure_reason=reason,
                force_threshold=force_threshold, source=src, trajectory_id=trajectory_id,
                step=i, metadata={**meta, "n_electronic_steps": n_elec, "vasp_file": vasprun.name},
            ))
        return frames
    if outcar is not None:
        from ase.io import read

        try:
            images = read(str(outcar), index=":", format="vasp-out")
        except Exception as exc:  # noqa: BLE001
            return failed_from_inputs(f"unreadable OUTCAR ({type(exc).__name__}: {exc})")
        if not images:
            return failed_from_inputs("OUTCAR has no ionic step")
        n = len(images)
        idx = [n - 1] if last_only else sorted({*range(0, n, max(1, every)), n - 1})
        frames = []
        for i in idx:
            atoms = images[i]
            s = to_structure(atoms)
            r = atoms.calc.results if atoms.calc is not None else {}
            energy = r.get("free_energy", r.get("energy"))
            stress = r.get("stress")
            frames.append(make_frame(
                s, frame_id=fid(s, energy), labeler=labeler, labeler_settings=settings, energy=energy,
                forces=r.get("forces"), stress_gpa=None if stress is None else np.asarray(stress) * 160.21766208,
                magmoms=r.get("magmoms"), force_threshold=force_threshold, source=src,
                trajectory_id=trajectory_id, step=i, metadata={**meta, "vasp_file": outcar.name},
            ))
        return frames
    return failed_from_inputs("no vasprun.xml or OUTCAR (VASP did not run or was killed)")


# ============================================================================ running


def run_job_locally(job, root_dir: Path) -> tuple[Path | None, str | None]:
    """Run an atomate2 VASP job with jobflow in a fresh folder under ``root_dir``.

    Returns (run directory, error message or None). Never raises for a failed VASP run.
    """
    from jobflow import JobStore, run_locally
    from maggma.stores import MemoryStore

    root_dir = Path(root_dir)
    root_dir.mkdir(parents=True, exist_ok=True)
    before = set(root_dir.iterdir())
    error = None
    try:
        run_locally(job, store=JobStore(MemoryStore(), additional_stores={"data": MemoryStore()}),
                    create_folders=True, root_dir=root_dir, log=False, raise_immediately=True)
    except Exception as exc:  # noqa: BLE001 - custodian give-up, validator failure, ... are data
        error = f"{type(exc).__name__}: {exc}".strip()
        log.warning("VASP job %s failed: %s", job.name, error)
    new = sorted((d for d in set(root_dir.iterdir()) - before if d.is_dir()), key=lambda d: d.stat().st_mtime)
    return (new[-1] if new else None), error


def hund_magmom(element: str) -> float:
    """Unpaired electrons of the free atom (Hund's rule), the initial MAGMOM of an isolated atom."""
    from pymatgen.core import Element

    total = 0
    for _n, orbital, occ in Element(element).full_electronic_structure:
        cap = 2 * (2 * "spdf".index(orbital) + 1)
        total += occ if occ <= cap // 2 else cap - occ
    return float(total)


class VaspLabeler(Labeler):
    """VASP via atomate2 makers + custodian with a named input set (``vasp:<set>``).

    ``label`` runs one StaticMaker job per uncached structure (jobflow ``run_locally`` under
    ``<scratch_dir>/vasp``); ``relax`` keeps every ionic step; ``md`` (NVT, MDMaker) keeps every
    k-th step. In a workflow, use the makers in :mod:`mlipflow.makers.labeling` instead.
    """

    kind = "vasp"
    uses_magmom = True

    def __init__(
        self,
        set_name: str,
        user_incar_settings: dict[str, Any] | None = None,
        user_kpoints_settings: Any = None,
        user_potcar_settings: dict[str, str] | None = None,
        user_potcar_functional: str | None = None,
        run_vasp_kwargs: dict[str, Any] | None = None,
        workdir: str | Path | None = None,
        **options: Any,
    ):
        if set_name not in INPUT_SETS:
            raise UserError(f"unknown VASP input set {set_name!r}", f"use one of {sorted(INPUT_SETS)}")
        self.set_name = set_name
        self.overrides = {
            k: v for k, v in {
                "user_incar_settings": user_incar_settings, "user_kpoints_settings": user_kpoints_settings,
                "user_potcar_settings": user_potcar_settings, "user_potcar_functional": user_potcar_functional,
            }.items() if v is not None
        }
        self.run_vasp_kwargs = dict(run_vasp_kwargs or {})
        from mlipflow.schemas.base import _canonical

        settings = {"input_set": set_name, "overrides": _canonical(self.overrides)}
        super().__init__(f"vasp:{set_name}", settings, **options)
        self._workdir = Path(workdir) if workdir else None

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            from mlipflow.settings import get_settings

            self._workdir = get_settings().scratch_dir / "vasp"
        return self._workdir

    def maker(self, kind: str = "static", **kwargs: Any):
        extra = dict(self.overrides)
        if "user_incar_settings" in kwargs:
            extra["user_incar_settings"] = {**extra.get("user_incar_settings", {}), **kwargs.pop("user_incar_settings")}
        return make_maker(self.set_name, kind, run_vasp_kwargs=self.run_vasp_kwargs or None, **extra, **kwargs)

    def _run(self, structure, kind: str, tag: str, maker_kwargs: dict | None = None, every: int = 1,
             source: str = "static", metadata: dict | None = None, trajectory_id: str | None = None,
             last_only: bool = False, frame_id: str | None = None) -> list[LabeledFrame]:
        maker = self.maker(kind, **(maker_kwargs or {}))
        job = maker.make(structure)
        run_dir, error = run_job_locally(job, self.workdir / tag)
        settings = {**self.settings, "calc_type": kind}
        meta = {**(metadata or {}), **({"run_dir": str(run_dir)} if run_dir else {})}

        def fid(s, energy):
            if frame_id and last_only:
                return frame_id
            # trajectory frames: the run (trajectory) and the step's energy are part of the identity
            return content_hash(structure_key(s), self.name, self.hash_settings(), trajectory_id, energy)

        if run_dir is None:
            s = to_structure(structure)
            return [make_frame(s, frame_id=fid(s, None), labeler=self.name, labeler_settings=settings,
                               failure_reason=f"VASP job did not start: {error}", source=source, metadata=meta,
                               trajectory_id=trajectory_id)]
        frames = parse_vasp_outputs(run_dir, every=every, labeler=self.name, settings=settings, frame_id_fn=fid,
                                    source=source, trajectory_id=trajectory_id, metadata=meta,
                                    force_threshold=self.force_threshold, last_only=last_only)
        if error:  # custodian gave up / job raised: keep the parsed labels, but as failed data
            reason = f"custodian/VASP job failed: {error[:2000]}"
            frames = [f.model_copy(update={
                "status": FrameStatus.failed,
                "failure_reason": reason + (f" [{f.failure_reason}]" if f.failure_reason else "")}) for f in frames]
        return frames

    def _compute(self, structures, frame_ids, source, metadatas, progress) -> list[LabeledFrame]:
        out = []
        for s, fid, meta in _progress(zip(structures, frame_ids, metadatas), len(structures), f"label {self.name}", progress):
            extra = {}
            if source == "isolated_atom":
                extra = {"user_incar_settings": {"ISYM": 0}, "user_kpoints_settings": _gamma_only()}
            frames = self._run(s, "static", f"static-{fid[:16]}", maker_kwargs=extra, source=source or "static",
                               metadata=meta, last_only=True, frame_id=fid)
            out.append(frames[-1])
        return out

    def relax(self, structure, every: int = 1, source: str = "relax", metadata: dict | None = None,
              **_ignored: Any) -> list[LabeledFrame]:
        """RelaxMaker run; every ``every``-th ionic step (and the last) becomes a frame."""
        s = to_structure(structure)
        traj = content_hash(structure_key(s, True), self.name, self.hash_settings(), "relax", every)
        return self.trajectory(s, "relax", {"every": every}, lambda: self._run(
            s, "relax", f"relax-{traj[:16]}", every=every, source=source, metadata=metadata, trajectory_id=traj))

    def md(self, structure, temperature: float | None = None, steps: int | None = None,
           timestep_fs: float | None = None, every: int | None = None, source: str = "aimd",
           metadata: dict | None = None, **_ignored: Any) -> list[LabeledFrame]:
        """NVT AIMD with atomate2's MDMaker (defaults: the set's paper preset); a frame every ``every`` steps."""
        preset = aimd_preset(self.set_name)
        temperature = preset["temperature"] if temperature is None else temperature
        steps = preset["steps"] if steps is None else steps
        timestep_fs = preset["timestep_fs"] if timestep_fs is None else timestep_fs
        every = preset["every"] if every is None else every
        s = to_structure(structure)
        md = {"temperature": temperature, "steps": steps, "timestep_fs": timestep_fs, "every": every}
        traj = content_hash(structure_key(s, True), self.name, self.hash_settings(), md)

        def compute() -> list[LabeledFrame]:
            frames = self._run(s, "md", f"md-{traj[:16]}", maker_kwargs={"temperature": temperature, "steps": steps,
                                                                          "timestep_fs": timestep_fs},
                               every=every, source=source, metadata={**(metadata or {}), "temperature_K": temperature,
                                                                     "timestep_fs": timestep_fs},
                               trajectory_id=traj)
            return [f for f in frames if f.step is None or f.step % every == 0 or f.status != FrameStatus.ok] or frames

        return self.trajectory(s, "md", md, compute)

    def isolated_atom(self, element: str, box: float = ISOLATED_ATOM_BOX):
        """Spin-polarized free atom (Hund's-rule initial moment) in a symmetry-breaking box."""
        s = super().isolated_atom(element, box)
        s.add_site_property("magmom", [hund_magmom(element)])
        return s


def _gamma_only():
    from pymatgen.io.vasp import Kpoints

    return Kpoints.gamma_automatic((1, 1, 1))


def _check_vasp_spec(spec: str) -> None:
    set_name = spec.partition(":")[2]
    if set_name not in INPUT_SETS:
        from mlipflow.errors import UserError

        raise UserError(f"unknown VASP input set {set_name!r}", f"use one of: {', '.join('vasp:' + s for s in INPUT_SETS)}")


def vasp_labeler(spec: str, **overrides: Any) -> VaspLabeler:
    """Registry factory for ``vasp:<input set>``."""
    _check_vasp_spec(spec)
    return VaspLabeler(spec.partition(":")[2], **overrides)


vasp_labeler.check = _check_vasp_spec  # type: ignore[attr-defined]
