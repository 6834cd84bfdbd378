"""The request catalog: which model accepts which scene, duration and resolution.

The model matrix is data, kept here and nowhere else; the composer's choices and the
CLI's options are derived from it. `validate()` returns messages fit to show beside the
field that is wrong.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

# The file side of image inputs lives in tui.core.images; its names stay importable from here.
from tui.core.images import (  # noqa: F401
    IMAGE_FORMATS,
    IMAGE_MAX_BYTES,
    IMAGE_MIN_SHORT_SIDE,
    ImageInfo,
    ImageRefused,
    human_bytes,
    image_payload,
    file_problem,
    inspect_image,
    is_url,
    read_image,
)
from tui.core.text import first_unsafe

SCENES = ("text-to-video", "image-to-video")
DEFAULT_DURATION = 6
DEFAULT_RESOLUTION = "768P"
#: Listed in the API's parameter range, but no model row offers them: unknown support.
UNCERTAIN_RESOLUTIONS = ("512P", "720P")
#: The API states no prompt limit; this cap only catches pasted accidents.
PROMPT_MAX_CHARS = 5000


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


@dataclass(frozen=True)
class ReadImages:
    """A request's image files, each opened once: what the checks found, and for each image that
    passed the value sent for it. Handed from the form to the service so neither reads again."""

    sources: dict[str, str]
    errors: tuple[FieldError, ...]
    infos: dict[str, ImageInfo]
    payloads: dict[str, str]

    def matches(self, request: VideoRequest) -> bool:
        """Read for this request's images (not for an earlier path)."""
        return self.sources == _image_sources(request)


def _image_sources(request: VideoRequest) -> dict[str, str]:
    found = {name: (getattr(request, name) or "").strip() for name in ("image", "end_image")}
    return {name: source for name, source in found.items() if source}


def read_images(request: VideoRequest) -> ReadImages:
    """Read each image of the request once (blocking: in a thread)."""
    sources = _image_sources(request)
    errors: list[FieldError] = []
    infos: dict[str, ImageInfo] = {}
    payloads: dict[str, str] = {}
    for name, source in sources.items():
        info, payload = read_image(source)
        errors.extend(FieldError(name, message) for message in info.errors)
        infos[name] = info
        if payload is not None:
            payloads[name] = payload
    return ReadImages(sources, tuple(errors), infos, payloads)


def _body_fields(request: VideoRequest) -> dict[str, Any]:
    return {
        "prompt": request.prompt,
        "duration": request.duration,
        "resolution": request.resolution,
        "enable_prompt_expansion": request.prompt_expansion,
    }


def sent_body(record: dict[str, Any]) -> dict[str, Any]:
    """The create call's body as `api_body` built it, from a job's history record. A local image
    went as a data: URL whose bytes the history never keeps: it stands as `data:<type>;base64,…`
    followed by what identifies the file (its path, size and checksum)."""
    data = {key: value for key, value in record.items() if key not in ("image", "end_image")}
    body = _body_fields(VideoRequest.from_dict(data))
    for name in ("image", "end_image"):
        image = record.get(name)
        source = image.get("source") if isinstance(image, dict) else image
        if not isinstance(source, str) or not source.strip():
            continue
        if is_url(source):
            body[name] = source.strip()
            continue
        facts = image if isinstance(image, dict) else {}
        mime = IMAGE_FORMATS.get(str(facts.get("format") or ""), "image")
        about = [source.strip()]
        if isinstance(facts.get("size_bytes"), int):
            about.append(f"{facts['size_bytes']} bytes")
        if facts.get("sha256"):
            about.append(f"sha256 {facts['sha256']}")
        body[name] = f"data:{mime};base64,\u2026 ({', '.join(about)})"
    return body


def api_body(request: VideoRequest, payloads: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON body for the create call (images turned into URLs or data: URLs). `payloads`
    gives the images' values already read (`read_image`), so no file is opened again.

    ImageRefused (with `.field`) when a local image no longer passes its checks."""
    body = _body_fields(request)
    for name in ("image", "end_image"):
        source = getattr(request, name)
        if source:
            if payloads is not None and name in payloads:
                body[name] = payloads[name]
                continue
            try:
                body[name] = image_payload(source)
            except ImageRefused as exc:
                exc.field = name  # the file changed since it was checked: say which field
                raise
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
