"""Chronology files: the upload templates (CSV, XLSX), reading an uploaded file into rows, the
timeline picture (PNG) and the merged chronology document (DOCX).

Pure functions to and from bytes. ``timeline_png`` returns the picture together with what it drew
(lanes and points) so that tests can check the drawing without reading pixels.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from supervision.chronology import TEMPLATE_COLUMNS, TEMPLATE_FIELDS, Kind, MergedChronology, recognised_columns
from supervision.clock import format_uk_date, format_uk_datetime
from supervision.errors import DomainError

MAX_ROWS = 2000
MAX_FILE_BYTES = 2 * 1024 * 1024
CSV_TYPE = "text/csv"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PNG_TYPE = "image/png"

KIND_WORDS = {Kind.STRENGTH: "Strength", Kind.WORRY: "Worry", Kind.NEUTRAL: "Neutral"}
# The words in the picture and the document. The bot passes them from the message catalogue
# ([chronology.document], dialogs/chronology.py document_words); these defaults serve tests only.
WORDS = {
    "window_starts": " window starts",
    "before_window": " before the window",
    "session": " session",
    "not_submitted": "{agency}\n(not submitted)",
    "legend_strength": "S  strength",
    "legend_worry": "W  worry",
    "legend_neutral": "N  neutral",
    "legend_approximate": "hollow: approximate date",
    "picture_empty": "No chronology submitted yet",
    "title": "Multi-agency chronology",
    "case": "Case {reference}",
    "window": "Window: ",
    "window_range": "{start} to {end}",
    "produced": "    Produced: ",
    "included": "Agencies included: ",
    "none_yet": "none yet",
    "missing": "Not yet submitted: ",
    "none": "none",
    "merged_by_social_worker": "Merged by the social worker: ",
    "merged_yes": "yes, {name}",
    "merged_not_yet": "not yet",
    "key": ("Key: S strength, W worry, N neutral. ≈ marks a date recorded approximately (it is placed in the "
            "middle of the period it could mean). † marks an entry outside the window."),
    "by_date": "Merged chronology, by date",
    "column_date": "Date",
    "column_agency": "Agency",
    "column_what": "What happened",
    "column_impact": "Impact on the child",
    "column_kind": "S / W / N",
    "column_notes": "Notes",
    "approximate": "≈ approximate date",
    "outside": "† outside the window",
    "from_source": "{agency} (from {source})",
    "no_entries": "No entries yet.",
    "by_agency": "Strengths and worries by agency",
    "column_strengths": "Strengths",
    "column_worries": "Worries",
    "column_neutral": "Neutral",
    "by_month": "Strengths and worries by month",
    "column_month": "Month",
    "each_agency": "Each agency's chronology",
    "impact": " Impact: {impact}",
    "outside_short": " † outside the window",
    "kind_strength": "Strength",
    "kind_worry": "Worry",
    "kind_neutral": "Neutral",
}


def _words(words: Mapping[str, str] | None) -> dict[str, str]:
    return {**WORDS, **(words or {})}


# Shape and letter carry the meaning; colour only adds to it (blue/orange are safe for most colour vision).
KIND_STYLE = {
    Kind.STRENGTH: {"marker": "^", "letter": "S", "colour": "#1f5fa8"},
    Kind.WORRY: {"marker": "X", "letter": "W", "colour": "#c8501e"},
    Kind.NEUTRAL: {"marker": "o", "letter": "N", "colour": "#6b6b6b"},
}
# The words of the upload templates. The bot passes them from the message catalogue
# ([chronology.template], dialogs/chronology.py template_words); these defaults serve tests only.
TEMPLATE_WORDS = {
    "sheet_entries": "Chronology",
    "sheet_help": "How to fill this in",
    "heading": "Chronology of {agency}'s involvement",
    **{f"column_{name}": heading for name, heading in zip(TEMPLATE_FIELDS, TEMPLATE_COLUMNS, strict=True)},
    "kind_strength": "Strength",
    "kind_worry": "Worry",
    "kind_neutral": "Neutral",
    "kind_error_title": "Strength, worry or neutral",
    "kind_error": "Choose Strength, Worry or Neutral",
    "help_1": "One row for each event. Keep to the columns as they are; the heading row must stay.",
    "help_2": "Date: exact (14/03/2025), a month (March 2025) or approximate (about spring 2025, early 2025, 2024).",
    "help_3": "What happened: what your agency saw, did or was told.",
    "help_4": "Impact on the child: what it meant for the child's lived experience.",
    "help_5": "Strength, worry or neutral: one of the three words.",
    "help_6": "Source agency: leave blank if it is your own agency; otherwise who the information came from.",
    "help_7": "Use initials or roles, not full names, wherever you can.",
}
HELP_KEYS = tuple(f"help_{n}" for n in range(1, 8))
ENTRIES_SHEET = TEMPLATE_WORDS["sheet_entries"]


def _template_words(words: Mapping[str, str] | None) -> dict[str, str]:
    return {**TEMPLATE_WORDS, **(words or {})}


def template_headings(words: Mapping[str, str] | None = None) -> dict[str, str]:
    """The template's column headings by field name (when, what, impact, kind, source)."""
    chosen = _template_words(words)
    return {name: chosen[f"column_{name}"] for name in TEMPLATE_FIELDS}


