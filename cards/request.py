"""Cards for requesting a session: the multi-step form, the immediate-risk gate, summaries, the
coordinators' channel card (no child or family identifiers), decision cards, the facilitator
picker and the facilitator's card. Pure functions from domain objects to Adaptive Card 1.5 JSON.

The form's inputs are checked by the bot, not by the client, so that Back and Save and leave keep
partly finished answers; required fields say so in their label and errors come back as a banner
naming each field, with everything the user typed still in place.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

from cards.base import (
    Json,
    choice_input,
    container,
    date_input,
    error_banner,
    facts,
    heading,
    submit,
    text,
    text_input,
    title,
)
from cards.base import card as base_card
from supervision.catalogue import Catalogue
from supervision.clock import format_uk_date, format_uk_datetime
from supervision.drafts import Draft
from supervision.errors import FieldError
from supervision.facilitators import Candidate
from supervision.models import Case
from supervision.profile import Profile
from supervision.requests import (
    AWARENESS,
    CURRENT_PLANS,
    MAX_TEXT,
    RELATIONSHIPS,
    STEPS,
    TRIGGERS,
    YES_NO,
    FieldSpec,
    is_required,
    parse_date,
    row_fields,
    row_is_open,
    row_key,
    rows_of,
    step_fields,
)

BUTTON = "request.button."


def card(body: list[Json], actions: list[Json] | None = None) -> Json:
    """Not full width: the Agents Playground flags msteams.width "Full" as unsupported."""
    return base_card(body, actions, full_width=False)


# --- labels -----------------------------------------------------------------------------------------

def field_label(t: Catalogue, field_id: str, draft: Draft | None = None) -> str:
    """The words a person sees for an input id, including which family member or practitioner."""
    parts = field_id.split(".")
    if len(parts) == 3 and parts[0] in ("family", "invitee"):
        step = "family" if parts[0] == "family" else "invitees"
        rows = rows_of(draft, step) if draft else []
        number = rows.index(parts[1]) + 1 if parts[1] in rows else 0
        which = t("request.step_help.family_member" if step == "family" else "request.step_help.invitee",
                  number=number or "?")
        key = f"request.field.{parts[0]}.{parts[2]}"
        return f"{which}: {t(key) if t.has(key) else parts[2]}"
    if field_id == "family":
        return t("request.field.family_rows")
    key = f"request.field.{field_id}"
    return t(key) if t.has(key) else field_id


def error_lines(t: Catalogue, errors: list[FieldError], draft: Draft | None = None) -> list[str]:
    return [t("request.field_error", label=field_label(t, e.field, draft), message=t(e.key, **e.params))
            for e in errors]


def _choices(t: Catalogue, spec: FieldSpec, field_id: str) -> list[tuple[str, str]]:
    values = spec.choices
    if values == CURRENT_PLANS:
        return [(t(f"request.plan.{v}"), v) for v in values]
    if values == TRIGGERS:
        return [(t(f"request.trigger.{v}"), v) for v in values]
    if values == AWARENESS:
        return [(t(f"request.aware.{v}"), v) for v in values]
    if values == YES_NO:
        return [(t(f"request.yes_no.{v}"), v) for v in values]
    if values == RELATIONSHIPS:
        return [(t(f"request.relationship.{v}"), v) for v in values]
    return [(v, v) for v in values]     # profile vocabulary (level of need) and the agency list


def _required_label(label: str, required: bool) -> str:
    return f"{label} *" if required else label


def _input_for(t: Catalogue, spec: FieldSpec, field_id: str, label: str, value: str, required: bool) -> Json:
    label = _required_label(label, required)
    if spec.kind == "choice":
        chosen = value if value in spec.choices else ""
        return choice_input(field_id, label, _choices(t, spec, field_id), value=chosen,
                            expanded=len(spec.choices) <= 3)
    if spec.kind == "date":      # Input.Date shows only real ISO dates; a typed 14/03/2015 is shown as one
        day = parse_date(value)
        return date_input(field_id, label, value=day.isoformat() if day else "")
    if spec.kind == "email":
        return text_input(field_id, label, value=value, style="Email", max_length=spec.max_length)
    return text_input(field_id, label, value=value, multiline=spec.kind == "multiline", max_length=spec.max_length)


# --- the immediate-risk gate and drafts ----------------------------------------------------------------

def risk_card(t: Catalogue, *, resume: bool = False) -> Json:
    body = [title(t("request.risk.title")), text(t("request.risk.body")),
            choice_input("immediate_risk", t("request.risk.question"),
                         [(t("request.risk.yes"), "yes"), (t("request.risk.no"), "no")], required=True,
                         expanded=True, error=t("request.error.required"))]
    return card(body, [submit(t(BUTTON + "continue"), "request.risk", {"phase": "resume" if resume else "new"})])


def risk_stop_card(t: Catalogue, profile: Profile) -> Json:
    body = [title(t("request.risk.stop_title")),
            container([text(t("request.risk.stop_route_intro"), weight="Bolder"), text(profile.immediate_risk_route)],
                      style="attention"),
            text(t("request.risk.stop_kept"), subtle=True)]
    return card(body)


def draft_found_card(t: Catalogue, draft: Draft) -> Json:
    body = [title(t("request.title")),
            text(t("request.draft_found", when=format_uk_datetime(draft.updated_at),
                   step=t(f"request.step.{draft.step}") if draft.step in STEPS else draft.step)),
            text(t("request.draft_found_prompt"))]
    ids = {"draft_id": draft.id}
    return card(body, [submit(t(BUTTON + "resume"), "request.resume", ids, style="positive", validate=False),
                       submit(t(BUTTON + "start_again"), "request.restart", ids, validate=False),
                       submit(t(BUTTON + "cancel"), "request.cancel", ids, style="destructive", validate=False)])


# --- the form ------------------------------------------------------------------------------------------

def _nav(t: Catalogue, draft: Draft, step: str) -> list[Json]:
    ids = {"draft_id": draft.id, "phase": step}
    actions = []
    if step == "review":
        actions.append(submit(t(BUTTON + "submit"), "request.submit", ids, style="positive"))
    else:
        actions.append(submit(t(BUTTON + "next"), "request.next", ids, style="positive"))
    if step != STEPS[0]:
        actions.append(submit(t(BUTTON + "back"), "request.back", ids))
    actions.append(submit(t(BUTTON + "save"), "request.save", ids))
    actions.append(submit(t(BUTTON + "cancel"), "request.cancel", ids, style="destructive", validate=False))
    return actions


def _row_line(t: Catalogue, draft: Draft, step: str, row: str) -> str:
    """A complete row in one line: 'Mother: Mabel Example, Thu 02 Jul 1990' / 'GP: Patti Fernandez, GP, email'."""
    def v(name: str) -> str:
        return draft.value(row_key(step, row, name)).strip()

    if step == "family":
        born = parse_date(v("date_of_birth"))
        rest = [v("name"), format_uk_date(born) if born else "", v("address")]
        head = _label(t, "request.relationship", v("relationship"))
    else:
        rest = [v("name"), v("role"), v("email")]
        head = v("agency")
    return f"{head}: " + ", ".join(x for x in rest if x)


def _rows(t: Catalogue, profile: Profile, draft: Draft, step: str) -> list[Json]:
    """Rows being edited (or empty) as inputs; complete rows as one line with Edit and Remove."""
    items: list[Json] = []
    rows = rows_of(draft, step)
    which = "request.step_help.family_member" if step == "family" else "request.step_help.invitee"
    remove = "remove_family" if step == "family" else "remove_invitee"
    if not rows:
        items.append(text(t("request.step_help.no_family" if step == "family" else "request.step_help.no_invitees"),
                          subtle=True))
    for number, row in enumerate(rows, start=1):
        ids = {"draft_id": draft.id, "phase": step, "item_id": row}
        if not row_is_open(draft, step, row):
            items.append(container([
                text(f"**{t(which, number=number)}** · {_row_line(t, draft, step, row)}"),
                {"type": "ActionSet", "actions": [submit(t(BUTTON + "edit_row"), "request.row.edit", ids),
                                                  submit(t(BUTTON + remove), "request.row.remove", ids)]}],
                separator=True))
            continue
        inputs: list[Json] = [heading(t(which, number=number))]
        for spec in row_fields(step):
            key = row_key(step, row, spec.id)
            label = t(f"request.field.{'family' if step == 'family' else 'invitee'}.{spec.id}")
            inputs.append(_input_for(t, spec, key, label, draft.value(key), spec.required))
        inputs.append({"type": "ActionSet", "actions": [submit(t(BUTTON + remove), "request.row.remove", ids)]})
        items.append(container(inputs, separator=True))
    add = "add_family" if step == "family" else "add_invitee"
    items.append({"type": "ActionSet", "actions": [
        submit(t(BUTTON + add), "request.row.add", {"draft_id": draft.id, "phase": step})]})
    return items


def step_card(t: Catalogue, profile: Profile, draft: Draft, step: str, errors: list[FieldError] | None = None) -> Json:
    number = STEPS.index(step) + 1 if step in STEPS else 1
    body: list[Json] = [title(t("request.title")),
                        text(t("request.progress", number=number, total=len(STEPS), step=t(f"request.step.{step}")),
                             weight="Bolder")]
    if errors:
        body.append(error_banner([t("request.banner_intro"), *error_lines(t, errors, draft)]))
    help_params = {"min": profile.request.min_agencies, "max": profile.max_attendees}
    body.append(text(t(f"request.step_help.{step}", **help_params), subtle=True))
    if any(is_required(profile, spec) for spec in step_fields(profile, step)) or step in ("family", "invitees"):
        body.append(text(t("request.required_hint"), subtle=True))
    for spec in step_fields(profile, step):
        label = field_label(t, spec.id)
        body.append(_input_for(t, spec, spec.id, label, draft.value(spec.id), is_required(profile, spec)))
    if step in ("family", "invitees"):
        body.extend(_rows(t, profile, draft, step))
    if step == "review":
        return fit(lambda clip: card([*body, *review_sections(t, profile, draft, clip)], _nav(t, draft, step)))
    return card(body, _nav(t, draft, step))


def _shown(t: Catalogue, spec: FieldSpec, value: str) -> str:
    if spec.kind == "choice" and value:
        for label, choice in _choices(t, spec, spec.id):
            if choice == value:
                return label
    return value


def review_sections(t: Catalogue, profile: Profile, draft: Draft, clip: int | None = None) -> list[Json]:
    blocks: list[Json] = []
    for step in STEPS[:-1]:
        pairs = [(field_label(t, s.id), _clip(_shown(t, s, draft.value(s.id)), clip)) for s in step_fields(profile, step)]
        which = "request.step_help.family_member" if step == "family" else "request.step_help.invitee"
        for number, row in enumerate(rows_of(draft, step), start=1):
            if any(draft.value(row_key(step, row, spec.id)).strip() for spec in row_fields(step)):
                pairs.append((t(which, number=number), _clip(_row_line(t, draft, step, row), clip)))
        blocks.append(heading(t(f"request.step.{step}")))
        blocks.append(facts(pairs) if pairs else text(t("request.summary.none"), subtle=True))
    return blocks


# --- the case, as shown to its members in personal chat -------------------------------------------------

CARD_LIMIT = 26_000      # bytes of card JSON; Teams refuses a message over about 28 KB


def _clip(value: str, clip: int | None) -> str:
    return value if clip is None or len(value) <= clip else value[:clip].rstrip() + " …"


def fit(build: Callable[[int | None], Json]) -> Json:
    """The card with every text in full if it fits Teams' size limit, else with long texts shortened
    (the full text stays in the case)."""
    for clip in (None, 800, 300, 100):
        built = build(clip)
        if len(json.dumps(built, ensure_ascii=False).encode()) <= CARD_LIMIT:
            return built
    return built


def _date(day: date | None) -> str:
    return format_uk_date(day) if day else ""


def _label(t: Catalogue, prefix: str, value: str) -> str:
    key = f"{prefix}.{value}"
    return t(key) if value and t.has(key) else value


def case_facts(t: Catalogue, case: Case, agreement_deadline: date | None = None) -> Json:
    """Reference, stage and the deadlines: on every card that shows the case."""
    s = "request.summary."
    pairs = [(t(s + "reference"), case.reference), (t(s + "state"), t(f"states.{case.state.value}")),
             (t(s + "submitted"), format_uk_datetime(case.created_at))]
    if agreement_deadline and case.agreed_at is None:
        pairs.append((t(s + "agreement_deadline"), _date(agreement_deadline)))
    if case.session_due:
        pairs.append((t(s + "session_due"), _date(case.session_due)))
    return facts(pairs)


def full_request(t: Catalogue, case: Case, clip: int | None = None) -> list[Json]:
    """Everything in the request, identifiers included: for case members in personal chat only."""
    s = "request.summary."
    r = case.request
    child = r.child
    child_name = child.full_name + (f" ({child.also_known_as})" if child.also_known_as else "")
    blocks: list[Json] = [heading(t("request.step.child")), facts([
        (t(s + "child"), child_name), (t(s + "date_of_birth"), _date(child.date_of_birth)),
        (t("request.field.child.gender"), child.gender), (t("request.field.child.ethnicity"), child.ethnicity),
        (t("request.field.child.disability"), child.disability), (t(s + "address"), child.address)])]
    if r.family:
        blocks.append(heading(t(s + "family")))
        blocks.append(facts([(_label(t, "request.relationship", m.relationship),
                              ", ".join(x for x in (m.name + (f" ({m.also_known_as})" if m.also_known_as else ""),
                                                    _date(m.date_of_birth), m.gender,
                                                    m.ethnicity, m.disability, m.address) if x))
                             for m in r.family]))
    trigger = _label(t, "request.trigger", r.trigger) + (f": {_clip(r.trigger_other, clip)}" if r.trigger_other else "")
    pairs = [(t(s + "requester"), ", ".join(x for x in (r.requester.name, r.requester.role, r.requester.organisation,
                                                         r.requester.email, r.requester.phone, r.requester.address)
                                            if x)),
             (t(s + "level_of_need"), r.level_of_need),
             (t(s + "current_plan"), _label(t, "request.plan", r.current_plan)),
             (t(s + "lead_professional"), ", ".join(x for x in (r.lead_professional.name, r.lead_professional.organisation,
                                                                 r.lead_professional.email) if x)),
             (t(s + "lead_aware"), t(s + "lead_unaware", reason=_clip(r.lead_professional_unaware_reason, clip))
              if r.lead_professional_unaware_reason else _label(t, "request.aware", r.lead_professional_aware.value)),
             (t(s + "trigger"), trigger),
             (t(s + "family_told"), t("request.yes_no.yes") if r.family_told
              else t(s + "family_not_told", reason=_clip(r.family_not_told_reason, clip)))]
    if case.manager:
        pairs.append((t(s + "manager"), f"{case.manager.name}, {case.manager.email}"))
    blocks += [heading(t("request.step.need")), facts(pairs),
               heading(t(s + "reason")), text(_clip(r.reason, clip) or "-")]
    for key, value in (("pen_picture", r.pen_picture), ("child_voice", r.child_voice),
                       ("family_voice", r.family_voice), ("agreed_to_share", r.agreed_to_share)):
        if value:
            blocks += [heading(t(s + key)), text(_clip(value, clip))]
    blocks.append(heading(t(s + "invitees")))
    blocks.append(facts([(i.agency, ", ".join(x for x in (i.name, i.role, i.email) if x)) for i in r.invitees]))
    if r.additional_information:
        blocks.append(heading(t(s + "additional_information")))
        blocks.extend(text(_clip(info, clip)) for info in r.additional_information)
    if case.info_request:
        blocks += [heading(t(s + "info_request")), text(_clip(case.info_request, clip))]
    if case.facilitators:
        names = [t(s + "lead_marker", name=f.name) if f.lead else f.name for f in case.facilitators]
        blocks += [heading(t(s + "facilitators")), text(", ".join(names))]
    return blocks


def requester_summary_card(t: Catalogue, case: Case, agreement_deadline: date | None) -> Json:
    s = "request.summary."
    sent = (t(s + "sent_manager", name=case.manager.name) if case.manager and case.state.value == "manager_review"
            else t(s + "sent"))
    return fit(lambda clip: card([title(t(s + "title", reference=case.reference)), text(sent),
                                  case_facts(t, case, agreement_deadline), *full_request(t, case, clip)]))


def case_card(t: Catalogue, case: Case, agreement_deadline: date | None = None) -> Json:
    """A case member's view of their case."""
    return fit(lambda clip: card([title(t("request.summary.title", reference=case.reference)),
                                  case_facts(t, case, agreement_deadline), *full_request(t, case, clip)]))


