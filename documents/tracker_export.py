"""The partnership log exported as CSV and XLSX (openpyxl): one row per recorded session, the columns of
``supervision.tracker.COLUMNS``. The entries are already anonymised; nothing is added here."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from supervision.tracker import COLUMNS, TrackerEntry, row_values

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class ExportWords:
    """The export's words; the bot gives them from the catalogue ([tracker.export]); defaults for tests."""
    headings: Sequence[str] = tuple(label for _, label in COLUMNS)
    yes_no: tuple[str, str] = ("Yes", "No")
    sheet_title: str = "Partnership log"


def _cell(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


def _csv_safe(value: object) -> object:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(entries: list[TrackerEntry], words: ExportWords = ExportWords()) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(words.headings))
    for entry in entries:
        writer.writerow([_csv_safe(_cell(v)) for v in row_values(entry, words.yes_no)])
    return out.getvalue().encode("utf-8-sig")


def to_xlsx(entries: list[TrackerEntry], words: ExportWords = ExportWords()) -> bytes:
    from openpyxl import Workbook  # imported where used: ~20 MB the bot rarely needs
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = words.sheet_title[:31]
    sheet.append(list(words.headings))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for entry in entries:
        sheet.append([_csv_safe(v) for v in row_values(entry, words.yes_no)])
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, date):
                cell.number_format = "yyyy-mm-dd"
    sheet.freeze_panes = "B2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
