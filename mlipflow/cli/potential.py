"""``mlipflow potential ...``: fit, pretrain, evaluate potentials and the model deviation of an ensemble."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from mlipflow.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Potentials: fit (ACE, DeePMD), pretrain a DeePMD base, evaluate, "
                  "model deviation.")
console = Console()

KINDS = ("ace", "dp")


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.5g}"


def _metrics_table(title: str, rows: dict) -> Table:
    table = Table(title=title)
    for col in ("set", "frames", "E MAE (eV/atom)", "E RMSE (eV/atom)", "F MAE (eV/Å)", "F RMSE (eV/Å)"):
        table.add_column(col)
    for name, m in rows.items():
        if m is None:
            continue
        table.add_row(name, str(m.n_structures), _fmt(m.energy_mae), _fmt(m.energy_rmse), _fmt(m.force_mae),
                      _fmt(m.force_rmse))
    return table


# ----------------------------------------------------------------------------- evaluate


def _is_dp(path: Path) -> bool:
    return path.suffix in (".pth", ".pb")


@app.command("evaluate")
def evaluate(
    potential: Path = typer.Argument(..., help="Potential file: ACE .yaml/.yace or a frozen DeePMD .pth."),
    data: Path = typer.Argument(..., help="Labeled data: pacemaker pickle (.pkl.gz/.pckl.gzip), extxyz, or (DeePMD) "
                                "a directory of DeePMD npy systems."),
    reference_energies: Optional[Path] = typer.Option(
        None, "--reference-energies", help="JSON/YAML {element: isolated-atom energy (eV)}; used when the "
        "data has no energy_corrected column."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the metrics as JSON here."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Parity plot PNG (default: <data>_parity.png "
                                        "next to --json, else none)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Energy (eV/atom) and force (eV/Å) MAE/RMSE of POTENTIAL on DATA, with a parity plot.

    DeePMD models are fitted to total energies: on a pacemaker pickle their error is taken on
    ``energy`` (not ``energy_corrected``); on a directory of DeePMD systems it is ``dp test``."""
    from mlipflow.engines.ace_eval import Evaluation, evaluate_potential, load_reference_energies, parity_plot

    refs = load_reference_energies(reference_energies)
    if plot is None and json_out is not None:
        plot = json_out.with_suffix(".png")
    if not potential.exists():
        raise UserError(f"potential file {potential} does not exist", "check the path")
    if potential.suffix == ".pt":
        raise UserError(f"{potential.name} is a DeePMD training checkpoint", "freeze it first (dp --pt freeze -c "
                        f"{potential} -o model.pth) and evaluate the .pth")
    if _is_dp(potential) and data.is_dir():
        import tempfile

        from mlipflow.engines.deepmd import test_dp

        with tempfile.TemporaryDirectory(prefix="mlipflow-dp-test-") as tmp:
            res = test_dp(potential, data, tmp, name="evaluate")
        ev = Evaluation(metrics=res.metrics, energy_ref=res.energy_ref, energy_pred=res.energy_pred,
                        force_ref=res.force_ref, force_pred=res.force_pred, energy_kind="energy")
        if plot:
            ev.plot = parity_plot(ev, plot, potential.name)
    else:
        source = data
        if _is_dp(potential) and data.is_file() and not refs:
            from mlipflow.engines.ace_eval import PICKLE_SUFFIXES, _read_pickle

            if data.name.lower().endswith(PICKLE_SUFFIXES):
                df = _read_pickle(data)
                if "energy" in df.columns and "energy_corrected" in df.columns:
                    source = df.drop(columns=["energy_corrected"])  # DP predicts total energies
        ev = evaluate_potential(potential, source, reference_energies=refs, plot=None, progress=progress)
        if plot:
            ev.plot = parity_plot(ev, plot, potential.name)
        if _is_dp(potential):
            ev.extra.pop("note", None)
    m = ev.metrics
    table = Table(title=f"{potential.name} on {data.name} ({m.n_structures} structures, {ev.energy_kind})")
    for col in ("quantity", "MAE", "RMSE"):
        table.add_column(col)
    table.add_row("energy (eV/atom)", f"{m.energy_mae:.5g}", f"{m.energy_rmse:.5g}")
    table.add_row("force (eV/Å)", f"{m.force_mae:.5g}", f"{m.force_rmse:.5g}")
    console.print(table)
    if "note" in ev.extra:
        console.print(f"[yellow]note:[/] {ev.extra['note']}")
    payload = {"potential": str(potential), "data": str(data), **ev.summary()}
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(payload, indent=1))
        console.print(f"metrics written to {json_out}")
    if ev.plot:
        console.print(f"parity plot: {ev.plot}")


# ----------------------------------------------------------------------------- fit


