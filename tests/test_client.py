"""HailuoClient against mocked HTTP (respx): envelopes, errors, retries, redirects, the key."""

from __future__ import annotations

import email.utils
import json
import random
import time

import httpx
import pytest
import respx

from tui.core.api.client import HailuoClient, parse_retry_after, sanitize
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
)

BASE = "https://api.example.test"
KEY = "sk-test-Secret0123456789"
CREATE_URL = f"{BASE}/api/v3/minimax/hailuo-2.3-fast/text-to-video"
RESULT_URL = f"{BASE}/api/v3/predictions/pred-1/result"
BODY = {"prompt": "a cat on a skateboard", "duration": 6}


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client(sleeps):
    c = HailuoClient(BASE, KEY, sleep=sleeps, rng=random.Random(7))
    yield c
    await c.aclose()


def envelope(**data) -> dict:
    base = {"id": "pred-1", "model": "hailuo-2.3-fast", "status": "processing", "outputs": []}
    base.update(data)
    return {"data": base, "message": "success", "code": 200}


def assert_keyless(error: BaseException) -> None:
    for text in (str(error), repr(error), getattr(error, "message", ""), getattr(error, "detail", "")):
        assert KEY not in text
        assert "Secret0123456789" not in text
    cause = getattr(error, "cause", None)
    if cause is not None:
        assert_keyless(cause)


# -- envelopes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "check"),
    [
        ({"urls": {"get": "https://x/r1"}}, lambda p: p.result_url == "https://x/r1"),
        ({"urls": [{"get": "https://x/r2"}]}, lambda p: p.result_url == "https://x/r2"),
        ({"error": None}, lambda p: p.error is None),
        ({"error": ""}, lambda p: p.error is None),
        ({"status": "failed", "error": "boom"}, lambda p: p.error == "boom" and p.is_terminal),
        ({"has_nsfw_contents": []}, lambda p: p.has_nsfw_contents == ()),
        ({"has_nsfw_contents": None}, lambda p: p.has_nsfw_contents == ()),
        ({"has_nsfw_contents": [False, True]}, lambda p: p.has_nsfw_contents == (False, True)),
        ({"created_at": "2026-01-01 00:00:00"}, lambda p: p.created_at.isoformat() == "2026-01-01T00:00:00+00:00"),
        (
            {"created_at": "2025-11-07T02:35:15.34950574Z"},
            lambda p: p.created_at.isoformat() == "2025-11-07T02:35:15.349505+00:00",
        ),
        ({"brand_new_field": {"x": 1}}, lambda p: p.id == "pred-1"),
        ({"status": "warming_up"}, lambda p: p.status == "warming_up" and not p.is_terminal),
        (
            {"status": "completed", "outputs": ["https://cdn/v.mp4"], "executionTime": 380841, "timings": {"inference": 380841}},
            lambda p: p.outputs == ("https://cdn/v.mp4",) and p.execution_time_ms == 380841 and p.is_terminal,
        ),
    ],
)
@respx.mock
async def test_result_parses_every_envelope_variant(client, data, check):
    respx.get(RESULT_URL).respond(200, json=envelope(**data))
    prediction = await client.result("pred-1")
    assert check(prediction)


@respx.mock
async def test_create_posts_body_to_model_and_scene(client):
    route = respx.post(CREATE_URL).respond(200, json=envelope(status="created"))
    prediction = await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert prediction.id == "pred-1" and prediction.status == "created"
    assert json.loads(route.calls.last.request.content) == BODY
    assert route.calls.last.request.headers["User-Agent"].startswith("hailuo-tui/")


