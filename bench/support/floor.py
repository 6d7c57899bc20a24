"""The floor: a bare aiohttp handler that answers an activity the way the bot does - reads the JSON,
posts a reply to ``{serviceUrl}/v3/conversations/{id}/activities/{activityId}`` on one reused
session, answers 200 - with no SDK, no auth check and no state. ``python -m bench.support.floor``
serves on a free loopback port and prints ``READY <port>``."""
from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bench.support.loopwatch import install_stats_route

SESSION = web.AppKey("session", aiohttp.ClientSession)


def make_app() -> web.Application:
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
        return web.Response(status=200)

    app.router.add_post("/api/messages", messages)
    app.cleanup_ctx.append(session)
    install_stats_route(app)
    return app


async def serve() -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(f"READY {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> int:
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
