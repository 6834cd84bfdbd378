"""Let keys typed ahead of a key land before that key acts.

Textual runs a priority binding as soon as the app reads its key, while the keys read just
before it are still queued at the focused widget (a burst over SSH, a paste-like burst from
tmux). An action that reads what was typed (submit) first waits here until every widget
between the focused one and its form has handled what is queued for it. The app does not read
further keys meanwhile (its own task is the one waiting), so keys typed after the submit key
are never part of what is read.

Contract: `settle(nodes)` returns True once each node's queue was found empty by a callback
that went through it, in one pass over all the nodes; False if that took longer than
`timeout` (the caller then acts on nothing rather than on a half-typed form). Nodes whose task
is the caller's own are skipped: their queue is handled in order anyway.
"""

from __future__ import annotations

import asyncio
import time
from typing import Iterable

from textual.message_pump import MessagePump

#: Generous: on a loaded machine a burst of a few hundred keys takes a moment to handle.
SETTLE_TIMEOUT = 10.0


async def _through(node: MessagePump) -> bool:
    """Send a callback through `node`'s queue; True if nothing else was queued after it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()
    first = True

    def check() -> None:
        nonlocal first
        if node.message_queue_size == 0:
            if not done.done():
                done.set_result(first)
            return
        # Something arrived behind the callback (a message a key handler posted): go round again.
        first = False
        if not node.call_later(check) and not done.done():
            done.set_result(True)  # closing: nothing more will be handled there

    if not node.call_later(check):
        return True
    return await done


async def settle(nodes: Iterable[MessagePump], timeout: float = SETTLE_TIMEOUT) -> bool:
    """Wait until everything queued at `nodes` (focused widget first, then its ancestors) is handled."""
    chain = list(nodes)
    current = asyncio.current_task()
    deadline = time.monotonic() + timeout
    while True:
        quiet = True
        for node in chain:
            if getattr(node, "_task", None) is current or not node.is_running:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                quiet = await asyncio.wait_for(_through(node), remaining) and quiet
            except asyncio.TimeoutError:
                return False
        if quiet:
            return True
