"""The bot under test, in its own process: the real ``create_app`` with Bot Framework auth on (app id
and password set, tokens checked against the benchmark's key server, outbound token from its login
stand-in), a store holding ``--cases`` cases, and one extra command, ``bench note``, a stateful
two-step exchange kept in the conversation state (the SDK's ``ConversationState``, as dialogs are):

- first turn: reads the conversation's case from the store and asks for a note (state written);
- next turn: (state read) updates the case through ``CaseRepository.update`` (read, etag-checked
  write with its audit record, index), answers, and clears the state.

Every turn also runs what every turn of ours runs: the dialog stack's state load and save, the people
directory (Teams roster lookup, cached) and the proactive conversation reference.
``python -m bench.support.turns_bot ...`` prints ``READY <port>`` once seeded and serving.
(No botbuilder import here: bench/ stays SDK-free, tests/test_architecture.py; the SDK objects come
from the app.)
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.support.loopwatch import install_stats_route
from bot.adapter import SupervisionAdapter, freeze_startup_heap
from bot.app import PARTS, create_app
from bot.config import load_config
from bot.connector import ConnectorPool
from bot.credentials import CachedAppCredentials
from bot.credentials_inbound import AcceptedTokens
from bot.features import FEATURES
from bot.routing import Router
from bot.services import Services
from bot.turn import Turn
from supervision.codec import to_data
from supervision.models import Case, CaseState, ChildDetails, Person, RequestDetails
from supervision.repository import CASES
from tests.support.auth import APP_ID, APP_PASSWORD, StandInCredentialsFactory

STATE = "bench.state"


def case_id(n: int) -> str:
    return f"bench-case-{n:05d}"


def case_for(conversation_id: str, cases: int) -> str:
    return case_id(int(conversation_id.rsplit("-", 1)[-1]) % cases)


def make_case(n: int, now: datetime) -> Case:
    return Case(id=case_id(n), reference=f"MAGS-BOL-260105-{n:04X}", profile_id="bolton",
                state=CaseState.SCHEDULED, created_at=now,
                request=RequestDetails(
                    requester=Person(name=f"Zebedee Example {n}", email=f"bench.user{n}@example.com",
                                     role="Social worker", organisation="Synthetic Council"),
                    child=ChildDetails(forename="Zebedee", surname=f"Example{n}", address="1 Synthetic Street"),
                    level_of_need="Child in need", reason="A stuck case, invented for the benchmark.",
                    pen_picture="An invented pen picture of a few sentences. " * 4))


def bench_feature(cases: int) -> Any:
    def register(router: Router, services: Services) -> list[Any]:
        async def note(turn: Turn) -> None:
            state = services.features[STATE]  # a ConversationState property
            pending: dict[str, Any] = await state.get(turn.ctx, dict)
            if not pending.get("case_id"):
                case = await services.cases.require(case_for(turn.activity.conversation.id, cases))
                await state.set(turn.ctx, {"case_id": case.id, "asked_at": services.clock.now().isoformat()})
                await turn.send_text(f"Your note for {case.reference}?")
                return
            # the audit record is written with the case (one durable write), as the product's updates do
            case, _ = await services.cases.update(pending["case_id"], lambda c: None, audit=lambda c, _: services.audit.entry(
                actor=turn.actor.user_id, action="bench.note", case_id=c.id, what="note", why="benchmark"))
            await state.set(turn.ctx, {})
            await turn.send_text(f"Noted for {case.reference} (version {case.version}).")

        router.command("bench note", note)
        return []

    return register


async def seed(store: Any, cases: int) -> float:
    started = time.perf_counter()
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    docs = {case_id(n): {**to_data(make_case(n, now)), "version": 1} for n in range(cases)}
    bulk = getattr(store, "bulk_put", None)
    if bulk is not None:
        await bulk(CASES, docs)
    else:
        for key, data in docs.items():
            await store.put(CASES, key, data)
    return time.perf_counter() - started


def store_figures(store: Any) -> dict[str, Any]:
    """The TinyDB store's own counters: cache hits, journal flushes, checkpoints (and the longest)."""
    journal = getattr(store, "journal", None)
    if journal is None:
        return {}
    return {"store_cache_hits": store.cache_hits, "journal_flushes": journal.flushes,
            "journal_lines": journal.lines, "batch_largest": store.batch_largest,
            "checkpoints": store.checkpoints, "checkpoint_longest_ms": round(store.checkpoint_longest * 1000, 1),
            "files_written": store.files_written,
            "threads": thread_cpu()}


WRITE_WAITS: list[float] = []     # seconds each write waited for its acknowledgement (BENCH_COUNT_STORE)


def write_waits() -> dict[str, float]:
    ordered = sorted(WRITE_WAITS[-20_000:])
    if not ordered:
        return {}
    return {f"p{q}": round(ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] * 1000, 2) for q in (50, 95, 99)}


