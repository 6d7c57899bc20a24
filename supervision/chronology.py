"""Chronologies: each invited agency's record of its involvement, merged into one multi-agency view.

Dates are recorded as practitioners write them: exact ("14/03/2025"), month-only ("March 2025") or
approximate ("about spring 2025", "early 2025", "2024"). ``parse_when`` keeps the text as written,
its precision, the range it could mean (``earliest``..``latest``) and a sortable date (the middle of
that range), so the merge can order everything and mark what is approximate.

Each agency has one ``AgencyChronology`` per case (draft, then submitted). ``merge`` builds the
``MergedChronology`` from the submitted ones: ordered by date, grouped by agency, entries outside the
profile's window flagged, agencies that have not submitted listed, strengths and worries counted by
agency and by month. ``ChronologyService`` holds the use cases: every one checks the actor's role on
the case (``Action.SUBMIT_CHRONOLOGY`` / ``Action.VIEW_CHRONOLOGY``) and writes the audit log, also
when it refuses. Chronologies live in their own collections, not in the case document.
"""
from __future__ import annotations

import calendar as _calendar
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

from supervision.clock import Clock, uk_local
from supervision.codec import from_data, to_data
from supervision.errors import DomainError, FieldError, Forbidden, NotFound, ValidationFailed, VersionConflict
from supervision.lifecycle import Deadlines
from supervision.models import Case, CaseState
from supervision.ports import DocumentStore
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Action, Actor, authorize

CHRONOLOGIES = "chronologies"
MERGES = "chronology_merges"          # the social worker's confirmation, where the profile says so
UPLOADS = "chronology_uploads"        # which chronology a user's next file goes to
ASKS = "chronology_asks"              # who has been asked for which session (idempotency)
MAX_TEXT = 2000
MAX_ENTRIES = 500
UPLOAD_MINUTES = 30
# Case states in which chronologies may still be written.
OPEN_FOR_CHRONOLOGY = frozenset({CaseState.AGREED, CaseState.FACILITATORS_ASSIGNED, CaseState.SCHEDULED,
                                 CaseState.PRE_SESSION})


class Precision(str, Enum):
    DAY = "day"
    MONTH = "month"
    APPROXIMATE = "approximate"


class Kind(str, Enum):
    STRENGTH = "strength"
    WORRY = "worry"
    NEUTRAL = "neutral"


class SubmissionStatus(str, Enum):
    DRAFT = "draft"
    SUBMITTED = "submitted"


# --- dates as practitioners write them ------------------------------------------------------------

