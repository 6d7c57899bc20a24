"""Cards for the session record: the offer after the meeting, the form, the channel summary (no child
or family identifiers, whatever the profile) and the full record for each attendee in personal chat."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from cards.base import (
    Json,
    card,
    choice_input,
    container,
    date_input,
    error_banner,
    facts,
    heading,
    submit,
    text,
    text_input,
    title,
)
from supervision.catalogue import Catalogue
from supervision.clock import format_uk_date
from supervision.models import Case
from supervision.profile import Profile
from supervision.record import (
    ACTION_ROW,
    SessionRecord,
    action_rows,
    attendee_choices,
    owner_choices,
    shows,
)

MIN_EMPTY_ROWS = 1


def field_label(t: Catalogue, profile: Profile, name: str) -> str:
    """The label the card shows for an input id (used to name fields in error messages too)."""
    if name.startswith("section_"):
        key = name[len("section_"):]
        for section in profile.model.sections:
            if section.key == key:
                return section.title
    match = ACTION_ROW.match(name)
    if match:
        return t(f"record.field.action_{match.group(2)}", row=match.group(1))
    return t(f"record.field.{name}")


def _day(value: date | None) -> str:
    return format_uk_date(value) if value else "-"


def offer_card(t: Catalogue, case: Case) -> Json:
    """Posted in the meeting chat and sent to the facilitators when the session is held."""
    return card([title(t("record.offer.title")), text(t("record.offer.body", reference=case.reference))],
                [submit(t("record.offer.button"), "record.open", {"case_id": case.id}, validate=False)])


def pick_case_card(t: Catalogue, cases: list[Case]) -> Json:
    body = [title(t("record.pick.title")), text(t("record.pick.body"))]
    actions = [submit(t("record.pick.button", reference=c.reference, state=t(f"states.{c.state.value}")),
                      "record.open", {"case_id": c.id}, validate=False) for c in cases[:5]]
    return card(body, actions)


STEP_ONE_FIELDS = ("meeting_identifier", "held_on", "facilitators", "attendees", "other_attendees",
                   "lead_professional", "learning_points", "themes", "other_themes")


def step_of(field: str) -> int:
    """Which part of the form holds an input: 1 (the session and the reflection) or 2 (actions and next steps)."""
    return 1 if field in STEP_ONE_FIELDS or field.startswith("section_") else 2


def record_form_card(t: Catalogue, case: Case, profile: Profile, form: Mapping[str, str],
                     sent: Mapping[str, str], deadlines: tuple[date, date] | None,
                     errors: list[str] | None = None, step: int = 1) -> Json:
    """The record form, in two parts (so that each card stays well inside Teams' message size):
    1, the meeting, attendees, learning and the profile's reflective model; 2, the agreed actions,
    escalation, further sessions, plan changes and review date. ``form`` holds everything typed so far
    (nothing is lost on a refusal); ``sent`` maps action rows already sent to their item ids (shown,
    not editable); ``errors`` name each field."""
    v = form.get
    body: list[Json] = [title(t("record.form.title", reference=case.reference)),
                        text(t(f"record.form.step_{step}"), weight="Bolder")]
    if errors:
        body.append(error_banner(errors))
    if deadlines:
        body.append(text(t("record.form.deadlines", actions=_day(deadlines[0]), minutes=_day(deadlines[1])),
                         subtle=True))
    if not profile.record.child_identifiers_allowed:
        body.append(text(t("record.form.no_identifiers"), weight="Bolder", color="Warning"))
    ids = {"case_id": case.id, "phase": str(step)}
    if step == 1:
        body += _step_one(t, case, profile, v)
        body.append(text(t("record.form.step_1_help"), subtle=True))
        # every button sends the inputs (associatedInputs auto): checking is done by the bot, field by field
        return card(body, [submit(t("record.form.next"), "record.next", ids, style="positive"),
                           submit(t("record.form.save"), "record.save", ids)])
    body += _step_two(t, case, profile, form, sent)
    body.append(text(t("record.form.buttons_help"), subtle=True))
    actions = [
        submit(t("record.form.publish"), "record.publish", ids, style="positive"),
        submit(t("record.form.send_actions"), "record.send_actions", ids),
        submit(t("record.form.add_action"), "record.add_action", ids),
        submit(t("record.form.back"), "record.back", ids),
        submit(t("record.form.save"), "record.save", ids),
    ]
    return card(body, actions)


def _step_one(t: Catalogue, case: Case, profile: Profile, v: Any) -> list[Json]:
    body: list[Json] = [heading(t("record.form.meeting"))]
    if shows(profile, "meeting_identifier"):
        body.append(text_input("meeting_identifier", t("record.field.meeting_identifier"),
                               value=v("meeting_identifier", ""), max_length=200))
    body.append(date_input("held_on", t("record.field.held_on"), value=v("held_on", ""), required=True,
                           error=t("record.error.required_short")))
    body.append(text_input("facilitators", t("record.field.facilitators"), value=v("facilitators", ""),
                           max_length=500))
    choices = attendee_choices(case)
    if choices:
        body.append(choice_input("attendees", t("record.field.attendees"), choices, value=v("attendees", ""),
                                 multi=True, expanded=True))
    body.append(text_input("other_attendees", t("record.field.other_attendees"), value=v("other_attendees", ""),
                           max_length=1000))
    if shows(profile, "lead_professional"):
        body.append(text_input("lead_professional", t("record.field.lead_professional"),
                               value=v("lead_professional", ""), max_length=200))
    body.append(heading(t("record.form.learning")))
    body.append(text_input("learning_points", t("record.field.learning_points"), value=v("learning_points", ""),
                           multiline=True, max_length=6000))
    body.append(choice_input("themes", t("record.field.themes"),
                             [(theme, str(i)) for i, theme in enumerate(profile.record.themes)],
                             value=v("themes", ""), multi=True, expanded=False))
    body.append(text_input("other_themes", t("record.field.other_themes"), value=v("other_themes", ""),
                           max_length=1000))
    body.append(heading(t("record.form.model", model=profile.model.name)))
    for section in profile.model.sections:
        body.append(text_input(f"section_{section.key}", section.title, value=v(f"section_{section.key}", ""),
                               multiline=True, max_length=4000, placeholder=" ".join(section.questions)))
    return body


def _step_two(t: Catalogue, case: Case, profile: Profile, form: Mapping[str, str],
              sent: Mapping[str, str]) -> list[Json]:
    v = form.get
    body: list[Json] = [heading(t("record.form.actions"))]
    owners = owner_choices(case)
    for sent_row in sorted(sent, key=int):
        body.append(container([text(t("record.form.sent_action", row=sent_row,
                                      description=v(f"action_{sent_row}_description", ""),
                                      due=v(f"action_{sent_row}_due", "")), subtle=True)]))
    rows = [r for r in action_rows(form) if str(r) not in sent]
    start = max([int(r) for r in sent] + rows + [0])
    while len(rows) < MIN_EMPTY_ROWS or not _has_empty_row(form, rows):
        start += 1
        rows.append(start)
    for row in rows:
        body.append(container([
            text_input(f"action_{row}_description", t("record.field.action_description", row=row),
                       value=v(f"action_{row}_description", ""), multiline=True, max_length=2000),
            choice_input(f"action_{row}_owner", t("record.field.action_owner", row=row), owners,
                         value=v(f"action_{row}_owner", "")),
            date_input(f"action_{row}_due", t("record.field.action_due", row=row), value=v(f"action_{row}_due", "")),
        ], separator=True))
    body.append(heading(t("record.form.escalation")))
    if shows(profile, "escalation_issues"):
        body.append(text_input("escalation_issues", t("record.field.escalation_issues"),
                               value=v("escalation_issues", ""), multiline=True, max_length=4000))
    if shows(profile, "escalated_to"):
        body.append(text_input("escalated_to", t("record.field.escalated_to"), value=v("escalated_to", ""),
                               max_length=500))
    if shows(profile, "further_sessions"):
        body.append(choice_input("further_sessions", t("record.field.further_sessions"),
                                 [(t("record.form.yes"), "yes"), (t("record.form.no"), "no")],
                                 value=v("further_sessions", ""), expanded=True))
        body.append(date_input("further_sessions_when", t("record.field.further_sessions_when"),
                               value=v("further_sessions_when", "")))
    if shows(profile, "plan_changes"):
        body.append(text_input("plan_changes", t("record.field.plan_changes"), value=v("plan_changes", ""),
                               multiline=True, max_length=4000))
        body.append(text_input("plan_changes_shared_by", t("record.field.plan_changes_shared_by"),
                               value=v("plan_changes_shared_by", ""), max_length=200))
    if shows(profile, "review_date"):
        body.append(date_input("review_on", t("record.field.review_on"), value=v("review_on", "")))
    return body


def _has_empty_row(form: Mapping[str, str], rows: list[int]) -> bool:
    return any(not any(form.get(f"action_{r}_{part}") for part in ("description", "owner", "due")) for r in rows)


@dataclass(frozen=True)
class SummaryView:
    """What the channel may see: structured, non-identifying fields only."""
    reference: str
    session_number: int
    held_on: date | None
    facilitators: str
    attendee_count: int
    agencies: list[str]
    themes: list[str]
    action_count: int
    owners: list[str]
    earliest_due: date | None
    escalated: bool
    further_sessions: bool
    further_sessions_when: date | None
    review_on: date | None


def summary_view(case: Case, record: SessionRecord, profile: Profile) -> SummaryView:
    dues = [a.due_on for a in record.actions]
    return SummaryView(
        reference=case.reference, session_number=record.session_number, held_on=record.held_on,
        facilitators=", ".join(f.name for f in case.facilitators),
        attendee_count=len(record.attendee_emails) + len([n for n in record.other_attendees.split(",") if n.strip()]),
        agencies=case.request.agencies, themes=[th for th in record.themes if th in profile.record.themes],
        action_count=len(record.actions), owners=sorted({a.owner_name for a in record.actions}),
        earliest_due=min(dues) if dues else None, escalated=bool(record.escalation_issues.strip()),
        further_sessions=record.further_sessions, further_sessions_when=record.further_sessions_when,
        review_on=record.review_on)


def summary_card(t: Catalogue, view: SummaryView) -> Json:
    """The channel or meeting-chat card. Built only from SummaryView: no free text from the record."""
    yes, no = t("record.form.yes"), t("record.form.no")
    body = [title(t("record.summary.title", reference=view.reference)),
            text(t("record.summary.intro"), subtle=True),
            facts([
                (t("record.summary.session"), str(view.session_number)),
                (t("record.field.held_on"), _day(view.held_on)),
                (t("record.field.facilitators"), view.facilitators),
                (t("record.summary.attendees"), str(view.attendee_count)),
                (t("record.summary.agencies"), ", ".join(view.agencies)),
                (t("record.field.themes"), ", ".join(view.themes)),
                (t("record.summary.actions"), t("record.summary.actions_value", count=view.action_count,
                                                 owners=", ".join(view.owners) or "-",
                                                 due=_day(view.earliest_due))),
                (t("record.summary.escalated"), yes if view.escalated else no),
                (t("record.field.further_sessions"),
                 _day(view.further_sessions_when) if view.further_sessions else no),
                (t("record.field.review_on"), _day(view.review_on)),
            ]),
            text(t("record.summary.where"), subtle=True)]
    return card(body)


def full_record_card(t: Catalogue, case: Case, profile: Profile, record: SessionRecord,
                     document_url: str = "") -> Json:
    """The whole record, for an attendee in personal chat."""
    body: list[Json] = [title(t("record.full.title", reference=case.reference)),
                        text(t("record.full.private"), subtle=True)]
    pairs = []
    if shows(profile, "meeting_identifier"):
        pairs.append((t("record.field.meeting_identifier"), record.meeting_identifier))
    pairs += [(t("record.field.held_on"), _day(record.held_on)),
              (t("record.field.facilitators"), record.facilitators),
              (t("record.field.attendees"), ", ".join(record.attendees + ([record.other_attendees]
                                                                            if record.other_attendees else [])))]
    if shows(profile, "lead_professional"):
        pairs.append((t("record.field.lead_professional"), record.lead_professional))
    body.append(facts(pairs))
    body += [heading(t("record.field.learning_points")), text(record.learning_points or "-"),
             text(t("record.full.themes", themes=", ".join(record.themes + ([record.other_themes]
                                                                              if record.other_themes else [])) or "-"))]
    body.append(heading(profile.model.name))
    for section in profile.model.sections:
        body += [text(section.title, weight="Bolder"), text(record.sections.get(section.key) or "-")]
    body.append(heading(t("record.form.actions")))
    if record.actions:
        body.append(facts([(a.owner_name, t("record.full.action", description=a.description, due=_day(a.due_on)))
                           for a in record.actions]))
    else:
        body.append(text(t("record.full.no_actions")))
    more = []
    if shows(profile, "escalation_issues"):
        more.append((t("record.field.escalation_issues"), record.escalation_issues))
    if shows(profile, "escalated_to"):
        more.append((t("record.field.escalated_to"), record.escalated_to))
    if shows(profile, "further_sessions"):
        more.append((t("record.field.further_sessions"), _day(record.further_sessions_when)
                     if record.further_sessions else t("record.form.no")))
    if shows(profile, "plan_changes"):
        more += [(t("record.field.plan_changes"), record.plan_changes),
                 (t("record.field.plan_changes_shared_by"), record.plan_changes_shared_by)]
    if shows(profile, "review_date"):
        more.append((t("record.field.review_on"), _day(record.review_on)))
    if more:
        body.append(facts(more))
    actions: list[Json] = []
    if document_url:
        actions.append({"type": "Action.OpenUrl", "title": t("record.full.download"), "url": document_url})
    else:
        body.append(text(t("record.full.no_download"), subtle=True))
    return card(body, actions)


def published_card(t: Catalogue, case: Case, *, full: bool, action_count: int, attendees: int,
                   summary_posted: bool, further: bool, document_url: str = "",
                   timeliness: list[tuple[str, date, bool]] | None = None, learning_goes_to: str = "") -> Json:
    """``timeliness``: (what, deadline, met) for the actions and, when published, the minutes."""
    lines = [text(t("record.done.actions", count=action_count))]
    for what, due, met in timeliness or []:
        lines.append(text(t(f"record.done.{what}_{'met' if met else 'missed'}", due=_day(due)),
                          color=None if met else "Attention"))
    if full:
        lines.append(text(t("record.done.full", count=attendees)))
        lines.append(text(t("record.done.summary_posted") if summary_posted else t("record.done.summary_nowhere")))
        if further:
            lines.append(text(t("record.done.further")))
        if learning_goes_to:
            lines.append(text(t("record.done.learning", to=learning_goes_to), subtle=True))
    else:
        lines.append(text(t("record.done.minutes_next")))
    actions: list[Json] = []
    if document_url:
        actions.append({"type": "Action.OpenUrl", "title": t("record.full.download"), "url": document_url})
    return card([title(t("record.done.title", reference=case.reference)), *lines], actions)


def review_card(t: Catalogue, case: Case, review_on: date, late: str = "") -> Json:
    """The review date agreed in the record has come (to the facilitators, personal chat)."""
    return card([title(t("record.reminder.review_title", reference=case.reference)),
                 text(t("record.reminder.review", due=_day(review_on))),
                 *([text(late, subtle=True)] if late else [])])


def reminder_card(t: Catalogue, case: Case, what: str, stage: str, due: date, late: str = "") -> Json:
    return card([title(t(f"record.reminder.{what}_title", reference=case.reference)),
                 text(t(f"record.reminder.{stage}", due=_day(due))),
                 *([text(late, subtle=True)] if late else [])],
                [submit(t("record.offer.button"), "record.open", {"case_id": case.id}, validate=False)])
