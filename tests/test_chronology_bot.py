"""Chronologies through the real bot over HTTP (loopback connector): the ask when a session is
scheduled, the editor card (add with bad input, edit, remove, submit), uploads of CSV and Excel files
sent in chat, reminders and the session pack through the due-work runner, the merged view and its
signed picture and document links."""
from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import docx
import pytest

from bot.app import create_app
from bot.files import FILE_DOWNLOAD_INFO
from cards.pack import EvaluationSnapshot
from dialogs.pack import EVALUATION_PORT
from supervision.catalogue import Catalogue
from supervision.models import InviteStatus
from supervision.ports import DomainEvent
from tests.support.cards import of_type
from tests.support.connector import FakeConnector, Sent
from tests.support.harness import BotHarness, User
from tests.test_chronology import ROWS, _csv, _xlsx, scheduled_case

T = Catalogue("en")
UTC = UTC
CASE = "case-chron-1"
SCHOOL = User("user-school", "Sam School", email="sam@example.com")
POLICE = User("user-police", "Pat Police", email="pat@example.com")
HV = User("user-hv", "Hana Health", email="hana@example.com")
FAC = User("user-fac", "Fay Facilitator", email="fay@example.com")
STRANGER = User("user-stranger", "Norah Nobody", email="norah@example.com")


def cards_in(sent: list[Sent]) -> list[dict[str, Any]]:
    return [c for s in sent for c in s.cards]


def texts(node: Any) -> str:
    """Every string in a card, joined (to look for what a person would read)."""
    if isinstance(node, dict):
        return " ".join(texts(v) for k, v in node.items() if k != "data")
    if isinstance(node, list):
        return " ".join(texts(v) for v in node)
    return node if isinstance(node, str) else ""


def inputs_of(card: dict[str, Any]) -> dict[str, Any]:
    return {node["id"]: node.get("value") for node in of_type(card, "Input.")}


def actions_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    return of_type(card, "Action.")


def chronology_cards(sent: list[Sent], agency: str) -> list[dict[str, Any]]:
    return [c for c in cards_in(sent) if T("chronology.title", agency=agency) in texts(c)]


@pytest.fixture
async def bot(harness: BotHarness) -> BotHarness:
    await harness.parts.services.cases.create(scheduled_case())
    return harness


async def press(h: BotHarness, user: User, verb: str, **data: Any) -> list[Sent]:
    return await h.submit(user, {"verb": verb, "case_id": CASE, **data})


# --- asking -----------------------------------------------------------------------------------------

async def test_each_invited_agency_is_asked_once_when_the_session_is_scheduled(bot: BotHarness, clock, validate_card):
    services = bot.parts.services
    await services.cases.update(CASE, lambda c: setattr(c.request.invitees[2], "status", InviteStatus.DECLINED))
    for user in (SCHOOL, POLICE, HV):
        await bot.say(user, "help")                # each has a personal chat with the bot
    before = len(bot.connector.sent)
    await services.events.publish(DomainEvent("session.scheduled", CASE, clock.now(), {}))
    asks = [c for c in cards_in(bot.connector.sent[before:]) if T("chronology.ask_title") in texts(c)]
    assert len(asks) == 2                          # School and Police; Health visiting declined
    for ask in asks:
        validate_card(ask)
        assert T("chronology.ask_title") in texts(ask)
        assert "Tue 13 Jan 2026" in texts(ask)    # due 5 working days before the session
        urls = [a["url"] for a in actions_of(ask) if a["type"] == "Action.OpenUrl"]
        assert len(urls) == 2 and all("/downloads/" in u for u in urls)
    asked = sorted(s.conversation_id for s in bot.connector.sent[before:]
                   for c in s.cards if T("chronology.ask_title") in texts(c))
    assert asked == ["personal-user-police", "personal-user-school"]
    assert sorted(texts(a).count("**School**") + texts(a).count("**Police**") for a in asks) == [1, 1]
    again = len(bot.connector.sent)
    await services.events.publish(DomainEvent("session.scheduled", CASE, clock.now(), {}))
    assert not [c for c in cards_in(bot.connector.sent[again:]) if T("chronology.ask_title") in texts(c)]


