"""Makers of the LixFePO4 campaign (``lfp_dpa``): reference labels and sampling, validation.

* :class:`OlivineConfigurationsMaker` — distinct random Li/vacancy/polaron supercells
  (:func:`mlipflow.generation.olivine.random_configurations`): the 126 relaxation starts, the
  nine AIMD cells.
* :class:`LfpLabelMaker` — fans out one reference job per relaxation and per AIMD run (any
  labeler: ``vasp:lixfepo4_dpa`` through atomate2, CHGNet in this process), then
  :func:`sample_lfp_dataset`: the published sampling (configurations × frames per relaxation;
  compositions × AIMD frames) into a dataset version, failures kept with their reasons.
* :class:`LfpValidationMaker` — SI II.A of the paper: relax with the potential from frames
  ``steps_before`` steps before the reference relaxation converged and from randomly perturbed
  reference structures; the fraction of relaxations that recover the reference Fe valence
  configuration, and the Fe–O radius distribution (two-Gaussian fit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from jobflow import Maker, job

from mlipflow.errors import UserError
from mlipflow.schemas import PotentialRef, StructureSetDoc, content_hash
from mlipflow.schemas.base import as_data
from mlipflow.schemas.lfp import (
    LabelFailure,
    LfpLabelingDoc,
    LfpValidationDoc,
    RecoveryRate,
    ValidationCase,
    ValidationStart,
)
from mlipflow.workers import needs

log = logging.getLogger("mlipflow.lfp")

#: The LixFePO4 paper's recovery rates (SI II.A) by kind of start.
PAPER_RECOVERY = {"before_convergence": 0.984, "perturbed_0.05": 1.0, "perturbed_0.12": 0.78}


def _symbols(frame) -> list[str]:
    """Per-site element symbols of a labelled frame (from its stored structure)."""
    return [site["species"][0]["element"] for site in frame.structure["sites"]]


def _x_of(frame) -> float:
    """Li content x of a Li_xFePO4 frame."""
    sym = _symbols(frame)
    return sym.count("Li") / max(1, sym.count("Fe"))


@dataclass
class OlivineConfigurationsMaker(Maker):
    """``n_structures`` distinct olivine supercells with random Li, vacancy and polaron
    configurations (x from ``x_values`` in turn, default every multiple of 1/n_Li), rattled."""

    need: ClassVar[str] = "light"
    name: str = "olivine configurations"
    n_structures: int = 126
    supercell: list[int] = field(default_factory=lambda: [1, 2, 2])
    x_values: list[float] | None = None
    rattle: float = 0.0
    seed: int = 0

    def parameters(self) -> dict[str, Any]:
        return {"n_structures": self.n_structures, "supercell": list(self.supercell), "x_values": self.x_values,
                "rattle": self.rattle}

    @job(data=["structures"])
    def make(self, campaign: str | None = None) -> StructureSetDoc:
        from mlipflow.generation.olivine import random_configurations

        cells = random_configurations(self.n_structures, self.supercell, self.x_values, seed=self.seed,
                                      rattle=self.rattle)
        entries = [{"configuration": i["configuration"], "x": round(i["x_actual"], 6), "seed": i["seed"],
                    "n_fe3": i["n_fe3"], "label": f"Li{i['x_actual']:.3g}FePO4", "formula": i["formula"]}
                   for _, i in cells]
        return StructureSetDoc(generator="olivine-random", parameters=self.parameters(), seed=self.seed,
                               structures=[s.as_dict() for s, _ in cells], entries=entries, campaign=campaign,
                               input_hash=content_hash("olivine-random", self.parameters(), self.seed))


@dataclass
class LfpLabelMaker(Maker):
    """One reference job per relaxation start and per AIMD cell, then :func:`sample_lfp_dataset`.

    ``relax``/``aimd``: the flow's ``LfpRelaxConfig``/``LfpAimdConfig`` as dicts."""

    need: ClassVar[str] = "light"
    name: str = "lfp labels"
    labeler: str = "chgnet"
    relax: dict[str, Any] = field(default_factory=dict)
    aimd: dict[str, Any] = field(default_factory=dict)
    dataset_name: str = "lixfepo4"
    test_fraction: float = 0.1
    split_seed: int = 0
    validation_structures: int = 20
    validation_steps_before: int = 50

    @job
    def make(self, relax_set: StructureSetDoc | dict, aimd_set: StructureSetDoc | dict, campaign: str | None = None):
        from pymatgen.core import Structure

        from mlipflow.makers.labeling import reference_job
        from mlipflow.workers import replace_with

        r, a = self.relax, self.aimd
        rset, aset = (StructureSetDoc.model_validate(as_data(s)) for s in (relax_set, aimd_set))
        relaxations = [reference_job(self.labeler, "relax", Structure.from_dict(sd), name=f"relax_{e['configuration']}",
                                     source="relax", metadata={"configuration": e["configuration"], "x": e["x"]},
                                     steps=r["steps"], every=r["every"], fmax=r["fmax"])
                       for sd, e in zip(rset.structures, rset.entries)]
        steps = int(round(a["ps"] * 1000.0 / a["timestep_fs"]))
        runs = [reference_job(self.labeler, "md", Structure.from_dict(sd), name=f"aimd_x{e['x']:g}", source="aimd",
                              metadata={"configuration": f"x={e['x']:g}", "x": e["x"]}, temperature=a["temperature"],
                              steps=steps, timestep_fs=a["timestep_fs"], every=a["every"], seed=int(a["seed"]) + k)
                for k, (sd, e) in enumerate(zip(aset.structures, aset.entries))]
        gather = sample_lfp_dataset([j.output for j in relaxations], [e["configuration"] for e in rset.entries],
                                    [j.output for j in runs], [f"x={e['x']:g}" for e in aset.entries],
                                    self.labeler, r, a, self.dataset_name, self.test_fraction, self.split_seed,
                                    self.validation_structures, self.validation_steps_before, campaign=campaign)
        gather.name = "sample_lfp_dataset"
        return replace_with([*relaxations, *runs, gather], gather.output, name="lfp_labels")


