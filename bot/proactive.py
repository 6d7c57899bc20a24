"""Proactive messages: conversation references stored per user and per channel; 1:1 chats created
with the tenant id for users who have not talked to the bot yet; every outgoing request paced to
Teams' rate limits and retried when Teams says so.

Teams limits (learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit): per bot per
thread (one chat or channel conversation) 7 requests a second, 8 in 2 s, 60 in 30 s and 1,800 in an
hour; per app per tenant 50 requests a second. ``Pacer`` keeps a sliding window per conversation and
one for the bot, and holds a request back until every window has room (FIFO within a conversation).
429 (with Retry-After), 412 and 5xx are retried with the server's Retry-After or exponential backoff
with jitter; 403 (the bot is not installed for that user, or blocked) and 404 (conversation not
found) are permanent: ``Undeliverable`` is raised and the caller reports it (the due-work runner
tells the case's facilitator) instead of retrying for ever.

botbuilder 4.17.1 swallows exceptions raised inside a proactive callback (``run_pipeline`` hands
them to ``on_turn_error``), so each callback here catches and hands its error back to the caller.
"""
from __future__ import annotations

import asyncio
import bisect
import collections
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
    ConversationReference,
)

from bot.connector import CALLER_RETRIES
from bot.wire import schema_writer
from supervision.duework import PermanentDeliveryFailure
from supervision.ports import DocumentStore, Stored

if TYPE_CHECKING:
    from botbuilder.core import BotAdapter

log = logging.getLogger(__name__)
REFS = "conversation_refs"
T = TypeVar("T")

RETRY_STATUSES = frozenset({412, 429, 500, 502, 503, 504})
PERMANENT_STATUSES = frozenset({403, 404})
SMOOTH_BURST = 5
KNOWN_REFERENCES = 20_000     # conversation references remembered in memory (LRU)


class NoConversation(LookupError):
    """We have no way to reach that user or channel."""


class Undeliverable(PermanentDeliveryFailure):
    """Teams answered 403/404 (or we cannot address the user at all): do not retry."""


class DeliveryFailed(RuntimeError):
    """Transient failures (429/412/5xx, connection errors) went on past the retry budget."""

    def __init__(self, status: int, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} attempts (last status {status})")
        self.status, self.attempts = status, attempts


@dataclass(frozen=True)
class RateLimits:
    """(requests, seconds) windows. Defaults are Teams' documented per-bot limits."""

    per_conversation: tuple[tuple[int, float], ...] = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))
    per_bot: tuple[tuple[int, float], ...] = ((50, 1.0),)
    margin: float = 0.02          # seconds added to each window: the server counts on arrival
    max_attempts: int = 6          # 412, 5xx and connection errors
    max_throttles: int = 30        # 429s: the server says when to come back; up to this many
    base_backoff: float = 0.5
    max_backoff: float = 30.0


class _Window:
    """Request times in a sliding window, kept sorted. A request counts from when it is sent until
    Teams can have seen it: its time is moved to when its answer came (the latest it can have
    arrived), so that scheduling jitter on our side never makes a window look emptier than it is."""

    def __init__(self, limits: tuple[tuple[int, float], ...], margin: float, *, smooth: bool = False) -> None:
        self.limits = [(count, seconds + margin) for count, seconds in limits]
        self.longest = max((seconds for _, seconds in self.limits), default=0.0)
        # smooth (the bot-wide window): a steady rate of count/seconds with small bursts (GCRA), not
        # 50 at once: a burst queues in our own event loop and comes back as latency
        self.spacing = max((seconds / count for count, seconds in limits), default=0.0) if smooth else 0.0
        self.tolerance = self.spacing * (SMOOTH_BURST - 1)
        self.tat = float("-inf")          # the theoretical time the next request is due
        self.times: list[float] = []
        self.paused_until = 0.0

    def wait(self, now: float) -> float:
        """Seconds until one more request fits every window (0: now)."""
        if self.times and self.times[0] <= now - self.longest:
            del self.times[:bisect.bisect_right(self.times, now - self.longest)]
        wait = max(0.0, self.paused_until - now, self.tat - self.tolerance - now)
        for count, seconds in self.limits:
            if len(self.times) >= count:
                wait = max(wait, self.times[-count] + seconds - now)
        return wait

    def take(self, now: float) -> None:
        bisect.insort(self.times, now)
        if self.spacing:
            self.tat = max(self.tat, now) + self.spacing

    def settle(self, sent: float, answered: float | None) -> None:
        """The request sent at ``sent`` was answered at ``answered`` (None: it did not count)."""
        index = bisect.bisect_left(self.times, sent)
        if index < len(self.times) and self.times[index] == sent:
            del self.times[index]
            if answered is not None:
                bisect.insort(self.times, answered)


