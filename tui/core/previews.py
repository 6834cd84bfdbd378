"""A job's preview: find its clip (a saved download, or fetch it into the cache), decode, cache.

`Previews.for_job(job)` is what the dashboard awaits for the job it shows; the decode runs in
a thread (`asyncio.to_thread`), the fetch through the project's `Downloader` (no credentials,
resumable). Results — frames or the reason there are none — are kept in memory for the last
few jobs and on disk in the `FrameCache`, so showing a job again costs a dictionary lookup or
one small file read. Nothing happens for a job until it is asked for: a long history costs
nothing here. Image inputs (image-to-video) are read as thumbnails the same way (`image_frame`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from tui.core.frame_cache import FrameCache, cache_key
from tui.core.frames import MAX_FILE_BYTES, THUMB_WIDTH, Frame, NoPreview, Preview, read_preview

#: Frames decoded per clip: the strip shows 5 when wide, else the first, middle and last of them.
FRAMES_PER_CLIP = 5
#: Of those, decoded and shown first (first, middle, last); the other two follow.
FIRST_FRAMES = (0, 2, 4)
REST_FRAMES = (1, 3)
#: Image inputs larger than this are not opened for a thumbnail.
MAX_IMAGE_BYTES = 50 * 1024 * 1024
_MEMORY = 32

Result = Preview | NoPreview


class _TooBig(Exception):
    pass


def saved_copy(job: Any, url: str) -> Path | None:
    """The job's own download of `url`, when it is still where it was saved."""
    for record in getattr(job, "downloads", None) or ():
        if record.get("url") == url and record.get("path"):
            path = Path(record["path"])
            if path.is_file():
                return path
    return None


