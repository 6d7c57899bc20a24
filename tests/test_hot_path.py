"""The hot path of an authenticated turn: each adaptation in bot/ proven to work, and each botbuilder
4.17.1 behaviour it works around pinned, so that a test fails when the SDK changes under us (then the
adaptation may be obsolete, or wrong). Speed itself is measured by bench/turns_bench.py, not here.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    JwtTokenExtractor,
    MicrosoftAppCredentials,
    PasswordServiceClientCredentialFactory,
)
from botframework.connector.auth import jwt_token_extractor as sdk_extractor
from msrest.pipeline.async_requests import AsyncRequestsCredentialsPolicy

from bot.adapter import ACTIVITY_DESERIALIZER
from bot.app import create_app
from bot.config import Config
from bot.connector import BearerPolicy, LoadedResponse, SessionSender
from bot.credentials import REFRESH_BEFORE, CachedAppCredentials, SharedCredentialsFactory
from storage.memory import MemoryStore
from supervision.clock import FixedClock
from tests.support.auth import (
    APP_ID,
    APP_PASSWORD,
    KeyServer,
    LoginStandInCredentials,
    StandInCredentialsFactory,
    clear_metadata_cache,
)
from tests.support.connector import FakeConnector
from tests.support.harness import BotHarness, User

ALEX = User("user-id-0", "Alex Wilber", "aad-alex", email="alexw@example.com")
GUEST = User("user-id-9", "Gail Guest", "aad-guest")  # no roster entry


@pytest.fixture(scope="module")
def key_server() -> Iterator[KeyServer]:
    server = KeyServer().start()
    yield server
    server.stop()


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, str]] = []

        self.writes: list[tuple[str, str]] = []

    async def get(self, collection: str, key: str) -> Any:
        self.reads.append((collection, key))
        return await super().get(collection, key)

    async def put(self, collection: str, key: str, data: dict[str, Any], **kwargs: Any) -> str:
        self.writes.append((collection, key))
        return await super().put(collection, key, data, **kwargs)


@pytest.fixture
async def bot(make_config: Callable[..., Config], key_server: KeyServer, clock: FixedClock,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BotHarness]:
    clear_metadata_cache()

    def sdk_must_not_fetch(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("botbuilder fetched the OpenID keys itself (blocking, on the event loop)")

    monkeypatch.setattr(sdk_extractor, "requests", type("NoRequests", (), {"get": staticmethod(sdk_must_not_fetch)}))
    config = make_config(MicrosoftAppId=APP_ID, MicrosoftAppPassword=APP_PASSWORD)
    app = create_app(config, clock=clock, store=CountingStore(), start_background=False,
                     openid_metadata_url=key_server.metadata_url,
                     credentials_factory=StandInCredentialsFactory(key_server.token_url))
    harness = await BotHarness(app=app, connector=FakeConnector()).start()
    yield harness
    await harness.stop()
    clear_metadata_cache()


async def say(bot: BotHarness, key_server: KeyServer, user: User, text: str = "help") -> int:
    status, _ = await bot.post(bot.activity(user, text=text, textFormat="plain"), key_server.header(bot.connector.url))
    return status


# --- one credentials object, its token reused, fetched off the loop ---------------------------------

async def test_sdk_makes_new_credentials_for_every_call():
    """Pinned: 4.17.1 builds a new MicrosoftAppCredentials (a new MSAL app, an empty token cache) per
    call, and the SDK calls it per turn. If this fails, SharedCredentialsFactory may be obsolete."""
    factory = PasswordServiceClientCredentialFactory(APP_ID, APP_PASSWORD)
    args = (APP_ID, "https://api.botframework.com", "https://login.microsoftonline.com/", True)
    first, second = await factory.create_credentials(*args), await factory.create_credentials(*args)
    assert isinstance(first, MicrosoftAppCredentials) and first is not second


async def test_many_turns_one_login_call_and_one_connector_client(bot: BotHarness, key_server: KeyServer):
    before = key_server.login_calls
    for _ in range(6):
        assert await say(bot, key_server, ALEX) == 200
    assert key_server.login_calls - before == 1
    assert bot.parts.adapter.pool.created == 1
    assert len(bot.connector.sent) == 6


async def test_the_token_is_fetched_in_a_worker_thread_once_for_concurrent_callers():
    class Inner(MicrosoftAppCredentials):
        def __init__(self) -> None:
            super().__init__(APP_ID, APP_PASSWORD)
            self.threads: list[int] = []

        def get_access_token(self, force_refresh: bool = False) -> str:
            self.threads.append(threading.get_ident())
            return "opaque-token-without-expiry"

    inner = Inner()
    credentials = CachedAppCredentials(inner)
    tokens = await asyncio.gather(*(credentials.token() for _ in range(10)))
    assert set(tokens) == {"opaque-token-without-expiry"}
    assert len(inner.threads) == 1 and inner.threads[0] != threading.get_ident()


async def test_the_token_is_refreshed_in_the_background_before_it_expires():
    now = [1_000_000.0]
    served = iter(["first", "second"])

    class Inner(MicrosoftAppCredentials):
        def get_access_token(self, force_refresh: bool = False) -> str:
            return next(served)

    credentials = CachedAppCredentials(Inner(APP_ID, APP_PASSWORD), clock=lambda: now[0])
    credentials_expiry = now[0] + 3600
    import bot.credentials as module

    original = module.token_expiry
    module.token_expiry = lambda token, at: credentials_expiry  # type: ignore[assignment]
    try:
        assert await credentials.token() == "first"
        now[0] = credentials_expiry - REFRESH_BEFORE + 1  # inside the refresh window, still valid
        assert await credentials.token() == "first"  # no waiting: the valid token is served...
        await asyncio.sleep(0.05)
        for _ in range(50):
            if credentials.fetches == 2:
                break
            await asyncio.sleep(0.01)
        assert credentials.fetches == 2  # ...and the new one was fetched behind it
        assert await credentials.token() == "second"
    finally:
        module.token_expiry = original


async def test_shared_factory_hands_out_one_object_per_key_and_leaves_anonymous_alone():
    shared = SharedCredentialsFactory(StandInCredentialsFactory("http://127.0.0.1:9/token"))
    args = (APP_ID, "https://api.botframework.com", "https://login.microsoftonline.com/", True)
    first = await shared.create_credentials(*args)
    assert isinstance(first, CachedAppCredentials) and isinstance(first.inner, LoginStandInCredentials)
    assert await shared.create_credentials(*args) is first
    assert await shared.create_credentials(APP_ID, "https://other.example", args[2], True) is not first
    anonymous = SharedCredentialsFactory(PasswordServiceClientCredentialFactory())
    empty = await anonymous.create_credentials("", args[1], args[2], True)
    assert not isinstance(empty, CachedAppCredentials) and not empty.microsoft_app_id


# --- pooled connector clients on aiohttp --------------------------------------------------------------

def test_sdk_connector_client_signs_synchronously_and_sends_with_requests():
    """Pinned: a plain ConnectorClient's pipeline wraps old-style credentials in msrest's requests
    policy (signed_session -> get_access_token, synchronously, on the loop) and builds msrest's
    ClientRetryPolicy (a 999-item status list) per client. If this fails, bot/connector.py may be
    obsolete."""
    client = ConnectorClient(MicrosoftAppCredentials(APP_ID, APP_PASSWORD), base_url="http://127.0.0.1:9/")
    policies = [type(p).__name__ for p in client.config.pipeline._impl_policies]
    assert AsyncRequestsCredentialsPolicy.__name__ in policies
    assert len(client.config.retry_policy.policy.status_forcelist) > 400  # filtered from range(999)
    assert hasattr(client, "_serialize") and hasattr(client._serialize, "client_side_validation")


async def test_sdk_asks_for_a_connector_client_and_a_user_token_client_every_turn(bot: BotHarness,
                                                                                 key_server: KeyServer):
    """Pinned: CloudAdapterBase.process_activity creates both per turn; our pool answers from cache."""
    calls = {"create": 0, "token": 0}
    pooled = bot.parts.adapter.bot_framework_authentication
    original_token_client = pooled.create_user_token_client

    async def counting_token_client(claims: Any) -> Any:
        calls["token"] += 1
        return await original_token_client(claims)

    pooled.create_user_token_client = counting_token_client  # type: ignore[method-assign]
    original_client = bot.parts.adapter.pool.client

    async def counting_client(*args: Any) -> Any:
        calls["create"] += 1
        return await original_client(*args)

    bot.parts.adapter.pool.client = counting_client  # type: ignore[method-assign]
    for _ in range(3):
        assert await say(bot, key_server, ALEX) == 200
    assert calls == {"create": 3, "token": 3}
    assert bot.parts.adapter.pool.created == 1
    assert len(bot.parts.adapter.pool._token_clients) == 1


async def test_pooled_clients_send_on_aiohttp_with_our_token_policy(bot: BotHarness, key_server: KeyServer):
    assert await say(bot, key_server, ALEX) == 200
    [client] = bot.parts.adapter.pool._clients.values()
    pipeline = client.config.pipeline
    assert isinstance(pipeline._sender, SessionSender)
    assert any(isinstance(p, BearerPolicy) for p in pipeline._impl_policies)
    assert not any(isinstance(p, AsyncRequestsCredentialsPolicy) for p in pipeline._impl_policies)
    assert client._serialize.client_side_validation is False
    session = bot.parts.adapter.pool.session()
    assert await say(bot, key_server, ALEX) == 200
    assert bot.parts.adapter.pool.session() is session  # one session: connections reused


async def test_a_channel_401_fetches_a_fresh_token_once_and_retries():
    from aiohttp import web

    seen: list[str] = []

    async def reply(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if len(seen) == 1:
            return web.json_response({"error": {"code": "Unauthorized"}}, status=401)
        return web.json_response({"id": "r1"})

    app = web.Application()
    app.router.add_post("/v3/conversations/{cid}/activities/{aid}", reply)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]
    tokens = iter(["stale", "fresh"])

    class Inner(MicrosoftAppCredentials):
        def get_access_token(self, force_refresh: bool = False) -> str:
            return next(tokens)

    from bot.connector import ConnectorPool

    pool = ConnectorPool()
    client = ConnectorClient(CachedAppCredentials(Inner(APP_ID, APP_PASSWORD)), base_url=url)
    pool._adopt(client)
    try:
        response = await client.conversations.reply_to_activity(
            "c1", "a1", Activity(type="message", text="hello", conversation={"id": "c1"}))
        assert response.id == "r1"
        assert seen == ["Bearer stale", "Bearer fresh"]
    finally:
        await pool.close()
        await runner.cleanup()


# --- OpenID keys off the event loop; accepted tokens not re-validated per activity -------------------

def test_sdk_never_refreshes_keys_on_an_unknown_key_id():
    """Pinned: _OpenIdMetadata._find raises IndexError for an unknown kid, before the SDK's own
    refresh-on-miss branch can run; the metadata fields OpenIdKeys fills are keys/last_updated/url."""
    metadata = JwtTokenExtractor.get_open_id_metadata("http://127.0.0.1:9/pinned-metadata")
    try:
        assert {"keys", "last_updated", "url"} <= set(vars(metadata))
        metadata.keys = [{"kid": "known", "kty": "RSA", "n": "AQAB", "e": "AQAB"}]
        with pytest.raises(IndexError):
            metadata._find("unknown")
    finally:
        JwtTokenExtractor.metadataCache.pop("http://127.0.0.1:9/pinned-metadata", None)


async def test_keys_are_fetched_off_the_loop_so_the_sdk_never_fetches_them(bot: BotHarness, key_server: KeyServer):
    # the ``bot`` fixture makes the SDK's own (blocking) fetch fail the test
    assert await say(bot, key_server, ALEX) == 200
    assert bot.parts.adapter.keys is not None and bot.parts.adapter.keys.refreshes == 1


async def test_an_accepted_token_is_not_revalidated_but_only_for_the_same_service_url(
        bot: BotHarness, key_server: KeyServer, monkeypatch: pytest.MonkeyPatch):
    pooled = bot.parts.adapter.bot_framework_authentication
    calls = []
    original = pooled.authenticate_request

    async def counting(activity: Activity, header: str) -> Any:
        calls.append(activity.service_url)
        return await original(activity, header)

    monkeypatch.setattr(pooled, "authenticate_request", counting)
    header = key_server.header(bot.connector.url)
    body = bot.activity(ALEX, text="help", textFormat="plain")
    for _ in range(3):
        assert (await bot.post(body, header))[0] == 200
    assert len(calls) == 1 and bot.parts.adapter.tokens.hits == 2
    elsewhere = {**body, "serviceUrl": "http://127.0.0.1:9/"}
    assert (await bot.post(elsewhere, header))[0] == 401  # same good token, other service: the SDK says no
    assert len(calls) == 2
    tokens = bot.parts.adapter.tokens
    tokens.clock = lambda: 10 ** 12  # far past the token's expiry: asked again
    assert (await bot.post(body, header))[0] in (200, 401)
    assert len(calls) == 3


async def test_sdk_validates_every_activity_from_scratch(key_server: KeyServer, make_config: Callable[..., Config],
                                                         monkeypatch: pytest.MonkeyPatch):
    """Pinned: the SDK's authenticate_request decodes and verifies the token each time it is called
    (no cache of its own). If this fails, AcceptedTokens may be obsolete."""
    import jwt as pyjwt

    clear_metadata_cache()
    config = make_config(MicrosoftAppId=APP_ID, MicrosoftAppPassword=APP_PASSWORD)
    app = create_app(config, store=MemoryStore(), start_background=False, openid_metadata_url=key_server.metadata_url,
                     credentials_factory=StandInCredentialsFactory(key_server.token_url))
    from bot.app import PARTS

    sdk = app[PARTS].adapter.bot_framework_authentication.inner
    decodes = []
    original = pyjwt.decode
    monkeypatch.setattr(sdk_extractor.jwt, "decode", lambda *a, **k: decodes.append(1) or original(*a, **k))
    activity = Activity(type="message", channel_id="msteams", service_url="http://127.0.0.1:9/")
    header = "Bearer " + key_server.sign("http://127.0.0.1:9/")
    await app[PARTS].adapter.keys.ensure(header)
    await sdk.authenticate_request(activity, header)
    first = len(decodes)
    await sdk.authenticate_request(activity, header)
    assert first >= 3 and len(decodes) - first >= 3  # decoded (and verified) all over again
    clear_metadata_cache()


def test_the_shared_activity_deserializer_reads_what_the_sdk_reads(harness: BotHarness):
    body = harness.activity(ALEX, text="help", textFormat="plain", value={"verb": "x", "n": [1, 2]},
                            entities=[{"type": "mention", "text": "<at>b</at>", "mentioned": {"id": "b"}}])
    assert hasattr(Activity, "_infer_class_models")  # pinned: msrest Model.deserialize builds from this
    assert ACTIVITY_DESERIALIZER("Activity", body).serialize() == Activity().deserialize(body).serialize()


# --- the people directory: no roster call (and no store read) per turn --------------------------------

async def test_roster_is_asked_once_per_user_and_a_missing_entry_is_remembered(bot: BotHarness, key_server: KeyServer):
    people = bot.parts.services.people
    for _ in range(3):
        assert await say(bot, key_server, ALEX) == 200
        assert await say(bot, key_server, GUEST) == 200
    assert people.roster_lookups == 2
    known = await people.get(ALEX.id)
    assert known is not None and known.email == ALEX.email
    store: CountingStore = bot.parts.services.store
    store.reads.clear()
    assert await say(bot, key_server, ALEX) == 200
    assert ("people", ALEX.id) not in store.reads


# --- a channel answering 202 with no body (the Agents Playground, to a typing indicator) -------------

def test_msrest_aiohttp_response_takes_an_empty_body_for_one_not_loaded():
    """Pinned: msrest 0.7.1 ``AioHttpClientResponse.body()`` raises on b"" (``if not self._body``), so
    an empty 202 failed the turn in msrest's response logging. If this fails, LoadedResponse may go."""
    from msrest.universal_http import ClientRequest
    from msrest.universal_http.aiohttp import AioHttpClientResponse

    raw = type("Raw", (), {"status": 202, "headers": {}, "reason": "Accepted"})()
    response = AioHttpClientResponse(ClientRequest("POST", "http://127.0.0.1:9/"), raw)
    response._body = b""
    with pytest.raises(ValueError, match="Body is not available"):
        response.body()
    ours = LoadedResponse(ClientRequest("POST", "http://127.0.0.1:9/"), raw)
    with pytest.raises(ValueError):
        ours.body()  # still refused before the body is loaded
    ours._body = b""
    assert ours.body() == b""


