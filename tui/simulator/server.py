"""A loopback stand-in for the gptproto Hailuo API: same paths, same envelope, injectable faults.

It serves real HTTP on 127.0.0.1 from a background thread, so the real client, poller and
store are exercised end to end by the demo, the tests and the benchmarks.
"""

from __future__ import annotations

import base64
import email.utils
import json
import random
import re
import socket
import struct
import threading
import time
from dataclasses import asdict, dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Callable

from tui.core.catalog import MODELS, SCENES, durations_for, resolutions_for

_CREATE = re.compile(r"^/api/v3/minimax/([^/]+)/([^/]+)$")
_RESULT = re.compile(r"^/api/v3/predictions/([^/]+)/result$")
#: The same answer at another path: a target for same-host redirects that does not redirect again.
_RESULT_ALIAS = re.compile(r"^/api/v3/results/([^/]+)$")
_FILE = re.compile(r"^/files/([A-Za-z0-9_-]+)\.mp4$")

#: Share of `job_seconds` a job spends in `created` before it turns `processing`.
_CREATED_SHARE = 0.2
#: Seconds a job takes, (shortest, longest) by model, for `Simulator(duration_spread=...)`: a
#: spread like the provider's, drawn per job (seeded) with the most likely time a third of the way.
REALISTIC_SPREAD: dict[str, tuple[float, float]] = {
    "hailuo-2.3-fast": (30.0, 60.0),
    "hailuo-2.3-standard": (45.0, 90.0),
    "hailuo-2.3-pro": (70.0, 120.0),
    "hailuo-02-fast": (30.0, 60.0),
    "hailuo-02-standard": (45.0, 90.0),
    "hailuo-02-pro": (70.0, 120.0),
}


@dataclass
class Faults:
    """Fault knobs. Counters (`rate_limit`, `server_errors`...) hit the next N API requests;
    rates hit each request with that probability (seeded, so runs repeat)."""

    latency: float = 0.0
    # -- next-N counters ------------------------------------------------------------
    rate_limit: int = 0  # 429 with Retry-After
    server_errors: int = 0  # `server_error_status` (500 unless set)
    malformed: int = 0  # invalid JSON under HTTP 200
    truncated: int = 0  # JSON cut short
    wrong_content_type: int = 0  # an HTML page
    error_envelope: int = 0  # HTTP 200 whose envelope `code` is `error_envelope_code`
    drop: int = 0  # connection closed without an answer
    drop_after_create: int = 0  # the job is created, then the connection is dropped
    insufficient_balance: int = 0  # 403 on create
    stall: int = 0  # no answer for `stall_seconds` (a read timeout), then the request goes on
    slow_body: int = 0  # headers at once, then the body trickles in over `slow_body_seconds`
    reset_mid_body: int = 0  # headers and half the body, then a reset (a create has created the job)
    canned: int = 0  # `canned_body` (any bytes: hostile payloads) under `canned_status`
    # -- rates ----------------------------------------------------------------------
    rate_limit_rate: float = 0.0
    get_error_rate: float = 0.0
    get_error_status: int = 503
    post_error_rate: float = 0.0
    post_error_status: int = 500
    malformed_rate: float = 0.0
    drop_rate: float = 0.0
    fail_rate: float = 0.0  # share of new jobs that end `failed`
    # -- behaviour ------------------------------------------------------------------
    server_error_status: int = 500
    error_envelope_code: int = 500
    stall_seconds: float = 2.0
    slow_body_seconds: float = 2.0
    revoked_key: str | None = None  # a key rotated away: refused with 401 from now on
    canned_body: str | bytes = ""
    canned_status: int = 200
    retry_after: float = 1.0
    retry_after_as_date: bool = False
    policy_word: str = "forbidden"
    policy_as_503: bool = False
    fail_later_word: str = "flagged"
    odd_status: str | None = None  # reported instead of `processing` while set
    outputs_before_completed: bool = False
    redirect_result_to: str | None = None  # Location of a 307 for result queries; "{id}" is replaced
    # -- output files (GET /files/<id>.mp4) -----------------------------------------------
    file_cut: int = 0  # the next N file answers stop after `file_cut_after` body bytes
    file_cut_after: int = 2048
    file_errors: int = 0  # the next N file requests get a 503 with Retry-After 0
    file_total_extra: int = 0  # added to the total of every 206 Content-Range (the file "changed")
    file_chunk_delay: float = 0.0  # seconds between 1 KiB pieces of a file body (a slow host)
    # -- hostile answers (what a real server may send and this one would not) ---------------
    canned_base64: str = ""  # when set, `canned` answers these bytes (base64) instead of `canned_body`
    canned_headers: dict | None = None  # headers sent with each canned answer
    canned_for: str | None = None  # `canned` hits only result queries of this id (per-id answers)
    headers: dict | None = None  # sent with every API answer (e.g. {"Retry-After": "99999999"})
    retry_after_text: str | None = None  # the Retry-After of 429s and file 503s, sent as is ("soon")
    data_extra: dict | None = None  # merged into every answer's `data` (e.g. {"created_at": "0001-01-01"})
    data_extra_json: str = ""  # raw JSON text spliced into `data`: `"created_at": 1e999`, NaN, deep nesting
    data_for: dict | None = None  # {id: {field: value}}: merged into that job's `data` only
    output_count: int = 0  # a completed job lists this many output URLs (0: its one file)
    outputs_template: list | None = None  # outputs of completed jobs: "{file}" and "{id}" are replaced
    duplicate_id: int = 0  # the next N submits create a job but answer with the previous job's id
    not_found: int = 0  # the next N result queries answer 404, whatever the job
    file_body: str | bytes | None = None  # served as every file (as video/mp4) instead of the clip: damaged clips

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in values.items():
            if key not in names:
                raise KeyError(key)
            setattr(self, key, value)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    headers: dict[str, str]
    body: str  # as text: bodies here are JSON
    at: float

    @property
    def timestamp(self) -> float:
        return self.at

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    @property
    def host(self) -> str:
        """The host (and port) the client addressed, from its Host header."""
        return self.header("Host") or ""


