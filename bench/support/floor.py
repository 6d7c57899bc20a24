"""The floor: a bare aiohttp handler that answers an activity the way the bot does - reads the JSON,
posts a reply to ``{serviceUrl}/v3/conversations/{id}/activities/{activityId}`` on one reused
session, answers 200 - with no SDK, no auth check and no state. ``python -m bench.support.floor``
serves on a free loopback port and prints ``READY <port>``.

``--burn-us=N``: after posting its reply, the handler also spends N microseconds of CPU (a busy loop
on the thread's CPU clock) before it answers 200. The benchmark's *ceiling* uses it: a handler that
costs as much CPU per activity as the bot, with all the extra cost placed where it delays the reply
least, shows the best p99 any turn of that cost can have in this closed loop."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bench.support.loopwatch import install_stats_route

SESSION = web.AppKey("session", aiohttp.ClientSession)


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU time (not wall time: being descheduled does not count)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def make_app(burn_seconds: float = 0.0) -> web.Application:
    app = web.Application()

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=64))
        yield
        await app[SESSION].close()

    async def messages(request: web.Request) -> web.Response:
        activity = await request.json()
        conversation = activity["conversation"]["id"]
        reply = {"type": "message", "text": f"Noted: {activity.get('text', '')[:40]}", "replyToId": activity["id"],
                 "from": activity["recipient"], "recipient": activity["from"],
                 "conversation": activity["conversation"], "channelId": activity["channelId"]}
        url = f"{activity['serviceUrl'].rstrip('/')}/v3/conversations/{conversation}/activities/{activity['id']}"
        async with request.app[SESSION].post(url, data=json.dumps(reply),
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": "Bearer floor"}) as response:
            await response.read()
        if burn_seconds:
            burn(burn_seconds)
        return web.Response(status=200)

    app.router.add_post("/api/messages", messages)
    app.cleanup_ctx.append(session)
    install_stats_route(app)
    return app


async def serve(burn_seconds: float = 0.0) -> None:
    runner = web.AppRunner(make_app(burn_seconds), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(f"READY {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.support.floor")
    parser.add_argument("--burn-us", type=float, default=0.0, help="CPU microseconds spent after each reply")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.burn_us / 1e6))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
