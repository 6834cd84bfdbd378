"""The job table: every job of the history in one virtual, live, keyboard-driven table.

A stock `DataTable` builds a renderable per cell up front (7 s to the first frame with 50,000
jobs). This table keeps plain Python lists of local ids and renders only the lines on screen
through Textual's Line API: a row is formatted the first time it is seen and its `Strip` is
cached until that job (or the width, or the text of its clock-driven cells) changes. Sorting
and filtering are list work over what `tui.core.job_index` keeps: search text in display
order, recent query results to narrow, sort orders from plain values.

Everything from the server or the user is drawn as literal segments (never parsed as markup)
after `plain_text()` has removed control characters and escape sequences.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from itertools import compress
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.core.costs import MAY_BE_BILLED, NOT_BILLED, PriceTable, bucket_of, money
from tui.core.eta import Estimate, EtaBook, eta_text
from tui.core.job_index import QueryMemo, SortIndex, narrows, query_words, search, search_text, status_group
from tui.core.job_index import sort_key_function as _sort_key_function
from tui.core.records import Job
from tui.core.text import inert
from tui.ui.format import format_ago, format_elapsed, format_exec
from tui.ui.glyphs import GLYPHS

__all__ = ["JobTable", "STATUS_FILTERS", "SORT_COLUMNS", "plain_text", "status_group"]

# -- text helpers ------------------------------------------------------------------------------

def plain_text(value: object) -> str:
    """One line of inert text: escape sequences and control characters removed, newlines as spaces."""
    return inert(value)


def fit(text: str, width: int, *, right: bool = False) -> str:
    """Pad or truncate (with …) to exactly `width` terminal cells."""
    if width <= 0:
        return ""
    length = len(text) if text.isascii() else cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + GLYPHS.ellipsis if width > 1 else GLYPHS.ellipsis
    if length == width:
        return text
    pad = " " * (width - length)
    return pad + text if right else text + pad


#: What the status cell says about a job whose polls keep failing, by `ApiError.kind`.
_PROBLEMS = {
    "malformed": "malformed",
    "network": "unreachable",
    "server_error": "server error",
    "invalid_key": "key refused",
    "permission": "refused",
    "insufficient_balance": "no balance",
    "not_found": "not found",
    "redirect": "redirected",
}


def poll_problem(job: Job) -> str:
    """A few words on why this job's polls fail ("" when they do not)."""
    if not job.poll_errors or job.is_finished:
        return ""
    return _PROBLEMS.get(job.last_poll_error_kind or "", "poll error")


def _matches_group(group: str, wanted: str) -> bool:
    # An unknown outcome is a failure as far as the "failed" quick filter is concerned: the user must act.
    return group == wanted or (wanted == "failed" and group == "unknown")


STATUS_FILTERS: tuple[str | None, ...] = (None, "pending", "failed", "completed")
# -- columns -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    width: int
    right: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("id", "ID", 12),
    Column("model", "MODEL", 19),
    Column("scene", "SCENE", 14),
    Column("status", "STATUS", 17),
    Column("eta", "ETA", 10, right=True),
    Column("prompt", "PROMPT", 0),
    Column("resolution", "RES", 9),
    Column("submitted", "SUBMITTED", 10, right=True),
    Column("execution", "EXEC", 7, right=True),
    Column("cost", "EST $", 6, right=True),
)
_COLUMN_BY_KEY = {column.key: column for column in COLUMNS}
SORT_COLUMNS: tuple[str, ...] = ("submitted", "status", "model", "execution", "resolution", "scene", "prompt", "id")
#: Newest first / longest first by default; names alphabetically.
_DEFAULT_REVERSE = {"submitted": True, "execution": True}

PROMPT_MIN_WIDTH = 16
#: When the prompt would get narrower than PROMPT_MIN_WIDTH, these steps run in order until it fits:
#: (column, new width) shrinks a column, (column, 0) drops it.
_SQUEEZE: tuple[tuple[str, int], ...] = (
    ("eta", 0),  # the newest column gives way first: narrow layouts stay as they were
    ("scene", 0),
    ("model", 12),  # "2.3-standard": the "hailuo-" prefix goes first
    ("cost", 0),  # an estimate; the detail pane and the stats panel keep it
    ("execution", 0),
    ("id", 8),
    ("resolution", 0),
    ("status", 10),
    ("model", 0),
    ("submitted", 0),
)
_GAP = 1  # blank cells between columns, and at the left edge


def layout_columns(width: int) -> list[tuple[Column, int]]:
    """Column widths for a table `width` cells wide; the prompt takes what is left."""
    widths = {column.key: column.width for column in COLUMNS}

    def prompt_width() -> int:
        used = sum(w + _GAP for key, w in widths.items() if key != "prompt" and w > 0)
        return width - used - 2 * _GAP

    for key, new_width in _SQUEEZE:
        if prompt_width() >= PROMPT_MIN_WIDTH:
            break
        widths[key] = min(widths[key], new_width)
    widths["prompt"] = max(1, prompt_width())
    return [(column, widths[column.key]) for column in COLUMNS if widths[column.key] > 0]


# -- rows --------------------------------------------------------------------------------------


