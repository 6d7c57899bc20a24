"""jsonpickle's form of bot state, written and read without jsonpickle's general machinery.

bot/state_storage.py stores every bot-state value as ``jsonpickle.Pickler(unpicklable=True).flatten``
gives it and reads it back with ``jsonpickle.Unpickler().restore``: stored documents, other instances
of the bot and the Blob store all hold that form, so it cannot change. jsonpickle's general walk (a
handler lookup, reduce and getstate probes and reference bookkeeping for every object) was ~6% of the
bot's event-loop time. This module produces exactly the same documents, and restores exactly the same
objects, for the shapes bot state has:

- plain JSON values: ``dict`` with ``str`` keys, ``list``, ``str``, ``int``, finite ``float``,
  ``bool``, ``None`` (exact types: a subclass such as a str enum is not plain);
- instances of the SDK's dialog-state classes (``PLAIN_CLASSES``: ``DialogState``,
  ``DialogInstance``), which jsonpickle writes as ``{"py/object": "<module>.<Class>", **__dict__}``
  and restores with ``cls.__new__(cls)`` and one ``setattr`` per key.

Anything else - tuples, sets, bytes, datetimes, other classes, non-``str`` keys, keys that are
jsonpickle tags (``py/...``), attributes named ``__x``, nan and infinities, the same list, dict or
object reached twice (jsonpickle writes a ``py/id`` reference the second time), a cycle, a document
with any tag but ``py/object`` of a known class - makes the whole value go through jsonpickle, so
the result is always jsonpickle's. So does a jsonpickle that would treat a known class differently:
each class is checked once against jsonpickle's own rules (no handler, no ``__reduce__``,
``__getstate__``, ``__getnewargs__``, slots ...) and by a probe round trip through jsonpickle, and a
handler registered later is seen at the next call. tests/test_state_codec.py compares the two on
generated states (hypothesis) and pins jsonpickle's form of a ``DialogState`` as a literal.
"""
from __future__ import annotations

from typing import Any

from botbuilder.dialogs import DialogInstance, DialogState
from jsonpickle import Pickler, Unpickler, handlers, tags, util
from jsonpickle.backend import json as jsonpickle_backend
from jsonpickle.unpickler import loadclass

PLAIN_CLASSES: tuple[type, ...] = (DialogState, DialogInstance)

OBJECT = tags.OBJECT
# every key jsonpickle treats as a tag when flattening or restoring (py/b64 and py/b85 are tags to the
# Unpickler though not in tags.RESERVED)
RESERVED = frozenset(tags.RESERVED) | {tags.B64, tags.B85}
# attribute names whose restore or flatten jsonpickle treats specially (besides tags and ``__x``)
ODD_ATTRIBUTES = frozenset({"default_factory", "_jsonpickle_exclude"})
# values that are their own flattened and restored form (exact types; floats are checked for nan/inf)
LEAVES = frozenset({str, int, bool, type(None)})


class Fallback(Exception):
    """The value is outside the shapes this module reproduces: jsonpickle handles all of it."""


class _PlainClass:
    __slots__ = ("cls", "name", "class_attributes")

    def __init__(self, cls: type, name: str) -> None:
        self.cls, self.name, self.class_attributes = cls, name, frozenset(dir(cls))


_checked: dict[type, _PlainClass | None] = {}
_names: dict[str, type] = {}
_class_names: dict[type, str] = {}


def _plain_class(cls: type) -> _PlainClass | None:
    """``cls`` if jsonpickle (with no handler for it) flattens its instances as
    ``{"py/object": name, **__dict__}`` and restores them with ``__new__`` and ``setattr``: checked
    once with jsonpickle's own predicates and a probe round trip."""
    if cls not in PLAIN_CLASSES:
        return None
    if cls in _checked:
        return _checked[cls]
    plain: _PlainClass | None = None
    try:
        blank: Any = object.__new__(cls)
        name = util.importable_name(cls)
        if (cls.__new__ is object.__new__
                and cls.__setattr__ is object.__setattr__ and cls.__getattribute__ is object.__getattribute__
                and hasattr(blank, "__dict__") and util.has_reduce(blank) == (False, False)
                and type(blank).__getstate__ is object.__getstate__
                and not any(util.has_method(blank, m) for m in ("__getnewargs__", "__getnewargs_ex__",
                                                                "__getinitargs__", "__setstate__"))
                and not any(hasattr(cls, a) for a in ODD_ATTRIBUTES)
                and not util.is_dictionary_subclass(blank) and not util.is_sequence_subclass(blank)
                and not util.is_iterator(blank) and not util.is_module(blank) and not util.is_noncomplex(blank)
                and loadclass(name) is cls):
            probe: Any = object.__new__(cls)
            probe.__dict__.update(a="x", b=[1, {"c": None}])
            flat = Pickler(unpicklable=True).flatten(probe)
            back = Unpickler().restore(flat)
            if (flat == {OBJECT: name, "a": "x", "b": [1, {"c": None}]} and list(flat) == [OBJECT, "a", "b"]
                    and type(back) is cls and back.__dict__ == probe.__dict__):
                plain = _PlainClass(cls, name)
    except Exception:  # anything unexpected: not plain, jsonpickle does it
        plain = None
    _checked[cls] = plain
    return plain


