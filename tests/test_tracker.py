"""The partnership log: anonymised entries (no child or family identifiers, whatever was typed),
timeliness against each deadline, reading limited to the profile's tracker readers with refusals
audited, charts (PNG) and CSV/XLSX exports read back."""
from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import matplotlib.image
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from bot.config import Config
from cards.tracker import tracker_card
from documents.tracker_charts import impact_chart, sessions_chart, timeliness_chart
from documents.tracker_export import to_csv, to_xlsx
from storage.memory import MemoryStore
from supervision.catalogue import Catalogue
from supervision.clock import FixedClock
from supervision.codec import to_data
from supervision.errors import Forbidden
from supervision.lifecycle import Deadlines
from supervision.models import find_identifiers
from supervision.profile import load_preset
from supervision.record import parse
from supervision.repository import AuditLog
from supervision.roles import Actor, Directory
from supervision.tracker import COLUMNS, PartnershipLog, Scores, TrackerEntry, build_entry, stats
from tests.support.harness import BotHarness, User
from tests.test_record_helpers import ADELE, ALEX, IDENTIFIERS, LYNNE, PATTI, good_form, held_case

T = Catalogue("en")
BOLTON = load_preset("bolton")
ROBIN = User("user-id-8", "Robin Manager", email="robinm@example.com")      # business manager


def deadlines(profile):
    return Deadlines(profile, profile.calendar())


def published_case(case_id="case-rec-1", profile_id="bolton"):
    case = held_case(case_id, profile_id)
    case.session.actions_distributed_at = datetime(2026, 3, 5, 16, tzinfo=UTC)   # the deadline day
    case.session.minutes_done_at = datetime(2026, 4, 2, 12, tzinfo=UTC)          # after 31 Mar
    return case


def test_an_entry_holds_structured_fields_and_timeliness():
    case = published_case()
    record = parse(good_form(case), case, BOLTON, date(2026, 3, 4), full=True)
    entry = build_entry(case, record, BOLTON, deadlines(BOLTON), Scores(2.0, 3.5, 1.5, 2))
    assert entry.reference == case.reference and entry.held_on == date(2026, 3, 3)
    assert entry.actions_due == date(2026, 3, 5) and entry.actions_on_time is True
    assert entry.minutes_due == date(2026, 3, 31) and entry.minutes_on_time is False
    assert entry.session_due == date(2026, 2, 25) and entry.session_on_time is False
    assert entry.level_of_need == "Targeted Help"
    assert entry.agencies == ["GP", "Health", "Housing", "Primary School"]
    assert entry.themes == ["Neglect", "Housing"] and entry.action_count == 2 and entry.attendee_count == 2
    assert (entry.pre_mean, entry.post_mean, entry.impact) == (2.0, 3.5, 1.5)


