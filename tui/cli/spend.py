"""`hailuo-tui spend [--since DATE] [--by model|day] [--json]`: what the history has cost, estimated.

The figures are `tui.core.costs.spend_report` over the history (read only); this module parses
the arguments and prints. The output and the `--json` object are documented in docs/CLI.md.
"""

from __future__ import annotations

import time
from typing import Any

import click

from tui.cli.common import EXIT_USAGE, CliError, _connection_options, echo, open_store, plain, settings_for, to_json


def _money(value: float | None) -> str:
    from tui.core.costs import money

    return money(value)


def _tally_line(label: str, tally: dict[str, Any]) -> str:
    """`LABEL  billed $x · may be billed $y · running $z · N jobs (K refused, not billed)`"""
    parts = [f"billed {_money(tally['billed'])}", f"may be billed {_money(tally['may_be_billed'])}"]
    if tally["running"]:
        parts.append(f"running {_money(tally['running'])}")
    jobs = f"{tally['jobs']} job{'s' if tally['jobs'] != 1 else ''}"
    extra = []
    if tally["not_billed_jobs"]:
        extra.append(f"{tally['not_billed_jobs']} refused at submit, not billed")
    if tally["unpriced_jobs"]:
        extra.append(f"{tally['unpriced_jobs']} without a price")
    if extra:
        jobs += f" ({'; '.join(extra)})"
    return f"{label:<14}{' · '.join(parts)} · {jobs}"


@click.command()
@click.option("--since", "since", metavar="DATE", help="Only jobs submitted on or after DATE (YYYY-MM-DD, today, 7d).")
@click.option("--by", "by", type=click.Choice(["model", "day"]), default="model", show_default=True,
              help="Group the figures by model or by day (local time).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see docs/CLI.md).")
@_connection_options
@click.pass_context
def spend(ctx: click.Context, since: str | None, by: str, as_json: bool, base_url: str | None, db: str | None) -> None:
    """Estimated spend of the history: today, the last 7 days, all time, by model or day."""
    from tui.core import catalog
    from tui.core.costs import Budgets, PriceTable, parse_day, spend_report

    settings = settings_for(ctx, base_url, db, need_key=False)
    try:
        since_day = parse_day(since) if since else None
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    store = open_store(settings, read_only=True)
    try:
        jobs = store.all()
    finally:
        store.close()
    report = spend_report(jobs, PriceTable(settings.prices), Budgets.from_settings(settings),
                          now=time.time(), since=since_day, by=by)
    if as_json:
        echo(to_json(report))
        return
    from_config = report["prices_from_config"]
    source = (f"prices: {catalog.PRICES_SOURCE} on {catalog.PRICES_AS_OF}"
              + (f", with {len(from_config)} from the config ({', '.join(from_config)})" if from_config else ""))
    echo(f"Estimated spend in {report['currency']} ({source}). An estimate, not a bill.")
    echo(_tally_line("today", report["today"]))
    echo(_tally_line("last 7 days", report["last_7_days"]))
    echo(_tally_line(f"since {report['since']}" if report["since"] else "all time", report["total"]))
    for name, row in report["budgets"].items():
        if "left" in row:
            echo(f"{name:<14}{_money(row['limit'])}: {_money(row['counted'])} counted today, "
                 f"{_money(row['left'])} left")
        else:
            echo(f"{name:<14}{_money(row['limit'])}")
    if report["groups"]:
        echo("")
        echo(f"{'by ' + by:<22}\tbilled\tmay be billed\trunning\tjobs")
        for group in report["groups"]:
            echo(f"{plain(group['key']):<22}\t{_money(group['billed'])}\t{_money(group['may_be_billed'])}\t"
                 f"{_money(group['running'])}\t{group['jobs']}")
    billed_failed = "count" if report["bill_failed"] else "do not count"
    echo(f"failed, expired and unknown jobs are \"may be billed\"; they {billed_failed} toward budgets (bill_failed)",
         err=True)