# --- the coordinators' channel: no child or family identifiers -------------------------------------------

def channel_card(t: Catalogue, case: Case, agreement_deadline: date, note: str = "") -> Json:
    """Reference, level of need, agencies, trigger and the agreement deadline. Nothing that names the
    child or family: free text (reasons, 'other' descriptions) never goes to the channel."""
    s = "request.summary."
    r = case.request
    pairs = [(t(s + "reference"), case.reference), (t(s + "state"), t(f"states.{case.state.value}")),
             (t(s + "level_of_need"), r.level_of_need),
             (t(s + "agencies"), ", ".join(r.agencies)),
             (t(s + "trigger"), _label(t, "request.trigger", r.trigger))]
    if case.session_due:
        pairs.append((t(s + "session_due"), _date(case.session_due)))
    else:
        pairs.append((t(s + "agreement_deadline"), _date(agreement_deadline)))
    body = [title(t("request.channel.title", reference=case.reference))]
    if note:
        body.append(text(note, weight="Bolder"))
    body += [facts(pairs), text(t("request.channel.private_note"), subtle=True)]
    return card(body, [submit(t(BUTTON + "open"), "request.open", {"case_id": case.id}, validate=False)])


def channel_note_card(t: Catalogue, message: str) -> Json:
    return card([text(message)])


