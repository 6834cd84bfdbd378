"""What every command shares: exit codes, errors, settings, the store and service, progress, following jobs.

Exit codes (a public interface, documented in docs/CLI.md):
0 done; 1 a job failed or expired; 2 bad usage or invalid request; 3 authentication,
permission or balance; 4 network or server error after retries; 5 submit outcome unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

from tui.core.api.errors import ApiError, redact
from tui.core.config import ENV_KEY, ConfigError, Settings, load_settings

from tui.cli.render import job_summary, plain

if TYPE_CHECKING:
    from tui.core.records import Job


EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NETWORK = 4
EXIT_UNKNOWN_OUTCOME = 5

#: Failed polls in a row (each already retried by the client) before `--wait`/`watch` give up.
DEFAULT_MAX_POLL_ERRORS = 3


# -- output hygiene -------------------------------------------------------------------------

# Characters json.dumps leaves raw that a terminal may act on.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")



def to_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, indent=2)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def to_json_line(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class CliError(click.ClickException):
    """A one-line `error: ...` on stderr and an exit code; never a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        secret = _current_secret()
        click.echo(f"error: {plain(redact(self.message, secret))}", err=True)


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _current_secret() -> str | None:
    ctx = click.get_current_context(silent=True)
    state = ctx.find_object(State) if ctx else None
    return state.secret if state else None


