"""The generic codec as it was before the per-type compiled one (supervision/codec.py at 13ad27d),
kept verbatim as the reference the compiled codec must equal (tests/test_codec_compiled.py) and the
baseline of ``python -m bench codec``. Dispatch per value: get_origin/get_args, fields, isinstance."""
from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime
from enum import Enum
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


def reference_to_data(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: reference_to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [reference_to_data(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(reference_to_data(v) for v in value)
    if isinstance(value, dict):
        return {str(k): reference_to_data(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def reference_from_data(cls: type[T], data: Any) -> T:
    return typing.cast(T, _decode(cls, data))


def _decode(tp: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decode(args[0], data) if len(args) == 1 else data
    if origin in (list, tuple, set, frozenset):
        (inner, *_rest) = typing.get_args(tp) or (Any,)
        items = [_decode(inner, v) for v in data]
        return origin(items) if origin is not list else items
    if origin is dict:
        _, inner = typing.get_args(tp)
        return {k: _decode(inner, v) for k, v in data.items()}
    if tp is Any:
        return data
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            hints = _hints(tp)
            kwargs = {f.name: _decode(hints[f.name], data[f.name])
                      for f in dataclasses.fields(tp) if f.name in data and f.init}
            return tp(**kwargs)
        if issubclass(tp, Enum):
            return tp(data)
        if tp is datetime:
            return datetime.fromisoformat(data)
        if tp is date:
            return date.fromisoformat(data)
    return data
