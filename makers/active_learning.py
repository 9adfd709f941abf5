"""Job makers of the batch active-learning loop, configured by their fields.

Each maker is one job: it calls engine functions (generation, labelers, datasets, MD engines,
selection) and returns a schema document. Potentials travel between jobs as
:class:`~mlipflow.schemas.PotentialRef` and datasets as :class:`~mlipflow.schemas.DatasetRef`;
a job writes a potential's files on its own node (:func:`mlipflow.engines.potentials.materialize`)
and reads datasets from the store, so jobs can run on different nodes.

Resumability: labels live in the frames repository by content hash; AIMD trajectories, MD runs
and fits are entries of :mod:`mlipflow.cache`; dataset versions with the same content are reused.
The loop itself (iterations, stopping rules, summary) is :mod:`mlipflow.flows.active_learning`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from jobflow import Maker, job

from mlipflow.makers.ace import MaxVolSelector
from mlipflow.schemas import (
    ALIterationDoc,
    CandidateRecord,
    DatasetDoc,
    DatasetRef,
    DistilDoc,
    ErrorMetrics,
    MDProtocol,
    MDRunDoc,
    MDStage,
    PotentialRef,
    SelectionDoc,
    StructureSetDoc,
    TrustRatios,
    UncertaintyStats,
    content_hash,
)
from mlipflow.schemas.active_learning import (
    AIMDConfig,
    ExploreConfig,
    FixedTestSetConfig,
    StabilityConfig,
    StructuresConfig,
)

log = logging.getLogger("mlipflow.al")


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
                                 use_mp=cfg.use_mp, pair_min_distance=cfg.pair_min_distance)
    if n_structures is not None and n_structures < len(cells):
        cells = [cells[i] for i in _pick_evenly(len(cells), n_structures)]
    return cells


def exploration_protocol(cfg: ExploreConfig, seed: int) -> MDProtocol:
    """The melt-quench exploration protocol of an :class:`ExploreConfig`."""
    from mlipflow.engines.protocols import melt_quench_protocol

    return melt_quench_protocol(
        t_melt=cfg.t_melt, melt_ps=cfg.melt_ps, cooling_rate_K_per_ps=cfg.cooling_rate_K_per_ps,
        t_final=cfg.t_final, timestep_fs=cfg.timestep_fs, gamma_lo=cfg.gamma_lo, gamma_hi=cfg.gamma_hi,
        collect_every_kelvin=cfg.collect_every_kelvin, gamma_every=cfg.gamma_every, seed=seed,
        thermostat=cfg.thermostat,
    )


def dataset_version(name: str, frames, parent: DatasetRef | None = None, campaign: str | None = None,
                    **kwargs) -> DatasetDoc:
    """Build a dataset version, or return the stored one with the same content (reruns)."""
    from mlipflow.engines.repository import build_dataset, find_dataset

    parent_s = str(parent) if parent is not None else None
    doc = build_dataset(name, frames, parent=parent_s, campaign=campaign, save=False, **kwargs)
    existing = find_dataset(name, doc.input_hash, parent_s)
    if existing is not None:
        log.info("dataset %s: reusing version %d (same content)", name, existing.version)
        return existing
    return build_dataset(name, frames, parent=parent_s, campaign=campaign, save=True, **kwargs)


def split_errors(potential: PotentialRef, dataset: DatasetRef) -> ErrorMetrics:
    """Errors of a potential on a stored dataset version's test split (read from the store)."""
    from mlipflow.engines.ace_eval import evaluate_calculator, load_labeled
    from mlipflow.engines.dataset_io import pacemaker_dataframe
    from mlipflow.engines.potentials import calculator, kind_of
    from mlipflow.engines.repository import load_dataset

    doc, frames = load_dataset(dataset.name, dataset.version)
    by_id = {f.frame_id: f for f in frames}
    test = [by_id[i] for i in doc.test_ids if i in by_id]
    if not test:
        return ErrorMetrics()
    df = pacemaker_dataframe(test, doc.reference_energies or None)
    if kind_of(PotentialRef.coerce(potential).kind).energy_target == "energy":
        df = df.drop(columns=["energy_corrected"], errors="ignore")  # the kind predicts total energies
    atoms, energies, forces, kind = load_labeled(df)
    return evaluate_calculator(calculator(potential), atoms, energies, forces, kind=kind).metrics


