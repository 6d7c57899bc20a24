"""The Teams app package: the manifest validates offline against the official schema bundled in
@microsoft/app-manifest, the icons have the sizes Teams requires, the zip holds exactly three files,
and a missing or malformed app id stops the build naming the setting."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image

from bot.package import MANIFEST_DIR, PackageError, build_package, package_settings, render_manifest

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "node_modules" / "@microsoft" / "app-manifest" / "build" / "json-schemas" / "teams"
APP_ID = "6d7c9a51-3b1e-4c53-9c27-0f2f4e8a1b2c"
TEAMS_ID = "0b8f2f4e-6a43-4f0e-9d55-1c2e3d4f5a6b"


def official_schema(manifest: dict[str, Any]) -> dict[str, Any]:
    version = manifest["manifestVersion"]
    path = SCHEMAS / f"v{version}" / "MicrosoftTeams.schema.json"
    if not SCHEMAS.exists():
        pytest.fail(f"{SCHEMAS} missing: `make test` installs the Node packages (npm ci)")
    assert path.exists(), f"manifestVersion {version} is not a schema that @microsoft/app-manifest bundles"
    assert manifest["$schema"].endswith(f"/teams/v{version}/MicrosoftTeams.schema.json")
    return dict(json.loads(path.read_text(encoding="utf-8-sig")))


def validation_errors(manifest: dict[str, Any]) -> list[str]:
    schema = official_schema(manifest)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(manifest)]


@pytest.fixture
def package(tmp_path: Path) -> zipfile.ZipFile:
    out = build_package({"MicrosoftAppId": APP_ID}, tmp_path / "appPackage.zip")
    return zipfile.ZipFile(out)


def test_the_zip_holds_exactly_the_manifest_and_two_icons(package: zipfile.ZipFile) -> None:
    assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]


def test_the_built_manifest_is_valid_against_the_official_schema(package: zipfile.ZipFile) -> None:
    manifest = json.loads(package.read("manifest.json"))
    assert validation_errors(manifest) == []
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert "${{" not in json.dumps(manifest)
    assert manifest["version"] == "0.1.0"
    # the newest stable schema the package bundles (not a preview)
    bundled = [p.name[1:] for p in SCHEMAS.iterdir() if p.name[1:2].isdigit()]
    newest = max(bundled, key=lambda v: tuple(int(n) for n in v.split(".")))
    assert manifest["manifestVersion"] == newest


def test_the_schema_check_can_fail(package: zipfile.ZipFile) -> None:
    manifest = json.loads(package.read("manifest.json"))
    manifest["id"] = "not-a-guid"
    manifest["name"]["short"] = "x" * 31
    del manifest["icons"]
    errors = "\n".join(validation_errors(manifest))
    assert "['id']" in errors and "['name', 'short']" in errors and "'icons' is a required property" in errors


def test_command_lists_per_scope(package: zipfile.ZipFile) -> None:
    bot = json.loads(package.read("manifest.json"))["bots"][0]
    lists = {tuple(c["scopes"]): [cmd["title"] for cmd in c["commands"]] for c in bot["commandLists"]}
    assert lists == {
        ("personal",): ["help", "request", "my sessions", "my actions", "record session", "tracker",
                        "raise a concern", "schedule", "chronology", "audit log"],
        ("team", "groupChat"): ["help", "record session"],
    }
    assert set(bot["scopes"]) == {"personal", "team", "groupChat"}
    assert all(cmd["description"] for c in bot["commandLists"] for cmd in c["commands"])


def test_icons_have_the_sizes_and_colours_teams_requires(package: zipfile.ZipFile) -> None:
    color = Image.open(io.BytesIO(package.read("color.png")))
    outline = Image.open(io.BytesIO(package.read("outline.png")))
    assert (color.format, color.size) == ("PNG", (192, 192))
    assert (outline.format, outline.size, outline.mode) == ("PNG", (32, 32), "RGBA")
    pixels = list(outline.getdata())
    assert {p[:3] for p in pixels if p[3]} == {(255, 255, 255)}, "outline must be white only"
    assert pixels[0][3] == 0 and sum(1 for p in pixels if p[3] == 0) > 200, "outline needs a transparent background"
    assert sum(1 for p in pixels if p[3] == 255) > 100, "outline must draw something"


def test_the_committed_icons_are_what_the_script_draws(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_icons", MANIFEST_DIR / "make_icons.py")
    assert spec is not None and spec.loader is not None
    make_icons = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_icons)
    for drawn in make_icons.write(tmp_path):
        committed = Image.open(MANIFEST_DIR / drawn.name)
        fresh = Image.open(drawn)
        assert committed.mode == fresh.mode and committed.tobytes() == fresh.tobytes(), drawn.name


def test_teams_app_id_can_differ_from_the_bot_id(tmp_path: Path) -> None:
    manifest = render_manifest(package_settings({"MicrosoftAppId": APP_ID, "TEAMS_APP_ID": TEAMS_ID}))
    assert (manifest["id"], manifest["bots"][0]["botId"]) == (TEAMS_ID, APP_ID)
    alone = render_manifest(package_settings({"TEAMS_APP_ID": TEAMS_ID}))
    assert (alone["id"], alone["bots"][0]["botId"]) == (TEAMS_ID, TEAMS_ID)


@pytest.mark.parametrize(("env", "setting"), [
    ({}, "MicrosoftAppId"),
    ({"MicrosoftAppId": "00000000-0000-0000-0000-00000000000011"}, "MicrosoftAppId"),
    ({"MicrosoftAppId": APP_ID, "TEAMS_APP_ID": "my-app"}, "TEAMS_APP_ID"),
    ({"MicrosoftAppId": APP_ID, "APP_VERSION": "v2"}, "APP_VERSION"),
    ({"MicrosoftAppId": APP_ID, "DEVELOPER_PRIVACY_URL": "http://example.org/privacy"}, "DEVELOPER_PRIVACY_URL"),
])
def test_a_bad_setting_stops_the_build_naming_it(env: dict[str, str], setting: str, tmp_path: Path) -> None:
    with pytest.raises(PackageError) as caught:
        build_package(env, tmp_path / "appPackage.zip")
    assert caught.value.setting == setting and str(caught.value).startswith(f"{setting}: ")
    assert not (tmp_path / "appPackage.zip").exists()


def test_python_m_bot_package_builds_the_zip_and_reports_errors(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MicrosoftAppId", "TEAMS_APP_ID", "MicrosoftAppPassword")}
    out = tmp_path / "build" / "appPackage.zip"
    ok = subprocess.run([sys.executable, "-m", "bot", "package", "--out", str(out)], cwd=ROOT,
                        env={**env, "TEAMS_APP_ID": TEAMS_ID}, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(zipfile.ZipFile(out).read("manifest.json"))["id"] == TEAMS_ID
    bad = subprocess.run([sys.executable, "-m", "bot", "package", "--out", str(tmp_path / "x.zip")], cwd=tmp_path,
                         env={**env, "PYTHONPATH": str(ROOT), "MicrosoftAppId": "nope"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "MicrosoftAppId" in bad.stderr and "GUID" in bad.stderr


def test_every_manifest_command_is_a_command_the_bot_routes(package: zipfile.ZipFile, config) -> None:
    from bot.app import PARTS, create_app

    router = create_app(config, start_background=False)[PARTS].router
    bot = json.loads(package.read("manifest.json"))["bots"][0]
    titles = {cmd["title"] for c in bot["commandLists"] for cmd in c["commands"]}
    assert all(len(c["commands"]) <= 10 for c in bot["commandLists"])
    assert sorted(t for t in titles if router.match_command(t) is None) == []
