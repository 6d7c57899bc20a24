"""The bot's outbound token: one credentials object per (app id, scope), its token fetched once,
refreshed before it expires, and never fetched synchronously on the event loop.

Works around botbuilder 4.17.1 (each behaviour is pinned by tests/test_hot_path.py):

- ``PasswordServiceClientCredentialFactory.create_credentials`` makes a new ``MicrosoftAppCredentials``
  on every call, and the SDK calls it for every turn (connector client and user-token client), so
  each new MSAL application starts with an empty token cache: a login call per turn.
- msrest's ``AsyncRequestsCredentialsPolicy`` calls ``signed_session`` -> ``get_access_token``
  synchronously, i.e. the login round trip blocks the event loop.

``SharedCredentialsFactory`` wraps the configured factory (password, certificate or managed
identity alike) and hands out one ``CachedAppCredentials`` per key. ``CachedAppCredentials.token()``
is what our connector pipeline (bot/connector.py) awaits: the inner SDK credentials are asked in a
worker thread, one fetch at a time, and again in the background once the token is within
``REFRESH_BEFORE`` seconds of expiry while the still-valid token keeps being served.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
from botframework.connector.auth import AppCredentials, ServiceClientCredentialsFactory
from msrest.authentication import Authentication

log = logging.getLogger(__name__)

REFRESH_BEFORE = 300.0      # seconds before expiry when a background refresh starts
DEFAULT_LIFETIME = 3000.0   # for a token whose expiry cannot be read (not a JWT)


def token_expiry(token: str, now: float) -> float:
    """Expiry (epoch seconds) of an Azure AD access token, read without verifying it (it is ours,
    fresh from the login service; the channel verifies it)."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        return float(exp) if exp else now + DEFAULT_LIFETIME
    except (jwt.PyJWTError, ValueError, TypeError):
        return now + DEFAULT_LIFETIME


class CachedAppCredentials(AppCredentials):
    """One SDK credentials object and its token, shared by every connector client of one key."""

    def __init__(self, inner: AppCredentials, clock: Callable[[], float] = time.time) -> None:
        super().__init__(app_id=inner.microsoft_app_id, channel_auth_tenant=inner.tenant,
                         oauth_scope=inner.oauth_scope)
        self.oauth_endpoint = inner.oauth_endpoint
        self.inner = inner
        self.clock = clock
        self.fetches = 0
        self._token = ""
        self._expires_at = 0.0
        self._task: asyncio.Task[str] | None = None
        self._sync_lock = threading.Lock()

    # --- async: the hot path ----------------------------------------------------------------
    def _fresh(self, margin: float) -> bool:
        return bool(self._token) and self.clock() < self._expires_at - margin

    async def token(self, *, force_refresh: bool = False) -> str:
        if not force_refresh and self._fresh(REFRESH_BEFORE):
            return self._token
        if not force_refresh and self._fresh(0):
            self._start_fetch()  # refresh in the background; the current token is still good
            return self._token
        return await asyncio.shield(self._start_fetch(force_refresh))

    def _start_fetch(self, force_refresh: bool = False) -> asyncio.Task[str]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._fetch(force_refresh))
            self._task.add_done_callback(_log_failure)
        return self._task

    async def _fetch(self, force_refresh: bool) -> str:
        return await asyncio.to_thread(self._fetch_blocking, force_refresh)

    def _fetch_blocking(self, force_refresh: bool = False) -> str:
        with self._sync_lock:
            if not force_refresh and self._fresh(REFRESH_BEFORE):
                return self._token
            token = self.inner.get_access_token(force_refresh)
            self.fetches += 1
            now = self.clock()
            self._token, self._expires_at = token, token_expiry(token, now)
            return token

    # --- sync: what the SDK's own requests pipeline calls ---------------------------------------
    def get_access_token(self, force_refresh: bool = False) -> str:
        """For SDK code paths we do not own (e.g. TeamsConnectorClient): the cached token when it
        is valid; otherwise a blocking fetch, as the SDK would have made."""
        if not force_refresh and self._fresh(60):
            return self._token
        return self._fetch_blocking(force_refresh)


def _log_failure(task: asyncio.Task[str]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not fetch the bot's access token: %s", type(task.exception()).__name__)


class SharedCredentialsFactory(ServiceClientCredentialsFactory):
    """Hands out one ``CachedAppCredentials`` per (app id, scope, login endpoint, authority check)."""

    def __init__(self, inner: ServiceClientCredentialsFactory) -> None:
        self.inner = inner
        self._credentials: dict[tuple[Any, ...], Authentication] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(await self.inner.is_valid_app_id(app_id))

    async def is_authentication_disabled(self) -> bool:
        return bool(await self.inner.is_authentication_disabled())

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> Authentication:
        key = (app_id, oauth_scope, login_endpoint, validate_authority)
        found = self._credentials.get(key)
        if found is None:
            made = await self.inner.create_credentials(app_id, oauth_scope, login_endpoint, validate_authority)
            if isinstance(made, AppCredentials) and made.microsoft_app_id:
                made = CachedAppCredentials(made)
            found = self._credentials.setdefault(key, made)
        return found

    def all(self) -> list[Authentication]:
        return list(self._credentials.values())