# -- malformed answers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>Bad gateway\x1b[31m page</html>", headers={"Content-Type": "text/html"}),
        httpx.Response(200, text='{"data": {"id": "pred-1", "sta', headers={"Content-Type": "application/json"}),
        httpx.Response(200, text="not json at all", headers={"Content-Type": "application/json"}),
        httpx.Response(200, json=envelope(), headers={"Content-Type": "text/plain"}),
        httpx.Response(200, json={"data": "pred-1", "code": 200}),
        httpx.Response(200, json={"data": None, "code": 200}),
        httpx.Response(200, json=[1, 2, 3]),
        httpx.Response(200, json={"data": {"status": "processing"}, "code": 200}),
    ],
)
@respx.mock
async def test_malformed_responses_raise_malformed_with_safe_excerpt(client, response):
    route = respx.get(RESULT_URL).mock(return_value=response)
    with pytest.raises(MalformedResponseError) as info:
        await client.result("pred-1")
    message = info.value.message
    assert "\n" not in message and "\x1b" not in message
    assert len(message) < 200
    assert route.call_count == 1  # a malformed answer is not asked again
    assert_keyless(info.value)


@respx.mock
async def test_malformed_excerpt_is_bounded_and_free_of_control_characters(client):
    junk = "\x1b]0;pwned\x07" + "A" * 5000 + "\r\nrm -rf\x00"
    respx.get(RESULT_URL).respond(200, text=junk, headers={"Content-Type": "application/json"})
    with pytest.raises(MalformedResponseError) as info:
        await client.result("pred-1")
    text = info.value.message
    assert "pwned" not in text and "\x07" not in text and "\r" not in text and "\x00" not in text
    assert len(text) < 200
    assert "AAAA" in text


# -- error classes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected", "fragment"),
    [
        (401, {"error": {"message": "Invalid API key", "type": "invalid_api_key"}}, InvalidKeyError, "GPTPROTO_API_KEY"),
        (403, {"error": {"message": "not allowed to use this model", "type": "permission_error"}}, PermissionDeniedError, "no permission"),
        (403, {"error": {"message": "Insufficient balance", "type": "insufficient_quota"}}, InsufficientBalanceError, "insufficient balance"),
        (403, {"error": {"message": "Your credit is exhausted", "type": "permission_error"}}, InsufficientBalanceError, "credit"),
        (400, {"error": {"message": "prompt violates content policy", "type": "content_policy_violation"}}, ContentPolicyError, "content policy"),
        (503, {"error": {"message": "Content blocked due to safety concerns", "type": "server_error"}}, ContentPolicyError, "safety"),
        (400, {"error": {"message": "duration must be 6 or 10", "type": "invalid_request_error"}}, BadRequestError, "duration must be 6 or 10"),
        (422, {"message": "resolution not supported"}, BadRequestError, "resolution not supported"),
        (404, {"error": {"message": "prediction not found", "type": "not_found"}}, NotFoundError, "404"),
        (500, {"error": {"message": "internal error", "type": "server_error"}}, ServerError, "500"),
        (501, {"message": "not implemented"}, ServerError, "501"),
    ],
)
@respx.mock
async def test_error_statuses_map_to_typed_errors(sleeps, status, body, expected, fragment):
    respx.post(CREATE_URL).respond(status, json=body)
    respx.get(RESULT_URL).respond(status, json=body)
    async with HailuoClient(BASE, KEY, sleep=sleeps, get_retries=0) as client:
        with pytest.raises(ApiError) as info:
            await client.result("pred-1")
    error = info.value
    assert type(error) is expected
    assert fragment in error.message
    assert "\n" not in error.message
    assert error.status == status
    assert_keyless(error)


@respx.mock
async def test_invalid_key_message_is_the_documented_one(client):
    respx.get(RESULT_URL).respond(401, json={"error": {"message": "bad key", "type": "invalid_api_key"}})
    with pytest.raises(InvalidKeyError) as info:
        await client.result("pred-1")
    assert info.value.message == "the API key was refused (401): check GPTPROTO_API_KEY"


@respx.mock
async def test_error_with_html_body_keeps_status_class(sleeps):
    respx.get(RESULT_URL).respond(502, text="<html>\x1b[2J gateway</html>", headers={"Content-Type": "text/html"})
    async with HailuoClient(BASE, KEY, sleep=sleeps, get_retries=0) as client:
        with pytest.raises(ServerError) as info:
            await client.result("pred-1")
    assert "502" in info.value.message and "\x1b" not in info.value.message


