"""The dashboard's process life: it always ends, and says how with its exit status.

Contract:
- `run_dashboard(app)` runs a HailuoApp in the real terminal and returns the process's exit
  status: 129 after a hang-up (SIGHUP, or the terminal gone), 128 + the signal for another stop
  signal the app handled (143 for SIGTERM), `EXIT_CRASH` (70) when the app ended on an error
  (Textual prints the traceback and would otherwise return normally: status 0), else the app's
  own result (0 after `q`).
- While it runs, a `TerminalWatch` waits for the terminal to go away: a SIGHUP, or the tty
  reporting a hang-up or an error (what a read sees as EOF or EIO: an SSH link that dropped,
  `tmux kill-session`, a closed terminal window). Then, at once and from its own thread:
  1. writing to the terminal can no longer block: its descriptors are pointed at /dev/null,
     Textual's writer thread is replaced by a sink, and the old writer's queue is drained. (A
     writer thread that died on EIO leaves `Queue.put` on its bounded queue blocked for ever,
     in the middle of Textual's shutdown — Textual issue #6692.)
  2. the app is asked to leave as after SIGHUP: it stops polling, writes the history, exits 129;
  3. a watchdog is armed: if the process still exists `HANGUP_DEADLINE` seconds later, it
     writes the history itself and ends the process with `os._exit(129)`.
  A SIGHUP while the terminal is still there leaves the same way but keeps the terminal, so
  that Textual can restore it; the watchdog is armed all the same (`SIGHUP_DEADLINE`).
- Nothing here runs under Pilot (`run_test`): tests that build apps use no TerminalWatch.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import sys
import threading
import time
from typing import Any, Callable

#: Exit status of a dashboard that ended on an unexpected error (sysexits' EX_SOFTWARE): never 0,
#: and none of the CLI's own codes (1 means a job failed).
EXIT_CRASH = 70
#: Exit status after a hang-up: the shell's 128 + SIGHUP.
EXIT_HANGUP = 128 + signal.SIGHUP
#: Seconds from the terminal's loss to the watchdog's forced exit (the orderly way usually takes
#: less; with the terminal gone, cutting it short loses nothing the watchdog does not write).
HANGUP_DEADLINE = 1.0
#: The same after a SIGHUP while the terminal is still there: longer, so Textual can restore it.
SIGHUP_DEADLINE = 1.5
#: Seconds the watchdog waits for its own write of the history before it ends the process.
FLUSH_GRACE = 0.5

_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


def terminal_descriptors() -> list[int]:
    """The standard descriptors that are a terminal (Textual reads 0 and draws on 2)."""
    found = []
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                found.append(fd)
        except OSError:
            continue
    return found


def hung_up(fds: list[int]) -> bool:
    """True if any of these terminal descriptors reports a hang-up or an error, now."""
    if not fds:
        return False
    poller = select.poll()
    for fd in fds:
        poller.register(fd, _GONE)
    try:
        return any(mask & _GONE for _fd, mask in poller.poll(0))
    except OSError:
        return True


class _DiscardingWriter:
    """Stands in for Textual's writer thread once the terminal is gone: takes writes, keeps nothing."""

    def __init__(self, fileno: int) -> None:
        self._fileno = fileno

    def write(self, text: str) -> None:
        return

    def flush(self) -> None:
        return

    def stop(self) -> None:
        return

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fileno


def _drain_forever(pending: "queue.Queue[Any]") -> None:
    # Whoever is blocked putting into the dead writer's queue gets through; a daemon thread.
    while True:
        pending.get()


def flush_history(app: Any) -> None:
    """Put the app's history on disk, from any thread (the store takes its own locks)."""
    store = getattr(getattr(app, "service", None), "store", None)
    if store is not None and not getattr(store, "read_only", True):
        store.flush()