@dataclass
class PacerStats:
    sent: int = 0
    retried: int = 0
    throttled: int = 0              # 429s received
    waited_seconds: float = 0.0


class Pacer:
    """Holds each request until the conversation's and the bot's windows have room; retries."""

    def __init__(self, limits: RateLimits | None = None, *, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.limits = limits or RateLimits()
        self._now, self._sleep = monotonic, sleep
        self._bot = _Window(self.limits.per_bot, self.limits.margin, smooth=True)
        self._bot_lock = asyncio.Lock()
        self._conversations: dict[str, _Window] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self.stats = PacerStats()

    def _window(self, conversation: str) -> _Window:
        if conversation not in self._conversations:
            self._conversations[conversation] = _Window(self.limits.per_conversation, self.limits.margin)
        return self._conversations[conversation]

    async def _slot(self, conversation: str) -> float:
        window = self._window(conversation)
        while (wait := window.wait(self._now())) > 0:
            self.stats.waited_seconds += wait
            await self._sleep(wait)
        async with self._bot_lock:
            while (wait := max(self._bot.wait(self._now()), window.wait(self._now()))) > 0:
                self.stats.waited_seconds += wait
                await self._sleep(wait)
            now = self._now()
            self._bot.take(now)
            window.take(now)
            return now

    def _settle(self, conversation: str, sent: float, counted: bool) -> None:
        answered = self._now() if counted else None
        self._bot.settle(sent, answered)
        self._window(conversation).settle(sent, answered)

    async def run(self, conversation: str, request: Callable[[], Awaitable[T]]) -> T:
        """Run ``request`` paced for ``conversation``; retry what Teams asks us to retry."""
        lock = self._locks.setdefault(conversation, asyncio.Lock())
        self._users[conversation] = self._users.get(conversation, 0) + 1
        try:
            async with lock:                # FIFO per conversation: messages keep their order
                attempt = throttles = 0
                while True:
                    attempt += 1
                    sent = await self._slot(conversation)
                    try:
                        result = await request()
                        self._settle(conversation, sent, counted=True)
                        self.stats.sent += 1
                        return result
                    except Exception as error:
                        status = status_of(error)
                        # a throttled request did not count against the limits; others may have
                        self._settle(conversation, sent, counted=status != 429)
                        if status in PERMANENT_STATUSES:
                            raise Undeliverable(_reason(status), status) from None
                        if not _transient(error, status):
                            raise
                        throttled = status == 429 and throttles < self.limits.max_throttles
                        if not throttled and attempt - throttles >= self.limits.max_attempts:
                            raise DeliveryFailed(status or 0, attempt) from None
                        delay = retry_after_of(error)
                        if delay is None:
                            tries = throttles if status == 429 else attempt - throttles
                            backoff = self.limits.base_backoff * 2 ** max(0, tries - 1)
                            delay = min(self.limits.max_backoff, backoff) * (0.5 + random.random() / 2)
                        if status == 429:
                            # Teams says "slow down" without saying whether this conversation or the
                            # whole bot: hold both until Retry-After (our windows keep us under the
                            # per-conversation limits, so a 429 usually means the bot-wide one)
                            throttles += 1
                            self.stats.throttled += 1
                            until = self._now() + delay
                            self._bot.paused_until = max(self._bot.paused_until, until)
                        self.stats.retried += 1
                        self._window(conversation).paused_until = self._now() + delay
                        log.info("teams answered %s; retrying in %.2fs (attempt %d)", status, delay, attempt)
        finally:
            self._users[conversation] -= 1
            if not self._users[conversation] and not lock.locked():
                # forget idle conversations whose windows have emptied (bounded memory)
                window = self._conversations.get(conversation)
                if window is not None and window.wait(self._now()) == 0 and not window.times:
                    # nothing sent within the longest window: its history no longer matters
                    self._conversations.pop(conversation, None)
                self._locks.pop(conversation, None)
                self._users.pop(conversation, None)


def text_activity(text: str) -> Activity:
    """A plain message (for callers outside bot/ and dialogs/, which do not import botbuilder)."""
    return MessageFactory.text(text)


def status_of(error: BaseException) -> int | None:
    """The HTTP status of a Bot Connector error (msrest HttpOperationError and friends)."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return int(status) if isinstance(status, int) else None


def retry_after_of(error: BaseException) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _transient(error: BaseException, status: int | None) -> bool:
    if status is not None:
        return status in RETRY_STATUSES
    from msrest.exceptions import ClientRequestError, DeserializationError

    # no status: the connection failed, or the answer was not the connector's JSON (a gateway's page)
    return isinstance(error, (ClientRequestError, DeserializationError, ConnectionError, OSError,
                              asyncio.TimeoutError))


# What TurnContext.get_conversation_reference (botbuilder 4.17.1) builds a reference from, besides the
# activity id that remember() drops (and the channel data, for tenant and team): tests/test_hot_path.py
# fails if it starts reading anything else.
REFERENCE_SOURCES = ("from_property", "recipient", "conversation", "channel_id", "locale", "service_url")


def _attributes(value: Any) -> Any:
    """An account's attributes as they are now (copied: the activity may change later)."""
    return dict(vars(value)) if hasattr(value, "__dict__") else value


def reference_inputs(activity: Activity) -> tuple[Any, ...]:
    """Everything an activity's stored references are made of, and where they are kept (equal inputs:
    equal references, same keys). Plain dicts and strings, so comparing two is one C-level equality."""
    channel_data = activity.channel_data
    return (_attributes(activity.from_property), _attributes(activity.recipient), _attributes(activity.conversation),
            activity.channel_id, activity.locale, activity.service_url,
            dict(channel_data) if type(channel_data) is dict else channel_data)


def _reference_keys(activity: Activity) -> tuple[list[str], str]:
    """Where an activity's reference is kept: per conversation, and per user in personal chats; and
    a channel's team."""
    conversation = activity.conversation
    kind = getattr(conversation, "conversation_type", None) or "personal"
    keys = [f"conversation:{conversation.id}"] if conversation and conversation.id else []
    if kind == "personal" and activity.from_property:
        keys += [f"user:{k.lower()}" for k in (activity.from_property.id,
                                               getattr(activity.from_property, "aad_object_id", None)) if k]
    team = _team_of(activity)
    return keys, (f"team:{conversation.id.split(';')[0]}" if team and conversation and conversation.id else "")


def _tenant_of(activity: Activity) -> str:
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = (channel_data.get("tenant") or {}).get("id", "") if isinstance(channel_data.get("tenant"), dict) else ""
    conversation = activity.conversation
    return str(tenant or (getattr(conversation, "tenant_id", None) if conversation else "") or "")


def _team_of(activity: Activity) -> str:
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    team = channel_data.get("team") or {}
    return str(team.get("id") or channel_data.get("teamsTeamId") or "") if isinstance(team, dict) else ""


def _reason(status: int) -> str:
    return {403: "forbidden", 404: "not_found"}.get(status, f"http_{status}")


def _quiet_retries(ctx: TurnContext) -> None:
    """A plain msrest connector client (not the pooled one, bot/connector.py, which honours
    ``CALLER_RETRIES``) retries 5xx and 429 itself: turn that off, we pace and retry."""
    for value in ctx.turn_state.values():
        config = getattr(value, "config", None)
        policy = getattr(config, "retry_policy", None)
        if policy is not None and hasattr(policy, "retries"):
            policy.retries = 0


class Proactive:
    def __init__(self, adapter: BotAdapter, store: DocumentStore, app_id: str, tenant_id: str = "",
                 limits: RateLimits | None = None) -> None:
        self.adapter, self.store, self.app_id, self.tenant_id = adapter, store, app_id, tenant_id
        self.pacer = Pacer(limits)
        # where to create a 1:1 chat before anyone has talked to the bot (Teams' service URL is per
        # region; the coordinators' channel setting gives it): set by bot.scheduler.install_scheduler
        self.default_service_url = ""
        # references this process last found or wrote in the store, so an unchanged one costs no
        # store read per turn (bounded; another instance writing the same key only makes us read again)
        self._known: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        # per conversation, what its references were last built from (reference_inputs) and their keys:
        # the same inputs give the same references, so a turn in a known conversation builds none
        self._recent: collections.OrderedDict[str, tuple[tuple[Any, ...], list[str]]] = collections.OrderedDict()

    def _unchanged(self, key: str, data: dict[str, Any]) -> bool:
        known = self._known.get(key)
        if known is not None and known == data:
            self._known.move_to_end(key)
            return True
        return False

    def _know(self, key: str, data: dict[str, Any]) -> None:
        self._known[key] = data
        self._known.move_to_end(key)
        while len(self._known) > KNOWN_REFERENCES:
            self._known.popitem(last=False)

    async def remember(self, activity: Activity) -> None:
        """Keep the reference of the conversation this activity came from (personal chats per user,
        channels and group chats per conversation)."""
        conversation_id = activity.conversation.id if activity.conversation else None
        inputs = reference_inputs(activity)
        recent = self._recent.get(conversation_id) if conversation_id else None
        if recent is not None and recent[0] == inputs and all(key in self._known for key in recent[1]):
            self._recent.move_to_end(conversation_id)   # type: ignore[arg-type]
            for key in recent[1]:            # stored by this process from the same inputs: nothing to
                self._known.move_to_end(key)     # build, read or write
            return
        keys, team_key = _reference_keys(activity)
        reference = TurnContext.get_conversation_reference(activity)
        data = schema_writer().serialize(reference)   # reference.serialize(), bot/wire.py
        # The id of the activity being answered changes every turn, and a stored one is never used:
        # botbuilder's continue_conversation answers a fresh continuation activity of its own. Kept,
        # it made every turn rewrite these references (a journaled, fsynced write each).
        data.pop("activityId", None)
        tenant = _tenant_of(activity)
        if tenant:       # the schema drops conversation.tenantId (it expects "tenantID"): keep it here
            data["tenant"] = tenant
        for key in keys:
            await self._keep(key, data, lambda existing: existing.data != data)
        if team_key:                        # a channel's team, for its roster (bot/people.py)
            team = {"team": _team_of(activity)}
            await self._keep(team_key, team, lambda existing: existing.data.get("team") != team["team"])
        if conversation_id:
            self._recent[conversation_id] = (inputs, [*keys, team_key] if team_key else keys)
            self._recent.move_to_end(conversation_id)
            while len(self._recent) > KNOWN_REFERENCES:
                self._recent.popitem(last=False)

    async def _keep(self, key: str, data: dict[str, Any], differs: Callable[[Stored], bool]) -> None:
        if not self._unchanged(key, data):
            existing = await self.store.get(REFS, key)
            if existing is None or differs(existing):
                await self.store.put(REFS, key, data)
            self._know(key, data)

    async def reference_for_user(self, user_id: str) -> ConversationReference | None:
        stored = await self.store.get(REFS, f"user:{user_id.lower()}")
        return ConversationReference().deserialize(stored.data) if stored else None

    async def reference_for_conversation(self, conversation_id: str) -> ConversationReference | None:
        stored = await self.store.get(REFS, f"conversation:{conversation_id}")
        return ConversationReference().deserialize(stored.data) if stored else None

    async def _continue(self, reference: ConversationReference, work: Callable[[TurnContext], Awaitable[T]]) -> T:
        """One paced, retried request in ``reference``'s conversation; errors come back to the caller."""
        conversation = reference.conversation.id if reference.conversation else ""

        async def request() -> T:
            outcome: dict[str, Any] = {}

            async def callback(ctx: TurnContext) -> None:
                _quiet_retries(ctx)
                try:
                    outcome["value"] = await work(ctx)
                except Exception as error:   # botbuilder would swallow it: hand it back
                    outcome["error"] = error

            token = CALLER_RETRIES.set(True)
            try:
                await self.adapter.continue_conversation(reference, callback, self.app_id)
            finally:
                CALLER_RETRIES.reset(token)
            if "error" in outcome:
                raise outcome["error"]
            return outcome.get("value")  # type: ignore[return-value]

        return await self.pacer.run(conversation, request)

    async def send(self, reference: ConversationReference, activity: Activity) -> str:
        async def work(ctx: TurnContext) -> str:
            response = await ctx.send_activity(activity)
            return str(response.id if response and response.id else "")

        return await self._continue(reference, work)

    async def update(self, reference: ConversationReference, activity_id: str, activity: Activity) -> None:
        async def work(ctx: TurnContext) -> None:
            activity.id = activity_id
            await ctx.update_activity(activity)

        await self._continue(reference, work)

    async def send_to_user(self, user_id: str, activity: Activity, *, service_url: str = "",
                           tenant_id: str = "") -> str:
        reference = await self.reference_for_user(user_id)
        if reference is None:
            reference = await self.create_personal(user_id, service_url=service_url, tenant_id=tenant_id)
        return await self.send(reference, activity)

    async def update_for_user(self, user_id: str, activity_id: str, activity: Activity) -> None:
        reference = await self.reference_for_user(user_id)
        if reference is None:
            raise NoConversation(user_id)
        await self.update(reference, activity_id, activity)

    async def _group_reference(self, conversation_id: str, service_url: str) -> ConversationReference:
        reference = await self.reference_for_conversation(conversation_id)
        if reference is None:
            if not service_url:
                raise NoConversation(conversation_id)
            reference = ConversationReference(
                channel_id="msteams", service_url=service_url,
                conversation=ConversationAccount(id=conversation_id, is_group=True),
                bot=ChannelAccount(id=self.app_id))
        return reference

    async def send_to_conversation(self, conversation_id: str, activity: Activity, *, service_url: str = "") -> str:
        return await self.send(await self._group_reference(conversation_id, service_url), activity)

    async def in_conversation(self, conversation_id: str, work: Callable[[TurnContext], Awaitable[T]], *,
                              service_url: str = "") -> T:
        """Run ``work`` in a proactive turn in a channel or group chat (e.g. read its team's roster)."""
        return await self._continue(await self._group_reference(conversation_id, service_url), work)

    async def team_of(self, conversation_id: str) -> str:
        """The team id Teams sent with this channel's activities, if the bot has heard from it."""
        stored = await self.store.get(REFS, f"team:{conversation_id.split(';')[0]}")
        return str(stored.data.get("team") or "") if stored else ""

    async def update_in_conversation(self, conversation_id: str, activity_id: str, activity: Activity) -> None:
        reference = await self.reference_for_conversation(conversation_id)
        if reference is None:
            raise NoConversation(conversation_id)
        await self.update(reference, activity_id, activity)

    async def create_personal(self, user_id: str, *, service_url: str = "", tenant_id: str = "") -> ConversationReference:
        """Create the 1:1 conversation with the tenant id, and keep its reference. 403 (the bot is not
        installed for that user) raises ``Undeliverable``."""
        service_url = service_url or await self._any_service_url() or self.default_service_url
        if not service_url:
            raise NoConversation(user_id)      # nobody has talked to the bot yet: try again later
        tenant = tenant_id or self.tenant_id or await self._any_tenant()
        parameters = ConversationParameters(
            is_group=False, bot=ChannelAccount(id=self.app_id), members=[ChannelAccount(id=user_id)],
            tenant_id=tenant or None, channel_data={"tenant": {"id": tenant}} if tenant else None)

        async def request() -> ConversationReference:
            created: dict[str, Any] = {}

            async def callback(ctx: TurnContext) -> None:
                created["ref"] = TurnContext.get_conversation_reference(ctx.activity)

            token = CALLER_RETRIES.set(True)
            try:
                await self.adapter.create_conversation(self.app_id, callback, parameters, "msteams", service_url, None)
            finally:
                CALLER_RETRIES.reset(token)
            if "ref" not in created:
                raise DeliveryFailed(0, 1)
            return created["ref"]  # type: ignore[no-any-return]

        reference = await self.pacer.run("create-conversation", request)
        await self.store.put(REFS, f"user:{user_id.lower()}", reference.serialize())
        return reference

    async def _any_service_url(self) -> str:
        for key in await self.store.keys(REFS, "user:"):
            stored = await self.store.get(REFS, key)
            if stored and stored.data.get("serviceUrl"):
                return str(stored.data["serviceUrl"])
        return ""

    async def _any_tenant(self) -> str:
        for key in await self.store.keys(REFS, "user:"):
            stored = await self.store.get(REFS, key)
            conversation = (stored.data.get("conversation") or {}) if stored else {}
            tenant = (stored.data.get("tenant") if stored else "") or conversation.get("tenantID") \
                or conversation.get("tenantId") or ""
            if tenant:
                return str(tenant)
        return ""


__all__ = ["Proactive", "Pacer", "RateLimits", "Undeliverable", "DeliveryFailed", "NoConversation",
           "status_of", "retry_after_of", "text_activity"]
