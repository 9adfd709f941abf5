"""DeePMD-kit (PyTorch backend): settings -> ``input.json`` -> ``dp --pt train`` -> ``.pth`` + metrics.

* :class:`DPSettings` renders DeePMD-kit's ``input.json``: descriptor (``se_e2_a`` for tiny tests,
  DPA-2 for real work), type map from the dataset, energy/force loss prefactors, the exponential
  learning-rate schedule, and ``numb_steps`` derived from epochs × frames / batch size (recorded in
  the input as ``training._numb_steps_from``). Presets: :meth:`DPSettings.tiny` (seconds, tests),
  :meth:`DPSettings.tiny_dpa2` (the local multi-task base), :meth:`DPSettings.mini` (laptop
  fine-tuning) and :meth:`DPSettings.lixfepo4_paper` (the published LixFePO4 fine-tuning; the
  defaults). Threads come from the settings (``threads``, else mlipflow's ``threads``).
* :func:`train_dp` runs the real ``dp --pt train`` in a work directory — from scratch, or
  fine-tuning a pretrained checkpoint with ``--finetune CKPT --model-branch BRANCH
  --use-pretrain-script`` — streaming its output to ``train.log`` with a progress bar; the
  learning curve (``lcurve.out``) is parsed into the log/progress and into the
  :class:`DPTrainingDoc`. A failed training raises :class:`DPTrainingError`, which keeps the
  lcurve and the log (its ``doc``).
* :func:`pretrain_dp` trains a multi-task DPA-2 base (one fitting head per data domain, shared
  descriptor) — the local stand-in for a downloaded DPA-2 checkpoint; :func:`pretrain_heads`
  generates and labels its data.
* :func:`freeze_dp` (``dp --pt freeze`` through DeePMD-kit's API) gives the ``.pth`` used by the ASE
  calculator and LAMMPS; :func:`test_dp` (``dp --pt test``) gives energy-per-atom and force
  MAE/RMSE as :class:`~mlipflow.schemas.ErrorMetrics` plus the points of a parity plot.
* :func:`model_deviation` computes DP-GEN's model deviation of frames with an ensemble through
  ``deepmd.infer.model_devi.calc_model_devi``; :func:`classify` sorts frames by trust levels.
* :func:`fit_dp_member` is one ensemble member end to end (train, freeze, test, plots), in a
  :mod:`mlipflow.cache` directory entry: a finished member with the same inputs is reused.

Checks that fail before anything runs (each a :class:`~mlipflow.errors.UserError` with the fix):
missing checkpoint, a frozen ``.pth`` where the ``.pt`` checkpoint is needed, an unknown model
branch (the message lists the branches), a type map with elements the base does not know, an
empty dataset, NaN/inf labels.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from mlipflow.errors import MissingDependencyError, UserError
from mlipflow.schemas.base import MlipflowDocument, Model, content_hash
from mlipflow.schemas.potentials import ErrorMetrics

log = logging.getLogger(__name__)

#: The published base model and branch (LixFePO4 paper, SI I.B); the user supplies the file.
PAPER_BASE = "DPA-2.3.1-v3.0.0rc0"
PAPER_BRANCH = "Domains_Anode"
#: Thread variables DeePMD-kit (torch) reads; values already in the environment win.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS")
RESULT_FILE = "dp_training.json"
LCURVE = "lcurve.out"
TRAIN_LOG = "train.log"
CHECKPOINT = "model.ckpt.pt"  # DeePMD-kit's pointer name for the latest checkpoint
INSTALL = "bash scripts/bootstrap.sh (builds deepmd-kit 3.2.0 from source against torch)"

#: A small DPA-2 (repinit + one repformer layer) for the local base and tests.
TINY_REPINIT = {"tebd_dim": 8, "rcut": 5.0, "rcut_smth": 0.5, "nsel": 60, "neuron": [8, 16, 32], "axis_neuron": 4,
                "activation_function": "tanh", "use_three_body": False}
TINY_REPFORMER = {"rcut": 4.0, "rcut_smth": 3.5, "nsel": 30, "nlayers": 1, "g1_dim": 16, "g2_dim": 8,
                  "attn2_hidden": 8, "attn2_nhead": 2, "attn1_hidden": 16, "attn1_nhead": 2, "axis_neuron": 4,
                  "update_h2": False, "update_g1_has_conv": True, "update_g1_has_grrg": True,
                  "update_g1_has_drrd": True, "update_g1_has_attn": False, "update_g2_has_g1g1": False,
                  "update_g2_has_attn": False, "update_style": "res_residual", "update_residual": 0.01,
                  "update_residual_init": "norm", "attn2_has_gate": True, "use_sqrt_nnei": True,
                  "g1_out_conv": True, "g1_out_mlp": True}
#: DeePMD-kit's "small" DPA-2 example (examples/water/dpa2/input_torch_small.json), three-body on.
SMALL_REPINIT = {"tebd_dim": 8, "rcut": 6.0, "rcut_smth": 0.5, "nsel": 120, "neuron": [25, 50, 100],
                 "axis_neuron": 12, "activation_function": "tanh", "three_body_sel": 48, "three_body_rcut": 4.0,
                 "three_body_rcut_smth": 3.5, "use_three_body": True}
SMALL_REPFORMER = {**TINY_REPFORMER, "nsel": 48, "nlayers": 3, "g1_dim": 128, "g2_dim": 32, "attn2_hidden": 32,
                   "attn2_nhead": 4, "attn1_hidden": 128, "attn1_nhead": 4}


# ----------------------------------------------------------------------------- settings


class DPSettings(Model):
    """DeePMD-kit training settings; :meth:`render` gives ``input.json``.

    The defaults are the published LixFePO4 fine-tuning (:meth:`lixfepo4_paper`). When fine-tuning
    with ``use_pretrain_script`` the descriptor and fitting net come from the base checkpoint, so
    the descriptor fields here only matter for training from scratch.
    """

    model_config = ConfigDict(extra="forbid")
    #: presets by name (``DPSettings.preset("tiny")``)
    PRESETS: ClassVar[tuple[str, ...]] = ("tiny", "tiny_dpa2", "mini", "lixfepo4_paper")

    descriptor: Literal["se_e2_a", "dpa2"] = Field("dpa2", description="Descriptor: se_e2_a (tiny tests) or dpa2.")
    rcut: float = Field(6.0, gt=0, description="se_e2_a cutoff (Å); DPA-2 uses repinit.rcut/repformer.rcut.")
    rcut_smth: float = Field(0.5, ge=0, description="se_e2_a smoothing start (Å).")
    sel: int | list[int] | str = Field("auto", description="se_e2_a neighbours per type ('auto' = measured).")
    embedding_neuron: list[int] = Field(default_factory=lambda: [25, 50, 100], description="se_e2_a embedding net.")
    axis_neuron: int = Field(16, ge=1, description="se_e2_a axis neurons.")
    repinit: dict[str, Any] = Field(default_factory=lambda: dict(SMALL_REPINIT), description="DPA-2 repinit block.")
    repformer: dict[str, Any] = Field(default_factory=lambda: dict(SMALL_REPFORMER), description="DPA-2 repformer block.")
    fitting_neuron: list[int] = Field(default_factory=lambda: [240, 240, 240], description="Fitting net layers.")
    resnet_dt: bool = Field(True, description="Fitting net timestep in the ResNet.")
    precision: str = Field("float64", description="Network precision.")
    start_pref_e: float = Field(0.02, ge=0, description="Energy loss prefactor at the start. Paper: 0.02.")
    limit_pref_e: float = Field(1.0, ge=0, description="Energy loss prefactor at the end. Paper: 1.")
    start_pref_f: float = Field(1000.0, ge=0, description="Force loss prefactor at the start. Paper: 1000.")
    limit_pref_f: float = Field(1.0, ge=0, description="Force loss prefactor at the end. Paper: 1.")
    start_pref_v: float = Field(0.0, ge=0, description="Virial prefactor at the start (paper: energy and forces only).")
    limit_pref_v: float = Field(0.0, ge=0, description="Virial prefactor at the end.")
    start_lr: float = Field(1e-3, gt=0, description="Learning rate at step 0. Paper: 1e-3.")
    stop_lr: float = Field(3.51e-8, gt=0, description="Final (minimum) learning rate. Paper: 3.51e-8.")
    decay_steps: int | None = Field(11750, ge=1, description="Steps between decays. Paper: 11750 (None: numb_steps/16, i.e. 16 decays).")
    decay_rate: float | None = Field(0.526, gt=0, le=1, description="Decay factor. Paper: 0.526 (None: from stop_lr).")
    epochs: float | None = Field(120, gt=0, description="Passes over the training frames (numb_steps = epochs × frames / batch_size). Paper: 120.")
    numb_steps: int | None = Field(None, ge=1, description="Training steps; overrides epochs when set.")
    batch_size: int = Field(1, ge=1, description="Frames per step. Paper: 1 (188 000 steps for 1570 frames).")
    disp_freq: int = Field(1000, ge=1, description="Steps between lcurve lines.")
    save_freq: int = Field(10000, ge=1, description="Steps between checkpoints.")
    seed: int = Field(1, description="Base seed (descriptor, fitting net, data order); members add their index.")
    threads: int | None = Field(None, ge=1, description="Threads (None: mlipflow's `threads` setting).")
    use_pretrain_script: bool = Field(True, description="Fine-tuning keeps the base's descriptor and fitting net (--use-pretrain-script).")
    allow_new_types: bool = Field(False, description="Fine-tuning: allow elements the base does not know (randomly initialised).")
    type_map: list[str] | None = Field(None, description="Type map; None = the dataset's sorted elements.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Raw input.json overrides, merged last (nested dicts merge).")

    @model_validator(mode="after")
    def _check(self):
        if self.numb_steps is None and self.epochs is None:
            raise ValueError("give epochs or numb_steps")
        if self.stop_lr > self.start_lr:
            raise ValueError(f"stop_lr {self.stop_lr} is above start_lr {self.start_lr}")
        return self

    # --- presets -------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **kw) -> DPSettings:
        aliases = {"paper": "lixfepo4_paper"}
        name = aliases.get(name, name)
        if name not in cls.PRESETS:
            raise UserError(f"unknown DeePMD preset {name!r}", f"use one of {', '.join(cls.PRESETS)}")
        return getattr(cls, name)(**kw)

    @classmethod
    def lixfepo4_paper(cls, **kw) -> DPSettings:
        """The published fine-tuning (LixFePO4 paper, SI I.B): DPA-2 base, energy+force loss
        0.02→1 / 1000→1, lr 1e-3 × 0.526 every 11750 steps down to 3.51e-8, 120 epochs, batch 1
        (1570 frames → 188 400 steps, 16 decays). Fine-tune from the user's DPA-2.3.1 checkpoint,
        branch ``Domains_Anode``."""
        base = dict(descriptor="dpa2", start_pref_e=0.02, limit_pref_e=1.0, start_pref_f=1000.0, limit_pref_f=1.0,
                    start_pref_v=0.0, limit_pref_v=0.0, start_lr=1e-3, stop_lr=3.51e-8, decay_steps=11750,
                    decay_rate=0.526, epochs=120, batch_size=1, disp_freq=1000, save_freq=10000)
        base.update(kw)
        return cls(**base)

    @classmethod
    def tiny(cls, **kw) -> DPSettings:
        """Seconds-scale se_e2_a training for tests: ~3k parameters, 150 steps of 4 frames,
        energy weighted from the start (prefactors 1→1 energy, 100→1 force)."""
        base = dict(descriptor="se_e2_a", rcut=4.5, rcut_smth=0.5, sel="auto", embedding_neuron=[8, 16], axis_neuron=4,
                    fitting_neuron=[16, 16], resnet_dt=False, start_pref_e=1.0, start_pref_f=100.0, start_lr=5e-3,
                    stop_lr=5e-5, decay_steps=None, decay_rate=None, epochs=None, numb_steps=150, batch_size=4,
                    disp_freq=10, save_freq=1000)
        base.update(kw)
        return cls(**base)

    @classmethod
    def tiny_dpa2(cls, **kw) -> DPSettings:
        """A small DPA-2 (one repformer layer, ~30k parameters) for the local multi-task base."""
        base = dict(descriptor="dpa2", repinit=dict(TINY_REPINIT), repformer=dict(TINY_REPFORMER),
                    fitting_neuron=[32, 32], resnet_dt=True, start_lr=2e-3, stop_lr=2e-5, decay_steps=None,
                    decay_rate=None, epochs=None, numb_steps=1000, batch_size=1, disp_freq=50, save_freq=1000)
        base.update(kw)
        return cls(**base)

    @classmethod
    def mini(cls, **kw) -> DPSettings:
        """Laptop fine-tuning (the mini LixFePO4 profile): the paper's loss and schedule shape,
        20 epochs, decays every numb_steps/16 so the lr still ends at stop_lr."""
        base = dict(descriptor="dpa2", repinit=dict(TINY_REPINIT), repformer=dict(TINY_REPFORMER),
                    fitting_neuron=[32, 32], start_lr=1e-3, stop_lr=3.51e-8, decay_steps=None, decay_rate=None,
                    epochs=20, batch_size=1, disp_freq=50, save_freq=2000)
        base.update(kw)
        return cls(**base)

    # --- rendering -----------------------------------------------------------------------
    def steps_for(self, n_frames: int) -> int:
        """Training steps: ``numb_steps`` if set, else ceil(epochs × frames / batch_size)."""
        if self.numb_steps is not None:
            return int(self.numb_steps)
        return max(1, int(math.ceil(float(self.epochs) * max(int(n_frames), 1) / self.batch_size - 1e-9)))

    def steps_origin(self, n_frames: int) -> str:
        if self.numb_steps is not None:
            return f"numb_steps {self.numb_steps} (given)"
        return f"{self.epochs:g} epochs x {n_frames} frames / batch {self.batch_size} = {self.steps_for(n_frames)} steps"

    def descriptor_block(self, seed: int) -> dict[str, Any]:
        if self.descriptor == "se_e2_a":
            return {"type": "se_e2_a", "sel": self.sel, "rcut": float(self.rcut), "rcut_smth": float(self.rcut_smth),
                    "neuron": list(self.embedding_neuron), "axis_neuron": int(self.axis_neuron),
                    "precision": self.precision, "seed": int(seed)}
        return {"type": "dpa2", "repinit": dict(self.repinit), "repformer": dict(self.repformer),
                "precision": self.precision, "add_tebd_to_repinit_out": False, "seed": int(seed)}

    def fitting_block(self, seed: int) -> dict[str, Any]:
        return {"neuron": list(self.fitting_neuron), "resnet_dt": bool(self.resnet_dt), "precision": self.precision,
                "seed": int(seed)}

    def loss_block(self) -> dict[str, Any]:
        return {"type": "ener", "start_pref_e": self.start_pref_e, "limit_pref_e": self.limit_pref_e,
                "start_pref_f": self.start_pref_f, "limit_pref_f": self.limit_pref_f,
                "start_pref_v": self.start_pref_v, "limit_pref_v": self.limit_pref_v}

    def lr_block(self, numb_steps: int) -> dict[str, Any]:
        decay_steps = self.decay_steps or max(1, numb_steps // 16)
        decay_steps = min(decay_steps, max(1, numb_steps - 1)) if self.decay_rate is None else decay_steps
        lr: dict[str, Any] = {"type": "exp", "start_lr": self.start_lr, "stop_lr": self.stop_lr,
                              "decay_steps": int(decay_steps)}
        if self.decay_rate is not None:
            lr["decay_rate"] = float(self.decay_rate)
        return lr

    def _training_block(self, numb_steps: int, n_frames: int, seed: int) -> dict[str, Any]:
        return {"numb_steps": int(numb_steps), "seed": int(seed), "disp_file": LCURVE,
                "disp_freq": int(min(self.disp_freq, numb_steps)), "save_freq": int(min(self.save_freq, numb_steps)),
                "_numb_steps_from": self.steps_origin(n_frames)}

    def render(self, train_systems: Sequence[str | Path], valid_systems: Sequence[str | Path] | None,
               type_map: Sequence[str], n_frames: int, seed: int | None = None) -> dict[str, Any]:
        """The single-task ``input.json`` (absolute system paths; ``seed`` defaults to ``self.seed``)."""
        seed = self.seed if seed is None else int(seed)
        numb_steps = self.steps_for(n_frames)
        training = self._training_block(numb_steps, n_frames, seed)
        training["training_data"] = {"systems": [str(Path(s).resolve()) for s in train_systems],
                                     "batch_size": int(self.batch_size)}
        if valid_systems:
            training["validation_data"] = {"systems": [str(Path(s).resolve()) for s in valid_systems],
                                           "batch_size": int(self.batch_size)}
        cfg = {
            "model": {"type_map": list(type_map), "descriptor": self.descriptor_block(seed),
                      "fitting_net": self.fitting_block(seed)},
            "learning_rate": self.lr_block(numb_steps),
            "loss": self.loss_block(),
            "training": training,
        }
        return _merge(cfg, self.extra)

    def render_multitask(self, heads: dict[str, tuple[Sequence[str | Path], Sequence[str | Path] | None]],
                         type_map: Sequence[str], n_frames: dict[str, int], seed: int | None = None) -> dict[str, Any]:
        """A multi-task ``input.json``: one shared descriptor, one fitting net (head) per data set;
        heads are drawn with probability proportional to their frames."""
        if len(heads) < 2:
            raise UserError(f"a multi-task base needs at least two heads, got {list(heads)}", "give two or more data sets")
        seed = self.seed if seed is None else int(seed)
        total = sum(n_frames.values())
        numb_steps = self.steps_for(total)
        training = self._training_block(numb_steps, total, seed)
        training["model_prob"] = {h: n_frames[h] / total for h in heads}
        data_dict = {}
        for h, (train, valid) in heads.items():
            d = {"training_data": {"systems": [str(Path(s).resolve()) for s in train], "batch_size": int(self.batch_size)}}
            if valid:
                d["validation_data"] = {"systems": [str(Path(s).resolve()) for s in valid], "batch_size": int(self.batch_size)}
            data_dict[h] = d
        training["data_dict"] = data_dict
        cfg = {
            "model": {
                "shared_dict": {"type_map_all": list(type_map), "descriptor_shared": self.descriptor_block(seed)},
                "model_dict": {h: {"type_map": "type_map_all", "descriptor": "descriptor_shared",
                                   "fitting_net": self.fitting_block(seed + i)} for i, h in enumerate(heads)},
            },
            "learning_rate": self.lr_block(numb_steps),
            "loss_dict": {h: self.loss_block() for h in heads},
            "training": training,
        }
        return _merge(cfg, self.extra)


def _merge(base: dict, over: dict) -> dict:
    out = deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else deepcopy(v)
    return out


# ----------------------------------------------------------------------------- documents


class DPTrainingDoc(MlipflowDocument):
    """One DeePMD-kit training run (an ensemble member, or a multi-task base): what went in,
    the learning curve, the log's tail and — when it finished — metrics and files."""

    doc_type = "dp_training"
    doc_schema_version = "1.0"
    status: Literal["ok", "failed", "skipped"] = Field("ok", description="ok, failed (lcurve/log kept), skipped (no new labels).")
    error: str | None = Field(None, description="Why it failed.")
    member: int = Field(0, description="Ensemble member index.")
    seed: int = Field(0, description="Seed of this member.")
    workdir: str = Field("", description="Work directory (a cache entry).")
    input: dict[str, Any] = Field(default_factory=dict, description="The rendered input.json.")
    numb_steps: int = Field(0, description="Training steps.")
    numb_steps_from: str = Field("", description="How numb_steps was derived (epochs × frames / batch size).")
    type_map: list[str] = Field(default_factory=list, description="Type map.")
    n_train_frames: int = Field(0, description="Training frames.")
    n_test_frames: int = Field(0, description="Test (validation) frames.")
    finetune: str | None = Field(None, description="Checkpoint fine-tuned from (path), None = from scratch.")
    finetune_digest: str | None = Field(None, description="SHA-256 of that checkpoint.")
    model_branch: str | None = Field(None, description="Branch (head) of a multi-task base that was selected.")
    heads: list[str] = Field(default_factory=list, description="Heads of a multi-task model.")
    lcurve: dict[str, list[float | None]] = Field(default_factory=dict, description="lcurve.out columns (step, rmse_*, lr).")
    log_tail: str = Field("", description="Last lines of the training log.")
    log_path: str | None = Field(None, description="The full training log.")
    checkpoint: str | None = Field(None, description="Training checkpoint (.pt).")
    model: str | None = Field(None, description="Frozen model (.pth).")
    train_metrics: ErrorMetrics = Field(default_factory=ErrorMetrics, description="dp test on the training split.")
    test_metrics: ErrorMetrics = Field(default_factory=ErrorMetrics, description="dp test on the test split.")
    warm_start_test_metrics: ErrorMetrics | None = Field(None, description="The warm-start model on this test split.")
    plots: dict[str, str] = Field(default_factory=dict, description="Plot name -> path (parity, lcurve).")
    files: dict[str, str] = Field(default_factory=dict, description="Blobs: model.pth.b64, model.ckpt.pt.b64, lcurve.out.")
    train_time_s: float | None = Field(None, description="Wall time of dp train (s).")
    cached: bool = Field(False, description="Reused from the cache.")


