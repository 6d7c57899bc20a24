"""Inbound credentials: the channel's signing keys, and the channel tokens already accepted.

Works around botbuilder 4.17.1 (each behaviour pinned by tests/test_hot_path.py):

- ``OpenIdKeys``: the SDK fetches the OpenID metadata and keys with blocking ``requests`` inside
  ``authenticate_request`` (first request, then daily), and never refreshes on an unknown key id
  (``_OpenIdMetadata._find`` raises IndexError before its refresh-on-miss branch), so a rotated key
  would be refused for up to a day. We keep the SDK's own cache (``JwtTokenExtractor.metadataCache``)
  filled from a worker thread.
- ``AcceptedTokens``: the SDK validates the same channel token from scratch on every activity (six
  JWT decodes, a JWK parse and an RSA check: about a third of a turn's CPU), although the Bot
  Connector sends one token for many activities. Once the SDK has accepted a token for a channel id
  and service URL, the same token for the same channel id and service URL is accepted again without
  asking the SDK, until the token expires or ``MAX_AGE`` passes, whichever is first; the cache is
  emptied whenever the signing keys are refetched. Only accepted tokens are remembered: every other
  request is checked by the SDK in full.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import jwt
import requests
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    ChannelValidation,
    ClaimsIdentity,
    EmulatorValidation,
    JwtTokenExtractor,
)

log = logging.getLogger(__name__)


class KeysUnavailable(RuntimeError):
    """The OpenID keys could not be fetched and none are cached: no token can be checked."""


def fetch_signing_keys(metadata_url: str) -> list[dict[str, Any]]:
    """What ``_OpenIdMetadata._refresh`` does, with time-outs, for a worker thread."""
    response = requests.get(metadata_url, timeout=10)
    response.raise_for_status()
    keys = requests.get(response.json()["jwks_uri"], timeout=10)
    keys.raise_for_status()
    return list(keys.json()["keys"])


class OpenIdKeys:
    """Keeps botbuilder's OpenID metadata cache (``JwtTokenExtractor.metadataCache``) filled from a
    worker thread, so ``authenticate_request`` never fetches on the event loop: refreshed when older
    than ``MAX_AGE`` (the SDK refetches after a day), and when a token names a key id we do not
    have (at most every ``MISS_INTERVAL``)."""

    MAX_AGE = timedelta(hours=23)
    MISS_INTERVAL = timedelta(minutes=5)
    RETRY_AFTER_FAILURE = timedelta(minutes=1)

    def __init__(self, channel_url: str | None = None, emulator_url: str | None = None,
                 on_refresh: Callable[[], None] | None = None) -> None:
        self.on_refresh = on_refresh
        self._channel_url = channel_url
        self.emulator_url = emulator_url or AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self.refreshes = 0

    @property
    def channel_url(self) -> str:
        """Ours if given, else where the SDK's public-cloud channel validation looks."""
        return (self._channel_url or ChannelValidation.open_id_metadata_endpoint
                or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL)

    async def ensure(self, auth_header: str | None) -> None:
        parts = (auth_header or "").split(" ")
        if len(parts) != 2 or parts[0] != "Bearer" or not parts[1]:
            return  # the SDK refuses it without looking at keys
        try:
            kid = jwt.get_unverified_header(parts[1]).get("kid")
            from_emulator = EmulatorValidation.is_token_from_emulator(auth_header)
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
            return  # malformed: refused by the SDK
        url = self.emulator_url if from_emulator else self.channel_url
        metadata = JwtTokenExtractor.get_open_id_metadata(url)
        now = datetime.now()  # naive local time, as the SDK compares
        stale = metadata.last_updated < now - self.MAX_AGE
        unknown = bool(kid) and not any(k.get("kid") == kid for k in metadata.keys or [])
        if stale or (unknown and metadata.last_updated < now - self.MISS_INTERVAL):
            task = self._refreshing.get(url)
            if task is None or task.done():
                task = self._refreshing[url] = asyncio.get_running_loop().create_task(self._refresh(metadata))
            await asyncio.shield(task)
        if not metadata.keys:
            raise KeysUnavailable(url)

    async def _refresh(self, metadata: Any) -> None:
        try:
            keys = await asyncio.to_thread(fetch_signing_keys, metadata.url)
        except (requests.RequestException, ValueError, KeyError) as error:
            log.warning("could not fetch the OpenID signing keys: %s", type(error).__name__)
            if metadata.keys:  # keep the keys we have; stop the SDK refetching on the loop
                metadata.last_updated = datetime.now() - timedelta(days=1) + self.RETRY_AFTER_FAILURE
            return
        metadata.keys, metadata.last_updated = keys, datetime.now()
        self.refreshes += 1
        if self.on_refresh is not None:
            self.on_refresh()


class AcceptedTokens:
    """Channel tokens the SDK accepted, by (Authorization header, channel id, service URL)."""

    MAX_AGE = 600.0
    SIZE = 1024

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._accepted: OrderedDict[tuple[str, str, str], tuple[float, AuthenticateRequestResult]] = OrderedDict()
        self.hits = 0

    @staticmethod
    def _key(auth_header: str | None, activity: Activity) -> tuple[str, str, str] | None:
        if not auth_header:
            return None
        return auth_header, activity.channel_id or "", activity.service_url or ""

    def get(self, auth_header: str | None, activity: Activity) -> AuthenticateRequestResult | None:
        key = self._key(auth_header, activity)
        found = self._accepted.get(key) if key else None
        if found is None:
            return None
        until, result = found
        if self.clock() >= until:
            del self._accepted[key]  # type: ignore[arg-type]
            return None
        self.hits += 1
        fresh = copy.copy(result)  # the turn gets claims of its own
        identity = result.claims_identity
        fresh.claims_identity = ClaimsIdentity(dict(identity.claims), identity.is_authenticated,
                                               identity.authentication_type)
        return fresh

    def remember(self, auth_header: str | None, activity: Activity, result: AuthenticateRequestResult) -> None:
        key = self._key(auth_header, activity)
        identity = result.claims_identity
        exp = (identity.claims or {}).get("exp") if identity is not None else None
        if key is None or not identity or not identity.is_authenticated or not isinstance(exp, (int, float)):
            return
        until = min(float(exp), self.clock() + self.MAX_AGE)
        self._accepted[key] = (until, result)
        self._accepted.move_to_end(key)
        while len(self._accepted) > self.SIZE:
            self._accepted.popitem(last=False)

    def clear(self) -> None:
        self._accepted.clear()
