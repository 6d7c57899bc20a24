"""Configuration from the environment and an optional ``.env``, validated at start.

A bad value raises ``ConfigError`` naming the setting; ``python -m bot`` prints it and exits 2.
"""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from dotenv import dotenv_values

from supervision.profile import Profile, ProfileError, load_profiles
from supervision.roles import Directory, FacilitatorProfile

APP_TYPES = ("MultiTenant", "SingleTenant", "UserAssignedMSI")
BACKENDS = ("tinydb", "blob", "memory")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
GUIDISH = re.compile(r"^[0-9a-fA-F-]{32,40}$")


class ConfigError(ValueError):
    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"configuration {setting}: {reason}")
        self.setting, self.reason = setting, reason


@dataclass(frozen=True)
class GraphSettings:
    tenant_id: str
    client_id: str
    client_secret: str = ""
    certificate_path: str = ""
    managed_identity: bool = False
    organiser: str = ""
    base_url: str = "https://graph.microsoft.com/v1.0"


@dataclass(frozen=True)
class Config:
    port: int = 3978
    host: str = "localhost"
    app_id: str = ""
    app_password: str = ""
    app_type: str = "MultiTenant"
    app_tenant_id: str = ""
    data_dir: Path = Path("data")
    storage_backend: str = "tinydb"
    blob_connection_string: str = ""
    blob_container: str = "group-supervision"
    default_profile: str = "bolton"
    profile_files: tuple[Path, ...] = ()
    closures: tuple[date, ...] = ()
    coordinators: frozenset[str] = frozenset()
    administrators: frozenset[str] = frozenset()
    business_managers: frozenset[str] = frozenset()
    facilitators: tuple[FacilitatorProfile, ...] = ()
    coordinator_conversation_id: str = ""
    coordinator_service_url: str = ""
    tenant_id: str = ""
    graph: GraphSettings | None = None
    scheduler_interval_seconds: int = 60
    log_level: str = "INFO"
    language: str = "en"
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    public_url: str = ""                 # where clients reach the bot (signed download links)
    download_signing_key: str = ""       # HMAC key for download links; empty: one kept in the store
    concerns_lead_email: str = ""          # the profile's named lead for concerns and complaints
    test_clock_file: Path | None = None    # e2e tests only (bot/clock_file.py); anonymous local mode only

    @property
    def anonymous(self) -> bool:
        return not self.app_id

    @property
    def profile(self) -> Profile:
        return self.profiles[self.default_profile]

    def directory(self) -> Directory:
        return Directory(coordinators=self.coordinators, administrators=self.administrators,
                         business_managers=self.business_managers, facilitators=self.facilitators)


def _list(value: str) -> frozenset[str]:
    return frozenset(v.strip().lower() for v in value.split(",") if v.strip())


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}, got {value}")
    return value


def _emails(env: Mapping[str, str], name: str) -> frozenset[str]:
    values = _list(env.get(name, ""))
    for value in values:
        if "@" in value and not EMAIL.match(value):
            raise ConfigError(name, f"{value!r} is not a well-formed email address")
    return values


