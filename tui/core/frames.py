"""Frames of a video file: its real duration, size and frame rate, and a few small pictures.

`read_preview(path)` opens a local file with PyAV (FFmpeg), reads the clip's facts from the
container and decodes the first, middle and last frames (more when asked), each scaled to a
thumbnail. It blocks: callers run it in a thread, never on the UI loop.

The work is bounded whatever the file holds: files over `MAX_FILE_BYTES` are refused before
they are opened, at most `MAX_BYTES_READ` bytes are read through a counting reader, at most
`MAX_FRAMES_DECODED` frames are decoded in all, and the whole read gives up after `TIMEOUT`
seconds. Anything that is not a picture-bearing video (text, a truncated or 0-byte file, an
absurd frame size, a container FFmpeg refuses) raises `NoPreview` with one line saying why,
which the UI shows as "no preview: <reason>".
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: A Hailuo clip is a few MB; anything this big is not one (or is a trap), and is not opened.
MAX_FILE_BYTES = 512 * 1024 * 1024
#: Seeking to three points reads a small share of a real clip; a hostile index cannot make us read more.
MAX_BYTES_READ = 64 * 1024 * 1024
#: Over every seek together: enough for three GOPs of a 10 s clip, never a whole long file.
MAX_FRAMES_DECODED = 400
TIMEOUT = 5.0
#: Frame sizes beyond this are refused before decoding (a forged header can claim anything).
MAX_DIMENSION = 8192
#: Thumbnails are at most this wide (pixels); big enough for a cell grid or a small graphic.
THUMB_WIDTH = 128


class NoPreview(Exception):
    """The file gives no pictures; `reason` is one line for "no preview: <reason>"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    """One decoded picture, scaled down: `rgb` holds width × height × 3 bytes, rows top first."""

    at: float  # seconds from the start
    width: int
    height: int
    rgb: bytes

    def image(self):
        from PIL import Image

        return Image.frombytes("RGB", (self.width, self.height), self.rgb)


@dataclass(frozen=True)
class Preview:
    duration: float  # seconds
    width: int  # the clip's own size, not the thumbnails'
    height: int
    fps: float
    codec: str
    frames: tuple[Frame, ...]
    #: Frames still being decoded, each to go between two of these (the first frames are shown at once).
    coming: int = 0

    @property
    def facts(self) -> str:
        """"6.0 s · 1366×768 · 24 fps" — what the detail pane shows beside the strip."""
        fps = f"{self.fps:.3g}" if self.fps else "?"
        return f"{self.duration:.1f} s · {self.width}×{self.height} · {fps} fps"


class _BoundedReader(io.RawIOBase):
    """A file FFmpeg reads through: it stops (with an error FFmpeg reports) past the byte cap or the deadline."""

    def __init__(self, handle: BinaryIO, *, max_bytes: int, deadline: float) -> None:
        self._handle = handle
        self._left = max_bytes
        self._deadline = deadline
        self.stopped: str | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if time.monotonic() > self._deadline:
            self.stopped = "reading took too long"
            raise OSError(self.stopped)
        if self._left <= 0:
            self.stopped = "the file needs more reading than a preview allows"
            raise OSError(self.stopped)
        view = memoryview(buffer)[: self._left]
        count = self._handle.readinto(view)
        self._left -= count or 0
        return count or 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()


def moments(duration: float, count: int) -> list[float]:
    """Where the frames are taken: first, last and evenly between (first, middle, last for three)."""
    count = max(1, count)
    if count == 1 or duration <= 0:
        return [0.0]
    return [duration * i / (count - 1) for i in range(count)]


