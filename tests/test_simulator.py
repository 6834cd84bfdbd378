"""The simulator speaks the API's protocol and injects faults on demand (plain httpx, not our client)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tui.simulator import Simulator

KEY = "sk-test-not-a-real-key-0000"
CREATE = "/api/v3/minimax/hailuo-2.3-fast/text-to-video"


def post(sim, body=None, key=KEY, path=CREATE):
    headers = {"Authorization": key} if key else {}
    return httpx.post(sim.base_url + path, json=body or {"prompt": "a fox"}, headers=headers, timeout=5)


def get(sim, job_id, key=KEY):
    return httpx.get(f"{sim.base_url}/api/v3/predictions/{job_id}/result", headers={"Authorization": key}, timeout=5)


def test_a_job_moves_from_created_to_completed_with_a_downloadable_output():
    now = [1000.0]
    with Simulator(job_seconds=10, clock=lambda: now[0]) as sim:
        created = post(sim).json()
        assert created["code"] == 200 and created["data"]["status"] == "created"
        job_id = created["data"]["id"]
        assert created["data"]["urls"]["get"].endswith(f"/predictions/{job_id}/result")
        now[0] += 5
        assert get(sim, job_id).json()["data"]["status"] == "processing"
        now[0] += 6
        data = get(sim, job_id).json()["data"]
        assert data["status"] == "completed" and data["executionTime"] > 0
        assert data["has_nsfw_contents"] == [False]
        video = httpx.get(data["outputs"][0], timeout=5)
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"


def test_both_auth_forms_are_accepted_and_require_key_refuses_others(make_simulator):
    sim = make_simulator(require_key=KEY)
    assert post(sim, key=KEY).status_code == 200
    assert post(sim, key=f"Bearer {KEY}").status_code == 200
    refused = post(sim, key="sk-someone-else-000000")
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "invalid_api_key"
    assert post(sim, key=None).status_code == 401


def test_invalid_requests_are_refused_like_the_api(simulator):
    assert post(simulator, {"prompt": ""}).status_code == 400
    assert post(simulator, {"prompt": "x", "duration": 10, "resolution": "1080P"}).status_code == 400
    assert post(simulator, {"prompt": "x"}, path="/api/v3/minimax/hailuo-2.3-fast/image-to-video").status_code == 400
    assert post(simulator, {"prompt": "x"}, path="/api/v3/minimax/no-such-model/text-to-video").status_code == 400


def test_next_n_faults_hit_exactly_n_requests(simulator):
    job_id = post(simulator).json()["data"]["id"]
    simulator.faults.rate_limit = 2
    simulator.faults.retry_after = 7
    first, second, third = (get(simulator, job_id) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "7"
    simulator.faults.server_errors = 1
    assert get(simulator, job_id).status_code == 500
    simulator.faults.malformed = 1
    with pytest.raises(json.JSONDecodeError):
        json.loads(get(simulator, job_id).text)
    simulator.faults.error_envelope = 1
    answer = get(simulator, job_id)
    assert answer.status_code == 200 and answer.json()["code"] == 500
    simulator.faults.wrong_content_type = 1
    assert get(simulator, job_id).headers["content-type"].startswith("text/html")


def test_retry_after_as_an_http_date(simulator):
    job_id = post(simulator).json()["data"]["id"]
    simulator.faults.rate_limit, simulator.faults.retry_after_as_date = 1, True
    assert get(simulator, job_id).headers["Retry-After"].endswith("GMT")


def test_policy_word_insufficient_balance_and_drop_after_create(simulator):
    refused = post(simulator, {"prompt": f"a {simulator.faults.policy_word} scene"})
    assert refused.status_code == 400 and "policy" in refused.json()["error"]["message"].lower()
    simulator.faults.insufficient_balance = 1
    broke = post(simulator)
    assert broke.status_code == 403 and "balance" in broke.json()["error"]["message"].lower()
    before = simulator.job_count()
    simulator.faults.drop_after_create = 1
    with pytest.raises(httpx.TransportError):
        post(simulator)
    assert simulator.job_count() == before + 1  # the job exists although no answer came


def test_a_job_can_fail_later_for_policy_and_odd_statuses_are_reported():
    # A controlled clock: a loaded machine must not turn "still processing" into "completed".
    now = [1000.0]
    with Simulator(job_seconds=10, clock=lambda: now[0]) as sim:
        job_id = post(sim, {"prompt": f"a {sim.faults.fail_later_word} parade"}).json()["data"]["id"]
        sim.faults.odd_status = "warming-up"
        other = post(sim).json()["data"]["id"]
        now[0] += 5
        assert get(sim, other).json()["data"]["status"] == "warming-up"
        now[0] += 6
        failed = get(sim, job_id).json()["data"]
        assert failed["status"] == "failed" and "policy" in failed["error"]


def test_ids_past_retention_are_404_and_unknown_ids_too():
    now = [0.0]
    with Simulator(job_seconds=1, retention_seconds=100, clock=lambda: now[0]) as sim:
        job_id = post(sim).json()["data"]["id"]
        now[0] = 50
        assert get(sim, job_id).status_code == 200
        now[0] = 101
        assert get(sim, job_id).status_code == 404
        assert get(sim, "nope").status_code == 404


def test_range_requests_resume_a_download(simulator):
    job_id = simulator.seed_job(status="completed")
    url = get(simulator, job_id).json()["data"]["outputs"][0]
    whole = httpx.get(url, timeout=5).content
    part = httpx.get(url, headers={"Range": "bytes=100-"}, timeout=5)
    assert part.status_code == 206 and part.content == whole[100:]
    assert part.headers["Content-Range"] == f"bytes 100-{len(whole) - 1}/{len(whole)}"


def test_same_seed_same_ids_and_created_at_in_both_formats():
    ids = []
    for _ in range(2):
        with Simulator(seed=42) as sim:
            answers = [post(sim).json()["data"] for _ in range(2)]
            ids.append([a["id"] for a in answers])
    assert ids[0] == ids[1]
    formats = {("T" in a["created_at"]) for a in answers}
    assert formats == {True, False}


def test_faults_can_be_set_over_http_and_seeded_jobs_keep_their_state(simulator):
    answer = httpx.post(simulator.base_url + "/_sim/faults", json={"latency": 0.01, "server_errors": 1}, timeout=5)
    assert answer.json()["server_errors"] == 1 and simulator.faults.latency == 0.01
    assert httpx.post(simulator.base_url + "/_sim/faults", json={"nonsense": 1}, timeout=5).status_code == 400
    failed = simulator.seed_job(status="failed", error="content policy violation")
    simulator.faults.server_errors = 0
    data = get(simulator, failed).json()["data"]
    assert data["status"] == "failed" and data["error"] == "content policy violation"


def test_bursts_of_any_5xx_and_envelope_codes_that_disagree_with_the_status(simulator):
    job_id = post(simulator).json()["data"]["id"]
    for status in (502, 503, 504):
        simulator.faults.server_errors, simulator.faults.server_error_status = 2, status
        assert [get(simulator, job_id).status_code for _ in range(3)] == [status, status, 200]
    simulator.faults.error_envelope, simulator.faults.error_envelope_code = 1, 429
    answer = get(simulator, job_id)
    assert answer.status_code == 200 and answer.json()["code"] == 429 and answer.json()["data"] is None


def test_stall_slow_body_and_reset_mid_body(simulator):
    job_id = post(simulator).json()["data"]["id"]
    simulator.faults.stall, simulator.faults.stall_seconds = 1, 0.6
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{simulator.base_url}/api/v3/predictions/{job_id}/result", headers={"Authorization": KEY},
                  timeout=httpx.Timeout(5, read=0.2))
    simulator.faults.slow_body, simulator.faults.slow_body_seconds = 1, 0.5
    # How the pieces arrive depends on the machine's load (they may be read as one); that the body
    # takes at least its trickle time to arrive does not, and it arrives whole.
    started = time.monotonic()
    with httpx.stream("GET", f"{simulator.base_url}/api/v3/predictions/{job_id}/result",
                      headers={"Authorization": KEY}, timeout=5) as answer:
        chunks = list(answer.iter_raw())
    assert time.monotonic() - started >= 0.45
    assert json.loads(b"".join(chunks))["data"]["id"] == job_id
    before = simulator.job_count()
    simulator.faults.reset_mid_body = 1
    with pytest.raises(httpx.TransportError):
        post(simulator)
    assert simulator.job_count() == before + 1  # the create went through; only its answer was cut


def test_a_revoked_key_is_refused_while_others_work(simulator):
    simulator.faults.revoked_key = KEY
    assert post(simulator, key=KEY).status_code == 401
    assert post(simulator, key="sk-the-new-key-00000000").status_code == 200


def test_redirects_to_a_template_location_and_an_alias_that_does_not_redirect(simulator):
    job_id = post(simulator).json()["data"]["id"]
    simulator.faults.redirect_result_to = "/api/v3/results/{id}"
    moved = get(simulator, job_id)
    assert moved.status_code == 307 and moved.headers["Location"] == f"/api/v3/results/{job_id}"
    final = httpx.get(simulator.base_url + moved.headers["Location"], headers={"Authorization": KEY}, timeout=5)
    assert final.status_code == 200 and final.json()["data"]["id"] == job_id


def test_every_request_with_an_authorization_header_is_on_record_with_its_host(simulator):
    job_id = post(simulator).json()["data"]["id"]
    httpx.get(f"{simulator.base_url}/files/{job_id}.mp4", timeout=5)
    assert [(r.method, r.path) for r in simulator.authorized()] == [("POST", CREATE)]
    assert {r.host for r in simulator.requests} == {simulator.base_url.removeprefix("http://")}


def test_file_faults_cut_refuse_and_misreport_and_file_requests_are_recorded(simulator):
    job_id = simulator.seed_job(status="completed")
    url = f"{simulator.base_url}/files/{job_id}.mp4"
    whole = httpx.get(url, timeout=5).content
    simulator.faults.file_cut, simulator.faults.file_cut_after = 1, 1000
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=5)
    simulator.faults.file_errors = 1
    busy = httpx.get(url, timeout=5)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "0"
    simulator.faults.file_total_extra = 10
    part = httpx.get(url, headers={"Range": "bytes=10-"}, timeout=5)
    assert part.headers["Content-Range"] == f"bytes 10-{len(whole) - 1}/{len(whole) + 10}"
    assert part.content == whole[10:]
    files = [r for r in simulator.requests if r.path == f"/files/{job_id}.mp4"]
    assert len(files) == 4 and files[-1].headers["Range"] == "bytes=10-"
