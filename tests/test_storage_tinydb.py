"""The TinyDB store beyond the shared contract: crash safety under SIGKILL, the single-writer lock,
bounded cost per operation, and backup/restore.

Run as a script (``python tests/test_storage_tinydb.py writer DIR SEED``) this file is the writer the
crash test kills: it writes, updates and appends as fast as it can and prints each acknowledgement.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

from storage import tinydb_store  # noqa: E402
from storage.tinydb_store import TinyDBStore, backup, encode_name, restore  # noqa: E402
from supervision.errors import StoreLocked, VersionConflict  # noqa: E402

KILLS = 20


def checksum(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --- the writer that gets killed ------------------------------------------------------------------
async def writer(folder: str, seed: int) -> None:
    rng = random.Random(seed)
    # every other run checkpoints every few dozen writes, so kills land in checkpoints too
    store = TinyDBStore(folder, checkpoint_bytes=30_000 if seed % 2 else tinydb_store.CHECKPOINT_BYTES)
    out = sys.stdout
    out.write("READY\n")
    out.flush()
    n = 0
    while True:
        n += 1
        op = rng.random()
        if op < 0.5:
            payload = "x" * rng.randint(50, 4000)
            key = f"d{seed}-{n}"
            await store.put("docs", key, {"n": n, "payload": payload, "sum": checksum(payload)}, create_only=True)
            out.write(f"C {key}\n")
        elif op < 0.8:
            while True:
                current = await store.get("counter", "c")
                value = (current.data["v"] if current else 0) + 1
                try:        # each value with its log record, in one write (with_log): both or neither
                    if current is None:
                        await store.put("counter", "c", {"v": value}, create_only=True, with_log=("counted", {"v": value}))
                    else:
                        await store.put("counter", "c", {"v": value}, etag=current.etag,
                                        with_log=("counted", {"v": value}))
                    break
                except VersionConflict:
                    continue
            out.write(f"U {value}\n")
        else:
            await store.append("events", {"seed": seed, "n": n})
            out.write(f"A {seed} {n}\n")
        out.flush()


# --- the crash test -------------------------------------------------------------------------------
def _acks(raw: bytes) -> list[list[str]]:
    lines = raw.decode(errors="replace").split("\n")[:-1]       # the last, unterminated line is no ack
    return [line.split() for line in lines if line and line != "READY"]


async def _verify(folder: Path, created: set[str], counter: int, appended: set[tuple[int, int]]) -> tuple[int, int]:
    """(lost, corrupt): acknowledged writes missing, and documents or records that do not load."""
    lost = corrupt = 0
    try:
        store = TinyDBStore(folder)
    except Exception:
        return len(created) + len(appended), 1
    try:
        for key in await store.keys("docs"):
            try:
                stored = await store.get("docs", key)
            except Exception:
                corrupt += 1
                continue
            if stored is None or stored.data.get("sum") != checksum(stored.data.get("payload", "")):
                corrupt += 1
        present = set(await store.keys("docs"))
        lost += len(created - present)
        try:
            current = await store.get("counter", "c")
            if counter and (current is None or current.data["v"] < counter):
                lost += 1
            # a counter value without its log record, or a record without its value: a torn pair
            counted = [r["v"] async for r in store.read_log("counted")]
            if sorted(counted) != list(range(1, (current.data["v"] if current else 0) + 1)):
                corrupt += 1
        except Exception:
            corrupt += 1
        try:
            records = {(r["seed"], r["n"]) async for r in store.read_log("events")}
            lost += len(appended - records)
        except Exception:
            corrupt += 1
    finally:
        await store.close()
    return lost, corrupt


@pytest.mark.slow
async def test_kill_minus_nine_loses_and_corrupts_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    rng = random.Random(20260105)
    created: set[str] = set()
    appended: set[tuple[int, int]] = set()
    counter = 0
    total_lost = total_corrupt = acknowledged = 0
    for kill in range(KILLS):
        process = subprocess.Popen([sys.executable, str(Path(__file__)), "writer", str(folder), str(kill)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready == b"READY\n", process.stderr.read() if process.stderr else ready
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(process.pid, signal.SIGKILL)
        rest, _err = process.communicate(timeout=10)
        assert process.returncode == -signal.SIGKILL
        for ack in _acks(rest):
            acknowledged += 1
            if ack[0] == "C":
                created.add(ack[1])
            elif ack[0] == "U":
                counter = max(counter, int(ack[1]))
            elif ack[0] == "A":
                appended.add((int(ack[1]), int(ack[2])))
        lost, corrupt = await _verify(folder, created, counter, appended)
        total_lost += lost
        total_corrupt += corrupt
    print(f"\ncrash test: {KILLS} SIGKILLs, {acknowledged} acknowledged writes "
          f"({len(created)} documents, counter {counter}, {len(appended)} log records): "
          f"lost {total_lost}, corrupt {total_corrupt}")
    assert acknowledged > KILLS * 5, "the writer hardly wrote anything: the test proves nothing"
    assert total_lost == 0
    assert total_corrupt == 0


def test_the_verifier_does_count_a_torn_document(tmp_path: Path) -> None:
    """The crash test's checker is not blind: a half-written document file is counted as corrupt."""
    async def scenario() -> tuple[int, int]:
        store = TinyDBStore(tmp_path / "s")
        await store.put("docs", "d1", {"n": 1, "payload": "abc", "sum": checksum("abc")})
        await store.put("docs", "d2", {"n": 2, "payload": "def", "sum": checksum("def")})
        await store.close()
        path = tmp_path / "s" / "docs" / "docs" / "d2.json"
        path.write_bytes(path.read_bytes()[:25])          # what an in-place truncating write leaves
        return await _verify(tmp_path / "s", {"d1", "d2", "d3"}, 0, set())

    assert asyncio.run(scenario()) == (1, 1)


