"""Chronology cards: the ask, the agency's editor (entries, add/edit/remove, submit, upload, templates),
the result of an upload, reminders, and the merged chronology for case members.

Pure functions from domain objects to Adaptive Card 1.5 JSON. Links (templates, picture, document)
are made by the caller (signed, per user) and passed in.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cards.base import (
    Json,
    card,
    choice_input,
    container,
    error_banner,
    facts,
    heading,
    submit,
    text,
    text_input,
    title,
)
from supervision.catalogue import Catalogue
from supervision.chronology import (
    MAX_TEXT,
    AgencyChronology,
    ChronologyDates,
    Entry,
    ImportResult,
    Kind,
    MergedChronology,
)
from supervision.clock import format_uk_date
from supervision.models import Case

PAGE_SIZE = 10           # entries listed per page of the editor (a Teams card must stay under about 28 KB)
LIST_TEXT = 160          # characters of each entry's text shown in the list
KIND_SIGN = {Kind.STRENGTH: "▲", Kind.WORRY: "✖", Kind.NEUTRAL: "●"}


@dataclass(frozen=True)
class TemplateLinks:
    csv: str
    xlsx: str


def open_url(label: str, url: str) -> Json:
    return {"type": "Action.OpenUrl", "title": label, "url": url}


def _ids(case: Case, agency: str, **more: str) -> dict[str, str]:
    return {"case_id": case.id, "agency": agency, **more}


def kind_label(t: Catalogue, kind: Kind) -> str:
    return f"{KIND_SIGN[kind]} {t(f'chronology.kind_{kind.value}')}"


def _due_facts(t: Catalogue, case: Case, agency: str, dates: ChronologyDates) -> Json:
    rows = [(t("chronology.fact_case"), case.reference), (t("chronology.fact_agency"), agency),
            (t("chronology.fact_window"), t("chronology.window", start=format_uk_date(dates.window_start),
                                             end=format_uk_date(dates.window_end)))]
    if dates.due:
        rows.append((t("chronology.fact_due"), format_uk_date(dates.due)))
    return facts(rows)


def ask_card(t: Catalogue, case: Case, agency: str, dates: ChronologyDates, templates: TemplateLinks,
             merged_by_social_worker: bool = False) -> Json:
    """Sent to each invitee when the session is scheduled."""
    body = [title(t("chronology.ask_title")),
            text(t("chronology.ask_body", agency=agency)),
            _due_facts(t, case, agency, dates),
            text(t("chronology.ask_how"), subtle=True)]
    if merged_by_social_worker:
        body.append(text(t("chronology.ask_social_worker"), subtle=True))
    actions = [submit(t("chronology.button_open"), "chronology.open", _ids(case, agency), validate=False),
               open_url(t("chronology.button_template_xlsx"), templates.xlsx),
               open_url(t("chronology.button_template_csv"), templates.csv)]
    return card(body, actions)


def entry_form(t: Catalogue, case: Case, agency: str, *, entry: Entry | None = None,
               values: Mapping[str, Any] | None = None) -> list[Json]:
    """Inputs for one entry: new (empty), or an entry being edited, or the user's values sent back."""
    v: dict[str, Any] = {}
    if entry is not None:
        v = {"when": entry.when.text if entry.when.approximate else entry.when.label(), "what": entry.what,
             "impact": entry.impact, "kind": entry.kind.value, "source": "" if entry.source == agency else entry.source}
    v.update({k: val for k, val in (values or {}).items() if isinstance(val, str)})
    return [
        text_input("when", t("chronology.input_when"), value=v.get("when", ""), required=True,
                   error=t("chronology.input_when_error"), placeholder=t("chronology.input_when_hint"),
                   max_length=60),
        text_input("what", t("chronology.input_what"), value=v.get("what", ""), required=True,
                   error=t("chronology.input_what_error"), multiline=True, max_length=MAX_TEXT),
        text_input("impact", t("chronology.input_impact"), value=v.get("impact", ""), multiline=True,
                   max_length=MAX_TEXT, placeholder=t("chronology.input_impact_hint")),
        choice_input("kind", t("chronology.input_kind"),
                     [(t(f"chronology.kind_{k.value}"), k.value) for k in Kind], value=v.get("kind", ""),
                     required=True, error=t("chronology.input_kind_error"), expanded=True),
        text_input("source", t("chronology.input_source"), value=v.get("source", ""), max_length=120,
                   placeholder=t("chronology.input_source_hint", agency=agency)),
    ]


