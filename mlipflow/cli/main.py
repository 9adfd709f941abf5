"""The ``mlipflow`` command line.

Exit codes: 0 success, 2 bad input (one message naming the problem and the fix), 1 internal error.
Sub-commands live in ``mlipflow.cli.<area>`` modules, each exposing ``app`` (a typer.Typer)
and are registered in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import typer
from rich.console import Console

from mlipflow.errors import UserError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # what tensorpotential sets when it is imported before TensorFlow

# Third-party warnings a user can do nothing about, printed between mlipflow's own lines otherwise.
for _msg, _cat in (("cd is deprecated", FutureWarning),  # jobflow's run_locally
                   ("Converting a tensor with requires_grad=True", UserWarning),  # CHGNet predictions
                   ("TensorFlow was imported before tensorpotential", RuntimeWarning)):
    warnings.filterwarnings("ignore", message=_msg, category=_cat)

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one line per message: no breaks inside paths or words (logs, grep)

app = typer.Typer(
    name="mlipflow",
    help="MLIPs by batch active learning and the MD campaigns that use them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: sub-command name -> module (exposing ``app``); missing modules are skipped.
SUBCOMMANDS = {
    "generate": "mlipflow.cli.generate",
    "label": "mlipflow.cli.label",
    "dataset": "mlipflow.cli.dataset",
    "potential": "mlipflow.cli.potential",
    "analyze": "mlipflow.cli.analyze",
    "status": "mlipflow.cli.status",
    "report": "mlipflow.cli.report",
    "md": "mlipflow.cli.md",
}
#: top-level commands -> module that defines them on ``app`` via ``register(app)``.
COMMAND_MODULES = ["mlipflow.cli.core_commands"]


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every log line and third-party warning."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and results: no job lines, no progress bars."),
) -> None:
    """MLIPs by batch active learning and the MD campaigns that use them."""
    from mlipflow import output

    if verbose and quiet:
        raise UserError("--verbose and --quiet contradict each other", "give one of them")
    output.set_verbosity(output.VERBOSE if verbose else output.QUIET if quiet else None)
    output.configure(console)


def _import_command_module(mod_name: str):
    """The command module, or None when it does not exist (a broken import inside it still raises)."""
    try:
        return importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name == mod_name:
            return None
        raise


def _register() -> None:
    for mod_name in COMMAND_MODULES:
        mod = _import_command_module(mod_name)
        if mod is not None:
            mod.register(app)
    for name, mod_name in SUBCOMMANDS.items():
        mod = _import_command_module(mod_name)
        if mod is None:
            continue
        if isinstance(getattr(mod, "app", None), typer.Typer):
            app.add_typer(mod.app, name=name)
        elif callable(getattr(mod, "command", None)):
            app.command(name)(mod.command)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point with mlipflow's exit-code contract."""
    from pydantic import ValidationError

    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            return rc
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc.problem}")
        if exc.fix:
            err_console.print(f"[bold]fix:[/] {exc.fix}")
        return 2
    except ValidationError as exc:
        what = {"Settings": "settings", "DatabaseSettings": "database settings"}.get(exc.title, exc.title)
        err_console.print(f"[bold red]error:[/] invalid {what}: {_short_validation(exc)}", highlight=False)
        if what.endswith("settings"):
            err_console.print("[bold]fix:[/] correct the field named in the config file ($MLIPFLOW_CONFIG or "
                              "~/.mlipflow.yaml) or the MLIPFLOW_* environment variable (docs: README, Settings)")
        else:
            err_console.print("[bold]fix:[/] correct the field named (see `--help` or the docs)")
        return 2
    except FileNotFoundError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 1
    except Exception as exc:  # click usage errors carry their own exit code
        if _is_unreachable_database(exc):
            from mlipflow.settings import get_settings, redact_uri

            s = get_settings()
            where = redact_uri(s.database.uri or "")
            err_console.print(f"[bold red]error:[/] cannot reach the MongoDB server of database.uri ({where}) "
                              f"within {s.database.timeout_s:g} s: {type(exc).__name__}", highlight=False)
            err_console.print("[bold]fix:[/] start the server or correct database.uri (`mlipflow config` shows the "
                              "settings; unset it to use the embedded store)")
            return 2
        usage, exits = _click_exceptions()
        if isinstance(exc, usage):
            ctx = getattr(exc, "ctx", None)
            path = " ".join(["mlipflow", *(ctx.command_path.split()[1:] if ctx is not None else [])])
            from rich.markup import escape

            err_console.print(f"[bold red]error:[/] {escape(exc.format_message())}", highlight=False)
            err_console.print(f"[bold]fix:[/] see `{path} --help`")
            return 2
        if isinstance(exc, exits):
            return exc.exit_code
        raise
    return 0


def _is_unreachable_database(exc: BaseException) -> bool:
    try:
        from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
    except ImportError:
        return False
    return isinstance(exc, (ConnectionFailure, ServerSelectionTimeoutError))


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Usage-error and exit classes of click and of the click that typer >= 0.22 vendors."""
    import importlib

    usage, exits = [], []
    for mod in ("click.exceptions", "typer._click.exceptions"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        usage.append(m.ClickException)
        if hasattr(m, "Exit"):
            exits.append(m.Exit)
    return tuple(usage), tuple(exits)


def _short_validation(exc) -> str:
    from mlipflow.errors import validation_messages

    return "; ".join(validation_messages(exc))


def entry() -> None:  # pragma: no cover - console script wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
