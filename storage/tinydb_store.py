"""The embedded default: TinyDB, partitioned, crash-safe and single-writer.

Layout under the data folder::

    .writer.lock          fcntl lock held by the one process that writes (StoreLocked otherwise)
    .backup.lock          writers hold it shared per operation; a backup holds it exclusively
    journal.jsonl         write-ahead journal of changes not yet flushed to their files
    journal.previous.jsonl  the journal a checkpoint in progress is flushing (replayed first)
    tmp/                  temporary files of bulk loads, renamed into place (cleared at start)
    docs/<collection>/<key>.json    one small TinyDB file per document: {"_default": {"1": record}}
    logs/<log>/<segment>.jsonl      append-only logs: TinyDB segments of SEGMENT records, a line each

A change is asked for on the event loop and handed to the committer, one thread that takes every
change waiting, checks each against the store as the changes before it leave it (etags), appends their
lines to the journal with one synchronous write (group commit), makes them visible (the cache)
and acknowledges them. The applier, another thread, then writes them to their TinyDB files
(``InPlaceJSONStorage`` for a document, rewritten in place, only its latest version;
``AppendOnlyLinesStorage`` for a log segment, which only ever appends a line); until then reads find
the acknowledged bytes in ``_unapplied`` and listings wait for it. After a kill -9 the journal is
applied again at start (every entry is idempotent and rewrites what it covers whole), so every
acknowledged write is there and no file stays torn. When the journal reaches CHECKPOINT_BYTES it
is set aside (renamed, with no write in progress: an instant) and a fresh one started; once the
applier has written what it holds, the files are flushed (syncfs) while writes go on into the fresh
journal, and only then is the old one deleted. A crash meanwhile replays both, the old one first.
(Flushing the whole file system under the gate held every write for up to 370 ms on a busy machine.)

Why a committer rather than a write on a pool thread: every system call a thread makes gives up the
interpreter lock and must wait to get it back, up to the switch interval (5 ms) while the event loop
is busy. A write that opened, wrote and closed its file before acknowledging waited for the lock a
dozen times; the committer's acknowledgement path makes one system call for a whole batch (a write
that is also synchronous, ``pwritev2`` with ``RWF_DSYNC``; a write and an fdatasync where that is
missing).

An operation reads and writes one small file (a document, or one log segment), never the whole
store; ``keys`` lists one collection's folder (the folder is the collection's index). All file I/O
runs off the event loop (the committer, the applier, and a small thread pool for reads not in memory
and listings); reads asked for together go to the threads together; per-key locks keep a file, its
unapplied bytes and its cached copy in step.

Recently read and written documents are kept in memory as the bytes of their files (a bounded LRU,
CACHE_BYTES): this process is the only writer (the writer lock), so the copy is coherent, and a get
that finds it is answered on the event loop without a thread or a file (each caller gets its own
freshly parsed object). The copy is changed under the document's lock once the change is durable in
the journal, never before.
"""
from __future__ import annotations

import asyncio
import collections
import ctypes
import errno
import fcntl
import hashlib
import itertools
import json
import logging
import os
import random
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

from storage import jsonio
from storage.leader import LocalLeaderElection
from supervision.errors import StoreLocked, VersionConflict
from supervision.ports import Stored

T = TypeVar("T")
log = logging.getLogger(__name__)
SEGMENT = 200              # records per log segment: an append rewrites at most this many
MAX_NAME = 200             # longer encoded keys are stored under a hash of the key
LOCK_STRIPES = 256
READ_BATCH = 4            # reads handed to one thread at least, when many are asked for at once
WRITER_LOCK = ".writer.lock"
BACKUP_LOCK = ".backup.lock"
JOURNAL = "journal.jsonl"
JOURNAL_PREVIOUS = "journal.previous.jsonl"   # a checkpoint's journal, until its files are on disk
CHECKPOINT_BYTES = 8 * 1024 * 1024   # journal size that triggers a flush of the files and a fresh journal
DOC_ID = 1
CACHE_BYTES = 16 * 1024 * 1024       # documents' file bytes kept in memory (LRU)
APPLY_PAUSE = 1.0    # seconds the applier lets changes gather between rounds (a listing, backup or
                     # checkpoint hurries it): a hot document is written once a second, not per change
KNOWN_ETAGS = 200_000                 # etags of written documents remembered by the committer
CACHE_ENTRY = 200                     # bytes counted per cached entry besides the file's
DSYNC_WRITE = getattr(os, "RWF_DSYNC", 0) if hasattr(os, "pwritev") else 0   # 0: write, then fdatasync
_ABSENT = object()                    # not in the cache (None there: known not to exist)


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


