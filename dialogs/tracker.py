"""``tracker``: the anonymised partnership log for the partnership's administrators (and business
managers where the profile says so): counts, timeliness and impact, charts (PNG) and CSV/XLSX exports
through signed download links. Anyone else is refused and the attempt audited.

Evaluation scores come from ``supervision.evaluation.session_impact`` (another feature) through a
small port; where that is missing the log records sessions without scores and says so."""
from __future__ import annotations

import asyncio
import base64
import importlib
import logging
from datetime import timedelta
from typing import Any

from bot.routing import Router
from bot.services import Services
from bot.turn import Turn
from cards.tracker import tracker_card
from documents.tracker_charts import PNG_TYPE, WORDS, impact_chart, sessions_chart, timeliness_chart
from documents.tracker_export import CSV_TYPE, XLSX_TYPE, ExportWords, to_csv, to_xlsx
from supervision.catalogue import Catalogue
from supervision.errors import Forbidden
from supervision.models import Case
from supervision.tracker import COLUMNS, PartnershipLog, Scores, ScoresFor, TrackerEntry, stats

log = logging.getLogger(__name__)
LINK_TTL = timedelta(hours=1)
INLINE_LIMIT = 20_000          # bytes of PNG above which a chart is linked rather than embedded


def evaluation_scores(services: Services) -> ScoresFor | None:
    """The port onto the evaluation feature, or None when it is not installed."""
    try:
        evaluation = importlib.import_module("supervision.evaluation")
    except ImportError:
        return None
    impact_fn = getattr(evaluation, "session_impact", None)
    if impact_fn is None:
        return None

    async def scores(case: Case, session: int) -> Scores | None:
        try:
            impact = await impact_fn(services.store, case.id, session)
        except Exception as error:   # scores are optional in the log; the record still goes in
            log.warning("evaluation scores unavailable: %s", type(error).__name__)
            return None
        return Scores(pre_mean=impact.mean_pre, post_mean=impact.mean_post, impact=impact.mean_change,
                      responses=max(impact.pre_count, impact.post_count))

    return scores


def chart_words(t: Catalogue) -> dict[str, str]:
    """The words on the charts, from the catalogue ([tracker.chart])."""
    return {key: t(f"tracker.chart.{key}") for key in WORDS}


def export_words(t: Catalogue) -> ExportWords:
    """The export's headings, yes/no and sheet title, from the catalogue ([tracker.column], [tracker.export])."""
    return ExportWords(headings=tuple(t(f"tracker.column.{name}") for name, _ in COLUMNS),
                       yes_no=(t("tracker.export.yes"), t("tracker.export.no")), sheet_title=t("tracker.export.sheet_title"))


def register(router: Router, services: Services) -> list[Any]:
    scores_for = evaluation_scores(services)
    tracker = PartnershipLog(store=services.store, audit=services.audit, clock=services.clock,
                             directory=services.directory, deadlines=services.deadlines, scores_for=scores_for,
                             cases=services.cases)
    services.features["tracker"] = tracker
    downloads = getattr(services, "downloads", None)

    async def entries_for(actor: Any, why: str) -> list[TrackerEntry]:
        return await tracker.read(actor, services.profile(), why)

    if downloads is not None:
        from bot.downloads import DownloadRequest, FileBody

        async def provide(request: DownloadRequest) -> FileBody:
            entries = await entries_for(request.actor, f"download {request.kind}")
            name = f"partnership-log-{services.profile().id}"
            t = Catalogue.for_language(services.config.language)
            if request.kind == "tracker.csv":
                return FileBody(f"{name}.csv", CSV_TYPE, to_csv(entries, export_words(t)))
            if request.kind == "tracker.xlsx":
                return FileBody(f"{name}.xlsx", XLSX_TYPE, await asyncio.to_thread(to_xlsx, entries, export_words(t)))
            chart = request.arg
            s = stats(entries)
            words = chart_words(t)
            content = {"sessions": lambda: sessions_chart(s, words), "timeliness": lambda: timeliness_chart(s, words),
                       "impact": lambda: impact_chart(entries, words)}[chart]()
            return FileBody(f"{name}-{chart}.png", PNG_TYPE, content, inline=True)

        for kind in ("tracker.csv", "tracker.xlsx", "tracker.chart"):
            downloads.register(kind, provide)

    async def show(turn: Turn) -> None:
        await turn.typing()         # the whole log is read, counted and (without downloads) drawn
        try:
            entries = await entries_for(turn.actor, "tracker command")
        except Forbidden:
            await turn.send_text(turn.t("tracker.refused"))
            return
        s = stats(entries)
        charts: list[tuple[str, str]] = []
        links: list[tuple[str, str]] = []
        if entries:
            pictures = {"sessions": b"", "timeliness": b"", "impact": b""}
            if downloads is None:
                words = chart_words(turn.t)
                pictures = {"sessions": sessions_chart(s, words), "timeliness": timeliness_chart(s, words),
                            "impact": impact_chart(entries, words)}
            for name, png in pictures.items():
                alt = turn.t(f"tracker.card.chart_{name}")
                if downloads is not None:      # served by the bot: keeps the message small
                    charts.append((alt, await downloads.link(user_id=turn.actor.user_id, case_id="",
                                                             kind="tracker.chart", arg=name, ttl=LINK_TTL)))
                elif len(png) <= INLINE_LIMIT:
                    charts.append((alt, "data:image/png;base64," + base64.b64encode(png).decode("ascii")))
            if downloads is not None:
                for kind, label in (("tracker.csv", "tracker.card.csv"), ("tracker.xlsx", "tracker.card.xlsx")):
                    links.append((turn.t(label), await downloads.link(user_id=turn.actor.user_id, case_id="",
                                                                      kind=kind, ttl=LINK_TTL)))
        note = "" if scores_for is not None else turn.t("tracker.card.no_scores")
        await turn.send_card(tracker_card(turn.t, services.profile(), s, charts=charts, downloads=links,
                                          scores_note=note), turn.t("tracker.card.title", name=services.profile().name))

    router.command("tracker", show)
    router.verb("tracker.show", show)
    return []