class EmptyAcceptedConnector(FakeConnector):
    """Answers a typing indicator (or, with ``everything``, every activity) 202 with no body."""

    def __init__(self, everything: bool = False) -> None:
        super().__init__()
        self.everything = everything

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.everything or body.get("type") == "typing":
            self._record("POST", request.match_info["cid"], "", body)
            return web.Response(status=202)
        return await super()._post(request)  # type: ignore[no-any-return]


@pytest.mark.parametrize("everything", [False, True], ids=["typing", "every-activity"])
async def test_an_empty_202_from_the_channel_does_not_fail_the_turn(config: Config, clock: FixedClock,
                                                                    everything: bool):
    from botbuilder.schema import ActivityTypes

    from bot.turn import Turn

    typed: list[str] = []

    async def typing_then_help(turn: Turn) -> None:
        await turn.typing()
        typed.append("typed")
        await turn.send_text("after typing")

    def register(router: Any, services: Any) -> list[Any]:
        router.command("typing test", typing_then_help)
        return []

    app = create_app(config, clock=clock, store=MemoryStore(), start_background=False, features=[register])
    connector = EmptyAcceptedConnector(everything)
    harness = await BotHarness(app=app, connector=connector).start()
    try:
        status, _ = await harness.post(harness.activity(ALEX, text="typing test", textFormat="plain"))
        assert status == 200
        assert typed == ["typed"]
        kinds = [s.body.get("type") for s in connector.sent]
        assert kinds[0] == ActivityTypes.typing
        assert [s.body.get("text") for s in connector.sent if s.body.get("type") == "message"] == ["after typing"]
    finally:
        await harness.stop()


