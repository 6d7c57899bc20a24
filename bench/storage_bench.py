"""Storage benchmark: case get and update on the TinyDB store at 1k, 10k and 50k cases.

``python -m bench storage [--quick] [--sizes 1000,10000,50000] [--ops N]``

Each size gets a fresh store in a temporary folder on the same disk, filled with realistic case
documents (supervision.models.Case through the codec, with the user index the repository keeps),
laid down directly as the store's files (``seed_files``: filling is not what is measured).
Then it times random ``CaseRepository.get`` and ``CaseRepository.update`` (read, change, write with
the etag, index check) and prints ms per operation, from the files (the store's cache off) and with
the cache as the bot runs it, and the ratio of each size to the smallest one from the files (the
baseline, run in the same process). For scale it also times TinyDB's default single-file
storage at the smallest size. Targets: the largest size within 2x of the smallest, and an update
under 10 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from storage.tinydb_store import CACHE_BYTES, TinyDBStore, encode_name, sync_filesystem
from supervision.codec import to_data
from supervision.models import (
    Case,
    CaseState,
    ChildDetails,
    FacilitatorAssignment,
    FamilyMember,
    Invitee,
    InviteStatus,
    Person,
    RequestDetails,
    SessionPlan,
    Transition,
)
from supervision.repository import CASES, USER_INDEX, CaseRepository

UPDATE_TARGET_MS = 10.0
RATIO_TARGET = 2.0
ROUNDS = 6                 # each size is timed in this many turns, interleaved with the others
AGENCIES = ["School", "GP", "Health visiting", "Police", "Children's social care", "Housing", "Youth justice"]


def make_case(i: int, users: int, rng: random.Random) -> Case:
    """A case as the bot keeps it mid-process: full request, invitees, facilitators, plan, history."""
    def who(role: str) -> tuple[str, str]:
        n = rng.randrange(users)
        return f"user-{n}", f"{role}{n}@example.org"

    start = datetime(2026, 1, 5, 9, tzinfo=UTC) + timedelta(hours=i)
    requester_id, requester_email = who("practitioner")
    lead_id, lead_email = who("lead")
    invitees = []
    for agency in rng.sample(AGENCIES, 6):
        uid, email = who("invitee")
        invitees.append(Invitee(agency=agency, name=f"Invitee {uid}", role="Practitioner", email=email, user_id=uid,
                                status=InviteStatus.CONFIRMED, delegated_authority=True, responded_at=start))
    facilitators = []
    for lead, agency in ((True, "Health"), (False, "Police")):
        uid, email = who("facilitator")
        facilitators.append(FacilitatorAssignment(name=f"Facilitator {uid}", email=email, agency=agency,
                                                  user_id=uid, lead=lead))
    request = RequestDetails(
        requester=Person(name="Zebedee Example", email=requester_email, role="Teacher", organisation="School",
                         user_id=requester_id),
        child=ChildDetails(forename="Synthetic", surname=f"Child{i}", date_of_birth=date(2016, 3, 1),
                           gender="Not stated", ethnicity="Not stated", address="1 Synthetic Street, Exampletown"),
        family=[FamilyMember(relationship="mother", name=f"Parent{i} Example", address="1 Synthetic Street"),
                FamilyMember(relationship="sibling", name=f"Sibling{i} Example", date_of_birth=date(2019, 7, 2))],
        level_of_need="Targeted Help", current_plan="Child in need",
        lead_professional=Person(name="Lead Example", email=lead_email, role="Social worker", user_id=lead_id),
        reason="Planning feels stuck; " + "repeated missed appointments and unclear progress. " * 4,
        trigger="drift", pen_picture="A synthetic pen picture. " * 20, child_voice="Synthetic voice. " * 6,
        family_voice="Synthetic family view. " * 6, agreed_to_share="Yes", invitees=invitees,
        additional_information=["Further synthetic detail. " * 5 for _ in range(2)],
    )
    history = [Transition(at=start + timedelta(days=d), actor=requester_id, event=e, from_state=f, to_state=t)
               for d, (e, f, t) in enumerate([
                   ("submit", None, CaseState.REQUESTED), ("agree", CaseState.REQUESTED, CaseState.AGREED),
                   ("assign_facilitators", CaseState.AGREED, CaseState.FACILITATORS_ASSIGNED),
                   ("schedule", CaseState.FACILITATORS_ASSIGNED, CaseState.SCHEDULED)])]
    return Case(id=f"case-{i:06d}", reference=f"MAGS-BOL-260105-{i:05X}", profile_id="bolton",
                state=CaseState.SCHEDULED, created_at=start, request=request, agreed_at=start + timedelta(days=1),
                session_due=date(2026, 2, 1), facilitators=facilitators,
                session=SessionPlan(starts_at=start + timedelta(days=10), ends_at=start + timedelta(days=10, hours=2),
                                    join_url="https://teams.example.invalid/meet/synthetic"),
                history=history, version=4)


TEMPLATES = 64


def build_documents(size: int, seed: int = 7) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``size`` case documents and the user index over them. Cases are made through the model and the
    codec from a few templates, then given their own ids, references and members (fast for 50k)."""
    rng = random.Random(seed)
    users = max(200, size // 4)          # each practitioner takes part in a handful of cases
    templates = [json.dumps(to_data(make_case(i, users, rng))) for i in range(min(TEMPLATES, size))]
    cases: dict[str, dict[str, Any]] = {}
    index: dict[str, list[str]] = {}
    for i in range(size):
        data = json.loads(templates[i % len(templates)])
        case_id = f"case-{i:06d}"
        data["id"], data["reference"] = case_id, f"MAGS-BOL-260105-{i:05X}"
        data["request"]["child"]["surname"] = f"Child{i}"
        people = [data["request"]["requester"], data["request"]["lead_professional"],
                  *data["request"]["invitees"], *data["facilitators"]]
        for person in people:
            n = rng.randrange(users)
            person["user_id"] = f"user-{n}"
            person["email"] = f"practitioner{n}@example.org"
        cases[case_id] = data
        for person in people:
            for key in (person["user_id"], person["email"]):
                index.setdefault(key.lower(), []).append(case_id)
    return cases, {k: {"cases": sorted(set(v))} for k, v in index.items()}


def seed_files(store: TinyDBStore, collection: str, items: dict[str, dict[str, Any]], threads: int = 4) -> None:
    """Lay down the benchmark's starting data fast: each document written straight into its new TinyDB
    file (the layout the store reads), then one flush. Only for filling a fresh store before timing;
    the operations timed all go through the store itself."""
    folder = store.docs / encode_name(collection)
    folder.mkdir(parents=True, exist_ok=True)

    def write(chunk: list[tuple[str, dict[str, Any]]]) -> None:
        for key, data in chunk:
            record = {"key": key, "etag": f'"seed-{key}"', "data": data}
            payload = json.dumps({"_default": {"1": record}}, separators=(",", ":")).encode()
            fd = os.open(folder / f"{encode_name(key)}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, payload)
            finally:
                os.close(fd)

    pairs = list(items.items())
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, [pairs[i::threads] for i in range(threads)]))
    sync_filesystem(store.folder)


