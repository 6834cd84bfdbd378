"""Prompt history and templates: the library below the UI, and the picker and name dialog as a user drives them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from textual.widgets import OptionList, TextArea

from tui.cli import main as cli
from tui.ui.app import HailuoApp
from tui.core.catalog import VideoRequest
from tui.core.config import Settings
from tui.core.templates import (HISTORY, TEMPLATE, PromptEntry, TemplateError, TemplateStore, fuzzy_score, recent_prompts,
                         search)
from tui.core.records import Job
from tui.ui.screens.prompts import PromptPicker, TemplateNameScreen
from tui.core.store import HistoryStore
from tui.ui.widgets.composer import Composer

from helpers import app_settings, started, toasts

KEY = "sk-prompts-test-key-0123456789"


# -- the library ------------------------------------------------------------------------------------


def _job(prompt: str, at: float) -> SimpleNamespace:
    return SimpleNamespace(prompt=prompt, submitted_at=at)


def _settings(tmp_path, base_url, **changes) -> Settings:
    """The shared dashboard settings (helpers.app_settings), with the templates file in the test's directory."""
    return app_settings(tmp_path, base_url, KEY, **{"templates_path": tmp_path / "data" / "templates.json", **changes})


def test_recent_prompts_are_newest_first_distinct_and_never_blank():
    jobs = [_job("a red fox in snow", 50), _job("", 40), _job("waves  over rocks", 30),
            _job(" a red fox in snow ", 20), _job("waves over rocks", 10), _job("   ", 5)]
    entries = recent_prompts(jobs)
    assert [(e.prompt, e.when, e.kind) for e in entries] == [("a red fox in snow", 50, HISTORY),
                                                            ("waves  over rocks", 30, HISTORY)]
    assert len(recent_prompts([_job(f"prompt {i}", -i) for i in range(50)], limit=7)) == 7


def test_fuzzy_search_matches_letters_in_order_and_ranks_close_matches_first():
    assert fuzzy_score("rdfx", "a red fox") is not None
    assert fuzzy_score("xfdr", "a red fox") is None
    assert fuzzy_score("fox snow", "a red fox in snow") is not None
    assert fuzzy_score("fox rain", "a red fox in snow") is None
    entries = [PromptEntry("fog over a harbour, a box"), PromptEntry("a red fox"), PromptEntry("nothing here")]
    assert [e.prompt for e in search(entries, "fox")] == ["a red fox", "fog over a harbour, a box"]
    assert [e.prompt for e in search(entries, "")] == [e.prompt for e in entries]
    # A template is found by its name too.
    named = PromptEntry("slow dolly shot of a lighthouse", kind=TEMPLATE, name="hero shot")
    assert search([PromptEntry("unrelated"), named], "hero") == [named]


def test_template_store_saves_replaces_deletes_and_writes_atomically(tmp_path):
    path = tmp_path / "data" / "templates.json"
    store = TemplateStore(path, clock=lambda: 1_700_000_000.0)
    assert store.load() == []
    request = VideoRequest(model="hailuo-2.3-pro", resolution="1080P", duration=6, prompt="a lighthouse at night",
                           prompt_expansion=False)
    entry, replaced = store.save("  Night   light ", request)
    assert not replaced and entry.name == "Night light"
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert data["templates"] == [{"name": "Night light", "prompt": "a lighthouse at night", "saved_at": 1_700_000_000.0,
                                  "options": {"model": "hailuo-2.3-pro", "scene": "text-to-video", "duration": 6,
                                              "resolution": "1080P", "prompt_expansion": False, "image": None,
                                              "end_image": None}}]
    _, replaced = store.save("NIGHT LIGHT", request.with_changes(prompt="a lighthouse in fog"))
    assert replaced
    (loaded,) = store.load()
    assert loaded.name == "NIGHT LIGHT" and loaded.prompt == "a lighthouse in fog" and loaded.is_template
    # Picking a template restores its choices; a history entry only its prompt.
    current = VideoRequest(model="hailuo-02-fast", duration=10, prompt="old")
    assert loaded.request(current) == VideoRequest(model="hailuo-2.3-pro", resolution="1080P", duration=6,
                                                   prompt="a lighthouse in fog", prompt_expansion=False)
    assert PromptEntry("new words").request(current) == current.with_changes(prompt="new words")
    assert store.delete("night light") and not store.delete("night light")
    assert store.load() == []
    assert sorted(p.name for p in path.parent.iterdir()) == ["templates.json"]  # no temp file left behind


@pytest.mark.parametrize("name,message", [("", "give the template a name"), ("   ", "give the template a name"),
                                          ("x" * 61, "at most 60"), ("bad\x1bname", "control characters")])
def test_template_names_are_checked(tmp_path, name, message):
    with pytest.raises(TemplateError, match=message):
        TemplateStore(tmp_path / "t.json").save(name, VideoRequest(prompt="p"))


def test_an_unreadable_templates_file_is_reported_and_never_written_over(tmp_path):
    path = tmp_path / "templates.json"
    path.write_text('{"templates": [ {"name": "half a fi')
    store = TemplateStore(path)
    with pytest.raises(TemplateError, match="cannot be read.*left as it is"):
        store.load()
    with pytest.raises(TemplateError):
        store.save("new", VideoRequest(prompt="p"))
    assert path.read_text() == '{"templates": [ {"name": "half a fi'


def test_locate_shows_the_templates_file(tmp_path):
    result = CliRunner().invoke(cli.main, ["locate", "--json"])
    assert json.loads(result.stdout)["templates_file"] == str(tmp_path / "data" / "templates.json")
    assert "templates:" in CliRunner().invoke(cli.main, ["locate"]).stdout


# -- the dashboard ----------------------------------------------------------------------------------


