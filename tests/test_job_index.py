"""What the job table filters and sorts by on a big history: the same order and the same matches
as a plain sort and scan, however the work is cut short (tie orders kept between sorts, queries
narrowed from earlier results, keys captured when sorted)."""

from __future__ import annotations

import random

import pytest

from tui.core.job_index import QueryMemo, SortIndex, narrows, query_words, search, search_text, sort_key_function
from tui.core.records import UNKNOWN, Job

COLUMNS = ("submitted", "status", "model", "execution", "resolution", "scene", "prompt", "id")
NOW = 1_800_000_000.0


def history(count: int, seed: int) -> dict[str, Job]:
    """Jobs with many ties (same second, same model, same status, no execution time) and odd values."""
    rng = random.Random(seed)
    jobs = {}
    for n in range(count):
        local_id = f"{rng.getrandbits(40):010x}"
        job = Job(
            local_id=local_id,
            request={"model": rng.choice(["hailuo-2.3-fast", "hailuo-2.3-pro", "Hailuo-02", ""]),
                     "scene": rng.choice(["text-to-video", "image-to-video"]),
                     "prompt": rng.choice(["A red fox", "a red fox", "city at night", "", "Éclair au café"]) + f" {n % 7}",
                     "resolution": rng.choice(["768P", "1080P", "512P", None, "x"]),
                     "duration": rng.choice([6, 10, "6", None])},
            submitted_at=NOW - rng.choice([0, 1, 2, 2, 3, 60]) * 10,  # many jobs share a second
            server_id=rng.choice([None, f"srv{n:05d}"]),
            status=rng.choice(["completed", "failed", "processing", "queued", UNKNOWN, "Rejected", "weird"]),
            execution_time_ms=rng.choice([None, 0, 6200, 6200, 120_000]),
        )
        jobs[local_id] = job
    return jobs


@pytest.mark.parametrize("column", COLUMNS)
@pytest.mark.parametrize("seed", [1, 2])
def test_every_column_sorts_as_a_plain_sort_by_its_key(column: str, seed: int) -> None:
    jobs = history(400, seed)
    key_of = sort_key_function(column)
    order, key_as_sorted = SortIndex().sort(column, jobs)
    assert order == [job.local_id for job in sorted(jobs.values(), key=key_of)]
    assert [key_as_sorted(local_id) for local_id in order] == [key_of(jobs[local_id]) for local_id in order]


def test_kept_tie_orders_stay_right_as_jobs_change_in_place_and_keys_stay_as_sorted() -> None:
    jobs = history(300, 3)
    index = SortIndex()
    index.prepare(jobs)
    _order, status_key = index.sort("status", jobs)
    moved = next(iter(jobs.values()))
    key_before = sort_key_function("status")(moved)
    moved.status = "completed" if moved.status != "completed" else "failed"
    moved.server_id = "changed-id"
    # Found where it was placed: the key of the sort, not of the job as it is now.
    assert status_key(moved.local_id) == key_before
    for column in COLUMNS:
        order, _key = index.sort(column, jobs)
        assert order == [job.local_id for job in sorted(jobs.values(), key=sort_key_function(column))], column

    gone = list(jobs)[5]
    del jobs[gone]
    index.forget()  # a job went: what only depends on which jobs there are is worked out again
    order, _key = index.sort("id", jobs)
    assert gone not in order and len(order) == len(jobs)


def test_work_kept_for_other_jobs_is_never_used_for_these() -> None:
    index = SortIndex()
    index.prepare(history(50, 5))  # e.g. the newest jobs, before the whole history was set
    jobs = history(120, 6)
    order, _key = index.sort("model", jobs)
    assert order == [job.local_id for job in sorted(jobs.values(), key=sort_key_function("model"))]


def test_search_keeps_order_and_needs_every_word() -> None:
    jobs = history(200, 4)
    ids = list(jobs)
    texts = [search_text(jobs[local_id]) for local_id in ids]
    found, found_texts = search(query_words("RED fox 3"), ids, texts)
    expected = [i for i in ids if all(w in search_text(jobs[i]) for w in ("red", "fox", "3"))]
    assert found == expected and found_texts == [search_text(jobs[i]) for i in expected]
    assert found  # the history has some
    assert search((), ids, texts) == (ids, texts)


def test_search_text_is_inert_and_lowercase() -> None:
    job = Job(local_id="l1", request={"model": "M", "prompt": "Red\x1b[31m FOX\nnow"}, submitted_at=NOW)
    text = search_text(job)
    assert "\x1b" not in text and "\n" not in text and text == text.lower()
    assert "red" in text and "fox" in text


@pytest.mark.parametrize("new,old,expected", [
    (("fox",), ("fo",), True),
    (("fox", "snow"), ("fox",), True),
    (("snow", "fox"), ("fox", "sn"), True),
    (("fo",), ("fox",), False),  # shortened: widens
    (("fax",), ("fox",), False),  # edited in the middle
    (("fox",), (), True),
    ((), ("fox",), False),
])
def test_which_queries_narrow_which(new, old, expected) -> None:
    assert narrows(new, old) is expected


def test_memo_gives_the_smallest_result_a_query_narrows_and_stays_within_its_budget() -> None:
    memo = QueryMemo(limit=10, budget=10)
    memo.put(None, ("f",), (list("abcdef"), list("abcdef")))
    memo.put(None, ("fo",), (list("abc"), list("abc")))
    memo.put("failed", ("fox",), (list("a"), list("a")))
    assert memo.closest(None, ("fox",))[0] == ("fo",)
    assert memo.closest(None, ("z",)) is None
    assert memo.get(None, ("fo",)) == (list("abc"), list("abc"))
    memo.put(None, ("fox",), (list("ab"), list("ab")))  # 6 + 3 + 1 + 2 > 10: the oldest goes
    assert memo.get(None, ("f",)) is None and memo.get(None, ("fo",)) is not None
    memo.clear()
    assert memo.closest(None, ("fox",)) is None