@dataclass
class _SimJob:
    id: str
    model: str
    scene: str
    prompt: str
    created_at: float  # shown to the client
    started_at: float  # drives the lifecycle
    fail_error: str | None = None
    fixed_status: str | None = None
    fixed_outputs: list[str] | None = None
    execution_ms: int = 0
    created_format: int = 0
    #: This job's own length (a drawn duration); None: the simulator's `job_seconds`.
    seconds: float | None = None


class Simulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        job_seconds: float = 3.0,
        seed: int | None = None,
        require_key: str | None = None,
        retention_seconds: float = 7 * 86400,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
        stop_latency: float = 0.5,
        duration_spread: dict[str, tuple[float, float]] | None = None,
        time_scale: float = 1.0,
        distinct_videos: bool = False,
    ) -> None:
        """`duration_spread`: created jobs last a time drawn from their model's (shortest, longest)
        range (REALISTIC_SPREAD is one) instead of `job_seconds`, multiplied by `time_scale`
        (0.05 makes a 60 s job last 3 s, for tests and benchmarks)."""
        self.host, self.port = host, port
        #: Each job's file is a clip drawn from its prompt (the demo); else every job serves the
        #: one `sample_video()`, whose bytes the download tests compare against.
        self.distinct_videos = distinct_videos
        self.job_seconds = job_seconds
        self.duration_spread = duration_spread
        self.time_scale = time_scale
        self.require_key = require_key
        self.retention_seconds = retention_seconds
        self.faults = faults or Faults()
        self.clock = clock
        #: How often the serving thread looks for a stop request: `stop()` takes up to this long.
        self.stop_latency = stop_latency
        self.requests: list[RequestRecord] = []
        #: API requests being answered now, and the most ever at once, by method.
        self.in_flight: dict[str, int] = {"GET": 0, "POST": 0}
        self.peak_in_flight: dict[str, int] = {"GET": 0, "POST": 0}
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._jobs: dict[str, _SimJob] = {}
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "Simulator":
        handler = type("_BoundHandler", (_Handler,), {"sim": self})
        self._server = _Server((self.host, self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(self.stop_latency,),
                                        name="hailuo-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Simulator":
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- jobs ---------------------------------------------------------------------------
    def _new_id(self) -> str:
        self._counter += 1
        return f"sim{self._counter:05d}{self._rng.getrandbits(40):010x}"

    def seed_job(
        self,
        *,
        status: str,
        model: str = "hailuo-2.3-fast",
        scene: str = "text-to-video",
        prompt: str = "a seeded job",
        age: float = 0.0,
        error: str | None = None,
        outputs: list[str] | None = None,
    ) -> str:
        """Put a job straight into a state: `completed`/`failed` stay so; `created`/`processing` run on
        (and end `failed` with `error` when one is given, or `completed` with `outputs`)."""
        now = self.clock()
        with self._lock:
            job_id = self._new_id()
            started = now
            if status == "processing":
                started = now - self.job_seconds * (_CREATED_SHARE + 0.05)
            job = _SimJob(job_id, model, scene, prompt, created_at=now - age, started_at=started,
                          execution_ms=int(max(age, self.job_seconds) * 1000), created_format=self._counter % 2)
            if status not in ("created", "processing"):
                job.fixed_status = status
                job.fail_error = error if status != "completed" else None
            else:
                job.fail_error = error
            job.fixed_outputs = outputs
            self._jobs[job_id] = job
        return job_id

    def _drawn_seconds(self, model: str) -> float | None:
        if not self.duration_spread:
            return None
        low, high = self.duration_spread.get(model) or next(iter(self.duration_spread.values()))
        return self._rng.triangular(low, high, low + (high - low) / 3) * self.time_scale

    def _create(self, model: str, scene: str, body: dict[str, Any]) -> _SimJob:
        now = self.clock()
        with self._lock:
            previous = max(self._jobs.values(), key=lambda j: j.started_at, default=None)
            seconds = self._drawn_seconds(model)
            length = self.job_seconds if seconds is None else seconds
            job = _SimJob(self._new_id(), model, scene, str(body.get("prompt", "")), created_at=now, started_at=now,
                          execution_ms=int(length * 1000) + self._rng.randint(0, 999),
                          created_format=self._counter % 2, seconds=seconds)
            if self.faults.fail_later_word and self.faults.fail_later_word.lower() in job.prompt.lower():
                job.fail_error = "content policy violation: the generated video was blocked by the safety checker"
            elif self.faults.fail_rate and self._rng.random() < self.faults.fail_rate:
                job.fail_error = "generation failed: the model could not render this request"
            self._jobs[job.id] = job
            if previous is not None and self._take("duplicate_id"):
                # The job exists (and would be billed) but the answer names the previous one.
                return previous
        return job

    def _status_of(self, job: _SimJob) -> str:
        if job.fixed_status:
            return job.fixed_status
        elapsed = self.clock() - job.started_at
        length = self.job_seconds if job.seconds is None else job.seconds
        if elapsed < length * _CREATED_SHARE:
            return "created"
        if elapsed < length:
            return self.faults.odd_status or "processing"
        return "failed" if job.fail_error else "completed"

    def _data(self, job: _SimJob, base: str) -> dict[str, Any]:
        faults = self.faults
        status = self._status_of(job)
        done = status == "completed"
        outputs: list[str] = []
        if done or (faults.outputs_before_completed and status != "failed"):
            file_url = f"{base}/files/{job.id}.mp4"
            if job.fixed_outputs is not None:
                outputs = job.fixed_outputs
            elif faults.outputs_template is not None:
                outputs = [str(t).replace("{file}", file_url).replace("{id}", job.id) for t in faults.outputs_template]
            elif faults.output_count > 0:
                outputs = [file_url] + [f"{file_url}?copy={n}" for n in range(1, faults.output_count)]
            else:
                outputs = [file_url]
        created = time.gmtime(job.created_at)
        if job.created_format:
            frac = f"{job.created_at % 1:.8f}"[2:]
            created_at = time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{frac}Z"
        else:
            created_at = time.strftime("%Y-%m-%d %H:%M:%S", created)
        ms = job.execution_ms if done else 0
        return {
            "id": job.id,
            "model": job.model,
            "outputs": outputs,
            "urls": {"get": f"{base}/api/v3/predictions/{job.id}/result"},
            "status": status,
            "error": job.fail_error if status == "failed" else None,
            "executionTime": ms,
            "timings": {"inference": ms},
            "has_nsfw_contents": [False] * len(outputs),
            "created_at": created_at,
            **(faults.data_extra or {}),
            **((faults.data_for or {}).get(job.id) or {}),
        }

    def ends_at(self, job_id: str) -> float:
        """When a running job turns completed/failed (on the simulator's clock)."""
        with self._lock:
            job = self._jobs[job_id]
            return job.started_at + (self.job_seconds if job.seconds is None else job.seconds)

    def job_count(self) -> int:
        with self._lock:
            return len(self._jobs)

    def job_ids(self) -> set[str]:
        with self._lock:
            return set(self._jobs)

    def authorized(self) -> list[RequestRecord]:
        """Every request (API or download) that carried an Authorization header."""
        with self._lock:
            return [r for r in self.requests if r.header("Authorization") is not None]

    # -- faults ---------------------------------------------------------------------------
    def video_for(self, job_id: str) -> bytes:
        """The bytes `GET /files/<job_id>.mp4` serves."""
        if self.distinct_videos:
            with self._lock:
                job = self._jobs.get(job_id)
            if job is not None:
                from tui.simulator.videos import prompt_video

                return prompt_video(job.prompt)
        return sample_video()

    def _take(self, name: str) -> bool:
        """Use one unit of a next-N counter."""
        with self._lock:
            left = int(getattr(self.faults, name) or 0)
            if left <= 0:
                return False
            setattr(self.faults, name, left - 1)
            return True

    def _chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):  # a canned hostile body, shown by GET /_sim/faults
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(f"{type(value).__name__} is not JSON")


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops connections that a real server would queue when a
    # busy machine accepts slowly while eight polls and a submit connect at once.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that hung up (timed out, was killed): part of the faults we play
        super().handle_error(request, client_address)


def _error_body(message: str, type_: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_}}