# --- the editor ---------------------------------------------------------------------------------------

async def test_writing_a_chronology_in_cards(bot: BotHarness, validate_card):
    card = chronology_cards(await press(bot, SCHOOL, "chronology.open", agency="School"), "School")[-1]
    validate_card(card)
    assert T("chronology.no_entries") in texts(card)

    # bad input: every problem named by its label, and what was typed is kept
    sent = await press(bot, SCHOOL, "chronology.add", agency="School", when="someday", what="", impact="Tired",
                       kind="", source="")
    card = chronology_cards(sent, "School")[-1]
    validate_card(card)
    shown = texts(card)
    assert 'Date: "someday" is not a date I recognise' in shown
    assert "What happened: say what happened." in shown
    assert "Strength, worry or neutral: choose strength, worry or neutral." in shown
    assert inputs_of(card)["when"] == "someday" and inputs_of(card)["impact"] == "Tired"

    sent = await press(bot, SCHOOL, "chronology.add", agency="School", when="14/03/2025",
                       what="Attendance fell to 70%", impact="Missing learning", kind="worry", source="")
    await press(bot, SCHOOL, "chronology.add", agency="School", when="about spring 2025",
                what="Warm relationship with TA", impact="", kind="strength", source="")
    service = bot.parts.services.features["chronology"]
    _, chronology = await service.open(bot.parts.services.actor("user-school"), CASE, "School")
    first = next(e for e in chronology.entries if e.what.startswith("Attendance"))

    card = chronology_cards(await press(bot, SCHOOL, "chronology.edit", agency="School", item_id=first.id),
                            "School")[-1]
    validate_card(card)
    assert inputs_of(card)["when"] == "14 Mar 2025" and inputs_of(card)["kind"] == "worry"
    card = chronology_cards(await press(bot, SCHOOL, "chronology.save", agency="School", item_id=first.id,
                                        when="15/03/2025", what="Attendance fell to 68%", impact="", kind="worry",
                                        source=""), "School")[-1]
    assert "Attendance fell to 68%" in texts(card) and "15 Mar 2025" in texts(card)
    assert "≈ about spring 2025" in texts(card)

    await press(bot, SCHOOL, "chronology.remove", agency="School", item_id=first.id)
    card = chronology_cards(await press(bot, SCHOOL, "chronology.submit", agency="School"), "School")[-1]
    validate_card(card)
    assert T("chronology.status_submitted", count=1) in texts(card)
    assert [a["data"]["verb"] for a in actions_of(card)] == ["chronology.reopen"]   # no more editing

    audit = [(e["actor"], e["action"]) for e in await bot.parts.services.audit.entries(CASE)]
    for action in ("chronology.add", "chronology.edit", "chronology.remove", "chronology.submit",
                   "chronology.view_own"):
        assert ("user-school", action) in audit


async def test_someone_outside_the_case_is_refused(bot: BotHarness):
    sent = await press(bot, STRANGER, "chronology.open", agency="School")
    assert not cards_in(sent) and "can't do that" in sent[-1].text
    sent = await press(bot, POLICE, "chronology.add", agency="School", when="2025", what="x", kind="worry")
    assert "only write the chronology of your own agency" in sent[-1].text


# --- uploads --------------------------------------------------------------------------------------------

async def send_file(h: BotHarness, user: User, url: str, name: str) -> list[Sent]:
    before = len(h.connector.sent)
    attachment = {"contentType": FILE_DOWNLOAD_INFO, "name": name, "contentUrl": url,
                  "content": {"downloadUrl": url, "uniqueId": "file-1", "fileType": name.rsplit(".", 1)[-1]}}
    status, _ = await h.post(h.activity(user, attachments=[attachment]))
    assert status == 200
    return h.connector.sent[before:]


@pytest.mark.parametrize(("user", "agency", "name"), [(SCHOOL, "School", "chronology.csv"),
                                                     (POLICE, "Police", "chronology.xlsx")])
