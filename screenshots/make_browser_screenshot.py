"""Take screenshots/browser.png: the dashboard served by `hailuo-tui serve --demo`, in headless Chromium.

    python screenshots/make_browser_screenshot.py

Needs Debian's chromium at /usr/bin/chromium (`apt-get install --no-install-recommends chromium`)
and Playwright (in the `test` extra), which only drives it. Everything stays on loopback: the
demo's own simulator, a throw-away data directory, and a browser that may reach 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The page keeps its xterm.js terminal to itself: catch it when stored, to know when the table is drawn.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, 'terminal', {configurable: true, set(value) {
  Object.defineProperty(this, 'terminal', {value, writable: true, configurable: true, enumerable: true});
  if (value && value.buffer && value.onData) { window.__terminal = value; } }});
"""
SCREEN_TEXT = """() => { const t = window.__terminal; if (!t) return '';
  const b = t.buffer.active, out = [];
  for (let y = 0; y < t.rows; y++) { const l = b.getLine(b.viewportY + y); out.push(l ? l.translateToString(true) : ''); }
  return out.join('\\n'); }"""


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "GPTPROTO_API_KEY"}
        env.update(HAILUO_TUI_DATA_DIR=tmp, HAILUO_TUI_CONFIG=str(Path(tmp) / "config.toml"))
        server = subprocess.Popen([sys.executable, "-m", "tui", "serve", "--demo", "--port", "0"],
                                  stdout=subprocess.PIPE, text=True, env=env, cwd=tmp)
        try:
            url = server.stdout.readline().split(": ", 1)[1].strip()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch_persistent_context(
                    str(Path(tmp) / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
                    viewport={"width": 1400, "height": 820})
                browser.route("**/*", lambda route: route.continue_()
                              if urlsplit(route.request.url).hostname == "127.0.0.1" else route.abort())
                page = browser.new_page()
                page.add_init_script(CATCH_TERMINAL)
                page.goto(url)
                deadline = time.monotonic() + 30
                while "A red fox trotting" not in page.evaluate(SCREEN_TEXT):
                    if time.monotonic() > deadline:
                        raise SystemExit("the dashboard did not show up in the page")
                    page.wait_for_timeout(200)
                page.locator(".xterm-screen").click(position={"x": 5, "y": 5})  # the status line: focus stays put
                page.keyboard.press("G")  # the oldest job: completed, its outputs in the detail pane
                page.wait_for_timeout(1500)
                page.screenshot(path=str(HERE / "browser.png"))
                browser.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)
    print(HERE / "browser.png")


if __name__ == "__main__":
    main()
