"""Batch runs: reading and checking a whole file first, then sending each row once, under a cap.

Reading is tested on files written here; runs go through the real job service, history and
client against the loopback simulator, which counts POSTs (per prompt, and at once).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tui.core.batch import (
    FAILED,
    NOT_SENT,
    SKIPPED,
    SUBMITTED,
    UNKNOWN_OUTCOME,
    WOULD_SUBMIT,
    BatchFileError,
    BatchRun,
    dry_run,
    read_batch,
)
from tui.core.config import Settings
from tui.core.jobs import JobService

KEY = "sk-test-batch-0123456789"
FAST = dict(poll_base_interval=0.05, poll_max_interval=0.2, poll_rate=200.0, submit_rate=0)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, rows: list) -> Path:
    return write(path, "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def posts_by_prompt(sim) -> Counter:
    """POSTs whose body arrived whole; one cut off mid-send (a cancelled run) created nothing."""
    prompts = Counter()
    for record in sim.requests:
        if record.method == "POST":
            try:
                prompts[json.loads(record.body)["prompt"]] += 1
            except ValueError:
                continue
    return prompts


def service_for(sim, tmp_path, **changes) -> JobService:
    values = dict(api_key=KEY, base_url=sim.base_url, db_path=tmp_path / "history.json", **FAST)
    values.update(changes)
    return JobService.open(Settings(**values))


# -- reading and checking -----------------------------------------------------------------------------


def test_every_bad_jsonl_row_is_reported_with_its_row_and_line(tmp_path):
    path = jsonl(tmp_path / "b.jsonl", [
        {"prompt": "a fox in snow"},
        "",
        {"prompt": "too long for pro", "model": "hailuo-2.3-pro", "duration": 10},
        "{not json",
        ["a", "list"],
        {"prompt": "x", "promt": "typo", "duration": "six", "prompt_expansion": "maybe"},
        {"model": "hailuo-02-fast"},
        {"prompt": "a heron", "resolution": "1080P", "model": "hailuo-02-standard"},
    ])
    rows, errors = read_batch(path)
    assert [str(e) for e in errors] == [
        "row 2 (line 3): duration: hailuo-2.3-pro at 1080P offers 6 s, not 10 s",
        "row 3 (line 4): not valid JSON (Expecting property name enclosed in double quotes)",
        'row 4 (line 5): each line must be a JSON object like {"prompt": "..."}',
        "row 5 (line 6): promt: unknown field; the fields are model, scene, prompt, image, end_image, duration, "
        "resolution, prompt_expansion",
        'row 5 (line 6): duration: must be a whole number of seconds, not "six"',
        'row 5 (line 6): prompt_expansion: must be true or false, not "maybe"',
        "row 6 (line 7): prompt: a prompt is required",
        "row 7 (line 8): resolution: hailuo-02-standard does not offer 1080P; choose 768P",
    ]
    assert [r.row for r in rows] == [1]


def test_csv_rows_are_checked_with_data_row_and_file_line_numbers(tmp_path):
    path = write(tmp_path / "b.csv",
                 "prompt,model,duration,prompt_expansion\n"
                 "a fox in snow,,,\n"
                 "\"a prompt\nover two lines\",hailuo-2.3-pro,10,\n"
                 "a heron,hailuo-02-fast,6,no\n"
                 "one,two,three,four,five\n"
                 ",hailuo-2.3-fast,6,yes\n")
    rows, errors = read_batch(path)
    assert [str(e) for e in errors] == [
        "row 2 (line 3): duration: hailuo-2.3-pro at 1080P offers 6 s, not 10 s",
        "row 4 (line 6): 5 cells but the header has 4 columns",
        "row 5 (line 7): prompt: a prompt is required",
    ]
    (fox, heron) = rows
    assert (fox.row, fox.line, fox.request.model, fox.request.duration) == (1, 2, "hailuo-2.3-fast", 6)
    assert (heron.row, heron.line, heron.request.prompt_expansion) == (3, 5, False)


def test_a_csv_header_with_unknown_columns_is_reported_before_any_row(tmp_path):
    path = write(tmp_path / "b.csv", "\ufeffPrompt,Modle\na fox,hailuo-2.3-fast\n")
    rows, errors = read_batch(path)
    assert rows == []
    assert [str(e) for e in errors] == [
        "header (line 1): modle: unknown column; the columns are model, scene, prompt, image, end_image, "
        "duration, resolution, prompt_expansion"]


@pytest.mark.parametrize("name, text, message", [
    ("b.txt", "prompt\nx\n", "b.txt: a batch file must end in .jsonl or .csv"),
    ("missing.csv", None, "no such file"),
    ("b.csv", "", "the file has no rows"),
])
def test_a_file_that_cannot_be_used_says_why(tmp_path, name, text, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    try:
        rows, errors = read_batch(path)
    except BatchFileError as exc:
        assert message in str(exc)
    else:
        assert rows == [] and [e.message for e in errors] == [message]


def test_image_paths_are_read_relative_to_the_batch_file(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    Image.new("RGB", (640, 480)).save(folder / "first.png")
    Image.new("RGB", (100, 100)).save(folder / "tiny.png")
    path = jsonl(folder / "b.jsonl", [{"prompt": "zoom in", "image": "first.png"},
                                      {"prompt": "zoom out", "image": "tiny.png"},
                                      {"prompt": "pan", "image": "nowhere.png"}])
    rows, errors = read_batch(path)
    assert rows[0].request.image == str(folder / "first.png") and rows[0].request.scene == "image-to-video"
    assert [str(e) for e in errors] == [
        "row 2 (line 2): image: short side is 100 px; it must be over 300 px",
        f"row 3 (line 3): image: no such file: {folder / 'nowhere.png'}",
    ]


def test_keys_follow_the_normalised_request_and_keep_repeats_apart(tmp_path):
    one = jsonl(tmp_path / "one.jsonl", [{"prompt": "a fox"}, {"prompt": "a fox"}, {"prompt": "a heron"}])
    other = write(tmp_path / "other.csv", "model,prompt,duration,resolution,scene\n"
                                          "hailuo-2.3-fast,a heron,6,768p,text-to-video\n"
                                          "Hailuo-2.3-Fast,a fox,6,768P,\n")
    first, _ = read_batch(one)
    second, _ = read_batch(other)
    assert first[0].key != first[1].key  # two identical rows are two jobs
    assert second[0].key == first[2].key and second[1].key == first[0].key  # defaults and case do not matter
    assert read_batch(one)[0] == first  # stable across reads


# -- running ---------------------------------------------------------------------------------------------


def rows_of(tmp_path, prompts: list[str], name: str = "b.jsonl"):
    rows, errors = read_batch(jsonl(tmp_path / name, [{"prompt": p} for p in prompts]))
    assert errors == []
    return rows


async def test_dry_run_sends_nothing_and_says_what_would_happen(simulator, tmp_path):
    rows = rows_of(tmp_path, ["a fox", "a heron"])
    async with service_for(simulator, tmp_path) as service:
        await BatchRun(service, rows[:1]).run()
        summary = dry_run(service.store, rows)
    assert [o.outcome for o in summary.outcomes] == [SKIPPED, WOULD_SUBMIT]
    assert summary.line() == "dry run: 1 to submit, 1 already submitted, 0 unknown (not re-sent); nothing was sent"
    assert posts_by_prompt(simulator) == {"a fox": 1}


async def test_rows_are_sent_at_most_concurrency_at_once(make_simulator, tmp_path):
    sim = make_simulator()
    sim.faults.latency = 0.15
    rows = rows_of(tmp_path, [f"row {i}" for i in range(8)])
    seen = []
    async with service_for(sim, tmp_path) as service:
        summary = await BatchRun(service, rows, concurrency=3, on_outcome=seen.append).run()
    assert sim.peak_in_flight["POST"] == 3
    assert [o.outcome for o in summary.outcomes] == [SUBMITTED] * 8
    assert sorted(o.row.row for o in seen) == list(range(1, 9))
    assert posts_by_prompt(sim) == {f"row {i}": 1 for i in range(8)}
    assert all(o.job.idempotency_key == o.row.key and o.job.server_id for o in summary.outcomes)
    assert summary.exit_code() == 0


async def test_submits_are_paced_by_the_rate(simulator, tmp_path):
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    rows = rows_of(tmp_path, ["a", "b", "c", "d"])
    async with service_for(simulator, tmp_path) as service:
        await BatchRun(service, rows, concurrency=4, rate=2.0, clock=lambda: now[0], sleep=sleep).run()
    assert sum(slept) == pytest.approx(1.5)  # the first at once, then one every half second
    assert len(posts_by_prompt(simulator)) == 4


async def test_a_re_run_skips_every_row_already_submitted(simulator, tmp_path):
    rows = rows_of(tmp_path, ["a fox", "a heron", "a kite"])
    async with service_for(simulator, tmp_path) as service:
        await BatchRun(service, rows[:2]).run()
    async with service_for(simulator, tmp_path) as service:
        summary = await BatchRun(service, rows).run()
    assert [o.outcome for o in summary.outcomes] == [SKIPPED, SKIPPED, SUBMITTED]
    assert summary.outcomes[0].message == "already submitted (now created)"
    assert summary.outcomes[0].job.server_id
    assert posts_by_prompt(simulator) == {"a fox": 1, "a heron": 1, "a kite": 1}
    assert summary.line() == "1 submitted, 2 skipped (already submitted), 0 failed, 0 unknown (not re-sent), 0 not sent"


async def test_an_unknown_outcome_is_reported_and_never_sent_again(simulator, tmp_path):
    rows = rows_of(tmp_path, ["a fox", "a heron"])
    simulator.faults.drop_after_create = 1
    async with service_for(simulator, tmp_path) as service:
        first = await BatchRun(service, rows, concurrency=1).run()
    assert [o.outcome for o in first.outcomes] == [UNKNOWN_OUTCOME, SUBMITTED]
    assert first.exit_code() == 5
    async with service_for(simulator, tmp_path) as service:
        again = await BatchRun(service, rows).run()
    assert [o.outcome for o in again.outcomes] == [UNKNOWN_OUTCOME, SKIPPED]
    assert again.outcomes[0].earlier and "not re-sent" in again.outcomes[0].message
    assert again.exit_code() == 5
    assert posts_by_prompt(simulator) == {"a fox": 1, "a heron": 1}


async def test_a_refused_key_stops_the_run_and_a_re_run_sends_what_was_not_created(simulator, tmp_path):
    rows = rows_of(tmp_path, ["a fox", "a heron", "a kite"])
    simulator.faults.insufficient_balance = 1
    async with service_for(simulator, tmp_path) as service:
        first = await BatchRun(service, rows, concurrency=1).run()
    assert [o.outcome for o in first.outcomes] == [FAILED, NOT_SENT, NOT_SENT]
    assert "insufficient balance" in first.outcomes[0].message and first.exit_code() == 3
    async with service_for(simulator, tmp_path) as service:
        again = await BatchRun(service, rows).run()
    # The refused row created nothing on the server: it is sent again, like the rows never sent.
    assert [o.outcome for o in again.outcomes] == [SUBMITTED] * 3
    assert posts_by_prompt(simulator) == {"a fox": 2, "a heron": 1, "a kite": 1}


async def test_a_content_policy_refusal_fails_that_row_only(simulator, tmp_path):
    rows = rows_of(tmp_path, ["a fox", f"a {simulator.faults.policy_word} scene", "a kite"])
    async with service_for(simulator, tmp_path) as service:
        summary = await BatchRun(service, rows).run()
    assert [o.outcome for o in summary.outcomes] == [SUBMITTED, FAILED, SUBMITTED]
    assert summary.outcomes[1].job.status == "rejected" and summary.exit_code() == 2


async def test_rate_limited_rows_wait_and_are_sent_again_without_leaving_refused_records(simulator, tmp_path):
    simulator.faults.rate_limit, simulator.faults.retry_after = 4, 0.01
    rows = rows_of(tmp_path, ["a fox", "a heron"])
    async with service_for(simulator, tmp_path) as service:
        summary = await BatchRun(service, rows, concurrency=1).run()
        assert [o.outcome for o in summary.outcomes] == [SUBMITTED, SUBMITTED]
        assert sorted(j.status for j in service.store.all()) == ["created", "created"]
    assert simulator.job_count() == 2  # one job each: the 429s created nothing
    assert posts_by_prompt(simulator) == {"a fox": 5, "a heron": 1}


async def test_a_cancelled_run_accounts_for_every_row_and_a_re_run_sends_none_twice(make_simulator, tmp_path):
    sim = make_simulator()
    sim.faults.latency = 0.2
    prompts = [f"row {i}" for i in range(10)]
    rows = rows_of(tmp_path, prompts)
    async with service_for(sim, tmp_path) as service:
        run = BatchRun(service, rows, concurrency=2)
        task = asyncio.ensure_future(run.run())
        while len([r for r in sim.requests if r.method == "POST"]) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cut = run.summary()
    outcomes = Counter(o.outcome for o in cut.outcomes)
    assert sum(outcomes.values()) == 10 and set(outcomes) <= {SUBMITTED, UNKNOWN_OUTCOME, NOT_SENT}
    assert outcomes[NOT_SENT] >= 4
    sim.faults.latency = 0
    async with service_for(sim, tmp_path) as service:
        again = await BatchRun(service, rows).run()
    assert all(n == 1 for n in posts_by_prompt(sim).values())
    assert Counter(o.outcome for o in again.outcomes)[SUBMITTED] == outcomes[NOT_SENT]
