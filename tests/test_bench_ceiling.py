"""The turns benchmark's ceiling (bench/turns_bench.py ``--ceiling``): the floor handler with extra
CPU spent after each reply, and the interpolation that reads the CPU per activity the p99 target
needs off the points measured."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from bench.support.channel import FakeBotConnector, activity
from bench.support.floor import burn, make_app
from bench.turns_bench import crossing, value_at


def test_burn_spends_cpu_time_not_wall_time() -> None:
    started = time.thread_time()
    burn(0.004)
    spent = time.thread_time() - started
    assert 0.004 <= spent < 0.05


@pytest.mark.parametrize("burn_us", [0, 3000])
async def test_the_floor_replies_then_spends_the_extra_cpu_before_it_answers(burn_us: int) -> None:
    connector = FakeBotConnector()
    await connector.start()
    runner = web.AppRunner(make_app(burn_us / 1e6), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            spent, waits = [], []
            for number in range(5):
                body = activity(connector.url, 1, 1, number, "bench note")
                reply = connector.expect(body["conversation"]["id"], body["id"])
                started = time.thread_time()       # the floor runs on this thread's loop: its CPU is ours
                async with session.post(f"http://127.0.0.1:{port}/api/messages", json=body) as response:
                    assert response.status == 200
                    answered = asyncio.get_running_loop().time()
                spent.append(time.thread_time() - started)
                assert reply.done()
                waits.append(answered - reply.result())   # from the reply's arrival to the 200
        if burn_us:
            assert min(spent) >= burn_us / 1e6
            assert min(waits) >= burn_us / 1e6         # the extra CPU comes after the reply
        else:
            assert min(spent) < 0.003
    finally:
        await runner.cleanup()
        await connector.stop()


def test_crossing_and_value_at_interpolate_between_neighbours_in_order_of_x() -> None:
    points = [(1.0, 1.0), (3.5, 3.5), (2.5, 2.9), (4.5, 4.8)]      # unordered on purpose
    assert crossing(points, 3.0) == pytest.approx(2.5 + 0.1 * 1.0 / 0.6)
    assert crossing(points, 1.0) == pytest.approx(1.0)
    assert crossing(points, 9.0) is None
    assert value_at(points, 4.0) == pytest.approx(3.5 + 0.5 * 1.3)
    assert value_at(points, 1.75) == pytest.approx(1.0 + 0.75 * 1.9 / 1.5)
    assert value_at(points, 0.5) is None and value_at(points, 5.0) is None
