"""The job table as a user meets it: order, live updates, cursor, filters, keys, inert text."""

from __future__ import annotations

import dataclasses

import pytest
from rich.cells import cell_len
from textual.app import App, ComposeResult

from helpers import until
from tui.core.config import styles_dir
from tui.core.records import UNKNOWN, Job
from tui.ui.widgets import job_table as job_table_module
from tui.ui.format import format_ago, format_elapsed, format_exec
from tui.ui.widgets.job_table import (
    COLUMNS,
    JobTable,
    layout_columns,
    plain_text,
)

NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_job(
    n: int,
    *,
    age: float | None = None,
    status: str = "completed",
    prompt: str | None = None,
    model: str = "hailuo-2.3-fast",
    execution_ms: int | None = 6200,
    resolution: str = "768P",
    duration: int = 6,
) -> Job:
    job = Job(
        local_id=f"local{n:07d}",
        request={"model": model, "scene": "text-to-video", "prompt": prompt or f"prompt number {n}",
                 "duration": duration, "resolution": resolution},
        submitted_at=NOW - (age if age is not None else 1000 - n),
        server_id=f"srv{n:09d}",
        status=status,
        execution_time_ms=execution_ms if status == "completed" else None,
    )
    return job


class TableApp(App):
    CSS_PATH = [str(styles_dir() / "job_table.tcss")]

    def __init__(self, jobs: list[Job], clock: Clock | None = None, tick_interval: float = 0,
                 coarse_clock: bool = False) -> None:
        super().__init__()
        self.jobs = jobs
        self.clock = clock or Clock()
        self.tick_interval = tick_interval
        self.coarse_clock = coarse_clock
        self.highlighted: list[str] = []
        self.selected: list[str] = []

    def compose(self) -> ComposeResult:
        yield JobTable(self.jobs, clock=self.clock, tick_interval=self.tick_interval, coarse_clock=self.coarse_clock)

    def on_job_table_highlighted(self, message: JobTable.Highlighted) -> None:
        self.highlighted.append(message.job.local_id if message.job is not None else None)

    def on_job_table_selected(self, message: JobTable.Selected) -> None:
        self.selected.append(message.job.local_id)