FREE_TEXT = st.lists(st.sampled_from(IDENTIFIERS + ["the team", "school", "agreed", "zebedee", "SYNTHETIC street"]),
                     min_size=1, max_size=8).map(" ".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(learning=FREE_TEXT, other=FREE_TEXT, escalated_to=FREE_TEXT)
def test_no_identifier_reaches_the_log_whatever_was_typed(learning, other, escalated_to):
    case = published_case()
    form = good_form(case, learning_points=learning, other_themes=other, escalation_issues="Drift",
                     escalated_to=escalated_to)
    record = parse(form, case, BOLTON, date(2026, 3, 4), full=True)     # Bolton lets the record hold them
    entry = build_entry(case, record, BOLTON, deadlines(BOLTON), None)
    assert find_identifiers(json.dumps(to_data(entry)), IDENTIFIERS) == []
    exported = to_csv([entry]).decode("utf-8-sig")
    assert find_identifiers(exported, IDENTIFIERS) == []


def make_log(directory: Directory):
    clock = FixedClock(datetime(2026, 4, 6, 9, tzinfo=UTC))
    store = MemoryStore()
    audit = AuditLog(store, clock)
    return PartnershipLog(store=store, audit=audit, clock=clock, directory=directory, deadlines=deadlines), audit


async def test_only_tracker_readers_may_read_and_every_attempt_is_audited():
    from supervision.models import Role

    directory = Directory(administrators=frozenset({LYNNE.email}), business_managers=frozenset({ROBIN.email}),
                          coordinators=frozenset({"meganb@example.com"}))
    log, audit = make_log(directory)
    case = published_case()
    await log.add_session(case, parse(good_form(case), case, BOLTON, date(2026, 3, 4), full=True), BOLTON)

    def who(user: User) -> Actor:
        return Actor(user_id=user.id, email=user.email, global_roles=directory.roles_for(user.id, user.email))

    assert len(await log.read(who(LYNNE), BOLTON)) == 1
    assert len(await log.read(who(ROBIN), BOLTON)) == 1                 # Bolton: business manager and administrator
    cheshire = load_preset("cheshire_west")                             # defaults: administrators only
    with pytest.raises(Forbidden):
        await log.read(who(ROBIN), cheshire)
    for outsider in (ADELE, PATTI, User("user-id-1", "Megan Bowen", email="meganb@example.com")):
        with pytest.raises(Forbidden):
            await log.read(who(outsider), BOLTON)
    assert Role.COORDINATOR in who(User("user-id-1", "M", email="meganb@example.com")).global_roles
    entries = await audit.entries()
    reads = [(e["actor"], e["allowed"]) for e in entries if e["action"].startswith("tracker.") and e["action"] != "tracker.add"]
    assert reads == [(LYNNE.id, True), (ROBIN.id, True), (ROBIN.id, False), (ADELE.id, False), (PATTI.id, False),
                     ("user-id-1", False)]


def sample_entries() -> list[TrackerEntry]:
    entries = []
    for n, (month, pre, post, on_time) in enumerate([(1, 2.0, 3.0, True), (1, 1.5, 3.5, False), (2, None, None, True),
                                                       (3, 3.0, 4.0, True)]):
        entries.append(TrackerEntry(reference=f"MAGS-BOL-26010{n}-AB1{n}", profile_id="bolton", session_number=1,
                                    held_on=date(2026, month, 10 + n), actions_on_time=on_time, minutes_on_time=True,
                                    session_on_time=n != 1, level_of_need="Early Help", agencies=["GP", "Police"],
                                    themes=["Neglect"] if n % 2 else ["Neglect", "Housing"], pre_mean=pre,
                                    post_mean=post, impact=None if pre is None else post - pre,
                                    escalated=n == 3, learning_points="=HYPERLINK(\"x\")" if n == 0 else "ok"))
    return entries


def test_stats_count_timeliness_and_impact():
    s = stats(sample_entries())
    assert s.sessions == 4 and s.by_month == {"2026-01": 2, "2026-02": 1, "2026-03": 1}
    assert s.timeliness == {"session": (3, 4), "actions": (3, 4), "minutes": (4, 4)}
    assert s.mean_pre == 2.17 and s.mean_post == 3.5 and s.mean_impact == 1.33
    assert s.by_theme == {"Neglect": 4, "Housing": 2} and s.escalated == 1


def test_charts_are_pngs_of_the_expected_size(tmp_path):
    entries = sample_entries()
    s = stats(entries)
    for name, png in (("sessions", sessions_chart(s)), ("timeliness", timeliness_chart(s)),
                      ("impact", impact_chart(entries)), ("impact_empty", impact_chart([]))):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        path = tmp_path / f"{name}.png"
        path.write_bytes(png)
        height, width, _ = matplotlib.image.imread(path).shape
        assert (width, height) == (480, 256), name       # 6 x 3.2 inches at 80 dpi
        assert len(png) < 40_000


def test_exports_read_back_with_the_same_rows():
    entries = sample_entries()
    rows = list(csv.reader(io.StringIO(to_csv(entries).decode("utf-8-sig"))))
    assert rows[0] == [label for _, label in COLUMNS]
    assert [r[0] for r in rows[1:]] == [e.reference for e in entries]
    by_name = dict(zip(rows[0], rows[2], strict=True))
    assert by_name["Held"] == "2026-01-11" and by_name["Actions on time"] == "No" and by_name["Impact (post - pre)"] == "2.0"
    assert dict(zip(rows[0], rows[1], strict=True))["Key learning points"].startswith("'=")     # no formula injection
    book = load_workbook(io.BytesIO(to_xlsx(entries)))
    sheet = book.active
    values = list(sheet.values)
    assert list(values[0]) == [label for _, label in COLUMNS]
    assert len(values) == 5 and values[1][0] == entries[0].reference
    xl = dict(zip(values[0], values[4], strict=True))
    assert xl["Themes"] == "Neglect" and xl["Pre-session score"] == 3.0 and xl["Escalated"] == "Yes"
    assert dict(zip(values[0], values[3], strict=True))["Themes"] == "Neglect; Housing"
    assert xl["Held"].date() == date(2026, 3, 13)


def test_tracker_card_is_valid(validate_card):
    s = stats(sample_entries())
    card = tracker_card(T, BOLTON, s, charts=[("Sessions", "https://example.com/c.png")],
                        downloads=[("CSV", "https://example.com/x.csv")], scores_note="note")
    validate_card(card)
    assert "3 of 4 (75%)" in json.dumps(card)
    assert {"title": "Early Help", "value": "4"} in [f for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]]
    validate_card(tracker_card(T, BOLTON, stats([]), charts=[], downloads=[]))


