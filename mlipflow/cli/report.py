"""``mlipflow report CAMPAIGN [--out FILE]``: one self-contained HTML page per campaign (read-only)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console()


def command(
    campaign: str = typer.Argument(..., help="Campaign name (the `name:` of its campaign file)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file to write (default: CAMPAIGN-report.html)."),
) -> None:
    """Write an HTML report of a finished campaign from its stored documents: tables, plots
    (embedded; no network), provenance. Open it in any browser."""
    from mlipflow.report import write_report

    path = write_report(campaign, out)
    console.print(f"report of campaign {campaign} written to {path.resolve()} ({path.stat().st_size / 1e6:.2f} MB)",
                  highlight=False)