class DPTrainingError(UserError):
    """``dp --pt train`` failed; ``doc`` keeps the learning curve and the log."""

    def __init__(self, problem: str, fix: str | None, doc: DPTrainingDoc):
        super().__init__(problem, fix)
        self.doc = doc


# ----------------------------------------------------------------------------- environment


def thread_env(threads: int | None = None) -> dict[str, str]:
    """Environment for DeePMD-kit: thread variables (already-set values win unless ``threads``
    is given), quiet TensorFlow, non-interactive matplotlib."""
    if threads is None:
        try:
            from mlipflow.settings import get_settings

            threads = get_settings().threads
        except Exception:  # noqa: BLE001 - a broken settings file must not block training
            threads = 1
        env = {var: os.environ.get(var, str(threads)) for var in THREAD_VARIABLES}
    else:
        env = {var: str(threads) for var in THREAD_VARIABLES}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg", "KMP_WARNINGS": "0"})
    return env


def _apply_threads(threads: int | None) -> None:
    """Thread variables for in-process DeePMD-kit (freeze, test, inference)."""
    for k, v in thread_env(threads).items():
        os.environ.setdefault(k, v)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def require_deepmd() -> None:
    try:
        import deepmd.pt  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("DeePMD-kit (PyTorch backend)", INSTALL) from exc


