"""The activity handler: records what it hears, then routes exactly (command table, card verbs, events)."""
from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from botbuilder.core import ActivityHandler, ConversationState, InvokeResponse, TurnContext, UserState
from botbuilder.dialogs import Dialog, DialogContext, DialogSet, DialogState, DialogTurnStatus
from botbuilder.schema import ChannelAccount

from bot.files import FILES_RECEIVED, has_files
from bot.routing import Router
from bot.services import Services
from bot.turn import Turn
from cards.actions import CardAction, CardPayloadError, parse_execute, parse_submit
from cards.help import help_card, welcome_card
from supervision.catalogue import Catalogue
from supervision.errors import DomainError, FieldError, ValidationFailed

log = logging.getLogger(__name__)
MEETING_END = "application/vnd.microsoft.meetingEnd"
MEETING_START = "application/vnd.microsoft.meetingStart"


def describe_error(t: Catalogue, error: DomainError) -> str:
    if isinstance(error, ValidationFailed):
        return "\n\n".join(describe_error(t, e) for e in error.errors)
    if isinstance(error, FieldError):
        return t(error.key, field=error.field, **error.params)
    try:
        return t(error.key, **error.params)
    except (KeyError, IndexError):
        return t("error.domain")


class SupervisionBot(ActivityHandler):
    def __init__(self, services: Services, router: Router, conversation_state: ConversationState,
                 user_state: UserState, dialogs: list[Dialog] | None = None) -> None:
        self.services, self.router = services, router
        self.conversation_state, self.user_state = conversation_state, user_state
        self.dialog_state = conversation_state.create_property("DialogState")
        self.dialogs = DialogSet(self.dialog_state)
        for dialog in dialogs or []:
            self.dialogs.add(dialog)

    # --- plumbing -------------------------------------------------------------------------------
    async def make_turn(self, ctx: TurnContext, action: CardAction | None = None, text: str = "") -> Turn:
        sender = ctx.activity.from_property or ChannelAccount(id="")
        known = await self.services.people.remember(ctx) if self.services.people is not None else None
        actor = self.services.actor(sender.id or "", sender.name or "", email=known.email if known else "",
                                    aad_object_id=(known.aad_object_id if known else "")
                                    or getattr(sender, "aad_object_id", None) or "")
        t = Catalogue.for_language(ctx.activity.locale or self.services.config.language)
        turn = Turn(ctx=ctx, services=self.services, actor=actor, t=t, action=action, text=text)
        ctx.turn_state["supervision.turn"] = turn
        return turn

    async def on_turn(self, turn_context: TurnContext) -> None:
        try:
            if self.services.proactive is not None and turn_context.activity.conversation:
                await self.services.proactive.remember(turn_context.activity)
            await super().on_turn(turn_context)
            await self.conversation_state.save_changes(turn_context)
            await self.user_state.save_changes(turn_context)
        finally:
            # the Turn refers to its context, which holds it in turn_state: drop it once the turn is
            # over so the turn's objects are freed at once, not by the cyclic collector
            turn_context.turn_state.pop("supervision.turn", None)

    async def _run(self, turn: Turn, handler: Any) -> Any:
        try:
            return await handler(turn)
        except DomainError as error:
            message = describe_error(turn.t, error)
            await turn.send_text(message)
            return None

    # --- messages ---------------------------------------------------------------------------------
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.value is not None and not (activity.text or "").strip():
            await self._on_card_submit(turn_context)
            return
        text = TurnContext.remove_recipient_mention(activity) if activity.entities else (activity.text or "")
        files_handler = self.router.events.get(FILES_RECEIVED)
        if files_handler is not None and not (text or "").strip() and has_files(activity):
            await self._run(await self.make_turn(turn_context), files_handler)   # a file sent in chat
            return
        turn = await self.make_turn(turn_context, text=text or "")
        # what DialogSet.create_context reads first; a DialogContext (with its DialogStateManager,
        # memory scopes and path resolvers) is built only when a dialog is waiting on the stack
        stack = await self.dialog_state.get(turn_context, DialogState)
        if not stack.dialog_stack:
            await self._on_message(turn, None, text)
            return
        dialog_context = await self.dialogs.create_context(turn_context)
        try:
            await self._on_message(turn, dialog_context, text)
        finally:
            # the DialogContext and its DialogStateManager refer to each other (with a dozen memory
            # scopes and path resolvers): once the turn is done, break the cycle so that they are freed
            # at once instead of by the cyclic collector (whose full collections of many turns' such
            # garbage were the remaining event-loop stalls over 20 ms)
            dialog_context.state = None

    async def _on_message(self, turn: Turn, dialog_context: DialogContext | None, text: str) -> None:
        route = self.router.match_command(text or "")
        if dialog_context is not None and dialog_context.active_dialog is not None and route is None:
            result = await dialog_context.continue_dialog()
            if result.status != DialogTurnStatus.Empty:
                return
        if route is None:
            await turn.send_text(turn.t("command.unknown", text=(text or "").strip()[:80]))
            return
        if route.personal_only and not turn.is_personal:
            await turn.send_text(turn.t("command.not_here", command=route.phrase))
            return
        if dialog_context is not None and dialog_context.active_dialog is not None:
            await dialog_context.cancel_all_dialogs()
        await self._run(turn, route.handler)

    async def _on_card_submit(self, turn_context: TurnContext) -> None:
        t = Catalogue.for_language(turn_context.activity.locale or self.services.config.language)
        try:
            action = parse_submit(turn_context.activity.value)
        except CardPayloadError:
            await turn_context.send_activity(t("error.card_payload"))
            return
        handler = self.router.match_verb(action.verb)
        if handler is None:
            await turn_context.send_activity(t("error.card_payload"))
            return
        await self._run(await self.make_turn(turn_context, action=action), handler)

    # --- invokes (Action.Execute) -----------------------------------------------------------------
    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        if turn_context.activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        t = Catalogue.for_language(turn_context.activity.locale or self.services.config.language)
        try:
            action = parse_execute(turn_context.activity.value)
        except CardPayloadError:
            return InvokeResponse(status=HTTPStatus.OK, body=_message(t("error.card_payload")))
        handler = self.router.match_verb(action.verb)
        if handler is None:
            return InvokeResponse(status=HTTPStatus.OK, body=_message(t("error.card_payload")))
        turn = await self.make_turn(turn_context, action=action)
        try:
            await handler(turn)
        except DomainError as error:
            return InvokeResponse(status=HTTPStatus.OK, body=_message(describe_error(t, error)))
        return InvokeResponse(status=HTTPStatus.OK, body=turn.invoke_response or _message(t("error.domain")))

    # --- install and membership -------------------------------------------------------------------
    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._welcome(turn_context)

    async def on_members_added_activity(self, members_added: list[ChannelAccount], turn_context: TurnContext) -> None:
        """Install sends installationUpdate too; welcoming there alone avoids a double welcome."""
        return None

    async def _welcome(self, turn_context: TurnContext) -> None:
        turn = await self.make_turn(turn_context)
        await turn.send_card(welcome_card(turn.t, self.services.profile()), turn.t("welcome.title"))

    # --- events (meeting start/end, custom) -------------------------------------------------------
    async def on_event_activity(self, turn_context: TurnContext) -> None:
        handler = self.router.events.get(turn_context.activity.name or "")
        if handler is not None:
            await self._run(await self.make_turn(turn_context), handler)


def _message(text: str) -> dict[str, Any]:
    return {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text}


async def show_help(turn: Turn) -> None:
    """The help card lists what this user can do: facilitators come from the roster and
    coordinators and administrators from configuration, so global roles are enough."""
    await turn.send_card(help_card(turn.t, turn.services.profile(), turn.actor.global_roles), turn.t("help.title"))