class FileFormatError(DomainError):
    key = "chronology.error_file_format"


# --- templates and reading uploads ---------------------------------------------------------------

def template_csv(words: Mapping[str, str] | None = None) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(list(template_headings(words).values()))
    return buffer.getvalue().encode("utf-8-sig")


def template_xlsx(agency: str = "", words: Mapping[str, str] | None = None) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.datavalidation import DataValidation

    chosen = _template_words(words)
    book = Workbook()
    sheet = book.active
    sheet.title = chosen["sheet_entries"]
    sheet.append(list(template_headings(chosen).values()))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for letter, width in zip("ABCDE", (18, 60, 45, 24, 22), strict=False):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    choices = ",".join(chosen[f"kind_{k}"] for k in ("strength", "worry", "neutral"))
    kinds = DataValidation(type="list", formula1=f'"{choices}"', allow_blank=False,
                           showErrorMessage=True, errorTitle=chosen["kind_error_title"],
                           error=chosen["kind_error"])
    sheet.add_data_validation(kinds)
    kinds.add(f"D2:D{MAX_ROWS}")
    for row in range(2, 202):
        sheet[f"A{row}"].number_format = "@"      # dates stay as typed ("about spring 2025")
    help_sheet = book.create_sheet(chosen["sheet_help"])
    help_sheet.column_dimensions["A"].width = 110
    if agency:
        help_sheet.append([chosen["heading"].format(agency=agency)])
        help_sheet["A1"].font = Font(bold=True)
    for key in HELP_KEYS:
        help_sheet.append([chosen[key]])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def kind_of_file(filename: str, file_type: str = "") -> str:
    name = (file_type or (filename.rsplit(".", 1)[-1] if "." in filename else "")).lower().lstrip(".")
    if name in ("csv", "txt"):
        return "csv"
    if name in ("xlsx", "xlsm"):
        return "xlsx"
    return name


