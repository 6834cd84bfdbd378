"""The one table of glyphs the dashboard draws with, chosen once at start from TERM.

Contract:
- `glyphs_for(env)` returns `UNICODE` in terminals with a full font and `PLAIN` (ASCII only) on
  the Linux console and other limited terminals (TERM=linux, vt100, vt220, dumb), whose fonts
  lack `⚠ ✓ ✗ ▶ ▕ ▔`; `GLYPHS` is that choice for this process.
- `plain_screen(env)` says whether the screen should get the `-plain-glyphs` class, under which
  styles/app.tcss draws borders with ASCII instead of the block-edge (`hkey`/`vkey`) characters.
- A state is never told by colour alone: the marks here stand beside a word, and the switch's
  state is a word, so each reads the same under NO_COLOR.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

#: Terminals whose fonts are known to lack the glyphs below (the Linux console's 512-glyph font).
PLAIN_TERMS = frozenset({"linux", "vt100", "vt102", "vt220", "dumb", "ansi", "cons25"})


@dataclass(frozen=True)
class Glyphs:
    warning: str
    ellipsis: str
    sort_ascending: str
    sort_descending: str
    switch_on: str
    switch_off: str


UNICODE = Glyphs(warning="⚠", ellipsis="…",
                 sort_ascending="▲", sort_descending="▼", switch_on="on", switch_off="off")
PLAIN = Glyphs(warning="!", ellipsis="~",
               sort_ascending="^", sort_descending="v", switch_on="on", switch_off="off")


def plain_screen(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("TERM", "").lower() in PLAIN_TERMS


def glyphs_for(env: Mapping[str, str] | None = None) -> Glyphs:
    return PLAIN if plain_screen(env) else UNICODE


#: Chosen at import, i.e. at start: TERM does not change while the dashboard runs.
GLYPHS = glyphs_for()

