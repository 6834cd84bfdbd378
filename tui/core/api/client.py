"""Async client for the gptproto Hailuo video API.

`create()` submits a job (POST), `result()` reads one back (GET). Every answer is turned
into a `Prediction` or into one of the typed errors of `tui.core.api.errors`, whatever shape
the server's envelope takes. Retry rules follow the API notes: result queries are retried
with growing delays and honour Retry-After; a submit is retried only when it surely never
reached the server, because a second POST is a second charge.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import socket
import time
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urljoin, urlsplit

import httpx

from tui import __version__
from tui.core.api.errors import (
    ApiError,
    BadRequestError,
    ContentPolicyError,
    InsufficientBalanceError,
    InvalidKeyError,
    MalformedResponseError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RedirectError,
    ServerError,
    SubmitOutcomeUnknownError,
    redact,
)
from tui.core.api.models import Prediction
from tui.core.text import one_line

log = logging.getLogger("tui.core.api")

USER_AGENT = f"hailuo-tui/{__version__}"

#: Statuses worth asking again for a result query (NOTES.md "Retrying").
RETRYABLE_GET_STATUSES = frozenset({429, 500, 502, 503, 504})
#: A submit refused with 429 or never connected is re-sent at most this many times.
POST_RETRIES = 2
MAX_REDIRECTS = 3
#: A Retry-After longer than this is not waited out in full (a broken header must not hang us).
RETRY_AFTER_MAX = 300.0
#: Bodies larger than this are not read: no envelope of this API comes near it.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: The `data` object of an answer larger than this (or nested deeper than RAW_KEEP_DEPTH) is
#: not kept for the raw view: the history must not grow by megabytes per poll.
RAW_KEEP_BYTES = 16 * 1024
RAW_KEEP_DEPTH = 12
MESSAGE_TEXT_MAX = 160
EXCERPT_MAX = 80
DETAIL_MAX = 500

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: Containers nested deeper than this in an answer are dropped (read as null) when the whole
#: answer is too deep for the decoder: the top levels (id, status, outputs) are still used.
DECODE_KEEP_DEPTH = 64
#: Integers with more digits than this are read as null (Python refuses > 4300 digits outright).
INT_DIGITS_MAX = 30

_POLICY = re.compile(
    r"content[\s_-]*polic|policy[\s_-]*violat|safety|sensitive|moderation|nsfw|prohibited content",
    re.IGNORECASE,
)
_BALANCE_WORDS = re.compile(r"balance|quota|credit|insufficient(?![\s_-]*permission)", re.IGNORECASE)

# Error `type` values seen in this API's documented error bodies, mapped to a status when
# the body arrives without a usable one (e.g. under HTTP 200).
_TYPE_STATUS = (
    (re.compile(r"invalid[\s_-]*api[\s_-]*key|authenticat|unauthori", re.I), 401),
    (re.compile(r"rate[\s_-]*limit|too[\s_-]*many", re.I), 429),
    (re.compile(r"permission|forbidden|balance|quota|credit", re.I), 403),
    (re.compile(r"not[\s_-]*found", re.I), 404),
    (re.compile(r"invalid[\s_-]*request|bad[\s_-]*request|validation", re.I), 400),
)


def sanitize(text: str, *, secret: str | None = None, limit: int = MESSAGE_TEXT_MAX) -> str:
    """Server text made safe for one line of a terminal: no escape sequences, no control
    characters, no key, bounded length."""
    return one_line(redact(one_line(text), secret), limit=limit)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    try:
        return max(0.0, when.timestamp() - current)
    except (OverflowError, OSError, ValueError):
        return None


# -- decoding: the one place server text enters -------------------------------------------------

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# A JSON string, or one bracket: enough to find how deep each container sits.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _finite_float(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None  # 1e999 is not a number anything can show


def _bounded_int(text: str) -> int | None:
    return int(text) if len(text.lstrip("-")) <= INT_DIGITS_MAX else None


def _mend(text: str) -> str:
    """A string that can be encoded: lone surrogates (valid JSON escapes, invalid text) become U+FFFD."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def _mended(value: Any) -> Any:
    """Every string of a decoded answer made encodable, keys included; iterative, so any depth."""
    if isinstance(value, str):
        return _mend(value)
    stack = [value] if isinstance(value, (dict, list)) else []
    while stack:
        node = stack.pop()
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for key, item in items:
            if isinstance(item, str):
                node[key] = _mend(item)
            elif isinstance(item, (dict, list)):
                stack.append(item)
            if isinstance(key, str) and not key.isascii() and _LONE_SURROGATE.search(key):
                node[_mend(key)] = node.pop(key)
    return value


