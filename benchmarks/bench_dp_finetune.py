"""Fine-tuning the local multi-task DPA-2 base vs training from scratch, same steps, same data.

    .venv/bin/python benchmarks/bench_dp_finetune.py [--base-cells 24] [--base-steps 1000]
        [--train 48] [--test 16] [--steps 400] [--labeler chgnet] [--json out.json]

1. The base: `mlipflow potential pretrain`'s recipe (profile lifepo4): heads Domains_Anode
   (olivine LixFePO4 1x1x1 cells, x = 1 ... 0, rattled, strained) and Domains_Oxide (random
   Li2O-FeO-P2O5 cells), CHGNet labels, tiny DPA-2, ``--base-steps`` steps.
2. A separate small LixFePO4 dataset (other seeds: other Li orderings, polaron sites, rattles and
   strains), CHGNet labels, split into ``--train`` and ``--test`` cells.
3. Fine-tune (``--finetune base.pt --model-branch Domains_Anode --use-pretrain-script``) and train
   from scratch with the same architecture, learning-rate schedule and number of steps; the
   zero-shot base head is evaluated too. Energy (per atom) and force RMSE on the held-out split
   come from ``dp --pt test``. One thread; real DeePMD-kit.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS",
          "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ[k] = "1"
os.environ.setdefault("MLIPFLOW_HOME", tempfile.mkdtemp(prefix="mlipflow-bench-"))


def dataset_cells(n: int, seed: int):
    """Olivine LixFePO4 cells unlike the base's: other orderings, polarons, rattles and strains."""
    import numpy as np

    from mlipflow.generation import olivine_supercell

    rng = np.random.default_rng(seed)
    xs = [1.0, 0.75, 0.5, 0.25, 0.0]
    out = []
    for i in range(n):
        x = xs[i % len(xs)]
        st, _ = olivine_supercell((1, 1, 1), x=x, seed=seed + 1000 + i, rattle=0.03 + 0.12 * rng.random(),
                                  polarons="near-vacancy" if 0 < x < 1 else ("random" if x < 1 else None))
        st.scale_lattice(st.volume * (1 + rng.uniform(-0.04, 0.04)))
        out.append(st)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-cells", type=int, default=24, help="cells per head of the base")
    ap.add_argument("--base-steps", type=int, default=1000)
    ap.add_argument("--train", type=int, default=48)
    ap.add_argument("--test", type=int, default=16)
    ap.add_argument("--steps", type=int, default=400, help="steps of both the fine-tuning and the scratch training")
    ap.add_argument("--labeler", default="chgnet")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from mlipflow.engines.deepmd import (
        DPSettings,
        export_frames,
        freeze_dp,
        pretrain_dp,
        pretrain_heads,
        test_dp,
        train_dp,
    )
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.schemas import FrameStatus

    wd = args.workdir or Path(tempfile.mkdtemp(prefix="bench-dp-"))
    wd.mkdir(parents=True, exist_ok=True)
    timings = {}
    t0 = time.perf_counter()
    heads = pretrain_heads("lifepo4", args.labeler, args.base_cells, args.seed)
    lab = get_labeler(args.labeler)
    frames = [f for f in lab.label(dataset_cells(args.train + args.test, args.seed + 7)) if f.status == FrameStatus.ok]
    timings["labels_s"] = time.perf_counter() - t0
    tmap = sorted({el for fr in [*heads.values(), frames] for f in fr for el in f.elements})
    base_dirs = {h: export_frames(fr, wd / "base_data" / h, tmap) for h, fr in heads.items()}
    train = export_frames(frames[: args.train], wd / "data" / "train", tmap)
    test = export_frames(frames[args.train:], wd / "data" / "test", tmap)

    arch = DPSettings.tiny_dpa2(seed=args.seed + 1)
    t0 = time.perf_counter()
    base = pretrain_dp(base_dirs, wd / "base", arch.model_copy(update={"numb_steps": args.base_steps}),
                       out=wd / "base.pt", type_map=tmap)
    timings["base_s"] = time.perf_counter() - t0

    same = arch.model_copy(update={"numb_steps": args.steps, "disp_freq": max(1, args.steps // 20)})
    results = {}
    zero = freeze_dp(base.checkpoint, wd / "base_anode.pth", head="Domains_Anode")
    results["base head Domains_Anode (zero-shot)"] = test_dp(zero, test, wd / "test_zero", name="test").metrics
    for label, kw in (("fine-tuned from the base", {"finetune": base.checkpoint, "model_branch": "Domains_Anode"}),
                      ("from scratch", {})):
        t0 = time.perf_counter()
        doc = train_dp(same, train, None, wd / label.split()[0], type_map=tmap, seed=args.seed, **kw)
        model = freeze_dp(doc.checkpoint, Path(doc.workdir) / "model.pth")
        timings[f"{label.split()[0]}_s"] = time.perf_counter() - t0
        results[label] = test_dp(model, test, Path(doc.workdir) / "dp_test", name="test").metrics

    print(f"\nLixFePO4 ({args.labeler} labels): {len(frames[:args.train])} train / {len(frames[args.train:])} test cells "
          f"of {len(frames[0].structure['sites'])} atoms; base: {sum(len(v) for v in heads.values())} cells, "
          f"{args.base_steps} steps; both trainings {args.steps} steps, same tiny DPA-2 and lr schedule")
    print(f"{'model':40s} {'E RMSE (meV/atom)':>18s} {'F RMSE (meV/Å)':>16s}")
    for k, m in results.items():
        print(f"{k:40s} {1000 * m.energy_rmse:18.1f} {1000 * m.force_rmse:16.1f}")
    print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "results": {k: m.model_dump() for k, m in results.items()},
                                         "timings": timings}, indent=1))


if __name__ == "__main__":
    main()
