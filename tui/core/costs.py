"""What jobs cost: the price table, estimates, the spend ledger and the budgets.

Contract:
- `PriceTable` is the catalog's default list prices (`catalog.DEFAULT_PRICES`, dated
  `catalog.PRICES_AS_OF`) with the user's `[prices]` laid over them; every `Estimate` says
  which figure it used and whether it came from the defaults or the config. Everything is an
  estimate: the API reports no cost and no balance.
- A job's share of the spend follows its state (`bucket_of`): completed is billed; refused at
  submit (`rejected`) is not billed; failed, expired, cancelled and `unknown` are "may be
  billed", kept apart and counted toward budgets only when `bill_failed` is on; jobs still
  running (or being sent) count toward budgets, as they will most likely be billed.
- `refusal()` is the one budget check: given what is about to be sent and the history, it
  returns one line naming the budget, what is left and how to change it, or None. The job
  service calls it before recording a job, so the dashboard, the CLI and batch runs all go
  through it and nothing is POSTed when it refuses.
- `SpendLedger` keeps each job's share so the stats panel updates one job at a time;
  `spend_report()` is the `spend` command's figures (and its `--json`).
No Textual, no click.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from tui.core import catalog
from tui.core.api.models import FAILURE_STATUSES, SUCCESS_STATUSES
from tui.core.records import EXPIRED, REJECTED, UNKNOWN

if TYPE_CHECKING:
    from tui.core.catalog import VideoRequest
    from tui.core.records import Job

DEFAULT = "default"
CONFIG = "config"
PER_RUN = "run"
PER_SECOND = "second"

# A job's share of the spend.
BILLED = "billed"
MAY_BE_BILLED = "may be billed"
RUNNING = "running"
NOT_BILLED = "not billed"

BUDGET_KEYS = ("budget_session", "budget_day", "budget_batch")
DAY_SECONDS = 24 * 3600.0
WEEK_SECONDS = 7 * DAY_SECONDS
ESTIMATE_LABEL = f"estimate, prices of {catalog.PRICES_AS_OF}"


def money(amount: float | None) -> str:
    """$0.441 with at least two decimals and no float noise; '—' for an unknown amount."""
    if amount is None:
        return "—"
    text = f"{amount:.4f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


# -- the price table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    amount: float
    per: str  # PER_RUN or PER_SECOND
    source: str  # DEFAULT or CONFIG
    key: str  # the table key it was found under: "model", "model/RES" or "model/RES/DURATION"

    def describe(self) -> str:
        unit = "a run" if self.per == PER_RUN else "a second"
        return f"{money(self.amount)} {unit}"


@dataclass(frozen=True)
class Estimate:
    amount: float | None
    rate: Rate | None
    model: str
    resolution: str | None
    duration: int | None
    note: str | None = None

    @property
    def known(self) -> bool:
        return self.amount is not None

    @property
    def source(self) -> str | None:
        return self.rate.source if self.rate else None

    def basis(self) -> str:
        """How the figure was reached: '6 s × $0.0285 a second, default (2026-09-25)'."""
        if self.rate is None:
            return self.note or "no price"
        origin = f"default price of {catalog.PRICES_AS_OF}" if self.rate.source == DEFAULT else "price from config"
        if self.rate.per == PER_SECOND:
            return f"{self.duration} s × {money(self.rate.amount)}/s, {origin}"
        return f"{self.rate.describe()}, {origin}"

    def line(self) -> str:
        """One line for the composer and the detail pane."""
        if self.amount is None:
            return f"Estimate unknown: {self.note or 'no price'}"
        text = f"Estimate {money(self.amount)} ({self.basis()})"
        return f"{text}; {self.note}" if self.note else text

    def to_public(self) -> dict[str, Any]:
        return {
            "amount": _round(self.amount),
            "source": self.source,
            "per": self.rate.per if self.rate else None,
            "rate": _round(self.rate.amount) if self.rate else None,
            "note": self.note,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _check_amount(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} must be zero or more, not {value!r}")
    return float(value)


def _parse_price(key: str, value: Any) -> tuple[float, str]:
    """`0.3` (a run), `{per_run = 0.3}` or `{per_second = 0.03}`."""
    where = f"[prices] {key!r}"
    if isinstance(value, dict):
        units = {"per_run": PER_RUN, "per_second": PER_SECOND}
        if len(value) != 1 or next(iter(value)) not in units:
            raise ValueError(f"{where} must be a number (a run) or {{per_run = N}} or {{per_second = N}}")
        name, amount = next(iter(value.items()))
        return _check_amount(where, amount), units[name]
    return _check_amount(where, value), PER_RUN


def _check_key(key: str) -> str:
    """A key names a model the catalog knows, then optionally a resolution and a duration."""
    parts = key.strip().split("/")
    model = parts[0].strip().lower()
    if model not in catalog.MODELS:
        raise ValueError(f"[prices] {key!r}: unknown model {model!r}; the models are {', '.join(catalog.MODELS)}")
    if len(parts) > 3:
        raise ValueError(f"[prices] {key!r}: write \"model\", \"model/RESOLUTION\" or \"model/RESOLUTION/SECONDS\"")
    normal = [model]
    if len(parts) >= 2:
        resolution = parts[1].strip().upper()
        offered = catalog.resolutions_for(model, allow_uncertain=True)
        if resolution not in offered:
            raise ValueError(f"[prices] {key!r}: {model} has no resolution {resolution}; use {' or '.join(offered)}")
        normal.append(resolution)
    if len(parts) == 3:
        seconds = parts[2].strip().lower().removesuffix("s")
        if not seconds.isdigit():
            raise ValueError(f"[prices] {key!r}: the duration must be whole seconds, like 6 or 10")
        normal.append(str(int(seconds)))
    return "/".join(normal)


class PriceTable:
    """The defaults, with the user's `[prices]` over them (checked here: a bad entry raises ValueError)."""

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        self.rates: dict[str, Rate] = {key: Rate(amount, per, DEFAULT, key)
                                       for key, (amount, per) in catalog.DEFAULT_PRICES.items()}
        self.overridden: set[str] = set()
        for raw_key, value in (overrides or {}).items():
            key = _check_key(str(raw_key))
            amount, per = _parse_price(str(raw_key), value)
            self.rates[key] = Rate(amount, per, CONFIG, key)
            self.overridden.add(key)
        # Estimates are values of (model, resolution, duration): a 50,000-job history has a few dozen.
        self._estimates: dict[tuple, Estimate] = {}

    def rate_for(self, model: str, resolution: str | None, duration: int | None) -> Rate | None:
        """The most specific entry: model/RES/DURATION, then model/RES, then model."""
        keys = []
        if resolution:
            if duration:
                keys.append(f"{model}/{resolution}/{duration}")
            keys.append(f"{model}/{resolution}")
        keys.append(model)
        for key in keys:
            rate = self.rates.get(key)
            if rate is not None:
                return rate
        return None

    def estimate(self, model: str, resolution: str | None, duration: int | None) -> Estimate:
        key = (model, resolution, duration)
        estimate = self._estimates.get(key)
        if estimate is None:
            if len(self._estimates) > 4096:  # odd attached jobs cannot grow it without bound
                self._estimates.clear()
            estimate = self._estimates[key] = self._estimate(model, resolution, duration)
        return estimate

    def _estimate(self, model: str, resolution: str | None, duration: int | None) -> Estimate:
        rate = self.rate_for(model, resolution, duration)
        if rate is None:
            where = f"{model} at {resolution}" if resolution else (model or "an unknown model")
            return Estimate(None, None, model, resolution, duration, f"no price for {where}; set one in [prices]")
        if rate.per == PER_SECOND:
            if not duration:
                return Estimate(None, rate, model, resolution, duration, "the duration is not known")
            return Estimate(rate.amount * duration, rate, model, resolution, duration)
        note = None
        if rate.source == DEFAULT and duration and duration > catalog.DEFAULT_DURATION:
            note = catalog.RUN_PRICE_LONG_CLIP_NOTE
        return Estimate(rate.amount, rate, model, resolution, duration, note)

    def for_request(self, request: "VideoRequest") -> Estimate:
        return self.estimate(request.model, request.resolution, request.duration)

    def for_job(self, job: "Job") -> Estimate:
        request = job.request or {}
        duration = request.get("duration")
        resolution = request.get("resolution")
        return self.estimate(str(request.get("model") or ""), str(resolution) if resolution else None,
                             duration if isinstance(duration, int) and not isinstance(duration, bool) else None)

    def rows(self) -> list[tuple[str, Rate]]:
        """Every entry, for showing the table."""
        return sorted(self.rates.items())


