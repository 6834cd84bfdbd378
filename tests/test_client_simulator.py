"""HailuoClient against the loopback simulator: real sockets, real envelopes, injected faults."""

from __future__ import annotations

import asyncio

import pytest

from tui.core.api.client import HailuoClient
from tui.core.api.errors import (
    ApiError,
    ContentPolicyError,
    InvalidKeyError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
)

KEY = "sk-sim-Key0123456789abcdef"
MODEL = "hailuo-2.3-fast"
SCENE = "text-to-video"


def requests_of(sim, method: str) -> list:
    return [r for r in sim.requests if r.method == method]


class RealSleeps:
    """Sleeps for real (the simulator's Retry-After is real time) and records each delay."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(delay)


async def poll_until_terminal(client: HailuoClient, prediction_id: str, timeout: float = 60.0):
    async def loop():
        while True:
            prediction = await client.result(prediction_id)
            if prediction.is_terminal:
                return prediction
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(loop(), timeout)


@pytest.mark.parametrize("auth_scheme", ["raw", "bearer"])
async def test_create_poll_completed_with_outputs(make_simulator, auth_scheme):
    sim = make_simulator(job_seconds=0.2, require_key=KEY)
    async with HailuoClient(sim.base_url, KEY, auth_scheme=auth_scheme) as client:
        created = await client.create(MODEL, SCENE, {"prompt": "a red fox in snow", "duration": 6})
        assert created.id and not created.is_terminal
        final = await poll_until_terminal(client, created.id)
    assert final.id == created.id
    assert final.status == "completed"
    assert final.outputs and all(url.startswith("http") for url in final.outputs)
    assert len(requests_of(sim, "POST")) == 1
    expected = KEY if auth_scheme == "raw" else f"Bearer {KEY}"
    assert all(_header(r, "Authorization") == expected for r in sim.requests)
    assert all(_header(r, "User-Agent").startswith("hailuo-tui/") for r in sim.requests)


def _header(record, name: str) -> str:
    headers = record.headers
    for key, value in (headers.items() if hasattr(headers, "items") else headers):
        if key.lower() == name.lower():
            return value
    return ""


async def test_429_storm_is_waited_out_honouring_retry_after(make_simulator):
    sim = make_simulator(job_seconds=0.2, require_key=KEY)
    sleeps = RealSleeps()
    async with HailuoClient(sim.base_url, KEY, sleep=sleeps, get_retries=4) as client:
        created = await client.create(MODEL, SCENE, {"prompt": "a quiet harbour"})
        gets_before = len(requests_of(sim, "GET"))
        sim.faults.retry_after = 0.2
        sim.faults.rate_limit = 3
        prediction = await client.result(created.id)
    assert prediction.id == created.id
    assert len(requests_of(sim, "GET")) - gets_before == 4
    assert len(sleeps.delays) == 3
    # Delays come from the server's Retry-After, not from the (much shorter) backoff.
    assert all(delay >= 0.2 for delay in sleeps.delays)


async def test_429_storm_longer_than_the_retries_raises_rate_limited(make_simulator):
    sim = make_simulator(require_key=KEY)
    sleeps = RealSleeps()
    async with HailuoClient(sim.base_url, KEY, sleep=sleeps, get_retries=1) as client:
        created = await client.create(MODEL, SCENE, {"prompt": "a quiet harbour"})
        sim.faults.retry_after = 0.1
        sim.faults.rate_limit = 5
        with pytest.raises(RateLimitedError) as info:
            await client.result(created.id)
    assert info.value.retry_after is not None and info.value.retry_after > 0
    assert "429" in info.value.message


async def test_malformed_json_is_a_malformed_response(make_simulator):
    sim = make_simulator(require_key=KEY)
    async with HailuoClient(sim.base_url, KEY, get_retries=0) as client:
        created = await client.create(MODEL, SCENE, {"prompt": "a paper boat"})
        sim.faults.malformed = 1
        with pytest.raises(MalformedResponseError) as info:
            await client.result(created.id)
        assert "\n" not in info.value.message and len(info.value.message) < 200
        # The next answer is fine again.
        assert (await client.result(created.id)).id == created.id


async def test_http_200_with_an_error_envelope_is_an_error(make_simulator):
    sim = make_simulator(require_key=KEY)
    async with HailuoClient(sim.base_url, KEY, get_retries=0) as client:
        created = await client.create(MODEL, SCENE, {"prompt": "a paper boat"})
        sim.faults.error_envelope = 1
        with pytest.raises(ApiError) as info:
            await client.result(created.id)
    assert not isinstance(info.value, MalformedResponseError)
    assert KEY not in str(info.value) and KEY not in repr(info.value)


async def test_policy_word_is_a_content_policy_rejection(make_simulator):
    sim = make_simulator(require_key=KEY)
    async with HailuoClient(sim.base_url, KEY) as client:
        with pytest.raises(ContentPolicyError) as info:
            await client.create(MODEL, SCENE, {"prompt": f"a {sim.faults.policy_word} scene"})
    assert info.value.exit_code == 2
    assert len(requests_of(sim, "POST")) == 1


async def test_dropped_connection_after_create_is_unknown_and_sent_once(make_simulator):
    sim = make_simulator(require_key=KEY)
    sim.faults.drop_after_create = 1
    async with HailuoClient(sim.base_url, KEY) as client:
        with pytest.raises(SubmitOutcomeUnknownError) as info:
            await client.create(MODEL, SCENE, {"prompt": "a storm over the sea"})
        await asyncio.sleep(0.2)  # a stray re-send would have arrived by now
    assert info.value.cause is not None
    assert "check before submitting again" in info.value.message
    assert len(requests_of(sim, "POST")) == 1


async def test_wrong_key_is_refused_and_missing_key_sends_nothing(make_simulator):
    sim = make_simulator(require_key=KEY)
    async with HailuoClient(sim.base_url, "sk-wrong-0000000000000000") as client:
        with pytest.raises(InvalidKeyError) as info:
            await client.create(MODEL, SCENE, {"prompt": "a fox"})
    assert info.value.message == "the API key was refused (401): check GPTPROTO_API_KEY"
    sent = len(sim.requests)
    assert sent == 1
    async with HailuoClient(sim.base_url, None) as client:
        with pytest.raises(InvalidKeyError) as info:
            await client.result("anything")
    assert "GPTPROTO_API_KEY" in info.value.message
    assert len(sim.requests) == sent


async def test_unknown_id_is_not_found(make_simulator):
    sim = make_simulator(require_key=KEY)
    async with HailuoClient(sim.base_url, KEY) as client:
        with pytest.raises(NotFoundError) as info:
            await client.result("no-such-prediction")
    assert "404" in info.value.message
    assert len(requests_of(sim, "GET")) == 1  # a 404 is not asked again
