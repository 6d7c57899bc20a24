"""The bot's features, each registering its commands, card verbs, events and dialogs on the router.

Adding a feature: write ``dialogs/<feature>.py`` with ``register(router, services) -> list[Dialog]``
and add it to FEATURES.
"""
from __future__ import annotations

from collections.abc import Callable

from botbuilder.dialogs import Dialog

from bot.handler import show_help
from bot.routing import Router
from bot.services import Services
from dialogs import (
    action_items,
    audit,
    chronology,
    concerns,
    evaluation,
    followup,
    meeting,
    pack,
    record,
    request,
    schedule,
    sessions,
    tracker,
)

Register = Callable[[Router, Services], list[Dialog] | None]


def core_feature(router: Router, services: Services) -> list[Dialog]:
    router.command("help", show_help, personal_only=False, aliases=("?", "menu"))
    router.verb("help.show", show_help)
    return []


FEATURES: list[Register] = [
    core_feature, request.register, sessions.register, chronology.register, pack.register, evaluation.register,
    meeting.register, record.register, action_items.register, followup.register, concerns.register,
    tracker.register, schedule.register, audit.register, audit.register_retention,
]


def register_all(router: Router, services: Services, features: list[Register] | None = None) -> list[Dialog]:
    dialogs: list[Dialog] = []
    for register in features if features is not None else FEATURES:
        dialogs.extend(register(router, services) or [])
    return dialogs
