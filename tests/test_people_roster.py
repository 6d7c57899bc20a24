"""People named only by email (invitees, lead professionals, action owners) who never talked to the bot
are found in the coordinators' team roster, so they can be reached in personal chat."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.app import create_app
from bot.people import ROSTER_RETRY_SECONDS, KnownPerson, People
from storage.memory import MemoryStore
from tests.support.connector import FakeConnector
from tests.support.harness import BotHarness, User

PATTI = KnownPerson(user_id="user-id-4", name="Patti Fernandez", email="pattif@example.com", tenant_id="t-1")
ADELE = KnownPerson(user_id="user-id-2", name="Adele Vance", email="adelev@example.com")


class Roster:
    def __init__(self, members: list[KnownPerson], fail: bool = False) -> None:
        self.members, self.fail, self.reads = members, fail, 0

    async def __call__(self) -> list[KnownPerson]:
        self.reads += 1
        if self.fail:
            raise RuntimeError("not installed in the team")
        return list(self.members)


async def test_an_unknown_email_is_found_in_the_team_roster_which_is_read_at_most_every_few_minutes() -> None:
    now = [1000.0]
    roster = Roster([PATTI, ADELE, KnownPerson(user_id="user-id-9", name="No Email")])
    people = People(MemoryStore(), clock=lambda: now[0], roster=roster)
    await people.save(KnownPerson(user_id="user-id-2", name="Adele V.", email="adelev@example.com",
                                  aad_object_id="aad-adele"))

    assert await people.by_email("PattiF@example.com") == PATTI
    assert roster.reads == 1
    assert (await people.get("user-id-2")).aad_object_id == "aad-adele"       # what was known is kept
    assert await people.get("user-id-9") is None                                # no email: nothing to find by
    assert await people.by_email("pattif@example.com") == PATTI and roster.reads == 1   # from the store now

    assert await people.by_email("hattie.housing@example.com") is None          # not in the team (a guest)
    assert roster.reads == 1                                                    # not read again at once
    now[0] += ROSTER_RETRY_SECONDS + 1
    assert await people.by_email("hattie.housing@example.com") is None
    assert roster.reads == 2


async def test_callers_at_the_same_moment_share_one_roster_read() -> None:
    gate = asyncio.Event()

    class Slow(Roster):
        async def __call__(self) -> list[KnownPerson]:
            await gate.wait()
            return await super().__call__()

    roster = Slow([PATTI, ADELE])
    people = People(MemoryStore(), roster=roster)
    waiting = [asyncio.ensure_future(people.by_email(e)) for e in ("pattif@example.com", "adelev@example.com")]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [PATTI, ADELE] and roster.reads == 1


async def test_no_roster_or_a_failing_one_leaves_the_person_unknown() -> None:
    assert await People(MemoryStore()).by_email("pattif@example.com") is None
    failing = Roster([PATTI], fail=True)
    people = People(MemoryStore(), roster=failing)
    assert await people.by_email("pattif@example.com") is None and failing.reads == 1


@pytest.fixture
async def roster_harness(make_config) -> AsyncIterator[BotHarness]:
    connector = FakeConnector()
    url = await connector.start()
    config = make_config(COORDINATOR_CONVERSATION_ID="19:coordinators@thread.tacv2", COORDINATOR_SERVICE_URL=url)
    app = create_app(config, store=MemoryStore(), start_background=False)
    harness = BotHarness(app=app, connector=connector)
    harness.connector.start = _already_started(url)           # type: ignore[method-assign]
    await harness.start()
    yield harness
    await harness.stop()


def _already_started(url: str):  # the harness starts its connector; ours already listens
    async def start() -> str:
        return url

    return start


async def test_the_roster_is_read_through_the_connector_from_the_coordinators_team(roster_harness: BotHarness) -> None:
    harness = roster_harness
    people = harness.parts.services.people
    harness.connector.members["user-id-4"] = {"id": "user-id-4", "name": "Patti Fernandez",
                                              "email": "pattif@example.com", "aadObjectId": "aad-patti",
                                              "tenantId": "tenant-1"}
    found = await people.by_email("pattif@example.com")
    assert found is not None and (found.user_id, found.aad_object_id) == ("user-id-4", "aad-patti")
    # nobody has spoken in the channel yet: its id is taken as the team's (a General channel's is)
    assert harness.connector.rosters_read == ["19:coordinators@thread.tacv2"]


async def test_the_team_id_teams_sends_with_the_channel_is_used_once_heard(roster_harness: BotHarness) -> None:
    harness = roster_harness
    megan = User("user-id-1", "Megan Bowen", "aad-megan", "meganb@example.com")
    await harness.say(megan, "help", conversation_type="channel",
                      conversation_id="19:coordinators@thread.tacv2;messageid=77")
    harness.connector.members["user-id-4"] = {"id": "user-id-4", "name": "Patti Fernandez",
                                              "email": "pattif@example.com"}
    assert (await harness.parts.services.people.by_email("pattif@example.com")).user_id == "user-id-4"
    assert harness.connector.rosters_read == ["team-1"]