# ----------------------------------------------------------------------------- makers


@dataclass
class InitialStructuresMaker(Maker):
    """Pseudo-random cells over the composition triangle (paper: 66 compositions × 3 scales)."""

    need: ClassVar[str] = "light"
    name: str = "al_structures"
    structures: StructuresConfig = field(default_factory=StructuresConfig)

    @job
    def make(self, campaign: str | None = None) -> StructureSetDoc:
        cfg = self.structures
        cells = generate_cells(cfg, cfg.seed)
        return StructureSetDoc(
            generator="amorphous", parameters=cfg.model_dump(), seed=cfg.seed,
            structures=[s.as_dict() for s, _ in cells], entries=[_jsonable(i) for _, i in cells],
            campaign=campaign, input_hash=content_hash("structures", cfg.model_dump()),
        )


@dataclass
class InitialDatasetMaker(Maker):
    """High-temperature MD of every cell with the reference labeler -> the first dataset version.

    Fans out: one reference job per cell (VASP: atomate2's MDMaker; embedded: a LabelMaker job) and
    one static job per isolated atom whose reference energy is not configured, then
    :func:`gather_dataset` builds the version from their frame ids.
    """

    need: ClassVar[str] = "light"
    name: str = "al_initial_dataset"
    labeler: str = "chgnet"
    aimd: AIMDConfig = field(default_factory=AIMDConfig)
    dataset_name: str = "dataset"
    reference_energies: dict[str, float] | None = None

    @job
    def make(self, structure_set: StructureSetDoc | dict, campaign: str | None = None):
        from pymatgen.core import Structure

        from mlipflow.engines.labelers import get_labeler
        from mlipflow.makers.labeling import reference_job
        from mlipflow.workers import replace_with

        cfg = self.aimd
        sset = structure_set if isinstance(structure_set, StructureSetDoc) else StructureSetDoc.model_validate(
            {k: v for k, v in dict(structure_set).items() if not k.startswith("@")})
        runs = []
        for k, (sd, info) in enumerate(zip(sset.structures, sset.entries)):
            runs.append(reference_job(self.labeler, "md", Structure.from_dict(sd), name=f"aimd_{k}", source="aimd",
                                      metadata={"composition": info.get("label"), "scale": info.get("scale")},
                                      temperature=cfg.temperature, steps=cfg.steps, timestep_fs=cfg.timestep_fs,
                                      every=cfg.every, seed=k))
        elements = sorted({el for sd in sset.structures for el in Structure.from_dict(sd).symbol_set})
        refs = dict(self.reference_energies or {})
        lab = get_labeler(self.labeler)
        refs.update({el: e for el, e in lab.configured_reference_energies.items() if el in elements and el not in refs})
        atoms = {el: reference_job(self.labeler, "static", lab.isolated_atom(el), name=f"isolated_{el}",
                                   source="isolated_atom", metadata={"element": el})
                 for el in elements if el not in refs}
        gather = gather_dataset(self.dataset_name, [r.output for r in runs], refs,
                                {el: j.output for el, j in atoms.items()}, split=cfg.split,
                                test_fraction=cfg.test_fraction, campaign=campaign)
        gather.name = "gather_initial_dataset"
        return replace_with([*runs, *atoms.values(), gather], gather.output, name="initial_dataset")