# --- decisions ----------------------------------------------------------------------------------------

def _show_card(label: str, body: list[Json], actions: list[Json]) -> Json:
    return {"type": "Action.ShowCard", "title": label,
            "card": {"type": "AdaptiveCard", "body": body, "actions": actions}}


def decision_card(t: Catalogue, case: Case, agreement_deadline: date) -> Json:
    ids = {"case_id": case.id}
    head = [title(t("request.decision.title", reference=case.reference)), case_facts(t, case, agreement_deadline)]
    actions = [
        submit(t(BUTTON + "agree"), "request.agree", ids, style="positive", validate=False),
        _show_card(t(BUTTON + "decline"),
                   [text_input("decline_reason", t("request.field.decline_reason"), required=True, multiline=True, max_length=MAX_TEXT,
                               error=t("request.error.required"))],
                   [submit(t(BUTTON + "send_decline"), "request.decline", ids, style="destructive")]),
        _show_card(t(BUTTON + "ask_info"),
                   [text_input("info_question", t("request.field.info_question"), required=True, multiline=True, max_length=MAX_TEXT,
                               error=t("request.error.required"))],
                   [submit(t(BUTTON + "send_question"), "request.ask_info", ids)]),
    ]
    return fit(lambda clip: card([*head, *full_request(t, case, clip)], actions))


