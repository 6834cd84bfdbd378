"""The fault matrix: every fault of the API, the network and the server, driven through the real
client, poller, job service and history store against the loopback simulator.

For each fault the test asserts what the user is told, the state the job ends in, that the job
is in the history file (with its server id whenever the server gave one), and that it was
submitted once: the POSTs the simulator received and the jobs it created are counted.

The same cases make the table of docs/FAULTS.md: `test_the_documented_matrix_is_this_one`
fails when the table and the cases drift apart, and prints the row expected.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from tui.cli import main as cli
from tui.core.catalog import VideoRequest
from tui.core.config import Settings
from tui.core.events import JobChanged, PollerState
from tui.core.jobs import JobService, SubmitFailed
from tui.core.records import EXPIRED, REJECTED, UNKNOWN
from tui.simulator import Simulator
from tui.core.store import HistoryStore

from helpers import app_settings, posts, submit_from_the_composer, toasts, until

KEY = "sk-faults-0123456789abcdef"
NEW_KEY = "sk-faults-rotated-000000000"
DOC = Path(__file__).resolve().parent.parent / "docs" / "FAULTS.md"
# Short timeouts and intervals: a whole case takes a fraction of a second to a few seconds.
FAST = dict(poll_base_interval=0.05, poll_max_interval=0.2, poll_rate=200.0, poll_concurrency=8,
            connect_timeout=0.5, read_timeout=0.5)


# -- places that never answer ----------------------------------------------------------------


def closed_port_url() -> str:
    """Nothing listens there: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


class Blackhole:
    """A listening socket whose accept queue is full: connections are never made (connect timeout)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(0)
        port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            self.fillers.append(filler)
        time.sleep(0.05)

    def close(self) -> None:
        for s in (*self.fillers, self.server):
            s.close()


# -- the cases --------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a case's hooks may use: the simulator, and places for the polling phase."""

    sim: Simulator
    blackhole: Blackhole
    prompt: str = "a heron over a misty lake"
    #: Another base URL: for the submit (submit faults) or for a while of polling (poll faults).
    url: str | None = None


@dataclass(frozen=True)
class Fault:
    name: str
    #: "submit": the fault hits the POST; "poll": the job is created first, then polls meet it.
    phase: str
    arm: Callable[[Ctx], None]
    #: A fragment of the message the user is shown (composer note / CLI error / detail pane / status line).
    sees: str
    #: The job's state once the fault has passed (or been fixed by the user).
    state: str
    #: What the user sees, as docs/FAULTS.md says it.
    doc: str
    posts: int = 1
    #: Jobs the simulator created (0 when the request never reached it or was refused).
    created: int = 1
    #: The CLI's exit code for `submit --wait` (submit faults) or `watch --exit-status` (poll faults).
    exit_code: int = 0
    #: Whether the job stays in the poller and completes once the fault has passed.
    recovers: bool = True
    #: Undo a fault the user must fix (e.g. a new key): returns settings changes for a restart.
    fix: Callable[[Ctx], dict] | None = None
    #: How long the simulator takes over a job: longer where the fault needs the job still running.
    job_seconds: float = 0.3
    #: The prompt to submit, when the fault lies in it (a word the simulator acts on).
    prompt: Callable[[Simulator], str] | None = None
    #: How to recognise that the fault was met during polling: "poll_error" (one was recorded),
    #: "rate_limited", "halted" (polling stopped), "finished", "status" (`sees` shown as the
    #: status), "outputs" (outputs shown while still pending).
    met: str = "poll_error"


def faults(**values) -> Callable[[Ctx], None]:
    def arm(ctx: Ctx) -> None:
        ctx.sim.faults.update(values)
    return arm


def elsewhere(pick: str | Callable[[Ctx], str]) -> Callable[[Ctx], None]:
    """Talk to another base URL: the submit (submit faults) or the polls for a while (poll faults)."""
    def arm(ctx: Ctx) -> None:
        ctx.url = pick(ctx) if callable(pick) else pick
    return arm


def nothing(ctx: Ctx) -> None:
    pass


def policy_prompt(sim: Simulator) -> str:
    return f"a {sim.faults.policy_word} scene"


def fail_later_prompt(sim: Simulator) -> str:
    return f"a {sim.faults.fail_later_word} crowd"


def rotate_key(ctx: Ctx) -> dict:
    return {"api_key": NEW_KEY}


def no_redirect(ctx: Ctx) -> dict:
    ctx.sim.faults.redirect_result_to = None
    return {}


UNKNOWN_DOC = "`outcome unknown (…)`: not re-sent; the job says to check the provider before submitting again"

