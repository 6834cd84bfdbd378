"""`hailuo-tui batch FILE`: submit every row of a JSON Lines or CSV file, each once.

Rows are read and checked by `tui.core.batch` and sent through the job service; this module
parses the arguments and prints. See docs/CLI.md for the output and exit codes.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import click

from tui.cli.common import (
    DEFAULT_MAX_POLL_ERRORS,
    EXIT_AUTH,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Progress,
    _connection_options,
    echo,
    follow,
    open_service_to_change,
    open_store,
    outcome_code,
    plain,
    print_final,
    require_key,
    run_async,
    settings_for,
    to_json,
    warn,
)
from tui.core.config import Settings

if TYPE_CHECKING:
    from tui.core.batch import BatchRow, BatchSummary, RowOutcome


@click.command()
@click.argument("file", metavar="FILE.jsonl|FILE.csv", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the file and say what would be sent; send nothing.")
@click.option("--concurrency", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Submits in flight at once (also capped by submit_rate per second).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the summary and every row.")
@click.option("--wait", is_flag=True, help="After submitting, poll until every row's job ends.")
@click.option("--max-poll-errors", type=click.IntRange(1), default=DEFAULT_MAX_POLL_ERRORS, show_default=True,
              help="With --wait: give up after this many failed polls in a row of one job (exit 4).")
@_connection_options
@click.pass_context
def batch(ctx: click.Context, file: str, dry_run: bool, concurrency: int, as_json: bool, wait: bool,
          max_poll_errors: int, base_url: str | None, db: str | None) -> None:
    """Submit every row of a JSON Lines or CSV file (columns: the submit fields); each row once."""
    from tui.core.batch import BatchFileError, read_batch

    settings = settings_for(ctx, base_url, db, need_key=not dry_run)
    notices: list[str] = []
    try:
        rows, errors = read_batch(file, allow_uncertain=settings.allow_uncertain_resolutions, notices=notices)
    except BatchFileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    for notice in notices:  # text repaired where it entered: what is sent is the repaired text
        warn(notice)
    if errors:
        if as_json:
            echo(to_json({"errors": [e.to_public() for e in errors]}))
        for error in errors:
            echo(f"error: {plain(error)}", err=True)
        rows_with_errors = len({e.row for e in errors})
        raise CliError(f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in "
                       f"{rows_with_errors} row{'s' if rows_with_errors != 1 else ''} of {file}; nothing was sent",
                       EXIT_USAGE)
    if dry_run:
        ctx.exit(_dry_run(settings, rows, as_json=as_json))
    require_key(settings)
    ctx.exit(run_async(lambda: _batch(settings, rows, concurrency=concurrency, as_json=as_json, wait=wait,
                                      max_poll_errors=max_poll_errors)))


def row_line(outcome: "RowOutcome") -> str:
    """`ROW<TAB>OUTCOME<TAB>ID<TAB>DETAIL`: one line per row, tab-free fields."""
    job = outcome.job
    ident = job.display_id if job is not None and outcome.outcome != "would submit" else "-"
    detail = outcome.message or outcome.row.request.prompt
    return f"{outcome.row.row}\t{outcome.outcome}\t{ident}\t{plain(detail)}"


def _dry_run(settings: Settings, rows: list["BatchRow"], *, as_json: bool) -> int:
    from tui.core.batch import dry_run

    from tui.core import costs

    store = open_store(settings, read_only=True)
    try:
        prices = costs.PriceTable(settings.prices)
        summary = dry_run(store, rows, prices)
        # Say now whether a real run would be refused by a budget (this command is its own session).
        now = time.time()
        shares = [costs.share_of(job, prices) for job in store if job.submitted_at >= costs.local_day_start(now)]
        would_refuse = costs.refusal(summary.cost.estimates, shares, costs.Budgets.from_settings(settings),
                                     now=now, batch=True)
    finally:
        store.close()
    _print(summary, as_json=as_json)
    if would_refuse is not None and not as_json:
        echo(f"warning: a run would be refused: {plain(would_refuse.removeprefix('not sent: '))}", err=True)
    return EXIT_OK


def _print(summary: "BatchSummary", *, as_json: bool, rows_printed: bool = False) -> None:
    if as_json:
        echo(to_json(summary.to_public()))
        return
    if not rows_printed:
        for outcome in summary.outcomes:
            echo(row_line(outcome))
    echo(summary.line(), err=True)


async def _batch(settings: Settings, rows: list["BatchRow"], *, concurrency: int, as_json: bool, wait: bool,
                 max_poll_errors: int) -> int:
    from tui.core.batch import BatchRun

    service = await open_service_to_change(settings, role="batch")
    try:
        if not service.can_submit:
            reason = service.submit_disabled_reason or "submitting is disabled"
            raise CliError(reason, EXIT_AUTH if not settings.has_key else EXIT_USAGE)
        progress = Progress(as_json=as_json)
        settled: list[Any] = []

        def on_outcome(outcome: "RowOutcome") -> None:
            settled.append(outcome)
            if not as_json:
                progress.line(row_line(outcome))
            progress.status(f"{len(settled)}/{len(rows)} rows · {run.in_flight} sending")

        run = BatchRun(service, rows, concurrency=concurrency, on_outcome=on_outcome)
        try:
            summary = await run.run()
        except asyncio.CancelledError:
            progress.close()
            cut = run.summary()
            if not as_json:
                for outcome in cut.outcomes:
                    if outcome.row.row not in run.outcomes:
                        echo(row_line(outcome))
            echo(f"{cut.line()}; run the same command again to continue", err=True)
            raise
        finally:
            progress.close()
        code = summary.exit_code()
        if wait:
            jobs = [o.job for o in summary.outcomes if o.job is not None and o.job.server_id]
            pending = [j.local_id for j in jobs if not j.is_finished]
            if pending:
                await service.start()
                await follow(service, pending, Progress(as_json=False, quiet=True), max_poll_errors=max_poll_errors)
                # As the history has them now (a history taken over from its owner meanwhile holds new objects).
                jobs = [service.store.get(j.local_id) or j for j in jobs]
            if code == EXIT_OK and len(jobs) == len(summary.outcomes):
                code = outcome_code(jobs)
            if not as_json:
                print_final(jobs, as_json=False)
        _print(summary, as_json=as_json, rows_printed=True)
        if summary.stopped and not as_json:
            echo(f"error: {plain(summary.stopped)}", err=True)
        return code
    finally:
        await service.close()
