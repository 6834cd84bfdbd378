"""The footer of key bindings, rebuilt once for a burst of binding changes.

Textual's `Footer` rebuilds all its keys after each change of the screen's bindings: a start
changes them five times in a tenth of a second (focus, the screen stack, the first refreshes),
and each rebuild mounts and styles every key again, about 10 ms of the event loop while the
history is being read. This one rebuilds once for the changes made before its next refresh.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    _rebuild_pending = False

    def bindings_changed(self, screen: Screen) -> None:
        if self._rebuild_pending:
            self._bindings_ready = True
            return
        super().bindings_changed(screen)
        # `Footer.bindings_changed` asks for a rebuild after the next refresh, when it may.
        self._rebuild_pending = self.is_attached and screen is self.screen and screen.app.app_focus

    async def recompose(self) -> None:
        self._rebuild_pending = False
        await super().recompose()