# -- a job's share ------------------------------------------------------------------------------


def bucket_of(job: "Job") -> str:
    status = job.status
    if status == REJECTED:
        return NOT_BILLED
    if status.lower() in SUCCESS_STATUSES:
        return BILLED
    if status in (UNKNOWN, EXPIRED) or status.lower() in FAILURE_STATUSES:
        return MAY_BE_BILLED
    return RUNNING


def counts_toward_budget(bucket: str, *, bill_failed: bool) -> bool:
    return bucket in (BILLED, RUNNING) or (bucket == MAY_BE_BILLED and bill_failed)


@dataclass(frozen=True)
class Share:
    submitted_at: float
    model: str
    bucket: str
    amount: float | None


def share_of(job: "Job", prices: PriceTable) -> Share:
    return Share(float(job.submitted_at), job.model or "(unknown)", bucket_of(job), prices.for_job(job).amount)


@dataclass
class Tally:
    """Money by bucket over some jobs (amounts are estimates)."""

    billed: float = 0.0
    may_be_billed: float = 0.0
    running: float = 0.0
    jobs: int = 0
    not_billed_jobs: int = 0
    unpriced_jobs: int = 0

    def add(self, share: Share, sign: int = 1) -> None:
        """Count a job in (or, with sign -1, out again: the ledger keeps its totals that way)."""
        self.jobs += sign
        if share.bucket == NOT_BILLED:
            self.not_billed_jobs += sign
            return
        if share.amount is None:
            self.unpriced_jobs += sign
            return
        if share.bucket == BILLED:
            self.billed += sign * share.amount
        elif share.bucket == MAY_BE_BILLED:
            self.may_be_billed += sign * share.amount
        else:
            self.running += sign * share.amount

    def counted(self, *, bill_failed: bool) -> float:
        return self.billed + self.running + (self.may_be_billed if bill_failed else 0.0)

    def to_public(self) -> dict[str, Any]:
        return {"billed": _round(self.billed), "may_be_billed": _round(self.may_be_billed),
                "running": _round(self.running), "jobs": self.jobs, "not_billed_jobs": self.not_billed_jobs,
                "unpriced_jobs": self.unpriced_jobs}


