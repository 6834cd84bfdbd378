"""Small files the user gives or keeps: written atomically, read safely.

- `write_atomically`: a crash, kill or full disk leaves either the old file or the new one.
- `read_bounded`: reads only a regular file (a FIFO is never opened, it would block; a device
  such as /dev/zero is never read, it never ends), non-blocking, and never more than its limit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: the target is whole or untouched."""
    path = path.expanduser()
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class FileRefused(ValueError):
    """A file `read_bounded` will not read; `reason` completes "<path> is ..." or stands alone."""

    def __init__(self, reason: str, *, is_kind: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        #: True when `reason` says what the path is ("a device"), to be read as "<path> is <reason>".
        self.is_kind = is_kind


def file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"


def check_readable(path: Path, limit: int) -> None:
    """What `read_bounded` checks before it opens anything (from `stat()` alone): FileRefused for a
    path that is missing, not a regular file or over `limit` bytes. Cheap enough for the UI loop."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileRefused("no such file") from None
    except OSError as exc:
        raise FileRefused(f"cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(file_kind(info.st_mode), is_kind=True)
    if info.st_size > limit:
        raise FileRefused(f"larger than {_megabytes(limit)}", is_kind=True)


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them; FileRefused otherwise."""
    check_readable(path, limit)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise FileRefused(f"cannot be read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb", buffering=0) as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):  # swapped for something else after the check above
            raise FileRefused(file_kind(mode), is_kind=True)
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            try:
                chunk = fh.read(min(left, 1 << 20))
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise FileRefused("not a regular file", is_kind=True) from None
                raise FileRefused(f"cannot be read: {exc.strerror or exc}") from None
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    data = b"".join(chunks)
    if len(data) > limit:  # it grew after the stat
        raise FileRefused(f"larger than {_megabytes(limit)}", is_kind=True)
    return data