# --- single writer --------------------------------------------------------------------------------
async def test_a_second_store_on_the_same_folder_is_refused_with_the_folder_named(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "data")
    try:
        with pytest.raises(StoreLocked) as refused:
            TinyDBStore(tmp_path / "data")
        assert str((tmp_path / "data").resolve()) in str(refused.value)
        code = ("import sys; sys.path.insert(0, '.');\n"
                "from storage.tinydb_store import TinyDBStore\nfrom supervision.errors import StoreLocked\n"
                f"try:\n    TinyDBStore({str(tmp_path / 'data')!r})\nexcept StoreLocked as e:\n"
                "    print(e); sys.exit(3)\n")
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert result.returncode == 3, result.stderr
        assert str((tmp_path / "data").resolve()) in result.stdout
        assert f"pid {os.getpid()}" in result.stdout
    finally:
        await store.close()
    again = TinyDBStore(tmp_path / "data")          # released on close
    await again.close()


async def test_half_written_temporary_files_are_cleared_at_start(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "data")
    await store.put("cases", "c1", {"v": 1})
    await store.close()
    (tmp_path / "data" / "tmp" / "c1.json.abc.tmp").write_bytes(b'{"_default": {"1": {"ke')
    store = TinyDBStore(tmp_path / "data")
    try:
        assert list((tmp_path / "data" / "tmp").iterdir()) == []
        assert (await store.get("cases", "c1")).data == {"v": 1}
    finally:
        await store.close()


async def test_journal_entries_not_yet_applied_are_applied_at_start(tmp_path: Path) -> None:
    """What a kill between the journal flush (the acknowledgement) and the file write leaves behind."""
    store = TinyDBStore(tmp_path / "data")
    await store.put("cases", "c1", {"v": 1})
    await store.append("audit", {"i": 1})
    await store.close()                               # checkpoint: the journal is empty now
    assert (tmp_path / "data" / "journal.jsonl").stat().st_size == 0
    lines = [
        {"op": "put", "c": "cases", "k": "c1", "r": {"key": "c1", "etag": '"e2"', "data": {"v": 2}}},
        {"op": "put", "c": "cases", "k": "c2", "r": {"key": "c2", "etag": '"e3"', "data": {"v": 1}}},
        {"op": "append", "log": "audit", "seg": 0, "id": 1, "r": {"i": 1}},     # applied already: not twice
        {"op": "append", "log": "audit", "seg": 0, "id": 2, "r": {"i": 2}},
        {"op": "del", "c": "cases", "k": "c2"},
        {"op": "put", "c": "cases", "k": "c3", "r": {"key": "c3", "etag": '"e4"', "data": {"v": 3}},
         "then": {"log": "audit", "seg": 0, "id": 3, "r": {"i": 3}}},       # a put with its log record
    ]
    torn = json.dumps({"op": "put", "c": "cases", "k": "c4", "r": {"key": "c4", "etag": '"e5"', "data": {"v": 4}},
                       "then": {"log": "audit", "seg": 0, "id": 4, "r": {"i": 4}}})
    raw = "".join(json.dumps(line) + "\n" for line in lines) + torn[:-12]   # torn: neither the put nor its record
    (tmp_path / "data" / "journal.jsonl").write_text(raw)          # the last line torn: never acknowledged
    store = TinyDBStore(tmp_path / "data")
    try:
        assert (await store.get("cases", "c1")) == tinydb_store.Stored({"v": 2}, '"e2"')
        assert await store.keys("cases") == ["c1", "c3"]
        assert [r async for r in store.read_log("audit")] == [{"i": 1}, {"i": 2}, {"i": 3}]
        assert (tmp_path / "data" / "journal.jsonl").stat().st_size == 0
        await store.append("audit", {"i": 4})
        await store.put("cases", "c5", {"v": 5}, with_log=("audit", {"i": 5}))
        assert [r["i"] async for r in store.read_log("audit")] == [1, 2, 3, 4, 5]
    finally:
        await store.close()