def cost_cell(job: Job, prices: PriceTable) -> str:
    """The cost column: the estimate in dollars, "?" after it when the job may or may not be billed."""
    bucket = bucket_of(job)
    if bucket == NOT_BILLED:
        return "-"
    amount = prices.for_job(job).amount
    if amount is None:
        return "?"
    text = money(amount).removeprefix("$")
    return f"{text}?" if bucket == MAY_BE_BILLED else text


_DEFAULT_PRICES = PriceTable()
#: Jobs whose search text is built per step in the background: a few milliseconds of the loop.
_INDEX_SLICE = 2000


@dataclass(slots=True)
class _Row:
    """What a row shows, taken from the job when it was last applied (so `frozen` really freezes)."""

    job: Job
    short_id: str
    model: str
    model_short: str
    scene: str
    status: str
    group: str
    prompt: str
    resolution: str
    submitted_at: float
    execution: str
    pending: bool
    #: The estimated cost ("0.441"; "0.441?" when it may be billed; "-" when it was not billed),
    #: set by the table from its price table.
    cost: str = ""
    #: Why polling this job keeps failing ("malformed answer"...), or "" while it works.
    problem: str = ""
    #: The expected time to finish of its kind (pending jobs, once the history's figures are known).
    estimate: Estimate | None = None

    @classmethod
    def of(cls, job: Job) -> "_Row":
        request = job.request
        model = plain_text(job.model)
        duration = request.get("duration")
        resolution = plain_text(request.get("resolution") or "")
        if duration not in (None, ""):
            resolution = f"{resolution}·{plain_text(duration)}s" if resolution else f"{plain_text(duration)}s"
        return cls(
            job=job,
            short_id=plain_text(job.short_id),
            model=model,
            model_short=model.removeprefix("hailuo-"),
            scene=plain_text(job.scene),
            status=plain_text(job.status),
            group=status_group(job),
            prompt=plain_text(job.prompt),
            resolution=resolution,
            submitted_at=job.submitted_at,
            execution=format_exec(job.execution_time_ms),
            pending=not job.is_finished,
            problem=poll_problem(job),
        )

    def clock_texts(self, now: float, coarse: bool = False) -> tuple[str, str, str]:
        """The cells that change with time alone: status with elapsed time (whole minutes past the
        first when `coarse`), submitted, and the ETA (`~40s left`, `late 2m`). While polls fail,
        the status cell says why instead (the status is in the detail pane)."""
        # The status is a word, never a colour alone: it reads the same under NO_COLOR.
        if self.pending and self.problem:
            status = f"{GLYPHS.warning} {self.problem}"
        elif self.pending:
            status = f"{self.status} {format_elapsed(now - self.submitted_at, coarse=coarse)}"
        else:
            status = self.status
        eta = eta_text(now - self.submitted_at, self.estimate) if self.pending and self.estimate is not None else ""
        return status, format_ago(now - self.submitted_at), eta


class _Keys(dict):
    """The sort key of each job as it was placed. Keys of the submitted column never change
    (submitted_at and local_id are fixed), so for it they may be computed on first use; after a
    sort by another column they come from the values captured by that sort (`as_sorted`)."""

    def __init__(self, jobs: dict[str, Job], key_of: Callable[[Job], tuple],
                 as_sorted: Callable[[str], tuple] | None = None) -> None:
        super().__init__()
        self.jobs = jobs
        self.key_of = key_of
        self.as_sorted = as_sorted

    def __missing__(self, local_id: str) -> tuple:
        if self.as_sorted is not None:
            key = self[local_id] = self.as_sorted(local_id)
        else:
            key = self[local_id] = self.key_of(self.jobs[local_id])
        return key


def _strictly_ordered(jobs: list[Job], newest_first: bool) -> bool:
    """Whether jobs are already in submitted order with no ties (so local ids need not break them)."""
    times = [job.submitted_at for job in jobs]
    if newest_first:
        return all(a > b for a, b in zip(times, times[1:]))
    return all(a < b for a, b in zip(times, times[1:]))


class _Descending:
    """Inverts comparison so `bisect` works on a list sorted in reverse."""

    __slots__ = ("key",)

    def __init__(self, key: tuple) -> None:
        self.key = key

    def __lt__(self, other: "_Descending") -> bool:
        return other.key < self.key


#: Unchanged cells between two changes below which one repaint covers both: moving the
#: terminal's cursor and setting the style again costs about this many bytes.
_MERGE_GAP = 12


def _cells(segments: Iterable[Segment]) -> list[tuple[str | None, Style | None]]:
    """(character, style) per cell; the second cell of a wide character is (None, style)."""
    cells: list[tuple[str | None, Style | None]] = []
    for segment in segments:
        style = segment.style
        if segment.text.isascii():
            cells.extend((char, style) for char in segment.text)
            continue
        for char in segment.text:
            cells.append((char, style))
            cells.extend((None, style) for _ in range(cell_len(char) - 1))
    return cells


