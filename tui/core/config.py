"""Settings: defaults < config file (TOML) < environment < flags. Every path lives here.

Paths follow platformdirs conventions; each can be overridden by an environment
variable and a flag. Nothing is written to the current directory or the home root.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

APP_NAME = "hailuo-tui"
DEFAULT_BASE_URL = "https://gptproto.com"

ENV_KEY = "GPTPROTO_API_KEY"
ENV_BASE_URL = "GPTPROTO_BASE_URL"
ENV_DB = "HAILUO_TUI_DB"
ENV_CONFIG = "HAILUO_TUI_CONFIG"
ENV_DATA_DIR = "HAILUO_TUI_DATA_DIR"
ENV_DOWNLOAD_DIR = "HAILUO_TUI_DOWNLOAD_DIR"
ENV_CACHE_DIR = "HAILUO_TUI_CACHE_DIR"
ENV_PREVIEW = "HAILUO_TUI_PREVIEW"

#: How frames are drawn: the best the terminal offers, one protocol, Unicode half-blocks, or none.
PREVIEW_MODES = ("auto", "kitty", "sixel", "blocks", "off")


class ConfigError(Exception):
    """A setting that cannot be used; the message says which and why."""


def _platform_dirs():
    from platformdirs import PlatformDirs

    return PlatformDirs(APP_NAME, appauthor=False)


def data_dir(env: Mapping[str, str] = os.environ) -> Path:
    override = env.get(ENV_DATA_DIR)
    return Path(override).expanduser() if override else Path(_platform_dirs().user_data_dir)


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    override = env.get(ENV_CONFIG)
    return Path(override).expanduser() if override else Path(_platform_dirs().user_config_dir) / "config.toml"


def default_db_path(env: Mapping[str, str] = os.environ) -> Path:
    return data_dir(env) / "history.json"


def demo_db_path(env: Mapping[str, str] = os.environ) -> Path:
    return data_dir(env) / "demo-history.json"


def templates_path(env: Mapping[str, str] = os.environ) -> Path:
    """Named prompt templates (JSON)."""
    return data_dir(env) / "templates.json"


def default_download_dir(env: Mapping[str, str] = os.environ) -> Path:
    override = env.get(ENV_DOWNLOAD_DIR)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_downloads_dir

    return Path(user_downloads_dir()) / APP_NAME


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Previews and the clips fetched for them: safe to delete at any time."""
    override = env.get(ENV_CACHE_DIR)
    return Path(override).expanduser() if override else Path(_platform_dirs().user_cache_dir)


def default_preview(env: Mapping[str, str] = os.environ) -> str:
    """`$HAILUO_TUI_PREVIEW` when set (checked by load_settings), else auto."""
    return env.get(ENV_PREVIEW, "").strip().lower() or "auto"


@dataclass(frozen=True)
class Settings:
    #: Never in repr(): a crash report that prints locals must not print the key.
    api_key: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    #: "raw" sends `Authorization: <key>` as the reference page's examples do; "bearer" adds the prefix.
    auth_scheme: str = "raw"
    db_path: Path = field(default_factory=default_db_path)
    config_file: Path = field(default_factory=config_path)
    download_dir: Path = field(default_factory=default_download_dir)
    templates_path: Path = field(default_factory=templates_path)
    cache_dir: Path = field(default_factory=cache_dir)
    #: One of PREVIEW_MODES.
    preview: str = field(default_factory=default_preview)
    #: Frames and preview clips together stay under this many MB (least recently used go first).
    preview_cache_mb: int = 256
    allow_uncertain_resolutions: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    poll_concurrency: int = 8
    poll_rate: float = 10.0  # requests per second, all jobs together
    poll_base_interval: float = 2.0
    poll_max_interval: float = 20.0
    retention_seconds: float = 7 * 24 * 3600
    bell: bool = False
    #: `notify-send` on completion/failure, when a desktop session (DISPLAY / WAYLAND_DISPLAY) exists.
    desktop_notifications: bool = True
    #: Download a job's outputs when it completes while the dashboard or `watch` runs.
    auto_download: bool = False
    #: Batch runs send at most this many submits a second (and pause on a 429).
    submit_rate: float = 1.0
    read_only: bool = False
    theme: str | None = None
    keymap: dict[str, str] = field(default_factory=dict)
    demo: bool = False

    @property
    def api_host(self) -> str:
        return urlsplit(self.base_url).netloc or self.base_url

    @property
    def has_key(self) -> bool:
        return bool(self.api_key)

    @property
    def masked_key(self) -> str:
        """Last 4 characters only, for the status line."""
        if not self.api_key:
            return "no key"
        return "…" + self.api_key[-4:] if len(self.api_key) > 8 else "set"

    def with_changes(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    def public_dict(self) -> dict[str, Any]:
        """Everything but the key: safe to print or log."""
        return {
            "base_url": self.base_url,
            "auth_scheme": self.auth_scheme,
            "db_path": str(self.db_path),
            "config_file": str(self.config_file),
            "download_dir": str(self.download_dir),
            "cache_dir": str(self.cache_dir),
            "api_key": self.masked_key,
        }


# Config-file keys a user may set, with the type each must have.
_FILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "base_url": str,
    "auth_scheme": str,
    "db_path": str,
    "download_dir": str,
    "cache_dir": str,
    "preview": str,
    "preview_cache_mb": int,
    "allow_uncertain_resolutions": bool,
    "connect_timeout": (int, float),
    "read_timeout": (int, float),
    "poll_concurrency": int,
    "poll_rate": (int, float),
    "poll_base_interval": (int, float),
    "poll_max_interval": (int, float),
    "retention_seconds": (int, float),
    "bell": bool,
    "desktop_notifications": bool,
    "auto_download": bool,
    "submit_rate": (int, float),
    "theme": str,
    "keymap": dict,
}


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        expected = _FILE_KEYS.get(key)
        if expected is None:
            if key in ("api_key", "key"):
                raise ConfigError(f"config file {path}: the API key is read from ${ENV_KEY} only, never from a file")
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"config file {path}: {key} has the wrong type ({type(value).__name__})")
        values[key] = value
    return values


