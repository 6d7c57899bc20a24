"""Evaluation cards (Bolton Appendix 6): the pre- and post-session forms, the card that replaces a form
once answered (Action.Execute), the closed card, and the facilitators' status card."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from cards.base import (
    Json,
    card,
    choice_input,
    container,
    error_banner,
    execute,
    facts,
    text,
    text_input,
    title,
)
from supervision.catalogue import Catalogue
from supervision.clock import format_uk_datetime
from supervision.evaluation import (
    MAX_TEXT,
    POST_FIELDS,
    PRE_FIELDS,
    EvaluationResponse,
    EvaluationStatus,
    Phase,
)
from supervision.models import Case

VERB_SUBMIT = "evaluation.submit"
VERB_EDIT = "evaluation.edit"
VERB_STATUS = "evaluation.status"
VERB_MARK_HELD = "session.mark_held"


def _ids(case: Case, phase: Phase | None = None) -> dict[str, str]:
    ids = {"case_id": case.id, "session": str(case.session.number)}
    if phase is not None:
        ids["phase"] = phase.value
    return ids


def _when(case: Case) -> str:
    return format_uk_datetime(case.session.starts_at) if case.session.starts_at else "-"


def _facilitators(case: Case) -> str:
    return ", ".join(f.name for f in case.facilitators) or "-"


def _late(message: str) -> list[Json]:
    return [container([text(message, weight="Bolder")], style="warning")] if message else []


def evaluation_form(t: Catalogue, case: Case, phase: Phase, *, response: EvaluationResponse | None = None,
                    values: dict[str, Any] | None = None, errors: list[str] | None = None,
                    late: str = "", reminder: bool = False) -> Json:
    """The form; ``values`` (what the user typed) win over ``response`` (what was stored)."""
    given: dict[str, Any] = {}
    if response is not None:
        given = {"score": str(response.score), **{f: getattr(response, f) for f in (*PRE_FIELDS, *POST_FIELDS)}}
    given.update({k: v for k, v in (values or {}).items() if v is not None})
    pre = phase == Phase.PRE
    body: list[Json] = [title(t("evaluation.pre_title") if pre else t("evaluation.post_title")),
                        text(t("evaluation.intro", reference=case.reference, when=_when(case),
                               facilitators=_facilitators(case)), subtle=True),
                        *_late(late)]
    if reminder:
        body.append(text(t("evaluation.reminder", when=_when(case)), weight="Bolder"))
    if errors:
        body.append(error_banner([t("evaluation.fix_these"), *errors]))
    body.append(text(t("evaluation.pre_due") if pre else t("evaluation.post_due"), subtle=True))
    choices = [(t(f"evaluation.score_{n}"), str(n)) for n in range(6)]
    body.append(choice_input("score", t("evaluation.pre_question") if pre else t("evaluation.post_question"),
                             choices, value=str(given.get("score", "")), required=True,
                             error=t("evaluation.score_required"), expanded=True))
    body.append(text(t("evaluation.scale"), subtle=True))
    for name in (PRE_FIELDS if pre else POST_FIELDS):
        body.append(text_input(name, t(f"evaluation.{name}"), value=str(given.get(name, "") or ""),
                               multiline=True, max_length=MAX_TEXT))
    label = t("evaluation.update") if response is not None else t("evaluation.submit")
    return card(body, [execute(label, VERB_SUBMIT, _ids(case, phase), style="positive")])


def received_card(t: Catalogue, case: Case, phase: Phase, response: EvaluationResponse, *, editable: bool = True) -> Json:
    pre = phase == Phase.PRE
    when = format_uk_datetime(response.submitted_at) if response.submitted_at else "-"
    body: list[Json] = [title(t("evaluation.received_title")),
                        text(t("evaluation.received_pre" if pre else "evaluation.received_post",
                               reference=case.reference, when=when))]
    if response.edits and response.updated_at:
        body.append(text(t("evaluation.received_edited", when=format_uk_datetime(response.updated_at)), subtle=True))
    pairs = [(t("evaluation.your_score"), str(response.score))]
    for name in (PRE_FIELDS if pre else POST_FIELDS):
        pairs.append((t(f"evaluation.{name}"), getattr(response, name) or t("evaluation.no_answer")))
    body += [text(t("evaluation.your_answers"), weight="Bolder"), facts(pairs)]
    actions = [execute(t("evaluation.edit"), VERB_EDIT, _ids(case, phase), validate=False)] if editable else []
    return card(body, actions)


def closed_card(t: Catalogue, case: Case | None, phase: Phase | None) -> Json:
    if case is None or phase is None:
        message = t("evaluation.closed_generic")
    else:
        message = t("evaluation.closed", phase=t(f"evaluation.phase_{phase.value}"), reference=case.reference)
    return card([title(t("evaluation.closed_title")), text(message)], full_width=False)


def _cell(t: Catalogue, response: EvaluationResponse | None, open_: bool) -> str:
    if response is not None:
        return t("evaluation.status.answered", score=response.score)
    return t("evaluation.status.not_answered") if open_ else t("evaluation.status.not_open")


def status_card(t: Catalogue, status: EvaluationStatus, *, now: datetime) -> Json:
    """For facilitators: who has and has not answered each phase, scores and impact. Updated in place."""
    case = status.case
    held = case.session.held_at is not None
    header = {"type": "ColumnSet", "columns": [
        {"type": "Column", "width": "stretch", "items": [text(t("evaluation.status.attendee"), weight="Bolder")]},
        {"type": "Column", "width": "auto", "items": [text(t("evaluation.status.pre"), weight="Bolder")]},
        {"type": "Column", "width": "auto", "items": [text(t("evaluation.status.post"), weight="Bolder")]},
        {"type": "Column", "width": "auto", "items": [text(t("evaluation.status.change"), weight="Bolder")]},
    ]}
    rows: list[Json] = []
    changes = {a.key: a.change for a in status.impact.attendees}
    for row in status.rows:
        change = changes.get(row.attendee.key)
        rows.append({"type": "ColumnSet", "separator": True, "columns": [
            {"type": "Column", "width": "stretch",
             "items": [text(f"{row.attendee.name or row.attendee.key} ({row.attendee.agency or '-'})")]},
            {"type": "Column", "width": "auto", "items": [text(_cell(t, row.pre, True))]},
            {"type": "Column", "width": "auto", "items": [text(_cell(t, row.post, held))]},
            {"type": "Column", "width": "auto",
             "items": [text(f"{change:+d}" if change is not None else t("evaluation.status.not_open"))]},
        ]})
    impact = status.impact
    body: list[Json] = [title(t("evaluation.status.title")),
                        text(t("evaluation.status.intro", reference=case.reference, when=_when(case)), subtle=True),
                        header, *(rows or [text(t("evaluation.status.nobody"))]),
                        text(t("evaluation.status.counts", pre=status.pre_answered, post=status.post_answered,
                               total=len(status.rows)), weight="Bolder")]
    if impact.mean_change is not None:
        both = sum(1 for a in impact.attendees if a.change is not None)
        body.append(text(t("evaluation.status.impact", count=both, value=f"{impact.mean_change:+.2f}")))
    else:
        body.append(text(t("evaluation.status.impact_none")))
    if impact.mean_pre is not None or impact.mean_post is not None:
        body.append(text(t("evaluation.status.means", pre=_num(impact.mean_pre), post=_num(impact.mean_post)),
                         subtle=True))
    if held and case.session.held_at is not None:
        body.append(text(t("evaluation.status.held", when=format_uk_datetime(case.session.held_at))))
    else:
        body.append(text(t("evaluation.status.not_held"), subtle=True))
    body.append(text(t("evaluation.status.updated", when=format_uk_datetime(now)), subtle=True))
    actions = [execute(t("evaluation.status.refresh"), VERB_STATUS, _ids(case), validate=False)]
    if not held:
        actions.append(execute(t("evaluation.status.mark_held"), VERB_MARK_HELD, _ids(case), validate=False))
    return card(body, actions)


def held_check_card(t: Catalogue, case: Case, late: str = "") -> Json:
    """To the facilitators once the session's end has passed without it being marked held."""
    ends = case.session.ends_at or case.session.starts_at
    body = [title(t("evaluation.held_check.title", reference=case.reference)),
            text(t("evaluation.held_check.body", when=format_uk_datetime(ends) if ends else "-"))]
    if late:
        body.append(text(late, subtle=True))
    return card(body, [execute(t("evaluation.status.mark_held"), VERB_MARK_HELD, _ids(case), validate=False)])


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
