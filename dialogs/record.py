"""``record session``: the facilitator records the held session; publishing sends the actions, the
summary (channel or meeting chat, no identifiers), the full record (each attendee, personal chat) and
the DOCX for the child's file (a signed download link). Reminders to the facilitator until the actions
and the minutes are out. Also: shared helpers for reaching people in personal chat."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta
from typing import Any

from bot.routing import Router
from bot.services import Services
from bot.turn import Turn, card_activity
from cards.actions import CardPayloadError
from cards.record import (
    field_label,
    full_record_card,
    offer_card,
    pick_case_card,
    published_card,
    record_form_card,
    reminder_card,
    review_card,
    step_of,
    summary_card,
    summary_view,
)
from documents.record_docx import DOCX_TYPE, DocSection, RecordDocument, render_record
from supervision.catalogue import Catalogue
from supervision.clock import format_uk_date, uk_today
from supervision.duework import DueWork, PermanentDeliveryFailure, RunContext, SendOutcome, late_text
from supervision.errors import DomainError, Forbidden, NotFound, ValidationFailed
from supervision.evaluation import SessionImpact, session_impact
from supervision.models import Case, Role
from supervision.ports import DomainEvent
from supervision.profile import Profile
from supervision.record import (
    RECORDABLE_STATES,
    REVIEW_KIND,
    RecordSessions,
    SessionRecord,
    StoredRecord,
    facilitator_reminders,
    meeting_chat_id,
    on_time,
    record_deadlines,
    review_work,
)
from supervision.roles import Action as Permission
from supervision.roles import Actor, authorize, case_roles

log = logging.getLogger(__name__)
DOC_KIND = "record.docx"
DOC_TTL = timedelta(days=14)


# --- shared helpers for my features ------------------------------------------------------------
def need(turn: Turn, name: str) -> str:
    """An id the card must carry; a stale or tampered card gets the polite card-payload message."""
    if turn.action is None:
        raise DomainError("no card action", key="error.card_payload")
    try:
        return turn.action.id(name)
    except CardPayloadError:
        raise DomainError("card without " + name, key="error.card_payload") from None


def profile_for(services: Services, case: Case) -> Profile:
    return services.profiles.get(case.profile_id) or services.profile()


def catalogue(services: Services) -> Catalogue:
    return Catalogue.for_language(services.config.language)


async def user_id_for(services: Services, email: str, user_id: str = "") -> str:
    if user_id:
        return user_id
    if email and services.people is not None:
        known = await services.people.by_email(email)
        if known is not None:
            return str(known.user_id)
    return ""


async def send_personal(services: Services, card: dict[str, Any], summary: str, *, email: str = "",
                        user_id: str = "") -> str:
    """Send a card to one person's personal chat; returns the activity id, or "" if unreachable."""
    target = await user_id_for(services, email, user_id)
    if not target or services.proactive is None:
        log.info("no way to reach a user in personal chat")
        return ""
    try:
        return await services.proactive.send_to_user(target, card_activity(card, summary))
    except Exception as error:  # one unreachable person must not stop the others
        log.warning("personal message failed: %s", type(error).__name__)
        return ""


async def deliver(services: Services, card: dict[str, Any], summary: str, *, email: str = "",
                  user_id: str = "") -> str:
    """Send to one person's personal chat or raise: PermanentDeliveryFailure when they can't be addressed
    (the scheduler reports it to the facilitator and never retries), anything else when it may be retried."""
    target = await user_id_for(services, email, user_id)
    if not target or services.proactive is None:
        raise PermanentDeliveryFailure("unknown_user")
    return str(await services.proactive.send_to_user(target, card_activity(card, summary)))


async def deliver_once(ctx: RunContext, services: Services, card: dict[str, Any], summary: str, *,
                       email: str = "", user_id: str = "") -> SendOutcome:
    """A due-work send: at most once per piece of work and recipient, across crashes and restarts."""
    who = (email or user_id).lower()

    async def send() -> str:
        return await deliver(services, card, summary, email=email, user_id=user_id)

    return await ctx.once(f"to:{who}", send, recipient=who)


def facilitator_contacts(case: Case) -> list[tuple[str, str]]:
    return [(f.email, f.user_id) for f in case.facilitators]


def error_lines(t: Catalogue, profile: Profile, failed: ValidationFailed) -> list[str]:
    lines = []
    for error in failed.errors:
        label = field_label(t, profile, error.field)
        try:
            lines.append(t(error.key, label=label, **error.params))
        except (KeyError, IndexError):
            lines.append(label)
    return lines


