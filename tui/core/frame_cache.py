"""Decoded previews kept on disk: one small file per job and clip, under a size cap.

The cache directory (platformdirs' user cache dir, `$HAILUO_TUI_CACHE_DIR` or `--cache-dir`)
holds `frames/<key>.json` — the clip's facts and its thumbnails (zlib, base64), or the reason
it has no preview, so a damaged file is not decoded again — and `videos/<key>.mp4`, clips
fetched only to be previewed (a saved download is read where it is instead). When the files
together pass `max_bytes`, the least recently used go first; a read counts as a use (mtime).
Everything here is blocking file work: callers run it off the UI loop.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path

from tui.core.frames import Frame, NoPreview, Preview

FORMAT = 1
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


def cache_key(local_id: str, url: str) -> str:
    """A file name for one job's one clip: readable id, plus a digest of the URL (a clip may change)."""
    safe = "".join(ch for ch in local_id if ch.isalnum() or ch in "-_")[:40] or "job"
    return f"{safe}-{hashlib.sha256(url.encode('utf-8', 'replace')).hexdigest()[:12]}"


def _encode(result: Preview | NoPreview) -> dict:
    if isinstance(result, NoPreview):
        return {"format": FORMAT, "no_preview": result.reason}
    return {
        "format": FORMAT, "duration": result.duration, "width": result.width, "height": result.height,
        "fps": result.fps, "codec": result.codec,
        "frames": [{"at": f.at, "width": f.width, "height": f.height,
                    "rgb": base64.b64encode(zlib.compress(f.rgb, 6)).decode("ascii")} for f in result.frames],
    }


def _decode(doc: dict) -> Preview | NoPreview:
    if doc.get("format") != FORMAT:
        raise ValueError("another format")
    if "no_preview" in doc:
        return NoPreview(str(doc["no_preview"]))
    frames = []
    for item in doc["frames"]:
        width, height = int(item["width"]), int(item["height"])
        rgb = zlib.decompress(base64.b64decode(item["rgb"]))
        if len(rgb) != width * height * 3:
            raise ValueError("a frame of the wrong size")
        frames.append(Frame(at=float(item["at"]), width=width, height=height, rgb=rgb))
    return Preview(duration=float(doc["duration"]), width=int(doc["width"]), height=int(doc["height"]),
                   fps=float(doc["fps"]), codec=str(doc["codec"]), frames=tuple(frames))


class FrameCache:
    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def _frames_path(self, key: str) -> Path:
        return self.directory / "frames" / f"{key}.json"

    def video_path(self, key: str) -> Path:
        """Where a clip fetched for its preview is kept."""
        return self.directory / "videos" / f"{key}.mp4"

    def get(self, key: str) -> Preview | NoPreview | None:
        """The stored preview (or reason), None when absent or unreadable (it is then decoded again)."""
        path = self._frames_path(key)
        try:
            doc = json.loads(path.read_bytes())
            result = _decode(doc)
        except (OSError, ValueError, KeyError, TypeError, zlib.error):
            return None
        self.touch(path)
        return result

    @staticmethod
    def touch(path: Path) -> None:
        try:
            os.utime(path)
        except OSError:
            pass

    def put(self, key: str, result: Preview | NoPreview) -> None:
        """Store atomically (a reader never sees half a file), then keep the cache under its cap."""
        path = self._frames_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(_encode(result), separators=(",", ":")).encode("ascii")
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        self.evict(keep=path)

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, size, path) of every cached file, oldest use first."""
        found = []
        for sub in ("frames", "videos"):
            folder = self.directory / sub
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            for name in names:
                if name.startswith(".part-"):
                    continue
                path = folder / name
                try:
                    stat = path.stat()
                except OSError:
                    continue
                found.append((stat.st_mtime, stat.st_size, path))
        found.sort(key=lambda entry: entry[0])
        return found

    def size(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self, *, keep: Path | None = None) -> list[Path]:
        """Remove the least recently used files until the total fits the cap; `keep` is never removed."""
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed: list[Path] = []
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            if keep is not None and path == keep:
                continue
            try:
                path.unlink()
            except OSError:
                continue
            total -= size
            removed.append(path)
        return removed
