"""ACE fitting with pacemaker: settings -> input.yaml -> ``pacemaker`` -> .yaml/.yace/.asi + metrics.

* :class:`AceFitSettings` renders pacemaker's ``input.yaml``. Defaults follow the published
  NaFePO4 ACE input (docs/ace.md lists each value with its provenance); :meth:`AceFitSettings.tiny`
  and :meth:`AceFitSettings.mini` are small presets for tests and laptop runs.
* :func:`fit_ace` runs the real ``pacemaker`` CLI in ``workdir`` (subprocess, one thread,
  log streamed to ``workdir/pacemaker.log`` with a progress bar), then ``pace_yaml2yace``
  and ``pace_activeset``, computes train/test errors with ``PyACECalculator`` and draws
  parity plots. ``workdir`` is a :mod:`mlipflow.cache` directory entry: a finished fit with the
  same input hash (data content + settings + warm start) is reused instead of refitting.
* :func:`potential_doc` turns a :class:`FitResult` into a :class:`~mlipflow.schemas.PotentialDoc`
  with the files as blobs (text as-is, the binary ``.asi`` as base64 under ``<name>.b64``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from mlipflow.errors import MissingDependencyError, UserError
from mlipflow.schemas.base import Model, content_hash
from mlipflow.schemas.potentials import ErrorMetrics, PotentialDoc

log = logging.getLogger(__name__)

#: fs_parameters of the paper's FinnisSinclairShiftedScaled embedding (ndensity 8: 8 pairs).
PAPER_FS_PARAMETERS = [1, 1, 1, 0.5, 1, 0.75, 1, 0.25, 1, 0.125, 1, 0.375, 1, 0.875, 1, 2]

#: Options pacemaker accepts but that break here (see /work/shared/ENVIRONMENT.md).
FORBIDDEN_FIT_OPTIONS = {
    "min_relative_test_loss_per_iter": (
        "pacemaker 0.4.0rc1 raises TestLossChangeTooSmallException outside the optimizer callback: "
        "the run crashes at the end and writes no output_potential.yaml",
        "use train-loss early stopping (min_relative_train_loss_per_iter, early_stopping_patience)",
    ),
}

THREAD_ENV = {
    "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg", "CUDA_VISIBLE_DEVICES": "",
}

RESULT_FILE = "fit_result.json"


class AceFitSettings(Model):
    """pacemaker fit settings; :meth:`render` gives the ``input.yaml`` dictionary."""

    model_config = {"extra": "forbid"}

    elements: list[str] | None = Field(None, description="Elements; None = those in the training data.")
    cutoff: float = Field(6.5, gt=0, description="Outer cutoff rcut (Å). Paper: 6.5.")
    dcut: float = Field(0.01, description="Cutoff smoothing width (Å).")
    radbase: str = Field("SBessel", description="Radial basis. Paper: SBessel.")
    radparameters: list[float] = Field(default_factory=lambda: [5.25], description="Radial basis parameters.")
    npot: str = Field("FinnisSinclairShiftedScaled", description="Embedding. Paper: FinnisSinclairShiftedScaled.")
    ndensity: int = Field(8, ge=1, description="Number of densities. Paper: 8.")
    fs_parameters: list[float] = Field(default_factory=lambda: list(PAPER_FS_PARAMETERS),
                                       description="Embedding parameters (2 per density). Paper values.")
    lmax_by_orders: list[int] = Field(default_factory=lambda: [0, 4, 2, 0], description="Paper: [0,4,2,0].")
    nradmax_by_orders: list[int] = Field(default_factory=lambda: [15, 3, 2, 1], description="Paper: [15,3,2,1].")
    number_of_functions_per_element: int | None = Field(250, description="Basis size per element. Paper: ~250.")
    ladder_step: int | float | list[int | float] | None = Field(
        [100, 0.2], description="Ladder (hierarchical) fitting step [discrete, fraction]; None = no ladder.")
    ladder_type: str = Field("power_order", description="Ladder ordering. Paper: power_order.")
    optimizer: str = Field("BFGS", description="Minimizer. Paper: BFGS.")
    maxiter: int = Field(2000, ge=1, description="Iterations per (ladder) fit. Paper: 2000.")
    pacemaker_test: bool = Field(
        False, description="Also give pacemaker the test set (its test curves in log.txt and test_cycle_metrics.txt). "
        "It traces a second TensorFlow graph (about 40 s per fit at 100 functions per element on one core); "
        "mlipflow's test metrics and parity plots are computed after the fit either way.")
    warm_start_maxiter: int | None = Field(
        None, ge=1, description="Iterations of a fit that continues from a previous potential (the refits of "
        "active learning start close to their minimum); None: maxiter.")
    kappa: float | Literal["auto"] = Field(0.3, description="Energy/force loss balance (0..1, or 'auto').")
    L1_coeffs: float = Field(1e-8, description="L1 regularisation.")
    L2_coeffs: float = Field(1e-8, description="L2 regularisation.")
    repulsion: str | None = Field("auto", description="Core repulsion (ZBL inner cutoff). Paper: auto.")
    min_relative_train_loss_per_iter: float | None = Field(
        5e-5, description="Train-loss early stopping threshold (relative change per iteration).")
    early_stopping_patience: int = Field(200, description="Iterations below the threshold before stopping.")
    weighting: dict[str, Any] | None = Field(None, description="pacemaker weighting policy (None = uniform).")
    reference_energy: dict[str, float] | Literal["auto"] | float | None = Field(
        None, description="Only used when the data has no energy_corrected: isolated-atom energies "
        "(the dataset's reference energies), 'auto' or a constant.")
    evaluator: Literal["tensorpot", "pyace"] = Field("tensorpot", description="Fitting backend.")
    batch_size: int = Field(100, description="Structures per batch in the tensorpot backend.")
    display_step: int = Field(50, description="Iterations between test-set evaluations in the log.")
    seed: int = Field(42, description="Random seed.")
    extra_fit: dict[str, Any] = Field(default_factory=dict, description="Further raw 'fit' options.")
    compute_active_set: bool = Field(True, description="Run pace_activeset after the fit.")

    @field_validator("extra_fit")
    @classmethod
    def _no_broken_options(cls, v):
        for key, (why, fix) in FORBIDDEN_FIT_OPTIONS.items():
            if key in v:
                raise ValueError(f"{key} is not allowed: {why}; {fix}")
        return v

    @model_validator(mode="after")
    def _check_fs(self):
        if self.npot == "FinnisSinclairShiftedScaled" and len(self.fs_parameters) != 2 * self.ndensity:
            raise ValueError(
                f"fs_parameters needs 2*ndensity = {2 * self.ndensity} values, got {len(self.fs_parameters)}")
        if len(self.lmax_by_orders) != len(self.nradmax_by_orders):
            raise ValueError("lmax_by_orders and nradmax_by_orders must have the same length (one per order)")
        return self

    # --- presets -------------------------------------------------------------------------
    @classmethod
    def paper(cls, **kw) -> "AceFitSettings":
        """The published NaFePO4 settings (the defaults)."""
        return cls(**kw)

    @classmethod
    def tiny(cls, **kw) -> "AceFitSettings":
        """Seconds-scale fits for tests: ~15 functions/element, 40 BFGS iterations, no ladder."""
        base = dict(cutoff=5.0, ndensity=2, fs_parameters=[1, 1, 1, 0.5], lmax_by_orders=[0, 3, 2, 0],
                    nradmax_by_orders=[12, 3, 2, 1], number_of_functions_per_element=15, ladder_step=None,
                    maxiter=40, display_step=20, min_relative_train_loss_per_iter=None)
        base.update(kw)
        return cls(**base)

    @classmethod
    def mini(cls, **kw) -> "AceFitSettings":
        """Laptop campaigns: 60 functions/element, 4 densities, short ladder, 300 iterations."""
        base = dict(cutoff=6.0, ndensity=4, fs_parameters=PAPER_FS_PARAMETERS[:8],
                    number_of_functions_per_element=60, ladder_step=[20, 0.3], maxiter=300,
                    display_step=50)
        base.update(kw)
        return cls(**base)

    # --- rendering -----------------------------------------------------------------------
    def render(self, train_filename: str, test_filename: str | None, elements: list[str],
               warm_start: str | None = None, use_reference_energy: bool = False) -> dict[str, Any]:
        """The pacemaker input.yaml as a dictionary."""
        functions: dict[str, Any] = {
            "ALL": {"nradmax_by_orders": list(self.nradmax_by_orders), "lmax_by_orders": list(self.lmax_by_orders)}
        }
        if self.number_of_functions_per_element:
            functions = {"number_of_functions_per_element": int(self.number_of_functions_per_element), **functions}
        embedding: dict[str, Any] = {"npot": self.npot, "ndensity": int(self.ndensity)}
        if self.npot.startswith("FinnisSinclair"):
            embedding["fs_parameters"] = [float(x) for x in self.fs_parameters]
        potential: dict[str, Any] = {
            "deltaSplineBins": 0.001,
            "elements": sorted(elements),
            "embeddings": {"ALL": embedding},
            "bonds": {"ALL": {"radbase": self.radbase, "radparameters": [float(x) for x in self.radparameters],
                              "rcut": float(self.cutoff), "dcut": float(self.dcut),
                              "NameOfCutoffFunction": "cos"}},
            "functions": functions,
        }
        if warm_start:
            # Continue fitting the previous potential (its basis and coefficients), as
            # `pacemaker -p previous.yaml` does. `initial_potential` would switch on the ladder
            # scheme, which stops at once when the basis is already complete (and then crashes
            # in pacemaker's prediction step).
            potential = str(warm_start)  # type: ignore[assignment]
        data: dict[str, Any] = {"filename": str(train_filename)}
        if test_filename and self.pacemaker_test:
            data["test_filename"] = str(test_filename)
        if use_reference_energy and self.reference_energy is not None:
            data["reference_energy"] = self.reference_energy
        fit: dict[str, Any] = {
            "loss": {"kappa": self.kappa, "L1_coeffs": self.L1_coeffs, "L2_coeffs": self.L2_coeffs},
            "optimizer": self.optimizer,
            "maxiter": int(self.warm_start_maxiter if warm_start and self.warm_start_maxiter else self.maxiter),
        }
        if self.weighting:
            fit["weighting"] = dict(self.weighting)
        if self.repulsion:
            fit["repulsion"] = self.repulsion
        if self.ladder_step is not None and not warm_start:
            fit["ladder_step"] = self.ladder_step
            fit["ladder_type"] = self.ladder_type
        if self.min_relative_train_loss_per_iter:
            fit["min_relative_train_loss_per_iter"] = float(self.min_relative_train_loss_per_iter)
            fit["early_stopping_patience"] = int(self.early_stopping_patience)
        fit.update(self.extra_fit)
        return {
            "seed": int(self.seed),
            "metadata": {"origin": "mlipflow"},
            "potential": potential,
            "data": data,
            "fit": fit,
            "backend": {"evaluator": self.evaluator, "batch_size": int(self.batch_size),
                        "display_step": int(self.display_step)},
        }

    def render_yaml(self, *args, **kwargs) -> str:
        import yaml

        return yaml.safe_dump(self.render(*args, **kwargs), sort_keys=False, default_flow_style=None)


class FitResult(Model):
    """What a pacemaker fit produced (saved as ``workdir/fit_result.json``)."""

    workdir: str
    input_hash: str
    elements: list[str]
    cutoff: float
    potential_yaml: str
    potential_yace: str | None = None
    active_set: str | None = None
    input_yaml: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    train_metrics: ErrorMetrics = Field(default_factory=ErrorMetrics)
    test_metrics: ErrorMetrics = Field(default_factory=ErrorMetrics)
    plots: dict[str, str] = Field(default_factory=dict)
    fit_time_s: float | None = None
    warm_start: str | None = None
    warm_start_hash: str | None = None
    n_functions: dict[str, int] = Field(default_factory=dict)
    cached: bool = False
    log: str | None = None


# ----------------------------------------------------------------------------- helpers

def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content (gzip files: of the decompressed bytes, so re-compression
    with a different timestamp gives the same digest)."""
    from mlipflow.engines.ace_eval import _gunzipped_bytes

    return hashlib.sha256(_gunzipped_bytes(Path(path))).hexdigest()


