"""Small builders for Adaptive Card 1.5 elements. Every input has a label; required inputs carry an error message."""
from __future__ import annotations

from typing import Any

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
Json = dict[str, Any]


def card(body: list[Json], actions: list[Json] | None = None, *, full_width: bool = False) -> Json:
    """An Adaptive Card 1.5. Full width (a Teams-only msteams key) is opt-in: the Agents Playground
    flags it as unsupported."""
    result: Json = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": "1.5", "body": body}
    if actions:
        result["actions"] = actions
    if full_width:
        result["msteams"] = {"width": "Full"}
    return result


def title(text: str) -> Json:
    return {"type": "TextBlock", "text": text, "size": "Large", "weight": "Bolder", "wrap": True, "style": "heading"}


def heading(text: str) -> Json:
    return {"type": "TextBlock", "text": text, "size": "Medium", "weight": "Bolder", "wrap": True, "spacing": "Medium"}


def text(value: str, *, subtle: bool = False, color: str | None = None, weight: str | None = None) -> Json:
    block: Json = {"type": "TextBlock", "text": value, "wrap": True}
    if subtle:
        block["isSubtle"] = True
    if color:
        block["color"] = color
    if weight:
        block["weight"] = weight
    return block


def facts(pairs: list[tuple[str, str]]) -> Json:
    return {"type": "FactSet", "facts": [{"title": k, "value": v or "-"} for k, v in pairs]}


def container(items: list[Json], *, style: str | None = None, separator: bool = False) -> Json:
    block: Json = {"type": "Container", "items": items}
    if style:
        block["style"] = style
    if separator:
        block["separator"] = True
    return block


def _data(verb: str, ids: dict[str, str] | None) -> Json:
    return {"verb": verb, **(ids or {})}


def submit(label: str, verb: str, ids: dict[str, str] | None = None, *, style: str | None = None,
           validate: bool = True) -> Json:
    """Action.Submit carrying a verb and ids; the inputs come back merged into the same object."""
    action: Json = {"type": "Action.Submit", "title": label, "data": _data(verb, ids)}
    if style:
        action["style"] = style
    if not validate:
        action["associatedInputs"] = "none"
    return action


def execute(label: str, verb: str, ids: dict[str, str] | None = None, *, style: str | None = None,
            validate: bool = True) -> Json:
    """Action.Execute (Universal Actions): answered by an invoke whose body can replace the card."""
    action: Json = {"type": "Action.Execute", "title": label, "verb": verb, "data": _data(verb, ids)}
    if style:
        action["style"] = style
    if not validate:
        action["associatedInputs"] = "none"
    return action


def _input(kind: str, id_: str, label: str, required: bool, error: str | None, **extra: Any) -> Json:
    block: Json = {"type": kind, "id": id_, "label": label}
    if required:
        block["isRequired"] = True
        block["errorMessage"] = error or f"{label} is required"
    elif error:
        block["errorMessage"] = error
    block.update({k: v for k, v in extra.items() if v is not None})
    return block


def text_input(id_: str, label: str, *, value: str = "", required: bool = False, error: str | None = None,
               multiline: bool = False, placeholder: str | None = None, max_length: int | None = None,
               style: str | None = None, regex: str | None = None) -> Json:
    return _input("Input.Text", id_, label, required, error, value=value or None,
                  isMultiline=multiline or None, placeholder=placeholder, maxLength=max_length,
                  style=style, regex=regex)


def date_input(id_: str, label: str, *, value: str = "", required: bool = False, error: str | None = None,
               min_: str | None = None, max_: str | None = None) -> Json:
    return _input("Input.Date", id_, label, required, error, value=value or None, min=min_, max=max_)


def time_input(id_: str, label: str, *, value: str = "", required: bool = False, error: str | None = None) -> Json:
    return _input("Input.Time", id_, label, required, error, value=value or None)


def number_input(id_: str, label: str, *, value: float | None = None, required: bool = False,
                 error: str | None = None, min_: float | None = None, max_: float | None = None) -> Json:
    return _input("Input.Number", id_, label, required, error, value=value, min=min_, max=max_)


def choice_input(id_: str, label: str, choices: list[tuple[str, str]], *, value: str = "",
                 required: bool = False, error: str | None = None, expanded: bool = False,
                 multi: bool = False) -> Json:
    """``choices`` are (title, value) pairs."""
    return _input("Input.ChoiceSet", id_, label, required, error,
                  choices=[{"title": t, "value": v} for t, v in choices], value=value or None,
                  style="expanded" if expanded else "compact", isMultiSelect=multi or None)


def toggle_input(id_: str, label: str, title_: str, *, value: bool = False) -> Json:
    return {"type": "Input.Toggle", "id": id_, "label": label, "title": title_,
            "value": "true" if value else "false", "valueOn": "true", "valueOff": "false"}


def error_banner(messages: list[str]) -> Json:
    return container([text(m, color="Attention", weight="Bolder") for m in messages], style="attention")


def strip_msteams(value: Any) -> Any:
    """A copy without Teams-only ``msteams`` keys, for validating against the Adaptive Card schema."""
    if isinstance(value, dict):
        return {k: strip_msteams(v) for k, v in value.items() if k != "msteams"}
    if isinstance(value, list):
        return [strip_msteams(v) for v in value]
    return value
