"""Prompt history and named templates for the composer, and the fuzzy search over both.

- History: the prompts of the jobs in the history, most recent first, each once.
- Templates: a prompt saved under a name with the form's other choices (model, scene,
  duration, resolution, prompt expansion, images), kept in a small JSON file in the data
  directory, written atomically. A file that cannot be read is left as it is and reported;
  it is never written over.
- Search: every space-separated word of the query must appear in order (letters may be
  apart, as in fzf); whole substrings, word starts and letters close together rank first.

Nothing here knows of widgets.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from tui.core.catalog import VideoRequest
from tui.core.files import write_atomically

HISTORY = "history"
TEMPLATE = "template"
#: The picker offers this many of the most recent distinct prompts.
HISTORY_LIMIT = 2000
TEMPLATE_FILE_VERSION = 1
MAX_NAME = 60
#: The form's choices a template keeps besides its prompt.
OPTION_FIELDS = ("model", "scene", "duration", "resolution", "prompt_expansion", "image", "end_image")

_SPACES = re.compile(r"\s+")
_NAME_BAD = re.compile("[\x00-\x1f\x7f-\x9f]")


def _normal(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class PromptEntry:
    prompt: str
    kind: str = HISTORY
    name: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    #: When the prompt was last submitted (history) or the template saved, epoch seconds.
    when: float | None = None
    #: Lower-case text the search runs over (name and prompt).
    haystack: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.haystack:
            object.__setattr__(self, "haystack", f"{self.name} {self.prompt}".strip().lower())

    @property
    def is_template(self) -> bool:
        return self.kind == TEMPLATE

    def request(self, current: VideoRequest) -> VideoRequest:
        """The form after picking: a template brings its choices, a history entry only its prompt."""
        if not self.is_template:
            return current.with_changes(prompt=self.prompt)
        data = {k: v for k, v in self.options.items() if k in OPTION_FIELDS}
        return VideoRequest.from_dict({**current.to_dict(), **data, "prompt": self.prompt})


def recent_prompts(jobs: Iterable[Any], limit: int = HISTORY_LIMIT) -> list[PromptEntry]:
    """Distinct prompts of `jobs` (given newest first), most recent first; blank ones skipped."""
    seen: set[str] = set()
    entries: list[PromptEntry] = []
    for job in jobs:
        prompt = job.prompt
        if not prompt or not prompt.strip():
            continue
        key = _normal(prompt)
        if key in seen:
            continue
        seen.add(key)
        entries.append(PromptEntry(prompt=prompt, kind=HISTORY, when=job.submitted_at))
        if len(entries) >= limit:
            break
    return entries


# -- fuzzy search ---------------------------------------------------------------------------------


def _term_score(term: str, text: str) -> float | None:
    """How well one lower-case word matches `text` (lower-case); None when its letters are not all there in order."""
    found = text.find(term)
    if found >= 0:
        at_word_start = found == 0 or not text[found - 1].isalnum()
        return 100.0 + 10.0 * len(term) + (30.0 if at_word_start else 0.0) - math.log1p(found)
    position = -1
    score = 0.0
    previous = -2
    for char in term:
        position = text.find(char, position + 1)
        if position < 0:
            return None
        if position == previous + 1:
            score += 5.0  # letters side by side
        elif position == 0 or not text[position - 1].isalnum():
            score += 3.0  # the start of a word
        else:
            score -= min(3.0, (position - previous) / 10.0)  # a gap
        previous = position
    return score


def fuzzy_score(query: str, text: str) -> float | None:
    """Score of `text` for `query` (higher is better), or None when some word of the query does not match."""
    total = 0.0
    for term in query.lower().split():
        score = _term_score(term, text)
        if score is None:
            return None
        total += score
    return total


def search(entries: list[PromptEntry], query: str) -> list[PromptEntry]:
    """The entries that match, best first; ties keep their order (templates, then most recent)."""
    if not query.strip():
        return list(entries)
    scored = []
    for index, entry in enumerate(entries):
        score = fuzzy_score(query, entry.haystack)
        if score is not None:
            scored.append((-score, index, entry))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [entry for _, _, entry in scored]


# -- templates -------------------------------------------------------------------------------------


class TemplateError(Exception):
    """The templates file cannot be read or written, or a name is not usable; the message says which."""


def check_name(name: str) -> str:
    cleaned = _normal(name)
    if not cleaned:
        raise TemplateError("give the template a name")
    if _NAME_BAD.search(cleaned):
        raise TemplateError("a template name cannot contain control characters")
    if len(cleaned) > MAX_NAME:
        raise TemplateError(f"a template name has at most {MAX_NAME} characters ({len(cleaned)} given)")
    return cleaned


class TemplateStore:
    """Named prompts in one small JSON file (read fresh on every call, so two instances do not undo each other)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock

    def _read(self) -> list[dict[str, Any]]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise TemplateError(f"cannot read the templates file {self.path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(raw)
            templates = data["templates"]
            if not isinstance(templates, list) or not all(
                    isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("prompt"), str)
                    for t in templates):
                raise ValueError("unexpected contents")
        except (ValueError, KeyError, TypeError) as exc:
            raise TemplateError(f"the templates file {self.path} cannot be read ({exc}); "
                                "it is left as it is and nothing is saved over it") from None
        return templates

    def load(self) -> list[PromptEntry]:
        """Every template, by name."""
        entries = [PromptEntry(prompt=t["prompt"], kind=TEMPLATE, name=t["name"],
                               options=dict(t.get("options") or {}), when=t.get("saved_at"))
                   for t in self._read()]
        return sorted(entries, key=lambda e: e.name.lower())

    def _write(self, templates: list[dict[str, Any]]) -> None:
        text = json.dumps({"version": TEMPLATE_FILE_VERSION, "templates": templates}, indent=2, ensure_ascii=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, text + "\n")
        except OSError as exc:
            raise TemplateError(f"cannot write the templates file {self.path}: {exc.strerror or exc}") from None

    def save(self, name: str, request: VideoRequest) -> tuple[PromptEntry, bool]:
        """Save (or replace) a template; returns it and whether one of that name was replaced."""
        name = check_name(name)
        if not request.prompt.strip():
            raise TemplateError("the prompt is empty: there is nothing to save")
        templates = self._read()
        options = {k: v for k, v in request.to_dict().items() if k in OPTION_FIELDS}
        record = {"name": name, "prompt": request.prompt, "options": options, "saved_at": self._clock()}
        kept = [t for t in templates if t["name"].lower() != name.lower()]
        self._write(kept + [record])
        entry = PromptEntry(prompt=request.prompt, kind=TEMPLATE, name=name, options=options,
                            when=record["saved_at"])
        return entry, len(kept) != len(templates)

    def delete(self, name: str) -> bool:
        templates = self._read()
        kept = [t for t in templates if t["name"].lower() != name.lower()]
        if len(kept) == len(templates):
            return False
        self._write(kept)
        return True
