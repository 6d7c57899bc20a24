"""Bot state on the DocumentStore: botbuilder Storage semantics, a dialog that survives a restart of
the app (TinyDB), and a dialog that continues on another instance (two apps, one Azurite store)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botbuilder.core import MessageFactory, StoreItem
from botbuilder.dialogs import DialogTurnResult, PromptOptions, TextPrompt, WaterfallDialog, WaterfallStepContext

from bot.app import PARTS, create_app
from bot.config import Config
from bot.routing import Router
from bot.services import Services
from bot.state_storage import DocumentBotStorage
from bot.turn import Turn
from storage.blob_store import BlobStore
from storage.memory import MemoryStore
from storage.tinydb_store import TinyDBStore
from tests.support.azurite import Azurite
from tests.support.connector import FakeConnector
from tests.support.harness import BotHarness, User

ZEB = User("user-zebedee-state", "Zebedee Example")


# --- the Storage contract -------------------------------------------------------------------------
async def test_read_write_delete_round_trip_dicts_and_store_items() -> None:
    storage = DocumentBotStorage(MemoryStore())
    assert await storage.read(["a"]) == {}
    await storage.write({"a": {"count": 1, "names": ["Zebedee"]}, "b": StoreItem(count=2)})
    items = await storage.read(["a", "b", "missing"])
    assert set(items) == {"a", "b"}
    assert items["a"]["count"] == 1 and items["a"]["names"] == ["Zebedee"] and items["a"]["e_tag"]
    assert isinstance(items["b"], StoreItem) and items["b"].count == 2 and items["b"].e_tag
    await storage.delete(["a", "never"])
    assert set(await storage.read(["a", "b"])) == {"b"}


async def test_e_tags_are_honoured() -> None:
    storage = DocumentBotStorage(MemoryStore())
    await storage.write({"k": {"v": 1}})
    first = (await storage.read(["k"]))["k"]
    second = (await storage.read(["k"]))["k"]
    first["v"] = 2
    await storage.write({"k": first})                      # matches the stored e_tag: written
    assert first["e_tag"] != second["e_tag"]               # the caller's item carries the new e_tag
    second["v"] = 3
    with pytest.raises(KeyError, match="Etag conflict"):   # stale: refused, nothing lost
        await storage.write({"k": second})
    assert (await storage.read(["k"]))["k"]["v"] == 2
    second["e_tag"] = "*"                                   # "*" overwrites whatever is there
    await storage.write({"k": second})
    assert (await storage.read(["k"]))["k"]["v"] == 3
    first["v"] = 4
    with pytest.raises(KeyError):                          # first's e_tag went stale with that overwrite
        await storage.write({"k": first})
    fresh = (await storage.read(["k"]))["k"]
    fresh["v"] = 4
    await storage.write({"k": fresh})
    fresh["v"] = 5
    await storage.write({"k": fresh})                      # the e_tag it got from its own last write
    assert (await storage.read(["k"]))["k"]["v"] == 5
    with pytest.raises(ValueError):
        await storage.write({"k": {"v": 5, "e_tag": ""}})


# --- a dialog across restarts and instances -------------------------------------------------------
def survey_feature(holder: dict[str, Any]) -> Callable[[Router, Services], list[Any]]:
    """A three-step dialog whose answers live only in dialog state."""
    async def ask_name(step: WaterfallStepContext) -> DialogTurnResult:
        return await step.prompt("text", PromptOptions(prompt=MessageFactory.text("survey: your name?")))

    async def ask_agency(step: WaterfallStepContext) -> DialogTurnResult:
        step.values["name"] = step.result
        return await step.prompt("text", PromptOptions(prompt=MessageFactory.text("survey: your agency?")))

    async def finish(step: WaterfallStepContext) -> DialogTurnResult:
        await step.context.send_activity(f"survey done: {step.values['name']} from {step.result}")
        return await step.end_dialog()

    async def start(turn: Turn) -> None:
        context = await holder["bot"].dialogs.create_context(turn.ctx)
        await context.begin_dialog("survey")

    def register(router: Router, services: Services) -> list[Any]:
        router.command("start survey", start)
        return [TextPrompt("text"), WaterfallDialog("survey", [ask_name, ask_agency, finish])]

    return register


async def started(config: Config, store: Any) -> BotHarness:
    holder: dict[str, Any] = {}
    app = create_app(config, store=store, features=[survey_feature(holder)], start_background=False)
    holder["bot"] = app[PARTS].bot
    return await BotHarness(app=app, connector=FakeConnector()).start()


async def test_a_dialog_survives_a_restart_of_the_app(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config = make_config(STORAGE_BACKEND="tinydb", DATA_DIR=str(tmp_path / "data"))
    first = await started(config, TinyDBStore(tmp_path / "data"))
    assert (await first.say(ZEB, "start survey"))[-1].text == "survey: your name?"
    assert (await first.say(ZEB, "Zebedee"))[-1].text == "survey: your agency?"
    await first.stop()          # the app's cleanup closes the store and lets go of the folder

    second = await started(config, TinyDBStore(tmp_path / "data"))
    try:
        assert (await second.say(ZEB, "Health"))[-1].text == "survey done: Zebedee from Health"
        assert "didn't recognise" in (await second.say(ZEB, "Health"))[-1].text     # the dialog ended
    finally:
        await second.stop()


@pytest.mark.azurite
async def test_a_dialog_continues_on_another_instance(make_config: Callable[..., Config], azurite: Azurite) -> None:
    container = azurite.container_name("state")
    config = make_config(STORAGE_BACKEND="blob", AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string,
                         BLOB_CONTAINER=container)
    one = await started(config, BlobStore(azurite.connection_string, container))
    two = await started(config, BlobStore(azurite.connection_string, container))
    try:
        assert (await one.say(ZEB, "start survey"))[-1].text == "survey: your name?"
        assert (await two.say(ZEB, "Zebedee"))[-1].text == "survey: your agency?"
        assert (await one.say(ZEB, "Police"))[-1].text == "survey done: Zebedee from Police"
    finally:
        await one.stop()
        await two.stop()