def _read_df(path: Path):
    from mlipflow.engines.ace_eval import _read_pickle

    return _read_pickle(path)


def _check_numpy() -> None:
    major, minor = (int(x) for x in np.__version__.split(".")[:2])
    if (major, minor) >= (2, 4):
        raise UserError(
            f"numpy {np.__version__} breaks pacemaker's fit metrics (TypeError: only 0-dimensional arrays "
            "can be converted to Python scalars)",
            "install numpy 2.3.5: pip install -c constraints.txt numpy==2.3.5")


def _which(cmd: str) -> list[str]:
    """Split a command; bare names are looked up next to the running Python first (the venv)."""
    parts = shlex.split(cmd)
    exe = parts[0]
    if os.sep not in exe:
        cand = Path(sys.executable).parent / exe
        if cand.exists():
            parts[0] = str(cand)
    return parts


KNOWN_FAILURES = [
    (re.compile(r"only 0-dimensional arrays can be converted|only length-1 arrays"),
     "pacemaker failed in its fit metrics: this is the numpy >= 2.4 incompatibility",
     "install numpy 2.3.5: pip install -c constraints.txt numpy==2.3.5"),
    (re.compile(r"TestLossChangeTooSmallException"),
     "pacemaker stopped on test-loss early stopping and wrote no potential",
     "do not set min_relative_test_loss_per_iter; use min_relative_train_loss_per_iter"),
    (re.compile(r"Neither 'energy_corrected' column nor|Column `energy` or `energy_corrected` not found"),
     "the training data has no usable energy column",
     "export the dataset with energy_corrected or give reference energies (AceFitSettings.reference_energy)"),
    (re.compile(r"Column `forces` not found|forces has wrong shape"),
     "the training data has no (or badly shaped) forces", "export forces of shape (natoms, 3) per structure"),
    (re.compile(r"Unsupported species|KeyError: '([A-Z][a-z]?)'"),
     "the data contains elements that are not in the potential's element list",
     "leave AceFitSettings.elements unset (taken from the data) or add the missing elements"),
    (re.compile(r"No such file or directory|FileNotFoundError"),
     "pacemaker could not find an input file", "check the data and initial-potential paths"),
    (re.compile(r"MemoryError|OOM|ResourceExhausted"),
     "pacemaker ran out of memory", "lower AceFitSettings.batch_size or the basis size"),
]


def _diagnose(text: str, what: str) -> UserError | RuntimeError:
    for pattern, problem, fix in KNOWN_FAILURES:
        if pattern.search(text):
            return UserError(f"{what}: {problem}", fix)
    tail = "\n".join(text.strip().splitlines()[-15:])
    return RuntimeError(f"{what} failed; last lines of its log:\n{tail}")


_ITER_RE = re.compile(r"Iteration\s+#(\d+)")
_LADDER_RE = re.compile(r"Current basis set size: (\d+)")


def _run_streamed(cmd: list[str], cwd: Path, log_path: Path, progress: bool, total: int | None,
                  desc: str) -> tuple[int, str]:
    """Run ``cmd`` in ``cwd``, append its output to ``log_path``, show a progress bar."""
    from tqdm.auto import tqdm

    from mlipflow.output import progress_enabled

    env = {**os.environ, **THREAD_ENV}
    bar = tqdm(total=total, desc=desc, disable=not progress_enabled(progress), leave=False, unit="it")
    lines: list[str] = []
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
    except FileNotFoundError as exc:
        bar.close()
        raise MissingDependencyError(f"{cmd[0]} (pacemaker/pyace)", "pip install python-ace==0.4.0rc1") from exc
    with open(log_path, "a") as fh:
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            lines.append(line)
            if len(lines) > 4000:
                del lines[:2000]
            m = _ITER_RE.search(line)
            if m and total:
                it = int(m.group(1))
                if it < bar.n:  # new ladder step: restart the bar
                    bar.reset(total=total)
                bar.n = min(it, total)
                bar.refresh()
            m = _LADDER_RE.search(line)
            if m:
                bar.set_postfix_str(f"basis {m.group(1)}")
                log.info("pacemaker: basis size %s", m.group(1))
    rc = proc.wait()
    proc.stdout.close()
    bar.close()
    return rc, "".join(lines)