def screen_lines(table: JobTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


def shown_ids(table: JobTable) -> list[str]:
    """Server ids in the order they appear on screen (data rows only)."""
    if not table.visible_count:
        return []  # the only line is the one that says why the table is blank
    ids = []
    for line in screen_lines(table)[1:]:
        first = line.split()
        if first:
            ids.append(first[0])
    return ids


def jobs(count: int) -> list[Job]:
    return [make_job(n) for n in range(count)]


async def test_rows_shown_newest_first_under_a_fixed_header() -> None:
    app = TableApp(jobs(30))
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        lines = screen_lines(table)
        assert lines[0].split()[:2] == ["ID", "MODEL"]
        assert shown_ids(table) == [f"srv{n:09d}" for n in range(29, 20, -1)]
        assert table.selected_job.local_id == "local0000029"
        await pilot.press("G")
        await pilot.pause()
        lines = screen_lines(table)
        assert lines[0].split()[:2] == ["ID", "MODEL"]  # the header stays while scrolled
        assert shown_ids(table)[-1] == "srv000000000"


async def test_cells_show_status_prompt_resolution_times() -> None:
    clock = Clock()
    pending = make_job(1, age=83, status="processing")
    done = make_job(2, age=12 * 60, status="completed", execution_ms=6200, resolution="1080P", duration=10)
    failed = make_job(3, age=3 * 3600, status="failed")
    old = make_job(4, age=2 * 86400, status=UNKNOWN, prompt="x" * 300)
    app = TableApp([pending, done, failed, old], clock)
    async with app.run_test(size=(160, 8)) as pilot:
        await pilot.pause()
        lines = screen_lines(app.query_one(JobTable))
        assert "processing 1m23s" in lines[1] and "1m ago" in lines[1] and "—" in lines[1]
        assert "completed" in lines[2] and "1080P·10s" in lines[2] and "12m ago" in lines[2] and "6.2s" in lines[2]
        assert "failed" in lines[3] and "3h ago" in lines[3]
        assert "unknown" in lines[4] and "2d ago" in lines[4] and "x…" in lines[4]
        assert all(len(line) == 160 for line in lines)


def _record_refreshes(table: JobTable) -> list[tuple]:
    """The regions of every `refresh` of the table from now on (one tuple a call)."""
    calls: list[tuple] = []
    original = table.refresh
    table.refresh = lambda *regions, **kw: (calls.append(regions), original(*regions, **kw))[1]
    return calls


async def test_clock_redraws_only_visible_rows_whose_time_text_changed() -> None:
    clock = Clock()
    data = [make_job(n, age=3600 + n) for n in range(40)] + [make_job(99, age=5, status="processing")]
    app = TableApp(data, clock, tick_interval=0.05)
    async with app.run_test(size=(120, 6)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause(0.15)
        assert "processing 5s" in screen_lines(table)[1]
        before = screen_lines(table)[1]
        refreshed = _record_refreshes(table)
        await pilot.pause(0.2)
        assert refreshed == []  # nothing changed on screen: nothing redrawn
        clock.now += 60
        await pilot.pause(0.2)
        regions = [region for call in refreshed for region in call]
        assert regions and all(call for call in refreshed)  # only parts of lines, never the whole widget
        # Only the pending row, and on it only the cells whose text changed: not the "1h ago" rows.
        assert {region.y for region in regions} == {1}
        after = screen_lines(table)[1]
        assert "processing 1m05s" in after and "1m ago" in after
        changed = {x for x in range(len(after)) if before[x] != after[x]}
        covered = {x for region in regions for x in range(region.x, region.right)}
        assert changed <= covered and len(covered) < len(after) // 3


def _count_ticks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many clock ticks tables mounted from now on have run (one item a tick): the timer
    holds the method it was given at mount, so the class is patched before."""
    ticks: list[int] = []
    original = JobTable._tick
    monkeypatch.setattr(JobTable, "_tick", lambda table: (ticks.append(1), original(table))[1])
    return ticks


async def test_after_a_change_the_clock_redraws_against_what_is_on_screen_now(monkeypatch) -> None:
    """Each tick compares a row with what it shows now, not with what it first showed: a row
    redrawn once is not redrawn again while its text stays, and its next change sends only the
    cells that changed since."""
    clock = Clock()
    ticks = _count_ticks(monkeypatch)
    app = TableApp([make_job(99, age=5, status="processing")], clock, tick_interval=0.05)
    async with app.run_test(size=(120, 6)) as pilot:
        table = app.query_one(JobTable)
        await until(lambda: "processing 5s" in screen_lines(table)[1], pilot=pilot)
        clock.now += 60  # "5s" -> "1m05s": many cells
        await until(lambda: "processing 1m05s" in screen_lines(table)[1], pilot=pilot)
        refreshed = _record_refreshes(table)
        ticks.clear()
        await until(lambda: len(ticks) >= 3, pilot=pilot, what="three ticks")
        assert refreshed == []  # the text stayed: nothing redrawn
        before = screen_lines(table)[1]
        clock.now += 1  # "1m05s" -> "1m06s": one cell
        ticks.clear()  # (waited for by ticks: reading the lines here would render them first)
        await until(lambda: len(ticks) >= 2, pilot=pilot, what="two ticks")
        after = screen_lines(table)[1]
        assert "processing 1m06s" in after
        changed = {x for x in range(len(after)) if before[x] != after[x]}
        covered = {x for call in refreshed for region in call for x in range(region.x, region.right)}
        assert changed == {before.index("1m05s") + 3} and covered == changed


async def test_a_coarse_clock_redraws_running_rows_once_a_minute() -> None:
    """Low-bandwidth mode: past its first minute a running job's clock reads in whole minutes, so
    the ticks within a minute send nothing; its first minute still counts seconds."""
    clock = Clock()
    data = [make_job(1, age=125, status="processing"), make_job(2, age=20, status="queued")]
    app = TableApp(data, clock, tick_interval=0.05, coarse_clock=True)
    async with app.run_test(size=(120, 6)) as pilot:
        table = app.query_one(JobTable)
        await until(lambda: "queued 20s" in screen_lines(table)[1] and "processing 2m " in screen_lines(table)[2],
                    pilot=pilot, what=lambda: screen_lines(table))
        refreshed = _record_refreshes(table)
        clock.now += 30  # 2m35s, 50s
        # One tick looks at every row on screen: once it redrew one, it has judged both.
        await until(lambda: refreshed, pilot=pilot, what="a tick to redraw the first minute")
        assert {region.y for call in refreshed for region in call} == {1}  # the older row was not redrawn
        assert "queued 50s" in screen_lines(table)[1] and "processing 2m " in screen_lines(table)[2]
        refreshed.clear()
        clock.now += 30  # 3m05s, 1m20s
        await until(lambda: {region.y for call in refreshed for region in call} == {1, 2}, pilot=pilot,
                    what="the minute to turn on both rows")
        assert "queued 1m " in screen_lines(table)[1] and "processing 3m " in screen_lines(table)[2]


async def test_upsert_updates_one_row_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    data = jobs(20)
    app = TableApp(data)
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        await pilot.press("j", "j")
        before = screen_lines(table)
        formatted: list[str] = []
        original = job_table_module._Row.of.__func__

        def counting(cls, job):
            formatted.append(job.local_id)
            return original(cls, job)

        monkeypatch.setattr(job_table_module._Row, "of", classmethod(counting))
        changed = dataclasses.replace(data[15], status="failed", error="boom", execution_time_ms=None)
        table.upsert(changed)
        await pilot.pause()
        after = screen_lines(table)
        assert formatted == ["local0000015"]  # only the changed row was formatted again
        row = 1 + 4  # newest first: job 19 on line 1, job 15 on line 5
        assert "failed" in after[row] and "completed" in before[row]
        assert [a for i, a in enumerate(after) if i != row] == [b for i, b in enumerate(before) if i != row]
        assert table.selected_job.local_id == "local0000017"
        assert table.visible_count == table.total_count == 20


async def test_new_job_above_keeps_cursor_on_its_job_and_view_in_place() -> None:
    app = TableApp(jobs(100))
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        await pilot.press("pagedown", "pagedown", "j")
        await pilot.pause()
        cursor_job = table.selected_job.local_id
        cursor_row = table.cursor_row
        top = table.scroll_offset.y
        assert top > 0
        shown_before = shown_ids(table)
        table.upsert(make_job(500, age=0, status="processing"))
        await pilot.pause()
        assert table.selected_job.local_id == cursor_job
        assert table.cursor_row == cursor_row + 1
        assert shown_ids(table) == shown_before  # the rows the user was reading did not move
        await pilot.press("g")
        await pilot.pause()
        assert shown_ids(table)[0] == "srv000000500"

    # At the top, a new job simply appears above the cursor's job.
    app = TableApp(jobs(10))
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        table.upsert(make_job(500, age=0))
        await pilot.pause()
        assert shown_ids(table)[:2] == ["srv000000500", "srv000000009"]
        assert table.selected_job.local_id == "local0000009"


async def test_remove_drops_the_row_and_moves_cursor_to_neighbour() -> None:
    app = TableApp(jobs(5))
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        await pilot.press("j")
        table.remove("local0000003")
        await pilot.pause()
        assert "srv000000003" not in shown_ids(table)
        assert table.total_count == 4
        assert table.selected_job.local_id == "local0000002"
        assert app.highlighted[-1] == "local0000002"


async def test_filter_text_and_status_filter() -> None:
    data = jobs(10)
    data[2].request["prompt"] = "A Red FOX in the snow"
    data[7].request["prompt"] = "a red car at night"
    data[7].status = "failed"
    data[5].status = "processing"
    data[6].status = UNKNOWN
    app = TableApp(data)
    async with app.run_test(size=(120, 14)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        table.filter_text = "red"
        await pilot.pause()
        assert shown_ids(table) == ["srv000000007", "srv000000002"]
        table.filter_text = "RED fox"  # every word must match, any case
        await pilot.pause()
        assert shown_ids(table) == ["srv000000002"]
        assert table.selected_job.local_id == "local0000002"
        table.filter_text = "srv000000005"  # ids match too
        await pilot.pause()
        assert shown_ids(table) == ["srv000000005"]
        table.filter_text = "2.3-fast processing"  # model and status
        await pilot.pause()
        assert shown_ids(table) == ["srv000000005"]
        table.filter_text = ""
        table.status_filter = "failed"
        await pilot.pause()
        assert shown_ids(table) == ["srv000000007", "srv000000006"]
        table.status_filter = "pending"
        await pilot.pause()
        assert shown_ids(table) == ["srv000000005"]
        assert (table.visible_count, table.total_count) == (1, 10)
        # A filtered view follows live updates: the job completes and leaves the pending view.
        table.upsert(dataclasses.replace(data[5], status="completed"))
        await pilot.pause()
        assert shown_ids(table) == [] and table.selected_job is None
        table.status_filter = "completed"
        await pilot.pause()
        assert "srv000000005" in shown_ids(table) and table.visible_count == 8
        table.status_filter = None
        await pilot.pause()
        assert table.visible_count == 10


async def test_sort_keys_cycle_and_reverse() -> None:
    data = [make_job(n, execution_ms=(n * 7919) % 50_000) for n in range(12)]
    app = TableApp(data)
    async with app.run_test(size=(160, 16)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        await pilot.pause()
        cursor_job = table.selected_job.local_id
        table.sort_column = "execution"
        table.sort_reverse = True
        await pilot.pause()
        expected = [f"srv{j:09d}" for j in sorted(range(12), key=lambda n: -((n * 7919) % 50_000))]
        assert shown_ids(table) == expected
        assert table.selected_job.local_id == cursor_job  # sorting keeps the cursor's job
        assert "▼EXEC" in screen_lines(table)[0]
        await pilot.press("S")
        await pilot.pause()
        assert shown_ids(table) == expected[::-1]
        await pilot.press("s")  # execution -> resolution
        await pilot.pause()
        assert table.sort_column == "resolution"
        table.sort_column = "submitted"
        table.sort_reverse = True
        await pilot.pause()
        assert shown_ids(table) == [f"srv{n:09d}" for n in range(11, -1, -1)]
        seen = set()
        for _ in range(8):
            await pilot.press("s")
            seen.add(table.sort_column)
        assert table.sort_column == "submitted" and len(seen) == 8


async def test_frozen_queues_updates_until_unfrozen() -> None:
    data = jobs(5)
    app = TableApp(data)
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        before = screen_lines(table)
        live_header_style = list(table.render_line(0))[1].style
        table.frozen = True
        await pilot.pause()
        assert list(table.render_line(0))[1].style != live_header_style  # paused is visible
        table.upsert(dataclasses.replace(data[4], status="failed"))
        table.upsert(make_job(99, age=0))
        table.remove("local0000000")
        await pilot.pause()
        assert screen_lines(table) == before
        assert table.queued_count == 3 and table.total_count == 5
        table.frozen = False
        await pilot.pause()
        ids = shown_ids(table)
        assert ids[:2] == ["srv000000099", "srv000000004"] and "srv000000000" not in ids
        assert "failed" in screen_lines(table)[2]
        assert table.queued_count == 0
        assert list(table.render_line(0))[1].style == live_header_style


async def test_cursor_keys() -> None:
    app = TableApp(jobs(100))
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        await pilot.pause()
        page = table.size.height - 1
        await pilot.press("j", "j", "down")
        assert table.cursor_row == 3
        await pilot.press("k", "up")
        assert table.cursor_row == 1
        await pilot.press("pagedown")
        assert table.cursor_row == 1 + page
        await pilot.press("pageup", "pageup")
        assert table.cursor_row == 0
        await pilot.press("G")
        await pilot.pause()
        assert table.cursor_row == 99 and table.selected_job.local_id == "local0000000"
        assert shown_ids(table)[-1] == "srv000000000"
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("end")
        assert table.cursor_row == 99
        await pilot.press("home", "k")
        assert table.cursor_row == 0


async def test_highlighted_and_selected_messages() -> None:
    data = jobs(5)
    app = TableApp(data)
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        await pilot.pause()
        assert app.highlighted == ["local0000004"]
        await pilot.press("j", "enter")
        await pilot.pause()
        assert app.highlighted == ["local0000004", "local0000003"]
        assert app.selected == ["local0000003"]
        # The highlighted job changed: the detail pane must hear of it; other jobs changing is quiet.
        table.upsert(dataclasses.replace(data[0], status="failed"))
        await pilot.pause()
        assert app.highlighted[-1] == "local0000003" and len(app.highlighted) == 2
        table.upsert(dataclasses.replace(data[3], status="failed"))
        await pilot.pause()
        assert len(app.highlighted) == 3 and app.highlighted[-1] == "local0000003"
        assert table.select("local0000001")
        await pilot.pause()
        assert app.highlighted[-1] == "local0000001"


async def test_fifty_thousand_jobs_first_and_last_screens() -> None:
    many = [
        Job(local_id=f"l{n:08d}", request={"model": "hailuo-2.3-fast", "prompt": f"p{n}", "scene": "text-to-video"},
            submitted_at=NOW - 50_000 + n, server_id=f"s{n:08d}", status="completed")
        for n in range(50_000)
    ]
    many.reverse()  # the order must come from the table, not the input
    many[100], many[40_000] = many[40_000], many[100]
    app = TableApp(many)
    async with app.run_test(size=(100, 12)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        await pilot.pause()
        assert table.total_count == 50_000
        assert shown_ids(table) == [f"s{n:08d}" for n in range(49_999, 49_988, -1)]
        await pilot.press("G")
        await pilot.pause()
        assert shown_ids(table)[-1] == "s00000000"
        table.filter_text = "p4999"
        await pilot.pause()
        assert table.visible_count == 11  # p4999 and p49990..p49999
        assert shown_ids(table)[0] == "s00049999"


async def test_markup_and_escapes_are_inert() -> None:
    hostile = "[bold red]x[/] \x1b[2J\x1b]52;c;AAAA\x07 tail"
    job = make_job(1, status="[blink]odd\x1b[31m", prompt=hostile)
    app = TableApp([job])
    async with app.run_test(size=(160, 5)) as pilot:
        await pilot.pause()
        line = app.query_one(JobTable).render_line(1)
        assert "[bold red]x[/]" in line.text and "tail" in line.text
        assert "[blink]odd" in line.text
        assert not any(ch in line.text for ch in "\x1b\x07\x9b")
        assert "AAAA" not in line.text  # the clipboard-writing sequence is gone, payload included
        screenshot = app.export_screenshot()
        assert "[bold red]x[/]" in screenshot.replace("&#160;", " ")


def test_plain_text_strips_controls() -> None:
    assert plain_text("a\x1b[2Jb\x1b]52;c;AAAA\x07c\x9b31md\u202ee\r\nf") == "abcde f"
    assert plain_text(None) == ""


def test_formats() -> None:
    assert [format_ago(s) for s in (12, 300, 3 * 3600, 2 * 86400, -5)] == ["12s ago", "5m ago", "3h ago", "2d ago", "0s ago"]
    assert [format_elapsed(s) for s in (9, 83, 3725, 200_000)] == ["9s", "1m23s", "1h02m", "2d07h"]
    assert [format_elapsed(s, coarse=True) for s in (9, 83, 3725, 200_000)] == ["9s", "1m", "1h02m", "2d07h"]
    assert [format_exec(ms) for ms in (6200, None, 0, 400_000)] == ["6.2s", "—", "—", "6m40s"]


@pytest.mark.parametrize("width", [80, 100, 200])
def test_columns_fit_the_width(width: int) -> None:
    layout = dict((column.key, w) for column, w in layout_columns(width - 1))
    assert sum(layout.values()) + len(layout) + 1 <= width
    for important in ("id", "status", "prompt", "submitted"):
        assert layout.get(important, 0) >= (8 if important == "id" else 9)
    if width == 80:
        assert "resolution" in layout and "model" in layout
    if width == 200:
        assert len(layout) == len(COLUMNS) and layout["id"] == 12 and layout["eta"] == 10  # every column, the ETA too


async def test_filter_after_scrolling_shows_matches_from_the_top() -> None:
    data = jobs(200)
    data[3].request["prompt"] = "needle one"
    data[190].request["prompt"] = "needle two"
    app = TableApp(data)
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        await pilot.pause()
        await pilot.press("G")
        await pilot.pause()
        table.filter_text = "needle"
        await pilot.pause()
        assert shown_ids(table) == ["srv000000190", "srv000000003"]
        table.filter_text = "nothing matches this"
        await pilot.pause()
        assert shown_ids(table) == [] and table.selected_job is None
        await pilot.press("j", "G", "enter")  # keys on an empty view do nothing
        assert app.selected == []
        table.filter_text = ""
        await pilot.pause()
        assert table.selected_job is not None and table.cursor_row is not None
        assert table.cursor_row in range(table.scroll_offset.y, table.scroll_offset.y + table.size.height - 1)


async def test_click_moves_cursor_and_header_click_sorts() -> None:
    app = TableApp(jobs(10))
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        await pilot.click(JobTable, offset=(20, 3))
        assert table.cursor_row == 2 and app.highlighted[-1] == "local0000007"
        await pilot.click(JobTable, offset=(20, 3), times=2)
        assert app.selected == ["local0000007"]
        await pilot.click(JobTable, offset=(2, 0))  # the ID column's title
        await pilot.pause()
        assert table.sort_column == "id" and table.sort_reverse is False
        assert shown_ids(table)[0] == "srv000000000"
        assert table.selected_job.local_id == "local0000007"


def varied_jobs() -> list[Job]:
    statuses = ["processing", "completed", "failed", "completed", UNKNOWN, "queued", "completed", "rejected",
                "submitting", "completed"]
    prompts = ["a red fox running through fresh snow at dawn, slow motion",
               "timelapse of a city skyline from dusk to night, neon reflections",
               "macro shot of a honeybee landing on a lavender flower",
               "[bold red]not markup[/] \x1b[31mno escapes\x1b[0m",
               "日本語のプロンプト：桜の花びらが舞う"]
    models = ["hailuo-2.3-fast", "hailuo-2.3-standard", "hailuo-2.3-pro", "hailuo-02-fast"]
    ages = [7, 45, 130, 400, 3000, 7200, 20_000, 90_000, 200_000, 900_000]
    result = []
    for n in range(20):
        model = models[n % len(models)]
        job = make_job(n, age=ages[n % 10] + n, status=statuses[n % 10], prompt=prompts[n % 5], model=model,
                       execution_ms=1000 * (5 + n * 13), resolution="1080P" if model.endswith("pro") else "768P",
                       duration=6 if n % 3 else 10)
        result.append(job)
    return result


def test_snapshot_of_varied_jobs(snap_compare) -> None:
    async def focus_and_move(pilot) -> None:
        pilot.app.query_one(JobTable).focus()
        await pilot.press("j", "j")

    assert snap_compare(TableApp(varied_jobs()), terminal_size=(100, 20), run_before=focus_and_move)


def test_snapshot_at_80_columns(snap_compare) -> None:
    assert snap_compare(TableApp(varied_jobs()), terminal_size=(80, 20))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_updates_match_a_plain_sort_and_filter(seed: int) -> None:
    """Incremental inserts, moves and removals must always equal sorting and filtering from scratch."""
    import random

    rng = random.Random(seed)
    statuses = ["processing", "completed", "failed", UNKNOWN, "queued"]
    words = ["fox", "city", "bee", "wave", "night"]

    def random_job(n: int, unique_age: bool = False) -> Job:
        age = n * 7.0 if unique_age else rng.choice([5, 50, 500, 5000, 5000])  # equal times test the tie-break
        return make_job(n, age=age, status=rng.choice(statuses),
                        prompt=f"{rng.choice(words)} {rng.choice(words)} {n}",
                        model=rng.choice(["hailuo-2.3-fast", "hailuo-02-pro"]),
                        execution_ms=rng.choice([None, 1000, 9000]))

    # Odd seeds open with the history as the store hands it over (newest first, distinct times).
    initial = [random_job(n, unique_age=seed % 2 == 1) for n in range(60)]
    if seed % 2:
        initial.sort(key=lambda job: -job.submitted_at)
    current = {job.local_id: job for job in initial}
    app = TableApp(initial)
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        for step in range(250):
            action = rng.random()
            if action < 0.45:
                job = random_job(rng.randrange(90))
                current[job.local_id] = job
                table.upsert(job)
            elif action < 0.6 and current:
                local_id = rng.choice(sorted(current))
                del current[local_id]
                table.remove(local_id)
            elif action < 0.7:
                table.filter_text = rng.choice(["", "", "fox", "city bee", "hailuo-02", "queued"])
            elif action < 0.8:
                table.status_filter = rng.choice([None, None, "pending", "failed", "completed"])
            elif action < 0.85:
                table.sort_column = rng.choice(["submitted", "status", "model", "execution", "prompt", "id"])
                table.sort_reverse = rng.random() < 0.5
            elif action < 0.9:
                table.frozen = not table.frozen  # queued changes must land exactly when unfrozen
            else:
                await pilot.press(rng.choice(["j", "k", "G", "g", "pagedown"]))
            if table.frozen:
                continue
            before_cursor = table.selected_job
            expected = reference_view(current, table)
            assert [job.local_id for job in table.visible_jobs()] == expected, f"step {step}"
            assert table.visible_count == len(expected) and table.total_count == len(current)
            if expected:
                assert table.selected_job is not None and table.selected_job.local_id in expected
                assert table.visible_jobs()[table.cursor_row].local_id == table.selected_job.local_id
            else:
                assert before_cursor is None


def reference_view(current: dict[str, Job], table: JobTable) -> list[str]:
    from tui.ui.widgets.job_table import _matches_group, _sort_key_function, status_group

    key_of = _sort_key_function(table.sort_column)
    ordered = sorted(current.values(), key=key_of, reverse=table.sort_reverse)
    words = table.filter_text.lower().split()
    shown = []
    for job in ordered:
        haystack = f"{job.display_id} {job.local_id} {job.model} {job.status} {job.prompt}".lower()
        if table.status_filter and not _matches_group(status_group(job), table.status_filter):
            continue
        if all(word in haystack for word in words):
            shown.append(job.local_id)
    return shown


async def test_resizing_relays_out_columns() -> None:
    app = TableApp(varied_jobs())
    async with app.run_test(size=(160, 12)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        wide = screen_lines(table)
        assert "SCENE" in wide[0] and "EXEC" in wide[0] and "hailuo-2.3-fast" in wide[1]
        await pilot.resize_terminal(80, 12)
        await pilot.pause()
        narrow = screen_lines(table)
        assert "SCENE" not in narrow[0] and "STATUS" in narrow[0] and "PROMPT" in narrow[0]
        assert "2.3-fast" in narrow[1] and "hailuo-2.3-fast" not in narrow[1]
        assert all(cell_len(line) == table.scrollable_content_region.width for line in narrow)
        await pilot.resize_terminal(40, 12)
        await pilot.pause()
        assert all(cell_len(line) == table.scrollable_content_region.width for line in screen_lines(table))


async def test_jobs_changed_in_place_move_and_freeze_correctly() -> None:
    """The job service updates its Job objects in place and then reports them."""
    data = jobs(8)
    data[2].status = "processing"
    app = TableApp(data)
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        table.sort_column = "status"
        table.sort_reverse = False
        await pilot.pause()
        assert shown_ids(table)[0] == "srv000000002"  # pending first
        data[2].status = "completed"
        data[2].execution_time_ms = 9100
        table.upsert(data[2])
        await pilot.pause()
        assert shown_ids(table)[0] == "srv000000007" and table.visible_count == 8
        assert shown_ids(table).count("srv000000002") == 1
        assert "9.1s" in next(line for line in screen_lines(table) if "srv000000002" in line)

        table.frozen = True
        data[5].status = "failed"
        data[5].execution_time_ms = None
        table.upsert(data[5])
        await pilot.pause()
        row_5 = next(line for line in screen_lines(table) if "srv000000005" in line)
        assert "completed" in row_5 and "6.2s" in row_5  # still what was shown when frozen
        table.frozen = False
        await pilot.pause()
        assert shown_ids(table)[0] == "srv000000005"  # failed sorts before completed
        assert "failed" in screen_lines(table)[1]


async def test_shrinking_view_leaves_no_blank_lines_at_the_bottom() -> None:
    data = jobs(200)
    for job in data[:150]:
        job.request["prompt"] = "kept " + job.request["prompt"]
    app = TableApp(data)
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        await pilot.press("G")
        await pilot.pause()
        for _ in range(3):
            await pilot.press("k")  # the cursor a little above the bottom
        table.filter_text = "kept"
        await pilot.pause()
        assert table.visible_count == 150
        ids = shown_ids(table)
        assert len(ids) == table.size.height - 1 and ids[-1] == "srv000000000"
        for _ in range(20):
            table.remove(f"local{199 - _:07d}")  # rows outside the filter: nothing on screen moves
        for n in range(10):
            table.remove(f"local{n:07d}")
        await pilot.pause()
        ids = shown_ids(table)
        assert len(ids) == table.size.height - 1 and ids[-1] == "srv000000010"


def _strip(*cells: tuple[str, str | None]):
    from rich.segment import Segment
    from rich.style import Style
    from textual.strip import Strip

    return Strip([Segment(text, Style.parse(style) if style else None) for text, style in cells])


@pytest.mark.parametrize("old,new,expected", [
    # Two cells apart: two runs, not the text between them.
    ([("processing 5s   ", "yellow"), (" " * 20 + "5s ago", "dim")],
     [("processing 1m05s", "yellow"), (" " * 20 + "1m ago", "dim")], [(11, 5), (36, 2)]),
    # Same text at the end, another colour: the styled letters are part of the change.
    ([("created ", "yellow")], [("xfailed ", "red")], [(0, 8)]),
    ([("same", "red")], [("same", "red")], []),
    # Wide characters before the change: cells, not characters, are counted; one is never cut.
    ([("日本 a", None)], [("日本 b", None)], [(5, 1)]),
    ([("a日b", None)], [("a本b", None)], [(1, 2)]),
])
def test_changed_cells_are_exactly_the_cells_to_repaint(old, new, expected) -> None:
    assert job_table_module._changed_cells(_strip(*old), _strip(*new)) == expected


def test_painting_the_changed_cells_over_the_old_line_gives_the_new_line() -> None:
    from hypothesis import given, settings, strategies as st

    styles = st.sampled_from([None, "red", "bold", "dim yellow"])
    text = st.text(alphabet="ab …日", min_size=0, max_size=6)
    line = st.lists(st.tuples(text, styles), min_size=1, max_size=5)

    @settings(max_examples=300, deadline=None)
    @given(line, line)
    def check(old, new) -> None:
        before, after = _strip(*old), _strip(*new)
        runs = job_table_module._changed_cells(before, after)
        if before.cell_length != after.cell_length:
            assert runs == [(0, after.cell_length)]
            return
        painted = job_table_module._cells(before)
        target = job_table_module._cells(after)
        for x, width in runs:
            assert target[x][0] is not None and (x + width == len(target) or target[x + width][0] is not None)
            painted[x:x + width] = target[x:x + width]
        assert painted == target

    check()


async def test_a_change_to_a_job_off_screen_redraws_nothing_until_it_is_scrolled_to() -> None:
    data = jobs(100)
    app = TableApp(data)
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        refreshed = _record_refreshes(table)
        far = dataclasses.replace(data[5], status="failed", error="boom", execution_time_ms=None)  # row 94 of 100
        table.upsert(far)
        await pilot.pause()
        assert refreshed == []
        await pilot.press("G")
        await pilot.pause()
        row = next(line for line in screen_lines(table) if "srv000000005" in line)
        assert "failed" in row


# -- the table says its state: blank tables, match counts, a hidden job's detail --------------------


async def test_a_blank_table_says_why_and_the_header_counts_matches() -> None:
    app = TableApp([])
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        assert "no jobs yet: n for a new one" in screen_lines(table)[1]
        for job in jobs(12):
            table.upsert(job)
        table.status_filter = "pending"
        await pilot.pause()
        assert screen_lines(table)[1].strip() == "no pending jobs"
        assert screen_lines(table)[0].rstrip().endswith("0 of 12 jobs match")
        table.status_filter = None
        table.filter_text = "number 1"  # 1, 10, 11
        await pilot.pause()
        assert screen_lines(table)[0].rstrip().endswith("3 of 12 jobs match")
        table.filter_text = "heron"
        await pilot.pause()
        assert "no jobs match 'heron': Escape clears the filter" in screen_lines(table)[1]
        table.filter_text = ""
        await pilot.pause()
        assert "match" not in screen_lines(table)[0]


async def test_a_filter_that_hides_the_highlighted_job_says_so_to_the_detail_pane() -> None:
    app = TableApp(jobs(3))
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        assert app.highlighted[-1] == "local0000002"
        table.filter_text = "nothing matches this"
        await pilot.pause()
        assert app.highlighted[-1] is None  # the pane shows no job rather than a hidden one
