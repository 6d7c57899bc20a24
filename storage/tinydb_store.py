"""The embedded default: TinyDB, partitioned, crash-safe and single-writer.

Layout under the data folder::

    .writer.lock          fcntl lock held by the one process that writes (StoreLocked otherwise)
    .backup.lock          writers hold it shared per operation; a backup holds it exclusively
    tmp/                  temporary files, renamed into place (cleared at start)
    docs/<collection>/<key>.json   one small TinyDB file per document: {"_default": {"1": record}}
    logs/<log>/<segment>.json      append-only logs in TinyDB segments of SEGMENT records

Every write goes through ``AtomicJSONStorage`` (a TinyDB ``Storage``): the whole new file is written
to ``tmp/``, fsynced, renamed over the old one with ``os.replace`` and the directory fsynced, so a
kill -9 at any moment leaves either the old or the new file, and an acknowledged write is on disk.
An operation reads and writes one small file (a document, or one log segment), never the whole
store; ``keys`` lists one collection's folder (the folder is the collection's index). All file I/O
runs on a small thread pool, off the event loop; per-key locks keep read-check-write atomic.
"""
from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document

from storage.leader import LocalLeaderElection
from supervision.errors import StoreLocked, VersionConflict
from supervision.ports import Stored

T = TypeVar("T")
SEGMENT = 200              # records per log segment: an append rewrites at most this many
MAX_NAME = 200             # longer encoded keys are stored under a hash of the key
LOCK_STRIPES = 256
WRITER_LOCK = ".writer.lock"
BACKUP_LOCK = ".backup.lock"
DOC_ID = 1


def encode_name(key: str) -> str:
    """A file name for a key: percent-encoded (reversible), or ``~<sha256>`` when too long."""
    encoded = quote(key, safe="@").replace("~", "%7E")
    if len(encoded) > MAX_NAME:
        return "~" + hashlib.sha256(key.encode()).hexdigest()
    return encoded


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, payload: bytes, tmp_dir: Path, durable: bool = True) -> None:
    """Write ``payload`` to ``path`` so that a crash leaves the old file or the new one, never a mix."""
    tmp = tmp_dir / f"{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


class AtomicJSONStorage(Storage):
    """TinyDB storage for one small file, written atomically (temp file + fsync + rename + dir fsync)."""

    def __init__(self, path: Path, tmp_dir: Path, durable: bool = True) -> None:
        self.path, self.tmp_dir, self.durable = path, tmp_dir, durable

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        return json.loads(raw) if raw else None  # type: ignore[no-any-return]

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        atomic_write(self.path, payload, self.tmp_dir, self.durable)

    def close(self) -> None:
        return None


class _LogState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.segment = -1          # not yet loaded
        self.count = 0