# --- no store write per turn for what has not changed --------------------------------------------

async def test_a_known_conversation_is_not_written_again_on_every_turn(bot: BotHarness, key_server: KeyServer):
    """The reference's activity id changes every turn and is never used for proactive sends (the
    SDK's continue_conversation answers its own continuation activity): it is not stored, so a
    turn in a known conversation writes no reference."""
    from bot.proactive import REFS

    store: CountingStore = bot.parts.services.store
    assert await say(bot, key_server, ALEX) == 200
    first = [w for w in store.writes if w[0] == REFS]
    assert {k for _, k in first} >= {"user:user-id-0", "user:aad-alex"}
    store.writes.clear()
    for _ in range(3):
        assert await say(bot, key_server, ALEX) == 200
    assert [w for w in store.writes if w[0] == REFS] == []
    stored = await store.get(REFS, "user:user-id-0")
    assert stored is not None and "activityId" not in stored.data
    assert stored.data["conversation"]["id"] and stored.data["serviceUrl"] == bot.connector.url


def _reference_data(activity: Activity) -> dict[str, Any]:
    from botbuilder.core import TurnContext

    data = TurnContext.get_conversation_reference(activity).serialize()
    data.pop("activityId", None)
    return data


def test_the_sdk_builds_a_reference_from_the_inputs_remember_compares_and_nothing_else() -> None:
    """bot/proactive.py skips rebuilding a reference whose inputs (REFERENCE_SOURCES, tenant, team)
    are unchanged: if botbuilder's get_conversation_reference starts reading any other attribute of
    the activity, or ConversationReference gains a field, this fails."""
    from botbuilder.schema import ConversationReference

    from bot.proactive import REFERENCE_SOURCES, reference_inputs

    assert set(ConversationReference._attribute_map) == {
        "activity_id", "user", "bot", "conversation", "channel_id", "locale", "service_url"}
    body = {"type": "message", "id": "m-1", "text": "help", "channelId": "msteams", "serviceUrl": "https://s/",
            "locale": "en-GB", "from": {"id": "29:1", "name": "Alex", "aadObjectId": "aad-1"},
            "recipient": {"id": "28:bot", "name": "Bot"},
            "conversation": {"id": "a:1", "conversationType": "personal", "tenantId": "t-1"},
            "channelData": {"tenant": {"id": "t-1"}}}
    base = Activity().deserialize(body)
    reference, inputs = _reference_data(base), reference_inputs(base)
    sources = set(REFERENCE_SOURCES) | {"id", "channel_data"}   # the id is dropped; tenant and team: channel data
    for name, desc in Activity._attribute_map.items():
        if name in sources:
            continue
        changed = Activity().deserialize(body)
        sample = {"str": "changed", "bool": True, "int": 7, "float": 1.5, "iso-8601": datetime(2026, 1, 5, tzinfo=UTC),
                  "object": {"changed": 1}}.get(desc["type"], None)
        setattr(changed, name, sample if sample is not None else [] if desc["type"].startswith("[") else object())
        assert _reference_data(changed) == reference, name
        assert reference_inputs(changed) == inputs, name
    changed = Activity().deserialize(body)
    changed.channel_data = {"tenant": {"id": "t-2"}}
    assert reference_inputs(changed) != inputs
    for name in REFERENCE_SOURCES:      # and each input does change the inputs
        changed = Activity().deserialize(body)
        value = getattr(changed, name)
        if isinstance(value, str):
            setattr(changed, name, value + "-x")
        else:
            value.name = "someone else"
        assert reference_inputs(changed) != inputs, name
        assert _reference_data(changed) != reference, name


