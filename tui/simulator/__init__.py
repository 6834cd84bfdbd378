"""The loopback simulator of the gptproto Hailuo API (demo, tests, benchmarks).

Its server (and with it http.server) is imported on first use: the CLI looks for the
`simulate` command at start-up and must not pay for a server it does not run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Faults", "RequestRecord", "Simulator"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tui.simulator import server

        return getattr(server, name)
    raise AttributeError(name)
