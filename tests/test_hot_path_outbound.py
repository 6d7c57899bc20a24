"""bot/outbound.py: replies, proactive sends and updates sent straight onto the pool's aiohttp session
make the same requests and give the same results and errors as msrest's operations through our
pipeline (botbuilder 4.17.1 / msrest 0.7.1); and the SDK code they stand in for is pinned, so an
upgrade that changes it fails here.

The tests run both paths, one after the other, against a loopback Bot Connector that records every
request as it arrived (method, raw path, headers, body bytes) and answers from a script. All tests
here are synchronous and share one event loop and one connector (hypothesis drives some of them).
"""
from __future__ import annotations

import asyncio
import copy
import inspect
import json
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from botbuilder.core import CloudAdapterBase, MessageFactory, TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    CardAction,
    ChannelAccount,
    ConversationAccount,
    Entity,
    HeroCard,
    Mention,
    ResourceResponse,
)
from botframework.connector.aio.operations_async import ConversationsOperations
from botframework.connector.auth import MicrosoftAppCredentials
from botframework.connector.models import ErrorResponseException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msrest import Serializer
from msrest.exceptions import DeserializationError
from msrest.pipeline.universal import RawDeserializer, UserAgentPolicy
from msrest.universal_http import ClientRequest

import bot.connector as connector_module
from bot.connector import CALLER_RETRIES, MAX_ATTEMPTS, RETRY_STATUSES, ConnectorPool
from bot.credentials import CachedAppCredentials
from bot.outbound import ACTIVITY_URL, CONVERSATION_URL, DirectConversations, pooled_client
from bot.proactive import retry_after_of, status_of

APP_ID = "00000000-0000-0000-0000-00000000b07"
DROP = "drop"       # script entry: close the connection without answering


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def ok(activity_id: str = "reply-1", **extra: Any) -> Answer:
    return Answer(200, json.dumps({"id": activity_id, **extra}).encode())


class Channel:
    """A loopback Bot Connector: records each request, answers from ``script`` (default: 200 {"id"})."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.script: deque[Answer | str] = deque()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Seen(request.method, request.raw_path, dict(request.headers), await request.read()))
        answer = self.script.popleft() if self.script else ok(f"act-{len(self.requests)}")
        if answer == DROP:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        assert isinstance(answer, Answer)
        headers = dict(answer.headers)
        if answer.content_type:
            headers["Content-Type"] = answer.content_type
        response = web.Response(status=answer.status, body=answer.body, headers=headers)
        if not answer.content_type:
            response.headers.pop("Content-Type", None)
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]


class ScriptedToken(MicrosoftAppCredentials):
    """The SDK's credentials, its token from a list (then ``fresh-N``): what CachedAppCredentials asks."""

    def __init__(self) -> None:
        super().__init__(APP_ID, "not-a-secret")
        self.asked: list[bool] = []

    def get_access_token(self, force_refresh: bool = False) -> str:
        self.asked.append(force_refresh)
        return "stale" if len(self.asked) == 1 else f"fresh-{len(self.asked)}"


