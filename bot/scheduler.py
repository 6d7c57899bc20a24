"""The durable scheduler: runs due work in the background and as a one-shot command.

* In the bot: ``install_scheduler(services)`` (called by ``create_app``) puts ``scheduler.start`` in
  ``services.features``; the app's cleanup context starts it and stops it. Every
  ``SCHEDULER_INTERVAL_SECONDS`` (0 = off) it runs ``services.due_work.run_due()`` if this instance
  holds the scheduler lease (``services.leader``, a LeaderElection; without one it just runs). It
  rebuilds the due index when it becomes leader and every ``REBUILD_EVERY``.
* From cron or an Azure timer: ``python -m bot run-due [--now ISO-8601] [--rebuild]`` runs one pass.
* Delivery problems (403/404, unconfirmed sends) are reported to the case's facilitators.

Nothing here decides *what* is due: features register sources and handlers on the DueWorkRunner.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botbuilder.core import MessageFactory

from supervision.catalogue import Catalogue
from supervision.clock import FixedClock, as_utc
from supervision.duework import Delivery, DeliveryProblem, DueWorkRunner, RunReport

if TYPE_CHECKING:
    from bot.config import Config
    from bot.services import Services

log = logging.getLogger(__name__)
LEASE_NAME = "scheduler"
REBUILD_EVERY = 6 * 3600.0
Stop = Callable[[], Awaitable[None]]


class Scheduler:
    def __init__(self, runner: DueWorkRunner, *, interval: float, leader: Any = None,
                 lease_seconds: int | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.runner, self.interval, self.leader = runner, interval, leader
        self.lease_seconds = lease_seconds or int(min(60, max(15, interval * 3)))
        self._now = monotonic
        self.lease: Any = None
        self._rebuilt_at: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.passes = 0
        self.last_report: RunReport | None = None

    async def holds_lease(self) -> bool:
        if self.leader is None:
            return True
        if self.lease is not None:
            if await self.lease.renew():
                return True
            log.warning("scheduler lease lost")
            self.lease, self._rebuilt_at = None, None
        self.lease = await self.leader.try_acquire(LEASE_NAME, self.lease_seconds)
        if self.lease is not None:
            log.info("this instance now runs the scheduler")
        return self.lease is not None

    async def tick(self, now: datetime | None = None) -> RunReport | None:
        """One pass if this instance leads: re-index when needed, then run what is due."""
        if not await self.holds_lease():
            return None
        if self._rebuilt_at is None or self._now() - self._rebuilt_at > REBUILD_EVERY:
            await self.runner.rebuild_index()
            self._rebuilt_at = self._now()
        report = await self.runner.run_due(now)
        self.passes += 1
        self.last_report = report
        if report.ran or report.failed or report.problems:
            log.info("due work: ran %d, failed %d, expired %d, delivery problems %d", len(report.ran),
                     len(report.failed), len(report.expired), len(report.problems))
        return report

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep running: the next pass retries
                log.error("scheduler pass failed: %s", type(error).__name__)
            await asyncio.sleep(self.interval)

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.lease_seconds / 3))
            try:
                if self.lease is not None and not await self.lease.renew():
                    log.warning("scheduler lease lost")
                    self.lease, self._rebuilt_at = None, None
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.error("scheduler lease renewal failed: %s", type(error).__name__)

    async def start(self) -> Stop:
        self._tasks = [asyncio.create_task(self._loop(), name="scheduler")]
        if self.leader is not None:
            self._tasks.append(asyncio.create_task(self._keep_lease(), name="scheduler-lease"))
        return self.stop

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        if self.lease is not None:
            try:
                await self.lease.release()
            except Exception as error:
                log.warning("releasing the scheduler lease failed: %s", type(error).__name__)
            self.lease = None


async def _nothing() -> None:
    return None


def install_scheduler(services: Services) -> None:
    """Wire the scheduler into the app: ``services.features["scheduler.start"]`` and problem reports."""

    async def start() -> Stop:
        interval = services.config.scheduler_interval_seconds
        if not interval or services.due_work is None:
            return _nothing
        scheduler = Scheduler(services.due_work, interval=interval, leader=getattr(services, "leader", None))
        services.features["scheduler"] = scheduler
        return await scheduler.start()

    services.features["scheduler.start"] = start
    if services.proactive is not None and not getattr(services.proactive, "default_service_url", ""):
        services.proactive.default_service_url = services.config.coordinator_service_url
    if services.due_work is not None:
        services.due_work.on_problem(lambda problem: report_problem(services, problem))


async def report_problem(services: Services, problem: DeliveryProblem) -> None:
    """Tell the case's facilitators that something could not be delivered (or not confirmed)."""
    await services.audit.record(actor="scheduler", action="delivery.problem", case_id=problem.case_id,
                                what=f"{problem.kind} {problem.status.value} {problem.http_status or ''}".strip(),
                                why=problem.reason, allowed=False)
    case = await services.cases.get(problem.case_id)
    if case is None:
        return
    t = Catalogue.for_language(services.config.language)
    what = t(f"due.kinds.{problem.kind}") if t.has(f"due.kinds.{problem.kind}") else problem.kind
    if problem.status == Delivery.UNCONFIRMED:
        reason = t("delivery.unconfirmed")
    elif problem.http_status == 403:
        reason = t("delivery.forbidden")
    elif problem.http_status == 404:
        reason = t("delivery.not_found")
    else:
        reason = t("delivery.unknown_user") if problem.reason == "unknown_user" else t("delivery.other")
    message = t("delivery.report", what=what, who=problem.recipient or t("delivery.someone"),
                reference=case.reference, reason=reason)
    facilitators = sorted(case.facilitators, key=lambda f: not f.lead)
    for facilitator in facilitators:
        user_id = facilitator.user_id
        if not user_id and services.people is not None and facilitator.email:
            known = await services.people.by_email(facilitator.email)
            user_id = known.user_id if known else ""
        if not user_id:
            continue
        try:
            await services.proactive.send_to_user(user_id, MessageFactory.text(message))
        except Exception as error:
            log.error("could not tell a facilitator of case %s about a delivery problem: %s",
                      problem.case_id, type(error).__name__)


