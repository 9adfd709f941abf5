"""jobflow makers for DeePMD-kit: ensemble fit (train / fine-tune) and model-deviation selection.

Thin, configured wrappers around :mod:`mlipflow.engines.deepmd`:

* :class:`DPFitMaker` — ``make(dataset, warm_start=None)`` returns a Flow: one training job per
  ensemble member (:class:`DPTrainMaker`, kind of node ``gpu``; each a :mod:`mlipflow.cache`
  entry keyed by data, settings, seed and base checkpoint), then a gather job (``light``) whose
  output — the Flow's output — is ONE :class:`~mlipflow.schemas.PotentialDoc` (``kind="dp"``) for
  the ensemble: frozen models ``model``, ``model_1``, ... as blobs, each member's checkpoint
  (``checkpoint``, ``checkpoint_1``, ...) for later fine-tuning, learning curves, and ``ref``
  pointing at the gather job.
* :class:`DeviationSelector` — DP-GEN's selection: model deviation of exploration frames through
  DeePMD-kit's API, trust levels, the candidates capped (optionally thinned for diversity).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
from jobflow import Flow, Maker, job

from mlipflow.engines.deepmd import DPSettings, DPTrainingDoc
from mlipflow.errors import UserError
from mlipflow.schemas import DatasetDoc, DatasetRef, MDRunDoc, PotentialDoc, PotentialRef
from mlipflow.schemas.base import content_hash
from mlipflow.uids import current_job_uuid
from mlipflow.workers import needs

log = logging.getLogger(__name__)


def _plain(obj: Any) -> dict:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return {k: v for k, v in dict(obj).items() if not k.startswith("@")}


def _settings(s: DPSettings | dict | None) -> DPSettings:
    if isinstance(s, DPSettings):
        return s
    return DPSettings.model_validate(_plain(s)) if s else DPSettings()



def export_dp_split(dataset: DatasetRef, directory: Path, type_map: Sequence[str] | None = None
                    ) -> tuple[list[Path], list[Path], DatasetDoc, list[str]]:
    """A stored dataset version's train/test splits as DeePMD npy systems in ``directory``; the
    type map is the dataset's sorted elements unless given."""
    from mlipflow.engines.deepmd import export_frames
    from mlipflow.engines.repository import load_dataset
    from mlipflow.schemas import FrameStatus

    doc, frames = load_dataset(dataset.name, dataset.version)
    ok = {f.frame_id: f for f in frames if f.status == FrameStatus.ok}
    train = [ok[i] for i in doc.train_ids if i in ok]
    test = [ok[i] for i in doc.test_ids if i in ok]
    if not train:
        raise UserError(f"dataset {doc.name}:{doc.version} has no usable training frames "
                        f"({len(frames)} frames, {len(ok)} labelled ok)",
                        "label structures into it first (`mlipflow label ... --dataset NAME`)")
    tmap = list(type_map) if type_map else sorted({el for f in train + test for el in f.elements})
    train_dirs = export_frames(train, directory / "train", tmap)
    test_dirs = export_frames(test, directory / "test", tmap) if test else []
    return train_dirs, test_dirs, doc, tmap


