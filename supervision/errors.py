"""Domain errors. Each carries a catalogue key and parameters, so the edge can say it in the user's language."""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    key = "error.domain"

    def __init__(self, message: str = "", *, key: str | None = None, **params: Any) -> None:
        super().__init__(message or (key or self.key))
        if key:
            self.key = key
        self.params = params


class IllegalTransition(DomainError):
    key = "error.illegal_transition"


class Forbidden(DomainError):
    key = "error.forbidden"


class NotFound(DomainError):
    key = "error.not_found"


class VersionConflict(DomainError):
    key = "error.conflict"


class StoreLocked(DomainError):
    key = "error.store_locked"


class FieldError(DomainError):
    """Bad input for one named field. ``field`` is the input id; the message key explains the rule."""

    key = "error.field"

    def __init__(self, field: str, key: str, **params: Any) -> None:
        super().__init__(f"{field}: {key}", key=key, **params)
        self.field = field


class ValidationFailed(DomainError):
    key = "error.validation"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors
