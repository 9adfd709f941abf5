"""What the command line prints: verbosity, logging and progress bars in one place.

Three levels, set by ``mlipflow -v``/``-q`` before the command (or ``MLIPFLOW_VERBOSITY=0|1|2`` for
workers and scripts):

* ``quiet`` (0): errors, warnings of mlipflow and each command's results; no progress bars.
* ``normal`` (1, default): also one line when a job starts and one when it finishes (name and
  seconds, no uuid), and progress bars; third-party warnings and logs are hidden.
* ``verbose`` (2): everything — mlipflow's and jobflow's INFO logs, third-party warnings and what
  CHGNet, TensorFlow or pacemaker print when they load.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings

QUIET, NORMAL, VERBOSE = 0, 1, 2
_ENV = "MLIPFLOW_VERBOSITY"
_INITIAL = os.environ.get(_ENV)  # what the process was started with (a command without -v/-q returns to it)


def verbosity() -> int:
    try:
        return max(QUIET, min(VERBOSE, int(os.environ.get(_ENV, NORMAL))))
    except ValueError:
        return NORMAL


def set_verbosity(level: int | None) -> None:
    """Set the level for this process and the processes it starts (workers, subprocess jobs);
    None: the level the process was started with."""
    if level is None:
        if _INITIAL is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = _INITIAL
        return
    os.environ[_ENV] = str(max(QUIET, min(VERBOSE, int(level))))


def progress_enabled(requested: bool | None = True) -> bool:
    """Whether a progress bar is shown: never in quiet mode; ``None`` (the makers' default) shows it
    only on an interactive terminal, so batch logs of workers get none."""
    if requested is None:
        import sys

        return verbosity() > QUIET and sys.stderr.isatty()
    return bool(requested) and verbosity() > QUIET


@contextlib.contextmanager
def third_party_prints():
    """Hide what a library prints to stdout while it loads (CHGNet's banner), unless verbose."""
    if verbosity() >= VERBOSE:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def exception_text(traceback_text: str) -> str:
    """The exception of a formatted traceback on one line: its message and any lines that follow it
    (a UserError's ``fix:`` line), without the module path of the class; user errors without their class."""
    import re

    lines = [ln for ln in traceback_text.rstrip().splitlines() if ln.strip()]
    start = next((i for i in range(len(lines) - 1, -1, -1)
                  if re.match(r"^[A-Za-z_][\w.]*(:|$)", lines[i]) and not lines[i].startswith("Traceback")), None)
    if start is None:
        return lines[-1].strip() if lines else ""
    head, _, rest = lines[start].partition(": ")
    cls = head.rsplit(".", 1)[-1]
    first = cls if not rest else rest if cls in ("UserError", "MissingDependencyError") else f"{cls}: {rest}"
    more = [ln.strip() for ln in lines[start + 1:]]
    if len(more) > 3:  # e.g. the last lines of a crashed program's log: the end says most
        more = ["…", *more[-3:]]
    return "; ".join([first.strip(), *more])


class _JobLines(logging.Filter):
    """jobflow's job messages as one short line each: ``start  NAME`` and ``done   NAME (12.3 s)``."""

    def __init__(self):
        super().__init__()
        self._started: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("jobflow"):
            return True  # the loggers' levels decide
        msg = record.getMessage()
        if " failed with exception:\n" in msg:  # jobflow logs a failed job's traceback at INFO
            if verbosity() >= VERBOSE:
                return True
            name, _, tb = msg.partition(" failed with exception:\n")
            record.msg, record.args = f"failed {name}: {exception_text(tb)}  (-v shows the traceback)", ()
            return True
        for prefix, word in (("Starting job - ", "start"), ("Finished job - ", "done ")):
            if msg.startswith(prefix):
                rest = msg[len(prefix):]
                name = rest.rsplit(" (", 1)[0] if rest.endswith(")") else rest
                if name.endswith(" output") and verbosity() < VERBOSE:
                    return False  # jobflow's wrapper of a replaced job's output: no work of its own
                if word == "start":
                    self._started[rest] = time.time()
                    line = f"start  {name}"
                else:
                    t0 = self._started.pop(rest, None)
                    line = f"done   {name}" + (f" ({time.time() - t0:.1f} s)" if t0 is not None else "")
                record.msg, record.args = line, ()
                return True
        return record.levelno >= logging.WARNING or verbosity() >= VERBOSE


def configure(console=None) -> None:
    """Logging and warning filters of the current verbosity (idempotent)."""
    from rich.logging import RichHandler

    level = verbosity()
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_mlipflow", False)), None)
    if handler is None:
        handler = RichHandler(console=console, show_path=False, show_level=level >= VERBOSE, markup=False,
                              log_time_format="[%X]")
        handler._mlipflow = True
        handler.addFilter(_JobLines())  # on the handler: it sees the records of jobflow's child loggers
        root.addHandler(handler)
    root.setLevel(logging.INFO if level >= VERBOSE else logging.WARNING)
    mlip = logging.getLogger("mlipflow")
    mlip.setLevel(logging.INFO if level >= VERBOSE else logging.WARNING)
    jl = logging.getLogger("jobflow")
    for h in list(jl.handlers):  # jobflow adds its own stream handler: ours prints its lines
        jl.removeHandler(h)
    jl.propagate = True
    jl.setLevel(logging.INFO if level >= NORMAL else logging.WARNING)
    if level >= VERBOSE:
        warnings.resetwarnings()
        warnings.simplefilter("default")
    else:
        warnings.simplefilter("ignore")  # third-party deprecations between our lines help nobody
        warnings.filterwarnings("default", module=r"mlipflow(\..*)?$")
    for name in ("tensorflow", "absl", "h5py", "matplotlib", "numba", "urllib3", "pyace", "tensorpotential"):
        logging.getLogger(name).setLevel(logging.INFO if level >= VERBOSE else logging.ERROR)


__all__ = ["QUIET", "NORMAL", "VERBOSE", "verbosity", "set_verbosity", "progress_enabled", "third_party_prints",
           "configure"]
