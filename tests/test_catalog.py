"""The request catalog offers exactly the API's model matrix, and each image rule speaks for itself."""

from __future__ import annotations

import base64
from itertools import product

import pytest
from PIL import Image

from tui.core.catalog import MODELS, VideoRequest, api_body, image_payload, inspect_image, validate

# An independent copy of the provider's table (resolution -> durations), so a wrong catalog fails.
MATRIX = {
    "hailuo-2.3-fast": {"768P": {6, 10}, "1080P": {6}},
    "hailuo-2.3-standard": {"768P": {6, 10}},
    "hailuo-2.3-pro": {"1080P": {6}},
    "hailuo-02-fast": {"768P": {6, 10}},
    "hailuo-02-standard": {"768P": {6, 10}},
    "hailuo-02-pro": {"1080P": {6}},
}
COMBINATIONS = list(product(MATRIX, ("text-to-video", "image-to-video"), ("512P", "720P", "768P", "1080P"), (6, 10)))
IMAGE_URL = "https://example.com/first-frame.png"


def fields(errors) -> set[str]:
    return {e.field for e in errors}


def test_the_catalog_lists_the_six_models():
    assert set(MODELS) == set(MATRIX)


@pytest.mark.parametrize("model,scene,resolution,duration", COMBINATIONS)
def test_every_combination_is_accepted_exactly_when_the_table_offers_it(model, scene, resolution, duration):
    image = IMAGE_URL if scene == "image-to-video" else None
    request = VideoRequest(model=model, scene=scene, prompt="a fox", resolution=resolution, duration=duration,
                           image=image)
    offered = duration in MATRIX[model].get(resolution, set())
    errors = validate(request)
    assert (errors == []) == offered, errors
    if not offered:
        assert fields(errors) <= {"resolution", "duration"} and errors[0].message


@pytest.mark.parametrize("resolution", ["512P", "720P"])
def test_uncertain_resolutions_only_behind_the_switch(resolution):
    request = VideoRequest(model="hailuo-2.3-fast", prompt="a fox", resolution=resolution)
    assert fields(validate(request)) == {"resolution"}
    assert validate(request, allow_uncertain=True) == []


def test_the_duration_message_names_what_the_model_offers():
    (error,) = validate(VideoRequest(model="hailuo-02-pro", resolution="1080P", duration=10, prompt="x"))
    assert error.field == "duration" and error.message == "hailuo-02-pro at 1080P offers 6 s, not 10 s"


@pytest.mark.parametrize("prompt,ok", [("", False), ("   \n", False), ("x" * 5001, False), ("bell\x07", False),
                                       ("🦊 في الثلج a fox", True), ("line one\nline two\ttab", True)])
def test_prompt_rules(prompt, ok):
    assert ("prompt" not in fields(validate(VideoRequest(prompt=prompt)))) == ok


def test_scene_rules_for_images(tmp_path):
    assert "image" in fields(validate(VideoRequest(scene="image-to-video", prompt="x")))
    assert "image" in fields(validate(VideoRequest(scene="text-to-video", prompt="x", image="https://e.x/a.png")))
    ok = VideoRequest(scene="image-to-video", prompt="x", image="https://example.com/a.png")
    assert validate(ok) == []
    assert api_body(ok)["image"] == "https://example.com/a.png"


def save(tmp_path, name, size, fmt):
    path = tmp_path / name
    Image.new("RGB", size, (200, 80, 40)).save(path, format=fmt)
    return path


@pytest.mark.parametrize("fmt,name", [("PNG", "a.png"), ("JPEG", "a.jpg")])
def test_jpg_and_png_pass_and_are_described(tmp_path, fmt, name):
    info = inspect_image(str(save(tmp_path, name, (640, 400), fmt)))
    assert info.ok and (info.width, info.height) == (640, 400) and len(info.sha256) == 64
    assert "640×400" in info.summary()


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP"])
def test_other_formats_are_refused_by_name(tmp_path, fmt):
    info = inspect_image(str(save(tmp_path, "a." + fmt.lower(), (640, 400), fmt)))
    assert f"format is {fmt}; it must be JPG or PNG" in info.errors


@pytest.mark.parametrize("size,ok", [((300, 600), False), ((301, 600), True), ((400, 1000), False),
                                     ((1000, 400), False), ((401, 1000), True), ((1000, 401), True)])
def test_short_side_and_aspect_ratio_are_strict(tmp_path, size, ok):
    info = inspect_image(str(save(tmp_path, "a.png", size, "PNG")))
    assert info.ok == ok, info.errors


def test_each_failed_rule_has_its_own_message_with_the_measured_value(tmp_path):
    info = inspect_image(str(save(tmp_path, "a.png", (240, 1000), "PNG")))
    assert "short side is 240 px; it must be over 300 px" in info.errors
    assert "aspect ratio is 240:1000; it must be between 2:5 and 5:2 (exclusive)" in info.errors


def test_files_over_20_mb_are_refused_with_their_size(tmp_path):
    path = save(tmp_path, "big.png", (640, 400), "PNG")
    with path.open("ab") as fh:
        fh.truncate(21 * 1024 * 1024)
    assert "file is 21.0 MB; it must be at most 20 MB" in inspect_image(str(path)).errors


def test_missing_paths_directories_and_lying_files(tmp_path):
    assert inspect_image(str(tmp_path / "nope.png")).errors[0].startswith("no such file")
    assert "is a directory" in inspect_image(str(tmp_path)).errors[0]
    text = tmp_path / "notes.png"
    text.write_text("hello")
    assert inspect_image(str(text)).errors == ("not a readable JPG or PNG image",)
    png_named_jpg = save(tmp_path, "photo.jpg", (640, 400), "PNG")
    info = inspect_image(str(png_named_jpg))
    assert info.ok and info.format == "PNG"
    payload = image_payload(str(png_named_jpg))
    assert payload.startswith("data:image/png;base64,")
    assert base64.b64decode(payload.split(",", 1)[1]) == png_named_jpg.read_bytes()


def test_urls_are_passed_as_is_and_not_fetched():
    info = inspect_image("https://example.com/frame.png")
    assert info.ok and info.is_url
