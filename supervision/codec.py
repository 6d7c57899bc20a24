"""Plain-data encoding of domain dataclasses, so any store can hold them as JSON documents.

``to_data(value)`` turns a value into JSON-ready data: a dataclass instance into a dict of all its
fields, an enum into its value, a datetime or date into ISO text, lists and tuples into lists, sets
into sorted lists, dict keys into text; anything else is kept as it is. ``from_data(T, data)`` builds a
``T`` back from such data, guided by the type hints: ``X | None`` unwraps to ``X`` (a union of several
non-None types keeps the data as it is), ``list[X]``/``tuple[X, ...]``/``set[X]``/``frozenset[X]``
and ``dict[str, X]`` decode their items, a dataclass takes the keys it has (missing keys take the
defaults, unknown keys and ``init=False`` fields are ignored), an enum is looked up by value, a
``datetime``/``date`` parsed from ISO text; ``None`` stays ``None`` at every level; anything else is
kept as it is.

Every case read and write of every turn goes through here, so each type is compiled once into a
specialised function (cached per type, built under a lock): a dataclass is encoded by one dict
display over its fields and decoded by one constructor call over precomputed (name, decoder) pairs,
with the plain types (str, int, float, bool, Any...) passed through without a call. Encoding still
dispatches on each value's own type, so it gives the same data whatever the hints say.
tests/test_codec_compiled.py proves it equal to the generic implementation it replaced
(tests/support/codec_reference.py); ``python -m bench codec`` measures the two.
"""
from __future__ import annotations

import dataclasses
import keyword
import threading
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum, EnumMeta
from functools import cache
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]

# Values of exactly these types encode as themselves (subclasses - str enums... - go to their encoder).
_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None)})

_lock = threading.RLock()
_encoders: dict[type, Encoder] = {}
_decoders: dict[Any, Decoder | None] = {}   # None: the data is kept as it is
_building: set[Any] = set()                 # decoders being built (a dataclass that contains itself)


# ---------------------------------------------------------------------------------------- encoding

def to_data(value: Any) -> Any:
    cls = type(value)
    if cls in _PLAIN:
        return value
    encode = _encoders.get(cls)
    if encode is None:
        encode = _encoder_for(cls)
    return encode(value)


def _encoder_for(cls: type) -> Encoder:
    with _lock:
        encode = _encoders.get(cls)
        if encode is None:
            encode = _encoders[cls] = _build_encoder(cls)
        return encode


def _build_encoder(cls: type) -> Encoder:
    """The encoder for every value whose type is ``cls``: the first of the generic rules (dataclass,
    enum, datetime, date, list/tuple, set/frozenset, dict, anything else) that holds for the type."""
    if _has_own_class_attribute(cls):
        return _encode_generic       # isinstance() would believe the instance's __class__: ask per value
    if dataclasses.is_dataclass(cls) and not issubclass(cls, type):
        return _dataclass_encoder(cls)
    if issubclass(cls, Enum):
        return attrgetter("_value_") if _static_attribute(cls, "value") is _ENUM_VALUE else attrgetter("value")
    if issubclass(cls, date):         # datetime included
        return cls.isoformat if cls in (datetime, date) else _encode_isoformat
    if issubclass(cls, (list, tuple)):
        return _encode_list
    if issubclass(cls, (set, frozenset)):
        return _encode_set
    if issubclass(cls, dict):
        return _encode_dict
    return _keep


