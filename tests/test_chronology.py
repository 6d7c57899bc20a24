"""Chronologies, the domain: dates as practitioners write them, the merge (order, window, missing
agencies, counts), file rows with bad cells, and the use cases' role checks and audit."""
from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from documents.chronology import FileFormatError, read_table, template_csv, template_xlsx
from storage.memory import MemoryStore
from supervision.calendar import WorkingCalendar
from supervision.chronology import (
    AgencyChronology,
    ChronologyService,
    Kind,
    Precision,
    SubmissionStatus,
    chronology_dates,
    entries_from_rows,
    entry_from_fields,
    merge,
    parse_when,
)
from supervision.clock import FixedClock
from supervision.errors import DomainError, FieldError, Forbidden, ValidationFailed
from supervision.lifecycle import Deadlines
from supervision.models import (
    Case,
    CaseState,
    FacilitatorAssignment,
    Invitee,
    InviteStatus,
    Person,
    SessionPlan,
    Transition,
)
from supervision.profile import load_preset
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Actor

UTC = UTC
REQUESTED = datetime(2025, 12, 1, 10, 0, tzinfo=UTC)
SESSION = datetime(2026, 1, 20, 10, 0, tzinfo=UTC)     # Tue 20 Jan 2026, 10:00 in the UK (GMT)
AGENCIES = ("School", "Police", "Health visiting")


# --- a scheduled case, built directly (another helper builds scheduling) -----------------------------

def scheduled_case(case_id: str = "case-chron-1", profile_id: str = "bolton", *, session: datetime = SESSION,
                   users: dict[str, str] | None = None, state: CaseState = CaseState.SCHEDULED) -> Case:
    """Invitees: School (user-school), Police (user-police), Health visiting (user-hv); facilitator
    user-fac; lead professional (social worker) user-lead of Children's Social Care; requester
    user-req. ``users`` maps a role key to another Teams user id."""
    u = {"school": "user-school", "police": "user-police", "hv": "user-hv", "fac": "user-fac",
         "lead": "user-lead", "req": "user-req", **(users or {})}
    case = Case(id=case_id, reference=f"MAGS-{profile_id[:3].upper()}-251201-{case_id[-4:].upper()}",
                profile_id=profile_id, state=state, created_at=REQUESTED)
    r = case.request
    r.requester = Person(name="Rita Requester", email="rita@example.com", organisation="School", user_id=u["req"])
    r.lead_professional = Person(name="Lee Lead", email="lee@example.com", organisation="Children's Social Care",
                                 user_id=u["lead"])
    r.child.forename, r.child.surname = "Zebedee", "Example"
    r.child.address = "1 Synthetic Street"
    r.reason = "Drift: attendance falling and missed health appointments."
    r.child_voice = "Zebedee says he likes his teaching assistant."
    r.family_voice = "Mum wants help with housing."
    r.level_of_need = "Targeted Help"
    r.invitees = [
        Invitee(agency="School", name="Sam School", email="sam@example.com", user_id=u["school"],
                status=InviteStatus.CONFIRMED),
        Invitee(agency="Police", name="Pat Police", email="pat@example.com", user_id=u["police"],
                status=InviteStatus.INVITED),
        Invitee(agency="Health visiting", name="Hana Health", email="hana@example.com", user_id=u["hv"],
                status=InviteStatus.INVITED),
    ]
    case.facilitators = [FacilitatorAssignment(name="Fay Facilitator", email="fay@example.com", agency="Health",
                                               user_id=u["fac"], lead=True)]
    case.session = SessionPlan(number=1, starts_at=session, ends_at=session.replace(hour=11, minute=30))
    case.history = [Transition(at=REQUESTED, actor=u["req"], event="submit", from_state=None,
                               to_state=CaseState.REQUESTED),
                    Transition(at=datetime(2026, 1, 2, 9, 0, tzinfo=UTC), actor=u["fac"], event="schedule",
                               from_state=CaseState.FACILITATORS_ASSIGNED, to_state=CaseState.SCHEDULED)]
    return case


def actor(user_id: str) -> Actor:
    return Actor(user_id=user_id, name=user_id)


def submitted(agency: str, rows: list[tuple[str, str, str]]) -> AgencyChronology:
    chronology = AgencyChronology(case_id="case-chron-1", agency=agency, status=SubmissionStatus.SUBMITTED)
    for when, what, kind in rows:
        chronology.entries.append(entry_from_fields({"when": when, "what": what, "kind": kind}, agency=agency))
    return chronology