def manager_card(t: Catalogue, case: Case, agreement_deadline: date) -> Json:
    ids = {"case_id": case.id}
    body = [title(t("request.decision.manager_title", reference=case.reference)),
            text(t("request.decision.manager_body", requester=case.request.requester.name)),
            case_facts(t, case, agreement_deadline)]
    actions = [
        submit(t(BUTTON + "endorse"), "request.manager.endorse", ids, style="positive", validate=False),
        _show_card(t(BUTTON + "manager_decline"),
                   [text_input("decline_reason", t("request.field.decline_reason"), required=True, multiline=True, max_length=MAX_TEXT,
                               error=t("request.error.required"))],
                   [submit(t(BUTTON + "send_decline"), "request.manager.decline", ids, style="destructive")]),
    ]
    return fit(lambda clip: card([*body, *full_request(t, case, clip)], actions))


def info_request_card(t: Catalogue, case: Case) -> Json:
    ids = {"case_id": case.id}
    body = [title(t("request.decision.info_title", reference=case.reference)),
            text(t("request.decision.info_body", question=case.info_request)), case_facts(t, case),
            text_input("information", t("request.field.information"), required=True, multiline=True, max_length=MAX_TEXT,
                       error=t("request.error.required"))]
    return card(body, [submit(t(BUTTON + "add_info"), "request.provide_info", ids, style="positive")])