def write_at(path: Path, payload: bytes, offset: int, truncate: bool = True) -> None:
    """Write ``payload`` into the file at ``offset`` (creating the file), then cut the file to end
    there unless ``truncate`` is false (the caller knows nothing lies beyond)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        view, done = memoryview(payload), 0
        while done < len(payload):
            done += os.pwrite(fd, view[done:], offset + done)
        if truncate:
            os.ftruncate(fd, offset + len(payload))
    finally:
        os.close(fd)


class AtomicJSONStorage(Storage):
    """TinyDB storage for one small file, written atomically (temp file + rename; with ``durable``
    also fsync of the file and its folder). Used where no journal covers the write (bulk loads).

    A TinyDB over it lives for one operation, so what it read or wrote is remembered for the rest of
    the operation instead of reading the file again."""

    def __init__(self, path: Path, tmp_dir: Path, durable: bool = True) -> None:
        self.path, self.tmp_dir, self.durable = path, tmp_dir, durable
        self._memo: dict[str, dict[str, Any]] | None = None
        self._known = False
        self.raw = b""            # the bytes last read or written (for the store's cache)

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._known:
            return self._memo
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            raw = b""
        self._memo, self._known = (jsonio.loads(raw) if raw else None), True
        self.raw = raw
        return self._memo

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self._known = False
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        self._store(payload)
        self._memo, self._known, self.raw = data, True, payload

    def _store(self, payload: bytes) -> None:
        atomic_write(self.path, payload, self.tmp_dir, self.durable)

    def close(self) -> None:
        return None


class InPlaceJSONStorage(AtomicJSONStorage):
    """TinyDB storage for one document file, rewritten in place (write from the start, then cut to
    length): no new file, no rename, no freed blocks, so a write costs a fraction of a rename here.

    Safe only together with the journal: the change is flushed to the journal before the file is
    touched, the file's readers and writers hold its lock, and a file torn by a crash is written again
    from the journal at start (the journal is emptied only after every write has been flushed)."""

    def __init__(self, path: Path, tmp_dir: Path | None = None, durable: bool = False) -> None:
        super().__init__(path, tmp_dir or path.parent, durable=False)

    def _store(self, payload: bytes) -> None:
        write_at(self.path, payload, 0)


class AppendOnlyLinesStorage(Storage):
    """TinyDB storage for one segment of an append-only log: one JSON line per record,
    ``{"id": n, "r": record}``. ``write`` appends the records TinyDB added (records are never changed
    or removed: anything else is refused); ``read`` parses the lines and ignores a torn last line (a
    crash in the middle of an append, never acknowledged), which the next append cuts off first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._table: dict[str, Any] | None = None
        self._valid = 0          # bytes of complete lines
        self._size = 0           # bytes in the file
        self._positioned = False  # _valid and _size known

    def _load(self) -> dict[str, Any]:
        if self._table is None:
            try:
                with open(self.path, "rb") as handle:
                    raw = handle.read()
            except FileNotFoundError:
                raw = b""
            table: dict[str, Any] = {}
            valid = 0
            for line in raw.split(b"\n")[:-1]:          # the part after the last newline is no record
                try:
                    entry = json.loads(line)
                    table[str(int(entry["id"]))] = entry["r"]
                except (ValueError, KeyError, TypeError):
                    break
                valid += len(line) + 1
            self._table, self._valid, self._size = table, valid, len(raw)
            self._positioned = True
        return self._table

    def read(self) -> dict[str, dict[str, Any]] | None:
        table = self._load()
        return {"_default": dict(table)} if table else None

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        current = self._load()
        table = data.get("_default", {})
        if any(key not in table or table[key] != value for key, value in current.items()):
            raise ValueError(f"{self.path}: an append-only log segment cannot change or lose records")
        added = [(key, value) for key, value in table.items() if key not in current]
        if not added:
            return
        payload = b"".join(json.dumps({"id": int(key), "r": value}, ensure_ascii=False,
                                      separators=(",", ":")).encode() + b"\n" for key, value in added)
        self._append(payload)
        for key, value in added:
            current[key] = value

    def records(self) -> int:
        return len(self._load())

    def append_lines(self, records: list[tuple[int, str]]) -> None:
        """Append records, each given as its JSON text, without TinyDB's read-compare-rewrite of the
        table: the lines ``write`` would add (``{"id":n,"r":record}``), with one write after the last
        complete line (a torn tail is overwritten)."""
        if not self._positioned:
            self._load()
        self._append("".join(f'{{"id":{record_id},"r":{text}}}\n' for record_id, text in records).encode(),
                     truncate=self._size > self._valid)
        self._table = None          # a later read parses the file again

    def _append(self, payload: bytes, truncate: bool = True) -> None:
        """After the last complete line (a torn tail is overwritten, and cut off with ``truncate``)."""
        write_at(self.path, payload, self._valid, truncate)
        self._valid += len(payload)
        self._size = self._valid

    def close(self) -> None:
        return None


class _Change:
    """One change waiting for the committer, and where to acknowledge it."""

    __slots__ = ("op", "name", "key", "text", "etag", "create_only", "loop", "future", "log", "record")

    def __init__(self, op: str, name: str, key: str, text: str | None, etag: str | None, create_only: bool,
                 loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], log: str = "",
                 record: str = "") -> None:
        self.op, self.name, self.key, self.text = op, name, key, text           # op: put, del, append
        self.etag, self.create_only, self.loop, self.future = etag, create_only, loop, future
        self.log, self.record = log, record     # a put's with_log: appended in the same journal line


