"""Catch an identical request sent again within moments: a second ctrl+s is a second bill.

Contract: `RepeatGuard.since(request)` is how many seconds ago an identical request was sent
(None if not within `window` seconds); `sent(request)` records a send that went, or may have
gone, to the server; `forget(request)` takes back one that surely did not (refused, never
left). Time comes from the injected clock only, so the tests set it.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable

#: Seconds within which sending the very same request again asks first.
REPEAT_WINDOW = 10.0


class RepeatGuard:
    def __init__(self, *, window: float = REPEAT_WINDOW, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self._clock = clock
        self._sent_at: dict[Hashable, float] = {}

    def since(self, request: Hashable) -> float | None:
        now = self._clock()
        # Old entries go: a long session must not keep every request it ever sent.
        self._sent_at = {key: at for key, at in self._sent_at.items() if now - at < self.window}
        at = self._sent_at.get(request)
        return None if at is None else max(0.0, now - at)

    def sent(self, request: Hashable) -> None:
        self._sent_at[request] = self._clock()

    def forget(self, request: Hashable) -> None:
        self._sent_at.pop(request, None)
