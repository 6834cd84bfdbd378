"""Filtering as the user types and sorting, as the table shows them: exactly the jobs a plain scan
finds, in the order a plain sort gives, with the right count in the header, however the query
changes (extended, shortened, edited in the middle, cleared) and while jobs change under it."""

from __future__ import annotations

import dataclasses

from test_job_table import NOW, TableApp, make_job, reference_view, screen_lines

from tui.core.records import Job
from tui.ui.widgets.job_table import JobTable

PROMPTS = ["a red fox in the snow", "city lights at night", "a red car", "snow on the mountain", "fox cubs playing"]


def history(count: int) -> list[Job]:
    jobs = []
    for n in range(count):
        status = ("completed", "failed", "processing", "queued")[n % 4]
        jobs.append(make_job(n, status=status, prompt=f"{PROMPTS[n % len(PROMPTS)]} {n}",
                             model=("hailuo-2.3-fast", "hailuo-2.3-pro", "hailuo-02")[n % 3]))
    return jobs


def shows_exactly(table: JobTable, current: dict[str, Job]) -> None:
    """The table's rows and header count are those of a plain sort and scan of `current`."""
    expected = reference_view(current, table)
    assert [job.local_id for job in table.visible_jobs()] == expected, table.filter_text
    header = screen_lines(table)[0]
    if table.filter_text.strip() or table.status_filter:
        assert f"{len(expected)} of {len(current)} jobs match" in header, (table.filter_text, header)
    else:
        assert "match" not in header


