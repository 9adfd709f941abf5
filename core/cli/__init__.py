"""mlipflow command line (typer)."""
