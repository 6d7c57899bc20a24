"""Pre- and post-session evaluations at the edge: the due-work handlers that send the cards, the
Action.Execute verbs that take the answers (the card is replaced in place), and the facilitators'
status card, updated in place whenever someone answers.

Due work (see supervision/evaluation.py ``evaluation_work``): ``evaluation.pre.open`` (the profile's
lead time before the session), ``evaluation.pre.reminder`` (to those who have not answered), and
``evaluation.post.open`` (when the session is held). Every send goes through ``ctx.once`` with a
sub-key per recipient, so a re-run after a crash sends nothing twice.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from botbuilder.dialogs import Dialog

from bot.handler import describe_error
from bot.proactive import Undeliverable
from bot.routing import Router
from bot.services import Services
from bot.turn import Turn, card_activity
from cards.evaluation import (
    VERB_EDIT,
    VERB_MARK_HELD,
    VERB_STATUS,
    VERB_SUBMIT,
    closed_card,
    evaluation_form,
    held_check_card,
    received_card,
    status_card,
)
from supervision.catalogue import Catalogue
from supervision.duework import Delivery, DueWork, RunContext, late_text
from supervision.errors import DomainError, IllegalTransition, ValidationFailed
from supervision.evaluation import (
    KIND_HELD_CHECK,
    KIND_POST,
    KIND_PRE,
    KIND_REMINDER,
    PRE_OPEN_STATES,
    Attendee,
    CardRef,
    EvaluationClosed,
    Evaluations,
    Phase,
    attendees,
    evaluation_source,
    mark_session_held,
    phase_open,
)
from supervision.lifecycle import Event, apply
from supervision.models import Case, CaseState, FacilitatorAssignment
from supervision.ports import DomainEvent

log = logging.getLogger(__name__)
REMINDER_GAP = timedelta(hours=4)


def _phase(value: str) -> Phase:
    try:
        return Phase(value)
    except ValueError:
        raise DomainError("bad phase", key="error.card_payload") from None


def _session(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DomainError("bad session", key="error.card_payload") from None


class EvaluationFeature:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.evaluations = Evaluations(store=services.store, cases=services.cases, audit=services.audit,
                                       clock=services.clock, events=services.events)

    @property
    def t(self) -> Catalogue:
        return Catalogue.for_language(self.services.config.language)

    # --- reaching people -------------------------------------------------------------------------------
    async def user_id_for(self, email: str, user_id: str) -> str:
        if user_id:
            return user_id
        if email and self.services.people is not None:
            known = await self.services.people.by_email(email)
            if known is not None:
                return str(known.user_id)
        return ""

    async def _send(self, email: str, user_id: str, card: dict[str, Any], summary: str) -> tuple[str, str]:
        target = await self.user_id_for(email, user_id)
        if not target:
            raise Undeliverable("unknown_user")
        activity_id = await self.services.proactive.send_to_user(target, card_activity(card, summary))
        return target, activity_id

    async def _send_once(self, ctx: RunContext, case: Case, slot: str, sub: str, who: str, email: str,
                         user_id: str, card: dict[str, Any], summary: str) -> None:
        sent: dict[str, str] = {}

        async def send() -> str:
            target, activity_id = await self._send(email, user_id, card, summary)
            sent["user_id"] = target
            return activity_id

        outcome = await ctx.once(sub, send, recipient=who)
        if outcome.status == Delivery.SENT and outcome.activity_id:
            await self.evaluations.record_card(case.id, case.session.number, slot,
                                               CardRef(user_id=sent["user_id"], activity_id=outcome.activity_id,
                                                       sent_at=ctx.now))

    # --- due-work handlers -------------------------------------------------------------------------------
    async def _current(self, work: DueWork) -> Case | None:
        case = await self.services.cases.get(work.case_id)
        if case is None or case.session.number != int(work.data.get("session", case.session.number)):
            return None
        return case

    async def pre_open(self, work: DueWork, ctx: RunContext) -> None:
        case = await self._current(work)
        if case is None or not phase_open(case, Phase.PRE):
            return
        if case.state == CaseState.SCHEDULED:
            def open_pre(c: Case) -> None:
                if c.state == CaseState.SCHEDULED:
                    apply(c, Event.OPEN_PRE_SESSION, actor="scheduler", clock=self.services.clock,
                          reason="pre-session evaluation sent")

            try:
                case, _ = await self.services.cases.update(case.id, open_pre)
            except IllegalTransition:
                pass
        await self._send_forms(case, Phase.PRE, ctx, reminder=False)
        await self._status_cards(case, ctx)

    async def pre_reminder(self, work: DueWork, ctx: RunContext) -> None:
        case = await self._current(work)
        if case is None or not phase_open(case, Phase.PRE):
            return
        await self._send_forms(case, Phase.PRE, ctx, reminder=True)

    async def held_check(self, work: DueWork, ctx: RunContext) -> None:
        """The session's end has passed and it is not marked held: ask each facilitator, once."""
        case = await self._current(work)
        if case is None or case.session.held_at is not None or case.state not in PRE_OPEN_STATES:
            return
        card = held_check_card(self.t, case, late=late_text(self.t, ctx))
        summary = self.t("evaluation.held_check.title", reference=case.reference)
        await _all([self._send_once(ctx, case, f"held_check:{_key(f)}", f"held_check:{_key(f)}", f.name, f.email,
                                    f.user_id, card, summary) for f in case.facilitators])

    async def post_open(self, work: DueWork, ctx: RunContext) -> None:
        case = await self._current(work)
        if case is None or not phase_open(case, Phase.POST):
            return
        await self._send_forms(case, Phase.POST, ctx, reminder=False)
        await self._status_cards(case, ctx)

    async def _send_forms(self, case: Case, phase: Phase, ctx: RunContext, *, reminder: bool) -> None:
        t = self.t
        doc = await self.evaluations.docs.get(case.id, case.session.number)
        late = late_text(t, ctx)
        summary_key = "evaluation.summary_reminder" if reminder else f"evaluation.summary_{phase.value}"
        summary = t(summary_key, reference=case.reference)
        jobs = []
        for person in attendees(case):
            if doc.response(phase, person.key) is not None:
                continue        # already answered (reminders go only to those who have not)
            first = doc.cards.get(f"{phase.value}:{person.key}")
            if reminder and first is not None and first.sent_at is not None \
                    and ctx.now - first.sent_at < REMINDER_GAP:
                continue        # catching up after downtime: the form itself has only just gone
            card = evaluation_form(t, case, phase, late=late, reminder=reminder)
            jobs.append(self._send_once(ctx, case, f"{phase.value}:{person.key}", f"to:{person.key}", person.name,
                                        person.email, person.user_id, card, summary))
        # the scheduler read the case and sends its reference to the attendees: audited, without names
        what = f"{'reminder: ' if reminder else ''}{phase.value}-session evaluation to {len(jobs)} attendee(s)"
        await self.services.audit.record(actor="scheduler", action=f"evaluation.{phase.value}.send",
                                         case_id=case.id, what=what + (" (late)" if ctx.late else ""),
                                         why="due work")
        await _all(jobs)

    async def _status_cards(self, case: Case, ctx: RunContext) -> None:
        """Send each facilitator the status card once; later runs update it in place."""
        status = await self.evaluations.status_of(case)
        card = status_card(self.t, status, now=self.services.clock.now())
        cards = await self.evaluations.cards(case.id, case.session.number)
        jobs = []
        for facilitator in case.facilitators:
            slot = f"status:{_key(facilitator)}"
            if slot in cards:
                jobs.append(self._update(cards[slot], card))
            else:
                jobs.append(self._send_once(ctx, case, slot, slot, facilitator.name, facilitator.email,
                                            facilitator.user_id, card, self.t("evaluation.status.title")))
        await _all(jobs)

    async def _update(self, ref: CardRef, card: dict[str, Any]) -> None:
        try:
            await self.services.proactive.update_for_user(ref.user_id, ref.activity_id, card_activity(card))
        except Exception as error:  # the next change updates it again
            log.warning("could not update a status card: %s", type(error).__name__)

    async def refresh_status(self, case: Case) -> None:
        """Update every facilitator's status card in place (after an answer or the session is held)."""
        cards = await self.evaluations.cards(case.id, case.session.number)
        slots = [cards[s] for s in (f"status:{_key(f)}" for f in case.facilitators) if s in cards]
        if not slots:
            return
        status = await self.evaluations.status_of(case)
        card = status_card(self.t, status, now=self.services.clock.now())
        await _all([self._update(ref, card) for ref in slots])

    # --- verbs (Action.Execute; Action.Submit works too) ---------------------------------------------------
    async def _answer(self, turn: Turn, card: dict[str, Any]) -> None:
        if turn.activity.type == "invoke":
            turn.answer_with_card(card)
        elif turn.activity.reply_to_id:
            await turn.update_card(turn.activity.reply_to_id, card)
        else:
            await turn.send_card(card)

    async def submit(self, turn: Turn) -> None:
        assert turn.action is not None
        case_id = turn.action.id("case_id")
        session, phase = _session(turn.action.id("session")), _phase(turn.action.id("phase"))
        try:
            case, response = await self.evaluations.submit(turn.actor, case_id, session, phase, turn.action.inputs)
        except ValidationFailed as error:
            current = await self.services.cases.require(case_id)
            messages = [describe_error(turn.t, e) for e in error.errors]
            await self._answer(turn, evaluation_form(turn.t, current, phase, values=dict(turn.action.inputs),
                                                     errors=messages))
            return
        except EvaluationClosed:
            await self._answer(turn, closed_card(turn.t, await self.services.cases.get(case_id), phase))
            return
        await self._answer(turn, received_card(turn.t, case, phase, response))
        await self.refresh_status(case)

    async def edit(self, turn: Turn) -> None:
        assert turn.action is not None
        case_id, phase = turn.action.id("case_id"), _phase(turn.action.id("phase"))
        case, _attendee, response = await self.evaluations.my_response(turn.actor, case_id, phase)
        if not phase_open(case, phase) or str(case.session.number) != turn.action.ids.get("session", ""):
            await self._answer(turn, closed_card(turn.t, case, phase))
            return
        await self._answer(turn, evaluation_form(turn.t, case, phase, response=response))

    async def status(self, turn: Turn) -> None:
        assert turn.action is not None
        status = await self.evaluations.status(turn.actor, turn.action.id("case_id"))
        await self._answer(turn, status_card(turn.t, status, now=self.services.clock.now()))

    async def mark_held(self, turn: Turn) -> None:
        assert turn.action is not None
        case_id = turn.action.id("case_id")
        s = self.services
        await mark_session_held(cases=s.cases, audit=s.audit, events=s.events, clock=s.clock, case_id=case_id,
                                actor=turn.actor, source="facilitator")
        status = await self.evaluations.status(turn.actor, case_id)
        await self._answer(turn, status_card(turn.t, status, now=s.clock.now()))

    async def on_held(self, event: DomainEvent) -> None:
        """The post-session evaluation goes out now (it is due work keyed on held_at: durable)."""
        if self.services.due_work is not None:
            await self.services.due_work.run_case(event.case_id)


