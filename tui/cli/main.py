"""The headless command line: parse arguments, build the job service, print.

No business logic lives here: requests are checked by `tui.core.catalog`, jobs are run by
`tui.core.jobs.JobService`, the history is `tui.core.store.HistoryStore`. Heavy modules (httpx,
textual, the store) are imported inside the commands that need them so that
`hailuo-tui --help` and `hailuo-tui list` start fast.

Exit codes (a public interface, documented in docs/CLI.md):
0 done; 1 a job failed or expired; 2 bad usage or invalid request; 3 authentication,
permission or balance; 4 network or server error after retries; 5 submit outcome unknown.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import click

from tui import __version__
from tui.core import catalog, players
from tui.core.api.errors import ApiError
from tui.core.api.models import usable_prediction_id
from tui.core.config import ENV_KEY, PREVIEW_MODES, Settings, data_dir, demo_db_path
from tui.core.files import write_atomically

if TYPE_CHECKING:
    from tui.core.records import Job

from tui.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    EXIT_AUTH,
    EXIT_UNKNOWN_OUTCOME,
    DEFAULT_MAX_POLL_ERRORS,
    plain,
    to_json,
    to_json_line,
    is_tty,
    CliError,
    State,
    echo,
    warn,
    settings_for,
    refuse_in_read_only,
    require_key,
    _connection_options,
    open_store,
    find_job,
    run_async,
    open_service_to_change,
    Progress,
    _terminal_width,
    follow,
    outcome_code,
    print_final,
)
from tui.cli.render import (
    _list_row,
    render_table,
    show_lines,
    render_csv,
)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--demo", is_flag=True, help="Start the dashboard against the built-in simulator with a separate demo history (no key, no network).")
@click.option("--read-only", is_flag=True, help="Open the history without writing to it; submitting is disabled.")
@click.option("--base-url", "base_url", metavar="URL", help="API base URL (default https://gptproto.com).")
@click.option("--db", "db", metavar="PATH", help="History file to use (default: see `hailuo-tui locate`).")
@click.option("--low-bandwidth/--full-bandwidth", "low_bandwidth", default=None,
              help="Dashboard: clocks tick every 5 s, no animation, repaints coalesced "
                   "(default: on over SSH, i.e. when $SSH_TTY or $SSH_CONNECTION is set).")
@click.option("--cache-dir", "cache_dir", metavar="DIR", help="Where previews and the clips fetched for them are kept (default: see `hailuo-tui locate`).")
@click.option("--preview", "preview", type=click.Choice(PREVIEW_MODES), help="How the dashboard draws a clip's frames (default: the config's `preview`, else auto).")
@click.version_option(__version__, "--version", prog_name="hailuo-tui")
@click.pass_context
def main(ctx: click.Context, demo: bool, read_only: bool, base_url: str | None, db: str | None,
         low_bandwidth: bool | None, cache_dir: str | None, preview: str | None) -> None:
    """A terminal dashboard and command line for MiniMax Hailuo video jobs on gptproto.

    Without a command, starts the dashboard. The API key is read from $GPTPROTO_API_KEY.
    """
    # Kept only so that anything printed can be scrubbed of it, whatever the command.
    secret = os.environ.get(ENV_KEY, "").strip() or None
    ctx.obj = State(base_url=base_url, db=db, read_only=read_only, demo=demo, secret=secret,
                    extra={"low_bandwidth": low_bandwidth})
    if cache_dir:
        ctx.obj.extra["cache_dir"] = Path(cache_dir).expanduser()
    if preview:
        ctx.obj.extra["preview"] = preview
    if ctx.invoked_subcommand is not None:
        return
    ctx.exit(start_dashboard(ctx, demo=demo))


def is_history_file(candidate: Path, history: Path) -> bool:
    """Whether writing `candidate` would replace the history or one of the files beside it."""
    candidate, history = candidate.expanduser().resolve(), history.expanduser().resolve()
    return candidate.parent == history.parent and candidate.name.startswith(history.name)


def refuse_another_history_for_the_demo(db: str | None) -> None:
    """The demo reseeds its history at each start: it only ever opens its own (never `--db`'s)."""
    if db and Path(db).expanduser().resolve() != demo_db_path().expanduser().resolve():
        raise CliError(f"--demo uses its own history ({demo_db_path()}) and never opens another: "
                       "drop --db to run the demo", EXIT_USAGE)


def start_dashboard(ctx: click.Context, *, demo: bool) -> int:
    state = ctx.find_object(State)
    # None leaves it to the config file, then to whether the session is over SSH.
    bandwidth: dict[str, Any] = {"low_bandwidth": state.extra.get("low_bandwidth") if state else None}
    if demo:
        # The demo never uses the real key or the real history.
        refuse_another_history_for_the_demo(state.db if state else None)
        overrides: dict[str, Any] = {"demo": True, **bandwidth}
        settings = settings_for(ctx, None, None, need_key=False, **overrides)
        settings = settings.with_changes(db_path=demo_db_path())
    else:
        settings = settings_for(ctx, None, None, need_key=True, **bandwidth)
    try:
        from tui.ui.app import run_app
    except ModuleNotFoundError as exc:
        if exc.name == "tui.ui.app":
            raise CliError("the dashboard is not part of this build; the commands of `hailuo-tui --help` work",
                           EXIT_USAGE) from None
        raise CliError(f"the dashboard cannot start: module {exc.name!r} is missing", EXIT_USAGE) from None
    return int(run_app(settings, demo=demo) or 0)


# -- submit ---------------------------------------------------------------------------------

_ALL_RESOLUTIONS = tuple(dict.fromkeys(
    catalog.UNCERTAIN_RESOLUTIONS + tuple(r for spec in catalog.MODELS.values() for r in spec.modes)
))
_ALL_DURATIONS = tuple(sorted({d for spec in catalog.MODELS.values() for ds in spec.modes.values() for d in ds}))


@main.command()
@click.option("--model", type=click.Choice(list(catalog.MODELS)), default=catalog.DEFAULT_MODEL, show_default=True)
@click.option("--scene", type=click.Choice(list(catalog.SCENES)), default=None,
              help="Default: image-to-video when --image is given, else text-to-video.")
@click.option("--prompt", required=True, help="What the video shows; `-` reads it from stdin.")
@click.option("--image", metavar="PATH|URL", help="First frame: a JPG/PNG file or an http(s) URL.")
@click.option("--end-image", "end_image", metavar="PATH|URL", help="Last frame (image-to-video).")
@click.option("--duration", type=int, default=catalog.DEFAULT_DURATION, show_default=True,
              help=f"Seconds: {' or '.join(map(str, _ALL_DURATIONS))}, as the model offers.")
@click.option("--resolution", type=click.Choice(list(_ALL_RESOLUTIONS)), default=None,
              help="Default: 768P, or the model's only resolution.")
@click.option("--no-prompt-expansion", "no_expansion", is_flag=True, help="Send the prompt as written.")
@click.option("--wait", is_flag=True, help="Poll until the job ends and print its final state.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as a JSON object.")
@click.option("--max-poll-errors", type=click.IntRange(1), default=DEFAULT_MAX_POLL_ERRORS, show_default=True,
              help="With --wait: give up after this many failed polls in a row (exit 4).")
@_connection_options
@click.pass_context
def submit(ctx: click.Context, model: str, scene: str | None, prompt: str, image: str | None,
           end_image: str | None, duration: int, resolution: str | None, no_expansion: bool,
           wait: bool, as_json: bool, max_poll_errors: int, base_url: str | None, db: str | None) -> None:
    """Submit one video job; print its id (or the job as JSON)."""
    refuse_in_read_only(ctx, "submit")
    prompt = _prompt_text(prompt)
    settings = settings_for(ctx, base_url, db, need_key=True)
    request = catalog.VideoRequest(
        model=model,
        scene=scene or ("image-to-video" if image else "text-to-video"),
        prompt=prompt,
        image=image,
        end_image=end_image,
        duration=duration,
        resolution=resolution or catalog.default_resolution(model),
        prompt_expansion=not no_expansion,
    )
    # Checked before a key is asked for: a wrong request is wrong with any key. Each image file
    # is read once, here; the service sends those bytes.
    images = catalog.read_images(request)
    errors = catalog.validate(request, allow_uncertain=settings.allow_uncertain_resolutions,
                              check_files=False) + list(images.errors)
    if errors:
        raise_field_errors(errors)
    require_key(settings)
    ctx.exit(run_async(lambda: _submit(settings, request, wait=wait, as_json=as_json,
                                       max_poll_errors=max_poll_errors, images=images)))


def _prompt_text(prompt: str) -> str:
    """The prompt as it will be sent: `-` reads stdin as bytes; text that is not valid
    UTF-8 (or a lone surrogate from the arguments) is repaired here, where it enters, and said
    so with the repaired text: what is sent is exactly what that line shows."""
    from tui.core.text import decode_repaired, repair_note, repair_surrogates

    if prompt == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is not None:
            prompt, repaired = decode_repaired(stream.read())
        else:
            prompt, repaired = repair_surrogates(sys.stdin.read())
        prompt = prompt.rstrip("\n")
    else:
        prompt, repaired = repair_surrogates(prompt)
    if repaired:
        warn(f"{repair_note(repaired, '--prompt')}; the prompt sent is: {prompt}")
    return prompt


def raise_field_errors(errors: Sequence[Any]) -> None:
    for error in errors[:-1]:
        echo(f"error: {plain(error)}", err=True)
    raise CliError(plain(errors[-1]), EXIT_USAGE)


async def _submit(settings: Settings, request: Any, *, wait: bool, as_json: bool, max_poll_errors: int,
                  images: Any = None) -> int:
    from tui.core import jobs as jobs_module

    service = await open_service_to_change(settings, role="submit")
    job = None
    try:
        if not service.can_submit:
            reason = service.submit_disabled_reason or "submitting is disabled"
            raise CliError(reason, EXIT_AUTH if not settings.has_key else EXIT_USAGE)
        try:
            job = await service.submit(request, images=images)
        except jobs_module.ValidationFailed as exc:
            raise_field_errors(list(exc.errors))
        except jobs_module.HistoryNotWritten as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        except jobs_module.BudgetRefused as exc:
            raise CliError(plain(str(exc)), EXIT_USAGE) from None
        except ApiError as exc:
            raise _submit_error(exc) from None
        if not wait:
            echo(to_json(job.to_public()) if as_json else job.display_id)
            return EXIT_OK
        if not as_json:
            echo(job.display_id)
        await service.start()
        progress = Progress(as_json=False, quiet=True)
        final = await follow(service, [job.local_id], progress, max_poll_errors=max_poll_errors)
        print_final(final, as_json=as_json)
        return outcome_code(final)
    finally:
        await service.close()
        _check_written(service, job)


def _check_written(service: Any, job: "Job | None") -> None:
    """A job the server has but the history could not keep: say so, with what brings it back."""
    problem = getattr(service.store, "last_write_error", None)
    if problem is None or job is None:
        return
    hint = (f"; `hailuo-tui attach {job.server_id}` records it once the history can be written"
            if job.server_id else "")
    raise CliError(f"{plain(problem)}: job {job.display_id} is not in the history{hint}", EXIT_USAGE)


def _submit_error(exc: ApiError, job: "Job | None" = None) -> CliError:
    job = job or getattr(exc, "job", None)
    message = plain(exc.message)
    if exc.exit_code == EXIT_UNKNOWN_OUTCOME and job is not None and getattr(exc, "recorded", True):
        message += f" (recorded as {job.local_id}; see `hailuo-tui show {job.local_id}`)"
    return CliError(message, exc.exit_code)


# -- attach ---------------------------------------------------------------------------------


@main.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--wait", is_flag=True, help="Poll until the jobs end and print their final states.")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@click.option("--max-poll-errors", type=click.IntRange(1), default=DEFAULT_MAX_POLL_ERRORS, show_default=True,
              help="With --wait: give up after this many failed polls in a row (exit 4).")