@respx.mock
async def test_server_text_echoing_the_key_is_redacted(client):
    respx.get(RESULT_URL).respond(400, json={"error": {"message": f"key {KEY} is not valid for this model\n\x1b[31m"}})
    with pytest.raises(BadRequestError) as info:
        await client.result("pred-1")
    assert "is not valid for this model" in info.value.message
    assert "\x1b" not in info.value.message
    assert_keyless(info.value)


@respx.mock
async def test_long_server_text_is_capped(client):
    respx.get(RESULT_URL).respond(400, json={"error": {"message": "x" * 10_000}})
    with pytest.raises(BadRequestError) as info:
        await client.result("pred-1")
    assert len(info.value.message) < 220
    assert len(info.value.detail) <= 500


# -- body code against HTTP status --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"code": 401, "message": "invalid api key", "data": None}, InvalidKeyError),
        ({"code": 403, "message": "insufficient balance", "data": None}, InsufficientBalanceError),
        ({"code": 400, "message": "sensitive content detected", "data": None}, ContentPolicyError),
        ({"code": 400, "message": "bad duration", "data": None}, BadRequestError),
        ({"code": "404", "message": "no such prediction"}, NotFoundError),
        ({"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded"}}, RateLimitedError),
        ({"error": {"message": "Invalid key", "type": "invalid_api_key"}}, InvalidKeyError),
    ],
)
@respx.mock
async def test_error_code_in_body_under_http_200_is_an_error(sleeps, body, expected):
    respx.get(RESULT_URL).respond(200, json=body)
    async with HailuoClient(BASE, KEY, sleep=sleeps, get_retries=0) as client:
        with pytest.raises(expected):
            await client.result("pred-1")


@respx.mock
async def test_success_code_under_http_error_status_is_still_the_http_error(client):
    respx.get(RESULT_URL).respond(404, json={"code": 200, "message": "success", "data": envelope()["data"]})
    with pytest.raises(NotFoundError):
        await client.result("pred-1")


@respx.mock
async def test_error_code_in_body_under_200_on_create_is_not_retried(client):
    route = respx.post(CREATE_URL).respond(200, json={"code": 400, "message": "prompt too long"})
    with pytest.raises(BadRequestError):
        await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert route.call_count == 1