async def test_an_uploaded_file_keeps_valid_rows_and_reports_bad_ones(bot: BotHarness, file_server, validate_card,
                                                                      user, agency, name):
    files, base = file_server
    files[name] = _csv(ROWS) if name.endswith(".csv") else _xlsx(ROWS)
    prompt = cards_in(await press(bot, user, "chronology.upload", agency=agency))
    assert prompt and T("chronology.upload_title", agency=agency) in texts(prompt[-1])
    validate_card(prompt[-1])

    sent = await send_file(bot, user, base + name, name)
    assert sent[0].type == "typing", "reading the file shows the typing indicator first"
    card = chronology_cards(sent, agency)[-1]
    validate_card(card)
    shown = texts(card)
    assert f"Added 2 entries from {name}." in shown
    assert 'Row 4, column "Date": Date: "someday" is not a date I recognise' in shown
    assert 'Row 5, column "What happened"' in shown and 'Row 5, column "Strength, worry or neutral"' in shown
    assert "Attendance fell to 70%" in shown and "Good TA relationship" in shown

    # the upload is used up: a second file without pressing Upload is not taken
    sent = await send_file(bot, user, base + name, name)
    assert T("chronology.upload_unexpected").split(".")[0] in sent[-1].text


async def test_a_file_that_cannot_be_fetched_or_read_is_explained(bot: BotHarness, file_server):
    files, base = file_server
    await press(bot, SCHOOL, "chronology.upload", agency="School")
    sent = await send_file(bot, SCHOOL, base + "missing.csv", "missing.csv")
    assert "couldn't download missing.csv" in sent[-1].text
    files["notes.pdf"] = b"%PDF-1.4"
    sent = await send_file(bot, SCHOOL, base + "notes.pdf", "notes.pdf")
    assert "notes.pdf isn't a CSV or Excel" in sent[-1].text


# --- reminders and the pack (due work) ------------------------------------------------------------------------

async def _submit_school(h: BotHarness) -> None:
    await press(h, SCHOOL, "chronology.add", agency="School", when="14/03/2025", what="Attendance fell",
                impact="", kind="worry", source="")
    await press(h, SCHOOL, "chronology.submit", agency="School")


def _reminded(sent: list[Sent]) -> list[str]:
    return sorted(s.conversation_id for s in sent for c in s.cards if T("chronology.reminder_title") in texts(c))


async def test_agencies_that_have_not_submitted_are_reminded_before_and_on_the_due_date(bot: BotHarness, clock):
    services = bot.parts.services
    for user in (SCHOOL, POLICE, HV, FAC):
        await bot.say(user, "help")               # each has a personal chat with the bot
    await _submit_school(bot)
    before = len(bot.connector.sent)
    await services.due_work.run_due(datetime(2026, 1, 9, 8, 59, tzinfo=UTC))   # Fri 9 Jan, before 09:00
    assert _reminded(bot.connector.sent[before:]) == []
    await services.due_work.run_due(datetime(2026, 1, 9, 9, 0, tzinfo=UTC))
    first = bot.connector.sent[before:]
    assert _reminded(first) == ["personal-user-hv", "personal-user-police"]
    assert T("chronology.reminder_soon", agency="Police", due="Tue 13 Jan 2026") in texts(cards_in(first))
    again = len(bot.connector.sent)
    await services.due_work.run_due(datetime(2026, 1, 9, 15, 0, tzinfo=UTC))
    assert _reminded(bot.connector.sent[again:]) == []              # never twice

    await press(bot, POLICE, "chronology.add", agency="Police", when="June 2025", what="Call-out",
                impact="", kind="worry", source="")
    await press(bot, POLICE, "chronology.submit", agency="Police")
    on_the_day = len(bot.connector.sent)
    await services.due_work.run_due(datetime(2026, 1, 13, 9, 0, tzinfo=UTC))
    sent = bot.connector.sent[on_the_day:]
    assert _reminded(sent) == ["personal-user-hv"]
    assert "is due today" in texts(cards_in(sent))