def _changed_cells(old: Strip, new: Strip) -> list[tuple[int, int]]:
    """(x, width) runs of the cells that differ, in text or style, between two renderings of a
    line; runs closer than _MERGE_GAP are one. A wide character is never cut."""
    if old.cell_length != new.cell_length:
        return [(0, new.cell_length)]
    # Whole segments alike at both ends are skipped without looking at their cells.
    old_segments, new_segments = list(old), list(new)
    same = min(len(old_segments), len(new_segments))
    head = offset = 0
    while head < same and old_segments[head] == new_segments[head]:
        offset += cell_len(old_segments[head].text)
        head += 1
    tail = 0
    while tail < same - head and old_segments[-1 - tail] == new_segments[-1 - tail]:
        tail += 1
    before = _cells(old_segments[head:len(old_segments) - tail])
    after = _cells(new_segments[head:len(new_segments) - tail])
    runs: list[list[int]] = []
    for x, (was, now) in enumerate(zip(before, after)):
        if was != now:
            if runs and x - runs[-1][1] <= _MERGE_GAP:
                runs[-1][1] = x + 1
            else:
                runs.append([x, x + 1])
    for run in runs:
        while run[0] > 0 and (before[run[0]][0] is None or after[run[0]][0] is None):
            run[0] -= 1
        while run[1] < len(after) and (before[run[1]][0] is None or after[run[1]][0] is None):
            run[1] += 1
    return [(offset + start, stop - start) for start, stop in runs]


# -- the widget --------------------------------------------------------------------------------


