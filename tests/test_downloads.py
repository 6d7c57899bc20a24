"""Signed download links served by the bot: a link works for its file, expires, cannot be altered,
re-checks access when used, and every download (and refusal) is in the audit log."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlparse

import pytest

from bot.downloads import MAX_TTL, DownloadRequest, Downloads, FileBody
from storage.memory import MemoryStore
from supervision.errors import Forbidden
from supervision.repository import AuditLog
from supervision.roles import Actor
from tests.support.harness import BotHarness


async def _actor(user_id: str) -> Actor:
    return Actor(user_id=user_id)


def _downloads(store: MemoryStore, clock, key: bytes | None = b"k" * 32) -> Downloads:
    downloads = Downloads(store, AuditLog(store, clock), clock, _actor, "https://bot.example.org/", key=key)

    async def provide(request: DownloadRequest) -> FileBody:
        if request.actor.user_id == "user-revoked":
            raise Forbidden("gone")
        return FileBody(f"{request.arg or 'file'}.txt", "text/plain", f"for {request.actor.user_id}".encode())

    downloads.register("test.file", provide)
    return downloads


async def test_tokens_bind_user_case_kind_and_expiry(store, clock):
    downloads = _downloads(store, clock)
    url = await downloads.link(user_id="user-a", case_id="case-1", kind="test.file", arg="x", ttl=timedelta(minutes=5))
    assert url.startswith("https://bot.example.org/downloads/")
    grant = await downloads.verify(urlparse(url).path.rsplit("/", 1)[1])
    assert (grant.user_id, grant.case_id, grant.kind, grant.arg) == ("user-a", "case-1", "test.file", "x")
    assert grant.expires == clock.now() + timedelta(minutes=5)
    with pytest.raises(ValueError):
        await downloads.link(user_id="user-a", case_id="case-1", kind="no.such.kind")
    long = await downloads.verify(await downloads.token(user_id="u", case_id="c", kind="test.file",
                                                        ttl=timedelta(days=400)))
    assert long.expires == clock.now() + MAX_TTL == clock.now() + timedelta(days=45)      # capped


async def test_a_key_made_once_is_shared_through_the_store(store, clock):
    first, second = _downloads(store, clock, key=None), _downloads(store, clock, key=None)
    token = await first.token(user_id="u", case_id="c", kind="test.file")
    assert (await second.verify(token)).user_id == "u"                # another instance accepts it


async def _serve(harness: BotHarness, path: str):
    assert harness.client is not None
    response = await harness.client.get(path)
    return response.status, await response.read(), response.headers


@pytest.fixture
def registered(harness: BotHarness):
    downloads: Downloads = harness.parts.services.downloads

    async def provide(request: DownloadRequest) -> FileBody:
        if request.actor.user_id == "user-revoked":
            raise Forbidden("gone")
        return FileBody("hello.txt", "text/plain", f"for {request.actor.user_id} case {request.case_id}".encode())

    downloads.register("test.file", provide)
    return downloads


async def _path(downloads: Downloads, **kw) -> str:
    return urlparse(await downloads.link(**kw)).path


async def test_a_link_serves_its_file_and_is_audited(harness: BotHarness, registered: Downloads):
    path = await _path(registered, user_id="user-a", case_id="case-1", kind="test.file")
    status, body, headers = await _serve(harness, path)
    assert status == 200 and body == b"for user-a case case-1"
    assert headers["Content-Disposition"] == 'attachment; filename="hello.txt"'
    assert headers["Cache-Control"] == "private, no-store"
    audit = await harness.parts.services.audit.entries("case-1")
    assert [(e["actor"], e["action"], e["what"], e["allowed"]) for e in audit] == [
        ("user-a", "download", "test.file", True)]


async def test_an_expired_link_answers_410_and_is_audited(harness: BotHarness, registered: Downloads, clock):
    path = await _path(registered, user_id="user-a", case_id="case-1", kind="test.file", ttl=timedelta(minutes=10))
    clock.advance(minutes=9, seconds=59)
    assert (await _serve(harness, path))[0] == 200
    clock.advance(seconds=1)
    status, body, _ = await _serve(harness, path)
    assert status == 410 and b"expired" in body
    refused = [e for e in await harness.parts.services.audit.entries("case-1") if not e["allowed"]]
    assert [(e["actor"], e["why"]) for e in refused] == [("user-a", "link expired")]


async def test_a_tampered_link_answers_403(harness: BotHarness, registered: Downloads):
    token = await registered.token(user_id="user-a", case_id="case-1", kind="test.file")
    payload, signature = token.split(".")
    import base64
    import json

    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["c"] = "case-2"                                              # someone else's case
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    flipped = signature[:10] + ("B" if signature[10] == "A" else "A") + signature[11:]
    look_alike = signature[:-1] + chr(ord(signature[-1]) ^ 1)      # same bytes or not: never accepted
    assert flipped != signature and look_alike != signature
    for bad in (f"{forged}.{signature}", f"{payload}.{flipped}", "garbage", f"{payload}.", f"{payload}.{look_alike}"):
        status, _, _ = await _serve(harness, f"/downloads/{bad}")
        assert status == 403, bad
    audit = await harness.parts.services.audit.entries()
    assert sum(1 for e in audit if e["action"] == "download" and not e["allowed"]) == 5
    assert not any(e["case_id"] == "case-2" for e in audit)


async def test_access_is_checked_again_when_the_link_is_used(harness: BotHarness, registered: Downloads):
    path = await _path(registered, user_id="user-revoked", case_id="case-1", kind="test.file")
    status, _, _ = await _serve(harness, path)
    assert status == 403
    audit = await harness.parts.services.audit.entries("case-1")
    assert [(e["actor"], e["allowed"], e["why"]) for e in audit] == [("user-revoked", False, "no longer allowed")]
