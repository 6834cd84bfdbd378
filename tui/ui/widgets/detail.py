"""The selected job in full: its frames, request, timings, outputs (one selectable line each), errors, raw JSON.

The frame strip (first, middle, last frames with the clip's real duration, size and frame
rate; an image-to-video job's input and end images beside them) is loaded by a worker from
`previews` (tui.core.previews: fetch and decode happen off the UI loop) once a finished job
with an output is shown; nothing is loaded for jobs that are never shown.

Everything that came from the server or the user is shown as plain text with control
characters removed, so a prompt or an error can never restyle the screen or move the cursor.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual import work
from textual.reactive import reactive
from textual.widgets import OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from tui.core.catalog import human_bytes
from tui.ui.glyphs import GLYPHS
from tui.core.costs import PriceTable, bucket_of, money
from tui.core.events import DownloadProgress
from tui.core.records import Job
from tui.ui.format import clean, format_span, format_stamp
from tui.ui.widgets.frame_strip import FrameStrip
from tui.ui.widgets.live_text import LiveText


def measured_span(ms: object, *, pending: bool) -> str:
    """A server-measured time (milliseconds) in the pane's one unit style (`28.0 s`, `15m00s`).

    The API reports 0 (or nothing) until a job has run: that is not measured, never "0 ms"."""
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 < ms < 1e15:
        return "not yet measured" if pending else "unknown"
    return format_span(ms / 1000)


def phase_times(job: Job, now: float) -> dict[str, float]:
    """Seconds spent in each status, from the recorded status changes."""
    spans: dict[str, float] = {}
    history = [(str(s), float(t)) for s, t in job.status_history]
    for index, (status, started) in enumerate(history):
        ended = history[index + 1][1] if index + 1 < len(history) else (job.finished_at or now)
        if index + 1 == len(history) and job.is_finished:
            continue  # a terminal status has no duration
        spans[status.lower()] = spans.get(status.lower(), 0.0) + max(0.0, ended - started)
    return spans


def _image_line(value: Any) -> str:
    if isinstance(value, dict):
        parts = [clean(value.get("source", ""))]
        if value.get("format"):
            parts.append(f"{value['format']} {value.get('width')}×{value.get('height')}")
        if value.get("size_bytes"):
            from tui.core.catalog import human_bytes

            parts.append(human_bytes(int(value["size_bytes"])))
        if value.get("sha256"):
            parts.append(f"sha256 {str(value['sha256'])[:12]}")
        return ", ".join(p for p in parts if p)
    return clean(value)


def cost_line(job: Job, prices: PriceTable) -> str:
    """`$0.441 (… default price of 2026-09-25), an estimate · billed`"""
    estimate = prices.for_job(job)
    if estimate.amount is None:
        return f"unknown ({estimate.note}) · {bucket_of(job)}"
    note = f"; {estimate.note}" if estimate.note else ""
    return f"{money(estimate.amount)} ({estimate.basis()}), an estimate · {bucket_of(job)}{note}"


def describe(job: Job, now: float, prices: PriceTable | None = None) -> Text:
    """The body of the pane, before the outputs list."""
    text = Text()

    def row(label: str, value: object, style: str = "") -> None:
        text.append(f"{label:<15} ", style="bold")
        text.append(clean(value), style=style)
        text.append("\n")

    row("Status", job.status)
    row("Id", job.server_id or "(not yet given by the server)")
    row("Local id", job.local_id)
    # An attached job's request is not known: unknown is said, never a default shown.
    row("Model", job.model or "unknown")
    row("Scene", job.scene or "unknown")
    request = job.request or {}
    if "resolution" in request:
        row("Resolution", request["resolution"] if request["resolution"] not in (None, "") else "unknown")
    if "duration" in request:
        row("Duration", f"{request['duration']} s" if request["duration"] not in (None, "") else "unknown")
    if "prompt_expansion" in request:
        expansion = request["prompt_expansion"]
        row("Expand prompt", ("on" if expansion else "off") if isinstance(expansion, bool) else "unknown")
    for key, label in (("image", "Image"), ("end_image", "End image")):
        if request.get(key):
            row(label, _image_line(request[key]))
    if prices is not None:
        row("Cost", cost_line(job, prices))
    text.append("Prompt\n", style="bold")
    text.append(clean(job.prompt) + "\n\n")
    row("Submitted", format_stamp(job.submitted_at))
    row("Server time", format_stamp(job.created_at))
    row("Finished", format_stamp(job.finished_at))
    spans = phase_times(job, now)
    for status in ("created", "queued", "processing", "running"):
        if status in spans:
            row(f"In {status}", format_span(spans[status]))
    pending = not job.is_finished
    row("Inference", measured_span(job.inference_time_ms, pending=pending))
    row("Execution", measured_span(job.execution_time_ms, pending=pending))
    total = (job.finished_at or now) - job.submitted_at
    execution = job.execution_time_ms
    if isinstance(execution, (int, float)) and not isinstance(execution, bool) and 0 < execution < 1e15:
        # Our clock and the server's disagree a little: the whole can never be shorter than a part.
        total = max(total, execution / 1000)
    row("Total", format_span(total) + ("" if job.is_finished else " so far"))
    if job.result_url:
        row("Result URL", job.result_url)
    if job.outputs_omitted:
        row("Outputs", f"{len(job.outputs)} shown; {job.outputs_omitted:,} more sent by the server were not kept")
    if job.has_nsfw_contents:
        row("NSFW flags", ", ".join("yes" if flag else "no" for flag in job.has_nsfw_contents))
    if job.error:
        text.append("Error\n", style="bold")
        text.append(clean(job.error) + "\n")
    if job.poll_errors:
        row("Poll errors", f"{job.poll_errors} in a row")
        if job.last_poll_error:
            row("Last poll err", job.last_poll_error)
    return text


def saved_files(job: Job) -> Text:
    """Where the outputs were saved on this machine (empty when nowhere yet)."""
    text = Text()
    for index, saved in enumerate(job.downloads):
        text.append(f"{'Saved to' if index == 0 else '':<15} ", style="bold")
        text.append(clean(saved.get("path", "")))
        if index + 1 < len(job.downloads):
            text.append("\n")
    return text


def download_label(progress: DownloadProgress) -> str:
    which = f"output {progress.index + 1} of {progress.count} · " if progress.count > 1 else ""
    of = f" of {human_bytes(progress.total)}" if progress.total else ""
    return f"Downloading {which}{human_bytes(progress.received)}{of}"


class DetailPane(VerticalScroll):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "toggle_raw", "Raw JSON", id="detail.raw"),
    ]

    show_raw: reactive[bool] = reactive(False, init=False)

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None,
                 classes: str | None = None, prices: PriceTable | None = None, previews: Any = None,
                 preview_mode: str = "blocks", tick_interval: float = 1.0) -> None:
        super().__init__(id=id, classes=classes)
        self._clock = clock
        self._tick_interval = tick_interval
        #: For the cost line: the config's `[prices]` over the list prices.
        self.prices = prices or PriceTable()
        #: tui.core.previews.Previews, or None: no frames are shown.
        self.previews = previews
        self.preview_mode = preview_mode
        #: (job, first output, saved files) whose frames are shown or loading.
        self._preview_of: tuple | None = None
        self.job: Job | None = None
        self._shown: tuple | None = None
        #: Downloads in progress, by job (set by the app): the shown job's is drawn as a bar.
        self._downloads: dict[str, DownloadProgress] = {}
        #: What the saved files' lines show.
        self._saved_text = Text("")

    def on_mount(self) -> None:
        # Live timings ("In processing", "Total") tick while an unfinished job is shown.
        self.set_interval(self._tick_interval, self._tick)

    def _tick(self) -> None:
        job = self.job
        if job is None or job.is_finished:
            return
        # Only the timing lines change: only they are repainted.
        self.query_one("#detail-body", LiveText).update_lines(describe(job, self._clock(), self.prices))

    def compose(self) -> ComposeResult:
        with Horizontal(id="download"):
            yield Static(Text(""), id="download-label")
            # Built with a total: a bar without one animates (15 frames a second, even hidden).
            yield ProgressBar(id="download-bar", total=1, show_eta=False)
        yield FrameStrip(id="frames")
        yield LiveText(Text("No job selected"), id="detail-body")
        yield Static(Text("Outputs"), id="outputs-title", classes="section-title")
        yield OptionList(id="outputs", compact=True)
        yield Static(Text(""), id="saved")
        yield Static(Text(""), id="raw-json")

    def set_download(self, local_id: str, progress: DownloadProgress | None) -> None:
        """A download of a job moved on (or ended, with None); redrawn if that job is shown."""
        if progress is None:
            self._downloads.pop(local_id, None)
        else:
            self._downloads[local_id] = progress
        if self.job is not None and self.job.local_id == local_id:
            self._show_download()

    def _show_download(self) -> None:
        progress = self._downloads.get(self.job.local_id) if self.job is not None else None
        self.set_class(progress is not None, "-downloading")
        if progress is None:
            bar = self.query_one("#download-bar", ProgressBar)
            if bar.total is None:  # a download of unknown size was shown: stop its animation
                bar.update(total=1, progress=0)
            return
        self.query_one("#download-label", Static).update(Text(download_label(progress)))
        self.query_one("#download-bar", ProgressBar).update(total=progress.total, progress=progress.received)

    def show_job(self, job: Job | None, *, force: bool = False) -> None:
        """Render a job; does nothing when the same job with the same state is shown already."""
        key = None if job is None else (job.local_id, job.signature(), job.last_poll_error, job.finished_at,
                                        len(job.status_history), len(job.downloads), self.show_raw)
        if not force and key == self._shown and job is self.job:
            return
        self.job = job
        self._shown = key
        body = self.query_one("#detail-body", LiveText)
        outputs = self.query_one("#outputs", OptionList)
        raw = self.query_one("#raw-json", Static)
        self._show_download()
        self._show_saved(job)
        self._show_preview(job)
        if job is None:
            body.update(Text("No job selected"))
            outputs.clear_options()
            raw.update(Text(""))
            self.set_class(True, "-no-outputs")
            return
        # The same job changing status repaints the lines that changed, not the pane.
        body.update_lines(describe(job, self._clock(), self.prices))
        highlighted = outputs.highlighted
        prompts = [Text(clean(url)) for url in job.outputs]
        if len(prompts) == outputs.option_count:
            # As many lines as shown: replaced in place, the list keeps its size (emptying and
            # filling it would change its height twice, each a layout of the whole screen).
            for index, prompt in enumerate(prompts):
                outputs.replace_option_prompt_at_index(index, prompt)
        else:
            outputs.clear_options()
            outputs.add_options([Option(prompt, id=f"output-{i}") for i, prompt in enumerate(prompts)])
        if job.outputs:
            outputs.highlighted = min(highlighted or 0, len(job.outputs) - 1)
        self.set_class(not job.outputs, "-no-outputs")
        raw.display = self.show_raw
        if self.show_raw:
            dumped = json.dumps(job.raw, indent=2, ensure_ascii=False, default=str) if job.raw else "(no response yet)"
            raw.update(Text(clean(dumped)))

    def _show_saved(self, job: Job | None) -> None:
        """The saved files' lines, shown only for a job that has some."""
        saved = self.query_one("#saved", Static)
        text = saved_files(job) if job is not None else Text("")
        wanted = job is not None and bool(job.downloads)
        if text != self._saved_text:
            self._saved_text = text
            # Hidden before and after, its size does not matter: no layout (showing it lays out).
            saved.update(text, layout=saved.display and wanted)
        saved.display = wanted

    def _show_preview(self, job: Job | None) -> None:
        """The strip for this job: drawn at once when its frames are at hand, else loaded by a worker."""
        strip = self.query_one("#frames", FrameStrip)
        wanted = self.previews is not None and self.preview_mode != "off" and job is not None
        images = wanted and bool((job.request or {}).get("image"))
        if not wanted or not (job.outputs or images):
            self._preview_of = None
            strip.show(None, images=[])
            return
        key = (job.local_id, job.outputs[0] if job.outputs else None, len(job.downloads))
        if key == self._preview_of:
            return
        self._preview_of = key
        known = self.previews.remembered(job) if job.outputs else None
        if known is not None and not images:
            strip.show(known, images=[])
            return
        if job.outputs:
            strip.loading(f"loading frames{GLYPHS.ellipsis}")
        else:
            strip.show(None, images=[])
        self._load_preview(job, key)

    @work(exclusive=True, group="preview", exit_on_error=False)
    async def _load_preview(self, job: Job, key: tuple) -> None:
        images = await self.previews.images_for(job)
        if self._preview_of != key:
            return
        strip = self.query_one("#frames", FrameStrip)

        def first_frames(preview) -> None:  # first, middle and last on screen while the rest decode
            if self._preview_of == key:
                strip.show(preview, images=images)

        result = await self.previews.for_job(job, on_first=first_frames) if job.outputs else None
        if self._preview_of == key:  # another job may have been selected meanwhile
            strip.show(result, images=images)

    @property
    def selected_output(self) -> str | None:
        if self.job is None or not self.job.outputs:
            return None
        index = self.query_one("#outputs", OptionList).highlighted or 0
        return self.job.outputs[min(index, len(self.job.outputs) - 1)]

    def watch_show_raw(self) -> None:
        self.show_job(self.job, force=True)

    def action_toggle_raw(self) -> None:
        self.show_raw = not self.show_raw