# -- Retry-After ---------------------------------------------------------------------------


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    now = time.time()
    date = email.utils.formatdate(now + 20, usegmt=True)
    assert 18 <= parse_retry_after(date, now=now) <= 21
    assert parse_retry_after(email.utils.formatdate(now - 100, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    assert parse_retry_after(None) is None


@respx.mock
async def test_rate_limited_error_carries_retry_after_seconds(sleeps):
    respx.get(RESULT_URL).respond(429, json={"error": {"message": "slow down", "type": "rate_limit_error"}}, headers={"Retry-After": "12"})
    async with HailuoClient(BASE, KEY, sleep=sleeps, get_retries=0) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.result("pred-1")
    assert info.value.retry_after == 12.0
    assert "12s" in info.value.message


@respx.mock
async def test_rate_limited_error_carries_retry_after_date(sleeps):
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    respx.get(RESULT_URL).respond(429, json={}, headers={"Retry-After": date})
    async with HailuoClient(BASE, KEY, sleep=sleeps, get_retries=0) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.result("pred-1")
    assert 27 <= info.value.retry_after <= 31


# -- GET retries --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
@respx.mock
async def test_get_retries_transient_statuses_then_succeeds(client, sleeps, status):
    route = respx.get(RESULT_URL)
    route.side_effect = [httpx.Response(status, json={}), httpx.Response(status, json={}), httpx.Response(200, json=envelope(status="completed"))]
    prediction = await client.result("pred-1")
    assert prediction.status == "completed"
    assert route.call_count == 3
    assert len(sleeps.delays) == 2


@respx.mock
async def test_get_gives_up_after_get_retries_with_growing_capped_delays(sleeps):
    route = respx.get(RESULT_URL).respond(503, json={"error": {"message": "overloaded"}})
    async with HailuoClient(BASE, KEY, sleep=sleeps, get_retries=6, backoff_base=0.5, backoff_max=4.0, rng=random.Random(1)) as client:
        with pytest.raises(ServerError) as info:
            await client.result("pred-1")
    assert "503" in info.value.message
    assert route.call_count == 7
    ceilings = [min(4.0, 0.5 * 2**n) for n in range(6)]
    assert len(sleeps.delays) == 6
    for delay, ceiling in zip(sleeps.delays, ceilings):
        assert ceiling / 2 <= delay <= ceiling
    assert sleeps.delays[3] > sleeps.delays[0]
    assert max(sleeps.delays) <= 4.0


@respx.mock
async def test_get_honours_retry_after(client, sleeps):
    route = respx.get(RESULT_URL)
    route.side_effect = [
        httpx.Response(429, json={}, headers={"Retry-After": "9"}),
        httpx.Response(200, json=envelope()),
    ]
    await client.result("pred-1")
    assert sleeps.delays == [9.0]


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped")])
@respx.mock
async def test_get_retries_network_errors_then_raises_network_error(sleeps, exc):
    route = respx.get(RESULT_URL).mock(side_effect=exc)
    async with HailuoClient(BASE, KEY, sleep=sleeps, get_retries=2) as client:
        with pytest.raises(NetworkError) as info:
            await client.result("pred-1")
    assert route.call_count == 3
    assert len(sleeps.delays) == 2
    assert "api.example.test" in info.value.message
    assert_keyless(info.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
@respx.mock
async def test_get_never_retries_client_errors(client, sleeps, status):
    route = respx.get(RESULT_URL).respond(status, json={"error": {"message": "no"}})
    with pytest.raises(ApiError):
        await client.result("pred-1")
    assert route.call_count == 1
    assert sleeps.delays == []


@respx.mock
async def test_policy_named_503_is_not_retried(client, sleeps):
    route = respx.get(RESULT_URL).respond(503, json={"error": {"message": "Content policy violation"}})
    with pytest.raises(ContentPolicyError):
        await client.result("pred-1")
    assert route.call_count == 1


# -- POST retries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout("no answer"), httpx.RemoteProtocolError("peer closed"), httpx.ReadError("reset"), httpx.WriteTimeout("stuck")],
)
@respx.mock
async def test_post_that_may_have_reached_server_is_sent_once(client, sleeps, exc):
    route = respx.post(CREATE_URL).mock(side_effect=exc)
    with pytest.raises(SubmitOutcomeUnknownError) as info:
        await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert route.call_count == 1
    assert sleeps.delays == []
    assert isinstance(info.value.cause, NetworkError)
    assert "check before submitting again" in info.value.message
    assert_keyless(info.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@respx.mock
async def test_post_answered_with_5xx_is_unknown_and_sent_once(client, status):
    route = respx.post(CREATE_URL).respond(status, json={"error": {"message": "upstream hiccup"}})
    with pytest.raises(SubmitOutcomeUnknownError) as info:
        await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert route.call_count == 1
    assert isinstance(info.value.cause, ServerError)
    assert info.value.status == status


@respx.mock
async def test_post_answered_with_garbage_is_unknown_and_sent_once(client):
    route = respx.post(CREATE_URL).respond(200, text="<html>oops", headers={"Content-Type": "text/html"})
    with pytest.raises(SubmitOutcomeUnknownError) as info:
        await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert route.call_count == 1
    assert isinstance(info.value.cause, MalformedResponseError)


@respx.mock
async def test_post_retried_after_connect_error(client, sleeps):
    route = respx.post(CREATE_URL)
    route.side_effect = [httpx.ConnectError("refused"), httpx.Response(200, json=envelope(status="created"))]
    prediction = await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert prediction.id == "pred-1"
    assert route.call_count == 2
    assert len(sleeps.delays) == 1


@respx.mock
async def test_post_connect_errors_give_up_as_network_error(client, sleeps):
    route = respx.post(CREATE_URL).mock(side_effect=httpx.ConnectTimeout("no route"))
    with pytest.raises(NetworkError):
        await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert route.call_count == 3
    assert len(sleeps.delays) == 2


@respx.mock
async def test_post_retried_after_429_honouring_retry_after(client, sleeps):
    route = respx.post(CREATE_URL)
    route.side_effect = [
        httpx.Response(429, json={}, headers={"Retry-After": "3"}),
        httpx.Response(200, json=envelope(status="created")),
    ]
    await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert route.call_count == 2
    assert sleeps.delays == [3.0]


@respx.mock
async def test_post_429_storm_gives_up_after_a_couple_of_tries(client, sleeps):
    route = respx.post(CREATE_URL).respond(429, json={}, headers={"Retry-After": "2"})
    with pytest.raises(RateLimitedError) as info:
        await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert route.call_count == 3
    assert sleeps.delays == [2.0, 2.0]
    assert info.value.retry_after == 2.0


@pytest.mark.parametrize("status", [400, 401, 403, 404])
@respx.mock
async def test_post_never_retries_client_errors(client, sleeps, status):
    route = respx.post(CREATE_URL).respond(status, json={"error": {"message": "no"}})
    with pytest.raises(ApiError) as info:
        await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert not isinstance(info.value, SubmitOutcomeUnknownError)
    assert route.call_count == 1 and sleeps.delays == []


# -- the key ------------------------------------------------------------------------------


@respx.mock
async def test_raw_authorization_header_by_default(client):
    route = respx.get(RESULT_URL).respond(200, json=envelope())
    await client.result("pred-1")
    assert route.calls.last.request.headers["Authorization"] == KEY


@respx.mock
async def test_bearer_authorization_header():
    route = respx.post(CREATE_URL).respond(200, json=envelope())
    async with HailuoClient(BASE, KEY, auth_scheme="bearer") as client:
        await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("key", [None, "", "   "])
@respx.mock
async def test_missing_key_fails_before_sending(key):
    route = respx.route().respond(200, json=envelope())
    async with HailuoClient(BASE, key) as client:
        with pytest.raises(InvalidKeyError) as info:
            await client.create("hailuo-2.3-fast", "text-to-video", BODY)
        with pytest.raises(InvalidKeyError):
            await client.result("pred-1")
    assert "GPTPROTO_API_KEY" in info.value.message
    assert route.call_count == 0


def test_client_repr_hides_the_key():
    client = HailuoClient(BASE, KEY)
    assert KEY not in repr(client) and KEY not in str(client)


@respx.mock
async def test_same_host_redirect_is_followed_with_the_key(client):
    respx.get(RESULT_URL).respond(307, headers={"Location": "/v2/predictions/pred-1/result"})
    moved = respx.get(f"{BASE}/v2/predictions/pred-1/result").respond(200, json=envelope(status="completed"))
    prediction = await client.result("pred-1")
    assert prediction.status == "completed"
    assert moved.calls.last.request.headers["Authorization"] == KEY


@pytest.mark.parametrize(
    "location",
    ["https://evil.example.test/steal", "http://api.example.test/api/v3/predictions/pred-1/result", "https://api.example.test:8443/x"],
)
@respx.mock
async def test_redirect_to_another_origin_is_not_followed(client, location):
    respx.get(RESULT_URL).respond(302, headers={"Location": location})
    elsewhere = respx.route(url__regex=r"^(?!https://api\.example\.test/api/v3/predictions/pred-1/result$).*").respond(200, json=envelope())
    with pytest.raises(RedirectError) as info:
        await client.result("pred-1")
    assert "redirected to another host" in info.value.message
    assert "not followed" in info.value.message
    assert elsewhere.call_count == 0
    assert_keyless(info.value)


@respx.mock
async def test_redirect_loop_stops_after_three_hops(client):
    route = respx.get(RESULT_URL).respond(301, headers={"Location": RESULT_URL})
    with pytest.raises(RedirectError) as info:
        await client.result("pred-1")
    assert route.call_count == 4
    assert "too many redirects" in info.value.message


@respx.mock
async def test_redirect_on_post_to_another_host_sends_nothing_there(client):
    respx.post(CREATE_URL).respond(308, headers={"Location": "https://other.test/api"})
    other = respx.route(host="other.test").respond(200, json=envelope())
    with pytest.raises(RedirectError):
        await client.create("hailuo-2.3-fast", "text-to-video", BODY)
    assert other.call_count == 0


async def test_request_to_another_host_never_carries_the_key():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=envelope())

    client = HailuoClient(BASE, KEY, transport=httpx.MockTransport(handler))
    try:
        # Even a request built by hand on the shared pool loses the key off the base host.
        await client._http.get("https://elsewhere.test/x", headers={"Authorization": KEY})
        await client.result("pred-1")
    finally:
        await client.aclose()
    assert "Authorization" not in seen[0].headers
    assert seen[1].headers["Authorization"] == KEY


# -- the key in every error ---------------------------------------------------------------


def _error_responses():
    msg = f"echo {KEY}"
    yield httpx.Response(401, json={"error": {"message": msg}})
    yield httpx.Response(403, json={"error": {"message": msg}})
    yield httpx.Response(403, json={"error": {"message": msg + " insufficient balance"}})
    yield httpx.Response(429, json={"error": {"message": msg}})
    yield httpx.Response(400, json={"error": {"message": msg + " content policy"}})
    yield httpx.Response(400, json={"error": {"message": msg}})
    yield httpx.Response(404, json={"error": {"message": msg}})
    yield httpx.Response(500, json={"error": {"message": msg}})
    yield httpx.Response(200, text=msg, headers={"Content-Type": "application/json"})
    yield httpx.Response(302, headers={"Location": f"https://{KEY}.evil.test/"})
    yield httpx.ConnectError(msg)
    yield httpx.ReadTimeout(msg)


@pytest.mark.parametrize("answer", list(_error_responses()))
@pytest.mark.parametrize("method", ["create", "result"])
@respx.mock
async def test_no_error_ever_shows_the_key(sleeps, caplog, answer, method):
    caplog.set_level("DEBUG")
    if isinstance(answer, Exception):
        respx.route(host="api.example.test").mock(side_effect=answer)
    else:
        respx.route(host="api.example.test").mock(return_value=answer)
    async with HailuoClient(BASE, KEY, sleep=sleeps, get_retries=1) as client:
        with pytest.raises(ApiError) as info:
            if method == "create":
                await client.create("hailuo-2.3-fast", "text-to-video", BODY)
            else:
                await client.result("pred-1")
    assert_keyless(info.value)
    assert KEY not in caplog.text


def test_sanitize_strips_escapes_and_caps():
    text = sanitize("\x1b[31mred\x1b[0m \x1b]8;;https://x\x07link\x1b]8;;\x07 \u202eevil\r\nnext", limit=200)
    assert text == "red link evil next"
    assert len(sanitize("y" * 1000, limit=50)) == 50


# -- adversarial payloads -----------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
_data_objects = st.fixed_dictionaries(
    {},
    optional={
        "id": _json_values | st.text(min_size=1, max_size=20),
        "status": _json_values,
        "outputs": _json_values,
        "urls": _json_values,
        "error": _json_values,
        "executionTime": _json_values | st.sampled_from(["1e400", "nan", "-inf"]),
        "timings": _json_values,
        "has_nsfw_contents": _json_values,
        "created_at": _json_values | st.sampled_from(["2026-13-45 99:99:99", "Z", "2025-11-07T02:35:15.34950574Z"]),
    },
)
_bodies = st.one_of(
    st.binary(max_size=200),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"data": _data_objects | _json_values, "code": _json_values}).map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=1000, max_value=100_000).map(lambda n: b"[" * n + b"]" * n),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies, status=st.sampled_from([200, 201, 400, 404, 500]))