class TinyDBStore:
    def __init__(self, folder: Path | str, *, workers: int = 4) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = acquire_writer_lock(self.folder)
        self.tmp = self.folder / "tmp"
        self.docs = self.folder / "docs"
        self.logs = self.folder / "logs"
        for path in (self.tmp, self.docs, self.logs):
            path.mkdir(exist_ok=True)
        for leftover in self.tmp.iterdir():      # half-written files of a crashed writer
            leftover.unlink(missing_ok=True)
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._logs: dict[str, _LogState] = {}
        self._logs_guard = threading.Lock()
        self._made: set[Path] = set()
        self._gate = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinydb-store")
        self._closed = False
        self._leader = LocalLeaderElection()

    # --- plumbing ---------------------------------------------------------------------------------
    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise RuntimeError(f"store {self.folder} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _stripe(self, collection: str, key: str) -> threading.Lock:
        return self._stripes[hash((collection, key)) % LOCK_STRIPES]

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the backup gate shared while writing, so a backup sees no half-done operation."""
        fd = getattr(self._gate, "fd", None)
        if fd is None:
            fd = os.open(self.folder / BACKUP_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            self._gate.fd = fd
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _dir(self, base: Path, name: str) -> Path:
        path = base / encode_name(name)
        if path not in self._made:
            if not path.exists():
                path.mkdir(parents=True, exist_ok=True)
                fsync_dir(base)
            self._made.add(path)
        return path

    def _doc_path(self, collection: str, key: str, create: bool = False) -> Path:
        folder = self._dir(self.docs, collection) if create else self.docs / encode_name(collection)
        return folder / f"{encode_name(key)}.json"

    def _open(self, path: Path, durable: bool = True) -> TinyDB:
        return TinyDB(path, tmp_dir=self.tmp, durable=durable, storage=AtomicJSONStorage)

    # --- documents --------------------------------------------------------------------------------
    def _read_doc(self, collection: str, key: str) -> Stored | None:
        path = self._doc_path(collection, key)
        if not path.exists():
            return None
        db = self._open(path)
        record = db.get(doc_id=DOC_ID)
        db.close()
        if record is None or record.get("key") != key:   # type: ignore[union-attr]
            return None
        return Stored(record["data"], record["etag"])   # type: ignore[index]

    def _get(self, collection: str, key: str) -> Stored | None:
        return self._read_doc(collection, key)

    async def get(self, collection: str, key: str) -> Stored | None:
        return await self._run(self._get, collection, key)  # type: ignore[no-any-return]

    def _put(self, collection: str, key: str, data: dict[str, Any], etag: str | None, create_only: bool,
             durable: bool = True) -> str:
        payload = json.loads(json.dumps(data))     # JSON-only, and a copy the caller cannot change
        with self._stripe(collection, key), self._writing():
            current = self._read_doc(collection, key) if (etag is not None or create_only) else None
            if create_only and current is not None:
                raise VersionConflict(f"{collection}/{key} exists")
            if etag is not None and (current is None or current.etag != etag):
                raise VersionConflict(f"{collection}/{key} changed")
            new_etag = f'"{secrets.token_hex(8)}"'
            record = {"key": key, "etag": new_etag, "data": payload}
            db = self._open(self._doc_path(collection, key, create=True), durable)
            # One write per put: update the record in place, or insert it into a new file. (TinyDB's
            # upsert would first write an empty table for a new document: a crash there would leave
            # a file with no document in it.)
            if db.contains(doc_id=DOC_ID):
                db.update(record, doc_ids=[DOC_ID])
            else:
                db.insert(Document(record, doc_id=DOC_ID))
            db.close()
            return new_etag

    async def put(self, collection: str, key: str, data: dict[str, Any], *,
                  etag: str | None = None, create_only: bool = False) -> str:
        return await self._run(self._put, collection, key, data, etag, create_only)  # type: ignore[no-any-return]

    def _delete(self, collection: str, key: str, etag: str | None) -> None:
        with self._stripe(collection, key), self._writing():
            current = self._read_doc(collection, key)
            if current is None:
                return
            if etag is not None and current.etag != etag:
                raise VersionConflict(f"{collection}/{key} changed")
            path = self._doc_path(collection, key)
            path.unlink(missing_ok=True)
            fsync_dir(path.parent)

    async def delete(self, collection: str, key: str, *, etag: str | None = None) -> None:
        await self._run(self._delete, collection, key, etag)

    def _keys(self, collection: str, prefix: str) -> list[str]:
        folder = self.docs / encode_name(collection)
        found: list[str] = []
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return []
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            stem = entry.name[:-5]
            if stem.startswith("~"):
                stored = AtomicJSONStorage(Path(entry.path), self.tmp).read() or {}
                key = str(stored.get("_default", {}).get(str(DOC_ID), {}).get("key", ""))
            else:
                key = unquote(stem)
            if key and key.startswith(prefix):
                found.append(key)
        return sorted(found)

    async def keys(self, collection: str, prefix: str = "") -> list[str]:
        return await self._run(self._keys, collection, prefix)  # type: ignore[no-any-return]

    async def bulk_put(self, collection: str, items: dict[str, dict[str, Any]]) -> None:
        """Load many documents at once (restore, migration, benchmarks): unconditional puts written
        without a per-file fsync, then one sync of the file system before returning."""
        def load() -> None:
            for key, data in items.items():
                self._put(collection, key, data, None, False, durable=False)
            os.sync()

        await self._run(load)

    # --- append-only logs -------------------------------------------------------------------------
    def _log_state(self, log: str) -> _LogState:
        with self._logs_guard:
            return self._logs.setdefault(log, _LogState())

    def _segments(self, log: str) -> list[Path]:
        folder = self.logs / encode_name(log)
        if not folder.exists():
            return []
        return sorted(p for p in folder.iterdir() if p.suffix == ".json" and p.stem.isdigit())

    def _append(self, log: str, record: dict[str, Any]) -> None:
        payload = json.loads(json.dumps(record))
        state = self._log_state(log)
        with state.lock, self._writing():
            folder = self._dir(self.logs, log)
            if state.segment < 0:
                segments = self._segments(log)
                state.segment = int(segments[-1].stem) if segments else 0
                state.count = len(self._open(folder / f"{state.segment:09d}.json")) if segments else 0
            if state.count >= SEGMENT:
                state.segment, state.count = state.segment + 1, 0
            db = self._open(folder / f"{state.segment:09d}.json")
            db.insert(payload)
            db.close()
            state.count += 1

    async def append(self, log: str, record: dict[str, Any]) -> None:
        await self._run(self._append, log, record)

    def _read_segment(self, path: Path) -> list[dict[str, Any]]:
        db = self._open(path)
        rows = [dict(row) for row in db.all()]
        db.close()
        return rows

    async def read_log(self, log: str) -> AsyncIterator[dict[str, Any]]:
        for segment in await self._run(self._segments, log):
            for row in await self._run(self._read_segment, segment):
                yield row

    # --- the rest ---------------------------------------------------------------------------------
    def leader_election(self) -> LocalLeaderElection:
        """One writer per folder, so leadership is decided inside this process."""
        return self._leader

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        os.close(self._lock_fd)


def acquire_writer_lock(folder: Path) -> int:
    """Take the folder's writer lock (non-blocking), or raise StoreLocked naming the folder."""
    path = folder / WRITER_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        holder = ""
        try:
            holder = path.read_text().strip()
        except OSError:
            pass
        raise StoreLocked(f"the store in {folder.resolve()} is in use by another process"
                          + (f" ({holder})" if holder else "") + "; only one process may write to it",
                          folder=str(folder.resolve())) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}\n".encode())
    return fd


