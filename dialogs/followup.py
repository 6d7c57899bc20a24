"""The follow-up at the profile's interval: the lead professional gets a card (Action.Execute, replaced
in place) to record outcomes, what changed and whether the plan moved on; recording it closes the case."""
from __future__ import annotations

import logging
from typing import Any

from bot.routing import Router
from bot.services import Services
from bot.turn import Turn
from cards.followup import followup_card, followup_done_card
from dialogs.record import catalogue, deliver_once, need, profile_for
from supervision.catalogue import Catalogue
from supervision.clock import uk_local
from supervision.duework import DueWork, RunContext, late_text
from supervision.errors import ValidationFailed
from supervision.followup import FollowUp, FollowUps, followup_work
from supervision.models import Case, CaseState

log = logging.getLogger(__name__)


def _errors(t: Catalogue, failed: ValidationFailed) -> list[str]:
    return [t(e.key, label=t(f"followup.field.{e.field}")) for e in failed.errors]


def register(router: Router, services: Services) -> list[Any]:
    follow_ups = FollowUps(store=services.store, cases=services.cases, audit=services.audit, clock=services.clock,
                           events=services.events)
    services.features["followup"] = follow_ups

    async def add_to_log(case: Case, follow_up: FollowUp) -> None:
        tracker = services.features.get("tracker")
        if tracker is not None:
            await tracker.add_follow_up(case, follow_up.session_number, follow_up.plan_moved_on,
                                        uk_local(follow_up.recorded_at).date())

    follow_ups.on_recorded = add_to_log

    async def send_card(case: Case, ctx: RunContext, banner: str = "") -> None:
        t = catalogue(services)
        lead = case.request.lead_professional
        months = profile_for(services, case).timescales.follow_up_months
        banner = " ".join(b for b in (banner, late_text(t, ctx)) if b)
        await deliver_once(ctx, services, followup_card(t, case, months, banner=banner),
                           t("followup.card.title", reference=case.reference), email=lead.email, user_id=lead.user_id)

    async def on_due(work: DueWork, ctx: RunContext) -> None:
        case = await services.cases.get(work.case_id)
        if case is None or case.session.number != work.data.get("session"):
            return
        if case.state not in (CaseState.MINUTES_DONE, CaseState.FOLLOW_UP_DUE):
            return
        case = await follow_ups.mark_due(case.id)
        await send_card(case, ctx)

    async def on_reminder(work: DueWork, ctx: RunContext) -> None:
        case = await services.cases.get(work.case_id)
        if case is None or case.state != CaseState.FOLLOW_UP_DUE:
            return
        await send_card(case, ctx, catalogue(services)("followup.card.reminder"))

    async def submit(turn: Turn) -> None:
        assert turn.action is not None
        case_id = need(turn, "case_id")
        values = {k: turn.action.input(k) for k in ("outcomes", "what_changed", "plan_moved_on", "child_involved",
                                                    "family_involved", "views")}
        try:
            case, follow_up = await follow_ups.record(turn.actor, case_id, turn.action.inputs)
        except ValidationFailed as failed:
            case = await services.cases.require(case_id)
            months = profile_for(services, case).timescales.follow_up_months
            turn.answer_with_card(followup_card(turn.t, case, months, values=values, errors=_errors(turn.t, failed)))
            return
        turn.answer_with_card(followup_done_card(turn.t, case, follow_up))

    router.verb("followup.submit", submit)
    if services.due_work is not None:
        services.due_work.add_source(lambda case: followup_work(case, services.calendar(profile_for(services, case))))
        services.due_work.on("followup.due", on_due)
        services.due_work.on("followup.reminder", on_reminder)
    return []