def resolve_dataset(spec: str):
    """A stored dataset version from 'name' (latest) or 'name:version'; a labelled file (extxyz,
    pacemaker pickle, vasprun.xml/OUTCAR) is imported into a dataset named after it first."""
    from mlipflow.engines.repository import build_dataset, list_datasets, load_dataset

    path = Path(spec)
    name, sep, version = spec.rpartition(":")
    if not sep or not version.isdigit():
        name, version = spec, None
    if path.exists() and not any(d.name == spec for d in list_datasets()):
        from mlipflow.engines.dataset_io import import_files

        frames = import_files([path])
        stem = path.name.split(".")[0] or "imported"
        doc = build_dataset(stem, frames, parent=stem if any(d.name == stem for d in list_datasets()) else None)
        console.print(f"imported {len(frames)} frames from {path} -> dataset {doc.name}:{doc.version}")
        return doc.ref
    doc, _ = load_dataset(name, int(version) if version else None, with_frames=False)
    return doc.ref


def _write_out(doc, out: Path) -> list[Path]:
    from mlipflow.engines.potentials import write_blobs

    out.mkdir(parents=True, exist_ok=True)
    files = write_blobs(doc, out)
    summary = json.loads(doc.model_dump_json(exclude={"files"}))
    (out / "potential.json").write_text(json.dumps(summary, indent=1))
    return sorted(set(files.values())) + [out / "potential.json"]


@app.command("fit")
def fit(
    dataset: str = typer.Argument(..., help="Stored dataset 'name' (latest version) or 'name:version', or a labelled "
                                  "file (extxyz, pacemaker pickle, vasprun.xml) imported into a dataset first."),
    kind: str = typer.Option("dp", "--kind", help="ace (pacemaker) or dp (DeePMD-kit)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="ace: paper | mini | tiny (default paper); dp: "
                                         "lixfepo4_paper (alias paper, the default) | mini | tiny | tiny_dpa2."),
    finetune: Optional[str] = typer.Option(None, "--finetune", help="dp: pretrained .pt checkpoint to fine-tune "
                                           "('pretrained': the configured dp_pretrained)."),
    branch: Optional[str] = typer.Option(None, "--branch", help="dp: model branch (head) of a multi-task base; the "
                                         "paper preset defaults to Domains_Anode."),
    ensemble: int = typer.Option(1, "--ensemble", help="dp: ensemble members (different seeds), one job each."),
    seed: int = typer.Option(0, "--seed", help="dp: seed of member 0 (member i: seed + i)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="dp: numb_steps (instead of epochs); ace: maxiter."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the files here (dp: model.pth, model_1.pth, "
                                       "... + checkpoints; ace: .yaml/.yace/.asi) and potential.json."),
    name: Optional[str] = typer.Option(None, "--name", help="Potential name (default: <kind>-<dataset>-v<version>)."),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="Job directories (default: <scratch_dir>/fit-<dataset>)."),
    progress: bool = typer.Option(True, help="Progress bars."),
) -> None:
    """Fit a potential on a stored dataset through jobflow into the configured store (like `mlipflow run`)."""
    from mlipflow.campaign import run_in_store
    from mlipflow.settings import apply_thread_settings, get_settings
    from mlipflow.store import describe

    kind = kind.lower()
    if kind not in KINDS:
        raise UserError(f"unknown potential kind {kind!r} for fitting", f"use --kind {' or '.join(KINDS)}")
    settings = get_settings()
    apply_thread_settings(settings)
    ds = resolve_dataset(dataset)
    root = (workdir or settings.scratch_dir / f"fit-{ds.name}-v{ds.version}").expanduser().resolve()
    console.print(f"[bold]fit[/] {kind} on dataset {ds.name}:{ds.version} -> {describe(settings)}")
    if kind == "ace":
        if finetune or branch or ensemble != 1:
            raise UserError("--finetune, --branch and --ensemble are DeePMD options", "drop them for --kind ace")
        from mlipflow.makers.ace import AceFitMaker, fit_settings

        overrides = {"preset": preset or "paper"}
        if steps:
            overrides["maxiter"] = steps
        maker = AceFitMaker(settings=fit_settings(overrides), potential_name=name or "", progress=progress)
        flow = maker.make(ds)
        responses = run_in_store(flow, str(root), settings)
        doc = responses[flow.uuid][max(responses[flow.uuid])].output
    else:
        from mlipflow.engines.deepmd import PAPER_BRANCH, DPSettings, check_base
        from mlipflow.makers.deepmd import DPFitMaker

        preset = preset or "lixfepo4_paper"
        dps = DPSettings.preset(preset, **({"numb_steps": int(steps)} if steps else {}))
        if finetune == "pretrained":
            if settings.dp_pretrained is None:
                raise UserError("--finetune pretrained, but no pretrained checkpoint is configured",
                                "set dp_pretrained in ~/.mlipflow.yaml (or MLIPFLOW_DP_PRETRAINED), or give the path; "
                                "`mlipflow potential pretrain` makes a local one")
            finetune = str(Path(settings.dp_pretrained).expanduser())
        if finetune:
            from mlipflow.engines.repository import load_dataset

            ddoc, frames = load_dataset(ds.name, ds.version)
            tmap = sorted({el for f in frames for el in f.elements})
            if branch is None and preset in ("lixfepo4_paper", "paper"):
                from mlipflow.engines.deepmd import checkpoint_info

                if PAPER_BRANCH in checkpoint_info(finetune)["branches"]:
                    branch = PAPER_BRANCH
                    console.print(f"model branch: {branch} (the paper's)")
            check_base(finetune, branch, tmap, dps.allow_new_types)  # clear errors before any job runs
        elif branch:
            raise UserError("--branch selects a head of a pretrained base", "give the base with --finetune CKPT")
        maker = DPFitMaker(settings=dps, ensemble=ensemble, finetune=finetune, model_branch=branch, seed=seed,
                           potential_name=name or "", progress=progress)
        flow = maker.make(ds)
        responses = run_in_store(flow, str(root), settings)
        gather = flow.jobs[-1]
        doc = responses[gather.uuid][max(responses[gather.uuid])].output
    console.print(_metrics_table(f"{doc.name} ({doc.kind}{', ensemble of ' + str(ensemble) if kind == 'dp' else ''})",
                                 {"train": doc.train_metrics, "test": doc.test_metrics}))
    console.print(f"stored: potential {doc.ref.kind} uuid {doc.ref.uuid} (input hash {doc.input_hash[:12]}…)")
    if out is not None:
        written = _write_out(doc, out)
        console.print(f"files written to {out}: {', '.join(p.name for p in written)}")
    console.print(json.dumps({"kind": doc.kind, "uuid": doc.ref.uuid, "name": doc.name,
                              "test_force_rmse": doc.test_metrics.force_rmse}))