@dataclass
class FixedTestSetMaker(Maker):
    """The campaign's fixed independent test set: fresh cells (seed apart from the training cells)
    run with the reference labeler at each temperature, one reference job per (cell, temperature),
    gathered into a test-only dataset version with the initial dataset's reference energies."""

    need: ClassVar[str] = "light"
    name: str = "fixed_test_set"
    labeler: str = "chgnet"
    structures: StructuresConfig = field(default_factory=StructuresConfig)
    test_set: FixedTestSetConfig = field(default_factory=FixedTestSetConfig)
    dataset_name: str = "dataset-fixed-test"

    @job
    def make(self, reference_energies: dict[str, float] | None, campaign: str | None = None):
        from mlipflow.makers.labeling import reference_job
        from mlipflow.workers import replace_with

        cfg = self.test_set
        cells = generate_cells(self.structures, seed=self.structures.seed + cfg.seed_offset, n_structures=cfg.structures)
        runs = []
        for k, (st, info) in enumerate(cells):
            for j, temperature in enumerate(cfg.temperatures):
                runs.append(reference_job(self.labeler, "md", st, name=f"test_md_{k}_{int(temperature)}",
                                          source="fixed-test",
                                          metadata={"composition": info.get("label"), "temperature": temperature},
                                          temperature=temperature, steps=cfg.steps, timestep_fs=cfg.timestep_fs,
                                          every=cfg.every, seed=cfg.seed_offset + 100 * k + j))
        gather = gather_dataset(self.dataset_name, [r.output for r in runs], reference_energies or {},
                                split="test", campaign=campaign)
        gather.name = "gather_fixed_test_set"
        return replace_with([*runs, gather], gather.output, name="fixed_test_set")


def fixed_set_errors(potential: PotentialRef, dataset: DatasetRef | None):
    """A potential's errors on the fixed test set (None without one)."""
    from mlipflow.schemas import FixedSetErrors

    if dataset is None:
        return None
    return FixedSetErrors.of(split_errors(potential, DatasetRef.coerce(dataset)))


@job
def gather_dataset(name: str, outputs: list, reference_energies: dict[str, float],
                   reference_outputs: dict[str, Any] | None = None, parent: DatasetRef | None = None,
                   campaign: str | None = None, **kwargs) -> DatasetDoc:
    """A dataset version from the frame ids of reference jobs (failed frames kept out, with reasons);
    isolated-atom energies from ``reference_outputs`` (element -> output) complete the references."""
    from mlipflow.engines.dataset_io import collect_frames
    from mlipflow.errors import UserError

    frames = collect_frames([o for o in outputs if o is not None])
    refs = dict(reference_energies or {})
    for el, out in (reference_outputs or {}).items():
        fr = collect_frames(out)[0]
        if fr.status != "ok" or fr.energy is None:
            raise UserError(f"the isolated-atom energy of {el} could not be computed: {fr.failure_reason}",
                            "give reference energies in the campaign (reference_energies: {El: eV}) or settings")
        refs[el] = float(fr.energy)
    return dataset_version(name, frames, parent=DatasetRef.coerce(parent) if parent else None, campaign=campaign,
                           reference_energies=refs or None, **kwargs)


