"""Scheduling the session and inviting the team around the child.

- ``facilitators.assigned``: the lead facilitator gets the scheduling card (proposed slots, or a
  typed date and time, with a reason if past the deadline).
- ``schedule.submit`` / ``schedule.manage`` / ``schedule.reschedule`` / ``schedule.cancel``: the
  lead facilitator's Action.Execute verbs; the card is replaced in place with the outcome, or
  re-sent with the values entered and the problem named.
- ``session.scheduled`` / ``session.rescheduled``: every invitee gets a personal invitation card
  (proactively; the 1:1 chat is created with the tenant id where none exists), or, when the bot
  cannot reach them in Teams (federated), the same invitation by email with the .ics; the
  facilitators get the attendance card, which is updated in place as answers come in.
- ``schedule.confirm`` / ``schedule.authority`` / ``schedule.decline``: the invitee's answers.
- ``session.cancelled``: everyone is told, cards updated in place.

The .ics file is served to case members through a signed download link (kind ``session.ics``);
without Graph that link is how the session reaches people's calendars.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from botbuilder.dialogs import Dialog

from bot.downloads import DEFAULT_TTL, MAX_TTL, DownloadRequest, FileBody
from bot.graph import calendar_gateway
from bot.handler import describe_error
from bot.routing import Router
from bot.services import Services
from bot.turn import Turn, card_activity
from cards.schedule import (
    SLOT_TYPED,
    Preparation,
    attendance_card,
    cancelled_card,
    invitation_card,
    invitation_html,
    manage_card,
    message_card,
    scheduled_card,
    scheduling_card,
)
from documents.ics import CONTENT_TYPE as ICS_TYPE
from documents.ics import ics_filename, meeting_ics
from supervision.catalogue import Catalogue
from supervision.clock import format_uk_datetime, uk_local
from supervision.errors import DomainError, FieldError, ValidationFailed
from supervision.models import Case, CaseState, Invitee, InviteStatus
from supervision.ports import DomainEvent
from supervision.profile import Profile
from supervision.scheduling import (
    Attendee,
    CalendarUnavailable,
    CardRef,
    FreeBusy,
    Mail,
    MailAttachment,
    Meeting,
    Response,
    Scheduling,
    find_invitee,
    is_lead_facilitator,
    lead_facilitator,
    parse_slot,
    parse_typed_start,
)

log = logging.getLogger(__name__)
ICS_KIND = "session.ics"
ICS_AFTER_SESSION = timedelta(days=1)      # an .ics link lasts until the session's end plus this
ICS_UNPLANNED_TTL = timedelta(days=14)     # ... or this long when the case has no session time


def ics_ttl(case: Case, now: datetime) -> timedelta:
    """How long an .ics link lasts: until the session's end plus a day, so that a session weeks after
    the invitation (up to 15 working days after agreement) still has a working link; never beyond the
    downloads cap (bot/downloads.py MAX_TTL) and never less than an ordinary link's hour."""
    end = case.session.ends_at or case.session.starts_at
    if end is None:
        return ICS_UNPLANNED_TTL
    return max(DEFAULT_TTL, min(end + ICS_AFTER_SESSION - now, MAX_TTL))


def _when(case: Case) -> str:
    return format_uk_datetime(case.session.starts_at) if case.session.starts_at else "-"


def _inputs(turn: Turn) -> dict[str, Any]:
    return dict(turn.action.inputs) if turn.action else {}


def _case_id(turn: Turn) -> str:
    from cards.actions import CardPayloadError

    try:
        return turn.action.id("case_id") if turn.action else ""
    except CardPayloadError:
        raise DomainError("no case", key="error.card_payload") from None