# --- dates as written --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "precision", "earliest", "latest"), [
    ("14/03/2025", Precision.DAY, date(2025, 3, 14), date(2025, 3, 14)),
    ("2025-03-14", Precision.DAY, date(2025, 3, 14), date(2025, 3, 14)),
    ("14th March 2025", Precision.DAY, date(2025, 3, 14), date(2025, 3, 14)),
    ("1/2/25", Precision.DAY, date(2025, 2, 1), date(2025, 2, 1)),           # UK order: 1 February
    ("March 2025", Precision.MONTH, date(2025, 3, 1), date(2025, 3, 31)),
    ("Feb 2024", Precision.MONTH, date(2024, 2, 1), date(2024, 2, 29)),
    ("03/2025", Precision.MONTH, date(2025, 3, 1), date(2025, 3, 31)),
    ("about spring 2025", Precision.APPROXIMATE, date(2025, 3, 1), date(2025, 5, 31)),
    ("Around summer 2024", Precision.APPROXIMATE, date(2024, 6, 1), date(2024, 8, 31)),
    ("winter 2025", Precision.APPROXIMATE, date(2024, 12, 1), date(2025, 2, 28)),
    ("early 2025", Precision.APPROXIMATE, date(2025, 1, 1), date(2025, 4, 30)),
    ("late March 2025", Precision.APPROXIMATE, date(2025, 3, 21), date(2025, 3, 31)),
    ("2024", Precision.APPROXIMATE, date(2024, 1, 1), date(2024, 12, 31)),
    ("Q3 2025", Precision.APPROXIMATE, date(2025, 7, 1), date(2025, 9, 30)),
    ("about March 2025", Precision.APPROXIMATE, date(2025, 3, 1), date(2025, 3, 31)),
    ("approx. 14/03/2025", Precision.APPROXIMATE, date(2025, 2, 28), date(2025, 3, 28)),
])
def test_dates_are_kept_as_written_with_precision_and_range(text, precision, earliest, latest):
    when = parse_when(text)
    assert (when.precision, when.earliest, when.latest) == (precision, earliest, latest)
    assert when.earliest <= when.sort_date <= when.latest
    assert when.text == text
    assert when.marked().startswith("≈") == (precision is Precision.APPROXIMATE)


def test_a_spreadsheet_date_cell_is_exact():
    when = parse_when(datetime(2025, 3, 14, 0, 0))
    assert when.precision is Precision.DAY and when.earliest == date(2025, 3, 14)


@pytest.mark.parametrize("text", ["31/02/2025", "next Tuesday", "13/13/2025", "spring", "about", "1850", "25/12"])
def test_dates_that_are_not_dates_name_the_field(text):
    with pytest.raises(FieldError) as caught:
        parse_when(text, "Date")
    assert caught.value.field == "Date"
    assert caught.value.key == "chronology.error_date"


def test_a_missing_date_says_so():
    with pytest.raises(FieldError) as caught:
        parse_when("  ", "when")
    assert caught.value.key == "chronology.error_date_missing"


def test_an_entry_reports_every_bad_field_at_once():
    with pytest.raises(ValidationFailed) as caught:
        entry_from_fields({"when": "someday", "what": " ", "kind": "maybe"}, agency="School")
    assert sorted(e.field for e in caught.value.errors) == ["kind", "what", "when"]


# --- the merge -----------------------------------------------------------------------------------------

def test_merge_orders_exact_month_and_approximate_dates_sensibly():
    case = scheduled_case()
    merged = merge(case, [
        submitted("School", [("14/03/2025", "Attendance fell to 70%", "worry"),
                             ("about spring 2025", "Warm relationship with TA", "strength"),
                             ("March 2025", "Parents' evening missed", "worry")]),
        submitted("Police", [("02/03/2025", "Call-out to the home", "worry"),
                             ("15/04/2025", "Mum engaged with the DA worker", "strength"),
                             ("early 2025", "Neighbour reports shouting", "neutral")]),
    ], window_start=date(2024, 12, 1), window_end=date(2026, 1, 20))
    order = [item.entry.what for item in merged.entries]
    assert order == [
        "Neighbour reports shouting",         # early 2025: January to April, placed at 1 March
        "Call-out to the home",               # 2 March
        "Attendance fell to 70%",             # 14 March
        "Parents' evening missed",            # March 2025: placed mid-month (16 March)
        "Mum engaged with the DA worker",     # 15 April, exact
        "Warm relationship with TA",          # about spring 2025: mid-April (15 April), after the exact date
    ]
    dates = [item.entry.when.sort_date for item in merged.entries]
    assert dates == sorted(dates)
    # on the same day, the exact date comes before the approximate one
    assert [i.entry.when.precision for i in merged.entries[-2:]] == [Precision.DAY, Precision.APPROXIMATE]
    assert [i.approximate for i in merged.entries] == [True, False, False, False, False, True]