async def test_the_session_pack_goes_to_the_facilitators_with_picture_document_evaluation_and_agenda(
        bot: BotHarness, clock, validate_card):
    services = bot.parts.services

    async def snapshot(case):
        return EvaluationSnapshot(answered=2, asked=4, average=3.5, scores=(3, 4), reasons=("Plans are unclear",))

    services.features[EVALUATION_PORT] = snapshot
    for user in (SCHOOL, FAC):
        await bot.say(user, "help")
    await _submit_school(bot)
    before = len(bot.connector.sent)
    await services.due_work.run_due(datetime(2026, 1, 16, 8, 0, tzinfo=UTC))
    assert not [c for c in cards_in(bot.connector.sent[before:]) if "Session pack" in texts(c)]
    await services.due_work.run_due(datetime(2026, 1, 16, 9, 0, tzinfo=UTC))   # 2 working days before
    packs = [(s, c) for s in bot.connector.sent[before:] for c in s.cards
             if T("pack.title", reference=scheduled_case().reference) in texts(c)]
    assert [s.conversation_id for s, _ in packs] == ["personal-user-fac"]       # attendees: not in Bolton
    pack = packs[0][1]
    validate_card(pack)
    assert len(__import__("json").dumps(pack)) < 28_000          # Teams' limit for a card message
    shown = texts(pack)
    for expected in ("Drift: attendance falling", "Zebedee says he likes his teaching assistant",
                     "Mum wants help with housing", "Agencies included", "School", "Health visiting, Police",
                     "2 of 4", "3.5 / 5", "Plans are unclear",
                     T("pack.agenda_heading", model=services.profile("bolton").model.name)):
        assert expected in shown, expected
    for section in services.profile("bolton").model.sections:
        assert section.title in shown and all(q in shown for q in section.questions)

    image = next(b for b in pack["body"] if b.get("type") == "Image")
    document = next(a["url"] for a in actions_of(pack) if a["title"] == T("chronology.button_document"))
    assert bot.client is not None
    picture = await bot.client.get(urlparse(image["url"]).path)
    assert picture.status == 200 and (await picture.read()).startswith(b"\x89PNG")
    got = await bot.client.get(urlparse(document).path)
    assert got.status == 200
    read = docx.Document(io.BytesIO(await got.read()))
    assert "Attendance fell" in [c.text for r in read.tables[0].rows for c in r.cells]
    audit = [(e["actor"], e["action"], e["allowed"]) for e in await services.audit.entries(CASE)]
    assert ("user-fac", "chronology.pack", True) in audit
    assert audit.count(("user-fac", "download", True)) == 2
    assert ("user-fac", "chronology.view", True) in audit

    again = len(bot.connector.sent)
    await services.due_work.run_due(datetime(2026, 1, 16, 12, 0, tzinfo=UTC))
    assert not any("Session pack" in texts(c) for c in cards_in(bot.connector.sent[again:]))


async def test_the_pack_shows_the_real_pre_session_evaluations_answered_so_far(bot: BotHarness, validate_card):
    """No port injected: the pack reads the evaluation feature's own stored answers."""
    from supervision.evaluation import EvaluationResponse, EvaluationStore, Phase, attendees

    services = bot.parts.services
    assert EVALUATION_PORT not in services.features
    case = await services.cases.require(CASE)
    people = attendees(case)
    assert len(people) >= 3

    def answer(doc):
        for person, score, why in ((people[0], 3, "Nobody owns the plan"), (people[1], 4, "")):
            doc.responses[f"pre:{person.key}"] = EvaluationResponse(
                respondent=person.key, name=person.name, agency=person.agency, phase=Phase.PRE, score=score, why=why)

    await EvaluationStore(services.store).update(CASE, case.session.number, answer)
    await bot.say(FAC, "help")
    before = len(bot.connector.sent)
    await services.due_work.run_due(datetime(2026, 1, 16, 9, 0, tzinfo=UTC))
    packs = [c for s in bot.connector.sent[before:] if s.conversation_id == "personal-user-fac" for c in s.cards
             if T("pack.title", reference=scheduled_case().reference) in texts(c)]
    assert len(packs) == 1
    validate_card(packs[0])
    shown = texts(packs[0])
    assert f"2 of {len(people)}" in shown and "3.5 / 5" in shown and "Nobody owns the plan" in shown


