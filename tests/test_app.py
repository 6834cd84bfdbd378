"""The dashboard as a user drives it, against the loopback simulator and a real history file."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Button, Input, OptionList, Static, TextArea

from tui.core.catalog import VideoRequest
from tui.ui.app import HailuoApp
from tui.ui.widgets.composer import Composer
from tui.ui.widgets.detail import DetailPane
from tui.ui.widgets.job_table import JobTable
from tui.ui.widgets.status_line import StatusLine

from helpers import app_settings, copy_from_the_menu, started, toasts, until

KEY = "test-key-0123456789abcd"


async def _type_prompt(app: HailuoApp, pilot, text: str) -> None:
    app.query_one("#prompt", TextArea).text = text
    await pilot.pause()



async def test_compose_submit_follow_to_completion_and_copy_the_output(tmp_path, make_simulator):
    simulator = make_simulator(job_seconds=0.3)
    app = HailuoApp(app_settings(tmp_path, simulator.base_url, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        await _type_prompt(app, pilot, "a heron lifting off a misty lake")
        await pilot.press("ctrl+s")
        table = app.query_one(JobTable)
        await until(lambda: table.total_count == 1, pilot=pilot)
        job = table.visible_jobs()[0]
        assert job.prompt == "a heron lifting off a misty lake"
        await until(lambda: job.server_id is not None, pilot=pilot)
        await until(lambda: job.is_success and job.outputs, pilot=pilot)
        await until(lambda: app.query_one("#outputs", OptionList).option_count == len(job.outputs), pilot=pilot)
        assert job.server_id in str(app.query_one("#detail-body", Static).render())
        # The form keeps its values for a variation.
        assert app.query_one("#prompt", TextArea).text == "a heron lifting off a misty lake"
        app.query_one(JobTable).focus()
        assert await copy_from_the_menu(app, pilot, "output") == job.outputs[0]
        assert any("Copied the output URL" in t for t in toasts(app))
        assert any("completed" in t for t in toasts(app))


async def test_validation_errors_show_in_place_and_nothing_is_recorded(tmp_path, make_simulator):
    simulator = make_simulator(job_seconds=0.3)
    app = HailuoApp(app_settings(tmp_path, simulator.base_url, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        app.query_one("#tier").value = "pro"
        await pilot.press("ctrl+s")
        await pilot.pause()
        error = app.query_one("#prompt-error", Static)
        assert error.has_class("-visible") and "prompt is required" in str(error.render())
        assert app.query_one(JobTable).total_count == 0
        assert len(app.service.store) == 0
        assert app.query_one(Composer).request.model == "hailuo-2.3-pro"


async def test_a_refused_submit_keeps_the_form_and_says_why(tmp_path, make_simulator):
    simulator = make_simulator(job_seconds=0.3, require_key="the-only-valid-key-0000")
    app = HailuoApp(app_settings(tmp_path, simulator.base_url, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        await _type_prompt(app, pilot, "a paper boat in the rain")
        await pilot.press("ctrl+s")
        note = app.query_one("#submit-note", Static)
        await until(lambda: "refused" in str(note.render()), pilot=pilot)
        assert note.has_class("-error")
        assert app.query_one("#prompt", TextArea).text == "a paper boat in the rain"
        job = app.query_one(JobTable).visible_jobs()[0]
        assert job.status == "rejected"
        assert KEY not in str(note.render())


async def test_filter_quick_filters_and_pause(tmp_path, make_simulator):
    simulator = make_simulator(job_seconds=0.3)
    failing = f"a {simulator.faults.fail_later_word} crowd"

    async def seed(app):
        # Submitted for real, so each job keeps its prompt: one completes, one fails, one runs on.
        done = await app.service.submit(VideoRequest(prompt="a fox in snow"))
        refused = await app.service.submit(VideoRequest(prompt=failing))
        await app.service.wait([done.local_id, refused.local_id])
        simulator.job_seconds = 60
        await app.service.submit(VideoRequest(prompt="a paper boat"))

    app = HailuoApp(app_settings(tmp_path, simulator.base_url, KEY), on_started=seed)
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        table = app.query_one(JobTable)
        await until(lambda: table.total_count == 3 and sorted(j.status for j in table.visible_jobs())
                     in (["completed", "created", "failed"], ["completed", "failed", "processing"]), pilot=pilot)
        await pilot.press("slash")
        assert app.query_one("#filter", Input).has_focus
        await pilot.press(*"fox")
        await pilot.pause()
        assert [j.prompt for j in table.visible_jobs()] == ["a fox in snow"]
        await pilot.press("escape")
        await pilot.pause()
        assert table.visible_count == 3
        await pilot.press("escape")
        await pilot.press("3")
        await pilot.pause()
        assert [j.prompt for j in table.visible_jobs()] == [failing]
        await pilot.press("2")
        await pilot.pause()
        assert [j.prompt for j in table.visible_jobs()] == ["a paper boat"]
        await pilot.press("1")
        await pilot.press("p")
        await pilot.pause()
        assert table.frozen
        await until(lambda: "paused" in str(app.query_one(StatusLine).render()), pilot=pilot)
        await pilot.press("p")
        await pilot.pause()
        assert not table.frozen


async def test_jobs_pending_at_exit_complete_after_a_restart(tmp_path, make_simulator):
    simulator = make_simulator(job_seconds=1.0)
    settings = app_settings(tmp_path, simulator.base_url, KEY)
    first = HailuoApp(settings)
    async with first.run_test(size=(160, 45)) as pilot:
        await started(first, pilot)
        await _type_prompt(first, pilot, "a lighthouse in fog")
        await pilot.press("ctrl+s")
        table = first.query_one(JobTable)
        await until(lambda: table.total_count == 1 and table.visible_jobs()[0].server_id is not None, pilot=pilot)
        await pilot.press("q")
        await pilot.pause()
    second = HailuoApp(settings)
    async with second.run_test(size=(160, 45)) as pilot:
        await started(second, pilot)
        table = second.query_one(JobTable)
        assert table.total_count == 1
        job = table.visible_jobs()[0]
        await until(lambda: job.is_success and bool(job.outputs), pilot=pilot)


async def test_without_a_key_the_history_opens_read_only_and_submit_says_why(tmp_path, make_simulator):
    simulator = make_simulator(job_seconds=0.3)
    app = HailuoApp(app_settings(tmp_path, simulator.base_url, KEY, api_key=None))
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        status = str(app.query_one(StatusLine).render())
        # At 80 columns the host and key give way to the error, which says it all.
        assert "no API key: set GPTPROTO_API_KEY" in status[:80] and "key no key" not in status
        await pilot.press("n")
        await pilot.pause()
        assert app.query_one("#submit", Button).disabled
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "GPTPROTO_API_KEY" in str(app.query_one("#submit-note", Static).render())
        assert app.query_one(JobTable).total_count == 0


async def test_markup_in_a_server_error_is_inert_in_the_detail_pane(tmp_path, make_simulator):
    simulator = make_simulator(job_seconds=30)
    hostile = "[bold]boom[/bold] \x1b[2Jgone"
    # An attached job's prompt is unknown to us (the API does not echo it): the hostile text is the error.
    sid = simulator.seed_job(status="failed", error=hostile)

    async def attach(app):
        await app.service.attach([sid])

    app = HailuoApp(app_settings(tmp_path, simulator.base_url, KEY), on_started=attach)
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        table = app.query_one(JobTable)
        await until(lambda: table.total_count == 1 and table.visible_jobs()[0].status == "failed", pilot=pilot)
        await until(lambda: app.query_one(DetailPane).job is not None
                     and app.query_one(DetailPane).job.error is not None, pilot=pilot)
        body = str(app.query_one("#detail-body", Static).render())
        assert "[bold]boom[/bold]" in body and "\x1b" not in body


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_help_lists_every_binding_with_its_description(tmp_path, make_simulator, size):
    simulator = make_simulator(job_seconds=0.3)
    app = HailuoApp(app_settings(tmp_path, simulator.base_url, KEY))
    async with app.run_test(size=size) as pilot:
        await started(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        text = str(app.screen.query_one("#help-text", Static).render())
        for binding in HailuoApp.BINDINGS:
            assert binding.description in text
        assert "Submit" in text and "Raw JSON" in text and "Sort column" in text


async def test_the_screen_and_the_form_come_up_while_a_big_history_is_still_being_read(tmp_path):
    import threading

    from tui.core.jobs import JobService
    from tui.core.records import Job

    settings = app_settings(tmp_path, "http://127.0.0.1:9", KEY)
    from tui.simulator.demo import write_history

    write_history(settings.db_path, [Job(local_id=f"j{n}", request={"prompt": f"p{n}"}, submitted_at=1e9 + n,
                                         status="completed") for n in range(3)])
    release = threading.Event()
    events: list[str] = []

    class Watched(HailuoApp):
        def on_ready(self) -> None:  # runs before the app's own handler
            events.append("first frame")

    def slow_history(opening_settings):
        events.append("history read")
        release.wait(10)
        return JobService.open(opening_settings)

    app = Watched(settings, service_factory=slow_history, poll=False)
    async with app.run_test(size=(160, 45)) as pilot:
        detail = await asyncio.wait_for(app.detail(), 10)
        assert not app.query("#detail-placeholder") and detail.job is None
        composer = await asyncio.wait_for(app.composer(), 10)  # asked for: built at once
        assert not app.query("#composer-placeholder")
        # The form is there, in the place kept for it (once laid out: the next refresh), and says
        # why it cannot send yet.
        await until(lambda: composer.region.width > 40, pilot=pilot, what=lambda: composer.region)
        assert composer.region.x == 0
        assert composer.disabled_reason == "opening the history…"
        assert app.query_one(JobTable).total_count == 0 and not app.ready.is_set()
        release.set()
        await started(app, pilot)
        assert app.query_one(JobTable).total_count == 3
        assert composer.disabled_reason is None
        assert detail.job is app.query_one(JobTable).selected_job is not None
    assert events == ["first frame", "history read"]


async def test_the_newest_jobs_are_on_screen_before_the_whole_history_is_read(tmp_path, monkeypatch):
    import threading

    from tui.ui.app import FIRST_GLIMPSE
    from tui.simulator.demo import write_history
    from tui.core.records import Job
    from tui.core.store import HistoryStore

    settings = app_settings(tmp_path, "http://127.0.0.1:9", KEY)
    write_history(settings.db_path, [Job(local_id=f"j{n}", request={"prompt": f"p{n}"}, submitted_at=1e9 + n,
                                         status="completed") for n in range(1200)])
    release = threading.Event()
    full_read = HistoryStore.open

    def held_back(*args, **kwargs):
        release.wait(10)
        return full_read(*args, **kwargs)

    monkeypatch.setattr(HistoryStore, "open", held_back)
    app = HailuoApp(settings, poll=False)
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.query_one(JobTable)
        await until(lambda: table.total_count > 0, pilot=pilot)
        # The newest, in order, while the rest is still being read; the status line says so.
        assert table.total_count == FIRST_GLIMPSE and not app.ready.is_set()
        assert [j.local_id for j in table.visible_jobs()[:3]] == ["j1199", "j1198", "j1197"]
        assert "reading the history" in str(app.query_one(StatusLine).render())
        await pilot.press("x")  # acting on a job needs the service: said, not a crash
        assert any("still opening" in toast for toast in toasts(app))
        release.set()
        await started(app, pilot)
        assert table.total_count == 1200 and table.visible_jobs()[-1].local_id == "j0"
        assert "reading the history" not in str(app.query_one(StatusLine).render())


async def test_v_shows_the_raw_answer_from_the_job_table(tmp_path):
    from tui.simulator.demo import write_history
    from tui.core.records import Job

    settings = app_settings(tmp_path, "http://127.0.0.1:9", KEY)
    write_history(settings.db_path, [Job(local_id="j1", request={"prompt": "a fox"}, submitted_at=1e9,
                                         server_id="pred-1", status="completed",
                                         raw={"id": "pred-1", "status": "completed"})])
    app = HailuoApp(settings, poll=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        assert app.query_one(JobTable).has_focus
        raw = app.query_one("#raw-json", Static)
        assert not raw.display
        await pilot.press("v")
        await pilot.pause()
        assert raw.display and '"id": "pred-1"' in str(raw.render())
        detail = app.query_one(DetailPane)
        assert detail.region.contains_region(raw.region) or raw.region.y <= detail.region.bottom - 2  # in view
        await pilot.press("v")
        await pilot.pause()
        assert not raw.display


async def test_the_dashboard_keeps_its_loaded_history_out_of_full_garbage_collections(tmp_path):
    import gc

    from tui.core.records import Job
    from tui.simulator.demo import write_history

    settings = app_settings(tmp_path, "http://127.0.0.1:9", KEY)
    write_history(settings.db_path, [Job(local_id=f"j{n}", request={"prompt": f"p{n}"}, submitted_at=1e9 + n,
                                         status="completed") for n in range(50)])
    assert gc.get_freeze_count() == 0
    app = HailuoApp(settings, poll=False, freeze_history=True)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            await started(app, pilot)
            job = app.query_one(JobTable).visible_jobs()[0]
            # Frozen: no longer in any generation a collection walks.
            assert gc.get_freeze_count() > 0
            assert not any(tracked is job for tracked in gc.get_objects())
    finally:
        gc.unfreeze()  # this test process runs many apps


async def test_service_events_that_arrive_while_the_app_closes_are_dropped(tmp_path):
    """A worker cancelled at exit (a batch run, the poller) still reports: after the screens are gone."""
    from textual.widget import Widget

    from tui.ui.messages import JobUpdated, PollerStateChanged
    from tui.core.events import JobChanged, PollerState
    from tui.core.records import Job

    class ReportsOnUnmount(Widget):
        def on_unmount(self) -> None:
            self.screen.post_message(PollerStateChanged(PollerState(running=False)))
            self.screen.post_message(JobUpdated(JobChanged(Job(local_id="late", request={}, submitted_at=1e9),
                                                          None, added=True)))

    app = HailuoApp(app_settings(tmp_path, "http://127.0.0.1:9", KEY), poll=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        await app.screen.mount(ReportsOnUnmount())
    assert app.return_code in (0, None)  # closed without an error


# -- the dashboard is a screen: its keys, the keymap's ids, dialogs -----------------------------------

async def test_the_keymap_ids_of_the_dashboards_keys_still_remap_them(tmp_path):
    """[keymap] names a key by its binding id ("app.pause"): it works now the keys are the screen's."""
    from tui.ui.dashboard import DashboardScreen
    from tui.ui.widgets.job_table import JobTable

    app = HailuoApp(app_settings(tmp_path, "http://127.0.0.1:9", KEY, keymap={"app.pause": "f5", "app.quit": "f10"}),
                    poll=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        assert isinstance(app.screen, DashboardScreen)
        table = app.query_one(JobTable)
        await pilot.press("p")  # its old key no longer pauses
        await pilot.pause()
        assert not table.frozen
        await pilot.press("f5")
        await until(lambda: table.frozen, pilot=pilot)
        await pilot.press("f10")
        await until(lambda: not app.is_running, pilot=pilot)


async def test_the_dashboards_keys_do_nothing_under_a_dialog(tmp_path):
    """Keys of the dashboard are its screen's: under the help dialog `p` does not pause the table."""
    from tui.ui.screens.dialogs import HelpScreen
    from tui.ui.widgets.job_table import JobTable

    app = HailuoApp(app_settings(tmp_path, "http://127.0.0.1:9", KEY), poll=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        table = app.query_one(JobTable)
        await pilot.press("question_mark")
        await until(lambda: isinstance(app.screen, HelpScreen), pilot=pilot)
        await pilot.press("p")
        await pilot.pause()
        assert not table.frozen
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, HelpScreen), pilot=pilot)
        await pilot.press("p")
        await until(lambda: table.frozen, pilot=pilot)


