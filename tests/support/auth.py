"""Bot Framework authentication, played on loopback: an OpenID key server, a token signer that signs
inbound tokens exactly as the Bot Connector does, and a login stand-in for the bot's outbound token.

- ``KeyServer`` serves an OpenID metadata document and the JWKS of an RSA key generated here, plus a
  client-credentials token endpoint (the login stand-in) that counts its calls. It runs in its own
  thread: botbuilder fetches the metadata with blocking ``requests``, so it must not share the event
  loop of the bot under test.
- ``KeyServer.sign(...)`` makes an RS256 token with ``iss`` https://api.botframework.com, ``aud`` the
  bot's app id, a ``serviceurl`` claim and the key id, as the Bot Connector's tokens have; every
  field can be spoiled to test a rejection.
- ``LoginStandInCredentials`` / ``StandInCredentialsFactory`` behave as the SDK's
  ``MicrosoftAppCredentials`` / ``PasswordServiceClientCredentialFactory`` do (a blocking token
  request, a token cache per credentials object) but ask the login stand-in instead of Azure AD.

The turns benchmark (bench/turns_bench.py) uses the same pieces.
"""
from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
import requests
from botframework.connector.auth import (
    JwtTokenExtractor,
    MicrosoftAppCredentials,
    PasswordServiceClientCredentialFactory,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://api.botframework.com"
APP_ID = "11111111-2222-3333-4444-555555555555"
APP_PASSWORD = "not-a-real-secret"
KID = "loopback-key-1"


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key: rsa.RSAPrivateKey, kid: str, endorsements: list[str]) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "use": "sig", "kid": kid, "alg": "RS256", "n": _b64(numbers.n),
            "e": _b64(numbers.e), "endorsements": endorsements}


@dataclass
class KeyServer:
    """OpenID metadata + JWKS + login stand-in, on 127.0.0.1 in a thread of its own."""

    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    kid: str = KID
    endorsements: list[str] = field(default_factory=lambda: ["msteams", "emulator", "webchat"])
    login_calls: int = 0
    metadata_calls: int = 0
    token_lifetime: int = 3600
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> KeyServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                if self.path == "/.well-known/openidconfiguration":
                    with owner._lock:
                        owner.metadata_calls += 1
                    self._json(200, owner.metadata())
                elif self.path == "/keys":
                    self._json(200, {"keys": [jwk(owner.key, owner.kid, owner.endorsements)]})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode()) if length else {}
                if not self.path.endswith("/oauth2/v2.0/token"):
                    self._json(404, {"error": "not found"})
                    return
                if form.get("client_id") != [APP_ID] or form.get("client_secret") != [APP_PASSWORD]:
                    self._json(401, {"error": "invalid_client"})
                    return
                with owner._lock:
                    owner.login_calls += 1
                self._json(200, {"token_type": "Bearer", "expires_in": owner.token_lifetime,
                                 "access_token": owner.outbound_token()})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="key-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openidconfiguration"

    @property
    def token_url(self) -> str:
        return f"{self.url}/botframework.com/oauth2/v2.0/token"

    def metadata(self) -> dict[str, Any]:
        return {"issuer": ISSUER, "authorization_endpoint": f"{self.url}/authorize",
                "jwks_uri": f"{self.url}/keys", "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"]}

    # --- tokens -------------------------------------------------------------------------------
    def sign(self, service_url: str, *, app_id: str = APP_ID, issuer: str = ISSUER,
             kid: str | None = None, key: rsa.RSAPrivateKey | None = None, expires_in: int = 3600,
             claims: dict[str, Any] | None = None) -> str:
        """A token as the Bot Connector signs it for a call to the bot."""
        now = int(time.time())
        payload: dict[str, Any] = {"iss": issuer, "aud": app_id, "serviceurl": service_url,
                                   "nbf": now - 60, "iat": now - 60, "exp": now + expires_in}
        payload.update(claims or {})
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def header(self, service_url: str, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sign(service_url, **kw)}"}

    def outbound_token(self) -> str:
        """What Azure AD would hand the bot for calling the Bot Connector (opaque to the bot, but a
        JWT with ``exp``, as Azure AD's are)."""
        now = int(time.time())
        pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        return jwt.encode({"iss": "https://login.loopback/", "aud": ISSUER, "appid": APP_ID,
                           "iat": now, "exp": now + self.token_lifetime, "jti": uuid.uuid4().hex},
                          pem, algorithm="RS256")


def clear_metadata_cache() -> None:
    """botbuilder keeps OpenID metadata in a class-level dict for a day: forget it between tests."""
    JwtTokenExtractor.metadataCache.clear()


@contextmanager
def running_key_server() -> Iterator[KeyServer]:
    server = KeyServer().start()
    try:
        yield server
    finally:
        server.stop()


class LoginStandInCredentials(MicrosoftAppCredentials):
    """``MicrosoftAppCredentials`` with the login call sent to the loopback stand-in.

    Like the SDK's (one MSAL application and token cache per credentials object) it keeps its token
    per object and fetches it with a blocking HTTP call.
    """

    def __init__(self, app_id: str, password: str, token_url: str, tenant: str | None = None,
                 oauth_scope: str | None = None) -> None:
        super().__init__(app_id, password, tenant, oauth_scope)
        self.token_url = token_url
        self._token = ""
        self._expires = 0.0

    def get_access_token(self, force_refresh: bool = False) -> str:
        if self._token and not force_refresh and time.time() < self._expires - 300:
            return self._token
        scope = self.oauth_scope if self.oauth_scope.endswith("/.default") else self.oauth_scope + "/.default"
        response = requests.post(self.token_url, data={
            "grant_type": "client_credentials", "client_id": self.microsoft_app_id,
            "client_secret": self.microsoft_app_password, "scope": scope}, timeout=10)
        if response.status_code != 200:
            raise PermissionError(f"Failed to get access token: {response.status_code}")
        body = response.json()
        self._token, self._expires = body["access_token"], time.time() + int(body["expires_in"])
        return self._token


class StandInCredentialsFactory(PasswordServiceClientCredentialFactory):
    """The SDK's password credentials factory (a new credentials object per call), pointed at the
    login stand-in."""

    def __init__(self, token_url: str, app_id: str = APP_ID, password: str = APP_PASSWORD) -> None:
        super().__init__(app_id, password)
        self.token_url = token_url
        self.created = 0

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> MicrosoftAppCredentials:
        if await self.is_authentication_disabled():
            return MicrosoftAppCredentials.empty()
        if not await self.is_valid_app_id(app_id):
            raise PermissionError("Invalid app_id")
        self.created += 1
        return LoginStandInCredentials(app_id, self.password, self.token_url, self.tenant_id, oauth_scope)
