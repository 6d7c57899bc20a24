"""Drive the real bot app in-process over HTTP, as the Teams channel does, with a loopback connector."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import PARTS, BotParts
from tests.support.connector import FakeConnector, Sent

TENANT = "00000000-0000-0000-0000-000000000001"
BOT_ID = "28:bot-id"


@dataclass
class User:
    id: str
    name: str
    aad_object_id: str = ""
    email: str = ""


@dataclass
class BotHarness:
    app: web.Application
    connector: FakeConnector
    client: TestClient | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> BotHarness:
        await self.connector.start()
        self.client = TestClient(TestServer(self.app))
        await self.client.start_server()
        return self

    async def stop(self) -> None:
        if self.client:
            await self.client.close()
        await self.connector.stop()

    @property
    def parts(self) -> BotParts:
        return self.app[PARTS]

    def activity(self, user: User, *, type_: str = "message", conversation_type: str = "personal",
                 conversation_id: str | None = None, **extra: Any) -> dict[str, Any]:
        conversation_id = conversation_id or f"personal-{user.id}"
        if user.email and user.id not in self.connector.members:
            self.connector.members[user.id] = {"id": user.id, "name": user.name, "email": user.email,
                                               "userPrincipalName": user.email,
                                               "aadObjectId": user.aad_object_id or None}
        body: dict[str, Any] = {
            "type": type_, "id": f"in-{next(self._ids)}", "channelId": "msteams",
            "serviceUrl": self.connector.url, "locale": "en-GB",
            "from": {"id": user.id, "name": user.name, "aadObjectId": user.aad_object_id or None},
            "recipient": {"id": BOT_ID, "name": "Group Supervision"},
            "conversation": {"id": conversation_id, "conversationType": conversation_type,
                             "tenantId": TENANT, "isGroup": conversation_type != "personal"},
            "channelData": {"tenant": {"id": TENANT}},
        }
        if conversation_type == "channel":
            body["channelData"]["team"] = {"id": "team-1"}
            body["channelData"]["channel"] = {"id": conversation_id}
        body.update(extra)
        return body

    async def post(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any]:
        assert self.client is not None
        response = await self.client.post("/api/messages", json=body, headers=headers or {})
        text = await response.text()
        try:
            payload = await response.json() if text else None
        except Exception:
            payload = text
        return response.status, payload

    async def say(self, user: User, text: str, **kw: Any) -> list[Sent]:
        before = len(self.connector.sent)
        status, _ = await self.post(self.activity(user, text=text, textFormat="plain", **kw))
        assert status in (200, 201), status
        return self.connector.sent[before:]

    async def submit(self, user: User, value: dict[str, Any], **kw: Any) -> list[Sent]:
        before = len(self.connector.sent)
        status, _ = await self.post(self.activity(user, value=value, replyToId="card-1", **kw))
        assert status in (200, 201), status
        return self.connector.sent[before:]

    async def execute(self, user: User, verb: str, data: dict[str, Any], **kw: Any) -> tuple[int, Any]:
        value = {"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"}
        return await self.post(self.activity(user, type_="invoke", name="adaptiveCard/action", value=value, **kw))

    async def event(self, user: User, name: str, value: Any, **kw: Any) -> list[Sent]:
        before = len(self.connector.sent)
        status, _ = await self.post(self.activity(user, type_="event", name=name, value=value, **kw))
        assert status in (200, 201), status
        return self.connector.sent[before:]