@dataclass
class State:
    """What the group passes to its commands."""

    base_url: str | None = None
    db: str | None = None
    read_only: bool = False
    demo: bool = False
    #: The key, kept only to scrub it from anything printed (and out of repr()).
    secret: str | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Every line the CLI prints goes through here: the key can never be printed."""
    click.echo(redact(text, _current_secret()) if text else text, err=err, nl=nl)


def warn(text: str) -> None:
    echo(f"warning: {plain(text)}", err=True)


# -- settings -------------------------------------------------------------------------------


def _env_without_key() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != ENV_KEY}


def settings_for(ctx: click.Context, base_url: str | None, db: str | None, *, need_key: bool,
                 **overrides: Any) -> Settings:
    """Settings from the group's and the command's flags (the command's win).

    Commands that only read the history never look at the key, so a malformed key cannot
    stop `list` or `export`. A key problem is exit 3, any other setting problem exit 2.
    """
    state = ctx.ensure_object(State)
    base_url = base_url or state.base_url
    db = db or state.db
    if state.read_only:
        overrides.setdefault("read_only", True)
    for name in ("cache_dir", "preview"):  # group flags that are plain settings
        if name in state.extra:
            overrides.setdefault(name, state.extra[name])
    try:
        keyless = load_settings(base_url=base_url, db=db, env=_env_without_key(), **overrides)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if not need_key:
        return keyless
    try:
        settings = load_settings(base_url=base_url, db=db, **overrides)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_AUTH) from None
    state.secret = settings.api_key or state.secret
    return settings


def refuse_in_read_only(ctx: click.Context, command: str) -> None:
    """`--read-only` watches and copies: commands that change the history or send a job stop here (exit 2)."""
    state = ctx.find_object(State)
    if state is not None and state.read_only:
        raise CliError(f"{command} is refused in read-only mode (--read-only watches and copies only; "
                       "run without --read-only to change anything)", EXIT_USAGE)


def require_key(settings: Settings) -> None:
    if not settings.has_key:
        raise CliError(f"no API key: set ${ENV_KEY} to your gptproto key (sk-...)", EXIT_AUTH)


def _connection_options(func: Callable) -> Callable:
    func = click.option("--db", "db", metavar="PATH", help="History file to use (default: see `hailuo-tui locate`).")(func)
    func = click.option("--base-url", "base_url", metavar="URL", help="API base URL (default https://gptproto.com).")(func)
    return func


# -- history access (store only: fast, no network) --------------------------------------------


#: The histories this command opened for writing: their write failures count in its exit code.
_WRITTEN_STORES: list[Any] = []


def with_history_outcome(code: Any) -> Any:
    """The exit code, made non-zero (2) when a history this command wrote was left unwritten or a
    flush failed unexpectedly (even if writing resumed): the user must hear of it."""
    stores, _WRITTEN_STORES[:] = list(_WRITTEN_STORES), []
    for store in stores:
        unwritten = getattr(store, "last_write_error", None)
        unexpected = getattr(store, "unexpected_write_errors", 0)
        if unwritten is None and not unexpected:
            continue
        with contextlib.suppress(OSError):
            warn(plain(unwritten) if unwritten else
                 f"the history {store.path} had {unexpected} write error(s) along the way; it was written in the end")
        if not code:
            code = EXIT_USAGE
    return code


def open_store(settings: Settings, *, read_only: bool):
    from tui.core.store import HistoryStore

    try:
        store = HistoryStore.open(Path(settings.db_path), read_only=read_only or settings.read_only)
    except OSError as exc:
        raise CliError(f"cannot open the history {settings.db_path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if not store.read_only:
        _WRITTEN_STORES.append(store)
    for notice in getattr(store, "notices", []) or []:
        # Opening read-only beside a running dashboard is expected for read commands.
        if read_only and "read-only" in notice.lower():
            continue
        warn(notice)
    return store


#: Jobs named in the message that says a prefix is ambiguous.
AMBIGUOUS_LISTED = 5


def find_job(store, ident: str) -> "Job":
    ident = ident.strip()
    matches = store.matches(ident) if ident else []
    if not matches:
        raise CliError(f"no job matches {plain(ident)!r} (give a server id, a local id or a unique prefix)", EXIT_USAGE)
    if len(matches) > 1:
        listed = ", ".join(plain(job.display_id) for job in matches[:AMBIGUOUS_LISTED])
        more = f" and {len(matches) - AMBIGUOUS_LISTED} more" if len(matches) > AMBIGUOUS_LISTED else ""
        raise CliError(f"{plain(ident)!r} is ambiguous: {len(matches)} jobs match ({listed}{more}); "
                       "give more of the id", EXIT_USAGE)
    return matches[0]


# -- presentation ---------------------------------------------------------------------------


STOPPED_HINT = "history saved; unfinished jobs keep running on the server (`hailuo-tui watch` resumes them)"


def run_async(make_coro: Callable[[], Any], *, stopped_hint: str = STOPPED_HINT) -> Any:
    """Run a coroutine; SIGTERM/SIGHUP/SIGINT cancel it so its `finally` flushes the history."""
    _WRITTEN_STORES.clear()

    async def runner() -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        received: list[int] = []

        def on_signal(signum: int) -> None:
            if not received:
                received.append(signum)
                task.cancel()

        installed = []
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        try:
            return await make_coro()
        except asyncio.CancelledError:
            if received:
                raise Interrupted(received[0]) from None
            raise
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    try:
        return with_history_outcome(asyncio.run(runner()))
    except Interrupted as exc:
        name = signal.Signals(exc.signum).name
        with contextlib.suppress(OSError):
            echo(f"stopped by {name}: {stopped_hint}", err=True)
        raise SystemExit(128 + exc.signum) from None


def open_service(settings: Settings, *, read_only: bool = False):
    from tui.core.jobs import JobService

    try:
        service = JobService.open(settings, read_only=read_only)
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot open the history {settings.db_path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if not getattr(service.store, "read_only", True):
        _WRITTEN_STORES.append(service.store)
    for notice in getattr(service.store, "notices", []) or []:
        warn(notice)
    return service


async def open_service_to_change(settings: Settings, *, role: str = "cli"):
    """The service a command that changes the history uses: the history's owner when another
    process holds it and serves it (tui.core.share), else the history opened here, as always."""
    from tui.core import share

    if not settings.read_only:
        try:
            owner = await share.find_owner(settings.db_path)
        except share.ShareRefused as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        if owner is not None:
            try:
                return await share.RemoteService.open(settings, owner, role=role)
            except (share.NoOwner, share.OwnerGone):
                pass  # it went away meanwhile: open the history here
            except share.ShareRefused as exc:
                raise CliError(str(exc), EXIT_USAGE) from None
    service = open_service(settings)
    await service.serve_others(role)
    return service


class Progress:
    """Prints transitions: plain lines, and on a terminal one status line kept at the bottom."""

    def __init__(self, *, as_json: bool, quiet: bool = False) -> None:
        self.as_json = as_json
        self.quiet = quiet
        # The status line is redrawn in place, so only when both streams are the same terminal.
        self.live = is_tty(sys.stderr) and is_tty(sys.stdout) and not as_json
        self.status_text = ""

    # A terminal that went away (SIGHUP) must not turn cleanup into a traceback.
    def _clear(self) -> None:
        if self.live and self.status_text:
            with contextlib.suppress(OSError):
                # color=True: we checked for a terminal ourselves; click would strip the erase code otherwise.
                click.echo("\r\x1b[K", err=True, nl=False, color=True)

    def _draw(self) -> None:
        if self.live and self.status_text:
            with contextlib.suppress(OSError):
                click.echo(self.status_text, err=True, nl=False)

    def transition(self, job: "Job", previous: str | None) -> None:
        if self.quiet:
            return
        self._clear()
        if self.as_json:
            echo(to_json_line({"event": "status", "previous_status": previous, "job": job.to_public()}))
        else:
            echo(job_summary(job))
        self._draw()

    def line(self, text: str, *, err: bool = False) -> None:
        """Print one line above the status line."""
        self._clear()
        echo(text, err=err)
        self._draw()

    def status(self, text: str) -> None:
        if not self.live:
            return
        self._clear()
        self.status_text = plain(text)[: max(20, _terminal_width() - 1)]
        self._draw()

    def close(self) -> None:
        self._clear()
        self.status_text = ""


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def _counts_line(jobs: Sequence["Job"]) -> str:
    from collections import Counter

    counts = Counter(plain(j.status) for j in jobs)
    done = sum(1 for j in jobs if j.is_finished)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"{done}/{len(jobs)} finished · {parts}"


async def follow(service, local_ids: list[str], progress: Progress, *, max_poll_errors: int) -> list["Job"]:
    """Wait for these jobs to end, printing each status change. Never a wait that cannot end:
    it gives up on `max_poll_errors` failed polls of a job in a row (exit 4), as many 429
    pauses in a row (exit 4), and at once when polling stops for the key, whichever job met
    the refusal (exit 3)."""
    from tui.core.events import JobChanged
    from tui.core.poller import RateLimited

    watched = set(local_ids)
    #: (message, exit code) of the reason to stop waiting.
    gave_up: asyncio.Future = asyncio.get_running_loop().create_future()

    def give_up(message: str, code: int) -> None:
        if not gave_up.done():
            gave_up.set_result((message, code))

    def current() -> list["Job"]:
        return [j for j in (service.store.get(i) for i in local_ids) if j is not None]

    # A poll failure carries the error class (auth vs. network): keep the last one per job.
    last_errors: dict[str, ApiError] = {}

    def job_failing(job: "Job") -> None:
        error = last_errors.get(job.server_id or "")
        message = plain(error.message if error else (job.last_poll_error or "polling keeps failing"))
        code = error.exit_code if error is not None and error.exit_code in (EXIT_AUTH, EXIT_NETWORK) else EXIT_NETWORK
        give_up(f"{job.display_id}: {message} (the job may still finish on the server; "
                "`hailuo-tui watch` tries again)", code)

    def on_event(event: Any) -> None:
        if isinstance(event, JobChanged) and event.job.local_id in watched:
            job = event.job
            if event.status_changed:
                progress.transition(job, event.previous_status)
            if job.poll_errors >= max_poll_errors:
                job_failing(job)
            progress.status(_counts_line(current()))

    def on_poll(event: Any) -> None:
        if isinstance(event, RateLimited) and event.in_a_row >= max_poll_errors:
            give_up(f"rate limited (429) {event.in_a_row} times in a row: giving up (the jobs may still finish "
                    "on the server; `hailuo-tui watch` tries again)", EXIT_NETWORK)
            return
        error = getattr(event, "error", None)
        server_id = getattr(event, "server_id", None)
        if isinstance(error, ApiError) and server_id:
            last_errors[server_id] = error
            # A refused key will not get better by asking again.
            if error.exit_code == EXIT_AUTH:
                job = next((j for j in current() if j.server_id == server_id), None)
                if job is not None:
                    job_failing(job)

    unsubscribe = service.subscribe(on_event)
    poller = getattr(service, "poller", None)
    unsubscribe_poll = poller.subscribe(on_poll) if poller is not None and hasattr(poller, "subscribe") else None
    progress.status(_counts_line(current()))
    waiter = asyncio.ensure_future(service.wait(local_ids))
    try:
        done, _ = await asyncio.wait({waiter, gave_up}, return_when=asyncio.FIRST_COMPLETED)
        if gave_up.done():
            message, code = gave_up.result()
            raise CliError(message, code)
        try:
            return list(waiter.result())
        except ApiError as exc:  # polling stopped for the key, on another job than these
            raise CliError(f"{plain(exc.message)} (unfinished jobs keep running on the server; "
                           "`hailuo-tui watch` resumes them with a working key)", exc.exit_code) from None
    finally:
        progress.close()
        unsubscribe()
        if unsubscribe_poll:
            unsubscribe_poll()
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await waiter


def outcome_code(jobs: Sequence["Job"]) -> int:
    return EXIT_OK if all(j.is_success for j in jobs) else EXIT_JOB_FAILED


def print_final(jobs: Sequence["Job"], *, as_json: bool) -> None:
    if as_json:
        payload = [j.to_public() for j in jobs]
        echo(to_json(payload[0] if len(payload) == 1 else payload))
        return
    for job in jobs:
        echo(f"{job.display_id}\t{plain(job.status)}")
        if job.error:
            echo(f"  error: {plain(job.error)}")
        for url in job.outputs:
            echo(f"  {plain(url)}")


# -- the group ------------------------------------------------------------------------------


