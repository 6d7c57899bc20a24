"""A clock end-to-end tests can move: ``TEST_CLOCK_FILE`` (test-only, never in production).

The procedures wait for dates (three working days before a session, six months after it). An
end-to-end test drives the real bot process, so it can't hand it a ``FixedClock``; and ``python -m
bot run-due --now`` can't run beside it on the same TinyDB folder (single writer). So a test may
start the bot with ``TEST_CLOCK_FILE=/some/file`` and write an ISO-8601 instant with a zone into
that file: from the moment of writing, the bot's clock reads that instant and runs on in real time
(``instant + (now - the file's modification time)``). No file, or an empty one: real time.

Guard rails (bot/config.py): the setting is refused unless the bot runs in anonymous local mode (no
``MicrosoftAppId``), which only the Playground and tests use - Teams can't reach such a bot - so it
can't be left on in a deployment by accident. ``create_app`` logs a warning when it is on.
"""
from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from supervision.clock import as_utc


class FileClock:
    """Real time, shifted to the instant written in ``path`` from the moment it was written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int] | None = None     # (mtime_ns, size) of the file last read
        self._shift = timedelta(0)

    def now(self) -> datetime:
        real = datetime.now(UTC)
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._shift = None, timedelta(0)
            return real
        key = (stat.st_mtime_ns, stat.st_size)
        if key != self._seen:
            text = self.path.read_text(encoding="utf-8").strip()
            if text:
                written = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)
                self._shift = parse_instant(text) - written
            else:
                self._shift = timedelta(0)
            self._seen = key
        return real + self._shift


def parse_instant(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"TEST_CLOCK_FILE holds {text!r}: give a time zone, e.g. 2026-01-05T09:00:00Z")
    return as_utc(when)


def set_test_clock(path: Path, when: datetime) -> None:
    """What a test calls: from now on the bot's clock reads ``when`` (and runs on)."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(as_utc(when).isoformat(), encoding="utf-8")
    os.replace(tmp, path)