# --- python -m bot run-due ------------------------------------------------------------------------
def parse_now(value: str | None) -> datetime | None:
    if not value:
        return None
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("--now needs a time zone, e.g. 2026-01-05T09:00:00Z")
    return as_utc(when)


async def run_due_once(config: Config, now: datetime | None = None, *, rebuild: bool = False,
                       store: Any = None) -> RunReport | None:
    """One pass outside the server (cron, Azure timer, tests). None: another instance leads."""
    from bot.app import PARTS, create_app
    from supervision.clock import SystemClock

    clock = FixedClock(now) if now is not None else SystemClock()
    app = create_app(config, clock=clock, store=store, start_background=False)
    services = app[PARTS].services
    try:
        leader = getattr(services, "leader", None)
        lease = await leader.try_acquire(LEASE_NAME, 60) if leader is not None else None
        if leader is not None and lease is None:
            return None
        try:
            if rebuild or not await services.due_work.index_built():
                await services.due_work.rebuild_index()
            return await services.due_work.run_due(now)  # type: ignore[no-any-return]
        finally:
            if lease is not None:
                await lease.release()
    finally:
        close_adapter = getattr(app[PARTS].adapter, "close", None)     # the pooled HTTP session
        if close_adapter is not None:
            await close_adapter()
        close = getattr(services.store, "close", None)
        if close is not None and store is None:
            await close()


def run_due_command(config: Config, now_text: str | None, rebuild: bool = False) -> int:
    try:
        now = parse_now(now_text)
    except ValueError as error:
        print(f"run-due: {error}")
        return 2
    report = asyncio.run(run_due_once(config, now, rebuild=rebuild))
    if report is None:
        print("run-due: another instance holds the scheduler lease; nothing done")
        return 0
    print(f"run-due: ran {len(report.ran)}, skipped {report.skipped}, failed {len(report.failed)}, "
          f"expired {len(report.expired)}, delivery problems {len(report.problems)}, "
          f"cases read {report.cases_read}")
    return 1 if report.failed else 0