def _history(path: Path, prompts: list[str]) -> None:
    now = time.time()
    store = HistoryStore.open(path)
    try:
        for i, prompt in enumerate(prompts):  # oldest first
            request = {"model": "hailuo-2.3-fast", "scene": "text-to-video", "prompt": prompt, "duration": 6,
                       "resolution": "768P", "prompt_expansion": True}
            store.put(Job(local_id=f"job{i:09d}", request=request, submitted_at=now - 600 + i, status="completed",
                          server_id=f"pred-{i}"))
        store.flush()
    finally:
        store.close()


def _option_texts(screen) -> list[str]:
    options = screen.query_one("#prompt-options", OptionList)
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


async def test_recall_picks_an_earlier_prompt_by_fuzzy_search(tmp_path, simulator):
    _history(tmp_path / "history.json", ["a red fox in snow", "waves breaking over black rocks", "a red fox in snow"])
    app = HailuoApp(_settings(tmp_path, simulator.base_url))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        composer = app.query_one(Composer)
        composer.load(VideoRequest(model="hailuo-02-pro", resolution="1080P", prompt="draft"))
        await pilot.press("n", "ctrl+r")
        await pilot.pause()
        picker = app.screen
        assert isinstance(picker, PromptPicker)
        texts = _option_texts(picker)
        assert len(texts) == 2  # the repeated prompt once, the newest first
        assert texts[0].endswith("a red fox in snow") and texts[1].endswith("waves breaking over black rocks")
        await pilot.press(*"wvs blk")
        await pilot.pause()
        assert [t.split("  ")[-1] for t in _option_texts(picker)] == ["waves breaking over black rocks"]
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, PromptPicker)
        assert app.query_one("#prompt", TextArea).text == "waves breaking over black rocks"
        assert composer.request.model == "hailuo-02-pro"  # only the prompt was recalled
        assert app.query_one("#prompt", TextArea).has_focus
        # Escape closes the picker and leaves the form alone.
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.query_one("#prompt", TextArea).text == "waves breaking over black rocks"


async def test_save_a_template_then_recall_it_with_its_choices(tmp_path, simulator):
    app = HailuoApp(_settings(tmp_path, simulator.base_url))
    path = tmp_path / "data" / "templates.json"
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        composer = app.query_one(Composer)
        composer.load(VideoRequest(model="hailuo-2.3-pro", resolution="1080P", duration=6, prompt_expansion=False,
                                   prompt="slow dolly shot of a lighthouse at night"))
        await pilot.press("n", "ctrl+t")
        await pilot.pause()
        assert isinstance(app.screen, TemplateNameScreen)
        await pilot.press("enter")  # no name yet: said beside the field, the dialog stays
        await pilot.pause()
        assert "give the template a name" in str(app.screen.query_one("#template-name-note").render())
        await pilot.press(*"hero shot", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, TemplateNameScreen)
        saved = json.loads(path.read_text())["templates"]
        assert [(t["name"], t["prompt"], t["options"]["model"]) for t in saved] == [
            ("hero shot", "slow dolly shot of a lighthouse at night", "hailuo-2.3-pro")]

        await pilot.press("ctrl+l")  # clear the form
        await pilot.pause()
        assert composer.request.model != "hailuo-2.3-pro" and composer.request.prompt == ""
        await pilot.press("ctrl+r")
        await pilot.pause()
        texts = _option_texts(app.screen)
        assert texts[0].startswith("template hero shot")
        await pilot.press(*"hero", "enter")
        await pilot.pause()
        assert composer.request == VideoRequest(model="hailuo-2.3-pro", resolution="1080P", duration=6,
                                                prompt_expansion=False,
                                                prompt="slow dolly shot of a lighthouse at night")

        # The same name again says it replaces; ctrl+d in the picker deletes.
        await pilot.press("ctrl+t")
        await pilot.pause()
        await pilot.press(*"Hero Shot")
        await pilot.pause()
        assert "replaces the template 'hero shot'" in str(app.screen.query_one("#template-name-note").render())
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.press("ctrl+d")
        await pilot.pause()
        await pilot.press("n")  # asked first: no keeps it
        await pilot.pause()
        assert len(json.loads(path.read_text())["templates"]) == 1
        await pilot.press("ctrl+d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert json.loads(path.read_text())["templates"] == []
        assert _option_texts(app.screen) == [] or not _option_texts(app.screen)[0].startswith("template")


async def test_recall_and_save_are_palette_commands(tmp_path, simulator):
    _history(tmp_path / "history.json", ["a paper boat in the rain"])
    app = HailuoApp(_settings(tmp_path, simulator.base_url))
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Composer: Recall prompt" in titles and "Composer: Save as template" in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"recall prompt")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, PromptPicker)
        await pilot.press("enter")
        await pilot.pause()
        # At 80 columns the composer was hidden: picking shows it with the prompt filled.
        assert app.screen.has_class("-show-composer")
        assert app.query_one("#prompt", TextArea).text == "a paper boat in the rain"


async def test_read_only_mode_neither_recalls_nor_saves(tmp_path, simulator):
    _history(tmp_path / "history.json", ["a paper boat in the rain"])
    app = HailuoApp(_settings(tmp_path, simulator.base_url).with_changes(read_only=True))
    async with app.run_test(size=(160, 45)) as pilot:
        await started(app, pilot)
        app.query_one("#prompt", TextArea).text = "a prompt"
        await pilot.press("n", "ctrl+r")
        await pilot.pause()
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert not app.screen.is_modal
        raised = toasts(app)
        assert any("Recalling a prompt is off" in t for t in raised)
        assert any("Saving a template is off" in t for t in raised)
    assert not (tmp_path / "data" / "templates.json").exists()