def _failure(frames, source: str, configuration: str) -> LabelFailure | None:
    bad = [f for f in frames if f.status != "ok"]
    if not bad:
        return None
    return LabelFailure(source=source, configuration=configuration, reason=bad[-1].failure_reason or "failed")


@needs("light")
@job
def sample_lfp_dataset(relax_outputs: list, relax_names: list[str], aimd_outputs: list, aimd_names: list[str],
                       labeler: str, relax: dict, aimd: dict, dataset_name: str, test_fraction: float, split_seed: int,
                       validation_structures: int, validation_steps_before: int,
                       campaign: str | None = None) -> LfpLabelingDoc:
    """The published sampling: ``n_configurations`` relaxations (seeded, converged ones first),
    ``frames_per_configuration`` frames evenly along each; ``frames_per_composition`` AIMD frames at
    each x of ``compositions``; a dataset version of them. Relaxations not sampled come first
    among the validation starts."""
    from mlipflow.engines.dataset_io import collect_frames, sample_frames
    from mlipflow.makers.active_learning import dataset_version

    rng = np.random.default_rng(int(relax.get("seed", 0)))
    failures: list[LabelFailure] = []
    trajectories: dict[str, list] = {}
    converged: list[str] = []
    for name, out in zip(relax_names, relax_outputs):
        frames = collect_frames(out) if out is not None else []
        if out is None or not frames:
            failures.append(LabelFailure(source="relax", configuration=name, reason="the reference job gave no frames"))
            continue
        fail = _failure(frames, "relax", name)
        if fail:
            failures.append(fail)
        ok = sorted((f for f in frames if f.status == "ok"), key=lambda f: f.step if f.step is not None else -1)
        if not ok:
            continue
        trajectories[name] = ok
        fmax = float(np.max(np.linalg.norm(np.asarray(ok[-1].forces), axis=1))) if ok[-1].forces is not None else np.inf
        if fail is None and fmax <= float(relax["fmax"]) * (1 + 1e-6):
            converged.append(name)
    n_pick = min(int(relax["n_configurations"]), len(trajectories))
    pool = [n for n in relax_names if n in converged]
    rest = [n for n in relax_names if n in trajectories and n not in converged]
    chosen = list(rng.permutation(pool))[:n_pick]
    if len(chosen) < n_pick:  # not enough converged relaxations: the others fill up, recorded
        chosen += list(rng.permutation(rest))[: n_pick - len(chosen)]
        log.warning("only %d of %d relaxations converged; sampling unconverged ones too", len(pool), len(relax_names))
    chosen = [n for n in relax_names if n in set(chosen)]
    relax_frames = [f for n in chosen for f in sample_frames(trajectories[n], int(relax["frames_per_configuration"]),
                                                              per="trajectory", method="uniform")]
    aimd_ok = []
    for name, out in zip(aimd_names, aimd_outputs):
        frames = collect_frames(out) if out is not None else []
        fail = _failure(frames, "aimd", name) if frames else LabelFailure(source="aimd", configuration=name,
                                                                          reason="the reference job gave no frames")
        if fail:
            failures.append(fail)
        aimd_ok += [f for f in frames if f.status == "ok"]
    wanted = [float(x) for x in aimd["compositions"]]
    at_x = [f for f in aimd_ok if any(abs(_x_of(f) - x) < 1e-6 for x in wanted)]
    aimd_frames = sample_frames(at_x, int(aimd["frames_per_composition"]), per="composition", method="random",
                                seed=int(aimd.get("seed", 0))) if at_x else []
    per_x: dict[str, int] = {}
    for f in aimd_frames:
        key = f"{_x_of(f):g}"
        per_x[key] = per_x.get(key, 0) + 1
    frames = relax_frames + aimd_frames
    if not frames:
        raise UserError(f"no usable reference frames: {len(failures)} of {len(relax_names) + len(aimd_names)} "
                        "reference calculations failed" + (f" (first: {failures[0].reason})" if failures else ""),
                        "check the labeler (mlipflow doctor) and the cells; the failures are in the job's log")
    ds = dataset_version(dataset_name, frames, campaign=campaign, split="random", test_fraction=test_fraction,
                         seed=split_seed)
    order = [n for n in relax_names if n in converged and n not in chosen] + [n for n in relax_names if n in converged and n in chosen]
    order += [n for n in relax_names if n in trajectories and n not in converged]
    starts = []
    for name in order[: int(validation_structures)]:
        traj = trajectories[name]
        last = traj[-1].step or len(traj) - 1
        target = last - int(validation_steps_before)
        before = min(traj, key=lambda f: abs((f.step if f.step is not None else 0) - target))
        starts.append(ValidationStart(configuration=name, final_frame_id=traj[-1].frame_id,
                                      before_frame_id=before.frame_id, steps_before=int(last - (before.step or 0)),
                                      in_training=name in chosen))
    return LfpLabelingDoc(
        dataset=ds.ref, labeler=labeler, n_relaxations=len(relax_names), n_relaxations_ok=len(trajectories),
        n_relaxations_converged=len(converged), n_relax_frames=sum(len(t) for t in trajectories.values()),
        n_aimd_runs=len(aimd_names), n_aimd_frames=len(aimd_ok), sampled_configurations=chosen,
        n_sampled_relax=len(relax_frames), n_sampled_aimd=per_x, failures=failures, validation=starts,
        campaign=campaign, input_hash=content_hash("lfp-labeling", ds.input_hash, [s.model_dump() for s in starts]))


