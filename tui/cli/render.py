"""How jobs are printed: the list table, `show`, CSV cells that a spreadsheet cannot run.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any, Iterable

from tui.core.text import inert

if TYPE_CHECKING:
    from tui.core.records import Job

def plain(text: Any, *, multiline: bool = False) -> str:
    """Text from the server or the history, made safe to print: no escapes, no controls."""
    return inert(text, multiline=multiline)


def _short_time(iso_text: str | None) -> str:
    if not iso_text:
        return "-"
    return iso_text.replace("T", " ")[:19]


def job_summary(job: "Job") -> str:
    """One line for a transition or a final state (plain text, tab-free)."""
    public = job.to_public()
    parts = [job.display_id, plain(job.status)]
    if job.error:
        parts.append(plain(job.error))
    elif public["outputs"]:
        parts.append(plain(public["outputs"][0]) + (f" (+{len(public['outputs']) - 1})" if len(public["outputs"]) > 1 else ""))
    return "  ".join(parts)


_TABLE_COLUMNS = ("ID", "STATUS", "MODEL", "SCENE", "SUBMITTED", "PROMPT")


def _list_row(job: "Job") -> list[str]:
    public = job.to_public()
    return [
        job.display_id,
        plain(job.status),
        plain(job.model),
        plain(job.scene),
        public["submitted_at"] or "",
        plain(job.prompt),
    ]


def render_table(rows: list[list[str]], width: int) -> list[str]:
    """Fixed columns, the last (prompt) cut to the terminal width."""
    headers = list(_TABLE_COLUMNS)
    shown = [[r[0], r[1], r[2], r[3], _short_time(r[4]), r[5]] for r in rows]
    widths = [max(len(headers[i]), *(len(r[i]) for r in shown)) if shown else len(headers[i]) for i in range(5)]
    lines = []
    for row in [headers, *shown]:
        head = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5]))
        room = max(10, width - len(head) - 2)
        prompt = row[5] if len(row[5]) <= room else row[5][: room - 1] + "…"
        lines.append(f"{head}  {prompt}".rstrip())
    return lines


def _known(value: object, unit: str = "") -> str:
    return "unknown" if value in (None, "") else f"{plain(value)}{unit}"


def _switch(value: object) -> str:
    return "unknown" if not isinstance(value, bool) else ("on" if value else "off")


def show_lines(job: "Job") -> list[str]:
    public = job.to_public()
    request = job.request or {}
    lines = [
        f"id:             {job.server_id or '(none yet)'}",
        f"local id:       {job.local_id}",
        f"status:         {plain(job.status)}",
        f"model:          {plain(job.model)}",
        f"scene:          {plain(job.scene)}",
        f"duration:       {_known(request.get('duration'), ' s')}",
        f"resolution:     {_known(request.get('resolution'))}",
        # An attached job's request is not known: say so rather than show a default.
        f"prompt expansion: {_switch(request.get('prompt_expansion'))}",
    ]
    for name in ("image", "end_image"):
        value = request.get(name)
        if value:
            source = value.get("source") if isinstance(value, dict) else value
            lines.append(f"{name + ':':<16}{plain(source)}")
    lines.append(f"submitted:      {public['submitted_at'] or '-'}")
    lines.append(f"created:        {public['created_at'] or '-'}")
    lines.append(f"finished:       {public['finished_at'] or '-'}")
    if job.execution_time_ms is not None:
        lines.append(f"execution time: {job.execution_time_ms / 1000:.1f} s")
    if job.error:
        lines.append(f"error:          {plain(job.error)}")
    if job.poll_errors:
        lines.append(f"poll errors:    {job.poll_errors} ({plain(job.last_poll_error)})")
    for i, url in enumerate(public["outputs"]):
        flagged = public["has_nsfw_contents"][i] if i < len(public["has_nsfw_contents"]) else False
        lines.append(f"output {i + 1}:       {plain(url)}" + ("  (flagged nsfw)" if flagged else ""))
    if job.outputs_omitted:
        lines.append(f"outputs:        {len(job.outputs)} shown; {job.outputs_omitted:,} more sent by the server "
                     "were not kept")
    if public["result_url"]:
        lines.append(f"result url:     {plain(public['result_url'])}")
    prompt = plain(job.prompt, multiline=True).splitlines() or [""]
    lines.append("prompt:")
    lines.extend(f"  {line}" for line in prompt)
    return lines


# -- CSV export -----------------------------------------------------------------------------

CSV_COLUMNS = (
    "id", "local_id", "status", "model", "scene", "prompt", "duration", "resolution",
    "prompt_expansion", "image", "end_image", "outputs", "result_url", "error",
    "execution_time_ms", "inference_time_ms", "has_nsfw_contents",
    "created_at", "submitted_at", "finished_at",
    # Estimates from the price table (tui.core.costs), not a bill: the API reports no cost.
    "estimated_cost", "cost_source", "billing",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: controls gone, formula starters defused with '."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raw = str(value)
    text = plain(raw)
    # Some spreadsheets skip leading blanks before deciding that a cell is a formula.
    if raw.startswith(_FORMULA_START) or text.lstrip().startswith(_FORMULA_START):
        text = "'" + text
    return text


def csv_record(public: dict[str, Any]) -> list[str]:
    request = public.get("request") or {}

    def image(name: str) -> Any:
        value = request.get(name)
        return value.get("source") if isinstance(value, dict) else value

    values = {
        **public,
        "prompt": request.get("prompt"),
        "duration": request.get("duration"),
        "resolution": request.get("resolution"),
        "prompt_expansion": request.get("prompt_expansion"),
        "image": image("image"),
        "end_image": image("end_image"),
        "outputs": " ".join(public.get("outputs") or []),
        "has_nsfw_contents": " ".join("true" if x else "false" for x in public.get("has_nsfw_contents") or []),
    }
    cost = public.get("cost")
    if isinstance(cost, dict):
        values.update(estimated_cost=cost.get("estimated"), cost_source=cost.get("source"),
                      billing=cost.get("billing"))
    return [csv_cell(values.get(column)) for column in CSV_COLUMNS]


def render_csv(jobs: Iterable["Job"], prices: Any = None) -> str:
    """The export; with a price table, each row carries its estimated cost."""
    from tui.core.costs import job_cost_public

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for job in jobs:
        public = job.to_public()
        if prices is not None:
            public["cost"] = job_cost_public(job, prices)
        writer.writerow(csv_record(public))
    return buffer.getvalue()


# -- running the service --------------------------------------------------------------------