# --- backup and restore ---------------------------------------------------------------------------
STORE_PARTS = ("docs", "logs")


def backup(folder: Path | str, out: Path | str, *, wait_seconds: float = 60.0) -> int:
    """A consistent snapshot of the store as a .tar.gz, taken while no write is in progress.

    Works while the bot runs: writers hold the backup gate shared per operation, the backup holds it
    exclusively (writes wait meanwhile). Returns the number of files archived."""
    folder, out = Path(folder), Path(out)
    if not (folder / "docs").exists():
        raise FileNotFoundError(f"no TinyDB store in {folder}")
    fd = os.open(folder / BACKUP_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise StoreLocked(f"could not pause writes to {folder} for a backup") from None
                time.sleep(0.01)
        tmp = out.with_name(out.name + ".part")
        count = 0
        with tarfile.open(tmp, "w:gz") as archive:
            for part in STORE_PARTS:
                for path in sorted((folder / part).rglob("*")):
                    if path.is_file():
                        count += 1
                    archive.add(path, arcname=str(path.relative_to(folder)), recursive=False)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, out)
        return count
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def restore(folder: Path | str, archive: Path | str) -> Path | None:
    """Replace the store in ``folder`` with a backup. Needs the writer lock (stop the bot first).
    The store it replaces is moved aside, not deleted; returns where it went (None if empty)."""
    folder, archive = Path(folder), Path(archive)
    folder.mkdir(parents=True, exist_ok=True)
    fd = acquire_writer_lock(folder)
    try:
        staging = folder / f".restore-{secrets.token_hex(4)}"
        staging.mkdir()
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                top = Path(member.name).parts[0] if member.name else ""
                if top not in STORE_PARTS or ".." in Path(member.name).parts or not (member.isfile() or member.isdir()):
                    raise ValueError(f"{archive} is not a store backup (unexpected entry {member.name!r})")
            tar.extractall(staging, filter="data")
        for path in staging.rglob("*.json"):      # every file must load before we switch
            json.loads(path.read_bytes())
        aside = None
        if any((folder / part).exists() and any((folder / part).iterdir()) for part in STORE_PARTS):
            aside = folder / f"before-restore-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"
            aside.mkdir()
        for part in STORE_PARTS:
            if (folder / part).exists():
                if aside is not None:
                    os.replace(folder / part, aside / part)
                else:
                    shutil.rmtree(folder / part)
            if (staging / part).exists():
                os.replace(staging / part, folder / part)
            else:
                (folder / part).mkdir()
        shutil.rmtree(staging)
        os.sync()
        return aside
    finally:
        os.close(fd)
