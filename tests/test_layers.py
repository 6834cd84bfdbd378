"""The layers of the package, checked rather than promised (docs/ARCHITECTURE.md).

- `tui/core/` is the product without a face: it never loads Textual or click, so the job
  service, the store and the poller can run under any front end (and the CLI starts fast).
- `tui/cli/` never loads Textual unless it starts the dashboard.
- No module of the package depends on being imported after another: each one imports on its
  own in a fresh interpreter (an import loop shows up here as an ImportError).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tui"


def _modules(under: Path) -> list[str]:
    names = []
    for path in sorted(under.rglob("*.py")):
        if path.name == "__main__.py":  # running it starts the program
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _loaded_after_import(module: str) -> set[str]:
    """The top-level packages in sys.modules after importing `module` alone, in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        # httpx imports its own command line (click and rich) whenever they are installed: that
        # is httpx's choice, not a dependency of ours, so it is kept out of the count.
        "sys.modules['httpx._main'] = None\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"`import {module}` fails on its own:\n{done.stderr[-2000:]}"
    return set(json.loads(done.stdout.splitlines()[-1]))


ALL_MODULES = _modules(PACKAGE)
CORE_MODULES = _modules(PACKAGE / "core")


def test_the_tree_has_the_four_layers():
    for layer in ("core", "ui", "cli", "simulator", "web"):
        assert (PACKAGE / layer / "__init__.py").is_file(), f"tui/{layer}/ is missing"
    # Nothing but the package's entry points is left loose at the top.
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_modules_load_neither_textual_nor_click(module):
    loaded = _loaded_after_import(module)
    assert not loaded & {"textual", "click", "rich"}, f"{module} pulls in {sorted(loaded & {'textual', 'click', 'rich'})}"


@pytest.mark.parametrize("module", [m for m in ALL_MODULES if m.startswith("tui.cli")])
def test_the_command_line_does_not_load_textual_until_it_starts_the_dashboard(module):
    assert "textual" not in _loaded_after_import(module)


@pytest.mark.parametrize("module", [m for m in ALL_MODULES if not m.startswith(("tui.core", "tui.cli"))])
def test_every_other_module_imports_on_its_own(module):
    _loaded_after_import(module)


DOCUMENTS = ("README.md", "docs/ARCHITECTURE.md", "docs/FAULTS.md", "docs/CLI.md", "bench/README.md")


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_source_file_the_documents_name_is_there(document):
    # A reader who opens the file a document names finds it: moved modules take their docs along.
    import re

    root = PACKAGE.parent
    text = (root / document).read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w/-])tui/[A-Za-z_/]*\.(?:py|tcss|html)\b", text))
    missing = sorted(path for path in named if not (root / path).exists())
    assert not missing, f"{document} names files that are not there: {missing}"


def test_the_app_stays_small_and_the_dashboard_keys_live_on_the_dashboard_screen():
    import inspect

    from tui.ui.app import HailuoApp
    from tui.ui.dashboard import DashboardScreen

    lines, _start = inspect.getsourcelines(HailuoApp)
    assert len(lines) < 400, f"HailuoApp is {len(lines)} lines: move screen work to its screen"
    assert "check_action" not in HailuoApp.__dict__  # no gate on the app keeping keys from dialogs
    app_actions = {binding.action for binding in HailuoApp.BINDINGS}
    screen_actions = {binding.action for binding in DashboardScreen.BINDINGS}
    assert {"toggle_composer", "forget", "filter", "submit", "help"} <= screen_actions, screen_actions
    assert not app_actions & {"toggle_composer", "forget", "filter", "submit", "help"}, app_actions
