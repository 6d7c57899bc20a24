"""bot/state_codec.py: exactly jsonpickle's flattened bot state, and exactly jsonpickle's restored objects.

Generated states (hypothesis) mix plain JSON, the SDK's DialogState/DialogInstance trees and odd values
(tuples, sets, bytes, datetimes, enums, other classes, non-str and tag keys, nan, shared objects and
cycles); every one must flatten to what ``jsonpickle.Pickler(unpicklable=True).flatten`` gives (same
keys in the same order, same types) and restore to what ``jsonpickle.Unpickler().restore`` builds
(same classes, same attributes, same sharing). A literal pins jsonpickle's own form of a DialogState,
so the test fails if jsonpickle or botbuilder changes it.
"""
from __future__ import annotations

import copy
import enum
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jsonpickle
import pytest
from botbuilder.core import StoreItem
from botbuilder.dialogs import DialogInstance, DialogState
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonpickle import Pickler, Unpickler, handlers

from bot import state_codec
from bot.state_codec import Fallback
from bot.state_storage import DocumentBotStorage
from storage.memory import MemoryStore
from tests.support.harness import BotHarness, User

ALEX = User("user-id-0", "Alex Wilber", "aad-alex")


class Colour(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    ONE = 1


class Plain:
    """A class jsonpickle flattens as it does the SDK's, but not one the codec knows."""

    def __init__(self, value: Any = None) -> None:
        self.value = value


class Tagged(dict[str, Any]):
    pass


def jp_flatten(value: Any) -> Any:
    return Pickler(unpicklable=True).flatten(value)


def jp_restore(document: Any) -> Any:
    return Unpickler().restore(document)


# --- an exact comparison: types, key order, floats by repr, objects by class and __dict__, sharing ---
def same(a: Any, b: Any, forward: dict[int, int] | None = None, back: dict[int, int] | None = None) -> bool:
    forward = {} if forward is None else forward
    back = {} if back is None else back
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, (str, int, bytes, type(None), Decimal, datetime, enum.Enum)):
        return bool(a == b) and repr(a) == repr(b)
    if isinstance(a, type):
        return a is b
    if isinstance(a, (set, frozenset)):
        return bool(a == b)
    if id(a) in forward or id(b) in back:           # the same sharing on both sides
        return forward.get(id(a)) == id(b) and back.get(id(b)) == id(a)
    forward[id(a)], back[id(b)] = id(b), id(a)
    if isinstance(a, dict):
        return (list(a) == list(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
                and all(same(a[k], b[k], forward, back) for k in a))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, forward, back) for x, y in zip(a, b, strict=True))
    return hasattr(a, "__dict__") and same(vars(a), vars(b), forward, back)


def same_outcome(ours: Callable[[Any], Any], theirs: Callable[[Any], Any], value: Any) -> bool:
    """Both give the same result, or both raise the same kind of error. Each gets its own deep copy of a
    document (jsonpickle's restore deletes a ``default_factory`` key from the document it is given)."""
    def given(v: Any) -> Any:
        return copy.deepcopy(v) if ours is state_codec.restore else v
    try:
        expected = theirs(given(value))
    except Exception as error:
        with pytest.raises(type(error)):
            ours(given(value))
        return True
    return same(ours(given(value)), expected)


def fast_path(call: Callable[[Any], Any], value: Any) -> bool:
    try:
        call(value)
    except Fallback:
        return False
    return True


# --- generated states -----------------------------------------------------------------------------
TAGS = ["py/object", "py/id", "py/tuple", "py/state", "py/reduce", "py/set", "default_factory", "_jsonpickle_exclude",
        "__private", "json://1", "null", "e_tag", "_dialog_stack", "dialog_stack", "id", "state"]
