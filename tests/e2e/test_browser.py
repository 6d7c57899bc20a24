"""What a person sees: the Playground page in headless Chromium shows the welcome card, no
unsupported-feature warning, and answers `help` typed in the message box with the help card.
Screenshots go to test-artifacts/ (git-ignored)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from supervision.catalogue import Catalogue
from tests.e2e.playground import ROOT, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
T = Catalogue.for_language("en")
SCRIPT = Path(__file__).resolve().parent / "browser" / "playground_page.mjs"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")


def test_playground_page_shows_welcome_and_help_cards_with_no_unsupported_feature(stack: Stack) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: `make test` installs the Debian chromium package")
    node = shutil.which("node")
    assert node, "node is not installed"
    run = subprocess.run([node, str(SCRIPT), stack.playground_url, str(ARTIFACTS), T("welcome.title"),
                          T("help.title")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = run.stdout.strip().splitlines()
    assert lines, f"no result from the browser script (exit {run.returncode}):\n{run.stderr[-2000:]}"
    page = json.loads(lines[-1])
    assert page["ok"], f"browser run failed: {page.get('error')}\n(screenshot: {ARTIFACTS / 'failure.png'})"

    assert page["unsupported"] == [], f"the Playground flags card features: {page['unsupported']}"
    assert T("welcome.title") in page["welcome"]
    assert T("welcome.not_statutory") in page["welcome"]
    assert page["welcomeButtons"] == [T("help.button_request"), T("help.button_my_sessions"),
                                      T("help.button_my_actions")]
    for command, key in (("request", "help.request"), ("chronology", "help.chronology")):
        assert command in page["help"] and T(key) in page["help"]
    assert "**" not in page["help"], "markdown shown literally"
    assert "Bolton Safeguarding Children Partnership" in page["help"]
    # only the CDN font/animation requests were refused: nothing else left the machine
    assert all("localhost" not in origin and "127.0.0.1" not in origin for origin in page["blocked"])
    for name in ("welcome-card.png", "help-card.png"):
        assert (ARTIFACTS / name).stat().st_size > 5_000
