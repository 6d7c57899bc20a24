"""Every user-facing string comes from the catalogue: the keys code asks for exist, Welsh never
invents keys English lacks, and placeholders agree between languages."""
from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from supervision.catalogue import Catalogue, MissingMessage, _load

ROOT = Path(__file__).resolve().parent.parent
KEY_CALL = re.compile(r"""(?<![\w])t\(\s*["']([a-z_]+(?:\.[a-z0-9_]+)+)["']""")


def keys_used_in_code() -> set[str]:
    used: set[str] = set()
    for folder in ("bot", "dialogs", "cards", "supervision"):
        for path in (ROOT / folder).rglob("*.py"):
            used.update(KEY_CALL.findall(path.read_text()))
    return used


def test_every_key_used_in_code_exists_in_english():
    catalogue = Catalogue("en")
    missing = sorted(k for k in keys_used_in_code() if not catalogue.has(k))
    assert missing == []


def test_welsh_keys_are_a_subset_of_english_with_the_same_placeholders():
    english, welsh = _load("en"), _load("cy")
    assert set(welsh) <= set(english)
    for key, text in welsh.items():
        fields_cy = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        fields_en = {f for _, f, _, _ in string.Formatter().parse(english[key]) if f}
        assert fields_cy == fields_en, key


def test_welsh_falls_back_to_english_and_unknown_keys_fail():
    cy = Catalogue.for_language("cy-GB")
    assert cy("help.title") != Catalogue("en")("help.title")
    assert cy("help.intro") == Catalogue("en")("help.intro")
    with pytest.raises(MissingMessage):
        cy("no.such.key")
    assert Catalogue.for_language("fr-FR").language == "en"


def test_the_scanner_finds_keys():
    assert "help.title" in keys_used_in_code()