async def test_the_pack_goes_to_attendees_too_when_the_profile_says_so(make_config, clock, store, tmp_path: Path):
    profile = tmp_path / "share.toml"
    profile.write_text('extends = "bolton"\nid = "bolton_share"\n[record]\nshare_pack_with_attendees = true\n')
    app = create_app(make_config(PROFILE_FILES=str(profile)), clock=clock, store=store, start_background=False)
    h = await BotHarness(app=app, connector=FakeConnector()).start()
    try:
        case = scheduled_case(profile_id="bolton_share")
        case.request.invitees[2].status = InviteStatus.DECLINED
        await h.parts.services.cases.create(case)
        for user in (SCHOOL, POLICE, HV, FAC):
            await h.say(user, "help")
        before = len(h.connector.sent)
        await h.parts.services.due_work.run_due(datetime(2026, 1, 16, 9, 0, tzinfo=UTC))
        got = sorted(s.conversation_id for s in h.connector.sent[before:] for c in s.cards
                     if T("pack.title", reference=case.reference) in texts(c))
        assert got == ["personal-user-fac", "personal-user-police", "personal-user-school"]
    finally:
        await h.stop()


# --- the merged view ----------------------------------------------------------------------------------------

async def test_a_facilitator_sees_the_merged_chronology_and_a_stranger_does_not(bot: BotHarness, validate_card):
    await _submit_school(bot)
    sent = await bot.say(FAC, "chronology")
    merged = [c for c in cards_in(sent) if T("chronology.merged_title", reference=scheduled_case().reference) in texts(c)]
    assert len(merged) == 1
    validate_card(merged[0])
    assert "Health visiting, Police" in texts(merged[0])            # not yet submitted
    assert any(a["data"]["verb"] == "pack.show" for a in actions_of(merged[0]) if a["type"] == "Action.Submit")
    image = next(b for b in merged[0]["body"] if b.get("type") == "Image")
    assert re.search(r"3 agency lanes, 1 entries", image["altText"])
    sent = await bot.submit(STRANGER, {"verb": "chronology.view", "case_id": CASE})
    assert not cards_in(sent) and "can't do that" in sent[-1].text
    sent = await bot.submit(STRANGER, {"verb": "pack.show", "case_id": CASE})
    assert not cards_in(sent)
    refused = [e for e in await bot.parts.services.audit.entries(CASE) if not e["allowed"]]
    assert {e["actor"] for e in refused} == {"user-stranger"}


async def test_the_downloaded_picture_and_document_take_their_words_from_the_catalogue(bot: BotHarness, monkeypatch):
    import documents.chronology as documents

    monkeypatch.setattr(documents, "WORDS", {key: f"<{key}>" for key in documents.WORDS})   # what a bypass would show
    await _submit_school(bot)
    sent = await bot.say(FAC, "chronology")
    merged = next(c for c in cards_in(sent) if T("chronology.merged_title", reference=scheduled_case().reference)
                  in texts(c))
    document = next(a["url"] for a in actions_of(merged) if a["title"] == T("chronology.button_document"))
    assert bot.client is not None
    got = await bot.client.get(urlparse(document).path)
    assert got.status == 200
    read = docx.Document(io.BytesIO(await got.read()))
    text = "\n".join([p.text for p in read.paragraphs] + [c.text for t in read.tables for r in t.rows for c in r.cells])
    assert T("chronology.document.title") in text and T("chronology.document.column_what") in text
    assert "<" not in text


async def test_an_invitee_lists_their_chronologies(bot: BotHarness, validate_card):
    sent = await bot.say(POLICE, "chronology")
    card = cards_in(sent)[0]
    validate_card(card)
    assert scheduled_case().reference in texts(card) and "Police" in texts(card)
    assert "Draft, 0 entries, due Tue 13 Jan 2026" in texts(card)