def _without_deep_parts(text: str, keep: int) -> str:
    """The JSON text with every container nested deeper than `keep` replaced by null."""
    pieces: list[str] = []
    depth, cut_from, last = 0, -1, 0
    for token in _TOKENS.finditer(text):
        mark = token.group()
        if mark in "[{":
            depth += 1
            if depth == keep + 1 and cut_from < 0:
                cut_from = token.start()
        elif mark in "]}":
            depth -= 1
            if depth == keep and cut_from >= 0:
                pieces.append(text[last:cut_from])
                pieces.append("null")
                last, cut_from = token.end(), -1
    pieces.append(text[last:])
    return "".join(pieces)


def decode_answer(text: str) -> Any:
    """Parse an answer's JSON into values every later step can use: strings that can be
    encoded (written, printed, shown), finite numbers (NaN, Infinity and 1e999 read as null),
    and at most DECODE_KEEP_DEPTH levels when the answer is deeper than the decoder allows.
    Raises ValueError when it is not JSON at all."""
    options = dict(parse_float=_finite_float, parse_int=_bounded_int, parse_constant=lambda _name: None)
    try:
        value = json.loads(text, **options)
    except RecursionError:
        value = json.loads(_without_deep_parts(text, DECODE_KEEP_DEPTH), **options)
    return _mended(value) if _SURROGATE_ESCAPE.search(text) else value


class AnswerTooSlow(httpx.TimeoutException):
    """The whole exchange took longer than the client allows, though each read was in time
    (a body trickling in)."""


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, counted no further than `limit` + 1."""
    depth, level = 0, [value]
    while level and depth <= limit:
        depth += 1
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            break
    return depth


@dataclass
class _Reply:
    """One HTTP answer, read in full (up to MAX_BODY_BYTES)."""

    status: int
    headers: httpx.Headers
    content: bytes
    too_large: bool

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    @property
    def utf8(self) -> bool:
        try:
            self.content.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True


def _as_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _error_fields(payload: Any) -> tuple[str, str]:
    """(message, type) from any of the error body shapes; empty strings when absent."""
    if not isinstance(payload, dict):
        return "", ""
    message = ""
    kind = ""
    error = payload.get("error")
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            message = error["message"]
        for name in ("type", "code"):
            if isinstance(error.get(name), str) and error[name].strip():
                kind = error[name]
                break
    elif isinstance(error, str):
        message = error
    if not message:
        for name in ("message", "msg", "detail"):
            value = payload.get(name)
            if isinstance(value, str) and value.strip().lower() not in {"", "success", "ok"}:
                message = value
                break
    if not kind and isinstance(payload.get("type"), str):
        kind = payload["type"]
    return message, kind


def _connect_failure(exc: BaseException) -> str:
    """Why a connection was never made, from the OS error underneath httpx's."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve (DNS)"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing listens there)"
        cause = cause.__cause__ or cause.__context__
    text = str(exc).lower()
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "the host name does not resolve (DNS)"
    if "connection refused" in text:
        return "connection refused (nothing listens there)"
    return "could not connect"


def _status_from_type(kind: str, message: str) -> int | None:
    for pattern, status in _TYPE_STATUS:
        if pattern.search(kind):
            return status
    for pattern, status in _TYPE_STATUS:
        if pattern.search(message):
            return status
    return None


