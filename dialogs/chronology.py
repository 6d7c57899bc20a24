"""Chronologies in chat.

* When a session is scheduled (``session.scheduled``, also ``session.rescheduled``), every invitee
  who has not declined is asked, in personal chat and proactively, for their agency's chronology,
  once per session.
* ``chronology`` (command) lists the user's chronologies to write; facilitators and other members see
  the merged chronology.
* Card verbs (the explicit table is ``verbs()``): open, add, edit, save, remove, submit, reopen,
  upload, view (merged), merge (the social worker's confirmation where the profile says so).
* A file sent in chat after **Upload a file** is fetched (bot/files.py), read (documents/chronology.py)
  and imported: valid rows kept, bad rows reported by row and column.
* Reminders to agencies that have not submitted, the profile's working days before the due date and
  on it, through ``services.due_work`` (idempotency keys per session, due date, phase and person).
* Downloads (bot/downloads.py): the templates, the timeline picture and the merged document.

Use cases (supervision/chronology.py) check roles and audit; this module only renders and sends.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from botbuilder.dialogs import Dialog

from bot.downloads import DownloadRequest, FileBody
from bot.files import FILES_RECEIVED, FileTooLarge, FileUnavailable, fetch, incoming_files
from bot.proactive import NoConversation
from bot.routing import Router
from bot.services import Services
from bot.turn import Turn, card_activity
from cards.actions import CardPayloadError
from cards.chronology import (
    PAGE_SIZE,
    TemplateLinks,
    ask_card,
    cases_card,
    chronology_card,
    import_notice,
    merged_card,
    reminder_card,
    upload_prompt_card,
)
from documents.chronology import (
    CSV_TYPE,
    DOCX_TYPE,
    MAX_FILE_BYTES,
    PNG_TYPE,
    TEMPLATE_WORDS,
    XLSX_TYPE,
    chronology_docx,
    read_table,
    template_csv,
    template_headings,
    template_xlsx,
    timeline_png,
)
from documents.chronology import (
    WORDS as DOCUMENT_WORDS,
)
from supervision.catalogue import Catalogue
from supervision.chronology import (
    OPEN_FOR_CHRONOLOGY,
    ChronologyDates,
    ChronologyService,
    MergedChronology,
    agencies_of,
    chronology_dates,
)
from supervision.clock import format_uk_date, uk_datetime
from supervision.duework import DueWork, PermanentDeliveryFailure, RunContext
from supervision.errors import DomainError, Forbidden, ValidationFailed
from supervision.models import Case, CaseState, InviteStatus, Role
from supervision.ports import DomainEvent
from supervision.roles import Action, Actor, case_roles, may

log = logging.getLogger(__name__)
Handler = Callable[[Turn], Awaitable[None]]
TEMPLATE_TTL = timedelta(days=7)
VIEW_TTL = timedelta(hours=12)
REMIND_KIND = "chronology.remind"
SCHEDULED_STATES = (CaseState.SCHEDULED, CaseState.PRE_SESSION)


class BadPayload(DomainError):
    key = "error.card_payload"


def _id(turn: Turn, name: str) -> str:
    try:
        assert turn.action is not None
        return turn.action.id(name)
    except (CardPayloadError, AssertionError):
        raise BadPayload(f"missing {name}") from None


def _agency(turn: Turn) -> str:
    agency = turn.action.input("agency") if turn.action else ""
    if not agency:
        raise BadPayload("missing agency")
    return agency


def _page(turn: Turn) -> int:
    raw = turn.action.input("page") if turn.action else ""
    return int(raw) if raw.isdigit() else 0


def _form(turn: Turn) -> dict[str, Any]:
    inputs = dict(turn.action.inputs) if turn.action else {}
    return {k: inputs.get(k, "") for k in ("when", "what", "impact", "kind", "source")}


FIELD_LABELS = {"when": "chronology.input_when", "what": "chronology.input_what", "impact": "chronology.input_impact",
                "kind": "chronology.input_kind", "source": "chronology.input_source"}


def field_errors(t: Catalogue, failed: ValidationFailed) -> list[str]:
    """One line per bad input, naming it by its label on the card."""
    lines = []
    for error in failed.errors:
        label = t(FIELD_LABELS[error.field]) if error.field in FIELD_LABELS else error.field
        lines.append(t(error.key, **{**error.params, "field": label}))
    return lines


def build_service(services: Services) -> ChronologyService:
    existing = services.features.get("chronology")
    if isinstance(existing, ChronologyService):
        return existing

    def deadlines_for(case: Case) -> Any:
        return services.deadlines(services.profile(case.profile_id))

    service = ChronologyService(services.store, services.cases, services.audit, services.clock, deadlines_for,
                                merged_by_for=lambda case: services.profile(case.profile_id).chronology_merged_by)
    services.features["chronology"] = service
    return service


def scheduled_at(case: Case) -> datetime | None:
    """When the current session date was set (the last schedule or reschedule)."""
    for transition in reversed(case.history):
        if transition.event in ("schedule", "reschedule"):
            return transition.at
    return None


class ChronologyFlow:
    def __init__(self, services: Services, chronologies: ChronologyService) -> None:
        self.services, self.chronologies = services, chronologies

    # --- plumbing --------------------------------------------------------------------------------
    def catalogue(self) -> Catalogue:
        return Catalogue.for_language(self.services.config.language)

    def dates(self, case: Case) -> ChronologyDates:
        return chronology_dates(case, self.services.deadlines(self.services.profile(case.profile_id)))

    async def templates(self, user_id: str, case_id: str, agency: str) -> TemplateLinks:
        downloads = self.services.downloads
        return TemplateLinks(
            csv=await downloads.link(user_id=user_id, case_id=case_id, kind="chronology.template.csv", arg=agency,
                                     ttl=TEMPLATE_TTL),
            xlsx=await downloads.link(user_id=user_id, case_id=case_id, kind="chronology.template.xlsx",
                                      arg=agency, ttl=TEMPLATE_TTL))

    async def merged_links(self, user_id: str, case: Case, ttl: timedelta = VIEW_TTL) -> tuple[str, str]:
        downloads = self.services.downloads
        image = await downloads.link(user_id=user_id, case_id=case.id, kind="chronology.png", ttl=ttl)
        document = await downloads.link(user_id=user_id, case_id=case.id, kind="chronology.docx", ttl=ttl)
        return image, document

    async def user_id_for(self, user_id: str, email: str) -> str:
        if user_id:
            return user_id
        if not email or self.services.people is None:
            return ""
        known = await self.services.people.by_email(email)
        return known.user_id if known else ""

    async def send_to_user(self, user_id: str, card: dict[str, Any], summary: str = "") -> bool:
        if not user_id or self.services.proactive is None:
            return False
        try:
            await self.services.proactive.send_to_user(user_id, card_activity(card, summary))
            return True
        except Exception as error:  # the person may never have talked to the bot
            log.warning("chronology message not delivered: %s", type(error).__name__)
            return False

    async def answer(self, turn: Turn, card: dict[str, Any], summary: str = "") -> None:
        """Replace the card the user pressed a button on; a new card when there is none to replace."""
        reply_to = getattr(turn.activity, "reply_to_id", None)
        if reply_to and turn.action is not None:
            try:
                await turn.update_card(reply_to, card)
                return
            except Exception as error:  # e.g. the original message is gone
                log.info("card update failed, sending anew: %s", type(error).__name__)
        await turn.send_card(card, summary)

    async def show(self, turn: Turn, case_id: str, agency: str, *, editing_id: str = "",
                   values: dict[str, Any] | None = None, errors: list[str] | None = None, notice: str = "",
                   new_message: bool = False, page: int | None = None, focus_id: str = "") -> None:
        case, chronology = await self.chronologies.open(turn.actor, case_id, agency)
        editing = chronology.entry(editing_id) if editing_id else None
        ordered = [e.id for e in sorted(chronology.entries, key=lambda e: (e.when.sort_date, e.id))]
        focus = editing_id or focus_id
        if page is None:       # the page of the entry being edited or just added, else the page asked for
            page = ordered.index(focus) // PAGE_SIZE if focus in ordered else _page(turn)
        card = chronology_card(turn.t, case, chronology, self.dates(case),
                               await self.templates(turn.actor.user_id, case.id, chronology.agency),
                               editing=editing, values=values, errors=errors, notice=notice, page=page)
        if new_message:
            await turn.send_card(card, turn.t("chronology.title", agency=chronology.agency))
        else:
            await self.answer(turn, card, turn.t("chronology.title", agency=chronology.agency))

    @staticmethod
    def is_lead_professional(actor: Actor, case: Case) -> bool:
        return Role.LEAD_PROFESSIONAL in case_roles(actor, case)

    async def _personal(self, turn: Turn) -> bool:
        if not turn.is_personal:
            await turn.send_text(turn.t("command.not_here", command="chronology"))
            return False
        return True

    # --- the command -------------------------------------------------------------------------------
    async def mine(self, turn: Turn) -> None:
        if not await self._personal(turn):
            return
        rows: list[tuple[Case, str, str]] = []
        viewable: list[Case] = []
        seen: set[str] = set()
        for key in {k for k in (turn.actor.user_id, turn.actor.email, turn.actor.aad_object_id) if k}:
            for case in await self.services.cases.for_user(key):
                if case.id in seen or case.state not in OPEN_FOR_CHRONOLOGY:
                    continue
                seen.add(case.id)
                for agency in agencies_of(turn.actor, case):
                    _, chronology = await self.chronologies.open(turn.actor, case.id, agency)
                    dates = self.dates(case)
                    if chronology.submitted:
                        status = turn.t("chronology.mine_status_submitted", count=len(chronology.entries))
                    else:
                        status = turn.t("chronology.mine_status_draft", count=len(chronology.entries),
                                        due=format_uk_date(dates.due) if dates.due else "-")
                    rows.append((case, agency, status))
                if may(turn.actor, Action.VIEW_CHRONOLOGY, case) and case.state in SCHEDULED_STATES:
                    viewable.append(case)
        await turn.send_card(cases_card(turn.t, rows), turn.t("chronology.mine_title"))
        for case in viewable:
            # facilitators and coordinators (no agency of their own) and the lead professional (the social
            # worker who merges, where the profile says so) get the merged view too
            if not agencies_of(turn.actor, case) or self.is_lead_professional(turn.actor, case):
                await self.send_merged(turn, case.id, new_message=True)

    # --- verbs --------------------------------------------------------------------------------------
    async def open(self, turn: Turn) -> None:
        await self.show(turn, _id(turn, "case_id"), _agency(turn), new_message=not turn.activity.reply_to_id)

    async def add(self, turn: Turn) -> None:
        case_id, agency, values = _id(turn, "case_id"), _agency(turn), _form(turn)
        try:
            entry = await self.chronologies.add_entry(turn.actor, case_id, agency, values)
        except ValidationFailed as failed:
            await self.show(turn, case_id, agency, values=values,
                            errors=field_errors(turn.t, failed))
            return
        await self.show(turn, case_id, agency, notice=turn.t("chronology.added", when=entry.when.marked()),
                        focus_id=entry.id)

    async def edit(self, turn: Turn) -> None:
        await self.show(turn, _id(turn, "case_id"), _agency(turn), editing_id=_id(turn, "item_id"))

    async def save(self, turn: Turn) -> None:
        case_id, agency, entry_id, values = _id(turn, "case_id"), _agency(turn), _id(turn, "item_id"), _form(turn)
        try:
            entry = await self.chronologies.edit_entry(turn.actor, case_id, agency, entry_id, values)
        except ValidationFailed as failed:
            await self.show(turn, case_id, agency, editing_id=entry_id, values=values,
                            errors=field_errors(turn.t, failed))
            return
        await self.show(turn, case_id, agency, notice=turn.t("chronology.saved", when=entry.when.marked()),
                        focus_id=entry.id)

    async def remove(self, turn: Turn) -> None:
        case_id, agency = _id(turn, "case_id"), _agency(turn)
        await self.chronologies.remove_entry(turn.actor, case_id, agency, _id(turn, "item_id"))
        await self.show(turn, case_id, agency, notice=turn.t("chronology.removed"))

    async def submit(self, turn: Turn) -> None:
        case_id, agency = _id(turn, "case_id"), _agency(turn)
        chronology = await self.chronologies.submit(turn.actor, case_id, agency)
        await self.show(turn, case_id, agency, notice=turn.t("chronology.submitted", agency=agency,
                                                             count=len(chronology.entries)))
        await self.tell_social_worker_if_complete(case_id)

    async def tell_social_worker_if_complete(self, case_id: str) -> None:
        """Where the social worker merges (Gwent), the lead professional is told once every agency
        asked has submitted, with the merged chronology to check and confirm."""
        case = await self.services.cases.require(case_id)
        if self.services.profile(case.profile_id).chronology_merged_by != "social_worker":
            return
        if await self.chronologies.missing_agencies(case):
            return
        lead = case.request.lead_professional
        user_id = await self.user_id_for(lead.user_id, lead.email)
        if not user_id or not await self.chronologies.mark_asked(case, f"merge:{user_id}"):
            return
        t = self.catalogue()
        merged = await self.chronologies.merge_for(case)
        image, document = await self.merged_links(user_id, case)
        card = merged_card(t, case, merged, image, document, may_confirm=True)
        card["body"].insert(1, {"type": "TextBlock", "text": t("chronology.merge_ready"), "wrap": True,
                                "weight": "Bolder"})
        if await self.send_to_user(user_id, card, t("chronology.merged_title", reference=case.reference)):
            await self.services.audit.record(actor=user_id, action="chronology.view", case_id=case.id,
                                             what="merged chronology", why="all agencies submitted: to merge")
        else:
            await self.chronologies.unmark_asked(case, f"merge:{user_id}")

    async def reopen(self, turn: Turn) -> None:
        case_id, agency = _id(turn, "case_id"), _agency(turn)
        await self.chronologies.reopen(turn.actor, case_id, agency)
        await self.show(turn, case_id, agency, notice=turn.t("chronology.reopened", agency=agency))

    async def upload(self, turn: Turn) -> None:
        if not await self._personal(turn):
            return
        case_id, agency = _id(turn, "case_id"), _agency(turn)
        await self.chronologies.expect_upload(turn.actor, case_id, agency)
        case = await self.services.cases.require(case_id)
        await turn.send_card(upload_prompt_card(turn.t, case, agency,
                                                await self.templates(turn.actor.user_id, case_id, agency)),
                             turn.t("chronology.upload_title", agency=agency))

    async def view(self, turn: Turn) -> None:
        await self.send_merged(turn, _id(turn, "case_id"), new_message=True)

    async def confirm_merge(self, turn: Turn) -> None:
        case_id = _id(turn, "case_id")
        await self.chronologies.confirm_merge(turn.actor, case_id)
        await turn.send_text(turn.t("chronology.merge_confirmed"))
        await self.send_merged(turn, case_id, new_message=True)

    async def send_merged(self, turn: Turn, case_id: str, *, new_message: bool) -> None:
        merged = await self.chronologies.merged(turn.actor, case_id)
        case = await self.services.cases.require(case_id)
        image, document = await self.merged_links(turn.actor.user_id, case)
        social_worker = self.is_lead_professional(turn.actor, case)
        roles = case_roles(turn.actor, case)
        card = merged_card(turn.t, case, merged, image, document, may_confirm=social_worker,
                           pack_button=bool(roles & {Role.FACILITATOR, Role.COORDINATOR})
                           and case.state in SCHEDULED_STATES)
        summary = turn.t("chronology.merged_title", reference=case.reference)
        if new_message:
            await turn.send_card(card, summary)
        else:
            await self.answer(turn, card, summary)

    # --- files -------------------------------------------------------------------------------------
    async def on_files(self, turn: Turn) -> None:
        files = incoming_files(turn.activity)
        if not turn.is_personal or not files:
            return
        pending = await self.chronologies.pending_upload(turn.actor)
        if pending is None:
            await turn.send_text(turn.t("chronology.upload_unexpected"))
            return
        if len(files) > 1:
            await turn.send_text(turn.t("chronology.upload_one_file"))
            return
        case_id, agency = pending
        file = files[0]
        await turn.typing()         # fetching and reading a spreadsheet takes a moment: show we are on it
        try:
            content = await fetch(file, max_bytes=MAX_FILE_BYTES)
        except FileTooLarge:
            await turn.send_text(turn.t("chronology.error_file_large", limit=MAX_FILE_BYTES // 1024))
            return
        except FileUnavailable:
            await turn.send_text(turn.t("chronology.upload_failed", name=file.name or "-"))
            return
        words = self.template_words()
        rows = await asyncio.to_thread(read_table, content, file.name, file.file_type, words)
        result = await self.chronologies.import_rows(turn.actor, case_id, agency, rows, filename=file.name,
                                                     column_names=template_headings(words))
        await self.chronologies.clear_upload(turn.actor)
        notice, problems = import_notice(turn.t, result, file.name)
        await self.show(turn, case_id, agency, notice=notice, errors=problems or None, new_message=True)

    # --- asking when a session is scheduled ------------------------------------------------------------
    async def on_scheduled(self, event: DomainEvent) -> None:
        case = await self.services.cases.get(event.case_id)
        if case is None or case.session.starts_at is None or case.state not in SCHEDULED_STATES:
            return
        t = self.catalogue()
        dates = self.dates(case)
        social_worker = self.services.profile(case.profile_id).chronology_merged_by == "social_worker"
        unreachable = 0
        for invitee in case.request.invitees:
            if invitee.status == InviteStatus.DECLINED or not invitee.agency:
                continue
            user_id = await self.user_id_for(invitee.user_id, invitee.email)
            if not user_id:
                unreachable += 1
                continue
            if not await self.chronologies.mark_asked(case, f"ask:{user_id}"):
                continue
            card = ask_card(t, case, invitee.agency, dates, await self.templates(user_id, case.id, invitee.agency),
                            merged_by_social_worker=social_worker)
            if not await self.send_to_user(user_id, card, t("chronology.ask_title")):
                await self.chronologies.unmark_asked(case, f"ask:{user_id}")
        if unreachable:
            log.info("chronology asks: %d invitees not reachable in Teams for case %s", unreachable, case.id)

    # --- reminders --------------------------------------------------------------------------------------
    def due_work(self, case: Case) -> list[DueWork]:
        if case.state not in SCHEDULED_STATES or case.session.starts_at is None \
                or case.profile_id not in self.services.profiles:
            return []
        profile = self.services.profile(case.profile_id)
        dates = self.dates(case)
        if dates.due is None:
            return []
        since = scheduled_at(case)
        hour = profile.timescales.office_hours_start
        work = []
        phases = [("before", dates.reminder), ("due", dates.due)]
        for phase, day in phases:
            if day is None or (phase == "before" and day >= dates.due):
                continue
            due_at = uk_datetime(day, hour)
            if since is not None and due_at < since:
                continue          # the date was set after this reminder's time: the ask covers it
            work.append(DueWork(key=f"{case.id}:{REMIND_KIND}:{case.session.number}:{dates.due.isoformat()}:{phase}",
                                kind=REMIND_KIND, case_id=case.id, due_at=due_at,
                                data={"phase": phase, "due": dates.due.isoformat()}))
        return work

    async def remind(self, work: DueWork, run: RunContext) -> None:
        case = await self.services.cases.get(work.case_id)
        if case is None or case.state not in SCHEDULED_STATES:
            return
        dates = self.dates(case)
        if dates.due is None or dates.due.isoformat() != work.data.get("due"):
            return                    # rescheduled since: the new dates have their own keys
        t = self.catalogue()
        missing = set(await self.chronologies.missing_agencies(case))
        for invitee in case.request.invitees:
            if invitee.agency not in missing or invitee.status == InviteStatus.DECLINED:
                continue
            user_id = await self.user_id_for(invitee.user_id, invitee.email)
            card = reminder_card(t, case, invitee.agency, dates, on_due_day=work.data["phase"] == "due", late=run.late)
            # once per person across retries and restarts (the runner's send ledger)
            await run.once(f"to:{(user_id or invitee.email).lower()}",
                           self.sender(user_id, card, t("chronology.reminder_title")),
                           recipient=f"{invitee.name} ({invitee.agency})")

    def sender(self, user_id: str, card: dict[str, Any], summary: str) -> Callable[[], Awaitable[str]]:
        """A send for the due-work runner: the activity id, or PermanentDeliveryFailure when the
        person cannot be reached in Teams (reported to the facilitator by the runner)."""

        async def send() -> str:
            if not user_id or self.services.proactive is None:
                raise PermanentDeliveryFailure("no Teams identity known for this person")
            try:
                return str(await self.services.proactive.send_to_user(user_id, card_activity(card, summary)))
            except NoConversation:
                raise PermanentDeliveryFailure("the bot has no conversation with this person") from None

        return send

    # --- downloads --------------------------------------------------------------------------------------
    async def _own_agency(self, request: DownloadRequest) -> str:
        agencies = await self.chronologies.my_agencies(request.actor, request.case_id)
        if request.arg not in agencies:
            raise Forbidden("not of that agency", key="chronology.error_not_your_agency", agency=request.arg)
        return request.arg

    def template_words(self) -> dict[str, str]:
        """The words of the upload templates, from the catalogue ([chronology.template]); their column
        headings are accepted by the upload besides the English ones."""
        t = self.catalogue()
        return {key: t(f"chronology.template.{key}") for key in TEMPLATE_WORDS}

    async def template_xlsx(self, request: DownloadRequest) -> FileBody:
        agency = await self._own_agency(request)
        words = self.template_words()
        return FileBody("chronology-template.xlsx", XLSX_TYPE,
                        await asyncio.to_thread(partial(template_xlsx, agency, words=words)))

    async def template_csv(self, request: DownloadRequest) -> FileBody:
        await self._own_agency(request)
        return FileBody("chronology-template.csv", CSV_TYPE, template_csv(self.template_words()))

    async def _merged_for_download(self, request: DownloadRequest, why: str) -> MergedChronology:
        return await self.chronologies.merged(request.actor, request.case_id, why=why)

    def document_words(self) -> dict[str, str]:
        """The words of the picture and the document, from the catalogue ([chronology.document])."""
        t = self.catalogue()
        return {key: t(f"chronology.document.{key}") for key in DOCUMENT_WORDS}

    async def picture(self, request: DownloadRequest) -> FileBody:
        merged = await self._merged_for_download(request, "timeline picture")
        drawing = await asyncio.to_thread(partial(timeline_png, merged, title=merged.reference,
                                                  words=self.document_words()))
        return FileBody(f"{merged.reference}-timeline.png", PNG_TYPE, drawing.png, inline=True)

    async def document(self, request: DownloadRequest) -> FileBody:
        merged = await self._merged_for_download(request, "merged chronology document")
        case = await self.services.cases.require(request.case_id)
        partnership = self.services.profile(case.profile_id).name

        words = self.document_words()

        def render() -> bytes:
            drawing = timeline_png(merged, title=merged.reference, words=words)
            return chronology_docx(merged, partnership=partnership, picture=drawing.png, words=words)

        return FileBody(f"{merged.reference}-chronology.docx", DOCX_TYPE, await asyncio.to_thread(render))


def verbs(flow: ChronologyFlow) -> dict[str, Handler]:
    return {
        "chronology.open": flow.open,
        "chronology.add": flow.add,
        "chronology.edit": flow.edit,
        "chronology.save": flow.save,
        "chronology.remove": flow.remove,
        "chronology.submit": flow.submit,
        "chronology.reopen": flow.reopen,
        "chronology.upload": flow.upload,
        "chronology.view": flow.view,
        "chronology.merge": flow.confirm_merge,
    }


def register(router: Router, services: Services) -> list[Dialog]:
    flow = ChronologyFlow(services, build_service(services))
    services.features["chronology.flow"] = flow
    router.command("chronology", flow.mine, aliases=("my chronologies", "chronologies"))
    for verb, handler in verbs(flow).items():
        router.verb(verb, handler)
    router.event(FILES_RECEIVED, flow.on_files)
    services.events.on("session.scheduled", flow.on_scheduled)
    services.events.on("session.rescheduled", flow.on_scheduled)
    if services.due_work is not None:
        services.due_work.add_source(flow.due_work)
        services.due_work.on(REMIND_KIND, flow.remind)
    if services.downloads is not None:
        services.downloads.register("chronology.template.xlsx", flow.template_xlsx)
        services.downloads.register("chronology.template.csv", flow.template_csv)
        services.downloads.register("chronology.png", flow.picture)
        services.downloads.register("chronology.docx", flow.document)
    return []