def job_cost_public(job: "Job", prices: PriceTable) -> dict[str, Any]:
    """A job's cost as `export` writes it: the estimate, where its price came from, the billing state."""
    estimate = prices.for_job(job)
    return {"estimated": _round(estimate.amount), "source": estimate.source, "billing": bucket_of(job),
            "prices_as_of": catalog.PRICES_AS_OF}


def local_day_start(now: float) -> float:
    """Midnight of the local calendar day `now` falls in: budget_day and "today" run from it."""
    moment = datetime.fromtimestamp(now)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


# -- budgets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budgets:
    session: float | None = None
    day: float | None = None
    batch: float | None = None
    bill_failed: bool = True
    #: Where the user changes them (the config file), named in every refusal.
    config_file: str = "the config file"

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.session, self.day, self.batch))

    @classmethod
    def from_settings(cls, settings: Any) -> "Budgets":
        return cls(getattr(settings, "budget_session", None), getattr(settings, "budget_day", None),
                   getattr(settings, "budget_batch", None), bool(getattr(settings, "bill_failed", True)),
                   str(getattr(settings, "config_file", "the config file")))


def _tally(shares: Iterable[Share], since: float) -> Tally:
    tally = Tally()
    for share in shares:
        if share.submitted_at >= since:
            tally.add(share)
    return tally


