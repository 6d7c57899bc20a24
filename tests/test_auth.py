"""Bot Framework authentication, enforced end to end with real signed tokens from a loopback key server.

Both of the SDK's channel-validation paths are exercised: the parameterized one (``create_app``'s
``openid_metadata_url``) and the public-cloud one production uses (``ChannelValidation``, with its
metadata endpoint moved to loopback). A valid token gets the bot's reply; every bad one gets exactly
401 and no turn runs.
"""
from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from botframework.connector.auth import ChannelValidation, JwtTokenExtractor

from bot.app import create_app
from bot.config import Config
from storage.memory import MemoryStore
from supervision.clock import FixedClock
from tests.support.auth import (
    APP_ID,
    APP_PASSWORD,
    KeyServer,
    StandInCredentialsFactory,
    clear_metadata_cache,
    new_key,
)
from tests.support.connector import FakeConnector
from tests.support.harness import BotHarness, User

ALEX = User("user-id-0", "Alex Wilber", "aad-alex")


@pytest.fixture(scope="module")
def key_server() -> Iterator[KeyServer]:
    server = KeyServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh_metadata_cache() -> Iterator[None]:
    clear_metadata_cache()
    yield
    clear_metadata_cache()


@pytest.fixture
def auth_config(make_config: Callable[..., Config]) -> Config:
    return make_config(MicrosoftAppId=APP_ID, MicrosoftAppPassword=APP_PASSWORD)


async def start_bot(config: Config, key_server: KeyServer, clock: FixedClock, *, path: str = "parameterized",
                    metadata_url: str | None = None) -> BotHarness:
    url = metadata_url or key_server.metadata_url
    app = create_app(config, clock=clock, store=MemoryStore(), start_background=False,
                     openid_metadata_url=url if path == "parameterized" else None,
                     credentials_factory=StandInCredentialsFactory(key_server.token_url))
    return await BotHarness(app=app, connector=FakeConnector()).start()


@pytest.fixture(params=["parameterized", "public"])
async def bot(request: pytest.FixtureRequest, auth_config: Config, key_server: KeyServer, clock: FixedClock,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BotHarness]:
    if request.param == "public":
        monkeypatch.setattr(ChannelValidation, "open_id_metadata_endpoint", key_server.metadata_url)
    harness = await start_bot(auth_config, key_server, clock, path=request.param)
    yield harness
    await harness.stop()


def help_body(bot: BotHarness) -> dict[str, Any]:
    return bot.activity(ALEX, text="help", textFormat="plain")


async def test_a_valid_token_is_accepted_and_the_bot_replies(bot: BotHarness, key_server: KeyServer):
    status, _ = await bot.post(help_body(bot), key_server.header(bot.connector.url))
    assert status == 200
    assert len(bot.connector.sent) == 1 and bot.connector.sent[0].cards


def _bad_headers(key_server: KeyServer, service_url: str) -> dict[str, dict[str, str]]:
    other_key = new_key()
    valid = key_server.sign(service_url)
    return {
        "expired": key_server.header(service_url, expires_in=-3600),
        "bad signature": key_server.header(service_url, key=other_key),
        "unknown key id": key_server.header(service_url, kid="no-such-key", key=other_key),
        "wrong audience": key_server.header(service_url, app_id="99999999-8888-7777-6666-555555555555"),
        "wrong issuer": key_server.header(service_url, issuer="https://sts.example.invalid/"),
        "serviceurl not matching": key_server.header(service_url, claims={"serviceurl": "https://evil.example/"}),
        "serviceurl missing": {"Authorization": "Bearer " + jwt.encode(
            {k: v for k, v in jwt.decode(valid, options={"verify_signature": False}).items() if k != "serviceurl"},
            key_server.key, algorithm="RS256", headers={"kid": key_server.kid})},
        "no signature (alg none)": {"Authorization": "Bearer " + jwt.encode(
            jwt.decode(valid, options={"verify_signature": False}), None, algorithm="none")},
        "missing header": {},
        "empty header": {"Authorization": ""},
        "scheme only": {"Authorization": "Bearer"},
        "wrong scheme": {"Authorization": f"Basic {valid}"},
        "lower-case scheme": {"Authorization": f"bearer {valid}"},
        "not a JWT": {"Authorization": "Bearer not-a-token"},
        "three garbage parts": {"Authorization": "Bearer aaa.bbb.ccc"},
        "extra parts": {"Authorization": f"Bearer {valid} extra"},
    }


