"""The timeline picture (checked through the drawing's data, and decoded as a real PNG) and the
merged chronology document (read back with python-docx)."""
from __future__ import annotations

import io
from datetime import date

import docx
import matplotlib.image as mpimg

from documents.chronology import KIND_STYLE, chronology_docx, timeline_png
from supervision.chronology import Kind, merge
from tests.test_chronology import scheduled_case, submitted

WINDOW = (date(2024, 12, 1), date(2026, 1, 20))


def sample():
    case = scheduled_case()
    return merge(case, [
        submitted("School", [("14/03/2025", "Attendance fell to 70%", "worry"),
                             ("about spring 2025", "Warm relationship with TA", "strength"),
                             ("10/11/2024", "Arrived hungry before the window", "worry")]),
        submitted("Police", [("02/08/2025", "Call-out to the home", "worry"),
                             ("November 2025", "Bail conditions set", "neutral")]),
    ], window_start=WINDOW[0], window_end=WINDOW[1])


def test_the_picture_has_one_lane_per_agency_and_every_point():
    merged = sample()
    drawing = timeline_png(merged, title=merged.reference)
    assert drawing.lanes == ["Health visiting", "Police", "School"]          # Health visiting has not submitted
    assert len(drawing.points) == 5
    by_what = {item.entry.what: point for item, point in zip(merged.entries, drawing.points, strict=True)}
    hungry = by_what["Arrived hungry before the window"]
    assert drawing.lanes[hungry.lane] == "School" and hungry.outside_window
    tea = by_what["Warm relationship with TA"]
    assert tea.approximate and (tea.earliest, tea.latest) == (date(2025, 3, 1), date(2025, 5, 31))
    assert {p.lane for p in drawing.points} == {1, 2}                          # nothing in the empty lane
    # strengths, worries and neutral differ by marker shape and letter, not by colour alone
    shapes = {p.kind: (p.marker, p.letter) for p in drawing.points}
    assert shapes == {Kind.WORRY: ("X", "W"), Kind.STRENGTH: ("^", "S"), Kind.NEUTRAL: ("o", "N")}
    assert len({KIND_STYLE[k]["marker"] for k in Kind}) == 3
    assert drawing.x_range is not None and drawing.x_range[0] < date(2024, 11, 10) < drawing.x_range[1]


def test_no_point_hides_another():
    case = scheduled_case()
    merged = merge(case, [submitted("School", [("10/03/2025", "a", "worry"), ("12/03/2025", "b", "strength"),
                                               ("14/03/2025", "c", "neutral"), ("20/09/2025", "d", "worry")])],
                   window_start=WINDOW[0], window_end=WINDOW[1])
    points = timeline_png(merged).points
    close = [p for p in points if p.x.month == 3]
    assert len({p.y for p in close}) == 3                      # three days close together: three heights
    assert all(abs(p.y - p.lane) <= 0.45 for p in points)      # and each stays in its own lane
    assert next(p for p in points if p.x.month == 9).y == points[0].lane


def test_the_picture_is_a_real_png_of_the_size_it_says():
    drawing = timeline_png(sample())
    assert drawing.png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = mpimg.imread(io.BytesIO(drawing.png), format="png")
    assert pixels.shape[:2] == (drawing.height_px, drawing.width_px)
    assert pixels.std() > 0.05                               # not a blank image
    more_lanes = timeline_png(merge(scheduled_case(), [], window_start=WINDOW[0], window_end=WINDOW[1]))
    assert more_lanes.lanes == ["Health visiting", "Police", "School"] and more_lanes.points == []