CASES: list[Fault] = [
    # -- the submit (POST) ------------------------------------------------------------------
    Fault("connection refused", "submit", elsewhere(lambda ctx: closed_port_url()),
          "connection refused", REJECTED, "`not sent: network error: connection refused (nothing listens there)`",
          posts=0, created=0, exit_code=4),
    Fault("DNS failure", "submit", elsewhere("http://api.no-such-host.invalid"),
          "does not resolve", REJECTED, "`not sent: network error: the host name does not resolve (DNS)`",
          posts=0, created=0, exit_code=4),
    Fault("connect timeout", "submit", elsewhere(lambda ctx: ctx.blackhole.url),
          "connecting timed out", REJECTED, "`not sent: network error: connecting timed out` (tried 3 times)",
          posts=0, created=0, exit_code=4),
    Fault("read timeout", "submit", faults(stall=1, stall_seconds=1.2),
          "no answer in time", UNKNOWN, UNKNOWN_DOC + " (cause: `no answer in time`)", exit_code=5),
    Fault("slow body past the deadline", "submit", faults(slow_body=1, slow_body_seconds=2.5),
          "came too slowly", UNKNOWN, UNKNOWN_DOC + " (cause: `the answer came too slowly`)", exit_code=5),
    Fault("connection reset mid-body", "submit", faults(reset_mid_body=1),
          "connection was dropped", UNKNOWN, UNKNOWN_DOC + " (cause: `the connection was dropped`)", exit_code=5),
    Fault("dropped after the job was created", "submit", faults(drop_after_create=1),
          "connection was dropped", UNKNOWN, UNKNOWN_DOC + " (cause: `the connection was dropped`)", exit_code=5),
    Fault("502 on submit", "submit", faults(server_errors=1, server_error_status=502),
          "server error (502)", UNKNOWN, UNKNOWN_DOC + " (cause: `server error (502)`)",
          created=0, exit_code=5),
    Fault("malformed JSON on submit", "submit", faults(malformed=1),
          "malformed response", UNKNOWN, UNKNOWN_DOC + " (cause: `malformed response from the server`)",
          created=0, exit_code=5),
    Fault("HTTP 200 with an error envelope on submit", "submit", faults(error_envelope=1),
          "server error (500)", UNKNOWN, UNKNOWN_DOC + " (cause: `server error (500)`)", created=0, exit_code=5),
    Fault("429 on submit, Retry-After in seconds", "submit", faults(rate_limit=1, retry_after=0.3),
          "", "completed", "nothing: sent again after Retry-After, once (a 429 is never billed)", posts=2),
    Fault("envelope code 429 under HTTP 200 on submit", "submit",
          faults(error_envelope=1, error_envelope_code=429, retry_after=0.3),
          "", "completed", "nothing: treated as the 429 it says it is, sent again once", posts=2),
    Fault("401 after a key rotation (submit)", "submit", faults(revoked_key=KEY),
          "the API key was refused (401)", REJECTED,
          "`refused: the API key was refused (401): check GPTPROTO_API_KEY`", created=0, exit_code=3),
    Fault("403 insufficient balance", "submit", faults(insufficient_balance=1),
          "insufficient balance (403)", REJECTED, "`refused: insufficient balance (403): …top up your account`",
          created=0, exit_code=3),
    Fault("400 content policy", "submit", nothing,
          "rejected by the content policy (400)", REJECTED,
          "`refused: rejected by the content policy (400): …`", created=0, exit_code=2, prompt=policy_prompt),
    Fault("503 naming the content policy", "submit", faults(policy_as_503=True),
          "rejected by the content policy (503)", REJECTED,
          "`refused: rejected by the content policy (503): …` (not an outage: not unknown)", created=0, exit_code=2,
          prompt=policy_prompt),
    # -- polling (GET) --------------------------------------------------------------------------
    Fault("connection refused while polling", "poll", elsewhere(lambda ctx: closed_port_url()),
          "connection refused", "completed",
          "detail pane and `show`: `network error: connection refused…`; table: `⚠ unreachable`; "
          "polls back off and resume", exit_code=4),
    Fault("DNS failure while polling", "poll", elsewhere("http://api.no-such-host.invalid"),
          "does not resolve", "completed", "`network error: the host name does not resolve (DNS)`; `⚠ unreachable`",
          exit_code=4),
    Fault("connect timeout while polling", "poll", elsewhere(lambda ctx: ctx.blackhole.url),
          "connecting timed out", "completed", "`network error: connecting timed out`; `⚠ unreachable`",
          exit_code=4),
    Fault("read timeout while polling", "poll", faults(stall=1, stall_seconds=1.2),
          "no answer in time", "completed", "`network error: no answer in time`, then the next poll succeeds"),
    Fault("slow body within the deadline", "poll", faults(slow_body=1, slow_body_seconds=0.3),
          "", "completed", "nothing: the answer is read in full", met="finished"),
    Fault("slow body past the deadline while polling", "poll", faults(slow_body=1, slow_body_seconds=2.5),
          "came too slowly", "completed", "`network error: the answer came too slowly (over 1.5s)`"),
    Fault("connection reset mid-body while polling", "poll", faults(reset_mid_body=1),
          "connection was dropped", "completed", "`network error: the connection was dropped`"),
    *[Fault(f"{status} burst", "poll", faults(server_errors=2, server_error_status=status),
            f"server error ({status})", "completed",
            f"`server error ({status})` with the count of failed polls; `⚠ server error`")
      for status in (500, 502, 503, 504)],
    Fault("429 with Retry-After in seconds", "poll", faults(rate_limit=1, retry_after=0.5),
          "rate limited (429)", "completed", "status line: `rate-limited until HH:MM:SS`; every poll waits",
          met="rate_limited"),
    Fault("429 with Retry-After as an HTTP date", "poll", faults(rate_limit=1, retry_after=1.0,
                                                                  retry_after_as_date=True),
          "rate limited (429)", "completed", "status line: `rate-limited until HH:MM:SS`", met="rate_limited"),
    Fault("429 storm", "poll", faults(rate_limit=6, retry_after=0.2),
          "rate limited (429)", "completed",
          "status line: `rate-limited until …` while it lasts; the dashboard stays responsive", met="rate_limited"),
    Fault("malformed JSON", "poll", faults(malformed=1),
          "malformed response", "completed", "`malformed response from the server (…)`; table: `⚠ malformed`"),
    Fault("truncated JSON", "poll", faults(truncated=1),
          "malformed response", "completed", "`malformed response from the server (the response is not valid JSON)`"),
    Fault("wrong content type", "poll", faults(wrong_content_type=1),
          "expected JSON, got text/html", "completed", "`malformed response from the server (expected JSON, got text/html)`"),
    Fault("HTTP 200 with an error envelope", "poll", faults(error_envelope=1),
          "server error (500)", "completed", "`server error (500): internal error, please retry`"),
    Fault("envelope code 429 under HTTP 200", "poll", faults(error_envelope=1, error_envelope_code=429,
                                                              retry_after=0.3),
          "rate limited (429)", "completed", "status line: `rate-limited until …`", met="rate_limited"),
    Fault("401 after a key rotation", "poll", faults(revoked_key=KEY),
          "the API key was refused (401)", "completed",
          "status line: `the API key was refused (401): check GPTPROTO_API_KEY`; polling stops until restarted "
          "with the new key, then resumes", fix=rotate_key, exit_code=3, met="halted"),
    Fault("job failed later for policy", "poll", nothing,
          "content policy violation", "failed", "toast `… failed: content policy violation: …`; the error in the "
          "detail pane and `show`", exit_code=1, met="finished", prompt=fail_later_prompt),
    Fault("404 after the retention time", "poll", nothing,
          "no longer keeps this prediction", EXPIRED,
          "`the server no longer keeps this prediction (it is older than the retention time)`",
          exit_code=1, met="finished"),
    Fault("unknown status value", "poll", faults(odd_status="warming-up"),
          "warming-up", "completed", "the status as sent (`warming-up`); polling goes on", met="status",
          job_seconds=2.0),
    Fault("status named like a local state", "poll", faults(odd_status="unknown"),
          "unknown (server)", "completed", "`unknown (server)`, kept apart from the local `unknown`; polling goes on",
          met="status", job_seconds=2.0),
    Fault("outputs before the status says completed", "poll", faults(outputs_before_completed=True),
          "", "completed", "the URLs in the detail pane; the job stays pending until `completed`", met="outputs",
          job_seconds=2.0),
    Fault("redirect to the same host", "poll", faults(redirect_result_to="/api/v3/results/{id}"),
          "", "completed", "nothing: followed, with the key, on the same host", met="finished"),
    Fault("redirect to another host", "poll",
          lambda ctx: ctx.sim.faults.update({"redirect_result_to": ctx.sim.base_url.replace("127.0.0.1", "localhost")
                                             + "/api/v3/results/{id}"}),
          "redirected to another host", "completed",
          "`the server redirected to another host (localhost); the request was not followed`; the key never "
          "goes there", fix=no_redirect),
    # -- hostile answers: what a real server may send and this project's simulator would not ----
]
DEEP = '"deep": ' + "[" * 10_000 + "]" * 10_000


