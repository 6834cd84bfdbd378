"""`hailuo-tui download ID...`: save jobs' output videos into the download directory.

Files are fetched by `tui.core.downloads` through the job service (which records where they went);
this module parses the arguments and prints. See docs/CLI.md for the output and exit codes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tui.core.api.errors import ApiError
from tui.core.catalog import human_bytes
from tui.cli.common import (
    EXIT_AUTH,
    EXIT_JOB_FAILED,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Progress,
    State,
    _connection_options,
    echo,
    find_job,
    is_tty,
    open_service,
    plain,
    run_async,
    settings_for,
    to_json,
    warn,
)
from tui.core.config import Settings

if TYPE_CHECKING:
    from tui.core.records import Job

#: Jobs fetched at the same time.
DOWNLOAD_CONCURRENCY = 3
#: When several things went wrong, the code of the most serious.
_SEVERITY = (EXIT_AUTH, EXIT_NETWORK, EXIT_USAGE, EXIT_JOB_FAILED)


def worst(codes: list[int]) -> int:
    for code in _SEVERITY:
        if code in codes:
            return code
    return EXIT_OK


@click.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Save into this directory (default: the download directory, see `hailuo-tui locate`).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array: one object per job, with its files.")
@_connection_options
@click.pass_context
def download(ctx: click.Context, ids: tuple[str, ...], directory: str | None, as_json: bool,
             base_url: str | None, db: str | None) -> None:
    """Save the output videos of jobs; a partial file is resumed, nothing is overwritten."""
    overrides: dict[str, Any] = {"download_dir": Path(directory).expanduser()} if directory else {}
    try:
        # The key is only used to ask about a job the history has not seen finish.
        settings = settings_for(ctx, base_url, db, need_key=True, **overrides)
    except CliError as exc:
        if exc.exit_code != EXIT_AUTH:
            raise
        warn(f"{exc.message}; jobs not known to have finished cannot be checked")
        ctx.ensure_object(State).secret = None
        settings = settings_for(ctx, base_url, db, need_key=False, **overrides)
    target = settings.download_dir
    if target.exists() and not target.is_dir():
        raise CliError(f"{target} is not a directory", EXIT_USAGE)
    ctx.exit(run_async(lambda: _download(settings, list(dict.fromkeys(ids)), as_json=as_json),
                       stopped_hint="partial files are kept as .part; run the same command again to resume"))


class _Display:
    """Progress of every file in flight, as one status line on a terminal."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.files: dict[tuple[str, int], tuple[int, int | None]] = {}

    def on_event(self, event: Any) -> None:
        from tui.core.events import DownloadFinished, DownloadProgress

        if isinstance(event, DownloadProgress):
            self.files[(event.local_id, event.index)] = (event.received, event.total)
        elif isinstance(event, DownloadFinished):
            for key in [k for k in self.files if k[0] == event.local_id]:
                del self.files[key]
        else:
            return
        if not self.files:
            self.progress.status("")
            return
        received = sum(r for r, _ in self.files.values())
        totals = [t for _, t in self.files.values()]
        of = ""
        if all(totals):
            total = sum(t for t in totals if t)
            of = f" of {human_bytes(total)} ({100 * received // max(1, total)}%)"
        count = len(self.files)
        self.progress.status(f"downloading {count} file{'s' if count != 1 else ''} · {human_bytes(received)}{of}")


async def _download(settings: Settings, idents: list[str], *, as_json: bool) -> int:
    from tui.core.downloads import DownloadError

    service = open_service(settings)
    try:
        jobs: list[Job] = []
        for ident in idents:
            job = find_job(service.store, ident)
            if job.local_id not in {j.local_id for j in jobs}:
                jobs.append(job)
        if service.read_only:
            warn("the files are saved but not recorded in the history (it is open read-only)")
        progress = Progress(as_json=as_json)
        display = _Display(progress)
        unsubscribe = service.subscribe(display.on_event)
        live = is_tty(sys.stdout)
        slots = asyncio.Semaphore(DOWNLOAD_CONCURRENCY)
        reports: dict[str, dict[str, Any]] = {}
        codes: list[int] = []

        def failed(job: "Job", message: str, code: int) -> None:
            codes.append(code)
            reports[job.local_id]["error"] = message
            if not as_json:
                progress.line(f"error: {job.display_id}: {plain(message)}", err=True)

        async def one(job: "Job") -> None:
            reports[job.local_id] = {"id": job.server_id, "local_id": job.local_id, "files": [], "error": None}
            async with slots:
                if not job.outputs and job.is_pending:
                    if service.client is None:
                        return failed(job, f"{job.status}: no output yet (set GPTPROTO_API_KEY to check it now)",
                                      EXIT_JOB_FAILED)
                    try:
                        await service.check(job.local_id)
                    except ApiError as exc:
                        return failed(job, f"could not check it: {exc.message}", exc.exit_code)
                try:
                    saved = await service.download(job.local_id)
                except DownloadError as exc:
                    return failed(job, exc.message, exc.exit_code)
            for item in saved:
                reports[job.local_id]["files"].append({"url": item.url, "path": str(item.path), "size": item.size,
                                                       "sha256": item.sha256, "outcome": item.outcome})
                if as_json:
                    continue
                if live:
                    progress.line(f"{job.display_id}  {item.outcome:<13} {plain(item.path)}")
                else:
                    progress.line(f"{job.display_id}\t{plain(item.path)}")

        try:
            await asyncio.gather(*(one(job) for job in jobs))
        finally:
            unsubscribe()
            progress.close()
        if as_json:
            echo(to_json([reports[job.local_id] for job in jobs]))
        return worst(codes)
    finally:
        await service.close()
