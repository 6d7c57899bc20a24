"""One incoming turn, as the feature handlers see it: who, in what language, what they sent, how to answer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes, ResourceResponse

from cards.actions import CardAction
from supervision.catalogue import Catalogue
from supervision.roles import Actor

if TYPE_CHECKING:
    from bot.services import Services


def card_activity(card: dict[str, Any], summary: str = "") -> Activity:
    activity = MessageFactory.attachment(CardFactory.adaptive_card(card))
    if summary:
        activity.summary = summary
    return activity


@dataclass
class Turn:
    ctx: TurnContext
    services: Services
    actor: Actor
    t: Catalogue
    action: CardAction | None = None
    text: str = ""
    invoke_response: Any = field(default=None)

    @property
    def activity(self) -> Activity:
        return self.ctx.activity

    @property
    def conversation_type(self) -> str:
        conversation = self.ctx.activity.conversation
        return (getattr(conversation, "conversation_type", None) or "personal") if conversation else "personal"

    @property
    def is_personal(self) -> bool:
        return self.conversation_type == "personal"

    async def send_text(self, text: str) -> ResourceResponse | None:
        return await self.ctx.send_activity(MessageFactory.text(text))

    async def send_card(self, card: dict[str, Any], summary: str = "") -> ResourceResponse | None:
        return await self.ctx.send_activity(card_activity(card, summary))

    async def update_card(self, activity_id: str, card: dict[str, Any]) -> None:
        activity = card_activity(card)
        activity.id = activity_id
        await self.ctx.update_activity(activity)

    async def typing(self) -> None:
        await self.ctx.send_activity(Activity(type=ActivityTypes.typing))

    def answer_with_card(self, card: dict[str, Any]) -> None:
        """For Action.Execute: replace the card the user acted on."""
        self.invoke_response = {"statusCode": 200, "type": "application/vnd.microsoft.card.adaptive", "value": card}

    def answer_with_message(self, message: str) -> None:
        self.invoke_response = {"statusCode": 200, "type": "application/vnd.microsoft.activity.message",
                                "value": message}