@dataclass(frozen=True)
class When:
    text: str                 # as written
    precision: Precision
    earliest: date
    latest: date

    @property
    def sort_date(self) -> date:
        return self.earliest + timedelta(days=(self.latest - self.earliest).days // 2)

    @property
    def approximate(self) -> bool:
        return self.precision is Precision.APPROXIMATE

    def label(self) -> str:
        """How the date is shown: exact and month dates normalised, approximate ones as written
        (``marked`` adds the ≈ sign that the cards, picture and document use for them)."""
        if self.precision is Precision.DAY:
            return f"{self.earliest.day} {self.earliest:%b %Y}"
        if self.precision is Precision.MONTH:
            return f"{self.earliest:%b %Y}"
        return self.text.strip()

    def marked(self) -> str:
        """The label with ≈ in front when the date is approximate."""
        return f"≈ {self.label()}" if self.approximate else self.label()


_APPROX_WORD = re.compile(r"^(about|around|approx\.?|approximately|circa|c\.|ca\.|roughly|~)\s*")
_MONTHS = {name.lower(): i for i, name in enumerate(_calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(_calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_MONTH_NAMES = "|".join(sorted(_MONTHS, key=len, reverse=True))
_SEASONS = {"spring": (3, 5), "summer": (6, 8), "autumn": (9, 11), "fall": (9, 11), "winter": (12, 2)}
_PARTS_OF_YEAR = {"early": (1, 4), "beginning of": (1, 4), "start of": (1, 4), "mid": (5, 8), "middle of": (5, 8),
                  "late": (9, 12), "end of": (9, 12)}
_PARTS_OF_MONTH = {"early": (1, 10), "beginning of": (1, 10), "start of": (1, 10), "mid": (11, 20),
                   "middle of": (11, 20), "late": (21, 31), "end of": (21, 31)}
_PART = r"(early|beginning of|start of|mid|middle of|late|end of)[\s-]+"
APPROX_DAYS = 14          # "about 14 March 2025" could be a fortnight either side


def _year(text: str) -> int:
    value = int(text)
    if len(text) == 2:
        value += 2000
    if not 1900 <= value <= 2100:
        raise ValueError("year out of range")
    return value


def _month_end(year: int, month: int) -> date:
    return date(year, month, _calendar.monthrange(year, month)[1])


def _exact(text: str) -> date | None:
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    if m:
        return date(int(m[1]), int(m[2]), int(m[3]))
    m = re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})", text)
    if m:
        return date(_year(m[3]), int(m[2]), int(m[1]))            # UK order: day/month/year
    m = re.fullmatch(rf"(\d{{1,2}})(?:st|nd|rd|th)?\s+({_MONTH_NAMES})\.?,?\s+(\d{{4}}|\d{{2}})", text)
    if m:
        return date(_year(m[3]), _MONTHS[m[2]], int(m[1]))
    m = re.fullmatch(rf"({_MONTH_NAMES})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})", text)
    if m:
        return date(_year(m[3]), _MONTHS[m[1]], int(m[2]))
    return None


def _month(text: str) -> tuple[int, int] | None:
    m = re.fullmatch(rf"({_MONTH_NAMES})\.?,?\s+(\d{{4}}|\d{{2}})", text)
    if m:
        return _year(m[2]), _MONTHS[m[1]]
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", text)
    if m:
        return int(m[1]), int(m[2])
    m = re.fullmatch(r"(\d{1,2})[/.\-](\d{4})", text)
    if m:
        return int(m[2]), int(m[1])
    return None


def _range(text: str) -> tuple[date, date] | None:
    """Approximate expressions: seasons, parts of a year or month, quarters, a bare year."""
    m = re.fullmatch(r"(spring|summer|autumn|fall|winter)\s+(?:of\s+)?(\d{4})", text)
    if m:
        first, last = _SEASONS[m[1]]
        year = _year(m[2])
        if m[1] == "winter":     # winter 2025: December 2024 to February 2025
            return date(year - 1, 12, 1), _month_end(year, 2)
        return date(year, first, 1), _month_end(year, last)
    m = re.fullmatch(rf"{_PART}({_MONTH_NAMES})\.?\s+(\d{{4}})", text)
    if m:
        low, high = _PARTS_OF_MONTH[m[1]]
        year, month = _year(m[3]), _MONTHS[m[2]]
        return date(year, month, low), date(year, month, min(high, _month_end(year, month).day))
    m = re.fullmatch(rf"{_PART}(\d{{4}})", text)
    if m:
        first, last = _PARTS_OF_YEAR[m[1]]
        year = _year(m[2])
        return date(year, first, 1), _month_end(year, last)
    m = re.fullmatch(r"q([1-4])\s+(\d{4})", text)
    if m:
        quarter, year = int(m[1]), _year(m[2])
        return date(year, 3 * quarter - 2, 1), _month_end(year, 3 * quarter)
    m = re.fullmatch(r"(\d{4})", text)
    if m:
        year = _year(m[1])
        return date(year, 1, 1), date(year, 12, 31)
    return None


def parse_when(raw: Any, field_name: str = "when") -> When:
    """A date as a practitioner wrote it, or FieldError(field_name, "chronology.error_date")."""
    if isinstance(raw, datetime):
        raw = raw.date()
    if isinstance(raw, date):
        return When(raw.isoformat(), Precision.DAY, raw, raw)
    text = " ".join(str(raw or "").split())
    if not text:
        raise FieldError(field_name, "chronology.error_date_missing")
    lowered = text.lower()
    approximate = False
    stripped = _APPROX_WORD.sub("", lowered, count=1)
    if stripped != lowered:
        approximate, lowered = True, stripped
    lowered = lowered.replace(",", " ").strip()
    lowered = " ".join(lowered.split())
    try:
        exact = _exact(lowered)
        if exact is not None:
            if approximate:
                return When(text, Precision.APPROXIMATE, exact - timedelta(days=APPROX_DAYS),
                            exact + timedelta(days=APPROX_DAYS))
            return When(text, Precision.DAY, exact, exact)
        month = _month(lowered)
        if month is not None:
            first = date(month[0], month[1], 1)
            return When(text, Precision.APPROXIMATE if approximate else Precision.MONTH, first,
                        _month_end(*month))
        span = _range(lowered)
        if span is not None:
            return When(text, Precision.APPROXIMATE, *span)
    except ValueError:
        pass   # a day or month that does not exist, or a year out of range
    raise FieldError(field_name, "chronology.error_date", value=text[:40])


def parse_kind(raw: Any, field_name: str = "kind") -> Kind:
    text = str(raw or "").strip().lower()
    aliases = {"strength": Kind.STRENGTH, "strengths": Kind.STRENGTH, "s": Kind.STRENGTH, "+": Kind.STRENGTH,
               "positive": Kind.STRENGTH, "worry": Kind.WORRY, "worries": Kind.WORRY, "w": Kind.WORRY,
               "concern": Kind.WORRY, "-": Kind.WORRY, "risk": Kind.WORRY, "neutral": Kind.NEUTRAL,
               "n": Kind.NEUTRAL, "information": Kind.NEUTRAL}
    if not text:
        raise FieldError(field_name, "chronology.error_kind_missing")
    if text not in aliases:
        raise FieldError(field_name, "chronology.error_kind", value=text[:30])
    return aliases[text]


# --- entries and submissions ------------------------------------------------------------------------

@dataclass
class Entry:
    id: str
    when: When
    what: str
    impact: str
    kind: Kind
    source: str                 # the agency the information came from (usually the agency itself)
    added_by: str = ""
    added_at: datetime | None = None


@dataclass
class AgencyChronology:
    case_id: str
    agency: str
    status: SubmissionStatus = SubmissionStatus.DRAFT
    entries: list[Entry] = field(default_factory=list)
    updated_at: datetime | None = None
    updated_by: str = ""
    submitted_at: datetime | None = None
    submitted_by: str = ""
    version: int = 0

    @property
    def submitted(self) -> bool:
        return self.status is SubmissionStatus.SUBMITTED

    def entry(self, entry_id: str) -> Entry:
        for entry in self.entries:
            if entry.id == entry_id:
                return entry
        raise NotFound(f"no entry {entry_id}", key="chronology.error_no_entry")


def entry_from_fields(fields: Mapping[str, Any], *, agency: str, entry_id: str = "",
                      names: Mapping[str, str] | None = None) -> Entry:
    """Validate one entry's fields (from a card or a file row). Collects every bad field at once.

    ``names`` maps each field (when, what, impact, kind, source) to the name to report it under
    (a card input id or a column heading)."""
    names = {"when": "when", "what": "what", "impact": "impact", "kind": "kind", "source": "source",
             **(names or {})}
    errors: list[FieldError] = []
    when: When | None = None
    kind: Kind | None = None
    try:
        when = parse_when(fields.get("when"), names["when"])
    except FieldError as error:
        errors.append(error)
    what = " ".join(str(fields.get("what") or "").split())
    if not what:
        errors.append(FieldError(names["what"], "chronology.error_what_missing"))
    elif len(what) > MAX_TEXT:
        errors.append(FieldError(names["what"], "chronology.error_too_long", limit=MAX_TEXT))
    impact = str(fields.get("impact") or "").strip()
    if len(impact) > MAX_TEXT:
        errors.append(FieldError(names["impact"], "chronology.error_too_long", limit=MAX_TEXT))
    try:
        kind = parse_kind(fields.get("kind"), names["kind"])
    except FieldError as error:
        errors.append(error)
    source = " ".join(str(fields.get("source") or "").split())[:120] or agency
    if errors:
        raise ValidationFailed(errors)
    assert when is not None and kind is not None
    return Entry(id=entry_id or secrets.token_hex(4), when=when, what=what, impact=impact, kind=kind, source=source)


# --- file rows (CSV or XLSX, read by documents.chronology.read_table) -------------------------------

# The English headings: the template's defaults and always accepted. The bot writes the template with the
# catalogue's headings ([chronology.template] column_*) and passes them here as ``column_names`` so that
# the parser accepts them too.
TEMPLATE_FIELDS = ("when", "what", "impact", "kind", "source")
TEMPLATE_COLUMNS = ("Date", "What happened", "Impact on the child", "Strength, worry or neutral", "Source agency")
_COLUMN_ALIASES = {
    "when": ("date", "when", "date of event", "event date"),
    "what": ("what happened", "what", "event", "details", "description"),
    "impact": ("impact on the child", "impact", "impact on child", "impact on the child / young person"),
    "kind": ("strength, worry or neutral", "strength/worry/neutral", "strength worry or neutral", "type",
             "kind", "strength or worry", "category"),
    "source": ("source agency", "source", "agency"),
}
REQUIRED_COLUMNS = ("when", "what", "kind")


@dataclass(frozen=True)
class RowProblem:
    row: int          # the spreadsheet's row number (the heading is row 1)
    column: str       # the column heading, as in the file
    key: str          # catalogue key of the reason
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportResult:
    entries: list[Entry] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    duplicates: int = 0
    rows_read: int = 0

    @property
    def bad_rows(self) -> list[int]:
        return sorted({p.row for p in self.problems if p.row > 1})


def _norm_heading(value: Any) -> str:
    return " ".join(str(value or "").replace("*", "").split()).strip().lower()


def column_aliases(column_names: Mapping[str, str] | None = None) -> dict[str, tuple[str, ...]]:
    """The headings accepted for each column: the English ones and, if given, the template's own
    (``column_names``: field name -> heading, e.g. from the catalogue)."""
    aliases = dict(_COLUMN_ALIASES)
    for name, heading in (column_names or {}).items():
        normal = _norm_heading(heading)
        if name in aliases and normal and normal not in aliases[name]:
            aliases[name] = (*aliases[name], normal)
    return aliases


def recognised_columns(headings: Sequence[Any], column_names: Mapping[str, str] | None = None) -> int:
    """How many of a file's headings name a chronology column (to tell a file's delimiter)."""
    known = {alias for aliases in column_aliases(column_names).values() for alias in aliases}
    return sum(1 for h in headings if _norm_heading(h) in known)


def entries_from_rows(rows: Sequence[Sequence[Any]], *, agency: str, header_row: int = 1,
                      column_names: Mapping[str, str] | None = None) -> ImportResult:
    """Rows of a chronology file: the first is the heading. Valid rows become entries; every bad cell
    is reported by row number and column heading. Blank rows are skipped. ``column_names`` (field ->
    heading) are the template's headings, accepted besides the English ones and named when missing."""
    result = ImportResult()
    accepted = column_aliases(column_names)
    if not rows:
        result.problems.append(RowProblem(header_row, "", "chronology.error_file_empty"))
        return result
    headings = [str(h or "").strip() for h in rows[0]]
    columns: dict[str, int] = {}
    for index, heading in enumerate(headings):
        normal = _norm_heading(heading)
        for name, aliases in accepted.items():
            if normal in aliases and name not in columns:
                columns[name] = index
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        template = {**dict(zip(TEMPLATE_FIELDS, TEMPLATE_COLUMNS, strict=True)), **(column_names or {})}
        for name in missing:
            result.problems.append(RowProblem(header_row, template[name], "chronology.error_column_missing"))
        return result
    for offset, row in enumerate(rows[1:], start=1):
        number = header_row + offset
        cells = list(row) + [None] * (len(headings) - len(row))
        if all(c is None or str(c).strip() == "" for c in cells):
            continue
        result.rows_read += 1
        values = {name: cells[index] for name, index in columns.items()}
        names = {name: headings[index] for name, index in columns.items()}
        try:
            entry = entry_from_fields(values, agency=agency, names=names)
        except ValidationFailed as failed:
            for error in failed.errors:
                params = {k: v for k, v in error.params.items()}
                result.problems.append(RowProblem(number, error.field, error.key, params))
            continue
        result.entries.append(entry)
    return result


# --- the merge ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Counts:
    strengths: int = 0
    worries: int = 0
    neutral: int = 0

    def add(self, kind: Kind) -> Counts:
        return Counts(self.strengths + (kind is Kind.STRENGTH), self.worries + (kind is Kind.WORRY),
                      self.neutral + (kind is Kind.NEUTRAL))

    @property
    def total(self) -> int:
        return self.strengths + self.worries + self.neutral


@dataclass(frozen=True)
class MergedEntry:
    agency: str               # whose chronology it came from (its lane)
    entry: Entry
    outside_window: bool

    @property
    def approximate(self) -> bool:
        return self.entry.when.approximate

    @property
    def month(self) -> str:
        return f"{self.entry.when.sort_date:%Y-%m}"


_PRECISION_ORDER = {Precision.DAY: 0, Precision.MONTH: 1, Precision.APPROXIMATE: 2}


def sort_key(item: MergedEntry) -> tuple[Any, ...]:
    when = item.entry.when
    return (when.sort_date, _PRECISION_ORDER[when.precision], item.agency.lower(), when.earliest, item.entry.id)


@dataclass
class MergedChronology:
    case_id: str
    reference: str
    window_start: date
    window_end: date
    expected: list[str]                       # agencies asked (the invitees' agencies)
    submitted: list[str]                      # agencies whose chronology is in the merge
    missing: list[str]                        # asked, not submitted
    drafts: list[str]                         # of the missing, those that have started
    entries: list[MergedEntry]                # ordered by date
    by_agency_counts: dict[str, Counts]
    by_month_counts: dict[str, Counts]        # "YYYY-MM" -> counts, in month order
    generated_at: datetime | None = None
    merged_by: str = "bot"                    # bot | social_worker
    confirmed_by: str = ""                    # the social worker who merged it (when merged_by says so)
    confirmed_at: datetime | None = None

    def by_agency(self) -> dict[str, list[MergedEntry]]:
        grouped: dict[str, list[MergedEntry]] = {agency: [] for agency in self.lanes}
        for item in self.entries:
            grouped.setdefault(item.agency, []).append(item)
        return grouped

    @property
    def lanes(self) -> list[str]:
        """One lane per agency: every agency asked, in the order asked, then any other that submitted.
        An agency that has not submitted keeps its (empty) lane, so the gap shows."""
        return list(self.expected) + [a for a in self.submitted if a not in self.expected]

    @property
    def outside_window(self) -> list[MergedEntry]:
        return [e for e in self.entries if e.outside_window]

    @property
    def totals(self) -> Counts:
        total = Counts()
        for item in self.entries:
            total = total.add(item.entry.kind)
        return total

    @property
    def awaiting_social_worker(self) -> bool:
        return self.merged_by == "social_worker" and not self.confirmed_at


def merge(case: Case, chronologies: Iterable[AgencyChronology], *, window_start: date, window_end: date,
          expected: Sequence[str] | None = None, now: datetime | None = None, merged_by: str = "bot") -> MergedChronology:
    """One multi-agency chronology from the submitted agency chronologies."""
    expected = list(expected if expected is not None else case.request.agencies)
    by_agency = {c.agency: c for c in chronologies}
    submitted = sorted((a for a, c in by_agency.items() if c.submitted), key=_agency_order(expected))
    missing = [a for a in expected if not (a in by_agency and by_agency[a].submitted)]
    drafts = [a for a in missing if a in by_agency and by_agency[a].entries]
    items: list[MergedEntry] = []
    for agency in submitted:
        for entry in by_agency[agency].entries:
            outside = entry.when.latest < window_start or entry.when.earliest > window_end
            items.append(MergedEntry(agency=agency, entry=entry, outside_window=outside))
    items.sort(key=sort_key)
    agency_counts: dict[str, Counts] = {a: Counts() for a in submitted}
    month_counts: dict[str, Counts] = {}
    for item in items:
        agency_counts[item.agency] = agency_counts[item.agency].add(item.entry.kind)
        month_counts[item.month] = month_counts.get(item.month, Counts()).add(item.entry.kind)
    return MergedChronology(
        case_id=case.id, reference=case.reference, window_start=window_start, window_end=window_end,
        expected=expected, submitted=submitted, missing=missing, drafts=drafts, entries=items,
        by_agency_counts=agency_counts, by_month_counts=dict(sorted(month_counts.items())),
        generated_at=now, merged_by=merged_by)


def _agency_order(expected: Sequence[str]) -> Callable[[str], tuple[int, str]]:
    position = {a: i for i, a in enumerate(expected)}
    return lambda agency: (position.get(agency, len(position)), agency.lower())


# --- dates of the chronology stage -------------------------------------------------------------------

@dataclass(frozen=True)
class ChronologyDates:
    requested_on: date
    window_start: date
    window_end: date
    session_day: date | None
    due: date | None
    reminder: date | None
    pack: date | None


def requested_on(case: Case) -> date:
    for transition in case.history:
        if transition.event in ("submit", "submit_for_manager"):
            return uk_local(transition.at).date()
    return uk_local(case.created_at).date()


def chronology_dates(case: Case, deadlines: Deadlines) -> ChronologyDates:
    asked = requested_on(case)
    session_day = uk_local(case.session.starts_at).date() if case.session.starts_at else None
    due = deadlines.chronology_due(session_day) if session_day else None
    reminder = (deadlines.calendar.subtract_working_days(due, deadlines.t.chronology_reminder_working_days_before_due)
                if due else None)
    pack = deadlines.session_pack(session_day) if session_day else None
    return ChronologyDates(requested_on=asked, window_start=deadlines.chronology_window_start(asked),
                           window_end=session_day or asked, session_day=session_day, due=due,
                           reminder=reminder, pack=pack)


# --- use cases -------------------------------------------------------------------------------------

def _keys(actor: Actor) -> set[str]:
    return {k.lower() for k in (actor.user_id, actor.email, actor.aad_object_id) if k}


def agencies_of(actor: Actor, case: Case) -> list[str]:
    """The agencies the actor may write a chronology for: their invitation's agency, else the
    organisation they gave as requester or lead professional."""
    keys = _keys(actor)

    def me(user_id: str, email: str) -> bool:
        return bool(keys & ({user_id.lower(), email.lower()} - {""}))

    found = [i.agency for i in case.request.invitees if i.agency and me(i.user_id, i.email)]
    r = case.request
    for person in (r.lead_professional, r.requester):
        if person.organisation and me(person.user_id, person.email):
            found.append(person.organisation)
    return list(dict.fromkeys(found))


def _doc_key(case_id: str, agency: str) -> str:
    return f"{case_id}|{' '.join(agency.lower().split())}"


class ChronologyService:
    """The chronology use cases. ``deadlines_for(case)`` gives the Deadlines of the case's profile;
    ``merged_by_for(case)`` the profile's ``chronology.merged_by``."""

    def __init__(self, store: DocumentStore, cases: CaseRepository, audit: AuditLog, clock: Clock,
                 deadlines_for: Callable[[Case], Deadlines], merged_by_for: Callable[[Case], str] | None = None) -> None:
        self.store, self.cases, self.audit, self.clock = store, cases, audit, clock
        self.deadlines_for = deadlines_for
        self.merged_by_for = merged_by_for or (lambda case: "bot")

    # storage ---------------------------------------------------------------------------------------
    async def _load(self, case_id: str, agency: str) -> tuple[AgencyChronology, str | None]:
        stored = await self.store.get(CHRONOLOGIES, _doc_key(case_id, agency))
        if stored is None:
            return AgencyChronology(case_id=case_id, agency=agency), None
        return from_data(AgencyChronology, stored.data), stored.etag

    async def _change(self, case_id: str, agency: str, change: Callable[[AgencyChronology], Any]) -> AgencyChronology:
        for _ in range(20):
            chronology, etag = await self._load(case_id, agency)
            change(chronology)
            chronology.version += 1
            try:
                if etag is None:
                    await self.store.put(CHRONOLOGIES, _doc_key(case_id, agency), to_data(chronology), create_only=True)
                else:
                    await self.store.put(CHRONOLOGIES, _doc_key(case_id, agency), to_data(chronology), etag=etag)
            except VersionConflict:
                continue
            return chronology
        raise VersionConflict("chronology kept changing")

    async def all_for(self, case_id: str) -> list[AgencyChronology]:
        found = []
        for key in await self.store.keys(CHRONOLOGIES, f"{case_id}|"):
            stored = await self.store.get(CHRONOLOGIES, key)
            if stored is not None:
                found.append(from_data(AgencyChronology, stored.data))
        return found

    # checks ----------------------------------------------------------------------------------------
    async def _authorize(self, actor: Actor, case: Case, action: Action, audit_action: str, what: str) -> None:
        try:
            authorize(actor, action, case)
        except Forbidden:
            await self.audit.record(actor=actor.audit_name, action=audit_action, case_id=case.id, what=what,
                                    why="not a member of this case with that role", allowed=False)
            raise

    async def _writable(self, actor: Actor, case_id: str, agency: str, audit_action: str) -> Case:
        case = await self.cases.require(case_id)
        await self._authorize(actor, case, Action.SUBMIT_CHRONOLOGY, audit_action, agency)
        if agency not in agencies_of(actor, case):
            await self.audit.record(actor=actor.audit_name, action=audit_action, case_id=case_id, what=agency,
                                    why="not of that agency", allowed=False)
            raise Forbidden("not of that agency", key="chronology.error_not_your_agency", agency=agency)
        if case.state not in OPEN_FOR_CHRONOLOGY:
            raise DomainError("case closed for chronologies", key="chronology.error_closed")
        return case

    # reading ---------------------------------------------------------------------------------------
    async def my_agencies(self, actor: Actor, case_id: str) -> list[str]:
        case = await self.cases.require(case_id)
        await self._authorize(actor, case, Action.SUBMIT_CHRONOLOGY, "chronology.open", "")
        return agencies_of(actor, case)

    async def open(self, actor: Actor, case_id: str, agency: str | None = None) -> tuple[Case, AgencyChronology]:
        """The actor's own agency chronology (created empty if new). Audited as a view."""
        case = await self.cases.require(case_id)
        await self._authorize(actor, case, Action.SUBMIT_CHRONOLOGY, "chronology.view_own", agency or "")
        mine = agencies_of(actor, case)
        if not mine or (agency and agency not in mine):
            await self.audit.record(actor=actor.audit_name, action="chronology.view_own", case_id=case_id,
                                    what=agency or "", why="not of that agency", allowed=False)
            raise Forbidden("not of that agency", key="chronology.error_not_your_agency", agency=agency or "")
        chosen = agency or mine[0]
        chronology, _ = await self._load(case_id, chosen)
        await self.audit.record(actor=actor.audit_name, action="chronology.view_own", case_id=case_id,
                                what=chosen, why="writing the agency chronology")
        return case, chronology

    async def merged(self, actor: Actor, case_id: str, *, why: str = "viewing the merged chronology") -> MergedChronology:
        case = await self.cases.require(case_id)
        await self._authorize(actor, case, Action.VIEW_CHRONOLOGY, "chronology.view", "merged")
        result = await self.merge_for(case)
        await self.audit.record(actor=actor.audit_name, action="chronology.view", case_id=case_id,
                                what="merged chronology", why=why)
        return result

    async def merge_for(self, case: Case) -> MergedChronology:
        """The merge for the bot's own use (pack, reminders). Callers that show it to a person audit it."""
        dates = chronology_dates(case, self.deadlines_for(case))
        result = merge(case, await self.all_for(case.id), window_start=dates.window_start,
                       window_end=dates.window_end, now=self.clock.now(), merged_by=self.merged_by_for(case))
        stored = await self.store.get(MERGES, case.id)
        if stored is not None and stored.data.get("session") == case.session.number:
            result.confirmed_by = stored.data.get("by", "")
            result.confirmed_at = datetime.fromisoformat(stored.data["at"])
        return result

    async def missing_agencies(self, case: Case) -> list[str]:
        submitted = {c.agency for c in await self.all_for(case.id) if c.submitted}
        return [a for a in case.request.agencies if a not in submitted]

    # writing ---------------------------------------------------------------------------------------
    async def add_entry(self, actor: Actor, case_id: str, agency: str, fields: Mapping[str, Any]) -> Entry:
        await self._writable(actor, case_id, agency, "chronology.add")
        entry = entry_from_fields(fields, agency=agency)
        entry.added_by, entry.added_at = actor.audit_name, self.clock.now()

        def change(c: AgencyChronology) -> None:
            self._editable(c)
            if len(c.entries) >= MAX_ENTRIES:
                raise DomainError("too many entries", key="chronology.error_too_many", limit=MAX_ENTRIES)
            c.entries.append(entry)
            self._touch(c, actor)

        await self._change(case_id, agency, change)
        await self.audit.record(actor=actor.audit_name, action="chronology.add", case_id=case_id,
                                what=f"{agency}: entry {entry.id}")
        return entry

    async def edit_entry(self, actor: Actor, case_id: str, agency: str, entry_id: str,
                         fields: Mapping[str, Any]) -> Entry:
        await self._writable(actor, case_id, agency, "chronology.edit")
        updated = entry_from_fields(fields, agency=agency, entry_id=entry_id)

        def change(c: AgencyChronology) -> None:
            self._editable(c)
            old = c.entry(entry_id)
            updated.added_by, updated.added_at = old.added_by, old.added_at
            c.entries[c.entries.index(old)] = updated
            self._touch(c, actor)

        await self._change(case_id, agency, change)
        await self.audit.record(actor=actor.audit_name, action="chronology.edit", case_id=case_id,
                                what=f"{agency}: entry {entry_id}")
        return updated

    async def remove_entry(self, actor: Actor, case_id: str, agency: str, entry_id: str) -> None:
        await self._writable(actor, case_id, agency, "chronology.remove")

        def change(c: AgencyChronology) -> None:
            self._editable(c)
            c.entries.remove(c.entry(entry_id))
            self._touch(c, actor)

        await self._change(case_id, agency, change)
        await self.audit.record(actor=actor.audit_name, action="chronology.remove", case_id=case_id,
                                what=f"{agency}: entry {entry_id}")

    async def import_rows(self, actor: Actor, case_id: str, agency: str, rows: Sequence[Sequence[Any]],
                          filename: str = "", column_names: Mapping[str, str] | None = None) -> ImportResult:
        """Add a file's valid rows to the draft; bad rows come back with their row and column.
        A row identical to an entry already there is not added twice."""
        await self._writable(actor, case_id, agency, "chronology.import")
        result = entries_from_rows(rows, agency=agency, column_names=column_names)
        parsed = list(result.entries)
        now = self.clock.now()

        def change(c: AgencyChronology) -> None:
            self._editable(c)
            seen = {_same(e) for e in c.entries}
            kept = []
            result.duplicates = 0
            for entry in parsed:
                if _same(entry) in seen:
                    result.duplicates += 1
                    continue
                seen.add(_same(entry))
                kept.append(replace(entry, added_by=actor.audit_name, added_at=now))
            if len(c.entries) + len(kept) > MAX_ENTRIES:
                raise DomainError("too many entries", key="chronology.error_too_many", limit=MAX_ENTRIES)
            c.entries.extend(kept)
            result.entries = kept
            self._touch(c, actor)

        if result.entries:
            await self._change(case_id, agency, change)
        await self.audit.record(actor=actor.audit_name, action="chronology.import", case_id=case_id,
                                what=f"{agency}: {len(result.entries)} added, {len(result.bad_rows)} bad rows",
                                why=f"file {filename[:80]}" if filename else "")
        return result

    async def submit(self, actor: Actor, case_id: str, agency: str) -> AgencyChronology:
        await self._writable(actor, case_id, agency, "chronology.submit")

        def change(c: AgencyChronology) -> None:
            self._editable(c)
            if not c.entries:
                raise DomainError("nothing to submit", key="chronology.error_empty")
            c.status = SubmissionStatus.SUBMITTED
            c.submitted_at, c.submitted_by = self.clock.now(), actor.audit_name
            self._touch(c, actor)

        chronology = await self._change(case_id, agency, change)
        await self.audit.record(actor=actor.audit_name, action="chronology.submit", case_id=case_id,
                                what=f"{agency}: {len(chronology.entries)} entries")
        return chronology

    async def reopen(self, actor: Actor, case_id: str, agency: str) -> AgencyChronology:
        """Back to draft, to correct it; it must be submitted again."""
        await self._writable(actor, case_id, agency, "chronology.reopen")

        def change(c: AgencyChronology) -> None:
            c.status = SubmissionStatus.DRAFT
            c.submitted_at, c.submitted_by = None, ""
            self._touch(c, actor)

        chronology = await self._change(case_id, agency, change)
        await self.audit.record(actor=actor.audit_name, action="chronology.reopen", case_id=case_id, what=agency)
        return chronology

    async def confirm_merge(self, actor: Actor, case_id: str) -> MergedChronology:
        """Where the profile says the social worker merges (Gwent), the lead professional confirms the
        merged chronology before it goes in the pack as merged."""
        case = await self.cases.require(case_id)
        await self._authorize(actor, case, Action.VIEW_CHRONOLOGY, "chronology.merge", "merged")
        r = case.request
        keys = _keys(actor)
        if not keys & ({r.lead_professional.user_id.lower(), r.lead_professional.email.lower()} - {""}):
            await self.audit.record(actor=actor.audit_name, action="chronology.merge", case_id=case_id,
                                    what="merged", why="only the lead professional merges", allowed=False)
            raise Forbidden("only the lead professional", key="chronology.error_not_social_worker")
        now = self.clock.now()
        await self.store.put(MERGES, case_id, {"by": actor.audit_name, "at": now.isoformat(),
                                               "session": case.session.number})
        await self.audit.record(actor=actor.audit_name, action="chronology.merge", case_id=case_id,
                                what="merged chronology confirmed")
        return await self.merge_for(case)

    # the next file a user sends ------------------------------------------------------------------------
    async def expect_upload(self, actor: Actor, case_id: str, agency: str) -> None:
        await self._writable(actor, case_id, agency, "chronology.expect_upload")
        until = self.clock.now() + timedelta(minutes=UPLOAD_MINUTES)
        await self.store.put(UPLOADS, actor.user_id.lower(), {"case_id": case_id, "agency": agency,
                                                              "until": until.isoformat()})

    async def pending_upload(self, actor: Actor) -> tuple[str, str] | None:
        stored = await self.store.get(UPLOADS, actor.user_id.lower())
        if stored is None or datetime.fromisoformat(stored.data["until"]) < self.clock.now():
            return None
        return stored.data["case_id"], stored.data["agency"]

    async def clear_upload(self, actor: Actor) -> None:
        await self.store.delete(UPLOADS, actor.user_id.lower())

    # asking once per session ---------------------------------------------------------------------------
    async def mark_asked(self, case: Case, person_key: str) -> bool:
        """True the first time this person is asked for this case's session; False after."""
        key = f"{case.id}|{case.session.number}|{person_key.lower()}"
        try:
            await self.store.put(ASKS, key, {"at": self.clock.now().isoformat()}, create_only=True)
        except VersionConflict:
            return False
        return True

    async def unmark_asked(self, case: Case, person_key: str) -> None:
        """Undo ``mark_asked`` when the message could not be delivered, so a later try may send it."""
        await self.store.delete(ASKS, f"{case.id}|{case.session.number}|{person_key.lower()}")

    # helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def _editable(c: AgencyChronology) -> None:
        if c.submitted:
            raise DomainError("already submitted", key="chronology.error_submitted", agency=c.agency)

    def _touch(self, c: AgencyChronology, actor: Actor) -> None:
        c.updated_at, c.updated_by = self.clock.now(), actor.audit_name


def _same(entry: Entry) -> tuple[str, str, str, str]:
    return (entry.when.earliest.isoformat() + entry.when.latest.isoformat(), entry.what.lower(),
            entry.impact.lower(), entry.kind.value)
