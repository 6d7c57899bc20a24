"""The ``my sessions`` card: the user's cases, each with its stage, the user's part and the next deadline."""
from __future__ import annotations

from cards.base import Json, container, facts, submit, text, title
from cards.base import card as base_card
from supervision.catalogue import Catalogue
from supervision.clock import format_uk_date
from supervision.models import Role
from supervision.requests import CaseLine


def card(body: list[Json], actions: list[Json] | None = None) -> Json:
    return base_card(body, actions, full_width=False)   # the Playground flags full width


ROLE_ORDER = (Role.REQUESTER, Role.LEAD_PROFESSIONAL, Role.MANAGER, Role.COORDINATOR, Role.FACILITATOR, Role.INVITEE,
              Role.ADMINISTRATOR)


def sessions_card(t: Catalogue, lines: list[tuple[CaseLine, frozenset[Role]]]) -> Json:
    s = "request.sessions."
    body: list[Json] = [title(t(s + "title"))]
    if not lines:
        body.append(text(t(s + "none")))
        return card(body, [submit(t("help.button_request"), "request.start", validate=False)])
    for line, roles in lines:
        case = line.case
        kind = t(f"{s}deadline_kind.{line.deadline_kind}")
        parts = ", ".join(t(f"request.roles.{r.value}") for r in ROLE_ORDER if r in roles)
        body.append(container([
            text(t(s + "line", reference=case.reference, stage=t(f"states.{case.state.value}")), weight="Bolder"),
            facts([(t(s + "role"), parts),
                   (kind, format_uk_date(line.deadline) if line.deadline else t(s + "no_deadline"))]),
            {"type": "ActionSet", "actions": [submit(t("request.button.view"), "request.view", {"case_id": case.id},
                                                     validate=False)]},
        ], separator=True))
    return card(body)