def test_merge_flags_entries_outside_the_window():
    case = scheduled_case()
    merged = merge(case, [submitted("School", [
        ("30/11/2024", "Before the window", "worry"),
        ("about November 2024", "Straddles nothing: all of November is before", "worry"),
        ("about winter 2025", "Dec 2024 to Feb 2025: partly inside", "strength"),
        ("01/12/2024", "First day of the window", "neutral"),
        ("21/01/2026", "After the session", "neutral"),
    ])], window_start=date(2024, 12, 1), window_end=date(2026, 1, 20))
    flagged = {i.entry.what for i in merged.outside_window}
    assert flagged == {"Before the window", "Straddles nothing: all of November is before", "After the session"}


def test_merge_lists_agencies_that_have_not_submitted_and_drafts():
    case = scheduled_case()
    draft = AgencyChronology(case_id=case.id, agency="Health visiting")
    draft.entries.append(entry_from_fields({"when": "May 2025", "what": "Missed check", "kind": "worry"},
                                           agency="Health visiting"))
    merged = merge(case, [submitted("School", [("14/03/2025", "x", "worry")]), draft],
                   window_start=date(2024, 12, 1), window_end=date(2026, 1, 20))
    assert merged.expected == ["Health visiting", "Police", "School"]
    assert merged.submitted == ["School"]
    assert merged.missing == ["Health visiting", "Police"]
    assert merged.drafts == ["Health visiting"]
    assert [e.entry.what for e in merged.entries] == ["x"]       # drafts are not merged
    assert merged.lanes == ["Health visiting", "Police", "School"]   # every agency keeps its lane


def test_merge_counts_strengths_and_worries_by_agency_and_by_month():
    case = scheduled_case()
    merged = merge(case, [
        submitted("School", [("14/03/2025", "a", "worry"), ("20/03/2025", "b", "strength"),
                             ("April 2025", "c", "worry")]),
        submitted("Police", [("01/03/2025", "d", "worry"), ("about spring 2025", "e", "neutral")]),
    ], window_start=date(2024, 12, 1), window_end=date(2026, 1, 20))
    school, police = merged.by_agency_counts["School"], merged.by_agency_counts["Police"]
    assert (school.strengths, school.worries, school.neutral) == (1, 2, 0)
    assert (police.strengths, police.worries, police.neutral) == (0, 1, 1)
    assert list(merged.by_month_counts) == ["2025-03", "2025-04"]
    march, april = merged.by_month_counts["2025-03"], merged.by_month_counts["2025-04"]
    assert (march.strengths, march.worries) == (1, 2)
    assert (april.worries, april.neutral) == (1, 1)     # "about spring 2025" sits in mid-April
    assert merged.totals.total == 5
    grouped = merged.by_agency()
    assert [e.entry.what for e in grouped["School"]] == ["a", "b", "c"]
    assert grouped["Health visiting"] == []


def test_dates_of_the_stage_come_from_the_profile():
    case = scheduled_case()
    profile = load_preset("bolton")
    dates = chronology_dates(case, Deadlines(profile, WorkingCalendar(profile.nation)))
    assert dates.requested_on == date(2025, 12, 1)
    assert dates.window_start == date(2024, 12, 1)             # 12 months before the request
    assert dates.window_end == date(2026, 1, 20)
    assert dates.due == date(2026, 1, 13)                      # 5 working days before Tue 20 Jan
    assert dates.reminder == date(2026, 1, 9)                  # 2 working days before the due date
    assert dates.pack == date(2026, 1, 16)                     # 2 working days before the session


def test_a_profile_that_sets_its_own_window_and_lead_times_is_followed():
    import dataclasses

    case = scheduled_case()
    bolton = load_preset("bolton")
    profile = dataclasses.replace(bolton, timescales=dataclasses.replace(
        bolton.timescales, chronology_window_months=6, chronology_due_working_days_before=3,
        chronology_reminder_working_days_before_due=1))
    dates = chronology_dates(case, Deadlines(profile, WorkingCalendar(profile.nation)))
    assert dates.window_start == date(2025, 6, 1)              # 6 months before the request of 1 Dec 2025
    assert dates.due == date(2026, 1, 15)                      # 3 working days before Tue 20 Jan
    assert dates.reminder == date(2026, 1, 14)                 # 1 working day before the due date


