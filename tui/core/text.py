"""Text from the server, the history or the user, made inert for a terminal.

One definition for every place that shows such text (job table, detail pane, toasts, status
line, CLI output, CSV export, error messages): escape sequences are removed whole (so no
fragment like "[31m" is left behind, and an OSC 52 clipboard write loses its payload too),
then every remaining control character and every character that can reorder or hide text
(bidi overrides and isolates, zero-width characters). Markup is not this module's business:
widgets draw such text as `rich.text.Text` (never parsed as markup) and toasts pass
`markup=False`.
"""

from __future__ import annotations

import re

#: CSI, OSC/DCS/SOS/PM/APC strings (to BEL or ST, or to the end), other ESC sequences,
#: and the 8-bit (C1) forms of CSI and of the string introducers.
ESCAPE_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x9c|\x1b\\)?"
)
#: What is left to remove: C0 (but tab and line feed), DEL, C1, zero-width and bidi
#: formatting characters, the byte order mark.
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
#: Line breaks of every kind (and tabs): one space each run in one-line text.
LINE_BREAKS = re.compile("[\t\n\r\v\f\x85\u2028\u2029]+")
_SPACES = re.compile(r"\s+")


def inert(value: object, *, multiline: bool = False) -> str:
    """`value` as text a terminal only displays. One line (breaks and tabs become a space)
    unless `multiline`, which keeps line feeds and tabs."""
    text = "" if value is None else str(value)
    if text.isascii() and text.isprintable():
        return text
    text = ESCAPE_SEQUENCES.sub("", text)
    if multiline:
        text = text.replace("\r\n", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    else:
        text = LINE_BREAKS.sub(" ", text)
    return CONTROLS.sub("", text)


def one_line(value: object, *, limit: int | None = None) -> str:
    """Inert, runs of whitespace collapsed, trimmed, and cut to `limit` characters with "…"."""
    text = _SPACES.sub(" ", inert(value)).strip()
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "…"
    return text


def first_unsafe(text: str) -> tuple[int, str] | None:
    """(position, character) of the first control or formatting character a prompt must not
    contain (line feeds and tabs are allowed), or None."""
    for index, ch in enumerate(text):
        if ch in "\n\t":
            continue
        if CONTROLS.match(ch) or ch in "\u2028\u2029":
            return index, ch
    return None


# -- text that cannot be encoded, repaired where it enters ------------------------------------------

REPLACEMENT = "\ufffd"
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")


def repair_surrogates(text: str) -> tuple[str, int]:
    """`text` with every lone surrogate (from a JSON escape such as "\\ud800", or bytes a
    surrogateescape decoder let through) replaced by U+FFFD, and how many were replaced.
    Such text cannot be written as UTF-8: repaired once, it is the text kept, shown and sent."""
    repaired, count = _LONE_SURROGATES.subn(REPLACEMENT, text)
    return repaired, count


def decode_repaired(data: bytes) -> tuple[str, int]:
    """UTF-8 bytes as text, each invalid sequence replaced by U+FFFD; and how many were."""
    text = data.decode("utf-8", errors="replace")
    return text, text.count(REPLACEMENT) - data.count(REPLACEMENT.encode("utf-8"))


def repair_note(count: int, what: str) -> str:
    """The warning for a repair: `what` is where the text came from ("--prompt", "row 3 ...")."""
    plural = "s" if count != 1 else ""
    return (f"{what}: {count} character{plural} that {'are' if count != 1 else 'is'} not valid text "
            f"(invalid UTF-8 or a lone surrogate) replaced by U+FFFD ({REPLACEMENT})")
