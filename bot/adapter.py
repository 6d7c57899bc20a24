"""The CloudAdapter, with the small documented adaptations this bot needs at the edge.

1. Authentication runs before the turn, and every rejected token answers 401, never 500
   (botbuilder 4.17.1 lets expired, badly signed or unknown-key tokens escape as 500). A missing
   header is passed on as ``None`` (the SDK's parameterized authentication treats ``""`` as a token
   even when auth is disabled). If the OpenID keys cannot be fetched at all the answer is 503, so
   the channel retries. The keys are fetched off the event loop, and a token the SDK has accepted
   is not re-validated for every activity (bot/credentials_inbound.py).
2. Invoke bodies that are plain dicts are serialised as JSON (4.17.1 answers 500:
   ``'dict' object has no attribute 'is_xml_model'``).
3. Malformed requests answer 400/415, not 500.
4. Turn errors reply politely with a correlation id, and log without any message text, so that no
   child or family identifier can reach the log.
5. Outbound clients are pooled (bot/connector.py: ``PooledAuthentication``); ``close()`` at shutdown.
   Turn contexts are ``LeanTurnContext`` (bot/lean_context.py): outgoing activities shallow-copied.
6. ``freeze_startup_heap``: a serving process imports ~2,000 modules (botbuilder, msrest, the
   dialogs' recognizers, matplotlib, openpyxl...), some 280,000 objects the cyclic garbage collector
   would walk on every full collection - a 20-50 ms pause of the event loop each time. Frozen once
   at start-up (``gc.freeze``), full collections only walk what the turns create. And the young
   generation may grow to 10,000 objects before it is collected (Python's default: 700): turns leave
   no cyclic garbage (tests/test_hot_path_context.py), but 32 turns in flight hold more than 700
   live objects between them, so with the default the collector ran ~240 times a second at c=32 and
   found nothing - 35 us of every activity, 5% of the bot's CPU (bench/README.md, fourth round).
"""
from __future__ import annotations

import gc
import json
import logging
import traceback
import uuid
from typing import Any

import requests
from aiohttp import web
from botbuilder.core import Bot, MessageFactory, TurnContext
from botbuilder.core.serializer_helper import serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity
from botframework.connector.auth import BotFrameworkAuthentication
from msrest import Deserializer

from bot.connector import ConnectorPool, PooledAuthentication
from bot.credentials_inbound import AcceptedTokens, KeysUnavailable, OpenIdKeys
from bot.lean_context import LeanTurnContext
from bot.wire import WireReader
from storage import jsonio
from supervision.catalogue import Catalogue

log = logging.getLogger(__name__)

# What ``Activity().deserialize(body)`` does, without rebuilding the schema's model table and its
# Deserializer for every request (msrest ``Model.deserialize``), and from a per-class plan
# (bot/wire.py ``WireReader``: the same result, msrest's own code for any unusual value).
ACTIVITY_DESERIALIZER = WireReader(Deserializer(Activity._infer_class_models()))


def redacted_traceback(error: BaseException) -> str:
    """Frames and exception type only: no exception message, no locals."""
    frames = traceback.extract_tb(error.__traceback__)
    lines = [f"  {f.filename}:{f.lineno} in {f.name}" for f in frames[-12:]]
    return "\n".join([type(error).__name__, *lines])


def serialise_body(body: Any) -> Any:
    if body is None or isinstance(body, (dict, list, str, int, float, bool)):
        return body
    return serializer_helper(body)


YOUNG_GENERATION_THRESHOLD = 10_000


def freeze_startup_heap() -> None:
    """Move everything alive at start-up out of the collector's reach, and let the young generation
    hold what the turns in flight keep alive (see 6. above)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)


class SupervisionAdapter(CloudAdapter):
    def __init__(self, auth: BotFrameworkAuthentication, language: str = "en", *,
                 openid_metadata_url: str | None = None, pool: ConnectorPool | None = None,
                 check_keys: bool = True) -> None:
        self.pool = pool or ConnectorPool()
        super().__init__(PooledAuthentication(auth, self.pool))
        self.tokens = AcceptedTokens()
        self.keys = OpenIdKeys(openid_metadata_url, on_refresh=self.tokens.clear) if check_keys else None
        self.language = language
        self.on_turn_error = self._on_turn_error  # type: ignore[assignment]

    async def close(self) -> None:
        await self.pool.close()

    def _create_turn_context(self, *args: Any, **kwargs: Any) -> TurnContext:
        """The SDK's turn context, as a ``LeanTurnContext`` (no deep copy of each outgoing activity)."""
        context = super()._create_turn_context(*args, **kwargs)
        if type(context) is TurnContext:
            context.__class__ = LeanTurnContext
        return context

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
            body = await request.json(loads=jsonio.loads)
            activity = ACTIVITY_DESERIALIZER("Activity", body)
        except (ValueError, TypeError, json.JSONDecodeError):
            return web.Response(status=400, text="the body is not an activity")
        if not isinstance(body, dict) or not activity.type:
            return web.Response(status=400, text="the activity has no type")
        auth_header = request.headers.get("Authorization") or None
        try:
            auth_result = self.tokens.get(auth_header, activity)
            if auth_result is None:
                if self.keys is not None:
                    await self.keys.ensure(auth_header)
                auth_result = await self.bot_framework_authentication.authenticate_request(activity, auth_header)
                self.tokens.remember(auth_header, activity, auth_result)
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
