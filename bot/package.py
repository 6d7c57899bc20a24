"""``python -m bot package`` (``make package``): the Teams app package, build/appPackage.zip.

The zip holds exactly manifest.json, color.png and outline.png. The manifest comes from
manifest/manifest.template.json: ``${{NAME}}`` is a setting (environment, then ``.env``), and
``${{t:key}}`` a message from the English catalogue (supervision/catalogue/en/manifest.toml).

Settings:
  MicrosoftAppId      the bot's app (client) id; the bot id, and the app id unless TEAMS_APP_ID is set
  TEAMS_APP_ID        the Teams app id (defaults to MicrosoftAppId; one of the two is required)
  APP_VERSION         the app version (default: the version in pyproject.toml)
  DEVELOPER_WEBSITE_URL, DEVELOPER_PRIVACY_URL, DEVELOPER_TERMS_URL   https links shown in Teams
"""
from __future__ import annotations

import json
import os
import re
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from supervision.catalogue import Catalogue

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_DIR = ROOT / "manifest"
TEMPLATE = MANIFEST_DIR / "manifest.template.json"
ICONS = ("color.png", "outline.png")
DEFAULT_OUT = ROOT / "build" / "appPackage.zip"
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
PLACEHOLDER = re.compile(r"\$\{\{([^}]+)\}\}")
DEFAULT_URLS = {
    "DEVELOPER_WEBSITE_URL": "https://www.example.org/group-supervision",
    "DEVELOPER_PRIVACY_URL": "https://www.example.org/group-supervision/privacy",
    "DEVELOPER_TERMS_URL": "https://www.example.org/group-supervision/terms",
}


class PackageError(ValueError):
    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting


def _project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def package_settings(env: Mapping[str, str]) -> dict[str, str]:
    """The values the template needs, validated; a bad one raises PackageError naming the setting."""
    bot_id = env.get("MicrosoftAppId", "").strip()
    app_id = env.get("TEAMS_APP_ID", "").strip()
    if not bot_id and not app_id:
        raise PackageError("MicrosoftAppId", "set MicrosoftAppId (the bot's app id) or TEAMS_APP_ID to build the "
                                             "Teams app package")
    for name, value in (("MicrosoftAppId", bot_id), ("TEAMS_APP_ID", app_id)):
        if value and not GUID.match(value):
            raise PackageError(name, f"must be a GUID like 00000000-0000-0000-0000-000000000000, got {value!r}")
    version = env.get("APP_VERSION", "").strip() or _project_version()
    if not SEMVER.match(version):
        raise PackageError("APP_VERSION", f"must be a semantic version like 1.2.3, got {version!r}")
    settings = {"BOT_ID": bot_id or app_id, "TEAMS_APP_ID": app_id or bot_id, "APP_VERSION": version}
    for name, default in DEFAULT_URLS.items():
        url = env.get(name, "").strip() or default
        if not url.startswith("https://"):
            raise PackageError(name, f"must be an https:// address, got {url!r}")
        settings[name] = url
    return settings


def render_manifest(settings: Mapping[str, str], template: Path = TEMPLATE) -> dict[str, Any]:
    t = Catalogue("en")

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            def one(match: re.Match[str]) -> str:
                name = match.group(1).strip()
                if name.startswith("t:"):
                    return t(name[2:])
                if name not in settings:
                    raise PackageError(name, f"{template.name} uses ${{{{{name}}}}} but nothing sets it")
                return settings[name]

            return PLACEHOLDER.sub(one, value)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return dict(fill(json.loads(template.read_text(encoding="utf-8"))))


def build_package(env: Mapping[str, str], out: Path = DEFAULT_OUT, manifest_dir: Path = MANIFEST_DIR) -> Path:
    manifest = render_manifest(package_settings(env), manifest_dir / "manifest.template.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        for icon in ICONS:
            archive.write(manifest_dir / icon, icon)
    os.replace(partial, out)
    return out


def environment(env_file: Path | None = Path(".env")) -> dict[str, str]:
    """Settings as the bot reads them: ``.env`` first, the environment wins."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.exists():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ)
    return values


def main(out: str | None = None) -> int:
    import sys

    try:
        path = build_package(environment(), Path(out) if out else DEFAULT_OUT)
    except PackageError as error:
        print(f"Cannot build the Teams app package: {error}", file=sys.stderr)
        return 2
    print(f"Teams app package: {path}")
    return 0