@dataclass
class SelectLabelMaker(Maker):
    """Pool the exploration candidates, select by the selector (MaxVol), then fan out: one reference
    job per selected frame and :func:`merge_labels`, whose output is the iteration's document."""

    need: ClassVar[str] = "light"
    name: str = "select_label"
    selector: Any = field(default_factory=MaxVolSelector)  # MaxVolSelector (ACE) | DeviationSelector (DP)
    labeler: str = "chgnet"
    gamma_lo: float = 2.5
    max_label_force: float | None = None  # eV/Å: labels with a larger force component stay out of the dataset

    @job
    def make(self, runs: list, potential: PotentialRef, dataset: DatasetRef, iteration: int,
             campaign: str | None = None):
        from pymatgen.core import Structure

        from mlipflow.makers.labeling import reference_job
        from mlipflow.workers import replace_with

        dataset = DatasetRef.coerce(dataset)
        runs = [r if isinstance(r, MDRunDoc) else MDRunDoc.model_validate(
            {k: v for k, v in dict(r).items() if not k.startswith("@")}) for r in runs]
        sel = self.selector.select(runs, potential)  # the document as handed over, files included
        potential = PotentialRef.coerce(potential)
        records = [CandidateRecord(**r) for r in sel["records"]]
        all_g = [g for r in runs for g in (r.thermo.get("max_gamma") or []) if g is not None and not math.isnan(g)]
        stats = UncertaintyStats(n_above_lo=int(sum(r.max_gamma > self.gamma_lo for r in records)))
        if all_g:
            a = np.asarray(all_g)
            stats = stats.model_copy(update={"max": float(a.max()), "mean": float(a.mean()),
                                             "median": float(np.median(a)), "p90": float(np.percentile(a, 90))})
        doc = ALIterationDoc(
            iteration=iteration, potential=potential, n_runs=len(runs), terminated_runs=sel["terminated_runs"],
            n_candidates=sel["n_candidates"], n_selected=sel["n_selected"], candidates=records, gamma_stats=stats,
            dataset=dataset, campaign=campaign, trust_ratios=TrustRatios(**sel["ratios"]) if sel.get("ratios") else None,
            input_hash=content_hash("al_iteration", potential.identity(), iteration, [r.input_hash for r in runs]))
        labels = [reference_job(self.labeler, "static", Structure.from_dict(d), name=f"label_{iteration}_{k}",
                                source=f"al-iteration-{iteration}") for k, d in enumerate(sel["selected"])]
        merge = merge_labels(doc, [j.output for j in labels], max_label_force=self.max_label_force)
        merge.name = f"merge_{iteration}"
        return replace_with([*labels, merge], merge.output, name=f"labels_{iteration}")


@job
def merge_labels(doc: ALIterationDoc | dict, outputs: list, max_label_force: float | None = None) -> ALIterationDoc:
    """Merge the new labels into the next dataset version. Failed labels are excluded and counted;
    with ``max_label_force``, so are labels with a force component above it (strained geometries
    that pull a fit's energies: the label-efficiency benchmark in docs/active_learning.md)."""
    from mlipflow.engines.dataset_io import collect_frames
    from mlipflow.engines.frames import max_force_component

    doc = doc if isinstance(doc, ALIterationDoc) else ALIterationDoc.model_validate(
        {k: v for k, v in dict(doc).items() if not k.startswith("@")})
    frames = collect_frames([o for o in outputs if o is not None])
    fmax = {f.frame_id: max_force_component(f) for f in frames if f.status == "ok" and max_label_force is not None}
    rejected = {i: v for i, v in fmax.items() if v > max_label_force}
    if rejected:
        frames = [f for f in frames if f.frame_id not in rejected]
        doc.label_rejections = [f"{i[:12]}: force component {v:.1f} eV/Å above select.max_label_force "
                                f"{max_label_force:g}" for i, v in rejected.items()]
    n_ok = sum(f.status == "ok" for f in frames)
    if n_ok:
        doc.dataset = dataset_version(doc.dataset.name, frames, parent=doc.dataset, campaign=doc.campaign,
                                      seed=doc.iteration).ref
    doc.n_labeled = n_ok
    doc.n_label_failed = len(frames) - n_ok
    doc.n_label_rejected = len(rejected)
    return doc


