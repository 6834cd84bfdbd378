"""Saving a job's output videos: streamed to disk, resumable, size-checked, never overwriting.

The output host is not the API. Downloads go through their own httpx client that never
carries an Authorization header, even when an output URL points at the API's own host: the
key stays with the API client.

How one file is saved (`Downloader.fetch`):
- bytes stream into `NAME.part` beside the final name; a `.part` left by an interrupted run
  is resumed with an HTTP Range request (a host that ignores Range sends the whole file and
  the part starts over);
- the final size must equal what the host announced (Content-Length, or the total of a
  Content-Range); a mismatch removes the part, whose bytes cannot be trusted;
- a URL that is not http(s) with a host (`javascript:`, `file:`...) is refused before any
  file is made; a `.part` with nothing in it is never left behind, whatever stopped it;
- the finished part is linked to its final name only if that name is free. An existing file
  with the same size and bytes means the download is already done; a different file keeps
  its name and the new one is saved as `STEM.2.mp4` (then `.3`, ...). Nothing is overwritten.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from tui import __version__
from tui.core.catalog import human_bytes
from tui.core.text import inert

if TYPE_CHECKING:
    import httpx

    from tui.core.records import Job

PART_SUFFIX = ".part"
SLUG_MAX = 40
ID_MAX = 64
MODEL_MAX = 40
VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".m4v", ".mkv")
#: Transfers cut short (or answered 429/5xx) are resumed this many times before giving up.
RETRIES = 3
RETRY_AFTER_MAX = 30.0
#: Progress callbacks at most this often (seconds), plus one at the start and one at the end.
PROGRESS_INTERVAL = 0.1
ALTERNATIVE_NAMES_MAX = 999

DOWNLOADED = "downloaded"
RESUMED = "resumed"
ALREADY = "already there"

ProgressCallback = Callable[[int, "int | None"], None]


class DownloadError(Exception):
    """A download that did not finish; `message` is one line for the user.

    `exit_code` follows the CLI's codes: 4 for the host or the network (the part is kept when
    `resumable`), 2 for a local problem (directory, disk, a download already running), 1 for
    a job with nothing to download.
    """

    def __init__(self, message: str, *, exit_code: int = 4, resumable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.resumable = resumable


class NothingToDownload(DownloadError):
    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


@dataclass(frozen=True)
class SavedFile:
    url: str
    path: Path
    size: int
    sha256: str
    outcome: str  # DOWNLOADED, RESUMED or ALREADY

    def record(self, now: float) -> dict[str, Any]:
        """What the history keeps about the file."""
        return {"url": self.url, "path": str(self.path), "size": self.size, "sha256": self.sha256, "at": now}


# -- names -------------------------------------------------------------------------------------


def slugify(text: str, limit: int = SLUG_MAX) -> str:
    """Lowercase ASCII words joined by '-', cut at a word boundary within `limit` characters."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > limit:
        cut = slug.rfind("-", 0, limit + 1)
        slug = slug[:cut] if cut > limit // 2 else slug[:limit]
    return slug.strip("-")


def _safe(text: str, limit: int) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text or "")[:limit].strip(".-_")


def output_file_name(job: "Job", index: int) -> str:
    """`<server id>_<model>_<prompt slug>[_<n>].mp4`: safe characters only, at most ~160 bytes."""
    ident = _safe(job.server_id or job.local_id, ID_MAX) or "job"
    model = _safe(job.model, MODEL_MAX) or "hailuo"
    slug = slugify(job.prompt) or "video"
    url = job.outputs[index] if index < len(job.outputs) else ""
    extension = os.path.splitext(urlsplit(url).path)[1].lower()
    if extension not in VIDEO_EXTENSIONS:
        extension = ".mp4"
    number = f"_{index + 1}" if len(job.outputs) > 1 else ""
    return f"{ident}_{model}_{slug}{number}{extension}"


def alternative_name(path: Path, n: int) -> Path:
    return path.with_name(f"{path.stem}.{n}{path.suffix}")


def nothing_to_download(job: "Job") -> str | None:
    """Why a job has no file to fetch, or None when it has outputs. The job is not named: whoever
    shows the reason puts its id in front (`ID: ended failed with no output`), once."""
    if job.outputs:
        return None
    if job.is_finished:
        reason = f": {job.error}" if job.error else ""
        return f"ended {job.status} with no output{reason}"
    return f"still {job.status}: no output yet"


# -- files -------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _same_file(path: Path, size: int, digest: str) -> bool:
    try:
        return path.is_file() and path.stat().st_size == size and sha256_of(path) == digest
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _place(part: Path, destination: Path, size: int, digest: str) -> tuple[Path, bool]:
    """Give the finished part its final name; returns (path, was it already there).

    The name is taken with link(), which fails if the name exists: a file that appeared
    meanwhile is never replaced.
    """
    for n in range(1, ALTERNATIVE_NAMES_MAX + 1):
        candidate = destination if n == 1 else alternative_name(destination, n)
        if _same_file(candidate, size, digest):
            part.unlink(missing_ok=True)
            return candidate, True
        if candidate.exists():
            continue
        try:
            os.link(part, candidate)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            # A file system without hard links: rename, after the existence check above.
            if candidate.exists():
                continue
            os.replace(part, candidate)
        else:
            part.unlink(missing_ok=True)
        _fsync_dir(candidate.parent)
        return candidate, False
    raise DownloadError(f"no free name for {destination.name} in {destination.parent}", exit_code=2)


