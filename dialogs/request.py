"""The request conversation: ``request`` (command and ``request.start`` verb), the immediate-risk
gate, the form's steps, submission, the coordinators' decisions, the accountable manager's
decision (Norfolk), facilitator assignment, and the notifications those decisions send.

The flow is an explicit table of card verbs (``verbs()``); its state is the draft in the store (not
the bot's dialog state), so a saved draft survives a restart. Use cases do the work and the role
checks; this module turns their results into cards and sends them. Channel posts carry no child
or family identifiers: only the reference, level of need, agencies, trigger and dates.

```mermaid
stateDiagram-v2
    [*] --> draft_found: request (a draft exists)
    [*] --> risk: request / request.start
    draft_found --> risk: request.resume / request.restart
    draft_found --> [*]: request.cancel (draft deleted)
    risk --> stopped: request.risk yes (route shown, draft deleted, audit says only "stop")
    risk --> step: request.risk no
    step --> step: request.next (errors: same step, banner, values kept) / request.back / request.row.add / .edit / .remove
    step --> saved: request.save
    step --> [*]: request.cancel (draft deleted)
    step --> submitted: request.submit on the review step (errors: back to the first step with one)
    submitted --> [*]
```
After submission the case moves through ``supervision.lifecycle`` (manager_review -> requested ->
info_requested/agreed/declined -> facilitators_assigned) by the decision verbs below.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from botbuilder.dialogs import Dialog

from bot.routing import Router
from bot.services import Services
from bot.turn import Turn, card_activity
from cards.actions import CardPayloadError
from cards.request import (
    agreed_for_coordinator_card,
    case_card,
    channel_card,
    channel_note_card,
    decided_card,
    decision_card,
    draft_found_card,
    error_lines,
    facilitator_assigned_card,
    facilitator_picker_card,
    info_request_card,
    manager_card,
    requester_summary_card,
    risk_card,
    risk_stop_card,
    step_card,
)
from supervision.catalogue import Catalogue
from supervision.drafts import DraftRepository
from supervision.errors import DomainError, ValidationFailed
from supervision.facilitators import FacilitatorService
from supervision.models import Case, CaseState
from supervision.ports import DomainEvent
from supervision.requests import STEPS, RequestService, RiskStop, StaleDraft

log = logging.getLogger(__name__)
Handler = Callable[[Turn], Awaitable[None]]


class BadPayload(DomainError):
    key = "error.card_payload"


def _id(turn: Turn, name: str) -> str:
    try:
        assert turn.action is not None
        return turn.action.id(name)
    except (CardPayloadError, AssertionError):
        raise BadPayload(f"missing {name}") from None


def _inputs(turn: Turn) -> dict[str, Any]:
    return dict(turn.action.inputs) if turn.action else {}


def _input(turn: Turn, name: str) -> str:
    return turn.action.input(name) if turn.action else ""


class RequestFlow:
    def __init__(self, services: Services, requests: RequestService, facilitators: FacilitatorService) -> None:
        self.services, self.requests, self.facilitators = services, requests, facilitators

    # --- plumbing --------------------------------------------------------------------------------
    def catalogue(self) -> Catalogue:
        return Catalogue.for_language(self.services.config.language)

    async def _personal(self, turn: Turn) -> bool:
        if not turn.is_personal:
            await turn.send_text(turn.t("request.not_personal"))
            return False
        return True

    async def _user_id_for(self, email: str) -> str:
        if not email or self.services.people is None:
            return ""
        known = await self.services.people.by_email(email)
        return known.user_id if known else ""

    async def send_to_user(self, user_id: str, card: dict[str, Any], summary: str = "") -> bool:
        if not user_id or self.services.proactive is None:
            log.warning("a personal notification had nobody to go to")
            return False
        try:
            await self.services.proactive.send_to_user(user_id, card_activity(card, summary))
            return True
        except Exception as error:  # the person may never have talked to the bot
            log.warning("personal notification failed: %s", type(error).__name__)
            return False

    async def send_to_coordinators(self, card: dict[str, Any], summary: str = "") -> bool:
        config = self.services.config
        if not config.coordinator_conversation_id or self.services.proactive is None:
            log.warning("no coordinators' channel configured (COORDINATOR_CONVERSATION_ID)")
            return False
        try:
            await self.services.proactive.send_to_conversation(
                config.coordinator_conversation_id, card_activity(card, summary),
                service_url=config.coordinator_service_url)
            return True
        except Exception as error:
            log.warning("coordinators' channel post failed: %s", type(error).__name__)
            return False

    # --- starting, the immediate-risk gate, drafts ---------------------------------------------
    async def start(self, turn: Turn) -> None:
        if not await self._personal(turn):
            return
        draft = await self.requests.existing_draft(turn.actor)
        if draft is not None:
            await turn.send_card(draft_found_card(turn.t, draft), turn.t("request.title"))
            return
        await turn.send_card(risk_card(turn.t), turn.t("request.risk.title"))

    async def risk(self, turn: Turn) -> None:
        if not await self._personal(turn):
            return
        resume = turn.action is not None and turn.action.ids.get("phase") == "resume"
        try:
            outcome = await self.requests.answer_risk(turn.actor, _input(turn, "immediate_risk"), resume=resume)
        except ValidationFailed as failed:
            await turn.send_text("\n\n".join(error_lines(turn.t, failed.errors)))
            await turn.send_card(risk_card(turn.t, resume=resume), turn.t("request.risk.title"))
            return
        if isinstance(outcome, RiskStop):
            await turn.send_card(risk_stop_card(turn.t, self.requests.profile()), turn.t("request.risk.stop_title"))
            return
        profile = self.requests.profile(outcome.profile_id)
        await turn.send_card(step_card(turn.t, profile, outcome, outcome.step), turn.t("request.title"))

    async def resume(self, turn: Turn) -> None:
        if not await self._personal(turn):     # a draft holds the child's details
            return
        draft = await self.requests.existing_draft(turn.actor)
        if draft is None or draft.id != _id(turn, "draft_id"):
            raise StaleDraft("no such draft")
        await turn.send_card(risk_card(turn.t, resume=True), turn.t("request.risk.title"))

    async def restart(self, turn: Turn) -> None:
        if not await self._personal(turn):     # a draft holds the child's details
            return
        draft = await self.requests.existing_draft(turn.actor)
        if draft is None or draft.id != _id(turn, "draft_id"):
            raise StaleDraft("no such draft")
        await turn.send_card(risk_card(turn.t), turn.t("request.risk.title"))

    # --- the form's steps ------------------------------------------------------------------------
    def _step(self, turn: Turn) -> str:
        step = turn.action.ids.get("phase", "") if turn.action else ""
        if step not in STEPS:
            raise BadPayload("no such step")
        return step

    async def _show(self, turn: Turn, draft: Any, errors: list[Any] | None = None) -> None:
        profile = self.requests.profile(draft.profile_id)
        await turn.send_card(step_card(turn.t, profile, draft, draft.step, errors), turn.t("request.title"))

    async def next(self, turn: Turn) -> None:
        if not await self._personal(turn):     # a draft holds the child's details
            return
        draft, errors = await self.requests.next_step(turn.actor, _id(turn, "draft_id"), self._step(turn), _inputs(turn))
        await self._show(turn, draft, errors)

    async def back(self, turn: Turn) -> None:
        if not await self._personal(turn):     # a draft holds the child's details
            return
        draft = await self.requests.previous_step(turn.actor, _id(turn, "draft_id"), self._step(turn), _inputs(turn))
        await self._show(turn, draft)

    async def save(self, turn: Turn) -> None:
        if not await self._personal(turn):     # a draft holds the child's details
            return
        await self.requests.save_step(turn.actor, _id(turn, "draft_id"), self._step(turn), _inputs(turn))
        await turn.send_text(turn.t("request.saved"))

    async def cancel(self, turn: Turn) -> None:
        if not await self._personal(turn):     # a draft holds the child's details
            return
        await self.requests.cancel(turn.actor, _id(turn, "draft_id"))
        await turn.send_text(turn.t("request.cancelled"))

    async def add_row(self, turn: Turn) -> None:
        if not await self._personal(turn):     # a draft holds the child's details
            return
        draft_id = _id(turn, "draft_id")
        try:
            draft = await self.requests.add_row(turn.actor, draft_id, self._step(turn), _inputs(turn))
        except ValidationFailed as failed:      # too many rows: show the step again, values kept
            current = await self.requests.existing_draft(turn.actor)
            if current is None or current.id != draft_id:
                raise StaleDraft("no such draft") from None
            await self._show(turn, current, failed.errors)
            return
        await self._show(turn, draft)

    async def edit_row(self, turn: Turn) -> None:
        if not await self._personal(turn):     # a draft holds the child's details
            return
        draft = await self.requests.edit_row(turn.actor, _id(turn, "draft_id"), self._step(turn),
                                             _id(turn, "item_id"), _inputs(turn))
        await self._show(turn, draft)

    async def remove_row(self, turn: Turn) -> None:
        if not await self._personal(turn):     # a draft holds the child's details
            return
        draft = await self.requests.remove_row(turn.actor, _id(turn, "draft_id"), self._step(turn),
                                               _id(turn, "item_id"), _inputs(turn))
        await self._show(turn, draft)

    async def submit(self, turn: Turn) -> None:
        if not await self._personal(turn):
            return
        draft_id = _id(turn, "draft_id")
        try:
            case = await self.requests.submit(turn.actor, draft_id)
        except ValidationFailed as failed:
            draft = await self.requests.existing_draft(turn.actor)
            if draft is None:
                raise StaleDraft("no such draft") from None
            await self._show(turn, draft, failed.errors)
            return
        deadline = self.requests.agreement_deadline(case)
        await turn.send_card(requester_summary_card(turn.t, case, deadline),
                             turn.t("request.submitted_summary", reference=case.reference))

    # --- coordinators and managers ------------------------------------------------------------------
    async def open(self, turn: Turn) -> None:
        case = await self.requests.open_for_decision(turn.actor, _id(turn, "case_id"))
        deadline = self.requests.agreement_deadline(case)
        if case.state is CaseState.MANAGER_REVIEW:
            card = manager_card(turn.t, case, deadline)
        elif case.state is CaseState.REQUESTED:
            card = decision_card(turn.t, case, deadline)
        else:
            card = case_card(turn.t, case, deadline)
        if turn.is_personal:
            await turn.send_card(card, turn.t("request.decision.title", reference=case.reference))
            return
        sent = await self.send_to_user(turn.actor.user_id, card, turn.t("request.decision.title", reference=case.reference))
        await turn.send_text(turn.t("request.channel.sent_to_you", reference=case.reference) if sent
                             else turn.t("request.channel.could_not_send"))

    async def _decide(self, turn: Turn, decide: Callable[[], Awaitable[Case]]) -> Case | None:
        if not await self._personal(turn):
            return None
        try:
            return await decide()
        except ValidationFailed as failed:
            await turn.send_text("\n\n".join(error_lines(turn.t, failed.errors)))
            return None

    async def agree(self, turn: Turn) -> None:
        case = await self._decide(turn, lambda: self.requests.agree(turn.actor, _id(turn, "case_id")))
        if case is None:
            return
        await turn.send_card(agreed_for_coordinator_card(turn.t, case))
        await self._picker(turn, case.id)

    async def decline(self, turn: Turn) -> None:
        case = await self._decide(turn, lambda: self.requests.decline(turn.actor, _id(turn, "case_id"),
                                                                       _input(turn, "decline_reason")))
        if case is not None:
            await turn.send_text(turn.t("request.decision.done_decline", reference=case.reference))

    async def ask_info(self, turn: Turn) -> None:
        case = await self._decide(turn, lambda: self.requests.ask_for_information(
            turn.actor, _id(turn, "case_id"), _input(turn, "info_question")))
        if case is not None:
            await turn.send_text(turn.t("request.decision.done_info", reference=case.reference))

    async def provide_info(self, turn: Turn) -> None:
        case = await self._decide(turn, lambda: self.requests.provide_information(
            turn.actor, _id(turn, "case_id"), _input(turn, "information")))
        if case is not None:
            await turn.send_text(turn.t("request.decision.info_sent", reference=case.reference))

    async def manager_endorse(self, turn: Turn) -> None:
        case = await self._decide(turn, lambda: self.requests.manager_decide(turn.actor, _id(turn, "case_id"),
                                                                              endorse=True))
        if case is not None:
            await turn.send_text(turn.t("request.decision.done_endorse", reference=case.reference))

    async def manager_decline(self, turn: Turn) -> None:
        case = await self._decide(turn, lambda: self.requests.manager_decide(
            turn.actor, _id(turn, "case_id"), endorse=False, reason=_input(turn, "decline_reason")))
        if case is not None:
            await turn.send_text(turn.t("request.decision.done_decline", reference=case.reference))

    async def view(self, turn: Turn) -> None:
        if not await self._personal(turn):
            return
        case = await self.requests.view(turn.actor, _id(turn, "case_id"))
        await turn.send_card(case_card(turn.t, case, self.requests.agreement_deadline(case)))

    # --- facilitators -----------------------------------------------------------------------------
    async def _picker(self, turn: Turn, case_id: str, errors: list[Any] | None = None) -> None:
        case, candidates = await self.facilitators.options(turn.actor, case_id)
        profile = self.requests.profile(case.profile_id)
        await turn.send_card(facilitator_picker_card(turn.t, profile, case, candidates, errors),
                             turn.t("request.facilitators.title", reference=case.reference))

    async def choose_facilitators(self, turn: Turn) -> None:
        if await self._personal(turn):
            await self._picker(turn, _id(turn, "case_id"))

    async def assign_facilitators(self, turn: Turn) -> None:
        if not await self._personal(turn):
            return
        case_id = _id(turn, "case_id")
        chosen = [e for e in _input(turn, "facilitators").split(",") if e.strip()]
        try:
            case = await self.facilitators.assign(turn.actor, case_id, chosen, _input(turn, "lead"))
        except ValidationFailed as failed:
            await self._picker(turn, case_id, failed.errors)
            return
        await turn.send_text(turn.t("request.facilitators.done", reference=case.reference,
                                    names=", ".join(f.name for f in case.facilitators)))

    # --- notifications (domain events) ----------------------------------------------------------
    async def _event_case(self, event: DomainEvent) -> Case | None:
        """The case an event is about, read for its notifications (the read is audited)."""
        case = await self.services.cases.get(event.case_id)
        if case is not None:
            await self.services.audit.record(actor="bot", action="request.notify", case_id=case.id,
                                             what=event.kind, why="tell the people concerned")
        return case

    async def on_submitted(self, event: DomainEvent) -> None:
        """The case is in the coordinators' queue: a card in their channel (no identifiers)."""
        case = await self._event_case(event)
        if case is None:
            return
        t = self.catalogue()
        note = ""
        if event.data.get("decided_by") == "manager":
            note = t("request.channel.manager_agreed")
            await self.send_to_user(case.request.requester.user_id, decided_card(
                t, case, "manager_agreed", self.requests.agreement_deadline(case)))
        await self.send_to_coordinators(channel_card(t, case, self.requests.agreement_deadline(case), note),
                                        t("request.channel.title", reference=case.reference))

    async def on_manager_review(self, event: DomainEvent) -> None:
        case = await self._event_case(event)
        if case is None or case.manager is None:
            return
        t = self.catalogue()
        user_id = case.manager.user_id or await self._user_id_for(case.manager.email)
        await self.send_to_user(user_id, manager_card(t, case, self.requests.agreement_deadline(case)),
                                t("request.decision.manager_title", reference=case.reference))

    async def on_info_requested(self, event: DomainEvent) -> None:
        case = await self._event_case(event)
        if case is None:
            return
        t = self.catalogue()
        await self.send_to_user(case.request.requester.user_id, info_request_card(t, case),
                                t("request.decision.info_title", reference=case.reference))
        await self.send_to_coordinators(channel_note_card(t, t("request.channel.decided", reference=case.reference,
                                                                 decision=t("request.decision.info_requested"))))

    async def on_info_provided(self, event: DomainEvent) -> None:
        case = await self._event_case(event)
        if case is None:
            return
        t = self.catalogue()
        await self.send_to_coordinators(channel_card(t, case, self.requests.agreement_deadline(case),
                                                     t("request.channel.back_in_queue", reference=case.reference)))

    async def on_agreed(self, event: DomainEvent) -> None:
        case = await self._event_case(event)
        if case is None:
            return
        t = self.catalogue()
        await self.send_to_user(case.request.requester.user_id, decided_card(t, case, "agreed"),
                                t("request.decision.agreed_title", reference=case.reference))
        note = t("request.channel.decided", reference=case.reference, decision=t("request.decision.agreed"))
        await self.send_to_coordinators(channel_card(t, case, self.requests.agreement_deadline(case), note), note)

    async def on_declined(self, event: DomainEvent) -> None:
        case = await self._event_case(event)
        if case is None:
            return
        t = self.catalogue()
        await self.send_to_user(case.request.requester.user_id, decided_card(t, case, "declined"),
                                t("request.decision.declined_title", reference=case.reference))
        if event.data.get("decided_by") == "coordinator":
            await self.send_to_coordinators(channel_note_card(t, t("request.channel.decided", reference=case.reference,
                                                                     decision=t("request.decision.declined"))))

    async def on_facilitators_assigned(self, event: DomainEvent) -> None:
        case = await self._event_case(event)
        if case is None:
            return
        t = self.catalogue()
        for assignment in case.facilitators:
            user_id = assignment.user_id or await self._user_id_for(assignment.email)
            await self.send_to_user(user_id, facilitator_assigned_card(t, case, assignment.email),
                                    t("request.facilitators.assigned_title", reference=case.reference))
        names = ", ".join(f.name for f in case.facilitators)
        await self.send_to_user(case.request.requester.user_id, case_card(t, case),
                                t("request.facilitators.assigned_to_requester", reference=case.reference, names=names))


