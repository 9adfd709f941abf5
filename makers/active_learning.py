"""Makers of the ACE batch active-learning loop (one job each, thin).

Each maker calls engine functions (generation, labelers, datasets, pacemaker, ASE MD, MaxVol
selection) and returns a schema document. Potentials travel between jobs by ``input_hash``:
a job loads the potential document (with its files) from the job store and writes the files
into a content-addressed directory, so jobs can run on other nodes (FireWorks) and a rerun
finds what a killed run already finished.

Resumability (rerun the same campaign after a crash): labels are cached by content hash
(frame store), AIMD trajectories by their start structure and settings, fits by training data
and settings (``<data_dir>/fits/<hash>``), explorations by potential, structure and protocol
(``explorations`` collection).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jobflow import Maker, job

from mlipflow.errors import UserError
from mlipflow.schemas import (
    ALIterationDoc,
    CandidateRecord,
    DatasetDoc,
    MDRunDoc,
    PotentialDoc,
    StructureSetDoc,
    content_hash,
)
from mlipflow.schemas.active_learning import (
    ActiveLearningConfig,
    AIMDConfig,
    ExploreConfig,
    SelectConfig,
    StabilityConfig,
    StructuresConfig,
)

log = logging.getLogger("mlipflow.al")


# ----------------------------------------------------------------------------- helpers


def _settings():
    from mlipflow.settings import get_settings

    return get_settings()


def _job_store():
    from jobflow import CURRENT_JOB

    store = getattr(CURRENT_JOB, "store", None)
    if store is None:
        from mlipflow.store import job_store

        store = job_store()
        store.connect()
    return store


def load_potential(input_hash: str) -> dict[str, Any]:
    """The stored potential document (with file blobs) whose ``input_hash`` is given."""
    store = _job_store()
    doc = store.query_one({"output.type": "potential", "output.input_hash": input_hash},
                          properties=["output"], load=True, sort={"completed_at": -1})
    if doc is None:
        raise UserError(f"no potential with input_hash {input_hash} in the store",
                        "run the fit first (or check the campaign's store settings)")
    return doc["output"]


def potential_files(input_hash: str) -> dict[str, str]:
    """Write (once) the potential's files under ``<data_dir>/potentials/<hash>``; name -> path."""
    from mlipflow.engines.pacemaker import write_potential_files

    target = _settings().data_dir / "potentials" / input_hash
    marker = target / ".complete"
    if marker.exists():
        return {p.name: str(p) for p in target.iterdir() if not p.name.startswith(".")}
    files = write_potential_files(load_potential(input_hash), target)
    marker.touch()
    return files


def ace_calculator(input_hash: str, with_active_set: bool = True):
    """PyACECalculator (with its active set) for a stored potential."""
    from mlipflow.engines.ace_eval import calculator_for

    files = potential_files(input_hash)
    yaml_path = next((p for n, p in files.items() if n.endswith(".yaml") and n != "input.yaml"), None)
    asi = next((p for n, p in files.items() if n.endswith(".asi")), None)
    if yaml_path is None:
        raise UserError(f"potential {input_hash[:12]} has no .yaml file", "refit the potential")
    return calculator_for(yaml_path, asi if with_active_set else None), yaml_path, asi


def _pick_evenly(n_total: int, n_keep: int | None) -> list[int]:
    if n_keep is None or n_keep >= n_total:
        return list(range(n_total))
    return sorted({int(round(x)) for x in np.linspace(0, n_total - 1, n_keep)})


def generate_cells(cfg: StructuresConfig, seed: int, n_structures: int | None = None):
    """Random cells over the composition grid (subsampled evenly when asked): [(Structure, info)]."""
    from mlipflow.generation import amorphous_structures, composition_grid

    points = composition_grid(cfg.units, step=cfg.step, atoms=cfg.atoms, end_members=cfg.end_members)
    points = [points[i] for i in _pick_evenly(len(points), cfg.max_compositions)]
    cells = amorphous_structures(cfg.units, step=cfg.step, atoms=cfg.atoms, min_distance=cfg.min_distance,
                                 scales=cfg.scales, seed=seed, density=cfg.density, points=points,
                                 use_mp=cfg.use_mp)
    if n_structures is not None and n_structures < len(cells):
        cells = [cells[i] for i in _pick_evenly(len(cells), n_structures)]
    return cells


# ----------------------------------------------------------------------------- makers


