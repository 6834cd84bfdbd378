"""Batch runs: many submits from a JSON Lines or CSV file, every row checked first, each sent once.

A row has the submit fields (`model`, `scene`, `prompt`, `image`, `end_image`, `duration`,
`resolution`, `prompt_expansion`); only `prompt` is required, the rest default as in
`hailuo-tui submit`. Relative image paths are read relative to the batch file.

Reading (`read_batch`) checks every row with the catalog and returns every problem with its
row and line number; nothing is sent unless there are none.

Each row gets an idempotency key: a hash of its normalised request (plus how many identical
rows came before it in the file, so that deliberate repeats are kept apart). The job service
records the key on the job, on disk, before the POST. A re-run therefore knows every row:
- a job with that key exists: already submitted, skipped (an `unknown` one is reported and
  never re-sent; a `rejected` one created nothing on the server and is sent again);
- no job with that key: not sent yet, sent now.
Interrupting a run (Ctrl-C, SIGTERM, even SIGKILL) leaves every row submitted (with its id),
not sent, or `unknown` (its POST may have left): the history says which.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

from tui.core import catalog
from tui.core.catalog import VideoRequest
from tui.core.files import FileRefused, read_bounded
from tui.core.poller import TokenBucket
from tui.core.records import REJECTED, UNKNOWN
from tui.core.text import decode_repaired, repair_note, repair_surrogates

if TYPE_CHECKING:
    from tui.core.jobs import JobService
    from tui.core.records import Job

FIELDS = ("model", "scene", "prompt", "image", "end_image", "duration", "resolution", "prompt_expansion")
KEY_PREFIX = "batch1:"
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
DEFAULT_CONCURRENCY = 4
#: A row refused with 429 (after the client's own retries) waits and is sent again this many times.
RATE_LIMIT_ROUNDS = 5
RATE_LIMIT_PAUSE = 30.0
MAX_BATCH_BYTES = 50 * 1024 * 1024

# Outcomes of a row.
SUBMITTED = "submitted"
SKIPPED = "skipped"  # already submitted by an earlier run
FAILED = "failed"  # the server refused it (nothing was created), or it could not be sent
UNKNOWN_OUTCOME = "unknown"  # the POST may have reached the server; never re-sent
NOT_SENT = "not sent"  # the run stopped before this row
WOULD_SUBMIT = "would submit"  # a dry run's answer

_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


class BatchFileError(Exception):
    """The file as a whole cannot be used (missing, unreadable, not .jsonl or .csv)."""


@dataclass(frozen=True)
class RowError:
    row: int  # data row, from 1; 0 for the CSV header
    line: int  # line of the file where the row starts
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"header (line {self.line})" if self.row == 0 else f"row {self.row} (line {self.line})"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_public(self) -> dict[str, Any]:
        return {"row": self.row, "line": self.line, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class BatchRow:
    row: int
    line: int
    request: VideoRequest
    key: str


# -- reading --------------------------------------------------------------------------------------


def read_batch(path: str | Path, *, allow_uncertain: bool = False, check_files: bool = True,
               notices: list[str] | None = None) -> tuple[list[BatchRow], list[RowError]]:
    """Every row of the file as a request, and every problem found (with row and line numbers).

    The file is read with `files.read_bounded` (a FIFO or a device is refused, never opened or
    read; at most MAX_BATCH_BYTES). Text that is not valid (invalid UTF-8, a lone surrogate
    from a JSON escape) is repaired to U+FFFD in the row it is in, and `notices` gets one line
    per repaired row: the request built from it, and sent, is the repaired text.
    Blocking (it reads image files): call it from a thread in an event loop.
    """
    path = Path(path).expanduser()
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise BatchFileError(f"{path.name}: a batch file must end in .jsonl or .csv")
    try:
        data = read_bounded(path, MAX_BATCH_BYTES)
    except FileRefused as exc:
        if exc.reason == "no such file":
            raise BatchFileError(f"no such file: {path}") from None
        if exc.is_kind:
            raise BatchFileError(f"{path} is {exc.reason}; a batch file must be a regular .jsonl or .csv file") from None
        raise BatchFileError(f"{path} {exc.reason}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    # Decoded line by line, so that each repair is counted in the row it is in.
    decoded = [decode_repaired(piece) for piece in data.split(b"\n")]
    text = "\n".join(piece for piece, _ in decoded)
    bad_bytes = {number: n for number, (_, n) in enumerate(decoded, start=1) if n}
    raw, errors = (_jsonl_rows if kind == "jsonl" else _csv_rows)(text)
    rows: list[BatchRow] = []
    seen: dict[str, int] = {}
    base = path.parent.resolve()
    starts = [line for _, line, _ in raw] + [len(decoded) + 1]
    for index, (number, line, values) in enumerate(raw):
        values, repaired = _repaired(values)
        repaired += sum(bad_bytes.pop(n, 0) for n in range(line, starts[index + 1]))
        if repaired and notices is not None:
            notices.append(repair_note(repaired, f"row {number} (line {line})"))
        request, row_errors = _request_from(values, number, line, base)
        if request is not None:
            row_errors += [RowError(number, line, e.field, e.message)
                           for e in catalog.validate(request, allow_uncertain=allow_uncertain,
                                                     check_files=check_files)]
        if row_errors or request is None:
            errors.extend(row_errors)
            continue
        content = canonical(request)
        occurrence = seen.get(content, 0)
        seen[content] = occurrence + 1
        rows.append(BatchRow(number, line, request, idempotency_key(content, occurrence)))
    if bad_bytes and notices is not None:
        # In lines that are not a usable row (a CSV header, a row refused as a whole).
        lines = ", ".join(str(n) for n in sorted(bad_bytes)[:5]) + (", ..." if len(bad_bytes) > 5 else "")
        notices.append(repair_note(sum(bad_bytes.values()), f"{path.name} line {lines}"))
    if not raw and not errors:
        errors.append(RowError(0, 1, None, "the file has no rows"))
    errors.sort(key=lambda e: e.row)  # in file order; a row's own problems keep theirs
    return rows, errors


def _jsonl_rows(text: str) -> tuple[list[tuple[int, int, dict[str, Any]]], list[RowError]]:
    rows: list[tuple[int, int, dict[str, Any]]] = []
    errors: list[RowError] = []
    number = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        number += 1
        if (depth := nesting_depth(line)) > MAX_ROW_DEPTH:
            errors.append(RowError(number, line_no, None, f"nested {'more than ' if depth > _DEPTH_SCAN_STOP else ''}"
                                   f"{min(depth, _DEPTH_SCAN_STOP):,} levels deep; a row is one flat "
                                   f"JSON object like {{\"prompt\": \"...\"}}"))
            continue
        try:
            value = json.loads(line)
        except RecursionError:  # unreachable after the depth check; kept so it can never escape
            errors.append(RowError(number, line_no, None, "nested too deeply"))
            continue
        except ValueError as exc:
            errors.append(RowError(number, line_no, None, f"not valid JSON ({getattr(exc, 'msg', exc)})"))
            continue
        if not isinstance(value, dict):
            errors.append(RowError(number, line_no, None, "each line must be a JSON object like {\"prompt\": \"...\"}"))
            continue
        rows.append((number, line_no, value))
    return rows, errors


#: A row is a flat object; a little nesting is allowed so that the message names the field.
MAX_ROW_DEPTH = 16
_DEPTH_SCAN_STOP = 10_000


def nesting_depth(line: str) -> int:
    """How deep JSON arrays and objects nest in `line` (brackets inside strings do not count);
    counted without parsing, so that no depth reaches the parser's recursion. Stops counting
    past _DEPTH_SCAN_STOP."""
    if line.count("[") + line.count("{") <= MAX_ROW_DEPTH:
        return line.count("[") + line.count("{")  # an upper bound, and small: nothing to scan
    depth = deepest = 0
    in_string = escaped = False
    for ch in line:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > _DEPTH_SCAN_STOP:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _repaired(values: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A row's values with lone surrogates (from JSON escapes) repaired, and how many were.
    Only the top level holds text a request uses; deeper values are refused by field."""
    out: dict[str, Any] = {}
    count = 0
    for name, value in values.items():
        name, n = repair_surrogates(name)
        count += n
        if isinstance(value, str):
            value, n = repair_surrogates(value)
            count += n
        out[name] = value
    return out, count