class ScheduleFlow:
    def __init__(self, services: Services, scheduling: Scheduling) -> None:
        self.services, self.scheduling = services, scheduling
        self._tenant = ""

    async def learn_tenant(self, case: Case) -> None:
        """Remember a tenant id from the facilitators the bot knows (their chats carried it)."""
        if self._tenant or self.services.people is None:
            return
        for facilitator in case.facilitators:
            known = await self.services.people.get(facilitator.user_id) if facilitator.user_id else None
            known = known or (await self.services.people.by_email(facilitator.email) if facilitator.email else None)
            if known is not None and known.tenant_id:
                self._tenant = known.tenant_id
                return

    # --- helpers -------------------------------------------------------------------------------
    def t(self) -> Catalogue:
        return Catalogue.for_language(self.services.config.language)

    @property
    def offline(self) -> bool:
        """No Graph: the facilitator makes the Teams meeting and may give its link."""
        return not self.scheduling.gateway.online

    def profile_for(self, case: Case) -> Profile:
        return self.services.profiles.get(case.profile_id) or self.services.profile()

    def preparation(self, case: Case) -> Preparation:
        profile = self.profile_for(case)
        due = None
        if case.session.starts_at:
            due = self.services.deadlines(profile).chronology_due(uk_local(case.session.starts_at).date())
        return Preparation(profile.timescales.chronology_window_months, due,
                           profile.timescales.pre_evaluation_working_days_before)

    async def _reply(self, turn: Turn, card: dict[str, Any]) -> None:
        if turn.activity.type == "invoke":
            turn.answer_with_card(card)
        else:
            await turn.send_card(card)

    async def user_id_for(self, user_id: str, email: str) -> tuple[str, str]:
        """A Teams user id (and tenant) for a person named on the case, or ("", "")."""
        if user_id:
            known = await self.services.people.get(user_id) if self.services.people is not None else None
            return user_id, known.tenant_id if known else ""
        if email and self.services.people is not None:
            known = await self.services.people.by_email(email)
            if known is not None:
                return known.user_id, known.tenant_id
        return "", ""

    async def tenant_hint(self) -> str:
        """The tenant for a new 1:1 chat when the person's own is not known: the configured one, else
        the tenant of the person the bot heard from in this case (the lead facilitator usually)."""
        return self.services.config.tenant_id or self._tenant

    async def send_card_to(self, user_id: str, tenant_id: str, card: dict[str, Any], summary: str = "") -> str:
        return await self.services.proactive.send_to_user(user_id, card_activity(card, summary),
                                                          tenant_id=tenant_id or await self.tenant_hint())

    async def tell(self, user_id: str, text: str) -> None:
        from botbuilder.core import MessageFactory

        try:
            await self.services.proactive.send_to_user(user_id, MessageFactory.text(text),
                                                       tenant_id=await self.tenant_hint())
        except Exception as error:  # one person unreachable must not stop the others
            log.warning("schedule notice not delivered: %s", type(error).__name__)

    async def ics_link(self, user_id: str, case: Case) -> str:
        downloads = getattr(self.services, "downloads", None)
        if downloads is None or not user_id:
            return ""
        return str(await downloads.link(user_id=user_id, case_id=case.id, kind=ICS_KIND,
                                        ttl=ics_ttl(case, self.services.clock.now())))

    async def provide_ics(self, request: DownloadRequest) -> FileBody:
        meeting = await self.scheduling.calendar_entry(request.actor, request.case_id)
        case = await self.services.cases.require(request.case_id)
        return FileBody(ics_filename(case.reference), ICS_TYPE, meeting_ics(meeting, stamp=self.services.clock.now()))

    # --- the lead facilitator's scheduling card ------------------------------------------------
    async def send_scheduling_card(self, case: Case) -> None:
        lead = lead_facilitator(case)
        if lead is None:
            return
        user_id, tenant = await self.user_id_for(lead.user_id, lead.email)
        if not user_id:
            log.warning("the lead facilitator of a case is not known to the bot yet")
            return
        proposals = await self.scheduling.proposals(case)
        t = self.t()
        card = scheduling_card(t, case, self.profile_for(case), proposals, ask_join_url=self.offline)
        try:
            activity_id = await self.send_card_to(user_id, tenant, card, t("schedule.title"))
        except Exception as error:
            log.warning("scheduling card not delivered: %s", type(error).__name__)
            return
        await self.scheduling.records.update(case.id, lambda r: r.scheduling_cards.append(CardRef(user_id, activity_id)))
        await self.services.audit.record(actor="bot", action="schedule.card_sent", case_id=case.id,
                                         what="scheduling card to the lead facilitator", why="facilitators assigned")

    async def on_facilitators_assigned(self, event: DomainEvent) -> None:
        case = await self.services.cases.get(event.case_id)
        if case is not None and case.state == CaseState.FACILITATORS_ASSIGNED:
            await self.send_scheduling_card(case)

    async def open(self, turn: Turn) -> None:
        case = await self.scheduling.open_for_scheduling(turn.actor, _case_id(turn))
        if case.state in (CaseState.SCHEDULED, CaseState.PRE_SESSION):
            await self._reply(turn, manage_card(turn.t, case, self.profile_for(case)))
            return
        if case.state != CaseState.FACILITATORS_ASSIGNED:
            raise DomainError("not schedulable", key="error.illegal_transition", state=turn.t(f"states.{case.state.value}"))
        proposals = await self.scheduling.proposals(case)
        await self._reply(turn, scheduling_card(turn.t, case, self.profile_for(case), proposals,
                                                ask_join_url=self.offline))

    async def command(self, turn: Turn) -> None:
        """``schedule``: the scheduling card (or the reschedule-or-cancel card) for each case the user
        leads as facilitator, for anyone who missed or lost the card sent on assignment."""
        actor = turn.actor
        found: dict[str, Case] = {}
        for key in {k for k in (actor.user_id, actor.email, actor.aad_object_id) if k}:
            for case in await self.services.cases.for_user(key):
                found[case.id] = case
        mine = [c for c in found.values() if is_lead_facilitator(actor, c)
                and c.state in (CaseState.FACILITATORS_ASSIGNED, CaseState.SCHEDULED, CaseState.PRE_SESSION)]
        if not mine:
            await turn.send_text(turn.t("schedule.none"))
            return
        for case in sorted(mine, key=lambda c: c.session_due or c.created_at.date()):
            case = await self.scheduling.open_for_scheduling(actor, case.id)
            if case.state == CaseState.FACILITATORS_ASSIGNED:
                card = scheduling_card(turn.t, case, self.profile_for(case), await self.scheduling.proposals(case),
                                       ask_join_url=self.offline)
            else:
                card = manage_card(turn.t, case, self.profile_for(case))
            await turn.send_card(card, turn.t("schedule.title"))

    def _start(self, case: Case, inputs: dict[str, Any], *, slot_allowed: bool) -> datetime:
        now = self.services.clock.now()
        calendar = self.services.calendar(self.profile_for(case))
        typed_date = str(inputs.get("session_date", "")).strip()
        typed_time = str(inputs.get("session_time", "")).strip()
        slot = str(inputs.get("slot", "")).strip()
        if typed_date or typed_time or not slot_allowed or slot == SLOT_TYPED or not slot:
            missing = [FieldError("session_date", "schedule.error.date_format")] if not typed_date else []
            missing += [FieldError("session_time", "schedule.error.time_format")] if not typed_time else []
            if missing:
                if slot_allowed and not slot:
                    raise ValidationFailed([FieldError("slot", "schedule.error.slot")])
                raise ValidationFailed(missing)
            return parse_typed_start(typed_date, typed_time, now=now, calendar=calendar)
        return parse_slot(slot, now=now, calendar=calendar)

    async def submit(self, turn: Turn) -> None:
        case = await self.scheduling.open_for_scheduling(turn.actor, _case_id(turn))
        inputs = _inputs(turn)
        try:
            starts = self._start(case, inputs, slot_allowed=True)
            case = await self.scheduling.schedule(turn.actor, case.id, starts, str(inputs.get("late_reason", "")),
                                                  join_url=str(inputs.get("join_url", "")) if self.offline else "")
        except (ValidationFailed, FieldError, CalendarUnavailable) as error:
            proposals = await self.scheduling.proposals(case)
            await self._reply(turn, scheduling_card(turn.t, case, self.profile_for(case), proposals, values=inputs,
                                                    errors=[describe_error(turn.t, error)],
                                                    ask_join_url=self.offline))
            return
        await self._reply(turn, scheduled_card(turn.t, case))

    async def manage(self, turn: Turn) -> None:
        case = await self.scheduling.open_for_scheduling(turn.actor, _case_id(turn))
        if case.state not in (CaseState.SCHEDULED, CaseState.PRE_SESSION):
            raise DomainError("not scheduled", key="error.illegal_transition", state=turn.t(f"states.{case.state.value}"))
        await self._reply(turn, manage_card(turn.t, case, self.profile_for(case)))

    async def reschedule(self, turn: Turn) -> None:
        case = await self.scheduling.open_for_scheduling(turn.actor, _case_id(turn))
        inputs = _inputs(turn)
        try:
            starts = self._start(case, inputs, slot_allowed=False)
            reason = str(inputs.get("reason", ""))
            case = await self.scheduling.reschedule(turn.actor, case.id, starts, reason)
        except (ValidationFailed, FieldError, CalendarUnavailable) as error:
            await self._reply(turn, manage_card(turn.t, case, self.profile_for(case), values=inputs,
                                                errors=[describe_error(turn.t, error)]))
            return
        await self._reply(turn, scheduled_card(turn.t, case, key="schedule.rescheduled_body"))

    async def cancel(self, turn: Turn) -> None:
        case = await self.scheduling.open_for_scheduling(turn.actor, _case_id(turn))
        inputs = _inputs(turn)
        try:
            case = await self.scheduling.cancel(turn.actor, case.id, str(inputs.get("reason", "")))
        except (ValidationFailed, FieldError, CalendarUnavailable) as error:
            await self._reply(turn, manage_card(turn.t, case, self.profile_for(case), values=inputs,
                                                errors=[describe_error(turn.t, error)]))
            return
        await self._reply(turn, message_card(turn.t("schedule.invite.cancelled_title"),
                                             turn.t("schedule.cancelled_body", reference=case.reference)))

    # --- answers -------------------------------------------------------------------------------
    async def _respond(self, turn: Turn, response: Response) -> None:
        if not turn.is_personal:        # the invitation names the child: never answer it where others see
            if turn.activity.type == "invoke":
                turn.answer_with_message(turn.t("schedule.answer_in_personal"))
            else:
                await turn.send_text(turn.t("schedule.answer_in_personal"))
            return
        case_id = _case_id(turn)
        inputs = _inputs(turn)
        reason, colleague = str(inputs.get("decline_reason", "")), str(inputs.get("colleague", ""))
        try:
            case, invitee = await self.scheduling.respond(turn.actor, case_id, response, reason, colleague)
        except (ValidationFailed, FieldError) as error:
            case = await self.scheduling.view_invitation(turn.actor, case_id)
            invitee = find_invitee(case, turn.actor) or Invitee()
            card = invitation_card(turn.t, case, self.profile_for(case), invitee, self.preparation(case),
                                   ics_url=await self.ics_link(turn.actor.user_id, case), values=inputs,
                                   errors=[describe_error(turn.t, error)])
            await self._reply(turn, card)
            return
        if turn.actor.user_id:
            def know(r: Any, email: str = invitee.email.lower(), uid: str = turn.actor.user_id) -> None:
                r.invitation_cards.setdefault(email, CardRef(uid, ""))

            await self.scheduling.records.update(case.id, know)
        card = invitation_card(turn.t, case, self.profile_for(case), invitee, self.preparation(case),
                               ics_url=await self.ics_link(turn.actor.user_id, case))
        await self._reply(turn, card)
        await self.show_attendance(case)

    async def confirm(self, turn: Turn) -> None:
        await self._respond(turn, Response.CONFIRM)

    async def authority(self, turn: Turn) -> None:
        await self._respond(turn, Response.AUTHORITY)

    async def decline(self, turn: Turn) -> None:
        await self._respond(turn, Response.DECLINE)

    # --- the attendance card -------------------------------------------------------------------
    async def show_attendance(self, case: Case) -> None:
        record = await self.scheduling.records.get(case.id)
        card = attendance_card(self.t(), case, self.profile_for(case), record)
        known = {ref.user_id: ref for ref in record.attendance_cards}
        for facilitator in case.facilitators:
            user_id, tenant = await self.user_id_for(facilitator.user_id, facilitator.email)
            if not user_id:
                continue
            ref = known.get(user_id)
            try:
                if ref is not None and ref.activity_id:
                    await self.services.proactive.update_for_user(user_id, ref.activity_id, card_activity(card))
                    continue
                activity_id = await self.send_card_to(user_id, tenant, card,
                                                      self.t()("schedule.attendance.title", reference=case.reference))
            except Exception as error:
                log.warning("attendance card not delivered: %s", type(error).__name__)
                continue

            def keep(r: Any, uid: str = user_id, aid: str = activity_id) -> None:
                r.attendance_cards = [c for c in r.attendance_cards if c.user_id != uid] + [CardRef(uid, aid)]

            await self.scheduling.records.update(case.id, keep)

    # --- invitations ---------------------------------------------------------------------------
    async def _meeting(self, case: Case) -> Meeting | None:
        return await self.scheduling.meeting_for(case)

    async def _email(self, case: Case, invitee: Invitee, *, headline: str = "", cancelled_reason: str = "",
                     subject_key: str = "schedule.mail.subject") -> bool:
        """Email the invitation with the .ics; tell the lead facilitator when it cannot go."""
        t = self.t()
        profile = self.profile_for(case)
        meeting = await self._meeting(case)
        if meeting is None:
            return False
        ics = meeting_ics(meeting, stamp=self.services.clock.now())
        method = "CANCEL" if meeting.cancelled else "REQUEST"
        mail = Mail(to=(Attendee(invitee.name, invitee.email),),
                    subject=t(subject_key, process=profile.process_name, when=format_uk_datetime(meeting.starts_at),
                              reference=case.reference),
                    html=invitation_html(t, case, profile, invitee, self.preparation(case), headline=headline,
                                         cancelled_reason=cancelled_reason),
                    attachments=(MailAttachment(ics_filename(case.reference), f"{ICS_TYPE}; method={method}", ics),))
        problem: CalendarUnavailable | None = None
        if self.scheduling.gateway.online:
            try:
                await self.scheduling.email_invitation(case, invitee, mail)
                return True
            except CalendarUnavailable as error:
                problem = error
        await self.scheduling.note_unreached(case.id, invitee.email)
        lead = lead_facilitator(case)
        if lead is not None:
            user_id, _ = await self.user_id_for(lead.user_id, lead.email)
            if user_id:
                url = await self.ics_link(user_id, case)
                if problem is not None:
                    text = t("schedule.notice.mail_failed", name=invitee.name, agency=invitee.agency,
                             reference=case.reference, status=problem.status, attempts=problem.attempts, url=url)
                else:
                    text = t("schedule.notice.unreached", name=invitee.name, agency=invitee.agency,
                             reference=case.reference, url=url)
                await self.tell(user_id, text)
        return False

    async def invite(self, case: Case, invitee: Invitee, *, rescheduled_reason: str = "") -> None:
        t = self.t()
        if not invitee.federated:
            user_id, tenant = await self.user_id_for(invitee.user_id, invitee.email)
            if user_id:
                card = invitation_card(t, case, self.profile_for(case), invitee, self.preparation(case),
                                       ics_url=await self.ics_link(user_id, case),
                                       rescheduled_reason=rescheduled_reason)
                try:
                    activity_id = await self.send_card_to(user_id, tenant, card,
                                                          t("schedule.invite.summary", reference=case.reference))
                except Exception as error:   # not installed for them, or no way in: try email
                    log.warning("invitation card not delivered: %s", type(error).__name__)
                else:
                    await self.scheduling.records.update(
                        case.id, lambda r: r.invitation_cards.__setitem__(invitee.email.lower(),
                                                                          CardRef(user_id, activity_id)))
                    await self.services.audit.record(actor="bot", action="invitation.sent", case_id=case.id,
                                                     what=f"invitation card to {invitee.agency or 'an invitee'}",
                                                     why="session scheduled")
                    return
        headline = t("schedule.invite.rescheduled") if rescheduled_reason else ""
        subject = "schedule.mail.subject_rescheduled" if rescheduled_reason else "schedule.mail.subject"
        await self._email(case, invitee, headline=headline, subject_key=subject)

    async def _tell_requester_and_lead_professional(self, case: Case, text: str) -> None:
        invited = {i.email.lower() for i in case.request.invitees} | {f.email.lower() for f in case.facilitators}
        told: set[str] = set()
        for person in (case.request.requester, case.request.lead_professional):
            if not person.email or person.email.lower() in invited or person.email.lower() in told:
                continue
            told.add(person.email.lower())
            user_id, _ = await self.user_id_for(person.user_id, person.email)
            if user_id:
                await self.tell(user_id, text)

    async def _tell_facilitators(self, case: Case, text: str, *, except_user: str = "") -> None:
        for facilitator in case.facilitators:
            user_id, _ = await self.user_id_for(facilitator.user_id, facilitator.email)
            if user_id and user_id != except_user and facilitator.email.lower() != except_user.lower():
                await self.tell(user_id, text)

    async def _event_case(self, event: DomainEvent) -> Case | None:
        """The case an event is about, read to tell everyone concerned (the read is audited)."""
        case = await self.services.cases.get(event.case_id)
        if case is not None:
            await self.services.audit.record(actor="bot", action="schedule.notify", case_id=case.id,
                                             what=event.kind, why="tell the people concerned")
        return case

    async def on_scheduled(self, event: DomainEvent) -> None:
        case = await self._event_case(event)
        if case is None:
            return
        await self.learn_tenant(case)
        for invitee in case.request.invitees:
            if invitee.status == InviteStatus.INVITED:
                await self.invite(case, invitee)
        await self.show_attendance(case)
        t = self.t()
        notice = t("schedule.notice.scheduled", reference=case.reference, when=_when(case))
        await self._tell_facilitators(case, notice, except_user=str(event.data.get("by", "")))
        await self._tell_requester_and_lead_professional(case, notice)

    async def on_rescheduled(self, event: DomainEvent) -> None:
        case = await self._event_case(event)
        if case is None:
            return
        await self.learn_tenant(case)
        reason = str(event.data.get("reason", ""))
        for invitee in case.request.invitees:
            if invitee.status == InviteStatus.INVITED:
                await self.invite(case, invitee, rescheduled_reason=reason)
        await self.show_attendance(case)
        t = self.t()
        notice = t("schedule.notice.rescheduled", reference=case.reference,
                   when=_when(case), reason=reason)
        await self._tell_facilitators(case, notice, except_user=str(event.data.get("by", "")))
        await self._tell_requester_and_lead_professional(case, notice)

    async def on_cancelled(self, event: DomainEvent) -> None:
        case = await self._event_case(event)
        if case is None:
            return
        await self.learn_tenant(case)
        t = self.t()
        reason = str(event.data.get("reason", ""))
        when = format_uk_datetime(case.session.starts_at) if case.session.starts_at else "-"
        record = await self.scheduling.records.get(case.id)
        notice = t("schedule.notice.cancelled", reference=case.reference, reason=reason)
        for invitee in case.request.invitees:
            if invitee.status == InviteStatus.NOT_SENT:
                continue
            ref = record.invitation_cards.get(invitee.email.lower())
            if ref is not None and ref.user_id:
                if ref.activity_id:
                    try:
                        await self.services.proactive.update_for_user(
                            ref.user_id, ref.activity_id, card_activity(cancelled_card(t, case, when, reason)))
                    except Exception as error:
                        log.warning("invitation card not updated: %s", type(error).__name__)
                await self.tell(ref.user_id, notice)
            elif invitee.email.lower() in record.emailed:
                await self._email(case, invitee, headline=t("schedule.invite.cancelled_title"), cancelled_reason=reason,
                                  subject_key="schedule.mail.subject_cancelled")
        await self.show_attendance(case)
        await self._tell_facilitators(case, notice, except_user=str(event.data.get("by", "")))
        await self._tell_requester_and_lead_professional(case, notice)


