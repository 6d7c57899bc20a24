"""TEST_CLOCK_FILE: the movable clock of end-to-end tests, and the guard that keeps it out of production."""
from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import make_clock
from bot.clock_file import FileClock, set_test_clock
from bot.config import Config, ConfigError, load_config
from supervision.clock import SystemClock

APP_ID = "11111111-2222-3333-4444-555555555555"


def test_no_file_is_real_time_and_a_written_instant_runs_on_from_the_write(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    clock = FileClock(path)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=2)

    target = datetime(2027, 5, 17, 9, 0, tzinfo=UTC)
    set_test_clock(path, target)
    first = clock.now()
    assert target <= first < target + timedelta(seconds=2)
    assert clock.now() >= first                                      # it runs on, never backwards

    later = datetime(2027, 11, 20, 9, 0, tzinfo=UTC)                 # moved again: read again
    set_test_clock(path, later)
    assert later <= clock.now() < later + timedelta(seconds=2)

    path.write_text("")                                              # emptied: real time again
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=2)
    set_test_clock(path, target)
    os.remove(path)                                                  # removed: real time again
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=2)


def test_an_instant_without_a_zone_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    path.write_text("2027-05-17T09:00:00")
    with pytest.raises(ValueError, match="time zone"):
        FileClock(path).now()


def test_the_setting_is_honoured_only_in_anonymous_local_mode(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    config = load_config({"TEST_CLOCK_FILE": str(path)}, env_file=None)
    assert config.test_clock_file == path and config.anonymous
    assert isinstance(make_clock(config), FileClock)
    assert isinstance(make_clock(load_config({}, env_file=None)), SystemClock)

    with pytest.raises(ConfigError) as refused:
        load_config({"TEST_CLOCK_FILE": str(path), "MicrosoftAppId": APP_ID, "MicrosoftAppPassword": "x"},
                    env_file=None)
    assert refused.value.setting == "TEST_CLOCK_FILE"
    with pytest.raises(ValueError, match="tests only"):              # a Config built by hand, too
        make_clock(Config(app_id=APP_ID, app_password="x", test_clock_file=path))