class Rig:
    """One loop in a thread, one channel, one pool; ``run`` runs a coroutine on that loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.channel = Channel()
        self.pool = ConnectorPool()
        self.run(self.channel.start())
        self.sent: list[tuple[str, str, dict[str, str], Any]] = []
        self._wrap_session()

    def run(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)  # type: ignore[arg-type]

    def _wrap_session(self) -> None:
        """Record what each path hands aiohttp (method, URL string, headers, data)."""
        pool, sent = self.pool, self.sent
        original = pool.session

        def session() -> Any:
            real = original()

            def request(method: str, url: str, **kwargs: Any) -> Any:
                sent.append((method, url, dict(kwargs["headers"]), kwargs["data"]))
                return real.request(method, url, **kwargs)

            return SimpleNamespace(request=request)

        pool.session = session  # type: ignore[method-assign]

    def clients(self, path: str = "") -> tuple[Any, Any]:
        """(msrest's operations, the direct path): same pool and pipeline, each with its own token."""
        url = self.channel.url + path
        return (pooled_client(self.pool, url, CachedAppCredentials(ScriptedToken()), direct=False),
                pooled_client(self.pool, url, CachedAppCredentials(ScriptedToken())))

    def close(self) -> None:
        async def stop() -> None:
            await self.pool.close()
            assert self.channel.runner is not None
            await self.channel.runner.cleanup()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    made = Rig()
    yield made
    made.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry loop's waits, recorded instead of slept (bot/connector.py's ``asyncio.sleep`` only)."""
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(connector_module, "asyncio", SimpleNamespace(sleep=sleep))
    return waited


@dataclass
class Outcome:
    result: Any                     # the value returned, or (exception type, status, message, error code)
    requests: list[Seen]
    handed: list[tuple[str, str, dict[str, str], Any]]
    tokens: list[bool]


Operation = Callable[[Any], Awaitable[Any]]


def run_both(rig: Rig, operation: Operation, script: list[Answer | str] | None = None,
             caller_retries: bool = False, path: str = "") -> tuple[Outcome, Outcome, Any]:
    """``operation(conversations)`` through msrest, then through the direct path, each with the same script
    (the service URL: the channel's, with ``path``)."""
    outcomes = []
    msrest_client, direct_client = rig.clients(path)
    for client in (msrest_client, direct_client):
        rig.channel.requests.clear()
        rig.sent.clear()
        rig.channel.script = deque(script or [])

        async def call(client: Any = client) -> Any:
            token = CALLER_RETRIES.set(caller_retries)
            try:
                return await operation(client.conversations)
            except Exception as error:  # compared below
                code = getattr(getattr(getattr(error, "error", None), "error", None), "code", None)
                return (type(error), status_of(error), str(error), code, retry_after_of(error))
            finally:
                CALLER_RETRIES.reset(token)

        result = rig.run(call())
        outcomes.append(Outcome(result, list(rig.channel.requests), list(rig.sent),
                                client.config.credentials.inner.asked))
    return outcomes[0], outcomes[1], direct_client.conversations


def same_wire(msrest: Outcome, direct: Outcome) -> None:
    """The same requests on the wire and handed to aiohttp, and the same result."""
    assert [(s.method, s.path, s.body) for s in direct.requests] == [(s.method, s.path, s.body) for s in msrest.requests]
    for ours, theirs in zip(direct.requests, msrest.requests, strict=True):
        for name in ("Authorization", "Content-Type", "Accept", "Content-Length", "User-Agent",
                     "x-ms-conversation-id", "Host"):
            assert ours.headers.get(name) == theirs.headers.get(name), name
        assert json.loads(ours.body) == json.loads(theirs.body)
    assert [(m, u, d) for m, u, _, d in direct.handed] == [(m, u, d) for m, u, _, d in msrest.handed]
    assert [h for _, _, h, _ in direct.handed] == [h for _, _, h, _ in msrest.handed]
    assert direct.result == msrest.result
    assert type(direct.result) is type(msrest.result)
    assert direct.tokens == msrest.tokens


# --- activities ---------------------------------------------------------------------------------

CARD = {"type": "AdaptiveCard", "version": "1.5", "body": [
    {"type": "TextBlock", "text": "Zebedee Example, 1 Synthetic Street", "wrap": True},
    {"type": "Input.Text", "id": "note", "label": "Note", "isRequired": True, "errorMessage": "Say something"}],
    "actions": [{"type": "Action.Execute", "verb": "request.submit", "data": {"case": "c-1", "n": [1, None]}}]}


def inbound() -> Activity:
    return Activity(type="message", id="1:in", channel_id="msteams", service_url="http://127.0.0.1:1/",
                    locale="en-GB", conversation=ConversationAccount(id="a:personal-1", tenant_id="t-1"),
                    from_property=ChannelAccount(id="29:alex", name="Alex Wilber", aad_object_id="aad-alex"),
                    recipient=ChannelAccount(id="28:bot", name="Group Supervision"), text="help")


def addressed(activity: Activity) -> Activity:
    """As the turn context sends it: addressed from the inbound activity, a reply to it."""
    return TurnContext.apply_conversation_reference(activity, TurnContext.get_conversation_reference(inbound()))


def activities() -> list[Activity]:
    card = MessageFactory.attachment(Attachment(content_type="application/vnd.microsoft.card.adaptive",
                                                content=copy.deepcopy(CARD)))
    card.timestamp = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    hero = MessageFactory.attachment(Attachment(content_type="application/vnd.microsoft.card.hero",
                                                content=HeroCard(title="t", buttons=[
                                                    CardAction(type="imBack", title="a", value="a")])))
    mention = MessageFactory.text("<at>Megan Bowen</at> please look")
    mention.entities = [Mention(mentioned=ChannelAccount(id="29:megan", name="Megan Bowen"),
                                text="<at>Megan Bowen</at>", type="mention"), Entity(type="clientInfo")]
    files = MessageFactory.text("The chronology")
    files.attachments = [Attachment(content_type="application/vnd.microsoft.teams.card.file.info",
                                    content={"uniqueId": "u-1", "fileType": "docx"}, name="chronology.docx",
                                    content_url="https://example.invalid/files/chronology.docx")]
    typing = Activity(type=ActivityTypes.typing)
    dict_entity = MessageFactory.text("x")
    dict_entity.entities = [{"type": "clientInfo", "Locale": "en"}]   # WireSerializer hands this to msrest
    unicode = MessageFactory.text("Café — “quoted” ✓ 👍", input_hint="acceptingInput")
    return [addressed(a) for a in (MessageFactory.text("Noted for MAGS-1."), card, hero, mention, files, typing,
                                   dict_entity, unicode)]


def reply(activity: Activity) -> Operation:
    return lambda ops: ops.reply_to_activity(activity.conversation.id, activity.reply_to_id, copy.deepcopy(activity))


def send(activity: Activity) -> Operation:
    return lambda ops: ops.send_to_conversation(activity.conversation.id, copy.deepcopy(activity))


def update(activity: Activity, activity_id: str = "1:card-7") -> Operation:
    def call(ops: Any) -> Awaitable[Any]:
        replacement = copy.deepcopy(activity)
        replacement.id = activity_id
        return ops.update_activity(replacement.conversation.id, activity_id, replacement)

    return call


@pytest.mark.parametrize("activity", activities(), ids=lambda a: f"{a.type}-{(a.text or '')[:8]}")
@pytest.mark.parametrize("make", [reply, send, update], ids=["reply", "send", "update"])
def test_each_activity_makes_the_same_request_and_result_as_msrest(rig: Rig, activity: Activity,
                                                                   make: Callable[[Activity], Operation]) -> None:
    msrest, direct, ops = run_both(rig, make(activity))
    same_wire(msrest, direct)
    assert len(direct.requests) == 1 and isinstance(direct.result, ResourceResponse)
    assert direct.requests[0].headers["Authorization"] == "Bearer stale"
    assert (ops.direct, ops.deferred) == (1, 0)


IDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversation_id=IDS | st.sampled_from(["", "..", ".", "19:abc@thread.tacv2;messageid=1", "a:1/2?x#y%20",
                                               "a\r\nX-Injected: 1"]),
       activity_id=IDS | st.sampled_from(["", "..", "1:abc", "f:1%2F"]), text=st.text(max_size=20),
       operation=st.sampled_from(["reply", "send", "update"]))
