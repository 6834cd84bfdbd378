"""Hooks: a command of the user's run when a job of this session completes or fails.

The promises:
- a hook is an argv list from the config (`on_complete`, `on_fail`), run directly, never
  through a shell: a prompt or an error the server sent cannot become a command;
- the job goes to the hook as JSON on stdin and as HAILUO_JOB_ID, HAILUO_JOB_STATUS,
  HAILUO_JOB_OUTPUT and (once a file was downloaded) HAILUO_JOB_FILE in its environment;
- the API key is never in a hook's environment (neither under its own name nor under any
  other name that holds it);
- a hook that runs past its timeout is killed with its whole process group;
- what a hook prints goes to `hooks.log` in the state directory, never to the terminal;
- a failure is reported once per hook per session (`HookOutcome.first_failure`), so a
  broken hook does not shout at every job.

No Textual, no click: the dashboard runs `run` in a thread, the CLI could call it directly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from tui.core.config import ENV_KEY

DEFAULT_TIMEOUT = 30.0
#: What a hook printed is kept up to this many bytes per run in the log.
MAX_LOGGED_OUTPUT = 16 * 1024


@dataclass(frozen=True)
class HookOutcome:
    event: str  # "on_complete" / "on_fail"
    argv: tuple[str, ...]
    job_id: str
    exit_code: int | None  # None: it could not start, or was killed at the timeout
    timed_out: bool = False
    error: str | None = None  # why it could not start
    #: The first failure of this hook in this session (the one to show the user).
    first_failure: bool = False

    @property
    def failed(self) -> bool:
        return self.timed_out or self.error is not None or self.exit_code != 0

    def describe(self) -> str:
        name = os.path.basename(self.argv[0]) if self.argv else "?"
        if self.error is not None:
            return f"{self.event} hook {name} could not start: {self.error}"
        if self.timed_out:
            return f"{self.event} hook {name} was stopped after its timeout"
        return f"{self.event} hook {name} exited with {self.exit_code}"


def job_payload(job: Any) -> dict[str, Any]:
    """What a hook reads on stdin: the job as the history keeps it, without the raw answer."""
    doc = job.to_doc()
    doc.pop("raw", None)
    doc["id"] = job.display_id
    return doc


def hook_environment(job: Any, base: Mapping[str, str], key: str | None) -> dict[str, str]:
    env = {name: value for name, value in base.items() if name != ENV_KEY and not (key and key in value)}
    env["HAILUO_JOB_ID"] = str(job.display_id)
    env["HAILUO_JOB_STATUS"] = str(job.status)
    env["HAILUO_JOB_OUTPUT"] = str(job.outputs[0]) if job.outputs else ""
    files = [d.get("path") for d in (getattr(job, "downloads", None) or []) if d.get("path")]
    if files:
        env["HAILUO_JOB_FILE"] = str(files[-1])
    else:
        env.pop("HAILUO_JOB_FILE", None)
    return env


class HookRunner:
    def __init__(self, *, on_complete: Sequence[str] | None = None, on_fail: Sequence[str] | None = None,
                 log_path: Path, timeout: float = DEFAULT_TIMEOUT, key: str | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.hooks = {"on_complete": tuple(on_complete or ()), "on_fail": tuple(on_fail or ())}
        self.log_path = Path(log_path)
        self.timeout = timeout
        self._key = key
        self._env = dict(os.environ if env is None else env)
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return any(self.hooks.values())

    def event_for(self, job: Any) -> str | None:
        """Which hook a finished job calls, if one is configured."""
        if not job.is_finished:
            return None
        event = "on_complete" if job.is_success else "on_fail"
        return event if self.hooks[event] else None

    def run(self, job: Any) -> HookOutcome | None:
        """Run the job's hook to its end (or its timeout); blocking. None when none is configured."""
        event = self.event_for(job)
        if event is None:
            return None
        argv = self.hooks[event]
        started = time.time()
        output = b""
        exit_code: int | None = None
        timed_out = False
        error: str | None = None
        try:
            child = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=hook_environment(job, self._env, self._key),
                                     close_fds=True, start_new_session=True)
        except OSError as exc:
            error = exc.strerror or type(exc).__name__
        else:
            try:
                output, _ = child.communicate(json.dumps(job_payload(job)).encode("utf-8"), timeout=self.timeout)
                exit_code = child.returncode
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(child)
                try:
                    output, _ = child.communicate(timeout=5)
                except (subprocess.TimeoutExpired, ValueError):
                    output = b""
        with self._lock:
            outcome = HookOutcome(event, argv, str(job.display_id), exit_code, timed_out, error)
            if outcome.failed and event not in self._reported:
                self._reported.add(event)
                outcome = HookOutcome(event, argv, str(job.display_id), exit_code, timed_out, error, True)
            self._log(outcome, started, output or b"")
        return outcome

    def _log(self, outcome: HookOutcome, started: float, output: bytes) -> None:
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
            text = output[:MAX_LOGGED_OUTPUT].decode("utf-8", "replace")
            if self._key:
                text = text.replace(self._key, "[key]")
            status = "ok" if not outcome.failed else outcome.describe()
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(f"{stamp} {outcome.event} job {outcome.job_id} argv {list(outcome.argv)!r}: {status}\n")
                if text:
                    log.write(text if text.endswith("\n") else text + "\n")
        except OSError:
            pass  # a log that cannot be written must not stop the hook's report


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        child.kill()
