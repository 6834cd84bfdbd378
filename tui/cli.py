"""Command line entry point (filled in by the CLI work)."""

import click


@click.group(invoke_without_command=True)
def main() -> None:
    """hailuo-tui"""
