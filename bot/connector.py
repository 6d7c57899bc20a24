"""Outbound calls to the Bot Connector: one connector client per (app id, service URL, audience),
sent over one aiohttp session with connection reuse, signed with the shared cached token.

Works around botbuilder 4.17.1 (each behaviour is pinned by tests/test_hot_path.py):

- ``CloudAdapterBase.process_activity`` asks the connector factory for a new ``ConnectorClient``
  and the authentication for a new user-token client on every turn; each one is a msrest client
  whose configuration builds ``ClientRetryPolicy`` (a 999-item status list) - most of the CPU of a
  turn.
- The msrest default pipeline sends with ``requests`` in a worker thread, a new TCP connection per
  client (so per turn), after signing synchronously on the event loop.

``PooledAuthentication`` wraps the configured ``BotFrameworkAuthentication``: inbound authentication
is untouched (the SDK validates every token), only the connector factory and user-token client it
hands the adapter are replaced by pooled ones. A pooled client is still the SDK's ``ConnectorClient``
(same operations, models and serialisation); only its pipeline is ours: user agent, bearer token
from ``CachedAppCredentials.token()``, a small retry for 429/5xx, and an aiohttp sender. Its
``conversations`` operations send replies, proactive messages and updates without the pipeline,
with the same token and retry functions (bot/outbound.py ``DirectConversations``).
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

import aiohttp
from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
    UserTokenClient,
)
from botframework.connector.skills import BotFrameworkClient
from msrest.pipeline import AsyncHTTPPolicy, AsyncHTTPSender, AsyncPipeline, Request, Response
from msrest.pipeline.universal import RawDeserializer
from msrest.universal_http.aiohttp import AioHttpClientResponse

from bot.credentials import CachedAppCredentials
from bot.wire import WireSerializer

log = logging.getLogger(__name__)
R = TypeVar("R")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Set by a caller that paces and retries itself (bot/proactive.py: Teams rate limits, Retry-After,
# permanent 403/404): this pipeline then sends once and hands every status back.
CALLER_RETRIES: contextvars.ContextVar[bool] = contextvars.ContextVar("caller_retries", default=False)
MAX_ATTEMPTS = 3
MAX_RETRY_AFTER = 10.0
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)


def app_id_of(claims_identity: ClaimsIdentity) -> str:
    """As the SDK's ``_BuiltinBotFrameworkAuthentication.get_app_id``: aud, else appid."""
    claims = claims_identity.claims or {}
    return str(claims.get(AuthenticationConstants.AUDIENCE_CLAIM)
               or claims.get(AuthenticationConstants.APP_ID_CLAIM) or "")


class SessionSender(AsyncHTTPSender):  # type: ignore[misc]
    """msrest pipeline sender over the pool's shared aiohttp session (keep-alive connections)."""

    def __init__(self, pool: ConnectorPool) -> None:
        self.pool = pool

    async def __aenter__(self) -> SessionSender:
        return self

    async def __aexit__(self, *exc_details: Any) -> None:
        return None

    def build_context(self) -> None:
        return None

    async def send(self, request: Request, **config: Any) -> Response:
        http_request = request.http_request
        raw = await self.pool.session().request(http_request.method, http_request.url,
                                                headers=dict(http_request.headers),
                                                data=http_request.data, timeout=TIMEOUT)
        response = LoadedResponse(http_request, raw)
        try:
            await response.load_body()
        finally:
            raw.release()
        return Response(request, response)


class LoadedResponse(AioHttpClientResponse):  # type: ignore[misc]
    """msrest's aiohttp response whose loaded body may be empty. msrest 0.7.1 ``body()`` treats an
    empty body (b"") as not loaded and raises ValueError, so a channel answering 202 with no body
    (the Agents Playground does, to a typing indicator) failed the whole turn."""

    def body(self) -> bytes:
        if self._body is None:
            return super().body()  # type: ignore[no-any-return]
        return self._body  # type: ignore[no-any-return]


class BearerPolicy(AsyncHTTPPolicy):  # type: ignore[misc]
    """Adds the cached token; on a 401 from the channel, fetches a fresh one and tries once more."""

    def __init__(self, credentials: Any) -> None:
        super().__init__()
        self.credentials = credentials

    async def send(self, request: Request, **kwargs: Any) -> Response:
        nxt = self.next
        assert nxt is not None
        return await with_bearer(self.credentials, request.http_request.headers,
                                 lambda: nxt.send(request, **kwargs), _pipeline_status)


class RetryPolicy(AsyncHTTPPolicy):  # type: ignore[misc]
    """A throttled or failing channel (429, 5xx, connection error) is tried again, up to three
    attempts, honouring Retry-After (as msrest's requests retry did)."""

    async def send(self, request: Request, **kwargs: Any) -> Response:
        nxt = self.next
        assert nxt is not None
        return await with_retries(lambda: nxt.send(request, **kwargs), _pipeline_status,
                                  lambda response: response.http_response.headers.get("Retry-After"))


def _pipeline_status(response: Response) -> int:
    return int(response.http_response.status_code)