def dp_command(cmd: str | None = None) -> list[str]:
    """``dp --pt`` as a list (bare names looked up next to the running Python first: the venv)."""
    if cmd is None:
        try:
            from mlipflow.settings import get_settings

            cmd = get_settings().executables.dp_cmd
        except Exception:  # noqa: BLE001
            cmd = "dp"
    parts = shlex.split(cmd)
    if os.sep not in parts[0]:
        cand = Path(sys.executable).parent / parts[0]
        if cand.exists():
            parts[0] = str(cand)
    if "--pt" not in parts and "--pytorch" not in parts:
        parts.append("--pt")
    return parts


# ----------------------------------------------------------------------------- data


def system_dirs(root: str | Path | Sequence[str | Path]) -> list[Path]:
    """DeePMD system directories (those holding ``type.raw``) under ``root`` (or a list of roots)."""
    roots = [root] if isinstance(root, (str, Path)) else list(root)
    out: list[Path] = []
    for r in roots:
        p = Path(r)
        if (p / "type.raw").is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(q.parent for q in p.rglob("type.raw")))
    return out


def check_systems(systems: Sequence[str | Path], what: str = "training data") -> tuple[int, list[str]]:
    """Frames and elements of DeePMD npy systems; clear errors for missing, empty or NaN data."""
    if not systems:
        raise UserError(f"the {what} is empty: no DeePMD systems (directories with type.raw) found",
                        "give a dataset with labelled frames (status ok); label structures first "
                        "(`mlipflow label ...`) or export a dataset (`mlipflow dataset export -f deepmd`)")
    n_frames, elements = 0, set()
    for s in systems:
        s = Path(s)
        if not (s / "type.raw").is_file():
            raise UserError(f"{s} is not a DeePMD system (no type.raw)", "point to a directory written by dpdata/`mlipflow dataset export -f deepmd`")
        tmap_file = s / "type_map.raw"
        tmap = tmap_file.read_text().split() if tmap_file.is_file() else []
        types = np.loadtxt(s / "type.raw", dtype=int, ndmin=1)
        elements.update(tmap[t] for t in set(types.tolist()) if t < len(tmap))
        sets = sorted(s.glob("set.*"))
        for st in sets:
            for name in ("coord", "box", "energy", "force"):
                f = st / f"{name}.npy"
                if not f.is_file():
                    if name in ("energy", "force"):
                        raise UserError(f"{st} has no {name}.npy: the {what} carries no {name} labels",
                                        "export labelled frames (energies and forces)")
                    continue
                arr = np.load(f)
                bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1) if arr.size else np.zeros(0, bool)
                if bad.any():
                    raise UserError(f"NaN/inf {name} labels in {what} {s} (frames {np.flatnonzero(bad).tolist()[:10]})",
                                    "remove or relabel those frames; mlipflow's labelers mark such frames failed "
                                    "and leave them out of datasets")
            n_frames += len(np.load(st / "energy.npy"))
    if n_frames == 0:
        raise UserError(f"the {what} is empty (0 frames in {len(systems)} systems)", "label some structures first")
    return n_frames, sorted(elements)