async def test_a_known_conversation_costs_no_reference_rebuilt_and_a_renamed_user_is_written(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from botbuilder.schema import Activity as Schema

    from bot.proactive import REFS, Proactive

    store = CountingStore()
    proactive = Proactive(adapter=None, store=store, app_id="bot")  # type: ignore[arg-type]
    body = {"type": "message", "id": "m-1", "text": "help", "channelId": "msteams", "serviceUrl": "https://s/",
            "from": {"id": "29:1", "name": "Alex"}, "recipient": {"id": "28:bot"},
            "conversation": {"id": "a:1", "conversationType": "personal"}, "channelData": {"tenant": {"id": "t"}}}
    await proactive.remember(Schema().deserialize(body))
    assert {k for c, k in store.writes if c == REFS} == {"conversation:a:1", "user:29:1"}
    store.reads.clear()
    store.writes.clear()
    built = 0
    from botbuilder.core import TurnContext
    original = TurnContext.get_conversation_reference

    def counting(activity: Any) -> Any:
        nonlocal built
        built += 1
        return original(activity)

    monkeypatch.setattr(TurnContext, "get_conversation_reference", staticmethod(counting))
    for n in range(3):
        await proactive.remember(Schema().deserialize({**body, "id": f"m-{n + 2}", "text": f"turn {n}"}))
    assert built == 0 and store.reads == [] and store.writes == []
    renamed = {**body, "from": {"id": "29:1", "name": "Alex Renamed"}}
    await proactive.remember(Schema().deserialize(renamed))
    assert built == 1
    stored = await store.get(REFS, "user:29:1")
    assert stored is not None and stored.data["user"]["name"] == "Alex Renamed"
    assert {k for c, k in store.writes if c == REFS} == {"conversation:a:1", "user:29:1"}


async def test_a_known_conversation_is_not_even_read_again_but_a_changed_one_is_written(
        bot: BotHarness, key_server: KeyServer):
    """This process remembers the references it last found or wrote (bot/proactive.py), so an
    unchanged one costs no store read per turn; one that changes (a new service URL) is written."""
    from bot.proactive import REFS

    store: CountingStore = bot.parts.services.store
    assert await say(bot, key_server, ALEX) == 200
    store.reads.clear()
    store.writes.clear()
    for _ in range(3):
        assert await say(bot, key_server, ALEX) == 200
    assert [r for r in store.reads if r[0] == REFS] == []
    proactive = bot.parts.services.proactive
    activity = bot.activity(ALEX, text="help")
    activity["serviceUrl"] = bot.connector.url.rstrip("/") + "/moved/"
    from botbuilder.schema import Activity
    await proactive.remember(Activity().deserialize(activity))
    assert ("conversation_refs", "user:user-id-0") in store.writes
    stored = await store.get(REFS, "user:user-id-0")
    assert stored is not None and stored.data["serviceUrl"].endswith("/moved/")
