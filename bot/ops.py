"""Operations commands for ``python -m bot``: backup, restore, migrate, purge and export-case.

* ``backup --out FILE``: a consistent snapshot of the TinyDB store (writes pause while it is taken;
  the bot may keep running).
* ``restore FILE``: put a backup back (stop the bot first: it needs the store's writer lock). The
  store it replaces is kept beside it.
* ``migrate``: copy the TinyDB store in DATA_DIR into Azure Blob Storage
  (AZURE_STORAGE_CONNECTION_STRING, BLOB_CONTAINER); idempotent and resumable, checked at the end.
* ``purge [--now ISO] [--dry-run]``: delete closed cases past their profile's retention (see
  ``supervision.retention``), on whichever backend STORAGE_BACKEND chooses.
* ``export-case REFERENCE --out DIR``: a subject access export of one case as JSON and DOCX.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.config import Config
from storage import tinydb_store
from supervision.catalogue import Catalogue
from supervision.clock import Clock, FixedClock, SystemClock, as_utc, format_uk_datetime
from supervision.errors import DomainError, StoreLocked
from supervision.ports import DocumentStore
from supervision.repository import AuditLog, CaseRepository
from supervision.retention import Retention

COMMANDS = ("backup", "restore", "migrate", "purge", "export-case")
MIGRATE_CONCURRENCY = 16


def add_ops_commands(sub: Any) -> None:
    backup = sub.add_parser("backup", help="snapshot the TinyDB store to a .tar.gz (the bot may keep running)")
    backup.add_argument("--out", required=True, help="the archive to write")
    restore = sub.add_parser("restore", help="restore the TinyDB store from a backup (stop the bot first)")
    restore.add_argument("file", help="a backup made by `python -m bot backup`")
    migrate = sub.add_parser("migrate", help="copy the TinyDB store in DATA_DIR into Azure Blob Storage")
    migrate.add_argument("--connection-string", default="", help="default: AZURE_STORAGE_CONNECTION_STRING")
    migrate.add_argument("--container", default="", help="default: BLOB_CONTAINER")
    purge = sub.add_parser("purge", help="delete closed cases past their retention period")
    purge.add_argument("--now", help="the time to purge as, ISO-8601 with a zone (default: now)")
    purge.add_argument("--dry-run", action="store_true", help="list what would be deleted; change nothing")
    export = sub.add_parser("export-case", help="subject access export of one case (JSON and DOCX)")
    export.add_argument("reference", help="the case reference (or its internal id)")
    export.add_argument("--out", required=True, help="the folder to write into")
    export.add_argument("--why", default="subject access request", help="recorded in the audit log")


def operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def run_ops_command(config: Config, args: argparse.Namespace) -> int:
    try:
        if args.command == "backup":
            return backup_command(config, Path(args.out))
        if args.command == "restore":
            return restore_command(config, Path(args.file))
        if args.command == "migrate":
            return asyncio.run(migrate(config, args.connection_string or config.blob_connection_string,
                                       args.container or config.blob_container))
        if args.command == "purge":
            now = _parse_now(args.now)
            return asyncio.run(purge(config, now, dry_run=args.dry_run))
        if args.command == "export-case":
            return asyncio.run(export_case(config, args.reference, Path(args.out), why=args.why))
    except StoreLocked as error:
        print(f"{args.command}: {error}. On TinyDB one process at a time uses the store: stop the bot "
              "first (backup is the exception: it runs beside the bot).", file=sys.stderr)
        return 3
    except (DomainError, ValueError, FileNotFoundError) as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 2
    raise ValueError(f"not an operations command: {args.command}")


def _parse_now(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return as_utc(datetime.fromisoformat(raw))
    except ValueError:
        raise ValueError(f"--now {raw!r}: give an ISO-8601 time with a zone, e.g. 2033-01-05T09:00:00+00:00") from None


def _require_tinydb(config: Config, command: str) -> None:
    if config.storage_backend != "tinydb":
        raise ValueError(f"{command} is for the TinyDB store; STORAGE_BACKEND is {config.storage_backend} "
                         "(Azure Blob Storage has its own backup: soft delete, versioning, point-in-time restore)")


# --- backup and restore ---------------------------------------------------------------------------
def backup_command(config: Config, out: Path) -> int:
    _require_tinydb(config, "backup")
    out.parent.mkdir(parents=True, exist_ok=True)
    count = tinydb_store.backup(config.data_dir, out)
    print(f"backup: {count} files from {config.data_dir} written to {out} ({out.stat().st_size:,} bytes)")
    return 0


def restore_command(config: Config, archive: Path) -> int:
    _require_tinydb(config, "restore")
    if not archive.exists():
        raise FileNotFoundError(f"no backup at {archive}")
    aside = tinydb_store.restore(config.data_dir, archive)
    print(f"restore: {config.data_dir} restored from {archive}"
          + (f"; the store it replaced is in {aside}" if aside else ""))
    return 0


# --- migrate --------------------------------------------------------------------------------------
@dataclass
class MigrationReport:
    documents: dict[str, int]
    records: dict[str, int]


async def copy_store(source: tinydb_store.TinyDBStore, target: DocumentStore) -> MigrationReport:
    """Copy every document and every log record. Documents are written as they are (idempotent); a log
    already partly copied is continued where it stopped, so running it again duplicates nothing."""
    report = MigrationReport({}, {})
    semaphore = asyncio.Semaphore(MIGRATE_CONCURRENCY)

    async def copy(collection: str, key: str) -> None:
        async with semaphore:
            stored = await source.get(collection, key)
            if stored is not None:
                await target.put(collection, key, stored.data)

    for collection in await source.collections():
        keys = await source.keys(collection)
        await asyncio.gather(*(copy(collection, key) for key in keys))
        report.documents[collection] = len(keys)
    for log in await source.log_names():
        already = 0
        async for _ in target.read_log(log):
            already += 1
        position = 0
        async for record in source.read_log(log):
            position += 1
            if position > already:
                await target.append(log, record)
        report.records[log] = position
    return report


async def verify_copy(source: tinydb_store.TinyDBStore, target: DocumentStore, report: MigrationReport) -> list[str]:
    problems = []
    for collection, count in report.documents.items():
        found = len(await target.keys(collection))
        if found < count:
            problems.append(f"{collection}: {found} of {count} documents in the target")
    for log, count in report.records.items():
        found = 0
        async for _ in target.read_log(log):
            found += 1
        if found != count:
            problems.append(f"log {log}: {found} records in the target, {count} in the source")
    return problems


async def migrate(config: Config, connection_string: str, container: str) -> int:
    from storage.blob_store import BlobStore

    if not connection_string:
        raise ValueError("migrate needs AZURE_STORAGE_CONNECTION_STRING (or --connection-string)")
    if not (config.data_dir / "docs").exists():
        raise FileNotFoundError(f"no TinyDB store in {config.data_dir} (DATA_DIR)")
    source = tinydb_store.TinyDBStore(config.data_dir)      # the writer lock: the bot must be stopped
    target = BlobStore(connection_string, container)
    try:
        report = await copy_store(source, target)
        problems = await verify_copy(source, target, report)
    finally:
        await target.close()
        await source.close()
    print(f"migrate: {sum(report.documents.values()):,} documents in {len(report.documents)} collections and "
          f"{sum(report.records.values()):,} log records copied from {config.data_dir} to container {container}")
    for problem in problems:
        print(f"migrate: MISMATCH {problem}", file=sys.stderr)
    if problems:
        return 1
    print("migrate: verified. Set STORAGE_BACKEND=blob to run on Azure Blob Storage.")
    return 0


# --- retention and subject access -----------------------------------------------------------------
def _store(config: Config) -> DocumentStore:
    from bot.app import make_store

    return make_store(config)


def _retention(config: Config, store: DocumentStore, clock: Clock) -> Retention:
    return Retention(store=store, cases=CaseRepository(store), audit=AuditLog(store, clock), clock=clock,
                     profiles=config.profiles)


async def _close(store: DocumentStore) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        await close()


async def purge(config: Config, now: datetime | None, *, dry_run: bool) -> int:
    clock: Clock = FixedClock(now) if now else SystemClock()
    store = _store(config)
    try:
        report = await _retention(config, store, clock).purge(clock.now(), dry_run=dry_run, actor=operator())
    finally:
        await _close(store)
    verb = "would delete" if dry_run else "deleted"
    done = report.with_status("would_delete" if dry_run else "deleted")
    for outcome in done:
        print(f"purge: {verb} {outcome.reference} (closed {outcome.closed_on}, due {outcome.due_on}): "
              f"{outcome.removed} documents, {outcome.anonymised} partnership log entries anonymised")
    for outcome in report.with_status("legal_hold"):
        print(f"purge: kept {outcome.reference} (due {outcome.due_on}): legal hold")
    print(f"purge: {len(done)} cases {verb}, {len(report.with_status('legal_hold'))} on legal hold"
          + (" (dry run: nothing changed)" if dry_run else ""))
    return 0


async def export_case(config: Config, reference: str, out: Path, *, why: str) -> int:
    from documents.sar_docx import render_sar, sar_labels

    clock = SystemClock()
    store = _store(config)
    try:
        export = await _retention(config, store, clock).export(reference, actor=operator(), why=why)
    finally:
        await _close(store)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    name = export["reference"]
    json_path, docx_path = out / f"{name}.json", out / f"{name}.docx"
    json_path.write_text(json.dumps(export, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    when = format_uk_datetime(datetime.fromisoformat(export["exported_at"]))
    docx_path.write_bytes(render_sar(export, sar_labels(Catalogue(config.language), export, when)))
    for path in (json_path, docx_path):
        os.chmod(path, 0o600)
    held = sum(len(v) for v in export["holdings"].values())
    print(f"export-case: {name}: the case, {held} further records and {len(export['audit'])} audit entries "
          f"written to {json_path} and {docx_path}")
    return 0
