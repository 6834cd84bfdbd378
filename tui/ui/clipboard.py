"""Copying text: OSC 52 through the terminal (works over SSH), and the local clipboard when there is one."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.app import App


def _local_clipboard_likely() -> bool:
    # Over SSH without a display pyperclip would only fail (or hang on xclip); OSC 52 covers that case.
    return sys.platform == "darwin" or sys.platform == "win32" or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def copy_text(app: "App", text: str, what: str) -> None:
    """Copy and say so in a toast. Never raises."""
    app.copy_to_clipboard(text)
    if _local_clipboard_likely():
        try:
            import pyperclip  # optional

            pyperclip.copy(text)
        except Exception:  # noqa: BLE001 - missing module or no clipboard: OSC 52 was sent already
            pass
    app.notify(f"Copied {what}", title="Clipboard", timeout=3)


def can_open_browser() -> bool:
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_url(app: "App", url: str) -> None:
    """Open in a browser where one can show; otherwise copy the URL and say so."""
    from urllib.parse import urlsplit

    if urlsplit(url).scheme.lower() not in ("http", "https"):
        # A URL from the server is opened only if it is a web address (never javascript:, file:...).
        copy_text(app, url, "the output address (not an http(s) URL, so it was not opened)")
        return
    if getattr(app, "is_web", False):
        # In browser mode the page that shows the dashboard opens it in a new tab.
        app.open_url(url, new_tab=True)
        app.notify("Opened the output in a new browser tab", timeout=3)
        return
    if can_open_browser():
        try:
            import webbrowser

            if webbrowser.open(url):
                app.notify("Opened the output in the browser", timeout=3)
                return
        except Exception:  # noqa: BLE001 - no browser after all: fall back to copying
            pass
    copy_text(app, url, "the output URL (no browser here to open it)")