@dataclass
class DPTrainMaker(Maker):
    """One ensemble member: export the dataset's splits, train (scratch / fine-tune), freeze,
    test; returns a :class:`~mlipflow.engines.deepmd.DPTrainingDoc` (files as blobs).

    A failed training does not raise here: the document comes back with ``status="failed"``, the
    error, the parsed lcurve, the log's tail and the ``lcurve.out``/``train.log`` files, so the
    stored job output keeps them; the gather job then fails with the reason."""

    need: ClassVar[str] = "gpu"
    code: ClassVar[str] = "deepmd"
    name: str = "dp train"
    settings: DPSettings = field(default_factory=DPSettings)
    finetune: str | None = None
    model_branch: str | None = None
    workdir: str | None = None
    progress: bool | None = None  # None: bars on an interactive terminal only

    @job(data=["files"])
    def make(self, dataset: DatasetRef | DatasetDoc | dict, member: int = 0, seed: int = 0,
             warm_start: PotentialRef | dict | None = None, campaign: str | None = None,
             base: PotentialRef | dict | None = None) -> DPTrainingDoc:
        from mlipflow.engines.deepmd import DPTrainingError, _blob, fit_dp_member, test_dp
        from mlipflow.engines.potentials import as_doc, materialize

        settings = _settings(self.settings)
        ds_ref = DatasetRef.coerce(dataset)
        base_ref = base
        warm = PotentialRef.coerce(warm_start) if warm_start is not None else None
        if warm is not None and warm.uuid:
            prev = as_doc(warm_start)
            if prev.dataset is not None and (prev.dataset.name, prev.dataset.version) == (ds_ref.name, ds_ref.version):
                log.info("dp member %d: no new labels since potential %s; not training", member, warm.label)
                return DPTrainingDoc(status="skipped", member=member, seed=seed, campaign=campaign)
        with tempfile.TemporaryDirectory(prefix="mlipflow-dp-export-") as tmp:
            train, test, _, tmap = export_dp_split(ds_ref, Path(tmp), settings.type_map)
            base, branch, warm_pot = None, self.model_branch, None
            if warm is not None:
                warm_pot = materialize(warm_start)
                ckpts = sorted(r for r in warm_pot.files if r == "checkpoint" or r.startswith("checkpoint_"))
                if not ckpts:
                    raise UserError(f"the warm-start potential {warm.label} has no training checkpoint (.pt) to fine-tune",
                                    "warm-start from a potential fitted by DPFitMaker (it stores each member's "
                                    "checkpoint), or give the base checkpoint as `finetune` instead")
                role = f"checkpoint_{member}" if member else "checkpoint"
                base = warm_pot.path(role if role in warm_pot.files else ckpts[member % len(ckpts)])
                branch = None
            elif base_ref is not None:  # a stored base (DPPretrainMaker's output): its checkpoint on this node
                base = materialize(base_ref).path("checkpoint")
            elif self.finetune:
                base = Path(self.finetune).expanduser()
            workdir = Path(self.workdir) / f"member_{member}" if self.workdir else None
            try:
                doc = fit_dp_member(settings, train, test, workdir, seed=seed, member=member, finetune=base,
                                    model_branch=branch, type_map=tmap, progress=self.progress)
            except DPTrainingError as exc:
                failed = exc.doc.model_copy(update={"member": member, "seed": seed, "error": str(exc),
                                                    "campaign": campaign})
                wd = Path(failed.workdir)
                for p in (wd / "lcurve.out", wd / "train.log", wd / "input.json"):
                    if p.is_file():
                        name, content = _blob(p)
                        failed.files[name] = content
                log.error("dp member %d failed: %s", member, exc)
                return failed
            if warm_pot is not None and member == 0 and test:
                with tempfile.TemporaryDirectory(prefix="mlipflow-dp-warm-") as wtmp:
                    doc.warm_start_test_metrics = test_dp(warm_pot.path("model"), test, wtmp, name="warm_start").metrics
        doc.campaign = campaign
        return doc


_RENAME = {"model.pth": ("model", ".pth"), "model.ckpt.pt": ("checkpoint", ".pt"), "lcurve.out": ("lcurve", ".out")}


def _cutoff(config: dict[str, Any], workdir: str) -> float | None:
    import json

    out = Path(workdir) / "out.json"  # DeePMD-kit's effective input (the base's descriptor when fine-tuned)
    if out.is_file():
        try:
            config = json.loads(out.read_text())
        except ValueError:
            pass
    desc = config.get("model", {}).get("descriptor", {})
    if not isinstance(desc, dict):
        return None
    rc = desc.get("rcut") or (desc.get("repinit") or {}).get("rcut")
    return float(rc) if rc else None


