"""Property tests: random payloads thrown at every card verb the request feature registers, as
Action.Submit and as Action.Execute, by different users, in personal chat and in a channel. The
bot must never answer 5xx, never fall into its turn-error handler, and always say something."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialogs.request import RequestFlow, verbs
from supervision.catalogue import Catalogue
from tests.support.harness import User
from tests.test_request_dialogs import ALEX, CHANNEL, LYNNE, MEGAN, PATTI, begin, make_bot, submit_request

T = Catalogue("en")
TURN_ERROR = T("error.turn", correlation_id="").split("{")[0][:40]
STRANGER = User("user-id-9", "Quentin Stranger", "aad-q", "quentin@example.com")
INPUT_KEYS = ["immediate_risk", "requester.name", "requester.email", "child.forename", "child.date_of_birth",
              "level_of_need", "current_plan", "trigger", "family_told", "facilitators", "lead", "decline_reason",
              "info_question", "information", "invitee.x.email", "family.y.name", "msteams", "verb "]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=60), st.sampled_from(["yes", "no", "", "2015-02-30", "2015-03-14", "a@b.co",
                                                             "adelev@example.com", "x" * 5000]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=5), SCALARS, max_size=2))


def registered_verbs() -> list[str]:
    return sorted(verbs(RequestFlow.__new__(RequestFlow))) + ["sessions.mine"]


REAL: dict[str, str] = {}     # ids of a real draft and case, filled in by the fixture


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    real = REAL
    payload: dict[str, Any] = {"verb": draw(st.sampled_from(registered_verbs()))}
    for name in ("draft_id", "case_id", "phase", "item_id"):
        choice = draw(st.sampled_from(["absent", "real", "random", "odd"]))
        if choice == "real" and real.get(name):
            payload[name] = real[name]
        elif choice == "random":
            payload[name] = draw(st.text(max_size=30))
        elif choice == "odd":
            payload[name] = draw(VALUES)
    for key in draw(st.lists(st.sampled_from(INPUT_KEYS) | st.text(max_size=12), max_size=6)):
        payload[key] = draw(VALUES)
    return payload


async def test_every_registered_verb_is_in_the_fuzzed_set(make_config, clock, store, tmp_path):
    bot = await make_bot(make_config, clock, store, tmp_path)
    try:
        router = bot.harness.parts.router
        mine = {v for v in router.verbs if v.startswith("request.")} | {"sessions.mine"}
        assert mine == set(registered_verbs())
    finally:
        await bot.harness.stop()


@pytest.fixture
async def prepared(make_config, clock, store, tmp_path) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """One bot for all examples of a test, with a submitted case and a live draft to aim at."""
    bot = await make_bot(make_config, clock, store, tmp_path)
    case, _ = await submit_request(bot)
    await begin(bot, ALEX)
    draft = await bot.services.features["requests"].existing_draft(bot.services.actor(ALEX.id))
    REAL.update({"draft_id": draft.id, "case_id": case.id, "phase": "invitees", "item_id": draft.invitee_rows[0]})
    yield bot, REAL
    await bot.harness.stop()


def _polite(replies: list[Any]) -> None:
    assert replies, "the bot said nothing"
    for sent in replies:
        assert sent.text or sent.cards, sent.body
        assert TURN_ERROR not in sent.text, sent.text


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@FUZZ
@given(payload=payloads(), user=st.sampled_from([ALEX, MEGAN, LYNNE, PATTI, STRANGER]), in_channel=st.booleans())
async def test_random_submits_never_crash(prepared, payload: dict[str, Any], user: User, in_channel: bool) -> None:
    bot, _ = prepared
    extra = {"conversation_type": "channel", "conversation_id": CHANNEL} if in_channel else {}
    replies = await bot.harness.submit(user, payload, **extra)    # asserts HTTP 200
    _polite(replies)
    if in_channel:      # nothing of the case's child or family ever shows in a channel
        assert "Zebedee" not in str([s.body for s in replies]), payload


@FUZZ
@given(payload=payloads(), user=st.sampled_from([ALEX, MEGAN, STRANGER]))
async def test_random_invokes_answer_200_with_a_message_or_card(prepared, payload: dict[str, Any], user: User) -> None:
    bot, _ = prepared
    verb = payload.pop("verb")
    status, body = await bot.harness.execute(user, verb, payload)
    assert status == 200, body
    assert isinstance(body, dict) and body.get("statusCode") == 200, body
    assert body["type"] in ("application/vnd.microsoft.activity.message", "application/vnd.microsoft.card.adaptive")
    assert TURN_ERROR not in str(body.get("value"))
    assert body.get("value") != T("error.domain"), "every verb answers an invoke with something specific"