def short(value: str, limit: int = LIST_TEXT) -> str:
    value = value.strip()
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _entry_row(t: Catalogue, case: Case, agency: str, entry: Entry, editable: bool) -> Json:
    # listed briefly (a Teams card must stay under about 28 KB); the full text is in the edit form and document
    lines = [text(f"**{entry.when.marked()}** · {kind_label(t, entry.kind)}"), text(short(entry.what))]
    if entry.impact:
        lines.append(text(t("chronology.impact_line", impact=short(entry.impact)), subtle=True))
    if entry.source != agency:
        lines.append(text(t("chronology.source_line", source=entry.source), subtle=True))
    columns: list[Json] = [{"type": "Column", "width": "stretch", "items": lines}]
    if editable:
        columns.append({"type": "Column", "width": "auto", "verticalContentAlignment": "Center", "items": [
            {"type": "ActionSet", "actions": [
                submit(t("chronology.button_edit"), "chronology.edit", _ids(case, agency, item_id=entry.id),
                       validate=False),
                submit(t("chronology.button_remove"), "chronology.remove", _ids(case, agency, item_id=entry.id),
                       validate=False),
            ]}]})
    return container([{"type": "ColumnSet", "columns": columns}], separator=True)


def chronology_card(t: Catalogue, case: Case, chronology: AgencyChronology, dates: ChronologyDates,
                    templates: TemplateLinks, *, editing: Entry | None = None,
                    values: Mapping[str, Any] | None = None, errors: list[str] | None = None,
                    notice: str = "", page: int = 0) -> Json:
    """The agency's chronology: its entries (a page of them, in date order), a form to add (or edit)
    one, submit, upload, templates."""
    agency = chronology.agency
    editable = not chronology.submitted
    body: list[Json] = [title(t("chronology.title", agency=agency)), _due_facts(t, case, agency, dates)]
    status_key = "chronology.status_submitted" if chronology.submitted else "chronology.status_draft"
    body.append(text(t(status_key, count=len(chronology.entries)), weight="Bolder",
                     color="Good" if chronology.submitted else None))
    if notice:
        body.append(text(notice, color="Good"))
    if errors:
        body.append(error_banner(errors))
    entries = sorted(chronology.entries, key=lambda e: (e.when.sort_date, e.id))
    if not entries:
        body.append(text(t("chronology.no_entries"), subtle=True))
    pages = max(1, -(-len(entries) // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    for entry in entries[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]:
        body.append(_entry_row(t, case, agency, entry, editable))
    if pages > 1:
        body.append(text(t("chronology.page", page=page + 1, pages=pages, count=len(entries)), subtle=True))
        paging = []
        if page > 0:
            paging.append(submit(t("chronology.button_earlier"), "chronology.open",
                                 _ids(case, agency, page=str(page - 1)), validate=False))
        if page < pages - 1:
            paging.append(submit(t("chronology.button_later"), "chronology.open",
                                 _ids(case, agency, page=str(page + 1)), validate=False))
        body.append({"type": "ActionSet", "actions": paging})
    actions: list[Json] = []
    if editable:
        if editing is not None:
            body.append(heading(t("chronology.edit_heading", when=editing.when.marked())))
            body.extend(entry_form(t, case, agency, entry=editing, values=values))
            body.append({"type": "ActionSet", "actions": [
                submit(t("chronology.button_save"), "chronology.save", _ids(case, agency, item_id=editing.id),
                       style="positive"),
                submit(t("chronology.button_cancel"), "chronology.open", _ids(case, agency), validate=False),
            ]})
        else:
            body.append(heading(t("chronology.add_heading")))
            body.extend(entry_form(t, case, agency, values=values))
            body.append({"type": "ActionSet", "actions": [
                submit(t("chronology.button_add"), "chronology.add", _ids(case, agency), style="positive")]})
        body.append(text(t("chronology.upload_hint"), subtle=True))
        actions = [submit(t("chronology.button_submit"), "chronology.submit", _ids(case, agency),
                          style="positive", validate=False),
                   submit(t("chronology.button_upload"), "chronology.upload", _ids(case, agency), validate=False),
                   open_url(t("chronology.button_template_xlsx"), templates.xlsx),
                   open_url(t("chronology.button_template_csv"), templates.csv)]
    else:
        actions = [submit(t("chronology.button_reopen"), "chronology.reopen", _ids(case, agency), validate=False)]
    return card(body, actions)


def upload_prompt_card(t: Catalogue, case: Case, agency: str, templates: TemplateLinks) -> Json:
    body = [title(t("chronology.upload_title", agency=agency)), text(t("chronology.upload_body")),
            text(t("chronology.upload_columns"), subtle=True)]
    return card(body, [open_url(t("chronology.button_template_xlsx"), templates.xlsx),
                       open_url(t("chronology.button_template_csv"), templates.csv),
                       submit(t("chronology.button_back"), "chronology.open", _ids(case, agency), validate=False)])


def describe_problem(t: Catalogue, row: int, column: str, key: str, params: Mapping[str, Any]) -> str:
    reason = t(key, field=column, **params)
    if row <= 1:
        return t("chronology.problem_heading", column=column or "-", reason=reason)
    return t("chronology.problem_row", row=row, column=column or "-", reason=reason)


def import_notice(t: Catalogue, result: ImportResult, filename: str) -> tuple[str, list[str]]:
    """What an upload did: a notice, and one line per bad cell (row and column)."""
    notice = t("chronology.import_done", added=len(result.entries), name=filename or "-")
    if result.duplicates:
        notice += " " + t("chronology.import_duplicates", count=result.duplicates)
    problems = [describe_problem(t, p.row, p.column, p.key, p.params) for p in result.problems[:30]]
    if len(result.problems) > 30:
        problems.append(t("chronology.import_more_problems", count=len(result.problems) - 30))
    if problems:
        problems.insert(0, t("chronology.import_bad_rows", count=len(result.bad_rows) or 1))
    return notice, problems


def reminder_card(t: Catalogue, case: Case, agency: str, dates: ChronologyDates, *, on_due_day: bool,
                  late: bool) -> Json:
    key = "chronology.reminder_due_today" if on_due_day else "chronology.reminder_soon"
    body = [title(t("chronology.reminder_title")),
            text(t(key, agency=agency, due=format_uk_date(dates.due) if dates.due else "-"))]
    if late:
        body.append(text(t("chronology.reminder_late"), subtle=True))
    body.append(_due_facts(t, case, agency, dates))
    return card(body, [submit(t("chronology.button_open"), "chronology.open", _ids(case, agency), validate=False)])


def merged_summary(t: Catalogue, merged: MergedChronology) -> list[Json]:
    """The merged chronology in a few facts: who is in, who is missing, strengths and worries."""
    totals = merged.totals
    rows = [(t("chronology.fact_window"), t("chronology.window", start=format_uk_date(merged.window_start),
                                             end=format_uk_date(merged.window_end))),
            (t("chronology.fact_included"), ", ".join(merged.submitted) or t("chronology.none_yet")),
            (t("chronology.fact_missing"), ", ".join(merged.missing) or t("chronology.none")),
            (t("chronology.fact_totals"), t("chronology.totals", strengths=totals.strengths,
                                             worries=totals.worries, neutral=totals.neutral))]
    if merged.outside_window:
        rows.append((t("chronology.fact_outside"), str(len(merged.outside_window))))
    approximate = sum(1 for e in merged.entries if e.approximate)
    if approximate:
        rows.append((t("chronology.fact_approximate"), str(approximate)))
    blocks: list[Json] = [facts(rows)]
    by_agency = [(a, t("chronology.totals", strengths=c.strengths, worries=c.worries, neutral=c.neutral))
                 for a, c in merged.by_agency_counts.items()]
    if by_agency:
        blocks.append(text(t("chronology.by_agency"), weight="Bolder"))
        blocks.append(facts(by_agency))
    if merged.merged_by == "social_worker":
        if merged.confirmed_at:
            blocks.append(text(t("chronology.merged_confirmed", by=merged.confirmed_by), subtle=True))
        else:
            blocks.append(text(t("chronology.merged_awaiting"), color="Warning"))
    return blocks


def picture(t: Catalogue, image_url: str, merged: MergedChronology) -> Json:
    return {"type": "Image", "url": image_url, "altText": t("chronology.picture_alt", lanes=len(merged.lanes),
                                                            entries=len(merged.entries)),
            "size": "Stretch"}


def merged_card(t: Catalogue, case: Case, merged: MergedChronology, image_url: str, docx_url: str, *,
                may_confirm: bool = False, pack_button: bool = False) -> Json:
    body = [title(t("chronology.merged_title", reference=case.reference)), picture(t, image_url, merged),
            *merged_summary(t, merged)]
    actions = [open_url(t("chronology.button_document"), docx_url),
               open_url(t("chronology.button_picture"), image_url)]
    if may_confirm and merged.awaiting_social_worker:
        actions.append(submit(t("chronology.button_confirm_merge"), "chronology.merge", {"case_id": case.id},
                              style="positive", validate=False))
    if pack_button:
        actions.append(submit(t("chronology.button_pack"), "pack.show", {"case_id": case.id}, validate=False))
    return card(body, actions)


def cases_card(t: Catalogue, rows: list[tuple[Case, str, str]]) -> Json:
    """The user's open chronologies: (case, agency, status text) per row, each with an Open button."""
    body: list[Json] = [title(t("chronology.mine_title"))]
    if not rows:
        body.append(text(t("chronology.mine_none")))
    for case, agency, status in rows:
        body.append(container([{"type": "ColumnSet", "columns": [
            {"type": "Column", "width": "stretch", "items": [text(f"**{case.reference}** · {agency}"),
                                                              text(status, subtle=True)]},
            {"type": "Column", "width": "auto", "items": [{"type": "ActionSet", "actions": [
                submit(t("chronology.button_open"), "chronology.open", _ids(case, agency), validate=False)]}]},
        ]}], separator=True))
    return card(body)
