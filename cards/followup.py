"""The follow-up card for the lead professional, at the profile's interval after the session."""
from __future__ import annotations

from collections.abc import Mapping

from cards.base import Json, card, choice_input, error_banner, execute, text, text_input, title, toggle_input
from supervision.catalogue import Catalogue
from supervision.clock import format_uk_date
from supervision.followup import PLAN_MOVED_ON, FollowUp
from supervision.models import Case


def followup_card(t: Catalogue, case: Case, months: int, *, values: Mapping[str, str] | None = None,
                  errors: list[str] | None = None, banner: str = "") -> Json:
    v = values or {}
    body: list[Json] = [title(t("followup.card.title", reference=case.reference))]
    if banner:
        body.append(text(banner, weight="Bolder"))
    if errors:
        body.append(error_banner(errors))
    held = case.session.held_at
    body += [text(t("followup.card.intro", months=months,
                    held=format_uk_date(held.date()) if held else "-")),
             text_input("outcomes", t("followup.field.outcomes"), value=v.get("outcomes", ""), multiline=True,
                        required=True, error=t("followup.error.required_short"), max_length=8000),
             text_input("what_changed", t("followup.field.what_changed"), value=v.get("what_changed", ""),
                        multiline=True, required=True, error=t("followup.error.required_short"), max_length=8000),
             choice_input("plan_moved_on", t("followup.field.plan_moved_on"),
                          [(t(f"followup.plan.{p}"), p) for p in PLAN_MOVED_ON], value=v.get("plan_moved_on", ""),
                          required=True, error=t("followup.error.required_short"), expanded=True),
             toggle_input("child_involved", t("followup.field.child_involved"), t("followup.field.yes"),
                          value=v.get("child_involved") == "true"),
             toggle_input("family_involved", t("followup.field.family_involved"), t("followup.field.yes"),
                          value=v.get("family_involved") == "true"),
             text_input("views", t("followup.field.views"), value=v.get("views", ""), multiline=True,
                        max_length=8000)]
    return card(body, [execute(t("followup.card.submit"), "followup.submit", {"case_id": case.id},
                               style="positive")], full_width=False)


def followup_done_card(t: Catalogue, case: Case, follow_up: FollowUp) -> Json:
    return card([title(t("followup.done.title", reference=case.reference)),
                 text(t("followup.done.body", plan=t(f"followup.plan.{follow_up.plan_moved_on}")))],
                full_width=False)
