"""Action cards: the owner's card (done with a note; a new due date with a reason; cannot do it, with a
reason) answered by Action.Execute and replaced in place; ``my actions``; the facilitator's one card
per case with all its actions, updated in place."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from cards.base import Json, card, container, date_input, error_banner, execute, facts, submit, text, text_input, title
from supervision.action_items import ActionItem, ItemStatus, summary_counts
from supervision.catalogue import Catalogue
from supervision.clock import format_uk_date


def _status(t: Catalogue, item: ActionItem, today: date) -> str:
    if item.status == ItemStatus.OPEN and item.due_on < today:
        return t("actions.status.overdue")
    return t(f"actions.status.{item.status.value}")


def _show(label: str, body: list[Json], verb: str, ids: dict[str, str], button: str) -> Json:
    return {"type": "Action.ShowCard", "title": label,
            "card": {"type": "AdaptiveCard", "version": "1.5", "body": body,
                     "actions": [execute(button, verb, ids, style="positive")]}}


def action_card(t: Catalogue, item: ActionItem, today: date, *, banner: str = "", errors: list[str] | None = None,
                values: Mapping[str, str] | None = None) -> Json:
    v = values or {}
    body: list[Json] = [title(t("actions.card.title", reference=item.reference))]
    if banner:
        body.append(text(banner, weight="Bolder", color="Attention" if "overdue" in banner.lower() else None))
    if errors:
        body.append(error_banner(errors))
    body += [text(item.description, weight="Bolder"),
             facts([(t("actions.card.owner"), item.owner_name), (t("actions.card.due"), format_uk_date(item.due_on)),
                    (t("actions.card.status"), _status(t, item, today))])]
    if item.note and item.status != ItemStatus.OPEN:
        body.append(text(t("actions.card.note", note=item.note), subtle=True))
    ids = {"case_id": item.case_id, "item_id": item.id}
    if item.status != ItemStatus.OPEN:
        return card(body, full_width=False)
    actions = [
        _show(t("actions.card.done"), [text_input("done_note", t("actions.card.done_note"), value=v.get("done_note", ""),
                                                  multiline=True, required=True, error=t("actions.error.note_short"),
                                                  max_length=2000)],
              "actions.done", ids, t("actions.card.confirm_done")),
        _show(t("actions.card.new_date"), [
            date_input("new_due", t("actions.card.new_due"), value=v.get("new_due", ""), required=True,
                       error=t("actions.error.date_short"), min_=today.isoformat()),
            text_input("new_due_reason", t("actions.card.reason"), value=v.get("new_due_reason", ""), multiline=True,
                       required=True, error=t("actions.error.note_short"), max_length=2000)],
              "actions.new_date", ids, t("actions.card.confirm_new_date")),
        _show(t("actions.card.cannot"), [text_input("cannot_reason", t("actions.card.reason"),
                                                    value=v.get("cannot_reason", ""), multiline=True, required=True,
                                                    error=t("actions.error.note_short"), max_length=2000)],
              "actions.cannot", ids, t("actions.card.confirm_cannot")),
    ]
    return card(body, actions, full_width=False)


def my_actions_card(t: Catalogue, items: list[ActionItem], today: date) -> Json:
    body: list[Json] = [title(t("actions.mine.title"))]
    if not items:
        body.append(text(t("actions.mine.none")))
        return card(body)
    body.append(text(t("actions.mine.count", count=len(items)), subtle=True))
    for item in items[:20]:
        body.append(container([
            text(f"**{item.reference}**: {item.description}"),
            text(t("actions.mine.due", due=format_uk_date(item.due_on), status=_status(t, item, today)), subtle=True),
            {"type": "ActionSet", "actions": [submit(t("actions.mine.open"), "actions.open",
                                                     {"case_id": item.case_id, "item_id": item.id}, validate=False)]},
        ], separator=True))
    return card(body)


def board_card(t: Catalogue, reference: str, items: list[ActionItem], today: date) -> Json:
    """The facilitator's card for one case: every action with its owner, due date and status."""
    counts = summary_counts(items, today)
    body: list[Json] = [title(t("actions.board.title", reference=reference)),
                        text(t("actions.board.counts", **counts), subtle=True)]
    for item in items:
        line = t("actions.board.line", owner=item.owner_name, due=format_uk_date(item.due_on),
                 status=_status(t, item, today))
        items_ = [text(item.description, weight="Bolder"), text(line, subtle=True)]
        if item.note:
            items_.append(text(t("actions.card.note", note=item.note), subtle=True))
        body.append(container(items_, separator=True))
    return card(body)


def answered_card(t: Catalogue, item: ActionItem, today: date) -> Json:
    return action_card(t, item, today, banner=t(f"actions.card.answered_{item.status.value}"))
