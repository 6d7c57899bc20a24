"""The bot's features, each registering its commands, card verbs, events and dialogs on the router.

Adding a feature: write ``dialogs/<feature>.py`` with ``register(router, services) -> list[Dialog]``
and add it to FEATURES.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botbuilder.dialogs import Dialog

from bot.handler import show_help
from bot.routing import Router
from bot.services import Services
from bot.turn import Turn

Register = Callable[[Router, Services], list[Dialog] | None]


def _not_ready(command: str) -> Callable[[Turn], Any]:
    async def handler(turn: Turn) -> None:
        await turn.send_text(turn.t("command.not_ready", command=command))

    return handler


def core_feature(router: Router, services: Services) -> list[Dialog]:
    router.command("help", show_help, personal_only=False, aliases=("?", "menu"))
    router.verb("help.show", show_help)
    return []


from dialogs import chronology as chronology_feature  # noqa: E402
from dialogs import evaluation as evaluation_feature  # noqa: E402
from dialogs import meeting as meeting_feature  # noqa: E402
from dialogs import pack as pack_feature  # noqa: E402
from dialogs import request as request_feature  # noqa: E402
from dialogs import sessions as sessions_feature  # noqa: E402

FEATURES: list[Register] = [core_feature, request_feature.register, sessions_feature.register,
                            chronology_feature.register, pack_feature.register, evaluation_feature.register,
                            meeting_feature.register]

from dialogs import action_items as action_items_feature  # noqa: E402
from dialogs import concerns as concerns_feature  # noqa: E402
from dialogs import followup as followup_feature  # noqa: E402
from dialogs import record as record_feature  # noqa: E402
from dialogs import tracker as tracker_feature  # noqa: E402

FEATURES += [record_feature.register, action_items_feature.register, followup_feature.register,
             concerns_feature.register, tracker_feature.register]

from dialogs import schedule as schedule_feature  # noqa: E402

FEATURES += [schedule_feature.register]

from dialogs import audit as audit_feature  # noqa: E402

FEATURES += [audit_feature.register, audit_feature.register_retention]

# Commands the manifest and help card list, answered honestly until their feature is registered.
PLANNED_COMMANDS: dict[str, str] = {}


def register_all(router: Router, services: Services, features: list[Register] | None = None) -> list[Dialog]:
    dialogs: list[Dialog] = []
    for register in features if features is not None else FEATURES:
        dialogs.extend(register(router, services) or [])
    for command, verb in PLANNED_COMMANDS.items():
        if router.match_command(command) is None:
            router.command(command, _not_ready(command))
        if router.match_verb(verb) is None:
            router.verb(verb, _not_ready(command))
    return dialogs
