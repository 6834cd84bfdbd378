"""The stats panel: counts by status, execution times by model, jobs per hour (figures from `tui.core.stats`),
and the time-to-finish figures the ETA cells and the poll schedule use (`tui.core.eta`)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tui.core.costs import ESTIMATE_LABEL, Tally, money
from tui.core.eta import BUILT_IN_LABEL, Estimate, Kind
from tui.core.stats import WINDOW_SECONDS, StatsSnapshot
from tui.ui.format import format_span as span
from tui.ui.widgets.job_table import plain_text


def _seconds(value: float | None) -> str:
    return "—" if value is None else span(value)


def _eta_table(figures: list[tuple[Kind, Estimate]]) -> Table:
    """The figures the ETA cells and the poll schedule use, by kind of job."""
    table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, header_style="bold", expand=False)
    table.add_column("Time to finish (ETA)")
    table.add_column("scene")
    table.add_column("res·dur")
    table.add_column("median", justify="right")
    table.add_column("p90", justify="right")
    table.add_column("from")
    for (model, scene, resolution, duration), estimate in figures:
        source = f"{estimate.samples:,} {estimate.source}" if not estimate.built_in else estimate.source
        table.add_row(plain_text(model), plain_text(scene), plain_text(f"{resolution}·{duration}s"),
                      span(estimate.median_s), span(estimate.p90_s), source)
    if not figures:
        table.add_row("(no completed job yet: new jobs use the built-in defaults)", "", "", "", "", BUILT_IN_LABEL)
    return table


def render_stats(stats: StatsSnapshot, eta_figures: list[tuple[Kind, Estimate]] | None = None) -> Group:
    head = Text(no_wrap=True, overflow="ellipsis")
    head.append("Stats", style="bold")
    head.append(f"  {stats.total:,} job{'s' if stats.total != 1 else ''} in the history")
    statuses = Text(no_wrap=True, overflow="ellipsis")
    statuses.append("By status    ", style="bold")
    statuses.append(" · ".join(f"{plain_text(status)} {count:,}" for status, count in stats.by_status) or "no jobs")
    rates = Text(no_wrap=True, overflow="ellipsis")
    rates.append("Jobs/hour    ", style="bold")
    hours = int(WINDOW_SECONDS // 3600)
    rates.append(f"last {hours} h: {stats.window_jobs:,} submitted, {stats.window_per_hour:.1f}/h")
    session = f"{stats.session_per_hour:.1f}/h" if stats.session_per_hour is not None else "—/h"
    rates.append(f"   this session ({span(stats.session_hours * 3600)}): {stats.session_jobs:,} added, {session}")
    table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, header_style="bold", expand=False)
    table.add_column("Execution time")
    table.add_column("completed", justify="right")
    table.add_column("median", justify="right")
    table.add_column("p90", justify="right")
    for model in stats.models:
        table.add_row(plain_text(model.model), f"{model.completed:,}", _seconds(model.median_s), _seconds(model.p90_s))
    if not stats.models:
        table.add_row("(no completed job with a measured time yet)", "", "", "")
    parts: list = [head, statuses, rates, table]
    if eta_figures is not None:
        parts.append(_eta_table(eta_figures))
    if stats.spend is not None:
        parts.extend(render_spend(stats.spend))
    return Group(*parts)


def _tally_cells(tally: Tally) -> tuple[str, str, str]:
    running = f" +{money(tally.running)} running" if tally.running else ""
    return money(tally.billed) + running, money(tally.may_be_billed), f"{tally.jobs:,}"


def render_spend(spend) -> list:
    """Spend (estimated): this session, today, the last 7 days, all time, then by model."""
    title = Text(no_wrap=True, overflow="ellipsis")
    title.append("Spend", style="bold")
    counted = "count" if spend.bill_failed else "do not count"
    title.append(f"  {ESTIMATE_LABEL}{' and config [prices]' if spend.overridden else ''}; "
                 f"\"may be billed\" jobs {counted} toward budgets")
    table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, header_style="bold", expand=False)
    table.add_column("Spend (est.)")
    table.add_column("billed", justify="right")
    table.add_column("may be billed", justify="right")
    table.add_column("jobs", justify="right")
    for label, tally in (("this session", spend.session), ("today", spend.today), ("last 7 days", spend.week),
                         ("all time", spend.all_time)):
        table.add_row(label, *_tally_cells(tally))
    for model, tally in spend.by_model:
        table.add_row(plain_text(model), *_tally_cells(tally))
    return [title, table]


class StatsPanel(Static):
    """Shown with `t`; the app feeds it snapshots (at most once a second while it is visible)."""

    def show_stats(self, stats: StatsSnapshot, eta_figures: list[tuple[Kind, Estimate]] | None = None) -> None:
        self.update(render_stats(stats, eta_figures))

    def counting(self) -> None:
        self.update(Text("Stats  counting the history…"))
