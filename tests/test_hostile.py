"""Hostile and bad input: whatever the server sends and whatever the user types.

- Random and adversarial answers (wrong types, huge strings, deep nesting, nulls everywhere,
  bytes that are not UTF-8) go through the real client into the real job table and detail
  pane: nothing crashes, and a job whose answers are unusable shows a "malformed" state.
- Bad form and command-line input gets a specific message at its field.
- Server text with Textual markup and terminal escape sequences stays inert in the table, the
  detail pane, toasts, the status line, CLI output and exports (including CSV formulas).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import os
import re
import struct
import zlib
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.app import App, ComposeResult
from textual.widgets import Input, Select, Static, TextArea

from tui.cli import main as cli
from tui.core.api.client import HailuoClient
from tui.core.api.errors import ApiError
from tui.core.config import styles_dir
from tui.core.records import Job
from tui.core.store import HistoryStore
from tui.ui.widgets.composer import Composer
from tui.ui.widgets.detail import DetailPane
from tui.ui.widgets.job_table import JobTable

from helpers import app_settings, submit_from_the_composer, until

KEY = "sk-hostile-0123456789abcdef"
NOW = 1_800_000_000.0
#: What a terminal would act on: ESC, BEL, C1 controls, bidi overrides.
ACTIVE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# -- answers a hostile or broken server could send ----------------------------------------------

_ADVERSARIAL_TEXT = [
    "[bold red]BOOM[/]", "[/]", "[link=http://evil]x[/link]", "\x1b[2J\x1b[H", "\x1b]52;c;ZXZpbA==\x07",
    "\x1b[10;10Hmoved", "\x07\x07\x07", "\u202eevil", "\x9b31mred", "=1+1", "@SUM(A1)", "🦊" * 50,
    "ثعلب في الثلج", "\ufffd", "x" * 300, "line\nbreak\r\ntab\t",
]
_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(_ADVERSARIAL_TEXT),
    st.builds(lambda piece, n: piece * n, st.sampled_from(["\x1b[31m", "[b]", "é", "\u202e", "🦊", "A", " "]),
              st.integers(1, 30_000)),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_data = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(_json, st.sampled_from(["pred-1", "x" * 500, "a/b", "id with space", "\x1b[2J"])),
        "status": st.one_of(_json, st.sampled_from(["processing", "completed", "failed", "unknown", "submitting",
                                                    "[red]odd[/]", "\x1b[5mblink", "s" * 100])),
        "outputs": st.one_of(_json, st.lists(_text, max_size=3)),
        "urls": _json,
        "error": st.one_of(_json, _text),
        "executionTime": st.one_of(_json, st.sampled_from(["1e400", "nan", -5, 2**70])),
        "timings": _json,
        "has_nsfw_contents": _json,
        "created_at": st.one_of(_json, st.sampled_from(["2026-13-45 99:99:99", "2025-11-07T02:35:15.34950574Z"])),
        "model": _json,
    },
)


def _nested(depth: int) -> bytes:
    inner = '{"id": "deep-1", "status": "processing"}'
    return ('{"data": ' + '{"x": ' * depth + inner + "}" * depth + "}").encode()


_bodies = st.one_of(
    st.binary(max_size=300),  # not JSON, not even UTF-8
    _json.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"data": _data, "code": _json, "message": _text}).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"data": _data}).map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8")),
    st.builds(lambda n: b"[" * n + b"]" * n, st.integers(100, 50_000)),
    st.builds(_nested, st.integers(1, 3000)),
    st.builds(lambda raw: b'{"data": {"id": "p\xff\xfe", "status": "' + raw + b'"}}', st.binary(max_size=20)),
    st.just(json.dumps({"data": {k: None for k in ("id", "status", "outputs", "urls", "error", "executionTime",
                                                    "timings", "has_nsfw_contents", "created_at")},
                        "code": None, "message": None}).encode()),
)


class Host(App):
    """The dashboard's job table and detail pane, with its stylesheet."""

    CSS_PATH = [str(styles_dir() / "app.tcss"), str(styles_dir() / "job_table.tcss")]

    def compose(self) -> ComposeResult:
        yield JobTable(id="jobs", clock=lambda: NOW, tick_interval=0)
        yield DetailPane(id="detail", clock=lambda: NOW)