@_connection_options
@click.pass_context
def attach(ctx: click.Context, ids: tuple[str, ...], wait: bool, as_json: bool, max_poll_errors: int,
           base_url: str | None, db: str | None) -> None:
    """Add existing prediction ids to the history and start watching them."""
    refuse_in_read_only(ctx, "attach")
    cleaned = []
    for ident in ids:
        ident = ident.strip()
        why = usable_prediction_id(ident)
        if why is not None:
            raise CliError(f"{plain(ident)!r} {why}", EXIT_USAGE)
        cleaned.append(ident)
    settings = settings_for(ctx, base_url, db, need_key=True)
    require_key(settings)
    ctx.exit(run_async(lambda: _attach(settings, list(dict.fromkeys(cleaned)), wait=wait, as_json=as_json,
                                       max_poll_errors=max_poll_errors)))


async def _attach(settings: Settings, ids: list[str], *, wait: bool, as_json: bool, max_poll_errors: int) -> int:
    from tui.core.jobs import ReadOnlyRefused

    service = await open_service_to_change(settings, role="attach")
    try:
        try:
            attached = await service.attach(ids)
        except ApiError as exc:
            raise CliError(plain(exc.message), exc.exit_code) from None
        except ReadOnlyRefused as exc:
            raise CliError(f"cannot attach: {plain(exc)}", EXIT_USAGE) from None
        if not wait:
            if as_json:
                echo(to_json([j.to_public() for j in attached]))
            else:
                for job in attached:
                    echo(f"{job.display_id}\t{plain(job.status)}")
            return EXIT_OK
        await service.start()
        pending = [j.local_id for j in attached if not j.is_finished]
        final_by_id = {j.local_id: j for j in attached}
        if pending:
            for job in await follow(service, pending, Progress(as_json=False, quiet=True),
                                    max_poll_errors=max_poll_errors):
                final_by_id[job.local_id] = job
        final = [final_by_id[j.local_id] for j in attached]
        if as_json:
            echo(to_json([j.to_public() for j in final]))
        else:
            print_final(final, as_json=False)
        return outcome_code(final)
    finally:
        await service.close()