def restart(ctx: Ctx) -> dict:
    return {}


CASES += [
    Fault("a lone surrogate in the error text", "poll", faults(data_extra={"error": "bad \ud800 text"}),
          "bad \ufffd text", "failed",
          "`bad \ufffd text`: text that cannot be encoded is repaired (U+FFFD) as it is decoded; printed, "
          "shown and written like any other", exit_code=1, met="finished", prompt=fail_later_prompt),
    *[Fault(f"a server time of {label}", "poll", arm, "", "completed",
            "the server time shows as unknown (`—`, `-`); the job is followed as usual", met="finished")
      for label, arm in (("year 1", faults(data_extra={"created_at": "0001-01-01T00:00:00Z"})),
                         ("year 9999", faults(data_extra={"created_at": "9999-12-31T23:59:59Z"})),
                         ("NaN", faults(data_extra_json='"created_at": NaN')))],
    Fault("numbers of 1e999", "poll", faults(data_extra_json='"executionTime": 1e999, "timings": {"inference": -1e999}'),
          "", "completed", "read as unknown (`—`): NaN, Infinity and 1e999 are never a number shown", met="finished"),
    Fault("a field nested 10,000 deep on submit", "submit", faults(data_extra_json=DEEP),
          "", "completed", "nothing: the id, status and outputs are used, only the deep part is dropped"),
    Fault("a field nested 10,000 deep while polling", "poll", faults(data_extra_json=DEEP),
          "", "completed", "nothing: the answer is used, only the deep part is dropped", met="finished"),
    Fault("40,000 output URLs", "poll", faults(output_count=40_000),
          "", "completed", "the first 100 outputs; the detail pane and `show` say `39,900 more sent by the server "
          "were not kept`", met="finished"),
    Fault("Retry-After of three years", "poll", faults(rate_limit=1, retry_after_text="99999999"),
          "pause capped at 300s", "completed",
          "status line: `rate-limited until HH:MM:SS`, 5 minutes from now at most, `(pause capped at 300s)`",
          met="rate_limited", fix=restart),
    Fault("a server time far in the past, then one 404", "submit",
          faults(data_extra={"created_at": "1971-01-01 00:00:00"}, not_found=1),
          "not found (404)", "completed",
          "`not found (404)` as a poll error: retention counts from the later of the submit and the server time, "
          "so the job is not `expired`"),
    Fault("the id `..` from the server", "submit", faults(data_extra={"id": ".."}),
          "not a usable prediction id", UNKNOWN,
          UNKNOWN_DOC + " (cause: `data.id is not a usable prediction id`; `.` and `..` are refused like `/`)",
          exit_code=5),
]
CASE_IDS = [case.name for case in CASES]


# -- running a case through the job service ------------------------------------------------------


def settings_for(ctx: Ctx, db: Path, url: str | None = None, **changes) -> Settings:
    values = dict(api_key=KEY, base_url=url or ctx.sim.base_url, db_path=db, **FAST)
    values.update(changes)
    return Settings(**values)