async def _answers(bodies: list[bytes], statuses: list[int]) -> list[Job]:
    """Each body as the answer to a poll of one job, through the real client."""
    replies = iter(zip(bodies, statuses))

    def handler(request: httpx.Request) -> httpx.Response:
        body, status = next(replies)
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    async def no_sleep(_delay: float) -> None:
        return None

    jobs = []
    async with HailuoClient("https://api.example.test", KEY, transport=httpx.MockTransport(handler),
                            sleep=no_sleep, get_retries=0) as client:
        for n in range(len(bodies)):
            job = Job(local_id=f"job{n:04d}", request={"model": "hailuo-2.3-fast", "scene": "text-to-video",
                                                       "prompt": f"job {n}", "duration": 6, "resolution": "768P"},
                      submitted_at=NOW - n, server_id=f"pred-{n}", status="processing")
            try:
                prediction = await client.result(job.server_id)
            except ApiError as error:
                assert error.message and "\n" not in error.message and len(error.message) < 300
                assert not ACTIVE.search(error.message) and KEY not in error.message
                job.poll_errors, job.last_poll_error, job.last_poll_error_kind = 1, error.message, error.kind
            else:
                job.apply(prediction, NOW)
                # Nothing absurd is kept: the history must not grow by megabytes per poll.
                assert len(json.dumps(job.to_doc())) < 200_000
            jobs.append(job)
    return jobs


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies=st.lists(_bodies, min_size=1, max_size=12), data=st.data())
async def test_any_answer_becomes_a_job_the_table_and_detail_pane_show(bodies, data):
    statuses = data.draw(st.lists(st.sampled_from([200, 201, 400, 404, 500, 503]), min_size=len(bodies),
                                  max_size=len(bodies)))
    jobs = await _answers(bodies, statuses)
    app = Host()
    async with app.run_test(size=(160, len(jobs) + 4)) as pilot:
        table, detail = app.query_one(JobTable), app.query_one(DetailPane)
        table.set_jobs(jobs)
        await pilot.pause()
        for job in jobs:
            assert table.select(job.local_id)
            row = table.render_line(table.cursor_row + 1 - table.scroll_offset.y)
            assert row.cell_length == table.scrollable_content_region.width  # the columns stay aligned
            assert not ACTIVE.search(row.text)
            if job.poll_errors and job.last_poll_error_kind == "malformed":
                assert "⚠ malformed" in row.text
            detail.show_raw = True  # the answer as received, too
            detail.show_job(job, force=True)
            await pilot.pause()
            body = str(app.query_one("#detail-body", Static).render())
            assert not ACTIVE.search(body) and not ACTIVE.search(str(app.query_one("#raw-json", Static).render()))
            if job.poll_errors and job.last_poll_error_kind == "malformed":
                assert "malformed response from the server" in body
        screenshot = app.export_screenshot()
        assert "\x1b" not in screenshot and "\x07" not in screenshot


async def test_hostile_answers_from_the_simulator_mark_the_job_malformed_then_it_recovers(tmp_path, make_simulator):
    from tui.ui.app import HailuoApp

    sim = make_simulator(job_seconds=60)  # running until every hostile answer has been met
    bodies = [
        b'{"data": {"id": 42, "status": ["processing"]}}',  # wrong types
        b'{"data": {"id": null, "status": null, "outputs": null}, "code": null}',  # nulls everywhere
        b'{"data": {"id": "\xff\xfe", "status": "processing\xc3"}}',  # not UTF-8
        ('{"data": {"id": "x", "status": "%s"}}' % ("s" * 200_000)).encode(),  # a huge string
        _nested(5000),  # deeper than any parser should follow
    ]
    app = HailuoApp(app_settings(tmp_path, sim, KEY))
    async with app.run_test(size=(160, 45)) as pilot:
        table, job = await submit_from_the_composer(app, pilot, "a fox facing a hostile server")
        table.focus()
        async def refreshed_until(predicate, what) -> None:
            # As a user does: `r` polls the job now rather than after its backoff (which grows
            # to a minute after many failed answers in a row); `r` during a poll does nothing.
            deadline = time.monotonic() + 60
            while not predicate():
                assert time.monotonic() < deadline, f"not reached in 60s: {what}"
                await pilot.press("r")
                await pilot.pause(0.05)

        for body in bodies:
            # Every answer about this job is this body until the next one. Two more failed
            # answers in a row: the second was asked for after this body was set.
            sim.faults.update({"canned": 1000, "canned_body": body, "canned_for": job.server_id})
            wanted = job.poll_errors + 2
            await refreshed_until(lambda: job.poll_errors >= wanted, body[:60])
            assert job.is_pending and job.last_poll_error_kind == "malformed"
            assert "⚠ malformed" in table.render_line(table.cursor_row + 1).text
            detail = str(app.query_one("#detail-body", Static).render())
            assert "malformed response from the server" in detail and not ACTIVE.search(detail)
        await pilot.press("j", "k")  # still answering keys
        sim.faults.update({"canned": 0})
        sim.job_seconds = 0.01  # the job is done now: the next good answer says so
        await refreshed_until(lambda: job.status == "completed", "completed")
    with HistoryStore.open(tmp_path / "history.json", read_only=True) as store:
        (stored,) = store.all()
    assert stored.status == "completed" and len(json.dumps(stored.to_doc())) < 10_000




# -- what the user types -----------------------------------------------------------------------


def png(path: Path, size=(640, 400), fmt: str = "PNG") -> Path:
    from PIL import Image

    Image.new("RGB", size, (30, 120, 200)).save(path, format=fmt)
    return path


def huge_png(path: Path) -> Path:
    png(path)
    with open(path, "r+b") as fh:
        fh.truncate(21 * 1024 * 1024)  # a real PNG header, 21 MB on disk
    return path


MEGABYTE_PROMPT = "a fox in the snow " * 58255  # 1,048,590 characters

