"""Image inputs on disk: what a local file is, read safely, and the bytes sent for it.

The only module that opens an image file. Its contract:
- it is read with `tui.core.files.read_bounded`: a path that is not a regular file (a named
  pipe, a device such as /dev/zero, a socket) is refused from its `stat()` alone and never
  opened, and at most `IMAGE_MAX_BYTES` plus one byte is ever read;
- the dimensions are read from the PNG or JPEG header before Pillow sees the bytes, and a
  picture over `MAX_PIXELS` is refused with its measured size (a decompression bomb: a small
  file that would decode to gigabytes); Pillow never decodes pixels here, and its own bomb
  check is turned into the same message for any other format;
- every failed rule is one message with the measured value, fit to show beside the field.

`tui.core.catalog` keeps the rules (formats, sizes); this module applies them to files.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import struct
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tui.core.files import FileRefused, check_readable, read_bounded

IMAGE_MAX_BYTES = 20 * 1024 * 1024
IMAGE_MIN_SHORT_SIDE = 300  # strictly greater than
IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
#: Pillow's own default bomb limit (about 89.5 megapixels, a 256 MB RGBA picture); the API's
#: 20 MB cap on the file says nothing about how large it decodes.
MAX_PIXELS = 89_478_485


class ImageRefused(ValueError):
    """A local image that cannot be sent; the message says why (fit for the field)."""

    #: "image" or "end_image" once known (set by the caller that knows the field).
    field: str | None = None


@dataclass(frozen=True)
class ImageInfo:
    """What was learned about an image input; stored in history instead of its bytes."""

    source: str
    is_url: bool
    format: str | None = None
    width: int | None = None
    height: int | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    errors: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.is_url:
            return "URL (sent as is)"
        if self.width is None:
            return ""
        return f"{self.format} {self.width}×{self.height}, {human_bytes(self.size_bytes or 0)}"

    def to_record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "errors"}


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def is_url(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered.startswith(("http://", "https://"))


def read_limited(path: Path, source: str, limit: int = IMAGE_MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; ImageRefused (for the field) otherwise."""
    try:
        return read_bounded(path, limit)
    except FileRefused as exc:
        raise _refusal(exc, path, source, limit) from None


def file_problem(source: str) -> str | None:
    """What can be said of a local image from `stat()` alone, without opening it (no such file, a
    directory, a FIFO or device, too large), for the form to say as the user types; None for a
    URL or a file that may pass (its contents are checked when it is read, once, on submit)."""
    source = source.strip()
    if not source or is_url(source) or source.lower().startswith("data:"):
        return None
    path = Path(os.path.expanduser(source))
    try:
        check_readable(path, IMAGE_MAX_BYTES)
    except FileRefused as exc:
        return str(_refusal(exc, path, source, IMAGE_MAX_BYTES))
    return None


def _refusal(exc: FileRefused, path: Path, source: str, limit: int) -> ImageRefused:
    """The field's message for a file `read_bounded` refused."""
    if exc.reason == "no such file":
        return ImageRefused(f"no such file: {source}")
    if exc.reason == "a directory":
        return ImageRefused(f"{source} is a directory, not an image")
    if exc.reason.startswith("larger than"):
        size = _regular_size(path)
        shown = human_bytes(size) if size is not None and size > limit else f"over {limit // (1024 * 1024)} MB"
        return ImageRefused(f"file is {shown}; it must be at most {limit // (1024 * 1024)} MB")
    if exc.is_kind:
        return ImageRefused(f"{source} is {exc.reason}, not an image file")
    return ImageRefused(f"{source} {exc.reason}")


# -- header dimensions, read before any decoder runs -------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (all but DHT C4, JPG C8 and DAC CC), which carry the size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def header_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's start-of-frame; None for anything else."""
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data.startswith(b"\xff\xd8"):
        at = 2
        while at + 4 <= len(data):
            if data[at] != 0xFF:
                return None
            marker = data[at + 1]
            if marker == 0xFF:  # fill byte
                at += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
                at += 2
                continue
            (length,) = struct.unpack(">H", data[at + 2:at + 4])
            if marker in _JPEG_SOF and at + 9 <= len(data):
                height, width = struct.unpack(">HH", data[at + 5:at + 9])
                return width, height
            if length < 2:
                return None
            at += 2 + length
    return None