def _elements_of(df) -> list[str]:
    els: set[str] = set()
    for at in df["ase_atoms"]:
        els.update(at.get_chemical_symbols())
    return sorted(els)


def _load_result(workdir: Path) -> FitResult:
    res = FitResult.model_validate_json((workdir / RESULT_FILE).read_text())
    res.cached = True
    return res


# ----------------------------------------------------------------------------- fit

def potential_digest(path: str | Path) -> str:
    """SHA-256 of an ACE potential YAML without its ``metadata`` block (pacemaker writes start times
    and the user there), so two runs that fitted the same numbers give the same digest."""
    import yaml

    text = Path(path).read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        return file_digest(path)
    data.pop("metadata", None)
    return content_hash("ace-potential", data)


def fit_input_hash(train_pickle: str | Path, test_pickle: str | Path | None, settings: AceFitSettings,
                   warm_start: str | Path | None = None) -> str:
    """Cache key of a fit: data content, settings and the warm-start potential's content."""
    return content_hash(
        "pacemaker-fit",
        file_digest(train_pickle),
        file_digest(test_pickle) if test_pickle else None,
        settings.model_dump(mode="json", exclude_none=True),  # unset options (None) do not enter the key
        potential_digest(warm_start) if warm_start else None,
    )


def fit_ace(train_pickle: str | Path, test_pickle: str | Path | None, settings: AceFitSettings | None,
            workdir: str | Path, warm_start: str | Path | None = None, progress: bool = True,
            cmd: str | None = None, force: bool = False) -> FitResult:
    """Fit an ACE potential with the real pacemaker in ``workdir``.

    ``workdir`` is a directory entry of :mod:`mlipflow.cache`: when it holds a finished fit with
    the same input hash (its completion marker), the earlier :class:`FitResult` is returned with
    ``cached=True``; a fit killed half-way is redone. Raises :class:`UserError` for bad input and
    pacemaker's known failure modes, ``RuntimeError`` for anything else (with the log tail).
    """
    from mlipflow import cache

    settings = settings or AceFitSettings()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    train_pickle = Path(train_pickle).resolve()
    test_pickle = Path(test_pickle).resolve() if test_pickle else None
    for p in (train_pickle, test_pickle, Path(warm_start) if warm_start else None):
        if p is not None and not p.exists():
            raise UserError(f"{p} does not exist", "check the path")
    input_hash = fit_input_hash(train_pickle, test_pickle, settings, warm_start)
    if force:
        (workdir / cache.MARKER).unlink(missing_ok=True)
    return cache.directory(workdir, input_hash, kind="ace-fit", clear=False, load=_load_result,
                           build=lambda wd: _fit(train_pickle, test_pickle, settings, wd, warm_start, progress, cmd,
                                                 input_hash))