def systems_digest(systems: Sequence[str | Path]) -> str:
    """Content hash of DeePMD systems (every file's bytes, by path relative to its system)."""
    h = hashlib.sha256()
    for s in sorted(Path(x) for x in systems):
        for f in sorted(p for p in s.rglob("*") if p.is_file()):
            h.update(f.relative_to(s.parent).as_posix().encode())
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def export_frames(frames, directory: str | Path, type_map: Sequence[str]) -> list[Path]:
    """Labelled frames as DeePMD npy systems (via :func:`mlipflow.engines.dataset_io.export_deepmd`)."""
    from mlipflow.engines.dataset_io import export_deepmd

    export_deepmd(frames, directory, type_map=list(type_map))
    return system_dirs(directory)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- checkpoints


def is_frozen_model(path: str | Path) -> bool:
    """Whether ``path`` is a frozen TorchScript model (``.pth``) rather than a training checkpoint."""
    p = Path(path)
    if p.suffix == ".pth":
        return True
    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def checkpoint_info(path: str | Path) -> dict[str, Any]:
    """What ``dp --pt show CKPT model-branch type-map descriptor`` reports, read from the checkpoint:
    ``multitask``, ``branches``, ``type_map`` (per branch), ``descriptor`` (type per branch)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"DeePMD checkpoint {p} does not exist",
                        "give the pretrained .pt file (e.g. DPA-2.3.1-v3.0.0rc0.pt), set `dp_pretrained` in the settings "
                        "(MLIPFLOW_DP_PRETRAINED), or make a local base with `mlipflow potential pretrain`")
    if is_frozen_model(p):
        raise UserError(f"{p.name} is a frozen model (.pth); fine-tuning needs the training checkpoint (.pt)",
                        "give the .pt checkpoint the model was trained or distributed as (model.ckpt.pt, "
                        "DPA-2.3.1-v3.0.0rc0.pt); a .pth can only be evaluated or used for MD")
    require_deepmd()
    import torch

    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True)
        if "model" in state:
            state = state["model"]
        params = state["_extra_state"]["model_params"]
    except Exception as exc:  # noqa: BLE001 - anything unreadable is bad input
        raise UserError(f"cannot read {p} as a DeePMD-kit PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:200]})",
                        "give a .pt checkpoint written by `dp --pt train` (DeePMD-kit v3)") from exc
    shared = params.get("shared_dict", {})

    def resolve(v):
        return shared.get(v, v) if isinstance(v, str) else v

    if "model_dict" in params:
        branches = list(params["model_dict"])
        tmaps = {b: list(resolve(m.get("type_map"))) for b, m in params["model_dict"].items()}
        desc = {b: (resolve(m.get("descriptor")) or {}).get("type", "?") for b, m in params["model_dict"].items()}
        aliases = {a: b for b, m in params["model_dict"].items() for a in m.get("model_branch_alias", []) or []}
        return {"path": str(p), "multitask": True, "branches": branches, "aliases": aliases, "type_map": tmaps,
                "descriptor": desc}
    return {"path": str(p), "multitask": False, "branches": ["Default"], "aliases": {},
            "type_map": {"Default": list(params.get("type_map", []))},
            "descriptor": {"Default": (params.get("descriptor") or {}).get("type", "?")}}


def check_base(path: str | Path, branch: str | None, type_map: Sequence[str], allow_new_types: bool = False) -> dict[str, Any]:
    """Fail before training when the base cannot serve: missing/frozen file, unknown branch, elements."""
    info = checkpoint_info(path)
    if info["multitask"]:
        if branch:
            resolved = info["aliases"].get(branch, branch)
            if resolved not in info["branches"]:
                raise UserError(f"the base {Path(path).name} has no model branch {branch!r}; its branches are: "
                                f"{', '.join(info['branches'])}",
                                "pass one of them as --branch/--model-branch (DPFitMaker.model_branch)")
            branch = resolved
        else:
            log.warning("fine-tuning the multi-task base %s without a model branch: DeePMD-kit re-initialises "
                        "the fitting net (branches: %s)", Path(path).name, ", ".join(info["branches"]))
    elif branch and branch != "Default":
        raise UserError(f"{Path(path).name} is a single-task model: it has no branch {branch!r}",
                        "leave the model branch unset (or give a multi-task base)")
    base_types = info["type_map"].get(branch or info["branches"][0], [])
    unknown = [t for t in type_map if t not in base_types]
    if unknown and not allow_new_types:
        raise UserError(f"the data has elements {unknown} that the base {Path(path).name}"
                        f"{f' (branch {branch})' if branch else ''} does not know (its type map: {base_types})",
                        "fine-tune from a base that covers them, train from scratch (no --finetune), or set "
                        "DPSettings.allow_new_types=True to let DeePMD-kit initialise them randomly")
    info["branch"] = branch
    return info


def slim_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """The checkpoint without optimizer state: what ``--finetune`` needs, a fraction of the size."""
    import torch

    state = torch.load(str(src), map_location="cpu", weights_only=True)
    if "model" in state:
        state = {"model": state["model"]}
    torch.save(state, str(dst))
    return Path(dst)


# ----------------------------------------------------------------------------- lcurve


def parse_lcurve(path: str | Path) -> dict[str, list[float | None]]:
    """``lcurve.out`` as columns (header names; NaN -> None)."""
    p = Path(path)
    if not p.is_file():
        return {}
    header: list[str] = []
    rows: list[list[float]] = []
    for line in p.read_text().splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            parts = s.lstrip("#").split()
            if parts and parts[0] == "step":
                header = parts
            continue
        try:
            rows.append([float(x) for x in s.split()])
        except ValueError:
            continue
    if not header:
        return {}
    cols: dict[str, list[float | None]] = {h: [] for h in header}
    for r in rows:
        for h, v in zip(header, r):
            cols[h].append(None if not math.isfinite(v) else v)
    return cols


def plot_lcurve(lcurve: dict[str, list], path: str | Path, title: str = "") -> str | None:
    """Training (and validation) RMSE of energy and force against step (log scale)."""
    if not lcurve.get("step"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    step = lcurve["step"]
    for ax, q in zip(axes, ("rmse_e", "rmse_f")):
        for name, vals in lcurve.items():
            if name.startswith(q + "_") or name == q:
                y = [np.nan if v is None else v for v in vals]
                ax.plot(step, y, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(("energy RMSE (eV/atom)" if q == "rmse_e" else "force RMSE (eV/Å)"))
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


# ----------------------------------------------------------------------------- training

_BATCH_RE = re.compile(r"Batch\s+(\d+):\s*(\S*?)trn:\s*(.*)")

KNOWN_FAILURES = [
    (re.compile(r"No model branch or alias named '([^']+)'\. Available branches are (\[.*?\])"),
     "the base has no such model branch", "use one of the branches listed above"),
    (re.compile(r"Cannot use ``weights_only=True`` with TorchScript|is a zip archive \(did you mean to use torch\.jit\.load"),
     "the --finetune file is a frozen model (.pth)", "give the training checkpoint (.pt)"),
    (re.compile(r"CUDA out of memory|OutOfMemoryError|MemoryError|DefaultCPUAllocator: can't allocate"),
     "DeePMD-kit ran out of memory", "lower DPSettings.batch_size or the model size"),
    (re.compile(r"Did not find valid system|FileNotFoundError: .* not found"),
     "DeePMD-kit found no training systems", "check the exported data directories"),
    (re.compile(r"type_map.*not.*match|not in type_map|KeyError: '([A-Z][a-z]?)'"),
     "the data has an element that is not in the type map", "leave DPSettings.type_map unset (taken from the data)"),
]


def _diagnose(text: str) -> tuple[str, str]:
    for pattern, problem, fix in KNOWN_FAILURES:
        m = pattern.search(text)
        if m:
            detail = m.group(0)[:300]
            return f"{problem} ({detail})", fix
    return "dp --pt train failed", "see the log tail above and the full log; fix the input and rerun"


def _tail(text: str, n: int = 25) -> str:
    lines = [ln for ln in text.splitlines() if "Triton not available" not in ln]
    return "\n".join(lines[-n:])


def run_dp_train(config: dict[str, Any], workdir: str | Path, *, finetune: str | Path | None = None,
                 model_branch: str | None = None, use_pretrain_script: bool = False, threads: int | None = None,
                 progress: bool = False, cmd: str | None = None, doc: DPTrainingDoc | None = None) -> DPTrainingDoc:
    """Write ``config`` as ``input.json`` in ``workdir`` and run ``dp --pt train`` there, streaming
    its output to ``train.log`` (progress bar over steps; every lcurve line logged). Returns the
    ``doc`` filled with the lcurve, log tail and checkpoint; raises :class:`DPTrainingError`
    (``status="failed"``, lcurve and log kept) when DeePMD-kit fails or the loss turns NaN."""
    from tqdm.auto import tqdm

    from mlipflow.output import progress_enabled

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    doc = doc or DPTrainingDoc()
    numb_steps = int(config["training"]["numb_steps"])
    doc.input, doc.numb_steps, doc.workdir = config, numb_steps, str(workdir)
    doc.numb_steps_from = str(config["training"].get("_numb_steps_from", ""))
    (workdir / "input.json").write_text(json.dumps(config, indent=1))
    for stale in (LCURVE, RESULT_FILE, "checkpoint"):
        (workdir / stale).unlink(missing_ok=True)
    for stale in workdir.glob("model.ckpt*.pt"):
        stale.unlink()
    args = dp_command(cmd) + ["train", "input.json"]
    if finetune:
        args += ["--finetune", str(Path(finetune).resolve())]
        if model_branch:
            args += ["--model-branch", model_branch]
        if use_pretrain_script:
            args.append("--use-pretrain-script")
    log_path = workdir / TRAIN_LOG
    doc.log_path = str(log_path)
    env = {**os.environ, **thread_env(threads)}
    log.info("dp train in %s: %d steps%s", workdir, numb_steps,
             f", fine-tuning {Path(finetune).name}" + (f" branch {model_branch}" if model_branch else "") if finetune else "")
    bar = tqdm(total=numb_steps, desc="dp train", disable=not progress_enabled(progress), leave=False, unit="step")
    lines: list[str] = []
    t0 = time.time()
    try:
        proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
    except FileNotFoundError as exc:
        bar.close()
        raise MissingDependencyError("the DeePMD-kit `dp` executable", INSTALL) from exc
    with open(log_path, "w") as fh:
        fh.write("$ " + " ".join(shlex.quote(a) for a in args) + "\n")
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            lines.append(line)
            if len(lines) > 4000:
                del lines[:2000]
            m = _BATCH_RE.search(line)
            if m:
                step = int(m.group(1))
                bar.n = min(step, numb_steps)
                bar.set_postfix_str(m.group(3)[:60])
                bar.refresh()
                log.info("dp train %s/%d %s%s", step, numb_steps, m.group(2) or "", m.group(3).strip())
        proc.stdout.close()
    rc = proc.wait()
    bar.close()
    doc.train_time_s = time.time() - t0
    text = "".join(lines)
    doc.log_tail = _tail(text)
    doc.lcurve = parse_lcurve(workdir / LCURVE)
    ckpt = workdir / CHECKPOINT
    problem = fix = None
    if rc != 0:
        problem, fix = _diagnose(text)
        problem = f"{problem}; exit {rc}"
    elif not ckpt.exists():
        problem, fix = "dp --pt train finished but wrote no model.ckpt.pt", "see the log"
    else:
        trn = [k for k in doc.lcurve if k.startswith("rmse_trn") or k == "rmse_trn"]
        last = [doc.lcurve[k][-1] for k in trn if doc.lcurve[k]]
        if trn and last and all(v is None for v in last):
            problem, fix = ("the training loss became NaN (diverged)",
                            "lower start_lr, check the labels for outliers, or raise the precision")
    if problem:
        doc.status, doc.error = "failed", problem
        (workdir / RESULT_FILE).write_text(doc.model_dump_json(indent=1))
        raise DPTrainingError(f"{problem}; lcurve and log kept in {workdir} (log {log_path}); last lines:\n"
                              f"{_tail(text, 12)}", fix, doc)
    # the pointer file DeePMD-kit keeps may be a symlink: keep a real file under the canonical name
    if ckpt.is_symlink():
        target = ckpt.resolve()
        ckpt.unlink()
        ckpt.write_bytes(target.read_bytes())
    doc.checkpoint = str(ckpt)
    for old in workdir.glob("model.ckpt-*.pt"):
        old.unlink()
    log.info("dp train done in %.0f s (%d steps)", doc.train_time_s, numb_steps)
    return doc


def train_dp(settings: DPSettings | None, train_systems: Sequence[str | Path] | str | Path,
             valid_systems: Sequence[str | Path] | str | Path | None, workdir: str | Path, *,
             type_map: Sequence[str] | None = None, finetune: str | Path | None = None,
             model_branch: str | None = None, seed: int | None = None, member: int = 0,
             progress: bool = False, cmd: str | None = None) -> DPTrainingDoc:
    """Train one DeePMD model with the real ``dp --pt train`` (from scratch, or fine-tuning
    ``finetune`` — a ``.pt`` checkpoint — selecting ``model_branch`` of a multi-task base).

    Validates everything first (see the module docstring). Returns a :class:`DPTrainingDoc` with the
    checkpoint, lcurve and log tail; raises :class:`DPTrainingError` when training fails."""
    settings = settings or DPSettings()
    train = system_dirs(train_systems)
    valid = system_dirs(valid_systems) if valid_systems else []
    n_train, train_elements = check_systems(train, "training data")
    n_valid, valid_elements = check_systems(valid, "test data") if valid else (0, [])
    elements = sorted(set(train_elements) | set(valid_elements))
    tmap = list(type_map or settings.type_map or elements)
    missing = [e for e in elements if e not in tmap]
    if missing:
        raise UserError(f"type map {tmap} lacks the data's elements {missing}", "leave the type map unset (taken from the data)")
    info = None
    if finetune:
        info = check_base(finetune, model_branch, tmap, settings.allow_new_types)
        model_branch = info["branch"]
    require_deepmd()
    seed = settings.seed if seed is None else seed
    config = settings.render(train, valid, tmap, n_train, seed=seed)
    doc = DPTrainingDoc(member=member, seed=seed, type_map=tmap, n_train_frames=n_train, n_test_frames=n_valid,
                        finetune=str(finetune) if finetune else None,
                        finetune_digest=file_digest(finetune) if finetune else None, model_branch=model_branch)
    return run_dp_train(config, workdir, finetune=finetune, model_branch=model_branch,
                        use_pretrain_script=bool(finetune) and settings.use_pretrain_script,
                        threads=settings.threads, progress=progress, cmd=cmd, doc=doc)


def pretrain_dp(heads: dict[str, Sequence[str | Path] | str | Path], workdir: str | Path,
                settings: DPSettings | None = None, *, out: str | Path | None = None,
                valid: dict[str, Sequence[str | Path] | str | Path] | None = None,
                type_map: Sequence[str] | None = None, progress: bool = False, cmd: str | None = None) -> DPTrainingDoc:
    """Train a multi-task DPA-2 base: one shared descriptor, one fitting head per entry of ``heads``
    (name -> DeePMD systems). Saves the checkpoint (without optimizer state) to ``out`` (default
    ``workdir/base.pt``); fine-tune it with ``--finetune out --model-branch <head>``."""
    settings = settings or DPSettings.tiny_dpa2()
    if settings.descriptor != "dpa2":
        log.info("pretraining with descriptor %s (DPA-2 is the usual base)", settings.descriptor)
    systems = {h: system_dirs(s) for h, s in heads.items()}
    vsystems = {h: system_dirs(v) for h, v in (valid or {}).items()}
    n_frames, elements = {}, set()
    for h, sys_ in systems.items():
        n, els = check_systems(sys_, f"data of head {h!r}")
        n_frames[h] = n
        elements.update(els)
    tmap = list(type_map or settings.type_map or sorted(elements))
    require_deepmd()
    config = settings.render_multitask({h: (systems[h], vsystems.get(h)) for h in systems}, tmap, n_frames)
    doc = DPTrainingDoc(seed=settings.seed, type_map=tmap, n_train_frames=sum(n_frames.values()), heads=list(systems))
    doc = run_dp_train(config, workdir, threads=settings.threads, progress=progress, cmd=cmd, doc=doc)
    out = Path(out) if out else Path(workdir) / "base.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    slim_checkpoint(doc.checkpoint, out)
    doc.checkpoint = str(out.resolve())
    doc.plots["lcurve"] = plot_lcurve(doc.lcurve, Path(workdir) / "lcurve.png", "multi-task base") or ""
    (Path(workdir) / RESULT_FILE).write_text(doc.model_dump_json(indent=1))
    return doc


# ----------------------------------------------------------------------------- freeze / test


def freeze_dp(checkpoint: str | Path, output: str | Path, head: str | None = None, threads: int | None = None) -> Path:
    """``dp --pt freeze`` (DeePMD-kit's API, in this process): the checkpoint as a TorchScript
    ``.pth`` (``head``: which branch of a multi-task model)."""
    require_deepmd()
    _apply_threads(threads)
    from deepmd.pt.entrypoints.main import freeze

    output = Path(output).with_suffix(".pth")
    try:
        freeze(model=str(checkpoint), output=str(output), head=head)
    except (AssertionError, KeyError, ValueError) as exc:
        if head is not None:
            info = checkpoint_info(checkpoint)
            raise UserError(f"cannot freeze branch {head!r} of {Path(checkpoint).name} ({exc})",
                            f"use one of its branches: {', '.join(info['branches'])}") from exc
        raise
    return output


@dataclass
class DPTestResult:
    """``dp test`` on a set of systems: metrics plus the per-frame/per-component points."""

    metrics: ErrorMetrics
    energy_ref: np.ndarray          # eV/atom
    energy_pred: np.ndarray
    force_ref: np.ndarray           # eV/Å, flattened components
    force_pred: np.ndarray
    energy_total_pred: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def evaluation(self):
        from mlipflow.engines.ace_eval import Evaluation

        return Evaluation(metrics=self.metrics, energy_ref=self.energy_ref, energy_pred=self.energy_pred,
                          force_ref=self.force_ref, force_pred=self.force_pred, energy_kind="energy")


def test_dp(model: str | Path, systems: Sequence[str | Path] | str | Path, workdir: str | Path,
            name: str = "test", head: str | None = None, threads: int | None = None) -> DPTestResult:
    """``dp --pt test`` (DeePMD-kit's API, in this process) of a frozen model on DeePMD systems:
    energy per atom and force-component MAE/RMSE (from its detail files ``<name>.e_peratom.out``,
    ``<name>.f.out``)."""
    from mlipflow.engines.ace_eval import error_metrics

    require_deepmd()
    _apply_threads(threads)
    dirs = system_dirs(systems)
    check_systems(dirs, f"{name} data")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    listing = workdir / f"{name}_systems.txt"
    listing.write_text("\n".join(str(Path(d).resolve()) for d in dirs) + "\n")
    prefix = workdir / name
    for suf in (".e.out", ".e_peratom.out", ".f.out", ".v.out", ".v_peratom.out"):
        Path(str(prefix) + suf).unlink(missing_ok=True)
    from deepmd.entrypoints.test import test

    test(model=str(model), system=None, datafile=str(listing), numb_test=0, rand_seed=None, shuffle_test=False,
         detail_file=str(prefix), atomic=False, head=head)
    e = np.loadtxt(str(prefix) + ".e_peratom.out", ndmin=2)
    et = np.loadtxt(str(prefix) + ".e.out", ndmin=2)
    f = np.loadtxt(str(prefix) + ".f.out", ndmin=2)
    metrics = error_metrics(e[:, 0], e[:, 1], f[:, :3], f[:, 3:], len(e))
    return DPTestResult(metrics=metrics, energy_ref=e[:, 0], energy_pred=e[:, 1], force_ref=f[:, :3].ravel(),
                        force_pred=f[:, 3:].ravel(), energy_total_pred=et[:, 1])


# ----------------------------------------------------------------------------- model deviation


@dataclass
class DeviationResult:
    """DP-GEN's model deviation per frame (eV/Å for forces, eV/atom for energy)."""

    max_devi_f: np.ndarray
    min_devi_f: np.ndarray
    avg_devi_f: np.ndarray
    devi_e: np.ndarray
    max_devi_v: np.ndarray
    n_models: int = 0

    def classify(self, f_trust_lo: float, f_trust_hi: float) -> list[str]:
        return classify(self.max_devi_f, f_trust_lo, f_trust_hi)

    def ratios(self, f_trust_lo: float, f_trust_hi: float) -> dict[str, float]:
        return trust_ratios(self.classify(f_trust_lo, f_trust_hi))

    def frames(self) -> list[dict[str, float]]:
        return [{"index": i, "max_devi_f": float(a), "min_devi_f": float(b), "avg_devi_f": float(c),
                 "devi_e": float(d), "max_devi_v": float(v)}
                for i, (a, b, c, d, v) in enumerate(zip(self.max_devi_f, self.min_devi_f, self.avg_devi_f,
                                                        self.devi_e, self.max_devi_v))]


def classify(max_devi_f: Sequence[float], f_trust_lo: float, f_trust_hi: float) -> list[str]:
    """DP-GEN trust levels: accurate < ``f_trust_lo`` ≤ candidate < ``f_trust_hi`` ≤ failed."""
    if not f_trust_lo <= f_trust_hi:
        raise UserError(f"f_trust_lo {f_trust_lo} is above f_trust_hi {f_trust_hi}", "give f_trust_lo <= f_trust_hi")
    out = []
    for d in max_devi_f:
        d = float(d)
        if not math.isfinite(d) or d >= f_trust_hi:
            out.append("failed")
        elif d >= f_trust_lo:
            out.append("candidate")
        else:
            out.append("accurate")
    return out


def trust_ratios(classes: Sequence[str]) -> dict[str, float]:
    n = len(classes)
    return {c: (sum(1 for x in classes if x == c) / n if n else 0.0) for c in ("accurate", "candidate", "failed")}


_DEEPPOT_CACHE: dict[tuple, Any] = {}


def load_models(models: Sequence[str | Path], threads: int | None = None) -> list:
    """DeePMD-kit ``DeepPot`` objects for frozen models (same type map required)."""
    require_deepmd()
    _apply_threads(threads)
    from deepmd.infer import DeepPot

    if len(models) < 2:
        raise UserError(f"the model deviation needs at least two models, got {len(models)}",
                        "give every member of the ensemble (model.pth model_1.pth ...)")
    dps = []
    for m in models:
        if not Path(m).is_file():
            raise UserError(f"model {m} does not exist", "check the path")
        st = Path(m).stat()
        key = (str(Path(m).resolve()), st.st_mtime_ns, st.st_size)
        if key not in _DEEPPOT_CACHE:
            if len(_DEEPPOT_CACHE) >= 16:
                _DEEPPOT_CACHE.pop(next(iter(_DEEPPOT_CACHE)))
            _DEEPPOT_CACHE[key] = DeepPot(str(m))
        dps.append(_DEEPPOT_CACHE[key])
    tmaps = [dp.get_type_map() for dp in dps]
    if any(t != tmaps[0] for t in tmaps):
        raise UserError(f"the models have different type maps {tmaps}", "use members of one ensemble")
    return dps


def model_deviation(models: Sequence[Any], frames: Sequence[Any], threads: int | None = None) -> DeviationResult:
    """Model deviation of ``frames`` (ASE Atoms) with an ensemble (frozen model paths or
    ``DeepPot`` objects) through ``deepmd.infer.model_devi.calc_model_devi``: per frame the
    max/min/mean over atoms of the norm of the force standard deviation over models, the energy
    (per atom) standard deviation and the max virial deviation."""
    from deepmd.infer.model_devi import calc_model_devi

    dps = models if models and not isinstance(models[0], (str, Path)) else load_models(models, threads)
    tmap = dps[0].get_type_map()
    n = len(frames)
    cols = np.full((n, 8), np.nan)
    groups: dict[tuple, list[int]] = {}
    for i, at in enumerate(frames):
        groups.setdefault((tuple(at.get_chemical_symbols()), bool(np.all(at.pbc))), []).append(i)
    for (symbols, periodic), idx in groups.items():
        unknown = sorted(set(symbols) - set(tmap))
        if unknown:
            raise UserError(f"frames contain {unknown}, which the models do not know (type map {tmap})",
                            "compute the deviation with models trained on these elements")
        atype = np.array([tmap.index(s) for s in symbols], dtype=int)
        coord = np.array([frames[i].get_positions() for i in idx]).reshape(len(idx), -1)
        box = np.array([np.asarray(frames[i].cell).reshape(-1) for i in idx]) if periodic else None
        devi = calc_model_devi(coord, box, atype, dps)
        cols[idx] = devi
    return DeviationResult(max_devi_v=cols[:, 1], max_devi_f=cols[:, 4], min_devi_f=cols[:, 5],
                           avg_devi_f=cols[:, 6], devi_e=cols[:, 7], n_models=len(dps))


# ----------------------------------------------------------------------------- one ensemble member


def _blob(path: Path, name: str | None = None) -> tuple[str, str]:
    raw = path.read_bytes()
    name = name or path.name
    try:
        text = raw.decode("utf-8")
        if "\x00" not in text:
            return name, text
    except UnicodeDecodeError:
        pass
    return name + ".b64", base64.b64encode(raw).decode("ascii")


def member_key(train_systems, test_systems, settings: DPSettings, seed: int, base: str | Path | None,
               model_branch: str | None, type_map: Sequence[str]) -> list[Any]:
    """Everything that changes a member's result (its :mod:`mlipflow.cache` key inputs)."""
    return ["dp-member", systems_digest(system_dirs(train_systems)),
            systems_digest(system_dirs(test_systems)) if test_systems else None,
            settings.model_dump(mode="json"), int(seed), file_digest(base) if base else None, model_branch,
            list(type_map)]


def fit_dp_member(settings: DPSettings, train_systems, test_systems, workdir: str | Path | None = None, *,
                  seed: int = 0, member: int = 0, finetune: str | Path | None = None,
                  model_branch: str | None = None, type_map: Sequence[str] | None = None,
                  progress: bool = False, include_files: bool = True) -> DPTrainingDoc:
    """One ensemble member end to end: ``dp --pt train`` (scratch or fine-tune), freeze to
    ``model.pth``, a slim ``model.ckpt.pt`` for later fine-tuning, ``dp test`` on the train and test
    splits, parity and lcurve plots. ``workdir`` (default: the cache entry of the member's key) is a
    :mod:`mlipflow.cache` directory entry: finished members with the same inputs are reused
    (``cached=True``). With ``include_files`` the frozen model, checkpoint and lcurve are blobs."""
    from mlipflow import cache
    from mlipflow.engines.ace_eval import parity_plot

    train = system_dirs(train_systems)
    test = system_dirs(test_systems) if test_systems else []
    elements = sorted(set(check_systems(train, "training data")[1]) | set(check_systems(test, "test data")[1] if test else []))
    tmap = list(type_map or settings.type_map or elements)
    key_inputs = member_key(train, test, settings, seed, finetune, model_branch, tmap)
    key = cache.cache_key("dp-train", *key_inputs)
    wd = Path(workdir) if workdir else cache.entry_path("dp-train", key_inputs)

    def build(path: Path) -> DPTrainingDoc:
        doc = train_dp(settings, train, test or None, path, type_map=tmap, finetune=finetune,
                       model_branch=model_branch, seed=seed, member=member, progress=progress)
        frozen = freeze_dp(path / CHECKPOINT, path / "model.pth", threads=settings.threads)
        slim_checkpoint(path / CHECKPOINT, path / CHECKPOINT)
        doc.model = str(frozen)
        for split, systems in (("train", train), ("test", test)):
            if not systems:
                continue
            res = test_dp(frozen, systems, path / "dp_test", name=split, threads=settings.threads)
            setattr(doc, f"{split}_metrics", res.metrics)
            doc.plots[f"{split}_parity"] = parity_plot(res.evaluation(), path / f"{split}_parity.png",
                                                       f"DeePMD member {member} {split} set")
        doc.plots["lcurve"] = plot_lcurve(doc.lcurve, path / "lcurve.png", f"DeePMD member {member}") or ""
        doc.input_hash = key
        (path / RESULT_FILE).write_text(doc.model_dump_json(indent=1))
        return doc

    def load(path: Path) -> DPTrainingDoc:
        doc = DPTrainingDoc.model_validate_json((path / RESULT_FILE).read_text())
        doc.cached = True
        return doc

    doc = cache.directory(wd, key, build, load, kind="dp-train")
    doc.member, doc.seed = member, seed
    if include_files:
        for p in (Path(doc.model), Path(doc.workdir) / CHECKPOINT, Path(doc.workdir) / LCURVE, Path(doc.workdir) / "input.json"):
            if p.is_file():
                name, content = _blob(p)
                doc.files[name] = content
    return doc


def training_summary(doc: DPTrainingDoc) -> dict[str, Any]:
    return json.loads(doc.model_dump_json(include={"status", "member", "seed", "numb_steps", "train_metrics",
                                                   "test_metrics", "train_time_s", "cached", "workdir"}))


# ----------------------------------------------------------------------------- base data


#: Profiles of `mlipflow potential pretrain`: head name -> what its cells are.
PRETRAIN_PROFILES = {
    "lifepo4": {"Domains_Anode": "olivine LixFePO4 cells (x = 1, 0.75, 0.5, 0.25, 0), rattled and strained",
                "Domains_Oxide": "random Li2O-FeO-P2O5 cells over a composition grid (30 atoms)"},
    "metals": {"CuAl": "rattled fcc Cu-Al cells (EMT-compatible)", "CuNi": "rattled fcc Cu-Ni cells (EMT-compatible)"},
}


def pretrain_structures(profile: str = "lifepo4", n_per_head: int = 20, seed: int = 0) -> dict[str, list]:
    """Generated cells per head (pymatgen Structures) for a local multi-task base."""
    from pymatgen.io.ase import AseAtomsAdaptor

    if profile not in PRETRAIN_PROFILES:
        raise UserError(f"unknown pretrain profile {profile!r}", f"use one of {', '.join(PRETRAIN_PROFILES)}")
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {}
    if profile == "lifepo4":
        from mlipflow.generation import amorphous_structures, olivine_supercell

        anode = []
        xs = [1.0, 0.75, 0.5, 0.25, 0.0]
        for i in range(n_per_head):
            st, _ = olivine_supercell((1, 1, 1), x=xs[i % len(xs)], seed=seed + i, rattle=0.04 + 0.08 * rng.random(),
                                      polarons="random" if xs[i % len(xs)] < 1 else None)
            st.scale_lattice(st.volume * (1 + rng.uniform(-0.05, 0.05)))
            anode.append(st)
        out["Domains_Anode"] = anode
        cells = amorphous_structures("Li2O,FeO,P2O5", step=0.5, atoms=30, scales=(0.95, 1.0, 1.05), use_mp=False,
                                     seed=seed, min_distance=1.6)
        oxide = [st for st, _ in cells]
        while len(oxide) < n_per_head:  # rattled copies when the grid has fewer cells than asked
            st = oxide[len(oxide) % len(cells)].copy()
            st.perturb(0.1)
            oxide.append(st)
        out["Domains_Oxide"] = oxide[:n_per_head]
        return out
    from ase.build import bulk

    for head, other in (("CuAl", "Al"), ("CuNi", "Ni")):
        cells = []
        for _ in range(n_per_head):
            at = bulk("Cu", "fcc", a=3.6 if other == "Al" else 3.55, cubic=True) * (2, 1, 1)
            syms = at.get_chemical_symbols()
            k = int(rng.integers(1, len(at)))
            for j in rng.choice(len(at), size=k, replace=False):
                syms[j] = other
            at.set_chemical_symbols(syms)
            at.set_cell(at.cell * (1 + rng.uniform(-0.03, 0.03)), scale_atoms=True)
            at.rattle(0.05 + 0.1 * rng.random(), seed=int(rng.integers(1 << 30)))
            cells.append(AseAtomsAdaptor.get_structure(at))
        out[head] = cells
    return out


def pretrain_heads(profile: str = "lifepo4", labeler: str | None = None, n_per_head: int = 20, seed: int = 0,
                   progress: bool = False) -> dict[str, list]:
    """Labelled frames per head: :func:`pretrain_structures` labelled with ``labeler``
    (default: chgnet for ``lifepo4``, emt for ``metals``); failed labels are dropped."""
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.schemas import FrameStatus

    labeler = labeler or ("emt" if profile == "metals" else "chgnet")
    lab = get_labeler(labeler)
    out = {}
    for head, structures in pretrain_structures(profile, n_per_head, seed).items():
        frames = lab.label(structures, source=f"pretrain:{head}", progress=progress)
        ok = [f for f in frames if f.status == FrameStatus.ok]
        if len(ok) < len(frames):
            log.warning("pretrain head %s: %d of %d labels failed (dropped)", head, len(frames) - len(ok), len(frames))
        out[head] = ok
    return out


def train_local_base(workdir: str | Path, out: str | Path, profile: str = "lifepo4", labeler: str | None = None,
                     n_per_head: int = 24, steps: int = 2000, seed: int = 0,
                     progress: bool = False) -> tuple[DPTrainingDoc, dict[str, int]]:
    """The local multi-task DPA-2 base (`mlipflow potential pretrain`): :func:`pretrain_heads`
    labelled, exported and trained (:func:`pretrain_dp`, the ``tiny_dpa2`` preset) into ``out``.
    Returns the training document and the number of labelled cells per head."""
    import tempfile

    heads = pretrain_heads(profile, labeler, n_per_head, seed, progress=progress)
    tmap = sorted({el for frames in heads.values() for f in frames for el in f.elements})
    with tempfile.TemporaryDirectory(prefix="mlipflow-dp-base-") as tmp:
        dirs = {h: export_frames(frames, Path(tmp) / h, tmap) for h, frames in heads.items()}
        doc = pretrain_dp(dirs, workdir, DPSettings.tiny_dpa2(numb_steps=steps, seed=seed + 1), out=out, type_map=tmap,
                          progress=progress)
    return doc, {h: len(frames) for h, frames in heads.items()}


def potential_files_hash(docs: Sequence[DPTrainingDoc]) -> str:
    return content_hash("dp-ensemble", [d.input_hash for d in docs])