class JobTable(ScrollView, can_focus=True):
    """All jobs, newest first; only the lines on screen are rendered.

    Feed it with `set_jobs()` once, then `upsert()` / `remove()` per change (on the event loop).
    The parent sets `filter_text`, `status_filter`, `sort_column`, `sort_reverse` and `frozen`,
    and listens for `JobTable.Highlighted` (cursor on another job, or its job changed) and
    `JobTable.Selected` (Enter, or a double click). Keys: up/k, down/j, g/Home, G/End,
    PageUp, PageDown, Enter; `s` next sort column, `S` reverse the order. A click on a column
    title sorts by it (again: reverses). Colours: the component classes in styles/job_table.tcss.

    When a row is added or removed above the first row on screen, the view shifts with it so
    the rows being read stay put; at the very top it stays at the top, so new jobs show up.
    """

    # Ids let the app's keymap remap them (App.set_keymap).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False, id="job-table.up"),
        Binding("down,j", "cursor_down", "Down", show=False, id="job-table.down"),
        Binding("g,home", "cursor_top", "Top", show=False, id="job-table.top"),
        Binding("G,end", "cursor_bottom", "Bottom", show=False, id="job-table.bottom"),
        Binding("pageup", "page_up", "Page up", show=False, id="job-table.page-up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="job-table.page-down"),
        Binding("enter", "select_cursor", "Open", show=False, id="job-table.open"),
        Binding("s", "cycle_sort", "Sort column", id="job-table.sort"),
        Binding("S", "reverse_sort", "Reverse sort", id="job-table.reverse"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "job-table--header",
        "job-table--cursor",
        "job-table--muted",
        "job-table--status-completed",
        "job-table--status-failed",
        "job-table--status-pending",
        "job-table--status-unknown",
    }

    DEFAULT_CSS = """
    JobTable {
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
    }
    """

    #: Case-insensitive; several words must all match (id, prompt, model, status).
    filter_text: reactive[str] = reactive("", init=False)
    #: None, "pending", "failed" (includes unknown outcomes) or "completed".
    status_filter: reactive[str | None] = reactive(None, init=False)
    sort_column: reactive[str] = reactive("submitted", init=False)
    sort_reverse: reactive[bool] = reactive(True, init=False)
    #: While True, upserts and removals are queued and applied when it turns False again.
    frozen: reactive[bool] = reactive(False, init=False)

    class Highlighted(Message):
        """The cursor moved to another job, or the job under it changed; `job` is None when a
        filter left no job under the cursor (the detail pane must not keep showing a hidden one)."""

        def __init__(self, table: "JobTable", job: Job | None) -> None:
            super().__init__()
            self.table = table
            self.job = job

        @property
        def control(self) -> "JobTable":
            return self.table

    class Selected(Message):
        """Enter (or a click on the cursor row) on a job."""

        def __init__(self, table: "JobTable", job: Job) -> None:
            super().__init__()
            self.table = table
            self.job = job

        @property
        def control(self) -> "JobTable":
            return self.table

    def __init__(
        self,
        jobs: Iterable[Job] = (),
        *,
        clock: Callable[[], float] = time.time,
        tick_interval: float = 1.0,
        coarse_clock: bool = False,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
        prices: PriceTable | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._clock = clock
        #: For the cost column (the config's `[prices]` over the list prices).
        self.prices = prices or _DEFAULT_PRICES
        self._tick_interval = tick_interval
        #: Running jobs' elapsed time in whole minutes past the first (low-bandwidth mode).
        self._coarse_clock = coarse_clock
        self._jobs: dict[str, Job] = {}
        self._key_of: Callable[[Job], tuple] = _sort_key_function("submitted")
        self._keys: dict[str, tuple] = _Keys({}, self._key_of)  # each job's key, as placed in the lists
        self._all: list[str] = []  # every local id, in display order
        self._visible: list[str] = self._all  # the filtered ones; the same list when no filter is set
        #: Search text by local id: built a slice at a time once the jobs are set (or at once by
        #: the first filter that cannot wait), then kept up to date by every change.
        self._haystacks: dict[str, str] | None = None
        self._indexing = 0  # which set of jobs `_haystacks` is for (set_jobs starts another)
        self._building: int | None = None  # the `_indexing` whose build is under way
        self._changed_while_indexing: set[str] = set()
        self._all_texts: list[str] | None = None  # the search texts in the order of `_all`, once needed
        #: The search texts in the order of `_visible` when a text or status filter made it
        #: (the next keystroke narrows it), else None.
        self._visible_texts: list[str] | None = None
        self._shown_query: tuple[str | None, tuple[str, ...]] = (None, ())  # what `_visible` holds
        self._memo = QueryMemo()
        self._sorter = SortIndex()
        self._groups: dict[str, str] | None = None  # built on the first status filter
        self._rows: dict[str, _Row] = {}
        #: Each row's rendered strip with the key it was drawn for; the rows drawn last are kept
        #: (a long scroll through a big history must not keep every row it passed).
        self._strips: LRUCache[str, tuple[tuple, Strip]] = LRUCache(4096)
        self._header: tuple[tuple, Strip] | None = None
        self._styles: dict[str, Style] = {}
        self._layouts: dict[int, list[tuple[Column, int]]] = {}
        self._queue: dict[str, Job | None] = {}
        self._cursor_id: str | None = None
        self._announced: tuple | None = None  # (local id, job object id, job signature) last announced
        self._eta: EtaBook | None = None
        self.set_jobs(list(jobs))

    # -- public API --------------------------------------------------------------------------

    @property
    def eta(self) -> EtaBook | None:
        """The figures pending rows take their ETA from (the service's); None: no ETA column text."""
        return self._eta

    @eta.setter
    def eta(self, book: EtaBook | None) -> None:
        self._eta = book
        for local_id, row in list(self._rows.items()):
            if row.pending:
                del self._rows[local_id]  # rebuilt with its estimate when next drawn
        self.refresh()

    def set_jobs(self, jobs: list[Job]) -> None:
        """Replace everything (the initial load). Keeps the cursor on its job if it is still there."""
        self._queue.clear()
        self._jobs = {job.local_id: job for job in jobs}
        self._sorter.forget()
        self._memo.budget = max(100_000, 2 * len(self._jobs))
        if len(self._jobs) == len(jobs) and self.sort_column == "submitted" and _strictly_ordered(jobs, self.sort_reverse):
            # The store hands the history over newest first: no keys or sort needed to open it.
            self._keys = _Keys(self._jobs, self._key_of)
            self._all = [job.local_id for job in jobs]
        else:
            self._sort_all()
        self._haystacks = None
        self._groups = None
        self._order_changed()
        self._rows.clear()
        self._strips.clear()
        self._rebuild_visible(keep_scroll=False)
        self._indexing += 1  # a build under way was for the jobs before these
        self._building = None
        self._changed_while_indexing.clear()
        self._prepare_sorts_soon()

    def upsert(self, job: Job) -> None:
        """Add or update one job. Only its row is redrawn unless rows below it shift."""
        if self.frozen:
            self._queue[job.local_id] = job
            return
        self._apply(job.local_id, job)

    def remove(self, local_id: str) -> None:
        if self.frozen:
            self._queue[local_id] = None
            return
        self._apply(local_id, None)

    @property
    def selected_job(self) -> Job | None:
        return self._jobs.get(self._cursor_id) if self._cursor_id is not None else None

    def select(self, local_id: str) -> bool:
        """Move the cursor to a job (if it is shown) and scroll it into view."""
        row = self._row_of(local_id)
        if row is None:
            return False
        self._move_cursor(row)
        return True

    @property
    def visible_count(self) -> int:
        return len(self._visible)

    @property
    def empty_text(self) -> str:
        """What a table without rows says: why there is nothing, and what to do."""
        if not self._jobs:
            return "no jobs yet: n for a new one"
        words = inert(self.filter_text).strip()
        group = f"no {self.status_filter} jobs" if self.status_filter else "no jobs"
        if words:
            return f"{group} match '{words}': Escape clears the filter"
        return group

    @property
    def filter_summary(self) -> str:
        """`3 of 12 jobs match` while a filter is set, else empty."""
        if not (self.filter_text.strip() or self.status_filter):
            return ""
        return f"{len(self._visible)} of {len(self._jobs)} jobs match"

    @property
    def total_count(self) -> int:
        return len(self._jobs)

    @property
    def queued_count(self) -> int:
        """Updates waiting for `frozen` to turn off."""
        return len(self._queue)

    @property
    def cursor_row(self) -> int | None:
        return None if self._cursor_id is None else self._row_of(self._cursor_id)

    def visible_jobs(self, start: int = 0, stop: int | None = None) -> list[Job]:
        """Jobs in display order (a slice, to keep it cheap)."""
        return [self._jobs[local_id] for local_id in self._visible[start:stop]]

    # -- reactive watchers -------------------------------------------------------------------

    def watch_filter_text(self) -> None:
        self._rebuild_visible()

    def watch_status_filter(self) -> None:
        self._rebuild_visible()

    def validate_status_filter(self, wanted: str | None) -> str | None:
        if wanted not in STATUS_FILTERS:
            raise ValueError(f"status_filter must be one of {STATUS_FILTERS}, not {wanted!r}")
        return wanted

    def validate_sort_column(self, column: str) -> str:
        return column if column in SORT_COLUMNS else "submitted"

    def watch_sort_column(self) -> None:
        self._resort()

    def watch_sort_reverse(self) -> None:
        # Keys are unique, so the reversed order is exactly the list reversed: no keys, no sort.
        self._all.reverse()
        texts = self._all_texts
        self._order_changed()
        if texts is not None:
            texts.reverse()
            self._all_texts = texts
        self._header = None
        self._rebuild_visible(keep_scroll=False)

    def watch_frozen(self, frozen: bool) -> None:
        self.set_class(frozen, "-frozen")  # so the stylesheet can show that live updates are paused
        if frozen or not self._queue:
            return
        queued, self._queue = self._queue, {}
        for local_id, job in queued.items():
            self._apply(local_id, job)

    # -- actions -----------------------------------------------------------------------------

    def action_cursor_up(self) -> None:
        self._move_cursor((self.cursor_row or 0) - 1)

    def action_cursor_down(self) -> None:
        row = self.cursor_row
        self._move_cursor(0 if row is None else row + 1)

    def action_cursor_top(self) -> None:
        self._move_cursor(0)

    def action_cursor_bottom(self) -> None:
        self._move_cursor(len(self._visible) - 1)

    def action_page_up(self) -> None:
        self._move_cursor((self.cursor_row or 0) - self._page_rows())

    def action_page_down(self) -> None:
        self._move_cursor((self.cursor_row or 0) + self._page_rows())

    def action_select_cursor(self) -> None:
        job = self.selected_job
        if job is not None:
            self.post_message(self.Selected(self, job))

    def action_cycle_sort(self) -> None:
        index = SORT_COLUMNS.index(self.sort_column)
        column = SORT_COLUMNS[(index + 1) % len(SORT_COLUMNS)]
        self._set_sort(column, _DEFAULT_REVERSE.get(column, False))

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse

    # -- data maintenance --------------------------------------------------------------------

    def _set_sort(self, column: str, reverse: bool) -> None:
        # One re-sort for both changes.
        self.set_reactive(JobTable.sort_column, column)
        self.set_reactive(JobTable.sort_reverse, reverse)
        self._resort()

    def prepare_filter(self) -> None:
        """The filter is about to be used (its box opened): build the search text of every job
        a slice at a time between other work, so that the first key typed finds it ready (50,000
        jobs take 0.3 s at once). Not done before: it costs 20 MiB at 50,000 jobs."""
        if not self.is_mounted or self._haystacks is not None or self._building == self._indexing:
            return
        self._changed_while_indexing.clear()
        build, jobs, built = self._indexing, list(self._jobs.items()), {}
        self._building = build

        def step(start: int) -> None:
            if build != self._indexing or self._haystacks is not None:
                return  # superseded by new jobs, or finished at once by a filter
            for local_id, job in jobs[start:start + _INDEX_SLICE]:
                built[local_id] = search_text(job)
            if start + _INDEX_SLICE < len(jobs):
                self.call_later(step, start + _INDEX_SLICE)
                return
            for local_id in self._changed_while_indexing:  # changed after their slice was built
                job = self._jobs.get(local_id)
                if job is None:
                    built.pop(local_id, None)
                else:
                    built[local_id] = search_text(job)
            self._changed_while_indexing.clear()
            self._haystacks = built
            self._building = None

        self.call_later(step, 0)

    def _prepare_sorts_soon(self) -> None:
        """What every sort of these jobs shares, worked out after the frame that shows them."""
        if self.is_mounted:
            self.call_after_refresh(lambda: self._sorter.prepare(self._jobs))  # the jobs when it runs

    def _ensure_haystacks(self) -> dict[str, str]:
        if self._haystacks is None:
            self._haystacks = {local_id: search_text(job) for local_id, job in self._jobs.items()}
            self._changed_while_indexing.clear()
            self._building = None
        return self._haystacks

    def _ensure_all_texts(self) -> list[str]:
        if self._all_texts is None:
            self._all_texts = list(map(self._ensure_haystacks().__getitem__, self._all))
        return self._all_texts

    def _ensure_groups(self) -> dict[str, str]:
        if self._groups is None:
            self._groups = {local_id: status_group(job) for local_id, job in self._jobs.items()}
        return self._groups

    def _order_changed(self) -> None:
        """`_all` was replaced or reordered: results kept in the old order are no use."""
        self._all_texts = None
        self._visible_texts = None
        self._memo.clear()

    def _matches(self, local_id: str) -> bool:
        """Whether one job passes the filters (as placed: its search text and group as last applied)."""
        wanted = self.status_filter
        if wanted and not _matches_group(self._ensure_groups()[local_id], wanted):
            return False
        text = self._ensure_haystacks()[local_id] if self.filter_text.strip() else ""
        return all(word in text for word in query_words(self.filter_text))

    def _filter_all(self) -> tuple[list[str], list[str] | None]:
        """The filtered ids of `_all` in its order, with their search texts (None when unfiltered).

        A query that extends the one on screen (or one a few keys back) narrows that result;
        only a query seen in no recent result scans the whole history.
        """
        words = query_words(self.filter_text)
        wanted = self.status_filter
        if not words and not wanted:
            return self._all, None
        found = self._memo.get(wanted, words)
        if found is not None:
            return found
        start = self._memo.closest(wanted, words)
        shown_status, shown_words = self._shown_query
        if (self._visible_texts is not None and shown_status == wanted and (start is None or len(self._visible) < len(start[1]))
                and narrows(words, shown_words)):
            start = (shown_words, list(self._visible), list(self._visible_texts))
        if start is None:
            if not words:  # a status filter alone: no search text needed
                groups = self._ensure_groups()
                return [local_id for local_id in self._all if _matches_group(groups[local_id], wanted)], None
            ids, texts = self._all, self._ensure_all_texts()
            if wanted:
                groups = self._ensure_groups()
                keep = [_matches_group(groups[local_id], wanted) for local_id in ids]
                ids, texts = list(compress(ids, keep)), list(compress(texts, keep))
                self._memo.put(wanted, (), (ids, texts))
            start = ((), ids, texts)
        done, ids, texts = start
        result = search([word for word in words if word not in done], ids, texts)
        self._memo.put(wanted, words, result)
        return result

    def _resort(self) -> None:
        self._key_of = _sort_key_function(self.sort_column)
        self._sort_all()
        self._header = None
        self._rebuild_visible(keep_scroll=False)

    def _sort_all(self) -> None:
        order, key_as_sorted = self._sorter.sort(self.sort_column, self._jobs)
        self._keys = _Keys(self._jobs, self._key_of, key_as_sorted)
        if self.sort_reverse:
            order.reverse()  # keys are unique: descending is ascending reversed
        self._all = order
        self._order_changed()

    def _rebuild_visible(self, *, keep_scroll: bool = True) -> None:
        """Re-filter after a filter, sort or full load; the cursor stays on its job when it is still shown."""
        previous_row = self.cursor_row
        self._visible, self._visible_texts = self._filter_all()
        self._shown_query = (self.status_filter, query_words(self.filter_text))
        self._update_virtual_size()
        if self._cursor_id is None or self._row_of(self._cursor_id) is None:
            if self._visible:
                row = min(previous_row or 0, len(self._visible) - 1)
                self._cursor_id = self._visible[row]
            else:
                self._cursor_id = None
        if self.is_mounted:
            self._scroll_cursor_into_view(center=not keep_scroll)
        self.refresh()
        self._announce()

    def _bisect(self, ids: list[str], key: tuple) -> int:
        keys = self._keys
        if self.sort_reverse:
            return bisect_left(ids, _Descending(key), key=lambda i: _Descending(keys[i]))
        return bisect_left(ids, key, key=keys.__getitem__)

    def _index_in(self, ids: list[str], local_id: str) -> int | None:
        if local_id not in self._jobs:
            return None
        key = self._keys[local_id]
        index = self._bisect(ids, key)
        return index if index < len(ids) and ids[index] == local_id else None

    def _row_of(self, local_id: str) -> int | None:
        return self._index_in(self._visible, local_id)

    def _apply(self, local_id: str, job: Job | None) -> None:
        """Add, update (job) or remove (None) one job, keeping the cursor's job and the view's top row."""
        filtered = self._visible is not self._all
        old_row = self._row_of(local_id)
        scroll_top = self.scroll_offset.y
        # The first row on screen other than this job: the view stays anchored to it.
        anchor = None
        if scroll_top > 0:
            for candidate in self._visible[scroll_top : scroll_top + 2]:
                if candidate != local_id:
                    anchor = candidate
                    break
        cursor_row_before = self.cursor_row

        self._memo.clear()  # results of other queries no longer hold for this job
        if (job is None) == (local_id in self._jobs):
            self._sorter.forget()  # a job came or went
        if self._building is not None:
            self._changed_while_indexing.add(local_id)
        if local_id in self._jobs:
            index = self._index_in(self._all, local_id)
            if index is not None:
                del self._all[index]
                if self._all_texts is not None:
                    del self._all_texts[index]
            if filtered and old_row is not None:
                del self._visible[old_row]
                if self._visible_texts is not None:
                    del self._visible_texts[old_row]
        self._rows.pop(local_id, None)
        old_strip = self._strips.get(local_id)
        self._strips.discard(local_id)

        if job is None:
            self._jobs.pop(local_id, None)
            self._keys.pop(local_id, None)
            if self._haystacks is not None:
                self._haystacks.pop(local_id, None)
            if self._groups is not None:
                self._groups.pop(local_id, None)
            new_row = None
        else:
            self._jobs[local_id] = job
            key = self._keys[local_id] = self._key_of(job)
            text = None
            if self._haystacks is not None:
                text = self._haystacks[local_id] = search_text(job)
            if self._groups is not None:
                self._groups[local_id] = status_group(job)
            index = self._bisect(self._all, key)
            self._all.insert(index, local_id)
            if self._all_texts is not None:
                self._all_texts.insert(index, text if text is not None else search_text(job))
            new_row = None
            if filtered:
                if self._matches(local_id):
                    new_row = self._bisect(self._visible, key)
                    self._visible.insert(new_row, local_id)
                    if self._visible_texts is not None:
                        self._visible_texts.insert(new_row, self._ensure_haystacks()[local_id])
            else:
                new_row = self._row_of(local_id)

        if self._cursor_id == local_id and new_row is None:
            # The cursor's job left the view: the cursor takes the row where it was.
            self._cursor_id = None
            if self._visible:
                self._cursor_id = self._visible[min(cursor_row_before or 0, len(self._visible) - 1)]
        elif self._cursor_id is None and self._visible:
            self._cursor_id = self._visible[0]

        if old_row is not None and old_row == new_row:
            self._refresh_row(new_row, local_id, old_strip)  # only this row changed
        else:
            self._update_virtual_size()
            if anchor is not None:
                anchor_row = self._row_of(anchor)
                if anchor_row is not None and anchor_row != scroll_top:
                    self.scroll_to(y=anchor_row, animate=False, force=True)
            self.refresh()
        self._announce()

    # -- cursor and scrolling ----------------------------------------------------------------

    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _move_cursor(self, row: int) -> None:
        if not self._visible:
            return
        row = max(0, min(row, len(self._visible) - 1))
        previous = self.cursor_row
        self._cursor_id = self._visible[row]
        if previous is not None and previous != row:
            self.refresh_line(previous + 1)
        self.refresh_line(row + 1)
        self._scroll_cursor_into_view()
        self._announce()

    def _scroll_cursor_into_view(self, *, center: bool = False) -> None:
        row = self.cursor_row
        if row is None:
            if self.scroll_offset.y:
                self.scroll_to(y=0, animate=False, force=True)
            return
        top = self.scroll_offset.y
        page = self._page_rows()
        if row < top or row >= top + page:
            target = row - page // 2 if center else (row if row < top else row - page + 1)
            self.scroll_to(y=max(0, target), animate=False, force=True)

    def _announce(self) -> None:
        """Post Highlighted when the cursor is on another job, or its job was replaced or changed."""
        job = self.selected_job
        if job is None:
            if self._announced is not None:
                self._announced = None
                self.post_message(self.Highlighted(self, None))
            return
        identity = (job.local_id, id(job), job.signature())
        if self._announced == identity:
            return
        self._announced = identity
        self.post_message(self.Highlighted(self, job))

    def _update_virtual_size(self) -> None:
        # Width 0: the columns always fit the widget, so there is never anything to scroll sideways.
        size = Size(0, len(self._visible) + 1)
        if size == self.virtual_size:
            return
        height = self.container_size.height
        if self.is_mounted and height and self.show_vertical_scrollbar and size.height > height:
            # The scrollbar stays: only its thumb moves. Setting `virtual_size` would lay out the
            # whole screen again (40 ms on the dashboard), once per key typed into the filter.
            self.set_reactive(JobTable.virtual_size, size)
            self._scroll_update(size)
            self.refresh()
            return
        self.virtual_size = size

    # -- rendering ---------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()
        self._header = None

    def _style(self, component: str) -> Style:
        """A component's style ("" for the widget's own), computed once per style change: working
        it out takes longer than drawing the row."""
        style = self._styles.get(component)
        if style is None:
            style = self._styles[component] = self.get_component_rich_style(component) if component else self.rich_style
        return style

    def on_resize(self, event: events.Resize) -> None:
        self._update_virtual_size()

    def on_mount(self) -> None:
        self._update_virtual_size()
        self._prepare_sorts_soon()
        if self._tick_interval > 0:
            self.set_interval(self._tick_interval, self._tick, name="job-table-clock")

    def _layout(self, width: int) -> list[tuple[Column, int]]:
        layout = self._layouts.get(width)
        if layout is None:
            layout = self._layouts[width] = layout_columns(width)
        return layout

    def _row(self, local_id: str) -> _Row:
        row = self._rows.get(local_id)
        if row is None:
            job = self._jobs[local_id]
            row = self._rows[local_id] = _Row.of(job)
            row.cost = cost_cell(job, self.prices)
            if self._eta is not None and row.pending and job.server_id:
                row.estimate = self._eta.estimate(job)
        return row

    def _tick(self) -> None:
        """Redraw what changed with time alone on the rows on screen (elapsed time, '5m ago')."""
        if not self._visible:
            return
        top = self.scroll_offset.y
        now = self._clock()
        width = self.scrollable_content_region.width
        for row_index, local_id in enumerate(self._visible[top : top + self._page_rows()], start=top):
            cached = self._strips.get(local_id)
            if cached is None or cached[0] != (width, *self._row(local_id).clock_texts(now, self._coarse_clock)):
                self._refresh_row(row_index, local_id, cached)

    def _refresh_row(self, row_index: int, local_id: str, old: tuple[tuple, Strip] | None) -> None:
        """Repaint only the cells of a row that differ from what it showed (`old`, its cached strip).

        Over a slow link this is most of the output: a clock tick rewrites a digit or two per
        row, not the row.
        """
        top = self.scroll_offset.y
        if not top <= row_index < top + self._page_rows():
            return  # off screen (most of 500 running jobs are): drawn when scrolled to, from the job
        width = self.scrollable_content_region.width
        if old is None or old[0][0] != width:
            self.refresh_line(row_index + 1)
            return
        y = row_index + 1 - top
        runs = _changed_cells(old[1], self._row_strip(local_id, width))
        if runs:
            self.refresh(*(Region(x, y, run_width, 1) for x, run_width in runs))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._style("")
        if y == 0:
            return self._header_strip(width).apply_style(base)
        row_index = y - 1 + self.scroll_offset.y
        if not self._visible and row_index == 0:
            # A blank table says why it is blank.
            muted = self._style("job-table--muted")
            return Strip([Segment(fit(" " * _GAP + self.empty_text, width), muted)]).apply_style(base)
        if not 0 <= row_index < len(self._visible):
            return Strip.blank(width, base)
        local_id = self._visible[row_index]
        strip = self._row_strip(local_id, width).apply_style(base)
        if local_id == self._cursor_id:
            cursor = self._style("job-table--cursor")
            strip = Strip(Segment.apply_style(strip, post_style=cursor), strip.cell_length)
        return strip

    def _header_strip(self, width: int) -> Strip:
        summary = self.filter_summary
        key = (width, self.sort_column, self.sort_reverse, summary)
        if self._header is not None and self._header[0] == key:
            return self._header[1]
        style = self._style("job-table--header")
        segments = [Segment(" " * _GAP, style)]
        for column, column_width in self._layout(width):
            title = column.title
            if column.key == self.sort_column:
                arrow = GLYPHS.sort_descending if self.sort_reverse else GLYPHS.sort_ascending
                # The arrow goes on the side the cells align to, so it sits over the column's values.
                title = f"{arrow}{title}" if column.right else f"{title} {arrow}"
            segments.append(Segment(fit(title, column_width, right=column.right) + " " * _GAP, style))
        strip = Strip(segments).adjust_cell_length(width, style)
        if summary and cell_len(summary) + 2 < width // 2:
            # While filtering, the header's right end says how many jobs are shown of how many.
            strip = Strip([*strip.crop(0, width - cell_len(summary) - 1), Segment(summary + " ", style)])
        self._header = (key, strip)
        return strip

    def _row_strip(self, local_id: str, width: int) -> Strip:
        row = self._row(local_id)
        status_text, ago_text, eta_cell = row.clock_texts(self._clock(), self._coarse_clock)
        key = (width, status_text, ago_text, eta_cell)
        cached = self._strips.get(local_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        # Full (not partial) component styles: a partial style cannot blend a translucent theme colour.
        muted = self._style("job-table--muted")
        status_style = self._style(f"job-table--status-{row.group}")
        plain = Style()
        # A blank gap takes the style of the cell before it (it looks the same), so `simplify`
        # merges them: every style change costs an escape sequence on the terminal.
        segments = [Segment(" " * _GAP, muted)]
        for column, column_width in self._layout(width):
            name = column.key
            if name == "id":
                # A cut id (no ellipsis) is still a prefix the user can type into a filter.
                segments.append(Segment(fit(row.short_id[:column_width], column_width) + " " * _GAP, muted))
                continue
            elif name == "model":
                text = row.model if cell_len(row.model) <= column_width else row.model_short
                style = plain
            elif name == "scene":
                text, style = row.scene, plain
            elif name == "status":
                text, style = status_text, status_style
            elif name == "prompt":
                text, style = row.prompt, plain
            elif name == "resolution":
                text, style = row.resolution, plain
            elif name == "submitted":
                text, style = ago_text, muted
            elif name == "cost":
                text, style = row.cost, muted
            elif name == "eta":
                text, style = eta_cell, muted
            else:
                text, style = row.execution, muted
            segments.append(Segment(fit(text, column_width, right=column.right) + " " * _GAP, style))
        strip = Strip(segments).adjust_cell_length(width, plain).simplify()
        # Textual's LRUCache keeps the first value set for a key: the old strip must go first.
        self._strips.discard(local_id)
        self._strips.set(local_id, (key, strip))
        return strip

    # -- mouse -------------------------------------------------------------------------------

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            column = self._column_at(offset.x)
            if column in SORT_COLUMNS:
                if column == self.sort_column:
                    self.sort_reverse = not self.sort_reverse
                else:
                    self._set_sort(column, _DEFAULT_REVERSE.get(column, False))
            return
        row = offset.y - 1 + self.scroll_offset.y
        if 0 <= row < len(self._visible):
            if row == self.cursor_row and event.chain >= 2:
                self.action_select_cursor()
            else:
                self._move_cursor(row)

    def _column_at(self, x: int) -> str | None:
        position = _GAP
        for column, column_width in self._layout(self.scrollable_content_region.width):
            if position <= x < position + column_width + _GAP:
                return column.key if column.key in SORT_COLUMNS else None
            position += column_width + _GAP
        return None
