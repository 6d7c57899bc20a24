"""Time is injected: use cases ask a Clock, never ``datetime.now``. Store UTC, show UK local time."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

UK = ZoneInfo("Europe/London")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock tests move by hand."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def __post_init__(self) -> None:
        self.current = as_utc(self.current)

    def now(self) -> datetime:
        return self.current

    def set(self, when: datetime) -> None:
        self.current = as_utc(when)

    def advance(self, **kwargs: float) -> None:
        self.current = self.current + timedelta(**kwargs)


def as_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("naive datetime: give a timezone")
    return when.astimezone(UTC)


def uk_local(when: datetime) -> datetime:
    return as_utc(when).astimezone(UK)


def uk_today(clock: Clock) -> date:
    return uk_local(clock.now()).date()


def format_uk_datetime(when: datetime) -> str:
    local = uk_local(when)
    return local.strftime("%a %d %b %Y, %H:%M")


def format_uk_date(day: date) -> str:
    return day.strftime("%a %d %b %Y")


def uk_datetime(day: date, hour: int, minute: int = 0) -> datetime:
    """A UK wall-clock time on ``day`` as an aware UTC datetime (handles GMT/BST)."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UK).astimezone(UTC)