def _fit(train_pickle: Path, test_pickle: Path | None, settings: AceFitSettings, workdir: Path,
         warm_start: str | Path | None, progress: bool, cmd: str | None, input_hash: str) -> FitResult:
    _check_numpy()

    train_df = _read_df(train_pickle)
    for col in ("ase_atoms", "forces"):
        if col not in train_df.columns:
            raise UserError(f"{train_pickle.name} has no '{col}' column",
                            "export the dataset with mlipflow (pacemaker format)")
    has_corrected = "energy_corrected" in train_df.columns
    if not has_corrected and "energy" not in train_df.columns:
        raise UserError(f"{train_pickle.name} has neither 'energy_corrected' nor 'energy'", "add energies")
    if not has_corrected and settings.reference_energy is None:
        log.warning("no energy_corrected column and no reference energies: pacemaker will use "
                    "reference_energy: auto")
        settings = settings.model_copy(update={"reference_energy": "auto"})
    elements = sorted(settings.elements) if settings.elements else _elements_of(train_df)
    missing = set(_elements_of(train_df)) - set(elements)
    if missing:
        raise UserError(f"training data contains {sorted(missing)} not in elements {elements}",
                        "leave elements unset or add the missing ones")

    warm = None
    if warm_start:
        warm = workdir / "initial_potential.yaml"
        if Path(warm_start).resolve() != warm:
            warm.write_text(Path(warm_start).read_text())
    input_dict = settings.render(str(train_pickle), str(test_pickle) if test_pickle else None, elements,
                                 warm_start=warm.name if warm else None,
                                 use_reference_energy=not has_corrected)
    import yaml

    (workdir / "input.yaml").write_text(yaml.safe_dump(input_dict, sort_keys=False, default_flow_style=None))
    out_yaml = workdir / "output_potential.yaml"
    for stale in (out_yaml, workdir / "output_potential.yace", workdir / "output_potential.asi",
                  workdir / RESULT_FILE):
        stale.unlink(missing_ok=True)
    log_path = workdir / "pacemaker.log"
    log_path.write_text("")
    exe = cmd or _settings_cmd()
    t0 = time.time()
    log.info("pacemaker fit in %s (%d train structures, elements %s)", workdir, len(train_df), elements)
    rc, text = _run_streamed(_which(exe) + ["input.yaml"], workdir, log_path, progress, settings.maxiter,
                             "pacemaker")
    if rc != 0:
        raise _diagnose(text, f"pacemaker (exit {rc}, log {log_path})")
    if not out_yaml.exists():
        err = _diagnose(text, f"pacemaker finished but wrote no {out_yaml.name} (log {log_path})")
        if isinstance(err, RuntimeError):
            raise RuntimeError(f"pacemaker finished but wrote no {out_yaml.name}; see {log_path}. "
                               "Known cause: test-loss early stopping (min_relative_test_loss_per_iter).")
        raise err

    yace = workdir / "output_potential.yace"
    rc, text = _run_streamed(_which("pace_yaml2yace") + [out_yaml.name, "-o", yace.name], workdir, log_path,
                             False, None, "yaml2yace")
    if rc != 0 or not yace.exists():
        raise _diagnose(text, "pace_yaml2yace")
    asi = None
    if settings.compute_active_set:
        asi = workdir / "output_potential.asi"
        rc, text = _run_streamed(_which("pace_activeset") + ["-d", str(train_pickle), out_yaml.name], workdir,
                                 log_path, False, None, "activeset")
        if rc != 0 or not asi.exists():
            if "Insufficient atomic environments" in text or "under-determined" in text:
                raise UserError(
                    "pace_activeset: fewer atoms of some element in the training data than basis functions, "
                    "so no active set exists",
                    "add training structures or lower number_of_functions_per_element")
            raise _diagnose(text, "pace_activeset")
    fit_time = time.time() - t0

    from pyace import ACEBBasisSet

    basis = ACEBBasisSet(str(out_yaml))
    n_funcs = {}
    try:
        from pyace.activelearning import compute_number_of_functions

        n_funcs = {el: int(n) for el, n in zip(basis.elements_name, compute_number_of_functions(basis))}
    except Exception:  # noqa: BLE001 - informative only
        pass
    result = FitResult(
        workdir=str(workdir), input_hash=input_hash, elements=list(basis.elements_name),
        cutoff=float(basis.cutoffmax), potential_yaml=str(out_yaml), potential_yace=str(yace),
        active_set=str(asi) if asi else None, input_yaml=input_dict, settings=settings.model_dump(mode="json"),
        fit_time_s=fit_time, warm_start=str(warm_start) if warm_start else None,
        warm_start_hash=potential_digest(warm_start) if warm_start else None, n_functions=n_funcs,
        log=str(log_path),
    )
    _metrics(result, train_df, test_pickle, settings, progress)
    (workdir / RESULT_FILE).write_text(result.model_dump_json(indent=1))
    log.info("pacemaker fit done in %.0f s: test energy RMSE %s eV/atom, force RMSE %s eV/Å", fit_time,
             _fmt(result.test_metrics.energy_rmse), _fmt(result.test_metrics.force_rmse))
    return result


