"""Previews: a clip's facts and frames, damaged files that give none (bounded, never a crash),
the cache and its cap, the simulator's distinct clips, and the frame strip on screen."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tui.core.frame_cache import FrameCache, cache_key
from tui.core.frames import NoPreview, Preview, read_preview
from tui.simulator.server import sample_video
from tui.simulator.videos import draw_frames, encode, prompt_video

FOX = "A red fox trotting through fresh snow at dawn, slow dolly shot"


def _clip(tmp_path: Path, data: bytes, name: str = "clip.mp4") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- a good clip ------------------------------------------------------------------------------

def test_a_clip_gives_its_real_facts_and_first_middle_last_frames(tmp_path):
    preview = read_preview(_clip(tmp_path, prompt_video(FOX)), count=3)
    assert (preview.width, preview.height, preview.fps) == (320, 180, 10.0)
    assert preview.duration == pytest.approx(2.0, abs=0.01)
    assert preview.facts == "2.0 s · 320×180 · 10 fps"
    assert [round(f.at, 1) for f in preview.frames] == [0.0, 1.0, 1.9]
    first, middle, last = preview.frames
    assert first.width == 128 and first.height == 72 and len(first.rgb) == 128 * 72 * 3
    assert len({first.rgb, middle.rgb, last.rgb}) == 3  # the disc moves: three different pictures


def test_the_simulator_draws_a_different_clip_per_prompt_and_the_same_one_again(tmp_path):
    fox, waves = prompt_video(FOX), prompt_video("Waves breaking over black volcanic rocks")
    assert fox != waves
    # Deterministic, the snapshots depend on it: x264's lookahead once gave a different first
    # frame in about one encode of ten in the same process, so one repeat would not catch it.
    frames = draw_frames(FOX)
    assert {encode(frames) for _ in range(24)} == {fox}
    a = read_preview(_clip(tmp_path, fox, "a.mp4"), count=1).frames[0]
    b = read_preview(_clip(tmp_path, waves, "b.mp4"), count=1).frames[0]
    assert a.rgb != b.rgb


def test_only_a_demo_simulator_serves_distinct_clips(make_simulator):
    import httpx

    plain = make_simulator()
    job = plain.seed_job(status="completed", prompt=FOX)
    assert httpx.get(f"{plain.base_url}/files/{job}.mp4").content == sample_video()

    from tui.simulator import Simulator

    with Simulator(distinct_videos=True) as demo:
        job = demo.seed_job(status="completed", prompt=FOX)
        assert httpx.get(f"{demo.base_url}/files/{job}.mp4").content == prompt_video(FOX)


# -- damaged and hostile files -----------------------------------------------------------------

def _no_preview(path: Path, **limits) -> str:
    started = time.monotonic()
    with pytest.raises(NoPreview) as caught:
        read_preview(path, **limits)
    assert time.monotonic() - started < 30  # bounded (generous: the machine is shared)
    return caught.value.reason


def test_a_text_file_is_not_a_video(tmp_path):
    reason = _no_preview(_clip(tmp_path, b"<html>Access denied</html>\n" * 40))
    assert reason == "not a video FFmpeg can read"


def test_an_empty_file(tmp_path):
    assert _no_preview(_clip(tmp_path, b"")) == "the file is empty"


def test_a_truncated_clip(tmp_path):
    data = prompt_video(FOX)
    reason = _no_preview(_clip(tmp_path, data[: len(data) // 3]))
    assert reason  # one line, whichever FFmpeg noticed first
    assert "\n" not in reason


def test_a_4_gb_file_is_refused_before_it_is_opened(tmp_path):
    path = tmp_path / "huge.mp4"
    with open(path, "wb") as handle:
        handle.write(prompt_video(FOX))
        handle.truncate(4 * 1024 ** 3)  # sparse: no disk used
    assert _no_preview(path) == "the file is 4.0 GB, more than a clip (512.0 MB at most)"


def test_random_bytes_behind_an_mp4_header(tmp_path):
    junk = bytes((i * 7919 + 13) % 256 for i in range(200_000))
    header = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x10\x00moov" + junk
    assert _no_preview(_clip(tmp_path, header))


def test_a_container_with_an_absurd_frame_size(tmp_path):
    import av
    from PIL import Image

    path = tmp_path / "wide.mov"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 9000, 2, "rgb24"
        for packet in stream.encode(av.VideoFrame.from_image(Image.new("RGB", (9000, 2)))):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert _no_preview(path) == "the video claims an impossible frame size (9000×2)"


def test_an_audio_only_file_has_no_video_stream(tmp_path):
    import av

    path = tmp_path / "sound.mka"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame(format="s16", layout="mono", samples=800)
        frame.sample_rate = 8000
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert _no_preview(path) == "the file holds no video stream"


def test_decoding_stops_at_the_frame_cap(tmp_path):
    # One keyframe for the whole clip: reaching the last frame means decoding all 20.
    import av

    frames = draw_frames(FOX)
    path = tmp_path / "long-gop.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10, options={"keyint": "100", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert len(read_preview(path, count=3).frames) == 3
    # A cap of 4 decodes the first frame and stops on the way to the middle: a partial strip.
    capped = read_preview(path, count=3, max_frames=4)
    assert [round(f.at, 1) for f in capped.frames] == [0.0]
    assert _no_preview(path, count=3, max_frames=0) == "decoding needs more frames than a preview allows"


def test_reading_stops_at_the_byte_cap_and_the_deadline(tmp_path):
    path = _clip(tmp_path, prompt_video(FOX))
    assert _no_preview(path, max_bytes_read=100) == "the file needs more reading than a preview allows"
    assert _no_preview(path, timeout=-1) == "reading took too long"


# -- the cache ---------------------------------------------------------------------------------

def _preview(tmp_path: Path, prompt: str) -> Preview:
    return read_preview(_clip(tmp_path, prompt_video(prompt), f"{abs(hash(prompt))}.mp4"), count=3)


def test_the_cache_keeps_frames_and_reasons_across_instances(tmp_path):
    preview = _preview(tmp_path, FOX)
    cache = FrameCache(tmp_path / "cache")
    cache.put("a", preview)
    cache.put("b", NoPreview("the file is empty"))
    again = FrameCache(tmp_path / "cache")
    assert again.get("a") == preview
    assert again.get("b").reason == "the file is empty"
    assert again.get("c") is None
    (tmp_path / "cache" / "frames" / "a.json").write_text("{torn")
    assert again.get("a") is None  # decoded again, never an error


def test_the_cache_cap_evicts_the_least_recently_used(tmp_path):
    cache = FrameCache(tmp_path / "cache", max_bytes=10**9)
    previews = {name: _preview(tmp_path, f"clip {name}") for name in "abcd"}
    for name in "abc":
        cache.put(name, previews[name])
        one = cache.size()
    entry = one // 3
    for index, name in enumerate("abc"):  # a clear order of use, whatever the clock's resolution
        os.utime(tmp_path / "cache" / "frames" / f"{name}.json", (1000 + index, 1000 + index))
    assert cache.get("a") is not None  # a is used now: b is the oldest
    cache.max_bytes = entry * 3 + entry // 2
    cache.put("d", previews["d"])
    kept = {p.stem for p in (tmp_path / "cache" / "frames").iterdir()}
    assert kept == {"a", "c", "d"}
    assert cache.size() <= cache.max_bytes


def test_the_cap_counts_fetched_clips_too(tmp_path):
    cache = FrameCache(tmp_path / "cache", max_bytes=10_000)
    clip = cache.video_path("old")
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"x" * 9_000)
    os.utime(clip, (1000, 1000))
    cache.put("new", _preview(tmp_path, FOX))
    assert not clip.exists()
    assert cache.get("new") is not None


def test_a_cache_key_names_the_job_and_the_clip():
    assert cache_key("local-0001", "https://x/1.mp4") != cache_key("local-0001", "https://x/2.mp4")
    assert cache_key("../../etc", "u").startswith("etc-")


async def test_the_first_middle_and_last_frames_are_handed_over_before_the_other_two(tmp_path):
    """One decode for what a narrow strip shows, then the rest; the whole preview is what is kept."""
    from types import SimpleNamespace

    from tui.core.frame_cache import FrameCache
    from tui.core.previews import Previews

    clip = _clip(tmp_path, prompt_video(FOX))
    url = "https://cdn.example.invalid/fox.mp4"
    job = SimpleNamespace(local_id="local-1", outputs=[url], downloads=[{"url": url, "path": str(clip)}])
    previews = Previews(FrameCache(tmp_path / "cache"))
    firsts: list[Preview] = []
    whole = await previews.for_job(job, on_first=firsts.append)
    await previews.aclose()
    assert len(firsts) == 1 and len(firsts[0].frames) == 3 and firsts[0].coming == 2
    assert [f.at for f in firsts[0].frames] == [f.at for f in read_preview(clip, count=3).frames]
    assert len(whole.frames) == 5 and whole.coming == 0
    assert [f.at for f in whole.frames] == sorted(f.at for f in whole.frames)
    assert {f.rgb for f in firsts[0].frames} <= {f.rgb for f in whole.frames}
    # Shown again, from the disk: no decode, so no first frames apart.
    again = Previews(FrameCache(tmp_path / "cache"))
    later: list[Preview] = []
    assert len((await again.for_job(job, on_first=later.append)).frames) == 5 and later == []
