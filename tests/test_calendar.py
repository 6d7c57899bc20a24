from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervision.calendar import Nation, WorkingCalendar, add_months

ENGLAND = WorkingCalendar(Nation.ENGLAND)
SCOTLAND = WorkingCalendar(Nation.SCOTLAND)


def test_fifteen_working_days_after_friday_19_december_2025_is_wednesday_14_january_2026():
    assert ENGLAND.add_working_days(date(2025, 12, 19), 15) == date(2026, 1, 14)


def test_three_working_days_before_monday_5_january_2026_is_tuesday_30_december_2025():
    assert ENGLAND.subtract_working_days(date(2026, 1, 5), 3) == date(2025, 12, 30)


def test_scotland_has_2_january_and_st_andrews_day_england_does_not():
    assert not SCOTLAND.is_working_day(date(2026, 1, 2))
    assert ENGLAND.is_working_day(date(2026, 1, 2))
    # St Andrew's Day 2026 is Monday 30 November in Scotland
    assert not SCOTLAND.is_working_day(date(2026, 11, 30))
    assert ENGLAND.is_working_day(date(2026, 11, 30))
    assert SCOTLAND.add_working_days(date(2025, 12, 31), 1) == date(2026, 1, 5)


def test_wales_follows_england_and_wales_bank_holidays():
    wales = WorkingCalendar(Nation.WALES)
    assert not wales.is_working_day(date(2026, 8, 31))   # summer bank holiday (E&W)
    assert SCOTLAND.is_working_day(date(2026, 8, 31))    # Scotland's is 3 August
    assert not SCOTLAND.is_working_day(date(2026, 8, 3))


def test_northern_ireland_has_st_patricks_day():
    assert not WorkingCalendar(Nation.NORTHERN_IRELAND).is_working_day(date(2026, 3, 17))


def test_local_closure_days_are_not_working_days():
    closed = WorkingCalendar(Nation.ENGLAND, [date(2026, 1, 6)])
    assert closed.add_working_days(date(2026, 1, 5), 1) == date(2026, 1, 7)


def test_working_days_between_counts_like_add():
    assert ENGLAND.working_days_between(date(2025, 12, 19), date(2026, 1, 14)) == 15
    assert ENGLAND.working_days_between(date(2026, 1, 14), date(2025, 12, 19)) == -15


@pytest.mark.parametrize("day,months,expected", [
    (date(2026, 1, 31), 1, date(2026, 2, 28)), (date(2026, 6, 15), 6, date(2026, 12, 15)),
    (date(2026, 3, 31), -12, date(2025, 3, 31)), (date(2024, 2, 29), 12, date(2025, 2, 28)),
])
def test_add_months(day, months, expected):
    assert add_months(day, months) == expected


@given(st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)), st.integers(0, 40))
def test_add_then_subtract_lands_on_a_working_day_no_later_than_start(start, n):
    later = ENGLAND.add_working_days(start, n)
    assert later >= start
    if n:
        assert ENGLAND.is_working_day(later)
        assert ENGLAND.working_days_between(start, later) == n
        back = ENGLAND.subtract_working_days(later, n)
        assert back <= start
