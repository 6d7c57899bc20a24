"""msrest (de)serialisation of Bot Framework activities, without msrest's per-value generality.

botbuilder 4.17.1 turns every inbound body into an ``Activity`` with msrest's ``Deserializer`` and
every reply back into JSON with ``Serializer.body``. Both are general: for each attribute of each
model msrest copies the attribute's description, runs its key extractors, looks the type up in
several tables, and ``Serializer.body`` first runs a whole *deserialisation* pass over the model it
is about to serialise (to turn dicts into models) before serialising it. For an activity that is a
fifth of a turn's CPU.

``WireReader`` and ``WireWriter`` do the same work from a plan computed once per model class
(attribute, JSON key, type), for the values whose result msrest's rules give trivially:

- ``str``/``bool``/``int``/``float`` values of exactly that Python type are kept as they are;
- ``object`` values that are plain JSON (dict with str keys, list, str, int, float, bool, None) are
  copied as msrest copies them;
- models and lists of models recurse (serialising by the value's own class, as msrest does);
- ``iso-8601`` timestamps in the form Teams sends (``2026-01-05T09:00:00.1234567Z``, or with a
  ``+hh:mm`` offset) are read straight into the datetime ``Deserializer.deserialize_iso`` gives (with
  isodate's own tzinfo objects), without its regular expression, string surgery and isodate parse;
  any other form goes to msrest;
- anything else (datetimes, enums, ``{...}`` dicts, unusual values) is handed to msrest's own
  ``deserialize_data`` / ``serialize_data`` for that value.

Where msrest would do something this plan does not model - a dict or other non-model value in a
model-typed slot (``Serializer.body`` would first turn it into a model), flattened keys, read-only
or constant attributes, ``additional_properties`` with an empty key, polymorphic ``_subtype_map``,
client-side validation on - the whole body goes to msrest unchanged. tests/test_hot_path_wire.py
compares the results with msrest's on Teams-shaped activities, cards and the odd cases, and pins
the msrest behaviour relied on (``body`` deserialising first; the key transformer; the
deserialiser's unknown-key ``additional_properties``).
"""
from __future__ import annotations

import functools
import re
from datetime import datetime
from enum import Enum
from typing import Any

import isodate
from msrest import Deserializer, Serializer
from msrest.serialization import Model, full_restapi_key_transformer

BASIC = frozenset({"str", "bool", "int", "float"})
_JSON_SCALARS = (str, int, float, bool)

# plan kinds
_BASIC, _OBJECT, _MODEL, _MODEL_LIST, _OTHER, _ISO = range(6)

# what Teams sends; everything else (other ISO 8601 forms, odd values) is msrest's to read
_TIMESTAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)")


@functools.lru_cache(maxsize=64)
def _offset(zone: str) -> Any:
    """isodate's tzinfo for a ``+hh:mm`` / ``-hh:mm`` offset, as its parser builds it (immutable: shared)."""
    sign = -1 if zone[0] == "-" else 1
    return isodate.FixedOffset(sign * int(zone[1:3]), sign * int(zone[4:6]), zone)


def read_timestamp(value: Any) -> datetime | None:
    """``Deserializer.deserialize_iso(value)`` for the forms Teams sends, or None (msrest must read
    it): the same instant, fraction cut to microseconds, and isodate's tzinfo (its ``UTC`` for ``Z``,
    a ``FixedOffset`` named as written otherwise)."""
    if type(value) is not str:
        return None
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if year in ("0001", "9999"):        # msrest refuses instants outside years 1-9999 in UTC: its call
        return None
    zone = zone.upper()
    tzinfo = isodate.UTC if zone == "Z" else _offset(zone)
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                        int(fraction[:6].ljust(6, "0")) if fraction else 0, tzinfo)
    except ValueError:                  # 2026-02-30 and the like: msrest's error
        return None


class NotPlain(Exception):
    """The value needs msrest's full treatment."""