class _Handler(BaseHTTPRequestHandler):
    sim: Simulator
    protocol_version = "HTTP/1.1"
    server_version = "hailuo-simulator"
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK of the headers (40 ms a response on Linux), which a real server does not add.
    disable_nagle_algorithm = True

    #: How the body of this request's answer goes out: None (at once), "slow" or "reset".
    _body_mode: str | None = None

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and the demo own the terminal
        pass

    # -- plumbing -------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any = None, *, raw: bytes | None = None,
              content_type: str = "application/json", headers: dict[str, str] | None = None) -> None:
        data = raw if raw is not None else self._encode(payload)
        mode, self._body_mode = self._body_mode, None
        if self.path.startswith("/api/") and self.sim.faults.headers:
            headers = {**self.sim.faults.headers, **(headers or {})}
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if mode == "slow":
                self._trickle(data)
            elif mode == "reset":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self._reset()
            else:
                self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client went away (a timeout on its side): nothing to tell

    def _encode(self, payload: Any) -> bytes:
        text = json.dumps(payload, default=_jsonable)
        extra = self.sim.faults.data_extra_json.strip()
        if extra and self.path.startswith("/api/") and isinstance(payload, dict) and isinstance(payload.get("data"), dict):
            # Spliced as text: NaN, 1e999 or 10,000 brackets are what json.dumps would never write.
            data_text = json.dumps(payload["data"], default=_jsonable)
            text = text.replace(data_text, data_text[:-1] + ", " + extra + "}", 1)
        return text.encode("utf-8", "surrogatepass")

    def _trickle(self, data: bytes) -> None:
        pieces = max(1, min(len(data), 20))
        step = -(-len(data) // pieces)
        pause = self.sim.faults.slow_body_seconds / pieces
        for start in range(0, len(data), step):
            self.wfile.write(data[start:start + step])
            self.wfile.flush()
            time.sleep(pause)

    def _reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0) rather than an orderly shutdown."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def _base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _key_ok(self) -> bool:
        value = (self.headers.get("Authorization") or "").strip()
        if value.lower().startswith("bearer "):
            value = value[7:].strip()
        revoked = self.sim.faults.revoked_key
        if not value or (self.sim.require_key is not None and value != self.sim.require_key) or (
                revoked is not None and value == revoked):
            self._send(401, _error_body("Invalid API key provided", "invalid_api_key"))
            return False
        return True

    # -- verbs ----------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith("/_sim/"):
            return self._control("GET", b"")
        match = _FILE.match(self.path)
        if match:
            self._record("GET", b"")
            return self._file(match.group(1))
        self._api("GET", b"")

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        if self.path.startswith("/_sim/"):
            return self._control("POST", body)
        self._api("POST", body)

    def _control(self, method: str, body: bytes) -> None:
        sim = self.sim
        if self.path == "/_sim/faults":
            if method == "POST":
                try:
                    sim.faults.update(json.loads(body or b"{}"))
                except (ValueError, KeyError, TypeError) as exc:
                    return self._send(400, {"error": f"bad faults: {exc}"})
            return self._send(200, asdict(sim.faults))
        if self.path == "/_sim/stats":
            with sim._lock:
                counts: dict[str, int] = {}
                for record in sim.requests:
                    counts[record.method] = counts.get(record.method, 0) + 1
                return self._send(200, {"requests": counts, "jobs": len(sim._jobs)})
        self._send(404, {"error": "no such control endpoint"})

    def _file(self, job_id: str) -> None:
        """The sample video, whole or by Range, with the file faults applied."""
        sim, faults = self.sim, self.sim.faults
        if sim._take("file_errors"):
            retry_after = faults.retry_after_text if faults.retry_after_text is not None else "0"
            return self._send(503, raw=b"busy", content_type="text/plain", headers={"Retry-After": retry_after})
        if faults.file_body is not None:
            body_fault = faults.file_body
            data = body_fault.encode("utf-8") if isinstance(body_fault, str) else bytes(body_fault)
        else:
            data = sim.video_for(job_id)
        total = len(data)
        range_header = self.headers.get("Range")
        match = re.match(r"bytes=(\d*)-(\d*)$", range_header or "")
        status, body, headers = 200, data, {"Accept-Ranges": "bytes"}
        if match and (match.group(1) or match.group(2)):
            start = int(match.group(1)) if match.group(1) else total - int(match.group(2))
            end = int(match.group(2)) if match.group(1) and match.group(2) else total - 1
            if start >= total or start > end:
                return self._send(416, raw=b"", content_type="video/mp4", headers={"Content-Range": f"bytes */{total}"})
            end = min(end, total - 1)
            status, body = 206, data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{total + faults.file_total_extra}"
        cut = sim._take("file_cut")
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if cut:
            body = body[:max(0, faults.file_cut_after)]
        try:
            for offset in range(0, len(body), 1024):
                if faults.file_chunk_delay and offset:
                    time.sleep(faults.file_chunk_delay)
                self.wfile.write(body[offset:offset + 1024])
                self.wfile.flush()
        except OSError:
            return  # the client went away
        if cut:
            self._drop()

    def _record(self, method: str, body: bytes) -> None:
        with self.sim._lock:
            self.sim.requests.append(RequestRecord(method, self.path, dict(self.headers.items()),
                                                   body.decode("utf-8", "replace"), time.time()))

    def _api(self, method: str, body: bytes) -> None:
        sim = self.sim
        with sim._lock:
            sim.in_flight[method] += 1
            sim.peak_in_flight[method] = max(sim.peak_in_flight[method], sim.in_flight[method])
        try:
            self._answer_api(method, body)
        finally:
            with sim._lock:
                sim.in_flight[method] -= 1

    def _answer_api(self, method: str, body: bytes) -> None:
        sim, faults = self.sim, self.sim.faults
        self._record(method, body)
        if faults.latency:
            time.sleep(faults.latency)
        if sim._take("stall"):
            time.sleep(faults.stall_seconds)
        if sim._take("slow_body"):
            self._body_mode = "slow"
        elif sim._take("reset_mid_body"):
            self._body_mode = "reset"
        if not self._key_ok():
            return
        if sim._take("drop") or sim._chance(faults.drop_rate):
            return self._drop()
        result_id = _RESULT.match(self.path)
        if (faults.canned_for is None or (result_id is not None and result_id.group(1) == faults.canned_for)) \
                and sim._take("canned"):
            if faults.canned_base64:
                body = base64.b64decode(faults.canned_base64)
            else:
                body = faults.canned_body
                body = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
            return self._send(faults.canned_status, raw=body, headers=dict(faults.canned_headers or {}))
        if sim._take("rate_limit") or sim._chance(faults.rate_limit_rate):
            if faults.retry_after_text is not None:
                value = faults.retry_after_text
            elif faults.retry_after_as_date:
                value = email.utils.formatdate(time.time() + faults.retry_after, usegmt=True)
            else:
                value = f"{faults.retry_after:g}"
            return self._send(429, _error_body("Rate limit reached for requests", "rate_limit_exceeded"),
                              headers={"Retry-After": value})
        rate, status = ((faults.get_error_rate, faults.get_error_status) if method == "GET"
                        else (faults.post_error_rate, faults.post_error_status))
        if sim._take("server_errors"):
            return self._send(faults.server_error_status, _error_body("The server had an error", "server_error"))
        if sim._chance(rate):
            return self._send(status, _error_body("The server had an error", "server_error"))
        if sim._take("malformed") or sim._chance(faults.malformed_rate):
            return self._send(200, raw=b'{"data": {"id": "x", "status": ', content_type="application/json")
        if sim._take("truncated"):
            return self._send(200, raw=b'{"data": {"id": "abc", "stat', content_type="application/json")
        if sim._take("wrong_content_type"):
            return self._send(200, raw=b"<html><body>Bad gateway</body></html>", content_type="text/html")
        if sim._take("error_envelope"):
            code = faults.error_envelope_code
            message = {401: "invalid api key", 403: "insufficient balance", 429: "rate limit exceeded"}.get(
                code, "internal error, please retry")
            headers = {"Retry-After": f"{faults.retry_after:g}"} if code == 429 else None
            return self._send(200, {"code": code, "message": message, "data": None}, headers=headers)
        if method == "POST":
            match = _CREATE.match(self.path)
            return self._create(match, body) if match else self._send(404, _error_body("not found", "not_found"))
        match = _RESULT.match(self.path)
        if match and sim._take("not_found"):
            return self._send(404, _error_body(f"prediction {match.group(1)} not found", "not_found"))
        if match:
            return self._result(match.group(1))
        match = _RESULT_ALIAS.match(self.path)
        if match:
            return self._result(match.group(1), redirect=False)
        self._send(404, _error_body("not found", "not_found"))

    def _create(self, match: re.Match[str], raw: bytes) -> None:
        sim, faults = self.sim, self.sim.faults
        model, scene = match.group(1), match.group(2)
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return self._send(400, _error_body("request body is not a JSON object", "invalid_request_error"))
        problem = _invalid(model, scene, body)
        if problem:
            return self._send(400, _error_body(problem, "invalid_request_error"))
        if sim._take("insufficient_balance"):
            return self._send(403, _error_body("Insufficient balance: please top up your account",
                                               "insufficient_permissions"))
        prompt = str(body.get("prompt", ""))
        if faults.policy_word and faults.policy_word.lower() in prompt.lower():
            status = 503 if faults.policy_as_503 else 400
            return self._send(status, _error_body(
                "Content policy violation: the prompt was blocked due to safety concerns", "content_policy_violation"))
        job = sim._create(model, scene, body)
        if sim._take("drop_after_create"):
            return self._drop()
        self._send(200, {"data": sim._data(job, self._base()), "message": "success", "code": 200})

    def _result(self, job_id: str, *, redirect: bool = True) -> None:
        sim = self.sim
        if redirect and sim.faults.redirect_result_to:
            return self._send(307, {}, headers={"Location": sim.faults.redirect_result_to.replace("{id}", job_id)})
        with sim._lock:
            job = sim._jobs.get(job_id)
        if job is None or sim.clock() - job.created_at > sim.retention_seconds:
            return self._send(404, _error_body(f"prediction {job_id} not found", "not_found"))
        self._send(200, {"data": sim._data(job, self._base()), "message": "success", "code": 200})


def _invalid(model: str, scene: str, body: dict[str, Any]) -> str | None:
    """What the real API would refuse, in its words; None when the request is fine."""
    if model not in MODELS:
        return f"unknown model {model}"
    if scene not in SCENES:
        return f"unknown scene {scene}"
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt is required"
    if scene == "image-to-video" and not body.get("image"):
        return "image is required for image-to-video"
    resolution = body.get("resolution", "768P")
    duration = body.get("duration", 6)
    if resolution not in resolutions_for(model, allow_uncertain=True):
        return f"resolution {resolution} is not supported by {model}"
    if duration not in durations_for(model, resolution, allow_uncertain=True):
        return f"duration {duration} is not supported by {model} at {resolution}"
    return None


_VIDEO: bytes | None = None


def sample_video() -> bytes:
    """The small real MP4 every completed job points at."""
    global _VIDEO
    if _VIDEO is None:
        _VIDEO = resources.files("tui.simulator").joinpath("sample.mp4").read_bytes()
    return _VIDEO