@dataclass
class StabilityMaker(Maker):
    """A large random cell at high T with a potential: do energies and forces stay bounded?"""

    need: ClassVar[str] = "gpu"
    name: str = "stability"
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    structures: StructuresConfig = field(default_factory=StructuresConfig)
    engine: str = "ase"

    @property
    def code(self) -> str | None:
        """The external code this maker's job runs (its exec_config on a cluster)."""
        from mlipflow.makers.md import engine_code

        return engine_code(self.engine)

    def protocol(self) -> MDProtocol:
        cfg = self.stability
        steps = int(round(cfg.ps * 1000 / cfg.timestep_fs))
        return MDProtocol(name="stability", timestep_fs=cfg.timestep_fs, thermostat="bussi",
                          stages=[MDStage(ensemble="nvt", steps=steps, t_start=cfg.temperature, label="hot")],
                          thermo_every=max(1, steps // 100), gamma_every=max(1, steps // 50), seed=7)

    @job(data=["trajectory"])
    def make(self, potential: PotentialRef, label: str = "", campaign: str | None = None) -> MDRunDoc:
        from mlipflow.makers.md import run_md_cached

        cfg = self.stability
        scfg = self.structures.model_copy(update={"atoms": cfg.atoms, "scales": [1.0], "max_compositions": 1,
                                                  "end_members": False})
        struct, _ = generate_cells(scfg, seed=scfg.seed + 99991, n_structures=1)[0]
        doc = run_md_cached(self.engine, self.protocol(), struct, potential, run_id=f"stability-{label}",
                            include_frames=False, max_force=cfg.max_force)
        epot = [e for e in doc.thermo.get("potential_energy_eV", []) if e is not None]
        drift = (max(epot) - min(epot)) / max(1, doc.nsites) if epot else float("inf")
        doc.bounded = (not doc.terminated) and math.isfinite(drift) and drift < cfg.max_energy_drift
        doc.termination_reason = doc.termination_reason or (None if doc.bounded else f"energy drift {drift:.2f} eV/atom")
        doc.label = label
        doc.campaign = campaign
        return doc


@dataclass
class PoolSelectMaker(Maker):
    """Pool-based selection as a job (``mlipflow potential select``): read a pool of frames, let the
    selector choose (MaxVol for ACE, deviation for DP), write the chosen frames (labels kept) to an
    extxyz file and return a :class:`~mlipflow.schemas.SelectionDoc`."""

    need: ClassVar[str] = "light"
    name: str = "pool_select"
    selector: Any = field(default_factory=MaxVolSelector)

    @job
    def make(self, pool: list[str], potential: PotentialRef, out_file: str | None = None) -> SelectionDoc:
        from dataclasses import asdict

        from mlipflow.engines.dataset_io import read_pool

        atoms, origins = read_pool(pool)
        for a, origin in zip(atoms, origins):
            a.info["run"] = origin
        res = self.selector.select_frames(atoms, potential)
        potential = PotentialRef.coerce(potential)
        if out_file:
            from pathlib import Path

            from ase.io import write

            Path(out_file).parent.mkdir(parents=True, exist_ok=True)
            write(out_file, [atoms[i] for i in res["selected_indices"]], format="extxyz")
        stats = {k: v for k, v in (res.get("gamma_stats") or {}).items() if k in ("max", "mean", "median", "p90")}
        method = "deviation" if potential.kind == "dp" else "maxvol"
        params = {k: v for k, v in asdict(self.selector).items() if isinstance(v, (int, float, str, bool, type(None)))}
        log.info("pool selection (%s): %d of %d frames", method, res["n_selected"], res["n_candidates"])
        return SelectionDoc(method=method, potential=potential, pool=[str(p) for p in pool],
                            n_candidates=res["n_candidates"], n_selected=res["n_selected"],
                            selected_indices=list(res["selected_indices"]),
                            records=[CandidateRecord(**r) for r in res["records"]],
                            uncertainty=UncertaintyStats(**stats), parameters=params, out_file=out_file,
                            input_hash=content_hash("pool-select", pool, potential.identity(), params))


@job
def record_distillation(doc: Any) -> DistilDoc:
    """Light job: put a finished pool-based active-learning run (``mlipflow potential distil``, whose
    fits ran as cache entries) into the store as a ``distillation`` document."""
    return DistilDoc.model_validate(doc)


def _jsonable(d: dict) -> dict:
    import json

    return json.loads(json.dumps(d, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


__all__ = ["InitialStructuresMaker", "InitialDatasetMaker", "SelectLabelMaker", "StabilityMaker", "gather_dataset",
           "FixedTestSetMaker", "PoolSelectMaker", "fixed_set_errors",
           "merge_labels",
           "generate_cells", "exploration_protocol", "dataset_version", "split_errors"]
