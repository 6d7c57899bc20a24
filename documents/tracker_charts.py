"""Charts of the partnership log as PNG (matplotlib, Agg backend, no display): sessions per month,
timeliness against each deadline, and evaluation impact (pre- and post-session means). Timeliness
bars carry their numbers and hatching, so nothing depends on colour alone."""
from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from supervision.tracker import TrackerEntry, TrackerStats

if TYPE_CHECKING:
    import matplotlib.pyplot as plt

PNG_TYPE = "image/png"
SIZE = (6.0, 3.2)
DPI = 80
# The words on the charts. The bot passes them from the message catalogue ([tracker.chart],
# dialogs/tracker.py chart_words); these defaults serve tests and benchmarks only.
WORDS = {"sessions_title": "Sessions recorded per month", "sessions_axis": "Sessions",
         "timeliness_title": "Deadlines met (%)", "timeliness_axis": "% on time", "no_data": "no data",
         "session": "Session held in time", "actions": "Actions sent in time", "minutes": "Minutes done in time",
         "impact_title": "Evaluation: before and after (0-5)", "impact_axis": "Mean score", "before": "Before",
         "after": "After", "no_scores": "No evaluation scores yet"}


def _words(words: Mapping[str, str] | None) -> dict[str, str]:
    return {**WORDS, **(words or {})}


def _pyplot() -> Any:
    """matplotlib (Agg backend, no display), imported when the first chart is drawn: it is ~40 MB
    and the bot draws charts rarely (the turns benchmark, issue #3, holds the bot under 200 MB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: plt.Figure) -> bytes:
    plt = _pyplot()
    out = io.BytesIO()
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=DPI)
    plt.close(fig)
    return out.getvalue()


def sessions_chart(stats: TrackerStats, words: Mapping[str, str] | None = None) -> bytes:
    w = _words(words)
    fig, ax = _pyplot().subplots(figsize=SIZE)
    months = list(stats.by_month) or ["-"]
    counts = [stats.by_month.get(m, 0) for m in months]
    bars = ax.bar(months, counts, color="#4472c4", edgecolor="black")
    ax.bar_label(bars)
    ax.set_title(w["sessions_title"])
    ax.set_ylabel(w["sessions_axis"])
    ax.set_ylim(0, max(counts + [1]) * 1.25)
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(fig)


def timeliness_chart(stats: TrackerStats, words: Mapping[str, str] | None = None) -> bytes:
    w = _words(words)
    fig, ax = _pyplot().subplots(figsize=SIZE)
    names = list(stats.timeliness)
    percents = [100 * on / known if known else 0 for on, known in stats.timeliness.values()]
    bars = ax.barh([w.get(n, n) for n in names], percents, color="#70ad47", edgecolor="black", hatch="//")
    ax.bar_label(bars, labels=[f"{on}/{known}" if known else w["no_data"] for on, known in stats.timeliness.values()],
                 padding=3)
    ax.set_xlim(0, 115)
    ax.set_xlabel(w["timeliness_axis"])
    ax.set_title(w["timeliness_title"])
    ax.invert_yaxis()
    return _png(fig)


def impact_chart(entries: list[TrackerEntry], words: Mapping[str, str] | None = None) -> bytes:
    w = _words(words)
    scored = [e for e in entries if e.pre_mean is not None or e.post_mean is not None]
    fig, ax = _pyplot().subplots(figsize=SIZE)
    if scored:
        x = range(len(scored))
        width = 0.4
        pre = [e.pre_mean or 0 for e in scored]
        post = [e.post_mean or 0 for e in scored]
        ax.bar([i - width / 2 for i in x], pre, width, label=w["before"], color="#bfbfbf", edgecolor="black")
        ax.bar([i + width / 2 for i in x], post, width, label=w["after"], color="#4472c4", edgecolor="black", hatch="..")
        ax.set_xticks(list(x), [f"{e.reference[-4:]}/{e.session_number}" for e in scored], rotation=30, fontsize=8)
        ax.legend(loc="upper left")
    else:
        ax.text(0.5, 2.5, w["no_scores"], ha="center", va="center")
        ax.set_xticks([])
    ax.set_ylim(0, 5.5)
    ax.set_ylabel(w["impact_axis"])
    ax.set_title(w["impact_title"])
    return _png(fig)
