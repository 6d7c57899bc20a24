"""The .ics output parses with the icalendar library and carries the right UK local times on both
sides of the late-October and late-March clock changes."""
from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta

import icalendar
import pytest

from documents.ics import ics_filename, meeting_ics
from supervision.clock import UK
from supervision.scheduling import Attendee, Meeting


def meeting(starts_at: datetime, *, sequence: int = 0, cancelled: bool = False, join_url: str = "") -> Meeting:
    return Meeting(uid="case-1-1@group-supervision.invalid", sequence=sequence,
                   subject="Joint Agency Group Supervision MAGS-NOR-260105-ABCD",
                   description="A reflective session for the team around the child.",
                   starts_at=starts_at, ends_at=starts_at + timedelta(minutes=90),
                   organiser=Attendee("Adele Vance", "adelev@example.com"),
                   attendees=(Attendee("Patti Fernandez", "pattif@example.com"),
                              Attendee("Zebedee Example", "zebedee@other.example.org")),
                   join_url=join_url, cancelled=cancelled)


def parse(data: bytes) -> tuple[icalendar.Calendar, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(data)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    return calendar, events[0]


def offset_from_vtimezone(calendar: icalendar.Calendar, local: datetime) -> timedelta:
    """The UTC offset the file's own VTIMEZONE gives a wall-clock time (not the system's zoneinfo)."""
    (zone,) = calendar.walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/London"
    times, infos = zone.get_transitions()           # transition instants in UTC, naive
    guess = local - timedelta(hours=1)               # wall time as UTC, conservatively early
    index = bisect.bisect_right(times, guess) - 1
    offset = infos[index][0]
    # re-check with the offset found (wall times just after a transition)
    index = bisect.bisect_right(times, local - offset) - 1
    return infos[index][0]


# (UTC start, expected UK wall clock, expected offset): both sides of each change in 2026-27.
CASES = [
    (datetime(2026, 10, 23, 9, 0, tzinfo=UTC), datetime(2026, 10, 23, 10, 0), timedelta(hours=1)),   # Fri before
    (datetime(2026, 10, 26, 10, 0, tzinfo=UTC), datetime(2026, 10, 26, 10, 0), timedelta(0)),         # Mon after
    (datetime(2027, 3, 26, 10, 0, tzinfo=UTC), datetime(2027, 3, 26, 10, 0), timedelta(0)),           # Fri before
    (datetime(2027, 3, 29, 9, 0, tzinfo=UTC), datetime(2027, 3, 29, 10, 0), timedelta(hours=1)),      # Mon after
]


@pytest.mark.parametrize(("starts_utc", "wall", "offset"), CASES)
def test_times_are_uk_local_with_tzid_and_right_across_clock_changes(starts_utc, wall, offset):
    data = meeting_ics(meeting(starts_utc), stamp=datetime(2026, 10, 1, tzinfo=UTC))
    assert f"DTSTART;TZID=Europe/London:{wall:%Y%m%dT%H%M%S}".encode() in data
    calendar, event = parse(data)
    start = event.decoded("DTSTART")
    end = event.decoded("DTEND")
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert start.replace(tzinfo=None) == wall
    assert start.astimezone(UTC) == starts_utc
    assert end.astimezone(UTC) == starts_utc + timedelta(minutes=90)
    # the VTIMEZONE in the file, read on its own, agrees with the UK offset
    assert offset_from_vtimezone(calendar, wall) == offset
    assert wall - offset == starts_utc.replace(tzinfo=None)


def test_the_vtimezone_changes_at_one_in_the_morning_utc_on_the_last_sundays():
    calendar, _ = parse(meeting_ics(meeting(datetime(2026, 11, 2, 10, tzinfo=UTC)), stamp=datetime.now(UTC)))
    (zone,) = calendar.walk("VTIMEZONE")
    times, _ = zone.get_transitions()
    assert datetime(2026, 10, 25, 1, 0) in times and datetime(2027, 3, 28, 1, 0) in times
    assert datetime(2026, 10, 26, 1, 0) not in times


def test_invitation_has_uid_sequence_people_and_join_link():
    url = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0"
    _, event = parse(meeting_ics(meeting(datetime(2026, 6, 1, 9, tzinfo=UTC), sequence=2, join_url=url),
                                 stamp=datetime(2026, 5, 1, tzinfo=UTC)))
    assert str(event["UID"]) == "case-1-1@group-supervision.invalid"
    assert int(event["SEQUENCE"]) == 2
    assert str(event["ORGANIZER"]) == "mailto:adelev@example.com"
    attendees = event["ATTENDEE"]
    assert sorted(str(a) for a in attendees) == ["mailto:pattif@example.com", "mailto:zebedee@other.example.org"]
    assert all(a.params["RSVP"] == "TRUE" for a in attendees)
    assert str(event["URL"]) == url and url in str(event["DESCRIPTION"])
    assert str(event["STATUS"]) == "CONFIRMED"


def test_cancellation_is_method_cancel_with_the_same_uid():
    data = meeting_ics(meeting(datetime(2026, 6, 1, 9, tzinfo=UTC), sequence=3, cancelled=True),
                       stamp=datetime(2026, 5, 2, tzinfo=UTC))
    calendar, event = parse(data)
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == "case-1-1@group-supervision.invalid"


def test_naive_times_are_refused_rather_than_guessed():
    bad = meeting(datetime(2026, 6, 1, 9, tzinfo=UTC))
    naive = Meeting(**{**bad.__dict__, "starts_at": datetime(2026, 6, 1, 9)})
    with pytest.raises(ValueError):
        meeting_ics(naive, stamp=datetime(2026, 5, 2, tzinfo=UTC))


def test_filename_is_safe():
    assert ics_filename("MAGS-NOR-260105-AB/CD") == "MAGS-NOR-260105-AB-CD.ics"
    assert datetime(2026, 10, 23, 10, tzinfo=UK).utcoffset() == timedelta(hours=1)