PLAIN_KEYS = st.text(max_size=6)
KEYS = st.one_of(PLAIN_KEYS, st.sampled_from(TAGS))
ODD_KEYS = st.one_of(st.integers(-3, 3), st.none(), st.booleans(), st.tuples(st.integers(0, 2)))
PLAIN_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                         st.floats(allow_nan=False, allow_infinity=False))
ODD_LEAVES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not math.isfinite(f)),
    st.binary(max_size=4), st.datetimes(timezones=st.sampled_from([UTC, None])), st.just(Colour.RED),
    st.decimals(allow_nan=False, places=2, max_value=1000, min_value=-1000), st.just(Plain("x")),
    st.builds(StoreItem, count=st.integers(0, 3)), st.frozensets(st.integers(0, 5), max_size=3),
)


def instance(id_: Any, state: Any, extra: dict[Any, Any]) -> DialogInstance:
    made = DialogInstance()
    made.id, made.state = id_, state
    for key, value in extra.items():
        made.__dict__[key] = value
    return made


def plain_values(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    instances = st.builds(instance, st.one_of(st.none(), st.text(max_size=6)),
                          st.dictionaries(PLAIN_KEYS, children, max_size=3), st.just({}))
    return st.one_of(st.lists(children, max_size=3), st.dictionaries(PLAIN_KEYS, children, max_size=3), instances,
                     st.builds(DialogState, st.lists(instances, max_size=3)))


def any_values(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    instances = st.builds(instance, st.one_of(st.none(), st.text(max_size=6), children), children,
                          st.dictionaries(KEYS, children, max_size=2))
    return st.one_of(
        plain_values(children), instances, st.builds(DialogState, st.one_of(st.lists(instances, max_size=3), children)),
        st.dictionaries(KEYS, children, max_size=3), st.dictionaries(ODD_KEYS, children, max_size=2),
        st.tuples(children, children), st.sets(st.integers(0, 9), max_size=3), st.builds(Plain, children),
        st.builds(lambda d: Tagged(d), st.dictionaries(PLAIN_KEYS, children, max_size=2)),
    )


PLAIN = st.recursive(PLAIN_LEAVES, plain_values, max_leaves=25)
ANY = st.recursive(st.one_of(PLAIN_LEAVES, ODD_LEAVES), any_values, max_leaves=25)


def containers(value: Any, found: list[Any] | None = None, seen: set[int] | None = None) -> list[Any]:
    """Every list, dict and known-class object in ``value``, once each."""
    found, seen = ([] if found is None else found), (set() if seen is None else seen)
    if isinstance(value, (list, dict, DialogInstance, DialogState)) and id(value) not in seen:
        seen.add(id(value))
        found.append(value)
        items = (value if isinstance(value, list) else value.values() if isinstance(value, dict)
                 else vars(value).values())
        for item in list(items):
            containers(item, found, seen)
    return found


@st.composite
def states(draw: st.DrawFn, values: st.SearchStrategy[Any] = ANY, share: bool = True) -> dict[str, Any]:
    stack = draw(st.lists(st.builds(instance, st.text(max_size=6), st.dictionaries(PLAIN_KEYS, values, max_size=3),
                                    st.just({})), max_size=3))
    state: dict[str, Any] = {"DialogState": DialogState(stack), "feature": draw(values), "e_tag": "1"}
    if share and draw(st.booleans()):              # the same object twice (a py/id), maybe a cycle
        found = containers(state)
        shared, target = draw(st.sampled_from(found)), draw(st.sampled_from(found))
        if isinstance(target, list):
            target.append(shared)
        elif isinstance(target, dict):
            target["shared"] = shared
        else:
            target.shared = shared
    return state


HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(states())
def test_flatten_gives_exactly_jsonpickles_document(state: dict[str, Any]) -> None:
    before = copy.deepcopy(state)
    assert same_outcome(state_codec.flatten, jp_flatten, state)
    assert same(state, before)                              # the value is not touched


@HYPOTHESIS
@given(states())
def test_restore_builds_exactly_what_jsonpickle_builds(state: dict[str, Any]) -> None:
    try:
        document = jp_flatten(state)
    except Exception:                                       # a value jsonpickle cannot store (see above)
        return
    assert same_outcome(state_codec.restore, jp_restore, document)
    stored = json.loads(json.dumps(document))               # as a JSON store gives it back
    assert same_outcome(state_codec.restore, jp_restore, stored)
    assert same(stored, json.loads(json.dumps(document)))   # the document is not touched


@HYPOTHESIS
@given(states(values=PLAIN, share=False))
def test_plain_states_take_the_fast_path_both_ways(state: dict[str, Any]) -> None:
    assert fast_path(state_codec.try_flatten, state)
    document = state_codec.try_flatten(state)
    assert same(document, jp_flatten(state))
    assert fast_path(state_codec.try_restore, document)
    assert same(state_codec.try_restore(document), jp_restore(document))
    assert same(state_codec.try_restore(json.loads(json.dumps(document))), jp_restore(document))


# --- jsonpickle's form of the SDK's dialog state, pinned --------------------------------------------
PINNED = {
    "DialogState": {
        "py/object": "botbuilder.dialogs.dialog_state.DialogState",
        "_dialog_stack": [
            {
                "py/object": "botbuilder.dialogs.dialog_instance.DialogInstance",
                "id": "request.submit",
                "state": {"options": {"case_id": "CASE-1"}, "values": {"instanceId": "i-1", "card": {"title": "T"}},
                          "stepIndex": 1},
            },
        ],
    },
    "e_tag": "7",
}


def pinned_state() -> dict[str, Any]:
    state = {"options": {"case_id": "CASE-1"}, "values": {"instanceId": "i-1", "card": {"title": "T"}}, "stepIndex": 1}
    return {"DialogState": DialogState([DialogInstance("request.submit", state)]), "e_tag": "7"}


def test_jsonpickle_still_writes_and_reads_dialog_state_as_the_codec_does() -> None:
    """Fails if jsonpickle or botbuilder change the stored form the codec reproduces."""
    state = pinned_state()
    flat = jp_flatten(state)
    assert json.dumps(flat) == json.dumps(PINNED)           # same keys in the same order
    restored = jp_restore(copy.deepcopy(PINNED))
    assert type(restored["DialogState"]) is DialogState
    assert list(vars(restored["DialogState"])) == ["_dialog_stack"]
    (only,) = restored["DialogState"].dialog_stack
    assert type(only) is DialogInstance and vars(only) == vars(pinned_state()["DialogState"].dialog_stack[0])
    assert list(vars(only)) == ["id", "state"]
    # and the codec gives the same, without falling back
    assert json.dumps(state_codec.try_flatten(state)) == json.dumps(PINNED)
    assert same(state_codec.try_restore(copy.deepcopy(PINNED)), restored)


def test_the_sdk_classes_pass_the_codecs_checks_and_others_do_not() -> None:
    assert all(state_codec._plain_class(cls) is not None for cls in state_codec.PLAIN_CLASSES)
    assert state_codec._plain_class(Plain) is None and state_codec._plain_class(StoreItem) is None


# --- what falls back --------------------------------------------------------------------------------
def shared_dict() -> Any:
    inner = {"a": 1}
    return {"x": inner, "y": [inner]}


def shared_instance() -> Any:
    one = DialogInstance("a", {})
    return {"DialogState": DialogState([one, one])}


def cycle() -> Any:
    loop: list[Any] = [1]
    loop.append(loop)
    return {"loop": loop}


def self_stack() -> Any:
    state = DialogState()
    state.dialog_stack.append(DialogInstance("a", {"parent": state}))
    return {"DialogState": state}


def with_attribute(name: str, value: Any = 1) -> Any:
    made = DialogInstance("a", {})
    made.__dict__[name] = value
    return {"DialogState": DialogState([made])}


def dict_is_attributes() -> Any:
    made = DialogInstance("a", {})
    return {"i": made, "d": vars(made)}


FALLS_BACK: dict[str, Callable[[], Any]] = {
    "tuple": lambda: {"t": (1, 2)}, "set": lambda: {"s": {1}}, "bytes": lambda: {"b": b"x"},
    "datetime": lambda: {"when": datetime(2026, 1, 5, tzinfo=UTC)}, "str enum": lambda: {"c": Colour.RED},
    "bool key": lambda: {True: 1}, "int key": lambda: {1: "a", "1": "b"}, "None key": lambda: {None: 1},
    "tag key": lambda: {"py/object": "x"}, "py/id key": lambda: {"a": {"py/id": 1}},
    "nan": lambda: {"f": math.nan}, "inf": lambda: [-math.inf],
    "shared dict": shared_dict, "shared instance": shared_instance, "cycle": cycle, "object cycle": self_stack,
    "unknown class": lambda: {"p": Plain(1)}, "store item": lambda: StoreItem(a=1), "dict subclass": lambda: Tagged(a=1),
    "int subclass": lambda: {"n": Level.ONE}, "attribute __x": lambda: with_attribute("__secret"),
    "attribute tag": lambda: with_attribute("py/state"), "attribute default_factory": lambda: with_attribute("default_factory"),
    "attribute exclude": lambda: with_attribute("_jsonpickle_exclude", ("id",)),
    "attributes dict shared": dict_is_attributes, "deep": lambda: nested(5000),
}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("name", FALLS_BACK)
def test_values_outside_the_known_shapes_go_through_jsonpickle(name: str) -> None:
    value = FALLS_BACK[name]()
    with pytest.raises(Fallback):
        state_codec.try_flatten(value)
    assert same_outcome(state_codec.flatten, jp_flatten, value)       # "deep": both a RecursionError
    if name != "deep":
        assert same_outcome(state_codec.restore, jp_restore, jp_flatten(value))


STATE = "botbuilder.dialogs.dialog_state.DialogState"
INSTANCE = "botbuilder.dialogs.dialog_instance.DialogInstance"
DOCUMENTS_FALLING_BACK: dict[str, Any] = {
    "py/id": {"a": {"x": 1}, "b": {"py/id": 1}},
    "py/tuple": {"t": {"py/tuple": [1, 2]}},
    "unknown class": {"p": {"py/object": "tests.test_state_codec.Plain", "value": 1}},
    "missing class": {"p": {"py/object": "nowhere.Nothing", "value": 1}},
    "store item": {"py/object": "botbuilder.core.storage.StoreItem", "a": 1},
    "known class with py/state": {"py/object": INSTANCE, "py/state": {"id": "a"}},
    "known class with py/id first": {"py/id": 0, "py/object": STATE},
    "class attribute (a property)": {"py/object": STATE, "dialog_stack": []},
    "attribute __x": {"py/object": INSTANCE, "__x": 1},
    "default_factory": {"py/object": INSTANCE, "default_factory": None},
    "class name not a str": {"py/object": ["x"]},
    "datetime": {"when": jp_flatten(datetime(2026, 1, 5, tzinfo=UTC))},
    "tag key in a dict": {"a": {"py/type": "builtins.int"}},
    "a tuple in a stored value": {"a": (1, 2)},
    "an int key in a stored value": {"a": {1: 2}},
}


@pytest.mark.parametrize("name", DOCUMENTS_FALLING_BACK)
def test_documents_outside_the_known_shapes_are_restored_by_jsonpickle(name: str) -> None:
    document = DOCUMENTS_FALLING_BACK[name]
    with pytest.raises(Fallback):
        state_codec.try_restore(copy.deepcopy(document))
    try:
        expected = jp_restore(copy.deepcopy(document))
    except Exception as error:                              # jsonpickle's own error, as before
        with pytest.raises(type(error)):
            state_codec.restore(copy.deepcopy(document))
        return
    assert same(state_codec.restore(copy.deepcopy(document)), expected)


def test_a_handler_registered_for_a_known_class_is_honoured() -> None:
    class InstanceHandler(handlers.BaseHandler):
        def flatten(self, obj: Any, data: dict[str, Any]) -> dict[str, Any]:
            data["handled"] = obj.id
            return data

        def restore(self, obj: dict[str, Any]) -> Any:
            return DialogInstance("from-handler", {})

    state = pinned_state()
    document = copy.deepcopy(PINNED)
    handlers.register(DialogInstance, InstanceHandler)
    try:
        assert not fast_path(state_codec.try_flatten, state)
        assert not fast_path(state_codec.try_restore, document)
        flat = state_codec.flatten(state)
        assert flat["DialogState"]["_dialog_stack"][0]["handled"] == "request.submit"
        assert same(flat, jp_flatten(state))
        assert state_codec.restore(document)["DialogState"].dialog_stack[0].id == "from-handler"
    finally:
        handlers.unregister(DialogInstance)
    assert fast_path(state_codec.try_flatten, state) and fast_path(state_codec.try_restore, document)


def test_a_backend_sorting_keys_makes_jsonpickle_do_it() -> None:
    """jsonpickle sorts the root object's attributes when a backend sorts keys: the codec steps aside."""
    backend = jsonpickle.backend.json
    saved = dict(backend._encoder_options)
    root = DialogInstance("a", {"b": 1, "a": 2})
    root.__dict__ = {"state": root.state, "id": "a"}
    jsonpickle.set_encoder_options("json", sort_keys=True)
    try:
        assert not fast_path(state_codec.try_flatten, root)
        flat = state_codec.flatten(root)
        assert list(flat) == ["py/object", "id", "state"]
    finally:
        backend._encoder_options.clear()
        backend._encoder_options.update(saved)
    assert fast_path(state_codec.try_flatten, {"DialogState": DialogState()})


# --- through the real storage ---------------------------------------------------------------------
async def test_document_bot_storage_round_trips_dialog_stacks_as_jsonpickle_did() -> None:
    store = MemoryStore()
    storage = DocumentBotStorage(store)
    stack = [DialogInstance("request", {"options": None, "values": {"instanceId": "i", "card": {"n": 2.5}},
                                        "stepIndex": 0}),
             DialogInstance("text", {"state": {}, "options": {"prompt": "name?"}})]
    value = {"DialogState": DialogState(stack), "feature": {"case_id": "CASE-2", "flags": [True, None]}}
    expected_document = jp_flatten(copy.deepcopy(value))
    await storage.write({"k": value})
    stored = await store.get("bot_state", "k")
    assert stored is not None and same(stored.data["document"], expected_document)
    read = (await storage.read(["k"]))["k"]
    expected = jp_restore(expected_document)
    expected["e_tag"] = stored.etag
    assert same(read, expected)

    read["DialogState"].dialog_stack.pop()                   # a turn changes it; written back with its e_tag
    read["feature"]["case_id"] = "CASE-3"
    expected_document = jp_flatten({k: v for k, v in read.items() if k != "e_tag"})
    await storage.write({"k": read})
    assert same((await store.get("bot_state", "k")).data["document"], expected_document)  # type: ignore[union-attr]


async def test_document_bot_storage_reads_documents_jsonpickle_wrote_with_references() -> None:
    store = MemoryStore()
    one = DialogInstance("a", {})
    legacy = jp_flatten({"DialogState": DialogState([one, one]), "when": datetime(2026, 1, 5, tzinfo=UTC)})
    assert legacy["DialogState"]["_dialog_stack"][1] == {"py/id": 3}     # root, state, stack, instance
    await store.put("bot_state", "k", {"document": legacy})
    read = (await DocumentBotStorage(store).read(["k"]))["k"]
    stack = read["DialogState"].dialog_stack
    assert stack[0] is stack[1] and read["when"] == datetime(2026, 1, 5, tzinfo=UTC)


async def test_the_bots_own_conversation_state_takes_the_fast_path(harness: BotHarness, store: MemoryStore) -> None:
    """What the bot stores on real turns (the dialog stack its features leave) is a shape the codec
    knows: written and read without jsonpickle, and exactly as jsonpickle would."""
    await harness.say(ALEX, "help")
    await harness.say(ALEX, "not a command")
    keys = await store.keys("bot_state")
    assert keys
    for key in keys:
        stored = await store.get("bot_state", key)
        assert stored is not None
        document = stored.data["document"]
        assert fast_path(state_codec.try_restore, document)
        value = state_codec.try_restore(document)
        assert same(value, jp_restore(copy.deepcopy(document)))
        assert fast_path(state_codec.try_flatten, value) and same(state_codec.try_flatten(value), document)