# -- list / show / forget / export ---------------------------------------------------------------


@main.command(name="list")
@click.option("--status", "statuses", multiple=True, metavar="S",
              help="Only jobs with this status (repeat or comma-separate for several).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of jobs.")
@_connection_options
@click.pass_context
def list_jobs(ctx: click.Context, statuses: tuple[str, ...], as_json: bool, base_url: str | None, db: str | None) -> None:
    """List the jobs in the history, newest first."""
    settings = settings_for(ctx, base_url, db, need_key=False)
    store = open_store(settings, read_only=True)
    try:
        jobs = store.all()
    finally:
        store.close()
    wanted = {s.strip().lower() for item in statuses for s in item.split(",") if s.strip()}
    if wanted:
        jobs = [j for j in jobs if j.status.lower() in wanted]
    if as_json:
        echo(to_json([j.to_public() for j in jobs]))
        return
    rows = [_list_row(j) for j in jobs]
    if is_tty(sys.stdout):
        if not rows:
            echo("no jobs" + (" with that status" if wanted else " yet: `hailuo-tui submit --prompt ...` adds one"))
            return
        for line in render_table(rows, _terminal_width()):
            echo(line)
    else:
        for row in rows:
            echo("\t".join(row))


@main.command()
@click.argument("ident", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the job as a JSON object.")
@_connection_options
@click.pass_context
def show(ctx: click.Context, ident: str, as_json: bool, base_url: str | None, db: str | None) -> None:
    """Show one job: ID is its server id, its local id or a unique prefix of either."""
    settings = settings_for(ctx, base_url, db, need_key=False)
    store = open_store(settings, read_only=True)
    try:
        job = find_job(store, ident)
    finally:
        store.close()
    if as_json:
        echo(to_json(job.to_public()))
    else:
        for line in show_lines(job):
            echo(line)


@main.command()
@click.argument("ident", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_connection_options
@click.pass_context
def forget(ctx: click.Context, ident: str, yes: bool, base_url: str | None, db: str | None) -> None:
    """Remove one job from the local history (the job stays on the server)."""
    refuse_in_read_only(ctx, "forget")
    settings = settings_for(ctx, base_url, db, need_key=False)
    import asyncio

    through_owner = asyncio.run(_forget_through_owner(settings, ident, yes))
    if through_owner is not None:
        if through_owner:
            echo(through_owner)
        return
    store = open_store(settings, read_only=False)
    try:
        if store.read_only:
            reason = "; ".join(plain(n) for n in getattr(store, "notices", []) or []) or "the history is read-only"
            raise CliError(f"cannot forget: {reason}", EXIT_USAGE)
        job = find_job(store, ident)
        label = job.display_id
        if not yes and is_tty(sys.stdin):
            prompt_text = plain(job.prompt)
            click.echo(f"{label}  {plain(job.status)}  {prompt_text[:60]}", err=True)
            if not click.confirm("Forget this job? It stays on the server; only the local record goes", err=True):
                echo("kept", err=True)
                return
        store.remove(job.local_id)
        store.flush()
    finally:
        store.close()
    hint = f"; `hailuo-tui attach {job.server_id}` brings it back" if job.server_id else ""
    echo(f"forgot {label} (the job stays on the server{hint})")


def _confirm_forget(job: "Job") -> bool:
    if not is_tty(sys.stdin):
        return True
    click.echo(f"{job.display_id}  {plain(job.status)}  {plain(job.prompt)[:60]}", err=True)
    if not click.confirm("Forget this job? It stays on the server; only the local record goes", err=True):
        echo("kept", err=True)
        return False
    return True


def _forgot_line(job: "Job") -> str:
    hint = f"; `hailuo-tui attach {job.server_id}` brings it back" if job.server_id else ""
    return f"forgot {job.display_id} (the job stays on the server{hint})"


async def _forget_through_owner(settings: Settings, ident: str, yes: bool) -> str | None:
    """Forget through the history's owner when one serves it: the line to print ("" when the
    user kept the job), None when there is no owner (the history is then opened here)."""
    from tui.core import share
    from tui.core.jobs import ReadOnlyRefused

    try:
        owner = await share.find_owner(settings.db_path)
        if owner is None:
            return None
        service = await share.RemoteService.open(settings, owner, role="forget")
    except (share.NoOwner, share.OwnerGone):
        return None
    except share.ShareRefused as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        job = find_job(service.store, ident)
        if not yes and not _confirm_forget(job):
            return ""
        try:
            await service.forget_now(job.local_id)
        except ReadOnlyRefused as exc:
            raise CliError(f"cannot forget: {plain(exc)}", EXIT_USAGE) from None
        return _forgot_line(job)
    finally:
        await service.close()


@main.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), required=True, help="Output format.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file (atomically) instead of stdout.")
@_connection_options
@click.pass_context
def export(ctx: click.Context, fmt: str, output: str | None, base_url: str | None, db: str | None) -> None:
    """Export the whole history as CSV (spreadsheet-safe) or JSON."""
    settings = settings_for(ctx, base_url, db, need_key=False)
    if output not in (None, "-") and is_history_file(Path(output), Path(settings.db_path)):
        raise CliError(f"cannot write {output}: it is one of the history's own files", EXIT_USAGE)
    store = open_store(settings, read_only=True)
    try:
        jobs = store.all()
    finally:
        store.close()
    from tui.core.costs import PriceTable, job_cost_public

    prices = PriceTable(settings.prices)
    text = (render_csv(jobs, prices) if fmt == "csv"
            else to_json([{**j.to_public(), "cost": job_cost_public(j, prices)} for j in jobs]) + "\n")
    if output is None or output == "-":
        echo(text, nl=False)
        return
    try:
        write_atomically(Path(output), text)
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}", EXIT_USAGE) from None
    echo(f"wrote {len(jobs)} job{'s' if len(jobs) != 1 else ''} to {output}", err=True)