# -- the transfer ------------------------------------------------------------------------------


class _Retry(Exception):
    def __init__(self, why: str, delay: float | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.delay = delay


class _Restart(Exception):
    """The part cannot be continued (the host ignored or misread the Range): start over."""


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)", re.IGNORECASE)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; None for one that says neither (`soon`, garbage)."""
    from tui.core.api.client import parse_retry_after

    return parse_retry_after(value)


def unusable_url(url: Any) -> str | None:
    """Why an output URL cannot be fetched, or None. Only http(s) URLs with a host are."""
    shown = repr(inert(str(url))[:60])
    if not isinstance(url, str) or not url.strip():
        return "the output URL is empty"
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return f"the output URL {shown} cannot be read"
    if parts.scheme.lower() not in ("http", "https"):
        return f"the output URL {shown} is not an http(s) address"
    if not parts.hostname:
        return f"the output URL {shown} names no host"
    return None


class _Transfer:
    """One file's bytes: the open part, its running checksum, and progress reports."""

    def __init__(self, fd: int, on_progress: ProgressCallback | None, clock: Callable[[], float]) -> None:
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self.digest = hashlib.sha256()
        self.total: int | None = None
        self.resumed_from = self.size
        self._on_progress = on_progress
        self._clock = clock
        self._last_report = -1e9

    def read_existing(self) -> None:
        """Hash what an earlier run left in the part (blocking: run in a thread)."""
        offset = 0
        while offset < self.size:
            chunk = os.pread(self.fd, min(1 << 20, self.size - offset), offset)
            if not chunk:
                break
            self.digest.update(chunk)
            offset += len(chunk)

    def restart(self) -> None:
        os.ftruncate(self.fd, 0)
        self.size = 0
        self.resumed_from = 0
        self.digest = hashlib.sha256()

    def announce(self, total: int | None) -> None:
        """The size a response says the whole file has; it must not change between pieces."""
        if total is not None and self.total is not None and total != self.total:
            raise self.mismatch(f"the host first announced {self.total:,} bytes, then {total:,}: "
                                "the file changed on the host")
        if total is not None:
            self.total = total

    def mismatch(self, why: str) -> "DownloadError":
        """The part cannot be trusted any more: emptied (and removed by the caller)."""
        os.ftruncate(self.fd, 0)
        self.size = 0
        return DownloadError(f"size mismatch: {why}; the partial file was removed, download again")

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            written = os.pwrite(self.fd, view, self.size)
            self.size += written
            view = view[written:]
        self.digest.update(chunk)

    def report(self, *, force: bool = False) -> None:
        if self._on_progress is None:
            return
        now = self._clock()
        if force or now - self._last_report >= PROGRESS_INTERVAL:
            self._last_report = now
            self._on_progress(self.size, self.total)


