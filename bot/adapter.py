"""The CloudAdapter, with the small documented adaptations this bot needs at the edge.

1. Authentication runs before the turn, and every rejected token answers 401, never 500
   (botbuilder 4.17.1 lets expired, badly signed or unknown-key tokens escape as 500). A missing
   header is passed on as ``None`` (the SDK's parameterized authentication treats ``""`` as a token
   even when auth is disabled). If the OpenID keys cannot be fetched at all the answer is 503, so
   the channel retries.
   The OpenID metadata and keys are fetched off the event loop (``OpenIdKeys``): 4.17.1 fetches
   them with blocking ``requests`` inside ``authenticate_request`` (first request, then daily), and
   never refreshes on an unknown key id (``_OpenIdMetadata._find`` raises IndexError before its
   refresh-on-miss branch), so a rotated key would be refused for up to a day.
2. Invoke bodies that are plain dicts are serialised as JSON (4.17.1 answers 500:
   ``'dict' object has no attribute 'is_xml_model'``).
3. Malformed requests answer 400/415, not 500.
4. Turn errors reply politely with a correlation id, and log without any message text, so that no
   child or family identifier can reach the log.
5. Outbound clients are pooled (bot/connector.py: ``PooledAuthentication``); ``close()`` at shutdown.
"""
from __future__ import annotations

import asyncio
import json
import logging
import traceback
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
import requests
from aiohttp import web
from botbuilder.core import Bot, MessageFactory, TurnContext
from botbuilder.core.serializer_helper import serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ChannelValidation,
    EmulatorValidation,
    JwtTokenExtractor,
)

from bot.connector import ConnectorPool, PooledAuthentication
from supervision.catalogue import Catalogue

log = logging.getLogger(__name__)


def redacted_traceback(error: BaseException) -> str:
    """Frames and exception type only: no exception message, no locals."""
    frames = traceback.extract_tb(error.__traceback__)
    lines = [f"  {f.filename}:{f.lineno} in {f.name}" for f in frames[-12:]]
    return "\n".join([type(error).__name__, *lines])


def serialise_body(body: Any) -> Any:
    if body is None or isinstance(body, (dict, list, str, int, float, bool)):
        return body
    return serializer_helper(body)


class KeysUnavailable(RuntimeError):
    """The OpenID keys could not be fetched and none are cached: no token can be checked."""


def fetch_signing_keys(metadata_url: str) -> list[dict[str, Any]]:
    """What ``_OpenIdMetadata._refresh`` does, with time-outs, for a worker thread."""
    response = requests.get(metadata_url, timeout=10)
    response.raise_for_status()
    keys = requests.get(response.json()["jwks_uri"], timeout=10)
    keys.raise_for_status()
    return list(keys.json()["keys"])