# -- watch ----------------------------------------------------------------------------------


@main.command()
@click.option("--exit-status", is_flag=True, help="Exit 0 only if every job completed; 1 if any failed or expired.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per status change (JSON Lines).")
@click.option("--max-poll-errors", type=click.IntRange(1), default=DEFAULT_MAX_POLL_ERRORS, show_default=True,
              help="Give up after this many failed polls in a row of one job (exit 4).")
@_connection_options
@click.pass_context
def watch(ctx: click.Context, exit_status: bool, as_json: bool, max_poll_errors: int,
          base_url: str | None, db: str | None) -> None:
    """Poll every unfinished job until it ends, printing one line per status change."""
    settings = settings_for(ctx, base_url, db, need_key=True)
    ctx.exit(run_async(lambda: _watch(settings, exit_status=exit_status, as_json=as_json,
                                      max_poll_errors=max_poll_errors)))


async def _watch(settings: Settings, *, exit_status: bool, as_json: bool, max_poll_errors: int) -> int:
    # Beside a running owner, its jobs are followed through it: each job is polled by one process.
    service = await open_service_to_change(settings, role="watch")
    try:
        pending = [j.local_id for j in service.store.pending()]
        if not pending:
            if not as_json:
                echo("no unfinished jobs to watch", err=True)
            return EXIT_OK
        require_key(settings)
        if not as_json:
            echo(f"watching {len(pending)} job{'s' if len(pending) != 1 else ''}", err=True)
        await service.start()
        progress = Progress(as_json=as_json)
        unsubscribe = service.subscribe(lambda event: _print_download(service, event, progress, as_json=as_json))
        try:
            final = await follow(service, pending, progress, max_poll_errors=max_poll_errors)
            await service.wait_downloads()  # auto_download: the files of the jobs that just completed
        finally:
            unsubscribe()
        if not as_json:
            completed = sum(1 for j in final if j.is_success)
            echo(f"done: {completed} completed, {len(final) - completed} failed or expired", err=True)
        return outcome_code(final) if exit_status else EXIT_OK
    finally:
        await service.close()