class Downloader:
    """Fetches output files. One connection pool, no credentials, ever."""

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        retries: int = RETRIES,
        backoff: float = 0.5,
        max_connections: int = 8,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: "httpx.AsyncBaseTransport | None" = None,
    ) -> None:
        import httpx

        self.retries = max(0, retries)
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=None),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=True,
            transport=transport,
            # trust_env off: no proxy or .netrc credentials are picked up from the environment.
            trust_env=False,
            headers={"User-Agent": f"hailuo-tui/{__version__}", "Accept-Encoding": "identity"},
            event_hooks={"request": [_strip_credentials]},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "Downloader":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def fetch(self, url: str, destination: Path, *, known: Iterable[dict[str, Any]] = (),
                    on_progress: ProgressCallback | None = None) -> SavedFile:
        """Save `url` as `destination` (or an alternative name beside it); see the module doc."""
        destination = Path(destination)
        directory = destination.parent
        refused = unusable_url(url)
        if refused is not None:
            raise DownloadError(refused)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DownloadError(f"cannot create the download directory {directory}: {exc.strerror or exc}",
                                exit_code=2) from None
        if not directory.is_dir():
            raise DownloadError(f"{directory} is not a directory", exit_code=2)
        done = await asyncio.to_thread(_recorded_copy, url, directory, list(known))
        if done is not None:
            if on_progress is not None:
                on_progress(done.size, done.size)
            return done
        part = destination.with_name(destination.name + PART_SUFFIX)
        try:
            fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DownloadError(f"cannot write {part}: {exc.strerror or exc}", exit_code=2) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise DownloadError(f"{destination.name} is being downloaded by another hailuo-tui", exit_code=2) from None
            transfer = _Transfer(fd, on_progress, self._clock)
            if transfer.size:
                await asyncio.to_thread(transfer.read_existing)
            try:
                await self._transfer_with_retries(url, transfer)
            except DownloadError as exc:
                if not exc.resumable or transfer.size == 0:
                    part.unlink(missing_ok=True)  # nothing in it can be continued
                raise
            except (asyncio.CancelledError, OSError):
                if transfer.size == 0:
                    part.unlink(missing_ok=True)
                raise
            except Exception as exc:  # noqa: BLE001 - whatever the host sent, one line, never a traceback
                if transfer.size == 0:
                    part.unlink(missing_ok=True)
                raise DownloadError(f"the download failed unexpectedly ({type(exc).__name__})") from exc
            os.fsync(fd)
            size, digest, resumed = transfer.size, transfer.digest.hexdigest(), transfer.resumed_from > 0
            path, already = await asyncio.to_thread(_place, part, destination, size, digest)
        except OSError as exc:
            reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise DownloadError(f"cannot write {part}: {reason} (the partial file is kept)", exit_code=2,
                                resumable=True) from None
        finally:
            os.close(fd)
        outcome = ALREADY if already else (RESUMED if resumed else DOWNLOADED)
        return SavedFile(url=url, path=path, size=size, sha256=digest, outcome=outcome)

    async def _transfer_with_retries(self, url: str, transfer: _Transfer) -> None:
        attempt = 0
        restarted = False
        while True:
            try:
                await self._transfer_once(url, transfer)
                if transfer.total is not None and transfer.size < transfer.total:
                    raise _Retry(f"{transfer.size:,} of the {transfer.total:,} bytes announced arrived")
                transfer.report(force=True)
                return
            except _Restart:
                if restarted:
                    raise DownloadError("the host does not answer Range requests consistently; "
                                        "download again") from None
                restarted = True
                transfer.restart()
            except _Retry as retry:
                if attempt >= self.retries:
                    shown = f" at {human_bytes(transfer.size)}" + (
                        f" of {human_bytes(transfer.total)}" if transfer.total else "")
                    raise DownloadError(f"the transfer stopped ({retry.why}){shown}; run the download again "
                                        "to resume", resumable=True) from None
                delay = retry.delay if retry.delay is not None else self.backoff * (2 ** attempt)
                await self._sleep(min(delay, RETRY_AFTER_MAX))
                attempt += 1

    async def _transfer_once(self, url: str, transfer: _Transfer) -> None:
        import httpx

        offset = transfer.size
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            async with self._http.stream("GET", url, headers=headers) as response:
                status = response.status_code
                if status == 416 and offset:
                    match = _UNSATISFIED_RANGE.search(response.headers.get("Content-Range", ""))
                    if match and int(match.group(1)) == offset:
                        transfer.announce(offset)  # the part was complete already
                        return
                    raise _Restart()
                if status == 429 or status >= 500:
                    raise _Retry(f"the host answered {status}", _retry_after(response.headers.get("Retry-After")))
                if status >= 400:
                    hint = "; the link may have expired" if status in (403, 404, 410) else ""
                    raise DownloadError(f"the output host answered {status}{hint}")
                if status not in (200, 206):
                    raise DownloadError(f"the output host answered {status} instead of the file")
                kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if kind in ("text/html", "application/json"):
                    raise DownloadError(f"the output host sent {kind} instead of a video")
                if status == 206:
                    match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
                    if not match or int(match.group(1)) != offset:
                        raise _Restart()
                    transfer.announce(int(match.group(3)) if match.group(3) != "*" else None)
                else:
                    if offset:
                        transfer.restart()  # the host sent the whole file: the part starts over
                    length = response.headers.get("Content-Length", "")
                    transfer.announce(int(length) if length.isdigit() else None)
                transfer.report(force=True)
                async for chunk in response.aiter_raw():  # as they arrive: a cut loses nothing received
                    transfer.write(chunk)
                    if transfer.total is not None and transfer.size > transfer.total:
                        raise transfer.mismatch("more bytes arrived than the host announced")
                    transfer.report()
        except httpx.TransportError as exc:
            raise _Retry(_describe(exc)) from None


def _describe(exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.UnsupportedProtocol):
        return "the URL is not an http(s) address"
    if isinstance(exc, httpx.TimeoutException):
        return "no data in time"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    return "the connection was dropped"


async def _strip_credentials(request: "httpx.Request") -> None:
    # Nothing here sets one; this keeps it so whatever builds a request in the future.
    request.headers.pop("Authorization", None)


def _recorded_copy(url: str, directory: Path, known: list[dict[str, Any]]) -> SavedFile | None:
    """A file this URL was saved to before, in this directory, still intact."""
    for record in known:
        if record.get("url") != url or not record.get("path"):
            continue
        path = Path(record["path"])
        if path.parent != directory:
            continue
        size, digest = record.get("size"), record.get("sha256")
        if isinstance(size, int) and isinstance(digest, str) and _same_file(path, size, digest):
            return SavedFile(url=url, path=path, size=size, sha256=digest, outcome=ALREADY)
    return None