def build_scheduling(services: Services) -> Scheduling:
    existing = services.features.get("scheduling")
    if isinstance(existing, Scheduling):
        return existing
    gateway = services.features.get("calendar") or calendar_gateway(services.config)
    services.features["calendar"] = gateway
    scheduling = Scheduling(
        cases=services.cases, audit=services.audit, events=services.events, clock=services.clock,
        store=services.store, gateway=gateway, free_busy=gateway if isinstance(gateway, FreeBusy) else None,
        profile_for=lambda case: services.profiles.get(case.profile_id) or services.profile(),
        calendar_for=services.calendar, language=services.config.language)
    services.features["scheduling"] = scheduling
    return scheduling


def verbs(flow: ScheduleFlow) -> dict[str, Any]:
    return {"schedule.open": flow.open, "schedule.submit": flow.submit, "schedule.manage": flow.manage,
            "schedule.reschedule": flow.reschedule, "schedule.cancel": flow.cancel,
            "schedule.confirm": flow.confirm, "schedule.authority": flow.authority, "schedule.decline": flow.decline}


def register(router: Router, services: Services) -> list[Dialog]:
    scheduling = build_scheduling(services)
    flow = ScheduleFlow(services, scheduling)
    services.features["schedule.flow"] = flow
    router.command("schedule", flow.command, aliases=("schedule session",))
    for verb, handler in verbs(flow).items():
        router.verb(verb, handler)
    services.events.on("facilitators.assigned", flow.on_facilitators_assigned)
    services.events.on("session.scheduled", flow.on_scheduled)
    services.events.on("session.rescheduled", flow.on_rescheduled)
    services.events.on("session.cancelled", flow.on_cancelled)
    downloads = getattr(services, "downloads", None)
    if downloads is not None:
        downloads.register(ICS_KIND, flow.provide_ics)
    return []


__all__ = ["register", "ScheduleFlow", "build_scheduling"]
