"""Typed parsing of what a card sends back: a verb, ids and inputs. Never substring matching."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ID_KEYS = ("case_id", "draft_id", "item_id", "session", "phase")
MAX_INPUT_LENGTH = 20_000


class CardPayloadError(ValueError):
    """The payload is not a card action we sent (stale, tampered or malformed)."""


@dataclass(frozen=True)
class CardAction:
    verb: str
    ids: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)

    def id(self, name: str) -> str:
        value = self.ids.get(name, "")
        if not value:
            raise CardPayloadError(f"missing {name}")
        return value

    def input(self, name: str, default: str = "") -> str:
        value = self.inputs.get(name, default)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        return value if isinstance(value, str) else default


def _parse(data: Any) -> CardAction:
    if not isinstance(data, dict):
        raise CardPayloadError("payload is not an object")
    verb = data.get("verb")
    if not isinstance(verb, str) or not verb or len(verb) > 100:
        raise CardPayloadError("no verb")
    ids: dict[str, str] = {}
    inputs: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("verb", "msteams"):
            continue
        if not isinstance(key, str):
            raise CardPayloadError("bad key")
        if key in ID_KEYS:
            if not isinstance(value, str) or len(value) > 200:
                raise CardPayloadError(f"bad {key}")
            ids[key] = value
        elif isinstance(value, (str, bool, int, float)) or value is None:
            if isinstance(value, str) and len(value) > MAX_INPUT_LENGTH:
                raise CardPayloadError(f"{key} is too long")
            inputs[key] = "" if value is None else value
        else:
            raise CardPayloadError(f"bad value for {key}")
    return CardAction(verb=verb, ids=ids, inputs=inputs)


def parse_submit(value: Any) -> CardAction:
    """Action.Submit: the activity's ``value`` is our data merged with the inputs."""
    return _parse(value)


def parse_execute(value: Any) -> CardAction:
    """Action.Execute: the invoke's ``value`` is {action: {type, verb, data}, trigger}."""
    if not isinstance(value, dict) or not isinstance(value.get("action"), dict):
        raise CardPayloadError("no action")
    action = value["action"]
    data = action.get("data") if isinstance(action.get("data"), dict) else {}
    verb = action.get("verb")
    if isinstance(verb, str) and verb:
        data = {**data, "verb": verb}
    return _parse(data)