async def test_in_gwent_the_social_worker_is_asked_to_merge_once_every_agency_has_submitted(
        make_config, clock, store, validate_card):
    app = create_app(make_config(DEFAULT_PROFILE="gwent"), clock=clock, store=store, start_background=False)
    h = await BotHarness(app=app, connector=FakeConnector()).start()
    lead = User("user-lead", "Lee Lead", email="lee@example.com")
    try:
        case = scheduled_case(profile_id="gwent")
        case.request.invitees = case.request.invitees[:2]                 # School and Police
        await h.parts.services.cases.create(case)
        for user in (SCHOOL, POLICE, lead):
            await h.say(user, "help")
        for user, agency in ((SCHOOL, "School"), (POLICE, "Police")):
            await h.submit(user, {"verb": "chronology.add", "case_id": CASE, "agency": agency, "when": "May 2025",
                                  "what": f"{agency} event", "impact": "", "kind": "worry", "source": ""})
            before = len(h.connector.sent)
            await h.submit(user, {"verb": "chronology.submit", "case_id": CASE, "agency": agency})
        to_lead = [c for s in h.connector.sent[before:] if s.conversation_id == "personal-user-lead" for c in s.cards]
        assert len(to_lead) == 1                                            # only after the last agency
        validate_card(to_lead[0])
        assert T("chronology.merge_ready") in texts(to_lead[0])
        assert T("chronology.merged_awaiting") in texts(to_lead[0])
        confirm = next(a["data"] for a in actions_of(to_lead[0]) if a.get("data", {}).get("verb") == "chronology.merge")
        sent = await h.submit(lead, confirm)
        assert T("chronology.merge_confirmed") in sent[0].text
        assert T("chronology.merged_confirmed", by="user-lead") in texts(cards_in(sent))
        refused = await h.submit(SCHOOL, confirm)
        assert "Only the lead professional" in refused[-1].text
    finally:
        await h.stop()


async def test_the_editor_card_stays_small_with_a_long_chronology(bot: BotHarness, validate_card):
    import json

    service = bot.parts.services.features["chronology"]
    school = bot.parts.services.actor("user-school")
    long_text = "Attendance and punctuality discussed at length with mum and the learning mentor. " * 24
    rows = [["Date", "What happened", "Impact on the child", "Strength, worry or neutral"]]
    rows += [[f"{day:02d}/03/2025", f"{day} {long_text}"[:1990], long_text[:1990], "worry"] for day in range(1, 31)]
    result = await service.import_rows(school, CASE, "School", rows)
    assert len(result.entries) == 30
    card = chronology_cards(await press(bot, SCHOOL, "chronology.open", agency="School"), "School")[-1]
    validate_card(card)
    assert len(json.dumps(card)) < 28_000                      # Teams' limit for a card message
    assert T("chronology.page", page=1, pages=3, count=30) in texts(card)
    later = next(a["data"] for a in actions_of(card) if a["title"] == T("chronology.button_later"))
    card = chronology_cards(await bot.submit(SCHOOL, later), "School")[-1]
    validate_card(card)
    assert T("chronology.page", page=2, pages=3, count=30) in texts(card)
    assert "**11 Mar 2025**" in texts(card) and "**10 Mar 2025**" not in texts(card)
    assert len(json.dumps(card)) < 28_000


async def test_template_links_serve_the_agencys_template(bot: BotHarness, clock):
    from openpyxl import load_workbook

    links = await _template_links(bot, clock)
    assert bot.client is not None
    got = await bot.client.get(urlparse(links[T("chronology.button_template_xlsx")]).path)
    assert got.status == 200
    book = load_workbook(io.BytesIO(await got.read()))
    assert [c.value for c in book["Chronology"][1]][:2] == ["Date", "What happened"]
    assert "School" in str(book["How to fill this in"]["A1"].value)
    got = await bot.client.get(urlparse(links[T("chronology.button_template_csv")]).path)
    assert got.status == 200 and (await got.read()).decode("utf-8-sig").startswith("Date,What happened")
    # the same link made for the School invitee is refused when its agency is not theirs
    downloads = bot.parts.services.downloads
    forged_for_police = await downloads.link(user_id="user-police", case_id=CASE, kind="chronology.template.csv",
                                             arg="School")
    assert (await bot.client.get(urlparse(forged_for_police).path)).status == 403


