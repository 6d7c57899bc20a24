"""Operations commands: backup and restore of the TinyDB store, migrate into Blob Storage (Azurite),
purge and export-case from the command line."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from docx import Document

from bot.__main__ import main
from bot.config import Config
from bot.ops import copy_store, migrate
from storage.blob_store import BlobStore
from storage.tinydb_store import SEGMENT, TinyDBStore
from supervision.clock import FixedClock
from supervision.lifecycle import Event, apply
from supervision.models import Case, CaseState, ChildDetails, RequestDetails
from supervision.repository import AuditLog, CaseRepository
from tests.support.azurite import Azurite

CLOSED = datetime(2026, 1, 5, 9, tzinfo=UTC)


def closed_case(case_id: str, reference: str) -> Case:
    clock = FixedClock(CLOSED)
    case = Case(id=case_id, reference=reference, profile_id="bolton", state=CaseState.REQUESTED, created_at=CLOSED,
                request=RequestDetails(child=ChildDetails(forename="Zebedee", surname="Example")))
    apply(case, Event.SUBMIT, actor="user-id-0", clock=clock)
    apply(case, Event.DECLINE, actor="user-id-1", clock=clock, reason="not suitable")
    return case


async def seed(folder: Path) -> None:
    store = TinyDBStore(folder)
    try:
        cases = CaseRepository(store)
        await cases.create(closed_case("case-ops-1", "MAGS-BOL-260105-0F01"))
        await cases.create(closed_case("case-ops-2", "MAGS-BOL-260105-0F02"))
        await store.put("schedule", "case-ops-1", {"slots": ["2026-02-01"]})
        await AuditLog(store, FixedClock(CLOSED)).record(actor="user-id-0", action="request.view", case_id="case-ops-1")
    finally:
        await store.close()


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def bot(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """``python -m bot ARGS`` in this process (as the command line runs it), with its own environment."""
    def run(*args: str, env: dict[str, str], cwd: Path) -> Ran:
        monkeypatch.chdir(cwd)                        # no .env of the repository
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def test_cli_backup_restore_purge_and_export(tmp_path: Path, bot: Callable[..., Ran]) -> None:
    data = tmp_path / "data"
    asyncio.run(seed(data))
    env = {"DATA_DIR": str(data), "STORAGE_BACKEND": "tinydb"}

    made = bot("backup", "--out", str(tmp_path / "backup.tar.gz"), env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "backup:" in made.stdout and (tmp_path / "backup.tar.gz").stat().st_size > 0

    dry = bot("purge", "--now", "2033-01-05T10:00:00+00:00", "--dry-run", env=env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would delete MAGS-BOL-260105-0F01" in dry.stdout and "2 cases would delete" in dry.stdout

    exported = bot("export-case", "MAGS-BOL-260105-0F01", "--out", str(tmp_path / "sar"), env=env, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    document = json.loads((tmp_path / "sar" / "MAGS-BOL-260105-0F01.json").read_text())
    assert document["case"]["request"]["child"]["forename"] == "Zebedee"
    assert document["holdings"]["schedule"] == {"case-ops-1": {"slots": ["2026-02-01"]}}
    assert document["exported_by"].startswith("cli:")
    docx = Document(str(tmp_path / "sar" / "MAGS-BOL-260105-0F01.docx"))
    assert any(cell.text == "Zebedee" for table in docx.tables for row in table.rows for cell in row.cells)
    assert oct((tmp_path / "sar" / "MAGS-BOL-260105-0F01.json").stat().st_mode & 0o777) == "0o600"

    missing = bot("export-case", "MAGS-NOPE", "--out", str(tmp_path / "sar"), env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "no case MAGS-NOPE" in missing.stderr

    purged = bot("purge", "--now", "2033-01-05T10:00:00+00:00", env=env, cwd=tmp_path)
    assert purged.returncode == 0, purged.stderr
    assert "2 cases deleted" in purged.stdout

    async def count_cases() -> int:
        store = TinyDBStore(data)
        try:
            return len(await store.keys("cases"))
        finally:
            await store.close()

    assert asyncio.run(count_cases()) == 0
    restored = bot("restore", str(tmp_path / "backup.tar.gz"), env=env, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert asyncio.run(count_cases()) == 2

    bad_time = bot("purge", "--now", "next tuesday", env=env, cwd=tmp_path)
    assert bad_time.returncode == 2 and "--now" in bad_time.stderr


def test_restore_while_the_bot_holds_the_store_is_refused(tmp_path: Path, bot: Callable[..., Ran]) -> None:
    data = tmp_path / "data"
    asyncio.run(seed(data))
    env = {"DATA_DIR": str(data), "STORAGE_BACKEND": "tinydb"}
    assert bot("backup", "--out", str(tmp_path / "b.tar.gz"), env=env, cwd=tmp_path).returncode == 0

    async def open_store() -> TinyDBStore:
        return TinyDBStore(data)

    store = asyncio.run(open_store())                  # the running bot's writer lock
    try:
        refused = bot("restore", str(tmp_path / "b.tar.gz"), env=env, cwd=tmp_path)
    finally:
        asyncio.run(store.close())
    assert refused.returncode == 3 and str(data.resolve()) in refused.stderr


@pytest.mark.azurite
async def test_migrate_copies_everything_and_can_run_again(tmp_path: Path, azurite: Azurite,
                                                           make_config: Callable[..., Config]) -> None:
    data = tmp_path / "data"
    await seed(data)
    store = TinyDBStore(data)
    for i in range(SEGMENT + 5):                       # a log over more than one TinyDB segment
        await store.append("audit", {"i": i})
    await store.close()
    container = azurite.container_name("migrate")
    config = make_config(STORAGE_BACKEND="tinydb", DATA_DIR=str(data))
    assert await migrate(config, azurite.connection_string, container) == 0
    assert await migrate(config, azurite.connection_string, container) == 0      # again: nothing doubled

    target = BlobStore(azurite.connection_string, container)
    try:
        assert await target.keys("cases") == ["case-ops-1", "case-ops-2"]
        case = await CaseRepository(target).require("case-ops-1")
        assert case.request.child.forename == "Zebedee" and case.state is CaseState.DECLINED
        assert (await target.get("schedule", "case-ops-1")).data == {"slots": ["2026-02-01"]}
        records = [r async for r in target.read_log("audit")]
        assert len(records) == 1 + SEGMENT + 5 and records[-1] == {"i": SEGMENT + 4}
        assert records[0]["action"] == "request.view"
    finally:
        await target.close()

    source = TinyDBStore(data)
    try:
        partial = BlobStore(azurite.connection_string, azurite.container_name("partial"))
        await partial.append("audit", records[0])      # a migration that stopped after one record
        report = await copy_store(source, partial)
        assert report.records["audit"] == 1 + SEGMENT + 5
        assert len([r async for r in partial.read_log("audit")]) == 1 + SEGMENT + 5
        await partial.close()
    finally:
        await source.close()
