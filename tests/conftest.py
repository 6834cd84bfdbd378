"""Fixtures shared by the suite: an isolated environment and a running loopback simulator."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tui.simulator import Simulator


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, monkeypatch):
    """No test reads or writes the user's real config, history or key."""
    for name in ("GPTPROTO_API_KEY", "GPTPROTO_BASE_URL", "HAILUO_TUI_DB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HAILUO_TUI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HAILUO_TUI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("XDG_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    monkeypatch.setenv("HAILUO_TUI_CACHE_DIR", str(tmp_path / "cache"))
    # Frames are fetched and decoded only by the tests about them (they ask for a preview mode):
    # elsewhere a shown job would fetch its clip and change the requests a test counts.
    monkeypatch.setenv("HAILUO_TUI_PREVIEW", "off")
    # Each test's sockets in a directory of its own, short enough for a socket path (107 bytes).
    runtime = tempfile.mkdtemp(prefix="ht-", dir="/tmp")
    monkeypatch.setenv("HAILUO_TUI_RUNTIME_DIR", runtime)
    yield
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def api_key() -> str:
    return "sk-test-not-a-real-key-0000"


@pytest.fixture
def tmp_db(tmp_path) -> Path:
    return tmp_path / "history" / "history.json"


@pytest.fixture
def make_simulator():
    started: list[Simulator] = []

    def make(**options) -> Simulator:
        options.setdefault("seed", 1)
        options.setdefault("job_seconds", 0.5)
        options.setdefault("stop_latency", 0.05)  # each test's teardown waits for it
        sim = Simulator(**options).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(make_simulator) -> Simulator:
    return make_simulator()


@pytest.fixture(autouse=True)
def toasts_are_recorded(monkeypatch):
    """Keep the text of every toast on its app (see helpers.toasts); the toast is still raised."""
    from tui.ui.app import HailuoApp

    raise_toast = HailuoApp.notify

    def notify(self, message, *args, **kwargs):
        self.__dict__.setdefault("_raised_toasts", []).append(str(message))
        self.__dict__.setdefault("_raised_toast_titles", []).append(str(kwargs.get("title", "")))
        return raise_toast(self, message, *args, **kwargs)

    monkeypatch.setattr(HailuoApp, "notify", notify)