class _LogState:
    """The current segment of one log, kept by the committer (the only thread that appends)."""

    def __init__(self) -> None:
        self.segment = -1          # not yet loaded
        self.count = 0
        self.storage: AppendOnlyLinesStorage | None = None


class _Gate:
    """Many operations at once, or one checkpoint alone (a readers-writer lock for threads)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class Journal:
    """The write-ahead journal: one JSON line per change, made durable (fdatasync) before the change
    is applied to its TinyDB file and acknowledged. Only the committer writes to it, a batch of
    changes at a time: one synchronous write for every change waiting (group commit). After a
    crash the lines are applied again (each is idempotent); a checkpoint flushes the files and
    empties the journal."""

    def __init__(self, path: Path, flushes: int = 0, lines: int = 0) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self.fd).st_size
        self.flushes = flushes     # flushes and lines by this process (all its journals)
        self.lines = lines

    def entries(self) -> list[dict[str, Any]]:
        return self.read_entries(self.path)

    @staticmethod
    def read_entries(path: Path) -> list[dict[str, Any]]:
        with open(path, "rb") as handle:
            raw = handle.read()
        found = []
        for line in raw.split(b"\n"):
            try:
                entry = json.loads(line)
            except ValueError:         # the torn last line of a crashed write: never acknowledged
                continue
            if isinstance(entry, dict):
                found.append(entry)
        return found

    def write_lines(self, lines: list[bytes]) -> None:
        """Append entries (JSON lines) and return once they are durable: on Linux one system call that
        writes and syncs the data (pwritev2 with RWF_DSYNC, at the end of the file); else a write and
        an fdatasync. (Every system call gives up the interpreter lock and waits to get it back from a
        busy event loop: one is cheaper than two.)"""
        payload = b"".join(lines)
        written = 0
        if DSYNC_WRITE:
            try:
                written = os.pwritev(self.fd, [payload], -1, DSYNC_WRITE)  # -1: at the file's end (O_APPEND)
            except OSError as error:
                if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
        if written < len(payload):
            view = memoryview(payload)[written:]
            while view:
                view = view[os.write(self.fd, view):]
            os.fdatasync(self.fd)
        self.size += len(payload)
        self.flushes += 1
        self.lines += len(lines)

    def reset(self) -> None:
        os.ftruncate(self.fd, 0)
        os.fsync(self.fd)
        self.size = 0

    def close(self) -> None:
        os.close(self.fd)


def sync_filesystem(folder: Path) -> None:
    """Flush every dirty file of the file system that holds ``folder`` (Linux syncfs, else sync)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()


