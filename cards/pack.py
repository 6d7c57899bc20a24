"""The session pack card: what the facilitators (and, where the profile says so, the attendees) need
before the session, in one card: request summary, the child's and family's voice, the merged
chronology (picture and document), pre-session evaluation results so far, and the agenda of the
profile's reflective model with its questions."""
from __future__ import annotations

from dataclasses import dataclass, field

from cards.base import Json, card, container, facts, heading, text, title
from cards.chronology import merged_summary, open_url, picture
from supervision.catalogue import Catalogue
from supervision.chronology import MergedChronology
from supervision.clock import format_uk_datetime
from supervision.models import Case
from supervision.profile import Profile

SUMMARY_LIMIT = 700


@dataclass(frozen=True)
class EvaluationSnapshot:
    """Pre-session evaluation results so far, as the pack shows them (read through a port)."""

    answered: int
    asked: int
    average: float | None = None                       # on the 0-5 scale
    scores: tuple[int, ...] = ()
    reasons: tuple[str, ...] = field(default_factory=tuple)


def _short(value: str, limit: int = SUMMARY_LIMIT) -> str:
    value = value.strip()
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def pack_card(t: Catalogue, case: Case, profile: Profile, merged: MergedChronology, *, image_url: str,
              docx_url: str, evaluation: EvaluationSnapshot | None, evaluation_available: bool) -> Json:
    r = case.request
    body: list[Json] = [title(t("pack.title", reference=case.reference))]
    when = format_uk_datetime(case.session.starts_at) if case.session.starts_at else "-"
    rows = [(t("pack.fact_session"), when),
            (t("pack.fact_facilitators"), ", ".join(f.name for f in case.facilitators) or "-"),
            (t("pack.fact_lead"), r.lead_professional.name or "-"),
            (t("pack.fact_level"), r.level_of_need or "-")]
    if profile.record.child_identifiers_allowed and r.child.full_name:
        rows.insert(0, (t("pack.fact_child"), r.child.full_name))
    body.append(facts(rows))
    body.append(text(t("pack.confidential"), subtle=True))

    body.append(heading(t("pack.request_heading")))
    body.append(text(_short(r.reason) or t("pack.not_given")))
    if r.current_plan:
        body.append(text(t("pack.current_plan", plan=_short(r.current_plan, 200)), subtle=True))
    if r.pen_picture:
        body.append(text(t("pack.pen_picture", text=_short(r.pen_picture)), subtle=True))

    body.append(heading(t("pack.voice_heading")))
    body.append(text(t("pack.child_voice", text=_short(r.child_voice) or t("pack.not_given"))))
    body.append(text(t("pack.family_voice", text=_short(r.family_voice) or t("pack.not_given"))))

    body.append(heading(t("pack.chronology_heading")))
    body.append(picture(t, image_url, merged))
    body.extend(merged_summary(t, merged))

    body.append(heading(t("pack.evaluation_heading")))
    if not evaluation_available:
        body.append(text(t("pack.evaluation_unavailable"), subtle=True))
    elif evaluation is None or evaluation.answered == 0:
        body.append(text(t("pack.evaluation_none"), subtle=True))
    else:
        lines = [(t("pack.evaluation_answered"), t("pack.of", n=evaluation.answered, m=evaluation.asked))]
        if evaluation.average is not None:
            lines.append((t("pack.evaluation_average"), f"{evaluation.average:.1f} / 5"))
        if evaluation.scores:
            lines.append((t("pack.evaluation_scores"), ", ".join(str(s) for s in evaluation.scores)))
        body.append(text(t("pack.evaluation_question"), subtle=True))
        body.append(facts(lines))
        for reason in evaluation.reasons[:5]:
            body.append(text(f"“{_short(reason, 200)}”", subtle=True))

    body.append(heading(t("pack.agenda_heading", model=profile.model.name)))
    for number, section in enumerate(profile.model.sections, start=1):
        items = [text(f"**{number}. {section.title}**")]
        items.extend(text(f"- {question}") for question in section.questions)
        body.append(container(items))
    return card(body, [open_url(t("chronology.button_document"), docx_url),
                       open_url(t("chronology.button_picture"), image_url)])