async def test_checkpoint_empties_the_journal_when_it_grows(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "data", checkpoint_bytes=10_000)
    try:
        for i in range(30):
            await store.put("cases", f"c{i}", {"text": "x" * 1000})
        with store._checkpointing:            # checkpoints run in the background: let the last finish
            pass
        assert store.checkpoints >= 2
        assert store.journal.size < 10_000 + 3 * 1200
        assert len(await store.keys("cases")) == 30
    finally:
        await store.close()


# --- bounded cost ---------------------------------------------------------------------------------
async def test_an_operation_reads_one_small_file_not_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TinyDBStore(tmp_path / "data")
    try:
        await store.bulk_put("cases", {f"c{i}": {"i": i, "text": "y" * 500} for i in range(300)})
        for i in range(450):
            await store.append("audit", {"i": i})
        await asyncio.to_thread(store._wait_applied, store._committed_seq)   # none of that still to write
        reads: list[Path] = []
        writes: list[Path] = []

        def counting(method: Any, seen: list[Path]) -> Any:
            def wrapper(self: Any, *args: Any) -> Any:
                seen.append(self.path)
                return method(self, *args)
            return wrapper

        for storage in (tinydb_store.AtomicJSONStorage, tinydb_store.AppendOnlyLinesStorage):
            original_read, original_write = storage.read, storage.write
            monkeypatch.setattr(storage, "read", counting(original_read, reads))
            monkeypatch.setattr(storage, "write", counting(original_write, writes))
        monkeypatch.setattr(tinydb_store.AppendOnlyLinesStorage, "append_lines",
                            counting(tinydb_store.AppendOnlyLinesStorage.append_lines, writes))
        stored = await store.get("cases", "c150")
        await store.put("cases", "c150", {**stored.data, "i": -1}, etag=stored.etag)
        await store.append("audit", {"i": 450})
        await asyncio.to_thread(store._wait_applied, store._committed_seq)     # the files follow the journal
        touched = {p.name for p in reads + writes}
        assert touched == {"c150.json", "000000002.jsonl"}, touched
        assert max(p.stat().st_size for p in set(reads + writes)) < 20_000
        assert [r["i"] async for r in store.read_log("audit")] == list(range(451))
    finally:
        await store.close()


async def test_reads_asked_for_together_each_get_their_own_answer(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "data")
    try:
        await store.bulk_put("cases", {f"c{i}": {"i": i} for i in range(40)})
        cancelled = asyncio.ensure_future(store.get("cases", "c1"))
        wanted = [f"c{i}" for i in range(0, 60, 3)]
        found = asyncio.gather(*(store.get("cases", key) for key in wanted))
        cancelled.cancel()
        results = await found
        assert [r.data["i"] if r else None for r in results] == [i if i < 40 else None for i in range(0, 60, 3)]
        assert (await store.get("cases", "c1")).data == {"i": 1}
    finally:
        await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.get("cases", "c1")


def test_file_names_are_reversible_and_bounded() -> None:
    assert encode_name("user:29/ab c~") == "user%3A29%2Fab%20c%7E"
    assert encode_name("x" * 500).startswith("~") and len(encode_name("x" * 500)) == 65


async def test_io_runs_off_the_event_loop(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "data")
    try:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.gather(*(store.put("cases", f"c{i}", {"i": i, "t": "z" * 2000}) for i in range(40)))
        task.cancel()
        assert ticks > 40       # the loop kept turning while the writes (with fsync) ran on threads
    finally:
        await store.close()


