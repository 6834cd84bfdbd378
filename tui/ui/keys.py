"""Every key of the product by binding id, with the config's [keymap] laid over it.

One reading of the bindings for everything that shows or checks keys: the help screen and the
command palette (`in_force`: the keys as they are now, remapped ones included), the check at
start (`keymap_problems`: unknown ids, two bindings on one key) and docs/KEYS.md
(`keys_markdown`, regenerated with `python -m tui.ui.keys > docs/KEYS.md`; a test compares).

Imports of the screens and widgets are inside the functions: the dashboard imports this module.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping

from textual.binding import Binding, BindingsMap
from textual.keys import _normalize_key_list

#: How the help, the palette and the docs write a few keys Textual spells out.
KEY_LABELS = {"question_mark": "?", "slash": "/", "escape": "Esc", "equals_sign": "="}


def key_label(key: str) -> str:
    return KEY_LABELS.get(key, key)


def scopes() -> list[tuple[type, ...]]:
    """The sets of classes whose bindings act together, innermost first: the focused widget, its
    screen and (for a screen that is not modal) the app. A key bound twice in one is a conflict."""
    from tui.ui.app import HailuoApp
    from tui.ui.dashboard import DashboardScreen
    from tui.ui.screens.batch import BatchScreen
    from tui.ui.screens.compare import CompareScreen
    from tui.ui.screens.dialogs import ConfirmScreen, CopyMenu, HelpScreen, RepeatSubmitScreen
    from tui.ui.screens.prompts import PromptPicker, TemplateNameScreen
    from tui.ui.widgets.composer import Composer
    from tui.ui.widgets.detail import DetailPane
    from tui.ui.widgets.job_table import JobTable

    return [
        (JobTable, DashboardScreen, HailuoApp),
        (Composer, DashboardScreen, HailuoApp),
        (DetailPane, DashboardScreen, HailuoApp),
        (CompareScreen, HailuoApp),
        # Modal screens: the keys below them (the app's too) do not reach through.
        (ConfirmScreen,),
        (RepeatSubmitScreen,),
        (CopyMenu,),
        (HelpScreen,),
        (BatchScreen,),
        (PromptPicker,),
        (TemplateNameScreen,),
    ]


#: The section of docs/KEYS.md each class's bindings are listed under.
def _sections() -> list[tuple[str, type]]:
    from tui.ui.app import HailuoApp
    from tui.ui.dashboard import DashboardScreen
    from tui.ui.screens.batch import BatchScreen
    from tui.ui.screens.compare import CompareScreen
    from tui.ui.screens.dialogs import ConfirmScreen, CopyMenu, HelpScreen, RepeatSubmitScreen
    from tui.ui.screens.prompts import PromptPicker, TemplateNameScreen
    from tui.ui.widgets.composer import Composer
    from tui.ui.widgets.detail import DetailPane
    from tui.ui.widgets.job_table import JobTable

    return [("Every screen", HailuoApp), ("Dashboard", DashboardScreen), ("Job table", JobTable),
            ("Request form", Composer), ("Detail pane", DetailPane), ("Compare screen", CompareScreen),
            ("Confirmation dialog", ConfirmScreen), ("Repeat-submit dialog", RepeatSubmitScreen),
            ("Copy menu", CopyMenu), ("Help screen", HelpScreen), ("Batch dialog", BatchScreen),
            ("Prompt picker", PromptPicker), ("Template name dialog", TemplateNameScreen)]


def class_bindings(cls: type) -> list[Binding]:
    """A class's bindings (its bases' included), one per binding with all its keys joined."""
    merged: dict[tuple[str | None, str], Binding] = {}
    for key, binding in cls._merge_bindings():  # type: ignore[attr-defined]
        name = (binding.id, binding.action)
        if name in merged:
            merged[name] = merged[name].with_key(f"{merged[name].key},{key}")
        else:
            merged[name] = binding.with_key(key)
    found = list(merged.values())
    from textual.app import App

    if issubclass(cls, App):
        # Added by Textual when the app starts, not by a class's BINDINGS.
        found.append(Binding(App.COMMAND_PALETTE_BINDING, "command_palette", "Command palette"))
    return found


def _name(binding: Binding) -> str:
    return binding.id if binding.id is not None else f"Textual's {(binding.description or binding.action).lower()}"


def known_ids() -> set[str]:
    return {binding.id for _section, cls in _sections() for binding in class_bindings(cls) if binding.id}


def keys_of(binding: Binding, keymap: Mapping[str, str]) -> list[str]:
    """The keys a binding answers to under `keymap` (normalized: "?" is "question_mark")."""
    keys = keymap.get(binding.id, binding.key) if binding.id is not None else binding.key
    return [key.strip() for key in _normalize_key_list(keys).split(",") if key.strip()]


def keymap_problems(keymap: Mapping[str, str]) -> list[str]:
    """One line per problem with the config's [keymap]: an id no binding has, a key that two
    bindings of one scope answer to (only where the keymap put one of them there)."""
    problems: list[str] = []
    known = known_ids()
    for binding_id in keymap:
        if binding_id not in known:
            close = difflib.get_close_matches(binding_id, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"[keymap] {binding_id!r} is no binding id{hint}: it is ignored (docs/KEYS.md lists them)")
    section_of = {cls: section.lower() for section, cls in _sections()}
    reported: set[tuple[str, frozenset[str]]] = set()
    for scope in scopes():
        # key -> binding name -> (the binding, the class it belongs to), innermost class first
        on_key: dict[str, dict[str, tuple[Binding, type]]] = {}
        for cls in scope:
            for binding in class_bindings(cls):
                for key in keys_of(binding, keymap):
                    on_key.setdefault(key, {}).setdefault(_name(binding), (binding, cls))
        for key, named in on_key.items():
            actions = {binding.action.removeprefix("app.") for binding, _cls in named.values()}
            if len(actions) < 2 or not any(binding.id in keymap for binding, _cls in named.values()):
                continue  # one action under two names, or as the bindings were written: not the keymap's doing
            names = frozenset(named)
            if (key, names) in reported:
                continue  # the same bindings in another scope (the dashboard's own keys are in three)
            reported.add((key, names))
            where = section_of[min((cls for _binding, cls in named.values()), key=scope.index)]
            both = " and ".join(repr(name) if not name.startswith("Textual") else name for name in sorted(named))
            problems.append(f"[keymap] {key_label(key)} is bound to both {both} on the {where}: "
                            "only one of them acts")
    return problems


def in_force(node: Any, keymap: Mapping[str, str]) -> BindingsMap:
    """A node's bindings as they act now: a copy with the keymap laid over (Textual does this
    for each key press, never on the node's own map)."""
    bindings = node._bindings.copy()
    if keymap:
        bindings.apply_keymap(dict(keymap))
    return bindings


def keys_markdown() -> str:
    """docs/KEYS.md: every binding id, its default keys and what it does, by where it acts."""
    lines = [
        "# Keys and binding ids",
        "",
        "Generated from the bindings by `python -m tui.ui.keys > docs/KEYS.md` (a test fails when",
        "this file is out of date). Every key can be remapped in the config file by its binding id:",
        "",
        "```toml",
        "[keymap]",
        '"app.forget" = "delete"        # several keys: "delete,ctrl+d"',
        "```",
        "",
        "An id that is not listed here, or a key that two bindings of one place would share, is",
        "named at start (a toast and the status line); the dashboard starts all the same. The help",
        "screen (`?`) and the command palette (`ctrl+p`) show the keys in force.",
        "",
    ]
    for section, cls in _sections():
        rows = [binding for binding in class_bindings(cls) if binding.id is not None]
        if not rows:
            continue
        lines += [f"## {section}", "", "| binding id | default keys | what it does |", "| --- | --- | --- |"]
        for binding in rows:
            keys = ", ".join(f"`{key_label(key)}`" for key in keys_of(binding, {}))
            what = binding.description or binding.tooltip or binding.action
            lines.append(f"| `{binding.id}` | {keys} | {what} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    print(keys_markdown(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