def _json_copy(value: Any) -> Any:
    """A copy of a plain JSON tree (what msrest's serialize_object/deserialize_object give for one);
    ``NotPlain`` for anything else."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise NotPlain
            out[key] = _json_copy(item)
        return out
    if kind is list:
        return [_json_copy(item) for item in value]
    raise NotPlain


class _Plan:
    """Per model class: (attribute, JSON key, type, kind, inner type), or None if msrest must do it."""

    def __init__(self, dependencies: dict[str, Any]) -> None:
        self.dependencies = dependencies
        self.plans: dict[type, list[tuple[str, str, str, int, str]] | None] = {}

    def of(self, cls: type) -> list[tuple[str, str, str, int, str]] | None:
        try:
            return self.plans[cls]
        except KeyError:
            pass
        plan: list[tuple[str, str, str, int, str]] | None = []
        validation = getattr(cls, "_validation", {}) or {}
        if getattr(cls, "_subtype_map", {}) or any(
                v.get("readonly") or v.get("constant") for v in validation.values()):
            plan = None
        else:
            for attr, desc in cls._attribute_map.items():  # type: ignore[attr-defined]
                keys, _ = full_restapi_key_transformer(attr, dict(desc), None)
                if attr == "additional_properties" or len(keys) != 1 or desc.get("xml") or not desc["key"]:
                    plan = None
                    break
                data_type = desc["type"]
                inner = data_type[1:-1] if data_type[:1] == "[" and data_type[-1:] == "]" else ""
                if data_type in BASIC:
                    kind = _BASIC
                elif data_type == "object":
                    kind = _OBJECT
                elif data_type == "iso-8601":
                    kind = _ISO
                elif data_type in self.dependencies and _is_model(self.dependencies[data_type]):
                    kind = _MODEL
                elif inner in self.dependencies and _is_model(self.dependencies[inner]):
                    kind = _MODEL_LIST
                elif (data_type.strip("[]{}") in self.dependencies
                      and _is_model(self.dependencies[data_type.strip("[]{}")])):
                    plan = None   # a {Model} dict: rare, msrest's
                    break
                else:
                    kind = _OTHER
                plan.append((attr, keys[0], data_type, kind, inner))
        self.plans[cls] = plan
        return plan


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, Model) and not issubclass(value, Enum)


class WireWriter:
    """``Serializer.body(model, type)`` for Bot Framework models, as msrest gives it."""

    def __init__(self, serializer: Serializer) -> None:
        self.serializer = serializer
        self.plan = _Plan(serializer.dependencies)
        self.fast = 0
        self.fallbacks = 0

    def body(self, data: Any, data_type: str, **kwargs: Any) -> Any:
        if (not kwargs and not self.serializer.client_side_validation and isinstance(data, Model)
                and data_type in self.serializer.dependencies and isinstance(data, self.serializer.dependencies[data_type])):
            try:
                result = self._model(data)
                self.fast += 1
                return result
            except NotPlain:
                pass
        self.fallbacks += 1
        return Serializer.body(self.serializer, data, data_type, **kwargs)

    def serialize(self, model: Any) -> Any:
        """``model.serialize()`` (msrest ``Model.serialize``: ``_serialize`` without the body's
        deserialising pass), without rebuilding the model table and a Serializer for each call."""
        if isinstance(model, Model) and not self.serializer.client_side_validation:
            try:
                result = self._model(model)
                self.fast += 1
                return result
            except NotPlain:
                pass
        self.fallbacks += 1
        return self.serializer._serialize(model, keep_readonly=False)

    def _model(self, obj: Any) -> dict[str, Any]:
        plan = self.plan.of(type(obj))
        if plan is None or obj.is_xml_model():
            raise NotPlain
        out: dict[str, Any] = {}
        serialize_data = self.serializer.serialize_data
        for attr, key, data_type, kind, _inner in plan:
            value = getattr(obj, attr)
            if value is None:
                continue
            if kind == _BASIC:
                out[key] = value if type(value).__name__ == data_type else serialize_data(value, data_type)
            elif kind == _OBJECT:
                try:
                    out[key] = _json_copy(value)
                except NotPlain:
                    out[key] = self.serializer.serialize_object(value)
            elif kind == _MODEL:
                if not isinstance(value, Model):
                    raise NotPlain   # msrest's body() would first make it a model
                out[key] = self._model(value)
            elif kind == _MODEL_LIST:
                if type(value) is not list:
                    raise NotPlain
                items = []
                for item in value:
                    if item is None:
                        items.append(None)
                    elif isinstance(item, Model):
                        items.append(self._model(item))
                    else:
                        raise NotPlain
                out[key] = items
            else:
                try:
                    out[key] = serialize_data(value, data_type)
                except Exception:   # msrest skips some failures and raises others: let it decide
                    raise NotPlain from None
        return out


class WireSerializer(Serializer):  # type: ignore[misc]
    """A connector client's serialiser whose ``body`` goes through ``WireWriter`` (bot/connector.py
    swaps the class of a pooled client's serialiser, which its operations share)."""

    _wire: WireWriter | None = None

    def body(self, data: Any, data_type: str, **kwargs: Any) -> Any:
        wire = self.__dict__.get("_wire")
        if wire is None:
            wire = self._wire = WireWriter(self)
        return wire.body(data, data_type, **kwargs)