# ----------------------------------------------------------------------------- validation


def fe_radii(structure) -> np.ndarray:
    """Mean Fe–O distance of each Fe to its six nearest O (Å), in site order."""
    from mlipflow.analysis.io import Frame
    from mlipflow.analysis.polarons import fe_o_bond_lengths

    symbols = np.array([s.specie.symbol for s in structure])
    frame = Frame(positions=np.asarray(structure.cart_coords), cell=np.asarray(structure.lattice.matrix), symbols=symbols)
    return fe_o_bond_lengths(frame, np.flatnonzero(symbols == "Fe"), np.flatnonzero(symbols == "O"))


def _perturbed(structure, amplitude: float, rng: np.random.Generator):
    """Every atom moved by ``amplitude`` Å in a random direction (seeded)."""
    from pymatgen.core import Structure

    v = rng.normal(size=(len(structure), 3))
    v *= amplitude / np.linalg.norm(v, axis=1, keepdims=True)
    return Structure(structure.lattice, structure.species, structure.cart_coords + v, coords_are_cartesian=True,
                     to_unit_cell=True)


@dataclass
class LfpValidationMaker(Maker):
    """Fe valence recovery (LixFePO4 paper SI II.A) of a potential, from the reference relaxations.

    Reference valences: Fe3+ where the reference's magnetic moment exceeds ``magmom_threshold``
    (None: the boundary of a two-Gaussian fit of every reference Fe moment; frames without
    moments: their Fe–O radii against the relaxed structures' boundary). Relaxed valences: Fe3+
    where the Fe–O radius is below ``boundary_A`` (None: the two-Gaussian boundary of all relaxed
    radii). A relaxation recovers the configuration when every Fe has the reference's valence."""

    need: ClassVar[str] = "gpu"
    name: str = "lfp validation"
    perturbations: list[float] = field(default_factory=lambda: [0.05, 0.12])
    fmax: float = 0.02
    steps: int = 500
    optimizer: str = "BFGS"
    magmom_threshold: float | None = None
    boundary_A: float | None = None
    fallback_boundary_A: float = 2.12
    seed: int = 0

    @job
    def make(self, potential: PotentialRef | dict, labeling: LfpLabelingDoc | dict,
             campaign: str | None = None) -> LfpValidationDoc:
        from mlipflow import cache

        pot = PotentialRef.coerce(potential)
        lab = LfpLabelingDoc.model_validate(as_data(labeling))
        params = {k: getattr(self, k) for k in ("perturbations", "fmax", "steps", "optimizer", "magmom_threshold",
                                                "boundary_A", "fallback_boundary_A", "seed")}
        starts = [s.model_dump() for s in lab.validation]
        doc = cache.get_or_compute("lfp-validation", [pot.identity(), starts, params],
                                   lambda: self._validate(potential, lab), decode=LfpValidationDoc.model_validate)
        doc.campaign = campaign
        doc.plots = _plot_validation(doc, Path.cwd() / "lfp_plots")
        return doc

    def _relax(self, structure, calc) -> tuple[Any, int]:
        from ase import optimize
        from pymatgen.io.ase import AseAtomsAdaptor

        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = calc
        opt = getattr(optimize, self.optimizer)(atoms, logfile=None)
        opt.run(fmax=self.fmax, steps=self.steps)
        return AseAtomsAdaptor.get_structure(atoms), int(opt.nsteps)

    def _validate(self, potential: Any, lab: LfpLabelingDoc) -> LfpValidationDoc:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        from mlipflow.analysis.polarons import fit_valence_gmm
        from mlipflow.engines.frames import frame_to_atoms
        from mlipflow.engines.labelers import _progress
        from mlipflow.engines.potentials import calculator
        from mlipflow.engines.repository import load_frames

        if not lab.validation:
            raise UserError("no reference relaxation to validate against", "label relaxations first (relax.n_cells > 0)")
        ids = [i for s in lab.validation for i in (s.final_frame_id, s.before_frame_id)]
        frames = {f.frame_id: f for f in load_frames(ids)}
        from pymatgen.io.ase import AseAtomsAdaptor

        def structure(fid):
            return AseAtomsAdaptor.get_structure(frame_to_atoms(frames[fid]))

        refs = {s.configuration: structure(s.final_frame_id) for s in lab.validation}
        fe_mag = {}
        for s in lab.validation:
            f = frames[s.final_frame_id]
            if f.magmoms is not None:
                fe_mag[s.configuration] = np.array([m for m, el in zip(f.magmoms, _symbols(f)) if el == "Fe"], float)
        ref_radii = {c: fe_radii(st) for c, st in refs.items()}
        all_ref_radii = np.concatenate(list(ref_radii.values()))
        ref_gmm = _gmm(all_ref_radii, fit_valence_gmm)
        if len(fe_mag) == len(refs):
            mags = np.concatenate(list(fe_mag.values()))
            thr = self.magmom_threshold
            if thr is None:
                fit = _gmm(mags, fit_valence_gmm)
                thr = fit["boundary_A"] if fit else float(np.mean(mags))
            ref_valence = {c: np.where(m > thr, 3, 2) for c, m in fe_mag.items()}
            how = f"magnetic moments: Fe3+ above {thr:.3f} µB" + (" (two-Gaussian boundary)" if self.magmom_threshold is None else "")
        else:
            b = ref_gmm["boundary_A"] if ref_gmm else self.fallback_boundary_A
            ref_valence = {c: np.where(r < b, 3, 2) for c, r in ref_radii.items()}
            how = f"Fe–O radii of the reference structures: Fe3+ below {b:.3f} Å"
        calc = calculator(potential)  # the document as handed over, files included
        rng = np.random.default_rng(self.seed)
        jobs = []
        for s in lab.validation:
            jobs.append((s.configuration, "before_convergence", structure(s.before_frame_id)))
            for amp in self.perturbations:
                jobs.append((s.configuration, f"perturbed_{amp:g}", _perturbed(refs[s.configuration], float(amp), rng)))
        relaxed: list[tuple[str, str, Any, int | None, str | None]] = []
        for conf, start, st in _progress(jobs, len(jobs), "validation relaxations", True):
            try:
                out, n = self._relax(st, calc)
                relaxed.append((conf, start, out, n, None))
            except Exception as exc:  # noqa: BLE001 - a relaxation that blows up is a validation result
                relaxed.append((conf, start, None, None, f"{type(exc).__name__}: {exc}"))
        radii = {}
        for k, (conf, start, out, _n, _err) in enumerate(relaxed):
            if out is not None:
                try:
                    radii[k] = fe_radii(out)
                except UserError as exc:  # lost its octahedra
                    relaxed[k] = (conf, start, None, None, exc.problem)
        all_radii = np.concatenate(list(radii.values())) if radii else np.zeros(0)
        gmm = _gmm(all_radii, fit_valence_gmm) if self.boundary_A is None else None
        boundary = self.boundary_A if self.boundary_A is not None else (gmm["boundary_A"] if gmm else self.fallback_boundary_A)
        matcher = StructureMatcher()
        cases, rates = [], {}
        for k, (conf, start, out, n, err) in enumerate(relaxed):
            ref_v = ref_valence[conf]
            if k in radii:
                v = np.where(radii[k] < boundary, 3, 2)
                ok = bool(np.array_equal(v, ref_v))
                matched = bool(matcher.fit(out, refs[conf]))
                case = ValidationCase(configuration=conf, start=start, recovered=ok, structure_matched=matched,
                                      n_fe3_reference=int((ref_v == 3).sum()), n_fe3_relaxed=int((v == 3).sum()), steps=n)
            else:
                case = ValidationCase(configuration=conf, start=start, recovered=False, structure_matched=False,
                                      n_fe3_reference=int((ref_v == 3).sum()), error=err)
            cases.append(case)
            r = rates.setdefault(start, RecoveryRate(start=start, paper_fraction=PAPER_RECOVERY.get(start)))
            r.n += 1
            r.n_recovered += case.recovered
            r.n_structure_matched += case.structure_matched
            r.n_failed += case.error is not None
        for r in rates.values():
            r.fraction = r.n_recovered / r.n if r.n else None
        return LfpValidationDoc(potential=PotentialRef.coerce(potential), reference_valence=how, boundary_A=float(boundary), gmm=gmm or {},
                                reference_gmm=ref_gmm or {}, rates=list(rates.values()), cases=cases,
                                radii_A={"reference": all_ref_radii.round(5).tolist(),
                                         "relaxed": all_radii.round(5).tolist()},
                                input_hash=content_hash("lfp-validation", PotentialRef.coerce(potential).identity(),
                                                        [s.model_dump() for s in lab.validation]))