async def _template_links(bot: BotHarness, clock) -> dict[str, str]:
    for user in (SCHOOL, POLICE):
        await bot.say(user, "help")
    before = len(bot.connector.sent)
    await bot.parts.services.events.publish(DomainEvent("session.scheduled", CASE, clock.now(), {}))
    ask = next(c for s in bot.connector.sent[before:] if s.conversation_id == "personal-user-school"
               for c in s.cards if T("chronology.ask_title") in texts(c))
    return {a["title"]: a["url"] for a in actions_of(ask) if a["type"] == "Action.OpenUrl"}


async def test_the_templates_take_their_words_from_the_catalogue(bot: BotHarness, clock, monkeypatch):
    from openpyxl import load_workbook

    import documents.chronology as documents

    # what a bypass of the catalogue would show
    monkeypatch.setattr(documents, "TEMPLATE_WORDS", {key: f"<{key}>" for key in documents.TEMPLATE_WORDS})
    links = await _template_links(bot, clock)
    assert bot.client is not None
    got = await bot.client.get(urlparse(links[T("chronology.button_template_xlsx")]).path)
    assert got.status == 200
    book = load_workbook(io.BytesIO(await got.read()))
    assert book.sheetnames == [T("chronology.template.sheet_entries"), T("chronology.template.sheet_help")]
    columns = [T(f"chronology.template.column_{name}") for name in ("when", "what", "impact", "kind", "source")]
    assert [c.value for c in book.worksheets[0][1]] == columns
    assert [r[0] for r in book.worksheets[1].iter_rows(values_only=True)] == [
        T("chronology.template.heading", agency="School"), *(T(f"chronology.template.help_{n}") for n in range(1, 8))]
    validation = book.worksheets[0].data_validations.dataValidation[0]
    assert (validation.errorTitle, validation.error) == (T("chronology.template.kind_error_title"),
                                                          T("chronology.template.kind_error"))
    got = await bot.client.get(urlparse(links[T("chronology.button_template_csv")]).path)
    assert (await got.read()).decode("utf-8-sig").splitlines()[0] == ",".join(f'"{c}"' if "," in c else c
                                                                                for c in columns)


async def test_an_upload_with_the_catalogues_headings_is_read(bot: BotHarness, file_server, clock, monkeypatch):
    from openpyxl import load_workbook

    # a catalogue whose headings differ from the English ones the parser always knows
    other = {"chronology.template.sheet_entries": "Entries", "chronology.template.column_when": "When it was",
             "chronology.template.column_what": "Event", "chronology.template.column_kind": "Kind of event"}
    plain = Catalogue.text
    monkeypatch.setattr(Catalogue, "__call__", lambda self, key, /, **params: other.get(key) or plain(self, key, **params))
    links = await _template_links(bot, clock)
    assert bot.client is not None
    got = await bot.client.get(urlparse(links[T("chronology.button_template_xlsx")]).path)
    book = load_workbook(io.BytesIO(await got.read()))
    assert [c.value for c in book["Entries"][1]][:4] == ["When it was", "Event", "Impact on the child", "Kind of event"]
    book["Entries"].append(["14/03/2025", "Attendance fell to 70%", "Missing learning", "Worry", ""])
    book.move_sheet(T("chronology.template.sheet_help"), offset=-1)
    out = io.BytesIO()
    book.save(out)
    files, base = file_server
    files["filled.xlsx"] = out.getvalue()
    await press(bot, SCHOOL, "chronology.upload", agency="School")
    card = chronology_cards(await send_file(bot, SCHOOL, base + "filled.xlsx", "filled.xlsx"), "School")[-1]
    assert "Added 1 entries from filled.xlsx." in texts(card) or "Added 1 entry from filled.xlsx." in texts(card)
    assert "Attendance fell to 70%" in texts(card)


