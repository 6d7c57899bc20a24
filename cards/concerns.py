"""Concern and complaint cards: raising one, the facilitator's card, the named lead's card."""
from __future__ import annotations

from collections.abc import Mapping

from cards.base import Json, card, choice_input, error_banner, execute, facts, submit, text, text_input, title
from supervision.catalogue import Catalogue
from supervision.clock import format_uk_date, format_uk_datetime
from supervision.concerns import KINDS, Concern
from supervision.models import Case
from supervision.profile import Profile


def concern_form(t: Catalogue, cases: list[Case], profile: Profile, *, values: Mapping[str, str] | None = None,
                 errors: list[str] | None = None) -> Json:
    v = values or {}
    body: list[Json] = [title(t("concern.form.title")),
                        text(t("concern.form.intro", first=profile.complaints_first_to, lead=profile.complaints_named_lead,
                               days=profile.timescales.concern_escalation_working_days)),
                        text(t("concern.form.not_disagreement"), subtle=True)]
    if errors:
        body.append(error_banner(errors))
    body += [
        choice_input("case_id_choice", t("concern.field.case"),
                     [(f"{c.reference} ({t(f'states.{c.state.value}')})", c.id) for c in cases],
                     value=v.get("case_id_choice", cases[0].id if len(cases) == 1 else ""), required=True,
                     error=t("concern.error.required_short")),
        choice_input("kind", t("concern.field.kind"), [(t(f"concern.kind.{k}"), k) for k in KINDS],
                     value=v.get("kind", ""), required=True, error=t("concern.error.required_short"), expanded=True),
        text_input("text", t("concern.field.text"), value=v.get("text", ""), multiline=True, required=True,
                   error=t("concern.error.required_short"), max_length=4000),
    ]
    return card(body, [submit(t("concern.form.submit"), "concern.submit", style="positive")])


def concern_raised_card(t: Catalogue, concern: Concern, profile: Profile) -> Json:
    return card([title(t("concern.raised.title", reference=concern.reference)),
                 text(t("concern.raised.body", first=profile.complaints_first_to, lead=profile.complaints_named_lead,
                        date=format_uk_date(concern.escalate_on)))], full_width=False)


def concern_card(t: Catalogue, case: Case, concern: Concern, text_shown: str, *, escalated: bool = False,
                 errors: list[str] | None = None) -> Json:
    """For the facilitator (personal chat, case member) or, once escalated, the named lead
    (``text_shown`` then has child and family identifiers removed)."""
    heading_key = "concern.card.escalated_title" if escalated else "concern.card.title"
    body: list[Json] = [title(t(heading_key, kind=t(f"concern.kind.{concern.kind}"), reference=case.reference))]
    if errors:
        body.append(error_banner(errors))
    body += [facts([(t("concern.card.raised_by"), concern.raised_by_name or concern.raised_by),
                    (t("concern.card.raised_at"), format_uk_datetime(concern.raised_at)),
                    (t("concern.card.escalate_on"), format_uk_date(concern.escalate_on)),
                    (t("concern.card.status"), t(f"concern.status.{concern.status.value}"))]),
             text(text_shown)]
    if concern.status.value == "resolved":
        body.append(text(t("concern.card.resolution", note=concern.resolution), weight="Bolder"))
        return card(body, full_width=False)
    body.append(text_input("resolution", t("concern.field.resolution"), multiline=True, required=True,
                           error=t("concern.error.required_short"), max_length=4000))
    return card(body, [execute(t("concern.card.resolve"), "concern.resolve",
                               {"case_id": case.id, "item_id": concern.id}, style="positive")], full_width=False)
