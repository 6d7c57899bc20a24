"""The audit log card for administrators: the latest entries, a filter form and export links."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from cards.base import Json, card, container, date_input, error_banner, heading, submit, text, text_input, title
from supervision.clock import format_uk_datetime

SHOWN = 15


def audit_card(t: Callable[..., str], entries: list[dict[str, Any]], *, filter_text: str,
               values: dict[str, str] | None = None, links: list[tuple[str, str]] | None = None,
               errors: list[str] | None = None, references: dict[str, str] | None = None,
               listing: bool = True) -> Json:
    """``entries`` oldest first (as the log holds them); ``values`` the filter as the user typed it;
    ``links`` (label, url) for exports; ``references`` case id -> reference, to show references;
    ``listing`` False when the filter was not valid and nothing was read."""
    values = values or {}
    references = references or {}
    body: list[Json] = [title(t("audit.title")), text(t("audit.intro"), subtle=True)]
    if errors:
        body.append(error_banner(errors))
    latest = list(reversed(entries))[:SHOWN]
    if listing and latest:
        body.append(text(t("audit.count", count=len(entries), filter=filter_text, shown=len(latest))))
    elif listing:
        body.append(text(t("audit.empty", filter=filter_text)))
    for entry in latest:
        case_id = str(entry.get("case_id") or "")
        case = t("audit.line_case", case=references.get(case_id, case_id)) if case_id else ""
        try:
            when = format_uk_datetime(datetime.fromisoformat(str(entry.get("at"))))
        except ValueError:
            when = str(entry.get("at", ""))
        line = t("audit.line", when=when, actor=entry.get("actor", ""), action=entry.get("action", ""), case=case)
        if not entry.get("allowed", True):
            line += f" · {t('audit.refused_mark')}"
        items = [text(line, weight="Bolder", color=None if entry.get("allowed", True) else "Attention")]
        detail = t("audit.detail", what=entry.get("what", ""), why=entry.get("why", "")).strip()
        if detail:
            items.append(text(detail, subtle=True))
        body.append(container(items, separator=True))
    body += [
        heading(t("audit.filter_heading")),
        text_input("audit_case", t("audit.filter_case"), value=values.get("audit_case", ""), max_length=200),
        text_input("audit_actor", t("audit.filter_actor"), value=values.get("audit_actor", ""), max_length=200),
        date_input("audit_since", t("audit.filter_since"), value=values.get("audit_since", ""),
                   error=t("audit.error.date")),
        date_input("audit_until", t("audit.filter_until"), value=values.get("audit_until", ""),
                   error=t("audit.error.date")),
    ]
    actions: list[Json] = [submit(t("audit.filter_button"), "audit.filter")]
    body.append(heading(t("audit.export_heading")))
    if links:
        body.append(text(t("audit.export_note"), subtle=True))
        actions += [{"type": "Action.OpenUrl", "title": label, "url": url} for label, url in links]
    else:
        body.append(text(t("audit.no_downloads"), subtle=True))
    return card(body, actions, full_width=False)   # the Playground flags full width as unsupported