def _too_many_pixels(width: int, height: int) -> str | None:
    pixels = width * height
    if pixels <= MAX_PIXELS:
        return None
    return (f"image is {width}×{height} px ({pixels / 1e6:,.1f} megapixels); "
            f"it must be at most {MAX_PIXELS / 1e6:.1f} megapixels")


def _identify(data: bytes) -> tuple[str | None, int, int]:
    """Format and size as Pillow reads them from the header (no pixel is decoded).

    ImageRefused for what Pillow cannot identify or takes for a decompression bomb.
    """
    from PIL import Image, UnidentifiedImageError  # lazy: Pillow is only needed here

    try:
        with warnings.catch_warnings():
            # Between Pillow's limit and twice it, a bomb is only a warning: make it a refusal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.format, img.size[0], img.size[1]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRefused(f"image is over {MAX_PIXELS / 1e6:.1f} megapixels; it must be at most "
                           f"{MAX_PIXELS / 1e6:.1f} megapixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error):
        raise ImageRefused("not a readable JPG or PNG image") from None


def inspect_image(source: str) -> ImageInfo:
    """Check an image input: a URL passes as is; a local file is checked by its header.

    Every failed rule gets its own message with the measured value.
    """
    return read_image(source, payload=False)[0]


def read_image(source: str, *, payload: bool = True) -> tuple[ImageInfo, str | None]:
    """Check an image input and, when it passes, the value sent for it (a URL as is, a local file
    as a data: URL of the very bytes checked): the file is opened once for both."""
    source = source.strip()
    if is_url(source):
        return ImageInfo(source=source, is_url=True), source
    if source.lower().startswith("data:"):
        return ImageInfo(source="data: URL", is_url=False,
                         errors=("paste a URL or a file path, not a data: URL",)), None
    path = Path(os.path.expanduser(source))
    try:
        data = read_limited(path, source)
    except ImageRefused as exc:
        size = _regular_size(path)
        return ImageInfo(source=source, is_url=False, size_bytes=size, errors=(str(exc),)), None
    size = len(data)
    dimensions = header_dimensions(data)
    if dimensions is not None and (bomb := _too_many_pixels(*dimensions)):
        return ImageInfo(source=source, is_url=False, width=dimensions[0], height=dimensions[1],
                         size_bytes=size, errors=(bomb,)), None
    try:
        fmt, width, height = _identify(data)
    except ImageRefused as exc:
        return ImageInfo(source=source, is_url=False, size_bytes=size, errors=(str(exc),)), None
    errors: list[str] = []
    if fmt not in IMAGE_FORMATS:
        errors.append(f"format is {fmt}; it must be JPG or PNG")
    short = min(width, height)
    if short <= IMAGE_MIN_SHORT_SIDE:
        errors.append(f"short side is {short} px; it must be over {IMAGE_MIN_SHORT_SIDE} px")
    # Aspect ratio strictly between 2:5 and 5:2, compared in integers to avoid float edges.
    if not (2 * height < 5 * width and 2 * width < 5 * height):
        errors.append(f"aspect ratio is {width}:{height}; it must be between 2:5 and 5:2 (exclusive)")
    digest = hashlib.sha256(data).hexdigest() if not errors else None
    info = ImageInfo(source=source, is_url=False, format=fmt, width=width, height=height,
                     size_bytes=size, sha256=digest, errors=tuple(errors))
    if errors or not payload:
        return info, None
    return info, f"data:{IMAGE_FORMATS[fmt]};base64," + base64.b64encode(data).decode("ascii")


def _regular_size(path: Path) -> int | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def image_payload(source: str) -> str:
    """The value sent to the API: a URL as is, a local file as a data: URL (read and checked in
    the same read); ImageRefused with the first problem rather than sending what fails a check."""
    info, payload = read_image(source)
    if payload is None:
        raise ImageRefused(info.errors[0] if info.errors else "not a readable JPG or PNG image")
    return payload
