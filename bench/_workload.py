"""The running dashboard under load: a simulator in its own process with N running jobs, a
history holding them, and the dashboard (or the bare baseline app) in a pseudo-terminal.

The simulator runs in a separate process so that its work is never counted as the
dashboard's (CPU) and never competes with it for the interpreter lock (latency).

    python bench/_workload.py simulator --pending 500   # prints {"base_url", "ids"}, serves until stdin closes
    python bench/_workload.py bare                      # the bare baseline app, until quit
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import child_environ, make_history  # noqa: E402

KEY = "sk-bench-0000000000"
#: Running jobs never end during a benchmark.
FOREVER = 10 * 24 * 3600.0
TERMINAL_SIZE = (120, 40)


class Workload:
    """A simulator process with `pending` running jobs, and a history of `history` jobs whose
    newest `pending` are those jobs. With `flip_every`, the simulator reports every running
    job as `queued` and `processing` in turn, so each poll after a flip sees a status change."""

    def __init__(self, tmp: Path, *, history: int, pending: int, latency: float = 0.0,
                 flip_every: float = 0.0) -> None:
        self.tmp = Path(tmp)
        self.history = max(history, pending)
        self.pending = pending
        self.latency = latency
        self.flip_every = flip_every
        self.db = self.tmp / "history" / "history.json"
        self.base_url = ""
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "Workload":
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "simulator", "--pending", str(self.pending), "--latency", str(self.latency),
             "--flip-every", str(self.flip_every)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process did not start")
        started = json.loads(line)
        self.base_url = started["base_url"]
        make_history(self.db, self.history, pending_ids=started["ids"])
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.stdin.close()  # its signal to stop
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def gets(self) -> int:
        """Result queries the simulator has answered so far."""
        with urllib.request.urlopen(self.base_url + "/_sim/stats", timeout=5) as response:
            return int(json.load(response)["requests"].get("GET", 0))

    def env(self) -> dict[str, str]:
        """Environment of a dashboard pointed at this simulator and history, with nothing of the user's."""
        env = {k: v for k, v in child_environ().items() if not k.startswith(("TEXTUAL", "GPTPROTO", "HAILUO"))}
        env.update({"GPTPROTO_API_KEY": KEY, "GPTPROTO_BASE_URL": self.base_url, "HAILUO_TUI_DB": str(self.db),
                    "HAILUO_TUI_DATA_DIR": str(self.tmp / "data"), "HAILUO_TUI_CONFIG": str(self.tmp / "none.toml")})
        return env

    def settings(self):
        from tui.core.config import load_settings

        return load_settings(env=self.env())


def serve_simulator(pending: int, latency: float, flip_every: float) -> None:
    from tui.simulator import Simulator

    sim = Simulator(job_seconds=FOREVER, require_key=KEY, seed=1)
    sim.faults.latency = latency
    sim.start()
    ids = [sim.seed_job(status="processing", prompt=f"bench job {i}") for i in range(pending)]
    stop = threading.Event()

    def flip() -> None:
        while not stop.wait(flip_every):
            sim.faults.odd_status = None if sim.faults.odd_status else "queued"

    if flip_every > 0:
        threading.Thread(target=flip, daemon=True).start()
    print(json.dumps({"base_url": sim.base_url, "ids": ids}), flush=True)
    sys.stdin.read()  # until the parent closes it
    stop.set()
    sim.stop()


def run_bare() -> None:
    from _common import bare_app_class

    bare_app_class()().run()


# -- a dashboard in a pseudo-terminal -------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_in_pty(argv: list[str], *, env: dict[str, str], seconds: float, warmup: float,
               quit_keys: bytes = b"q", size: tuple[int, int] = TERMINAL_SIZE) -> dict[str, Any]:
    """Run argv on a pty of `size` (columns, rows), read everything it writes, and measure, over
    `seconds` after `warmup`, the bytes it wrote and the CPU time it used."""
    import fcntl
    import pty
    import struct
    import termios

    env = {**env, "TERM": "xterm-256color", "COLUMNS": str(size[0]), "LINES": str(size[1])}
    env.pop("COLORTERM", None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is the pty's slave side
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    total = 0
    marks: dict[str, Any] = {}
    started = time.monotonic()
    window_start, window_end = started + warmup, started + warmup + seconds
    try:
        while True:
            now = time.monotonic()
            if "cpu0" not in marks and now >= window_start:
                marks.update(cpu0=cpu_seconds(pid), bytes0=total, t0=now)
            if now >= window_end:
                marks.update(cpu1=cpu_seconds(pid), bytes1=total, t1=now)
                break
            ready, _, _ = select.select([fd], [], [], min(0.05, max(0.0, window_end - now)))
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError as exc:  # EIO: the child has gone
                    if exc.errno == errno.EIO:
                        raise RuntimeError(f"{argv} ended early") from None
                    raise
                if not chunk:
                    raise RuntimeError(f"{argv} ended early")
                total += len(chunk)
    finally:
        _stop(pid, fd, quit_keys)
    elapsed = marks["t1"] - marks["t0"]
    return {"seconds": elapsed, "bytes": marks["bytes1"] - marks["bytes0"], "startup_bytes": marks["bytes0"],
            "cpu": marks["cpu1"] - marks["cpu0"]}


def _stop(pid: int, fd: int, quit_keys: bytes) -> None:
    """Quit the way a user would (again each second: a key sent while the app is still
    starting may be dropped); kill only when that does not work."""
    deadline = time.monotonic() + 10
    next_keys = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_keys:
            try:
                os.write(fd, quit_keys)
            except OSError:
                pass
            next_keys = time.monotonic() + 1.0
        try:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                os.read(fd, 65536)
        except OSError:
            pass
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)


def dashboard_argv() -> list[str]:
    return [sys.executable, "-m", "tui"]


def bare_argv() -> list[str]:
    return [sys.executable, __file__, "bare"]


#: ctrl+q quits a stock Textual app.
BARE_QUIT = b"\x11"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sim = sub.add_parser("simulator")
    sim.add_argument("--pending", type=int, default=500)
    sim.add_argument("--latency", type=float, default=0.0)
    sim.add_argument("--flip-every", type=float, default=0.0)
    sub.add_parser("bare")
    args = parser.parse_args(argv)
    if args.what == "simulator":
        serve_simulator(args.pending, args.latency, args.flip_every)
    else:
        run_bare()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
