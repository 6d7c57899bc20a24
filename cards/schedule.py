"""Scheduling cards: the lead facilitator's scheduling card (and the reschedule-or-cancel card), the
invitation card each invitee gets in personal chat, the facilitators' attendance card, and the HTML
of the emailed invitation (the same information as the card, for federated invitees).

Pure functions from domain objects to Adaptive Card 1.5 JSON; every string from the catalogue.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Any

from cards.base import (
    Json,
    card,
    choice_input,
    container,
    date_input,
    error_banner,
    execute,
    facts,
    heading,
    text,
    text_input,
    time_input,
    title,
)
from supervision.catalogue import Catalogue
from supervision.clock import format_uk_date, format_uk_datetime, uk_local
from supervision.models import Case, CaseState, Invitee
from supervision.profile import Profile
from supervision.scheduling import (
    AttendanceStatus,
    Proposals,
    ScheduleRecord,
    attendance_status,
    confirmed_count,
)

SLOT_TYPED = "typed"


@dataclass(frozen=True)
class Preparation:
    """What the invitation says to prepare, with the dates worked out by the edge."""

    chronology_months: int
    chronology_due: date | None
    evaluation_days_before: int


def _when(case: Case) -> str:
    return format_uk_datetime(case.session.starts_at) if case.session.starts_at else "-"


def _link(label: str, url: str) -> Json:
    return {"type": "Action.OpenUrl", "title": label, "url": url}


def _length(t: Catalogue, profile: Profile) -> str:
    return t("schedule.minutes", minutes=profile.timescales.session_length_minutes)


# --- the lead facilitator's cards --------------------------------------------------------------
def scheduling_card(t: Catalogue, case: Case, profile: Profile, proposals: Proposals, *,
                    values: dict[str, Any] | None = None, errors: list[str] | None = None,
                    ask_join_url: bool = False) -> Json:
    """``ask_join_url``: offline (no Graph), the facilitator may give the Teams meeting they made."""
    values = values or {}
    due = format_uk_date(case.session_due) if case.session_due else "-"
    body: list[Json] = [title(t("schedule.title"))]
    if errors:
        body.append(error_banner(errors))
    body += [text(t("schedule.intro", reference=case.reference)),
             facts([(t("schedule.deadline"), due), (t("schedule.length"), _length(t, profile))])]
    if proposals.slots:
        note = ("schedule.free_busy_used" if proposals.free_busy_used else
                "schedule.free_busy_failed" if proposals.free_busy_failed else "schedule.free_busy_none")
        body.append(text(t(note), subtle=True))
    else:
        body.append(text(t("schedule.no_slots"), color="Warning"))
    choices = [(format_uk_datetime(s.start), s.start.isoformat()) for s in proposals.slots]
    choices.append((t("schedule.slot_typed"), SLOT_TYPED))
    default_slot = values.get("slot") or (choices[0][1] if proposals.slots else SLOT_TYPED)
    body.append(choice_input("slot", t("schedule.slot_label"), choices, value=str(default_slot), expanded=True))
    body.append(date_input("session_date", t("schedule.date_label"), value=str(values.get("session_date", "")),
                           min_=None))
    body.append(time_input("session_time", t("schedule.time_label"), value=str(values.get("session_time", ""))))
    body.append(text_input("late_reason", t("schedule.late_reason_label", due=due), multiline=True,
                           value=str(values.get("late_reason", "")), max_length=1000,
                           placeholder=t("schedule.late_reason_placeholder")))
    if ask_join_url:
        body.append(text_input("join_url", t("schedule.join_url_label"), value=str(values.get("join_url", "")),
                               max_length=2000, placeholder=t("schedule.join_url_placeholder"), style="Url"))
    return card(body, [execute(t("schedule.button_schedule"), "schedule.submit", {"case_id": case.id},
                               style="positive")])


def manage_card(t: Catalogue, case: Case, profile: Profile, *, values: dict[str, Any] | None = None,
                errors: list[str] | None = None) -> Json:
    values = values or {}
    local = uk_local(case.session.starts_at) if case.session.starts_at else None
    due = format_uk_date(case.session_due) if case.session_due else "-"
    body: list[Json] = [title(t("schedule.manage_title"))]
    if errors:
        body.append(error_banner(errors))
    body += [text(t("schedule.manage_intro", reference=case.reference, when=_when(case))),
             facts([(t("schedule.deadline"), due), (t("schedule.length"), _length(t, profile))]),
             date_input("session_date", t("schedule.date_label"),
                        value=str(values.get("session_date") or (local.date().isoformat() if local else ""))),
             time_input("session_time", t("schedule.time_label"),
                        value=str(values.get("session_time") or (local.strftime("%H:%M") if local else ""))),
             text_input("reason", t("schedule.reason_label"), required=True, error=t("schedule.reason_error"),
                        multiline=True, value=str(values.get("reason", "")), max_length=1000)]
    ids = {"case_id": case.id}
    return card(body, [execute(t("schedule.button_reschedule"), "schedule.reschedule", ids, style="positive"),
                       execute(t("schedule.button_cancel"), "schedule.cancel", ids, style="destructive")])


def scheduled_card(t: Catalogue, case: Case, *, key: str = "schedule.scheduled_body") -> Json:
    body = [title(t("schedule.scheduled_title")), text(t(key, reference=case.reference, when=_when(case)))]
    if case.session.late_reason and case.session_due:
        body.append(text(t("schedule.late_note", due=format_uk_date(case.session_due),
                           reason=case.session.late_reason), subtle=True))
    actions = []
    if case.session.join_url:
        actions.append(_link(t("schedule.join"), case.session.join_url))
    if case.state in (CaseState.SCHEDULED, CaseState.PRE_SESSION):
        actions.append(execute(t("schedule.button_manage"), "schedule.manage", {"case_id": case.id},
                               validate=False))
    return card(body, actions)


def message_card(heading_text: str, message: str) -> Json:
    return card([title(heading_text), text(message)], full_width=False)


# --- the invitation ----------------------------------------------------------------------------
def _answer_key(status: AttendanceStatus) -> str | None:
    return {AttendanceStatus.CONFIRMED: "schedule.invite.answered_confirm",
            AttendanceStatus.AUTHORITY: "schedule.invite.answered_authority",
            AttendanceStatus.DECLINED: "schedule.invite.answered_decline"}.get(status)


def invitation_card(t: Catalogue, case: Case, profile: Profile, invitee: Invitee, prep: Preparation, *,
                    ics_url: str = "", rescheduled_reason: str = "", values: dict[str, Any] | None = None,
                    errors: list[str] | None = None) -> Json:
    """In personal chat with a member of the case: it may name the child."""
    values = values or {}
    body: list[Json] = [title(t("schedule.invite.title", process=profile.process_name))]
    if errors:
        body.append(error_banner(errors))
    status = attendance_status(invitee)
    answer = _answer_key(status)
    if answer:
        body.append(container([text(t(answer), weight="Bolder")], style="good"))
    if rescheduled_reason:
        body.append(container([text(t("schedule.invite.rescheduled"), weight="Bolder"),
                               text(t("schedule.invite.rescheduled_reason", reason=rescheduled_reason))],
                              style="warning"))
    body.append(text(t("schedule.invite.intro", reference=case.reference)))
    body.append(facts([
        (t("schedule.invite.child"), case.request.child.full_name),
        (t("schedule.invite.when"), _when(case)),
        (t("schedule.invite.length"), _length(t, profile)),
        (t("schedule.invite.facilitators"), ", ".join(f"{f.name} ({f.agency})" for f in case.facilitators)),
        (t("schedule.invite.your_agency"), invitee.agency),
    ]))
    if not case.session.join_url:
        body.append(text(t("schedule.no_join"), subtle=True))
    body += [heading(t("schedule.invite.what_is_title")), text(t("schedule.invite.what_is")),
             heading(t("schedule.invite.what_is_not_title")), text(t("schedule.invite.what_is_not")),
             heading(t("schedule.invite.prepare_title")),
             text("- " + t("schedule.invite.prepare_chronology", months=prep.chronology_months,
                           due=format_uk_date(prep.chronology_due) if prep.chronology_due else "-")
                  + "\n- " + t("schedule.invite.prepare_evaluation", days=prep.evaluation_days_before)),
             text(t("schedule.invite.authority"), weight="Bolder"),
             text_input("decline_reason", t("schedule.invite.decline_reason_label"), multiline=True,
                        value=str(values.get("decline_reason", invitee.decline_reason)), max_length=1000),
             text_input("colleague", t("schedule.invite.colleague_label"),
                        value=str(values.get("colleague", invitee.suggested_colleague)), max_length=300)]
    ids = {"case_id": case.id}
    actions: list[Json] = [
        execute(t("schedule.invite.button_confirm"), "schedule.confirm", ids, style="positive", validate=False),
        execute(t("schedule.invite.button_authority"), "schedule.authority", ids, validate=False),
        execute(t("schedule.invite.button_decline"), "schedule.decline", ids, style="destructive"),
    ]
    if case.session.join_url:
        actions.append(_link(t("schedule.join"), case.session.join_url))
    if ics_url:
        actions.append(_link(t("schedule.ics_link"), ics_url))
    return card(body, actions)


def cancelled_card(t: Catalogue, case: Case, when: str, reason: str) -> Json:
    return card([title(t("schedule.invite.cancelled_title")),
                 text(t("schedule.invite.cancelled", reference=case.reference, when=when)),
                 text(t("schedule.invite.cancelled_reason", reason=reason))], full_width=False)


# --- the facilitators' attendance card ---------------------------------------------------------
STATUS_KEYS = {
    AttendanceStatus.CONFIRMED: ("schedule.attendance.confirmed", "Good"),
    AttendanceStatus.AUTHORITY: ("schedule.attendance.authority", "Good"),
    AttendanceStatus.DECLINED: ("schedule.attendance.declined", "Attention"),
    AttendanceStatus.NO_ANSWER: ("schedule.attendance.no_answer", "Warning"),
    AttendanceStatus.NOT_INVITED: ("schedule.attendance.not_invited", "Default"),
}


def attendance_card(t: Catalogue, case: Case, profile: Profile, record: ScheduleRecord) -> Json:
    """For the facilitators, in personal chat. Names the invitees, never the child."""
    statuses = [attendance_status(i) for i in case.request.invitees]
    summary = t("schedule.attendance.summary_line",
                confirmed=confirmed_count(case),
                authority=statuses.count(AttendanceStatus.AUTHORITY),
                declined=statuses.count(AttendanceStatus.DECLINED),
                waiting=statuses.count(AttendanceStatus.NO_ANSWER),
                max=profile.max_attendees)
    body: list[Json] = [title(t("schedule.attendance.title", reference=case.reference))]
    if case.state == CaseState.CANCELLED:
        body.append(container([text(t("schedule.invite.cancelled_title"), weight="Bolder")], style="attention"))
    body += [facts([(t("schedule.attendance.when"), _when(case))]), text(summary, weight="Bolder")]
    if confirmed_count(case) >= profile.max_attendees:
        body.append(text(t("schedule.attendance.full", max=profile.max_attendees), color="Warning"))
    emailed = set(record.emailed)
    unreached = set(record.unreached)
    for invitee, status in zip(case.request.invitees, statuses, strict=True):
        label, color = STATUS_KEYS[status]
        notes = []
        if invitee.email.lower() in emailed:
            notes.append(t("schedule.attendance.by_email"))
        if invitee.email.lower() in unreached:
            notes.append(t("schedule.attendance.unreached"))
        lines = [text(f"**{invitee.name}** ({invitee.agency})" + (f" - {'; '.join(notes)}" if notes else ""))]
        if status == AttendanceStatus.DECLINED:
            if invitee.decline_reason:
                lines.append(text(t("schedule.attendance.reason", reason=invitee.decline_reason), subtle=True))
            if invitee.suggested_colleague:
                lines.append(text(t("schedule.attendance.colleague", colleague=invitee.suggested_colleague),
                                  subtle=True))
        body.append({"type": "ColumnSet", "separator": True, "columns": [
            {"type": "Column", "width": "stretch", "items": lines},
            {"type": "Column", "width": "auto", "items": [text(t(label), color=color, weight="Bolder")]},
        ]})
    actions = []
    if case.state in (CaseState.SCHEDULED, CaseState.PRE_SESSION):
        actions.append(execute(t("schedule.button_manage"), "schedule.manage", {"case_id": case.id},
                               validate=False))
    return card(body, actions)


# --- the emailed invitation --------------------------------------------------------------------
def invitation_html(t: Catalogue, case: Case, profile: Profile, invitee: Invitee, prep: Preparation, *,
                    headline: str = "", cancelled_reason: str = "") -> str:
    """The email for invitees the bot cannot reach in Teams. It leaves the organisation, so it names
    the case by reference only, never the child."""
    lead = next((f for f in case.facilitators if f.lead), case.facilitators[0] if case.facilitators else None)
    parts = [f"<h2>{escape(headline or t('schedule.invite.title', process=profile.process_name))}</h2>"]
    if cancelled_reason:
        parts.append(f"<p><strong>{escape(t('schedule.invite.cancelled', reference=case.reference, when=_when(case)))}"
                     f"</strong></p><p>{escape(t('schedule.invite.cancelled_reason', reason=cancelled_reason))}</p>")
    else:
        parts.append(f"<p>{escape(t('schedule.invite.intro', reference=case.reference))}</p>")
        rows = [(t("schedule.invite.when"), _when(case)), (t("schedule.invite.length"), _length(t, profile)),
                (t("schedule.invite.facilitators"), ", ".join(f"{f.name} ({f.agency})" for f in case.facilitators)),
                (t("schedule.invite.your_agency"), invitee.agency)]
        parts.append("<table>" + "".join(f"<tr><th align=\"left\">{escape(k)}</th><td>{escape(v)}</td></tr>"
                                         for k, v in rows) + "</table>")
        if case.session.join_url:
            parts.append(f"<p><a href=\"{escape(case.session.join_url, quote=True)}\">{escape(t('schedule.join'))}</a></p>")
        else:
            parts.append(f"<p>{escape(t('schedule.no_join'))}</p>")
        due = format_uk_date(prep.chronology_due) if prep.chronology_due else "-"
        parts += [f"<h3>{escape(t('schedule.invite.what_is_title'))}</h3><p>{escape(t('schedule.invite.what_is'))}</p>",
                  f"<h3>{escape(t('schedule.invite.what_is_not_title'))}</h3>"
                  f"<p>{escape(t('schedule.invite.what_is_not'))}</p>",
                  f"<h3>{escape(t('schedule.invite.prepare_title'))}</h3><ul>"
                  f"<li>{escape(t('schedule.invite.prepare_chronology', months=prep.chronology_months, due=due))}</li>"
                  f"<li>{escape(t('schedule.invite.prepare_evaluation', days=prep.evaluation_days_before))}</li></ul>",
                  f"<p><strong>{escape(t('schedule.invite.authority'))}</strong></p>"]
        if lead:
            parts.append(f"<p>{escape(t('schedule.mail.reply', facilitator=lead.name, email=lead.email))}</p>")
    parts += [f"<p>{escape(t('schedule.mail.attachment_note'))}</p>", f"<p><em>{escape(t('schedule.mail.privacy'))}</em></p>"]
    return "\n".join(parts)