async def test_any_payload_becomes_a_prediction_or_a_clear_error(body, status):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    async def no_sleep(_delay: float) -> None:
        return None

    async with HailuoClient(BASE, KEY, transport=httpx.MockTransport(handler), sleep=no_sleep, get_retries=1) as client:
        try:
            prediction = await client.result("pred-1")
        except ApiError as error:
            assert error.message and "\n" not in error.message and len(error.message) < 300
            assert "\x1b" not in error.message
        else:
            assert prediction.id and isinstance(prediction.status, str)


# -- hostile answers: decoded into values every later step can use -------------------------------


def raw_answer(text: str) -> httpx.Response:
    return httpx.Response(200, content=text.encode("utf-8"), headers={"Content-Type": "application/json"})


@respx.mock
async def test_a_lone_surrogate_in_any_string_is_repaired_where_the_answer_is_decoded(client):
    respx.get(RESULT_URL).mock(return_value=raw_answer(
        '{"data": {"id": "pred-1", "status": "failed", "error": "bad \\ud800 text", "model": "m\\udfff",'
        ' "outputs": ["https://cdn.example.test/\\udc00.mp4"], "k\\ud800": "\\ud83d\\ude00"}}'))
    prediction = await client.result("pred-1")
    assert prediction.error == "bad \ufffd text" and prediction.model == "m\ufffd"
    assert prediction.outputs == ("https://cdn.example.test/\ufffd.mp4",)
    assert prediction.raw["k\ufffd"] == "\U0001F600"  # a real pair is kept
    json.dumps(prediction.raw, ensure_ascii=False).encode("utf-8")  # encodable everywhere