async def with_bearer(credentials: Any, headers: MutableMapping[str, str], send: Callable[[], Awaitable[R]],
                      status: Callable[[R], int]) -> R:
    """``send()`` with the cached token in ``headers``; on a 401, a fresh token and one more try.
    Anonymous credentials (no app id): no token. (``BearerPolicy``, and bot/outbound.py.)"""
    if not isinstance(credentials, CachedAppCredentials):
        return await send()
    headers["Authorization"] = f"Bearer {await credentials.token()}"
    response = await send()
    if status(response) == 401:
        headers["Authorization"] = f"Bearer {await credentials.token(force_refresh=True)}"
        response = await send()
    return response


async def with_retries(send: Callable[[], Awaitable[R]], status: Callable[[R], int],
                       retry_after: Callable[[R], str | None]) -> R:
    """``send()`` again on 429/5xx or a connection error, up to ``MAX_ATTEMPTS``, waiting Retry-After;
    once only when the caller retries itself (``CALLER_RETRIES``). (``RetryPolicy``, and bot/outbound.py.)"""
    if CALLER_RETRIES.get():
        return await send()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            response = await send()
        except (TimeoutError, aiohttp.ClientConnectionError):
            if attempt == MAX_ATTEMPTS:
                raise
            await asyncio.sleep(0.5 * attempt)
            continue
        if status(response) not in RETRY_STATUSES or attempt == MAX_ATTEMPTS:
            return response
        await asyncio.sleep(_retry_after(retry_after(response), attempt))
    raise AssertionError("unreachable")


def _retry_after(value: str | None, attempt: int) -> float:
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value else 0.5 * attempt
    except ValueError:
        return 0.5 * attempt


class ConnectorPool:
    """Connector clients by (app id, service URL, audience), user-token clients by app id, and the
    aiohttp session they all send on. ``close()`` at shutdown."""

    def __init__(self, *, limit_per_host: int = 64) -> None:
        self.limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[tuple[str, str, str], ConnectorClient] = {}
        self._token_clients: dict[str, UserTokenClient] = {}
        self.created = 0

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=self.limit_per_host,
                                             keepalive_timeout=60)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def client(self, app_id: str, service_url: str, audience: str | None,
                     inner: ConnectorFactory) -> ConnectorClient:
        key = (app_id, service_url, audience or "")
        found = self._clients.get(key)
        if found is None:
            made = await inner.create(service_url, audience)
            self._adopt(made)
            found = self._clients.setdefault(key, made)
        return found

    def _adopt(self, client: ConnectorClient) -> None:
        """Keep the SDK client, swap its pipeline for ours. Client-side validation of outgoing
        activities is off: the schema's models declare no constraints to check, and it costs a
        third of serialising each reply. Bodies are serialised by ``WireSerializer``."""
        client._serialize.client_side_validation = False
        # request bodies (replies, updates) written by bot/wire.py's WireWriter: msrest's result,
        # without body()'s deserialising pass and per-value lookups; the operations share this object
        client._serialize.__class__ = WireSerializer
        config = client.config
        # RawDeserializer outside BearerPolicy and RetryPolicy: only the answer that is kept is decoded,
        # so a channel's non-JSON page (a gateway's HTML 502, a 401) is retried, not a decoding error
        config.pipeline = AsyncPipeline(
            [config.user_agent_policy, RawDeserializer(), BearerPolicy(config.credentials), RetryPolicy(),
             config.http_logger_policy],
            SessionSender(self))
        # replies, proactive sends and updates go straight onto the session (bot/outbound.py); every
        # other operation, and anything unusual, through the pipeline above
        from bot.outbound import DirectConversations  # bot/outbound.py builds on this module

        client.conversations = DirectConversations(client, self)
        self.created += 1

    async def user_token_client(self, app_id: str, make: Any) -> UserTokenClient:
        found = self._token_clients.get(app_id)
        if found is None:
            found = self._token_clients.setdefault(app_id, await make())
        return found

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


class PooledConnectorFactory(ConnectorFactory):
    def __init__(self, pool: ConnectorPool, inner: ConnectorFactory, app_id: str) -> None:
        self.pool, self.inner, self.app_id = pool, inner, app_id

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        return await self.pool.client(self.app_id, service_url, audience, self.inner)


class PooledAuthentication(BotFrameworkAuthentication):
    """The configured authentication, with pooled outbound clients. Inbound checks are the SDK's."""

    def __init__(self, inner: BotFrameworkAuthentication, pool: ConnectorPool | None = None) -> None:
        self.inner = inner
        self.pool = pool or ConnectorPool()

    async def authenticate_request(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        result = await self.inner.authenticate_request(activity, auth_header)
        if result.connector_factory is not None:
            result.connector_factory = PooledConnectorFactory(self.pool, result.connector_factory,
                                                              app_id_of(result.claims_identity))
        return result

    async def authenticate_streaming_request(self, auth_header: str,
                                             channel_id_header: str) -> AuthenticateRequestResult:
        return await self.inner.authenticate_streaming_request(auth_header, channel_id_header)

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return PooledConnectorFactory(self.pool, self.inner.create_connector_factory(claims_identity),
                                      app_id_of(claims_identity))

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        return await self.pool.user_token_client(
            app_id_of(claims_identity), lambda: self.inner.create_user_token_client(claims_identity))

    def create_bot_framework_client(self) -> BotFrameworkClient:
        return self.inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return self.inner.get_originating_audience()

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        return await self.inner.authenticate_channel_request(auth_header)