# -- 80x24: the form fits, its result line on screen ----------------------------------------------

def _on_screen(app, widget) -> bool:
    """The widget is drawn whole between the status line and the footer."""
    from textual.widgets import Footer

    region = widget.region
    footer = app.screen.query_one(Footer).region
    return bool(region) and app.screen.region.contains_region(region) and region.bottom <= footer.y


async def test_at_80x24_the_forms_result_line_is_on_screen_after_a_send_and_after_a_refusal(tmp_path, make_simulator):
    simulator = make_simulator(job_seconds=30)
    app = HailuoApp(app_settings(tmp_path, simulator.base_url, KEY))
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("n")
        await pilot.press(*"a fox in the snow")
        await pilot.press("ctrl+s")
        note = app.query_one("#submit-note", Static)
        await until(lambda: "sent as" in str(note.render()), pilot=pilot)
        await pilot.pause()
        assert _on_screen(app, note), (note.region, app.screen.region)
        assert _on_screen(app, app.query_one("#submit", Button))

        # Image to video: more fields, and a refusal (no first frame) must be seen too.
        app.query_one("#scene").value = "image-to-video"
        await pilot.pause()
        app.query_one("#prompt", TextArea).focus()
        await pilot.press("ctrl+s")
        await until(lambda: "fix the fields" in str(note.render()), pilot=pilot)
        await pilot.pause()
        assert _on_screen(app, note), (note.region, app.screen.region)
        assert _on_screen(app, app.query_one("#image-error", Static))


