"""Agreed actions: each owner's card (Action.Execute, updated in place), ``my actions``, the
facilitator's one card per case (its activity id kept, updated in place), reminders before due and
when overdue (owner first, then the facilitator)."""
from __future__ import annotations

import logging
from datetime import date
from typing import Any

from bot.routing import Router
from bot.services import Services
from bot.turn import Turn, card_activity
from cards.action_items import action_card, answered_card, board_card, my_actions_card
from cards.base import card, text, title
from dialogs.record import catalogue, deliver_once, facilitator_contacts, need, profile_for, send_personal, user_id_for
from supervision.action_items import ActionItem, ActionItems, Update, item_reminders
from supervision.catalogue import Catalogue
from supervision.clock import format_uk_date, uk_today
from supervision.duework import DueWork, RunContext, late_text
from supervision.errors import FieldError, ValidationFailed
from supervision.models import Case
from supervision.ports import DomainEvent

log = logging.getLogger(__name__)
BOARDS = "action_boards"          # case id -> {facilitator user id: activity id of their card}
OWNER_CARDS = "action_owner_cards"  # case:item -> {"user_id", "activity_id"}

_FIELD_LABEL = {"note": "actions.field.note", "reason": "actions.field.reason", "new_due": "actions.field.new_due"}


def _errors(t: Catalogue, failed: ValidationFailed) -> list[str]:
    lines = []
    for error in failed.errors:
        label = t(_FIELD_LABEL.get(error.field, "actions.field.note"))
        try:
            lines.append(t(error.key, label=label, **error.params))
        except (KeyError, IndexError):
            lines.append(label)
    return lines