def refusal(estimates: list[Estimate], shares: Iterable[Share], budgets: Budgets, *,
            session: Iterable[Share] = (), now: float, batch: bool = False) -> str | None:
    """Why sending these would pass a budget (one line), or None when it may go.

    `shares` are the history's jobs (those being sent now included) for budget_day; `session`
    the jobs this session sent, for budget_session. With a budget set, a request without a
    price is refused too: its cost cannot be checked.
    """
    if not budgets.any or not estimates:
        return None
    unpriced = next((e for e in estimates if e.amount is None), None)
    if unpriced is not None:
        return (f"not sent: a budget is set and the cost of {unpriced.model} is not known ({unpriced.note}); "
                f"add a price under [prices] in {budgets.config_file}")
    adding = sum(e.amount or 0.0 for e in estimates)
    what = (f"this batch ({len(estimates)} job{'s' if len(estimates) != 1 else ''}, est. {money(adding)})"
            if batch else f"this job (est. {money(adding)})")
    shares = list(shares)
    checks: list[tuple[str, float | None, float, str]] = []
    if batch:
        checks.append(("budget_batch", budgets.batch, 0.0, "per batch"))
    if budgets.session is not None:
        counted = _tally(session, float("-inf")).counted(bill_failed=budgets.bill_failed)
        checks.append(("budget_session", budgets.session, counted, "this session"))
    if budgets.day is not None:
        counted = _tally(shares, local_day_start(now)).counted(bill_failed=budgets.bill_failed)
        checks.append(("budget_day", budgets.day, counted, "today"))
    for name, limit, counted, period in checks:
        if limit is None:
            continue
        # A hair of tolerance: 0.1 + 0.2 must not pass a budget of 0.3.
        if counted + adding > limit + 1e-9:
            left = max(0.0, limit - counted)
            spent = "" if name == "budget_batch" else f"{money(counted)} counted {period}, "
            hint = " (or wait for tomorrow)" if name == "budget_day" else ""
            return (f"not sent: {what} would pass {name} {money(limit)}: {spent}{money(left)} left; "
                    f"raise {name} in {budgets.config_file} to send it{hint}")
    return None


def refusal_for_history(requests: Iterable["VideoRequest"], history: Iterable["Job"], session_jobs: Iterable["Job"],
                        prices: PriceTable, budgets: Budgets, *, now: float, batch: bool = False) -> str | None:
    """`refusal` for requests about to be sent beside a history: the history's jobs of today
    count toward budget_day, `session_jobs` toward budget_session. The one place both the job
    service and a client of another process's history ask."""
    if not budgets.any:
        return None
    day_start = local_day_start(now)
    today = [share_of(job, prices) for job in history if job.submitted_at >= day_start]
    session = [share_of(job, prices) for job in session_jobs]
    return refusal([prices.for_request(r) for r in requests], today, budgets, session=session, now=now, batch=batch)


# -- the ledger ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpendSnapshot:
    session: Tally
    today: Tally
    week: Tally
    all_time: Tally
    by_model: list[tuple[str, Tally]]
    bill_failed: bool
    overridden: bool  # some price comes from the config


class SpendLedger:
    """Each job's share of the spend, kept up to date one job at a time (for the stats panel).

    All-time and by-model totals move with each change; the 7-day and today figures read only
    the jobs of the last 7 days (found by bisection), so a snapshot of a big history stays cheap.
    """

    def __init__(self, prices: PriceTable, *, session_start: float, bill_failed: bool = True,
                 session_jobs: Mapping[str, "Job"] | None = None) -> None:
        self.prices = prices
        self.session_start = session_start
        #: The jobs this session sent (the job service's `session_jobs`): "this session" is those,
        #: as budget_session counts them. Without it, the jobs submitted since `session_start`.
        self.session_jobs = session_jobs
        self.bill_failed = bill_failed
        self._shares: dict[str, Share] = {}
        self._all = Tally()
        self._models: dict[str, Tally] = {}
        self._times: list[tuple[float, str]] = []  # (submitted_at, local id), sorted

    def reset(self, jobs: Iterable["Job"]) -> None:
        self._shares = {job.local_id: share_of(job, self.prices) for job in jobs}
        self._all, self._models = Tally(), {}
        for share in self._shares.values():
            self._count(share, 1)
        self._times = sorted((share.submitted_at, local_id) for local_id, share in self._shares.items())

    def _count(self, share: Share, sign: int) -> None:
        self._all.add(share, sign)
        tally = self._models.setdefault(share.model, Tally())
        tally.add(share, sign)
        if sign < 0 and tally.jobs <= 0:
            del self._models[share.model]

    def update(self, job: "Job") -> bool:
        share = share_of(job, self.prices)
        old = self._shares.get(job.local_id)
        if old == share:
            return False
        if old is not None:
            self._drop(job.local_id, old)
        self._shares[job.local_id] = share
        self._count(share, 1)
        insort(self._times, (share.submitted_at, job.local_id))
        return True

    def remove(self, local_id: str) -> bool:
        old = self._shares.pop(local_id, None)
        if old is None:
            return False
        self._drop(local_id, old)
        return True

    def _drop(self, local_id: str, share: Share) -> None:
        self._count(share, -1)
        index = bisect_left(self._times, (share.submitted_at, local_id))
        if index < len(self._times) and self._times[index] == (share.submitted_at, local_id):
            del self._times[index]

    def snapshot(self, now: float) -> SpendSnapshot:
        session, today, week = Tally(), Tally(), Tally()
        day_start = local_day_start(now)
        recent_from = min(now - WEEK_SECONDS, day_start, self.session_start)
        for submitted_at, local_id in self._times[bisect_left(self._times, (recent_from, "")):]:
            share = self._shares[local_id]
            if submitted_at >= now - WEEK_SECONDS:
                week.add(share)
            if submitted_at >= day_start:
                today.add(share)
            if self.session_jobs is None and submitted_at >= self.session_start:
                session.add(share)
        for job in list((self.session_jobs or {}).values()):
            session.add(share_of(job, self.prices))
        all_time = replace(self._all)
        models = [(model, replace(tally)) for model, tally in sorted(self._models.items())]
        return SpendSnapshot(session, today, week, all_time, models, self.bill_failed,
                             bool(self.prices.overridden))


