"""Replies, proactive sends and card updates straight onto the pool's aiohttp session.

Every activity the bot sends goes ``CloudAdapterBase.send_activities`` ->
``ConnectorClient.conversations.reply_to_activity`` / ``send_to_conversation`` (card updates:
``update_activity``). In botbuilder 4.17.1 / msrest 0.7.1 each call builds a ``ClientRequest``
(URL template, ``Serializer.url`` for each id, ``format_url``), runs it through msrest's async
pipeline - five policy runners, ``Request``/``Response`` wrappers, msrest's aiohttp response with a
``CIMultiDict`` copy of the headers - and reads the answer with msrest's ``Deserializer``: about
0.2 ms of CPU per send beyond the aiohttp request itself (bench/outbound_bench.py), for a POST of a
JSON body and an ``{"id": ...}`` back.

``DirectConversations`` is the client's ``ConversationsOperations`` (bot/connector.py installs it on
every pooled client) whose three hot operations do the same request themselves:

- the same URL (what msrest's ``format_url`` makes of the service URL, computed by it once per
  service URL, then the operation's path with the ids quoted as ``Serializer.url`` quotes a ``str``,
  ``quote(id, safe="")``; ids that ``urljoin`` would rewrite go through ``format_url``), method and headers (Accept,
  Content-Type, x-ms-conversation-id for replies, Content-Length, the client's User-Agent, the
  bearer token);
- the same body: ``self._serialize.body(activity, "Activity")`` (the pooled client's ``WireSerializer``,
  bot/wire.py) and ``json.dumps``, as ``ClientRequest.add_content``;
- the same token and retry behaviour, from the very functions our pipeline's ``BearerPolicy`` and
  ``RetryPolicy`` run (bot/connector.py ``with_bearer`` / ``with_retries``: a fresh token and one more
  try on 401; 429/5xx/connection errors retried with Retry-After; ``CALLER_RETRIES`` honoured);
- every answer decoded as the pipeline's ``RawDeserializer`` decodes it (its own function), so a
  non-JSON error page raises the same ``DeserializationError``;
- the same result: 200/201/202 -> ``ResourceResponse`` (an ``{"id"}`` body read by ``WireReader``,
  an empty body -> ``None``, anything else by msrest's ``Deserializer``); any other status ->
  ``ErrorResponseException`` built by msrest from msrest's response object (``error.response`` is
  the aiohttp response, its ``status`` and ``Retry-After`` what bot/proactive.py reads).

Anything unusual goes to msrest's operation unchanged: custom headers, ``raw=True``, operation
config, an activity that is not an ``Activity`` (a dict: msrest's ``body`` makes it one), ids that
are not ``str``, client-side validation on, HTTP logging on, or a pipeline that is no longer the one
the pool installed. tests/test_hot_path_outbound.py compares both paths request by request on a
loopback connector and pins the operations' URL templates, signatures and status handling.
"""
from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from botframework.connector.aio.operations_async import ConversationsOperations
from botframework.connector.models import ErrorResponseException
from msrest.pipeline.universal import RawDeserializer
from msrest.universal_http import ClientRequest

from bot.connector import TIMEOUT, LoadedResponse, with_bearer, with_retries
from bot.wire import WireReader

if TYPE_CHECKING:
    import aiohttp

    from bot.connector import ConnectorPool

OK_STATUSES = (200, 201, 202)    # what msrest's operations accept for these three
ACTIVITY_URL = "/v3/conversations/{conversationId}/activities/{activityId}"
CONVERSATION_URL = "/v3/conversations/{conversationId}/activities"
ODD_SEGMENTS = ("", ".", "..")     # urljoin drops or resolves these: left to format_url


@functools.lru_cache(maxsize=4096)
def _quoted(value: str) -> str:
    """``Serializer.url(name, value, "str")`` with client-side validation off; a conversation's ids recur."""
    return quote(value, safe="")


class _Answer:
    """One exchange: the aiohttp response (released), its body, and the body as RawDeserializer reads it."""

    __slots__ = ("raw", "body", "data")

    def __init__(self, raw: aiohttp.ClientResponse, body: bytes, data: Any) -> None:
        self.raw, self.body, self.data = raw, body, data


def _status(answer: _Answer) -> int:
    return answer.raw.status


def _retry_after(answer: _Answer) -> str | None:
    return answer.raw.headers.get("Retry-After")


