"""Reading and exporting the audit log: administrators only, and every read, export and refusal is
itself audited.

The audit log (``supervision.repository.AuditLog``) is append-only: who, when, what, why and
whether it was allowed, for every read and change of case data. ``AuditReader`` is the use case
that lets an administrator (``Action.READ_AUDIT``) filter it and export it as CSV or JSON.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from supervision.clock import Clock
from supervision.errors import FieldError, Forbidden
from supervision.repository import AuditLog
from supervision.roles import Action, Actor, authorize

COLUMNS = ("at", "actor", "action", "case_id", "what", "why", "allowed", "id")
FORMATS = {"csv": "text/csv", "json": "application/json"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditFilter:
    case_id: str = ""
    actor: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, entry: dict[str, Any]) -> bool:
        if self.case_id and entry.get("case_id") != self.case_id:
            return False
        if self.actor and str(entry.get("actor", "")).lower() != self.actor.lower():
            return False
        at = str(entry.get("at", ""))
        if self.since is not None and at < self.since.isoformat():
            return False
        if self.until is not None and at >= self.until.isoformat():
            return False
        return True

    def describe(self) -> str:
        parts = [f"{name}={value}" for name, value in (
            ("case", self.case_id), ("actor", self.actor),
            ("since", self.since.isoformat() if self.since else ""),
            ("until", self.until.isoformat() if self.until else "")) if value]
        return ", ".join(parts) or "all"


@dataclass(frozen=True)
class AuditExport:
    filename: str
    content_type: str
    content: bytes
    count: int


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(entries: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        writer.writerow([_cell(entry.get(column, "")) for column in COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")        # BOM: Excel reads UTF-8 correctly


def to_json(entries: list[dict[str, Any]], *, exported_at: datetime, exported_by: str, filter_: str) -> bytes:
    document = {"exported_at": exported_at.isoformat(), "exported_by": exported_by, "filter": filter_,
                "count": len(entries), "entries": [{c: entry.get(c) for c in COLUMNS} for entry in entries]}
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")


class AuditReader:
    def __init__(self, audit: AuditLog, clock: Clock) -> None:
        self.audit, self.clock = audit, clock

    async def _allowed(self, actor: Actor, action: str, filter_: AuditFilter) -> None:
        try:
            authorize(actor, Action.READ_AUDIT)
        except Forbidden:
            await self.audit.record(actor=actor.audit_name, action=action, case_id=filter_.case_id,
                                    what=f"audit log ({filter_.describe()})", why="not an administrator",
                                    allowed=False)
            raise

    async def ensure_allowed(self, actor: Actor) -> None:
        """Refuse (and audit the refusal) before anything else is looked at, such as a case named in
        the filter: a refused reader learns nothing, not even whether a case exists."""
        await self._allowed(actor, "audit.read", AuditFilter())

    async def _entries(self, filter_: AuditFilter) -> list[dict[str, Any]]:
        entries = await self.audit.entries(filter_.case_id or None)
        return [e for e in entries if filter_.matches(e)]

    async def read(self, actor: Actor, filter_: AuditFilter = AuditFilter(), *, why: str = "") -> list[dict[str, Any]]:
        """The entries matching ``filter_``, oldest first."""
        await self._allowed(actor, "audit.read", filter_)
        entries = await self._entries(filter_)
        await self.audit.record(actor=actor.audit_name, action="audit.read", case_id=filter_.case_id,
                                what=f"{len(entries)} entries ({filter_.describe()})",
                                why=why or "administrator read the audit log")
        return entries

    async def export(self, actor: Actor, fmt: str, filter_: AuditFilter = AuditFilter(), *,
                     why: str = "") -> AuditExport:
        if fmt not in FORMATS:
            raise FieldError("format", "audit.error.format", allowed=", ".join(FORMATS))
        await self._allowed(actor, "audit.export", filter_)
        entries = await self._entries(filter_)
        now = self.clock.now()
        if fmt == "csv":
            content = to_csv(entries)
        else:
            content = to_json(entries, exported_at=now, exported_by=actor.audit_name, filter_=filter_.describe())
        await self.audit.record(actor=actor.audit_name, action="audit.export", case_id=filter_.case_id,
                                what=f"{fmt}, {len(entries)} entries ({filter_.describe()})",
                                why=why or "administrator exported the audit log")
        return AuditExport(filename=f"audit-{now:%Y%m%d-%H%M%S}.{fmt}", content_type=FORMATS[fmt],
                           content=content, count=len(entries))
