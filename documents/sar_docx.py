"""A subject access export (everything held about one case) as a DOCX document (python-docx).

Pure: the export (plain data, as ``supervision.retention.Retention.export`` gives it) and the worded
labels in, bytes out. Every field of every document is shown as a row "path: value", so nothing held
is left out of the document; the JSON export carries the same data for machines.
"""
from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class SarLabels:
    title: str
    exported: str
    case: str
    holdings: str
    audit: str
    audit_header: tuple[str, str, str, str, str]
    yes: str
    no: str
    none: str
    field: str
    value: str


def sar_labels(t: Callable[..., str], export: dict[str, Any], when: str) -> SarLabels:
    """The labels from the message catalogue (``t``), for this export; ``when`` already formatted."""
    return SarLabels(
        title=t("sar.title", reference=export["reference"]),
        exported=t("sar.exported", when=when, who=export.get("exported_by", "")),
        case=t("sar.case"), holdings=t("sar.holdings"), audit=t("sar.audit"),
        audit_header=(t("sar.audit_header_when"), t("sar.audit_header_who"), t("sar.audit_header_action"),
                      t("sar.audit_header_what"), t("sar.audit_header_allowed")),
        yes=t("sar.yes"), no=t("sar.no"), none=t("sar.none"), field=t("sar.field"), value=t("sar.value"))


def _clean(value: Any) -> str:
    return _NOT_XML.sub("", "" if value is None else str(value))


def flatten(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Nested data as (dotted path, text) rows, in order; empty lists and objects are kept as rows."""
    if isinstance(value, dict):
        if not value:
            return [(path, "")] if path else []
        rows: list[tuple[str, str]] = []
        for key, inner in value.items():
            rows += flatten(inner, f"{path}.{key}" if path else str(key))
        return rows
    if isinstance(value, list):
        if not value:
            return [(path, "")]
        rows = []
        for index, inner in enumerate(value):
            rows += flatten(inner, f"{path}[{index}]")
        return rows
    return [(path, _clean(value))]


def _table(document: Any, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    table = document.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    for cell, label in zip(table.rows[0].cells, header, strict=True):
        cell.text = label
    for row in rows:
        for cell, text in zip(table.add_row().cells, row, strict=True):
            cell.text = _clean(text)


def render_sar(export: dict[str, Any], labels: SarLabels) -> bytes:
    from docx import Document  # imported where used: the bot rarely renders documents
    from docx.shared import Pt

    document = Document()
    style = document.styles["Normal"]
    style.font.name = "Arial"
    style.font.size = Pt(10)
    document.core_properties.title = _clean(labels.title)
    document.add_heading(_clean(labels.title), level=0)
    document.add_paragraph(_clean(labels.exported))

    document.add_heading(labels.case, level=1)
    _table(document, (labels.field, labels.value), flatten(export.get("case", {})))

    document.add_heading(labels.holdings, level=1)
    holdings: dict[str, dict[str, Any]] = export.get("holdings", {})
    if not holdings:
        document.add_paragraph(labels.none)
    for collection, docs in sorted(holdings.items()):
        document.add_heading(_clean(collection), level=2)
        for key, data in docs.items():
            document.add_heading(_clean(key), level=3)
            _table(document, (labels.field, labels.value), flatten(data))

    document.add_heading(labels.audit, level=1)
    entries: list[dict[str, Any]] = export.get("audit", [])
    if entries:
        _table(document, labels.audit_header, [
            (str(e.get("at", "")), str(e.get("actor", "")), str(e.get("action", "")),
             " ".join(str(e.get(k, "")) for k in ("what", "why") if e.get(k)),
             labels.yes if e.get("allowed", True) else labels.no) for e in entries])
    else:
        document.add_paragraph(labels.none)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