async def test_a_query_typed_taken_back_edited_and_cleared_shows_exactly_its_matches() -> None:
    data = history(240)
    current = {job.local_id: job for job in data}
    app = TableApp(data)
    async with app.run_test(size=(160, 30)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        steps = ["r", "re", "red", "red ", "red f", "red fo", "red fox", "red fox 1",  # typed
                 "red fox ", "red fo", "red", "re",  # taken back (wider each time)
                 "red fox 1", "rad fox 1", "red fox 1", "red fix 1", "red f 1",  # edited in the middle
                 "fox red", "FOX   Red", "", "snow", "snow 9", ""]  # words in any order and case; cleared
        for text in steps:
            table.filter_text = text
            await pilot.pause()
            shows_exactly(table, current)
        assert table.visible_count == 240


async def test_the_cursor_stays_on_its_job_while_it_still_matches() -> None:
    data = history(120)
    app = TableApp(data)
    async with app.run_test(size=(160, 30)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        await pilot.pause()
        table.filter_text = "fox"
        await pilot.pause()
        await pilot.press("j")
        while not table.selected_job.prompt.startswith("fox cubs"):  # a few rows down
            await pilot.press("j")
        chosen = table.selected_job
        assert table.cursor_row > 0
        for text in ("fox ", "fox c", "fox cu", "fox cubs", "fox cub", "fox", "f"):  # narrower, then wider
            table.filter_text = text
            await pilot.pause()
            assert table.selected_job is chosen, text
            assert app.highlighted[-1] == chosen.local_id  # the detail pane follows it
        table.filter_text = "fox snow"  # it no longer matches: the cursor takes a job that does
        await pilot.pause()
        assert table.selected_job is not chosen and "snow" in table.selected_job.prompt
        assert app.highlighted[-1] == table.selected_job.local_id


async def test_jobs_added_changed_and_removed_under_a_filter_enter_and_leave_it() -> None:
    data = history(200)
    current = {job.local_id: job for job in data}
    app = TableApp(data)
    async with app.run_test(size=(160, 30)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()

        async def check(text: str | None = None) -> None:
            if text is not None:
                table.filter_text = text
            await pilot.pause()
            shows_exactly(table, current)

        await check("red")
        await check("red fox")
        # A new job that matches enters; the next key narrows a result that holds it.
        added = make_job(900, age=-5, prompt="a red fox at dawn")
        current[added.local_id] = added
        table.upsert(added)
        await check()
        await check("red fox a")
        await check("red fox")
        # A job changed in place (as the job service does) so that it matches, then no longer.
        changed = current["local0000003"]
        changed.request["prompt"] = "the red fox returns"  # the model of a job may change in place too
        changed.status = "failed"
        table.upsert(changed)
        await check()
        await check("red fox failed")
        changed.status = "completed"
        table.upsert(changed)
        await check()
        # A matching job removed leaves at once, and stays gone as the query changes.
        gone = reference_view(current, table)[0]
        del current[gone]
        table.remove(gone)
        await check()
        await check("red")  # shorter: a result kept from before the changes must not come back
        await check("red fox failed")
        await check("")
        # With a status filter as well.
        table.status_filter = "failed"
        await check("fox")
        replaced = dataclasses.replace(current["local0000010"], status="failed", execution_time_ms=None)
        current[replaced.local_id] = replaced
        table.upsert(replaced)
        await check()
        await check("fox 1")
        await check("fox")


async def test_changes_made_while_the_search_text_is_still_being_built_are_searched() -> None:
    big = history(5_000)  # several slices of background work
    current = {job.local_id: job for job in big}
    app = TableApp(history(3))
    async with app.run_test(size=(160, 30)) as pilot:
        table = app.query_one(JobTable)
        await pilot.pause()
        table.set_jobs(big)
        table.prepare_filter()  # as `/` does: starts building; none of it has run before these changes
        renamed = dataclasses.replace(current["local0000004"], request={**current["local0000004"].request,
                                                                        "prompt": "a unicorn"})
        current[renamed.local_id] = renamed
        table.upsert(renamed)
        del current["local0000009"]
        table.remove("local0000009")
        added = make_job(7_000, age=-1, prompt="another unicorn")
        current[added.local_id] = added
        table.upsert(added)
        await pilot.pause()
        for text in ("unicorn", "red fox 9", "city 4"):
            table.filter_text = text
            await pilot.pause()
            shows_exactly(table, current)


async def test_sorting_is_stable_exact_in_reverse_and_keeps_the_filter() -> None:
    # Ties everywhere: three models, two submission times, equal execution times.
    data = []
    for n in range(30):
        job = make_job(n, model=("hailuo-2.3-fast", "hailuo-2.3-pro", "hailuo-02")[n % 3], execution_ms=6000,
                       prompt=f"{PROMPTS[n % 2]} {n}")
        job.submitted_at = NOW - (100 if n % 2 else 200)
        data.append(job)
    current = {job.local_id: job for job in data}
    app = TableApp(data)
    async with app.run_test(size=(160, 40)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        await pilot.pause()
        for column in ("model", "execution", "status", "resolution", "scene", "prompt", "id", "submitted"):
            for reverse in (False, True):
                table.sort_column = column
                table.sort_reverse = reverse
                await pilot.pause()
                shows_exactly(table, current)
            forward = reference_view(current, table)
            table.sort_reverse = not table.sort_reverse
            await pilot.pause()
            assert [job.local_id for job in table.visible_jobs()] == forward[::-1]
        # Within one model the newest job comes first (then by local id).
        table.sort_column = "model"
        table.sort_reverse = False
        await pilot.pause()
        models = [job.model for job in table.visible_jobs()]
        assert models == sorted(models)
        first_model = [job for job in table.visible_jobs() if job.model == models[0]]
        assert [(-job.submitted_at, job.local_id) for job in first_model] == sorted(
            (-job.submitted_at, job.local_id) for job in first_model)
        # Sorting a filtered view keeps exactly the matches, and the cursor's job.
        table.filter_text = "fox"
        await pilot.pause()
        await pilot.press("j")
        chosen = table.selected_job
        await pilot.press("s")
        await pilot.pause()
        shows_exactly(table, current)
        assert table.selected_job is chosen
        await pilot.press("S")
        await pilot.pause()
        shows_exactly(table, current)
        assert table.selected_job is chosen
