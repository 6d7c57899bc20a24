"""The end-to-end suite's guard that child and family identifiers never leave personal chat.

``assert_stack_leaked_nothing(stack)`` runs when a stack stops (tests/e2e/conftest.py): it reads
every case the stack's store holds (through the real store, after the bot has let go of it, so
writes not yet checkpointed count too), takes their child and family identifiers, and fails if any
appears in an activity the bot sent to a channel or group chat during the session, or in the bot's
log. The per-test checks only know the identifiers that test made; this one knows every case.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.e2e.playground import Stack, shared_activities


def case_identifiers(data_dir: Path) -> list[str]:
    """Every child and family identifier of every case in a (stopped) stack's TinyDB store."""
    from storage.tinydb_store import TinyDBStore
    from supervision.models import identifiers_of
    from supervision.repository import CaseRepository

    if not data_dir.exists():
        return []

    async def read() -> list[str]:
        store = TinyDBStore(data_dir)
        try:
            cases = CaseRepository(store)
            found: set[str] = set()
            for case_id in await cases.ids():
                case = await cases.get(case_id)
                if case is not None:
                    found.update(identifiers_of(case.request))
            return sorted(found, key=len, reverse=True)
        finally:
            await store.close()

    # name parts shared with the synthetic email domain (example.com) are not identifiers of anyone
    return [i for i in asyncio.run(read()) if i.lower() != "example"]


def leaks(stack: Stack, identifiers: list[str]) -> list[str]:
    from supervision.models import find_identifiers

    problems = []
    for message in shared_activities(stack):
        hits = find_identifiers(json.dumps(message.activity, ensure_ascii=False), identifiers)
        if hits:
            problems.append(f"{hits} in {message!r}")
    in_log = find_identifiers(stack.read_bot_log(), identifiers)
    if in_log:
        problems.append(f"{in_log} in the bot's log")
    return problems


def assert_stack_leaked_nothing(stack: Stack) -> int:
    """Call after ``stack.stop()``. Returns how many shared activities were checked."""
    identifiers = case_identifiers(stack.data_dir)
    if not identifiers:
        return 0
    problems = leaks(stack, identifiers)
    if problems:
        raise AssertionError("child/family identifiers left personal chat:\n  " + "\n  ".join(problems))
    return len(shared_activities(stack))