# --- backup and restore ---------------------------------------------------------------------------
async def test_backup_while_writing_then_restore(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "data")
    await store.put("cases", "c1", {"v": 1})
    await store.append("audit", {"i": 1})

    async def keep_writing() -> int:
        n = 0
        while True:
            n += 1
            await store.put("busy", f"k{n % 5}", {"n": n})
            await asyncio.sleep(0)

    writing = asyncio.create_task(keep_writing())
    count = await asyncio.to_thread(backup, tmp_path / "data", tmp_path / "b.tar.gz")
    writing.cancel()
    assert count >= 2          # the case document and the audit segment, at least
    await store.put("cases", "c1", {"v": 2})
    await store.put("cases", "c2", {"v": 1})
    with pytest.raises(StoreLocked):
        restore(tmp_path / "data", tmp_path / "b.tar.gz")     # the running writer holds the lock
    await store.close()
    aside = restore(tmp_path / "data", tmp_path / "b.tar.gz")
    assert aside is not None and (aside / "docs").exists()
    store = TinyDBStore(tmp_path / "data")
    try:
        assert (await store.get("cases", "c1")).data == {"v": 1}
        assert await store.get("cases", "c2") is None
        assert [r async for r in store.read_log("audit")] == [{"i": 1}]
        for key in await store.keys("busy"):
            json.dumps((await store.get("busy", key)).data)
    finally:
        await store.close()


async def test_a_backup_holds_changes_acknowledged_but_not_yet_in_their_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TinyDBStore(tmp_path / "data")
    await store.put("cases", "c1", {"v": 1})
    await store.append("audit", {"i": 1})
    await asyncio.to_thread(store._wait_applied, store._committed_seq)
    held, release = threading.Event(), threading.Event()
    real_apply = store._apply

    def slow_apply(appends: Any) -> None:        # the applier held back: files lag the journal
        held.set()
        assert release.wait(timeout=20)
        real_apply(appends)

    monkeypatch.setattr(store, "_apply", slow_apply)
    await store.put("cases", "c1", {"v": 2})            # acknowledged: in the journal, not the file
    await store.put("cases", "c2", {"v": 1})
    await store.append("audit", {"i": 2})
    assert held.wait(timeout=10)
    assert json.loads((tmp_path / "data" / "docs" / "cases" / "c1.json").read_text())["_default"]["1"]["data"] == {"v": 1}
    assert (await store.get("cases", "c1")).data == {"v": 2}          # reads see it meanwhile
    await asyncio.to_thread(backup, tmp_path / "data", tmp_path / "b.tar.gz")
    release.set()
    await store.put("cases", "c3", {"v": 1})                # after the backup: not in it
    await store.close()
    restore(tmp_path / "data", tmp_path / "b.tar.gz")
    store = TinyDBStore(tmp_path / "data")
    try:
        assert (await store.get("cases", "c1")).data == {"v": 2}
        assert (await store.get("cases", "c2")).data == {"v": 1}
        assert await store.get("cases", "c3") is None
        assert [r async for r in store.read_log("audit")] == [{"i": 1}, {"i": 2}]
    finally:
        await store.close()


