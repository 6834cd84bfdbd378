"""Errors a user can act on. Each carries a one-line human message.

No error ever holds the API key: messages are built from status codes and server text
only, and `redact()` scrubs any text that came from elsewhere before it is stored.
"""

from __future__ import annotations

import re

# Anything shaped like a gptproto key, in case a server echoes one back.
_KEYISH = re.compile(r"sk-[A-Za-z0-9_\-]{6,}")


def redact(text: str, secret: str | None = None) -> str:
    """Remove the key (and anything key-shaped) from text meant for a user or a log."""
    if secret:
        text = text.replace(secret, "***")
    return _KEYISH.sub("sk-***", text)


class ApiError(Exception):
    """Base class. `message` is one line fit for a status bar or a CLI error."""

    kind = "error"
    #: Exit code of the headless CLI for this class of error.
    exit_code = 4

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class InvalidKeyError(ApiError):
    kind = "invalid_key"
    exit_code = 3


class PermissionDeniedError(ApiError):
    """403: no permission for the resource, or insufficient balance."""

    kind = "permission"
    exit_code = 3


class InsufficientBalanceError(PermissionDeniedError):
    kind = "insufficient_balance"


class RateLimitedError(ApiError):
    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = 429, detail: str = "") -> None:
        super().__init__(message, status=status, detail=detail)
        self.retry_after = retry_after


class ContentPolicyError(ApiError):
    kind = "content_policy"
    exit_code = 2


class BadRequestError(ApiError):
    """A 400 that is not a content-policy rejection: the request itself is wrong."""

    kind = "bad_request"
    exit_code = 2


class NotFoundError(ApiError):
    """404: unknown id, or a prediction past the retention time."""

    kind = "not_found"
    exit_code = 1


class ServerError(ApiError):
    kind = "server_error"


class MalformedResponseError(ApiError):
    kind = "malformed"


class NetworkError(ApiError):
    """The request never got an answer: connection refused, DNS, timeout, reset."""

    kind = "network"


class SubmitOutcomeUnknownError(ApiError):
    """A POST may have reached the server but no answer came back.

    The job may exist and may be billed; it is never re-sent automatically.
    """

    kind = "unknown_outcome"
    exit_code = 5

    def __init__(self, message: str, *, cause: ApiError | None = None) -> None:
        super().__init__(message, status=cause.status if cause else None)
        self.cause = cause


class RedirectError(ApiError):
    """The server redirected to another host (or too often): the request was not followed,
    so the key never leaves the configured host."""

    kind = "redirect"


class DuplicateIdError(ApiError):
    """A submit was answered with the id of a job the history already has. Which job the server
    made of this request (if any) cannot be known: like an unknown outcome, never re-sent."""

    kind = "duplicate_id"
    exit_code = 5


class PollingHalted(ApiError):
    """Polling stopped for the key (refused or without permission): a wait cannot end by itself."""

    kind = "polling_halted"
    exit_code = 3


class UnusableIdError(ApiError):
    """An id that cannot name a prediction (`.`, `..`, a slash...): refused before any request."""

    kind = "bad_id"
    exit_code = 2
