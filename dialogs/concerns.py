"""``raise a concern``: any participant raises a concern or complaint about a session. It goes to the
facilitator; if not resolved within the profile's working days, to the named lead
(CONCERNS_LEAD_EMAIL; the profile's complaints.named_lead says who that is)."""
from __future__ import annotations

import logging
from typing import Any

from bot.routing import Router
from bot.services import Services
from bot.turn import Turn
from cards.concerns import concern_card, concern_form, concern_raised_card
from dialogs.record import catalogue, deliver_once, facilitator_contacts, need, profile_for, send_personal
from supervision.catalogue import Catalogue
from supervision.concerns import Concerns, concern_work
from supervision.duework import DueWork, RunContext
from supervision.errors import ValidationFailed
from supervision.models import Case
from supervision.ports import DomainEvent

log = logging.getLogger(__name__)
_LABELS = {"kind": "concern.field.kind", "text": "concern.field.text", "resolution": "concern.field.resolution",
           "case_id_choice": "concern.field.case"}


def _errors(t: Catalogue, failed: ValidationFailed) -> list[str]:
    return [t(e.key, label=t(_LABELS.get(e.field, "concern.field.text")), **e.params) for e in failed.errors]


def register(router: Router, services: Services) -> list[Any]:
    concerns = Concerns(store=services.store, cases=services.cases, audit=services.audit, clock=services.clock,
                        events=services.events,
                        calendar_for=lambda case: services.calendar(profile_for(services, case)),
                        escalation_days_for=lambda case: profile_for(services, case).timescales.concern_escalation_working_days)
    services.features["concerns"] = concerns
    lead_email = services.config.concerns_lead_email

    async def start(turn: Turn) -> None:
        cases = await concerns.cases_for(turn.actor)
        if not cases:
            await turn.send_text(turn.t("concern.none"))
            return
        await turn.send_card(concern_form(turn.t, cases, services.profile()), turn.t("concern.form.title"))

    async def submit(turn: Turn) -> None:
        assert turn.action is not None
        values = {k: turn.action.input(k) for k in ("case_id_choice", "kind", "text")}
        cases = await concerns.cases_for(turn.actor)
        if values["case_id_choice"] not in {c.id for c in cases}:
            await turn.send_card(concern_form(turn.t, cases or [], services.profile(), values=values,
                                              errors=[turn.t("concern.error.required", label=turn.t("concern.field.case"))]),
                                 turn.t("concern.form.title"))
            return
        try:
            case, concern = await concerns.raise_(turn.actor, values["case_id_choice"], values["kind"], values["text"])
        except ValidationFailed as failed:
            await turn.send_card(concern_form(turn.t, cases, services.profile(), values=values,
                                              errors=_errors(turn.t, failed)), turn.t("concern.form.title"))
            return
        await turn.send_card(concern_raised_card(turn.t, concern, profile_for(services, case)),
                             turn.t("concern.raised.title", reference=case.reference))

    async def on_raised(event: DomainEvent) -> None:
        case = await services.cases.require(event.case_id)
        concern = await concerns.get(case.id, str(event.data["concern"]))
        t = catalogue(services)
        for email, user_id in facilitator_contacts(case):
            await send_personal(services, concern_card(t, case, concern, concern.text),
                                t("concern.card.title", kind=t(f"concern.kind.{concern.kind}"), reference=case.reference),
                                email=email, user_id=user_id)

    async def resolve(turn: Turn) -> None:
        assert turn.action is not None
        case_id, concern_id = need(turn, "case_id"), need(turn, "item_id")
        try:
            concern = await concerns.resolve(turn.actor, case_id, concern_id, turn.action.input("resolution"),
                                             named_lead_email=lead_email)
        except ValidationFailed as failed:
            case = await services.cases.require(case_id)
            concern = await concerns.get(case_id, concern_id)
            turn.answer_with_card(concern_card(turn.t, case, concern, concern.text, errors=_errors(turn.t, failed)))
            return
        case = await services.cases.require(case_id)
        shown = concern.text if any(e.lower() == (turn.actor.email or "").lower() for e, _ in facilitator_contacts(case)) \
            else concerns.lead_copy(case, concern)
        turn.answer_with_card(concern_card(turn.t, case, concern, shown))

    async def escalate(work: DueWork, ctx: RunContext) -> None:
        concern = await concerns.escalate(work.case_id, str(work.data["concern"]))
        if concern is None:
            return
        case = await services.cases.require(work.case_id)
        t = catalogue(services)
        if not lead_email:
            for email, user_id in facilitator_contacts(case):
                await deliver_once(ctx, services, concern_card(t, case, concern, t("concern.lead_missing"),
                                                               escalated=True),
                                   t("concern.lead_missing"), email=email, user_id=user_id)
            return
        await deliver_once(ctx, services, concern_card(t, case, concern, concerns.lead_copy(case, concern),
                                                       escalated=True),
                           t("concern.card.escalated_title", kind=t(f"concern.kind.{concern.kind}"),
                             reference=case.reference), email=lead_email)

    router.command("raise a concern", start, aliases=("raise concern",))
    router.verb("concern.start", start)
    router.verb("concern.submit", submit)
    router.verb("concern.resolve", resolve)
    services.events.on("concern.raised", on_raised)
    if services.due_work is not None:
        services.due_work.add_source(concern_work, include_closed=True)   # complaints may come after closure
        services.due_work.on("concern.escalate", escalate)
    return []


__all__ = ["register", "Case"]