# --- through the bot ----------------------------------------------------------------------------
@pytest.fixture
def config(make_config) -> Config:
    return make_config(ADMINISTRATORS=LYNNE.email)


async def test_the_tracker_command_for_an_administrator_and_a_refusal_for_anyone_else(harness: BotHarness, clock,
                                                                                      validate_card, monkeypatch):
    services = harness.parts.services
    clock.set(datetime(2026, 3, 4, 10, tzinfo=UTC))
    await services.cases.create(held_case())
    for user in (ADELE, PATTI, ALEX, LYNNE):
        await harness.say(user, "hello")
    await harness.submit(ADELE, {"verb": "record.publish", "case_id": "case-rec-1",
                                 **good_form(held_case(), learning_points="Zebedee Example was not heard")})
    clock.advance(days=1)

    replies = await harness.say(ALEX, "tracker")
    assert replies[-1].text == T("tracker.refused")
    refused = [e for e in await services.audit.entries() if e["action"] == "tracker.refused"]
    assert refused and refused[-1]["actor"] == ALEX.id and refused[-1]["allowed"] is False

    replies = await harness.say(LYNNE, "tracker")
    assert replies[0].type == "typing"                      # reading and counting the log shows progress
    card = replies[-1].cards[0]
    validate_card(card)
    body = json.dumps(card)
    assert "Sessions recorded" in body and "1 of 1 (100%)" in body
    assert find_identifiers(body, IDENTIFIERS) == []
    urls = {a["title"]: a["url"] for a in card["actions"]}
    images = [b["url"] for b in card["body"] if b["type"] == "Image"]
    assert len(images) == 3
    import documents.tracker_charts as charts

    titles: list[str] = []
    real_png = charts._png

    def capture(fig):
        titles.append(fig.axes[0].get_title())
        return real_png(fig)

    monkeypatch.setattr(charts, "_png", capture)
    assert harness.client is not None
    for url in [urls["Export CSV"], urls["Export Excel (XLSX)"], *images]:
        response = await harness.client.get(url[url.index("/downloads/"):])
        assert response.status == 200, url
        content = await response.read()
        assert find_identifiers(content.decode("latin-1"), IDENTIFIERS) == []
    csv_rows = list(csv.reader(io.StringIO((await (await harness.client.get(
        urls["Export CSV"][urls["Export CSV"].index("/downloads/"):])).read()).decode("utf-8-sig"))))
    assert csv_rows[0] == [T(f"tracker.column.{name}") for name, _ in COLUMNS]
    # the charts' words come from the catalogue
    assert sorted(titles) == sorted(T(f"tracker.chart.{k}_title") for k in ("sessions", "timeliness", "impact"))
    response = await harness.client.get(urls["Export CSV"][urls["Export CSV"].index("/downloads/"):])
    rows = list(csv.reader(io.StringIO((await response.read()).decode("utf-8-sig"))))
    learning = dict(zip(rows[0], rows[1], strict=True))["Key learning points"]
    assert learning == "[removed] was not heard"
    clock.advance(hours=2)         # the link has expired
    response = await harness.client.get(urls["Export CSV"][urls["Export CSV"].index("/downloads/"):])
    assert response.status == 410