# (case id, the fields to set, the field that must complain, what it must say). None: accepted.
FORM_CASES = [
    ("empty prompt", {"prompt": ""}, "prompt", "a prompt is required"),
    ("blank prompt", {"prompt": "  \n\t "}, "prompt", "a prompt is required"),
    ("1 MB prompt", {"prompt": MEGABYTE_PROMPT}, "prompt", "prompt is 1,048,590 characters; the limit is 5,000"),
    ("bell in the prompt", {"prompt": "a red\x07 fox"}, "prompt", "(U+0007 at character 6)"),
    ("escape sequence in the prompt", {"prompt": "a \x1b[2J fox"}, "prompt", "(U+001B at character 3)"),
    ("bidi override in the prompt", {"prompt": "a fox \u202eevil"}, "prompt", "(U+202E at character 7)"),
    ("emoji and right-to-left text", {"prompt": "🦊🌨️ ثعلب أحمر في الثلج — שועל"}, None, None),
    ("image that does not exist", {"image": "{tmp}/missing.png"}, "image", "no such file: {tmp}/missing.png"),
    ("image that is a directory", {"image": "{tmp}"}, "image", "{tmp} is a directory, not an image"),
    ("image that is huge", {"image": "{tmp}/huge.png"}, "image", "file is 21.0 MB; it must be at most 20 MB"),
    ("image that is not an image", {"image": "{tmp}/notes.png"}, "image", "not a readable JPG or PNG image"),
    ("GIF with a .png extension", {"image": "{tmp}/really-a-gif.png"}, "image", "format is GIF; it must be JPG or PNG"),
    ("WebP with a .jpg extension", {"image": "{tmp}/really-a-webp.jpg"}, "image",
     "format is WEBP; it must be JPG or PNG"),
    ("PNG with a .jpg extension", {"image": "{tmp}/really-a-png.jpg"}, None, None),
    ("too small, named with escapes", {"image": "{tmp}/small\x1b[31m.png"}, "image",
     "short side is 200 px; it must be over 300 px"),
    # -- bad input: files that must not be opened, or not decoded ------------------------------
    ("PNG that decodes to 30000x30000 (bomb)", {"image": "{tmp}/bomb.png"}, "image",
     "image is 30000×30000 px (900.0 megapixels); it must be at most 89.5 megapixels"),
    ("JPEG that decodes to 30000x30000 (bomb)", {"image": "{tmp}/bomb.jpg"}, "image",
     "image is 30000×30000 px (900.0 megapixels); it must be at most 89.5 megapixels"),
    ("image that is a FIFO (never opened)", {"image": "{tmp}/pipe.png"}, "image",
     "{tmp}/pipe.png is a named pipe (FIFO), not an image file"),
    ("image that is /dev/zero", {"image": "/dev/zero"}, "image", "/dev/zero is a device, not an image file"),
    ("end image that is a FIFO", {"image": "{tmp}/really-a-png.jpg", "end_image": "{tmp}/pipe.png"}, "end_image",
     "{tmp}/pipe.png is a named pipe (FIFO), not an image file"),
    ("end image that is /dev/zero", {"image": "{tmp}/really-a-png.jpg", "end_image": "/dev/zero"}, "end_image",
     "/dev/zero is a device, not an image file"),
]
FORM_IDS = [case[0] for case in FORM_CASES]


@pytest.fixture
def files(tmp_path) -> Path:
    png(tmp_path / "really-a-png.jpg")
    png(tmp_path / "really-a-gif.png", fmt="GIF")
    png(tmp_path / "really-a-webp.jpg", fmt="WEBP")
    png(tmp_path / "small\x1b[31m.png", size=(320, 200))
    huge_png(tmp_path / "huge.png")
    (tmp_path / "notes.png").write_text("shopping list: eggs, milk\n")
    bomb_png(tmp_path / "bomb.png", 30000, 30000)
    bomb_jpeg(tmp_path / "bomb.jpg", 30000, 30000)
    os.mkfifo(tmp_path / "pipe.png")  # nobody ever writes to it: opening it would block for ever
    return tmp_path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG header for a huge picture, with one compressed row: a few hundred bytes on
    disk, gigabytes once decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                     + _chunk(b"IDAT", zlib.compress(b"\0" * (1 + 3 * width))) + _chunk(b"IEND", b""))
    return path


def bomb_jpeg(path: Path, width: int, height: int) -> Path:
    """A real JPEG whose start-of-frame claims a huge size."""
    png(path, size=(640, 400), fmt="JPEG")
    data = bytearray(path.read_bytes())
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def _fields(values: dict, tmp: Path) -> dict:
    fields = {"prompt": "a fox in the snow", **{k: v.replace("{tmp}", str(tmp)) for k, v in values.items()}}
    if "image" in fields:
        fields["scene"] = "image-to-video"
    return fields


class ComposerHost(App):
    def __init__(self) -> None:
        super().__init__()
        self.submitted: list = []

    def compose(self) -> ComposeResult:
        yield Composer(id="composer")

    def on_composer_submitted(self, event: Composer.Submitted) -> None:
        self.submitted.append(event.request)