@needs("light")
@job(data=["files"])
def gather_dp_ensemble(members: list, dataset: DatasetRef | DatasetDoc | dict, warm_start: PotentialRef | dict | None = None,
                       name: str = "", campaign: str | None = None) -> PotentialDoc:
    """The ensemble's members as ONE :class:`PotentialDoc` (``kind="dp"``); its ``ref`` is this job."""
    from mlipflow.engines.potentials import as_doc

    docs = sorted((m if isinstance(m, DPTrainingDoc) else DPTrainingDoc.model_validate(_plain(m)) for m in members),
                  key=lambda d: d.member)
    ds_ref = DatasetRef.coerce(dataset)
    warm = PotentialRef.coerce(warm_start) if warm_start is not None else None
    failed = [d for d in docs if d.status == "failed"]
    if failed:
        lines = "; ".join(f"member {d.member} (seed {d.seed}): {(d.error or '').splitlines()[0]}" for d in failed)
        raise UserError(f"DeePMD training failed for {len(failed)} of {len(docs)} ensemble members: {lines}. "
                        "Their learning curves and logs are kept in the members' stored documents (status 'failed') "
                        f"and in {', '.join(d.workdir for d in failed)}",
                        failed[0].error.split("fix:")[-1].strip() if failed[0].error and "fix:" in failed[0].error
                        else "see the training log")
    if all(d.status == "skipped" for d in docs):
        prev = as_doc(warm_start)
        return prev.model_copy(update={"reused_from": warm, "ref": warm, "campaign": campaign})
    files: dict[str, str] = {}
    roles: dict[str, str] = {}
    paths: dict[str, str] = {}
    for d in docs:
        sfx = f"_{d.member}" if d.member else ""
        for fname, content in d.files.items():
            b64 = ".b64" if fname.endswith(".b64") else ""
            plain = fname[: -len(b64)] if b64 else fname
            if plain in _RENAME:
                stem, ext = _RENAME[plain]
                role, new = f"{stem}{sfx}", f"{stem}{sfx}{ext}"
            elif plain == "input.json" and d.member == 0:
                role, new = "input", "input.json"
            else:
                continue
            files[new + b64] = content
            roles[role] = new + b64
            src = Path(d.workdir) / plain
            if src.is_file():
                paths[role] = str(src)
    m0 = docs[0]
    plots = dict(m0.plots)
    for d in docs[1:]:
        if d.plots.get("lcurve"):
            plots[f"lcurve_{d.member}"] = d.plots["lcurve"]
    doc = PotentialDoc(
        kind="dp", name=name or f"dp-{ds_ref.name}-v{ds_ref.version}", elements=list(m0.type_map),
        cutoff=_cutoff(m0.input, m0.workdir), dataset=ds_ref, fit_settings=m0.input,
        train_metrics=m0.train_metrics, test_metrics=m0.test_metrics, files=files, roles=roles, paths=paths,
        warm_start_from=warm, warm_start_test_metrics=m0.warm_start_test_metrics,
        fit_time_s=sum(d.train_time_s or 0.0 for d in docs), plots=plots,
        input_hash=content_hash("dp-ensemble", [d.input_hash for d in docs]), campaign=campaign,
        tags=[f"ensemble:{len(docs)}"] + ([f"branch:{m0.model_branch}"] if m0.model_branch else []),
    )
    doc.ref = PotentialRef(kind="dp", name=doc.name, input_hash=doc.input_hash, uuid=current_job_uuid(),
                           elements=doc.elements)
    log.info("DeePMD ensemble of %d: test force RMSE %s eV/Å (member 0)", len(docs), doc.test_metrics.force_rmse)
    return doc


@dataclass
class DPFitMaker(Maker):
    """Train (or fine-tune) an ensemble of ``ensemble`` DeePMD models; ``make`` returns a Flow whose
    output is one :class:`PotentialDoc` (``kind="dp"``) holding every member.

    Members differ by seed (``seed + i``). Starting point of each member, first that applies:
    ``warm_start`` (a DP potential fitted before: member i fine-tunes from its member i's
    checkpoint with ``--finetune``), else ``base`` (a stored base, e.g. :class:`DPPretrainMaker`'s
    output: its ``checkpoint`` file), else ``finetune`` (a pretrained ``.pt`` base given by path),
    each with ``--model-branch model_branch``, else from scratch. When ``warm_start`` was fitted on exactly
    this dataset version no training runs and the warm-start document comes back with
    ``reused_from`` set. ``warm_start_test_metrics``: the warm-start model on this test split.
    Each member's work directory is the cache entry of its inputs (or ``workdir/member_<i>``).
    """

    need: ClassVar[str] = "gpu"
    code: ClassVar[str] = "deepmd"
    name: str = "dp fit"
    settings: DPSettings = field(default_factory=DPSettings)
    ensemble: int = 1
    finetune: str | None = None
    model_branch: str | None = None
    seed: int = 0
    workdir: str | None = None
    potential_name: str = ""
    progress: bool | None = None  # None: bars on an interactive terminal only

    def make(self, dataset: DatasetRef | DatasetDoc | dict, warm_start: PotentialRef | None = None,
             campaign: str | None = None, base: PotentialRef | None = None) -> Flow:
        if int(self.ensemble) < 1:
            raise UserError(f"ensemble must be at least 1, got {self.ensemble}", "train one model or more")
        if self.finetune and Path(self.finetune).suffix == ".pth":
            raise UserError(f"{Path(self.finetune).name} is a frozen model (.pth); fine-tuning needs the training "
                            "checkpoint (.pt)", "give the .pt checkpoint (e.g. DPA-2.3.1-v3.0.0rc0.pt)")
        if isinstance(dataset, (DatasetDoc, dict)):
            dataset = DatasetRef.coerce(dataset)
        trainer = DPTrainMaker(name=f"{self.name} member", settings=_settings(self.settings), finetune=self.finetune,
                               model_branch=self.model_branch, workdir=self.workdir, progress=self.progress)
        jobs = []
        for i in range(int(self.ensemble)):
            j = trainer.make(dataset, member=i, seed=int(self.seed) + i, warm_start=warm_start, campaign=campaign,
                             base=base)
            j.name = f"{self.name} member {i}"
            jobs.append(j)
        gather = gather_dp_ensemble([j.output for j in jobs], dataset, warm_start=warm_start,
                                    name=self.potential_name, campaign=campaign)
        gather.name = f"{self.name} gather"
        return Flow([*jobs, gather], output=gather.output, name=self.name)