def test_any_ids_give_the_same_url_and_headers_as_msrest(rig: Rig, conversation_id: str, activity_id: str, text: str,
                                                         operation: str) -> None:
    activity = addressed(MessageFactory.text(text))
    activity.conversation = ConversationAccount(id=conversation_id)
    activity.reply_to_id = activity_id
    make = {"reply": reply, "send": send, "update": lambda a: update(a, activity_id)}[operation]
    msrest, direct, _ = run_both(rig, make(activity))
    if isinstance(msrest.result, tuple):     # e.g. a header value aiohttp refuses: refused the same way
        assert direct.result[:3] == msrest.result[:3]
        return
    same_wire(msrest, direct)


def test_a_conversation_id_aiohttp_refuses_as_a_header_is_refused_the_same_way(rig: Rig) -> None:
    activity = addressed(MessageFactory.text("hi"))
    activity.conversation = ConversationAccount(id="a:1\r\nX-Injected: 1")
    msrest, direct, _ = run_both(rig, reply(activity))
    assert isinstance(msrest.result, tuple) and direct.result[:3] == msrest.result[:3]
    assert direct.requests == msrest.requests == []


def test_the_url_is_the_service_url_joined_with_the_quoted_ids(rig: Rig) -> None:
    activity = addressed(MessageFactory.text("hi"))
    activity.conversation = ConversationAccount(id="19:abc@thread.tacv2;messageid=1")
    activity.reply_to_id = "1:a/b"
    msrest, direct, _ = run_both(rig, reply(activity))
    same_wire(msrest, direct)
    expected = f"{rig.channel.url}v3/conversations/{quote(activity.conversation.id, safe='')}/activities/1%3Aa%2Fb"
    assert direct.handed[0][1] == expected
    assert direct.handed[0][2]["x-ms-conversation-id"] == activity.conversation.id


