"""jobflow makers for ACE: fit (pacemaker), explore (ASE or LAMMPS, γ-tracked), select (MaxVol).

Thin wrappers around :mod:`mlipflow.engines.pacemaker`, :mod:`mlipflow.engines.ase_md`,
:mod:`mlipflow.engines.lammps` and :mod:`mlipflow.engines.selection`; large fields go to the
job store's ``data`` blob store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from jobflow import Maker, job

from mlipflow.engines.pacemaker import AceFitSettings
from mlipflow.errors import UserError
from mlipflow.schemas.md import MDProtocol, MDRunDoc
from mlipflow.schemas.potentials import PotentialDoc


def _scratch(*parts: str) -> Path:
    from mlipflow.settings import get_settings

    p = Path(get_settings().scratch_dir).expanduser().joinpath(*parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


def materialize_potential(potential: PotentialDoc | dict | str | Path | Sequence[str],
                          directory: str | Path | None = None) -> tuple[str, str | None]:
    """(yaml path, asi path or None) of a potential given as a PotentialDoc (files as blobs or
    paths on disk), a dict of one, a .yaml path, or a (yaml, asi) pair."""
    from mlipflow.engines.pacemaker import write_potential_files

    if isinstance(potential, (str, Path)):
        y = Path(potential)
        asi = y.with_suffix(".asi")
        return str(y), str(asi) if asi.exists() else None
    if isinstance(potential, (list, tuple)):
        return str(potential[0]), (str(potential[1]) if len(potential) > 1 and potential[1] else None)
    doc = potential.model_dump() if isinstance(potential, PotentialDoc) else dict(potential)
    files = doc.get("files") or {}
    if files:
        key = doc.get("input_hash") or hashlib.sha256(str(sorted(files)).encode()).hexdigest()
        directory = Path(directory) if directory else _scratch("potentials", str(key)[:16])
        written = write_potential_files(doc, directory)
        yaml = next((p for n, p in written.items() if n.endswith(".yaml") and n != "input.yaml"), None)
        asi = next((p for n, p in written.items() if n.endswith(".asi")), None)
        if yaml:
            return yaml, asi
    paths = doc.get("paths") or {}
    if paths.get("yaml") and Path(paths["yaml"]).exists():
        asi = paths.get("asi")
        return paths["yaml"], asi if asi and Path(asi).exists() else None
    raise UserError("the potential document carries neither files nor existing paths",
                    "pass the PotentialDoc produced by AceFitMaker (with its blobs loaded)")


def to_atoms(structure: Any):
    """ase.Atoms from Atoms, a pymatgen Structure or its dict."""
    from ase import Atoms

    if isinstance(structure, Atoms):
        return structure.copy()
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    if isinstance(structure, dict):
        structure = Structure.from_dict(structure)
    at = AseAtomsAdaptor.get_atoms(structure)
    at.calc = None
    for key in list(at.arrays):
        if key not in ("numbers", "positions"):
            del at.arrays[key]
    return at


@dataclass
class AceFitMaker(Maker):
    """Fit an ACE potential with pacemaker; returns a :class:`PotentialDoc` (files as blobs).

    The work directory defaults to ``<scratch>/ace_fits/<input hash>``, so rerunning the same
    data + settings (+ warm start) reuses the finished fit instead of refitting.
    """

    name: str = "ace fit"
    settings: AceFitSettings = field(default_factory=AceFitSettings)
    workdir: str | None = None
    potential_name: str = ""
    progress: bool = True

    @job(data=["files"])
    def make(self, train_pickle: str, test_pickle: str | None = None,
             warm_start: PotentialDoc | dict | str | None = None, dataset: str | None = None) -> PotentialDoc:
        from mlipflow.engines.pacemaker import fit_ace, fit_input_hash, potential_doc

        settings = self.settings if isinstance(self.settings, AceFitSettings) else AceFitSettings(**self.settings)
        warm_path, warm_hash = None, None
        if warm_start is not None:
            warm_path, _ = materialize_potential(warm_start)
            warm_hash = warm_start.get("input_hash") if isinstance(warm_start, dict) else getattr(
                warm_start, "input_hash", None)
        key = fit_input_hash(train_pickle, test_pickle, settings, warm_path)
        workdir = Path(self.workdir) if self.workdir else _scratch("ace_fits", key[:16])
        result = fit_ace(train_pickle, test_pickle, settings, workdir, warm_start=warm_path, progress=self.progress)
        return potential_doc(result, name=self.potential_name, dataset=dataset, warm_start_from=warm_hash)


@dataclass
class AceExploreMaker(Maker):
    """γ-tracked exploration MD of one structure: embedded ASE (PyACECalculator + active set) or
    a LAMMPS deck (``pair_style pace/extrapolation``) run through the configured LAMMPS command."""

    name: str = "ace explore"
    protocol: MDProtocol = field(default_factory=MDProtocol)
    engine: Literal["ase", "lammps"] = "ase"
    lammps_cmd: str | None = None
    kokkos: bool = False
    progress: bool = True

    @job(data=["trajectory"])
    def make(self, structure: Any, potential: PotentialDoc | dict | str, run_id: str | None = None) -> MDRunDoc:
        import uuid

        from mlipflow.schemas.base import content_hash

        protocol = self.protocol if isinstance(self.protocol, MDProtocol) else MDProtocol(**self.protocol)
        atoms = to_atoms(structure)
        yaml, asi = materialize_potential(potential)
        pot_id = (potential.get("input_hash") if isinstance(potential, dict)
                  else getattr(potential, "input_hash", None)) or str(yaml)
        run_id = run_id or uuid.uuid4().hex[:12]
        if self.engine == "ase":
            from pyace import PyACECalculator

            from mlipflow.engines.ase_md import run_ase_md

            calc = PyACECalculator(yaml)
            if asi:
                calc.set_active_set(asi)
            res = run_ase_md(atoms, calc, protocol, progress=self.progress, run_id=run_id)
        else:
            from mlipflow.engines.lammps import run_ace_exploration

            wd = _scratch("explore", content_hash(pot_id, atoms.get_positions(), protocol)[:16])
            res = run_ace_exploration(atoms, yaml, asi, protocol, wd, cmd=self.lammps_cmd, kokkos=self.kokkos,
                                      progress=self.progress)
            res.run_id = run_id
            for fr in res.frames:
                fr.info["run"] = run_id
        return res.to_doc(potential=pot_id)


@dataclass
class AceSelectMaker(Maker):
    """Pool the frames of exploration runs and choose up to ``max_structures`` by MaxVol.

    Returns a dict: ``selected`` (pymatgen Structure dicts, blob), ``records`` (one
    CandidateRecord per candidate), counts, ``gamma_stats`` and ``terminated_runs``.
    """

    name: str = "ace select"
    max_structures: int = 500
    gamma_tolerance: float = 1.01
    add_final: bool = False
    candidate_reasons: tuple[str, ...] = ("gamma", "gamma_hi", "temperature", "final")

    @job(data=["selected"])
    def make(self, runs: Sequence[MDRunDoc | dict], potential: PotentialDoc | dict | str) -> dict[str, Any]:
        result = select_from_runs(runs, potential, self.max_structures, self.gamma_tolerance, self.add_final,
                                  self.candidate_reasons)
        return result


def select_from_runs(runs: Sequence[MDRunDoc | dict], potential, max_structures: int = 500,
                     gamma_tolerance: float = 1.01, add_final: bool = False,
                     candidate_reasons: Sequence[str] = ("gamma", "gamma_hi", "temperature", "final")
                     ) -> dict[str, Any]:
    """Pure function behind :class:`AceSelectMaker` (usable without jobflow)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from mlipflow.engines.ase_md import frames_from_dict
    from mlipflow.engines.selection import select_maxvol

    yaml, asi = materialize_potential(potential)
    if not asi:
        raise UserError("selection needs the potential's active set (.asi)", "fit with compute_active_set=True")
    candidates, terminated = [], []
    for run in runs:
        d = run.model_dump() if isinstance(run, MDRunDoc) else dict(run)
        run_tag = next((t[4:] for t in d.get("tags", []) if t.startswith("run:")), None)
        if d.get("terminated"):
            terminated.append(run_tag or "")
        for fr in frames_from_dict(d.get("trajectory")):
            if fr.info.get("reason", "gamma") in candidate_reasons:
                fr.info.setdefault("run", run_tag or "")
                candidates.append(fr)
    forced = [i for i, f in enumerate(candidates) if add_final and f.info.get("reason") == "final"]
    sel = select_maxvol(candidates, yaml, asi, max_structures=max_structures, gamma_tolerance=gamma_tolerance,
                        force_include=forced)
    return {
        "selected": [AseAtomsAdaptor.get_structure(candidates[i]).as_dict() for i in sel.selected_indices],
        "selected_indices": sel.selected_indices,
        "records": [r.model_dump() for r in sel.records],
        "n_candidates": sel.n_candidates,
        "n_selected": sel.n_selected,
        "gamma_stats": sel.gamma_stats(),
        "terminated_runs": terminated,
        "time_s": sel.time_s,
    }