async def test_scores_come_from_the_evaluation_feature_and_late_answers_are_picked_up(harness: BotHarness, clock):
    from dialogs.tracker import evaluation_scores
    from supervision.evaluation import EvaluationResponse, EvaluationStore, Phase

    services = harness.parts.services
    scores_for = evaluation_scores(services)
    assert scores_for is not None, "supervision.evaluation.session_impact is expected in this tree"
    clock.set(datetime(2026, 3, 4, 10, tzinfo=UTC))
    case = held_case()
    await services.cases.create(case)
    scores = await scores_for(case, 1)
    assert scores is not None and scores.pre_mean is None and scores.responses == 0
    await harness.submit(ADELE, {"verb": "record.publish", "case_id": case.id, **good_form(case)})
    lynne = services.actor(LYNNE.id, email=LYNNE.email)
    [entry] = await services.features["tracker"].read(lynne, services.profile())
    assert entry.impact is None and entry.evaluation_responses == 0

    def answers(doc):
        for who, pre, post in ((PATTI, 1, 4), (ALEX, 2, 3)):
            for phase, score in ((Phase.PRE, pre), (Phase.POST, post)):
                doc.responses[f"{phase.value}:{who.email}"] = EvaluationResponse(
                    respondent=who.email, name=who.name, agency="x", phase=phase, score=score)

    await EvaluationStore(services.store).update(case.id, 1, answers)      # answered after publishing
    [entry] = await services.features["tracker"].read(lynne, services.profile())
    assert (entry.pre_mean, entry.post_mean, entry.impact, entry.evaluation_responses) == (1.5, 3.5, 2.0, 2)
    assert isinstance(timedelta(), timedelta)


async def test_without_scores_the_log_still_records_and_later_scores_refresh():
    directory = Directory(administrators=frozenset({LYNNE.email}))
    clock = FixedClock(datetime(2026, 4, 6, 9, tzinfo=UTC))
    store = MemoryStore()
    current: list[Scores | None] = [None]

    async def scores_for(case, session):
        return current[0]

    from supervision.repository import CaseRepository

    cases = CaseRepository(store)
    case = published_case()
    await cases.create(case)
    log = PartnershipLog(store=store, audit=AuditLog(store, clock), clock=clock, directory=directory,
                         deadlines=deadlines, scores_for=scores_for, cases=cases)
    await log.add_session(case, parse(good_form(case), case, BOLTON, date(2026, 3, 4), full=True), BOLTON)
    reader = Actor(user_id=LYNNE.id, email=LYNNE.email, global_roles=directory.roles_for(LYNNE.id, LYNNE.email))
    [entry] = await log.read(reader, BOLTON)
    assert entry.scores_available is False and entry.impact is None
    current[0] = Scores(2.0, 4.0, 2.0, 3)
    [entry] = await log.read(reader, BOLTON)
    assert entry.scores_available is True and entry.impact == 2.0 and entry.evaluation_responses == 3


def test_without_the_evaluation_feature_the_port_falls_back_and_the_card_says_so(monkeypatch, validate_card):
    import sys

    from dialogs.tracker import evaluation_scores

    monkeypatch.setitem(sys.modules, "supervision.evaluation", None)     # as if the module were absent
    assert evaluation_scores(object()) is None  # type: ignore[arg-type]
    card = tracker_card(T, BOLTON, stats(sample_entries()), charts=[], downloads=[],
                        scores_note=T("tracker.card.no_scores"))
    validate_card(card)
    assert "not available in this installation" in json.dumps(card)


