"""``audit log`` (personal chat, administrators only): the latest entries of the audit log, a filter,
and CSV/JSON exports through signed download links. Anyone else is refused, and the refusal is itself
audited (by ``supervision.audit.AuditReader``).

Also registers retention as a scheduled job (``retention.purge`` due work for closed cases) and keeps
the reference -> case index that subject access exports use (``register_retention``).
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from bot.routing import Router
from bot.services import Services
from bot.turn import Turn
from cards.audit import SHOWN, audit_card
from supervision.audit import AuditFilter, AuditReader
from supervision.clock import uk_datetime
from supervision.errors import FieldError, Forbidden, ValidationFailed
from supervision.retention import PURGE_KIND, Retention

LINK_TTL = timedelta(hours=1)
FIELDS = ("audit_case", "audit_actor", "audit_since", "audit_until")


def _day(field: str, raw: str) -> date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise FieldError(field, "audit.error.date") from None


async def parse_filter(values: dict[str, str], retention: Retention) -> AuditFilter:
    """The filter from the card's inputs, or ValidationFailed naming each bad field."""
    errors: list[FieldError] = []
    since = until = None
    try:
        since = _day("audit_since", values.get("audit_since", ""))
    except FieldError as error:
        errors.append(error)
    try:
        until = _day("audit_until", values.get("audit_until", ""))
    except FieldError as error:
        errors.append(error)
    if since and until and since > until:
        errors.append(FieldError("audit_until", "audit.error.range"))
    case_id = ""
    wanted = values.get("audit_case", "").strip()
    if wanted:
        case = await retention.find(wanted)
        if case is None:
            errors.append(FieldError("audit_case", "audit.error.unknown_case"))
        else:
            case_id = case.id
    if errors:
        raise ValidationFailed(errors)
    return AuditFilter(case_id=case_id, actor=values.get("audit_actor", "").strip(),
                       since=uk_datetime(since, 0) if since else None,
                       until=uk_datetime(until + timedelta(days=1), 0) if until else None)


def register(router: Router, services: Services) -> list[Any]:
    reader = AuditReader(services.audit, services.clock)
    services.features["audit"] = reader
    retention = services.features.get("retention") or _retention(services)
    downloads = getattr(services, "downloads", None)

    if downloads is not None:
        from bot.downloads import DownloadRequest, FileBody

        async def provide(request: DownloadRequest) -> FileBody:
            raw = json.loads(request.arg or "{}")
            filter_ = AuditFilter(case_id=raw.get("case_id", ""), actor=raw.get("actor", ""),
                                  since=datetime.fromisoformat(raw["since"]) if raw.get("since") else None,
                                  until=datetime.fromisoformat(raw["until"]) if raw.get("until") else None)
            export = await reader.export(request.actor, request.kind.split(".")[-1], filter_,
                                         why="administrator downloaded the audit log")
            return FileBody(export.filename, export.content_type, export.content)

        for kind in ("audit.csv", "audit.json"):
            downloads.register(kind, provide)

    async def show(turn: Turn) -> None:
        values = {name: str(turn.action.inputs.get(name, "")) for name in FIELDS} if turn.action else {}
        try:
            await reader.ensure_allowed(turn.actor)          # before the filter looks up any case
        except Forbidden:
            await turn.send_text(turn.t("audit.refused"))
            return
        try:
            filter_ = await parse_filter(values, retention)
        except ValidationFailed as failed:
            messages = [turn.t("audit.field_error", label=turn.t(f"audit.filter_{e.field.split('_', 1)[1]}"),
                               message=turn.t(e.key, **e.params)) for e in failed.errors]
            await turn.send_card(audit_card(turn.t, [], filter_text="-", values=values, errors=messages, listing=False),
                                 turn.t("audit.title"))
            return
        try:
            entries = await reader.read(turn.actor, filter_, why="audit log command")
        except Forbidden:
            await turn.send_text(turn.t("audit.refused"))
            return
        references: dict[str, str] = {}
        for case_id in {str(e.get("case_id")) for e in entries[-SHOWN:] if e.get("case_id")}:
            case = await services.cases.get(case_id)
            if case is not None:
                references[case_id] = case.reference
        links: list[tuple[str, str]] = []
        if downloads is not None:
            arg = json.dumps({"case_id": filter_.case_id, "actor": filter_.actor,
                              "since": filter_.since.isoformat() if filter_.since else "",
                              "until": filter_.until.isoformat() if filter_.until else ""}, separators=(",", ":"))
            for kind, label in (("audit.csv", "audit.export_csv"), ("audit.json", "audit.export_json")):
                links.append((turn.t(label), await downloads.link(user_id=turn.actor.user_id, case_id=filter_.case_id,
                                                                  kind=kind, arg=arg, ttl=LINK_TTL)))
        await turn.send_card(audit_card(turn.t, entries, filter_text=filter_.describe(), values=values,
                                        links=links, references=references), turn.t("audit.title"))

    router.command("audit log", show)
    router.verb("audit.filter", show)
    return []


def _retention(services: Services) -> Retention:
    retention = Retention(store=services.store, cases=services.cases, audit=services.audit, clock=services.clock,
                          profiles=services.profiles)
    services.features["retention"] = retention
    return retention


def register_retention(router: Router, services: Services) -> list[Any]:
    """Retention as a scheduled job, and the reference index for subject access exports."""
    retention = services.features.get("retention") or _retention(services)
    listeners = getattr(services.cases, "listeners", None)
    if isinstance(listeners, list):
        listeners.append(retention.remember_reference)
    if services.due_work is not None:
        services.due_work.add_source(retention.source, include_closed=True)
        services.due_work.on(PURGE_KIND, retention.handle)
    return []