async def test_every_bad_token_answers_exactly_401_and_runs_no_turn(bot: BotHarness, key_server: KeyServer):
    status, _ = await bot.post(help_body(bot), key_server.header(bot.connector.url))
    assert status == 200  # a good token first: what the bot remembers of it must not let a bad one in
    bot.connector.clear()
    statuses = {}
    for name, headers in _bad_headers(key_server, bot.connector.url).items():
        statuses[name], _ = await bot.post(help_body(bot), headers)
    assert statuses == {name: 401 for name in statuses}
    assert bot.connector.sent == []
    # and the bot still answers a good one afterwards
    status, _ = await bot.post(help_body(bot), key_server.header(bot.connector.url))
    assert status == 200 and len(bot.connector.sent) == 1


async def test_a_token_for_another_conversation_service_is_refused(bot: BotHarness, key_server: KeyServer):
    """The token is good, but names a different serviceUrl than the activity asks us to reply to."""
    body = help_body(bot)
    body["serviceUrl"] = "http://127.0.0.1:9/"
    status, _ = await bot.post(body, key_server.header(bot.connector.url))
    assert status == 401 and bot.connector.sent == []


async def test_invokes_and_events_are_refused_without_a_token_too(bot: BotHarness, key_server: KeyServer):
    value = {"action": {"type": "Action.Execute", "verb": "help.show", "data": {}}, "trigger": "manual"}
    status, _ = await bot.post(bot.activity(ALEX, type_="invoke", name="adaptiveCard/action", value=value))
    assert status == 401
    status, _ = await bot.post(bot.activity(ALEX, type_="installationUpdate", action="add"))
    assert status == 401
    status, body = await bot.post(bot.activity(ALEX, type_="invoke", name="adaptiveCard/action", value=value),
                                  key_server.header(bot.connector.url))
    assert status == 200 and body["statusCode"] == 200


async def test_a_rotated_key_is_picked_up_without_waiting_a_day(auth_config: Config, clock: FixedClock):
    """botbuilder 4.17.1 would refuse a new key id until its daily refresh; we refetch the keys (off the
    event loop, at most every few minutes) when a token names a key id we have not seen."""
    server = KeyServer().start()
    harness = await start_bot(auth_config, server, clock)
    try:
        status, _ = await harness.post(help_body(harness), server.header(harness.connector.url))
        assert status == 200
        server.key, server.kid = new_key(), "loopback-key-2"  # the channel rotates its key
        new_header = server.header(harness.connector.url)
        status, _ = await harness.post(help_body(harness), new_header)
        assert status == 401  # keys refreshed moments ago: no refetch storm on unknown key ids
        metadata = JwtTokenExtractor.get_open_id_metadata(server.metadata_url)
        metadata.last_updated -= timedelta(minutes=6)
        status, _ = await harness.post(help_body(harness), new_header)
        assert status == 200
        assert server.metadata_calls == 2
    finally:
        await harness.stop()
        server.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_key_server_answers_503_not_500(auth_config: Config, key_server: KeyServer,
                                                          clock: FixedClock):
    harness = await start_bot(auth_config, key_server, clock,
                              metadata_url=f"http://127.0.0.1:{_closed_port()}/.well-known/openidconfiguration")
    try:
        status, _ = await harness.post(help_body(harness), key_server.header(harness.connector.url))
        assert status == 503
        status, _ = await harness.post(help_body(harness))
        assert status == 401  # no token at all is still simply refused
    finally:
        await harness.stop()


async def test_anonymous_mode_accepts_no_header_but_refuses_a_token_it_cannot_check(
        config: Config, key_server: KeyServer, clock: FixedClock):
    app = create_app(config, clock=clock, store=MemoryStore(), start_background=False,
                     openid_metadata_url=key_server.metadata_url)
    harness = await BotHarness(app=app, connector=FakeConnector()).start()
    try:
        status, _ = await harness.post(help_body(harness))
        assert status == 200 and harness.connector.sent
        status, _ = await harness.post(help_body(harness), key_server.header(harness.connector.url))
        assert status == 401  # our app id is empty, so no token can be addressed to us
    finally:
        await harness.stop()