def decided_card(t: Catalogue, case: Case, kind: str, agreement_deadline: date | None = None) -> Json:
    """What the requester is told about a decision: agreed, declined or the manager agreed."""
    d = "request.decision."
    if kind == "agreed":
        heading_text = t(d + "agreed_title", reference=case.reference)
        line = t(d + "agreed_body", due=_date(case.session_due))
    elif kind == "declined":
        heading_text = t(d + "declined_title", reference=case.reference)
        line = t(d + "declined_body", reason=case.decline_reason)
    else:
        heading_text = t(d + "manager_agreed_title", reference=case.reference)
        line = t(d + "manager_agreed_body")
    return card([title(heading_text), text(line), case_facts(t, case, agreement_deadline)],
                [submit(t(BUTTON + "view"), "request.view", {"case_id": case.id}, validate=False)])


def agreed_for_coordinator_card(t: Catalogue, case: Case) -> Json:
    return card([text(t("request.decision.done_agree", reference=case.reference, due=_date(case.session_due)),
                      weight="Bolder"), case_facts(t, case)],
                [submit(t(BUTTON + "choose_facilitators"), "request.facilitators.choose", {"case_id": case.id},
                        style="positive", validate=False)])


# --- facilitators --------------------------------------------------------------------------------------

def facilitator_picker_card(t: Catalogue, profile: Profile, case: Case, candidates: list[Candidate],
                            errors: list[FieldError] | None = None) -> Json:
    f = "request.facilitators."
    count = profile.facilitation.count
    body: list[Json] = [title(t(f + "title", reference=case.reference)), case_facts(t, case)]
    if errors:
        body.append(error_banner([t("request.banner_intro"), *error_lines(t, errors)]))
    body.append(text(t(f + "need_one") if count == 1 and not profile.facilitation.lead_coordinator
                     else t(f + "need_two", count=count)))
    eligible = [c for c in candidates if c.eligible]
    choices = [(t(f + "choice", name=c.facilitator.name, agency=c.facilitator.agency,
                  load=t(f + "load", count=c.load)), c.email) for c in eligible]
    actions: list[Json] = []
    if eligible:
        body.append(choice_input("facilitators", t("request.field.facilitators"), choices, required=True,
                                 expanded=True, multi=count > 1, error=t("request.error.facilitator_count", count=count)))
        if profile.facilitation.lead_coordinator:
            body.append(choice_input("lead", t("request.field.lead"), choices, required=True, expanded=True,
                                     error=t("request.error.facilitator_lead")))
        actions.append(submit(t("request.button.assign"), "request.facilitators.assign", {"case_id": case.id},
                              style="positive"))
    else:
        body.append(text(t(f + "none_eligible"), color="Attention"))
    ineligible = [c for c in candidates if not c.eligible]
    if ineligible:
        body.append(heading(t(f + "ineligible_heading")))
        for c in ineligible:
            why = "; ".join(t(f"{f}why.{r}") for r in c.reasons)
            body.append(text(t(f + "ineligible_line", name=c.facilitator.name, agency=c.facilitator.agency, why=why),
                             subtle=True))
    return card(body, actions)


def facilitator_assigned_card(t: Catalogue, case: Case, email: str) -> Json:
    f = "request.facilitators."
    me = next((a for a in case.facilitators if a.email.lower() == email.lower()), None)
    body = [title(t(f + "assigned_title", reference=case.reference))]
    if me and me.lead:
        body.append(text(t(f + "assigned_lead"), weight="Bolder"))
    body += [text(t(f + "assigned_body", due=_date(case.session_due))), case_facts(t, case)]
    return fit(lambda clip: card([*body, *full_request(t, case, clip)]))