def build_services(services: Services) -> tuple[RequestService, FacilitatorService]:
    """The use-case objects, built once per app and kept in ``services.features``."""
    existing = services.features.get("requests"), services.features.get("facilitators")
    if isinstance(existing[0], RequestService) and isinstance(existing[1], FacilitatorService):
        return existing[0], existing[1]
    requests = RequestService(cases=services.cases, drafts=DraftRepository(services.store, services.clock),
                              audit=services.audit, events=services.events, clock=services.clock,
                              profiles=services.profiles, default_profile=services.config.default_profile,
                              deadlines=services.deadlines)

    async def find_user_id(email: str) -> str:
        known = await services.people.by_email(email) if services.people is not None else None
        return known.user_id if known else ""

    facilitators = FacilitatorService(cases=services.cases, audit=services.audit, events=services.events,
                                      clock=services.clock, profiles=services.profiles,
                                      roster=lambda: services.directory.facilitators, find_user_id=find_user_id)
    services.features["requests"], services.features["facilitators"] = requests, facilitators
    return requests, facilitators


def verbs(flow: RequestFlow) -> dict[str, Handler]:
    """Every card verb this feature answers (the property tests throw random payloads at each)."""
    return {
        "request.start": flow.start, "request.risk": flow.risk, "request.resume": flow.resume,
        "request.restart": flow.restart, "request.next": flow.next, "request.back": flow.back,
        "request.save": flow.save, "request.cancel": flow.cancel, "request.row.add": flow.add_row,
        "request.row.remove": flow.remove_row, "request.row.edit": flow.edit_row, "request.submit": flow.submit, "request.open": flow.open,
        "request.agree": flow.agree, "request.decline": flow.decline, "request.ask_info": flow.ask_info,
        "request.provide_info": flow.provide_info, "request.manager.endorse": flow.manager_endorse,
        "request.manager.decline": flow.manager_decline, "request.view": flow.view,
        "request.facilitators.choose": flow.choose_facilitators,
        "request.facilitators.assign": flow.assign_facilitators,
    }


def answered_in_chat(handler: Handler) -> Handler:
    """These cards use Action.Submit; if a client sends one of the verbs as Action.Execute instead,
    the answer still goes to the chat, and the invoke says so (rather than a generic error)."""

    async def run(turn: Turn) -> None:
        await handler(turn)
        if turn.activity.type == "invoke" and turn.invoke_response is None:
            turn.answer_with_message(turn.t("request.answered_in_chat"))

    return run


def register(router: Router, services: Services) -> list[Dialog]:
    requests, facilitators = build_services(services)
    flow = RequestFlow(services, requests, facilitators)
    services.features["request.flow"] = flow
    router.command("request", flow.start)
    for verb, handler in verbs(flow).items():
        router.verb(verb, answered_in_chat(handler))
    services.events.on("request.submitted", flow.on_submitted)
    services.events.on("request.manager_review", flow.on_manager_review)
    services.events.on("request.info_requested", flow.on_info_requested)
    services.events.on("request.info_provided", flow.on_info_provided)
    services.events.on("request.agreed", flow.on_agreed)
    services.events.on("request.declined", flow.on_declined)
    services.events.on("facilitators.assigned", flow.on_facilitators_assigned)
    return []