async def test_files_follow_the_journal_and_listings_wait_for_them(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = TinyDBStore(tmp_path / "data")
    held, release = threading.Event(), threading.Event()
    real_apply = store._apply

    def slow_apply(appends: Any) -> None:
        held.set()
        assert release.wait(timeout=20)
        real_apply(appends)

    monkeypatch.setattr(store, "_apply", slow_apply)
    try:
        for i in range(20):                                 # one document rewritten many times
            await store.put("cases", "c1", {"v": i})
        await store.put("cases", "c2", {"v": 0})
        await store.delete("cases", "c2")
        await store.append("audit", {"i": 0})
        assert held.wait(timeout=10)
        assert (await store.get("cases", "c1")).data == {"v": 19}
        assert await store.get("cases", "c2") is None
        listing = asyncio.ensure_future(store.keys("cases"))
        log = asyncio.ensure_future(store.read_log("audit").__anext__())
        await asyncio.sleep(0.2)
        assert not listing.done() and not log.done()        # a listing waits for the files
        release.set()
        assert await listing == ["c1"]
        assert await log == {"i": 0}
        written = store.files_written
        assert written < 20, written                        # superseded versions are never written
    finally:
        release.set()
        await store.close()
    assert json.loads((tmp_path / "data" / "docs" / "cases" / "c1.json").read_text())["_default"]["1"]["data"] == {"v": 19}
    assert not (tmp_path / "data" / "docs" / "cases" / "c2.json").exists()


def test_restore_refuses_an_archive_that_is_not_a_backup(tmp_path: Path) -> None:
    import tarfile

    bad = tmp_path / "bad.tar.gz"
    (tmp_path / "evil.txt").write_text("x")
    with tarfile.open(bad, "w:gz") as archive:
        archive.add(tmp_path / "evil.txt", arcname="../evil.txt")
    with pytest.raises(ValueError, match="not a store backup"):
        restore(tmp_path / "data", bad)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "writer":
    asyncio.run(writer(sys.argv[2], int(sys.argv[3])))


# --- the in-memory document cache and group commit ------------------------------------------------
async def test_a_cached_document_is_answered_on_the_loop_as_a_fresh_copy(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "data")
    try:
        etag = await store.put("cases", "c1", {"i": 1, "nested": {"list": [1, 2]}})
        assert await store.get("cases", "nope") is None        # absence is remembered too

        def no_threads(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a cached read went to the thread pool")

        store._pool.submit = no_threads   # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        original = loop.run_in_executor
        loop.run_in_executor = no_threads  # type: ignore[method-assign]
        try:
            first = await store.get("cases", "c1")
            assert first is not None and first.etag == etag and first.data == {"i": 1, "nested": {"list": [1, 2]}}
            first.data["nested"]["list"].append(3)           # the caller's copy, not the store's
            again = await store.get("cases", "c1")
            assert again is not None and again.data == {"i": 1, "nested": {"list": [1, 2]}}
            assert await store.get("cases", "nope") is None
        finally:
            loop.run_in_executor = original  # type: ignore[method-assign]
        del store._pool.submit
    finally:
        await store.close()


async def test_the_cache_follows_every_change_and_the_files_agree(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    store = TinyDBStore(folder, cache_bytes=4_000)          # small: entries are evicted as we go
    expected: dict[str, dict[str, Any] | None] = {}
    rng = random.Random(7)
    try:
        for step in range(300):
            key = f"c{rng.randrange(30)}"
            current = await store.get("cases", key)
            assert (current.data if current else None) == expected.get(key)
            if current is not None and rng.random() < 0.2:
                await store.delete("cases", key, etag=current.etag)
                expected[key] = None
            else:
                data = {"step": step, "text": "x" * rng.randrange(400)}
                await store.put("cases", key, data, etag=current.etag if current else None)
                expected[key] = data
            if current is not None and rng.random() < 0.1:        # a stale etag is still refused
                with pytest.raises(VersionConflict):
                    await store.put("cases", key, {"stale": True}, etag=current.etag)
            assert store._cache_bytes <= 4_000
        await store.bulk_put("cases", {"c0": {"bulk": 1}})    # a bulk load replaces what was cached
        expected["c0"] = {"bulk": 1}
    finally:
        await store.close()
    reopened = TinyDBStore(folder)                            # the files say the same as the cache did
    try:
        for key, data in expected.items():
            found = await reopened.get("cases", key)
            assert (found.data if found else None) == data, key
    finally:
        await reopened.close()


async def test_concurrent_writes_share_journal_flushes(tmp_path: Path) -> None:
    store = TinyDBStore(tmp_path / "data", workers=8)
    try:
        before = store.journal.flushes
        await asyncio.gather(*(store.put("cases", f"c{i}", {"i": i}) for i in range(200)),
                             *(store.append("audit", {"i": i}) for i in range(100)))
        flushes = store.journal.flushes - before
        assert 0 < flushes < 300, flushes        # every write durable, fewer flushes than writes
        assert sorted([r["i"] async for r in store.read_log("audit")]) == list(range(100))
        for i in range(200):
            found = await store.get("cases", f"c{i}")
            assert found is not None and found.data == {"i": i}
    finally:
        await store.close()


async def test_a_checkpoint_lets_writes_go_on_and_a_crash_in_it_loses_nothing(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "data"
    store = TinyDBStore(folder)
    flushing = threading.Event()
    release = threading.Event()
    real_sync = tinydb_store.sync_filesystem

    def slow_sync(path: Path) -> None:           # the file system flush of a checkpoint, held open
        flushing.set()
        assert release.wait(timeout=10)
        real_sync(path)

    monkeypatch.setattr(tinydb_store, "sync_filesystem", slow_sync)
    try:
        for i in range(10):
            await store.put("cases", f"c{i}", {"i": i, "text": "x" * 300})
        store.checkpoint_bytes = 2_000
        await asyncio.wait_for(store.put("cases", "c10", {"i": 10, "text": "x" * 300}), 5)   # not held
        assert await asyncio.to_thread(flushing.wait, 5)
        assert (folder / "journal.previous.jsonl").exists()
        # while the files are being flushed, writes go on into the fresh journal
        await asyncio.wait_for(store.put("cases", "during", {"i": -1}), 5)
        previous = (folder / "journal.previous.jsonl").read_bytes()
        current = (folder / "journal.jsonl").read_bytes()
        assert b'"c10"' in previous and b'"during"' in current and b'"during"' not in previous
        release.set()
        await asyncio.to_thread(store.checkpoint)            # waits for the one in progress
        assert not (folder / "journal.previous.jsonl").exists()
    finally:
        release.set()
        monkeypatch.setattr(tinydb_store, "sync_filesystem", real_sync)
        await store.close()
    # a crash in the middle of a checkpoint leaves both journals and torn files: replayed in order
    (folder / "journal.previous.jsonl").write_text(
        json.dumps({"op": "put", "c": "cases", "k": "c1", "r": {"key": "c1", "etag": '"e1"', "data": {"i": "old"}}})
        + "\n")
    (folder / "journal.jsonl").write_text(
        json.dumps({"op": "put", "c": "cases", "k": "c1", "r": {"key": "c1", "etag": '"e2"', "data": {"i": "new"}}})
        + "\n")
    (folder / "docs" / "cases" / "c1.json").write_text('{"_default": {"1": {"ke')      # torn
    again = TinyDBStore(folder)
    try:
        found = await again.get("cases", "c1")
        assert found is not None and found.data == {"i": "new"} and found.etag == '"e2"'
        assert (await again.get("cases", "during")).data == {"i": -1}
        assert not (folder / "journal.previous.jsonl").exists()
        assert (folder / "journal.jsonl").stat().st_size == 0
    finally:
        await again.close()


@pytest.mark.parametrize("dsync", [True, False], ids=["pwritev-dsync", "write-then-fdatasync"])
async def test_the_journal_writes_the_same_lines_either_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            dsync: bool) -> None:
    if not dsync:
        monkeypatch.setattr(tinydb_store, "DSYNC_WRITE", 0)
    synced: list[int] = []
    real_fdatasync = os.fdatasync
    monkeypatch.setattr(tinydb_store.os, "fdatasync", lambda fd: (synced.append(fd), real_fdatasync(fd))[1])
    store = TinyDBStore(tmp_path / "data")
    try:
        await store.put("cases", "c1", {"v": 1})
        await store.append("audit", {"i": 1})
        entries = store.journal.entries()
        assert [e["op"] for e in entries] == ["put", "append"]
        assert store.journal.size == (tmp_path / "data" / "journal.jsonl").stat().st_size
        assert bool(synced) is (not dsync or not tinydb_store.DSYNC_WRITE)
    finally:
        await store.close()
    reopened = TinyDBStore(tmp_path / "data")
    try:
        assert (await reopened.get("cases", "c1")).data == {"v": 1}
    finally:
        await reopened.close()


async def test_a_failed_file_write_stops_writes_and_keeps_the_journal_for_the_next_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "data"
    store = TinyDBStore(folder)
    await store.put("cases", "c1", {"v": 1})
    await asyncio.to_thread(store._wait_applied, store._committed_seq)

    def broken(appends: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "_apply", broken)
    await store.put("cases", "c1", {"v": 2})               # acknowledged: durable in the journal
    await asyncio.to_thread(store._wait_applied, store._committed_seq)
    with pytest.raises(RuntimeError, match="stopped writing"):
        await store.put("cases", "c2", {"v": 1})
    await store.close()                                     # no checkpoint: the journal is kept
    assert json.loads((folder / "docs" / "cases" / "c1.json").read_text())["_default"]["1"]["data"] == {"v": 1}
    assert (folder / "journal.jsonl").stat().st_size > 0
    monkeypatch.undo()
    reopened = TinyDBStore(folder)                          # the next start applies it
    try:
        assert (await reopened.get("cases", "c1")).data == {"v": 2}
        assert await reopened.get("cases", "c2") is None
    finally:
        await reopened.close()