def read_preview(path: Path | str, *, count: int = 3, only: tuple[int, ...] | None = None,
                 thumb_width: int = THUMB_WIDTH,
                 max_file_bytes: int = MAX_FILE_BYTES, max_bytes_read: int = MAX_BYTES_READ,
                 max_frames: int = MAX_FRAMES_DECODED, timeout: float = TIMEOUT) -> Preview:
    """The clip's facts and `count` frames (or, with `only`, those of the `count` moments at these
    indexes); raises NoPreview (never anything else for a bad file)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise NoPreview(f"cannot read the file ({exc.strerror or exc})") from None
    if size == 0:
        raise NoPreview("the file is empty")
    if size > max_file_bytes:
        from tui.core.catalog import human_bytes

        raise NoPreview(f"the file is {human_bytes(size)}, more than a clip ({human_bytes(max_file_bytes)} at most)")
    try:
        import av
    except ImportError:
        raise NoPreview("PyAV is not installed (pip install av)") from None
    deadline = time.monotonic() + timeout
    try:
        with open(path, "rb") as handle:
            reader = _BoundedReader(handle, max_bytes=max_bytes_read, deadline=deadline)
            try:
                return _decode(av, reader, size, count=count, only=only, thumb_width=thumb_width,
                               max_frames=max_frames, deadline=deadline)
            except NoPreview:
                raise
            except Exception as exc:  # FFmpeg's many error types, and our reader's stop
                if reader.stopped:
                    raise NoPreview(reader.stopped) from None
                raise NoPreview(_reason(av, exc)) from None
    except OSError as exc:
        raise NoPreview(f"cannot read the file ({exc.strerror or exc})") from None


def _reason(av, exc: Exception) -> str:
    if isinstance(exc, av.error.InvalidDataError):
        return "not a video FFmpeg can read"
    if isinstance(exc, av.error.EOFError):
        return "the file ends too soon (truncated?)"
    text = " ".join(str(exc).split())[:80]
    return f"the video cannot be decoded ({text})" if text else "the video cannot be decoded"


def _decode(av, reader: _BoundedReader, size: int, *, count: int, only: tuple[int, ...] | None,
            thumb_width: int, max_frames: int, deadline: float) -> Preview:
    container = av.open(reader, mode="r", options={"probesize": str(max(4096, min(size, 5_000_000)))})
    try:
        if not container.streams.video:
            raise NoPreview("the file holds no video stream")
        stream = container.streams.video[0]
        width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
            raise NoPreview(f"the video claims an impossible frame size ({width}×{height})")
        stream.thread_type = "NONE"  # a few frames: threads cost more than they save
        duration = _duration(container, stream)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        thumb_w = min(thumb_width, width)
        thumb_h = max(1, round(thumb_w * height / width))
        cursor = _Cursor(container, stream, max_frames, deadline)
        frames: list[Frame] = []
        targets = moments(duration, count)
        if only is not None:
            targets = [targets[i] for i in only if 0 <= i < len(targets)]
        for target in targets:
            try:
                frame = cursor.frame_at(target, last=duration > 0 and target >= duration)
            except NoPreview:
                if frames:
                    break  # the cap is reached: the frames so far are the preview
                raise
            if frame is None:
                continue
            picture = frame.reformat(width=thumb_w, height=thumb_h, format="rgb24")
            frames.append(Frame(at=float(frame.time or 0.0), width=thumb_w, height=thumb_h,
                                rgb=picture.to_image().tobytes()))
        if not frames:
            raise NoPreview("no frame could be decoded (truncated or damaged?)")
        return Preview(duration=duration, width=width, height=height, fps=fps,
                       codec=str(stream.codec_context.name or "?"), frames=tuple(frames))
    finally:
        container.close()


def _duration(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


#: A moment this close after the last frame decoded is reached by decoding on, not by seeking:
#: a seek lands on the keyframe before it, which in a clip with one keyframe is the very start.
SEQUENTIAL_SECONDS = 3.0


class _Cursor:
    """Decodes forward through the clip, seeking only for moments far ahead; counts every frame."""

    def __init__(self, container, stream, budget: int, deadline: float) -> None:
        self.container, self.stream = container, stream
        self.budget, self.deadline = budget, deadline
        self.frames = None  # the decode iterator
        self.last = None  # the last frame decoded
        self.ended = False

    @property
    def position(self) -> float:
        return float(self.last.time or 0.0) if self.last is not None else -1.0

    def _seek(self, target: float) -> None:
        if target > 0 and self.stream.time_base:
            self.container.seek(int(target / self.stream.time_base), stream=self.stream, backward=True,
                                any_frame=False)
        else:
            self.container.seek(0, stream=self.stream, backward=True, any_frame=False)
        self.frames, self.last, self.ended = self.container.decode(self.stream), None, False

    def frame_at(self, target: float, *, last: bool):
        """The first frame at or after `target` (the clip's last frame when it ends first, or for `last`)."""
        import av

        if self.frames is None or target > self.position + SEQUENTIAL_SECONDS or target < self.position:
            self._seek(target)
        elif self.ended:
            return self.last
        while True:
            if self.budget <= 0 or time.monotonic() > self.deadline:
                if self.last is not None and last:
                    return self.last  # near enough to the end
                raise NoPreview("decoding needs more frames than a preview allows")
            try:
                frame = next(self.frames)
            except (StopIteration, av.error.EOFError):
                self.ended = True
                return self.last
            except av.error.InvalidDataError:
                if self.last is None:
                    raise
                self.ended = True
                return self.last
            self.budget -= 1
            self.last = frame
            at = frame.time if frame.time is not None else 0.0
            if not last and at + 1e-6 >= target:
                return frame