def test_the_charts_draw_the_logs_figures(monkeypatch):
    """What each chart draws (bars, their numbers, labels), read from the figure before it is saved."""
    import documents.tracker_charts as charts

    drawn: dict[str, dict] = {}
    real = charts._png

    def capture(fig):
        fig.canvas.draw()
        ax = fig.axes[0]
        drawn[ax.get_title()] = {
            "bars": [(round(p.get_width(), 2), round(p.get_height(), 2), p.get_hatch()) for p in ax.patches],
            "numbers": [t.get_text() for t in ax.texts],
            "x": [t.get_text() for t in ax.get_xticklabels()], "y": [t.get_text() for t in ax.get_yticklabels()],
            "legend": [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else []}
        return real(fig)

    monkeypatch.setattr(charts, "_png", capture)
    entries = sample_entries()
    s = stats(entries)
    sessions_chart(s), timeliness_chart(s), impact_chart(entries)

    sessions = drawn["Sessions recorded per month"]
    assert sessions["x"] == ["2026-01", "2026-02", "2026-03"]
    assert [h for _, h, _ in sessions["bars"]] == [2, 1, 1] and sessions["numbers"] == ["2", "1", "1"]
    timeliness = drawn["Deadlines met (%)"]
    assert [w for w, _, _ in timeliness["bars"]] == [75.0, 75.0, 100.0]
    assert timeliness["numbers"] == ["3/4", "3/4", "4/4"]                 # numbers, not colour alone
    assert timeliness["y"] == ["Session held in time", "Actions sent in time", "Minutes done in time"]
    assert all(hatch == "//" for _, _, hatch in timeliness["bars"])
    impact = drawn["Evaluation: before and after (0-5)"]
    heights = [h for _, h, _ in impact["bars"]]
    assert heights == [2.0, 1.5, 3.0, 3.0, 3.5, 4.0]          # before, then after, for the three scored sessions
    assert [hatch for _, _, hatch in impact["bars"]] == [None] * 3 + [".."] * 3   # after is hatched too
    assert impact["legend"] == ["Before", "After"]
    assert impact["x"] == ["AB10/1", "AB11/1", "AB13/1"]      # references' tails, nothing identifying


def test_every_word_on_the_charts_is_the_one_given(monkeypatch):
    """The bot gives the catalogue's words (dialogs.tracker.chart_words); nothing else is drawn."""
    import documents.tracker_charts as charts
    from dialogs.tracker import chart_words

    words = chart_words(T)
    assert set(words) == set(charts.WORDS) and all(words.values())
    marked = {key: f"<{key}>" for key in charts.WORDS}
    drawn: list[str] = []
    real = charts._png

    def capture(fig):
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend()
        drawn.extend([ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.texts),
                      *(t.get_text() for t in ax.get_yticklabels()),
                      *((t.get_text() for t in legend.get_texts()) if legend else ())])
        return real(fig)

    monkeypatch.setattr(charts, "_png", capture)
    entries = sample_entries()
    empty = stats([])
    charts.sessions_chart(stats(entries), marked), charts.timeliness_chart(empty, marked)
    charts.impact_chart(entries, marked), charts.impact_chart([], marked)
    words_drawn = {text for text in drawn if text and not text.replace(".", "").replace("/", "").isdigit()}
    words_drawn -= {"-"}                                                     # the empty month axis
    assert words_drawn == set(marked.values())


def test_the_exports_words_are_the_ones_given():
    """Headings, yes/no and the sheet title come from the catalogue ([tracker.column], [tracker.export])."""
    from dialogs.tracker import export_words
    from documents.tracker_export import ExportWords

    words = export_words(T)
    assert list(words.headings) == [T(f"tracker.column.{name}") for name, _ in COLUMNS]
    assert words.yes_no == (T("tracker.export.yes"), T("tracker.export.no"))
    marked = ExportWords(headings=tuple(f"<{name}>" for name, _ in COLUMNS), yes_no=("<yes>", "<no>"),
                         sheet_title="<sheet>")
    entries = sample_entries()
    rows = list(csv.reader(io.StringIO(to_csv(entries, marked).decode("utf-8-sig"))))
    assert rows[0] == list(marked.headings)
    by_name = dict(zip(rows[0], rows[2], strict=True))
    assert by_name["<actions_on_time>"] == "<no>" and by_name["<minutes_on_time>"] == "<yes>"
    sheet = load_workbook(io.BytesIO(to_xlsx(entries, marked))).active
    assert sheet.title == "<sheet>" and [c.value for c in sheet[1]] == list(marked.headings)
    assert "<no>" in [c.value for c in sheet[3]]
