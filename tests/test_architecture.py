"""Dependencies point inward: the domain imports nothing from the edge or its libraries; botbuilder
stays inside bot/ and dialogs/; dialogs never touch storage or Graph directly."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_DOMAIN = ("botbuilder", "botframework", "aiohttp", "msgraph", "azure", "tinydb", "bot", "dialogs",
                       "cards", "storage", "requests", "msal", "kiota")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for module in imports_of(path):
            if module.split(".")[0] in forbidden:
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    return bad


def test_domain_imports_nothing_from_the_edge():
    assert offenders("supervision", FORBIDDEN_IN_DOMAIN) == []


def test_botbuilder_stays_in_bot_and_dialogs():
    for folder in ("supervision", "cards", "storage", "bench"):
        assert offenders(folder, ("botbuilder", "botframework")) == [], folder


def test_cards_are_pure():
    assert offenders("cards", ("botbuilder", "botframework", "aiohttp", "msgraph", "azure", "tinydb", "storage", "bot")) == []


def test_dialogs_never_touch_storage_or_graph():
    assert offenders("dialogs", ("storage", "tinydb", "azure", "msgraph", "kiota")) == []


def test_the_checker_does_catch_a_forbidden_import(tmp_path: Path):
    sample = tmp_path / "x.py"
    sample.write_text("import tinydb\nfrom botbuilder.core import TurnContext\n")
    assert imports_of(sample) == {"tinydb", "botbuilder.core"}