@dataclass
class InitialStructuresMaker(Maker):
    """Pseudo-random cells over the composition triangle (paper: 66 compositions × 3 scales)."""

    name: str = "al_structures"

    @job
    def make(self, structures: dict, campaign: str | None = None) -> StructureSetDoc:
        cfg = StructuresConfig(**structures)
        cells = generate_cells(cfg, cfg.seed)
        return StructureSetDoc(
            generator="amorphous", parameters=cfg.model_dump(), seed=cfg.seed,
            structures=[s.as_dict() for s, _ in cells], entries=[_jsonable(i) for _, i in cells],
            campaign=campaign, input_hash=content_hash("structures", cfg.model_dump()),
        )


@dataclass
class InitialDatasetMaker(Maker):
    """High-temperature MD of every cell with the reference labeler → the first dataset."""

    name: str = "al_initial_dataset"

    @job
    def make(self, structure_set: StructureSetDoc | dict, labeler: str, aimd: dict, dataset_name: str,
             reference_energies: dict[str, float] | None = None, campaign: str | None = None) -> DatasetDoc:
        from pymatgen.core import Structure

        from mlipflow.engines.labelers import get_labeler

        cfg = AIMDConfig(**aimd)
        sset = _as_dict(structure_set)
        lab = get_labeler(labeler)
        frames = []
        for k, (sd, info) in enumerate(zip(sset["structures"], sset["entries"])):
            log.info("initial MD %d/%d: %s scale %s", k + 1, len(sset["structures"]), info.get("formula"), info.get("scale"))
            frames += lab.md(Structure.from_dict(sd), temperature=cfg.temperature, steps=cfg.steps,
                             timestep_fs=cfg.timestep_fs, every=cfg.every, seed=k, source="aimd",
                             metadata={"composition": info.get("label"), "scale": info.get("scale")})
        elements = sorted({el for f in frames for el in f.elements})
        refs = dict(reference_energies or {})
        missing = [el for el in elements if el not in refs]
        if missing:
            refs.update(lab.reference_energies(missing))
        return dataset_version(dataset_name, frames, split=cfg.split, test_fraction=cfg.test_fraction,
                               reference_energies=refs, campaign=campaign)


def dataset_version(name: str, frames, parent: str | None = None, campaign: str | None = None,
                    **kwargs) -> DatasetDoc:
    """Build a dataset version, or return the stored one with the same content (reruns)."""
    from mlipflow.engines.datasets import build_dataset, datasets_store

    doc = build_dataset(name, frames, parent=parent, campaign=campaign, save=False, **kwargs)
    store = datasets_store()
    store.connect()
    try:
        existing = store.query_one({"name": name, "input_hash": doc.input_hash, "parent": doc.parent})
    finally:
        store.close()
    if existing is not None:
        log.info("dataset %s: reusing version %d (same content)", name, existing["version"])
        return DatasetDoc(**{k: v for k, v in existing.items() if k in DatasetDoc.model_fields})
    return build_dataset(name, frames, parent=parent, campaign=campaign, save=True, **kwargs)


@dataclass
class AceFitDatasetMaker(Maker):
    """Fit ACE with pacemaker on a stored dataset version (cached by data and settings)."""

    name: str = "al_fit"

    @job(data=["files"])
    def make(self, dataset: DatasetDoc | dict, fit: dict, iteration: int = 0,
             warm_start: str | None = None, campaign: str | None = None) -> PotentialDoc:
        from mlipflow.engines.datasets import export_pacemaker, load_dataset
        from mlipflow.engines.pacemaker import AceFitSettings, fit_ace, fit_input_hash, potential_doc

        ds = _as_dict(dataset)
        settings = _fit_settings(fit)
        if warm_start:
            prev = load_potential(warm_start)
            if prev.get("dataset") == f"{ds['name']}:{ds['version']}":
                log.info("fit %d: no new labels since potential %s; keeping it", iteration, warm_start[:12])
                pdoc = PotentialDoc(**{k: v for k, v in prev.items() if k in PotentialDoc.model_fields
                                       and k not in ("created_at", "versions", "type")})
                pdoc.tags = [*pdoc.tags, f"iteration:{iteration}", "reused:no-new-labels"]
                return pdoc
        doc, frames = load_dataset(ds["name"], ds["version"])
        by_id = {f.frame_id: f for f in frames}
        refs = doc.reference_energies or None
        data_dir = _settings().data_dir / "datasets" / f"{doc.name}-v{doc.version}"
        train = export_pacemaker([by_id[i] for i in doc.train_ids if i in by_id], data_dir / "train.pkl.gz", refs)
        test = (export_pacemaker([by_id[i] for i in doc.test_ids if i in by_id], data_dir / "test.pkl.gz", refs)
                if doc.test_ids else None)
        ws_path = None
        if warm_start:
            files = potential_files(warm_start)
            ws_path = next((p for n, p in files.items() if n.endswith(".yaml") and n != "input.yaml"), None)
        h = fit_input_hash(train, test, settings, ws_path)
        workdir = _settings().data_dir / "fits" / h[:16]
        result = fit_ace(train, test, settings, workdir, warm_start=ws_path)
        pdoc = potential_doc(result, name=f"{campaign or 'ace'}-iter{iteration}",
                             dataset=f"{doc.name}:{doc.version}", warm_start_from=warm_start)
        pdoc.campaign = campaign
        pdoc.tags = [f"iteration:{iteration}"]
        return pdoc


