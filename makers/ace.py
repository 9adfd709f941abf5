"""jobflow makers for ACE: fit (pacemaker) and select (MaxVol D-optimality).

Thin, configured wrappers around :mod:`mlipflow.engines.pacemaker` and
:mod:`mlipflow.engines.selection`. Potentials travel as :class:`~mlipflow.schemas.PotentialRef`;
their files are written on each node by :func:`mlipflow.engines.potentials.materialize`. Fits are
cached in :mod:`mlipflow.cache` by data content, settings and warm start. Exploration MD of any
potential kind is :class:`mlipflow.makers.md.MDMaker`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

from jobflow import Maker, job

from mlipflow.engines.pacemaker import AceFitSettings
from mlipflow.errors import UserError
from mlipflow.schemas import DatasetDoc, DatasetRef, MDRunDoc, PotentialDoc, PotentialRef
from mlipflow.uids import current_job_uuid

log = logging.getLogger(__name__)

FIT_PRESETS = ("paper", "mini", "tiny")


def fit_settings(fit: dict[str, Any] | AceFitSettings | None) -> AceFitSettings:
    """AceFitSettings from a campaign's ``fit`` mapping (``preset``: paper|mini|tiny plus overrides)."""
    if isinstance(fit, AceFitSettings):
        return fit
    fit = dict(fit or {})
    preset = fit.pop("preset", "paper")
    if preset not in FIT_PRESETS:
        raise UserError(f"unknown fit preset {preset!r}", f"use one of {', '.join(FIT_PRESETS)}")
    return getattr(AceFitSettings, preset)(**fit)


def export_split(dataset: DatasetRef, directory: Path) -> tuple[Path, Path | None, DatasetDoc]:
    """Write a stored dataset version's train/test splits as pacemaker pickles into ``directory``."""
    from mlipflow.engines.dataset_io import export_pacemaker
    from mlipflow.engines.repository import load_dataset

    doc, frames = load_dataset(dataset.name, dataset.version)
    by_id = {f.frame_id: f for f in frames}
    refs = doc.reference_energies or None
    train = export_pacemaker([by_id[i] for i in doc.train_ids if i in by_id], directory / "train.pkl.gz", refs)
    test = (export_pacemaker([by_id[i] for i in doc.test_ids if i in by_id], directory / "test.pkl.gz", refs)
            if doc.test_ids else None)
    return train, test, doc



@dataclass
class AceFitMaker(Maker):
    """Fit an ACE potential with pacemaker; returns a :class:`PotentialDoc` (files as blobs) whose
    ``ref`` later jobs use.

    ``dataset`` is a stored dataset version (its train/test splits are exported) or a pacemaker
    pickle path (with ``test_pickle``). With ``warm_start`` the fit continues from that potential;
    when the dataset is the one the warm-start potential was fitted on (no new labels), no fit runs
    and the warm-start potential is returned (``reused_from`` set). The warm-start potential's
    errors on the new test set are recorded too (``warm_start_test_metrics``: the previous
    potential on the same test set, for the improvement rule).
    The work directory is the cache entry of the fit's input hash (or ``workdir``).
    """

    need: ClassVar[str] = "gpu"
    code: ClassVar[str] = "pacemaker"
    name: str = "fit"
    settings: AceFitSettings = field(default_factory=AceFitSettings)
    workdir: str | None = None
    potential_name: str = ""
    progress: bool | None = None  # None: bars on an interactive terminal only

    @job(data=["files"])
    def make(self, dataset: DatasetRef | DatasetDoc | dict | str, warm_start: PotentialRef | None = None,
             test_pickle: str | None = None, campaign: str | None = None) -> PotentialDoc:
        import tempfile

        from mlipflow import cache
        from mlipflow.engines.pacemaker import fit_ace, fit_input_hash, potential_doc
        from mlipflow.engines.potentials import as_doc, materialize

        settings = self.settings if isinstance(self.settings, AceFitSettings) else AceFitSettings(**self.settings)
        warm = PotentialRef.coerce(warm_start) if warm_start is not None else None
        ds_ref = None if isinstance(dataset, (str, Path)) else DatasetRef.coerce(dataset)
        if warm is not None and ds_ref is not None and warm.uuid:
            prev = as_doc(warm_start)
            if prev.dataset is not None and (prev.dataset.name, prev.dataset.version) == (ds_ref.name, ds_ref.version):
                log.info("fit: no new labels since potential %s; keeping it", warm.label)
                return prev.model_copy(update={"reused_from": warm, "ref": warm})
        with tempfile.TemporaryDirectory(prefix="mlipflow-export-") as tmp:
            if ds_ref is not None:
                train, test, _ = export_split(ds_ref, Path(tmp))
            else:
                train, test = Path(dataset), Path(test_pickle) if test_pickle else None
            warm_files = materialize(warm_start) if warm is not None else None
            warm_yaml = warm_files.path("model") if warm_files else None
            key = fit_input_hash(train, test, settings, warm_yaml)
            workdir = Path(self.workdir) if self.workdir else cache.entry_path("ace-fit", [key])
            result = fit_ace(train, test, settings, workdir, warm_start=warm_yaml, progress=self.progress)
            warm_test = None
            if warm_files is not None and test is not None:
                from mlipflow.engines.ace_eval import evaluate_potential

                warm_test = evaluate_potential(warm_files.ref, str(test)).metrics
        name = self.potential_name or (f"ace-{ds_ref.name}-v{ds_ref.version}" if ds_ref else "")
        doc = potential_doc(result, name=name, dataset=ds_ref, warm_start_from=warm)
        doc.warm_start_test_metrics = warm_test
        doc.campaign = campaign
        doc.ref = PotentialRef(kind="ace", name=doc.name, input_hash=doc.input_hash, uuid=current_job_uuid(),
                               elements=doc.elements)
        return doc


