"""Attached jobs (known by id only): what was not told is shown as unknown, never as a default."""

from __future__ import annotations

from click.testing import CliRunner
from textual.app import App, ComposeResult
from textual.widgets import Static

from tui.cli import main as cli
from tui.core.records import Job
from tui.simulator.demo import write_history
from tui.ui.widgets.detail import DetailPane

T0 = 1_800_000_000.0


def _attached() -> Job:
    # As JobService.attach records it: the server id, and nothing of the request.
    return Job(local_id="dddd00000004", server_id="pred-attached-4", status="processing", submitted_at=T0,
               request={"model": "", "scene": "", "prompt": "", "attached": True},
               status_history=[["processing", T0]])


def test_show_of_an_attached_job_says_unknown(tmp_path):
    db = tmp_path / "history.json"
    write_history(db, [_attached()])
    result = CliRunner().invoke(cli.main, ["show", "pred-attached-4", "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = {line.split(":")[0].strip(): line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
             if ":" in line}
    assert lines["duration"] == "unknown"  # not " s"
    assert lines["resolution"] == "unknown"
    assert lines["prompt expansion"] == "unknown"  # not an invented "on"


class DetailApp(App):
    def compose(self) -> ComposeResult:
        yield DetailPane(id="detail", clock=lambda: T0 + 5)


async def test_the_detail_pane_of_an_attached_job_invents_nothing():
    app = DetailApp()
    async with app.run_test(size=(100, 50)) as pilot:
        app.query_one(DetailPane).show_job(_attached())
        await pilot.pause()
        body = str(app.query_one("#detail-body", Static).render())
        rows = {line[:15].strip(): line[15:].strip() for line in body.splitlines() if len(line) > 15}
        assert rows["Model"] == "unknown" and rows["Scene"] == "unknown"
        assert "Expand prompt" not in rows and "Duration" not in rows  # never told: not shown as a default