@pytest.mark.parametrize("path", ["amer", "amer/", "emea/x/../uk/", "./a/./b", "uk?region=1", "uk#f", "a%20b/",
                                  "{conversationId}/"])
@pytest.mark.parametrize("conversation_id", ["a:1", "..", "", "a/b"])
def test_service_urls_with_a_path_give_the_same_url_as_msrest(rig: Rig, path: str, conversation_id: str) -> None:
    activity = addressed(MessageFactory.text("hi"))
    activity.conversation = ConversationAccount(id=conversation_id)
    for make in (reply, send):
        msrest, direct, ops = run_both(rig, make(activity), path=path)
        same_wire(msrest, direct)
        assert (ops.direct, ops.deferred) == ((0, 1) if "{" in path else (1, 0))


# --- answers --------------------------------------------------------------------------------------

ANSWERS = {
    "200-id": ok("r-1"),
    "201-id-and-more": Answer(201, b'{"id": "r-2", "extra": {"a": 1}}'),
    "202-empty": Answer(202, b"", None),
    "202-empty-json": Answer(202, b""),
    "200-bom-charset": Answer(200, '\ufeff{"id": "r-3"}'.encode(), "application/json; charset=utf-8"),
    "200-null": Answer(200, b"null"),
    "200-json-string": Answer(200, b'"r-4"'),
    "200-list": Answer(200, b'[{"id": "r-5"}]'),
    "200-text-plain": Answer(200, b"ok", "text/plain"),
    "200-no-content-type": Answer(200, b'{"id": "r-6"}', None),
    "200-bad-json": Answer(200, b"{not json"),
    "404-not-found": Answer(404, b'{"error": {"code": "ConversationNotFound", "message": "Conversation not found."}}'),
    "403-forbidden": Answer(403, b'{"error": {"code": "BotNotInConversationRoster", "message": "no"}}'),
    "400-empty": Answer(400, b"", None),
    "412-precondition": Answer(412, b'{"error": {"code": "PreconditionFailed", "message": "later"}}'),
    "502-html": Answer(502, b"<html>Bad gateway</html>", "text/html"),
    "204-no-content": Answer(204, b"", None),
}


@pytest.mark.parametrize("answer", ANSWERS.values(), ids=ANSWERS.keys())
@pytest.mark.parametrize("make", [reply, send, update], ids=["reply", "send", "update"])
def test_every_answer_gives_the_same_result_or_error_as_msrest(rig: Rig, sleeps: list[float], answer: Answer,
                                                               make: Callable[[Activity], Operation]) -> None:
    activity = activities()[0]
    msrest, direct, _ = run_both(rig, make(activity), [answer] * (MAX_ATTEMPTS if answer.status >= 500 else 1))
    same_wire(msrest, direct)
    if 200 <= answer.status < 300 and answer.status != 204 and not isinstance(direct.result, tuple):
        return
    assert isinstance(direct.result, tuple), direct.result
    kind, status = direct.result[:2]
    assert kind in (ErrorResponseException, DeserializationError)
    assert status == (answer.status if kind is ErrorResponseException else None)
    # a non-JSON error page is decoded only once the retries are over (RawDeserializer outside
    # BearerPolicy and RetryPolicy, and after them on the direct path): a 5xx one is retried first
    if kind is DeserializationError:
        assert len(direct.requests) == (MAX_ATTEMPTS if answer.status in RETRY_STATUSES else 1)


