"""The help and welcome cards."""
from __future__ import annotations

from cards.base import Json, card, execute, facts, submit, text, title
from supervision.catalogue import Catalogue
from supervision.models import Role
from supervision.profile import Profile

HELP_COMMANDS = ("request", "my sessions", "schedule", "chronology", "my actions", "record session",
                 "raise a concern", "tracker", "audit log", "help")
_HELP_KEYS = {"request": "help.request", "my sessions": "help.my_sessions", "schedule": "help.schedule",
              "chronology": "help.chronology", "my actions": "help.my_actions",
              "record session": "help.record_session", "tracker": "help.tracker", "audit log": "help.audit_log",
              "raise a concern": "help.raise_concern", "help": "help.help"}


def _buttons(t: Catalogue) -> list[Json]:
    return [
        submit(t("help.button_request"), "request.start", validate=False),
        submit(t("help.button_my_sessions"), "sessions.mine", validate=False),
        submit(t("help.button_my_actions"), "actions.mine", validate=False),
    ]


# Commands only some people can use; the rest are for every practitioner.
_COMMAND_ROLES: dict[str, frozenset[Role]] = {
    "schedule": frozenset({Role.FACILITATOR, Role.COORDINATOR}),
    "record session": frozenset({Role.FACILITATOR}),
    "tracker": frozenset({Role.ADMINISTRATOR}),
    "audit log": frozenset({Role.ADMINISTRATOR}),
}


def commands_for(roles: frozenset[Role] | None) -> list[str]:
    """The commands a person with these roles can use (None: everything, e.g. for documentation)."""
    if roles is None:
        return list(HELP_COMMANDS)
    return [c for c in HELP_COMMANDS if c not in _COMMAND_ROLES or roles & _COMMAND_ROLES[c]]


def help_card(t: Catalogue, profile: Profile, roles: frozenset[Role] | None = None) -> Json:
    """What this user can do: everyone's commands, plus those of the roles they hold."""
    # a FactSet keeps the commands in one aligned column (one ColumnSet per row left them ragged)
    commands = facts([(f"**{command}**", t(_HELP_KEYS[command])) for command in commands_for(roles)])
    body = [title(t("help.title")), text(t("help.intro"), subtle=True), commands,
            text(t("help.partnership", name=profile.name, process=profile.process_name), subtle=True),
            text(t("help.model", model=profile.model.name), subtle=True)]
    # not full width: the Agents Playground flags msteams.width "Full" as unsupported
    return card(body, _buttons(t), full_width=False)


def welcome_card(t: Catalogue, profile: Profile) -> Json:
    body = [title(t("welcome.title")), text(t("welcome.body")),
            text(t("welcome.not_statutory"), weight="Bolder"),
            text(t("help.partnership", name=profile.name, process=profile.process_name), subtle=True)]
    return card(body, _buttons(t), full_width=False)


def received_card(message: str) -> Json:
    """What an Action.Execute answer shows in place of the card it came from."""
    return card([text(message)], full_width=False)


__all__ = ["help_card", "welcome_card", "received_card", "execute"]