class Previews:
    def __init__(self, cache: FrameCache, get_downloader: Callable[[], Any] | None = None) -> None:
        """`get_downloader`: gives the Downloader that fetches clips not on this machine (None: never fetch)."""
        self.cache = cache
        self._get_downloader = get_downloader
        self._memory: OrderedDict[str, Result] = OrderedDict()
        self._images: OrderedDict[str, Frame | NoPreview] = OrderedDict()
        self._pending: dict[str, asyncio.Future] = {}
        self._downloader: Any = None
        self._writes: set[asyncio.Task] = set()

    @classmethod
    def for_settings(cls, settings: Any) -> "Previews":
        """The cache where the settings put it; clips fetched by a Downloader of this object's own."""
        previews = cls(FrameCache(settings.cache_dir, max_bytes=settings.preview_cache_mb * 1024 * 1024))

        def downloader() -> Any:
            if previews._downloader is None:
                from tui.core.downloads import Downloader

                previews._downloader = Downloader(connect_timeout=settings.connect_timeout,
                                                  read_timeout=settings.read_timeout, max_connections=2)
            return previews._downloader

        previews._get_downloader = downloader
        return previews

    async def aclose(self) -> None:
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._downloader is not None:
            await self._downloader.aclose()
            self._downloader = None

    async def images_for(self, job: Any) -> list[tuple[str, Frame | NoPreview]]:
        """("input"/"end", thumbnail or reason) for an image-to-video job's local images."""
        request = getattr(job, "request", None) or {}
        shown = []
        for field, label in (("image", "input"), ("end_image", "end")):
            value = request.get(field)
            source = value.get("source") if isinstance(value, dict) else value
            if not source:
                continue
            source = str(source)
            if source not in self._images:
                self._images[source] = await image_frame_async(source)
                while len(self._images) > _MEMORY:
                    self._images.popitem(last=False)
            shown.append((label, self._images[source]))
        return shown

    def remembered(self, job: Any) -> Result | None:
        """The preview already at hand (no file work): lets the pane draw in the same frame."""
        url = job.outputs[0] if getattr(job, "outputs", None) else None
        return self._memory.get(cache_key(job.local_id, url)) if url else None

    async def for_job(self, job: Any, on_first: Callable[[Preview], None] | None = None) -> Result | None:
        """The job's first output's preview; None when the job has no output (yet).

        When the clip has to be decoded, `on_first` is given the first, middle and last frames as
        soon as they are (the strip can draw them), before the other frames are decoded."""
        if not job.outputs:
            return None
        url = job.outputs[0]
        key = cache_key(job.local_id, url)
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        if key in self._pending:  # the same job asked twice: one fetch, one decode
            return await asyncio.shield(self._pending[key])
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            result = await self._build(job, url, key, on_first)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(result)
        self._remember(key, result)
        return result

    def _remember(self, key: str, result: Result) -> None:
        self._memory[key] = result
        while len(self._memory) > _MEMORY:
            self._memory.popitem(last=False)

    async def _build(self, job: Any, url: str, key: str, on_first: Callable[[Preview], None] | None) -> Result:
        # One thread hop when the clip is here: the frames on disk, else the first frames decoded.
        found, path = await asyncio.to_thread(self._cached_or_first, job, url, key)
        if found is not None and path is None:
            return found  # from the disk cache, or a reason stored there
        if found is None:
            fetched = await self._fetch(url, key)
            if isinstance(fetched, NoPreview):
                return fetched  # not stored: a network failure is worth trying again later
            path = fetched
            found = await asyncio.to_thread(self._decode, path, FIRST_FRAMES)
        result = found
        if isinstance(found, Preview) and len(found.frames) == len(FIRST_FRAMES):
            # (Fewer: the clip ended or a limit was reached, so the second pass is not tried.)
            if on_first is not None:
                on_first(replace(found, coming=len(REST_FRAMES)))
            rest = await asyncio.to_thread(self._decode, path, REST_FRAMES)
            if isinstance(rest, Preview):
                result = replace(found, frames=tuple(sorted(found.frames + rest.frames, key=lambda f: f.at)))
        # Written after the frames are handed back: the strip does not wait for the disk.
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.cache.put, key, result))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return result

    def _cached_or_first(self, job: Any, url: str, key: str) -> tuple[Result | None, Path | None]:
        """(the cached result, None), or (the first frames, the clip) when it is here, or (None, None)."""
        cached = self.cache.get(key)
        if cached is not None:
            return cached, None
        path = saved_copy(job, url) or self._cached_video(key)
        if path is None:
            return None, None
        return self._decode(path, FIRST_FRAMES), path

    async def local_clip(self, job: Any) -> Path | NoPreview:
        """The job's first clip on this machine (its download, or the cache's copy, fetched if needed)."""
        if not job.outputs:
            return NoPreview("the job has no output")
        url = job.outputs[0]
        return await self._local_clip(job, url, cache_key(job.local_id, url))

    async def _local_clip(self, job: Any, url: str, key: str) -> Path | NoPreview:
        path = saved_copy(job, url)
        if path is None:
            path = await asyncio.to_thread(self._cached_video, key)
        if path is None:
            return await self._fetch(url, key)
        return path

    def _cached_video(self, key: str) -> Path | None:
        path = self.cache.video_path(key)
        if path.is_file():
            FrameCache.touch(path)
            return path
        return None

    async def _fetch(self, url: str, key: str) -> Path | NoPreview:
        if self._get_downloader is None:
            return NoPreview("the clip is not on this machine (download it with d)")
        from tui.core.downloads import DownloadError

        destination = self.cache.video_path(key)

        def watch(received: int, total: int | None) -> None:
            if received > MAX_FILE_BYTES or (total or 0) > MAX_FILE_BYTES:
                raise _TooBig()

        try:
            saved = await self._get_downloader().fetch(url, destination, on_progress=watch)
        except _TooBig:
            destination.with_name(destination.name + ".part").unlink(missing_ok=True)
            from tui.core.catalog import human_bytes

            return NoPreview(f"the clip is larger than {human_bytes(MAX_FILE_BYTES)}")
        except DownloadError as exc:
            return NoPreview(f"the clip could not be fetched ({exc})")
        await asyncio.to_thread(self.cache.evict, keep=Path(saved.path))
        return Path(saved.path)

    @staticmethod
    def _decode(path: Path, only: tuple[int, ...] | None = None) -> Result:
        try:
            return read_preview(path, count=FRAMES_PER_CLIP, only=only)
        except NoPreview as exc:
            return exc


def image_frame(source: str, *, width: int = THUMB_WIDTH) -> Frame | NoPreview:
    """A thumbnail of a local image input (blocking). A URL is not fetched: it has no thumbnail."""
    if "://" in source:
        return NoPreview("a URL (not fetched for a thumbnail)")
    path = Path(source).expanduser()
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            return NoPreview("the image is too large to preview")
        from PIL import Image

        with Image.open(path) as image:
            if image.width * image.height > 64_000_000:  # a forged header: never decoded
                return NoPreview("the image claims an impossible size")
            image.draft("RGB", (width * 2, width * 2))  # JPEG: decode at a fraction of its size
            picture = image.convert("RGB")
            picture.thumbnail((width, width))
            return Frame(at=0.0, width=picture.width, height=picture.height, rgb=picture.tobytes())
    except OSError as exc:
        return NoPreview(f"the image cannot be read ({getattr(exc, 'strerror', None) or exc})")
    except Exception as exc:  # Pillow's decoders raise many kinds on damaged data
        return NoPreview(f"the image cannot be decoded ({type(exc).__name__})")


async def image_frame_async(source: str) -> Frame | NoPreview:
    return await asyncio.to_thread(image_frame, source)

