"""Figures over the history, kept up to date one job at a time.

`JobStats` holds what each job contributes (its status, its model's execution time when it
completed, when it was submitted) so that a changed or removed job costs a few bisections,
never a rescan of the whole history. `snapshot(now)` turns that into what a person reads:
counts by status, median and 90th-percentile execution time by model, and jobs per hour over
the last 24 hours of the history and over this session.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple

#: Jobs per hour are counted over this window of the history.
WINDOW_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class ModelTimes:
    model: str
    completed: int
    median_s: float | None
    p90_s: float | None


@dataclass(frozen=True)
class StatsSnapshot:
    total: int
    by_status: list[tuple[str, int]]  # most frequent first
    models: list[ModelTimes]  # by model id
    window_jobs: int  # submitted in the last WINDOW_SECONDS
    window_per_hour: float
    session_jobs: int  # submitted since the session started
    session_hours: float
    session_per_hour: float | None  # None until the session is a minute old
    #: Estimated spend (session, today, 7 days, all time, by model) when a ledger is kept.
    spend: Any = None


def median(values: list[float]) -> float | None:
    """Of a sorted list."""
    n = len(values)
    if not n:
        return None
    middle = n // 2
    return values[middle] if n % 2 else (values[middle - 1] + values[middle]) / 2


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile of a sorted list (the value at or below which `share` of them lie)."""
    if not values:
        return None
    return values[max(0, math.ceil(share * len(values)) - 1)]


def _remove_sorted(values: list, value: Any) -> None:
    index = bisect_left(values, value)
    if index < len(values) and values[index] == value:
        del values[index]


class _Share(NamedTuple):
    """What one job adds to the figures."""

    status: str
    model: str
    execution_ms: int | None  # only for completed jobs with a measured time
    submitted_at: float


def _share_of(job: Any) -> _Share:
    execution = job.execution_time_ms if job.execution_time_ms and job.is_success else None
    return _Share(job.status, job.model or "(unknown)", execution, float(job.submitted_at))


class JobStats:
    def __init__(self, *, session_start: float, window: float = WINDOW_SECONDS, spend: Any = None) -> None:
        self.session_start = session_start
        self.window = window
        #: A `tui.core.costs.SpendLedger` kept beside the figures, job by job, or None.
        self.spend = spend
        self._shares: dict[str, _Share] = {}
        self._statuses: Counter[str] = Counter()
        self._times: dict[str, list[int]] = {}  # model -> sorted execution times (ms) of completed jobs
        self._submitted: list[float] = []  # sorted submission times

    def __len__(self) -> int:
        return len(self._shares)

    def reset(self, jobs: Iterable[Any]) -> None:
        """Start over from a whole history (once; later changes go through update/remove)."""
        jobs = jobs if isinstance(jobs, (list, tuple)) else list(jobs)
        self._shares = {job.local_id: _share_of(job) for job in jobs}
        self._statuses = Counter(share.status for share in self._shares.values())
        self._times = {}
        for share in self._shares.values():
            if share.execution_ms is not None:
                self._times.setdefault(share.model, []).append(share.execution_ms)
        for values in self._times.values():
            values.sort()
        self._submitted = sorted(share.submitted_at for share in self._shares.values())
        if self.spend is not None:
            self.spend.reset(jobs)

    def update(self, job: Any) -> bool:
        """Take in an added or changed job; returns whether any figure moved."""
        spent = self.spend.update(job) if self.spend is not None else False
        share = _share_of(job)
        old = self._shares.get(job.local_id)
        if old == share:
            return spent
        if old is not None:
            self._drop(old)
        self._shares[job.local_id] = share
        self._statuses[share.status] += 1
        if share.execution_ms is not None:
            insort(self._times.setdefault(share.model, []), share.execution_ms)
        insort(self._submitted, share.submitted_at)
        return True

    def remove(self, local_id: str) -> bool:
        if self.spend is not None:
            self.spend.remove(local_id)
        old = self._shares.pop(local_id, None)
        if old is None:
            return False
        self._drop(old)
        return True

    def _drop(self, share: _Share) -> None:
        self._statuses[share.status] -= 1
        if self._statuses[share.status] <= 0:
            del self._statuses[share.status]
        if share.execution_ms is not None and share.model in self._times:
            _remove_sorted(self._times[share.model], share.execution_ms)
            if not self._times[share.model]:
                del self._times[share.model]
        _remove_sorted(self._submitted, share.submitted_at)

    def snapshot(self, now: float) -> StatsSnapshot:
        models = []
        for model in sorted(self._times):
            values = self._times[model]
            mid, p90 = median(values), percentile(values, 0.9)
            models.append(ModelTimes(model, len(values), mid / 1000 if mid is not None else None,
                                     p90 / 1000 if p90 is not None else None))
        in_window = len(self._submitted) - bisect_left(self._submitted, now - self.window)
        in_session = len(self._submitted) - bisect_left(self._submitted, self.session_start)
        session_hours = max(0.0, now - self.session_start) / 3600
        return StatsSnapshot(
            total=len(self._shares),
            by_status=sorted(self._statuses.items(), key=lambda item: (-item[1], item[0])),
            models=models,
            window_jobs=in_window,
            window_per_hour=in_window / (self.window / 3600),
            session_jobs=in_session,
            session_hours=session_hours,
            session_per_hour=in_session / session_hours if session_hours >= 1 / 60 else None,
            spend=self.spend.snapshot(now) if self.spend is not None else None,
        )