def _encode_generic(value: Any) -> Any:
    """The rules decided per value, for the odd type whose instances may claim another class."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return _encode_list(value)
    if isinstance(value, (set, frozenset)):
        return _encode_set(value)
    if isinstance(value, dict):
        return _encode_dict(value)
    return value


def _encode_isoformat(value: Any) -> Any:
    return value.isoformat()


# Items are encoded as to_data does, inline: a plain value kept, else its type's encoder called
# directly when there is one already (to_data builds it otherwise).

def _encode_list(value: Any) -> list[Any]:
    return [v if (t := type(v)) in _PLAIN else _encoders.get(t, to_data)(v) for v in value]


def _encode_set(value: Any) -> list[Any]:
    return sorted([v if (t := type(v)) in _PLAIN else _encoders.get(t, to_data)(v) for v in value])


def _encode_dict(value: Any) -> dict[str, Any]:
    return {(k if type(k) is str else str(k)): (v if (t := type(v)) in _PLAIN else _encoders.get(t, to_data)(v))
            for k, v in value.items()}


def _keep(value: Any) -> Any:
    return value


def _dataclass_encoder(cls: type) -> Encoder:
    """``def encode(obj): return {"name": <obj.name encoded>, ...}`` over every field, in order, each
    value encoded as to_data does, inline (a plain value kept, else its type's encoder called)."""
    names = [f.name for f in dataclasses.fields(cls)]
    if not all(_is_attribute_name(n) for n in names):
        getters = [(n, attrgetter(n)) for n in names]
        return lambda obj: {n: to_data(get(obj)) for n, get in getters}
    items = "".join(f"\n        {n!r}: v if (t := type(v := obj.{n})) in PLAIN else encoder(t, to_data)(v),"
                    for n in names)
    source = f"def encode(obj):\n    return {{{items}\n    }}\n"
    env = {"PLAIN": _PLAIN, "encoder": _encoders.get, "to_data": to_data}
    return typing.cast(Encoder, _compile(source, f"encode_{cls.__qualname__}", env))


# ---------------------------------------------------------------------------------------- decoding

@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_data(cls: type[T], data: Any) -> T:
    try:
        decode = _decoders[cls]
    except (KeyError, TypeError):     # not built yet, or a hint that cannot be a dict key
        decode = _decoder_for(cls)
    return typing.cast(T, data if decode is None else decode(data))


def _decoder_for(tp: Any) -> Decoder | None:
    """The decoder for hint ``tp`` (None: keep the data). A hint whose decoder cannot be built now
    (an unresolved forward reference...) gets one that tries again on each use, so it fails where
    and as the generic decoding did - only for data that is not None - and works once it can."""
    try:
        return _built(tp)
    except Exception:
        return _retrying(tp)


def _built(tp: Any) -> Decoder | None:
    try:
        hash(tp)
    except TypeError:               # cannot be cached: built for this use
        return _build_decoder(tp)
    with _lock:
        if tp in _decoders:
            return _decoders[tp]
        if tp in _building:         # a dataclass that contains itself: decode through the cache
            return lambda data: from_data(tp, data)
        _building.add(tp)
        try:
            decode = _decoders[tp] = _build_decoder(tp)
        finally:
            _building.discard(tp)
        return decode


def _retrying(tp: Any) -> Decoder:
    def decode(data: Any) -> Any:
        if data is None:
            return None
        built = _built(tp)          # raises the build's error while it still fails
        return data if built is None else built(data)
    return decode


def _build_decoder(tp: Any) -> Decoder | None:
    """The generic rules, decided once for the hint instead of once per value."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decoder_for(args[0]) if len(args) == 1 else None
    if origin in (list, tuple, set, frozenset):
        (inner, *_rest) = typing.get_args(tp) or (Any,)
        return _collection_decoder(origin, _decoder_for(inner))
    if origin is dict:
        _, inner = typing.get_args(tp)
        return _dict_decoder(_decoder_for(inner))
    if tp is Any:
        return None
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return _dataclass_decoder(tp)
        if issubclass(tp, Enum):
            return _enum_decoder(tp)
        if tp is datetime:
            return _nullable(datetime.fromisoformat)
        if tp is date:
            return _nullable(date.fromisoformat)
    return None


def _nullable(convert: Callable[[Any], Any]) -> Decoder:
    def decode(data: Any) -> Any:
        return None if data is None else convert(data)
    return decode


def _collection_decoder(origin: type, item: Decoder | None) -> Decoder:
    if item is None:                   # a copy of the items, as they are
        return _nullable(origin)
    if origin is list:
        def decode(data: Any) -> Any:
            return None if data is None else [item(v) for v in data]
    else:
        def decode(data: Any) -> Any:
            return None if data is None else origin([item(v) for v in data])
    return decode


def _dict_decoder(item: Decoder | None) -> Decoder:
    if item is None:
        def copy(data: Any) -> Any:
            return None if data is None else dict(data.items())
        return copy

    def decode(data: Any) -> Any:
        return None if data is None else {k: item(v) for k, v in data.items()}
    return decode


def _enum_decoder(cls: type[Enum]) -> Decoder:
    """``cls(data)``; when the enum's lookup is Enum's own, its by-value dict is read first (what
    ``Enum.__new__`` does first), the full lookup only when that misses."""
    if not (type(cls).__call__ is EnumMeta.__call__ and cls.__new__ is Enum.__new__):
        return _nullable(cls)
    members = cls._value2member_map_

    def decode(data: Any) -> Any:
        if data is None:
            return None
        try:
            return members[data]
        except (KeyError, TypeError):
            return cls(data)
    return decode


def _dataclass_decoder(cls: type) -> Decoder:
    """``cls(**{name: decode(data[name]) for each init field in data})``, written out: when ``data`` is
    a dict holding every init field (what ``to_data`` writes), one call with keyword arguments;
    otherwise the fields present, one by one."""
    hints = _hints(cls)
    plan = [(f.name, _field_decoder(hints, f.name)) for f in dataclasses.fields(cls) if f.init]
    names = frozenset(name for name, _ in plan)
    env: dict[str, Any] = {"cls": cls, "NAMES": names}
    calls, steps = [], []
    for i, (name, decode) in enumerate(plan):
        value = f"data[{name!r}]"
        if decode is not None:
            env[f"d{i}"] = decode
            value = f"d{i}({value})"
        if _is_attribute_name(name):
            calls.append(f"\n            {name}={value},")
        steps.append(f"    if {name!r} in data:\n        kwargs[{name!r}] = {value}\n")
    fast = ""
    if len(calls) == len(plan):
        fast = f"    if type(data) is dict and data.keys() >= NAMES:\n        return cls({''.join(calls)}\n        )\n"
    source = ("def decode(data):\n    if data is None:\n        return None\n" + fast
              + "    kwargs = {}\n" + "".join(steps) + "    return cls(**kwargs)\n")
    return typing.cast(Decoder, _compile(source, f"decode_{cls.__qualname__}", env))


def _field_decoder(hints: dict[str, Any], name: str) -> Decoder | None:
    if name in hints:
        return _decoder_for(hints[name])

    def missing(data: Any) -> Any:      # the generic decoding looked the hint up per value
        raise KeyError(name)
    return missing


# ----------------------------------------------------------------------------------------- helpers

_ENUM_VALUE = Enum.__dict__["value"]


def _static_attribute(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _has_own_class_attribute(cls: type) -> bool:
    return _static_attribute(cls, "__class__") is not object.__dict__["__class__"]


def _is_attribute_name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__")


def _compile(source: str, name: str, env: dict[str, Any]) -> Callable[..., Any]:
    """Run generated ``def`` source in ``env`` and return the function, named ``name``, its source
    kept in ``__source__`` for anyone debugging."""
    namespace = dict(env)
    exec(compile(source, f"<supervision.codec {name}>", "exec"), namespace)
    function = namespace[source[4:source.index("(")]]
    function.__qualname__ = function.__name__ = name
    function.__source__ = source
    return typing.cast(Callable[..., Any], function)
