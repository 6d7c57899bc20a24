"""Procedure profiles: each partnership's rules as data (TOML), validated at load.

A preset says ``extends = "defaults"``; a partnership's own file may extend a preset and override
any key. An invalid file raises ``ProfileError`` naming the file, the key and the reason.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervision.calendar import Nation, WorkingCalendar

PRESET_DIR = Path(__file__).parent / "profiles"
PRESET_IDS = ("cheshire_west", "gwent", "norfolk", "bolton", "argyll_bute")
REQUESTER_KINDS = {"any_practitioner", "lead_professional", "safeguarding_supervisor", "team_manager"}
AGREEMENT_ROUTES = {"coordinator", "existing_multi_agency_process", "accountable_manager"}
INDEPENDENCE_RULES = {"not_in_attendee_line_management", "no_previous_involvement",
                      "not_requester_or_lead_professional", "not_an_invitee"}
LANGUAGES = {"en", "cy"}


class ProfileError(ValueError):
    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file, self.key, self.reason = file, key, reason


@dataclass(frozen=True)
class ModelSection:
    key: str
    title: str
    questions: tuple[str, ...]


@dataclass(frozen=True)
class ReflectiveModel:
    id: str
    name: str
    sections: tuple[ModelSection, ...]


@dataclass(frozen=True)
class RequestRules:
    who_may_request: frozenset[str]
    manager_agreement_first: bool
    agreement_route: str
    family_told_before_request: bool
    family_may_be_untold_with_reason: bool
    level_of_need: tuple[str, ...]
    required_fields: tuple[str, ...]
    max_child_age_years: int
    min_agencies: int


@dataclass(frozen=True)
class Timescales:
    agreement_to_session_working_days: int
    chronology_window_months: int
    chronology_due_working_days_before: int
    chronology_reminder_working_days_before_due: int
    session_pack_working_days_before: int
    pre_evaluation_working_days_before: int
    evaluation_reminder_working_days_before: int
    actions_within_working_days: int
    minutes_within_working_days: int
    follow_up_months: int
    action_reminder_working_days_before: int
    concern_escalation_working_days: int
    session_length_minutes: int
    office_hours_start: int
    office_hours_end: int
    request_decision_working_days: int = 5     # the coordinators' deadline to decide on a request


@dataclass(frozen=True)
class Facilitation:
    count: int
    different_agencies: bool
    lead_coordinator: bool
    independence: frozenset[str]


@dataclass(frozen=True)
class RecordRules:
    child_identifiers_allowed: bool
    share_pack_with_attendees: bool
    sections: tuple[str, ...]
    themes: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    id: str
    name: str
    process_name: str
    nation: Nation
    languages: tuple[str, ...]
    source: str
    request: RequestRules
    timescales: Timescales
    facilitation: Facilitation
    max_attendees: int
    chronology_merged_by: str
    record: RecordRules
    learning_goes_to: str
    tracker_readers: frozenset[str]
    immediate_risk_route: str
    complaints_first_to: str
    complaints_named_lead: str
    retention_years_after_closure: int
    model: ReflectiveModel

    def calendar(self, closures: tuple[Any, ...] = ()) -> WorkingCalendar:
        return WorkingCalendar(self.nation, closures)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _Reader:
    """Typed access to a merged TOML table that names file and key in every error."""

    def __init__(self, file: str, data: dict[str, Any]) -> None:
        self.file, self.data = file, data

    def _get(self, key: str) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ProfileError(self.file, key, "missing")
            node = node[part]
        return node

    def string(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise ProfileError(self.file, key, f"must be text, got {type(value).__name__}")
        return value

    def text(self, key: str) -> str:
        value = self.string(key)
        if not value.strip():
            raise ProfileError(self.file, key, "must not be empty")
        return value

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise ProfileError(self.file, key, f"must be true or false, got {value!r}")
        return value

    def integer(self, key: str, low: int = 0, high: int = 10_000) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProfileError(self.file, key, f"must be a whole number, got {value!r}")
        if not low <= value <= high:
            raise ProfileError(self.file, key, f"must be between {low} and {high}, got {value}")
        return value

    def strs(self, key: str, allowed: set[str] | None = None, nonempty: bool = True) -> tuple[str, ...]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ProfileError(self.file, key, "must be a list of text")
        if nonempty and not value:
            raise ProfileError(self.file, key, "must not be empty")
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise ProfileError(self.file, key, f"unknown value(s) {unknown}; allowed: {sorted(allowed)}")
        return tuple(value)

    def choice(self, key: str, allowed: set[str]) -> str:
        value = self.string(key)
        if value not in allowed:
            raise ProfileError(self.file, key, f"{value!r} is not one of {sorted(allowed)}")
        return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ProfileError(str(path), "(file)", "not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(str(path), "(syntax)", str(error)) from None


def _resolve(path: Path, search: tuple[Path, ...], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    data = _read_toml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ProfileError(str(path), "extends", "must be the id of another profile")
    if parent in seen:
        raise ProfileError(str(path), "extends", f"circular: {' -> '.join(seen + (parent,))}")
    for folder in search:
        candidate = folder / f"{parent}.toml"
        if candidate.exists() and candidate.resolve() != path.resolve():
            return _merge(_resolve(candidate, search, seen + (parent,)), data)
    raise ProfileError(str(path), "extends", f"no profile called {parent!r}")


def _build(file: str, data: dict[str, Any]) -> Profile:
    r = _Reader(file, data)
    sections_raw = r._get("model.sections")
    if not isinstance(sections_raw, list) or not sections_raw:
        raise ProfileError(file, "model.sections", "must list at least one section")
    sections = []
    for index, raw in enumerate(sections_raw):
        sr = _Reader(file, {"s": raw})
        key = f"model.sections[{index}]"
        try:
            sections.append(ModelSection(sr.text("s.key"), sr.text("s.title"), sr.strs("s.questions")))
        except ProfileError as error:
            raise ProfileError(file, error.key.replace("s.", key + ".", 1), error.reason) from None
    keys = [s.key for s in sections]
    if len(set(keys)) != len(keys):
        raise ProfileError(file, "model.sections", "section keys must be unique")
    facilitators = r.integer("facilitation.count", 1, 2)
    different = r.boolean("facilitation.different_agencies")
    if different and facilitators < 2:
        raise ProfileError(file, "facilitation.different_agencies", "needs facilitation.count = 2")
    start, end = r.integer("timescales.office_hours_start", 0, 23), r.integer("timescales.office_hours_end", 1, 24)
    if end <= start:
        raise ProfileError(file, "timescales.office_hours_end", "must be after office_hours_start")
    try:
        nation = Nation(r.string("nation"))
    except ValueError:
        raise ProfileError(file, "nation", f"must be one of {[n.value for n in Nation]}") from None
    return Profile(
        id=r.text("id"),
        name=r.text("name"),
        process_name=r.text("process_name"),
        nation=nation,
        languages=r.strs("languages", LANGUAGES),
        source=r.string("source"),
        request=RequestRules(
            who_may_request=frozenset(r.strs("request.who_may_request", REQUESTER_KINDS)),
            manager_agreement_first=r.boolean("request.manager_agreement_first"),
            agreement_route=r.choice("request.agreement_route", AGREEMENT_ROUTES),
            family_told_before_request=r.boolean("request.family_told_before_request"),
            family_may_be_untold_with_reason=r.boolean("request.family_may_be_untold_with_reason"),
            level_of_need=r.strs("request.level_of_need"),
            required_fields=r.strs("request.required_fields", nonempty=False),
            max_child_age_years=r.integer("request.max_child_age_years", 1, 25),
            min_agencies=r.integer("request.min_agencies", 1, 30),
        ),
        timescales=Timescales(
            agreement_to_session_working_days=r.integer("timescales.agreement_to_session_working_days", 1, 120),
            chronology_window_months=r.integer("timescales.chronology_window_months", 1, 120),
            chronology_due_working_days_before=r.integer("timescales.chronology_due_working_days_before", 0, 60),
            chronology_reminder_working_days_before_due=r.integer("timescales.chronology_reminder_working_days_before_due", 0, 30),
            session_pack_working_days_before=r.integer("timescales.session_pack_working_days_before", 0, 30),
            pre_evaluation_working_days_before=r.integer("timescales.pre_evaluation_working_days_before", 0, 30),
            evaluation_reminder_working_days_before=r.integer("timescales.evaluation_reminder_working_days_before", 0, 30),
            actions_within_working_days=r.integer("timescales.actions_within_working_days", 0, 60),
            minutes_within_working_days=r.integer("timescales.minutes_within_working_days", 0, 120),
            follow_up_months=r.integer("timescales.follow_up_months", 1, 36),
            action_reminder_working_days_before=r.integer("timescales.action_reminder_working_days_before", 0, 30),
            concern_escalation_working_days=r.integer("timescales.concern_escalation_working_days", 1, 60),
            session_length_minutes=r.integer("timescales.session_length_minutes", 15, 480),
            office_hours_start=start,
            office_hours_end=end,
            request_decision_working_days=r.integer("timescales.request_decision_working_days", 1, 60),
        ),
        facilitation=Facilitation(
            count=facilitators,
            different_agencies=different,
            lead_coordinator=r.boolean("facilitation.lead_coordinator"),
            independence=frozenset(r.strs("facilitation.independence", INDEPENDENCE_RULES, nonempty=False)),
        ),
        max_attendees=r.integer("attendance.max_attendees", 2, 100),
        chronology_merged_by=r.choice("chronology.merged_by", {"bot", "social_worker"}),
        record=RecordRules(
            child_identifiers_allowed=r.boolean("record.child_identifiers_allowed"),
            share_pack_with_attendees=r.boolean("record.share_pack_with_attendees"),
            sections=r.strs("record.sections"),
            themes=r.strs("record.themes"),
        ),
        learning_goes_to=r.text("learning.goes_to"),
        tracker_readers=frozenset(r.strs("learning.tracker_readers")),
        immediate_risk_route=r.text("protection.immediate_risk_route"),
        complaints_first_to=r.text("complaints.first_to"),
        complaints_named_lead=r.text("complaints.named_lead"),
        retention_years_after_closure=r.integer("retention.years_after_closure", 1, 100),
        model=ReflectiveModel(r.text("model.id"), r.text("model.name"), tuple(sections)),
    )


def load_profile(path: Path | str, search: tuple[Path, ...] = ()) -> Profile:
    """Load one profile file, resolving ``extends`` in its own folder, then ``search``, then the presets."""
    path = Path(path)
    folders = (path.parent, *search, PRESET_DIR)
    return _build(str(path), _resolve(path, folders))


def load_preset(profile_id: str) -> Profile:
    return load_profile(PRESET_DIR / f"{profile_id}.toml")


def load_profiles(extra_files: tuple[Path, ...] = ()) -> dict[str, Profile]:
    """All five presets plus any partnership files; a partnership file may replace a preset by id."""
    profiles = {pid: load_preset(pid) for pid in PRESET_IDS}
    for path in extra_files:
        profile = load_profile(path)
        profiles[profile.id] = profile
    return profiles