# ----------------------------------------------------------------------------- pretrain


@app.command("pretrain")
def pretrain(
    out: Path = typer.Option(Path("dp_base.pt"), "--out", "-o", help="Where to save the base checkpoint (.pt)."),
    profile: str = typer.Option("lifepo4", "--profile", help="lifepo4: heads Domains_Anode (olivine LixFePO4 cells) and "
                                "Domains_Oxide (random Li2O-FeO-P2O5 cells), CHGNet labels; metals: heads CuAl and "
                                "CuNi (fcc cells), EMT labels (seconds, for tests)."),
    labeler: Optional[str] = typer.Option(None, "--labeler", help="Labeler (default: chgnet for lifepo4, emt for metals)."),
    structures: int = typer.Option(24, "--structures", help="Generated cells per head."),
    steps: int = typer.Option(2000, "--steps", help="Training steps."),
    seed: int = typer.Option(0, "--seed", help="Seed of generation and training."),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="Training directory (default: <scratch_dir>/dp-pretrain-<profile>)."),
    progress: bool = typer.Option(True, help="Progress bars."),
) -> None:
    """Train a small multi-task DPA-2 base (one head per data domain) on generated, labelled cells
    and save its checkpoint: the local stand-in for a downloaded DPA-2 model. Fine-tune it with
    `mlipflow potential fit DATASET --kind dp --finetune OUT --branch HEAD`."""
    from mlipflow.engines.deepmd import PRETRAIN_PROFILES, train_local_base
    from mlipflow.settings import apply_thread_settings, get_settings

    if profile not in PRETRAIN_PROFILES:
        raise UserError(f"unknown profile {profile!r}", f"use --profile {' or '.join(PRETRAIN_PROFILES)}")
    if out.suffix != ".pt":
        raise UserError(f"the base checkpoint must end in .pt (got {out.name})", "e.g. --out dp_base.pt")
    settings = get_settings()
    apply_thread_settings(settings)
    wd = (workdir or settings.scratch_dir / f"dp-pretrain-{profile}").expanduser().resolve()
    doc, counts = train_local_base(wd, out, profile, labeler, structures, steps, seed, progress=progress)
    for h, n in counts.items():
        console.print(f"head [bold]{h}[/]: {n} labelled cells ({PRETRAIN_PROFILES[profile][h]})")
    tmap = doc.type_map
    lc = doc.lcurve
    last = {k: v[-1] for k, v in lc.items() if k.startswith("rmse_f_trn") and v}
    console.print(f"base saved to {out.resolve()} (branches: {', '.join(doc.heads)}; type map: {', '.join(tmap)}; "
                  f"{doc.numb_steps} steps in {doc.train_time_s:.0f} s; final force RMSE " +
                  ", ".join(f"{k[len('rmse_f_trn_'):]} {v:.3g}" for k, v in last.items() if v is not None) + " eV/Å)")
    console.print(f"fine-tune: mlipflow potential fit DATASET --kind dp --preset mini --finetune {out} "
                  f"--branch {doc.heads[0]}   (or set dp_pretrained: {out.resolve()} in ~/.mlipflow.yaml)")
    console.print(json.dumps({"checkpoint": str(out.resolve()), "branches": doc.heads, "type_map": tmap}))


