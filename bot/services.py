"""Everything a turn needs, built once per app by ``create_app`` (no module-level singletons)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.config import Config
from bot.events import EventDispatcher
from supervision.calendar import WorkingCalendar
from supervision.clock import Clock
from supervision.lifecycle import Deadlines
from supervision.ports import DocumentStore
from supervision.profile import Profile
from supervision.repository import AuditLog, CaseRepository
from supervision.roles import Actor, Directory


@dataclass
class Services:
    config: Config
    clock: Clock
    store: DocumentStore
    cases: CaseRepository
    audit: AuditLog
    directory: Directory
    events: EventDispatcher
    profiles: Mapping[str, Profile]
    proactive: Any = None               # bot.proactive.Proactive, set once the adapter exists
    people: Any = None                  # bot.people.People
    due_work: Any = None                # supervision.duework.DueWorkRunner
    leader: Any = None                  # supervision.ports.LeaderElection: who runs the scheduler
    downloads: Any = None               # bot.downloads.Downloads: signed links served at /downloads/{token}
    features: dict[str, Any] = field(default_factory=dict)   # use-case objects by feature name

    def profile(self, profile_id: str | None = None) -> Profile:
        return self.profiles[profile_id or self.config.default_profile]

    def calendar(self, profile: Profile | None = None) -> WorkingCalendar:
        return WorkingCalendar((profile or self.profile()).nation, self.config.closures)

    def deadlines(self, profile: Profile | None = None) -> Deadlines:
        profile = profile or self.profile()
        return Deadlines(profile, self.calendar(profile))

    def actor(self, user_id: str, name: str = "", email: str = "", aad_object_id: str = "") -> Actor:
        roles = self.directory.roles_for(user_id, email) | self.directory.roles_for(aad_object_id)
        return Actor(user_id=user_id, name=name, email=email, aad_object_id=aad_object_id, global_roles=roles)
