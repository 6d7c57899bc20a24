"""Looking inside Adaptive Cards in tests: every element (dict) of a card, depth first, in order."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def card_elements(node: Any) -> Iterator[dict[str, Any]]:
    """Every object in ``node`` (a card or any part of one), the node itself first, in document order:
    body, nested containers, ActionSets and ShowCard cards included."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from card_elements(value)
    elif isinstance(node, list):
        for item in node:
            yield from card_elements(item)


def of_type(node: Any, prefix: str) -> list[dict[str, Any]]:
    """Elements whose ``type`` starts with ``prefix`` ("Input.", "Action.", "FactSet")."""
    return [e for e in card_elements(node) if str(e.get("type", "")).startswith(prefix)]