@pytest.mark.parametrize("case", FORM_CASES, ids=FORM_IDS)
async def test_bad_form_input_is_named_at_its_field(case, files):
    _, values, field, message = case
    fields = _fields(values, files)
    app = ComposerHost()
    async with app.run_test(size=(100, 60)) as pilot:
        if "scene" in fields:
            app.query_one("#scene", Select).value = fields["scene"]
            await pilot.pause()
        app.query_one("#prompt", TextArea).text = fields["prompt"]
        for name in ("image", "end_image"):
            if name in fields:
                app.query_one(f"#{name}", Input).value = fields[name]
        await pilot.press("ctrl+s")

        def visible() -> dict:
            return {name: str(app.query_one(f"#{name}-error", Static).render())
                    for name in ("prompt", "image", "end_image")
                    if app.query_one(f"#{name}-error", Static).has_class("-visible")}

        # The form reads an image in a thread: wait for its verdict, either way.
        await until(lambda: app.submitted or visible(), pilot=pilot, what="a submit or a message")
        shown = visible()
        if field is None:
            assert shown == {} and len(app.submitted) == 1
            assert app.submitted[0].prompt == fields["prompt"]  # kept exactly as typed
        else:
            assert app.submitted == []
            assert message.replace("{tmp}", str(files)) in shown.get(field, ""), shown
            assert not ACTIVE.search(shown[field])
            # The form keeps what was typed.
            assert app.query_one("#prompt", TextArea).text == fields["prompt"]
            for name in ("image", "end_image"):
                if name in fields:
                    assert app.query_one(f"#{name}", Input).value == fields[name]


@pytest.mark.parametrize("case", FORM_CASES, ids=FORM_IDS)
def test_bad_command_line_input_is_named_with_its_field(case, files, make_simulator):
    _, values, field, message = case
    fields = _fields(values, files)
    sim = make_simulator(job_seconds=0.2)
    db = files / "history.json"
    args = ["submit", "--prompt", "-", "--base-url", sim.base_url, "--db", str(db), "--json"]
    if "image" in fields:
        args += ["--image", fields["image"]]
    if "end_image" in fields:
        args += ["--end-image", fields["end_image"]]
    result = CliRunner().invoke(cli.main, args, input=fields["prompt"] + "\n", env={"GPTPROTO_API_KEY": KEY},
                                catch_exceptions=False)
    if field is None:
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["request"]["prompt"] == fields["prompt"]
        return
    assert result.exit_code == 2
    expected = message.replace("{tmp}", str(files)).replace("\x1b[31m", "")
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"error: {field}: ") and expected in line for line in lines), result.stderr
    assert not ACTIVE.search(result.stderr)
    assert sim.requests == [] and not db.exists()  # nothing sent, nothing recorded


def test_a_right_to_left_prompt_keeps_the_table_aligned():
    from tui.ui.widgets.job_table import _Row, fit

    job = Job(local_id="rtl", request={"prompt": "🦊🌨️ ثعلب أحمر في الثلج — שועל", "model": "hailuo-2.3-fast"},
              submitted_at=NOW, server_id="pred-rtl", status="completed")
    row = _Row.of(job)
    from rich.cells import cell_len

    assert cell_len(fit(row.prompt, 20)) == 20 and row.prompt.startswith("🦊")


# -- server text stays inert everywhere ------------------------------------------------------------

HOSTILE_ERROR = ("=HYPERLINK(\"http://evil\")[bold red]BOOM[/] [/] \x1b[2J\x1b[H\x1b]52;c;aGVsbG8=\x07\x07"
                 "\x1b[10;10Hmoved \u202eevil\x9b31m")
# A status with control characters is no status at all (a malformed answer); markup is only text.
HOSTILE_STATUS = "@cmd[blink]x[/]"
HOSTILE_URL = "-http://cdn.example/v.mp4\x1b]8;;http://phish\x07link"


def _seed_hostile(sim) -> dict[str, str]:
    return {
        "ends failed": sim.seed_job(status="processing", error=HOSTILE_ERROR),
        "odd status": sim.seed_job(status=HOSTILE_STATUS),
        "hostile output": sim.seed_job(status="completed", outputs=[HOSTILE_URL]),
    }


async def test_server_text_is_inert_in_the_table_detail_toasts_and_status_line(tmp_path, make_simulator):
    from tui.ui.app import HailuoApp
    from tui.ui.widgets.status_line import StatusLine

    # The simulator's clock moves only when the test says: the failing job is still running when
    # the dashboard first sees it, however slow the machine, and ends while it is watched.
    now = [1_700_000_000.0]
    sim = make_simulator(job_seconds=2.0, clock=lambda: now[0])
    ids: dict[str, str] = {}

    async def attach(app):
        ids.update(_seed_hostile(sim))
        await app.service.attach(list(ids.values()))

    app = HailuoApp(app_settings(tmp_path, sim, KEY), on_started=attach)
    async with app.run_test(size=(200, 45), notifications=True) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        table = app.query_one(JobTable)
        await until(lambda: table.total_count == 3 and all(j.status for j in table.visible_jobs()), pilot=pilot)
        failed = next(j for j in table.visible_jobs() if j.server_id == ids["ends failed"])
        await until(lambda: failed.status == "processing", pilot=pilot)
        now[0] += 10  # the job ends on the server: a toast says so
        await until(lambda: failed.status == "failed", pilot=pilot)
        # What the toasts draw: the brackets as text (as markup, "[/]" would even crash the app).
        from textual.widgets._toast import Toast

        await until(lambda: len(app.screen.query(Toast)) > 0, pilot=pilot)
        drawn = [str(toast.render()) for toast in app.screen.query(Toast)]
        assert any("[bold red]BOOM[/] [/]" in text for text in drawn), drawn
        assert not any(ACTIVE.search(text) for text in drawn)
        # The table, the detail pane of each job, and the screen as a whole.
        bodies = []
        for job in table.visible_jobs():
            table.select(job.local_id)
            await pilot.pause()
            line = table.render_line(table.cursor_row + 1).text
            bodies.append(str(app.query_one("#detail-body", Static).render()))
            assert not ACTIVE.search(line) and not ACTIVE.search(bodies[-1])
        assert any("[bold red]BOOM[/] [/]" in body for body in bodies)
        screen = app.export_screenshot().replace("&#160;", " ")
        assert "\x1b" not in screen and "\x07" not in screen
        assert "@cmd[blink]x[/]" in screen  # the status, as text
        status = str(app.query_one(StatusLine).render())
        assert not ACTIVE.search(status)