# ----------------------------------------------------------------------------- deviation


@app.command("deviation")
def deviation(
    paths: List[Path] = typer.Argument(..., help="MODEL1.pth MODEL2.pth ... TRAJ (the last path is the trajectory: "
                                       "any file ASE reads, e.g. extxyz, .traj)."),
    json_out: Path = typer.Option(..., "--json", help="Write per-frame deviations and trust ratios here."),
    f_trust_lo: float = typer.Option(0.05, "--f-trust-lo", help="Frames below this max force deviation are accurate (eV/Å)."),
    f_trust_hi: float = typer.Option(0.15, "--f-trust-hi", help="Frames at or above this are failed (eV/Å)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="ASE format of TRAJ (default: from the suffix)."),
) -> None:
    """DP-GEN model deviation of TRAJ's frames with an ensemble (DeePMD-kit's calc_model_devi):
    max/min/mean force deviation and energy deviation per frame, trust-level ratios."""
    from mlipflow.engines.deepmd import model_deviation

    if len(paths) < 3:
        raise UserError("give at least two models and a trajectory", "mlipflow potential deviation m0.pth m1.pth traj.xyz --json out.json")
    *models, traj = paths
    for m in models:
        if not m.is_file():
            raise UserError(f"model {m} does not exist", "check the path")
        if m.suffix != ".pth":
            raise UserError(f"{m.name} is not a frozen DeePMD model (.pth)", "freeze the members first (dp --pt freeze)")
    if not traj.is_file():
        raise UserError(f"trajectory {traj} does not exist", "check the path")
    from ase.io import read

    try:
        frames = read(traj, index=":", format=fmt)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read {traj} ({type(exc).__name__}: {exc})", "give an extxyz/ASE trajectory or --format") from exc
    if not frames:
        raise UserError(f"{traj} has no frames", "give a trajectory with frames")
    dev = model_deviation(models, frames)
    classes = dev.classify(f_trust_lo, f_trust_hi)
    ratios = dev.ratios(f_trust_lo, f_trust_hi)
    rows = dev.frames()
    for r, c, at in zip(rows, classes, frames):
        r["class"] = c
        if "step" in at.info:
            r["step"] = at.info["step"]
    payload = {"models": [str(m) for m in models], "trajectory": str(traj), "n_frames": len(frames),
               "f_trust_lo": f_trust_lo, "f_trust_hi": f_trust_hi, "ratios": ratios,
               "max_devi_f": {"max": float(dev.max_devi_f.max()), "mean": float(dev.max_devi_f.mean())},
               "frames": rows}
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(payload, indent=1))
    table = Table(title=f"model deviation of {traj.name} ({len(frames)} frames, {len(models)} models)")
    for col in ("quantity", "value"):
        table.add_column(col)
    table.add_row("max_devi_f: max / mean (eV/Å)", f"{dev.max_devi_f.max():.4g} / {dev.max_devi_f.mean():.4g}")
    table.add_row("devi_e: max (eV/atom)", f"{dev.devi_e.max():.4g}")
    for c in ("accurate", "candidate", "failed"):
        table.add_row(f"{c} ratio", f"{ratios[c]:.3f}")
    console.print(table)
    console.print(f"written to {json_out}")


# ----------------------------------------------------------------------------- select


def _selection_potential(specs: list[str], active_set: Optional[Path]):
    """One ACE potential (its .asi active set beside it or --active-set), DeePMD ensemble members
    (several .pth), or one reference/JSON as ``md run --potential`` takes it."""
    from mlipflow.cli.md import parse_potential
    from mlipflow.engines.potentials import ref_from_path
    from mlipflow.schemas import PotentialRef

    if len(specs) > 1:
        paths = [Path(s) for s in specs]
        for p in paths:
            if not p.is_file():
                raise UserError(f"model {p} does not exist", "check the path")
            if p.suffix != ".pth":
                raise UserError(f"{p.name}: several --from are the members of a DeePMD ensemble (.pth)",
                                "give one ACE potential (.yaml) or two or more frozen DeePMD models")
        return PotentialRef(kind="dp", name=paths[0].name,
                            paths={("model" if k == 0 else f"model_{k}"): str(p.resolve()) for k, p in enumerate(paths)})
    spec = specs[0]
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.endswith(".classical.yaml"):
        asi = active_set or p.with_suffix(".asi")
        if not asi.is_file():
            raise UserError(f"no active set for {p.name} (looked for {asi})",
                            "give --active-set FILE.asi (pace_activeset writes it; mlipflow fits keep it beside the .yaml)")
        return ref_from_path(p.resolve(), active_set=asi.resolve())
    return parse_potential(spec)


