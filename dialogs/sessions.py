"""``my sessions`` (command and ``sessions.mine`` verb): the user's cases, their stage and next deadline."""
from __future__ import annotations

from botbuilder.dialogs import Dialog

from bot.routing import Router
from bot.services import Services
from bot.turn import Turn
from cards.sessions import sessions_card
from dialogs.request import answered_in_chat, build_services
from supervision.roles import case_roles


def register(router: Router, services: Services) -> list[Dialog]:
    requests, _ = build_services(services)

    async def mine(turn: Turn) -> None:
        if not turn.is_personal:
            await turn.send_text(turn.t("command.not_here", command="my sessions"))
            return
        lines = await requests.my_cases(turn.actor)
        rows = [(line, case_roles(turn.actor, line.case)) for line in lines]
        await turn.send_card(sessions_card(turn.t, rows), turn.t("request.sessions.title"))

    router.command("my sessions", mine, aliases=("my cases",))
    router.verb("sessions.mine", answered_in_chat(mine))
    return []
