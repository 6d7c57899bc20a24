"""The message catalogue: every user-facing string, in English and Welsh.

Strings live in ``<lang>/*.toml``; each file holds its own top-level tables (``[help]``,
``[request]`` ...) and the tables of all files are merged into one catalogue of dotted keys.
A key missing in Welsh falls back to English; a key missing in English is an error.
"""
from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
LANGUAGES = ("en", "cy")


class MissingMessage(KeyError):
    pass


def _flatten(prefix: str, table: dict[str, Any], out: dict[str, str], source: Path) -> None:
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            _flatten(full, value, out, source)
        elif isinstance(value, str):
            if full in out:
                raise ValueError(f"{source}: message {full!r} is defined twice")
            out[full] = value
        else:
            raise ValueError(f"{source}: message {full!r} must be text")


@cache
def _load(language: str) -> dict[str, str]:
    messages: dict[str, str] = {}
    for path in sorted((HERE / language).glob("*.toml")):
        with path.open("rb") as handle:
            _flatten("", tomllib.load(handle), messages, path)
    return messages


class Catalogue:
    def __init__(self, language: str = "en") -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unsupported language {language!r}")
        self.language = language
        self._messages = _load(language)
        self._english = _load("en")

    def text(self, key: str, /, **params: Any) -> str:
        template = self._messages.get(key) or self._english.get(key)
        if template is None:
            raise MissingMessage(key)
        return template.format(**params) if params else template

    __call__ = text

    def has(self, key: str) -> bool:
        return key in self._english

    def keys(self) -> set[str]:
        return set(self._english)

    @staticmethod
    def for_language(language: str | None) -> Catalogue:
        code = (language or "en").split("-")[0].lower()
        return Catalogue(code if code in LANGUAGES else "en")