class DirectConversations(ConversationsOperations):  # type: ignore[misc]
    """A pooled client's conversations operations; see the module's docstring."""

    def __init__(self, client: ConnectorClient, pool: ConnectorPool) -> None:
        super().__init__(client._client, client.config, client._serialize, client._deserialize)
        self._pool = pool
        self._pipeline = client.config.pipeline
        self._reader = WireReader(client._deserialize)
        self._base: str | None = None
        self._base_prefix: str | None = None
        self.direct = 0
        self.deferred = 0

    # --- the three hot operations ---------------------------------------------------------------
    async def reply_to_activity(self, conversation_id: Any, activity_id: Any, activity: Any, *,
                                custom_headers: Any = None, raw: bool = False, **operation_config: Any) -> Any:
        if (custom_headers or raw or operation_config or type(activity_id) is not str
                or not self._usual(conversation_id, activity)):
            self.deferred += 1
            return await super().reply_to_activity(conversation_id, activity_id, activity,
                                                   custom_headers=custom_headers, raw=raw, **operation_config)
        return await self._send("POST", self._url(conversation_id, activity_id), activity, conversation_id)

    async def send_to_conversation(self, conversation_id: Any, activity: Any, *, custom_headers: Any = None,
                                   raw: bool = False, **operation_config: Any) -> Any:
        if custom_headers or raw or operation_config or not self._usual(conversation_id, activity):
            self.deferred += 1
            return await super().send_to_conversation(conversation_id, activity, custom_headers=custom_headers,
                                                      raw=raw, **operation_config)
        return await self._send("POST", self._url(conversation_id, None), activity, None)

    async def update_activity(self, conversation_id: Any, activity_id: Any, activity: Any, *,
                              custom_headers: Any = None, raw: bool = False, **operation_config: Any) -> Any:
        if (custom_headers or raw or operation_config or type(activity_id) is not str
                or not self._usual(conversation_id, activity)):
            self.deferred += 1
            return await super().update_activity(conversation_id, activity_id, activity,
                                                 custom_headers=custom_headers, raw=raw, **operation_config)
        return await self._send("PUT", self._url(conversation_id, activity_id), activity, None)

    # msrest's operations read their URL template from the bound method: keep it on ours
    reply_to_activity.metadata = ConversationsOperations.reply_to_activity.metadata  # type: ignore[attr-defined]
    send_to_conversation.metadata = ConversationsOperations.send_to_conversation.metadata  # type: ignore[attr-defined]
    update_activity.metadata = ConversationsOperations.update_activity.metadata  # type: ignore[attr-defined]

    # --- the request ----------------------------------------------------------------------------
    def _usual(self, conversation_id: Any, activity: Any) -> bool:
        config = self.config
        return (type(conversation_id) is str and isinstance(activity, Activity)
                and config.pipeline is self._pipeline and not self._serialize.client_side_validation
                and not config.http_logger_policy.enable_http_logger and self._prefix() is not None)

    def _prefix(self) -> str | None:
        """What msrest's ``format_url`` puts before ``{conversationId}`` for this client's base URL
        (``urljoin(base + "/", "v3/conversations/...")``), computed once per base URL by that function;
        None for a base URL with braces (``format_url`` formats the base URL too: msrest's)."""
        base = self.config.base_url
        if base != self._base:
            self._base, self._base_prefix = base, None
            if "{" not in base and "}" not in base:
                probe = self._client.format_url(CONVERSATION_URL, conversationId="PROBE")
                if probe.endswith("/v3/conversations/PROBE/activities"):
                    self._base_prefix = probe[: -len("PROBE/activities")]
        return self._base_prefix

    def _url(self, conversation_id: str, activity_id: str | None) -> str:
        """msrest's URL: the ids quoted as ``Serializer.url`` quotes a str, joined as ``format_url`` joins
        them - which also drops empty segments and resolves "." and "..", so those ids are left to it."""
        conversation = _quoted(conversation_id)
        activity = None if activity_id is None else _quoted(activity_id)
        if conversation in ODD_SEGMENTS or activity in ODD_SEGMENTS:
            if activity is None:
                return self._client.format_url(CONVERSATION_URL, conversationId=conversation)  # type: ignore[no-any-return]
            return self._client.format_url(ACTIVITY_URL, conversationId=conversation,  # type: ignore[no-any-return]
                                           activityId=activity)
        if activity is None:
            return f"{self._base_prefix}{conversation}/activities"
        return f"{self._base_prefix}{conversation}/activities/{activity}"

    async def _send(self, method: str, url: str, activity: Activity, conversation_header: str | None) -> Any:
        headers = {"Accept": "application/json", "Content-Type": "application/json; charset=utf-8"}
        if conversation_header is not None:
            headers["x-ms-conversation-id"] = conversation_header
        data = json.dumps(self._serialize.body(activity, "Activity"))
        headers["Content-Length"] = str(len(data))
        headers["User-Agent"] = self.config.user_agent_policy.user_agent
        session = self._pool.session()

        async def exchange() -> _Answer:
            raw = await session.request(method, url, headers=dict(headers), data=data, timeout=TIMEOUT)
            try:
                body = await raw.read()
            finally:
                raw.release()
            return _Answer(raw, body, None)

        answer = await with_bearer(self.config.credentials, headers,
                                   lambda: with_retries(exchange, _status, _retry_after), _status)
        # what RawDeserializer.on_response does with the answer kept (it may raise): after the token
        # and retry handling, as in our pipeline, so a 5xx or 401 page that is not JSON is retried first
        answer.data = RawDeserializer.deserialize_from_http_generics(answer.body.decode("utf-8-sig"),
                                                                     answer.raw.headers)
        self.direct += 1
        if answer.raw.status not in OK_STATUSES:
            raise ErrorResponseException(self._deserialize, self._msrest_response(method, url, headers, data, answer))
        if answer.data is None:
            return None
        if type(answer.data) is dict:
            return self._reader("ResourceResponse", answer.data)
        return self._deserialize("ResourceResponse", self._msrest_response(method, url, headers, data, answer))

    @staticmethod
    def _msrest_response(method: str, url: str, headers: dict[str, str], data: str, answer: _Answer) -> Any:
        """The response object msrest's operation would hold (for its exception and deserialiser)."""
        request = ClientRequest(method, url)
        request.headers.update(headers)
        request.data = data
        response = LoadedResponse(request, answer.raw)
        response._body = answer.body
        response.context = {RawDeserializer.CONTEXT_NAME: answer.data}
        return response


def pooled_client(pool: ConnectorPool, service_url: str, credentials: Any, *, direct: bool = True) -> ConnectorClient:
    """A connector client as the pool adopts one (our pipeline, ``WireSerializer``); with msrest's own
    conversations operations when ``direct`` is false. For tests/test_hot_path_outbound.py and
    bench/outbound_bench.py, which compare the two (bench/ does not import the SDK)."""
    client = ConnectorClient(credentials, base_url=service_url)
    pool._adopt(client)
    if not direct:
        client.conversations = ConversationsOperations(client._client, client.config, client._serialize,
                                                       client._deserialize)
    return client