def _fit_settings(fit: dict):
    from mlipflow.engines.pacemaker import AceFitSettings

    fit = dict(fit or {})
    preset = fit.pop("preset", "paper")
    if preset not in ("paper", "mini", "tiny"):
        raise UserError(f"unknown fit preset {preset!r}", "use paper, mini or tiny")
    return getattr(AceFitSettings, preset)(**fit)


def exploration_protocol(cfg: ExploreConfig, seed: int):
    from mlipflow.engines.ase_md import melt_quench_protocol

    return melt_quench_protocol(
        t_melt=cfg.t_melt, melt_ps=cfg.melt_ps, cooling_rate_K_per_ps=cfg.cooling_rate_K_per_ps,
        t_final=cfg.t_final, timestep_fs=cfg.timestep_fs, gamma_lo=cfg.gamma_lo, gamma_hi=cfg.gamma_hi,
        collect_every_kelvin=cfg.collect_every_kelvin, gamma_every=cfg.gamma_every, seed=seed,
        thermostat=cfg.thermostat,
    )


@dataclass
class ExploreMaker(Maker):
    """γ-tracked melt-quench MD of one new random cell with the current potential."""

    name: str = "al_explore"

    @job(data=["trajectory"])
    def make(self, potential: str, structure: dict, explore: dict, run_id: str, seed: int = 0,
             campaign: str | None = None) -> MDRunDoc:
        from pymatgen.core import Structure

        from mlipflow.engines.ase_md import run_ase_md

        cfg = ExploreConfig(**explore)
        protocol = exploration_protocol(cfg, seed)
        h = content_hash("explore", potential, structure, protocol.model_dump())
        cached = _exploration_cache_get(h)
        if cached is not None:
            log.info("exploration %s: from the cache", run_id)
            return MDRunDoc(**cached)
        atoms = Structure.from_dict(structure).to_ase_atoms()
        if cfg.engine == "lammps":
            result = _explore_lammps(potential, atoms, protocol, run_id)
        else:
            calc, _, _ = ace_calculator(potential)
            result = run_ase_md(atoms, calc, protocol, run_id=run_id, progress=False)
        doc = result.to_doc(potential=potential)
        doc.campaign = campaign
        doc.input_hash = h
        _exploration_cache_put(h, doc)
        return doc


def _explore_lammps(potential: str, atoms, protocol, run_id: str):
    """The same protocol as a LAMMPS deck (pace/extrapolation, optional KOKKOS) run with LAMMPS_CMD."""
    from mlipflow.engines.lammps import require_ace_lammps, run_ace_exploration

    exe = _settings().executables
    require_ace_lammps(exe.lammps_cmd, exe.lammps_kokkos)  # before anything is loaded or written
    _, yaml_path, asi = ace_calculator(potential)
    res = run_ace_exploration(atoms, yaml_path, asi, protocol, Path.cwd() / f"lammps_{run_id}",
                              cmd=exe.lammps_command(), kokkos=exe.lammps_kokkos)
    res.run_id = run_id  # as the ASE engine: candidates carry the AL run id
    for fr in res.frames:
        fr.info["run"] = run_id
    return res


def _exploration_cache_get(h: str) -> dict | None:
    from mlipflow.store import collection

    c = collection("explorations", key="input_hash")
    c.connect()
    try:
        d = c.query_one({"input_hash": h})
    finally:
        c.close()
    if d is None:
        return None
    return {k: v for k, v in d.items() if k in MDRunDoc.model_fields}


def _exploration_cache_put(h: str, doc: MDRunDoc) -> None:
    from mlipflow.store import collection

    c = collection("explorations", key="input_hash")
    c.connect()
    try:
        c.update([doc.model_dump(mode="json")])
    finally:
        c.close()