def _key(person: FacilitatorAssignment | Attendee) -> str:
    return (person.email or person.user_id).lower()


async def _all(jobs: list[Any]) -> None:
    """Run sends together (the pacer keeps to Teams' limits); re-raise the first failure after all ran."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def register(router: Router, services: Services) -> list[Dialog]:
    feature = EvaluationFeature(services)
    services.features["evaluations"] = feature.evaluations
    services.features["evaluation.feature"] = feature
    if services.due_work is not None:
        def deadlines_for(profile_id: str) -> Any:
            return services.deadlines(services.profiles.get(profile_id) or services.profile())

        services.due_work.add_source(evaluation_source(deadlines_for))
        services.due_work.on(KIND_PRE, feature.pre_open)
        services.due_work.on(KIND_REMINDER, feature.pre_reminder)
        services.due_work.on(KIND_POST, feature.post_open)
        services.due_work.on(KIND_HELD_CHECK, feature.held_check)
    services.events.on("session.held", feature.on_held)
    router.verb(VERB_SUBMIT, feature.submit)
    router.verb(VERB_EDIT, feature.edit)
    router.verb(VERB_STATUS, feature.status)
    router.verb(VERB_MARK_HELD, feature.mark_held)
    return []


__all__ = ["register", "EvaluationFeature"]