def test_server_text_is_inert_in_cli_output_and_exports(make_simulator, tmp_path):
    now = [1_700_000_000.0]  # moved by hand: the failing job is still running when attached
    sim = make_simulator(job_seconds=0.3, clock=lambda: now[0])
    ids = _seed_hostile(sim)
    db = tmp_path / "history.json"
    env = {"GPTPROTO_API_KEY": KEY}

    def run(*args: str):
        result = CliRunner().invoke(cli.main, [*args, "--base-url", sim.base_url, "--db", str(db)], env=env,
                                    catch_exceptions=False)
        assert "Traceback" not in result.output
        return result

    ending = [ids["ends failed"], ids["hostile output"]]
    attached = run("attach", *ending)
    assert attached.exit_code == 0, attached.stderr
    now[0] += 10
    watched = run("watch")  # prints the failure with its error
    assert ids["ends failed"] in watched.stdout
    odd = run("attach", ids["odd status"])  # never ends: attached after watching
    outputs = [attached.output, watched.output, odd.output]
    for ident in ids.values():
        outputs += [run("show", ident).output, run("show", ident, "--json").output]
    outputs += [run("list").output, run("list", "--json").output]
    csv_text = run("export", "--format", "csv").output
    json_text = run("export", "--format", "json").output
    for text in outputs + [csv_text, json_text]:
        assert not ACTIVE.search(text), text
    assert any("[bold red]BOOM[/]" in text for text in outputs)
    # JSON keeps the server's text exactly (escaped), so nothing is lost.
    exported = {j["id"]: j for j in json.loads(json_text)}
    assert exported[ids["ends failed"]]["error"] == HOSTILE_ERROR
    # No CSV cell can run as a formula.
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(rows) == 3
    for row in rows:
        for value in row.values():
            assert not value.lstrip().startswith(("=", "+", "-", "@")), value
    by_id = {r["id"]: r for r in rows}
    assert by_id[ids["ends failed"]]["error"].startswith("'=HYPERLINK")
    assert by_id[ids["odd status"]]["status"].startswith("'@cmd")
    assert by_id[ids["hostile output"]]["outputs"].startswith("'-http://cdn.example/v.mp4")


async def test_a_widgets_toast_is_plain_text_too(tmp_path, make_simulator):
    # Widget.notify() passes markup=True by default: a template named "[/]" must not crash the app.
    from textual.widgets._toast import Toast

    from tui.ui.app import HailuoApp

    app = HailuoApp(app_settings(tmp_path, make_simulator(), KEY))
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        app.query_one(JobTable).notify("template '[/]' [bold]deleted\x1b[2J")
        await until(lambda: len(app.screen.query(Toast)) > 0, pilot=pilot)
        drawn = [str(toast.render()) for toast in app.screen.query(Toast)]
        assert any("template '[/]' [bold]deleted" in text for text in drawn), drawn


# -- bad input: settings (config file, environment, flags) ------------------------------------------
# Each is refused when the settings are made: one line naming the setting, its value and what
# is allowed; exit 2; nothing POSTed, nothing recorded (a port no socket can have once left an
# "unknown, may be billed" job behind).