@dataclass
class SelectLabelMaker(Maker):
    """Pool the candidates, select ≤ N by D-optimality (MaxVol), label them, merge into the dataset."""

    name: str = "al_select_label"

    @job
    def make(self, runs: list, potential: str, dataset: DatasetDoc | dict, labeler: str, select: dict,
             iteration: int, explore: dict, campaign: str | None = None) -> ALIterationDoc:
        from pymatgen.core import Structure

        from mlipflow.engines.labelers import get_labeler
        from mlipflow.makers.ace import select_from_runs

        cfg = SelectConfig(**select)
        ecfg = ExploreConfig(**explore)
        ds = _as_dict(dataset)
        runs = [_as_dict(r) for r in runs]
        _, yaml_path, asi = ace_calculator(potential)
        # candidates: frames kept for γ > gamma_lo, at temperature crossings and at the end
        sel = select_from_runs(runs, (yaml_path, asi), max_structures=cfg.max_structures,
                               gamma_tolerance=cfg.gamma_tolerance, add_final=cfg.add_final_structures)
        records = [CandidateRecord(**r) for r in sel["records"]]
        selected = [Structure.from_dict(d) for d in sel["selected"]]
        frames = get_labeler(labeler).label(selected, source=f"al-iteration-{iteration}") if selected else []
        n_ok = sum(f.status == "ok" for f in frames)
        new_ds = (dataset_version(ds["name"], frames, parent=f"{ds['name']}:{ds['version']}", campaign=campaign,
                                  seed=iteration) if n_ok else DatasetDoc(**{k: v for k, v in ds.items() if k in DatasetDoc.model_fields}))
        all_g = [g for r in runs for g in (r.get("thermo", {}).get("max_gamma") or []) if g is not None and not math.isnan(g)]
        stats = {}
        if all_g:
            a = np.asarray(all_g)
            stats = {"max": float(a.max()), "mean": float(a.mean()), "median": float(np.median(a)),
                     "p90": float(np.percentile(a, 90))}
        stats["n_above_lo"] = int(sum(r.max_gamma > ecfg.gamma_lo for r in records))
        return ALIterationDoc(
            iteration=iteration, potential=potential, n_runs=len(runs), terminated_runs=sel["terminated_runs"],
            n_candidates=sel["n_candidates"], n_selected=sel["n_selected"], candidates=records, gamma_stats=stats,
            dataset=f"{new_ds.name}:{new_ds.version}", n_labeled=n_ok,
            n_label_failed=sum(f.status != "ok" for f in frames), campaign=campaign,
            input_hash=content_hash("al_iteration", potential, iteration, [r.get("input_hash") for r in runs]),
        )


@dataclass
class StabilityTestMaker(Maker):
    """Large random cell at high T with a potential: do energies and forces stay bounded?"""

    name: str = "al_stability"

    @job(data=["trajectory"])
    def make(self, potential: str, structures: dict, stability: dict, label: str = "",
             campaign: str | None = None) -> MDRunDoc:
        from pymatgen.core import Structure

        from mlipflow.engines.ase_md import run_ase_md
        from mlipflow.schemas import MDProtocol, MDStage

        cfg = StabilityConfig(**stability)
        scfg = StructuresConfig(**structures)
        scfg = scfg.model_copy(update={"atoms": cfg.atoms, "scales": [1.0], "max_compositions": 1,
                                       "end_members": False})
        struct, info = generate_cells(scfg, seed=scfg.seed + 99991, n_structures=1)[0]
        steps = int(round(cfg.ps * 1000 / cfg.timestep_fs))
        protocol = MDProtocol(name=f"stability-{label}", timestep_fs=cfg.timestep_fs, thermostat="bussi",
                              stages=[MDStage(ensemble="nvt", steps=steps, t_start=cfg.temperature, label="hot")],
                              thermo_every=max(1, steps // 100), gamma_every=max(1, steps // 50), seed=7)
        calc, _, _ = ace_calculator(potential, with_active_set=False)
        result = run_ase_md(Structure.from_dict(struct.as_dict()).to_ase_atoms(), calc, protocol,
                            progress=False, max_force=cfg.max_force)
        doc = result.to_doc(potential=potential, include_frames=False)
        epot = [e for e in doc.thermo.get("potential_energy_eV", []) if e is not None]
        n = max(1, doc.nsites)
        drift = (max(epot) - min(epot)) / n if epot else float("inf")
        bounded = (not doc.terminated) and math.isfinite(drift) and drift < cfg.max_energy_drift
        doc.tags += [f"stability:{label}", f"bounded:{bounded}"]
        doc.termination_reason = doc.termination_reason or (None if bounded else f"energy drift {drift:.2f} eV/atom")
        doc.campaign = campaign
        doc.input_hash = content_hash("stability", potential, protocol.model_dump(), struct.as_dict())
        return doc


def _as_dict(obj) -> dict:
    if isinstance(obj, str):  # 'name:version' of a dataset
        name, _, version = obj.rpartition(":")
        return {"name": name, "version": int(version)}
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return dict(obj)


def _jsonable(d: dict) -> dict:
    import json

    return json.loads(json.dumps(d, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