def read_table(content: bytes, filename: str = "", file_type: str = "",
               words: Mapping[str, str] | None = None) -> list[list[Any]]:
    """The rows of an uploaded CSV or XLSX file, heading first: the template's chronology sheet (by its
    English name or ``words``' sheet_entries) if there is one, else the first worksheet. ``words`` are
    the template words the file was made with; its headings are recognised besides the English ones."""
    if len(content) > MAX_FILE_BYTES:
        raise FileFormatError("file too large", key="chronology.error_file_large", limit=MAX_FILE_BYTES // 1024)
    kind = kind_of_file(filename, file_type)
    if kind == "csv":
        return _read_csv(content, template_headings(words) if words else None)
    if kind == "xlsx":
        names = [ENTRIES_SHEET, *([words["sheet_entries"]] if words and words.get("sheet_entries") else [])]
        return _read_xlsx(content, names)
    raise FileFormatError("not csv or xlsx", key="chronology.error_file_type", name=filename[:80] or kind)


def _read_csv(content: bytes, column_names: Mapping[str, str] | None = None) -> list[list[Any]]:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - cp1252 decodes almost anything
        raise FileFormatError("undecodable")
    first_line = text.split("\n", 1)[0]
    # the delimiter whose split of the heading row names the most chronology columns (Excel in some
    # locales saves CSV with semicolons; a heading itself may contain a comma)
    delimiter = max((",", ";", "\t"), key=lambda d: recognised_columns(next(csv.reader([first_line], delimiter=d), []),
                                                                     column_names))
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if len(rows) > MAX_ROWS + 1:
        raise FileFormatError("too many rows", key="chronology.error_file_rows", limit=MAX_ROWS)
    return [list(r) for r in rows]


def _read_xlsx(content: bytes, sheet_names: Sequence[str] = (ENTRIES_SHEET,)) -> list[list[Any]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # zipfile.BadZipFile, KeyError, InvalidFileException ...: not a workbook
        raise FileFormatError("not a workbook", key="chronology.error_file_format") from None
    try:
        found = [name for name in sheet_names if name in book.sheetnames]
        sheet = book[found[-1]] if found else book.worksheets[0]
        rows: list[list[Any]] = []
        for row in sheet.iter_rows(values_only=True):
            rows.append(list(row))
            if len(rows) > MAX_ROWS + 1:
                raise FileFormatError("too many rows", key="chronology.error_file_rows", limit=MAX_ROWS)
    finally:
        book.close()
    while rows and all(c is None or str(c).strip() == "" for c in rows[-1]):
        rows.pop()
    return rows


# --- the timeline picture ------------------------------------------------------------------------

@dataclass(frozen=True)
class TimelinePoint:
    lane: int
    agency: str
    x: date
    earliest: date
    latest: date
    kind: Kind
    marker: str
    letter: str
    approximate: bool
    outside_window: bool
    y: float = 0.0            # where it is drawn: its lane, moved a little when a neighbour is close


@dataclass
class Timeline:
    png: bytes
    lanes: list[str]
    points: list[TimelinePoint] = field(default_factory=list)
    x_range: tuple[date, date] | None = None
    width_px: int = 0
    height_px: int = 0


def timeline_png(merged: MergedChronology, *, title: str = "", dpi: int = 130,
                 words: Mapping[str, str] | None = None) -> Timeline:
    """One lane per agency that submitted; strengths, worries and neutral events by marker shape and
    letter (S, W, N); approximate dates hollow with a bar over the range they could mean; the
    profile's window shaded and its start marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    w = _words(words)
    lanes = merged.lanes
    points: list[TimelinePoint] = []
    for item in merged.entries:
        style = KIND_STYLE[item.entry.kind]
        when = item.entry.when
        points.append(TimelinePoint(lane=lanes.index(item.agency), agency=item.agency, x=when.sort_date,
                                    earliest=when.earliest, latest=when.latest, kind=item.entry.kind,
                                    marker=style["marker"], letter=style["letter"], approximate=item.approximate,
                                    outside_window=item.outside_window))
    low = min([merged.window_start, *(p.earliest for p in points)])
    high = max([merged.window_end, *(p.latest for p in points)])
    pad = max(timedelta(days=10), (high - low) / 40)
    x_range = (low - pad, high + pad)

    # 8 inches wide: legible when a Teams card shrinks it to the width of a chat message
    height = 1.5 + 0.7 * max(1, len(lanes))
    figure = Figure(figsize=(8, height), dpi=dpi)
    axes = figure.add_subplot(1, 1, 1)
    axes.set_xlim(x_range[0], x_range[1])           # type: ignore[arg-type]
    axes.set_ylim(-0.7, max(1, len(lanes)) - 0.3)
    axes.invert_yaxis()
    submitted = set(merged.submitted)
    axes.set_yticks(range(len(lanes)), labels=[a if a in submitted else w["not_submitted"].format(agency=a) for a in lanes])
    for lane in range(len(lanes)):
        axes.axhline(lane, color="#d9d9d9", linewidth=1, zorder=0)
    axes.axvspan(x_range[0], merged.window_start, color="#eeeeee", zorder=0)   # type: ignore[arg-type]
    axes.axvline(merged.window_start, color="#555555", linestyle="--", linewidth=1)   # type: ignore[arg-type]
    axes.text(merged.window_start, -0.62, w["window_starts"], fontsize=8, color="#333333", va="top")  # type: ignore[arg-type]
    if any(p.outside_window and p.x < merged.window_start for p in points):
        # at the foot of the shaded band: at the top it ran into "window starts" when the band is narrow
        axes.text(x_range[0], max(1, len(lanes)) - 0.34, w["before_window"], fontsize=8,  # type: ignore[arg-type]
                  color="#666666", va="bottom", style="italic")
    if merged.window_end and merged.window_end > merged.window_start:
        axes.axvline(merged.window_end, color="#555555", linestyle=":", linewidth=1)   # type: ignore[arg-type]
        axes.text(merged.window_end, -0.62, w["session"], fontsize=8, color="#333333", va="top")  # type: ignore[arg-type]

    close_days = max(7, (x_range[1] - x_range[0]).days // 30)   # about a marker and its letter wide
    points = [replace(p, y=p.lane + _jitter(p, points, close_days)) for p in points]
    for point in points:
        style = KIND_STYLE[point.kind]
        y = point.y
        if point.approximate:
            axes.plot([point.earliest, point.latest], [y, y], color=style["colour"], linewidth=2,   # type: ignore[arg-type]
                      alpha=0.45, solid_capstyle="butt", zorder=2)
        axes.scatter([point.x], [y], marker=point.marker, s=90, zorder=3,      # type: ignore[arg-type]
                     facecolors="white" if point.approximate else style["colour"],
                     edgecolors=style["colour"], linewidths=1.6)
        axes.annotate(point.letter, (mdates.date2num(point.x), y), xytext=(7, 0), textcoords="offset points",
                      ha="left", va="center", fontsize=8, fontweight="bold", color="#222222", zorder=4,
                      bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%b %Y"))
    axes.tick_params(axis="x", labelsize=9)
    axes.tick_params(axis="y", labelsize=10)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    legend = [
        Line2D([], [], linestyle="none", marker=KIND_STYLE[Kind.STRENGTH]["marker"], markersize=8,
               color=KIND_STYLE[Kind.STRENGTH]["colour"], label=w["legend_strength"]),
        Line2D([], [], linestyle="none", marker=KIND_STYLE[Kind.WORRY]["marker"], markersize=8,
               color=KIND_STYLE[Kind.WORRY]["colour"], label=w["legend_worry"]),
        Line2D([], [], linestyle="none", marker=KIND_STYLE[Kind.NEUTRAL]["marker"], markersize=8,
               color=KIND_STYLE[Kind.NEUTRAL]["colour"], label=w["legend_neutral"]),
        Line2D([], [], linestyle="-", marker="o", markersize=7, markerfacecolor="white", color="#888888",
               label=w["legend_approximate"]),
    ]
    axes.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.14 - 0.05 / max(1, len(lanes))),
                ncol=4, fontsize=8.5, frameon=False, handletextpad=0.3, columnspacing=1.2)
    if title:
        axes.set_title(title, fontsize=11, loc="left")
    if not points:
        axes.text(0.5, 0.5, w["picture_empty"], transform=axes.transAxes, ha="center", va="center")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    width, height_px = figure.canvas.get_width_height()
    return Timeline(png=out.getvalue(), lanes=list(lanes), points=points, x_range=x_range,
                    width_px=width, height_px=height_px)


def _jitter(point: TimelinePoint, points: list[TimelinePoint], close_days: int = 7) -> float:
    """Points of one lane closer than ``close_days`` are spread up and down, so none hides another."""
    close = [p for p in points if p.lane == point.lane and abs((p.x - point.x).days) < close_days]
    if len(close) < 2:
        return 0.0
    index = close.index(point)
    return (index - (len(close) - 1) / 2) * 0.3


# --- the merged chronology document --------------------------------------------------------------

def chronology_docx(merged: MergedChronology, *, partnership: str = "", picture: bytes | None = None,
                    now: datetime | None = None, words: Mapping[str, str] | None = None) -> bytes:
    w = _words(words)
    from docx import Document
    from docx.enum.section import WD_ORIENT
    from docx.shared import Cm, Pt

    document = Document()
    section = document.sections[0]
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = section.page_height, section.page_width
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Cm(1.6))
    document.styles["Normal"].font.size = Pt(10)

    document.add_heading(w["title"], level=0)
    intro = [w["case"].format(reference=merged.reference)]
    if partnership:
        intro.append(partnership)
    document.add_paragraph(" · ".join(intro))
    meta = document.add_paragraph()
    meta.add_run(w["window"]).bold = True
    meta.add_run(w["window_range"].format(start=format_uk_date(merged.window_start),
                                            end=format_uk_date(merged.window_end)))
    if now or merged.generated_at:
        meta.add_run(w["produced"]).bold = True
        meta.add_run(format_uk_datetime(now or merged.generated_at))  # type: ignore[arg-type]
    status = document.add_paragraph()
    status.add_run(w["included"]).bold = True
    status.add_run(", ".join(merged.submitted) or w["none_yet"])
    missing = document.add_paragraph()
    missing.add_run(w["missing"]).bold = True
    missing.add_run(", ".join(merged.missing) or w["none"])
    if merged.merged_by == "social_worker":
        note = document.add_paragraph()
        note.add_run(w["merged_by_social_worker"]).bold = True
        note.add_run(w["merged_yes"].format(name=merged.confirmed_by) if merged.confirmed_at else w["merged_not_yet"])
    document.add_paragraph(w["key"])

    if picture:
        document.add_picture(io.BytesIO(picture), width=Cm(24))

    document.add_heading(w["by_date"], level=1)
    table = document.add_table(rows=1, cols=6)
    table.style = "Table Grid"
    for cell, heading in zip(table.rows[0].cells, (w["column_date"], w["column_agency"], w["column_what"],
                                                   w["column_impact"], w["column_kind"], w["column_notes"]),
                             strict=False):
        cell.text = ""
        cell.paragraphs[0].add_run(heading).bold = True
    for item in merged.entries:
        entry = item.entry
        notes = []
        if item.approximate:
            notes.append(w["approximate"])
        if item.outside_window:
            notes.append(w["outside"])
        agency = item.agency if entry.source == item.agency else w["from_source"].format(agency=item.agency,
                                                                                           source=entry.source)
        row = table.add_row().cells
        values = (entry.when.marked(), agency, entry.what, entry.impact,
                  f"{KIND_STYLE[entry.kind]['letter']} {w['kind_' + entry.kind.value]}", "; ".join(notes))
        for cell, value in zip(row, values, strict=False):
            cell.text = value
    if not merged.entries:
        document.add_paragraph(w["no_entries"])

    def counts_table(heading: str, first_column: str, rows: list[tuple[str, Any]]) -> None:
        """Strengths, worries and neutral entries counted per agency or per month."""
        document.add_heading(heading, level=1)
        table = document.add_table(rows=1, cols=4)
        table.style = "Table Grid"
        titles = (first_column, w["column_strengths"], w["column_worries"], w["column_neutral"])
        for cell, title in zip(table.rows[0].cells, titles, strict=True):
            cell.paragraphs[0].add_run(title).bold = True
        for label, c in rows:
            for cell, value in zip(table.add_row().cells, (label, c.strengths, c.worries, c.neutral), strict=True):
                cell.text = str(value)

    counts_table(w["by_agency"], w["column_agency"], list(merged.by_agency_counts.items()))
    counts_table(w["by_month"], w["column_month"],
                 [(date.fromisoformat(month + "-01").strftime("%b %Y"), c) for month, c in merged.by_month_counts.items()])

    document.add_heading(w["each_agency"], level=1)
    for agency, items in merged.by_agency().items():
        document.add_heading(agency, level=2)
        for item in items:
            entry = item.entry
            paragraph = document.add_paragraph(style="List Bullet")
            paragraph.add_run(f"{entry.when.marked()}: ").bold = True
            paragraph.add_run(f"[{KIND_STYLE[entry.kind]['letter']}] {entry.what}")
            if entry.impact:
                paragraph.add_run(w["impact"].format(impact=entry.impact)).italic = True
            if item.outside_window:
                paragraph.add_run(w["outside_short"])
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