def register(router: Router, services: Services) -> list[Any]:
    items = ActionItems(store=services.store, cases=services.cases, audit=services.audit, clock=services.clock,
                        events=services.events)
    services.features["action_items"] = items

    def today() -> date:
        return uk_today(services.clock)

    # --- the facilitator's board ------------------------------------------------------------
    async def refresh_board(case: Case) -> None:
        t = catalogue(services)
        all_items = await items.for_case(case.id)
        board = board_card(t, case.reference, all_items, today())
        stored = await services.store.get(BOARDS, case.id)
        known: dict[str, str] = dict(stored.data) if stored else {}
        changed = False
        for email, user_id in facilitator_contacts(case):
            uid = await user_id_for(services, email, user_id)
            if not uid:
                continue
            activity_id = known.get(uid, "")
            if activity_id and services.proactive is not None:
                reference = await services.proactive.reference_for_user(uid)
                if reference is not None:
                    try:
                        await services.proactive.update(reference, activity_id, card_activity(board))
                        continue
                    except Exception as error:
                        log.warning("board update failed, sending anew: %s", type(error).__name__)
            new_id = await send_personal(services, board, t("actions.board.title", reference=case.reference),
                                         user_id=uid)
            if new_id:
                known[uid], changed = new_id, True
        if changed:
            await services.store.put(BOARDS, case.id, known)

    async def on_distributed(event: DomainEvent) -> None:
        case = await services.cases.require(event.case_id)
        t = catalogue(services)
        for item_id in event.data.get("items", []):
            item = await items.get(case.id, str(item_id))
            invitee_ids = {i.email.lower(): i.user_id for i in case.request.invitees if i.email}
            uid = await user_id_for(services, item.owner_email, invitee_ids.get(item.owner_email, ""))
            activity_id = await send_personal(services, action_card(t, item, today()),
                                              t("actions.card.title", reference=case.reference), user_id=uid)
            if activity_id:
                await services.store.put(OWNER_CARDS, f"{case.id}:{item.id}", {"user_id": uid, "activity_id": activity_id})
        await refresh_board(case)

    async def on_updated(event: DomainEvent) -> None:
        case = await services.cases.require(event.case_id)
        await refresh_board(case)
        # the owner's first card shows the new state too, wherever the change was made
        stored = await services.store.get(OWNER_CARDS, f"{case.id}:{event.data.get('item')}")
        if stored is None or services.proactive is None:
            return
        reference = await services.proactive.reference_for_user(str(stored.data["user_id"]))
        if reference is None:
            return
        item = await items.get(case.id, str(event.data["item"]))
        try:
            await services.proactive.update(reference, str(stored.data["activity_id"]),
                                            card_activity(answered_card(catalogue(services), item, today())))
        except Exception as error:
            log.warning("owner card update failed: %s", type(error).__name__)

    services.events.on("actions.distributed", on_distributed)
    services.events.on("action.updated", on_updated)

    # --- the owner's card (Action.Execute, replaced in place) ---------------------------------
    async def answer(turn: Turn, kind: Update, note_field: str) -> None:
        assert turn.action is not None
        case_id, item_id = need(turn, "case_id"), need(turn, "item_id")
        values = {k: turn.action.input(k) for k in ("done_note", "new_due", "new_due_reason", "cannot_reason")}
        try:
            item = await items.update(turn.actor, case_id, item_id, kind, note=values.get(note_field, ""),
                                      new_due=values.get("new_due", ""))
        except ValidationFailed as failed:
            item = await items.get(case_id, item_id)
            turn.answer_with_card(action_card(turn.t, item, today(), errors=_errors(turn.t, failed), values=values))
            return
        turn.answer_with_card(answered_card(turn.t, item, today()))

    async def done(turn: Turn) -> None:
        await answer(turn, Update.DONE, "done_note")

    async def new_date(turn: Turn) -> None:
        await answer(turn, Update.NEW_DATE, "new_due_reason")

    async def cannot(turn: Turn) -> None:
        await answer(turn, Update.CANNOT, "cannot_reason")

    async def mine(turn: Turn) -> None:
        found = await items.mine(turn.actor)
        await turn.send_card(my_actions_card(turn.t, found, today()), turn.t("actions.mine.title"))

    async def open_one(turn: Turn) -> None:
        assert turn.action is not None
        _, item = await items.view(turn.actor, need(turn, "case_id"), need(turn, "item_id"))
        await turn.send_card(action_card(turn.t, item, today()), turn.t("actions.card.title", reference=item.reference))

    router.command("my actions", mine)
    router.verb("actions.mine", mine)
    router.verb("actions.open", open_one)
    router.verb("actions.done", done)
    router.verb("actions.new_date", new_date)
    router.verb("actions.cannot", cannot)

    # --- reminders --------------------------------------------------------------------------
    def source(case: Case) -> list[DueWork]:
        profile = profile_for(services, case)
        return item_reminders(case, services.calendar(profile), profile.timescales.action_reminder_working_days_before)

    async def current(work: DueWork) -> tuple[Case, ActionItem] | None:
        case = await services.cases.get(work.case_id)
        if case is None:
            return None
        try:
            item = await items.get(case.id, str(work.data["item"]))
        except Exception:
            return None
        if not item.is_open or item.due_on.isoformat() != work.data.get("due"):
            return None          # done, or moved to another date since this reminder was computed
        return case, item

    async def remind_owner(work: DueWork, ctx: RunContext) -> None:
        found = await current(work)
        if found is None:
            return
        case, item = found
        t = catalogue(services)
        key = "actions.card.due_soon" if work.kind == "action.due_soon" else "actions.card.overdue"
        invitee_ids = {i.email.lower(): i.user_id for i in case.request.invitees if i.email}
        banner = " ".join(b for b in (t(key, due=format_uk_date(item.due_on)), late_text(t, ctx)) if b)
        await deliver_once(ctx, services, action_card(t, item, uk_today(services.clock), banner=banner),
                           t("actions.card.title", reference=case.reference),
                           email=item.owner_email, user_id=invitee_ids.get(item.owner_email, ""))

    async def remind_facilitator(work: DueWork, ctx: RunContext) -> None:
        found = await current(work)
        if found is None:
            return
        case, item = found
        t = catalogue(services)
        notice = card([title(t("actions.board.overdue_title", reference=case.reference)),
                       text(t("actions.board.overdue_body", owner=item.owner_name, description=item.description,
                              due=format_uk_date(item.due_on)))])
        for email, user_id in facilitator_contacts(case):
            await deliver_once(ctx, services, notice, t("actions.board.overdue_title", reference=case.reference),
                               email=email, user_id=user_id)
        await refresh_board(case)

    if services.due_work is not None:
        services.due_work.add_source(source)
        services.due_work.on("action.due_soon", remind_owner)
        services.due_work.on("action.overdue", remind_owner)
        services.due_work.on("action.overdue_facilitator", remind_facilitator)
    return []


__all__ = ["register", "FieldError"]