@respx.mock
async def test_a_field_nested_10000_deep_is_dropped_and_the_answer_used(client):
    deep = "[" * 10_000 + "]" * 10_000
    respx.get(RESULT_URL).mock(return_value=raw_answer(
        '{"data": {"id": "pred-1", "deep": ' + deep + ', "status": "completed", '
        '"outputs": ["https://cdn.example.test/a.mp4"]}}'))
    prediction = await client.result("pred-1")
    assert prediction.status == "completed" and prediction.outputs == ("https://cdn.example.test/a.mp4",)


@respx.mock
async def test_nan_infinity_and_1e999_read_as_unknown(client):
    respx.get(RESULT_URL).mock(return_value=raw_answer(
        '{"data": {"id": "pred-1", "status": "processing", "executionTime": 1e999, "timings": {"inference": NaN},'
        ' "created_at": -Infinity, "code": 1' + "0" * 5000 + '}}'))
    prediction = await client.result("pred-1")
    assert prediction.execution_time_ms is None and prediction.inference_time_ms is None
    assert prediction.created_at is None and prediction.raw["code"] is None


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00",
                                   "9999-12-31T23:59:59-14:00", "1969-12-31 23:59:59"])
def test_a_server_time_the_platform_cannot_show_is_absent(value):
    from tui.core.api.models import parse_created_at

    assert parse_created_at(value) is None
    assert parse_created_at("2026-01-01 00:00:00") is not None