SIM_URL = "{sim}"
SETTINGS_CASES = [
    # (case id, config file text, environment, extra flags, what the one line must say)
    ("--base-url port 99999", "", {}, ["--base-url", "http://127.0.0.1:99999"],
     "base URL from --base-url 'http://127.0.0.1:99999': port 99999 is out of range (1-65535)"),
    ("--base-url with a newline", "", {}, ["--base-url", "{sim}\n"],
     "contains a space, line break or control character (U+000A"),
    ("--base-url with credentials", "", {}, ["--base-url", "http://user:pw@127.0.0.1:9"],
     "must not contain a user name or password"),
    ("--base-url port 0", "", {}, ["--base-url", "http://127.0.0.1:0"], "port 0 is out of range (1-65535)"),
    ("--base-url without a host", "", {}, ["--base-url", "http://:8000"], "has no host"),
    ("$GPTPROTO_BASE_URL port 99999", "", {"GPTPROTO_BASE_URL": "http://127.0.0.1:99999"}, [],
     "base URL from $GPTPROTO_BASE_URL 'http://127.0.0.1:99999': port 99999 is out of range"),
    ("config base_url with a tab", 'base_url = "http://127.0.0.1:8000\\t"\n', {}, [],
     "base_url in config file {cfg} 'http://127.0.0.1:8000\\t' contains a space, line break or control"),
    ("poll_concurrency = 0", "poll_concurrency = 0\n", {}, [],
     "poll_concurrency = 0 (from config file {cfg}) is out of range: it must be a whole number at least 1 "
     "and at most 64"),
    ("poll_concurrency negative", "poll_concurrency = -4\n", {}, [], "poll_concurrency = -4 (from config file"),
    ("read_timeout = 0", "read_timeout = 0\n", {}, [],
     "read_timeout = 0 (from config file {cfg}) is out of range: it must be a number greater than 0 and at "
     "most 3600 seconds"),
    ("read_timeout = nan", "read_timeout = nan\n", {}, [], "read_timeout = nan (from config file"),
    ("connect_timeout = -1", "connect_timeout = -1\n", {}, [],
     "connect_timeout = -1 (from config file {cfg}) is out of range: it must be a number greater than 0"),
    ("poll_rate = inf", "poll_rate = inf\n", {}, [], "poll_rate = inf (from config file"),
    ("submit_rate negative", "submit_rate = -1\n", {}, [],
     "submit_rate = -1 (from config file {cfg}) is out of range: it must be a number at least 0 and at most 100 "
     "submits a second (0: no cap)"),
    ("submit_rate = 1e999", "submit_rate = 1e999\n", {}, [], "submit_rate = inf (from config file"),
    ("max interval below base interval", "poll_base_interval = 30\npoll_max_interval = 5\n", {}, [],
     "poll_max_interval = 5 is below poll_base_interval = 30"),
    ("[keymap] app.quit = 5", '[keymap]\n"app.quit" = 5\n', {}, [],
     "config file {cfg}: keymap 'app.quit' = 5: a binding must be a key as text"),
    ("[keymap] a table as a key", '[keymap.app]\nquit = "q"\n', {}, [],
     "keymap 'app' = a table: a binding must be a key as text"),
    ("[keymap] a key with a space", '[keymap]\n"app.quit" = "ctrl q"\n', {}, [],
     "keymap 'app.quit' = 'ctrl q': 'ctrl q' is not a key name"),
]
SETTINGS_IDS = [case[0] for case in SETTINGS_CASES]


@pytest.mark.parametrize("case", SETTINGS_CASES, ids=SETTINGS_IDS)
@pytest.mark.parametrize("command", ["submit", "dashboard"])
def test_a_bad_setting_is_one_line_exit_2_before_anything_is_sent(case, command, tmp_path, make_simulator,
                                                                  monkeypatch):
    _, config_text, env, flags, expected = case
    sim = make_simulator(job_seconds=0.2)
    cfg = tmp_path / "config.toml"
    if config_text:
        cfg.write_text(config_text)
    db = tmp_path / "history.json"
    fill = lambda text: text.replace("{sim}", sim.base_url).replace("{cfg}", str(cfg))  # noqa: E731
    flags = [fill(flag) for flag in flags] or (
        [] if "GPTPROTO_BASE_URL" in env or "base_url" in config_text else ["--base-url", sim.base_url])
    started: list = []
    import tui.ui.app

    monkeypatch.setattr(tui.ui.app, "run_app", lambda settings, demo=False: started.append(settings) or 0)
    if command == "submit":
        args = ["submit", "--prompt", "a fox in the snow", *flags, "--db", str(db), "--json"]
    else:
        args = [*flags, "--db", str(db)]
    result = CliRunner().invoke(cli.main, args, env={"GPTPROTO_API_KEY": KEY, **env}, catch_exceptions=False)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert fill(expected) in result.stderr, result.stderr
    assert KEY not in result.stderr
    assert sim.requests == [] and not db.exists() and started == []  # nothing sent, recorded or started


@pytest.mark.parametrize("kind", ["a FIFO", "/dev/zero"])
def test_a_config_file_that_is_not_a_regular_file_is_refused_without_opening_it(kind, tmp_path, make_simulator):
    sim = make_simulator(job_seconds=0.2)
    cfg = tmp_path / "config.toml"  # where the suite's environment points HAILUO_TUI_CONFIG
    os.mkfifo(cfg) if kind == "a FIFO" else os.symlink("/dev/zero", cfg)
    db = tmp_path / "history.json"
    result = CliRunner().invoke(cli.main, ["submit", "--prompt", "a fox", "--base-url", sim.base_url, "--db", str(db)],
                                env={"GPTPROTO_API_KEY": KEY}, catch_exceptions=False)
    assert result.exit_code == 2 and result.stderr == f"error: config file {cfg} is not a regular file\n"
    assert sim.requests == [] and not db.exists()


def test_good_settings_pass_the_same_checks(tmp_path, make_simulator):
    """The checks refuse only what is wrong: in-range values and a keymap of key names start."""
    from tui.core.config import load_settings

    (tmp_path / "config.toml").write_text(
        'poll_concurrency = 1\nread_timeout = 0.5\nconnect_timeout = 600\npoll_rate = 1000\nsubmit_rate = 0\n'
        '[keymap]\n"app.quit" = "ctrl+q,f10"\n"job_table.filter" = "?"\n')
    settings = load_settings(base_url="http://[::1]:65535/", env={"HAILUO_TUI_CONFIG": str(tmp_path / "config.toml")})
    assert settings.base_url == "http://[::1]:65535" and settings.poll_concurrency == 1
    assert settings.keymap == {"app.quit": "ctrl+q,f10", "job_table.filter": "?"}


