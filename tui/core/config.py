"""Settings: defaults < config file (TOML) < environment < flags. Every path lives here.

Paths follow platformdirs conventions; each can be overridden by an environment
variable and a flag. Nothing is written to the current directory or the home root.
"""

from __future__ import annotations

import math
import os
import re
import stat
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
ENV_STATE_DIR = "HAILUO_TUI_STATE_DIR"
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


def state_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Logs of this machine's runs (hooks.log) and the dashboard's remembered theme (ui-state.json);
    beside the data when the data dir is overridden."""
    override = env.get(ENV_STATE_DIR)
    if override:
        return Path(override).expanduser()
    if env.get(ENV_DATA_DIR):
        return data_dir(env) / "state"
    return Path(_platform_dirs().user_state_dir)


def over_ssh(env: Mapping[str, str] = os.environ) -> bool:
    return bool(env.get("SSH_TTY") or env.get("SSH_CONNECTION"))


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
    #: `[prices]`: the user's prices over the catalog's list prices (see tui.core.costs).
    prices: dict[str, Any] = field(default_factory=dict)
    #: Budgets in the price table's currency; None is no budget. Checked before every POST.
    budget_session: float | None = None
    budget_day: float | None = None
    budget_batch: float | None = None
    #: Whether failed, expired and unknown jobs ("may be billed") count toward the budgets.
    bill_failed: bool = True
    # -- over SSH: terminal notifications, title, hooks, low bandwidth --------------------------
    #: "auto" (from the terminal's environment), "osc9", "osc777", "osc99", "desktop", "bell", "off".
    notify: str = "auto"
    #: Show the session's jobs in the terminal title (restored on exit).
    terminal_title: bool = True
    #: argv lists run when a job of this session completes / fails (never through a shell).
    on_complete: tuple[str, ...] = ()
    on_fail: tuple[str, ...] = ()
    hook_timeout: float = 30.0
    #: None: on when the session is over SSH (SSH_TTY / SSH_CONNECTION).
    low_bandwidth: bool | None = None
    #: Poll by each job's expected time to finish (tui.core.eta) rather than by its age alone.
    eta_polling: bool = True
    state_dir: Path = field(default_factory=state_dir)

    @property
    def low_bandwidth_on(self) -> bool:
        return self.low_bandwidth if self.low_bandwidth is not None else over_ssh()

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
    "prices": dict,
    "budget_session": (int, float),
    "budget_day": (int, float),
    "budget_batch": (int, float),
    "bill_failed": bool,
    "notify": str,
    "terminal_title": bool,
    "on_complete": list,
    "on_fail": list,
    "hook_timeout": (int, float),
    "low_bandwidth": bool,
    "eta_polling": bool,
}


#: A config file is a few lines; anything larger is not one.
CONFIG_MAX_BYTES = 1024 * 1024


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        # Never opened: a FIFO would block, a device never ends.
        raise ConfigError(f"config file {path} is not a regular file")
    if info.st_size > CONFIG_MAX_BYTES:
        raise ConfigError(f"config file {path} is larger than 1 MB; it is not a config file")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(CONFIG_MAX_BYTES + 1)
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
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
        if key in ("on_complete", "on_fail"):
            if not value or not all(isinstance(part, str) and part for part in value):
                raise ConfigError(f"config file {path}: {key} must be a list of strings, the program first "
                                  f'(e.g. {key} = ["notify-me", "--done"]); it is never run through a shell')
            value = tuple(value)
        if key == "notify" and value not in NOTIFY_KINDS:
            raise ConfigError(f"config file {path}: notify must be one of {', '.join(NOTIFY_KINDS)}")
        values[key] = value
    if "keymap" in values:
        values["keymap"] = check_keymap(values["keymap"], source=f"config file {path}")
    return values


NOTIFY_KINDS = ("auto", "osc9", "osc777", "osc99", "desktop", "bell", "off")


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


def check_base_url(url: object, *, source: str = "base URL") -> str:
    """The one check of an API base URL, wherever it comes from; its normal form, or ConfigError.

    http or https, a host, a port in 1-65535 if one is given, no user name or password (the key
    is the only credential, sent in its header), no whitespace or control character anywhere,
    no query or fragment. Checked when the settings are made, so nothing is recorded for a
    request that could never have been sent.
    """
    if not isinstance(url, str):
        raise ConfigError(f"{source} must be text like https://host[:port], not {type(url).__name__}")
    shown = url.encode("ascii", "backslashreplace").decode("ascii")
    for index, ch in enumerate(url):
        if ch.isspace() or not ch.isprintable():
            raise ConfigError(f"{source} {shown!r} contains a space, line break or control character "
                              f"(U+{ord(ch):04X} at character {index + 1}); give the URL alone")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        if "port" in str(exc).lower():
            raw_port = urlsplit(url).netloc.rsplit("]", 1)[-1].rsplit(":", 1)[-1]
            detail = (f"port {raw_port} is out of range (1-65535)" if raw_port.isdigit()
                      else f"port {raw_port!r} is not a number (1-65535)")
            raise ConfigError(f"{source} {shown!r}: {detail}") from None
        raise ConfigError(f"{source} {shown!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigError(f"{source} {shown!r} must start with https:// or http://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        # httpx would send them as Basic auth in place of the key, and the refusal would then blame
        # the key. The URL is not repeated whole: it holds a password.
        bare = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        raise ConfigError(f"{source} must not contain a user name or password (the API key is read from "
                          f"${ENV_KEY} and sent in its own header): give {bare}")
    if not parts.hostname:
        raise ConfigError(f"{source} {shown!r} has no host; it must look like https://host[:port]")
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{source} {shown!r}: port {port} is out of range (1-65535)")
    if parts.netloc.endswith(":"):
        raise ConfigError(f"{source} {shown!r} has an empty port; give https://host or https://host:port")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ConfigError(f"{source} {shown!r} must not have a query or fragment (?...#...)")
    return url.rstrip("/")


@dataclass(frozen=True)
class NumberRule:
    """The range a numeric setting must be in; `above` is an exclusive lower bound."""

    kind: type
    above: float | None = None
    at_least: float | None = None
    at_most: float | None = None
    unit: str = ""
    note: str = ""

    def describe(self) -> str:
        low = (f"greater than {self.above:g}" if self.above is not None
               else f"at least {self.at_least:g}" if self.at_least is not None else "")
        high = f"at most {self.at_most:g}" if self.at_most is not None else ""
        kind = "a whole number" if self.kind is int else "a number"
        bounds = " and ".join(b for b in (low, high) if b)
        text = f"{kind} {bounds}{' ' + self.unit if self.unit else ''}".strip()
        return f"{text} ({self.note})" if self.note else text

    def allows(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.above is not None and not value > self.above:
            return False
        if self.at_least is not None and not value >= self.at_least:
            return False
        return self.at_most is None or value <= self.at_most


#: Every numeric setting and its range: one table, applied to the config file, the
#: environment and flags alike (a 0 or NaN timeout would make every request fail later).
NUMBER_RULES: dict[str, NumberRule] = {
    "connect_timeout": NumberRule(float, above=0, at_most=600, unit="seconds"),
    "read_timeout": NumberRule(float, above=0, at_most=3600, unit="seconds"),
    "poll_concurrency": NumberRule(int, at_least=1, at_most=64),
    "poll_rate": NumberRule(float, at_least=0, at_most=1000, unit="requests a second", note="0: no cap"),
    "poll_base_interval": NumberRule(float, above=0, at_most=3600, unit="seconds"),
    "poll_max_interval": NumberRule(float, above=0, at_most=86400, unit="seconds"),
    "retention_seconds": NumberRule(float, above=0, at_most=10 * 365 * 86400, unit="seconds"),
    "submit_rate": NumberRule(float, at_least=0, at_most=100, unit="submits a second", note="0: no cap"),
}


def check_numbers(values: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> None:
    """ConfigError naming the first numeric setting out of its range, its value and the range."""
    sources = sources or {}
    for name, rule in NUMBER_RULES.items():
        if name not in values:
            continue
        value = values[name]
        if not rule.allows(value):
            where = f" (from {sources[name]})" if name in sources else ""
            raise ConfigError(f"{name} = {value!r}{where} is out of range: it must be {rule.describe()}")
    base, ceiling = values.get("poll_base_interval"), values.get("poll_max_interval")
    if isinstance(base, (int, float)) and isinstance(ceiling, (int, float)) and ceiling < base:
        raise ConfigError(f"poll_max_interval = {ceiling!r} is below poll_base_interval = {base!r}; "
                          "the longest pause between polls cannot be shorter than the first")


#: One key name as Textual spells them: "q", "ctrl+q", "f1", "question_mark", "?"...
_KEY_NAME = re.compile(r"^(?:[A-Za-z0-9_]+(?:\+[A-Za-z0-9_]+)*(?:\+.)?|[^\s,+])$")


def check_keymap(keymap: object, *, source: str = "settings") -> dict[str, str]:
    """`binding id -> "key[,key...]"`; ConfigError naming the binding id whose value is no key."""
    if not isinstance(keymap, dict):
        raise ConfigError(f"{source}: keymap must be a table of binding id = \"key\"")
    checked: dict[str, str] = {}
    for binding_id, keys in keymap.items():
        if not isinstance(keys, str):
            shown = "a table" if isinstance(keys, dict) else repr(keys)
            raise ConfigError(f"{source}: keymap {binding_id!r} = {shown}: a binding must be a key "
                              f"as text, such as \"ctrl+q\" (several: \"ctrl+q,f10\")")
        names = [name.strip() for name in keys.split(",")]
        bad = next((name for name in names if not _KEY_NAME.match(name)), None)
        if bad is not None:
            raise ConfigError(f"{source}: keymap {binding_id!r} = {keys!r}: {bad!r} is not a key name "
                              f"(examples: \"q\", \"ctrl+q\", \"f1\"; several: \"ctrl+q,f10\")")
        checked[binding_id] = ",".join(names)
    return checked


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
    #: Where each checked setting came from, for the message that refuses it.
    sources: dict[str, str] = {key: f"config file {cfg_path}" for key in file_values}
    for key, value in file_values.items():
        values[key] = Path(value).expanduser() if key in ("db_path", "download_dir", "cache_dir") else value
    values.setdefault("db_path", default_db_path(env))
    values.setdefault("templates_path", templates_path(env))
    values.setdefault("state_dir", state_dir(env))
    values["api_key"] = _check_key(env.get(ENV_KEY))
    if env.get(ENV_BASE_URL):
        values["base_url"] = env[ENV_BASE_URL]
        sources["base_url"] = f"${ENV_BASE_URL}"
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
        sources["base_url"] = "--base-url"
    if db:
        values["db_path"] = Path(db).expanduser()
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    sources.update({k: f"--{k.replace('_', '-')}" for k in given})
    values["base_url"] = check_base_url(values.get("base_url", DEFAULT_BASE_URL),
                                        source=_base_url_label(sources.get("base_url")))
    check_numbers(values, sources)
    if "keymap" in given:
        values["keymap"] = check_keymap(values["keymap"])
    if isinstance(values.get("download_dir"), str):
        values["download_dir"] = Path(values["download_dir"]).expanduser()
    if isinstance(values.get("cache_dir"), str):
        values["cache_dir"] = Path(values["cache_dir"]).expanduser()
    values.setdefault("cache_dir", cache_dir(env))
    if values.get("preview", "auto") not in PREVIEW_MODES:
        raise ConfigError(f"preview must be one of {', '.join(PREVIEW_MODES)} (not {values['preview']!r})")
    if values.get("auth_scheme", "raw") not in ("raw", "bearer"):
        raise ConfigError("auth_scheme must be 'raw' or 'bearer'")
    _check_costs(values, cfg_path)
    return Settings(**values)


def _base_url_label(source: str | None) -> str:
    if source is None:
        return "base URL"
    if source.startswith("config file"):
        return f"base_url in {source}"
    return f"base URL from {source}"


def _check_costs(values: dict[str, Any], path: Path) -> None:
    """`[prices]` entries and budgets are checked at start, so a typo is never a silent default."""
    from tui.core.costs import PriceTable  # lazy: costs imports the catalog

    try:
        PriceTable(values.get("prices") or {})
    except ValueError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    for name in ("budget_session", "budget_day", "budget_batch"):
        limit = values.get(name)
        if limit is not None:
            if isinstance(limit, bool):
                raise ConfigError(f"config file {path}: {name} must be a number, not {limit!r}")
            if limit < 0 or limit != limit or limit == float("inf"):
                raise ConfigError(f"config file {path}: {name} must be zero or more, not {limit!r}")
            values[name] = float(limit)


def styles_dir() -> Path:
    """The .tcss files: inside the installed package (wheel), else the source tree's top-level styles/."""
    package = Path(__file__).resolve().parent.parent  # tui/, two levels up from tui/core/config.py
    for candidate in (package / "styles", package.parent / "styles"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the styles/ directory is missing from this installation")