class Seen:
    """Every message the service showed: job errors, poll errors, poller state."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.statuses: list[str] = []
        self.poll_errors = 0
        self.rate_limited = False
        self.halted = False
        self.outputs_while_pending = False

    def __call__(self, event) -> None:
        if isinstance(event, JobChanged):
            job = event.job
            self.statuses.append(job.status)
            self.texts += [t for t in (job.error, job.last_poll_error) if t]
            self.poll_errors = max(self.poll_errors, job.poll_errors)
            if job.outputs and job.is_pending:
                self.outputs_while_pending = True
        elif isinstance(event, PollerState):
            if event.rate_limited_until:
                self.rate_limited = True
            if event.last_error:
                self.texts.append(event.last_error)
                self.halted = self.halted or not event.running

    def met(self, case: Fault, job) -> bool:
        return {
            "poll_error": lambda: self.poll_errors > 0,
            "rate_limited": lambda: self.rate_limited,
            "halted": lambda: self.halted,
            "finished": lambda: job.is_finished,
            "status": lambda: case.sees in self.statuses,
            "outputs": lambda: self.outputs_while_pending,
        }[case.met]()


async def run_case(case: Fault, ctx: Ctx, db: Path, **settings_changes):
    """Submit one job under the fault, follow it through, and let it recover; return the job
    and everything the user was shown on the way."""
    seen = Seen()
    if case.prompt is not None:
        ctx.prompt = case.prompt(ctx.sim)
    if case.phase == "submit":
        case.arm(ctx)
    service = JobService.open(settings_for(ctx, db, ctx.url, **settings_changes))
    service.subscribe(seen)
    try:
        try:
            job = await service.submit(VideoRequest(prompt=ctx.prompt))
        except SubmitFailed as failed:
            job = failed.job
            seen.texts.append(failed.message)
        if case.phase == "poll":
            case.arm(ctx)
            if ctx.url is not None:
                # Poll from the unreachable place for a while: the job waits in the history.
                await service.close()
                service = JobService.open(settings_for(ctx, db, ctx.url, **settings_changes))
                service.subscribe(seen)
            await service.start()
            await until(lambda: seen.met(case, service.store.get(job.local_id)))
            if case.fix is not None or ctx.url is not None:
                # The user fixes it (a new key, the network back) and starts again.
                await service.close()
                changes = case.fix(ctx) if case.fix is not None else {}
                service = JobService.open(settings_for(ctx, db, **{**settings_changes, **changes}))
                service.subscribe(seen)
        await service.start()
        if service.store.get(job.local_id).is_pending:
            await asyncio.wait_for(service.wait([job.local_id]), 15)
        job = service.store.get(job.local_id)
    finally:
        await service.close()
    return job, seen


@pytest.fixture
def blackhole():
    hole = Blackhole()
    yield hole
    hole.close()


def assert_created(sim: Simulator, count: int) -> None:
    """The simulator created exactly `count` jobs. A stalled create goes on on the server side
    after the client gave up, so it is given the time to."""
    deadline = time.monotonic() + 3
    while sim.job_count() < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.job_count() == count


def is_expiry(case: Fault) -> bool:
    return case.name.startswith("404")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_fault(case: Fault, make_simulator, blackhole, tmp_path):
    if is_expiry(case):
        # A job still running when the server forgets it; the service knows the same retention.
        sim = make_simulator(job_seconds=30, retention_seconds=0.4)
        changes = {"retention_seconds": 0.4}
    else:
        sim = make_simulator(job_seconds=case.job_seconds)
        changes = {}
    ctx = Ctx(sim=sim, blackhole=blackhole)
    db = tmp_path / "history.json"
    job, seen = await run_case(case, ctx, db, **changes)

    # What the user is told: one line, never the key.
    if case.sees:
        assert any(case.sees in text for text in seen.texts + seen.statuses), (case.sees, seen.texts)
    assert all("\n" not in text and KEY not in text and NEW_KEY not in text for text in seen.texts)
    # The state it ends in.
    assert job.status == case.state, (job.status, job.error, seen.texts)
    # Nothing lost: the history file, read by a separate reader, has the job once, with its server id.
    with HistoryStore.open(db, read_only=True) as store:
        on_disk = store.all()
    assert [j.local_id for j in on_disk] == [job.local_id]
    assert on_disk[0].status == case.state and on_disk[0].server_id == job.server_id
    assert on_disk[0].request["prompt"] == ctx.prompt  # enough to clone and send again
    if job.server_id is not None:
        assert job.server_id in sim.job_ids()
    # Nothing double-submitted.
    assert len(posts(sim)) == case.posts
    assert_created(sim, case.created)
    # The key only ever went to the configured host.
    assert {r.host for r in sim.authorized()} <= {sim.base_url.removeprefix("http://")}
    if case.name == "redirect to the same host":
        assert any(r.path.startswith("/api/v3/results/") for r in sim.authorized())
    if case.name == "outputs before the status says completed":
        assert seen.outputs_while_pending and job.outputs
    # -- hostile answers: what each must leave behind -------------------------------------------
    if case.name.startswith("a server time of"):
        # The unshowable time is not taken in: the one the submit's answer gave stays.
        assert job.created_at is not None and abs(job.created_at - job.submitted_at) < 3600
        assert job.to_public()["created_at"].startswith(time.strftime("%Y-", time.gmtime(job.submitted_at)))
    if case.name == "numbers of 1e999":
        assert job.execution_time_ms is None and job.inference_time_ms is None
    if case.name == "40,000 output URLs":
        assert len(job.outputs) == 100 and job.outputs_omitted == 39_900
        assert len(on_disk[0].outputs) == 100 and on_disk[0].outputs_omitted == 39_900
        written = sum(f.stat().st_size for f in db.parent.iterdir() if f.name.startswith(db.name))
        assert written < 200_000, written  # not a line of megabytes
    if case.name == "a lone surrogate in the error text":
        assert on_disk[0].error == "bad \ufffd text"
    if case.name == "a server time far in the past, then one 404":
        assert job.created_at is not None and job.created_at < job.submitted_at - 86400 * 365


# -- the same faults through the command line ------------------------------------------------------


def write_fast_config(tmp_path: Path, **more) -> None:
    lines = [f"{name} = {value}" for name, value in {**FAST, **more}.items()]
    (tmp_path / "config.toml").write_text("\n".join(lines) + "\n")


def invoke(*args: str, key: str = KEY):
    return CliRunner().invoke(cli.main, list(args), env={"GPTPROTO_API_KEY": key}, catch_exceptions=False)


SUBMIT_CASES = [case for case in CASES if case.phase == "submit"]


@pytest.mark.parametrize("case", SUBMIT_CASES, ids=[c.name for c in SUBMIT_CASES])
def test_fault_on_submit_through_the_cli(case: Fault, make_simulator, blackhole, tmp_path):
    sim = make_simulator(job_seconds=0.3)
    ctx = Ctx(sim=sim, blackhole=blackhole)
    if case.prompt is not None:
        ctx.prompt = case.prompt(sim)
    case.arm(ctx)
    write_fast_config(tmp_path)
    db = tmp_path / "history.json"
    result = invoke("submit", "--prompt", ctx.prompt, "--wait", "--base-url", ctx.url or sim.base_url,
                    "--db", str(db))
    assert result.exit_code == case.exit_code, result.stderr
    if case.exit_code:
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert case.sees in result.stderr
    assert KEY not in result.output
    with HistoryStore.open(db, read_only=True) as store:
        (job,) = store.all()
    assert job.status == case.state
    if case.state == UNKNOWN:
        assert job.local_id in result.stderr  # the record to look at is named
    assert_created(sim, case.created)


WATCHED = ["401 after a key rotation", "job failed later for policy", "404 after the retention time",
           "connection refused while polling", "connection reset mid-body while polling", "malformed JSON",
           "a lone surrogate in the error text", "a server time of year 1", "40,000 output URLs"]


@pytest.mark.parametrize("name", WATCHED)
def test_fault_while_watching_through_the_cli(name, make_simulator, blackhole, tmp_path):
    case = next(c for c in CASES if c.name == name)
    if is_expiry(case):
        sim = make_simulator(job_seconds=30, retention_seconds=0.4)
        write_fast_config(tmp_path, retention_seconds=0.4)
    else:
        sim = make_simulator(job_seconds=0.5)
        write_fast_config(tmp_path)
    ctx = Ctx(sim=sim, blackhole=blackhole)
    db = tmp_path / "history.json"
    if case.prompt is not None:
        ctx.prompt = case.prompt(sim)
    submitted = invoke("submit", "--prompt", ctx.prompt, "--base-url", sim.base_url, "--db", str(db))
    assert submitted.exit_code == 0, submitted.stderr
    server_id = submitted.stdout.strip()
    case.arm(ctx)
    result = invoke("watch", "--exit-status", "--base-url", ctx.url or sim.base_url, "--db", str(db))
    assert result.exit_code == case.exit_code, result.stderr
    if case.exit_code in (3, 4):
        last = result.stderr.splitlines()[-1]
        assert last.startswith(f"error: {server_id}: ") and case.sees in last
    elif case.exit_code == 1:
        assert f"{server_id}  {case.state}  " in result.stdout and case.sees in result.stdout
    else:
        assert f"{server_id}  completed" in result.stdout
    assert "Traceback" not in result.output and KEY not in result.output
    with HistoryStore.open(db, read_only=True) as store:
        (job,) = store.all()
    assert job.server_id == server_id
    assert len(posts(sim)) == 1


# -- the documented matrix ----------------------------------------------------------------------------


def markdown_row(case: Fault) -> str:
    where = "submit (POST)" if case.phase == "submit" else "polling (GET)"
    return f"| {case.name} | {where} | {case.doc} | `{case.state}` | {case.exit_code} | never / never |"


def test_the_documented_matrix_is_this_one():
    text = DOC.read_text(encoding="utf-8")
    missing = [markdown_row(case) for case in CASES if markdown_row(case) not in text]
    assert not missing, "docs/FAULTS.md lacks these rows:\n" + "\n".join(missing)


# -- the dashboard through faults ------------------------------------------------------------------






async def test_the_dashboard_answers_keys_through_a_429_storm_and_slow_answers(tmp_path, make_simulator):
    from textual.widgets import Input

    from tui.ui.app import HailuoApp
    from tui.ui.widgets.status_line import StatusLine

    sim = make_simulator(job_seconds=4)
    app = HailuoApp(app_settings(tmp_path, sim, KEY, **FAST))
    async with app.run_test(size=(160, 45)) as pilot:
        table, job = await submit_from_the_composer(app, pilot, "a slow storm")
        status = app.query_one(StatusLine)
        # Every answer takes 0.4 s and is a 429 asking for a 1 s pause.
        sim.faults.update({"latency": 0.4, "rate_limit_rate": 1.0, "retry_after": 1.0})
        await until(lambda: "rate-limited until" in str(status.render()), pilot=pilot)
        # Keys are handled while the poller waits out the storm and requests hang.
        await pilot.press("slash", *"slow")
        assert app.query_one("#filter", Input).value == "slow" and table.visible_count == 1
        await pilot.press("escape", "escape", "2")
        assert table.status_filter == "pending"
        # The storm goes on meanwhile: waiting out a pause, or asking again and told off.
        assert any(text in str(status.render()) for text in ("rate-limited until", "rate limited (429)"))
        await pilot.press("p")
        assert table.frozen and "paused" in str(status.render())
        await pilot.press("p")
        assert not table.frozen
        sim.faults.update({"latency": 0.0, "rate_limit_rate": 0.0})
        await until(lambda: job.is_finished, timeout=20, pilot=pilot)
        assert job.status == "completed"
    assert len(posts(sim)) == 1


async def test_the_dashboard_shows_malformed_answers_as_such_then_recovers(tmp_path, make_simulator):
    from textual.widgets import Static

    from tui.ui.app import HailuoApp

    # The simulator's clock moves only when told: the job cannot end before the faults begin.
    now = [time.time()]
    sim = make_simulator(job_seconds=2, clock=lambda: now[0])
    app = HailuoApp(app_settings(tmp_path, sim, KEY, **FAST))
    async with app.run_test(size=(160, 45)) as pilot:
        table, job = await submit_from_the_composer(app, pilot, "a garbled answer")
        sim.faults.malformed_rate = 1.0

        def row_text() -> str:
            return table.render_line(table.cursor_row + 1).text

        await until(lambda: "⚠ malformed" in row_text(), pilot=pilot)
        detail = app.query_one("#detail-body", Static)
        await until(lambda: "malformed response from the server" in str(detail.render()), pilot=pilot)
        assert job.is_pending  # a bad answer says nothing about the job: it is asked again
        sim.faults.malformed_rate = 0.0
        now[0] += 5
        await until(lambda: job.status == "completed", pilot=pilot)
        await until(lambda: "⚠" not in row_text() and "completed" in row_text(), pilot=pilot)


# == hostile answers that need more than one job, another entry point, or the screen ==============
#
# Each test below is a row of the "Hostile answers" table of docs/FAULTS.md (HOSTILE_ROWS; the
# drift check is test_the_hostile_answers_table_is_this_one).

import json as _json
import os as _os
import subprocess as _subprocess
import sys as _sys

HOSTILE_ROWS = {
    "test_submit_wait_json_in_a_real_process_prints_a_lone_surrogate_repaired":
        "| a lone surrogate in `error` under `submit --wait --json` | the JSON prints `bad \ufffd text`; no traceback | 1 |",
    "test_two_submits_answered_with_the_same_id_make_a_conflict_and_every_wait_ends":
        "| two submits answered with the same id | the second job is `conflict`, its error names the other job; "
        "`watch` ends | 5 |",
    "test_a_history_with_two_pending_jobs_sharing_an_id_is_watched_to_the_end":
        "| two pending jobs sharing an id in an older history | the one not followed becomes `conflict`; "
        "`watch --exit-status` ends | 1 |",
    "test_a_401_on_another_job_ends_submit_wait_with_exit_3":
        "| a 401 on another job during `submit --wait` | `error: polling stopped: the API key was refused (401)…` | 3 |",
    "test_a_429_for_ever_ends_submit_wait_with_exit_4":
        "| a 429 for ever during `submit --wait` | `error: rate limited (429) 3 times in a row: giving up…` | 4 |",
    "test_a_three_year_retry_after_is_a_five_minute_pause_shown_with_its_end":
        "| `Retry-After: 99999999` in the dashboard | status line: `rate-limited until HH:MM:SS (the server asked "
        "for longer; capped at 5 min)` | 0 |",
    "test_a_base_url_with_credentials_is_refused_in_one_line":
        "| a base URL with credentials (`http://user:pw@host`) | `error: the base URL must not contain a user name "
        "or password…`; nothing sent | 2 |",
    "test_ids_of_dots_are_refused_by_attach":
        "| `attach .` or `attach ..` | `error: '..' is only dots: a path built from it would change meaning` | 2 |",
    "test_a_javascript_output_url_is_refused_and_the_other_outputs_are_saved":
        "| a `javascript:` output URL | `output 1: the output URL 'javascript:…' is not an http(s) address`; "
        "the other outputs saved; no `.part` | 4 |",
    "test_retry_after_soon_on_the_output_host_is_a_clear_reason_and_no_empty_part":
        "| `Retry-After: soon` on the output host | `the transfer stopped (the host answered 503)…`; no `.part` "
        "left; `d` in the dashboard says so | 4 |",
    "test_unshowable_times_in_the_history_show_as_unknown_on_screen_and_in_the_cli":
        "| a time the platform cannot show (year 1, year 9999, NaN) in the history | `—` in the detail pane, `-` "
        "in `show`; highlighting the job never crashes | 0 |",
    "test_a_conflict_shows_in_the_dashboard_naming_the_other_job":
        "| two submits answered with the same id, in the dashboard | the second row is `conflict`; the detail "
        "pane names the other job and the id | 5 |",
    "test_40000_outputs_are_capped_on_screen_saying_how_many_were_left_out":
        "| 40,000 output URLs in the dashboard | 100 outputs; `100 shown; 39,900 more sent by the server were "
        "not kept` | 0 |",
}


def cli_process(*args: str, key: str = KEY, timeout: float = 120) -> _subprocess.CompletedProcess:
    """The real entry point in its own process: stdout is a pipe with its real encoding."""
    env = {**_os.environ, "GPTPROTO_API_KEY": key}
    return _subprocess.run([_sys.executable, "-c", "from tui.cli.main import main; main()", *args],
                           capture_output=True, text=True, env=env, timeout=timeout)


def test_submit_wait_json_in_a_real_process_prints_a_lone_surrogate_repaired(make_simulator, tmp_path):
    sim = make_simulator(job_seconds=0.3)
    sim.faults.update({"data_extra": {"error": "bad \ud800 text"}})
    write_fast_config(tmp_path)
    result = cli_process("submit", "--prompt", fail_later_prompt(sim), "--wait", "--json",
                         "--base-url", sim.base_url, "--db", str(tmp_path / "history.json"))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert _json.loads(result.stdout)["error"] == "bad \ufffd text"
    with HistoryStore.open(tmp_path / "history.json", read_only=True) as store:
        (job,) = store.all()
    assert job.error == "bad \ufffd text" and job.status == "failed"


def test_two_submits_answered_with_the_same_id_make_a_conflict_and_every_wait_ends(make_simulator, tmp_path):
    sim = make_simulator(job_seconds=1.0)
    write_fast_config(tmp_path)
    db = str(tmp_path / "history.json")
    first = invoke("submit", "--prompt", "the first", "--base-url", sim.base_url, "--db", db)
    assert first.exit_code == 0, first.stderr
    server_id = first.stdout.strip()
    sim.faults.duplicate_id = 1
    second = invoke("submit", "--prompt", "the second", "--wait", "--base-url", sim.base_url, "--db", db)
    assert second.exit_code == 5, second.stderr
    with HistoryStore.open(tmp_path / "history.json", read_only=True) as store:
        jobs = {j.prompt: j for j in store.all()}
    a, b = jobs["the first"], jobs["the second"]
    assert second.stderr.count("\n") == 1 and server_id in second.stderr and a.local_id in second.stderr
    assert a.server_id == server_id and b.server_id is None and b.status == "conflict"
    assert server_id in b.error and a.local_id in b.error
    assert sim.job_count() == 2 and len(posts(sim)) == 2  # the server made two; nothing was re-sent
    shown = invoke("show", b.local_id, "--db", db)
    assert "status:         conflict" in shown.stdout and a.local_id in shown.stdout
    watched = invoke("watch", "--exit-status", "--base-url", sim.base_url, "--db", db)
    assert watched.exit_code == 0 and f"{server_id}  completed" in watched.stdout


def test_a_history_with_two_pending_jobs_sharing_an_id_is_watched_to_the_end(make_simulator, tmp_path):
    from tui.core.records import Job

    sim = make_simulator(job_seconds=0.5)
    server_id = sim.seed_job(status="processing")
    db = tmp_path / "history.json"
    with HistoryStore.open(db) as store:
        for prompt, at in (("older", 1.0), ("newer", 2.0)):
            store.put(Job(local_id=f"local{prompt}", request={"model": "hailuo-2.3-fast", "prompt": prompt},
                          submitted_at=time.time() - at, status="processing", server_id=server_id))
        store.flush()
    write_fast_config(tmp_path)
    result = invoke("watch", "--exit-status", "--base-url", sim.base_url, "--db", str(db))
    assert result.exit_code == 1, result.stderr  # it ends; one of the two could not be followed
    assert "done: 1 completed, 1 failed or expired" in result.stderr
    with HistoryStore.open(db, read_only=True) as store:
        statuses = sorted(j.status for j in store.all())
    assert statuses == ["completed", "conflict"]


def test_a_401_on_another_job_ends_submit_wait_with_exit_3(make_simulator, tmp_path):
    sim = make_simulator(job_seconds=120)
    write_fast_config(tmp_path)
    db = str(tmp_path / "history.json")
    other = invoke("submit", "--prompt", "another job", "--base-url", sim.base_url, "--db", db).stdout.strip()
    sim.faults.update({"canned": 10_000, "canned_for": other, "canned_status": 401,
                       "canned_body": '{"error": {"message": "Invalid API key provided", "type": "invalid_api_key"}}'})
    result = invoke("submit", "--prompt", "this job", "--wait", "--base-url", sim.base_url, "--db", db)
    assert result.exit_code == 3, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: ") and "polling stopped" in last and "(401)" in last


def test_a_429_for_ever_ends_submit_wait_with_exit_4(make_simulator, tmp_path):
    sim = make_simulator(job_seconds=0.5)
    # Every result query is a 429 asking for a short pause; the submit itself goes through.
    sim.faults.update({"get_error_rate": 1.0, "get_error_status": 429, "headers": {"Retry-After": "0.1"}})
    write_fast_config(tmp_path)
    result = invoke("submit", "--prompt", "a patient heron", "--wait", "--base-url", sim.base_url,
                    "--db", str(tmp_path / "history.json"))
    assert result.exit_code == 4, result.stderr
    assert "rate limited (429) 3 times in a row" in result.stderr.splitlines()[-1]
    assert len(posts(sim)) == 1


async def test_a_three_year_retry_after_is_a_five_minute_pause_shown_with_its_end(tmp_path, make_simulator):
    from datetime import datetime

    from tui.ui.app import HailuoApp
    from tui.ui.widgets.status_line import StatusLine

    sim = make_simulator(job_seconds=30)
    app = HailuoApp(app_settings(tmp_path, sim, KEY, **FAST))
    async with app.run_test(size=(160, 45)) as pilot:
        await submit_from_the_composer(app, pilot, "a long wait")
        sim.faults.update({"rate_limit": 1, "retry_after_text": "99999999"})
        status = app.query_one(StatusLine)
        await until(lambda: "rate-limited until" in str(status.render()), pilot=pilot)
        before = time.time()
        until_wall = app.service.poller.state.rate_limited_until_wall
        assert before - 5 < until_wall <= before + 300
        shown = datetime.fromtimestamp(until_wall).strftime("%H:%M:%S")
        assert f"rate-limited until {shown}" in str(status.render()) and "capped at 5 min" in str(status.render())


def test_a_base_url_with_credentials_is_refused_in_one_line(make_simulator, tmp_path):
    sim = make_simulator()
    host = sim.base_url.removeprefix("http://")
    for args in (("submit", "--prompt", "x", "--base-url", f"http://user:s3cret@{host}"),
                 ("--base-url", f"http://user:s3cret@{host}", "watch")):
        result = invoke(*args, "--db", str(tmp_path / "history.json"))
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and "must not contain a user name or password" in result.stderr
        assert "s3cret" not in result.output
    (tmp_path / "config.toml").write_text(f'base_url = "http://user:s3cret@{host}"\n')
    result = invoke("submit", "--prompt", "x", "--db", str(tmp_path / "history.json"))
    assert result.exit_code == 2 and "must not contain a user name or password" in result.stderr
    assert sim.requests == [] and not (tmp_path / "history.json").exists()


@pytest.mark.parametrize("ident", [".", "..", "..."])
def test_ids_of_dots_are_refused_by_attach(ident, make_simulator, tmp_path):
    sim = make_simulator()
    real = sim.seed_job(status="completed")
    result = invoke("attach", real, ident, "--base-url", sim.base_url, "--db", str(tmp_path / "history.json"))
    assert result.exit_code == 2
    assert result.stderr == f"error: {ident!r} is only dots: a path built from it would change meaning\n"
    assert sim.requests == [] and not (tmp_path / "history.json").exists()


async def test_ids_of_dots_are_refused_by_the_service_before_any_request(make_simulator, tmp_path):
    from tui.core.api.errors import UnusableIdError

    sim = make_simulator()
    service = JobService.open(settings_for(Ctx(sim=sim, blackhole=None), tmp_path / "history.json"))
    try:
        with pytest.raises(UnusableIdError):
            await service.attach(["..", sim.seed_job(status="completed")])
    finally:
        await service.close()
    assert sim.requests == []


def completed_job_with_outputs(sim, tmp_path, template: list[str]) -> tuple[str, str]:
    sim.faults.outputs_template = template
    write_fast_config(tmp_path)
    db = str(tmp_path / "history.json")
    submitted = invoke("submit", "--prompt", "two takes", "--wait", "--base-url", sim.base_url, "--db", db)
    assert submitted.exit_code == 0, submitted.stderr
    return submitted.stdout.splitlines()[0], db


def test_a_javascript_output_url_is_refused_and_the_other_outputs_are_saved(make_simulator, tmp_path):
    sim = make_simulator(job_seconds=0.3)
    server_id, db = completed_job_with_outputs(sim, tmp_path, ["javascript:alert(1)", "{file}"])
    out = tmp_path / "videos"
    result = invoke("download", server_id, "--dir", str(out), "--base-url", sim.base_url, "--db", db)
    assert result.exit_code == 4, result.stderr
    assert "Traceback" not in result.output
    assert "output 1: the output URL 'javascript:alert(1)' is not an http(s) address" in result.stderr
    assert "connection was dropped" not in result.stderr
    saved = sorted(p.name for p in out.iterdir())
    assert len(saved) == 1 and saved[0].endswith("_2.mp4")  # the second output was still fetched
    with HistoryStore.open(tmp_path / "history.json", read_only=True) as store:
        (job,) = store.all()
    assert [d["path"] for d in job.downloads] == [str(out / saved[0])]


def test_retry_after_soon_on_the_output_host_is_a_clear_reason_and_no_empty_part(make_simulator, tmp_path):
    sim = make_simulator(job_seconds=0.3)
    server_id, db = completed_job_with_outputs(sim, tmp_path, ["{file}"])
    sim.faults.update({"file_errors": 100, "retry_after_text": "soon"})
    out = tmp_path / "videos"
    result = invoke("download", server_id, "--dir", str(out), "--base-url", sim.base_url, "--db", db)
    assert result.exit_code == 4, result.stderr
    assert "Traceback" not in result.output
    assert "the transfer stopped (the host answered 503)" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []  # no empty .part left behind


async def test_d_in_the_dashboard_says_why_a_download_failed(tmp_path, make_simulator):
    from tui.ui.app import HailuoApp

    sim = make_simulator(job_seconds=0.3)
    sim.faults.update({"outputs_template": ["{file}"], "file_errors": 100, "retry_after_text": "soon"})
    app = HailuoApp(app_settings(tmp_path, sim, KEY, **FAST))
    async with app.run_test(size=(160, 45)) as pilot:
        table, job = await submit_from_the_composer(app, pilot, "a download that waits")
        await until(lambda: job.is_success, pilot=pilot)
        await pilot.press("d")


        await until(lambda: any("the host answered 503" in t for t in toasts(app)), timeout=30, pilot=pilot)
        assert not any((tmp_path / "downloads").glob("*.part"))


def write_job_with_times(db: Path, **times: float) -> None:
    from tui.core.records import Job

    with HistoryStore.open(db) as store:
        for index, (name, value) in enumerate(times.items()):
            store.put(Job(local_id=f"job{name}", server_id=f"srv{name}", status="completed", submitted_at=1.8e9 + index,
                          request={"model": "hailuo-2.3-fast", "scene": "text-to-video", "prompt": name},
                          created_at=value, finished_at=value))
        store.flush()


UNSHOWABLE = {"year1": -62135596800.0, "year9999": 253402300799.0, "nan": float("nan")}


async def test_unshowable_times_in_the_history_show_as_unknown_on_screen_and_in_the_cli(tmp_path, make_simulator):
    from textual.widgets import Static

    from tui.ui.app import HailuoApp
    from tui.ui.widgets.job_table import JobTable

    sim = make_simulator()
    db = tmp_path / "history.json"
    write_job_with_times(db, **UNSHOWABLE)
    app = HailuoApp(app_settings(tmp_path, sim, KEY, **FAST))
    async with app.run_test(size=(160, 45)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        table = app.query_one(JobTable)
        table.focus()
        detail = app.query_one("#detail-body", Static)
        seen = set()
        for _ in UNSHOWABLE:
            await pilot.pause()
            job = table.visible_jobs()[table.cursor_row]
            await until(lambda: job.local_id in str(detail.render()), pilot=pilot)
            text = str(detail.render())
            assert "Server time     —" in text and "Finished        —" in text
            seen.add(job.local_id)
            await pilot.press("down")
        assert seen == {f"job{name}" for name in UNSHOWABLE} and app.is_running
    for name in UNSHOWABLE:
        shown = invoke("show", f"job{name}", "--db", str(db))
        assert shown.exit_code == 0 and "created:        -" in shown.stdout and "finished:       -" in shown.stdout
    listed = invoke("list", "--json", "--db", str(db))
    assert listed.exit_code == 0 and all(j["created_at"] is None for j in _json.loads(listed.stdout))
    assert invoke("list", "--db", str(db)).exit_code == 0


async def test_40000_outputs_are_capped_on_screen_saying_how_many_were_left_out(tmp_path, make_simulator):
    from textual.widgets import OptionList, Static

    from tui.ui.app import HailuoApp

    sim = make_simulator(job_seconds=0.3)
    sim.faults.output_count = 40_000
    app = HailuoApp(app_settings(tmp_path, sim, KEY, **FAST))
    async with app.run_test(size=(160, 45)) as pilot:
        table, job = await submit_from_the_composer(app, pilot, "a flood of links")
        await until(lambda: job.is_success, pilot=pilot)
        detail = app.query_one("#detail-body", Static)
        await until(lambda: "39,900 more sent by the server were not kept" in str(detail.render()), pilot=pilot)
        assert app.query_one("#outputs", OptionList).option_count == 100
    shown = invoke("show", job.local_id, "--db", str(tmp_path / "history.json"))
    assert "100 shown; 39,900 more sent by the server were not kept" in shown.stdout


async def test_a_conflict_shows_in_the_dashboard_naming_the_other_job(tmp_path, make_simulator):
    from textual.widgets import Static, TextArea

    from tui.ui.app import HailuoApp

    sim = make_simulator(job_seconds=1.0)
    app = HailuoApp(app_settings(tmp_path, sim, KEY, **FAST))
    async with app.run_test(size=(160, 45)) as pilot:
        table, first = await submit_from_the_composer(app, pilot, "the first")
        sim.faults.duplicate_id = 1
        app.query_one("#prompt", TextArea).text = "the second"
        app.query_one("#prompt", TextArea).focus()
        await pilot.press("ctrl+s")
        await until(lambda: any(j.status == "conflict" for j in table.visible_jobs()), pilot=pilot)
        second = next(j for j in table.visible_jobs() if j.status == "conflict")
        table.focus()
        for key in ("up", "up", "down", "down"):
            if table.visible_jobs()[table.cursor_row] is second:
                break
            await pilot.press(key)
        detail = app.query_one("#detail-body", Static)
        await until(lambda: second.local_id in str(detail.render()), pilot=pilot)
        body = str(detail.render())
        assert "conflict" in body and first.local_id in body and first.server_id in body
        await until(lambda: first.status == "completed", pilot=pilot)  # the first is followed to its end
        assert second.status == "conflict" and len(posts(sim)) == 2


def test_the_hostile_answers_table_is_this_one():
    text = DOC.read_text(encoding="utf-8")
    tests = {name for name in globals() if name.startswith("test_")}
    assert set(HOSTILE_ROWS) <= tests
    missing = [row for row in HOSTILE_ROWS.values() if row not in text]
    assert not missing, "docs/FAULTS.md lacks these rows:\n" + "\n".join(missing)
