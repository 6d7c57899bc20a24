"""iCalendar (.ics) files for the session: the offline default's calendar entry and the attachment of
email invitations. Built with the ``icalendar`` library; times are UK wall-clock times with
``TZID=Europe/London`` and a matching VTIMEZONE, so they stay right across a clock change.

METHOD:REQUEST for an invitation (a reschedule reuses the UID with a higher SEQUENCE, so calendars
move the entry instead of adding one); METHOD:CANCEL with STATUS:CANCELLED for a cancellation.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from icalendar import Calendar, Event, Timezone, TimezoneDaylight, TimezoneStandard, vCalAddress, vText

from supervision.clock import UK, as_utc
from supervision.scheduling import Meeting

PRODID = "-//Group Supervision//Multi-agency group supervision bot//EN"
CONTENT_TYPE = "text/calendar"
TZID = "Europe/London"


def london_vtimezone() -> Timezone:
    """Europe/London as a compact VTIMEZONE: BST from 01:00 UTC on the last Sunday in March to
    01:00 UTC on the last Sunday in October (the rule in force since 1996)."""
    zone = Timezone()
    zone.add("tzid", TZID)
    summer = TimezoneDaylight()
    summer.add("dtstart", datetime(1996, 3, 31, 1, 0, 0))
    summer.add("rrule", {"freq": "yearly", "bymonth": 3, "byday": "-1su"})
    summer.add("tzoffsetfrom", timedelta(hours=0))
    summer.add("tzoffsetto", timedelta(hours=1))
    summer.add("tzname", "BST")
    winter = TimezoneStandard()
    winter.add("dtstart", datetime(1996, 10, 27, 2, 0, 0))
    winter.add("rrule", {"freq": "yearly", "bymonth": 10, "byday": "-1su"})
    winter.add("tzoffsetfrom", timedelta(hours=1))
    winter.add("tzoffsetto", timedelta(hours=0))
    winter.add("tzname", "GMT")
    zone.add_component(summer)
    zone.add_component(winter)
    return zone


def _address(name: str, email: str, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if name:
        address.params["CN"] = vText(name)
    for key, value in params.items():
        address.params[key] = value
    return address


def meeting_ics(meeting: Meeting, *, stamp: datetime) -> bytes:
    """The session as an .ics file (REQUEST, or CANCEL when ``meeting.cancelled``)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "CANCEL" if meeting.cancelled else "REQUEST")

    event = Event()
    event.add("uid", meeting.uid)
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", as_utc(stamp))
    event.add("dtstart", as_utc(meeting.starts_at).astimezone(UK))
    event.add("dtend", as_utc(meeting.ends_at).astimezone(UK))
    event.add("summary", meeting.subject)
    description = meeting.description
    if meeting.join_url:
        description = f"{description}\n\n{meeting.join_url}"
        event.add("url", meeting.join_url)
        event.add("location", "Microsoft Teams")
    event.add("description", description)
    event.add("status", "CANCELLED" if meeting.cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    if meeting.organiser.email:
        event.add("organizer", _address(meeting.organiser.name, meeting.organiser.email))
    for attendee in meeting.attendees:
        event.add("attendee", _address(attendee.name, attendee.email, ROLE="REQ-PARTICIPANT",
                                       PARTSTAT="NEEDS-ACTION", RSVP="TRUE"), encode=True)
    calendar.add_component(london_vtimezone())
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def ics_filename(reference: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in reference)
    return f"{safe or 'session'}.ics"
