"""Authenticated, stateful turns against the floor, with the Teams channel played on loopback.

``python -m bench turns [--quick] [--store=tinydb|memory] [--cases=N] [--seconds=S] [--rounds=R]``
(through ``python -m bench`` give values with ``=``; ``BENCH_PROFILE=file`` writes a cProfile of the
bot's last measured window, ``BENCH_SAMPLE_STALLS=1`` samples the stack of long callbacks).

This process plays the channel: a Bot Connector that receives replies (bench/support/channel.py),
an OpenID metadata + JWKS server whose key signs the inbound tokens as the Bot Connector does and a
login stand-in for the bot's outbound token (tests/support/auth.py, in a thread), and a closed-loop
load generator of Teams-shaped personal-chat messages over many conversations. Two servers run in
processes of their own, measured in the same run, level by level, alternately:

  (a) the floor - a bare aiohttp handler that posts the same reply (bench/support/floor.py);
  (b) our bot - ``create_app`` with auth on, a turn that reads and writes conversation state and a
      case, with ``--cases`` cases in the store (bench/support/turns_bot.py). The store is the
      bot's embedded default, TinyDB (files, journal, fsync), as the targets of issue #3 are set;
      ``--store=memory`` measures the turn without a store's cost.

``--ceiling=US[,US...]`` (default 250,450,650; ``--ceiling=`` for none) adds, at the top level only,
the floor again with US microseconds of CPU spent after each reply (bench/support/floor.py ``--burn-us``): what p99 a handler of a given CPU cost
per activity gets in this closed loop however its work is arranged, and so the CPU per activity the
p99 target needs (interpolated between the points measured).

For each concurrency level it prints activities/s and p50/p95/p99 latency (POST sent -> reply
received by the connector) and the ratios b/a; then the login calls per activity in steady state,
event-loop stalls over 20 ms in the bot (one callback holding the loop, bench/support/loopwatch.py)
and the bot's resident memory after the run, each against its target.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.support.channel import FakeBotConnector, activity
from tests.support.auth import KeyServer

ROOT = Path(__file__).resolve().parent.parent
LEVELS = (1, 8, 32)
TARGET_THROUGHPUT = 0.25     # bot / floor at concurrency 32, at least
TARGET_P99 = 3.0             # bot p99 / floor p99 at concurrency 32, at most
TARGET_RSS_MB = 200.0
TARGET_STALL_MS = 20.0
CEILING_US = (250, 450, 650)  # the ceiling's extra CPU per activity: around the bot's cost (floor ~0.2 ms)


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    url: str

    @property
    def messages(self) -> str:
        return f"{self.url}/api/messages"

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Result:
    target: str
    concurrency: int
    activities: int
    seconds: float
    latencies: list[float]
    errors: int
    asks: list[float] = field(default_factory=list)      # the bot's first turns: read the case, ask
    updates: list[float] = field(default_factory=list)   # the bot's second turns: the case written with its audit
    login_calls: int = 0
    cpu_seconds: float = 0.0
    stalls: int = 0
    preempted: int = 0
    longest_callback_ms: float = 0.0
    stall_sites: list[str] = field(default_factory=list)
    gc_ms: float = 0.0           # the event loop's process: time in garbage collections, and how many
    gc_runs: int = 0

    @property
    def rate(self) -> float:
        return self.activities / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        """Server CPU time per activity (user + system, all threads)."""
        return self.cpu_seconds / self.activities * 1000 if self.activities else float("nan")

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def start_server(name: str, module: str, args: list[str], timeout: float) -> Server:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    if name != "bot":
        env.pop("BENCH_PROFILE", None)  # profile the bot only
    process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=None)
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{name} exited before it was ready (code {process.wait()})")
        if line.startswith("READY "):
            return Server(name, process, f"http://127.0.0.1:{int(line.split()[1])}")
    process.kill()
    raise RuntimeError(f"{name} not ready after {timeout:.0f} s")


class Load:
    """Closed loop: each worker sends its next activity when the reply to the last has arrived."""

    def __init__(self, connector: FakeBotConnector, session: aiohttp.ClientSession, header: dict[str, str],
                 conversations: int) -> None:
        self.connector, self.session, self.header = connector, session, header
        self.conversations = conversations
        self.sent: dict[str, list[int]] = {}    # per server: activities sent in each conversation
        # latencies of each conversation's even- and odd-numbered turns (the bot's "ask" and "update" turns)
        self.asks: list[float] = []
        self.updates: list[float] = []

    async def one(self, url: str, conversation: int) -> float:
        sent = self.sent.setdefault(url, [0] * self.conversations)
        number = sent[conversation]
        sent[conversation] += 1
        text = "bench note"
        body = activity(self.connector.url, conversation, conversation, number, text)
        reply = self.connector.expect(body["conversation"]["id"], body["id"])
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with self.session.post(url, json=body, headers=self.header) as response:
            await response.read()
            if response.status != 200:
                reply.cancel()
                raise RuntimeError(f"status {response.status}")
        received = await asyncio.wait_for(reply, timeout=15)
        # each conversation alternates: ask (reads the case), then update (writes it)
        (self.updates if number % 2 else self.asks).append(received - started)
        return received - started

    async def warm(self, url: str, concurrency: int, rounds: int) -> None:
        """Every conversation ``rounds`` times: afterwards the bot has met every user (steady state)."""
        for _ in range(rounds):
            for start in range(0, self.conversations, concurrency):
                await asyncio.gather(*(self.one(url, c) for c in range(start, min(start + concurrency,
                                                                                  self.conversations))))

    async def run(self, url: str, concurrency: int, seconds: float) -> tuple[int, float, list[float], int]:
        latencies: list[float] = []
        errors = 0
        stop_at = time.perf_counter() + seconds
        slices = [list(range(w, self.conversations, concurrency)) for w in range(concurrency)]

        async def worker(mine: list[int]) -> None:
            nonlocal errors
            i = 0
            while time.perf_counter() < stop_at:
                try:
                    latencies.append(await self.one(url, mine[i % len(mine)]))
                except (TimeoutError, RuntimeError, aiohttp.ClientError):
                    errors += 1
                i += 1

        started = time.perf_counter()
        self.asks, self.updates = [], []
        await asyncio.gather(*(worker(s) for s in slices))
        return len(latencies), time.perf_counter() - started, latencies, errors


def merge(parts: list[Result]) -> list[Result]:
    merged: dict[tuple[str, int], Result] = {}
    for part in parts:
        into = merged.setdefault((part.target, part.concurrency), Result(part.target, part.concurrency, 0, 0.0, [], 0))
        into.activities += part.activities
        into.seconds += part.seconds
        into.latencies += part.latencies
        into.asks += part.asks
        into.updates += part.updates
        into.errors += part.errors
        into.login_calls += part.login_calls
        into.stalls += part.stalls
        into.preempted += part.preempted
        into.cpu_seconds += part.cpu_seconds
        into.longest_callback_ms = max(into.longest_callback_ms, part.longest_callback_ms)
        into.stall_sites += part.stall_sites
        into.gc_ms += part.gc_ms
        into.gc_runs += part.gc_runs
    return list(merged.values())


async def stats(session: aiohttp.ClientSession, server: Server, reset: bool = False) -> dict[str, Any]:
    if reset:
        async with session.post(f"{server.url}/bench/reset") as response:
            return dict(await response.json())
    async with session.get(f"{server.url}/bench/stats") as response:
        return dict(await response.json())


async def measure(args: argparse.Namespace) -> int:
    key_server = KeyServer().start()
    connector = FakeBotConnector()
    await connector.start()
    servers: list[Server] = []
    try:
        print(f"starting the floor and the bot ({args.cases} cases, {args.store} store)...", flush=True)
        floor = start_server("floor", "bench.support.floor", [], 30)
        servers.append(floor)
        bot = start_server("bot", "bench.support.turns_bot",
                           ["--metadata-url", key_server.metadata_url, "--token-url", key_server.token_url,
                            "--store", args.store, "--cases", str(args.cases)]
                           + (["--sdk-default"] if args.sdk_default else [])
                           + (["--data-dir", args.data_dir] if args.data_dir else []), 600)
        servers.append(bot)
        ceilings = [start_server(f"burn{us}", "bench.support.floor", ["--burn-us", str(us)], 30) for us in args.ceiling]
        servers += ceilings
        header = {"Authorization": f"Bearer {key_server.sign(connector.url)}"}
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        results: list[Result] = []
        try:
            load = Load(connector, session, header, args.conversations)
            for server in (floor, bot, *ceilings):  # first contact: keys and token fetched, every user met twice
                await load.warm(server.messages, 8, rounds=2)
            print(f"seeded {args.cases} cases in {(await stats(session, bot))['seed_seconds']} s; "
                  f"measuring {args.seconds:.0f} s per level", flush=True)
            window = args.seconds / args.rounds
            top = max(args.levels)
            for round_ in range(args.rounds):  # interleaved, so that a busy moment of the machine hits both
                for concurrency in args.levels:
                    for server in (floor, bot, *(ceilings if concurrency == top else ())):
                        await load.run(server.messages, concurrency, min(0.5, args.warmup))
                        before = await stats(session, server)
                        await stats(session, server, reset=True)
                        logins = key_server.login_calls
                        count, seconds, latencies, errors = await load.run(server.messages, concurrency, window)
                        after = await stats(session, server)
                        part = Result(server.name, concurrency, count, seconds, latencies, errors, load.asks, load.updates,
                                      login_calls=key_server.login_calls - logins, stalls=after["stalls"],
                                      preempted=after["preempted"],
                                      cpu_seconds=after["cpu_seconds"] - before["cpu_seconds"],
                                      longest_callback_ms=after["longest_callback_ms"],
                                      stall_sites=after["stall_sites"], gc_ms=sum(after["gc_ms"]),
                                      gc_runs=sum(after["gc_runs"]))
                        results.append(part)
                        if after["gc_stalls"]:
                            part.stall_sites.append(f"{after['gc_stalls']} garbage collection(s) > 20 ms "
                                                    f"(longest by generation {after['gc_longest_ms']} ms): "
                                                    + "; ".join(after["gc_log"]))
                        print(f"  round {round_ + 1}/{args.rounds} {server.name:5} c={concurrency:<3} "
                              f"{part.rate:8.1f}/s", flush=True)
            results = merge(results)
            final = await stats(session, bot)
            if args.objects:
                async with session.get(f"{bot.url}/bench/stats?objects=1") as response:
                    found = await response.json()
                print(f"objects the collector walks: {found['gc_objects']}; frozen: {found['gc_frozen']}")
        finally:
            await session.close()
        return report(results, final, bot.rss_mb(), args)
    finally:
        for server in servers:
            server.stop()
        await connector.stop()
        key_server.stop()


def report(results: list[Result], final: dict[str, Any], rss: float, args: argparse.Namespace) -> int:
    print()
    print(f"{'target':8} {'conc':>4} {'act/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'cpu ms/act':>10} "
          f"{'errors':>6} {'logins':>6} {'stalls':>6} {'max cb ms':>9} {'preempted':>9}")
    for r in results:
        print(f"{r.target:8} {r.concurrency:>4} {r.rate:>9.1f} {r.pct(50):>8.2f} {r.pct(95):>8.2f} "
              f"{r.pct(99):>8.2f} {r.cpu_ms:>10.2f} {r.errors:>6} {r.login_calls:>6} {r.stalls:>6} "
              f"{r.longest_callback_ms:>9.2f} {r.preempted:>9}")
    print()
    by = {(r.target, r.concurrency): r for r in results}
    ok = True
    for c in args.levels:
        a, b = by[("floor", c)], by[("bot", c)]
        print(f"ratio bot/floor at c={c:<3} throughput {b.rate / a.rate:6.1%}   "
              f"p50 x{b.pct(50) / a.pct(50):5.2f}   p95 x{b.pct(95) / a.pct(95):5.2f}   "
              f"p99 x{b.pct(99) / a.pct(99):5.2f}   cpu/activity x{b.cpu_ms / a.cpu_ms:5.2f}")
    top = max(args.levels)
    a, b = by[("floor", top)], by[("bot", top)]
    if args.ceiling:
        points = [(1.0, 1.0)]
        for us in args.ceiling:
            r = by[(f"burn{us}", top)]
            points.append((r.cpu_ms / a.cpu_ms, r.pct(99) / a.pct(99)))
            print(f"ceiling at c={top}: the floor + {us} us of CPU after each reply   cpu/activity x{points[-1][0]:5.2f}   "
                  f"throughput {r.rate / a.rate:6.1%}   p99 x{points[-1][1]:5.2f}")
        needed = crossing(points, TARGET_P99)
        at_bot = value_at(points, b.cpu_ms / a.cpu_ms)
        print(f"ceiling: p99 within {TARGET_P99:.0f}x the floor's needs cpu/activity within "
              + (f"x{needed:.2f} the floor's ({needed * a.cpu_ms:.2f} ms)" if needed is not None else
                 "(not bracketed by the points measured)")
              + f"; the bot's is x{b.cpu_ms / a.cpu_ms:.2f} ({b.cpu_ms:.2f} ms), where a bare handler's p99 is "
              + (f"x{at_bot:.2f}" if at_bot is not None else "(not bracketed)"))
    bot_results = [r for r in results if r.target == "bot"]
    for r in (a, b):
        if r.cpu_seconds:
            print(f"{r.target} at c={top}: {r.gc_runs} garbage collections, {r.gc_ms:.0f} ms "
                  f"({r.gc_ms / max(1, r.activities) * 1000:.1f} us per activity, "
                  f"{r.gc_ms / 1000 / r.cpu_seconds:.1%} of the process's CPU)")
    for r in bot_results:
        updates = Result(r.target, r.concurrency, 0, 0.0, r.updates, 0)
        asks = Result(r.target, r.concurrency, 0, 0.0, r.asks, 0)
        print(f"bot turns at c={r.concurrency:<3} p50/p99 ms: ask (reads the case) {asks.pct(50):.1f}/{asks.pct(99):.1f}, "
              f"update (writes the case with its audit record) {updates.pct(50):.1f}/{updates.pct(99):.1f}")
    activities = sum(r.activities for r in bot_results)
    logins = sum(r.login_calls for r in bot_results)
    stalls = sum(r.stalls for r in bot_results)
    checks = [
        (f"throughput at c={top} >= {TARGET_THROUGHPUT:.0%} of the floor", b.rate / a.rate >= TARGET_THROUGHPUT,
         f"{b.rate / a.rate:.1%}"),
        (f"p99 at c={top} within {TARGET_P99:.0f}x the floor's", b.pct(99) <= TARGET_P99 * a.pct(99),
         f"x{b.pct(99) / a.pct(99):.2f}"),
        ("login calls per activity in steady state = 0", logins == 0, f"{logins}/{activities}"),
        (f"event-loop stalls > {TARGET_STALL_MS:.0f} ms = 0", stalls == 0,
         f"{stalls} (longest callback {max(r.longest_callback_ms for r in bot_results):.1f} ms; "
         f"{sum(r.preempted for r in bot_results)} more callbacks were slow only because the OS "
         f"ran another process)"),
        (f"bot resident memory after the run < {TARGET_RSS_MB:.0f} MB", 0 < rss < TARGET_RSS_MB, f"{rss:.0f} MB"),
        ("no errors", sum(r.errors for r in results) == 0, str(sum(r.errors for r in results))),
    ]
    print()
    for name, passed, figure in checks:
        ok &= passed
        print(f"  [{'PASS' if passed else 'FAIL'}] {name}: {figure}")
    print(f"\nbot: {final['connector_clients_created']} connector client(s), {final['token_fetches']} token fetch(es), "
          f"{final['credentials_created']} SDK credentials object(s) created in the whole run; store {final['store']}")
    if "journal_flushes" in final:
        print(f"store: {final['store_cache_hits']} gets answered from memory, {final['journal_flushes']} journal "
              f"flushes for {final['journal_lines']} changes (largest batch {final['batch_largest']}), "
              f"{final['checkpoints']} checkpoint(s), longest {final['checkpoint_longest_ms']} ms; "
              f"{final['files_written']} file writes by the applier")
    if final.get("store_calls"):
        print("store calls over the whole run (BENCH_COUNT_STORE): "
              + ", ".join(f"{name} {count}" for name, count in final["store_calls"].items()))
        print(f"store writes, time to acknowledgement p50/p95/p99 (ms): {final.get('write_waits_ms')}")
    if final.get("threads"):
        print("bot CPU seconds by thread over the whole run: "
              + ", ".join(f"{name} {cpu}" for name, cpu in sorted(final["threads"].items(), key=lambda kv: -kv[1])))
    for r in bot_results:
        for site in r.stall_sites[:3]:
            print(f"  stall at c={r.concurrency}: {site}")
    return 0 if ok or not args.strict else 1


def _segments(points: list[tuple[float, float]]) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    ordered = sorted(points)
    return list(zip(ordered, ordered[1:], strict=False))


def crossing(points: list[tuple[float, float]], y: float) -> float | None:
    """The x where the line through the (x, y) points, taken in order of x, first reaches ``y``
    (linear between neighbours); None when no two neighbours bracket it."""
    for (x0, y0), (x1, y1) in _segments(points):
        if min(y0, y1) <= y <= max(y0, y1) and y0 != y1:
            return x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return None


def value_at(points: list[tuple[float, float]], x: float) -> float | None:
    """The y of the line through the points at ``x`` (linear between neighbours); None outside them."""
    for (x0, y0), (x1, y1) in _segments(points):
        if x0 <= x <= x1 and x0 != x1:
            return y0 + (x - x0) * (y1 - y0) / (x1 - x0)
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench turns")
    parser.add_argument("--quick", action="store_true", help="one round of 3 s per level (about 40 s in all)")
    parser.add_argument("--store", choices=("tinydb", "memory"), default="tinydb")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=0.0, help="measured seconds per level and target")
    parser.add_argument("--rounds", type=int, default=0, help="interleaved rounds the seconds are split into")
    parser.add_argument("--conversations", type=int, default=256)
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels, e.g. --levels=8,32")
    parser.add_argument("--sdk-default", action="store_true",
                        help="run the bot on the SDK's own outbound and auth paths (the 'before' figures)")
    parser.add_argument("--objects", action="store_true", help="list what the garbage collector walks, after")
    parser.add_argument("--ceiling", default=",".join(str(us) for us in CEILING_US),
                        help="CPU microseconds per activity added to extra floors at the top level "
                             f"(default {','.join(str(us) for us in CEILING_US)}; --ceiling= for none)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args, _ = parser.parse_known_args(argv)
    args.seconds = args.seconds or (3.0 if args.quick else 12.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.warmup = 1.0 if args.quick else 2.0
    args.levels = tuple(int(c) for c in args.levels.split(",")) or LEVELS
    args.ceiling = [int(us) for us in args.ceiling.split(",") if us.strip()]
    return asyncio.run(measure(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
