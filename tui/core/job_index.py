"""What the job table filters and sorts by, kept so that both stay fast on a big history.

- Search text: one lowercase line per job (ids, model, status, prompt). A query's words are
  looked for with C-level passes over a list of those lines kept in display order
  (`map(operator.contains)` then `compress`): no Python bytecode runs per job.
- `QueryMemo`: recent results, so a query that extends a previous one (every old word is part
  of a new word) narrows that result instead of scanning the history, and taking a key back
  finds the shorter query's result still there.
- `sort_order`: the order of a column computed over plain values: one sort of the tie-breaking
  order (newest first), then one stable sort by the dense rank of the column's value (small
  ints: CPython's fastest comparison), instead of a sort over 50,000 tuples that mostly tie on
  their first item. The values are captured as the jobs were when sorted, so a job changed in
  place afterwards is still found where it was placed.

Nothing here knows about widgets: the table (tui/ui/widgets/job_table.py) holds the lists.
"""

from __future__ import annotations

import operator
from array import array
from itertools import compress, repeat
from typing import Callable, Iterable, Sequence

from tui.core.records import UNKNOWN, Job
from tui.core.text import inert

__all__ = ["QueryMemo", "narrows", "query_words", "search", "search_text", "SortIndex", "sort_key_function", "sort_order",
           "status_group"]

_GROUP_RANK = {"pending": 0, "unknown": 1, "failed": 2, "completed": 3}


def status_group(job: Job) -> str:
    """The colour and quick-filter group of a job: completed, failed, unknown or pending."""
    if job.is_success:
        return "completed"
    if job.status == UNKNOWN:
        return "unknown"
    if job.is_failure:
        return "failed"
    if job.is_finished:  # a terminal status we have no group for
        return "failed"
    return "pending"


def search_text(job: Job) -> str:
    """The lowercase line a filter's words are looked for in."""
    return inert(f"{job.display_id} {job.local_id} {job.model} {job.status} {job.prompt}").lower()


def query_words(text: str) -> tuple[str, ...]:
    """A filter's words: case-insensitive, each must be found."""
    return tuple(text.lower().split())


def search(words: Iterable[str], ids: list[str], texts: list[str]) -> tuple[list[str], list[str]]:
    """The ids (and their texts) whose text holds every word, in the order given."""
    for word in words:
        found = list(map(operator.contains, texts, repeat(word)))
        ids = list(compress(ids, found))
        texts = list(compress(texts, found))
    return ids, texts


def narrows(new: Sequence[str], old: Sequence[str]) -> bool:
    """Whether every job matching `new` matches `old`: each old word is part of some new word."""
    return all(any(word in longer for longer in new) for word in old)


class QueryMemo:
    """Recent filter results: (ids, texts) by (status filter, words), for the current jobs and order.

    Cleared whenever a job or the order changes (the table keeps its current result up to date
    itself). Bounded by `budget`, the matches held in all (a match costs two pointers), and never
    more than `limit` results: typing a query and taking it back keeps most of its prefixes.
    """

    def __init__(self, limit: int = 24, budget: int = 100_000) -> None:
        self.limit = limit
        self.budget = budget
        self._results: dict[tuple, tuple[list[str], list[str]]] = {}

    def clear(self) -> None:
        self._results.clear()

    def get(self, status: str | None, words: tuple[str, ...]) -> tuple[list[str], list[str]] | None:
        found = self._results.pop((status, words), None)
        if found is not None:
            self._results[(status, words)] = found  # the most recent last
        return found

    def put(self, status: str | None, words: tuple[str, ...], result: tuple[list[str], list[str]]) -> None:
        self._results.pop((status, words), None)
        self._results[(status, words)] = result
        held = sum(len(ids) for ids, _texts in self._results.values())
        while len(self._results) > 1 and (len(self._results) > self.limit or held > self.budget):
            oldest = next(iter(self._results))
            held -= len(self._results.pop(oldest)[0])

    def closest(self, status: str | None, words: tuple[str, ...]) -> tuple[tuple[str, ...], list[str], list[str]] | None:
        """The smallest remembered result that `words` narrows: (its words, ids, texts)."""
        best = None
        for (memo_status, memo_words), (ids, texts) in self._results.items():
            if memo_status == status and narrows(words, memo_words) and (best is None or len(ids) < len(best[1])):
                best = (memo_words, ids, texts)
        return best


# -- sorting -----------------------------------------------------------------------------------


def _leading_number(value: object) -> int:
    """768 for "768P", 6 for 6 or "6"; 0 for anything else (sort keys must never raise)."""
    digits = ""
    for ch in str(value if value is not None else ""):
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else 0