# -- bad input: batch files, and text that is not valid UTF-8 ------------------------------------------


def _batch_cli(sim, db: Path, *args: str, stdin: bytes | None = None):
    return CliRunner().invoke(cli.main, [*args, "--base-url", sim.base_url, "--db", str(db)], input=stdin,
                              env={"GPTPROTO_API_KEY": KEY}, catch_exceptions=False)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


BATCH_FILE_CASES = [
    # (case id, how to make rows.jsonl, what the one line says)
    ("batch file that is a FIFO", lambda p: os.mkfifo(p), "rows.jsonl is a named pipe (FIFO); a batch file must be"),
    ("batch file that is /dev/zero", lambda p: os.symlink("/dev/zero", p), "rows.jsonl is a device; a batch file"),
    ("batch file of 51 MB", lambda p: open(p, "wb").truncate(51 * 1024 * 1024), "rows.jsonl is larger than 50 MB"),
]


@pytest.mark.parametrize("case", BATCH_FILE_CASES, ids=[c[0] for c in BATCH_FILE_CASES])
def test_a_batch_file_that_is_not_a_regular_file_is_refused_without_reading_it(case, tmp_path, make_simulator):
    _, make, expected = case
    sim = make_simulator(job_seconds=0.2)
    rows = tmp_path / "rows.jsonl"
    make(rows)
    db = tmp_path / "history.json"
    result = _batch_cli(sim, db, "batch", str(rows))
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert sim.requests == [] and not db.exists()


@pytest.mark.parametrize("row", [
    '{"prompt": "a fox", "model": %s}' % _deep(100_000),
    _deep(100_000),
    '{"prompt": %s}' % ("{\"a\": " * 50_000 + "1" + "}" * 50_000),
], ids=["a field nested 100,000 deep", "a row that is 100,000 nested arrays", "objects nested 50,000 deep"])
def test_a_batch_row_nested_100000_deep_is_named_and_nothing_is_sent(row, tmp_path, make_simulator):
    sim = make_simulator(job_seconds=0.2)
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "a calm lake [at dawn] {still}"}\n' + row + "\n")
    db = tmp_path / "history.json"
    result = _batch_cli(sim, db, "batch", str(rows))
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("error: row 2 (line 2): nested more than 10,000 levels deep") for line in lines), lines
    assert "RecursionError" not in result.stderr and "Traceback" not in result.stderr
    assert sim.requests == [] and not db.exists()  # the good row 1 is not sent either: nothing is


REPAIR_CASES = [
    # (case id, rows.jsonl bytes, the prompt that must be sent)
    ("a lone surrogate escaped in a batch row", b'{"prompt": "a fox \\ud800 in the snow"}\n', "a fox \ufffd in the snow"),
    ("invalid UTF-8 in a batch row", b'{"prompt": "a fox \xff\xfe in the snow"}\n', "a fox \ufffd\ufffd in the snow"),
    ("a CESU surrogate in a CSV row", b'prompt\n"a fox \xed\xa0\x80 in the snow"\n', "a fox \ufffd\ufffd\ufffd in the snow"),
]


@pytest.mark.parametrize("case", REPAIR_CASES, ids=[c[0] for c in REPAIR_CASES])
def test_text_that_is_not_valid_in_a_batch_row_is_repaired_said_and_sent_as_repaired(case, tmp_path, make_simulator):
    _, data, sent = case
    sim = make_simulator(job_seconds=0.2)
    rows = tmp_path / ("rows.csv" if data.startswith(b"prompt") else "rows.jsonl")
    rows.write_bytes(data)
    db = tmp_path / "history.json"
    result = _batch_cli(sim, db, "batch", str(rows))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: row 1 (line 2):" if rows.suffix == ".csv"
                                                         else "warning: row 1 (line 1):"), result.stderr
    assert "replaced by U+FFFD" in warnings[0]
    bodies = [json.loads(r.body) for r in sim.requests if r.method == "POST"]
    assert [b["prompt"] for b in bodies] == [sent]  # exactly the repaired text, once
    store = HistoryStore.open(db, read_only=True)
    try:
        assert [j.prompt for j in store.all()] == [sent]
    finally:
        store.close()


def test_a_genuine_replacement_character_is_not_taken_for_a_repair(tmp_path, make_simulator):
    sim = make_simulator(job_seconds=0.2)
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "a sign that reads \ufffd"}\n', encoding="utf-8")
    result = _batch_cli(sim, tmp_path / "history.json", "batch", str(rows))
    assert result.exit_code == 0 and "warning" not in result.stderr, result.stderr


@pytest.mark.parametrize("stdin, sent", [
    (b"a fox \xff in the snow\n", "a fox \ufffd in the snow"),
    (b"a fox \xed\xa0\x80 in the snow\n", "a fox \ufffd\ufffd\ufffd in the snow"),
    (b"a fox \xe2\x82 in the snow", "a fox \ufffd in the snow"),
], ids=["invalid byte", "CESU-encoded lone surrogate", "truncated sequence"])
def test_a_prompt_piped_with_invalid_utf8_is_repaired_said_and_sent_exactly_as_shown(stdin, sent, tmp_path,
                                                                                   make_simulator):
    sim = make_simulator(job_seconds=0.2)
    db = tmp_path / "history.json"
    result = _batch_cli(sim, db, "submit", "--prompt", "-", "--json", stdin=stdin)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: --prompt: "), result.stderr
    assert warnings[0].endswith(f"the prompt sent is: {sent}")
    assert [json.loads(r.body)["prompt"] for r in sim.requests if r.method == "POST"] == [sent]
    assert json.loads(result.stdout)["request"]["prompt"] == sent


