"""JSON for the store's documents and the bot's inbound activities: orjson where it gives the same
answer as the standard library, the standard library everywhere else.

A case document parses in 3 us instead of 9 and serialises in 1 us instead of 14 (bench/README.md,
2026-12-01, fourth round); a turn reads three or four documents and writes one or two.

Same answer means, for the values the store and the channel carry (JSON objects, arrays, strings,
finite numbers, integers within 64 bits, booleans, null: tests/test_jsonio.py checks it for any such
value): ``loads`` gives what ``json.loads`` gives, and ``dumps`` gives text that ``json.loads`` reads
back as the value (``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` up to number
formatting: ``1e-07`` is written ``1e-7``).

Outside them, what orjson refuses goes to the standard library, which accepts or raises as before:
on reading, ``NaN``, ``Infinity``, numbers beyond a double and invalid UTF-8; on writing, datetimes,
dataclasses, subclasses of the built-in types (a ``StrEnum`` is written by its value, as ``json``
writes it), integers beyond 64 bits and lone surrogates. Three differences remain, none reachable from
the store's callers (they store ``supervision.codec.to_data`` output, whose numbers are counts and
versions, and bot state in jsonpickle's plain form): a float that is not finite is written ``null``
(``json`` writes ``NaN``, which is not JSON); an ``Enum`` or a ``UUID`` is written by its value
(``json`` refuses it); and an integer beyond 64 bits in a document is read back as a float (RFC 8259
leaves numbers beyond a double's precision to the reader).
"""
from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def loads(raw: bytes | bytearray | memoryview | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII characters as themselves."""
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