# --- file rows ---------------------------------------------------------------------------------------------

ROWS = [
    ["Date", "What happened", "Impact on the child", "Strength, worry or neutral", "Source agency"],
    ["14/03/2025", "Attendance fell to 70%", "Missing learning", "Worry", ""],
    ["", "", "", "", ""],                                                        # blank: skipped
    ["someday", "Call-out", "", "worry", ""],                                    # row 4: bad date
    ["about spring 2025", "", "", "banana", ""],                                 # row 5: two bad cells
    ["March 2025", "Good TA relationship", "Feels safe at school", "strength", "Health visiting"],
]


def test_rows_keep_the_valid_ones_and_report_bad_cells_by_row_and_column():
    result = entries_from_rows(ROWS, agency="School")
    assert [e.what for e in result.entries] == ["Attendance fell to 70%", "Good TA relationship"]
    assert result.entries[1].source == "Health visiting"
    assert result.entries[0].source == "School"
    assert result.rows_read == 4
    problems = {(p.row, p.column, p.key) for p in result.problems}
    assert problems == {(4, "Date", "chronology.error_date"),
                        (5, "What happened", "chronology.error_what_missing"),
                        (5, "Strength, worry or neutral", "chronology.error_kind")}
    assert result.bad_rows == [4, 5]


def test_rows_with_a_missing_column_are_reported_on_the_heading_row():
    result = entries_from_rows([["Date", "What happened"], ["14/03/2025", "x"]], agency="School")
    assert result.entries == []
    assert [(p.row, p.column, p.key) for p in result.problems] == [
        (1, "Strength, worry or neutral", "chronology.error_column_missing")]