class OpenIdKeys:
    """Keeps botbuilder's OpenID metadata cache (``JwtTokenExtractor.metadataCache``) filled from a
    worker thread, so ``authenticate_request`` never fetches on the event loop: refreshed when older
    than ``MAX_AGE`` (the SDK refetches after a day), and when a token names a key id we do not
    have (at most every ``MISS_INTERVAL``)."""

    MAX_AGE = timedelta(hours=23)
    MISS_INTERVAL = timedelta(minutes=5)
    RETRY_AFTER_FAILURE = timedelta(minutes=1)

    def __init__(self, channel_url: str | None = None, emulator_url: str | None = None) -> None:
        self._channel_url = channel_url
        self.emulator_url = emulator_url or AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self.refreshes = 0

    @property
    def channel_url(self) -> str:
        """Ours if given, else where the SDK's public-cloud channel validation looks."""
        return (self._channel_url or ChannelValidation.open_id_metadata_endpoint
                or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL)

    async def ensure(self, auth_header: str | None) -> None:
        parts = (auth_header or "").split(" ")
        if len(parts) != 2 or parts[0] != "Bearer" or not parts[1]:
            return  # the SDK refuses it without looking at keys
        try:
            kid = jwt.get_unverified_header(parts[1]).get("kid")
            from_emulator = EmulatorValidation.is_token_from_emulator(auth_header)
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
            return  # malformed: refused by the SDK
        url = self.emulator_url if from_emulator else self.channel_url
        metadata = JwtTokenExtractor.get_open_id_metadata(url)
        now = datetime.now()  # naive local time, as the SDK compares
        stale = metadata.last_updated < now - self.MAX_AGE
        unknown = bool(kid) and not any(k.get("kid") == kid for k in metadata.keys or [])
        if stale or (unknown and metadata.last_updated < now - self.MISS_INTERVAL):
            task = self._refreshing.get(url)
            if task is None or task.done():
                task = self._refreshing[url] = asyncio.get_running_loop().create_task(self._refresh(metadata))
            await asyncio.shield(task)
        if not metadata.keys:
            raise KeysUnavailable(url)

    async def _refresh(self, metadata: Any) -> None:
        try:
            keys = await asyncio.to_thread(fetch_signing_keys, metadata.url)
        except (requests.RequestException, ValueError, KeyError) as error:
            log.warning("could not fetch the OpenID signing keys: %s", type(error).__name__)
            if metadata.keys:  # keep the keys we have; stop the SDK refetching on the loop
                metadata.last_updated = datetime.now() - timedelta(days=1) + self.RETRY_AFTER_FAILURE
            return
        metadata.keys, metadata.last_updated = keys, datetime.now()
        self.refreshes += 1


class SupervisionAdapter(CloudAdapter):
    def __init__(self, auth: BotFrameworkAuthentication, language: str = "en", *,
                 openid_metadata_url: str | None = None, pool: ConnectorPool | None = None,
                 check_keys: bool = True) -> None:
        self.pool = pool or ConnectorPool()
        super().__init__(PooledAuthentication(auth, self.pool))
        self.keys = OpenIdKeys(openid_metadata_url) if check_keys else None
        self.language = language
        self.on_turn_error = self._on_turn_error  # type: ignore[assignment]

    async def close(self) -> None:
        await self.pool.close()

    async def _on_turn_error(self, context: TurnContext, error: Exception) -> None:
        correlation_id = uuid.uuid4().hex[:12]
        activity = context.activity
        log.error("turn failed correlation_id=%s activity_type=%s conversation_type=%s\n%s",
                  correlation_id, activity.type,
                  getattr(activity.conversation, "conversation_type", None) if activity.conversation else None,
                  redacted_traceback(error))
        t = Catalogue.for_language(activity.locale or self.language)
        try:
            if activity.type == "message" or activity.type == "invoke":
                await context.send_activity(MessageFactory.text(t("error.turn", correlation_id=correlation_id)))
        except Exception as send_error:  # the channel itself may be what failed
            log.error("could not tell the user about correlation_id=%s: %s", correlation_id,
                      type(send_error).__name__)

    async def handle(self, request: web.Request, bot: Bot) -> web.Response:
        if request.method != "POST":
            return web.Response(status=405)
        if request.content_type != "application/json":
            return web.Response(status=415)
        try:
            body = await request.json()
            activity = Activity().deserialize(body)
        except (ValueError, TypeError, json.JSONDecodeError):
            return web.Response(status=400, text="the body is not an activity")
        if not isinstance(body, dict) or not activity.type:
            return web.Response(status=400, text="the activity has no type")
        auth_header = request.headers.get("Authorization") or None
        try:
            if self.keys is not None:
                await self.keys.ensure(auth_header)
            auth_result = await self.bot_framework_authentication.authenticate_request(activity, auth_header)
        except (KeysUnavailable, requests.RequestException) as error:
            log.error("cannot check tokens, OpenID keys unavailable: %s", type(error).__name__)
            return web.Response(status=503, headers={"Retry-After": "5"})
        except Exception as error:  # every rejected or unverifiable token is a 401
            log.warning("rejected request: %s", type(error).__name__)
            return web.Response(status=401)
        invoke_response = await self.process_activity(auth_result, activity, bot.on_turn)
        if invoke_response:
            return web.json_response(data=serialise_body(invoke_response.body), status=invoke_response.status)
        return web.Response(status=200)