# -- the `spend` command's figures --------------------------------------------------------------


def spend_report(jobs: Iterable["Job"], prices: PriceTable, budgets: Budgets, *, now: float,
                 since: date | None = None, by: str = "model") -> dict[str, Any]:
    """The `spend --json` object (documented in docs/CLI.md)."""
    since_ts = datetime.combine(since, datetime.min.time()).timestamp() if since else None
    shares = [share_of(job, prices) for job in jobs]
    chosen = [s for s in shares if since_ts is None or s.submitted_at >= since_ts]
    groups: dict[str, Tally] = {}
    for share in chosen:
        key = share.model if by == "model" else datetime.fromtimestamp(share.submitted_at).date().isoformat()
        groups.setdefault(key, Tally()).add(share)
    total = Tally()
    for share in chosen:
        total.add(share)
    day_start = local_day_start(now)
    today = _tally(shares, day_start)
    budget_rows = {}
    if budgets.day is not None:
        counted = today.counted(bill_failed=budgets.bill_failed)
        budget_rows["budget_day"] = {"limit": budgets.day, "counted": _round(counted),
                                     "left": _round(max(0.0, budgets.day - counted))}
    for name, limit in (("budget_session", budgets.session), ("budget_batch", budgets.batch)):
        if limit is not None:
            budget_rows[name] = {"limit": limit}
    return {
        "estimate": True,
        "currency": catalog.PRICES_CURRENCY,
        "prices_as_of": catalog.PRICES_AS_OF,
        "prices_from_config": sorted(prices.overridden),
        "bill_failed": budgets.bill_failed,
        "since": since.isoformat() if since else None,
        "by": by,
        "total": total.to_public(),
        "today": today.to_public(),
        "last_7_days": _tally(shares, now - WEEK_SECONDS).to_public(),
        "groups": [{"key": key, **tally.to_public()} for key, tally in sorted(groups.items())],
        "budgets": budget_rows,
    }


@dataclass
class BatchCost:
    """The estimated total of the rows a batch would send."""

    total: float = 0.0
    rows: int = 0
    unpriced: int = 0
    estimates: list[Estimate] = field(default_factory=list)

    def line(self) -> str:
        if not self.rows:
            return "estimated cost $0.00"
        text = f"estimated cost {money(self.total)} for {self.rows} row{'s' if self.rows != 1 else ''}"
        if self.unpriced:
            text += f" ({self.unpriced} without a price, not included)"
        return f"{text} ({ESTIMATE_LABEL})"


def batch_cost(requests: Iterable["VideoRequest"], prices: PriceTable) -> BatchCost:
    cost = BatchCost()
    for request in requests:
        estimate = prices.for_request(request)
        cost.estimates.append(estimate)
        cost.rows += 1
        if estimate.amount is None:
            cost.unpriced += 1
        else:
            cost.total += estimate.amount
    return cost


def parse_day(text: str) -> date:
    """`--since`: YYYY-MM-DD, `today`, or a number of days back like `7d`."""
    value = text.strip().lower()
    if value == "today":
        return date.today()
    if value.endswith("d") and value[:-1].isdigit():
        return date.today() - timedelta(days=int(value[:-1]))
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {text!r}: give a date like 2026-09-25, 'today' or '7d'") from None