def _print_download(service, event: Any, progress: Progress, *, as_json: bool) -> None:
    """A download started by auto_download ended: where its files went, or why it failed."""
    from tui.core.events import DownloadFinished

    if not isinstance(event, DownloadFinished):
        return
    job = service.store.get(event.local_id)
    ident = job.display_id if job is not None else event.local_id
    if as_json:
        echo(to_json_line({"event": "download", "id": job.server_id if job else None, "local_id": event.local_id,
                           "paths": list(event.paths), "error": event.error}))
        return
    for path in event.paths:
        progress.line(f"{ident}\t{plain(path)}")
    if event.error:
        progress.line(f"error: {ident}: {plain(event.error)}", err=True)


# -- locate ---------------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the paths as a JSON object.")
@_connection_options
@click.pass_context
def locate(ctx: click.Context, as_json: bool, base_url: str | None, db: str | None) -> None:
    """Print the files and directories in use, and the base URL (never the key)."""
    settings = settings_for(ctx, base_url, db, need_key=False)
    key_state = "set" if os.environ.get(ENV_KEY, "").strip() else "not set"
    info = {
        "config_file": str(settings.config_file),
        "history_file": str(settings.db_path),
        "demo_history_file": str(demo_db_path()),
        "data_dir": str(data_dir()),
        "templates_file": str(settings.templates_path),
        "download_dir": str(settings.download_dir),
        "state_dir": str(settings.state_dir),
        "cache_dir": str(settings.cache_dir),
        "players": ", ".join(f"{p.name} ({p.path})" for p in players.found()) or "none found (mpv, timg, ffplay)",
        "base_url": settings.base_url,
        "api_key": f"${ENV_KEY} {key_state}",
        **_owner_info(settings),
    }
    if as_json:
        echo(to_json(info))
        return
    labels = {
        "config_file": "config file", "history_file": "history file", "demo_history_file": "demo history",
        "data_dir": "data dir", "templates_file": "templates", "download_dir": "download dir",
        "state_dir": "state dir", "cache_dir": "cache dir", "players": "players", "base_url": "base URL", "api_key": "API key",
        "socket": "socket", "owner": "owner",
    }
    for name, value in info.items():
        if name == "owner":
            value = (f"pid {value['pid']} ({value['role']}) serves the history to other terminals" if value
                     else "none: no process serves this history now")
        echo(f"{labels[name] + ':':<14} {plain(value)}")


