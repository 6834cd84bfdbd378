"""The gptproto Hailuo API: value types, errors and the async client.

The client (and with it httpx) is imported only when first used, so commands that never
talk to the network start faster.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HailuoClient"]


def __getattr__(name: str) -> Any:
    if name == "HailuoClient":
        from tui.core.api.client import HailuoClient

        return HailuoClient
    raise AttributeError(name)