@dataclass
class MaxVolSelector:
    """D-optimality (MaxVol) selection of exploration frames against the potential's active set."""

    max_structures: int = 500
    gamma_tolerance: float = 1.01
    add_final: bool = False
    candidate_reasons: tuple[str, ...] = ("gamma", "gamma_hi", "temperature", "final")
    #: frames whose closest pair is below this fraction of the covalent-radii sum are not candidates
    #: (collapsed geometries of a runaway exploration; the reference cannot label them). None: keep all.
    min_contact: float | None = 0.5
    #: candidates with max γ above this never enter MaxVol (None: no cap)
    gamma_cap: float | None = None
    #: repeat MaxVol on the frames not yet chosen until this many are chosen (None: one pass)
    fill_to: int | None = None

    def select(self, runs: Sequence[MDRunDoc | dict], potential: PotentialRef | PotentialDoc | dict) -> dict[str, Any]:
        """Pool the candidates of ``runs`` and choose up to ``max_structures`` (pure: no jobflow).

        Returns ``selected`` (pymatgen Structure dicts), ``selected_indices``, ``records`` (one
        CandidateRecord per candidate), ``n_candidates``, ``n_selected``, ``gamma_stats``,
        ``terminated_runs`` and ``time_s``."""
        from mlipflow.engines.ase_md import frames_from_dict

        candidates, terminated = [], []
        for run in runs:
            d = MDRunDoc.model_validate(_plain(run)) if not isinstance(run, MDRunDoc) else run
            if d.terminated:
                terminated.append(d.run_id or "")
            for fr in frames_from_dict(d.trajectory):
                if fr.info.get("reason", "gamma") in self.candidate_reasons:
                    fr.info.setdefault("run", d.run_id or "")
                    candidates.append(fr)
        return {**self.select_frames(candidates, potential), "terminated_runs": terminated}

    def select_frames(self, candidates: Sequence, potential: PotentialRef | PotentialDoc | dict) -> dict[str, Any]:
        """Choose from a pool of ASE frames (exploration candidates or any labelled pool): the keys
        of :meth:`select` without ``terminated_runs``."""
        from pymatgen.io.ase import AseAtomsAdaptor

        from mlipflow.engines.potentials import materialize
        from mlipflow.engines.selection import select_maxvol

        pot = materialize(potential)
        pot.kind.require_uncertainty(pot.files)
        candidates = list(candidates)
        forced = [i for i, f in enumerate(candidates) if self.add_final and f.info.get("reason") == "final"]
        sel = select_maxvol(candidates, str(pot.path("model")), str(pot.path("active_set")),
                            max_structures=self.max_structures, gamma_tolerance=self.gamma_tolerance,
                            force_include=forced, min_contact=self.min_contact, gamma_cap=self.gamma_cap,
                            fill_to=self.fill_to)
        return {
            "selected": [AseAtomsAdaptor.get_structure(candidates[i]).as_dict() for i in sel.selected_indices],
            "selected_indices": sel.selected_indices,
            "records": [r.model_dump() for r in sel.records],
            "n_candidates": sel.n_candidates,
            "n_rejected_geometry": len(sel.collapsed_indices),
            "n_selected": sel.n_selected,
            "gamma_stats": sel.gamma_stats(),
            "time_s": sel.time_s,
        }


@dataclass
class AceSelectMaker(Maker):
    """The :class:`MaxVolSelector` as a job (returns its dict; ``selected`` goes to the blob store)."""

    name: str = "ace select"
    selector: MaxVolSelector = field(default_factory=MaxVolSelector)

    @job(data=["selected"])
    def make(self, runs: Sequence[MDRunDoc | dict], potential: PotentialRef | PotentialDoc | dict) -> dict[str, Any]:
        return self.selector.select(runs, potential)


def _plain(obj: Any) -> dict:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return {k: v for k, v in dict(obj).items() if not k.startswith("@")}