@dataclass
class Result:
    size: int
    get_ms: float            # from the files
    update_ms: float
    doc_bytes: int
    cached_get_ms: float     # with the store's cache as the bot runs it
    cached_update_ms: float


@dataclass
class Subject:
    """One store of ``size`` cases, with the timings taken on it so far: from the files (the store's
    cache off and emptied: what the targets are about, the cost of touching one small file whatever
    the store's size) and with the cache as the bot runs it (16 MB: at 1,000 cases it ends up holding
    every index document, at 10,000 and more it cannot, so those figures mix regimes)."""
    size: int
    store: TinyDBStore
    repo: CaseRepository
    ids: list[str]
    doc_bytes: int
    rng: random.Random
    gets: list[float] = field(default_factory=list)
    updates: list[float] = field(default_factory=list)
    cached_gets: list[float] = field(default_factory=list)
    cached_updates: list[float] = field(default_factory=list)


async def prepare(folder: Path, size: int) -> Subject:
    started = time.perf_counter()
    cases_data, index = build_documents(size)
    store = TinyDBStore(folder)
    seed_files(store, CASES, cases_data)
    seed_files(store, USER_INDEX, index)
    ids = list(cases_data)
    subject = Subject(size, store, CaseRepository(store), ids, len(json.dumps(cases_data[ids[0]])), random.Random(size))
    for case_id in subject.rng.sample(ids, min(20, len(ids))):      # warm up the code paths, not the data
        await subject.repo.get(case_id)
    print(f"{size:>7,} cases laid down in {time.perf_counter() - started:.0f} s", flush=True)
    return subject


async def run_batch(subject: Subject, count: int, cached: bool) -> None:
    store = subject.store
    store.cache_limit = CACHE_BYTES if cached else 0
    if not cached:     # every change in its file first (the applier writes about once a second), so
        await asyncio.to_thread(store._wait_applied, store._committed_seq)   # none is read from memory
        store.drop_cache()
    gets, updates = (subject.cached_gets, subject.cached_updates) if cached else (subject.gets, subject.updates)
    for case_id in (subject.rng.choice(subject.ids) for _ in range(count)):
        started = time.perf_counter()
        case = await subject.repo.get(case_id)
        gets.append(time.perf_counter() - started)
        assert case is not None
    for case_id in (subject.rng.choice(subject.ids) for _ in range(count)):
        note = f"benchmark note {len(subject.updates) + len(subject.cached_updates)}"

        def change(case: Case, note: str = note) -> None:
            case.request.additional_information.append(note)

        started = time.perf_counter()
        await subject.repo.update(case_id, change)
        updates.append(time.perf_counter() - started)


