"""A distinct short video per prompt, for the simulator's completed jobs.

Colours and shapes are seeded by the prompt and its first words are written in, so the demo's
jobs show different frames (and a player shows what was asked). Each clip is drawn and encoded
with PyAV once (H.264 in MP4, a couple of seconds, small), then kept in memory. The same prompt
gives the same bytes every time (the snapshots and the tests depend on it): the encoder runs
single-threaded, and x264's macroblock tree and weighted prediction are off, because with both on
the first frame came out differently in one encode of ten or so in a long-running process.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict

WIDTH, HEIGHT, FPS, SECONDS = 320, 180, 10, 2

_cache: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()
_CACHE_CLIPS = 64


def _palette(seed: bytes) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    def colour(i: int) -> tuple[int, int, int]:
        return seed[i], seed[i + 1], seed[i + 2]

    background = tuple(40 + c // 2 for c in colour(0))
    shape = tuple(255 - c // 3 for c in colour(3))
    other = tuple(c for c in colour(6))
    return background, shape, other  # type: ignore[return-value]


def draw_frames(prompt: str, *, width: int = WIDTH, height: int = HEIGHT, count: int = FPS * SECONDS):
    """The clip's pictures (PIL images): a seeded background, a disc that crosses it, a square that
    grows, and the prompt's first words."""
    from PIL import Image, ImageDraw

    seed = hashlib.sha256(prompt.encode("utf-8", "replace")).digest()
    background, disc, square = _palette(seed)
    words = " ".join(prompt.split()[:4])[:40] or "(no prompt)"
    lane = height // 4 + seed[9] % (height // 2)
    radius = height // 6 + seed[10] % (height // 8)
    frames = []
    for i in range(count):
        progress = i / max(1, count - 1)
        image = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(image)
        x = int(radius + progress * (width - 2 * radius))
        draw.ellipse((x - radius, lane - radius, x + radius, lane + radius), fill=disc)
        side = int(height * (0.15 + 0.35 * progress))
        corner = (width - side - 8, height - side - 8) if seed[11] % 2 else (8, height - side - 8)
        draw.rectangle((corner[0], corner[1], corner[0] + side, corner[1] + side), fill=square)
        draw.text((8, 6), words, fill=(255, 255, 255))
        frames.append(image)
    return frames


def encode(frames, *, fps: int = FPS) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        # A key frame every second (FFmpeg has no "keyint" option of its own: it goes through x264-params).
        x264 = f"keyint={fps}:mbtree=0:weightp=0"
        stream = container.add_stream("libx264", rate=fps,
                                      options={"preset": "veryfast", "crf": "30", "threads": "1", "x264-params": x264})
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        stream.thread_type = "NONE"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def prompt_video(prompt: str) -> bytes:
    """The MP4 for a prompt, drawn the first time it is asked for."""
    with _lock:
        if prompt in _cache:
            _cache.move_to_end(prompt)
            return _cache[prompt]
    data = encode(draw_frames(prompt))
    with _lock:
        _cache[prompt] = data
        while len(_cache) > _CACHE_CLIPS:
            _cache.popitem(last=False)
    return data