def test_the_document_holds_the_merged_chronology():
    merged = sample()
    content = chronology_docx(merged, partnership="Bolton Safeguarding Children Partnership",
                              picture=timeline_png(merged).png)
    document = docx.Document(io.BytesIO(content))
    paragraphs = [p.text for p in document.paragraphs]
    assert paragraphs[0] == "Multi-agency chronology"
    assert any(merged.reference in p and "Bolton" in p for p in paragraphs)
    assert "Not yet submitted: Health visiting" in paragraphs
    assert "Agencies included: Police, School" in paragraphs
    assert len(document.inline_shapes) == 1                                   # the timeline picture

    main = document.tables[0]
    header = [c.text for c in main.rows[0].cells]
    assert header == ["Date", "Agency", "What happened", "Impact on the child", "S / W / N", "Notes"]
    rows = [[c.text for c in r.cells] for r in main.rows[1:]]
    assert [r[2] for r in rows] == ["Arrived hungry before the window", "Attendance fell to 70%",
                                    "Warm relationship with TA", "Call-out to the home", "Bail conditions set"]
    assert rows[0][5] == "† outside the window"
    assert rows[2][0] == "≈ about spring 2025" and "approximate" in rows[2][5]
    assert rows[4][0] == "Nov 2025" and rows[4][4] == "N Neutral"

    counts = {r.cells[0].text: [c.text for c in r.cells[1:]] for r in document.tables[1].rows[1:]}
    assert counts == {"Police": ["0", "1", "1"], "School": ["1", "2", "0"]}
    months = [r.cells[0].text for r in document.tables[2].rows[1:]]
    assert months == ["Nov 2024", "Mar 2025", "Apr 2025", "Aug 2025", "Nov 2025"]
    assert "Health visiting" in paragraphs and "School" in paragraphs        # the by-agency headings


def test_the_document_says_when_the_social_worker_has_not_merged_yet():
    merged = sample()
    merged.merged_by = "social_worker"
    document = docx.Document(io.BytesIO(chronology_docx(merged)))
    assert "Merged by the social worker: not yet" in [p.text for p in document.paragraphs]


def capture_figures(monkeypatch) -> list:
    """The matplotlib figures the renderers make from now on, to look at what was drawn."""
    import matplotlib.figure

    made = []

    class Capturing(matplotlib.figure.Figure):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(matplotlib.figure, "Figure", Capturing)
    return made


def test_the_window_labels_do_not_overlap(monkeypatch):
    """Looking at the picture: "before the window" and "window starts" were drawn over each other."""
    made = capture_figures(monkeypatch)
    timeline_png(sample())
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = made[0]
    renderer = FigureCanvasAgg(figure).get_renderer()
    labels = {t.get_text().strip(): t.get_window_extent(renderer) for t in figure.axes[0].texts}
    boxes = [labels[name] for name in ("before the window", "window starts", "session")]
    for i, box in enumerate(boxes):
        for other in boxes[i + 1:]:
            assert not box.overlaps(other), (box, other)


def test_every_word_of_the_picture_and_the_document_is_the_one_given(monkeypatch):
    """The bot gives the catalogue's words ([chronology.document]); none of the defaults is left."""
    import docx

    from documents.chronology import WORDS

    marked = {key: f"<{key}>" for key in WORDS}
    made = capture_figures(monkeypatch)
    merged = sample()
    drawing = timeline_png(merged, words=marked)
    axes = made[0].axes[0]
    drawn = [t.get_text() for t in axes.texts] + [t.get_text() for t in axes.get_legend().get_texts()] + \
        [t.get_text() for t in axes.get_yticklabels()]
    assert {f"<{k}>" for k in ("window_starts", "before_window", "session", "legend_strength", "legend_worry",
                                "legend_neutral", "legend_approximate", "not_submitted")} <= set(drawn)
    letters = {style["letter"] for style in KIND_STYLE.values()}              # the markers' letters: symbols
    assert not [d for d in drawn if d and not d.startswith("<") and d not in merged.lanes and d not in letters]
    document = docx.Document(io.BytesIO(chronology_docx(merged, picture=drawing.png, words=marked)))
    text = "\n".join([p.text for p in document.paragraphs] +
                     [c.text for t in document.tables for r in t.rows for c in r.cells])
    for default in ("Multi-agency chronology", "Agencies included", "Not yet submitted", "What happened",
                    "Strengths and worries by", "Each agency's chronology", "outside the window", "Key: S strength"):
        assert default not in text, default
    for key in ("title", "included", "missing", "by_date", "column_what", "by_agency", "by_month", "each_agency"):
        assert f"<{key}" in text, key