@dataclass
class DPPretrainMaker(Maker):
    """The local multi-task DPA-2 base as a job (what `mlipflow potential pretrain` makes): cells of
    ``profile`` labelled with ``labeler`` (default CHGNet for lifepo4), ``steps`` training steps.

    Returns a :class:`PotentialDoc` (``kind="dp"``, tag ``base``) whose ``checkpoint`` file is the
    base (pass the document's ``ref`` as ``DPFitMaker.make(..., base=...)``) and whose ``model`` is
    the frozen ``branch`` head (zero-shot comparisons). A :mod:`mlipflow.cache` entry of its inputs."""

    need: ClassVar[str] = "gpu"
    code: ClassVar[str] = "deepmd"
    name: str = "dp pretrain"
    profile: str = "lifepo4"
    labeler: str | None = None
    structures: int = 24
    steps: int = 2000
    seed: int = 0
    branch: str | None = None

    @job(data=["files"])
    def make(self, campaign: str | None = None) -> PotentialDoc:
        from mlipflow import cache
        from mlipflow.engines.deepmd import PRETRAIN_PROFILES, _blob, freeze_dp, train_local_base

        if self.profile not in PRETRAIN_PROFILES:
            raise UserError(f"unknown pretrain profile {self.profile!r}", f"use one of {', '.join(PRETRAIN_PROFILES)}")
        inputs = [self.profile, self.labeler, int(self.structures), int(self.steps), int(self.seed), self.branch]

        def build(d: Path) -> DPTrainingDoc:
            doc, _ = train_local_base(d / "train", d / "base.pt", self.profile, self.labeler, self.structures,
                                      self.steps, self.seed)
            branch = self.branch or doc.heads[0]
            if branch not in doc.heads:
                raise UserError(f"the base has no branch {branch!r} (its heads: {', '.join(doc.heads)})",
                                "choose one of those heads")
            freeze_dp(d / "base.pt", d / "model.pth", head=branch)
            (d / "pretrain.json").write_text(doc.model_dump_json())
            return doc

        def load(d: Path) -> DPTrainingDoc:
            return DPTrainingDoc.model_validate_json((d / "pretrain.json").read_text())

        doc = cache.cached_directory("dp-pretrain", inputs, build, load)
        d = cache.entry_path("dp-pretrain", inputs)
        files, roles = {}, {}
        for role, fname in (("checkpoint", "base.pt"), ("model", "model.pth")):
            name, content = _blob(d / fname, "checkpoint.pt" if role == "checkpoint" else None)
            files[name] = content
            roles[role] = name
        branch = self.branch or doc.heads[0]
        out = PotentialDoc(kind="dp", name=f"dp-base-{self.profile}", elements=list(doc.type_map), files=files,
                           roles=roles, fit_settings=doc.input, fit_time_s=doc.train_time_s,
                           plots={k: v for k, v in doc.plots.items() if v},
                           tags=["base", f"branch:{branch}", *(f"head:{h}" for h in doc.heads)],
                           input_hash=content_hash("dp-pretrain", inputs), campaign=campaign)
        out.ref = PotentialRef(kind="dp", name=out.name, input_hash=out.input_hash, uuid=current_job_uuid(),
                               elements=out.elements)
        return out