def test_an_error_is_the_sdk_exception_with_what_proactive_reads(rig: Rig) -> None:
    answer = Answer(404, b'{"error": {"code": "ConversationNotFound", "message": "Conversation not found."}}',
                    headers={"Retry-After": "7"})
    msrest, direct, _ = run_both(rig, reply(activities()[0]), [answer])
    same_wire(msrest, direct)
    kind, status, message, code, retry_after = direct.result
    assert (kind, status, code, retry_after) == (ErrorResponseException, 404, "ConversationNotFound", 7.0)
    assert message == "(ConversationNotFound) Conversation not found."


# --- token and retries ----------------------------------------------------------------------------

def test_a_401_fetches_a_fresh_token_and_tries_once_more(rig: Rig) -> None:
    unauthorized = Answer(401, b'{"error": {"code": "Unauthorized", "message": "stale"}}')
    msrest, direct, _ = run_both(rig, reply(activities()[1]), [unauthorized])
    same_wire(msrest, direct)
    assert [s.headers["Authorization"] for s in direct.requests] == ["Bearer stale", "Bearer fresh-2"]
    assert direct.tokens == [False, True] and isinstance(direct.result, ResourceResponse)
    # a second 401 is the caller's: no third try
    msrest, direct, _ = run_both(rig, reply(activities()[1]), [unauthorized, unauthorized])
    same_wire(msrest, direct)
    assert len(direct.requests) == 2 and direct.result[:2] == (ErrorResponseException, 401)


@pytest.mark.parametrize("script, waits", [
    ([Answer(429, b"", None, {"Retry-After": "2"}), ok()], [2.0]),
    ([Answer(429, b"", None, {"Retry-After": "600"}), ok()], [10.0]),          # capped
    ([Answer(503, b'{"error": {"code": "x", "message": "y"}}'), Answer(500, b"", None), ok()], [0.5, 1.0]),
    ([Answer(504, b"", None, {"Retry-After": "soon"}), ok()], [0.5]),
    ([DROP, ok()], [0.5]),
    ([DROP, DROP, ok()], [0.5, 1.0]),
], ids=["429-retry-after", "429-capped", "5xx-backoff", "504-bad-retry-after", "connection-error", "two-drops"])
def test_throttling_server_errors_and_dropped_connections_are_retried(rig: Rig, sleeps: list[float],
                                                                      script: list[Any], waits: list[float]) -> None:
    msrest, direct, _ = run_both(rig, reply(activities()[0]), script)
    same_wire(msrest, direct)
    assert len(direct.requests) == len(script) and isinstance(direct.result, ResourceResponse)
    assert sleeps == waits + waits    # msrest's run, then ours


def test_retries_give_up_after_three_attempts_as_msrest_does(rig: Rig, sleeps: list[float]) -> None:
    throttled = Answer(429, b'{"error": {"code": "Throttled", "message": "slow"}}', headers={"Retry-After": "1"})
    msrest, direct, _ = run_both(rig, send(activities()[0]), [throttled] * MAX_ATTEMPTS)
    same_wire(msrest, direct)
    assert direct.result[:2] == (ErrorResponseException, 429) and len(direct.requests) == MAX_ATTEMPTS
    msrest, direct, _ = run_both(rig, send(activities()[0]), [DROP] * MAX_ATTEMPTS)
    assert len(direct.requests) == len(msrest.requests) == MAX_ATTEMPTS
    assert direct.result[0] is msrest.result[0] and issubclass(direct.result[0], aiohttp.ClientConnectionError)


@pytest.mark.parametrize("answer", [Answer(429, b"", None, {"Retry-After": "3"}), Answer(503, b"", None), DROP],
                         ids=["429", "503", "connection-error"])
