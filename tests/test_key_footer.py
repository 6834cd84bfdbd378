"""The footer of key bindings: one rebuild for a burst of binding changes, showing the last."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets._footer import FooterKey

from tui.ui.widgets.key_footer import KeyFooter

from helpers import until


class CountingFooter(KeyFooter):
    rebuilds = 0

    def compose(self) -> ComposeResult:
        CountingFooter.rebuilds += 1
        yield from super().compose()


class TwoModes(App[None]):
    """A binding shown at a time, as the dashboard shows keys that apply now only."""

    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [("a", "alpha", "Alpha"), ("b", "beta", "Beta")]
    mode = "alpha"

    def compose(self) -> ComposeResult:
        yield CountingFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action == self.mode if action in ("alpha", "beta") else True

    def switch(self, mode: str, changes: int) -> None:
        self.mode = mode
        for _ in range(changes):
            self.screen.refresh_bindings()

    def keys_shown(self) -> list[str]:
        return [key.description for key in self.query(FooterKey)]


async def test_a_burst_of_binding_changes_rebuilds_the_footer_once_and_shows_the_last_state():
    app = TwoModes()
    async with app.run_test(size=(60, 6)) as pilot:
        await until(lambda: app.keys_shown() == ["Alpha"], pilot=pilot, what=app.keys_shown)
        app.switch("alpha", 1)  # a rebuild of its own after whatever the start asked for
        await until(lambda: not app.query_one(CountingFooter)._rebuild_pending, pilot=pilot)
        CountingFooter.rebuilds = 0

        app.switch("beta", 5)  # five changes in one go, as a start or a focus move makes
        await until(lambda: app.keys_shown() == ["Beta"], pilot=pilot, what=app.keys_shown)
        # One more change after the burst: its rebuild comes after every rebuild asked before it.
        app.switch("alpha", 1)
        await until(lambda: app.keys_shown() == ["Alpha"], pilot=pilot, what=app.keys_shown)
        assert CountingFooter.rebuilds == 2