def _csv_rows(text: str) -> tuple[list[tuple[int, int, dict[str, Any]]], list[RowError]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    errors: list[RowError] = []
    try:
        header = next(reader)
    except StopIteration:
        return [], []
    except csv.Error as exc:
        return [], [RowError(0, 1, None, f"not valid CSV ({exc})")]
    columns = [name.strip().lower() for name in header]
    for name in columns:
        if name not in FIELDS:
            errors.append(RowError(0, 1, name or "(empty)", f"unknown column; the columns are {', '.join(FIELDS)}"))
    if "prompt" not in columns:
        errors.append(RowError(0, 1, None, "no prompt column"))
    if errors:
        return [], errors
    rows: list[tuple[int, int, dict[str, Any]]] = []
    number = 0
    line_no = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            number += 1
            errors.append(RowError(number, line_no, None, f"not valid CSV ({exc})"))
            break
        start, line_no = line_no, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        number += 1
        if len(cells) > len(columns):
            errors.append(RowError(number, start, None,
                                   f"{len(cells)} cells but the header has {len(columns)} columns"))
            continue
        rows.append((number, start, {name: cell for name, cell in zip(columns, cells) if cell.strip() != ""}))
    return rows, errors


def _request_from(values: dict[str, Any], number: int, line: int, base: Path) -> tuple[VideoRequest | None, list[RowError]]:
    errors: list[RowError] = []

    def problem(name: str, message: str) -> None:
        errors.append(RowError(number, line, name, message))

    for name in values:
        if name not in FIELDS:
            problem(str(name), f"unknown field; the fields are {', '.join(FIELDS)}")

    def text(name: str) -> str | None:
        value = values.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            problem(name, f"must be text, not {json.dumps(value)}")
            return None
        return value

    prompt = text("prompt")
    model = (text("model") or catalog.DEFAULT_MODEL).strip().lower()
    image = _image_path(text("image"), base)
    end_image = _image_path(text("end_image"), base)
    scene = (text("scene") or ("image-to-video" if image else "text-to-video")).strip().lower()
    resolution = (text("resolution") or catalog.default_resolution(model)).strip().upper()
    duration = _duration(values.get("duration"), problem)
    expansion = _flag(values.get("prompt_expansion"), problem)
    if errors:
        return None, errors
    return VideoRequest(model=model, scene=scene, prompt=prompt or "", image=image, end_image=end_image,
                        duration=duration, resolution=resolution, prompt_expansion=expansion), []


def _image_path(value: str | None, base: Path) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if catalog.is_url(value) or value.lower().startswith("data:"):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def _duration(value: Any, problem: Callable[[str, str], None]) -> int:
    if value is None:
        return catalog.DEFAULT_DURATION
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    problem("duration", f"must be a whole number of seconds, not {json.dumps(value)}")
    return catalog.DEFAULT_DURATION


def _flag(value: Any, problem: Callable[[str, str], None]) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    problem("prompt_expansion", f"must be true or false, not {json.dumps(value)}")
    return True


def canonical(request: VideoRequest) -> str:
    """The request as one canonical JSON text: equal requests, equal text."""
    return json.dumps(request.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def idempotency_key(content: str, occurrence: int = 0) -> str:
    digest = hashlib.sha256(f"{content}\n{occurrence}".encode("utf-8")).hexdigest()
    return KEY_PREFIX + digest


# -- outcomes ---------------------------------------------------------------------------------------


@dataclass
class RowOutcome:
    row: BatchRow
    outcome: str
    job: "Job | None" = None
    message: str | None = None
    #: The CLI exit code a failure maps to (the ApiError's), 0 otherwise.
    exit_code: int = 0
    #: True when the state comes from an earlier run (skipped, or unknown since then).
    earlier: bool = False

    def to_public(self) -> dict[str, Any]:
        job = self.job
        return {
            "row": self.row.row,
            "line": self.row.line,
            "outcome": self.outcome,
            "earlier": self.earlier,
            "id": job.server_id if job else None,
            "local_id": job.local_id if job else None,
            "status": job.status if job else None,
            "message": self.message,
            "prompt": self.row.request.prompt,
            "key": self.row.key,
        }


@dataclass
class BatchSummary:
    outcomes: list[RowOutcome]
    #: Why the run ended before the last row, if it did.
    stopped: str | None = None
    dry_run: bool = False
    #: A budget refused the whole batch before anything was sent (`stopped` says which).
    refused: bool = False
    #: The estimated total of the rows to send (set by `dry_run` and `BatchRun`), see tui.core.costs.
    cost: Any = None

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        return {name: self.count(name) for name in (SUBMITTED, SKIPPED, FAILED, UNKNOWN_OUTCOME, NOT_SENT,
                                                     WOULD_SUBMIT)}

    def line(self) -> str:
        c = self.counts
        if self.dry_run:
            cost = f"; {self.cost.line()}" if self.cost is not None else ""
            return (f"dry run: {c[WOULD_SUBMIT]} to submit, {c[SKIPPED]} already submitted, "
                    f"{c[UNKNOWN_OUTCOME]} unknown (not re-sent){cost}; nothing was sent")
        return (f"{c[SUBMITTED]} submitted, {c[SKIPPED]} skipped (already submitted), {c[FAILED]} failed, "
                f"{c[UNKNOWN_OUTCOME]} unknown (not re-sent), {c[NOT_SENT]} not sent")

    def exit_code(self) -> int:
        """The CLI's code: 3 key/balance, 5 unknown, 4 network/server or not sent, 2 refused, else 0."""
        if self.refused:
            return 2
        failed = [o.exit_code for o in self.outcomes if o.outcome == FAILED]
        if 3 in failed:
            return 3
        if self.count(UNKNOWN_OUTCOME):
            return 5
        if 4 in failed or self.count(NOT_SENT):
            return 4
        if failed:
            return 2
        return 0

    def to_public(self) -> dict[str, Any]:
        counts = {k.replace(" ", "_"): v for k, v in self.counts.items()}
        summary = {"rows": len(self.outcomes), **counts, "stopped": self.stopped, "dry_run": self.dry_run,
                   "refused_by_budget": self.refused}
        if self.cost is not None:
            summary["estimated_cost"] = round(self.cost.total, 6)
            summary["unpriced_rows"] = self.cost.unpriced
        return {"summary": summary, "rows": [o.to_public() for o in self.outcomes]}


def plan(store: Any, rows: Iterable[BatchRow]) -> list[RowOutcome]:
    """What a run would do with each row, from the history alone (sends nothing)."""
    outcomes = []
    for row in rows:
        job = store.find_by_idempotency_key(row.key)
        if job is None or job.status == REJECTED:
            outcomes.append(RowOutcome(row, WOULD_SUBMIT, job))
        elif job.status == UNKNOWN:
            outcomes.append(RowOutcome(row, UNKNOWN_OUTCOME, job, earlier=True, message=(
                "the earlier submit's outcome is unknown: not re-sent (check the provider's dashboard; "
                f"`hailuo-tui forget {job.local_id}` lets a re-run send it)")))
        else:
            outcomes.append(RowOutcome(row, SKIPPED, job, earlier=True,
                                       message=f"already submitted (now {job.status})"))
    return outcomes


def dry_run(store: Any, rows: Iterable[BatchRow], prices: Any = None) -> BatchSummary:
    """What a run would do, with the estimated total of the rows it would send when `prices` is given."""
    outcomes = plan(store, rows)
    summary = BatchSummary(outcomes, dry_run=True)
    if prices is not None:
        from tui.core.costs import batch_cost

        summary.cost = batch_cost((o.row.request for o in outcomes if o.outcome == WOULD_SUBMIT), prices)
    return summary


# -- running ------------------------------------------------------------------------------------------


class BatchRun:
    """Submits the rows a plan says to send: at most `concurrency` at once, at most `rate` a second."""

    def __init__(self, service: "JobService", rows: list[BatchRow], *, concurrency: int = DEFAULT_CONCURRENCY,
                 rate: float | None = None, on_outcome: Callable[[RowOutcome], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.service = service
        self.rows = rows
        self.concurrency = max(1, concurrency)
        rate = service.settings.submit_rate if rate is None else rate
        self._bucket = TokenBucket(rate, 1.0, clock())
        self._clock = clock
        self._sleep = sleep
        self._on_outcome = on_outcome
        self._paused_until = 0.0
        self._stopped: str | None = None
        self._refused = False
        self._cost: Any = None
        self.outcomes: dict[int, RowOutcome] = {}
        self.in_flight = 0

    # -- the result, at any moment ---------------------------------------------------------------
    def summary(self) -> BatchSummary:
        """One outcome per row. Rows without one yet are read from the history: a job with the
        row's key is submitted (or unknown, if its POST was cut off), no job means not sent."""
        result = []
        for row in self.rows:
            outcome = self.outcomes.get(row.row)
            if outcome is None:
                job = self.service.store.find_by_idempotency_key(row.key)
                if job is not None and job.status == UNKNOWN:
                    outcome = RowOutcome(row, UNKNOWN_OUTCOME, job, message=job.error)
                elif job is not None and job.server_id:
                    outcome = RowOutcome(row, SUBMITTED, job)
                else:
                    outcome = RowOutcome(row, NOT_SENT, None, message=self._stopped)
            result.append(outcome)
        return BatchSummary(result, self._stopped, refused=self._refused, cost=self._cost)

    def _settle(self, outcome: RowOutcome) -> None:
        self.outcomes[outcome.row.row] = outcome
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    # -- running --------------------------------------------------------------------------------
    async def run(self) -> BatchSummary:
        """Skip what is already submitted, send the rest. Cancelling it stops between rows (a POST
        in flight is recorded as unknown by the job service); `summary()` then accounts for all."""
        to_send: list[BatchRow] = []
        for outcome in plan(self.service.store, self.rows):
            if outcome.outcome == WOULD_SUBMIT:
                to_send.append(outcome.row)
            else:
                self._settle(outcome)
        # A batch that would pass a budget is refused whole, before its first POST: never half sent.
        from tui.core.costs import batch_cost

        self._cost = batch_cost((row.request for row in to_send), self.service.prices)
        refused = self.service.budget_refusal([row.request for row in to_send], batch=True)
        if refused is not None:
            self._stopped, self._refused = refused, True
            for row in to_send:
                self._settle(RowOutcome(row, NOT_SENT, message=refused, exit_code=2))
            return self.summary()
        queue = iter(to_send)
        workers = [asyncio.ensure_future(self._worker(queue)) for _ in range(min(self.concurrency, len(to_send)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        return self.summary()

    async def _worker(self, queue: Iterable[BatchRow]) -> None:
        for row in queue:
            if self._stopped:
                self._settle(RowOutcome(row, NOT_SENT, message=self._stopped))
                continue
            await self._send(row)

    async def _pace(self) -> None:
        while True:
            now = self._clock()
            wait = max(self._bucket.wait_time(now), self._paused_until - now)
            if wait <= 0:
                self._bucket.take(now)
                return
            await self._sleep(wait)

    async def _send(self, row: BatchRow) -> None:
        from tui.core.api.errors import RateLimitedError, SubmitOutcomeUnknownError
        from tui.core.jobs import SubmitDisabled, SubmitFailed, ValidationFailed

        for _round in range(RATE_LIMIT_ROUNDS + 1):
            await self._pace()
            if self._stopped:
                self._settle(RowOutcome(row, NOT_SENT, message=self._stopped))
                return
            self.in_flight += 1
            try:
                job = await self.service.submit(row.request, idempotency_key=row.key)
            except ValidationFailed as exc:
                # Checked when the file was read; an image file changed since.
                self._settle(RowOutcome(row, FAILED, message="; ".join(str(e) for e in exc.errors), exit_code=2))
                return
            except SubmitDisabled as exc:
                self._stopped = str(exc)
                self._settle(RowOutcome(row, NOT_SENT, message=str(exc)))
                return
            except OSError as exc:
                # The history could not be written, so nothing was sent: stop before the next row.
                self._stopped = f"stopped: cannot write the history ({exc.strerror or exc})"
                self._settle(RowOutcome(row, NOT_SENT, message=self._stopped))
                return
            except SubmitFailed as exc:
                cause = exc.error
                if isinstance(cause, SubmitOutcomeUnknownError):
                    self._settle(RowOutcome(row, UNKNOWN_OUTCOME, exc.job, message=exc.job.error, exit_code=5))
                    return
                if isinstance(cause, RateLimitedError) and _round < RATE_LIMIT_ROUNDS:
                    # The server created nothing: drop the refused record, wait, send the row again.
                    self.service.forget(exc.job.local_id)
                    self._paused_until = max(self._paused_until,
                                             self._clock() + (cause.retry_after or RATE_LIMIT_PAUSE))
                    continue
                if cause.exit_code == 3:
                    self._stopped = f"stopped: {cause.message}"
                self._settle(RowOutcome(row, FAILED, exc.job, message=cause.message, exit_code=cause.exit_code))
                return
            finally:
                self.in_flight -= 1
            self._settle(RowOutcome(row, SUBMITTED, job))
            return