class TerminalWatch:
    """See the module's contract. `start` is called on the app's loop once the driver exists."""

    def __init__(self) -> None:
        #: The signal the app was stopped by (SIGHUP for a lost terminal), or None.
        self.stopped_by: int | None = None
        self.terminal_lost = threading.Event()
        self._armed = threading.Event()
        self._app: Any = None
        self._loop: Any = None
        self._leave: Callable[[int], Any] | None = None
        self._fds: list[int] = []  # watched for a hang-up
        self._outputs: list[int] = []  # pointed at /dev/null once it happened
        self._input_tty = False
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._lock = threading.Lock()
        self._quiet_input: int | None = None  # the write end of the pipe that replaces a lost input

    # -- the app's side ------------------------------------------------------------------------------
    def start(self, app: Any, loop: Any, leave: Callable[[int], Any]) -> None:
        """Watch the terminal of `app`; `leave(code)` is called on `loop` to ask it to go."""
        self._app, self._loop, self._leave = app, loop, leave
        if getattr(app, "is_web", False):
            # Browser mode: the "terminal" is the pipe pair to the serve process. Its end (the
            # server gone) must end this dashboard too, rather than leave it running unseen.
            self._fds, self._outputs, self._input_tty = [0], [1], False
        else:
            self._fds = terminal_descriptors()
            self._outputs = [fd for fd in self._fds if fd != 0]
            self._input_tty = 0 in self._fds
        if not self._fds:
            return
        self._wake_r, self._wake_w = os.pipe()
        threading.Thread(target=self._watch, name="terminal-watch", daemon=True).start()

    def signalled(self, signum: int) -> None:
        """The app's loop got a stop signal (before the app leaves)."""
        with self._lock:
            if self.stopped_by is None:
                self.stopped_by = signum
        if signum == signal.SIGHUP:
            self._arm()  # first: whatever happens next, the process ends
            if hung_up(self._fds):
                self._lose_terminal()

    def stop(self) -> None:
        """The app has returned: the watch thread ends (an armed watchdog stays armed)."""
        if self._wake_w is not None:
            try:
                os.write(self._wake_w, b"x")
                os.close(self._wake_w)
            except OSError:
                pass
            self._wake_w = None

    def exit_status(self, app: Any, result: Any) -> int:
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        if app.return_code:
            return EXIT_CRASH  # Textual's own mark of an unhandled error or a panic
        try:
            return int(result or 0)
        except (TypeError, ValueError):
            return EXIT_CRASH

    # -- the watch thread -----------------------------------------------------------------------------
    def _watch(self) -> None:
        poller = select.poll()
        for fd in self._fds:
            poller.register(fd, _GONE)  # nothing to read: only a hang-up or an error wakes it
        poller.register(self._wake_r, select.POLLIN)
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            except OSError:
                events = [(self._fds[0], select.POLLERR)]
            if any(fd == self._wake_r for fd, _mask in events):
                os.close(self._wake_r)
                return
            if any(mask & _GONE for _fd, mask in events):
                break
        with self._lock:
            if self.stopped_by is None:
                self.stopped_by = signal.SIGHUP
        self._arm()  # first: whatever happens next, the process ends
        self._lose_terminal()
        loop, leave = self._loop, self._leave
        if loop is not None and leave is not None:
            try:
                loop.call_soon_threadsafe(leave, EXIT_HANGUP)
            except RuntimeError:
                pass  # the loop is closed: the app is leaving already

    def _lose_terminal(self) -> None:
        """Make every later write to the terminal return at once (it would fail or block)."""
        with self._lock:  # from the watch thread or the loop's SIGHUP, whichever is first
            if self.terminal_lost.is_set():
                return
            self.terminal_lost.set()
        try:
            sink = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            sink = None
        if sink is not None:
            for fd in self._outputs:
                try:
                    os.dup2(sink, fd)
                except OSError:
                    pass
            os.close(sink)
        if self._input_tty:
            # A hung-up tty is always readable (EOF): Textual's reader would spin on it at full
            # CPU until the app is gone. An empty pipe is never readable; non-blocking, so a read
            # already on its way fails at once instead of waiting for ever.
            try:
                quiet, self._quiet_input = os.pipe()
                os.set_blocking(quiet, False)
                os.dup2(quiet, 0)
                os.close(quiet)
            except OSError:
                pass
        driver = getattr(self._app, "_driver", None)
        writer = getattr(driver, "_writer_thread", None)
        pending = getattr(writer, "_queue", None)
        if writer is not None and not isinstance(writer, _DiscardingWriter):
            try:
                fileno = writer.fileno()
            except (OSError, ValueError, AttributeError):
                fileno = 2
            driver._writer_thread = _DiscardingWriter(fileno)
        if isinstance(pending, queue.Queue):
            threading.Thread(target=_drain_forever, args=(pending,), name="terminal-drain", daemon=True).start()

    def _arm(self) -> None:
        if self._armed.is_set():
            return
        self._armed.set()
        threading.Thread(target=self._watchdog, name="hangup-watchdog", daemon=True).start()

    def _flush_quietly(self) -> None:
        try:
            flush_history(self._app)
        except Exception:  # noqa: BLE001 - the exit must happen whatever the disk says
            pass

    def _watchdog(self) -> None:
        # Never disarmed: once the terminal is gone the status is 129 either way, and this
        # also covers an interpreter that hangs on its way out after the app has returned.
        armed_at = time.monotonic()
        self.terminal_lost.wait(SIGHUP_DEADLINE)
        deadline = HANGUP_DEADLINE if self.terminal_lost.is_set() else SIGHUP_DEADLINE
        time.sleep(max(0.0, armed_at + deadline - time.monotonic()))
        # A write cut off by the exit is safe (a torn journal line is ignored, a snapshot is
        # replaced by rename), so the flush gets a short grace, not a wait that could last.
        flush = threading.Thread(target=self._flush_quietly, name="hangup-flush", daemon=True)
        flush.start()
        flush.join(FLUSH_GRACE)
        os._exit(128 + (self.stopped_by or signal.SIGHUP))


def trust_the_terminal_size(environ: dict = os.environ, fd: int | None = None) -> None:
    """Drop COLUMNS and LINES when the terminal itself can say its size.

    Textual asks `shutil.get_terminal_size`, which prefers those variables: one exported by a
    parent program (a test runner, a script, a stale shell setting) drew the dashboard at 80x24
    in a wider terminal, and kept it there through every resize."""
    try:
        os.get_terminal_size(sys.__stderr__.fileno() if fd is None else fd)
    except (AttributeError, OSError, ValueError):
        return  # no terminal to ask (a pipe, a browser session): the variables are all there is
    environ.pop("COLUMNS", None)
    environ.pop("LINES", None)


def run_dashboard(app: Any) -> int:
    """Run `app` in the terminal under a TerminalWatch; returns the process's exit status."""
    trust_the_terminal_size()
    watch = TerminalWatch()
    app.terminal_watch = watch
    try:
        result = app.run()
    finally:
        watch.stop()
    return watch.exit_status(app, result)