class WireReader:
    """``Deserializer(models)(type, body)`` for Bot Framework models, as msrest gives it."""

    def __init__(self, deserializer: Deserializer) -> None:
        self.deserializer = deserializer
        self.plan = _Plan(deserializer.dependencies)
        self.known: dict[type, frozenset[str]] = {}
        self.fast = 0
        self.fallbacks = 0

    def __call__(self, data_type: str, data: Any) -> Any:
        cls = self.deserializer.dependencies.get(data_type)
        if (type(data) is dict and cls is not None and _is_model(cls)
                and self.deserializer.additional_properties_detection
                and len(self.deserializer.key_extractors) == 2):
            try:
                result = self._model(cls, data)
                self.fast += 1
                return result
            except NotPlain:
                pass
        self.fallbacks += 1
        return self.deserializer(data_type, data)

    def _model(self, cls: type, data: dict[str, Any]) -> Any:
        plan = self.plan.of(cls)
        if plan is None:
            raise NotPlain
        deserialize_data = self.deserializer.deserialize_data
        kwargs: dict[str, Any] = {}
        for attr, key, data_type, kind, inner in plan:
            value = data.get(key)
            if value is None:
                kwargs[attr] = None
                continue
            if kind == _BASIC:
                kwargs[attr] = value if type(value).__name__ == data_type else deserialize_data(value, data_type)
            elif kind == _OBJECT:
                try:
                    kwargs[attr] = _json_copy(value)
                except NotPlain:
                    kwargs[attr] = deserialize_data(value, data_type)
            elif kind == _MODEL:
                kwargs[attr] = (self._model(self.deserializer.dependencies[data_type], value)
                                if type(value) is dict else deserialize_data(value, data_type))
            elif kind == _MODEL_LIST and type(value) is list:
                item_cls = self.deserializer.dependencies[inner]
                kwargs[attr] = [self._model(item_cls, item) if type(item) is dict else deserialize_data(item, inner)
                                for item in value]
            elif kind == _ISO:
                kwargs[attr] = read_timestamp(value) or deserialize_data(value, data_type)
            else:
                kwargs[attr] = deserialize_data(value, data_type)
        obj = cls(**kwargs)
        known = self.known.get(cls)
        if known is None:
            known = self.known[cls] = frozenset(key for _, key, _, _, _ in plan)
        if not known.issuperset(data):
            obj.additional_properties = {k: v for k, v in data.items() if k not in known}
        return obj


_SCHEMA_WRITER: WireWriter | None = None


def schema_writer() -> WireWriter:
    """One shared writer for the Bot Framework schema's models (``writer.serialize(model)`` is
    ``model.serialize()``)."""
    global _SCHEMA_WRITER
    if _SCHEMA_WRITER is None:
        from botbuilder.schema import Activity

        serializer = Serializer(Activity._infer_class_models())
        serializer.client_side_validation = False
        _SCHEMA_WRITER = WireWriter(serializer)
    return _SCHEMA_WRITER