def _fmt(x):
    return "n/a" if x is None else f"{x:.4g}"


def _settings_cmd() -> str:
    try:
        from mlipflow.settings import get_settings

        return get_settings().executables.pacemaker_cmd
    except Exception:  # noqa: BLE001 - settings file problems should not block a fit
        return "pacemaker"


def _metrics(result: FitResult, train_df, test_pickle: Path | None, settings: AceFitSettings,
             progress: bool) -> None:
    """Train/test errors with PyACECalculator on the final potential, and parity plots."""
    from mlipflow.engines.ace_eval import evaluate_calculator, load_labeled, parity_plot
    from mlipflow.engines.potentials import calculator

    refs = settings.reference_energy if isinstance(settings.reference_energy, dict) else None
    calc = calculator(result.potential_yaml)
    wd = Path(result.workdir)
    sets = [("train", train_df)]
    if test_pickle:
        sets.append(("test", _read_df(test_pickle)))
    for name, df in sets:
        atoms, energies, forces, kind = load_labeled(df, refs)
        if kind == "energy" and settings.reference_energy is not None:
            log.info("%s metrics use total energies per atom (pacemaker's own references not applied)", name)
        ev = evaluate_calculator(calc, atoms, energies, forces, kind=kind, progress=progress)
        setattr(result, f"{name}_metrics", ev.metrics)
        result.plots[f"{name}_parity"] = parity_plot(ev, wd / f"{name}_parity.png", f"ACE {name} set")


