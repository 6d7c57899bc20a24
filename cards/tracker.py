"""The partnership log card for administrators: counts, timeliness and impact, with charts and exports."""
from __future__ import annotations

from cards.base import Json, card, facts, heading, text, title
from supervision.catalogue import Catalogue
from supervision.profile import Profile
from supervision.tracker import TrackerStats


def _rate(t: Catalogue, pair: tuple[int, int]) -> str:
    on_time, known = pair
    if not known:
        return t("tracker.card.no_data")
    return t("tracker.card.rate", on_time=on_time, known=known, percent=round(100 * on_time / known))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}" if value < 0 or value > 0 else "0.00"


def tracker_card(t: Catalogue, profile: Profile, s: TrackerStats, *, charts: list[tuple[str, str]],
                 downloads: list[tuple[str, str]], scores_note: str = "") -> Json:
    """``charts``: (alt text, image url); ``downloads``: (label, url)."""
    body: list[Json] = [title(t("tracker.card.title", name=profile.name)),
                        text(t("tracker.card.anonymised"), subtle=True)]
    if not s.sessions:
        body.append(text(t("tracker.card.empty")))
        return card(body)
    body += [heading(t("tracker.card.counts")),
             facts([(t("tracker.card.sessions"), str(s.sessions)), (t("tracker.card.cases"), str(s.cases)),
                    (t("tracker.card.escalated"), str(s.escalated)),
                    (t("tracker.card.further"), str(s.further_sessions)),
                    (t("tracker.card.followed_up"), str(s.followed_up))]),
             heading(t("tracker.card.timeliness")),
             facts([(t(f"tracker.card.deadline_{name}"), _rate(t, pair)) for name, pair in s.timeliness.items()]),
             heading(t("tracker.card.impact")),
             facts([(t("tracker.card.pre"), "-" if s.mean_pre is None else f"{s.mean_pre:.2f}"),
                    (t("tracker.card.post"), "-" if s.mean_post is None else f"{s.mean_post:.2f}"),
                    (t("tracker.card.change"), _num(s.mean_impact))])]
    if scores_note:
        body.append(text(scores_note, subtle=True))
    if s.by_level:
        body += [heading(t("tracker.card.levels")), facts([(level, str(n)) for level, n in s.by_level.items()])]
    if s.by_theme:
        body += [heading(t("tracker.card.themes")),
                 facts([(theme, str(count)) for theme, count in list(s.by_theme.items())[:10]])]
    for alt, url in charts:
        body.append({"type": "Image", "url": url, "altText": alt, "size": "Stretch"})
    actions = [{"type": "Action.OpenUrl", "title": label, "url": url} for label, url in downloads]
    if not downloads:
        body.append(text(t("tracker.card.no_downloads"), subtle=True))
    return card(body, actions)
