"""The session pack: sent to the facilitators (and to the attendees when the profile's
``record.share_pack_with_attendees`` says so) the profile's ``timescales.session_pack_working_days_before``
working days before the session, at the start of office hours, through ``services.due_work``.

The pack's picture and document are signed links (bot/downloads.py) made for each recipient, valid
until a day after the session. Pre-session evaluation results are read through a small port: a
feature that has them registers ``services.features["evaluation.pre_session_snapshot"]``, an async
function ``(case) -> cards.pack.EvaluationSnapshot | None``. Without it the pack says the results
are not available.

``pack.show`` (card verb, ``case_id``) shows the pack now to a facilitator or coordinator.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Protocol

from botbuilder.dialogs import Dialog

from bot.routing import Router
from bot.services import Services
from bot.turn import Turn
from cards.pack import EvaluationSnapshot, pack_card
from dialogs.chronology import SCHEDULED_STATES, ChronologyFlow, build_service, scheduled_at
from supervision.catalogue import Catalogue
from supervision.clock import uk_datetime
from supervision.duework import Delivery, DueWork, RunContext
from supervision.errors import Forbidden
from supervision.models import Case, InviteStatus, Role
from supervision.roles import Action, Actor, authorize, case_roles

log = logging.getLogger(__name__)
PACK_KIND = "pack.send"
EVALUATION_PORT = "evaluation.pre_session_snapshot"


class PreSessionResults(Protocol):
    async def __call__(self, case: Case) -> EvaluationSnapshot | None: ...


class PackFlow:
    def __init__(self, services: Services, chronology: ChronologyFlow) -> None:
        self.services, self.chronology = services, chronology
        self.chronologies = chronology.chronologies

    def evaluations(self) -> PreSessionResults | None:
        """The pre-session results port: one registered under EVALUATION_PORT, else an adapter over
        the evaluation feature's ``Evaluations.status_of(case)`` (supervision/evaluation.py) when that
        feature is installed, else None (the pack says the results are not available)."""
        port = self.services.features.get(EVALUATION_PORT)
        if callable(port):
            return port  # type: ignore[no-any-return]
        evaluations = self.services.features.get("evaluations")
        status_of = getattr(evaluations, "status_of", None)
        if status_of is None:
            return None

        async def snapshot(case: Case) -> EvaluationSnapshot | None:
            status = await status_of(case)
            pre = [row.pre for row in status.rows if row.pre is not None]
            scores = tuple(sorted(int(r.score) for r in pre))
            return EvaluationSnapshot(answered=len(pre), asked=len(status.rows),
                                      average=round(sum(scores) / len(scores), 1) if scores else None,
                                      scores=scores, reasons=tuple(r.why for r in pre if r.why))

        return snapshot

    def recipients(self, case: Case) -> list[tuple[str, str]]:
        """(user id, email) of who gets the pack: facilitators, plus attendees if the profile says so."""
        people = [(f.user_id, f.email) for f in case.facilitators]
        if self.services.profile(case.profile_id).record.share_pack_with_attendees:
            people += [(i.user_id, i.email) for i in case.request.invitees if i.status != InviteStatus.DECLINED]
        seen: set[str] = set()
        unique = []
        for user_id, email in people:
            key = (user_id or email).lower()
            if key and key not in seen:
                seen.add(key)
                unique.append((user_id, email))
        return unique

    def link_ttl(self, case: Case) -> timedelta:
        """Valid until a day after the session."""
        assert case.session.starts_at is not None
        end = case.session.ends_at or case.session.starts_at
        return max(timedelta(hours=1), end + timedelta(days=1) - self.services.clock.now())

    async def card_for(self, case: Case, user_id: str, t: Catalogue, *, facilitator: bool) -> dict[str, Any]:
        """The pack for one person. Attendees see the evaluation figures; only facilitators see the
        reasons people gave."""
        merged = await self.chronologies.merge_for(case)
        image, document = await self.chronology.merged_links(user_id, case, ttl=self.link_ttl(case))
        port = self.evaluations()
        snapshot = None
        if port is not None:
            try:
                snapshot = await port(case)
            except Exception as error:  # the pack still goes without them
                log.warning("pre-session evaluation results unavailable: %s", type(error).__name__)
            if snapshot is not None and not facilitator:
                snapshot = EvaluationSnapshot(snapshot.answered, snapshot.asked, snapshot.average, snapshot.scores)
        return pack_card(t, case, self.services.profile(case.profile_id), merged, image_url=image,
                         docx_url=document, evaluation=snapshot, evaluation_available=port is not None)

    # --- due work ----------------------------------------------------------------------------------
    def due_work(self, case: Case) -> list[DueWork]:
        if case.state not in SCHEDULED_STATES or case.session.starts_at is None \
                or case.profile_id not in self.services.profiles:
            return []
        dates = self.chronology.dates(case)
        if dates.pack is None:
            return []
        profile = self.services.profile(case.profile_id)
        due_at = uk_datetime(dates.pack, profile.timescales.office_hours_start)
        since = scheduled_at(case)
        if since is not None and due_at < since:
            due_at = since        # arranged at short notice: the pack goes at once, and is not "late"
        if due_at >= case.session.starts_at:
            due_at = min(due_at, case.session.starts_at - timedelta(minutes=30))
        return [DueWork(key=f"{case.id}:{PACK_KIND}:{case.session.number}:{case.session.starts_at.isoformat()}",
                        kind=PACK_KIND, case_id=case.id, due_at=due_at,
                        data={"starts_at": case.session.starts_at.isoformat()})]

    async def send(self, work: DueWork, run: RunContext) -> None:
        case = await self.services.cases.get(work.case_id)
        if case is None or case.state not in SCHEDULED_STATES or case.session.starts_at is None:
            return
        if case.session.starts_at.isoformat() != work.data.get("starts_at"):
            return                # rescheduled: the new time has its own key
        t = Catalogue.for_language(self.services.config.language)
        facilitators = {await self.chronology.user_id_for(f.user_id, f.email) for f in case.facilitators}
        for user_id, email in self.recipients(case):
            user_id = await self.chronology.user_id_for(user_id, email)
            card = await self.card_for(case, user_id, t, facilitator=user_id in facilitators) if user_id else {}
            if run.late and card:
                card["body"].insert(1, {"type": "TextBlock", "text": t("pack.sent_late"), "wrap": True,
                                        "isSubtle": True})
            outcome = await run.once(f"to:{(user_id or email).lower()}",
                                     self.chronology.sender(user_id, card, t("pack.title", reference=case.reference)),
                                     recipient=email or user_id)
            if outcome.status is Delivery.SENT:
                await self.services.audit.record(actor=user_id, action="chronology.pack", case_id=case.id,
                                                 what="session pack with the merged chronology",
                                                 why="session pack before the session")

    # --- on demand -----------------------------------------------------------------------------------
    async def show(self, turn: Turn) -> None:
        assert turn.action is not None
        case = await self.services.cases.require(turn.action.id("case_id"))
        await self._authorize(turn.actor, case)
        await self.services.audit.record(actor=turn.actor.audit_name, action="chronology.pack", case_id=case.id,
                                         what="session pack with the merged chronology", why="asked to see it")
        facilitator = Role.FACILITATOR in case_roles(turn.actor, case)
        await turn.send_card(await self.card_for(case, turn.actor.user_id, turn.t, facilitator=facilitator),
                             turn.t("pack.title", reference=case.reference))

    async def _authorize(self, actor: Actor, case: Case) -> None:
        try:
            authorize(actor, Action.VIEW_CHRONOLOGY, case)
        except Forbidden:
            await self.services.audit.record(actor=actor.audit_name, action="chronology.pack", case_id=case.id,
                                             what="session pack", why="not a member with that role", allowed=False)
            raise


def register(router: Router, services: Services) -> list[Dialog]:
    chronology = services.features.get("chronology.flow")
    if not isinstance(chronology, ChronologyFlow):
        chronology = ChronologyFlow(services, build_service(services))
    flow = PackFlow(services, chronology)
    services.features["pack.flow"] = flow
    router.verb("pack.show", flow.show)
    if services.due_work is not None:
        services.due_work.add_source(flow.due_work)
        services.due_work.on(PACK_KIND, flow.send)
    return []

