"""storage/jsonio.py: orjson where it gives the standard library's answer, the standard library
everywhere else (the store's documents and the bot's inbound activities go through it)."""
from __future__ import annotations

import dataclasses
import enum
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import jsonio

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SCALARS = st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=30)


def reference_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES)
def test_any_json_value_is_written_so_that_json_reads_it_back_as_it_was(value: Any) -> None:
    text = jsonio.dumps(value)
    assert json.loads(text) == json.loads(reference_dumps(value))
    assert jsonio.loads(text.encode()) == json.loads(reference_dumps(value))


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES)
def test_any_json_text_is_read_as_json_reads_it(value: Any) -> None:
    for text in (reference_dumps(value), json.dumps(value), json.dumps(value, indent=2)):
        assert jsonio.loads(text.encode()) == json.loads(text)
        assert jsonio.loads(text) == json.loads(text)


def test_the_text_is_compact_with_non_ascii_characters_as_themselves() -> None:
    value = {"name": "Zoë Example", "agency": "Ysgol Gymraeg", "n": [1, 2.5, None, True]}
    assert jsonio.dumps(value) == reference_dumps(value) == '{"name":"Zoë Example","agency":"Ysgol Gymraeg","n":[1,2.5,null,true]}'


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int = 1


class Sub(dict):  # type: ignore[type-arg]
    pass


@pytest.mark.parametrize("value", [
    {"k": Colour.RED, "l": Level.HIGH},   # subclasses of str and int: written as json writes them
    {1: "int key", None: "none key", 2.5: "float key", False: "bool key"},
    Sub(a=1), 2**70, -(2**70), [2**64],
])
def test_what_orjson_would_write_otherwise_is_written_by_json(value: Any) -> None:
    assert jsonio.dumps(value) == reference_dumps(value)


@pytest.mark.parametrize("value", [datetime(2026, 1, 5, tzinfo=UTC), Point(), {"s": {1, 2}}, object()])
def test_what_json_refuses_is_still_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        reference_dumps(value)
    with pytest.raises(TypeError):
        jsonio.dumps(value)


def test_a_lone_surrogate_is_left_to_json() -> None:
    assert jsonio.dumps({"t": "\ud800"}) == reference_dumps({"t": "\ud800"})


@pytest.mark.parametrize("raw", [b"NaN", b"[Infinity, -Infinity]", b"[1e400]", b'"\\ud800"', b' {"a": 1, "a": 2} '])
def test_what_orjson_refuses_to_read_is_read_by_json(raw: bytes) -> None:
    expected, found = json.loads(raw), jsonio.loads(raw)
    assert repr(found) == repr(expected)          # repr: nan == nan is False


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff", b'{"a":}', b"[1,]"])
def test_what_neither_reads_raises_a_value_error_as_json_does(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(ValueError):
        jsonio.loads(raw)


def test_the_documented_differences_outside_the_stores_values() -> None:
    """Kept here so that a change in orjson that removes (or widens) one is noticed."""
    class Plain(enum.Enum):
        A = "a"

    assert jsonio.dumps([math.nan, math.inf]) == "[null,null]"
    assert reference_dumps([math.nan]) == "[NaN]"
    assert jsonio.dumps(Plain.A) == '"a"'
    assert jsonio.loads(b"123456789012345678901234567890") == pytest.approx(1.2345678901234568e29)
    assert isinstance(jsonio.loads(b"18446744073709551615"), int)     # 64 bits, unsigned: still an int
