"""Label efficiency of active-learning selection on a labelled NaFePO4 pool (issue 16, item 3).

    .venv/bin/python benchmarks/bench_al_efficiency.py pool   [--workdir W]          # build + label the pool
    .venv/bin/python benchmarks/bench_al_efficiency.py run --kind ace --strategy maxvol [--seeds 0] [...]
    .venv/bin/python benchmarks/bench_al_efficiency.py report [--plot docs/img/al_efficiency.png]

``pool``: random 64-atom cells over the Na2O–FeO–P2O5 triangle (``generation.amorphous_structures``,
step 0.25 without the end members, densities ×0.9/1.0/1.1), each melted at 3000, 4000 or 5000 K
and quenched to 300 K with the shipped Pedone (2006) potential in LAMMPS (real runs), a frame
every 100 steps; every frame labelled by CHGNet (the embedded labeler). The test set comes from
other cells (another packing seed, density ×1.0) run the same way, so no test frame is in the pool.

``run``: :func:`mlipflow.engines.pool_al.run_pool_al` — the same 40 initial frames for every
strategy (init seed 0), batches of 30, a refit after each; per round the test force/energy RMSE.
Each run's :class:`~mlipflow.schemas.DistilDoc` is written to ``W/results/``; fits are cache
entries under ``W/data/cache`` (a rerun recomputes nothing).

``report``: the plot (test RMSE vs labels, min–max band over seeds) and the table of labels each
strategy needs to reach random selection's final mean error.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

for _k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_k, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import logging  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_WORKDIR = Path(os.environ.get("MLIPFLOW_BENCH_DIR", "/tmp/mlipflow-bench-al"))
UNITS = ["Na2O", "FeO", "P2O5"]


def _use_workdir(workdir: Path) -> None:
    os.environ["MLIPFLOW_DATA_DIR"] = str(workdir / "data")
    os.environ["MLIPFLOW_SCRATCH_DIR"] = str(workdir / "scratch")
    from mlipflow.settings import get_settings

    get_settings.cache_clear()


def _protocol(t_melt: float, melt_ps: float, cool_K_per_ps: float, dump_every: int, seed: int):
    from mlipflow.schemas import MDProtocol, MDStage

    melt = int(melt_ps * 1000)
    quench = int((t_melt - 300.0) / cool_K_per_ps * 1000)
    return MDProtocol(name=f"pool-melt-quench-{int(t_melt)}K", timestep_fs=1.0, thermostat="nose-hoover", seed=seed,
                      dump_every=dump_every, thermo_every=dump_every, restart_every=None,
                      stages=[MDStage(ensemble="nvt", steps=melt, t_start=t_melt, label="melt"),
                              MDStage(ensemble="nvt", steps=quench, t_start=t_melt, t_end=300.0, label="quench")])


def _md_frames(cells, workdir: Path, tag: str, temps, melt_ps: float, cool: float, dump_every: int):
    from mlipflow.engines.lammps import read_dump_frames
    from mlipflow.engines.md import run_md
    from mlipflow.engines.potentials import potential_ref

    ref = potential_ref("pedone2006")
    structures, metas = [], []
    for k, (st, info) in enumerate(cells):
        t_melt = temps[k % len(temps)]
        t0 = time.perf_counter()
        res = run_md("lammps", _protocol(t_melt, melt_ps, cool, dump_every, seed=k), st, ref,
                     workdir / "md" / f"{tag}-{k:03d}", run_id=f"{tag}-{k:03d}")
        frames = [fr for path in res.trajectory_files for fr in read_dump_frames(path, res.extra["elements"])]
        for j, fr in enumerate(frames):
            structures.append(fr)
            metas.append({"run": f"{tag}-{k:03d}", "composition": info["label"], "t_melt_K": t_melt,
                          "frame": j, "temperature_K": fr.info.get("temperature_K"), "scale": info["scale"]})
        print(f"  {tag} {k + 1}/{len(cells)} {info['reduced_formula']:>14s} ×{info['scale']:.1f} {t_melt:.0f} K: "
              f"{len(frames)} frames, {res.steps_done} steps in {time.perf_counter() - t0:.1f} s"
              f"{' TERMINATED ' + str(res.termination_reason) if res.terminated else ''}", flush=True)
    return structures, metas


def _save(frames, path: Path) -> None:
    with gzip.open(path, "wt") as fh:
        for f in frames:
            fh.write(f.model_dump_json() + "\n")


def _load(path: Path):
    from mlipflow.schemas import LabeledFrame

    with gzip.open(path, "rt") as fh:
        return [LabeledFrame.model_validate_json(line) for line in fh]


def cmd_pool(args) -> None:
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.generation.amorphous import amorphous_structures

    W = args.workdir
    W.mkdir(parents=True, exist_ok=True)
    labeler = get_labeler(args.labeler)
    t_all = time.perf_counter()
    sets = {}
    for name, seed, scales, every in (("pool", 1, (0.9, 1.0, 1.1), 1), ("test", 2, (1.0,), 3)):
        t0 = time.perf_counter()
        cells = amorphous_structures(UNITS, step=0.25, atoms=args.atoms, end_members=False, use_mp=False, seed=seed,
                                     scales=scales)
        print(f"{name}: {len(cells)} cells of ~{args.atoms} atoms")
        structures, metas = _md_frames(cells, W, name, (3000.0, 4000.0, 5000.0), args.melt_ps, args.cool, args.dump_every)
        structures, metas = structures[::every], metas[::every]
        t_md = time.perf_counter() - t0
        t0 = time.perf_counter()
        frames = labeler.label(structures, source=f"bench-{name}", metadata=metas, progress=True)
        t_label = time.perf_counter() - t0
        ok = [f for f in frames if f.status.value == "ok"]
        print(f"{name}: {len(frames)} frames ({len(ok)} labelled ok): MD {t_md:.0f} s, {labeler.name} labels "
              f"{t_label:.0f} s ({t_label / max(1, len(frames)) * 1e3:.0f} ms/frame)", flush=True)
        sets[name] = ok
    refs = labeler.reference_energies(sorted({e for f in sets["pool"] for e in f.elements}))
    _save(sets["pool"], W / "pool.jsonl.gz")
    _save(sets["test"], W / "test.jsonl.gz")
    (W / "reference_energies.json").write_text(json.dumps(refs, indent=1))
    from mlipflow.engines.frames import max_force_component

    for name, frames in sets.items():
        fm = np.array([max_force_component(f) for f in frames])
        print(f"{name}: {len(frames)} frames, max |F| component median {np.median(fm):.1f}, "
              f"frames with a component > 30 eV/Å: {np.mean(fm > 30) * 100:.1f} %")
    print(f"pool built in {time.perf_counter() - t_all:.0f} s -> {W}")


def cmd_run(args) -> None:
    from mlipflow.engines.pool_al import run_pool_al

    W = args.workdir
    pool, test = _load(W / "pool.jsonl.gz"), _load(W / "test.jsonl.gz")
    refs = json.loads((W / "reference_energies.json").read_text())
    out = W / "results"
    out.mkdir(exist_ok=True)
    fit_kw = {}
    if args.kind == "ace":
        from mlipflow.engines.pacemaker import AceFitSettings

        fit_kw["ace_settings"] = AceFitSettings.tiny(number_of_functions_per_element=args.functions,
                                                     maxiter=args.maxiter, cutoff=5.0)
    else:
        from mlipflow.engines.deepmd import DPSettings

        fit_kw["dp_settings"] = DPSettings.tiny(numb_steps=args.dp_steps)
        fit_kw["n_models"] = args.models
    for seed in args.seeds:
        t0 = time.perf_counter()
        doc = run_pool_al(pool, test, kind=args.kind, strategy=args.strategy, init=args.init, batch=args.batch,
                          rounds=args.rounds, seed=seed, reference_energies=refs if args.kind == "ace" else None,
                          gamma_cap=args.gamma_cap, max_force=args.max_force, fill=args.fill,
                          f_trust_hi=args.f_trust_hi, pool_origin=[str(W / "pool.jsonl.gz")], **fit_kw,
                          on_round=lambda r: print(f"  round {r.round}: {r.n_labels:4d} labels  F {r.test.force_rmse:.3f} eV/Å"
                                                   f"  E {r.test.energy_rmse:.4f} eV/atom  added |F|>30: "
                                                   f"{'' if r.added_high_force_fraction is None else f'{r.added_high_force_fraction:.0%}'}"
                                                   f"  by uncertainty {r.n_by_uncertainty}/{r.n_added}"
                                                   f"  fit {r.fit_time_s or 0:.0f} s{' (cached)' if r.cached else ''}",
                                                   flush=True))
        from mlipflow.engines.pool_al import curve_label

        name = curve_label(doc).replace(" ", "_").replace("≤", "le").replace("γ", "g").replace("σ_f<", "sf")
        (out / f"{name}-seed{seed}.json").write_text(doc.model_dump_json(indent=1))
        print(f"{curve_label(doc)} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)


def cmd_report(args) -> None:
    from mlipflow.engines.pool_al import efficiency_table, plot_label_efficiency
    from mlipflow.schemas import DistilDoc

    docs = [DistilDoc.model_validate_json(p.read_text()) for p in sorted((args.workdir / "results").glob("*.json"))]
    for kind in sorted({d.kind for d in docs}):
        group = [d for d in docs if d.kind == kind]
        plot = Path(str(args.plot).replace(".png", f"_{kind}.png"))
        plot_label_efficiency(group, plot, f"NaFePO4 pool ({group[0].n_pool} frames), test set {group[0].n_test} frames")
        print(f"\n{kind}: plot {plot}")
        print("| strategy | seeds | labels | final force RMSE / MAE (eV/Å) | final energy RMSE / MAE (meV/atom) | labels to random's final F RMSE | labels to random's final E RMSE | added frames with a component > 30 eV/Å |")
        print("|---|---|---|---|---|---|---|---|")
        for r in efficiency_table(group):
            def f(x, fmt, baseline=False):
                return "(baseline)" if baseline else "not reached" if x is None else format(x, fmt)
            print(f"| {r['strategy']} | {r['seeds']} | {r['final_labels']} | {r['final_force_rmse']:.2f} / "
                  f"{r['final_force_mae']:.2f} | {r['final_energy_rmse'] * 1e3:.0f} / {r['final_energy_mae'] * 1e3:.0f} | "
                  f"{f(r.get('labels_to_force_rmse'), '.0f', r['baseline'])} | "
                  f"{f(r.get('labels_to_energy_rmse'), '.0f', r['baseline'])} | "
                  f"{f(r['added_high_force_fraction'] and r['added_high_force_fraction'] * 100, '.0f')} % |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=("pool", "run", "report"))
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("--labeler", default="chgnet")
    ap.add_argument("--atoms", type=int, default=64)
    ap.add_argument("--melt-ps", type=float, default=3.0)
    ap.add_argument("--cool", type=float, default=1000.0, help="quench rate (K/ps)")
    ap.add_argument("--dump-every", type=int, default=100)
    ap.add_argument("--kind", default="ace", choices=("ace", "dp"))
    ap.add_argument("--strategy", default="maxvol")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--init", type=int, default=40)
    ap.add_argument("--batch", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--functions", type=int, default=24, help="ACE functions per element")
    ap.add_argument("--maxiter", type=int, default=150)
    ap.add_argument("--dp-steps", type=int, default=2000)
    ap.add_argument("--models", type=int, default=2)
    ap.add_argument("--gamma-cap", type=float)
    ap.add_argument("--max-force", type=float)
    ap.add_argument("--f-trust-hi", type=float)
    ap.add_argument("--fill", default="random", choices=("random", "none"))
    ap.add_argument("--plot", type=Path, default=HERE.parent / "docs" / "img" / "al_efficiency.png")
    args = ap.parse_args()
    logging.getLogger("mlipflow").setLevel(logging.WARNING)
    _use_workdir(args.workdir)
    {"pool": cmd_pool, "run": cmd_run, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main()
