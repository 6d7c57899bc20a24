"""Bot-state codec benchmark: ``python -m bench state [--quick]``

Times jsonpickle (``Pickler(unpicklable=True).flatten`` and ``Unpickler().restore``, what
bot/state_storage.py used) against bot/state_codec.py on typical conversation states, in the same
process, interleaved: an empty dialog stack (what nearly every turn of this bot stores), dialog stacks
of 1-3 waterfall instances holding card values, and a text prompt (its PromptOptions hold an
Activity, which the codec hands to jsonpickle: the cost of a fallback). The restore input is the
document as a JSON store gives it back. Each figure is the best of several rounds, in microseconds
per call; ratios are jsonpickle / codec (above 1: the codec is faster). Before timing, each state's
document and restored objects are checked to be jsonpickle's.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from jsonpickle import Pickler, Unpickler

from bot import state_codec

# The states are built from their stored documents (jsonpickle's form, as a turn's read builds them):
# bench/ does not import botbuilder (tests/test_architecture.py).
DIALOG_STATE = "botbuilder.dialogs.dialog_state.DialogState"
DIALOG_INSTANCE = "botbuilder.dialogs.dialog_instance.DialogInstance"
ACTIVITY_NULLS = ("id timestamp local_timestamp local_timezone service_url channel_id from_property conversation "
                  "recipient text_format attachment_layout members_added members_removed reactions_added "
                  "reactions_removed topic_name history_disclosed locale text speak input_hint summary "
                  "suggested_actions attachments entities channel_data action reply_to_id label value_type value "
                  "name relates_to code expiration importance delivery_mode listen_for text_highlights "
                  "semantic_action caller_id").split()


def card_values(n: int) -> dict[str, Any]:
    return {"case_id": f"CASE-2026-{n:04d}", "title": "Synthetic stuck case", "agency": "Health",
            "attendees": ["alexw@example.com", "meganb@example.com", "pattif@example.com"],
            "session_date": "2026-03-02", "duration_minutes": 90, "urgent": False,
            "notes": "Zebedee Example, 1 Synthetic Street: worries about school attendance."}


def waterfall(n: int) -> dict[str, Any]:
    return {"py/object": DIALOG_INSTANCE, "id": f"feature{n}.flow",
            "state": {"options": {"case_id": f"CASE-2026-{n:04d}", "mode": "edit"},
                      "values": {"instanceId": f"0b6c{n:04d}-5a1e-4e2f-9d0c", "card": card_values(n), "attempts": n},
                      "stepIndex": n}}


def enum(name: str, value: str) -> dict[str, Any]:
    return {"py/reduce": [{"py/type": f"botbuilder.schema._connector_client_enums.{name}"}, {"py/tuple": [value]}]}


def prompt() -> dict[str, Any]:
    """A TextPrompt's instance: its PromptOptions hold an Activity (msrest model, enum values)."""
    activity = {"py/object": "botbuilder.schema._models_py3.Activity", "additional_properties": {},
                "type": enum("ActivityTypes", "message"), **dict.fromkeys(ACTIVITY_NULLS)}
    activity.update(text="Your agency?", input_hint=enum("InputHints", "acceptingInput"))
    options = {"py/object": "botbuilder.dialogs.prompts.prompt_options.PromptOptions", "prompt": activity,
               "retry_prompt": None, "choices": None, "style": None, "validations": None, "number_of_attempts": 0}
    return {"py/object": DIALOG_INSTANCE, "id": "text", "state": {"options": options, "state": {}}}


def conversation(stack: list[dict[str, Any]]) -> dict[str, Any]:
    document = {"DialogState": {"py/object": DIALOG_STATE, "_dialog_stack": stack}, "e_tag": "\"0x8DC0000000000001\""}
    return Unpickler().restore(document)  # type: ignore[no-any-return]


STATES: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("empty dialog stack", lambda: conversation([])),
    ("1 dialog, card values", lambda: conversation([waterfall(1)])),
    ("2 dialogs, card values", lambda: conversation([waterfall(1), waterfall(2)])),
    ("3 dialogs, card values", lambda: conversation([waterfall(1), waterfall(2), waterfall(3)])),
    ("text prompt (fallback)", lambda: conversation([waterfall(1), prompt()])),
]


def jsonpickle_flatten(value: Any) -> Any:
    return Pickler(unpicklable=True).flatten(value)


def jsonpickle_restore(document: Any) -> Any:
    return Unpickler().restore(document)


def best_us(calls: list[Callable[[], Any]], number: int, rounds: int) -> list[float]:
    """Each call's best time per call over ``rounds`` rounds; the calls take turns within each round, so
    all of them see the same machine."""
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            for _ in range(number):
                call()
            best[i] = min(best[i], (time.perf_counter() - start) / number)
    return [b * 1e6 for b in best]


def same_objects(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_objects(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_objects(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dict__"):
        return same_objects(vars(a), vars(b))
    return bool(a == b)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    number, rounds = (200, 7) if quick else (500, 25)
    print(f"bot-state codec vs jsonpickle: best of {rounds} interleaved rounds of {number} calls, us per call")
    print(f"{'state':<24} {'flatten jp':>10} {'codec':>7} {'ratio':>6}   {'restore jp':>10} {'codec':>7} {'ratio':>6}"
          f"   {'turn ratio':>10}")
    status = 0
    for name, make in STATES:
        value = make()
        document = json.loads(json.dumps(Pickler(unpicklable=True).flatten(value)))
        if (json.dumps(state_codec.flatten(value)) != json.dumps(document)
                or not same_objects(state_codec.restore(document), Unpickler().restore(document))):
            print(f"{name}: the codec's result differs from jsonpickle's")
            status = 1
            continue
        jp_flat, codec_flat, jp_restore, codec_restore = best_us(
            [partial(jsonpickle_flatten, value), partial(state_codec.flatten, value),
             partial(jsonpickle_restore, document), partial(state_codec.restore, document)], number, rounds)
        turn = (jp_flat + jp_restore) / (codec_flat + codec_restore)   # a turn reads and writes its state once
        print(f"{name:<24} {jp_flat:>10.1f} {codec_flat:>7.1f} {jp_flat / codec_flat:>5.1f}x   {jp_restore:>10.1f}"
              f" {codec_restore:>7.1f} {jp_restore / codec_restore:>5.1f}x   {turn:>9.1f}x")
    return status