async def test_request_json_copies_the_body_as_sent_with_the_image_named_not_inlined(tmp_path, make_simulator):
    import hashlib
    import json

    from PIL import Image

    from helpers import posts

    image = tmp_path / "first-frame.png"
    Image.new("RGB", (640, 400), (30, 120, 200)).save(image)
    simulator = make_simulator(job_seconds=30)
    app = HailuoApp(app_settings(tmp_path, simulator.base_url, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        app.query_one("#scene").value = "image-to-video"
        await pilot.pause()
        app.query_one("#image", Input).value = str(image)
        await _type_prompt(app, pilot, "the lake at dawn")
        app.query_one("#prompt", TextArea).focus()
        await pilot.press("ctrl+s")
        table = app.query_one(JobTable)
        await until(lambda: table.total_count == 1 and table.visible_jobs()[0].server_id is not None, pilot=pilot)
        table.focus()
        copied = json.loads(await copy_from_the_menu(app, pilot, "request"))
    sent = json.loads(posts(simulator)[0].body)
    assert sent["image"].startswith("data:image/png;base64,iVBOR")  # the real thing went to the server
    assert {k: v for k, v in copied.items() if k != "image"} == {k: v for k, v in sent.items() if k != "image"}
    assert copied["prompt"] == "the lake at dawn" and "model" not in copied  # the body, not the stored record
    assert copied["image"].startswith("data:image/png;base64,")
    assert str(image) in copied["image"] and hashlib.sha256(image.read_bytes()).hexdigest() in copied["image"]
    assert len(copied["image"]) < 300 and KEY not in json.dumps(copied)


# -- an image is read once a submit, never on the UI loop --------------------------------------------

def _count_opens(monkeypatch, path) -> list[bool]:
    """Every open of `path` (os.open, open, Pillow's): one entry each, True when on the main
    thread, where the dashboard's loop runs."""
    import builtins
    import os
    import threading

    opened: list[bool] = []
    real_os_open, real_open = os.open, builtins.open
    wanted = os.path.realpath(path)

    def note(target) -> None:
        if isinstance(target, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(target)) == wanted:
            opened.append(threading.current_thread() is threading.main_thread())

    def counting_os_open(target, *args, **kwargs):
        note(target)
        return real_os_open(target, *args, **kwargs)

    def counting_open(target, *args, **kwargs):
        note(target)
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_os_open)
    monkeypatch.setattr(builtins, "open", counting_open)
    return opened


async def test_a_submit_with_an_image_opens_the_file_once_and_not_on_the_ui_loop(tmp_path, make_simulator,
                                                                                  monkeypatch):
    import json

    from PIL import Image

    from helpers import posts

    image = tmp_path / "first-frame.png"
    Image.new("RGB", (640, 400), (30, 120, 200)).save(image)
    simulator = make_simulator(job_seconds=30)
    # Previews off: the detail pane's strip would read the image again to draw it, after the submit.
    app = HailuoApp(app_settings(tmp_path, simulator, KEY, preview="off"))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        app.query_one("#scene").value = "image-to-video"
        await pilot.pause()
        app.query_one("#image", Input).value = str(image)
        app.query_one("#prompt", TextArea).text = "the lake at dawn"
        app.query_one("#prompt", TextArea).focus()
        await pilot.pause()
        opened = _count_opens(monkeypatch, image)
        await pilot.press("ctrl+s")
        table = app.query_one(JobTable)
        await until(lambda: table.total_count == 1 and table.visible_jobs()[0].server_id is not None, pilot=pilot)
        job = table.visible_jobs()[0]
        assert opened == [False], opened  # once, in a thread
    import base64
    import hashlib

    sent = json.loads(posts(simulator)[0].body)["image"]
    assert base64.b64decode(sent.split(",", 1)[1]) == image.read_bytes()  # the bytes read are the bytes sent
    assert job.request["image"]["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()


async def test_leaving_the_image_field_reads_the_file_in_a_thread_and_shows_its_size(tmp_path, monkeypatch):
    from PIL import Image

    image = tmp_path / "first-frame.png"
    Image.new("RGB", (640, 400), (30, 120, 200)).save(image)
    missing_pixels = tmp_path / "tiny.png"
    Image.new("RGB", (100, 100), (0, 0, 0)).save(missing_pixels)
    app = HailuoApp(app_settings(tmp_path, preview="off"), poll=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        await pilot.press("n")
        app.query_one("#scene").value = "image-to-video"
        await pilot.pause()
        field = app.query_one("#image", Input)
        field.focus()
        field.value = str(image)
        opened = _count_opens(monkeypatch, image)
        app.query_one("#prompt", TextArea).focus()  # leaves the field
        info = app.query_one("#image-info", Static)
        await until(lambda: "640" in str(info.render()), pilot=pilot, what="the image's size beside its field")
        assert opened and not any(opened), opened  # read, and never on the UI loop

        # A file found wrong when read is named under its field once the form is being checked.
        field.focus()
        field.value = str(missing_pixels)
        app.query_one("#composer").validate_now()
        app.query_one("#prompt", TextArea).focus()
        error = app.query_one("#image-error", Static)
        await until(lambda: error.has_class("-visible"), pilot=pilot, what="the small image's message")
        assert "100" in str(error.render()), str(error.render())


def test_a_submit_from_the_cli_or_a_batch_reads_each_image_once(tmp_path, monkeypatch):
    from PIL import Image

    from tui.core.catalog import read_images
    from tui.core.jobs import prepare_submit

    first, last = tmp_path / "first.png", tmp_path / "last.png"
    for path in (first, last):
        Image.new("RGB", (640, 400), (30, 120, 200)).save(path)
    request = VideoRequest(scene="image-to-video", prompt="a door opens", image=str(first), end_image=str(last),
                           model="hailuo-02-standard")
    opened_first, opened_last = _count_opens(monkeypatch, first), _count_opens(monkeypatch, last)
    errors, body, record = prepare_submit(request)
    assert errors == [] and body["image"].startswith("data:image/png;base64,") and record["image"]["sha256"]
    assert len(opened_first) == 1 and len(opened_last) == 1
    read = read_images(request)
    assert len(opened_first) == 2 and len(opened_last) == 2
    prepare_submit(request, images=read)  # what the form read goes on: nothing opened again
    assert len(opened_first) == 2 and len(opened_last) == 2
