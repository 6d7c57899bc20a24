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
