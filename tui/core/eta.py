"""How long a job will take: median and 90th percentile of the time to finish of its kind.

A job's kind is (model, scene, resolution, duration). The figures come from the history's own
completed jobs (time from submit to the end seen), kept up to date one job at a time like
`tui.core.stats`. Where a kind has too few completed jobs, the model's figures are used; with
none at all, built-in defaults that say so (`Estimate.source`).

`EtaSchedule` turns an estimate into the poller's interval for a job: few polls before it is
likely done, close polls between the median and the 90th percentile, backing off after it.
The first polls after a submit stay quick (a rejection shows there).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from tui.core.stats import median, percentile

#: A kind's own figures are used from this many completed jobs on.
MIN_SAMPLES = 3
#: (median, p90) seconds for a 6 s video, by model: the provider's typical times, used until the
#: history has its own. Other durations scale with the video's length.
BUILT_IN: dict[str, tuple[float, float]] = {
    "hailuo-2.3-fast": (45.0, 70.0),
    "hailuo-2.3-standard": (70.0, 105.0),
    "hailuo-2.3-pro": (95.0, 140.0),
    "hailuo-02-fast": (45.0, 70.0),
    "hailuo-02-standard": (70.0, 105.0),
    "hailuo-02-pro": (95.0, 140.0),
}
FALLBACK = (70.0, 120.0)
BUILT_IN_LABEL = "built-in default"

Kind = tuple[str, str, str, str]


@dataclass(frozen=True)
class Estimate:
    median_s: float
    p90_s: float
    samples: int
    #: "history" (its kind), "model history" (its model, any kind), or BUILT_IN_LABEL.
    source: str

    @property
    def built_in(self) -> bool:
        return self.source == BUILT_IN_LABEL


def kind_of(job: Any) -> Kind:
    request = job.request
    return (str(request.get("model") or ""), str(request.get("scene") or ""),
            str(request.get("resolution") or ""), str(request.get("duration") or ""))


def time_to_finish(job: Any) -> float | None:
    """Seconds from submit to the end seen, for a completed job (failures end early and say nothing)."""
    if not job.is_success or job.finished_at is None:
        return None
    seconds = job.finished_at - job.submitted_at
    return seconds if seconds > 0 else None


def built_in(kind: Kind) -> tuple[float, float]:
    mid, p90 = BUILT_IN.get(kind[0], FALLBACK)
    try:
        scale = max(0.5, min(3.0, float(kind[3]) / 6.0)) if kind[3] else 1.0
    except ValueError:
        scale = 1.0
    return mid * scale, p90 * scale


def _short(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def eta_text(elapsed: float, estimate: Estimate) -> str:
    """The table's cell: `~40s left` until the 90th percentile, `late 2m` after it."""
    if elapsed <= estimate.median_s:
        return f"~{_short(estimate.median_s - elapsed)} left"
    if elapsed <= estimate.p90_s:
        return f"~{_short(estimate.p90_s - elapsed)} left"
    return f"late {_short(elapsed - estimate.p90_s)}"