def count_store_calls(store: Any) -> collections.Counter[str]:
    """``BENCH_COUNT_STORE=1``: count the store's operations by kind and collection (instance wrappers)."""
    calls: collections.Counter[str] = collections.Counter()
    for name in ("get", "put", "delete", "append", "keys", "read_log"):
        method = getattr(store, name, None)
        if method is None:
            continue

        def wrap(method: Any = method, name: str = name) -> Any:
            if name in ("put", "delete", "append"):
                async def timed(collection: str, *args: Any, **kwargs: Any) -> Any:
                    calls[f"{name} {collection}"] += 1
                    started = time.perf_counter()
                    try:
                        return await method(collection, *args, **kwargs)
                    finally:
                        WRITE_WAITS.append(time.perf_counter() - started)
                return timed

            def counted(collection: str, *args: Any, **kwargs: Any) -> Any:
                calls[f"{name} {collection}"] += 1
                return method(collection, *args, **kwargs)
            return counted

        setattr(store, name, wrap())
    return calls


def thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by each of this process's threads, by name (Linux /proc)."""
    import threading
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    found: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(task.name), "other")
        name = name.split("_")[0] if name.startswith("tinydb-store") else name
        found[name] = round(found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick, 2)
    return found


def use_sdk_defaults() -> None:
    """For a before/after comparison only (``--sdk-default``): the bot with the SDK's own outbound
    and authentication paths - new credentials (so a login call) and new connector clients per turn
    on msrest's requests pipeline, every token validated from scratch, keys fetched by the SDK."""
    import bot.app as app_module

    class SdkDefaultAdapter(SupervisionAdapter):
        def __init__(self, auth: Any, language: str = "en", **_: Any) -> None:
            super(SupervisionAdapter, self).__init__(auth)  # CloudAdapter's own, unwrapped
            self.pool = ConnectorPool()
            self.tokens = AcceptedTokens(clock=lambda: float("inf"))  # remembers nothing usable
            self.keys = None
            self.language = language
            self.on_turn_error = self._on_turn_error  # type: ignore[assignment]

    app_module.SupervisionAdapter = SdkDefaultAdapter  # type: ignore[misc]
    app_module.SharedCredentialsFactory = lambda inner: inner  # type: ignore[assignment,misc]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.support.turns_bot")
    parser.add_argument("--metadata-url", required=True)
    parser.add_argument("--token-url", required=True)
    parser.add_argument("--store", choices=("tinydb", "memory"), default="tinydb")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--sdk-default", action="store_true", help="the SDK's own paths, for comparison")
    args = parser.parse_args(argv)
    if args.sdk_default:
        use_sdk_defaults()
    logging.basicConfig(level=logging.WARNING)
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="bench-turns-"))
    config = load_config({"MicrosoftAppId": APP_ID, "MicrosoftAppPassword": APP_PASSWORD,
                          "STORAGE_BACKEND": args.store, "DATA_DIR": str(data_dir),
                          "SCHEDULER_INTERVAL_SECONDS": "0", "LOG_LEVEL": "WARNING"}, env_file=None)
    credentials = StandInCredentialsFactory(args.token_url)

    async def serve() -> None:
        app = create_app(config, openid_metadata_url=args.metadata_url, credentials_factory=credentials,
                         features=[*FEATURES, bench_feature(args.cases)], start_background=False)
        parts = app[PARTS]
        parts.services.features[STATE] = parts.bot.conversation_state.create_property("BenchNote")
        seconds = await seed(parts.services.store, args.cases)
        # As a serving bot does at start-up (create_app with start_background): the modules, and with
        # the memory store the seeded cases (which stand in for a store that keeps them on disk),
        # out of the cyclic collector's reach.
        freeze_startup_heap()
        if os.environ.get("BENCH_SWITCH_INTERVAL"):  # experiments: BENCH_SWITCH_INTERVAL=0.001
            sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))
        if os.environ.get("BENCH_GC_THRESHOLD"):    # experiments: BENCH_GC_THRESHOLD=700,10,10
            gc.set_threshold(*(int(n) for n in os.environ["BENCH_GC_THRESHOLD"].split(",")))

        calls = count_store_calls(parts.services.store) if os.environ.get("BENCH_COUNT_STORE") else None

        def extra() -> dict[str, Any]:
            pool = parts.adapter.pool
            fetches = 0
            for auth in [parts.adapter.bot_framework_authentication]:
                inner = getattr(auth, "inner", None)
                factory = getattr(getattr(inner, "_inner", None), "_credentials_factory", None)
                for creds in getattr(factory, "all", lambda: [])():
                    fetches += creds.fetches if isinstance(creds, CachedAppCredentials) else 0
            return {"connector_clients_created": pool.created, "credentials_created": credentials.created,
                    "token_fetches": fetches, "seed_seconds": round(seconds, 2), "cases": args.cases,
                    "store": args.store, **store_figures(parts.services.store),
                    **({"store_calls": dict(calls.most_common()), "write_waits_ms": write_waits()}
                       if calls is not None else {})}

        install_stats_route(app, extra)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(f"READY {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
