"""The bot over HTTP, in-process, with a loopback connector: help, welcome, routing, errors, invokes."""
from __future__ import annotations

from tests.support.harness import BotHarness, User

ALEX = User("user-id-0", "Alex Wilber", "aad-alex")


async def test_help_in_personal_chat_answers_with_a_card(harness: BotHarness, validate_card):
    replies = await harness.say(ALEX, "help")
    cards = [c for r in replies for c in r.cards]
    assert len(cards) == 1
    validate_card(cards[0])
    texts = str(cards[0])
    for command in ("request", "my sessions", "my actions", "chronology", "raise a concern"):
        assert f"**{command}**" in texts
    assert "Bolton Safeguarding Children Partnership" in texts


async def test_commands_match_exactly_not_by_substring(harness: BotHarness):
    replies = await harness.say(ALEX, "can you help me with something")
    assert not any(r.cards for r in replies)
    assert "didn't recognise" in replies[0].text
    replies = await harness.say(ALEX, "  HELP!  ")
    assert replies[0].cards


async def test_help_works_in_a_channel_when_mentioned(harness: BotHarness):
    body = harness.activity(ALEX, conversation_type="channel", conversation_id="19:chan@thread.tacv2",
                            text="<at>Group Supervision</at> help",
                            entities=[{"type": "mention", "text": "<at>Group Supervision</at>",
                                       "mentioned": {"id": "28:bot-id", "name": "Group Supervision"}}])
    status, _ = await harness.post(body)
    assert status == 200
    assert harness.connector.sent[-1].cards


async def test_install_sends_one_welcome_card(harness: BotHarness, validate_card):
    await harness.post(harness.activity(ALEX, type_="installationUpdate", action="add"))
    await harness.post(harness.activity(ALEX, type_="conversationUpdate",
                                        membersAdded=[{"id": "28:bot-id"}, {"id": ALEX.id}]))
    cards = [c for s in harness.connector.sent for c in s.cards]
    assert len(cards) == 1
    validate_card(cards[0])
    assert "Welcome" in str(cards[0])


async def test_stale_or_malformed_card_payload_gets_a_message_not_a_500(harness: BotHarness):
    for value in ({"no": "verb"}, {"verb": "no.such.verb"}, {"verb": 5}, ["x"], {"verb": "help.show", "case_id": {"a": 1}}):
        replies = await harness.submit(ALEX, value)  # asserts 200
        assert "out of date" in replies[-1].text


async def test_action_execute_invoke_answers_200_with_its_body(harness: BotHarness):
    status, body = await harness.execute(ALEX, "no.such.verb", {})
    assert status == 200
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.activity.message"


async def test_every_command_on_the_help_card_is_routed(harness: BotHarness):
    from cards.help import commands_for

    assert [c for c in commands_for(None) if harness.parts.router.match_command(c) is None] == []


async def test_malformed_http_requests_are_4xx(harness: BotHarness):
    assert harness.client is not None
    r = await harness.client.post("/api/messages", data="not json", headers={"Content-Type": "application/json"})
    assert r.status == 400
    r = await harness.client.post("/api/messages", data="x", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    r = await harness.client.post("/api/messages", json={"text": "no type"})
    assert r.status == 400


async def test_turn_error_replies_politely_and_logs_no_message_text(harness: BotHarness, caplog):
    async def boom(turn):
        raise RuntimeError("Child Zebedee Example lives at 1 Synthetic Street")

    harness.parts.router.command("explode", boom)
    replies = await harness.say(ALEX, "explode")
    assert "something went wrong" in replies[-1].text.lower()
    assert "quote reference" in replies[-1].text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged
    assert "Zebedee" not in logged and "Synthetic Street" not in logged


async def test_healthz(harness: BotHarness):
    assert harness.client is not None
    r = await harness.client.get("/healthz")
    assert r.status == 200 and (await r.json())["status"] == "ok"


async def test_help_lists_what_this_user_can_do(make_config, clock, store, tmp_path):
    from bot.app import create_app
    from tests.support.connector import FakeConnector

    roster = tmp_path / "facilitators.toml"
    roster.write_text('[[facilitator]]\nname = "Fran Facilitator"\nemail = "fran@example.org"\nagency = "Police"\n'
                      'user_id = "user-fran"\n')
    config = make_config(ADMINISTRATORS="user-admin", FACILITATORS_FILE=str(roster))
    harness = await BotHarness(app=create_app(config, clock=clock, store=store, start_background=False),
                               connector=FakeConnector()).start()
    try:
        def commands(replies):
            return {f["title"].strip("*") for r in replies for c in r.cards for b in c["body"]
                    if b["type"] == "FactSet" for f in b["facts"]}

        practitioner = commands(await harness.say(ALEX, "help"))
        facilitator = commands(await harness.say(User("user-fran", "Fran Facilitator"), "help"))
        admin = commands(await harness.say(User("user-admin", "Ada Admin"), "help"))
    finally:
        await harness.stop()
    assert {"request", "my sessions", "my actions", "chronology", "raise a concern", "help"} <= practitioner
    assert not practitioner & {"schedule", "record session", "tracker", "audit log"}
    assert {"schedule", "record session"} <= facilitator and "tracker" not in facilitator
    assert {"tracker", "audit log"} <= admin and "record session" not in admin
