"""Two jobs side by side: their frames, requests, timings and results; rows that differ carry the `-differs` class.

The frames of both clips (and their duration, size, frame rate) are loaded by workers from
`previews` when it is given, as the detail pane loads them: nothing is decoded on the UI loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual import work
from textual.screen import Screen
from textual.widgets import Label, Static

from tui.core.records import Job
from tui.ui.format import clean, format_span as span, format_stamp as stamp
from tui.ui.glyphs import GLYPHS
from tui.ui.widgets.detail import phase_times
from tui.ui.widgets.frame_strip import FrameStrip
from tui.ui.widgets.key_footer import KeyFooter


@dataclass(frozen=True)
class CompareRow:
    section: str
    label: str
    left: str
    right: str

    @property
    def differs(self) -> bool:
        return self.left != self.right


def _image(value: Any) -> str:
    if isinstance(value, dict):
        return clean(value.get("source") or "")
    return clean(value) if value else "—"


def _ms(value: int | None) -> str:
    return span(value / 1000) if value else "—"


def _request_rows(job: Job) -> dict[str, str]:
    request = job.request or {}
    expansion = request.get("prompt_expansion")
    return {
        "Model": clean(job.model) or "—",
        "Scene": clean(job.scene) or "—",
        "Resolution": clean(request.get("resolution")) or "—",
        "Duration": f"{request['duration']} s" if request.get("duration") else "—",
        "Expand prompt": "—" if expansion is None else ("on" if expansion else "off"),
        "Image": _image(request.get("image")) or "—",
        "End image": _image(request.get("end_image")) or "—",
        "Prompt": clean(job.prompt) or "—",
    }


def _phase(phases: dict[str, float], names: tuple[str, ...]) -> str:
    present = [phases[name] for name in names if name in phases]
    return span(sum(present)) if present else "—"


def _timing_rows(job: Job, now: float) -> dict[str, str]:
    phases = phase_times(job, now)
    end = job.finished_at if job.finished_at is not None else (None if job.is_finished else now)
    return {
        "Submitted": stamp(job.submitted_at),
        "Finished": stamp(job.finished_at),
        "Waiting": _phase(phases, ("submitting", "created", "queued")),
        "Processing": _phase(phases, ("processing", "running")),
        "Total": span(end - job.submitted_at) if end is not None else "—",
        "Execution": _ms(job.execution_time_ms),
        "Inference": _ms(job.inference_time_ms),
    }


def _result_rows(job: Job) -> dict[str, str]:
    return {
        "Status": clean(job.status),
        "Id": clean(job.display_id),
        "Outputs": str(len(job.outputs)),
        "Error": clean(job.error) or "—",
    }


def compare_rows(left: Job, right: Job, now: float) -> list[CompareRow]:
    rows: list[CompareRow] = []
    for section, build in (("Result", _result_rows), ("Request", _request_rows),
                           ("Timings", lambda j: _timing_rows(j, now))):
        a, b = build(left), build(right)
        rows.extend(CompareRow(section, label, a[label], b[label]) for label in a)
    return rows


class CompareScreen(Screen[None]):
    """Read-only view; Escape goes back to the dashboard."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Close", id="compare.close"),
    ]

    def __init__(self, left: Job, right: Job, *, now: float, previews: Any = None) -> None:
        super().__init__(classes="compare-screen")
        self.left = left
        self.right = right
        self.rows = compare_rows(left, right, now)
        #: tui.core.previews.Previews, or None: no frames row.
        self.previews = previews

    def compose(self) -> ComposeResult:
        differing = sum(1 for row in self.rows if row.differs)
        with Vertical(id="compare"):
            yield Label(Text(f"Compare  {clean(self.left.short_id)}  with  {clean(self.right.short_id)}"
                             f"  ·  {differing} of {len(self.rows)} differ"), classes="compare-title")
            with Horizontal(classes="compare-row compare-head"):
                yield Static("", classes="compare-label")
                yield Static(Text(f"marked  {clean(self.left.display_id)}"), classes="compare-cell")
                yield Static(Text(f"selected  {clean(self.right.display_id)}"), classes="compare-cell")
            with VerticalScroll(id="compare-rows"):
                if self.previews is not None:
                    with Horizontal(classes="compare-row compare-frames"):
                        yield Static(Text("Frames"), classes="compare-label")
                        yield FrameStrip(id="frames-left", classes="compare-cell")
                        yield FrameStrip(id="frames-right", classes="compare-cell")
                section = None
                for row in self.rows:
                    if row.section != section:
                        section = row.section
                        yield Static(Text(section), classes="compare-section")
                    classes = "compare-row -differs" if row.differs else "compare-row"
                    with Horizontal(classes=classes):
                        yield Static(Text(row.label), classes="compare-label")
                        yield Static(Text(row.left), classes="compare-cell")
                        yield Static(Text(row.right), classes="compare-cell")
        yield KeyFooter()

    def on_mount(self) -> None:
        if self.previews is not None:
            for job, side in ((self.left, "left"), (self.right, "right")):
                strip = self.query_one(f"#frames-{side}", FrameStrip)
                strip.show(f"loading frames{GLYPHS.ellipsis}" if job.outputs else "no output yet")
                if job.outputs or (job.request or {}).get("image"):
                    self._load(job, side)

    @work(group="compare-frames", exit_on_error=False)
    async def _load(self, job: Job, side: str) -> None:
        images = await self.previews.images_for(job)
        strip = self.query_one(f"#frames-{side}", FrameStrip)
        result = (await self.previews.for_job(job, on_first=lambda first: strip.show(first, images=images))
                  if job.outputs else "no output yet")
        strip.show(result, images=images)
