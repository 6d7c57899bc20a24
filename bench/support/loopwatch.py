"""Event-loop stall detection for the benchmark's server processes, and their stats route.

A stall is one callback (a task step, an I/O handler) that holds the loop longer than ``STALL``:
exactly what asyncio debug mode's ``slow_callback_duration`` reports, measured by timing
``asyncio.events.Handle._run`` (debug mode itself slows every callback and would skew the figures).
On a shared machine a callback can also take that long in wall time because the OS gave the CPU to
another process: such a callback used little CPU and made no voluntary context switch (it neither
computed nor waited for I/O), so it is counted apart, as ``preempted``, not as a stall of ours.
A callback that used > ``STALL`` of CPU, or blocked in a system call (a voluntary context switch:
file or socket I/O, a lock, a sleep), is a stall.
``GET /bench/stats`` reports stalls, the longest callback and resident memory; ``POST /bench/reset``
starts counting afresh (after warm-up).
"""
from __future__ import annotations

import asyncio.events
import cProfile
import gc
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from aiohttp import web

STALL = 0.020
RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


class LoopWatch:
    def __init__(self) -> None:
        self.reset()

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        took = time.perf_counter() - self._gc_started
        generation = int(info.get("generation", 0))
        self.gc_longest[generation] = max(self.gc_longest[generation], took)
        self.gc_seconds[generation] += took
        self.gc_runs[generation] += 1
        if took > STALL:
            self.gc_stalls += 1
            if len(self.gc_log) < 10:
                self.gc_log.append(f"gen{generation} {took * 1000:.1f} ms, {info.get('collected')} collected, "
                                   f"{len(gc.get_objects(generation))} objects left in gen{generation}")

    def reset(self) -> None:
        self.gc_longest = [0.0, 0.0, 0.0]
        self.gc_seconds = [0.0, 0.0, 0.0]     # time in collections, by generation (the collector's cost)
        self.gc_runs = [0, 0, 0]
        self.gc_stalls = 0
        self.gc_log: list[str] = []
        self._gc_started = 0.0
        self.running: tuple[float, int] | None = None
        self.samples: dict[int, str] = {}
        self.stalls, self.longest, self.callbacks = 0, 0.0, 0
        self.where: list[str] = []
        self.preempted, self.longest_preempted = 0, 0.0
        # CPU time, voluntary switches and wall clock as the turn's first callback began
        self._turn: tuple[float, int, float] | None = None

    def turn_begins(self) -> None:
        self._turn = None

    def install(self) -> None:
        """Time every callback with the wall clock (no system call); read the thread's CPU clock and
        voluntary context switches once per turn of the loop, as its first callback starts, and again
        only after a callback that took longer than STALL. (Read around every callback, those two
        system calls cost the bot ~5% of its CPU, the floor less: it runs fewer callbacks per
        activity.) A slow callback's CPU is then at least what the thread used since its turn's first
        callback began, less the wall time from then to the slow callback's start (which bounds what the
        callbacks before it used); its waits are the thread's since then. Both err towards calling a
        slow callback a stall, never towards hiding one."""
        original: Callable[[Any], None] = asyncio.events.Handle._run
        watch = self
        clock = time.perf_counter
        sampling = bool(os.environ.get("BENCH_SAMPLE_STALLS"))

        def slow(handle: Any, start: float, took: float, ident: int) -> None:
            turn_cpu, turn_switches, turn_start = watch._turn or (time.thread_time() - took, 0, start)  # reset meanwhile
            used = time.thread_time() - turn_cpu - (start - turn_start)
            waited = resource.getrusage(RUSAGE_THREAD).ru_nvcsw - turn_switches
            if used >= STALL or waited > 0:
                watch.stalls += 1
                watch.longest = max(watch.longest, took)
                if len(watch.where) < 10:
                    sample = watch.samples.pop(ident, "")
                    watch.where.append(f"{took * 1000:.1f} ms (at least {max(used, 0.0) * 1000:.1f} ms CPU, "
                                       f"{waited} waits in its turn of the loop) in {handle!r}"[:300]
                                       + (f"\n    at {sample}" if sample else ""))
            else:
                watch.preempted += 1
                watch.longest_preempted = max(watch.longest_preempted, took)

        def timed_run(handle: Any) -> None:
            if watch._turn is None:
                watch._turn = (time.thread_time(), resource.getrusage(RUSAGE_THREAD).ru_nvcsw, clock())
            start = clock()
            if sampling:
                watch.running = (start, watch.callbacks)
            try:
                original(handle)
            finally:
                took = clock() - start
                watch.callbacks += 1
                if sampling:
                    watch.running = None
                if took > STALL:
                    slow(handle, start, took, watch.callbacks - 1)
                elif took > watch.longest:
                    watch.longest = took

        loop = asyncio.get_running_loop()
        run_once = loop._run_once  # type: ignore[attr-defined]

        def timed_turn() -> None:
            watch.turn_begins()
            run_once()

        loop._run_once = timed_turn  # type: ignore[attr-defined]
        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign,assignment]
        gc.callbacks.append(self._gc)
        if os.environ.get("BENCH_SAMPLE_STALLS"):  # off by default: its wake-ups cost the loop GIL hand-offs
            threading.Thread(target=self._sampler, args=(threading.get_ident(),), daemon=True,
                             name="loopwatch").start()

    def _sampler(self, loop_thread: int) -> None:
        """Where a long callback is: the loop thread's stack, sampled once it has run > STALL."""
        while True:
            time.sleep(0.005)
            running = self.running
            if running is None or time.perf_counter() - running[0] < STALL or running[1] in self.samples:
                continue
            frame = sys._current_frames().get(loop_thread)
            if frame is not None:
                stack = traceback.extract_stack(frame)[-6:]
                self.samples[running[1]] = " <- ".join(
                    f"{f.filename.split('site-packages/')[-1].split('/work/main/')[-1]}:{f.lineno} {f.name}"
                    for f in reversed(stack))
            if len(self.samples) > 100:
                self.samples.clear()