def _usable(cls: type | None) -> _PlainClass:
    """The checked plain class ``cls``, unless jsonpickle has a handler for it now (looked up once per
    call per class, before the check so that the check's probe never meets a handler)."""
    if cls is None or cls not in PLAIN_CLASSES:
        raise Fallback
    if not _class_names:
        _class_names.update((cls, util.importable_name(cls)) for cls in PLAIN_CLASSES)
    if handlers.get(cls, handlers.get(_class_names[cls])) is not None:
        raise Fallback
    plain = _plain_class(cls)
    if plain is None:
        raise Fallback
    return plain


def _named(name: str) -> type | None:
    """The plain class jsonpickle writes as ``name``."""
    if not _names:
        _names.update((util.importable_name(cls), cls) for cls in PLAIN_CLASSES)
    return _names.get(name)


def _sorting_keys() -> bool:
    """What ``Pickler._determine_sort_keys`` asks: a backend set to sort keys makes jsonpickle sort the
    root object's attributes in place first."""
    options = getattr(jsonpickle_backend, "_encoder_options", {})
    return any(o.get("sort_keys", False) for _, o in options.values())


# --- flatten ------------------------------------------------------------------------------------------
def _flatten(value: Any, seen: set[int], classes: dict[type, _PlainClass]) -> Any:
    kind = type(value)
    if kind in LEAVES:
        return value
    if kind is float:
        if value - value == 0.0:            # finite (nan and infinities give nan)
            return value
        raise Fallback
    ident = id(value)
    if ident in seen:                       # jsonpickle would write a py/id reference
        raise Fallback
    seen.add(ident)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str or key in RESERVED:
                raise Fallback
            out[key] = item if type(item) in LEAVES else _flatten(item, seen, classes)
        return out
    if kind is list:
        return [item if type(item) in LEAVES else _flatten(item, seen, classes) for item in value]
    plain = classes.get(kind)
    if plain is None:
        plain = classes[kind] = _usable(kind)
    attributes = value.__dict__
    if id(attributes) in seen:
        raise Fallback
    seen.add(id(attributes))
    out = {OBJECT: plain.name}
    for key, item in attributes.items():
        if type(key) is not str or key in RESERVED or key.startswith("__") or key in ODD_ATTRIBUTES:
            raise Fallback
        out[key] = item if type(item) in LEAVES else _flatten(item, seen, classes)
    return out


def try_flatten(value: Any) -> Any:
    """jsonpickle's flattened form of ``value``; raises ``Fallback`` if ``value`` is not a known shape."""
    if _sorting_keys():
        raise Fallback
    try:
        return _flatten(value, set(), {})
    except RecursionError:
        raise Fallback from None


def flatten(value: Any) -> Any:
    """Exactly ``jsonpickle.Pickler(unpicklable=True).flatten(value)``."""
    try:
        return try_flatten(value)
    except Fallback:
        return Pickler(unpicklable=True).flatten(value)


# --- restore ------------------------------------------------------------------------------------------
def _restore(value: Any, classes: dict[str, _PlainClass]) -> Any:
    kind = type(value)
    if kind in LEAVES or kind is float:
        return value
    if kind is list:
        return [item if type(item) in LEAVES else _restore(item, classes) for item in value]
    if kind is not dict:
        raise Fallback
    if OBJECT not in value:
        out = {}
        for key, item in value.items():
            if type(key) is not str or key in RESERVED:
                raise Fallback
            out[key] = item if type(item) in LEAVES else _restore(item, classes)
        return out
    name = value[OBJECT]
    if type(name) is not str:
        raise Fallback
    plain = classes.get(name)
    if plain is None:
        plain = classes[name] = _usable(_named(name))
    instance: Any = object.__new__(plain.cls)
    attributes = instance.__dict__
    for key, item in value.items():
        if key == OBJECT:
            continue
        if (type(key) is not str or key in RESERVED or key.startswith("__") or key in ODD_ATTRIBUTES
                or key in plain.class_attributes):
            raise Fallback
        attributes[key] = item if type(item) in LEAVES else _restore(item, classes)
    return instance


def try_restore(document: Any) -> Any:
    """What jsonpickle restores from ``document``; raises ``Fallback`` if it is not a known shape."""
    try:
        return _restore(document, {})
    except RecursionError:
        raise Fallback from None


def restore(document: Any) -> Any:
    """Exactly what ``jsonpickle.Unpickler().restore(document)`` builds."""
    try:
        return try_restore(document)
    except Fallback:
        return Unpickler().restore(document)