async def test_reminders_follow_the_session_when_it_moves_and_skip_times_already_past_when_it_was_set(
        bot: BotHarness, clock):
    from supervision.models import CaseState, Transition

    services = bot.parts.services
    for user in (SCHOOL, POLICE, HV):
        await bot.say(user, "help")
    await _submit_school(bot)

    def reschedule(case):         # moved a week later on Mon 12 Jan: due Tue 20 Jan, reminder Fri 16 Jan
        case.session.starts_at = datetime(2026, 1, 27, 10, 0, tzinfo=UTC)
        case.session.ends_at = datetime(2026, 1, 27, 11, 30, tzinfo=UTC)
        case.history.append(Transition(at=datetime(2026, 1, 12, 9, 0, tzinfo=UTC), actor="user-fac",
                                       event="reschedule", from_state=CaseState.SCHEDULED,
                                       to_state=CaseState.SCHEDULED))

    await services.cases.update(CASE, reschedule)
    before = len(bot.connector.sent)
    await services.due_work.run_due(datetime(2026, 1, 13, 9, 30, tzinfo=UTC))   # the old due date: nothing
    assert _reminded(bot.connector.sent[before:]) == []
    await services.due_work.run_due(datetime(2026, 1, 16, 9, 0, tzinfo=UTC))
    sent = bot.connector.sent[before:]
    assert _reminded(sent) == ["personal-user-hv", "personal-user-police"]
    assert "Tue 20 Jan 2026" in texts(cards_in(sent))

    def short_notice(case):       # moved again on Mon 19 Jan to Thu 22 Jan: due and reminder already past
        case.session.starts_at = datetime(2026, 1, 22, 10, 0, tzinfo=UTC)
        case.history.append(Transition(at=datetime(2026, 1, 19, 11, 0, tzinfo=UTC), actor="user-fac",
                                       event="reschedule", from_state=CaseState.SCHEDULED,
                                       to_state=CaseState.SCHEDULED))

    await services.cases.update(CASE, short_notice)
    again = len(bot.connector.sent)
    await services.due_work.run_due(datetime(2026, 1, 19, 12, 0, tzinfo=UTC))
    assert _reminded(bot.connector.sent[again:]) == []            # no late reminders for a date set after them
    pack_title = T("pack.title", reference=scheduled_case().reference)
    assert not [c for c in cards_in(bot.connector.sent[again:]) if pack_title in texts(c)]
    await services.due_work.run_due(datetime(2026, 1, 20, 9, 0, tzinfo=UTC))    # 2 working days before Thu 22nd
    packs = [s for s in bot.connector.sent[again:] for c in s.cards if pack_title in texts(c)]
    assert len(packs) == 1                   # to the facilitator, in a 1:1 chat the bot opened for them
    assert bot.connector.created[-1]["members"] == [{"id": "user-fac"}]


async def test_a_file_over_the_limit_is_not_read_past_the_limit(bot: BotHarness, file_server):
    from bot.files import FileTooLarge, IncomingFile, fetch, incoming_files

    files, base = file_server
    files["huge.csv"] = b"Date,What happened\n" + b"x" * (3 * 1024 * 1024)
    with pytest.raises(FileTooLarge):
        await fetch(IncomingFile("huge.csv", "csv", base + "huge.csv"), max_bytes=2 * 1024 * 1024)
    await press(bot, SCHOOL, "chronology.upload", agency="School")
    sent = await send_file(bot, SCHOOL, base + "huge.csv", "huge.csv")
    assert T("chronology.error_file_large", limit=2048) in sent[-1].text
    # cards and other attachments are not files
    activity = bot.activity(SCHOOL, attachments=[{"contentType": "application/vnd.microsoft.card.adaptive",
                                                  "content": {"type": "AdaptiveCard"}}])
    from botbuilder.schema import Activity

    assert incoming_files(Activity().deserialize(activity)) == []