class TinyDBStore:
    def __init__(self, folder: Path | str, *, workers: int = 4, checkpoint_bytes: int = CHECKPOINT_BYTES,
                 cache_bytes: int = CACHE_BYTES) -> None:
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
        self._stripes = [threading.RLock() for _ in range(LOCK_STRIPES)]
        self._logs: dict[str, _LogState] = {}
        self._made: set[Path] = set()
        self._backup_gate = threading.local()
        self._gate = _Gate()
        self.checkpoint_bytes = checkpoint_bytes
        self.checkpoints = 0
        self.checkpoint_longest = 0.0       # seconds writes waited for the longest checkpoint
        self._checkpointing = threading.Lock()
        self.journal = Journal(self.folder / JOURNAL)
        self._recover()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinydb-store")
        self._closed = False
        self._workers = workers
        self._pending_reads: list[tuple[str, str, asyncio.Future[Stored | None]]] = []
        self._leader = LocalLeaderElection()
        self._cache: collections.OrderedDict[tuple[str, str], bytes | None] = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_bytes = 0
        self.cache_limit = cache_bytes
        self.cache_hits = 0
        # the committer: one thread that validates, journals (one flush per batch), applies and
        # acknowledges every change, in the order they were asked for
        self._queue: list[_Change] = []
        self._queue_ready = threading.Condition(threading.Lock())
        self._stopping = False
        self._failed: BaseException | None = None
        self.batch_largest = 0
        # the applier: writes acknowledged changes to their files after the fact (latest version of a
        # document only); until then the document's bytes are in _unapplied (and the cache)
        self._unapplied: dict[tuple[str, str], bytes | None] = {}
        self._unapplied_appends: list[tuple[AppendOnlyLinesStorage, int, str]] = []
        # the etag of each document the committer wrote (None: deleted), so checking an etag needs no
        # parse of the document; only the committer and bulk loads change it
        self._etags: dict[tuple[str, str], str | None] = {}
        # new etags from a generator seeded once from the OS (an etag only has to differ from the
        # document's earlier ones): no system call, so no hand-over of the interpreter lock, per write
        self._etag_source = random.Random(secrets.randbits(128))
        self._apply_ready = threading.Condition(threading.Lock())
        self._committed_seq = 0
        self._applied_seq = 0
        self._apply_stopping = False
        self._apply_hurry = threading.Event()
        self.files_written = 0
        self._committer = threading.Thread(target=self._commit_forever, name="tinydb-committer", daemon=True)
        self._applier = threading.Thread(target=self._apply_forever, name="tinydb-applier", daemon=True)
        self._committer.start()
        self._applier.start()

    # --- plumbing ---------------------------------------------------------------------------------
    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise RuntimeError(f"store {self.folder} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _stripe(self, collection: str, key: str) -> threading.RLock:
        return self._stripes[hash((collection, key)) % LOCK_STRIPES]

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the in-process gate and the cross-process backup gate shared while writing, so that
        neither a checkpoint nor a backup sees a half-done operation."""
        fd = getattr(self._backup_gate, "fd", None)
        if fd is None:
            fd = os.open(self.folder / BACKUP_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            self._backup_gate.fd = fd
        with self._gate.shared():
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _maybe_checkpoint(self) -> None:
        """Start a checkpoint in the background once the journal is large (the write that finds it
        so is acknowledged at once; the next checkpoint waits until this one is done)."""
        if self.journal.size >= self.checkpoint_bytes and self._checkpointing.acquire(blocking=False):
            def run() -> None:
                try:
                    self._checkpoint()
                finally:
                    self._checkpointing.release()

            threading.Thread(target=run, name="tinydb-checkpoint", daemon=True).start()

    def checkpoint(self) -> None:
        """Flush the applied changes to disk and empty the journal."""
        with self._checkpointing:
            self._checkpoint()

    def _checkpoint(self) -> None:
        if self._failed is not None:        # files may lack acknowledged changes: the journals stay for
            return                          # the next start to apply
        with self._gate.exclusive():        # no write in progress: every applied change is in the journal
            if not self.journal.size:
                return
            started = time.perf_counter()
            previous = self.folder / JOURNAL_PREVIOUS
            os.replace(self.journal.path, previous)
            upto = self._committed_seq
            old, self.journal = self.journal, Journal(self.folder / JOURNAL, flushes=self.journal.flushes,
                                                  lines=self.journal.lines)
            fsync_dir(self.folder)
            old.close()
            self.checkpoint_longest = max(self.checkpoint_longest, time.perf_counter() - started)
        self._wait_applied(upto)             # the old journal's changes in their files (writes go on
        if self._applied_seq < upto:         # meanwhile, into the fresh journal), then on disk
            raise RuntimeError(f"store {self.folder}: the files did not catch up with the journal "
                               f"({self._failed}); {JOURNAL_PREVIOUS} is kept for the next start")
        sync_filesystem(self.folder)
        previous.unlink()
        fsync_dir(self.folder)
        self.checkpoints += 1

    def _recover(self) -> None:
        """Apply the journals of a crashed run again (a checkpoint's first), then checkpoint."""
        previous = self.folder / JOURNAL_PREVIOUS
        entries = Journal.read_entries(previous) if previous.exists() else []
        entries += self.journal.entries() if self.journal.size else []
        for entry in entries:
            op = entry.get("op")
            if op == "put":                 # the whole file from the journal: it may be torn
                InPlaceJSONStorage(self._doc_path(entry["c"], entry["k"], create=True)).write(
                    {"_default": {str(DOC_ID): entry["r"]}})
                then = entry.get("then")    # the log record written with it (put's with_log)
                if then:
                    self._apply_append(self._open_segment(self._segment_path(then["log"], then["seg"])),
                                       then["id"], then["r"])
            elif op == "del":
                self._doc_path(entry["c"], entry["k"]).unlink(missing_ok=True)
            elif op == "append":
                self._apply_append(self._open_segment(self._segment_path(entry["log"], entry["seg"])),
                                   entry["id"], entry["r"])
        if self.journal.size or previous.exists():
            sync_filesystem(self.folder)
            self.journal.reset()
            previous.unlink(missing_ok=True)
            fsync_dir(self.folder)

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

    @staticmethod
    def _open_segment(path: Path) -> TinyDB:
        return TinyDB(path, storage=AppendOnlyLinesStorage)

    # --- the document cache (file bytes; changed only under the document's stripe lock) -------------
    def _cache_set(self, collection: str, key: str, raw: bytes | None) -> None:
        if not self.cache_limit:
            return
        entry = (collection, key)
        with self._cache_lock:
            if entry in self._cache:
                self._cache_bytes -= CACHE_ENTRY + len(self._cache.pop(entry) or b"")
            self._cache[entry] = raw
            self._cache_bytes += CACHE_ENTRY + len(raw or b"")
            while self._cache_bytes > self.cache_limit and self._cache:
                _, dropped = self._cache.popitem(last=False)
                self._cache_bytes -= CACHE_ENTRY + len(dropped or b"")

    def drop_cache(self) -> None:
        """Forget every cached document (reads go to the files until they are cached again)."""
        with self._cache_lock:
            self._cache.clear()
            self._cache_bytes = 0

    def _cache_drop(self, collection: str, key: str) -> None:
        with self._cache_lock:
            if (collection, key) in self._cache:
                self._cache_bytes -= CACHE_ENTRY + len(self._cache.pop((collection, key)) or b"")

    def _cached(self, collection: str, key: str) -> Any:
        """The cached file bytes (None: known absent), or _ABSENT when not cached."""
        entry = (collection, key)
        with self._cache_lock:
            raw = self._cache.get(entry, _ABSENT)
            if raw is not _ABSENT:
                self._cache.move_to_end(entry)
        return raw

    @staticmethod
    def _parse(raw: bytes | None, key: str) -> Stored | None:
        if not raw:
            return None
        record = jsonio.loads(raw).get("_default", {}).get(str(DOC_ID))
        if not record or record.get("key") != key:
            return None
        return Stored(record["data"], record["etag"])

    # --- documents --------------------------------------------------------------------------------
    @staticmethod
    def _record(db: TinyDB, key: str) -> Stored | None:
        record = db.get(doc_id=DOC_ID)
        if record is None or record.get("key") != key:   # type: ignore[union-attr]
            return None
        return Stored(record["data"], record["etag"])   # type: ignore[index]

    def _read_doc(self, collection: str, key: str) -> Stored | None:
        with self._stripe(collection, key):           # files are rewritten in place: never read mid-write
            raw = self._cached(collection, key)
            if raw is _ABSENT:
                raw = self._unapplied.get((collection, key), _ABSENT)     # acknowledged, file not yet written
                if raw is not _ABSENT:
                    self._cache_set(collection, key, raw)
            if raw is not _ABSENT:
                return self._parse(raw, key)
            storage = InPlaceJSONStorage(self._doc_path(collection, key))
            db = TinyDB(storage=lambda: storage)
            try:
                found = self._record(db, key)
            finally:
                db.close()
            self._cache_set(collection, key, storage.raw or None)
            return found

    async def get(self, collection: str, key: str) -> Stored | None:
        """Reads asked for in the same turn of the event loop go to the threads together (a case
        update reads some twenty index documents at once: one hand-over instead of twenty)."""
        if self._closed:
            raise RuntimeError(f"store {self.folder} is closed")
        raw = self._cached(collection, key)
        if raw is not _ABSENT:                         # in memory: no thread, no file
            self.cache_hits += 1
            return self._parse(raw, key)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Stored | None] = loop.create_future()
        self._pending_reads.append((collection, key, future))
        if len(self._pending_reads) == 1:
            loop.call_soon(self._flush_reads, loop)
        return await future

    def _flush_reads(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending_reads = self._pending_reads, []
        size = max(READ_BATCH, -(-len(batch) // self._workers))
        for start in range(0, len(batch), size):
            part = batch[start:start + size]
            try:
                self._pool.submit(self._read_batch, loop, part)
            except RuntimeError as error:       # closed meanwhile
                _resolve([(future, None, error) for _, _, future in part])

    def _read_batch(self, loop: asyncio.AbstractEventLoop,
                    batch: list[tuple[str, str, asyncio.Future[Stored | None]]]) -> None:
        results: list[tuple[asyncio.Future[Stored | None], Stored | None, BaseException | None]] = []
        for collection, key, future in batch:
            try:
                results.append((future, self._read_doc(collection, key), None))
            except BaseException as error:   # handed to the caller, as a direct call would raise it
                results.append((future, None, error))
        try:
            loop.call_soon_threadsafe(_resolve, results)
        except RuntimeError:                    # the loop has gone: nobody is waiting any more
            pass

    # --- changes: asked for on the event loop, committed by the committer thread ------------------
    def _submit(self, change: _Change) -> None:
        if self._closed:
            raise RuntimeError(f"store {self.folder} is closed")
        if self._failed is not None:
            raise RuntimeError(f"store {self.folder} stopped writing after a failed write ({self._failed}); "
                               "restart the bot: the journal puts back every acknowledged change")
        with self._queue_ready:
            self._queue.append(change)
            if len(self._queue) == 1:
                self._queue_ready.notify()

    async def _change(self, op: str, name: str, key: str, text: str | None, etag: str | None = None,
                      create_only: bool = False, log: str = "", record: str = "") -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._submit(_Change(op, name, key, text, etag, create_only, loop, future, log, record))
        return await future

    async def put(self, collection: str, key: str, data: dict[str, Any], *,
                  etag: str | None = None, create_only: bool = False,
                  with_log: tuple[str, dict[str, Any]] | None = None) -> str:
        """With ``with_log=(log, record)`` the record is appended in the document's journal line: one
        line is written whole or not at all, so both are durable together, or neither."""
        # Serialised once, here (JSON-only, so nothing the caller changes later reaches the store):
        # the journal line and the document's TinyDB file are built around the same text.
        log, record = (with_log[0], _dumps(with_log[1])) if with_log is not None else ("", "")
        return await self._change("put", collection, key, _dumps(data), etag, create_only, log, record)  # type: ignore[no-any-return]

    async def delete(self, collection: str, key: str, *, etag: str | None = None) -> None:
        await self._change("del", collection, key, None, etag)

    def _commit_forever(self) -> None:
        while True:
            with self._queue_ready:
                while not self._queue and not self._stopping:
                    self._queue_ready.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
            self._commit(batch)

    def _commit(self, batch: list[_Change]) -> None:
        """Validate each change against the store as the changes before it leave it, journal the valid
        ones with one synchronous write, make them visible and queue them for the applier, then acknowledge
        each (on its own event loop). A failed flush or file write stops all writing: what happened to
        the batch is then only known from the journal, which a restart applies."""
        results: list[tuple[_Change, Any, BaseException | None]] = []
        applies: list[tuple[_Change, Any]] = []
        lines: list[bytes] = []
        appends: list[tuple[AppendOnlyLinesStorage, int, str]] = []
        if self._failed is not None:
            results = [(change, None, RuntimeError(f"store {self.folder} stopped writing")) for change in batch]
        else:
            try:
                with self._writing():
                    planned: dict[tuple[str, str], str | None] = {}
                    for change in batch:
                        try:
                            line, apply = (self._plan_append(change, appends) if change.op == "append"
                                           else self._plan_document(change, planned, appends))
                        except Exception as error:       # a conflict: this change only
                            results.append((change, None, error))
                            continue
                        if line is None:
                            results.append((change, apply(), None))
                        else:
                            lines.append(line)
                            applies.append((change, apply))
                    if lines:
                        self.journal.write_lines(lines)
                        for change, apply in applies:    # durable now: visible, and queued for the files
                            results.append((change, apply(), None))
                        with self._apply_ready:
                            self._unapplied_appends += appends
                            self._committed_seq += 1
                            self._apply_ready.notify()
            except BaseException as failure:
                self._failed = failure
                log.error("store %s: a write failed (%s); refusing writes until restarted", self.folder, failure)
                answered = {id(change) for change, _, _ in results}      # conflicts, and changes applied
                results += [(change, None, failure) for change in batch if id(change) not in answered]
            self.batch_largest = max(self.batch_largest, len(lines))
            self._maybe_checkpoint()
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
        for change, value, problem in results:
            by_loop.setdefault(change.loop, []).append((change.future, value, problem))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:                 # the loop has gone: nobody is waiting any more
                pass

    def _current_etag(self, collection: str, key: str) -> str | None:
        """The document's etag (None: no such document): known to the committer for what it wrote,
        else read (from the cache or the file)."""
        etag = self._etags.get((collection, key), _ABSENT)
        if etag is _ABSENT:
            current = self._read_doc(collection, key)
            etag = current.etag if current is not None else None
        return etag  # type: ignore[return-value]

    def _plan_document(self, change: _Change, planned: dict[tuple[str, str], str | None],
                       appends: list[tuple[AppendOnlyLinesStorage, int, str]]) -> tuple[bytes | None, Any]:
        collection, key = change.name, change.key
        entry = (collection, key)
        current = planned[entry] if entry in planned else self._current_etag(collection, key)
        if change.op == "del":
            if current is None:
                return None, lambda: None
            if change.etag is not None and current != change.etag:
                raise VersionConflict(f"{collection}/{key} changed")
            planned[entry] = None
            return (f'{{"op":"del","c":{_dumps(collection)},"k":{_dumps(key)}}}\n'.encode(),
                    lambda: self._publish(collection, key, None, None))
        if change.create_only and current is not None:
            raise VersionConflict(f"{collection}/{key} exists")
        if change.etag is not None and (current is None or current != change.etag):
            raise VersionConflict(f"{collection}/{key} changed")
        new_etag = f'"{self._etag_source.getrandbits(64):016x}"'
        planned[entry] = new_etag
        record = f'{{"key":{_dumps(key)},"etag":{_dumps(new_etag)},"data":{change.text}}}'
        # the file TinyDB would write for this one document: {"_default": {"1": record}}
        payload = f'{{"_default":{{"{DOC_ID}":{record}}}}}'.encode()

        line = f'{{"op":"put","c":{_dumps(collection)},"k":{_dumps(key)},"r":{record}'
        if change.log:              # its log record: numbered now, in the same line, queued with it
            seg, record_id, queue = self._number_append(change.log, change.record, appends)
            line += f',"then":{{"log":{_dumps(change.log)},"seg":{seg},"id":{record_id},"r":{change.record}}}'
        else:
            queue = None

        def publish() -> str:
            self._publish(collection, key, payload, new_etag)
            if queue is not None:
                queue()
            return new_etag

        return f'{line}}}\n'.encode(), publish

    def _publish(self, collection: str, key: str, payload: bytes | None, etag: str | None) -> None:
        """A journaled change becomes what reads see (cache, and _unapplied until its file is written)."""
        with self._stripe(collection, key):
            self._unapplied[(collection, key)] = payload
            self._cache_set(collection, key, payload)
            if len(self._etags) >= KNOWN_ETAGS:          # bounded: the oldest half is read again if needed
                for old in list(itertools.islice(self._etags, KNOWN_ETAGS // 2)):
                    del self._etags[old]
            self._etags[(collection, key)] = etag

    def _apply_forever(self) -> None:
        while True:
            with self._apply_ready:
                while not self._unapplied and not self._unapplied_appends:
                    if self._applied_seq < self._committed_seq:      # nothing left: all in the files
                        self._applied_seq = self._committed_seq
                        self._apply_ready.notify_all()
                    if self._apply_stopping:
                        return
                    self._apply_ready.wait()
                seq = self._committed_seq
                appends, self._unapplied_appends = self._unapplied_appends, []
            try:
                self._apply(appends)
            except BaseException as error:
                self._failed = self._failed or error
                log.error("store %s: writing files failed (%s); refusing writes until restarted", self.folder, error)
                return
            with self._apply_ready:
                self._applied_seq = max(self._applied_seq, seq)
                self._apply_ready.notify_all()
            # a pause between rounds lets changes gather (a document rewritten meanwhile is written
            # once), unless someone waits for the files (a listing, a checkpoint, closing)
            if self._apply_hurry.wait(APPLY_PAUSE):
                self._apply_hurry.clear()

    def _apply(self, appends: list[tuple[AppendOnlyLinesStorage, int, str]]) -> None:
        """Write what was acknowledged to the files: log records in order, then the latest version of
        each document (a version superseded meanwhile is left for the next round, which writes the
        newer one). A crash before this only loses work the journal does again at start."""
        with self._writing():
            start = 0
            while start < len(appends):        # a run of records for one segment: one write
                storage, end = appends[start][0], start + 1
                while end < len(appends) and appends[end][0] is storage:
                    end += 1
                storage.append_lines([(record_id, text) for _, record_id, text in appends[start:end]])
                self.files_written += 1
                start = end
            for (collection, key), payload in list(self._unapplied.items()):
                with self._stripe(collection, key):
                    if self._unapplied.get((collection, key), _ABSENT) is not payload:
                        continue
                    if payload is None:
                        self._doc_path(collection, key).unlink(missing_ok=True)
                    else:
                        InPlaceJSONStorage(self._doc_path(collection, key, create=True))._store(payload)
                    del self._unapplied[(collection, key)]
                    self.files_written += 1

    def _wait_applied(self, seq: int) -> None:
        """Block until every change committed up to ``seq`` is in its file (or superseded)."""
        self._apply_hurry.set()
        with self._apply_ready:
            while self._applied_seq < seq and self._applier.is_alive():
                self._apply_ready.wait(timeout=1.0)

    def _keys(self, collection: str, prefix: str, seq: int = 0) -> list[str]:
        self._wait_applied(seq)          # the folder is the index: every acknowledged change in it first
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
                key = self._key_in(Path(entry.path))
            else:
                key = unquote(stem)
            if key and key.startswith(prefix):
                found.append(key)
        return sorted(found)

    async def keys(self, collection: str, prefix: str = "") -> list[str]:
        return await self._run(self._keys, collection, prefix, self._committed_seq)  # type: ignore[no-any-return]

    def _load(self, collection: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        folder = self._dir(self.docs, collection)
        with self._writing():
            for key, data in items:
                with self._stripe(collection, key):
                    record = {"key": key, "etag": f'"{secrets.token_hex(8)}"', "data": json.loads(json.dumps(data))}
                    AtomicJSONStorage(folder / f"{encode_name(key)}.json", self.tmp, durable=False).write(
                        {"_default": {str(DOC_ID): record}})
                    self._unapplied.pop((collection, key), None)
                    self._etags.pop((collection, key), None)
                    self._cache_drop(collection, key)

    async def bulk_put(self, collection: str, items: dict[str, dict[str, Any]], *, parallel: int = 4) -> None:
        """Load many documents at once (a new store: migration, benchmarks): unconditional writes of
        whole TinyDB files, without the journal, on several threads, then one flush of the file
        system before returning (nothing is acknowledged before that flush)."""
        pairs = list(items.items())
        chunks = [pairs[i::parallel] for i in range(parallel)]
        await asyncio.gather(*(self._run(self._load, collection, chunk) for chunk in chunks if chunk))
        await self._run(sync_filesystem, self.folder)

    # --- append-only logs -------------------------------------------------------------------------
    def _segments(self, log: str) -> list[Path]:
        folder = self.logs / encode_name(log)
        if not folder.exists():
            return []
        return sorted(p for p in folder.iterdir() if p.suffix == ".jsonl" and p.stem.isdigit())

    def _segment_path(self, log: str, segment: int) -> Path:
        return self._dir(self.logs, log) / f"{segment:09d}.jsonl"

    def _apply_append(self, db: TinyDB, record_id: int, record: dict[str, Any]) -> None:
        if not db.contains(doc_id=record_id):      # replaying the journal never adds a record twice
            db.insert(Document(record, doc_id=record_id))

    def _plan_append(self, change: _Change, appends: list[tuple[AppendOnlyLinesStorage, int, str]]) -> tuple[bytes, Any]:
        """Number the record (segment, id) and build its journal line."""
        text = change.text or "null"
        seg, record_id, queue = self._number_append(change.name, text, appends)
        line = (f'{{"op":"append","log":{_dumps(change.name)},"seg":{seg},"id":{record_id},'
                f'"r":{text}}}\n').encode()
        return line, queue

    def _number_append(self, log: str, text: str, appends: list[tuple[AppendOnlyLinesStorage, int, str]]
                       ) -> tuple[int, int, Any]:
        """The next (segment, id) of ``log``, and what queues the record for its file (into the batch's
        ``appends``) once journaled; the committer is the only thread that appends, so the log's current
        segment is its own."""
        state = self._logs.get(log)
        if state is None:
            state = self._logs[log] = _LogState()
            segments = self._segments(log)
            state.segment = int(segments[-1].stem) if segments else 0
            state.storage = AppendOnlyLinesStorage(self._segment_path(log, state.segment))
            state.count = state.storage.records()
        if state.count >= SEGMENT or state.storage is None:
            state.segment, state.count = state.segment + 1, 0
            state.storage = AppendOnlyLinesStorage(self._segment_path(log, state.segment))
        record_id = state.count + 1
        state.count = record_id
        storage = state.storage
        return state.segment, record_id, lambda: appends.append((storage, record_id, text))

    async def append(self, log: str, record: dict[str, Any]) -> None:
        await self._change("append", log, "", _dumps(record))

    def _read_segment(self, path: Path) -> list[dict[str, Any]]:
        db = self._open_segment(path)
        rows = [dict(row) for row in db.all()]
        db.close()
        return rows

    def _key_in(self, path: Path) -> str:
        """The key stored in a document file named by a hash (keys too long for a file name)."""
        for _ in range(20):
            try:
                stored = InPlaceJSONStorage(path).read() or {}
                return str(stored.get("_default", {}).get(str(DOC_ID), {}).get("key", ""))
            except ValueError:       # being rewritten this instant: read it again
                time.sleep(0.001)
        return ""

    async def read_log(self, log: str) -> AsyncIterator[dict[str, Any]]:
        await self._run(self._wait_applied, self._committed_seq)
        for segment in await self._run(self._segments, log):
            for row in await self._run(self._read_segment, segment):
                yield row

    # --- the rest ---------------------------------------------------------------------------------
    def _names(self, base: Path, seq: int = 0) -> list[str]:
        self._wait_applied(seq)
        return sorted(unquote(p.name) for p in base.iterdir() if p.is_dir() and not p.name.startswith("~"))

    async def collections(self) -> list[str]:
        """Every collection that has (or had) documents (for migration and export)."""
        return await self._run(self._names, self.docs, self._committed_seq)  # type: ignore[no-any-return]

    async def log_names(self) -> list[str]:
        return await self._run(self._names, self.logs, self._committed_seq)  # type: ignore[no-any-return]

    def leader_election(self) -> LocalLeaderElection:
        """One writer per folder, so leadership is decided inside this process."""
        return self._leader

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._queue_ready:
            self._stopping = True
            self._queue_ready.notify()
        self._committer.join()          # every change asked for is committed and acknowledged
        with self._apply_ready:
            self._apply_stopping = True
            self._apply_ready.notify_all()
        self._apply_hurry.set()
        self._applier.join()            # and written to its file
        self._pool.shutdown(wait=True)
        self.checkpoint()
        self.journal.close()
        os.close(self._lock_fd)


_dumps = jsonio.dumps       # compact, non-ASCII as itself (orjson where it agrees with json)


def _resolve(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.done():                 # the caller gave up (cancelled)
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


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
    exclusively (writes wait meanwhile). The journals go in too: changes acknowledged but not yet
    written to their files are applied when the restored store opens. Returns the number of files
    archived."""
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
            # acknowledged changes not yet in their files are in the journals: the restored store
            # applies them when it opens, as after a crash
            for name in (JOURNAL_PREVIOUS, JOURNAL):
                if (folder / name).exists() and (folder / name).stat().st_size:
                    archive.add(folder / name, arcname=name, recursive=False)
                    count += 1
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
                a_journal = member.name in (JOURNAL, JOURNAL_PREVIOUS) and member.isfile()
                if not a_journal and (top not in STORE_PARTS or ".." in Path(member.name).parts
                                    or not (member.isfile() or member.isdir())):
                    raise ValueError(f"{archive} is not a store backup (unexpected entry {member.name!r})")
            tar.extractall(staging, filter="data")
        for path in staging.rglob("*.json"):      # every file must load before we switch
            json.loads(path.read_bytes())
        for path in staging.rglob("*.jsonl"):
            for line in path.read_bytes().split(b"\n")[:-1]:
                json.loads(line)
        aside = None
        journal_size = sum((folder / name).stat().st_size for name in (JOURNAL, JOURNAL_PREVIOUS)
                           if (folder / name).exists())
        if journal_size or any((folder / part).exists() and any((folder / part).iterdir()) for part in STORE_PARTS):
            aside = folder / f"before-restore-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"
            aside.mkdir()
        for name in (JOURNAL, JOURNAL_PREVIOUS):
            journal = folder / name
            if journal.exists():              # changes of the store being replaced: never replay them
                if aside is not None:
                    os.replace(journal, aside / name)
                else:
                    journal.unlink()
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
        for name in (JOURNAL_PREVIOUS, JOURNAL):          # replayed when the store next opens
            if (staging / name).exists():
                os.replace(staging / name, folder / name)
        shutil.rmtree(staging)
        os.sync()
        return aside
    finally:
        os.close(fd)
