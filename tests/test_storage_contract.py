"""One contract for every DocumentStore: the same tests, subclassed once per backend
(memory, the reference; TinyDB, the embedded default; Azure Blob Storage on Azurite)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from storage.blob_store import BlobStore
from storage.memory import MemoryStore
from storage.tinydb_store import SEGMENT, TinyDBStore
from supervision.errors import VersionConflict
from supervision.models import Case, CaseState
from supervision.repository import CaseRepository
from tests.support.azurite import Azurite

ODD_KEYS = ["plain", "user:29:1AbC", "msteams/conversations/a:1xyz;messageid=17/", "with space",
            "percent%41", "~tilde", "ünïcødé-名前", "zebedee@example.org", "k" * 300, "dots..and.."]


async def collect(store: Any, log: str) -> list[dict[str, Any]]:
    return [record async for record in store.read_log(log)]


class StoreContract:
    """Subclasses provide the ``doc_store`` fixture (and ``reopen`` where data outlives the object)."""

    reopens = True

    async def reopen(self, store: Any) -> Any:
        raise NotImplementedError

    async def test_missing_document_is_none(self, doc_store: Any) -> None:
        assert await doc_store.get("cases", "nope") is None

    async def test_put_then_get_round_trips_json(self, doc_store: Any) -> None:
        data = {"name": "Zebedee Example", "n": 3, "f": 1.5, "ok": True, "none": None,
                "nested": {"list": [1, "two", {"three": 3}]}, "text": "ünïcødé ✓ \"quoted\" \n line"}
        etag = await doc_store.put("cases", "c1", data)
        stored = await doc_store.get("cases", "c1")
        assert stored is not None
        assert stored.data == data
        assert stored.etag == etag

    async def test_returned_data_is_a_copy(self, doc_store: Any) -> None:
        data = {"items": [1]}
        await doc_store.put("cases", "c1", data)
        data["items"].append(2)
        first = await doc_store.get("cases", "c1")
        first.data["items"].append(3)
        assert (await doc_store.get("cases", "c1")).data == {"items": [1]}

    async def test_each_write_gets_a_new_etag(self, doc_store: Any) -> None:
        first = await doc_store.put("cases", "c1", {"v": 1})
        second = await doc_store.put("cases", "c1", {"v": 1})
        assert first != second

    async def test_put_with_current_etag_succeeds_and_stale_etag_conflicts(self, doc_store: Any) -> None:
        first = await doc_store.put("cases", "c1", {"v": 1})
        second = await doc_store.put("cases", "c1", {"v": 2}, etag=first)
        with pytest.raises(VersionConflict):
            await doc_store.put("cases", "c1", {"v": 3}, etag=first)
        stored = await doc_store.get("cases", "c1")
        assert stored.data == {"v": 2} and stored.etag == second

    async def test_put_with_log_writes_the_record_with_the_document_and_a_conflict_writes_neither(
            self, doc_store: Any) -> None:
        first = await doc_store.put("cases", "c1", {"v": 1}, with_log=("audit", {"i": 1}))
        await doc_store.append("audit", {"i": 2})
        second = await doc_store.put("cases", "c1", {"v": 2}, etag=first, with_log=("audit", {"i": 3}))
        with pytest.raises(VersionConflict):
            await doc_store.put("cases", "c1", {"v": 9}, etag=first, with_log=("audit", {"i": 9}))
        with pytest.raises(VersionConflict):
            await doc_store.put("cases", "c1", {"v": 9}, create_only=True, with_log=("audit", {"i": 9}))
        stored = await doc_store.get("cases", "c1")
        assert stored.data == {"v": 2} and stored.etag == second
        assert await collect(doc_store, "audit") == [{"i": 1}, {"i": 2}, {"i": 3}]
        if self.reopens:
            doc_store = await self.reopen(doc_store)
            assert (await doc_store.get("cases", "c1")).data == {"v": 2}
            assert await collect(doc_store, "audit") == [{"i": 1}, {"i": 2}, {"i": 3}]

    async def test_put_with_etag_on_missing_document_conflicts(self, doc_store: Any) -> None:
        with pytest.raises(VersionConflict):
            await doc_store.put("cases", "ghost", {"v": 1}, etag='"123"')
        assert await doc_store.get("cases", "ghost") is None

    async def test_create_only(self, doc_store: Any) -> None:
        await doc_store.put("cases", "c1", {"v": 1}, create_only=True)
        with pytest.raises(VersionConflict):
            await doc_store.put("cases", "c1", {"v": 2}, create_only=True)
        assert (await doc_store.get("cases", "c1")).data == {"v": 1}

    async def test_delete(self, doc_store: Any) -> None:
        etag = await doc_store.put("cases", "c1", {"v": 1})
        await doc_store.put("cases", "c2", {"v": 2})
        with pytest.raises(VersionConflict):
            await doc_store.delete("cases", "c1", etag='"stale"')
        assert await doc_store.get("cases", "c1") is not None
        await doc_store.delete("cases", "c1", etag=etag)
        await doc_store.delete("cases", "c2")
        await doc_store.delete("cases", "never-there")
        assert await doc_store.get("cases", "c1") is None
        assert await doc_store.keys("cases") == []

    async def test_keys_are_sorted_prefix_filtered_and_survive_odd_characters(self, doc_store: Any) -> None:
        for key in ODD_KEYS:
            await doc_store.put("odd", key, {"key": key})
        assert await doc_store.keys("odd") == sorted(ODD_KEYS)
        for key in ODD_KEYS:
            assert (await doc_store.get("odd", key)).data == {"key": key}
        assert await doc_store.keys("odd", "user:") == ["user:29:1AbC"]
        assert await doc_store.keys("odd", "msteams/") == ["msteams/conversations/a:1xyz;messageid=17/"]
        assert await doc_store.keys("odd", "k" * 10) == ["k" * 300]
        assert await doc_store.keys("odd", "nothing") == []
        assert await doc_store.keys("empty-collection") == []

    async def test_collections_are_independent(self, doc_store: Any) -> None:
        await doc_store.put("a", "k", {"in": "a"})
        await doc_store.put("b", "k", {"in": "b"})
        await doc_store.delete("a", "k")
        assert await doc_store.get("a", "k") is None
        assert (await doc_store.get("b", "k")).data == {"in": "b"}

    async def test_logs_keep_order_and_never_mix(self, doc_store: Any) -> None:
        count = SEGMENT + 25       # crosses a TinyDB segment boundary
        for i in range(count):
            await doc_store.append("audit", {"i": i, "who": "u1"})
            if i % 50 == 0:
                await doc_store.append("deletions", {"i": i})
        audit = await collect(doc_store, "audit")
        assert [r["i"] for r in audit] == list(range(count))
        assert audit[0] == {"i": 0, "who": "u1"}
        assert [r["i"] for r in await collect(doc_store, "deletions")] == list(range(0, count, 50))
        assert await collect(doc_store, "never-written") == []

    async def test_appended_record_is_a_copy(self, doc_store: Any) -> None:
        record = {"tags": ["a"]}
        await doc_store.append("audit", record)
        record["tags"].append("b")
        assert await collect(doc_store, "audit") == [{"tags": ["a"]}]

    async def test_concurrent_case_updates_are_never_lost(self, doc_store: Any) -> None:
        cases = CaseRepository(doc_store)
        case = Case(id="c-concurrent", reference="MAGS-BOL-260105-0001", profile_id="bolton",
                    state=CaseState.REQUESTED, created_at=datetime(2026, 1, 5, 9, tzinfo=UTC))
        await cases.create(case)

        def add_info(i: int) -> Any:
            def change(c: Case) -> None:
                c.request.additional_information.append(f"note {i}")
            return change

        await asyncio.gather(*(cases.update(case.id, add_info(i)) for i in range(12)))
        stored = await cases.require(case.id)
        assert sorted(stored.request.additional_information) == sorted(f"note {i}" for i in range(12))
        assert stored.version == 13

    async def test_data_outlives_the_store_object(self, doc_store: Any) -> None:
        if not self.reopens:
            pytest.skip("memory only lives as long as the object")
        await doc_store.put("cases", "c1", {"v": 1})
        await doc_store.append("audit", {"i": 1})
        again = await self.reopen(doc_store)
        try:
            stored = await again.get("cases", "c1")
            assert stored is not None and stored.data == {"v": 1}
            assert await collect(again, "audit") == [{"i": 1}]
            await again.put("cases", "c1", {"v": 2}, etag=stored.etag)
        finally:
            await again.close()

    async def test_leader_election(self, doc_store: Any) -> None:
        election = doc_store.leader_election()
        lease = await election.try_acquire("scheduler", 15)
        assert lease is not None
        assert await election.try_acquire("scheduler", 15) is None
        assert await lease.renew() is True
        other = await election.try_acquire("another-job", 15)
        assert other is not None
        await lease.release()
        again = await election.try_acquire("scheduler", 15)
        assert again is not None
        await again.release()
        await other.release()


class TestMemoryStore(StoreContract):
    reopens = False

    @pytest.fixture
    async def doc_store(self) -> AsyncIterator[MemoryStore]:
        store = MemoryStore()
        yield store
        await store.close()


class TestTinyDBStore(StoreContract):
    @pytest.fixture
    async def doc_store(self, tmp_path: Path) -> AsyncIterator[TinyDBStore]:
        store = TinyDBStore(tmp_path / "data")
        yield store
        await store.close()

    async def reopen(self, store: TinyDBStore) -> TinyDBStore:
        await store.close()         # one writer per folder: the old object lets go first
        return TinyDBStore(store.folder)


@pytest.mark.azurite
class TestBlobStore(StoreContract):
    @pytest.fixture
    async def doc_store(self, azurite: Azurite) -> AsyncIterator[BlobStore]:
        store = BlobStore(azurite.connection_string, azurite.container_name())
        yield store
        await store.close()

    async def reopen(self, store: BlobStore) -> BlobStore:
        return BlobStore(self._connection, store.container_name)

    @pytest.fixture(autouse=True)
    def _remember_connection(self, azurite: Azurite) -> None:
        self._connection = azurite.connection_string