def test_a_lone_surrogate_in_the_prompt_argument_is_repaired_too(tmp_path, make_simulator):
    sim = make_simulator(job_seconds=0.2)
    result = _batch_cli(sim, tmp_path / "history.json", "submit", "--prompt", "a fox \udcff here", "--json")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(r.body)["prompt"] for r in sim.requests if r.method == "POST"] == ["a fox \ufffd here"]


# -- the "Bad input" table of docs/FAULTS.md is these cases -----------------------------------------

NESTING_IDS = ["a field nested 100,000 deep", "a row that is 100,000 nested arrays", "objects nested 50,000 deep"]
PIPED_IDS = ["invalid byte", "CESU-encoded lone surrogate", "truncated sequence"]


def bad_input_case_ids() -> list[str]:
    first = FORM_IDS.index("PNG that decodes to 30000x30000 (bomb)")
    return (FORM_IDS[first:] + SETTINGS_IDS + [c[0] for c in BATCH_FILE_CASES] + NESTING_IDS
            + [c[0] for c in REPAIR_CASES] + [f"piped prompt: {i}" for i in PIPED_IDS]
            + ["a lone surrogate in the prompt argument", "config file that is a FIFO or /dev/zero"])


def test_the_bad_input_table_is_these_cases():
    text = (Path(__file__).resolve().parent.parent / "docs" / "FAULTS.md").read_text(encoding="utf-8")
    section = text.split("\n## Bad input\n", 1)[1].split("\n## ", 1)[0]
    documented = {line.split(" | ")[0][2:] for line in section.splitlines() if line.startswith("| ")}
    missing = [case for case in bad_input_case_ids() if case not in documented]
    assert not missing, "docs/FAULTS.md's Bad input table lacks rows for: " + ", ".join(missing)


# -- bad input typed into the dashboard itself -----------------------------------------------------------


@pytest.mark.parametrize("image", ["{tmp}/pipe.png", "/dev/zero", "{tmp}/bomb.png"],
                         ids=["a FIFO", "/dev/zero", "a decompression bomb"])
async def test_the_dashboard_names_a_bad_image_at_its_field_and_sends_nothing(image, files, make_simulator):
    from tui.ui.app import HailuoApp

    sim = make_simulator(job_seconds=0.2)
    image = image.replace("{tmp}", str(files))
    app = HailuoApp(app_settings(files, sim, KEY))
    async with app.run_test(size=(160, 50)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        app.query_one("#scene", Select).value = "image-to-video"
        await pilot.pause()
        app.query_one("#prompt", TextArea).text = "a fox in the snow"
        app.query_one("#image", Input).value = image
        await pilot.press("ctrl+s")
        error = app.query_one("#image-error", Static)
        await until(lambda: error.has_class("-visible"), pilot=pilot, what="the image field's message")
        shown = str(error.render())
        assert ("not an image file" in shown) if "bomb" not in image else ("megapixels" in shown), shown
        assert app.query_one("#image", Input).value == image  # the form keeps what was typed
        assert app.query_one("#prompt", TextArea).text == "a fox in the snow"
        assert app.service.store.all() == []
    assert [r for r in sim.requests if r.method == "POST"] == []


async def test_the_dashboards_batch_dialog_refuses_a_fifo_and_says_what_it_repaired(tmp_path, make_simulator):
    from tui.ui.app import HailuoApp
    from tui.ui.screens.batch import BatchScreen

    sim = make_simulator(job_seconds=0.2)
    os.mkfifo(tmp_path / "rows.jsonl")
    repaired = tmp_path / "repaired.jsonl"
    repaired.write_bytes(b'{"prompt": "a fox \xff in the snow"}\n')
    app = HailuoApp(app_settings(tmp_path, sim, KEY))
    async with app.run_test(size=(160, 50)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        app.query_one(JobTable).focus()
        await pilot.press("b")
        await until(lambda: isinstance(app.screen, BatchScreen), pilot=pilot)
        screen = app.screen
        headline = screen.query_one("#batch-headline", Static)
        report = screen.query_one("#batch-report", Static)
        for path in (tmp_path / "rows.jsonl", repaired):
            screen.query_one("#batch-path", Input).value = str(path)
            screen.query_one("#batch-path", Input).focus()
            await pilot.press("enter")
            await until(lambda: "checking" not in str(headline.render()) and str(headline.render()), pilot=pilot,
                        what="the check of the file")
            if path.name == "rows.jsonl":
                assert "rows.jsonl is a named pipe (FIFO)" in str(headline.render())
        assert "1 to submit" in str(headline.render())  # the repaired row is usable
        assert "warning: row 1 (line 1): 1 character that is not valid text" in str(report.render())
    assert [r for r in sim.requests if r.method == "POST"] == []
