"""The `Prediction` value parsed from the API's response envelope.

Parsing is tolerant of every variant seen for this API (see the project's API notes):
`urls` as object or list, `error` null/""/text, `has_nsfw_contents` []/null/list,
`created_at` with or without a zone, unknown fields ignored, unknown statuses kept raw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# Status values that end a job. Anything else (including values never seen before) is
# not finished: it is shown raw and polled again.
SUCCESS_STATUSES = frozenset({"completed", "succeeded", "success"})
FAILURE_STATUSES = frozenset({"failed", "cancelled", "canceled", "expired", "timeout", "deleted"})
TERMINAL_STATUSES = SUCCESS_STATUSES | FAILURE_STATUSES


#: Bounds on server text kept per job: real answers are far below them; a hostile or broken
#: server must not be able to put megabytes into every history line.
ID_MAX = 200
STATUS_MAX = 64
ERROR_MAX = 2000
MODEL_MAX = 100
#: Output URLs kept per job: a real job has one; a hostile answer must not make a history line
#: of megabytes or a detail pane that takes seconds to draw. The rest are counted, not kept.
OUTPUTS_MAX = 100
#: A server time outside these years is not a time this machine can show (year 1, 9999...):
#: it is taken as absent, so every formatter downstream only ever sees showable times.
SHOWABLE_YEARS = (1970, 9998)
#: The same bounds in epoch seconds (a day inside them, so no time zone pushes a time out).
SHOWABLE_SECONDS = (86400.0, 253370764800.0 - 86400.0)


def showable_time(ts: object) -> bool:
    """Whether epoch seconds can be turned into a date on any platform and in any zone."""
    return (isinstance(ts, (int, float)) and not isinstance(ts, bool)
            and SHOWABLE_SECONDS[0] <= ts <= SHOWABLE_SECONDS[1])  # NaN compares false


def usable_prediction_id(value: str) -> str | None:
    """Why `value` cannot be a prediction id (it goes into URL paths and file names), or None.

    `.` and `..` are refused like `/`: a path built from them changes meaning.
    """
    if not value or len(value) > ID_MAX or not value.isprintable():
        return "is not a usable prediction id"
    if any(ch.isspace() or ch in "/?#\\" for ch in value):
        return "contains characters a prediction id never has"
    if value.strip(".") == "":
        return "is only dots: a path built from it would change meaning"
    return None


def is_terminal(status: str | None) -> bool:
    return (status or "").lower() in TERMINAL_STATUSES


_FRACTION = re.compile(r"\.(\d+)")


def parse_created_at(value: Any) -> datetime | None:
    """Parse both seen formats to an aware UTC datetime; None when absent or unreadable.

    "2026-01-01 00:00:00" (no zone, taken as UTC) and "2025-11-07T02:35:15.34950574Z"
    (RFC 3339 with more fractional digits than Python accepts).
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        parsed = parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # also a zone that pushes year 1 or 9999 out of range
        return None
    if not SHOWABLE_YEARS[0] <= parsed.year <= SHOWABLE_YEARS[1]:
        return None
    return parsed


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value == value and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except (ValueError, OverflowError):  # "nan", "1e400"
            return None
    return None


def _result_url(urls: Any) -> str | None:
    if isinstance(urls, dict):
        get = urls.get("get")
        return get if isinstance(get, str) else None
    if isinstance(urls, list):
        for item in urls:
            if isinstance(item, dict) and isinstance(item.get("get"), str):
                return item["get"]
            if isinstance(item, str):
                return item
    return None


@dataclass(frozen=True)
class Prediction:
    id: str
    status: str
    model: str | None = None
    outputs: tuple[str, ...] = ()
    result_url: str | None = None
    error: str | None = None
    execution_time_ms: int | None = None
    inference_time_ms: int | None = None
    has_nsfw_contents: tuple[bool, ...] = ()
    created_at: datetime | None = None
    #: Output URLs the server sent beyond OUTPUTS_MAX: counted, not kept.
    outputs_omitted: int = 0
    #: The `data` object as received, for the detail pane's raw view.
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_terminal(self) -> bool:
        return is_terminal(self.status)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "Prediction":
        """Build from the envelope's `data` object. Raises ValueError when unusable."""
        if not isinstance(data, dict):
            raise ValueError("data is not an object")
        pid = data.get("id")
        if isinstance(pid, int) and not isinstance(pid, bool):
            pid = str(pid)
        if not isinstance(pid, str) or not pid.strip():
            raise ValueError("data.id is missing")
        pid = pid.strip()
        if usable_prediction_id(pid) is not None:
            raise ValueError("data.id is not a usable prediction id")
        status = data.get("status")
        if not isinstance(status, str) or not status.strip():
            # Without a status nothing can be said about the job: not "unknown", not finished.
            raise ValueError("data.status is missing")
        status = status.strip()
        if len(status) > STATUS_MAX or not status.isprintable():
            raise ValueError("data.status is not a status word")
        outputs_raw = data.get("outputs")
        every_output = [o for o in outputs_raw if isinstance(o, str)] if isinstance(outputs_raw, list) else []
        outputs = tuple(every_output[:OUTPUTS_MAX])
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message") if isinstance(error.get("message"), str) else None
        error = error if isinstance(error, str) and error.strip() else None
        if error is not None and len(error) > ERROR_MAX:
            error = error[: ERROR_MAX - 1] + "…"
        timings = data.get("timings")
        inference = _as_int(timings.get("inference")) if isinstance(timings, dict) else None
        nsfw_raw = data.get("has_nsfw_contents")
        nsfw = tuple(x for x in nsfw_raw[:OUTPUTS_MAX] if isinstance(x, bool)) if isinstance(nsfw_raw, list) else ()
        model = data.get("model")
        return cls(
            id=pid,
            status=status,
            model=model[:MODEL_MAX] if isinstance(model, str) else None,
            outputs=outputs,
            result_url=_result_url(data.get("urls")),
            error=error,
            execution_time_ms=_as_int(data.get("executionTime")),
            inference_time_ms=inference,
            has_nsfw_contents=nsfw,
            created_at=parse_created_at(data.get("created_at")),
            outputs_omitted=len(every_output) - len(outputs),
            raw=data,
        )