class EtaBook:
    def __init__(self) -> None:
        self._samples: dict[str, tuple[Kind, float]] = {}  # local id -> its contribution
        self._by_kind: dict[Kind, list[float]] = {}
        self._by_model: dict[str, list[float]] = {}
        self._cache: dict[Kind, Estimate] = {}
        #: Each kind held once: 50,000 samples share a handful of kinds (a tuple and a text
        #: each, 120 bytes a job otherwise).
        self._kinds: dict[Kind, Kind] = {}

    def _kind(self, job: Any) -> Kind:
        kind = kind_of(job)
        return self._kinds.setdefault(kind, kind)

    def __len__(self) -> int:
        return len(self._samples)

    def reset(self, jobs: Iterable[Any]) -> None:
        self._samples.clear()
        self._by_kind.clear()
        self._by_model.clear()
        self._cache.clear()
        self._kinds.clear()
        for job in jobs:
            seconds = time_to_finish(job)
            if seconds is not None:
                kind = self._kind(job)
                self._samples[job.local_id] = (kind, seconds)
                self._by_kind.setdefault(kind, []).append(seconds)
                self._by_model.setdefault(kind[0], []).append(seconds)
        for values in (*self._by_kind.values(), *self._by_model.values()):
            values.sort()

    def update(self, job: Any) -> None:
        seconds = time_to_finish(job)
        old = self._samples.get(job.local_id)
        new = (self._kind(job), seconds) if seconds is not None else None
        if old == new:
            return
        if old is not None:
            self.remove(job.local_id)
        if new is not None:
            self._samples[job.local_id] = new
            insort(self._by_kind.setdefault(new[0], []), new[1])
            insort(self._by_model.setdefault(new[0][0], []), new[1])
            self._cache.pop(new[0], None)
            self._cache = {k: v for k, v in self._cache.items() if k[0] != new[0][0]}

    def remove(self, local_id: str) -> None:
        old = self._samples.pop(local_id, None)
        if old is None:
            return
        kind, seconds = old
        for table, key in ((self._by_kind, kind), (self._by_model, kind[0])):
            values = table.get(key)
            if values is not None:
                index = bisect_left(values, seconds)
                if index < len(values) and values[index] == seconds:
                    del values[index]
                if not values:
                    del table[key]
        self._cache = {k: v for k, v in self._cache.items() if k[0] != kind[0]}

    def estimate_kind(self, kind: Kind) -> Estimate:
        cached = self._cache.get(kind)
        if cached is not None:
            return cached
        values = self._by_kind.get(kind, [])
        source = "history"
        if len(values) < MIN_SAMPLES:
            values, source = self._by_model.get(kind[0], []), "model history"
        if len(values) >= MIN_SAMPLES:
            estimate = Estimate(median(values), percentile(values, 0.9), len(values), source)
        else:
            mid, p90 = built_in(kind)
            estimate = Estimate(mid, p90, 0, BUILT_IN_LABEL)
        self._cache[kind] = estimate
        return estimate

    def estimate(self, job: Any) -> Estimate:
        return self.estimate_kind(kind_of(job))

    def figures(self) -> list[tuple[Kind, Estimate]]:
        """Every kind the history knows, with the figures its jobs get (for the stats panel)."""
        return [(kind, self.estimate_kind(kind)) for kind in sorted(self._by_kind)]


@dataclass
class EtaSchedule:
    """The poller's per-job interval from the job's estimate (see `Poller(schedule=...)`).

    `lookup(server_id)` gives (seconds since submit, Estimate) or None for a job it does not
    know (the poller's own age-based interval applies then). Every bound is a multiple of the
    poller's own intervals, so a fast test setup (0.05 s / 0.2 s) stays fast.
    """

    lookup: Callable[[str], tuple[float, Estimate] | None]
    base_interval: float = 2.0
    max_interval: float = 20.0
    #: Polls stay `base_interval` apart for this many base intervals after a submit: a refusal shows early.
    quick_polls: float = 1.0
    #: The close-poll window opens at this share of the median...
    window_start: float = 0.95
    #: ... and is cut in this many steps up to the 90th percentile. (These three were chosen with
    #: bench/bench_eta_poll.py: 2.3x fewer queries than the age-based schedule in a model of 30-120 s jobs, ends seen sooner.)
    window_polls: float = 2.0
    #: Before the window, a job is still asked every `sleep_factor × max_interval`: a failure can come
    #: early, and it is never asked less often than the age-based schedule would at its slowest.
    sleep_factor: float = 1.0

    def __call__(self, server_id: str, quiet_seconds: float) -> float | None:
        known = self.lookup(server_id)
        if known is None:
            return None
        return self.interval(*known)

    def interval(self, elapsed: float, estimate: Estimate) -> float:
        base, most = self.base_interval, max(self.base_interval, self.max_interval)
        if elapsed < base * self.quick_polls:
            return base
        opens = estimate.median_s * self.window_start
        closes = max(estimate.p90_s, opens)
        step = min(most, max(base, (closes - opens) / self.window_polls))
        if elapsed < opens - step:
            return max(base, min(most * self.sleep_factor, opens - elapsed))
        if elapsed < closes:
            return step
        # Late: back off like the age-based schedule does, from the window's step.
        return min(most, max(step, (elapsed - closes) * 0.5))