def _csv(rows: list[list[str]], delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def _xlsx(rows: list[list[object]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append([None if v == "" else v for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_csv_upload_with_bad_rows(delimiter):
    rows = read_table(_csv(ROWS, delimiter), "chronology.csv")
    result = entries_from_rows(rows, agency="School")
    assert len(result.entries) == 2
    assert {(p.row, p.column) for p in result.problems} == {(4, "Date"), (5, "What happened"),
                                                             (5, "Strength, worry or neutral")}


def test_xlsx_upload_with_bad_rows_and_real_date_cells():
    rows = [list(r) for r in ROWS]
    rows[1][0] = datetime(2025, 3, 14)           # Excel turned the typed date into a date cell
    result = entries_from_rows(read_table(_xlsx(rows), "chronology.xlsx"), agency="School")
    assert [(e.when.precision, e.when.earliest) for e in result.entries] == [
        (Precision.DAY, date(2025, 3, 14)), (Precision.MONTH, date(2025, 3, 1))]
    assert {(p.row, p.column) for p in result.problems} == {(4, "Date"), (5, "What happened"),
                                                             (5, "Strength, worry or neutral")}


def test_the_templates_read_back_with_the_expected_headings():
    for content, name in ((template_csv(), "t.csv"), (template_xlsx("School"), "t.xlsx")):
        rows = read_table(content, name)
        assert rows[0][:5] == ["Date", "What happened", "Impact on the child", "Strength, worry or neutral",
                               "Source agency"], name
        result = entries_from_rows(rows, agency="School")
        assert result.problems == [] and result.entries == [], name


# Invented template words, as another catalogue could give them (the bot passes the catalogue's).
OTHER_WORDS = {"sheet_entries": "Entries", "sheet_help": "Guidance", "heading": "Record of {agency}",
               "column_when": "When it was", "column_what": "Event", "column_impact": "Effect on the young person",
               "column_kind": "Kind of event", "column_source": "Told by",
               **{f"help_{n}": f"Guidance line {n}" for n in range(1, 8)}}


def test_the_templates_take_their_words_from_the_caller_and_read_back_with_them():
    from openpyxl import load_workbook

    from documents.chronology import template_headings

    headings = ["When it was", "Event", "Effect on the young person", "Kind of event", "Told by"]
    assert list(template_headings(OTHER_WORDS).values()) == headings
    assert template_csv(OTHER_WORDS).decode("utf-8-sig").splitlines()[0] == ",".join(headings)
    content = template_xlsx("School", words=OTHER_WORDS)
    book = load_workbook(io.BytesIO(content))
    assert book.sheetnames == ["Entries", "Guidance"]
    assert [c.value for c in book["Entries"][1]] == headings
    assert [r[0] for r in book["Guidance"].iter_rows(values_only=True)] == [
        "Record of School", *(f"Guidance line {n}" for n in range(1, 8))]
    # the file as filled in: rows under the template's own headings are read, on its own sheet
    book["Entries"].append(["14/03/2025", "Attendance fell", "Missed learning", "Worry", ""])
    book.move_sheet("Guidance", offset=-1)                        # not the first sheet any more
    out = io.BytesIO()
    book.save(out)
    rows = read_table(out.getvalue(), "t.xlsx", words=OTHER_WORDS)
    assert rows[0] == headings
    names = template_headings(OTHER_WORDS)
    result = entries_from_rows(rows, agency="School", column_names=names)
    assert result.problems == [] and [e.what for e in result.entries] == ["Attendance fell"]
    # a CSV with those headings and semicolons: the delimiter is told by the template's headings
    rows = read_table(_csv([headings, ["March 2025", "Good TA", "", "strength", ""]], ";"), "t.csv",
                      words=OTHER_WORDS)
    assert [e.what for e in entries_from_rows(rows, agency="School", column_names=names).entries] == ["Good TA"]
    # the English headings stay accepted alongside, and a missing column is named as the template names it
    assert [e.what for e in entries_from_rows(ROWS, agency="School", column_names=names).entries] == [
        "Attendance fell to 70%", "Good TA relationship"]
    missing = entries_from_rows([["Event"], ["x"]], agency="School", column_names=names)
    assert [(p.row, p.column) for p in missing.problems] == [(1, "When it was"), (1, "Kind of event")]
    # without the template's headings those columns are not recognised (the parser is told, not guessing)
    assert entries_from_rows([headings, ["March 2025", "x", "", "worry", ""]], agency="School").entries == []


def test_files_that_are_not_csv_or_xlsx_are_refused_by_name():
    with pytest.raises(FileFormatError) as caught:
        read_table(b"%PDF-1.4", "notes.pdf", "pdf")
    assert caught.value.key == "chronology.error_file_type"
    with pytest.raises(FileFormatError):
        read_table(b"not a zip", "broken.xlsx")


# --- use cases: roles, audit, storage -----------------------------------------------------------------------

@pytest.fixture
async def service() -> tuple[ChronologyService, AuditLog, FixedClock]:
    store = MemoryStore()
    clock = FixedClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    cases, audit = CaseRepository(store), AuditLog(store, clock)
    await cases.create(scheduled_case())
    profile = load_preset("bolton")
    svc = ChronologyService(store, cases, audit, clock,
                            lambda case: Deadlines(profile, WorkingCalendar(profile.nation)))
    return svc, audit, clock


async def test_an_invitee_writes_and_submits_their_agency_chronology(service):
    svc, audit, _ = service
    school = actor("user-school")
    entry = await svc.add_entry(school, "case-chron-1", "School",
                                {"when": "14/03/2025", "what": "Attendance fell", "kind": "worry"})
    await svc.add_entry(school, "case-chron-1", "School",
                        {"when": "about spring 2025", "what": "TA relationship", "kind": "strength"})
    await svc.edit_entry(school, "case-chron-1", "School", entry.id,
                         {"when": "15/03/2025", "what": "Attendance fell to 70%", "kind": "worry"})
    _, chronology = await svc.open(school, "case-chron-1")
    assert chronology.agency == "School" and len(chronology.entries) == 2
    assert chronology.entry(entry.id).when.earliest == date(2025, 3, 15)
    done = await svc.submit(school, "case-chron-1", "School")
    assert done.submitted
    with pytest.raises(DomainError) as caught:
        await svc.add_entry(school, "case-chron-1", "School", {"when": "2025", "what": "late", "kind": "neutral"})
    assert caught.value.key == "chronology.error_submitted"
    await svc.reopen(school, "case-chron-1", "School")
    await svc.remove_entry(school, "case-chron-1", "School", entry.id)
    await svc.submit(school, "case-chron-1", "School")
    merged = await svc.merged(actor("user-fac"), "case-chron-1")
    assert [e.entry.what for e in merged.entries] == ["TA relationship"]
    assert merged.missing == ["Health visiting", "Police"]
    actions = [(e["actor"], e["action"], e["allowed"]) for e in await audit.entries("case-chron-1")]
    assert ("user-school", "chronology.submit", True) in actions
    assert ("user-fac", "chronology.view", True) in actions


async def test_only_case_members_see_chronologies_and_refusals_are_audited(service):
    svc, audit, _ = service
    with pytest.raises(Forbidden):
        await svc.merged(actor("user-stranger"), "case-chron-1")
    with pytest.raises(Forbidden):
        await svc.open(actor("user-stranger"), "case-chron-1", "School")
    refused = [e for e in await audit.entries("case-chron-1") if not e["allowed"]]
    assert {e["action"] for e in refused} == {"chronology.view", "chronology.view_own"}
    assert all(e["actor"] == "user-stranger" for e in refused)


async def test_nobody_writes_another_agencys_chronology(service):
    svc, audit, _ = service
    with pytest.raises(Forbidden) as caught:
        await svc.add_entry(actor("user-police"), "case-chron-1", "School",
                            {"when": "2025", "what": "x", "kind": "worry"})
    assert caught.value.key == "chronology.error_not_your_agency"
    with pytest.raises(Forbidden):       # a facilitator reads but does not write
        await svc.add_entry(actor("user-fac"), "case-chron-1", "Health", {"when": "2025", "what": "x", "kind": "worry"})
    assert any(not e["allowed"] for e in await audit.entries("case-chron-1"))


async def test_an_empty_chronology_cannot_be_submitted(service):
    svc, _, _ = service
    with pytest.raises(DomainError) as caught:
        await svc.submit(actor("user-police"), "case-chron-1", "Police")
    assert caught.value.key == "chronology.error_empty"


async def test_import_keeps_valid_rows_skips_duplicates_and_audits(service):
    svc, audit, _ = service
    school = actor("user-school")
    first = await svc.import_rows(school, "case-chron-1", "School", ROWS, filename="chron.csv")
    again = await svc.import_rows(school, "case-chron-1", "School", ROWS, filename="chron.csv")
    assert len(first.entries) == 2 and first.bad_rows == [4, 5]
    assert again.entries == [] and again.duplicates == 2
    _, chronology = await svc.open(school, "case-chron-1", "School")
    assert len(chronology.entries) == 2
    assert all(e.added_by == "user-school" for e in chronology.entries)
    imports = [e for e in await audit.entries("case-chron-1") if e["action"] == "chronology.import"]
    assert imports[0]["what"] == "School: 2 added, 2 bad rows"


async def test_the_lead_professional_writes_for_their_own_organisation(service):
    svc, _, _ = service
    lead = actor("user-lead")
    assert await svc.my_agencies(lead, "case-chron-1") == ["Children's Social Care"]
    await svc.add_entry(lead, "case-chron-1", "Children's Social Care",
                        {"when": "June 2025", "what": "Strategy discussion", "kind": "neutral"})
    await svc.submit(lead, "case-chron-1", "Children's Social Care")
    merged = await svc.merged(lead, "case-chron-1")
    assert merged.submitted == ["Children's Social Care"]
    assert merged.lanes[-1] == "Children's Social Care"      # not asked, but submitted: a lane after the asked ones


async def test_chronologies_close_once_the_session_is_held(service):
    svc, _, _ = service
    await svc.cases.update("case-chron-1", lambda c: setattr(c, "state", CaseState.HELD))
    with pytest.raises(DomainError) as caught:
        await svc.add_entry(actor("user-school"), "case-chron-1", "School",
                            {"when": "2025", "what": "x", "kind": "worry"})
    assert caught.value.key == "chronology.error_closed"


async def test_social_worker_confirms_the_merge_where_the_profile_says_so():
    store = MemoryStore()
    clock = FixedClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    cases, audit = CaseRepository(store), AuditLog(store, clock)
    await cases.create(scheduled_case(profile_id="gwent"))
    profile = load_preset("gwent")
    svc = ChronologyService(store, cases, audit, clock, lambda c: Deadlines(profile, WorkingCalendar(profile.nation)),
                            merged_by_for=lambda c: profile.chronology_merged_by)
    merged = await svc.merged(actor("user-fac"), "case-chron-1")
    assert merged.awaiting_social_worker
    with pytest.raises(Forbidden):
        await svc.confirm_merge(actor("user-fac"), "case-chron-1")
    confirmed = await svc.confirm_merge(actor("user-lead"), "case-chron-1")
    assert not confirmed.awaiting_social_worker and confirmed.confirmed_by == "user-lead"
    assert Kind.WORRY.value == "worry"