# ----------------------------------------------------------------------------- selection


def _fingerprints(dps, frames) -> np.ndarray:
    """Per frame: the mean DeePMD descriptor over atoms (model 0), for diversity thinning."""
    tmap = dps[0].get_type_map()
    out: list[np.ndarray | None] = [None] * len(frames)
    groups: dict[tuple, list[int]] = {}
    for i, at in enumerate(frames):
        groups.setdefault((tuple(at.get_chemical_symbols()), bool(np.all(at.pbc))), []).append(i)
    for (symbols, periodic), idx in groups.items():
        atype = np.array([tmap.index(s) for s in symbols], dtype=int)
        coord = np.array([frames[i].get_positions() for i in idx]).reshape(len(idx), -1)
        box = np.array([np.asarray(frames[i].cell).reshape(-1) for i in idx]) if periodic else None
        desc = np.asarray(dps[0].eval_descriptor(coord, box, atype))
        desc = desc.reshape(len(idx), len(symbols), -1).mean(axis=1)
        for k, i in enumerate(idx):
            out[i] = desc[k]
    return np.array(out)


def farthest_point_order(x: np.ndarray, start: int, n: int) -> list[int]:
    """Greedy farthest-point sampling of ``n`` rows of ``x`` starting at row ``start``."""
    chosen = [start]
    d = np.linalg.norm(x - x[start], axis=1)
    while len(chosen) < min(n, len(x)):
        nxt = int(np.argmax(d))
        if d[nxt] <= 0:
            break
        chosen.append(nxt)
        d = np.minimum(d, np.linalg.norm(x - x[nxt], axis=1))
    return chosen


