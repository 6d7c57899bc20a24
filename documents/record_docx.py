"""The session record as a DOCX document for the child's file (python-docx).

Pure: a ``RecordDocument`` of already-worded strings in, bytes out. The dialog builds the document
from the record and the catalogue; whether the child's name appears (``child_line``) is decided by the
profile (Argyll: never).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True)
class DocSection:
    title: str
    questions: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class RecordDocument:
    title: str
    subtitle: str
    facts: list[tuple[str, str]]
    sections_title: str
    sections: list[DocSection]
    actions_title: str
    actions_header: tuple[str, str, str]
    actions: list[tuple[str, str, str]]
    closing: list[tuple[str, str]] = field(default_factory=list)
    child_line: str = ""
    footer: str = ""
    # pre- and post-session evaluation: one row per attendee (name, agency, pre, post, change)
    impact_title: str = ""
    impact_header: tuple[str, ...] = ()
    impact_rows: list[tuple[str, ...]] = field(default_factory=list)
    impact_summary: str = ""


def render_record(doc: RecordDocument) -> bytes:
    from docx import Document  # imported where used: the bot rarely renders documents
    from docx.shared import Pt

    document = Document()
    style = document.styles["Normal"]
    style.font.name = "Arial"
    style.font.size = Pt(11)
    document.core_properties.title = doc.title
    document.add_heading(doc.title, level=0)
    document.add_paragraph(doc.subtitle)
    if doc.child_line:
        document.add_paragraph(doc.child_line)
    table = document.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    for label, value in doc.facts:
        cells = table.add_row().cells
        cells[0].text, cells[1].text = label, value or "-"
    document.add_heading(doc.sections_title, level=1)
    for section in doc.sections:
        document.add_heading(section.title, level=2)
        for question in section.questions:
            paragraph = document.add_paragraph(question)
            paragraph.runs[0].italic = True
        document.add_paragraph(section.text or "-")
    document.add_heading(doc.actions_title, level=1)
    actions = document.add_table(rows=1, cols=3)
    actions.style = "Table Grid"
    for cell, label in zip(actions.rows[0].cells, doc.actions_header, strict=False):
        cell.text = label
    for row in doc.actions:
        cells = actions.add_row().cells
        for cell, value in zip(cells, row, strict=False):
            cell.text = value
    if doc.impact_title:
        document.add_heading(doc.impact_title, level=1)
        if doc.impact_rows:
            impact = document.add_table(rows=1, cols=len(doc.impact_header))
            impact.style = "Table Grid"
            for cell, label in zip(impact.rows[0].cells, doc.impact_header, strict=False):
                cell.text = label
            for row in doc.impact_rows:
                for cell, value in zip(impact.add_row().cells, row, strict=False):
                    cell.text = value
        if doc.impact_summary:
            document.add_paragraph(doc.impact_summary)
    if doc.closing:
        closing = document.add_table(rows=0, cols=2)
        closing.style = "Table Grid"
        document.add_paragraph()
        for label, value in doc.closing:
            cells = closing.add_row().cells
            cells[0].text, cells[1].text = label, value or "-"
    if doc.footer:
        document.add_paragraph(doc.footer).runs[0].italic = True
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
