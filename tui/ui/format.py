"""Display text of the dashboard: the one home of how times, spans, durations and sizes read.

Every widget and screen formats through here, so one idea reads the same everywhere (a job's
execution time is `15m00s` in the table, the detail pane and the compare screen alike).
Text from the server or the user is made safe with `tui.core.text.inert`, the one name for it
(the CLI uses it too; this module is the UI's).

Every function takes what a history may hold (None, NaN, infinite, absurd) and answers "—"
for what no clock or size can be, never an exception.
"""

from __future__ import annotations

from datetime import datetime

from tui.core.api.models import showable_time
from tui.core.catalog import human_bytes as format_size
from tui.core.text import inert

__all__ = ["clean", "format_ago", "format_elapsed", "format_exec", "format_size", "format_span", "format_stamp"]


def clean(value: object) -> str:
    """Plain text for the screen: escape sequences and control characters gone (newlines kept)."""
    return inert(value, multiline=True)


def _whole_seconds(seconds: float) -> int | None:
    """Whole seconds, or None for a span no clock gives (NaN, infinite, beyond a million years)."""
    if not isinstance(seconds, (int, float)) or not -3e13 < seconds < 3e13:
        return None
    return max(0, int(seconds))


def format_stamp(ts: float | None) -> str:
    """Local time, or "—" for a time that is absent or that this machine cannot show."""
    if not showable_time(ts):
        return "—"
    try:
        return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "—"


def format_span(seconds: float | None) -> str:
    """A measured span, tenths below a minute: `12.5 s`, `3m07s`, `2h05m`."""
    if not isinstance(seconds, (int, float)) or not -3e13 < seconds < 3e13:  # None, NaN, infinite
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_ago(seconds: float) -> str:
    seconds = _whole_seconds(seconds)
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def format_elapsed(seconds: float, *, coarse: bool = False) -> str:
    """`45s`, `1m23s`, `1h02m`; `coarse` (low-bandwidth mode) drops the seconds past the first
    minute (`1m`), so a running job's clock changes on screen once a minute, not each tick."""
    seconds = _whole_seconds(seconds)
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m" if coarse else f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def format_exec(ms: int | None) -> str:
    """A duration the server measured, in milliseconds: `6.2s`, `15m00s`."""
    # The API reports 0 until a job has run: that is "not measured", not "instant".
    if not ms or not isinstance(ms, (int, float)) or not 0 < ms < 1e15:
        return "—"
    seconds = ms / 1000
    if seconds < 100:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s"