def _primary(column: str) -> Callable[[Job], object] | None:
    """What a column sorts by before its tie-breakers (None: the submitted column, ties only).
    Values worked out from a status or a resolution are kept per distinct input: a history has
    a handful of each, and a shared value costs no allocation."""
    if column == "status":
        by_status: dict[str, tuple[int, str]] = {}

        def status_value(job: Job) -> tuple[int, str]:
            value = by_status.get(job.status)
            if value is None:  # the group is a function of the status alone
                value = by_status[job.status] = (_GROUP_RANK[status_group(job)], job.status.lower())
            return value

        return status_value
    if column == "model":
        return lambda job: job.model
    if column == "scene":
        return lambda job: job.scene
    if column == "prompt":
        return lambda job: job.prompt.lower()
    if column == "id":
        return lambda job: job.display_id
    if column == "resolution":
        by_request: dict[tuple, tuple[int, int]] = {}

        def resolution_value(job: Job) -> tuple[int, int]:
            raw = (job.request.get("resolution"), job.request.get("duration"))
            try:
                value = by_request.get(raw)
            except TypeError:  # an unhashable value in a damaged record
                return (_leading_number(raw[0]), _leading_number(raw[1]))
            if value is None:
                value = by_request[raw] = (_leading_number(raw[0]), _leading_number(raw[1]))
            return value

        return resolution_value
    if column == "execution":
        return lambda job: -1 if job.execution_time_ms is None else job.execution_time_ms
    return None


def _oldest_first(column: str) -> bool:
    # Within equal values the newest job comes first in the column's default direction:
    # execution defaults to longest first (descending), so its ties go oldest first ascending.
    return column in ("execution", "submitted")


def sort_key_function(column: str) -> Callable[[Job], tuple]:
    """Sort keys are whole tuples, unique per job (local id last), so `bisect` finds each job's place.

    Within equal values the newest job comes first in the column's default direction.
    """
    primary = _primary(column)
    if primary is None:
        return lambda job: (job.submitted_at, job.local_id)
    parts = column in ("status", "resolution")  # primary values that are tuples themselves
    if _oldest_first(column):
        if parts:
            return lambda job: (*primary(job), job.submitted_at, job.local_id)
        return lambda job: (primary(job), job.submitted_at, job.local_id)
    if parts:
        return lambda job: (*primary(job), -job.submitted_at, job.local_id)
    return lambda job: (primary(job), -job.submitted_at, job.local_id)


class SortIndex:
    """Sorts the jobs by a column, keeping what depends only on which jobs there are (their local
    ids and submission times never change) from one sort to the next: the ids, each id's slot, and
    the tie-breaking orders. `forget()` when a job is added or removed."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] | None = None  # the mapping `_ids` was taken from
        self._ids: list[str] | None = None
        self._slot: dict[str, int] = {}
        self._ties: dict[bool, array] = {}  # compact: 8 bytes a job, not a list of int objects

    def forget(self) -> None:
        self._jobs = None
        self._ids = None
        self._slot = {}
        self._ties = {}

    def prepare(self, jobs: dict[str, Job]) -> None:
        """Work out now what every later sort of these jobs shares (the table does it when idle)."""
        self._tie_order(jobs, True)
        self._tie_order(jobs, False)

    def _tie_order(self, jobs: dict[str, Job], newest_first: bool) -> array:
        ids = self._ids
        if ids is None or jobs is not self._jobs or len(ids) != len(jobs):  # (a missed `forget`)
            self.forget()
            self._jobs = jobs
            ids = self._ids = list(jobs)
            self._slot = dict(zip(ids, range(len(ids))))
        order = self._ties.get(newest_first)
        if order is None:
            submitted = [job.submitted_at for job in map(jobs.__getitem__, ids)]
            order = sorted(range(len(ids)), key=ids.__getitem__)
            order.sort(key=submitted.__getitem__, reverse=newest_first)  # stable: ties keep local id order
            order = self._ties[newest_first] = array("q", order)
        return order

    def sort(self, column: str, jobs: dict[str, Job]) -> tuple[list[str], Callable[[str], tuple]]:
        """The local ids in ascending order of `column`'s sort key (as `sort_key_function` gives
        it), and a function giving each of these jobs' key as it was when sorted (a job may be
        changed in place before the table hears of it: it must still be found where it was placed).

        Stable sorts over plain values (local id, time, then the column's value or its rank)
        instead of one over tuples: no tuple per job is built, compared or collected.
        """
        newest_first = not _oldest_first(column)
        order = self._tie_order(jobs, newest_first).tolist()
        ids, slot = self._ids, self._slot
        primary = _primary(column)
        if primary is None:
            return list(map(ids.__getitem__, order)), lambda local_id: (jobs[local_id].submitted_at, local_id)
        prime = list(map(primary, map(jobs.__getitem__, ids)))
        tuples = column in ("status", "resolution")
        if tuples:  # sorted by their rank among the distinct values: ints compare fastest
            distinct = sorted(set(prime))
            rank = dict(zip(distinct, range(len(distinct))))
            order.sort(key=list(map(rank.__getitem__, prime)).__getitem__)
        else:
            order.sort(key=prime.__getitem__)
        tie_sign = -1.0 if newest_first else 1.0

        def key_as_sorted(local_id: str) -> tuple:
            value = prime[slot[local_id]]
            tie = tie_sign * jobs[local_id].submitted_at
            return (*value, tie, local_id) if tuples else (value, tie, local_id)

        return list(map(ids.__getitem__, order)), key_as_sorted


def sort_order(column: str, jobs: dict[str, Job]) -> tuple[list[str], Callable[[str], tuple]]:
    """`SortIndex().sort(column, jobs)`: one sort, nothing kept."""
    return SortIndex().sort(column, jobs)
