"""Shared fixtures: a controlled clock, stores, a validated config, and the bot driven over HTTP."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.app import create_app
from bot.config import Config, load_config
from cards.base import strip_msteams
from storage.memory import MemoryStore
from supervision.clock import FixedClock
from tests.support.azurite import azurite  # noqa: F401  (session fixture: Azurite on loopback)
from tests.support.connector import FakeConnector
from tests.support.harness import BotHarness

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CARD_SCHEMA_PATH = SHARED / "schemas" / "adaptive-card-1.5.json"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    def make(**env: str) -> Config:
        base = {"DATA_DIR": str(tmp_path / "data"), "STORAGE_BACKEND": "memory",
                "SCHEDULER_INTERVAL_SECONDS": "0"}
        base.update(env)
        return load_config(base, env_file=None)

    return make


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config()


@pytest.fixture
async def harness(config: Config, clock: FixedClock, store: MemoryStore) -> AsyncIterator[BotHarness]:
    app = create_app(config, clock=clock, store=store, start_background=False)
    h = await BotHarness(app=app, connector=FakeConnector()).start()
    yield h
    await h.stop()


@pytest.fixture(scope="session")
def card_schema() -> dict[str, Any]:
    return json.loads(CARD_SCHEMA_PATH.read_text())


@pytest.fixture(scope="session")
def validate_card(card_schema: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    validator_cls = jsonschema.validators.validator_for(card_schema)
    validator = validator_cls(card_schema)

    def validate(card: dict[str, Any]) -> None:
        errors = sorted(validator.iter_errors(strip_msteams(card)), key=lambda e: list(e.path))
        if errors:
            raise AssertionError("card fails the Adaptive Card 1.5 schema:\n" +
                                 "\n".join(f"  {list(e.path)}: {e.message[:200]}" for e in errors[:10]))

    return validate


@pytest.fixture
async def file_server() -> AsyncIterator[tuple[dict[str, bytes], str]]:
    """Plays OneDrive's pre-authorised download URLs on loopback: put bytes in the dict under a
    name, and the file is served at the returned base URL + name (404 for anything else)."""
    from aiohttp import web

    files: dict[str, bytes] = {}

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.Response(body=files[name]) if name in files else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/files/{name}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield files, f"http://127.0.0.1:{port}/files/"
    await runner.cleanup()
