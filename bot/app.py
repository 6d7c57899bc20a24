"""The composition root: ``create_app(config)`` builds everything; nothing lives at module level."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from botbuilder.core import MemoryStorage, Storage, UserState
from botbuilder.integration.aiohttp import (
    ConfigurationBotFrameworkAuthentication,
    ConfigurationServiceClientCredentialFactory,
)
from botbuilder.schema import CallerIdConstants
from botframework.connector.auth import (
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ServiceClientCredentialsFactory,
)

from bot.adapter import SupervisionAdapter, freeze_startup_heap
from bot.config import Config
from bot.credentials import SharedCredentialsFactory
from bot.downloads import ROUTE as DOWNLOAD_ROUTE
from bot.downloads import Downloads, people_actor_lookup, public_base_url
from bot.events import EventDispatcher
from bot.features import Register, register_all
from bot.handler import SupervisionBot
from bot.people import People, team_roster
from bot.proactive import Proactive
from bot.routing import Router
from bot.scheduler import install_scheduler
from bot.services import Services
from bot.state_hash import QuickHashState
from supervision.clock import Clock, SystemClock
from supervision.duework import DueWorkRunner
from supervision.ports import DocumentStore, LeaderElection
from supervision.repository import AuditLog, CaseRepository

log = logging.getLogger(__name__)


@dataclass
class BotParts:
    services: Services
    adapter: SupervisionAdapter
    bot: SupervisionBot
    router: Router


PARTS = web.AppKey("parts", BotParts)


class _AuthSettings:
    """The attribute names ConfigurationBotFrameworkAuthentication reads."""

    def __init__(self, config: Config, openid_metadata_url: str | None) -> None:
        self.APP_ID = config.app_id
        self.APP_PASSWORD = config.app_password
        self.APP_TYPE = config.app_type
        self.APP_TENANTID = config.app_tenant_id
        if openid_metadata_url:
            # Any of these switches the SDK to its parameterized authentication, which needs them all:
            # the public-cloud values, with only the key server moved.
            self.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = openid_metadata_url
            self.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER
            self.TO_CHANNEL_FROM_BOT_LOGIN_URL = AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX
            self.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE = AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
            self.OAUTH_URL = AuthenticationConstants.OAUTH_URL
            self.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
            self.CALLER_ID = CallerIdConstants.public_azure_channel


def make_store(config: Config) -> DocumentStore:
    if config.storage_backend == "memory":
        from storage.memory import MemoryStore

        return MemoryStore()
    if config.storage_backend == "blob":
        from storage.blob_store import BlobStore  # type: ignore[import-not-found]

        return BlobStore(config.blob_connection_string, config.blob_container)  # type: ignore[no-any-return]
    from storage.tinydb_store import TinyDBStore

    return TinyDBStore(config.data_dir)


def make_bot_state_storage(config: Config, store: DocumentStore) -> Storage:
    try:
        from bot.state_storage import DocumentBotStorage  # type: ignore[import-not-found]
    except ImportError:
        return MemoryStorage()
    return DocumentBotStorage(store)  # type: ignore[no-any-return]


def make_leader(store: DocumentStore) -> LeaderElection:
    """Who runs the scheduler: a blob lease across instances, or this process alone (TinyDB, memory)."""
    election = getattr(store, "leader_election", None)
    if election is not None:
        return election()  # type: ignore[no-any-return]
    from storage.leader import LocalLeaderElection

    return LocalLeaderElection()


def make_clock(config: Config) -> Clock:
    """Real time; or, for end-to-end tests in anonymous local mode only, TEST_CLOCK_FILE's."""
    if config.test_clock_file is None:
        return SystemClock()
    if not config.anonymous:  # load_config refuses it already; a Config built by hand must not slip by
        raise ValueError("TEST_CLOCK_FILE is for tests only: refused when MicrosoftAppId is set")
    from bot.clock_file import FileClock

    log.warning("TEST_CLOCK_FILE is set: the clock follows %s (tests only)", config.test_clock_file)
    return FileClock(config.test_clock_file)


def create_app(config: Config, *, clock: Clock | None = None, store: DocumentStore | None = None,
               auth: BotFrameworkAuthentication | None = None, openid_metadata_url: str | None = None,
               credentials_factory: ServiceClientCredentialsFactory | None = None,
               features: list[Register] | None = None, start_background: bool = True) -> web.Application:
    clock = clock or make_clock(config)
    store = store if store is not None else make_store(config)
    events = EventDispatcher()
    services = Services(config=config, clock=clock, store=store, cases=CaseRepository(store),
                        audit=AuditLog(store, clock), directory=config.directory(), events=events,
                        profiles=config.profiles)
    if auth is None:  # one credentials object per app id and scope, its token reused (bot/credentials.py)
        settings = _AuthSettings(config, openid_metadata_url)
        shared = SharedCredentialsFactory(credentials_factory or ConfigurationServiceClientCredentialFactory(settings))
        auth = ConfigurationBotFrameworkAuthentication(settings, credentials_factory=shared)
    adapter = SupervisionAdapter(auth, config.language, openid_metadata_url=openid_metadata_url,
                                 check_keys=not config.anonymous)
    services.proactive = Proactive(adapter, store, config.app_id, config.tenant_id)
    services.people = People(store, roster=team_roster(services.proactive, config.coordinator_conversation_id,
                                                       config.coordinator_service_url))
    services.due_work = DueWorkRunner(services.cases, store, clock)
    services.leader = make_leader(store)
    install_scheduler(services)
    services.downloads = Downloads(store, services.audit, clock, people_actor_lookup(services),
                                   public_base_url(config), config.download_signing_key)
    router = Router()
    dialogs = register_all(router, services, features)
    state_storage = make_bot_state_storage(config, store)
    # QuickHashState: the SDK's ConversationState, with change detection by pickle (bot/state_hash.py)
    bot = SupervisionBot(services, router, QuickHashState(state_storage), UserState(state_storage), dialogs)
    parts = BotParts(services=services, adapter=adapter, bot=bot, router=router)

    app = web.Application()
    app[PARTS] = parts

    async def messages(request: web.Request) -> web.Response:
        return await adapter.handle(request, bot)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "profile": config.default_profile,
                                  "storage": config.storage_backend, "auth": "anonymous" if config.anonymous else "bot-framework"})

    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    app.router.add_get(DOWNLOAD_ROUTE, services.downloads.handle)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        background: list[Any] = []
        if start_background:
            starter = services.features.get("scheduler.start")
            if starter is not None:
                background.append(await starter())
            freeze_startup_heap()  # a serving process: keep full collections off the imported modules
        yield
        for stop in background:
            await stop()
        await adapter.close()
        close = getattr(store, "close", None)
        if close is not None:
            await close()

    app.cleanup_ctx.append(resources)
    return app