async def document_link(services: Services, user_id: str, case_id: str, session: int) -> str:
    downloads = getattr(services, "downloads", None)
    if downloads is None or not user_id or DOC_KIND not in downloads.providers:
        return ""
    return str(await downloads.link(user_id=user_id, case_id=case_id, kind=DOC_KIND, arg=str(session), ttl=DOC_TTL))


def _score(value: float | int | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"+{text}" if signed and value > 0 else text


def impact_parts(t: Catalogue, impact: SessionImpact | None) -> dict[str, Any]:
    """The evaluation part of the record document: each attendee's before, after and change, and
    the session's means (supervision.evaluation.session_impact)."""
    if impact is None:
        return {}
    parts: dict[str, Any] = {"impact_title": t("record.full.doc_impact")}
    if not impact.attendees:
        parts["impact_summary"] = t("record.full.doc_impact_none")
        return parts
    parts["impact_header"] = tuple(t(f"record.full.doc_impact_{k}") for k in ("name", "agency", "pre", "post", "change"))
    parts["impact_rows"] = [(a.name, a.agency or "-", _score(a.pre), _score(a.post), _score(a.change, signed=True))
                            for a in impact.attendees]
    parts["impact_summary"] = t("record.full.doc_impact_summary", pre_count=impact.pre_count,
                                post_count=impact.post_count, expected=impact.expected,
                                mean_pre=_score(impact.mean_pre), mean_post=_score(impact.mean_post),
                                mean_change=_score(impact.mean_change, signed=True))
    return parts


def record_document(t: Catalogue, case: Case, profile: Profile, record: SessionRecord,
                    impact: SessionImpact | None = None) -> RecordDocument:
    facts = [(t("record.field.meeting_identifier"), record.meeting_identifier),
             (t("record.field.held_on"), format_uk_date(record.held_on) if record.held_on else "-"),
             (t("record.field.facilitators"), record.facilitators),
             (t("record.field.attendees"), ", ".join(record.attendees + ([record.other_attendees]
                                                                          if record.other_attendees else []))),
             (t("record.field.lead_professional"), record.lead_professional),
             (t("record.field.learning_points"), record.learning_points),
             (t("record.field.themes"), ", ".join(record.themes + ([record.other_themes] if record.other_themes else [])))]
    closing = [(t("record.field.escalation_issues"), record.escalation_issues),
               (t("record.field.escalated_to"), record.escalated_to),
               (t("record.field.further_sessions"),
                format_uk_date(record.further_sessions_when) if record.further_sessions and record.further_sessions_when
                else t("record.form.no")),
               (t("record.field.plan_changes"), record.plan_changes),
               (t("record.field.plan_changes_shared_by"), record.plan_changes_shared_by),
               (t("record.field.review_on"), format_uk_date(record.review_on) if record.review_on else "-")]
    child_line = ""
    child = case.request.child
    if profile.record.child_identifiers_allowed and child.full_name:
        child_line = t("record.full.doc_child", name=child.full_name,
                       dob=format_uk_date(child.date_of_birth) if child.date_of_birth else "-")
    return RecordDocument(
        title=t("record.full.title", reference=case.reference),
        subtitle=t("record.full.doc_subtitle", process=profile.process_name, partnership=profile.name),
        facts=facts, sections_title=profile.model.name,
        sections=[DocSection(s.title, s.questions, record.sections.get(s.key, "")) for s in profile.model.sections],
        actions_title=t("record.form.actions"),
        actions_header=(t("record.full.doc_action"), t("record.full.doc_owner"), t("record.full.doc_due")),
        actions=[(a.description, a.owner_name, format_uk_date(a.due_on)) for a in record.actions],
        closing=closing, child_line=child_line,
        footer=t("record.full.doc_footer", date=format_uk_date(record.held_on) if record.held_on else "-"),
        **impact_parts(t, impact))


# --- the feature -------------------------------------------------------------------------------
def register(router: Router, services: Services) -> list[Any]:
    uc = RecordSessions(store=services.store, cases=services.cases, audit=services.audit, clock=services.clock,
                        events=services.events, profiles=services.profiles, deadlines=services.deadlines,
                        default_profile=services.config.default_profile)
    services.features["record"] = uc

    async def create_actions(case: Case, record: SessionRecord, actor: Actor) -> dict[str, str]:
        items = services.features.get("action_items")
        if items is None:
            return {}
        return dict(await items.create_from_record(case, record, actor))

    async def write_tracker(case: Case, record: SessionRecord, profile: Profile) -> None:
        log_ = services.features.get("tracker")
        if log_ is not None:
            await log_.add_session(case, record, profile)

    uc.create_actions = create_actions
    uc.write_tracker = write_tracker

    def deadlines_pair(case: Case) -> tuple[Any, Any] | None:
        marks = record_deadlines(case, services.deadlines(profile_for(services, case)))
        return (marks.actions_due, marks.minutes_due) if marks else None

    async def send_form(turn: Turn, case: Case, doc: StoredRecord, errors: list[str] | None = None,
                        step: int = 1) -> None:
        profile = profile_for(services, case)
        card = record_form_card(turn.t, case, profile, doc.form, doc.sent_rows, deadlines_pair(case), errors, step)
        await turn.send_card(card, turn.t("record.form.title", reference=case.reference))

    def step_of_card(turn: Turn) -> int:
        return 2 if turn.action is not None and turn.action.ids.get("phase") == "2" else 1

    async def my_recordable(actor: Actor) -> list[Case]:
        found: dict[str, Case] = {}
        for key in {k for k in (actor.user_id, actor.email, actor.aad_object_id) if k}:
            for case in await services.cases.for_user(key):
                if case.state in RECORDABLE_STATES and Role.FACILITATOR in case_roles(actor, case):
                    found[case.id] = case
        return sorted(found.values(), key=lambda c: c.reference)

    async def open_privately(turn: Turn, case_id: str) -> None:
        """From a meeting chat or channel: remember it for the summary, send the form in personal chat."""
        case = await services.cases.require(case_id)
        try:
            authorize(turn.actor, Permission.RECORD_SESSION, case)
        except Forbidden:
            await services.audit.record(actor=turn.actor.audit_name, action="record.refused", case_id=case.id,
                                        what="open the session record", why="not a facilitator", allowed=False)
            await turn.send_text(turn.t("record.not_facilitator"))
            return
        conversation = turn.activity.conversation
        await uc.remember_summary_target(case.id, conversation.id, turn.activity.service_url or "")
        case, doc = await uc.open(turn.actor, case.id)
        profile = profile_for(services, case)
        card = record_form_card(turn.t, case, profile, doc.form, doc.sent_rows, deadlines_pair(case))
        sent = await send_personal(services, card, turn.t("record.form.title", reference=case.reference),
                                   user_id=turn.actor.user_id)
        await turn.send_text(turn.t("record.sent_privately") if sent else turn.t("record.unreachable"))

    async def start(turn: Turn) -> None:
        cases = await my_recordable(turn.actor)
        if not cases:
            await services.audit.record(actor=turn.actor.audit_name, action="record.refused",
                                        what="record session", why="no held session to record", allowed=False)
            await turn.send_text(turn.t("record.nothing_to_record"))
            return
        if not turn.is_personal:
            if len(cases) == 1:
                await open_privately(turn, cases[0].id)
            else:
                await turn.send_text(turn.t("command.not_here", command="record session"))
            return
        if len(cases) > 1:
            await services.audit.record(actor=turn.actor.audit_name, action="record.list_cases",
                                        what=f"{len(cases)} case reference(s)", why="record session")
            await turn.send_card(pick_case_card(turn.t, cases), turn.t("record.pick.title"))
            return
        case, doc = await uc.open(turn.actor, cases[0].id)
        await send_form(turn, case, doc)

    async def open_(turn: Turn) -> None:
        assert turn.action is not None
        case_id = need(turn, "case_id")
        if not turn.is_personal:
            await open_privately(turn, case_id)
            return
        case, doc = await uc.open(turn.actor, case_id)
        await send_form(turn, case, doc)

    async def save(turn: Turn) -> None:
        assert turn.action is not None
        case, doc = await uc.save(turn.actor, need(turn, "case_id"), turn.action.inputs)
        await turn.send_text(turn.t("record.saved"))
        await send_form(turn, case, doc, step=step_of_card(turn))

    async def next_part(turn: Turn) -> None:
        assert turn.action is not None
        case, doc = await uc.save(turn.actor, need(turn, "case_id"), turn.action.inputs)
        await send_form(turn, case, doc, step=2)

    async def back(turn: Turn) -> None:
        assert turn.action is not None
        case, doc = await uc.save(turn.actor, need(turn, "case_id"), turn.action.inputs)
        await send_form(turn, case, doc, step=1)

    async def add_action(turn: Turn) -> None:
        assert turn.action is not None
        case, doc = await uc.save(turn.actor, need(turn, "case_id"), turn.action.inputs, add_row=True)
        await send_form(turn, case, doc, step=2)

    async def publish_(turn: Turn, full: bool) -> None:
        assert turn.action is not None
        case_id = need(turn, "case_id")
        await turn.typing()         # publishing reaches every attendee and owner: show we are on it
        try:
            result = await (uc.publish if full else uc.send_actions)(turn.actor, case_id, turn.action.inputs)
        except ValidationFailed as failed:
            case = await services.cases.require(case_id)
            doc = await uc.get_stored(case.id, case.session.number)
            assert doc is not None
            await send_form(turn, case, doc, [turn.t("record.error.heading")] +
                            error_lines(turn.t, profile_for(services, case), failed),
                            step=step_of(failed.errors[0].field) if failed.errors else 2)
            return
        url = await document_link(services, turn.actor.user_id, result.case.id, result.record.session_number) \
            if full else ""
        people = await distribution_list(result.case, result.record)
        posted = await uc.get_stored(result.case.id, result.record.session_number)
        plan = next((s for s in [result.case.session, *result.case.previous_sessions]
                     if s.number == result.record.session_number), result.case.session)
        marks = record_deadlines(result.case if plan is result.case.session else
                                 dataclasses.replace(result.case, session=plan),
                                 services.deadlines(profile_for(services, result.case)))
        timeliness = []
        if marks is not None:
            for what, due, done_at in (("actions", marks.actions_due, plan.actions_distributed_at),
                                       ("minutes", marks.minutes_due, plan.minutes_done_at)):
                met = on_time(done_at, due)
                if met is not None:
                    timeliness.append((what, due, met))
        await turn.send_card(published_card(turn.t, result.case, full=full, action_count=len(result.record.actions),
                                            attendees=len(people), timeliness=timeliness,
                                            summary_posted=bool(posted and posted.summary_posted_to),
                                            further=result.further_session_started, document_url=url,
                                            learning_goes_to=profile_for(services, result.case).learning_goes_to),
                             turn.t("record.done.title", reference=result.case.reference))

    async def send_actions(turn: Turn) -> None:
        await publish_(turn, False)

    async def publish(turn: Turn) -> None:
        await publish_(turn, True)

    router.command("record session", start, personal_only=False)
    router.verb("record.start", start)
    router.verb("record.open", open_)
    router.verb("record.save", save)
    router.verb("record.next", next_part)
    router.verb("record.back", back)
    router.verb("record.add_action", add_action)
    router.verb("record.send_actions", send_actions)
    router.verb("record.publish", publish)

    # --- after publishing --------------------------------------------------------------------
    async def distribution_list(case: Case, record: SessionRecord) -> list[tuple[str, str]]:
        """(email, user id) of each attendee, the facilitators and the lead professional: once each."""
        people: dict[str, str] = {}
        by_email = {i.email.lower(): i.user_id for i in case.request.invitees if i.email}
        for email in record.attendee_emails:
            people.setdefault(email, by_email.get(email, ""))
        for email, user_id in facilitator_contacts(case):
            if email:
                people.setdefault(email.lower(), user_id)
        lead = case.request.lead_professional      # places the record on the child's file
        if lead.email:
            people.setdefault(lead.email.lower(), lead.user_id)
        return list(people.items())

    async def on_recorded(event: DomainEvent) -> None:
        case = await services.cases.require(event.case_id)
        session = int(event.data.get("session", case.session.number))
        doc = await uc.get_stored(case.id, session)
        if doc is None or doc.record is None:
            return
        profile = profile_for(services, case)
        t = catalogue(services)
        record = doc.record
        view = summary_view(case, record, profile)
        summary = summary_card(t, view)
        target, service_url = doc.summary_conversation_id, doc.summary_service_url
        if not target:
            target = await known_meeting_chat(case)
        if not target:
            target, service_url = services.config.coordinator_conversation_id, services.config.coordinator_service_url
        if target and services.proactive is not None:
            try:
                await services.proactive.send_to_conversation(target, card_activity(
                    summary, t("record.summary.title", reference=case.reference)), service_url=service_url)
                await uc.summary_posted(case.id, session, target)
            except Exception as error:
                log.warning("summary post failed: %s", type(error).__name__)
        for email, user_id in await distribution_list(case, record):
            uid = await user_id_for(services, email, user_id)
            url = await document_link(services, uid, case.id, session)
            await send_personal(services, full_record_card(t, case, profile, record, url),
                                t("record.full.title", reference=case.reference), email=email, user_id=uid)
        await services.audit.record(actor="system", action="record.distribute", case_id=case.id,
                                    what=f"session {session}", why="record shared with attendees")

    async def known_meeting_chat(case: Case) -> str:
        """The session's meeting chat, if the bot has heard from it (e.g. the meeting-end event)."""
        chat = meeting_chat_id(case.session.join_url)
        if not chat or services.proactive is None:
            return ""
        return chat if await services.proactive.reference_for_conversation(chat) is not None else ""

    async def on_held(event: DomainEvent) -> None:
        case = await services.cases.get(event.case_id)
        if case is None or case.state not in RECORDABLE_STATES:
            return
        t = catalogue(services)
        conversation = str(event.data.get("conversation_id") or event.data.get("chat_id") or "")
        conversation = conversation or await known_meeting_chat(case)
        if conversation:
            await uc.remember_summary_target(case.id, conversation, str(event.data.get("service_url") or ""))
            if services.proactive is not None:
                try:
                    await services.proactive.send_to_conversation(
                        conversation, card_activity(offer_card(t, case), t("record.offer.title")),
                        service_url=str(event.data.get("service_url") or ""))
                except Exception as error:
                    log.warning("record offer to the meeting chat failed: %s", type(error).__name__)
        for email, user_id in facilitator_contacts(case):
            await send_personal(services, offer_card(t, case), t("record.offer.title"), email=email, user_id=user_id)

    services.events.on("session.recorded", on_recorded)
    services.events.on("session.held", on_held)

    # --- the record document download ---------------------------------------------------------
    downloads = getattr(services, "downloads", None)
    if downloads is not None:
        from bot.downloads import DownloadRequest, FileBody

        async def provide(request: DownloadRequest) -> FileBody:
            case = await services.cases.require(request.case_id)
            authorize(request.actor, Permission.VIEW_CASE, case)
            doc = await uc.get_stored(case.id, int(request.arg or case.session.number))
            if doc is None or doc.record is None:
                raise NotFound("no record", key="error.not_found")
            profile = profile_for(services, case)
            impact = await session_impact(services.store, case.id, doc.session_number)
            document = record_document(catalogue(services), case, profile, doc.record, impact)
            content = await asyncio.to_thread(render_record, document)     # python-docx: off the event loop
            await services.audit.record(actor=request.actor.audit_name, action="record.document", case_id=case.id,
                                        what=f"session {doc.session_number} DOCX with evaluation scores",
                                        why="download")
            return FileBody(f"{case.reference}-session-{doc.session_number}-record.docx", DOCX_TYPE, content)

        downloads.register(DOC_KIND, provide)

    # --- reminders to the facilitator --------------------------------------------------------
    def source(case: Case) -> list[DueWork]:
        if case.state not in RECORDABLE_STATES:
            return []
        return facilitator_reminders(case, services.deadlines(profile_for(services, case)), services.clock.now())

    async def remind(work: DueWork, ctx: RunContext) -> None:
        case = await services.cases.get(work.case_id)
        if case is None or case.session.number != work.data.get("session"):
            return
        what = "actions" if work.kind == "record.actions_reminder" else "minutes"
        done = case.session.actions_distributed_at if what == "actions" else case.session.minutes_done_at
        if done is not None:
            return
        from datetime import date

        t = catalogue(services)
        card = reminder_card(t, case, what, str(work.data["stage"]), date.fromisoformat(str(work.data["due"])),
                             late=late_text(t, ctx))
        for email, user_id in facilitator_contacts(case):
            await deliver_once(ctx, services, card, t(f"record.reminder.{what}_title", reference=case.reference),
                               email=email, user_id=user_id)

    async def review_due(work: DueWork, ctx: RunContext) -> None:
        case = await services.cases.get(work.case_id)
        if case is None:
            return
        tracked = next((x for x in case.tracked if x.kind == REVIEW_KIND and x.id == work.data.get("item")), None)
        if tracked is None or tracked.status != "open" or tracked.due_on is None \
                or tracked.due_on.isoformat() != work.data.get("due"):
            return
        t = catalogue(services)
        card = review_card(t, case, tracked.due_on, late=late_text(t, ctx))
        for email, user_id in facilitator_contacts(case):
            await deliver_once(ctx, services, card, t("record.reminder.review_title", reference=case.reference),
                               email=email, user_id=user_id)

        def reminded(c: Case) -> None:
            for x in c.tracked:
                if x.kind == REVIEW_KIND and x.id == tracked.id:
                    x.status = "reminded"
        await services.cases.update(case.id, reminded)

    if services.due_work is not None:
        services.due_work.add_source(source)
        services.due_work.add_source(lambda case: review_work(case, services.calendar(profile_for(services, case))))
        services.due_work.on("record.actions_reminder", remind)
        services.due_work.on("record.minutes_reminder", remind)
        services.due_work.on("record.review_due", review_due)
    return []


__all__ = ["register", "send_personal", "user_id_for", "profile_for", "catalogue", "error_lines", "uk_today"]