def _one_email(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip().lower()
    if value and not EMAIL.match(value):
        raise ConfigError(name, f"{value!r} is not a well-formed email address")
    return value


def load_facilitators(path: Path) -> tuple[FacilitatorProfile, ...]:
    """The facilitator roster: a TOML file of [[facilitator]] tables."""
    setting = "FACILITATORS_FILE"
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(setting, f"{path} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(setting, f"{path}: {error}") from None
    roster = []
    for index, row in enumerate(data.get("facilitator", [])):
        where = f"{path}: facilitator[{index}]"
        for key in ("name", "email", "agency"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise ConfigError(setting, f"{where}.{key} is required")
        if not EMAIL.match(row["email"]):
            raise ConfigError(setting, f"{where}.email {row['email']!r} is not a well-formed email address")
        roster.append(FacilitatorProfile(
            name=row["name"], email=row["email"].lower(), agency=row["agency"], team=row.get("team", ""),
            trained=bool(row.get("trained", True)), active=bool(row.get("active", True)),
            user_id=row.get("user_id", ""),
        ))
    return tuple(roster)


def load_config(environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> Config:
    env: dict[str, str] = {}
    if env_file is not None and env_file.exists():
        env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    app_id = env.get("MicrosoftAppId", "").strip()
    app_password = env.get("MicrosoftAppPassword", "").strip()
    app_type = env.get("MicrosoftAppType", "").strip() or "MultiTenant"
    tenant = env.get("MicrosoftAppTenantId", "").strip()
    if app_type not in APP_TYPES:
        raise ConfigError("MicrosoftAppType", f"must be one of {', '.join(APP_TYPES)}, got {app_type!r}")
    if app_id:
        if not GUIDISH.match(app_id):
            raise ConfigError("MicrosoftAppId", f"must be an app (client) id GUID, got {app_id!r}")
        if app_type != "UserAssignedMSI" and not app_password:
            raise ConfigError("MicrosoftAppPassword", "is required when MicrosoftAppId is set")
        if app_type in ("SingleTenant", "UserAssignedMSI") and not tenant:
            raise ConfigError("MicrosoftAppTenantId", f"is required when MicrosoftAppType is {app_type}")
    elif app_password:
        raise ConfigError("MicrosoftAppId", "is required when MicrosoftAppPassword is set")

    backend = env.get("STORAGE_BACKEND", "tinydb").strip().lower()
    if backend not in BACKENDS:
        raise ConfigError("STORAGE_BACKEND", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    blob_conn = env.get("AZURE_STORAGE_CONNECTION_STRING", "").strip()
    if backend == "blob" and not blob_conn:
        raise ConfigError("AZURE_STORAGE_CONNECTION_STRING", "is required when STORAGE_BACKEND is blob")

    profile_files = tuple(Path(p.strip()) for p in env.get("PROFILE_FILES", "").split(",") if p.strip())
    try:
        profiles = load_profiles(profile_files)
    except ProfileError as error:
        raise ConfigError("PROFILE_FILES", str(error)) from None
    default_profile = env.get("DEFAULT_PROFILE", "bolton").strip()
    if default_profile not in profiles:
        raise ConfigError("DEFAULT_PROFILE", f"no profile {default_profile!r}; known: {', '.join(sorted(profiles))}")

    closures = []
    for raw in (v.strip() for v in env.get("CLOSURE_DAYS", "").split(",") if v.strip()):
        try:
            closures.append(date.fromisoformat(raw))
        except ValueError:
            raise ConfigError("CLOSURE_DAYS", f"{raw!r} is not a date (use YYYY-MM-DD)") from None

    facilitators: tuple[FacilitatorProfile, ...] = ()
    if env.get("FACILITATORS_FILE", "").strip():
        facilitators = load_facilitators(Path(env["FACILITATORS_FILE"].strip()))

    graph = None
    if env.get("GRAPH_CLIENT_ID", "").strip() or env.get("GRAPH_TENANT_ID", "").strip():
        graph = GraphSettings(
            tenant_id=env.get("GRAPH_TENANT_ID", "").strip(),
            client_id=env.get("GRAPH_CLIENT_ID", "").strip(),
            client_secret=env.get("GRAPH_CLIENT_SECRET", "").strip(),
            certificate_path=env.get("GRAPH_CERTIFICATE_PATH", "").strip(),
            managed_identity=env.get("GRAPH_MANAGED_IDENTITY", "").strip().lower() in ("1", "true", "yes"),
            organiser=env.get("GRAPH_ORGANISER", "").strip(),
            base_url=env.get("GRAPH_BASE_URL", "").strip() or "https://graph.microsoft.com/v1.0",
        )
        for name, value in (("GRAPH_TENANT_ID", graph.tenant_id), ("GRAPH_CLIENT_ID", graph.client_id),
                            ("GRAPH_ORGANISER", graph.organiser)):
            if not value:
                raise ConfigError(name, "is required when Graph is configured")
        if not (graph.client_secret or graph.certificate_path or graph.managed_identity):
            raise ConfigError("GRAPH_CLIENT_SECRET", "give a client secret, a certificate path or managed identity")
        if not EMAIL.match(graph.organiser):
            raise ConfigError("GRAPH_ORGANISER", f"{graph.organiser!r} is not a well-formed email address")

    language = env.get("BOT_LANGUAGE", "en").strip().lower() or "en"
    if language not in ("en", "cy"):
        raise ConfigError("BOT_LANGUAGE", f"must be en or cy, got {language!r}")
    public_url = env.get("PUBLIC_URL", "").strip().rstrip("/")
    if public_url and not re.match(r"^https?://[^\s/]+", public_url):
        raise ConfigError("PUBLIC_URL", f"must be an http(s) address, got {public_url!r}")
    log_level = env.get("LOG_LEVEL", "INFO").strip().upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("LOG_LEVEL", f"must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")

    test_clock_file = None
    if env.get("TEST_CLOCK_FILE", "").strip():
        if app_id:
            raise ConfigError("TEST_CLOCK_FILE", "is for tests only: refused when MicrosoftAppId is set")
        test_clock_file = Path(env["TEST_CLOCK_FILE"].strip())

    return Config(
        port=_int(env, "PORT", 3978, 1, 65535),
        host=env.get("HOST", "localhost").strip() or "localhost",
        app_id=app_id, app_password=app_password, app_type=app_type, app_tenant_id=tenant,
        data_dir=Path(env.get("DATA_DIR", "data").strip() or "data"),
        storage_backend=backend, blob_connection_string=blob_conn,
        blob_container=env.get("BLOB_CONTAINER", "group-supervision").strip() or "group-supervision",
        default_profile=default_profile, profile_files=profile_files, closures=tuple(closures),
        coordinators=_emails(env, "COORDINATORS"), administrators=_emails(env, "ADMINISTRATORS"),
        business_managers=_emails(env, "BUSINESS_MANAGERS"), facilitators=facilitators,
        coordinator_conversation_id=env.get("COORDINATOR_CONVERSATION_ID", "").strip(),
        coordinator_service_url=env.get("COORDINATOR_SERVICE_URL", "").strip(),
        tenant_id=env.get("TEAMS_TENANT_ID", tenant).strip(),
        graph=graph,
        scheduler_interval_seconds=_int(env, "SCHEDULER_INTERVAL_SECONDS", 60, 0, 86_400),
        log_level=log_level, language=language, profiles=profiles,
        public_url=public_url, download_signing_key=env.get("DOWNLOAD_SIGNING_KEY", "").strip(),
        concerns_lead_email=_one_email(env, "CONCERNS_LEAD_EMAIL"),
        test_clock_file=test_clock_file,
    )