def test_a_caller_that_retries_itself_gets_one_attempt_and_the_status(rig: Rig, sleeps: list[float],
                                                                      answer: Answer | str) -> None:
    msrest, direct, _ = run_both(rig, reply(activities()[0]), [answer], caller_retries=True)
    same_wire(msrest, direct)
    assert len(direct.requests) == 1 and sleeps == []
    if isinstance(answer, Answer):
        assert direct.result[:2] == (ErrorResponseException, answer.status)
        assert direct.result[4] == (3.0 if answer.status == 429 else None)


# --- what goes to msrest --------------------------------------------------------------------------

UNUSUAL: dict[str, Operation] = {
    "custom-headers": lambda ops: ops.reply_to_activity("a:1", "1:x", MessageFactory.text("h"),
                                                        custom_headers={"X-Extra": "1"}),
    "raw": lambda ops: ops.send_to_conversation("a:1", MessageFactory.text("r"), raw=True),
    "operation-config": lambda ops: ops.update_activity("a:1", "1:x", MessageFactory.text("c"),
                                                        enable_http_logger=False),
    "dict-activity": lambda ops: ops.send_to_conversation("a:1", {"type": "message", "text": "d"}),
    "int-activity-id": lambda ops: ops.reply_to_activity("a:1", 7, MessageFactory.text("i")),
    "int-conversation-id": lambda ops: ops.update_activity(5, "1:x", MessageFactory.text("i")),
}


@pytest.mark.parametrize("operation", UNUSUAL.values(), ids=UNUSUAL.keys())
def test_anything_unusual_goes_to_msrest_unchanged(rig: Rig, operation: Operation) -> None:
    msrest, direct, ops = run_both(rig, operation)
    assert (ops.direct, ops.deferred) == (0, 1)
    if hasattr(msrest.result, "response"):          # raw=True: ClientRawResponse
        assert direct.result.output == msrest.result.output
        direct.result = msrest.result = None
    same_wire(msrest, direct)


def test_a_replaced_pipeline_or_logging_or_validation_sends_through_msrest(rig: Rig) -> None:
    for change in ("pipeline", "logger", "validation"):
        _, direct_client = rig.clients()
        if change == "pipeline":
            direct_client.config.pipeline = copy.copy(direct_client.config.pipeline)
        elif change == "logger":
            direct_client.config.http_logger_policy.enable_http_logger = True
        else:
            direct_client._serialize.client_side_validation = True
        result = rig.run(direct_client.conversations.send_to_conversation("a:1", MessageFactory.text("x")))
        assert isinstance(result, ResourceResponse)
        assert (direct_client.conversations.direct, direct_client.conversations.deferred) == (0, 1), change


async def test_the_bot_replies_through_the_direct_path(harness: Any) -> None:
    from tests.support.harness import User

    alex = User("user-id-0", "Alex Wilber", "aad-alex", email="alexw@example.com")
    status, _ = await harness.post(harness.activity(alex, text="help", textFormat="plain"))
    assert status == 200 and harness.connector.messages()
    [client] = harness.parts.adapter.pool._clients.values()
    assert isinstance(client.conversations, DirectConversations)
    assert client.conversations.direct == len(harness.connector.sent) and client.conversations.deferred == 0


# --- the SDK code the direct path stands in for (fails if an upgrade changes it) -------------------