async def measure_all(root: Path, sizes: list[int], ops: int, rounds: int = ROUNDS) -> list[Result]:
    """Lay down every size, then time them in turns (a batch of each per round), so that all sizes
    are measured under the same conditions on a shared machine; medians of all the batches."""
    subjects = [await prepare(root / f"s{size}", size) for size in sizes]
    try:
        for _ in range(rounds):
            for subject in subjects:
                await run_batch(subject, max(1, ops // rounds), cached=False)
                await run_batch(subject, max(1, ops // rounds), cached=True)
    finally:
        for subject in subjects:
            await subject.store.close()
    return [Result(s.size, statistics.median(s.gets) * 1000, statistics.median(s.updates) * 1000, s.doc_bytes,
                   statistics.median(s.cached_gets) * 1000, statistics.median(s.cached_updates) * 1000)
            for s in subjects]


def naive_baseline(folder: Path, size: int, ops: int) -> tuple[float, float]:
    """TinyDB's default: one JSON file, parsed and rewritten whole on every operation."""
    from tinydb import Query, TinyDB

    cases_data, _ = build_documents(size)
    db = TinyDB(folder / "naive.json")
    db.insert_multiple({"key": k, "data": v} for k, v in cases_data.items())
    ids, rng = list(cases_data), random.Random(1)
    started = time.perf_counter()
    for _ in range(ops):
        db.get(Query().key == rng.choice(ids))
    get_ms = (time.perf_counter() - started) / ops * 1000
    started = time.perf_counter()
    for _ in range(ops):
        key = rng.choice(ids)
        row = db.get(Query().key == key)
        db.update({"data": row["data"]}, Query().key == key)   # type: ignore[index]
    update_ms = (time.perf_counter() - started) / ops * 1000
    db.close()
    return get_ms, update_ms


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench storage")
    parser.add_argument("--quick", action="store_true", help="1k and 10k cases, fewer operations")
    parser.add_argument("--sizes", default="", help="comma-separated case counts (default 1000,10000,50000)")
    parser.add_argument("--ops", type=int, default=0, help="operations timed per size and kind")
    parser.add_argument("--no-naive", action="store_true", help="skip TinyDB's default storage for scale")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()] or ([1000, 10000] if args.quick else [1000, 10000, 50000])
    ops = args.ops or (100 if args.quick else 300)
    root = Path(tempfile.mkdtemp(prefix="storage-bench-", dir=None))
    results: list[Result] = []
    try:
        results = asyncio.run(measure_all(root, sizes, ops))
        for result in results:
            print(f"{result.size:>7,} cases: from the files get {result.get_ms:6.2f} ms/op, update "
                  f"{result.update_ms:6.2f} ms/op; with the cache get {result.cached_get_ms:6.2f}, update "
                  f"{result.cached_update_ms:6.2f} (medians of {ops}, in {ROUNDS} turns; case document "
                  f"{result.doc_bytes / 1024:.1f} KiB)", flush=True)
        if not args.no_naive:
            get_ms, update_ms = naive_baseline(root, sizes[0], 5)
            print(f"for scale, TinyDB default single-file storage at {sizes[0]:,} cases: "
                  f"get {get_ms:.1f} ms/op, update {update_ms:.1f} ms/op")
        report(results)
    finally:
        print(f"removing the benchmark's files in {root} (a minute or two on disks that discard freed blocks)",
              flush=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0 if targets_met(results) else 1


def targets_met(results: list[Result]) -> bool:
    base, last = results[0], results[-1]
    return (last.get_ms / base.get_ms <= RATIO_TARGET and last.update_ms / base.update_ms <= RATIO_TARGET
            and last.update_ms < UPDATE_TARGET_MS)


def report(results: list[Result]) -> None:
    base, last = results[0], results[-1]
    get_ratio, update_ratio = last.get_ms / base.get_ms, last.update_ms / base.update_ms
    print(f"ratio {last.size:,}/{base.size:,} from the files: get {get_ratio:.2f}x, update {update_ratio:.2f}x "
          f"(target <= {RATIO_TARGET:.0f}x); update at {last.size:,}: {last.update_ms:.2f} ms "
          f"(target < {UPDATE_TARGET_MS:.0f} ms)")
    print("targets met" if targets_met(results) else "TARGETS MISSED", flush=True)