@respx.mock
@pytest.mark.parametrize("ident", [".", "..", "...", "a/b", "a\\b"])
async def test_an_id_that_would_change_a_path_is_refused(client, ident):
    respx.post(CREATE_URL).mock(return_value=httpx.Response(200, json=envelope(id=ident)))
    with pytest.raises(SubmitOutcomeUnknownError, match="not a usable prediction id"):
        await client.create("hailuo-2.3-fast", "text-to-video", BODY)


@respx.mock
async def test_40000_outputs_keep_100_and_count_the_rest(client):
    urls = [f"https://cdn.example.test/{i}.mp4" for i in range(40_000)]
    respx.get(RESULT_URL).mock(return_value=httpx.Response(200, json=envelope(status="completed", outputs=urls,
                                                                                has_nsfw_contents=[False] * 40_000)))
    prediction = await client.result("pred-1")
    assert prediction.outputs == tuple(urls[:100]) and prediction.outputs_omitted == 39_900
    assert len(prediction.has_nsfw_contents) == 100
    assert "note" in prediction.raw  # the 2 MB answer is not kept for the raw view


def test_a_base_url_with_credentials_is_refused_by_the_settings():
    from tui.core.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="must not contain a user name or password") as caught:
        load_settings(base_url="http://user:s3cret@127.0.0.1:9", env={})
    assert "s3cret" not in str(caught.value) and "http://127.0.0.1:9" in str(caught.value)