def _gmm(values: np.ndarray, fit) -> dict[str, Any] | None:
    """The two-Gaussian fit's numbers, or None when there are too few values to fit."""
    try:
        g = fit(values)
    except UserError:
        return None
    return {k: getattr(g, k) for k in ("means_A", "sigmas_A", "weights", "boundary_A", "bayes_error")}


def _plot_validation(doc: LfpValidationDoc, outdir: Path) -> dict[str, str]:
    """Fe–O radius histograms (reference and relaxed, with the boundary) and recovery rates vs the paper."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, colour in (("reference", "0.5"), ("relaxed", "C0")):
        vals = doc.radii_A.get(key) or []
        if vals:
            ax1.hist(vals, bins=40, density=True, alpha=0.6, color=colour, label=f"{key} ({len(vals)} Fe)")
    if doc.boundary_A:
        ax1.axvline(doc.boundary_A, color="k", ls="--", lw=1, label=f"boundary {doc.boundary_A:.3f} Å")
    ax1.set_xlabel("mean Fe–O distance (Å)")
    ax1.set_ylabel("density")
    ax1.legend(fontsize=8)
    ax1.set_title("Fe–O radii (Fe3+ ≈ 2.08, Fe2+ ≈ 2.16 Å in PBE+U)")
    names = [r.start for r in doc.rates]
    xs = np.arange(len(names))
    ax2.bar(xs - 0.2, [r.fraction or 0 for r in doc.rates], 0.4, label="this potential")
    ax2.bar(xs + 0.2, [r.paper_fraction or 0 for r in doc.rates], 0.4, label="paper (DPA-2, PBE+U)", color="0.6")
    ax2.set_xticks(xs, names, fontsize=8)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("valence configurations recovered")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path = outdir / "lfp_validation.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"validation": str(path.resolve())}


__all__ = ["OlivineConfigurationsMaker", "LfpLabelMaker", "LfpValidationMaker", "sample_lfp_dataset", "fe_radii",
           "PAPER_RECOVERY"]