def test_sdk_operations_keep_the_signatures_urls_and_statuses_reproduced_here() -> None:
    signatures = {
        "reply_to_activity": "(self, conversation_id, activity_id, activity, *, custom_headers=None, raw=False, "
                             "**operation_config)",
        "send_to_conversation": "(self, conversation_id, activity, *, custom_headers=None, raw=False, "
                                "**operation_config)",
        "update_activity": "(self, conversation_id, activity_id, activity, *, custom_headers=None, raw=False, "
                           "**operation_config)",
    }
    urls = {"reply_to_activity": ACTIVITY_URL, "send_to_conversation": CONVERSATION_URL,
            "update_activity": ACTIVITY_URL}
    for name, signature in signatures.items():
        sdk = getattr(ConversationsOperations, name)
        assert str(inspect.signature(sdk)) == signature, name
        assert sdk.metadata == {"url": urls[name]}, name
        assert getattr(DirectConversations, name).metadata == sdk.metadata, name
        source = inspect.getsource(sdk)
        for line in ('header_parameters["Accept"] = "application/json"',
                     'header_parameters["Content-Type"] = "application/json; charset=utf-8"',
                     'body_content = self._serialize.body(activity, "Activity")',
                     "if response.status_code not in [200, 201, 202]:",
                     "raise models.ErrorResponseException(self._deserialize, response)",
                     'deserialized = self._deserialize("ResourceResponse", response)',
                     "url = self._client.format_url(url, **path_format_arguments)",
                     '"conversation_id", conversation_id, "str"',
                     "request, stream=False, **operation_config"):
            assert line in source, (name, line)
        assert ('header_parameters["x-ms-conversation-id"] = conversation_id' in source) == (name == "reply_to_activity")
        assert ("self._client.put(" if name == "update_activity" else "self._client.post(") in source
        if name != "send_to_conversation":
            assert '"activityId": self._serialize.url("activity_id", activity_id, "str")' in source


def test_sdk_sends_replies_and_updates_through_these_operations() -> None:
    """The adapter reaches the client's ``conversations`` attribute, which the client sets once from
    ``ConversationsOperations(client, config, serializer, deserializer)``: bot/connector.py replaces it."""
    assert list(inspect.signature(ConversationsOperations.__init__).parameters) == [
        "self", "client", "config", "serializer", "deserializer"]
    from botframework.connector.aio import ConnectorClient

    assert "self.conversations = ConversationsOperations(" in inspect.getsource(ConnectorClient.__init__)
    sends = inspect.getsource(CloudAdapterBase.send_activities)
    assert "connector_client.conversations.reply_to_activity(" in sends
    assert "connector_client.conversations.send_to_conversation(" in sends
    assert "connector_client.conversations.update_activity(" in inspect.getsource(CloudAdapterBase.update_activity)


def test_msrest_builds_requests_as_reproduced_here() -> None:
    """Serializer.url quotes a str with ``quote(safe="")``; the body is ``json.dumps`` with a
    Content-Length of its length; User-Agent set when absent; answers decoded by RawDeserializer."""
    serializer = Serializer({})
    serializer.client_side_validation = False
    for value in ("19:abc@thread.tacv2;messageid=1", "a b/c?d#e%f", "..", "é👍"):
        assert serializer.url("x", value, "str") == quote(value, safe="")
    request = ClientRequest("POST", "http://127.0.0.1:1/")
    request.add_content({"text": "é"})
    assert request.data == json.dumps({"text": "é"}) and request.headers["Content-Length"] == str(len(request.data))
    policy = UserAgentPolicy("agent/1")
    held = SimpleNamespace(http_request=SimpleNamespace(headers={}))
    policy.on_request(held)
    assert held.http_request.headers == {"User-Agent": "agent/1"}
    assert RawDeserializer.deserialize_from_http_generics("", {}) is None
    assert "deserialized_data" == RawDeserializer.CONTEXT_NAME
    assert inspect.signature(RawDeserializer.deserialize_from_http_generics).parameters.keys() == {"body_bytes",
                                                                                                    "headers"}


@pytest.mark.parametrize("first", [Answer(502, b"<html>Bad gateway</html>", "text/html"),
                                   Answer(503, b"<html>busy</html>", None),
                                   Answer(401, b"<html>Unauthorized</html>", "text/html")],
                         ids=["502-html", "503-html-no-type", "401-html"])
def test_a_page_that_is_not_json_is_retried_before_it_is_decoded(rig: Rig, sleeps: list[float], first: Answer) -> None:
    """A gateway's HTML error page is what a throttled or failing channel often sends: both paths
    retry it (a fresh token for a 401) and decode only the answer they keep."""
    msrest, direct, _ = run_both(rig, reply(activities()[0]), [first, ok()])
    same_wire(msrest, direct)
    assert len(direct.requests) == 2 and isinstance(direct.result, ResourceResponse)
    assert isinstance(msrest.result, ResourceResponse)