def _check_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key:
        return None
    if any(ch.isspace() or ord(ch) < 32 for ch in key):
        raise ConfigError(f"${ENV_KEY} contains spaces or control characters; paste the key alone")
    if not key.isascii() or not key.isprintable():
        raise ConfigError(f"${ENV_KEY} contains characters that are not plain ASCII; paste the key alone")
    if key.lower().startswith("bearer"):
        raise ConfigError(f"${ENV_KEY} should hold the key alone, without 'Bearer'")
    return key


def _check_base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"base URL {url!r} must look like https://host[:port]")
    return url.strip().rstrip("/")


def load_settings(
    *,
    base_url: str | None = None,
    db: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] = os.environ,
    **overrides: Any,
) -> Settings:
    """Build the settings from every source, flags last. Raises ConfigError with one line."""
    cfg_path = config_path(env)
    file_values = read_config_file(cfg_path)
    values: dict[str, Any] = {"config_file": cfg_path}
    for key, value in file_values.items():
        values[key] = Path(value).expanduser() if key in ("db_path", "download_dir", "cache_dir") else value
    values.setdefault("db_path", default_db_path(env))
    values.setdefault("templates_path", templates_path(env))
    values["api_key"] = _check_key(env.get(ENV_KEY))
    if env.get(ENV_BASE_URL):
        values["base_url"] = env[ENV_BASE_URL]
    if env.get(ENV_DB):
        values["db_path"] = Path(env[ENV_DB]).expanduser()
    if env.get(ENV_DOWNLOAD_DIR):
        values["download_dir"] = Path(env[ENV_DOWNLOAD_DIR]).expanduser()
    if env.get(ENV_CACHE_DIR):
        values["cache_dir"] = Path(env[ENV_CACHE_DIR]).expanduser()
    if env.get(ENV_PREVIEW, "").strip():
        values["preview"] = default_preview(env)
    if base_url:
        values["base_url"] = base_url
    if db:
        values["db_path"] = Path(db).expanduser()
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["base_url"] = _check_base_url(values.get("base_url", DEFAULT_BASE_URL))
    if isinstance(values.get("download_dir"), str):
        values["download_dir"] = Path(values["download_dir"]).expanduser()
    if isinstance(values.get("cache_dir"), str):
        values["cache_dir"] = Path(values["cache_dir"]).expanduser()
    values.setdefault("cache_dir", cache_dir(env))
    if values.get("preview", "auto") not in PREVIEW_MODES:
        raise ConfigError(f"preview must be one of {', '.join(PREVIEW_MODES)} (not {values['preview']!r})")
    if values.get("auth_scheme", "raw") not in ("raw", "bearer"):
        raise ConfigError("auth_scheme must be 'raw' or 'bearer'")
    return Settings(**values)


def styles_dir() -> Path:
    """The .tcss files: inside the installed package (wheel), else the source tree's top-level styles/."""
    package = Path(__file__).resolve().parent.parent  # tui/, two levels up from tui/core/config.py
    for candidate in (package / "styles", package.parent / "styles"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the styles/ directory is missing from this installation")
