"""The request catalog: which model accepts which scene, duration and resolution.

The model matrix is data, kept here and nowhere else; the composer's choices and the
CLI's options are derived from it. `validate()` returns messages fit to show beside the
field that is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tui.core.text import first_unsafe

SCENES = ("text-to-video", "image-to-video")
DEFAULT_DURATION = 6
DEFAULT_RESOLUTION = "768P"
#: Listed in the API's parameter range, but no model row offers them: unknown support.
UNCERTAIN_RESOLUTIONS = ("512P", "720P")
#: The API states no prompt limit; this cap only catches pasted accidents.
PROMPT_MAX_CHARS = 5000

IMAGE_MAX_BYTES = 20 * 1024 * 1024
IMAGE_MIN_SHORT_SIDE = 300  # strictly greater than
IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str
    tier: str
    #: resolution -> durations offered at that resolution
    modes: dict[str, tuple[int, ...]]

    @property
    def label(self) -> str:
        return f"Hailuo {self.family} {self.tier}"


MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        ModelSpec("hailuo-2.3-fast", "2.3", "fast", {"768P": (6, 10), "1080P": (6,)}),
        ModelSpec("hailuo-2.3-standard", "2.3", "standard", {"768P": (6, 10)}),
        ModelSpec("hailuo-2.3-pro", "2.3", "pro", {"1080P": (6,)}),
        ModelSpec("hailuo-02-fast", "02", "fast", {"768P": (6, 10)}),
        ModelSpec("hailuo-02-standard", "02", "standard", {"768P": (6, 10)}),
        ModelSpec("hailuo-02-pro", "02", "pro", {"1080P": (6,)}),
    )
}
FAMILIES = tuple(dict.fromkeys(spec.family for spec in MODELS.values()))
TIERS = tuple(dict.fromkeys(spec.tier for spec in MODELS.values()))
DEFAULT_MODEL = "hailuo-2.3-fast"


def model_id(family: str, tier: str) -> str:
    return f"hailuo-{family}-{tier}"


def resolutions_for(model: str, *, allow_uncertain: bool = False) -> tuple[str, ...]:
    spec = MODELS.get(model)
    if spec is None:
        return ()
    offered = tuple(spec.modes)
    return (UNCERTAIN_RESOLUTIONS + offered) if allow_uncertain else offered


def durations_for(model: str, resolution: str | None = None, *, allow_uncertain: bool = False) -> tuple[int, ...]:
    """Durations the model offers, at one resolution or at any."""
    spec = MODELS.get(model)
    if spec is None:
        return ()
    if resolution is None:
        return tuple(sorted({d for ds in spec.modes.values() for d in ds}))
    if resolution in spec.modes:
        return spec.modes[resolution]
    if allow_uncertain and resolution in UNCERTAIN_RESOLUTIONS:
        return (6, 10)
    return ()


def default_resolution(model: str) -> str:
    spec = MODELS.get(model)
    if spec is None or DEFAULT_RESOLUTION in spec.modes:
        return DEFAULT_RESOLUTION
    return next(iter(spec.modes))


@dataclass(frozen=True)
class VideoRequest:
    """What the user asks for. `image` / `end_image` are a URL or a local path as typed."""

    model: str = DEFAULT_MODEL
    scene: str = "text-to-video"
    prompt: str = ""
    image: str | None = None
    end_image: str | None = None
    duration: int = DEFAULT_DURATION
    resolution: str = DEFAULT_RESOLUTION
    prompt_expansion: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VideoRequest":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def with_changes(self, **changes: Any) -> "VideoRequest":
        return replace(self, **changes)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


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


def inspect_image(source: str) -> ImageInfo:
    """Check an image input: a URL passes as is; a local file is checked by its header.

    Pillow reads only the header (no decode). Every failed rule gets its own message
    with the measured value.
    """
    source = source.strip()
    if is_url(source):
        return ImageInfo(source=source, is_url=True)
    if source.lower().startswith("data:"):
        return ImageInfo(source="data: URL", is_url=False, errors=("paste a URL or a file path, not a data: URL",))
    path = Path(os.path.expanduser(source))
    if not path.exists():
        return ImageInfo(source=source, is_url=False, errors=(f"no such file: {source}",))
    if path.is_dir():
        return ImageInfo(source=source, is_url=False, errors=(f"{source} is a directory, not an image",))
    try:
        size = path.stat().st_size
    except OSError as exc:
        return ImageInfo(source=source, is_url=False, errors=(f"cannot read {source}: {exc.strerror}",))
    errors: list[str] = []
    if size > IMAGE_MAX_BYTES:
        errors.append(f"file is {human_bytes(size)}; it must be at most 20 MB")
    from PIL import Image, UnidentifiedImageError  # lazy: Pillow is only needed here

    try:
        with Image.open(path) as img:
            fmt, (width, height) = img.format, img.size
    except (UnidentifiedImageError, OSError, ValueError):
        errors.append("not a readable JPG or PNG image")
        return ImageInfo(source=source, is_url=False, size_bytes=size, errors=tuple(errors))
    if fmt not in IMAGE_FORMATS:
        errors.append(f"format is {fmt}; it must be JPG or PNG")
    short = min(width, height)
    if short <= IMAGE_MIN_SHORT_SIDE:
        errors.append(f"short side is {short} px; it must be over {IMAGE_MIN_SHORT_SIDE} px")
    # Aspect ratio strictly between 2:5 and 5:2, compared in integers to avoid float edges.
    if not (2 * height < 5 * width and 2 * width < 5 * height):
        errors.append(f"aspect ratio is {width}:{height}; it must be between 2:5 and 5:2 (exclusive)")
    digest = _sha256(path) if not errors else None
    return ImageInfo(
        source=source, is_url=False, format=fmt, width=width, height=height,
        size_bytes=size, sha256=digest, errors=tuple(errors),
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def image_payload(source: str) -> str:
    """The value sent to the API: a URL as is, a local file as a data: URL."""
    if is_url(source):
        return source.strip()
    path = Path(os.path.expanduser(source.strip()))
    from PIL import Image

    with Image.open(path) as img:
        mime = IMAGE_FORMATS[img.format]
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def validate(request: VideoRequest, *, allow_uncertain: bool = False, check_files: bool = True) -> list[FieldError]:
    """Every problem with the request, each tied to the field that must change."""
    errors: list[FieldError] = []
    spec = MODELS.get(request.model)
    if spec is None:
        errors.append(FieldError("model", f"unknown model {request.model!r}; choose one of {', '.join(MODELS)}"))
    if request.scene not in SCENES:
        errors.append(FieldError("scene", f"unknown scene {request.scene!r}; choose text-to-video or image-to-video"))
    prompt = request.prompt or ""
    if not prompt.strip():
        errors.append(FieldError("prompt", "a prompt is required"))
    elif len(prompt) > PROMPT_MAX_CHARS:
        errors.append(FieldError("prompt", f"prompt is {len(prompt):,} characters; the limit is {PROMPT_MAX_CHARS:,}"))
    elif (unsafe := first_unsafe(prompt)) is not None:
        at, ch = unsafe
        errors.append(FieldError("prompt", f"prompt contains a control or text-direction character "
                                           f"(U+{ord(ch):04X} at character {at + 1}); remove it"))
    if spec is not None:
        resolutions = resolutions_for(request.model, allow_uncertain=allow_uncertain)
        if request.resolution not in resolutions:
            errors.append(FieldError(
                "resolution",
                f"{request.model} does not offer {request.resolution}; choose {' or '.join(resolutions)}",
            ))
        else:
            durations = durations_for(request.model, request.resolution, allow_uncertain=allow_uncertain)
            if request.duration not in durations:
                offered = " or ".join(f"{d} s" for d in durations)
                errors.append(FieldError(
                    "duration",
                    f"{request.model} at {request.resolution} offers {offered}, not {request.duration} s",
                ))
    image = (request.image or "").strip()
    end_image = (request.end_image or "").strip()
    if request.scene == "image-to-video" and not image:
        errors.append(FieldError("image", "image-to-video needs a first-frame image (file path or URL)"))
    if request.scene == "text-to-video" and (image or end_image):
        name = "image" if image else "end_image"
        errors.append(FieldError(name, "text-to-video takes no image; switch the scene to image-to-video"))
    if check_files:
        for name, value in (("image", image), ("end_image", end_image)):
            if value:
                errors.extend(FieldError(name, msg) for msg in inspect_image(value).errors)
    return errors


def api_body(request: VideoRequest) -> dict[str, Any]:
    """The JSON body for the create call (images turned into URLs or data: URLs)."""
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "duration": request.duration,
        "resolution": request.resolution,
        "enable_prompt_expansion": request.prompt_expansion,
    }
    if request.image:
        body["image"] = image_payload(request.image)
    if request.end_image:
        body["end_image"] = image_payload(request.end_image)
    return body


# -- prices ------------------------------------------------------------------------------------
# List prices seen on gptproto's model pages on 2026-09-25, in US dollars. They are an
# estimate: the API returns no cost and no balance, so nothing here is checked against a bill.
# Keys are "model" (any resolution and duration) or "model/RESOLUTION"; each value is
# (amount, "run") for a price per job or (amount, "second") for a price per second of video.
# `tui.core.costs` reads this table and lays the user's `[prices]` over it.
PRICES_AS_OF = "2026-09-25"
PRICES_SOURCE = "list prices on gptproto.com"
PRICES_CURRENCY = "USD"
DEFAULT_PRICES: dict[str, tuple[float, str]] = {
    "hailuo-02-fast": (0.09, "run"),
    "hailuo-02-standard": (0.252, "run"),
    "hailuo-2.3-standard": (0.252, "run"),
    "hailuo-02-pro": (0.441, "run"),
    "hailuo-2.3-pro": (0.441, "run"),
    "hailuo-2.3-fast/768P": (0.0285, "second"),
    "hailuo-2.3-fast/1080P": (0.0495, "second"),
}
#: Said beside a price "a run" applied to a clip longer than the default: the page does not say.
RUN_PRICE_LONG_CLIP_NOTE = "the list price is per run; whether it holds for 10 s clips is not known"