# ----------------------------------------------------------------------------- documents

def _blob(path: Path) -> tuple[str, str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "binary")
        return path.name, text
    except UnicodeDecodeError:
        return path.name + ".b64", base64.b64encode(raw).decode("ascii")


def potential_doc(result: FitResult, name: str = "", dataset=None, warm_start_from=None,
                  include_files: bool = True) -> PotentialDoc:
    """A :class:`PotentialDoc` with the fitted files as blobs (the .asi base64-encoded), each with
    its role (model, yace, active_set, input) so that :func:`mlipflow.engines.potentials.materialize`
    writes them back under canonical names."""
    files: dict[str, str] = {}
    paths: dict[str, str] = {}
    roles: dict[str, str] = {}
    input_yaml = Path(result.workdir) / "input.yaml"
    for role, p in (("model", result.potential_yaml), ("yace", result.potential_yace), ("active_set", result.active_set),
                    ("input", str(input_yaml))):
        if p and Path(p).exists():
            paths[role] = str(p)
            if include_files:
                fname, content = _blob(Path(p))
                files[fname] = content
                roles[role] = fname
    return PotentialDoc(
        kind="ace", name=name, elements=result.elements, cutoff=result.cutoff, dataset=dataset,
        fit_settings=result.input_yaml, train_metrics=result.train_metrics, test_metrics=result.test_metrics,
        files=files, roles=roles, paths=paths, has_active_set=bool(result.active_set), warm_start_from=warm_start_from,
        fit_time_s=result.fit_time_s, plots=dict(result.plots), input_hash=result.input_hash,
    )


def result_summary(result: FitResult) -> dict[str, Any]:
    return json.loads(result.model_dump_json(include={"input_hash", "elements", "train_metrics",
                                                       "test_metrics", "fit_time_s", "cached"}))