WATCH = LoopWatch()


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def install_stats_route(app: web.Application, extra: Callable[[], dict[str, Any]] | None = None) -> None:
    WATCH.install()

    profile_to = os.environ.get("BENCH_PROFILE", "")  # cProfile of each measured phase, for finding hot spots
    profiler: list[cProfile.Profile] = []

    async def stats(request: web.Request) -> web.Response:
        if profiler:
            profiler[0].disable()
            profiler[0].dump_stats(profile_to)
            profiler.clear()
        body = {"stalls": WATCH.stalls, "longest_callback_ms": round(WATCH.longest * 1000, 2),
                "gc_longest_ms": [round(t * 1000, 2) for t in WATCH.gc_longest], "gc_stalls": WATCH.gc_stalls,
                "gc_log": WATCH.gc_log, "gc_ms": [round(t * 1000, 1) for t in WATCH.gc_seconds],
                "gc_runs": list(WATCH.gc_runs),
                "preempted": WATCH.preempted, "longest_preempted_ms": round(WATCH.longest_preempted * 1000, 2),
                "callbacks": WATCH.callbacks, "stall_sites": WATCH.where, "rss_mb": round(rss_mb(), 1),
                "gc_counts": list(gc.get_count()), "cpu_seconds": time.process_time()}
        if request.query.get("objects"):  # diagnosis: what the collector has to walk
            counts: dict[str, int] = {}
            for obj in gc.get_objects():
                counts[type(obj).__name__] = counts.get(type(obj).__name__, 0) + 1
            body["gc_objects"] = sorted(counts.items(), key=lambda kv: -kv[1])[:15]
            body["gc_frozen"] = gc.get_freeze_count()
        body.update(extra() if extra else {})
        return web.json_response(body)

    async def reset(request: web.Request) -> web.Response:
        WATCH.reset()
        if profile_to:
            profiler[:] = [cProfile.Profile()]
            profiler[0].enable()
        return web.json_response({"ok": True})

    app.router.add_get("/bench/stats", stats)
    app.router.add_post("/bench/reset", reset)