@dataclass
class DeviationSelector:
    """DP-GEN's selection of exploration frames by the ensemble's model deviation.

    Every trajectory frame of the runs gets its max force deviation (DeePMD-kit's
    ``calc_model_devi``) and a trust level: accurate < ``f_trust_lo`` ≤ candidate < ``f_trust_hi``
    ≤ failed. Up to ``max_structures`` candidates are selected, highest deviation first, or with
    ``thin`` by farthest-point sampling of the frames' mean descriptors (diverse frames first,
    starting from the highest deviation).
    """

    f_trust_lo: float = 0.05
    f_trust_hi: float = 0.15
    max_structures: int = 500
    thin: bool = False

    def select(self, runs: Sequence[MDRunDoc | dict], potential: PotentialRef | PotentialDoc | dict) -> dict[str, Any]:
        """Pool the frames of ``runs`` and choose the candidates (pure: no jobflow).

        Returns the keys of :meth:`mlipflow.makers.ace.MaxVolSelector.select` — ``selected``
        (pymatgen Structure dicts), ``selected_indices``, ``records`` (one CandidateRecord per
        frame; ``max_gamma`` holds its max force deviation), ``n_candidates`` (frames considered),
        ``n_selected``, ``gamma_stats``, ``terminated_runs``, ``time_s`` — plus ``ratios``
        ({accurate, candidate, failed}): fractions over every deviation the explorations measured
        (their ``thermo.max_gamma`` column; runs without one count their trajectory frames)."""
        from mlipflow.engines.ase_md import frames_from_dict
        from mlipflow.engines.deepmd import classify, trust_ratios

        frames, terminated, measured, sizes = [], [], [], []
        for run in runs:
            d = MDRunDoc.model_validate(_plain(run)) if not isinstance(run, MDRunDoc) else run
            if d.terminated:
                terminated.append(d.run_id or "")
            run_frames = frames_from_dict(d.trajectory)
            for fr in run_frames:
                fr.info.setdefault("run", d.run_id or "")
            frames.extend(run_frames)
            sizes.append(len(run_frames))
            thermo = [g for g in (d.thermo or {}).get("max_gamma", []) if g is not None and np.isfinite(g)]
            measured.append(thermo if thermo else None)
        out = self.select_frames(frames, potential)
        dev = out.pop("deviation")
        # ratios over what the explorations measured (every thermo row), trajectory frames otherwise
        pooled: list[float] = []
        offset = 0
        for n, m in zip(sizes, measured):
            pooled.extend(m if m is not None else dev[offset:offset + n].tolist())
            offset += n
        ratios = trust_ratios(classify(pooled, self.f_trust_lo, self.f_trust_hi)) if pooled else trust_ratios([])
        return {**out, "terminated_runs": terminated, "ratios": ratios}

    def select_frames(self, frames: Sequence, potential: PotentialRef | PotentialDoc | dict) -> dict[str, Any]:
        """Choose from a pool of ASE frames (exploration frames or any labelled pool): the keys of
        :meth:`select` without ``terminated_runs`` and ``ratios``, plus ``deviation`` (per frame)."""
        from pymatgen.io.ase import AseAtomsAdaptor

        from mlipflow.engines.deepmd import classify, load_models, model_deviation
        from mlipflow.engines.kind_dp import _members
        from mlipflow.engines.potentials import materialize
        from mlipflow.engines.selection import gamma_stats
        from mlipflow.schemas.potentials import CandidateRecord

        t0 = time.time()
        if not self.f_trust_lo <= self.f_trust_hi:
            raise UserError(f"f_trust_lo {self.f_trust_lo} is above f_trust_hi {self.f_trust_hi}",
                            "give f_trust_lo <= f_trust_hi (eV/Å)")
        pot = materialize(potential)
        if pot.kind.name != "dp":
            raise UserError(f"the deviation selector needs a DeePMD ensemble, got a {pot.kind.name!r} potential",
                            "use MaxVolSelector for ACE")
        pot.kind.require_uncertainty(pot.files)
        frames = list(frames)
        dps = load_models([str(p) for p in _members(pot.files)]) if frames else []
        dev = model_deviation(dps, frames).max_devi_f if frames else np.zeros(0)
        classes = classify(dev, self.f_trust_lo, self.f_trust_hi)
        cand = [i for i, c in enumerate(classes) if c == "candidate"]
        cand.sort(key=lambda i: -dev[i])
        cap = max(0, int(self.max_structures))
        if self.thin and len(cand) > cap > 0:
            fp = _fingerprints(dps, [frames[i] for i in cand])
            chosen = [cand[k] for k in farthest_point_order(fp, 0, cap)]
            why_not = "thinned: close to a selected frame in descriptor space"
        else:
            chosen = cand[:cap]
            why_not = f"over the cap of {cap} per iteration"
        chosen_set = set(chosen)
        records = []
        for i, (fr, c) in enumerate(zip(frames, classes)):
            d_i = float(dev[i])
            if c == "accurate":
                reason = f"accurate: max_devi_f {d_i:.3g} < f_trust_lo {self.f_trust_lo}"
            elif c == "failed":
                reason = f"failed: max_devi_f {d_i:.3g} >= f_trust_hi {self.f_trust_hi}"
            elif i in chosen_set:
                reason = "candidate: selected"
            else:
                reason = f"candidate: {why_not}"
            records.append(CandidateRecord(run=str(fr.info.get("run", "")), step=int(fr.info.get("step", 0) or 0),
                                           temperature=fr.info.get("temperature_K"), max_gamma=d_i if np.isfinite(d_i) else 1e9,
                                           selected=i in chosen_set, reason=reason))
        return {
            "selected": [AseAtomsAdaptor.get_structure(frames[i]).as_dict() for i in chosen],
            "selected_indices": chosen,
            "records": [r.model_dump() for r in records],
            "n_candidates": len(frames),
            "n_selected": len(chosen),
            "gamma_stats": gamma_stats(dev),
            "time_s": time.time() - t0,
            "deviation": np.asarray(dev, dtype=float),
        }


@dataclass
class DPSelectMaker(Maker):
    """The :class:`DeviationSelector` as a job (returns its dict; ``selected`` goes to the blob store)."""

    name: str = "dp select"
    selector: DeviationSelector = field(default_factory=DeviationSelector)

    @job(data=["selected"])
    def make(self, runs: Sequence[MDRunDoc | dict], potential: PotentialRef | PotentialDoc | dict) -> dict[str, Any]:
        return self.selector.select(runs, potential)


__all__ = ["DPFitMaker", "DPPretrainMaker", "DPTrainMaker", "DPSelectMaker", "DeviationSelector", "gather_dp_ensemble", "export_dp_split"]
