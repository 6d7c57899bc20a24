"""The Teams channel, played on loopback for the turns benchmark: a Bot Connector that receives the
bot's replies and wakes whoever waits for them, a Teams roster, and Teams-shaped activities."""
from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TENANT = "00000000-0000-0000-0000-000000000001"
BOT_ID = "28:11111111-2222-3333-4444-555555555555"


def user_id(n: int) -> str:
    return f"29:bench-user-{n:05d}"


def conversation_id(n: int) -> str:
    return f"a:bench-personal-{n:05d}"


def activity(service_url: str, conversation: int, user: int, number: int, text: str) -> dict[str, Any]:
    """A personal-chat message as Teams sends it."""
    return {
        "type": "message", "id": f"1{conversation:05d}{number:08d}", "timestamp": "2026-01-05T09:00:00.000Z",
        "localTimestamp": "2026-01-05T09:00:00.000+00:00", "channelId": "msteams", "serviceUrl": service_url,
        "from": {"id": user_id(user), "name": f"Bench User {user}", "aadObjectId": f"aad-bench-{user:05d}"},
        "conversation": {"conversationType": "personal", "tenantId": TENANT, "id": conversation_id(conversation)},
        "recipient": {"id": BOT_ID, "name": "Group Supervision"},
        "textFormat": "plain", "text": text, "locale": "en-GB", "localTimezone": "Europe/London",
        "entities": [{"locale": "en-GB", "country": "GB", "platform": "Web", "timezone": "Europe/London",
                      "type": "clientInfo"}],
        "channelData": {"tenant": {"id": TENANT}},
    }


@dataclass
class FakeBotConnector:
    """Receives ``/v3/conversations/{id}/activities[/{activityId}]`` and answers the roster.

    ``expect(conversation, activity_id)`` returns a future resolved when a reply to that activity
    arrives. Users whose number is divisible by ``no_roster_every`` have no roster entry (404), as
    guests and users of other tenants can have.
    """

    no_roster_every: int = 5
    replies: int = 0
    roster_calls: int = 0
    created: int = 0
    _waiters: dict[tuple[str, str], asyncio.Future[float]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    runner: web.AppRunner | None = None
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/conversations", self._create)
        app.router.add_post("/v3/conversations/{cid}/activities", self._reply)
        app.router.add_post("/v3/conversations/{cid}/activities/{aid}", self._reply)
        app.router.add_put("/v3/conversations/{cid}/activities/{aid}", self._update)
        app.router.add_get("/v3/conversations/{cid}/members/{uid}", self._member)
        return app

    async def start(self) -> str:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def expect(self, conversation: str, activity_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[(conversation, activity_id)] = future
        return future

    async def _reply(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.replies += 1
        loop = asyncio.get_running_loop()
        key = (request.match_info["cid"], request.match_info.get("aid") or body.get("replyToId") or "")
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(loop.time())
        return web.json_response({"id": f"reply-{next(self._ids)}"})

    async def _update(self, request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"id": request.match_info["aid"]})

    async def _create(self, request: web.Request) -> web.Response:
        await request.read()
        self.created += 1
        return web.json_response({"id": f"a:created-{next(self._ids)}", "activityId": "", "serviceUrl": self.url})

    async def _member(self, request: web.Request) -> web.Response:
        self.roster_calls += 1
        uid = request.match_info["uid"]
        number = int(uid.rsplit("-", 1)[-1]) if uid.startswith("29:bench-user-") else 0
        if number % self.no_roster_every == 0:
            return web.json_response({"error": {"code": "MemberNotFoundInConversation",
                                                "message": "The member was not found"}}, status=404)
        return web.json_response({"id": uid, "name": f"Bench User {number}", "aadObjectId": f"aad-bench-{number:05d}",
                                  "email": f"bench.user{number}@example.com",
                                  "userPrincipalName": f"bench.user{number}@example.com",
                                  "tenantId": TENANT, "userRole": "user"})
