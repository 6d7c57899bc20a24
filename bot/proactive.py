"""Proactive messages: conversation references stored per user and per channel; 1:1 chats created
with the tenant id for users who have not talked to the bot yet."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from botbuilder.core import TurnContext
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
    ConversationReference,
)

from supervision.ports import DocumentStore

if TYPE_CHECKING:
    from botbuilder.core import BotAdapter

log = logging.getLogger(__name__)
REFS = "conversation_refs"


class NoConversation(LookupError):
    """We have no way to reach that user or channel."""


class Proactive:
    def __init__(self, adapter: "BotAdapter", store: DocumentStore, app_id: str, tenant_id: str = "") -> None:
        self.adapter, self.store, self.app_id, self.tenant_id = adapter, store, app_id, tenant_id

    async def remember(self, activity: Activity) -> None:
        """Keep the reference of the conversation this activity came from (personal chats per user,
        channels and group chats per conversation)."""
        reference = TurnContext.get_conversation_reference(activity)
        data = reference.serialize()
        conversation = activity.conversation
        kind = getattr(conversation, "conversation_type", None) or "personal"
        keys = [f"conversation:{conversation.id}"] if conversation and conversation.id else []
        if kind == "personal" and activity.from_property:
            keys += [f"user:{k.lower()}" for k in (activity.from_property.id,
                                                   getattr(activity.from_property, "aad_object_id", None)) if k]
        for key in keys:
            existing = await self.store.get(REFS, key)
            if existing is None or existing.data != data:
                await self.store.put(REFS, key, data)

    async def reference_for_user(self, user_id: str) -> ConversationReference | None:
        stored = await self.store.get(REFS, f"user:{user_id.lower()}")
        return ConversationReference().deserialize(stored.data) if stored else None

    async def reference_for_conversation(self, conversation_id: str) -> ConversationReference | None:
        stored = await self.store.get(REFS, f"conversation:{conversation_id}")
        return ConversationReference().deserialize(stored.data) if stored else None

    async def send(self, reference: ConversationReference, activity: Activity) -> str:
        sent: dict[str, Any] = {}

        async def callback(ctx: TurnContext) -> None:
            response = await ctx.send_activity(activity)
            sent["id"] = response.id if response else ""

        await self.adapter.continue_conversation(reference, callback, self.app_id)
        return str(sent.get("id", ""))

    async def update(self, reference: ConversationReference, activity_id: str, activity: Activity) -> None:
        async def callback(ctx: TurnContext) -> None:
            activity.id = activity_id
            await ctx.update_activity(activity)

        await self.adapter.continue_conversation(reference, callback, self.app_id)

    async def send_to_user(self, user_id: str, activity: Activity, *, service_url: str = "",
                           tenant_id: str = "") -> str:
        reference = await self.reference_for_user(user_id)
        if reference is None:
            reference = await self.create_personal(user_id, service_url=service_url, tenant_id=tenant_id)
        return await self.send(reference, activity)

    async def send_to_conversation(self, conversation_id: str, activity: Activity, *, service_url: str = "") -> str:
        reference = await self.reference_for_conversation(conversation_id)
        if reference is None:
            if not service_url:
                raise NoConversation(conversation_id)
            reference = ConversationReference(
                channel_id="msteams", service_url=service_url,
                conversation=ConversationAccount(id=conversation_id, is_group=True),
                bot=ChannelAccount(id=self.app_id))
        return await self.send(reference, activity)

    async def create_personal(self, user_id: str, *, service_url: str = "", tenant_id: str = "") -> ConversationReference:
        """Create the 1:1 conversation with the tenant id, and keep its reference."""
        service_url = service_url or await self._any_service_url()
        if not service_url:
            raise NoConversation(user_id)
        tenant = tenant_id or self.tenant_id
        parameters = ConversationParameters(
            is_group=False, bot=ChannelAccount(id=self.app_id), members=[ChannelAccount(id=user_id)],
            tenant_id=tenant or None, channel_data={"tenant": {"id": tenant}} if tenant else None)
        created: dict[str, ConversationReference] = {}

        async def callback(ctx: TurnContext) -> None:
            created["ref"] = TurnContext.get_conversation_reference(ctx.activity)

        await self.adapter.create_conversation(self.app_id, callback, parameters, "msteams", service_url, None)
        reference = created["ref"]
        await self.store.put(REFS, f"user:{user_id.lower()}", reference.serialize())
        return reference

    async def _any_service_url(self) -> str:
        for key in await self.store.keys(REFS, "user:"):
            stored = await self.store.get(REFS, key)
            if stored and stored.data.get("serviceUrl"):
                return str(stored.data["serviceUrl"])
        return ""
