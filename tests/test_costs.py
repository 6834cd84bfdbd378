"""What it costs: estimates for everything the catalog offers, the spend ledger's buckets, and
budgets that refuse before anything is POSTed (the simulator's request log shows it), through
the job service, batch runs and the CLI.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import until
from tui.core import catalog, costs
from tui.core.batch import NOT_SENT, BatchRun, read_batch
from tui.core.catalog import VideoRequest
from tui.core.config import ConfigError, Settings, load_settings
from tui.core.jobs import BudgetRefused, JobService
from tui.core.records import REJECTED, UNKNOWN, Job

KEY = "sk-test-costs-0123456789"
FAST = dict(poll_base_interval=0.05, poll_max_interval=0.2, poll_rate=200.0)
PRO = VideoRequest(model="hailuo-02-pro", prompt="a fox", resolution="1080P", duration=6)
STANDARD = VideoRequest(model="hailuo-02-standard", prompt="a fox", resolution="768P", duration=6)

#: The list prices of 2026-09-25, written out again: a changed default must change this test too.
LIST_PRICES = {
    ("hailuo-02-fast", "768P", 6): 0.09, ("hailuo-02-fast", "768P", 10): 0.09,
    ("hailuo-02-standard", "768P", 6): 0.252, ("hailuo-02-standard", "768P", 10): 0.252,
    ("hailuo-2.3-standard", "768P", 6): 0.252, ("hailuo-2.3-standard", "768P", 10): 0.252,
    ("hailuo-02-pro", "1080P", 6): 0.441, ("hailuo-2.3-pro", "1080P", 6): 0.441,
    ("hailuo-2.3-fast", "768P", 6): 6 * 0.0285, ("hailuo-2.3-fast", "768P", 10): 10 * 0.0285,
    ("hailuo-2.3-fast", "1080P", 6): 6 * 0.0495,
}


def offered() -> list[tuple[str, str, int]]:
    return [(model, resolution, duration) for model, spec in catalog.MODELS.items()
            for resolution, durations in spec.modes.items() for duration in durations]


def job(local_id: str, status: str, request: VideoRequest = PRO, *, at: float | None = None) -> Job:
    return Job(local_id=local_id, request=request.to_dict(), submitted_at=time.time() if at is None else at,
               status=status, server_id=None if status == REJECTED else f"pred-{local_id}")


def service_for(sim, tmp_path: Path, **changes) -> JobService:
    values = dict(api_key=KEY, base_url=sim.base_url, db_path=tmp_path / "history.json",
                  config_file=tmp_path / "config.toml", **FAST)
    values.update(changes)
    return JobService.open(Settings(**values))


def posts(sim) -> list:
    return [r for r in sim.requests if r.method == "POST"]


# -- estimates ----------------------------------------------------------------------------------


def test_every_offered_combination_has_its_list_price_labelled_as_a_dated_default():
    table = costs.PriceTable()
    combos = offered()
    assert set(combos) == set(LIST_PRICES), "the catalog offers a combination this test does not price"
    for model, resolution, duration in combos:
        estimate = table.estimate(model, resolution, duration)
        assert estimate.amount == pytest.approx(LIST_PRICES[(model, resolution, duration)]), (model, resolution, duration)
        assert estimate.source == costs.DEFAULT
        assert "default price of 2026-09-25" in estimate.line()
        assert costs.money(estimate.amount) in estimate.line()


def test_a_run_price_on_a_10_second_clip_says_it_is_not_known_to_hold():
    table = costs.PriceTable()
    long_clip = table.estimate("hailuo-02-fast", "768P", 10)
    assert "whether it holds for 10 s clips is not known" in long_clip.line()
    assert table.estimate("hailuo-02-fast", "768P", 6).note is None
    # Priced by the second: the length is in the figure, no doubt to state.
    assert table.estimate("hailuo-2.3-fast", "768P", 10).note is None


def test_config_prices_override_the_defaults_and_say_so(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[prices]\n"hailuo-02-pro" = 0.5\n"hailuo-2.3-fast/768P" = { per_second = 0.03 }\n'
                      '"hailuo-02-fast/768P/10" = 0.15\n', encoding="utf-8")
    settings = load_settings(env={"HAILUO_TUI_CONFIG": str(config), "HAILUO_TUI_DATA_DIR": str(tmp_path)})
    table = costs.PriceTable(settings.prices)
    pro = table.estimate("hailuo-02-pro", "1080P", 6)
    assert (pro.amount, pro.source) == (0.5, costs.CONFIG) and "price from config" in pro.line()
    assert table.estimate("hailuo-2.3-fast", "768P", 10).amount == pytest.approx(0.3)
    assert table.estimate("hailuo-02-fast", "768P", 10).amount == 0.15
    untouched = table.estimate("hailuo-02-fast", "768P", 6)
    assert (untouched.amount, untouched.source) == (0.09, costs.DEFAULT)
    # A price for a resolution the catalog doubts is allowed; without one there is no estimate.
    assert table.estimate("hailuo-2.3-fast", "720P", 6).amount is None


@pytest.mark.parametrize("body, says", [
    ('[prices]\n"hailuo-9-ultra" = 1\n', "unknown model 'hailuo-9-ultra'"),
    ('[prices]\n"hailuo-02-pro/768P" = 1\n', "hailuo-02-pro has no resolution 768P"),
    ('[prices]\n"hailuo-02-pro" = -1\n', "must be zero or more"),
    ('[prices]\n"hailuo-02-pro" = "cheap"\n', "must be a number"),
    ('[prices]\n"hailuo-02-pro" = { per_minute = 1 }\n', "per_second"),
    ("budget_day = -2\n", "budget_day must be zero or more"),
    ("budget_day = true\n", "budget_day"),
])
def test_a_wrong_price_or_budget_is_one_line_naming_it(tmp_path, body, says):
    config = tmp_path / "config.toml"
    config.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"HAILUO_TUI_CONFIG": str(config), "HAILUO_TUI_DATA_DIR": str(tmp_path)})
    assert says in str(caught.value) and "\n" not in str(caught.value)


# -- what counts ----------------------------------------------------------------------------------


def test_completed_is_billed_refused_is_not_failed_and_unknown_may_be():
    table = costs.PriceTable()
    tally = costs.Tally()
    for j in (job("a", "completed"), job("b", REJECTED), job("c", "failed"), job("d", UNKNOWN),
              job("e", "processing")):
        tally.add(costs.share_of(j, table))
    assert tally.billed == pytest.approx(0.441)
    assert tally.may_be_billed == pytest.approx(0.882)  # the failed one and the unknown one
    assert tally.running == pytest.approx(0.441)
    assert tally.not_billed_jobs == 1
    assert tally.counted(bill_failed=True) == pytest.approx(0.441 * 4)
    assert tally.counted(bill_failed=False) == pytest.approx(0.441 * 2)


def test_the_ledger_splits_session_today_week_and_all_time_by_model():
    now = time.time()
    table = costs.PriceTable()
    ledger = costs.SpendLedger(table, session_start=now - 60)
    ledger.reset([
        job("old", "completed", at=now - 30 * 86400),
        job("week", "completed", STANDARD, at=now - 3 * 86400),
        job("now", "completed", at=now - 1),
        job("fail", "failed", at=now - 2),
    ])
    snap = ledger.snapshot(now)
    assert snap.session.billed == pytest.approx(0.441) and snap.session.may_be_billed == pytest.approx(0.441)
    assert snap.week.billed == pytest.approx(0.441 + 0.252)
    assert snap.all_time.billed == pytest.approx(0.441 * 2 + 0.252)
    assert dict(snap.by_model)["hailuo-02-standard"].billed == pytest.approx(0.252)
    ledger.remove("now")
    assert ledger.snapshot(now).session.billed == 0


# -- budgets through the job service (the simulator's log shows what was POSTed) -----------------


async def test_a_session_budget_of_1_refuses_the_third_pro_job_and_nothing_is_posted(simulator, tmp_path):
    service = service_for(simulator, tmp_path, budget_session=1.0)
    try:
        await service.submit(PRO)
        await service.submit(PRO)
        with pytest.raises(BudgetRefused) as refused:
            await service.submit(PRO)
        message = str(refused.value)
        # Which budget, how much is left, how to change it: on one line.
        assert "budget_session $1.00" in message and "$0.118 left" in message
        assert str(tmp_path / "config.toml") in message and "\n" not in message
        assert len(posts(simulator)) == 2
        assert len(service.store) == 2  # nothing recorded for the refused one
    finally:
        await service.close()


async def test_a_budget_of_1_stops_the_fourth_standard_job(simulator, tmp_path):
    service = service_for(simulator, tmp_path, budget_session=1.0)
    try:
        for _ in range(3):
            await service.submit(STANDARD)  # 3 × $0.252 = $0.756
        with pytest.raises(BudgetRefused):
            await service.submit(STANDARD)  # $1.008 would pass $1
        assert len(posts(simulator)) == 3
    finally:
        await service.close()


async def test_concurrent_submits_cannot_pass_the_budget_together(simulator, tmp_path):
    import asyncio

    service = service_for(simulator, tmp_path, budget_session=1.0)
    try:
        results = await asyncio.gather(*(service.submit(PRO) for _ in range(4)), return_exceptions=True)
        assert sum(isinstance(r, BudgetRefused) for r in results) == 2
        assert len(posts(simulator)) == 2
    finally:
        await service.close()


async def test_failed_jobs_count_toward_the_day_only_with_bill_failed(simulator, tmp_path):
    from tui.core.store import HistoryStore

    store = HistoryStore.open(tmp_path / "history.json")
    store.put(job("f1", "failed"))
    store.put(job("f2", UNKNOWN))
    store.put(job("r1", REJECTED))  # refused at submit: never counts
    store.close()
    for bill_failed, allowed in ((True, False), (False, True)):
        service = service_for(simulator, tmp_path, budget_day=1.0, bill_failed=bill_failed)
        try:
            if allowed:
                await service.submit(PRO)
            else:
                with pytest.raises(BudgetRefused, match="budget_day"):
                    await service.submit(PRO)
        finally:
            await service.close()
    assert len(posts(simulator)) == 1


def write_rows(path: Path, count: int, request: VideoRequest = PRO) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"{request.prompt} {i}", "model": request.model,
                                        "resolution": request.resolution}) + "\n" for i in range(count)),
                    encoding="utf-8")
    return path


async def test_a_batch_that_would_pass_a_budget_is_refused_whole(simulator, tmp_path):
    rows, errors = read_batch(write_rows(tmp_path / "rows.jsonl", 3))
    assert not errors
    service = service_for(simulator, tmp_path, budget_batch=1.0, submit_rate=100.0)
    try:
        summary = await BatchRun(service, rows).run()
    finally:
        await service.close()
    assert summary.refused and summary.exit_code() == 2
    assert [o.outcome for o in summary.outcomes] == [NOT_SENT] * 3
    assert "budget_batch $1.00" in summary.stopped and "3 jobs, est. $1.323" in summary.stopped
    assert posts(simulator) == []


async def test_a_batch_within_its_budget_but_past_the_session_is_refused_whole(simulator, tmp_path):
    rows, _ = read_batch(write_rows(tmp_path / "rows.jsonl", 2))
    service = service_for(simulator, tmp_path, budget_batch=5.0, budget_session=1.0, submit_rate=100.0)
    try:
        await service.submit(PRO)
        summary = await BatchRun(service, rows).run()
    finally:
        await service.close()
    assert summary.refused and "budget_session" in summary.stopped
    assert len(posts(simulator)) == 1


# -- the CLI -------------------------------------------------------------------------------------------


def run_cli(*args: str, sim, db: Path, config: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GPTPROTO_API_KEY", "GPTPROTO_BASE_URL", "HAILUO_TUI_DB")}
    env.update(GPTPROTO_API_KEY=KEY, HAILUO_TUI_CONFIG=str(config))
    return subprocess.run([sys.executable, "-m", "tui", *args, "--base-url", sim.base_url, "--db", str(db)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_cli_submit_and_batch_refused_by_a_budget_post_nothing(make_simulator, tmp_path):
    sim = make_simulator(job_seconds=30)
    config = tmp_path / "config.toml"
    config.write_text("budget_day = 0.5\n", encoding="utf-8")
    db = tmp_path / "history.json"
    first = run_cli("submit", "--model", "hailuo-02-pro", "--prompt", "a fox", sim=sim, db=db, config=config)
    assert first.returncode == 0, first.stderr
    second = run_cli("submit", "--model", "hailuo-02-pro", "--prompt", "a fox", sim=sim, db=db, config=config)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"error: not sent: this job (est. $0.441) would pass budget_day $0.50: $0.441 counted today, $0.059 left; "
        f"raise budget_day in {config} to send it (or wait for tomorrow)"]
    rows = write_rows(tmp_path / "rows.jsonl", 2, STANDARD)
    dry = run_cli("batch", str(rows), "--dry-run", sim=sim, db=db, config=config)
    assert dry.returncode == 0
    assert "estimated cost $0.504 for 2 rows (estimate, prices of 2026-09-25)" in dry.stderr
    assert "a run would be refused" in dry.stderr and "budget_day" in dry.stderr
    run = run_cli("batch", str(rows), sim=sim, db=db, config=config)
    assert run.returncode == 2 and "budget_day" in run.stderr and "Traceback" not in run.stderr
    assert len(posts(sim)) == 1


def test_cli_spend_and_export_count_as_described(tmp_path):
    from tui.core.store import HistoryStore

    db = tmp_path / "history.json"
    store = HistoryStore.open(db)
    for j in (job("a", "completed"), job("b", "failed"), job("c", REJECTED), job("d", "completed", STANDARD)):
        store.put(j)
    store.close()
    config = tmp_path / "config.toml"
    config.write_text('budget_day = 2\n[prices]\n"hailuo-02-standard" = 0.3\n', encoding="utf-8")
    env = {"HAILUO_TUI_CONFIG": str(config)}
    from click.testing import CliRunner

    from tui.cli import main as cli

    result = CliRunner().invoke(cli.main, ["spend", "--json", "--db", str(db)], env=env, catch_exceptions=False)
    report = json.loads(result.stdout)
    assert report["estimate"] is True and report["prices_as_of"] == "2026-09-25"
    assert report["prices_from_config"] == ["hailuo-02-standard"]
    assert report["total"]["billed"] == pytest.approx(0.741)
    assert report["total"]["may_be_billed"] == pytest.approx(0.441)
    assert report["total"]["not_billed_jobs"] == 1
    assert report["budgets"]["budget_day"]["left"] == pytest.approx(2 - 0.741 - 0.441)
    assert {g["key"] for g in report["groups"]} == {"hailuo-02-pro", "hailuo-02-standard"}
    text = CliRunner().invoke(cli.main, ["spend", "--by", "day", "--db", str(db)], env=env).stdout
    assert "billed $0.741 · may be billed $0.441 · 4 jobs (1 refused at submit, not billed)" in text
    assert "2026-09-25" in text
    bad = CliRunner().invoke(cli.main, ["spend", "--since", "last tuesday", "--db", str(db)], env=env)
    assert bad.exit_code == 2 and "--since" in bad.stderr
    exported = CliRunner().invoke(cli.main, ["export", "--format", "csv", "--db", str(db)], env=env).stdout
    rows = {r["local_id"]: r for r in csv.DictReader(io.StringIO(exported))}
    assert (rows["a"]["estimated_cost"], rows["a"]["cost_source"], rows["a"]["billing"]) == ("0.441", "default", "billed")
    assert (rows["d"]["estimated_cost"], rows["d"]["cost_source"]) == ("0.3", "config")
    assert rows["c"]["billing"] == "not billed" and rows["b"]["billing"] == "may be billed"


# -- the dashboard (Pilot) ------------------------------------------------------------------------


async def test_the_composers_estimate_follows_the_model_resolution_and_duration():
    from textual.app import App
    from textual.widgets import Select, Static

    from tui.ui.widgets.composer import Composer

    class FormApp(App):
        def compose(self):
            yield Composer(id="composer", prices=costs.PriceTable({"hailuo-02-pro": 0.5}))

    app = FormApp()
    async with app.run_test(size=(100, 50)) as pilot:
        line = lambda: str(app.query_one("#estimate", Static).render())  # noqa: E731
        assert line().startswith("Estimate $0.171 (6 s × $0.0285/s, default price of 2026-09-25)")
        app.query_one("#duration", Select).value = 10
        await until(lambda: "$0.285" in line(), pilot=pilot)
        app.query_one("#resolution", Select).value = "1080P"  # 2.3-fast at 1080P offers 6 s only
        await until(lambda: "$0.297 (6 s × $0.0495/s" in line(), pilot=pilot)
        app.query_one("#family", Select).value = "02"
        app.query_one("#tier", Select).value = "pro"
        await until(lambda: "$0.50 ($0.50 a run, price from config)" in line(), pilot=pilot)
        app.query_one("#tier", Select).value = "fast"
        await until(lambda: "$0.09 ($0.09 a run" in line(), pilot=pilot)
        app.query_one("#duration", Select).value = 10
        await until(lambda: "not known" in line() and "$0.09" in line(), pilot=pilot)


async def test_the_dashboard_refuses_the_third_pro_job_past_a_1_dollar_session_budget(tmp_path, make_simulator):
    from textual.widgets import Select, Static, TextArea

    from tui.ui.app import HailuoApp
    from tui.ui.widgets.job_table import JobTable
    from tui.ui.widgets.stats_panel import StatsPanel

    sim = make_simulator(job_seconds=0.2)
    settings = Settings(api_key=KEY, base_url=sim.base_url, db_path=tmp_path / "history.json",
                        config_file=tmp_path / "config.toml", download_dir=tmp_path / "downloads",
                        budget_session=1.0, **FAST)
    app = HailuoApp(settings)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(lambda: app.ready.is_set(), pilot=pilot)
        app.query_one("#family", Select).value = "02"
        app.query_one("#tier", Select).value = "pro"
        app.query_one("#prompt", TextArea).text = "a lighthouse at dusk"
        await until(lambda: "$0.441" in str(app.query_one("#estimate", Static).render()), pilot=pilot)
        table = app.query_one(JobTable)
        note = app.query_one("#submit-note", Static)
        from tui.ui.screens.dialogs import RepeatSubmitScreen

        async def send() -> None:
            """ctrl+s; the same request again within seconds asks first: ctrl+s confirms."""
            await pilot.press("ctrl+s")
            await until(lambda: isinstance(app.screen, RepeatSubmitScreen) or len(posts(sim)) == 1
                        or "budget_session" in str(note.render()), pilot=pilot)
            if isinstance(app.screen, RepeatSubmitScreen):
                await pilot.press("ctrl+s")

        for sent in (1, 2):
            await send()
            await until(lambda: len(posts(sim)) == sent and "sent as" in str(note.render()), pilot=pilot)
        await send()
        await until(lambda: "budget_session" in str(note.render()), pilot=pilot)
        assert "$0.118 left" in str(note.render()) and note.has_class("-error")
        assert len(posts(sim)) == 2 and table.total_count == 2
        # The table's cost column and the stats panel's spend say the same.
        await until(lambda: all(j.is_success for j in table.visible_jobs()), pilot=pilot)
        # The cost column, at this width, shows each completed job's estimate.
        lines = lambda: "".join(seg.text for y in range(3) for seg in table.render_line(y))  # noqa: E731
        await until(lambda: "EST $" in lines() and lines().count("0.441") == 2, pilot=pilot, what=lines())
        table.focus()
        await pilot.press("t")
        panel = app.query_one(StatsPanel)

        def text() -> str:
            from rich.console import Console

            console = Console(width=160, record=True, file=io.StringIO())
            console.print(panel.content)
            return console.export_text()

        await until(lambda: "this session" in text() and "$0.882" in text(), pilot=pilot)
        assert "hailuo-02-pro" in text() and "2026-09-25" in text()
        # Hidden again before leaving: the panel's redraw timer would fire into a torn-down screen.
        await pilot.press("t")
        await until(lambda: not app.screen.has_class("-show-stats"), pilot=pilot)


async def test_the_batch_dialog_shows_the_total_and_offers_no_submit_past_the_batch_budget(tmp_path, make_simulator):
    from textual.widgets import Button, Input, Static

    from tui.ui.app import HailuoApp
    from tui.ui.screens.batch import BatchScreen

    sim = make_simulator()
    rows = write_rows(tmp_path / "rows.jsonl", 3)
    settings = Settings(api_key=KEY, base_url=sim.base_url, db_path=tmp_path / "history.json",
                        config_file=tmp_path / "config.toml", download_dir=tmp_path / "downloads",
                        budget_batch=1.0, **FAST)
    app = HailuoApp(settings)
    async with app.run_test(size=(160, 45)) as pilot:
        await until(lambda: app.ready.is_set(), pilot=pilot)
        await pilot.press("b")
        await until(lambda: isinstance(app.screen, BatchScreen), pilot=pilot)
        screen = app.screen
        screen.query_one("#batch-path", Input).value = str(rows)
        screen.query_one("#batch-path", Input).focus()
        await pilot.press("enter")
        headline = screen.query_one("#batch-headline", Static)
        await until(lambda: "to submit" in str(headline.render()), pilot=pilot)
        text = str(headline.render())
        assert "estimated cost $1.323 for 3 rows (estimate, prices of 2026-09-25)" in text
        assert "would pass budget_batch $1.00" in text and headline.has_class("-error")
        assert screen.query_one("#batch-start", Button).disabled
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert posts(sim) == []


async def test_the_session_budget_counts_what_this_session_sent_even_once_forgotten(simulator, tmp_path):
    from tui.core.store import HistoryStore

    store = HistoryStore.open(tmp_path / "history.json")
    store.put(job("elsewhere", "processing"))  # sent a moment ago by another terminal: not this session's
    store.close()
    service = service_for(simulator, tmp_path, budget_session=1.0)
    try:
        first = await service.submit(PRO)
        await service.submit(PRO)
        service.forget(first.local_id)  # forgetting a job does not refund it
        with pytest.raises(BudgetRefused, match=r"\$0.882 counted this session"):
            await service.submit(PRO)
        assert len(posts(simulator)) == 2
    finally:
        await service.close()