def _owner_info(settings: Settings) -> dict[str, Any]:
    """The history's socket, and the process serving it there (None when none answers)."""
    import asyncio

    from tui.core import share

    path = share.socket_path(settings.db_path)
    try:
        owner = asyncio.run(share.find_owner(settings.db_path))
    except share.ShareRefused as exc:
        warn(str(exc))
        owner = None
    return {"socket": str(path), "owner": {"pid": owner.pid, "role": owner.role} if owner is not None else None}


# -- serve ----------------------------------------------------------------------------------


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0: any free port; the address is printed).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback exposes the dashboard, and the key's power, "
                   "to that network.")
@click.option("--demo", is_flag=True, help="Serve the demo dashboard (built-in simulator, no key).")
@click.option("--read-only", "read_only", is_flag=True, help="Serve a dashboard that watches and copies only.")
@_connection_options
@click.pass_context
def serve(ctx: click.Context, port: int, host: str, demo: bool, read_only: bool, base_url: str | None,
          db: str | None) -> None:
    """Serve the dashboard in a web browser (one dashboard per open tab)."""
    try:
        from tui.web.serve import DashboardServer, dashboard_command, is_loopback
    except ModuleNotFoundError as exc:
        raise CliError(f"browser mode needs the package {exc.name!r}: pip install textual-serve", EXIT_USAGE) from None
    state = ctx.ensure_object(State)
    demo = demo or state.demo
    read_only = read_only or state.read_only
    if demo:
        refuse_another_history_for_the_demo(db or state.db)
    # Checked here, so a bad setting or key is one line now rather than a broken page later.
    settings = settings_for(ctx, base_url, db, need_key=not demo, **({"read_only": True} if read_only else {}))
    db_path = (db or state.db) and str(Path(db or state.db).expanduser().resolve())
    if demo:
        os.environ.pop(ENV_KEY, None)  # the demo never uses the real key: its dashboards do not inherit it
    command = dashboard_command(demo=demo, read_only=read_only,
                                base_url=None if demo else (base_url or state.base_url), db=db_path)
    if not is_loopback(host):
        warn(f"listening on {host}: anyone who can reach it can use this dashboard, and through it the API key "
             "(submitting billed jobs). Prefer the default 127.0.0.1 with an SSH tunnel.")

    def ready(url: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        bound = parts.port
        echo(f"hailuo-tui in the browser: {url}")
        echo(f"  over SSH: ssh -L {bound}:127.0.0.1:{bound} HOST, then open "
             f"http://127.0.0.1:{bound}/?{parts.query} here")
        echo("  the address carries this run's token: anyone who has it can use the dashboard")
        echo("  Ctrl+C stops the server; each open dashboard saves its history and exits")
        sys.stdout.flush()

    title = f"hailuo-tui{' (demo)' if demo else ''}{' (read-only)' if read_only else ''}"
    server = DashboardServer(command, host=host, port=port, title=title, secret=settings.api_key, on_ready=ready)
    try:
        server.serve()
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_USAGE) from None


# -- simulate (attached when the simulator is installed) -------------------------------------

def _attach_commands() -> None:
    """Commands kept in their own modules (they import their engines only when run)."""
    from tui.cli.batch import batch
    from tui.cli.download import download

    main.add_command(download, name="download")
    main.add_command(batch, name="batch")
    from tui.cli.spend import spend

    main.add_command(spend, name="spend")


_attach_commands()


def _attach_simulator() -> None:
    import importlib.util

    try:
        if importlib.util.find_spec("tui.simulator.command") is None:
            return
        from tui.simulator.command import simulate
    except ImportError:
        return
    main.add_command(simulate, name="simulate")


_attach_simulator()