@app.command("select")
def select(
    pool: List[str] = typer.Argument(..., help="Frames to choose from: files (extxyz, traj, pacemaker pickle, "
                                     "vasprun.xml/OUTCAR, any ASE format), directories, quoted globs, or stored "
                                     "datasets NAME[:VERSION]."),
    potential: List[str] = typer.Option(..., "--from", help="ACE potential .yaml (its .asi beside it), or DeePMD "
                                        "ensemble members (repeat --from m0.pth --from m1.pth), or a JSON reference."),
    max_structures: int = typer.Option(..., "--max", min=1, help="At most this many frames."),
    out: Path = typer.Option(Path("selected.extxyz"), "--out", help="extxyz of the chosen frames (labels kept)."),
    active_set: Optional[Path] = typer.Option(None, "--active-set", help="ACE active set (.asi) if not beside the .yaml."),
    gamma_tolerance: float = typer.Option(1.01, "--gamma-tolerance", help="ACE: frames with max γ at or below are interpolative."),
    gamma_cap: Optional[float] = typer.Option(None, "--gamma-cap", help="ACE: frames with max γ above this are left out."),
    fill: bool = typer.Option(True, "--fill/--one-pass", help="ACE: repeat MaxVol on what is left until --max frames are chosen."),
    min_contact: Optional[float] = typer.Option(0.5, "--min-contact", help="ACE: leave out frames with a pair closer than this "
                                                "fraction of the covalent-radii sum."),
    f_trust_lo: float = typer.Option(0.05, "--f-trust-lo", help="DP: frames below this max force deviation are accurate (eV/Å)."),
    f_trust_hi: float = typer.Option(0.15, "--f-trust-hi", help="DP: frames at or above this are failed (eV/Å)."),
    thin: bool = typer.Option(False, "--thin", help="DP: farthest-point thinning of the candidates."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the selection document as JSON here."),
) -> None:
    """Pool-based selection: choose up to --max frames of POOL by the uncertainty of a potential
    (ACE: MaxVol D-optimality against its active set; DeePMD: ensemble force deviation), write them
    to --out, and store the selection document (type 'selection') like the flows do."""
    from mlipflow.campaign import run_in_store
    from mlipflow.makers.ace import MaxVolSelector
    from mlipflow.makers.active_learning import PoolSelectMaker

    ref = _selection_potential(potential, active_set)
    if ref.kind == "dp":
        from mlipflow.makers.deepmd import DeviationSelector

        selector = DeviationSelector(f_trust_lo=f_trust_lo, f_trust_hi=f_trust_hi, max_structures=max_structures,
                                     thin=thin)
    elif ref.kind == "ace":
        selector = MaxVolSelector(max_structures=max_structures, gamma_tolerance=gamma_tolerance, gamma_cap=gamma_cap,
                                  fill_to=max_structures if fill else None, min_contact=min_contact)
    else:
        raise UserError(f"a {ref.kind!r} potential has no uncertainty to select by",
                        "give an ACE potential with its active set or a DeePMD ensemble")
    from mlipflow.engines.dataset_io import is_pattern

    # the job runs in its own directory: files and patterns travel as absolute paths (the job reads
    # the pool once; a bad pool stops it before anything is stored, with the reader's message)
    pool = [os.path.abspath(p) if Path(p).exists() or is_pattern(p) else p for p in pool]
    job = PoolSelectMaker(selector=selector).make(list(pool), ref, str(out.resolve()))
    doc = run_in_store(job, "pool-select")[job.uuid][1].output
    table = Table(title=f"selection from {doc.n_candidates} frames ({doc.method}, {ref.kind} {ref.name or ''})")
    for col in ("chosen", "of", "uncertainty max", "median", "written to"):
        table.add_column(col)
    u = doc.uncertainty
    table.add_row(str(doc.n_selected), str(doc.n_candidates), _fmt(u.max), _fmt(u.median), str(out))
    console.print(table)
    import re

    reasons: dict[str, int] = {}
    for r in doc.records:  # why frames were (not) chosen, numbers masked: one line per kind of reason
        key = re.sub(r"\d[\d.e+-]*", "#", r.reason.split(";")[0].split(",")[0])[:90]
        reasons[key] = reasons.get(key, 0) + 1
    for key, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:8]:
        console.print(f"  {n:5d}  {key}", highlight=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(doc.model_dump_json(indent=1))
    console.print(f"stored: selection (job {job.uuid}); query: mlipflow query --type selection", highlight=False)


# ----------------------------------------------------------------------------- distil


def _distil_frames(specs: list[str]):
    from mlipflow.engines.repository import load_dataset

    frames, docs = [], []
    for spec in specs:
        ref = resolve_dataset(spec)
        doc, got = load_dataset(ref.name, ref.version)
        frames += got
        docs.append(doc)
    return frames, docs


@app.command("distil")
def distil(
    pool: List[str] = typer.Argument(..., help="Labelled pool: stored datasets NAME[:VERSION] or labelled files "
                                     "(extxyz, pacemaker pickle, vasprun.xml), imported into datasets first."),
    test: List[str] = typer.Option(..., "--test", help="Fixed test set (datasets or files), apart from the pool; repeat."),
    kind: str = typer.Option("ace", "--kind", help="ace (pacemaker) or dp (DeePMD-kit)."),
    strategy: str = typer.Option("maxvol", "--strategy", help="ace: maxvol | random; dp: deviation | random."),
    init: int = typer.Option(40, "--init", help="Initial labels (random, --init-seed)."),
    batch: int = typer.Option(30, "--batch", help="Labels added per round."),
    rounds: int = typer.Option(5, "--rounds", help="Rounds (refits after the initial fit)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the strategy's random choices."),
    init_seed: int = typer.Option(0, "--init-seed", help="Seed of the initial set (keep it to compare strategies)."),
    preset: str = typer.Option("tiny", "--preset", help="Fit settings: ace tiny | mini | paper; dp tiny | mini."),
    functions: Optional[int] = typer.Option(None, "--functions", help="ace: functions per element (overrides the preset)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="ace: maxiter; dp: numb_steps (override the preset)."),
    models: int = typer.Option(2, "--models", help="dp: ensemble members (the deviation needs two or more)."),
    gamma_cap: Optional[float] = typer.Option(None, "--gamma-cap", help="ace maxvol: frames with max γ above this never enter MaxVol."),
    f_trust_hi: Optional[float] = typer.Option(None, "--f-trust-hi", help="dp deviation: frames at or above this deviation are skipped (eV/Å)."),
    max_force: Optional[float] = typer.Option(None, "--max-force", help="Never add frames with a reference force component above this (eV/Å)."),
    fill: bool = typer.Option(True, "--fill/--no-fill", help="Top a batch up at random when the uncertainty runs out of candidates."),
    reference_energies: Optional[Path] = typer.Option(None, "--reference-energies", help="ace: isolated-atom energies "
                                                      "(JSON/YAML {El: eV}); default: the pool dataset's, else its labeler's."),
    out: Path = typer.Option(Path("distil"), "--out", help="Writes distil.json, label_efficiency.png and chosen.extxyz here."),
    progress: bool = typer.Option(False, help="Progress bars of the fits."),
) -> None:
    """Pool-based active learning: from --init random frames of POOL, add --batch frames per round
    chosen by --strategy, refit, and measure the error on the fixed --test set after every round.
    Distils a large labelled dataset into the frames a potential needs, and measures how many labels
    a strategy saves against random choice (run it with --strategy random too)."""
    from mlipflow.engines.ace_eval import load_reference_energies
    from mlipflow.engines.dataset_io import export_extxyz
    from mlipflow.engines.pool_al import STRATEGIES, plot_label_efficiency, run_pool_al
    from mlipflow.settings import apply_thread_settings, get_settings

    kind = kind.lower()
    if kind not in STRATEGIES:
        raise UserError(f"unknown potential kind {kind!r}", f"use --kind {' or '.join(STRATEGIES)}")
    if strategy not in STRATEGIES[kind]:
        raise UserError(f"strategy {strategy!r} does not apply to {kind}", f"use --strategy {' or '.join(STRATEGIES[kind])}")
    apply_thread_settings(get_settings())
    pool_frames, pool_docs = _distil_frames(pool)
    test_frames, _ = _distil_frames(test)
    fit_kw: dict = {}
    if kind == "ace":
        from mlipflow.engines.pacemaker import AceFitSettings

        presets = {"tiny": AceFitSettings.tiny, "mini": AceFitSettings.mini, "paper": AceFitSettings.paper}
        if preset not in presets:
            raise UserError(f"unknown ace preset {preset!r}", f"use --preset {' or '.join(presets)}")
        over = {k: v for k, v in (("number_of_functions_per_element", functions), ("maxiter", steps)) if v}
        fit_kw["ace_settings"] = presets[preset](**over)
        refs = load_reference_energies(reference_energies) if reference_energies else None
        refs = refs or next((d.reference_energies for d in pool_docs if d.reference_energies), None)
        if not refs:
            from mlipflow.engines.labelers import get_labeler

            labelers = sorted({f.labeler for f in pool_frames})
            lab = None
            if len(labelers) == 1 and not labelers[0].startswith(("import", "vasp")):
                try:
                    lab = get_labeler(labelers[0])  # an embedded labeler computes its isolated atoms in seconds
                except UserError:
                    lab = None
            if lab is None:
                raise UserError(f"no reference energies for the pool (labelled by {', '.join(labelers)})",
                                "give --reference-energies FILE with the isolated-atom energy of each element")
            refs = lab.reference_energies(sorted({e for f in pool_frames for e in f.elements}))
        fit_kw["reference_energies"] = refs
    else:
        from mlipflow.engines.deepmd import DPSettings

        if functions or gamma_cap is not None or reference_energies:
            raise UserError("--functions, --gamma-cap and --reference-energies are ACE options", "drop them for --kind dp")
        fit_kw["dp_settings"] = DPSettings.preset(preset, **({"numb_steps": int(steps)} if steps else {}))
        fit_kw["n_models"] = models

    def show(r) -> None:
        added = "" if r.round == 0 else (f"  +{r.n_added} ({r.n_by_uncertainty} by {strategy})" if strategy != "random"
                                         else f"  +{r.n_added}")
        console.print(f"round {r.round}: {r.n_labels:5d} labels{added}  test force RMSE {_fmt(r.test.force_rmse)} eV/Å  "
                      f"energy RMSE {_fmt(r.test.energy_rmse)} eV/atom{'  (cached fit)' if r.cached else ''}", highlight=False)

    console.print(f"[bold]distil[/] {len(pool_frames)} pool frames, {len(test_frames)} test frames: {kind} {strategy}, "
                  f"{init} + {rounds} × {batch} labels")
    doc = run_pool_al(pool_frames, test_frames, kind=kind, strategy=strategy, init=init, batch=batch, rounds=rounds,
                      seed=seed, init_seed=init_seed, gamma_cap=gamma_cap, f_trust_hi=f_trust_hi, max_force=max_force,
                      fill="random" if fill else "none", pool_origin=list(pool), progress=progress, on_round=show, **fit_kw)
    out.mkdir(parents=True, exist_ok=True)
    by_id = {f.frame_id: f for f in pool_frames}
    export_extxyz([by_id[i] for i in doc.chosen], out / "chosen.extxyz")
    plot_label_efficiency([doc], out / "label_efficiency.png", f"{kind} {strategy}: test error against labels")
    from mlipflow.campaign import run_in_store
    from mlipflow.makers.active_learning import record_distillation

    job = record_distillation(doc)
    run_in_store(job, "distil")
    (out / "distil.json").write_text(doc.model_dump_json(indent=1))
    final = doc.final_potential
    console.print(f"final potential ({doc.rounds[-1].n_labels} labels): {final.paths.get('model')}", highlight=False)
    console.print(f"written: {out / 'distil.json'}, {out / 'label_efficiency.png'}, {out / 'chosen.extxyz'}; "
                  f"stored: distillation (job {job.uuid}); query: mlipflow query --type distillation", highlight=False)


# ----------------------------------------------------------------------------- validate


@app.command("validate")
def validate(
    potential: str = typer.Argument(..., help="The potential: a file (ACE .yaml with its .asi beside it, DeePMD .pth), "
                                    "a shipped classical set, or JSON such as '{\"campaign\": \"nafepo4-mini\", \"which\": \"final\"}'."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Labelled frames for the errors per composition: a stored "
                                          "dataset NAME[:VERSION] (its test split) or a labelled file."),
    split: str = typer.Option("test", "--split", help="Which frames of --dataset: test | train | all."),
    crystal: Optional[List[str]] = typer.Option(None, "--crystal", help="Reference crystals for E–V curves (repeat): "
                                                "Na2O, FeO, LiFePO4, NaFePO4-olivine or a structure file. Default: "
                                                "Na2O, FeO, NaFePO4-olivine."),
    labeler: str = typer.Option("chgnet", "--labeler", help="Reference for the E–V curves ('none': the potential's curve only)."),
    temperature: float = typer.Option(2000.0, "--temperature", help="Melt-stability temperature (K)."),
    atoms: int = typer.Option(297, "--atoms", help="Atoms in the melt-stability cell (0: no stability run)."),
    ps: float = typer.Option(0.5, "--ps", help="Melt-stability duration (ps)."),
    engine: str = typer.Option("ase", "--engine", help="MD engine of the stability run (ase | lammps)."),
    trajectory: Optional[List[Path]] = typer.Option(None, "--trajectory", help="Production-MD trajectory files (repeat) "
                                                    "for the fraction of frames above --gamma."),
    types: Optional[str] = typer.Option(None, "--types", help="Elements of LAMMPS types 1,2,... in the trajectories, e.g. Fe,Na,O,P."),
    every: int = typer.Option(1, "--every", help="Use every N-th trajectory frame."),
    gamma: float = typer.Option(2.5, "--gamma", help="Collection threshold (γ for ACE, eV/Å deviation for DP)."),
    campaign: Optional[str] = typer.Option(None, "--campaign", help="Attach the document to this campaign (its report shows it)."),
    plot: Path = typer.Option(Path("validation_eos.png"), "--plot", help="E–V curves written here."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the validation document as JSON here."),
) -> None:
    """Check a potential before production: errors per composition region, E–V curves of reference
    crystals against the reference labeler, melt stability at the target temperature, and the fraction
    of production frames it extrapolates on. One stored document (type 'validation'), one line per problem."""
    from mlipflow.campaign import run_in_store
    from mlipflow.cli.md import parse_potential
    from mlipflow.engines.labelers import check_labeler
    from mlipflow.engines.validation import check_crystal, plot_eos
    from mlipflow.makers.validation import ValidationMaker
    from mlipflow.schemas.active_learning import StabilityConfig

    ref = parse_potential(potential)
    if split not in ("test", "train", "all"):
        raise UserError(f"--split {split!r}", "use --split test, train or all")
    crystals = list(crystal or ["Na2O", "FeO", "NaFePO4-olivine"])
    for c in crystals:
        check_crystal(c)
    lab = None if labeler.lower() == "none" else labeler
    if lab:
        check_labeler(lab)
    for t in trajectory or []:
        if not t.exists():
            raise UserError(f"trajectory {t} does not exist", "check the path")
    if trajectory:
        from mlipflow.engines.potentials import kind_of

        if kind_of(ref.kind).uncertainty is None:
            raise UserError(f"a {ref.kind} potential has no uncertainty for --trajectory",
                            "give an ACE potential with its active set or a DeePMD ensemble, or drop --trajectory")
    ds = resolve_dataset(dataset) if dataset else None
    stab = StabilityConfig(atoms=atoms, temperature=temperature, ps=ps) if atoms > 0 else None
    maker = ValidationMaker(crystals=crystals, labeler=lab, stability=stab, engine=engine, gamma_threshold=gamma,
                            trajectory_every=every, trajectory_types=types.split(",") if types else None,
                            split=split)
    flow = maker.make(ref, ds, [str(t.resolve()) for t in trajectory or []], campaign=campaign)
    responses = run_in_store(flow, "validate")
    gather = flow.jobs[-1]
    doc = responses[gather.uuid][max(responses[gather.uuid])].output
    if doc.by_composition:
        console.print(_metrics_table(f"errors of {ref.label} per composition ({doc.dataset.name}:{doc.dataset.version} {split})",
                                     {r.composition: r.errors for r in doc.by_composition}))
    if doc.eos:
        t = Table(title="E–V curves (Birch–Murnaghan)")
        for col in ("crystal", "V0 Å³/atom", "ref V0", "ΔV0", "B0 GPa", "ref B0", "ΔB0", "shape RMSE meV/atom"):
            t.add_column(col)
        for e in doc.eos:
            t.add_row(e.name, _fmt(e.v0_A3_atom), _fmt(e.reference_v0_A3_atom),
                      "" if e.v0_error is None else f"{e.v0_error:+.1%}", _fmt(e.b0_GPa), _fmt(e.reference_b0_GPa),
                      "" if e.b0_error is None else f"{e.b0_error:+.0%}",
                      "" if e.shape_rmse_eV_atom is None else f"{e.shape_rmse_eV_atom * 1e3:.1f}")
        console.print(t)
        plot_eos(doc.eos, plot)
        console.print(f"E–V plot: {plot}", highlight=False)
    if doc.stability:
        s = doc.stability
        console.print(f"melt stability at {temperature:g} K, {s.natoms} atoms: "
                      f"{'bounded' if s.bounded else 'NOT bounded'} ({s.steps_done} steps){'' if s.bounded else ': ' + str(s.reason)}",
                      highlight=False)
    if doc.uncertainty:
        u = doc.uncertainty
        console.print(f"production frames: {u.n_above} of {u.n_frames} ({(u.fraction_above or 0):.1%}) with {u.signal} above "
                      f"{u.threshold:g} (median {_fmt(u.median)}, max {_fmt(u.max)})", highlight=False)
    for p in doc.problems:
        console.print(f"[red]problem:[/] {p}", highlight=False)
    if not doc.problems:
        console.print("[green]all checks passed[/]")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(doc.model_dump_json(indent=1))
    console.print(f"stored: validation (job {gather.uuid}); query: mlipflow query --type validation", highlight=False)
