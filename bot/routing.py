"""Exact routing of typed commands and card verbs to handlers. No substring matching anywhere."""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.turn import Turn

CommandHandler = Callable[["Turn"], Awaitable[None]]
VerbHandler = Callable[["Turn"], Awaitable[Any]]
EventHandler = Callable[["Turn"], Awaitable[None]]

_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


def normalise_command(text: str) -> str:
    """Lower-case, mentions removed, white space collapsed, trailing punctuation dropped."""
    text = _MENTION.sub(" ", text or "")
    text = _SPACE.sub(" ", text).strip().lower()
    return text.rstrip(" .!?")


@dataclass(frozen=True)
class CommandRoute:
    phrase: str
    handler: CommandHandler
    personal_only: bool


class Router:
    def __init__(self) -> None:
        self.commands: dict[str, CommandRoute] = {}
        self.verbs: dict[str, VerbHandler] = {}
        self.events: dict[str, EventHandler] = {}

    def command(self, phrase: str, handler: CommandHandler, *, personal_only: bool = True,
                aliases: tuple[str, ...] = ()) -> None:
        for name in (phrase, *aliases):
            key = normalise_command(name)
            if key in self.commands:
                raise ValueError(f"command {key!r} registered twice")
            self.commands[key] = CommandRoute(phrase, handler, personal_only)

    def verb(self, verb: str, handler: VerbHandler) -> None:
        if verb in self.verbs:
            raise ValueError(f"verb {verb!r} registered twice")
        self.verbs[verb] = handler

    def event(self, name: str, handler: EventHandler) -> None:
        if name in self.events:
            raise ValueError(f"event {name!r} registered twice")
        self.events[name] = handler

    def match_command(self, text: str) -> CommandRoute | None:
        return self.commands.get(normalise_command(text))

    def match_verb(self, verb: str) -> VerbHandler | None:
        return self.verbs.get(verb)
