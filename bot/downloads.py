"""Short-lived signed download links, served by the bot itself at ``GET /downloads/{token}``.

Any feature can offer a file (a template, a document, a picture for a card) without storing it
anywhere public:

1. Register a provider once, in the feature's ``register(router, services)``::

       async def provide(request: DownloadRequest) -> FileBody:
           # request.actor is the person the link was made for, with their roles as of now;
           # check them through your use case (raise Forbidden / NotFound to refuse)
           return FileBody("chronology.docx", DOCX_TYPE, content)

       services.downloads.register("chronology.docx", provide)

2. Make a link for one person, one case and one file, and put it in their card::

       url = await services.downloads.link(user_id=turn.actor.user_id, case_id=case.id,
                                           kind="chronology.docx", arg="", ttl=timedelta(hours=1))

The token is ``base64url(JSON payload) "." base64url(HMAC-SHA256(key, payload))``; the payload
binds the user, the case, the kind of file, an optional argument and the expiry. A tampered token
answers 403, an expired one 410, an unknown kind 404. Every download and every refusal is written to
the audit log (action ``download``) under the user the link was made for. The provider runs at
download time, so the file is always current and the user's access is checked again.

The signing key is the configuration's ``DOWNLOAD_SIGNING_KEY`` when set; otherwise one random key
is created once and kept in the document store (collection ``bot_keys``), so every instance of the
bot signs and checks alike and links survive a restart.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from supervision.clock import Clock
from supervision.errors import DomainError, Forbidden, NotFound, VersionConflict
from supervision.ports import DocumentStore
from supervision.repository import AuditLog
from supervision.roles import Actor

log = logging.getLogger(__name__)
KEYS = "bot_keys"
KEY_NAME = "download_signing_key"
DEFAULT_TTL = timedelta(hours=1)
# The cap on any link's life. Invitation .ics links last until the session's end plus a day
# (dialogs/schedule.py ics_ttl), and a session may be 15 working days (about 3 weeks) after agreement.
MAX_TTL = timedelta(days=45)
ROUTE = "/downloads/{token}"


@dataclass(frozen=True)
class FileBody:
    filename: str
    content_type: str
    content: bytes
    inline: bool = False          # images shown in cards are served inline


@dataclass(frozen=True)
class DownloadRequest:
    actor: Actor
    case_id: str
    kind: str
    arg: str


@dataclass(frozen=True)
class Grant:
    user_id: str
    case_id: str
    kind: str
    arg: str
    expires: datetime


Provider = Callable[[DownloadRequest], Awaitable[FileBody]]
ActorLookup = Callable[[str], Awaitable[Actor]]


class BadToken(ValueError):
    pass


class ExpiredToken(ValueError):
    def __init__(self, grant: Grant) -> None:
        super().__init__("expired")
        self.grant = grant


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Downloads:
    def __init__(self, store: DocumentStore, audit: AuditLog, clock: Clock, actor_for: ActorLookup,
                 base_url: str, key: bytes | str | None = None) -> None:
        if isinstance(key, str):
            key = key.encode() if key else None
        self.store, self.audit, self.clock, self.actor_for = store, audit, clock, actor_for
        self.base_url = base_url.rstrip("/")
        self._key = key
        self.providers: dict[str, Provider] = {}

    def register(self, kind: str, provider: Provider) -> None:
        if kind in self.providers:
            raise ValueError(f"download kind {kind!r} registered twice")
        self.providers[kind] = provider

    async def key(self) -> bytes:
        if self._key is None:
            self._key = await self._stored_key()
        return self._key

    async def _stored_key(self) -> bytes:
        stored = await self.store.get(KEYS, KEY_NAME)
        if stored is None:
            try:
                await self.store.put(KEYS, KEY_NAME, {"key": secrets.token_urlsafe(48)}, create_only=True)
            except VersionConflict:
                pass          # another instance made it first: use theirs
            stored = await self.store.get(KEYS, KEY_NAME)
        assert stored is not None
        return str(stored.data["key"]).encode()

    # making links ------------------------------------------------------------------------------------
    async def token(self, *, user_id: str, case_id: str, kind: str, arg: str = "",
                    ttl: timedelta = DEFAULT_TTL) -> str:
        if kind not in self.providers:
            raise ValueError(f"no download kind {kind!r}")
        if not user_id:
            raise ValueError("a link is made for one user")
        ttl = min(ttl, MAX_TTL)
        expires = int((self.clock.now() + ttl).timestamp())
        payload = json.dumps({"u": user_id, "c": case_id, "k": kind, "a": arg, "e": expires},
                             separators=(",", ":"), sort_keys=True).encode()
        signature = hmac.new(await self.key(), payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(signature)}"

    async def link(self, *, user_id: str, case_id: str, kind: str, arg: str = "",
                   ttl: timedelta = DEFAULT_TTL) -> str:
        token = await self.token(user_id=user_id, case_id=case_id, kind=kind, arg=arg, ttl=ttl)
        return f"{self.base_url}/downloads/{quote(token)}"

    # checking and serving ------------------------------------------------------------------------------
    async def verify(self, token: str) -> Grant:
        try:
            encoded, signature = token.split(".", 1)
            payload, given = _unb64(encoded), _unb64(signature)
        except (ValueError, binascii.Error):
            raise BadToken("malformed") from None
        if _b64(payload) != encoded or _b64(given) != signature:
            raise BadToken("not in canonical form")     # one token, one spelling: no look-alike links
        expected = hmac.new(await self.key(), payload, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, given):
            raise BadToken("bad signature")
        try:
            data = json.loads(payload)
            grant = Grant(user_id=str(data["u"]), case_id=str(data["c"]), kind=str(data["k"]), arg=str(data["a"]),
                          expires=datetime.fromtimestamp(int(data["e"]), tz=self.clock.now().tzinfo))
        except (ValueError, KeyError, TypeError):
            raise BadToken("bad payload") from None
        if self.clock.now() >= grant.expires:
            raise ExpiredToken(grant)
        return grant

    async def handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info.get("token", "")
        try:
            grant = await self.verify(token)
        except ExpiredToken as expired:
            g = expired.grant
            await self.audit.record(actor=g.user_id, action="download", case_id=g.case_id, what=g.kind,
                                    why="link expired", allowed=False)
            return web.Response(status=410, text="This link has expired. Ask the bot for a new one.")
        except BadToken:
            await self.audit.record(actor="unknown", action="download", what="(invalid link)",
                                    why="signature or format invalid", allowed=False)
            return web.Response(status=403, text="This link is not valid.")
        provider = self.providers.get(grant.kind)
        if provider is None:
            return web.Response(status=404, text="No such file.")
        actor = await self.actor_for(grant.user_id)
        try:
            body = await provider(DownloadRequest(actor=actor, case_id=grant.case_id, kind=grant.kind,
                                                  arg=grant.arg))
        except Forbidden:
            await self.audit.record(actor=grant.user_id, action="download", case_id=grant.case_id,
                                    what=grant.kind, why="no longer allowed", allowed=False)
            return web.Response(status=403, text="You no longer have access to this file.")
        except NotFound:
            return web.Response(status=404, text="No such file.")
        except DomainError as error:
            log.info("download %s refused: %s", grant.kind, error.key)
            return web.Response(status=409, text="This file is not available now.")
        await self.audit.record(actor=grant.user_id, action="download", case_id=grant.case_id,
                                what=f"{grant.kind} {grant.arg}".strip(), why="signed link")
        disposition = "inline" if body.inline else "attachment"
        safe_name = "".join(ch for ch in body.filename if ch.isalnum() or ch in "._- ") or "download"
        return web.Response(body=body.content, headers={
            "Content-Type": body.content_type,
            "Content-Disposition": f'{disposition}; filename="{safe_name}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        })


def people_actor_lookup(services: Any) -> ActorLookup:
    """Build the Actor a link was made for from the people directory (name, email) and the roles
    configuration, as a turn would."""

    async def lookup(user_id: str) -> Actor:
        known = await services.people.get(user_id) if services.people is not None else None
        return services.actor(user_id, known.name if known else "", email=known.email if known else "",
                              aad_object_id=known.aad_object_id if known else "")

    return lookup


def public_base_url(config: Any) -> str:
    """Where people's clients reach the bot: PUBLIC_URL when set, else the local address."""
    return str(getattr(config, "public_url", "") or f"http://{config.host}:{config.port}")
