"""A loopback Bot Connector: receives what the bot sends (replies, proactive messages, updates,
new conversations) and records it, as the Teams channel service would."""
from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Sent:
    method: str
    conversation_id: str
    activity_id: str
    body: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "")

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [a["content"] for a in self.body.get("attachments") or []
                if a.get("contentType") == "application/vnd.microsoft.card.adaptive"]

    @property
    def type(self) -> str:
        return str(self.body.get("type", ""))


@dataclass
class FakeConnector:
    sent: list[Sent] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    rosters_read: list[str] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _event: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/conversations", self._create)
        app.router.add_post("/v3/conversations/{cid}/activities", self._post)
        app.router.add_post("/v3/conversations/{cid}/activities/{aid}", self._post)
        app.router.add_put("/v3/conversations/{cid}/activities/{aid}", self._put)
        app.router.add_get("/v3/conversations/{cid}/members/{uid}", self._member)
        app.router.add_get("/v3/conversations/{cid}/pagedmembers", self._paged_members)
        return app

    async def start(self) -> str:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/"
        return self.url

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    def _record(self, method: str, cid: str, aid: str, body: dict[str, Any]) -> None:
        self.sent.append(Sent(method, cid, aid, body))
        self._event.set()

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.created.append(body)
        cid = f"a:personal-{next(self._ids)}"
        return web.json_response({"id": cid, "activityId": "", "serviceUrl": self.url})

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        aid = f"act-{next(self._ids)}"
        self._record("POST", request.match_info["cid"], aid, body)
        return web.json_response({"id": aid})

    async def _put(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record("PUT", request.match_info["cid"], request.match_info["aid"], body)
        return web.json_response({"id": request.match_info["aid"]})

    async def _member(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        member = self.members.get(uid)
        if member is None:
            return web.json_response({"error": {"code": "MemberNotFoundInConversation"}}, status=404)
        return web.json_response(member)

    async def _paged_members(self, request: web.Request) -> web.Response:
        """A team's roster (every known member, one page); the team ids asked for are kept."""
        self.rosters_read.append(request.match_info["cid"])
        return web.json_response({"members": list(self.members.values())})

    def messages(self, conversation_id: str | None = None) -> list[Sent]:
        return [s for s in self.sent if s.type == "message"
                and (conversation_id is None or s.conversation_id == conversation_id)]

    def clear(self) -> None:
        self.sent.clear()