class HailuoClient:
    """Talks to one gptproto base URL with one key over one shared connection pool."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        auth_scheme: str = "raw",
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        total_timeout: float | None = None,
        max_connections: int = 16,
        get_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the base URL must be an http(s) URL with a host")
        if "@" in parts.netloc:
            # httpx would send them as Basic auth in place of the key (and a 401 would blame the key).
            raise ValueError("the base URL must not contain a user name or password")
        if auth_scheme not in ("raw", "bearer"):
            raise ValueError("auth_scheme must be 'raw' or 'bearer'")
        self.base_url = base_url.strip().rstrip("/")
        self._origin = self._origin_of(httpx.URL(self.base_url))
        self._host = parts.netloc.rpartition("@")[2]
        self._key = (api_key or "").strip() or None
        self.auth_scheme = auth_scheme
        self._get_retries = max(0, int(get_retries))
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        # Per-read timeouts do not bound a body that trickles in: this bounds the whole exchange.
        self._total_timeout = total_timeout if total_timeout is not None else connect_timeout + 2 * read_timeout
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            event_hooks={"request": [self._guard_authorization]},
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"HailuoClient({self.base_url!r}, auth_scheme={self.auth_scheme!r}, key={'set' if self._key else 'missing'})"

    # -- public API ---------------------------------------------------------------------

    async def create(self, model: str, scene: str, body: dict) -> Prediction:
        """Submit a job. Re-sent only after a 429 or a connection that was never made;
        once the request may have reached the server, failures raise
        SubmitOutcomeUnknownError and nothing is sent again."""
        self._require_key()
        url = f"{self.base_url}/api/v3/minimax/{quote(model, safe='')}/{quote(scene, safe='')}"
        attempt = 0
        while True:
            failure: ApiError | None = None
            retry_after: float | None = None
            try:
                reply = await self._exchange("POST", url, body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # No connection was made: the server cannot have seen this request.
                failure = self._network_error(exc)
            except httpx.HTTPError as exc:
                cause = self._network_error(exc)
                failure = SubmitOutcomeUnknownError(self._unknown_message(cause), cause=cause)
            if failure is None:
                try:
                    return self._interpret(reply)
                except RateLimitedError as exc:
                    failure, retry_after = exc, exc.retry_after
                except (ServerError, MalformedResponseError) as exc:
                    failure = SubmitOutcomeUnknownError(self._unknown_message(exc), cause=exc)
                except ApiError as exc:
                    failure = exc
            retryable = isinstance(failure, (RateLimitedError, NetworkError)) and attempt < POST_RETRIES
            if not retryable:
                log.info("POST %s failed: %s", self._path(url), failure.message)
                raise failure
            delay = self._delay(attempt, retry_after)
            log.info("POST %s: %s; trying again in %.1fs", self._path(url), failure.message, delay)
            await self._sleep(delay)
            attempt += 1

    async def result(self, prediction_id: str) -> Prediction:
        """Read one prediction; retried on 429, 500/502/503/504, connection errors and
        timeouts, up to `get_retries` times."""
        self._require_key()
        if not isinstance(prediction_id, str) or not prediction_id.strip():
            raise ValueError("a prediction id is required")
        url = f"{self.base_url}/api/v3/predictions/{quote(prediction_id.strip(), safe='')}/result"
        attempt = 0
        while True:
            failure: ApiError
            try:
                reply = await self._exchange("GET", url, None)
            except httpx.HTTPError as exc:
                failure = self._network_error(exc)
            else:
                try:
                    prediction = self._interpret(reply)
                    if prediction.id != prediction_id.strip():
                        raise self._malformed(reply.status, "the answer is about another prediction "
                                              f"({sanitize(prediction.id, limit=40)})", "")
                    return prediction
                except ApiError as exc:
                    failure = exc
            if attempt >= self._get_retries or not self._get_retryable(failure):
                log.info("GET %s failed: %s", self._path(url), failure.message)
                raise failure
            delay = self._delay(attempt, getattr(failure, "retry_after", None))
            log.info("GET %s: %s; trying again in %.1fs", self._path(url), failure.message, delay)
            await self._sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "HailuoClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- sending ------------------------------------------------------------------------

    def _require_key(self) -> None:
        if not self._key:
            raise InvalidKeyError("no API key: set GPTPROTO_API_KEY")
        if not all(" " < ch < "\x7f" for ch in self._key):
            raise InvalidKeyError("the API key contains characters that cannot be sent: check GPTPROTO_API_KEY")

    def _authorization(self) -> str:
        assert self._key is not None
        return f"Bearer {self._key}" if self.auth_scheme == "bearer" else self._key

    @staticmethod
    def _origin_of(url: httpx.URL) -> tuple[str, str, int | None]:
        default = {"http": 80, "https": 443}.get(url.scheme)
        return (url.scheme, url.host.lower(), url.port or default)

    async def _guard_authorization(self, request: httpx.Request) -> None:
        # Last line of defence: whatever built this request, the key goes to the base host only.
        if self._origin_of(request.url) != self._origin:
            request.headers.pop("Authorization", None)

    async def _exchange(self, method: str, url: str, body: dict | None) -> _Reply:
        """Send, following same-origin redirects by hand. Raises httpx errors as they come."""
        for _hop in range(MAX_REDIRECTS + 1):
            request = self._http.build_request(method, url, json=body)
            if self._origin_of(request.url) == self._origin:
                request.headers["Authorization"] = self._authorization()
            reply = await self._read(request)
            log.debug("%s %s -> %d", method, self._path(url), reply.status)
            location = reply.headers.get("Location")
            if reply.status not in _REDIRECT_STATUSES or not location:
                return reply
            try:
                target = httpx.URL(urljoin(url, location.strip()))
                same_origin = self._origin_of(target) == self._origin
            except (httpx.InvalidURL, ValueError):
                target, same_origin = None, False
            if not same_origin:
                where = sanitize(target.host if target is not None and target.host else location, secret=self._key, limit=80)
                raise RedirectError(
                    f"the server redirected to another host ({where}); the request was not followed",
                    status=reply.status,
                )
            url = str(target)
            if reply.status == 303 or (reply.status in (301, 302) and method == "POST"):
                method, body = "GET", None
        raise RedirectError(f"too many redirects (more than {MAX_REDIRECTS}); the request was not followed", status=reply.status)

    async def _read(self, request: httpx.Request) -> _Reply:
        try:
            async with asyncio.timeout(self._total_timeout):
                response = await self._http.send(request, stream=True)
                try:
                    chunks: list[bytes] = []
                    size = 0
                    too_large = False
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_BODY_BYTES:
                            too_large = True
                            break
                        chunks.append(chunk)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise AnswerTooSlow(f"no complete answer within {self._total_timeout:g}s", request=request) from None
        return _Reply(response.status_code, response.headers, b"".join(chunks), too_large)

    # -- reading answers ----------------------------------------------------------------

    def _interpret(self, reply: _Reply) -> Prediction:
        text = reply.text
        if self._key and self._key in text:
            # A server echoing the key back: it must not reach the history or the screen.
            text = text.replace(self._key, "***")
        try:
            payload = decode_answer(text)
        except (ValueError, RecursionError):
            payload = None
        message, kind = _error_fields(payload)
        if reply.status >= 400:
            if payload is None and not message:
                message = text if not reply.too_large else ""
            raise self._error_for(reply.status, message, kind, reply.headers)
        if not 200 <= reply.status < 300:
            raise self._malformed(reply.status, f"unexpected HTTP status {reply.status}", text)
        if reply.too_large:
            raise self._malformed(reply.status, "the response was too large", "")
        content_type = reply.headers.get("Content-Type", "")
        if "json" not in content_type.lower():
            kind_shown = sanitize(content_type.split(";")[0], limit=40) or "no content type"
            raise self._malformed(reply.status, f"expected JSON, got {kind_shown}", text)
        if not reply.utf8:
            # JSON is UTF-8: replaced bytes would turn into ids and statuses nobody sent.
            raise self._malformed(reply.status, "the response is not valid UTF-8", text)
        if payload is None:
            raise self._malformed(reply.status, "the response is not valid JSON", text)
        if not isinstance(payload, dict):
            raise self._malformed(reply.status, "the response is not a JSON object", text)
        code = _as_code(payload.get("code"))
        data = payload.get("data")
        if code is not None and 400 <= code <= 599:
            # The body's own error code wins over a 2xx HTTP status.
            raise self._error_for(code, message, kind, reply.headers)
        if not isinstance(data, dict) and (message or kind) and payload.get("error"):
            status = _status_from_type(kind, message) or 500
            raise self._error_for(status, message, kind, reply.headers)
        if not isinstance(data, dict):
            raise self._malformed(reply.status, "`data` is not an object", text)
        try:
            prediction = Prediction.from_data(data)
        except (ValueError, TypeError, OverflowError) as exc:
            raise self._malformed(reply.status, str(exc), text) from None
        if len(reply.content) > RAW_KEEP_BYTES or _depth(data, RAW_KEEP_DEPTH) > RAW_KEEP_DEPTH:
            note = f"not kept: the answer was {len(reply.content):,} bytes or nested too deep to show"
            prediction = replace(prediction, raw={"id": prediction.id, "status": prediction.status, "note": note})
        return prediction

    def _error_for(self, status: int, message: str, kind: str, headers: httpx.Headers) -> ApiError:
        said = sanitize(message, secret=self._key)
        said_kind = sanitize(kind, secret=self._key, limit=60)
        detail = sanitize(" ".join(x for x in (kind, message) if x), secret=self._key, limit=DETAIL_MAX)
        both = f"{kind} {message}"
        suffix = f": {said}" if said else (f": {said_kind}" if said_kind else "")
        if status >= 400 and _POLICY.search(both):
            return ContentPolicyError(f"rejected by the content policy ({status}){suffix}", status=status, detail=detail)
        if status == 401:
            return InvalidKeyError("the API key was refused (401): check GPTPROTO_API_KEY", status=401, detail=detail)
        if status == 403:
            if _BALANCE_WORDS.search(both):
                return InsufficientBalanceError(f"insufficient balance (403){suffix}", status=403, detail=detail)
            return PermissionDeniedError(f"no permission for this request (403){suffix}", status=403, detail=detail)
        if status == 429:
            retry_after = parse_retry_after(headers.get("Retry-After"))
            when = f": retry in {retry_after:.0f}s" if retry_after is not None else suffix
            return RateLimitedError(f"rate limited (429){when}", retry_after=retry_after, status=429, detail=detail)
        if status == 404:
            return NotFoundError(
                f"not found (404){suffix or ': unknown prediction id, or older than the 7-day retention'}",
                status=404,
                detail=detail,
            )
        if status >= 500:
            return ServerError(f"server error ({status}){suffix}", status=status, detail=detail)
        return BadRequestError(f"the request was rejected ({status}){suffix}", status=status, detail=detail)

    def _malformed(self, status: int, why: str, text: str) -> MalformedResponseError:
        excerpt = sanitize(text, secret=self._key, limit=EXCERPT_MAX)
        shown = f": {excerpt!r}" if excerpt else ""
        return MalformedResponseError(
            f"malformed response from the server ({why}){shown}",
            status=status,
            detail=sanitize(text, secret=self._key, limit=DETAIL_MAX),
        )

    def _network_error(self, exc: httpx.HTTPError) -> NetworkError:
        if isinstance(exc, AnswerTooSlow):
            what = f"the answer came too slowly (over {self._total_timeout:g}s)"
        elif isinstance(exc, httpx.TimeoutException):
            what = {
                httpx.ConnectTimeout: "connecting timed out",
                httpx.ReadTimeout: "no answer in time",
                httpx.WriteTimeout: "sending timed out",
                httpx.PoolTimeout: "no free connection in time",
            }.get(type(exc), "timed out")
        elif isinstance(exc, httpx.ConnectError):
            what = _connect_failure(exc)
        elif isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            what = "the connection was dropped"
        else:
            what = type(exc).__name__
        host = sanitize(self._host, secret=self._key, limit=80)
        return NetworkError(f"network error: {what} ({host})", detail=sanitize(str(exc), secret=self._key, limit=DETAIL_MAX))

    @staticmethod
    def _unknown_message(cause: ApiError) -> str:
        return (
            f"the submit may or may not have reached the server ({cause.message}); "
            "check before submitting again"
        )

    @staticmethod
    def _get_retryable(error: ApiError) -> bool:
        if isinstance(error, (RateLimitedError, NetworkError)):
            return True
        return isinstance(error, ServerError) and error.status in RETRYABLE_GET_STATUSES

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_MAX)
        ceiling = min(self._backoff_max, self._backoff_base * (2**attempt))
        # Equal jitter: at least half the ceiling, so delays still grow, but clients spread out.
        return ceiling / 2 + self._rng.random() * ceiling / 2

    def _path(self, url: str) -> str:
        return urlsplit(url).path
