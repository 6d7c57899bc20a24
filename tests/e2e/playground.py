"""End-to-end stack: the bot as a subprocess, the Microsoft 365 Agents Playground (0.2.28) in front of
it, a recording connector proxy between them, and a Python client for the Playground's HTTP API.

What was found by experiment (Playground 0.2.28, msteams channel, built-in config):

* ``GET /_internal/v1/testConfig`` lists the tenant, the bot (``00000000-...-00000000000011``,
  "Test Bot"), the current user (Alex Wilber, ``user-id-0``) and five more users ``user-id-1`` ..
  ``user-id-5``; the personal chat and the group chat get a random id at every start; the team is
  ``team-id`` and its **General channel's conversation id is ``team-id``** ("My Team - General").
* Speaking: ``POST /_conversation/v1/conversations/{id}/messages`` ``{from:{id}, text, textFormat}``.
  The ``from.id`` is only checked for membership (else 400 ``UserNotFound``): the activity the bot
  gets is always **from the current user, Alex** (``user-id-0``). So ``PlaygroundClient.say`` types
  through that API for Alex (exactly what the page does; the message shows on the page) and, for
  the other five users, sends the same message activity the Playground would build (its template
  from ``/_internal/v1/customActivities/template``, ``from`` set to the user with their
  aadObjectId, Teams channelData and mention entities) through ``POST
  /_internal/v1/customActivities``. The bot's answers go to the real Playground conversations.
  - personal chat: the configured personal chat holds only Alex. Another user's personal chat is
    made with the connector API ``POST /_connector/v3/conversations`` ``{isGroup:false,
    members:[{id:"user-id-N"}]}`` (what a bot does to message a user first; the Playground gives
    the same chat for the same user every time, also to the bot). The bot sees
    ``conversationType: personal``.
  - group chat (members: Alex plus user-id-1..5) and channels: the bot only hears a message that
    @mentions it: text ``<at>Test Bot</at> ...`` with ``mentions:[{mentioned:{id:BOT},
    text:"<at>Test Bot</at>"}]`` (entities of type ``mention`` reach the bot). ``say`` adds the
    mention outside personal chat unless ``mention=False`` (then nothing reaches the bot).
  - a message to ``team-id`` starts a new thread: the answer's ``postConversationId``
    (``team-id;messageid=N``) is the conversation id the bot sees and replies to; posting to that
    id replies in the thread. For the other users a thread is opened through the connector first.
  - ``TeamsInfo.get_member`` works against the Playground roster (``/v3/conversations/{id}/
    members/{user}``): emails are ``alexw@``, ``meganb@``, ``adelev@``, ``isaiahl@`` (his UPN is
    ``isaiah@``), ``pattif@``, ``lynner@example.com``.
* Card buttons: Action.Submit is ``POST /_conversation/v1/submit`` ``{conversation:{id}, from:{id},
  replyToId, value}`` where ``replyToId`` must be the Playground's id of a message in that
  conversation (the id the connector returned to the bot when it sent the card); Action.Execute is
  ``POST /_conversation/v1/invoke`` ``{name:"adaptiveCard/action", value:{action:{type,verb,data}},
  from, conversation, replyToId}`` and answers with the bot's invoke body.
* Custom activities (meeting events, installs): ``POST /_internal/v1/customActivities`` with a full
  activity; ``GET /_internal/v1/customActivities/template?conversationId=X`` gives the base.
  ``POST /_debug/conversation/{id}/installation`` sends installationUpdate + membersAdded.
* The WebSocket ``/_ws_conversation/v1/conversations/stream`` sends JSON text frames
  ``{"action": "createMessage"|"updateMessage"|"typing"|"appendLog", "actionConversationId": id,
  "message": {messageId, timestamp, from:{id}, text, textFormat, attachments:[{contentType,
  content}], attachmentLayout, mentions, postConversationId?}}``. It only carries what the
  *current user* (Alex) can see: replies in other users' personal chats are never streamed. A bot
  post that starts a channel thread has ``actionConversationId: team-id`` and ``postConversationId``.
* So the stack also starts a small **recording connector proxy** (``--service-url`` points the
  Playground's activities at it): everything the bot sends (to any user, any chat, any channel,
  proactive or not, and every update and delete) passes through it on the way to the Playground's
  ``/_connector`` and is recorded with the Playground's answer. ``PlaygroundClient`` reads bot
  messages from that record (complete) and keeps the WebSocket frames too (``stream_frames``:
  what Alex's Playground page shows).
* Proactive posts to the coordinators' channel: ``POST /_connector/v3/conversations/team-id/
  activities`` is accepted and shows in "My Team - General" as a new thread; the bot is started
  with ``COORDINATOR_CONVERSATION_ID=team-id`` and ``COORDINATOR_SERVICE_URL`` = the proxy.

Use (the fixtures are in tests/e2e/conftest.py)::

    pytestmark = pytest.mark.e2e

    async def test_something(playground, stack):
        said = await playground.say("request", user="alex")            # personal chat
        form = await playground.reply(said)                             # first bot message after it
        said = await playground.press(form, "Submit", {"child_alias": "ZE"}, user="alex")
        done = await playground.reply(said, lambda m: "received" in m.all_text)
        notice = await playground.wait_for_card(GENERAL_CHANNEL, "New request", after=said.mark)
        assert_no_identifiers_shared(stack, ["Zebedee Example", "1 Synthetic Street"])

    def test_other_profile(start_stack):                               # its own bot + Playground
        other = start_stack({"DEFAULT_PROFILE": "argyll_bute"})

Messages are recorded for the whole session, oldest first: pass ``after=said.mark`` (or
``playground.mark()``) to see only what came after your action.

Roles of the six users in the default stack (see ``USERS``): Alex requester, Megan coordinator,
Adele and Isaiah facilitators (Health, Police), Patti lead professional / invitee, Lynne
administrator. Use ``user="megan"`` (key), ``"user-id-1"`` or ``"meganb@example.com"``.
"""
from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.cards import of_type

ROOT = Path(__file__).resolve().parents[2]
E2E = Path(__file__).resolve().parent
FACILITATORS_FILE = E2E / "facilitators.toml"
PLAYGROUND_BIN = ROOT / "node_modules" / ".bin" / "agentsplayground"
CARD = "application/vnd.microsoft.card.adaptive"
GENERAL_CHANNEL = "team-id"
STARTUP_TIMEOUT = 60.0          # seconds; about 2 s on an idle machine
LISTENING = re.compile(r"Listening on (\d+)")


@dataclass(frozen=True)
class PlaygroundUser:
    key: str
    id: str
    name: str
    email: str
    role: str


USERS: dict[str, PlaygroundUser] = {u.key: u for u in (
    PlaygroundUser("alex", "user-id-0", "Alex Wilber", "alexw@example.com", "requester / practitioner"),
    PlaygroundUser("megan", "user-id-1", "Megan Bowen", "meganb@example.com", "coordinator"),
    PlaygroundUser("adele", "user-id-2", "Adele Vance", "adelev@example.com", "facilitator (Health)"),
    PlaygroundUser("isaiah", "user-id-3", "Isaiah Langer", "isaiahl@example.com", "facilitator (Police)"),
    PlaygroundUser("patti", "user-id-4", "Patti Fernandez", "pattif@example.com", "lead professional / invitee"),
    PlaygroundUser("lynne", "user-id-5", "Lynne Robbins", "lynner@example.com", "partnership administrator"),
)}


def user(who: str | PlaygroundUser) -> PlaygroundUser:
    """A user by key ("megan"), Playground id ("user-id-1"), email or full name."""
    if isinstance(who, PlaygroundUser):
        return who
    needle = who.strip().lower()
    for candidate in USERS.values():
        if needle in (candidate.key, candidate.id, candidate.email, candidate.name.lower()):
            return candidate
    raise KeyError(f"no Playground user {who!r}; known: {', '.join(USERS)}")


DEFAULT_ENV: dict[str, str] = {
    "COORDINATORS": "meganb@example.com",
    "ADMINISTRATORS": "lynner@example.com",
    "FACILITATORS_FILE": str(FACILITATORS_FILE),
    "COORDINATOR_CONVERSATION_ID": GENERAL_CHANNEL,
    "SCHEDULER_INTERVAL_SECONDS": "0",
    "STORAGE_BACKEND": "tinydb",
    "LOG_LEVEL": "INFO",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- what the bot sent -------------------------------------------------------------------------

@dataclass
class BotMessage:
    """One activity the bot sent through the connector (send, reply, update or delete)."""

    seq: int
    kind: str                      # "send" | "update" | "delete" | "invoke" (an Action.Execute answer)
    conversation_id: str           # where it shows (a channel post: "team-id;messageid=N")
    activity: dict[str, Any]
    id: str = ""                   # the Playground's message id (use as replyToId)
    status: int = 0
    at: float = field(default_factory=time.monotonic)

    @property
    def type(self) -> str:
        return str(self.activity.get("type", ""))

    @property
    def text(self) -> str:
        return str(self.activity.get("text") or "")

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [a.get("content") or {} for a in self.activity.get("attachments") or []
                if a.get("contentType") == CARD]

    @property
    def card(self) -> dict[str, Any] | None:
        cards = self.cards
        return cards[0] if cards else None

    @property
    def channel(self) -> str:
        """The top-level conversation (a channel's id without the thread part)."""
        return self.conversation_id.split(";")[0]

    @property
    def all_text(self) -> str:
        """Message text plus every text in its cards (TextBlock, FactSet, titles, labels...)."""
        parts = [self.text, str(self.activity.get("summary") or "")]
        for card in self.cards:
            parts.extend(card_texts(card))
        return "\n".join(p for p in parts if p)

    def __repr__(self) -> str:  # short, for assertion messages
        what = f"card {self.all_text[:120]!r}" if self.cards else repr(self.text[:120])
        return f"<BotMessage #{self.seq} {self.kind} in {self.conversation_id} id={self.id}: {what}>"


def card_texts(node: Any) -> list[str]:
    """Every human-readable string in a card: text, titles, labels, placeholders, values, facts."""
    found: list[str] = []
    if isinstance(node, dict):
        for key in ("text", "title", "label", "placeholder", "value", "errorMessage", "altText"):
            if isinstance(node.get(key), str):
                found.append(node[key])
        for key, value in node.items():
            if key != "data" and isinstance(value, (dict, list)):  # button payloads are not shown
                found.extend(card_texts(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(card_texts(item))
    return found


def card_actions(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every action in a card, top-level and nested (ActionSet, ShowCard)."""
    return of_type([card.get("body", []), card.get("actions", [])], "Action.")


def card_inputs(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every input in a card (Input.Text, Input.ChoiceSet, ...), in order, including ShowCard ones."""
    return [e for e in of_type([card.get("body", []), card.get("actions", [])], "Input.") if e.get("id")]


class Recorder:
    """Thread-safe record of the bot's outbound activities and the WebSocket frames."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[BotMessage] = []
        self.frames: list[dict[str, Any]] = []
        self.personal_conversations: set[str] = set()
        self.channel_ids: set[str] = {GENERAL_CHANNEL}
        self.errors: list[str] = []

    def add(self, message: BotMessage) -> None:
        with self._lock:
            message.seq = len(self.messages)
            self.messages.append(message)

    def add_frame(self, frame: dict[str, Any]) -> None:
        with self._lock:
            self.frames.append(frame)

    def snapshot(self) -> list[BotMessage]:
        with self._lock:
            return list(self.messages)

    def mark(self) -> int:
        with self._lock:
            return len(self.messages)


class ConnectorProxy:
    """A loopback HTTP proxy in front of the Playground's ``/_connector``, recording every call,
    plus a WebSocket reader of the conversation stream; both run on a thread with their own loop."""

    def __init__(self, upstream: str, recorder: Recorder) -> None:
        self.upstream, self.recorder = upstream.rstrip("/"), recorder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="connector-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def start_stream(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start_stream(), self._loop).result(10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _start_stream(self) -> None:
        assert self._session is not None
        ws = await self._session.ws_connect(self.upstream + "/_ws_conversation/v1/conversations/stream")

        async def read() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        self.recorder.add_frame(json.loads(msg.data))
                    except ValueError:
                        self.recorder.errors.append(f"stream frame not JSON: {msg.data[:200]}")

        self._ws_task = asyncio.ensure_future(read())

    async def _stop(self) -> None:
        if self._ws_task is not None:
            self._ws_task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding")}
        async with self._session.request(request.method, self.upstream + request.raw_path, data=body or None,
                                         headers=headers) as upstream:
            payload = await upstream.read()
            status = upstream.status
            content_type = upstream.headers.get("Content-Type", "application/json")
        try:
            self._record(request.method, request.path, body, status, payload)
        except Exception as error:  # never break the bot because recording failed
            self.recorder.errors.append(f"record {request.method} {request.path}: {error!r}")
        return web.Response(status=status, body=payload, headers={"Content-Type": content_type})

    def _record(self, method: str, path: str, body: bytes, status: int, payload: bytes) -> None:
        parts = path.strip("/").split("/")
        # /_connector/v3/conversations[/{id}/activities[/{activityId}]]
        if len(parts) < 3 or parts[1] != "v3" or parts[2] != "conversations":
            return
        activity = json.loads(body) if body else {}
        answer: dict[str, Any] = {}
        try:
            answer = json.loads(payload) if payload else {}
        except ValueError:
            pass
        if len(parts) == 3 and method == "POST":
            conversation = str(answer.get("id", ""))
            if not activity.get("isGroup"):
                self.recorder.personal_conversations.add(conversation)
            if activity.get("activity"):
                self.recorder.add(BotMessage(0, "send", conversation, activity["activity"],
                                             id=str(answer.get("activityId", "")), status=status))
            return
        if len(parts) < 5 or parts[4] != "activities":
            return
        conversation = parts[3]
        kind = {"POST": "send", "PUT": "update", "DELETE": "delete"}.get(method, method.lower())
        message_id = str(answer.get("id", "")) if kind == "send" else (parts[5] if len(parts) > 5 else "")
        if activity.get("type") == "typing":
            return
        if kind == "send" and conversation in self.recorder.channel_ids and message_id:
            conversation = f"{conversation};messageid={message_id}"  # a new post starts a thread
        self.recorder.add(BotMessage(0, kind, conversation, activity, id=message_id, status=status))


# --- the processes -----------------------------------------------------------------------------

class StackError(RuntimeError):
    pass


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path, expect: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{proc.args!r} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback only)
                text = response.read().decode()
                if response.status == 200 and expect in text:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise StackError(f"{url} not ready after {timeout}s:\n{_tail(log)}")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


try:  # resolved now: the child runs only this call between fork and exec
    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: be sent SIGTERM if the test process dies (Linux), so a killed
    pytest leaves no bot or Playground behind."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a process we started, and its process group (we started it in its own session)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


class Stack:
    """The bot subprocess, the Playground, and the recording proxy between them."""

    def __init__(self, extra_env: Mapping[str, str] | None = None, *, workdir: Path | None = None) -> None:
        self.extra_env = dict(extra_env or {})
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="e2e-stack-"))
        self.data_dir = self.workdir / "data"
        self.bot_port = free_port()
        self.playground_port = free_port()
        self.bot_url = f"http://127.0.0.1:{self.bot_port}"
        self.playground_url = f"http://127.0.0.1:{self.playground_port}"
        self.recorder = Recorder()
        self.proxy = ConnectorProxy(self.playground_url, self.recorder)
        self.bot_log = self.workdir / "bot.log"
        self.playground_log = self.workdir / "playground.log"
        self.bot: subprocess.Popen[bytes] | None = None
        self.playground: subprocess.Popen[bytes] | None = None
        self.config: dict[str, Any] = {}
        self.env: dict[str, str] = {}

    @property
    def service_url(self) -> str:
        return f"{self.proxy.url}/_connector"

    def start(self) -> Stack:
        atexit.register(self.stop)
        try:
            self.proxy.start()
            for attempt in range(3):
                try:
                    self._start_bot()
                    break
                except StackError:
                    if attempt == 2 or self.bot is None or self.bot.poll() is None:
                        raise
                    self.bot_port = free_port()  # another process took the port: try a new one
                    self.bot_url = f"http://127.0.0.1:{self.bot_port}"
            self._start_playground()
            with urllib.request.urlopen(self.playground_url + "/_internal/v1/testConfig", timeout=5) as r:  # noqa: S310
                self.config = json.loads(r.read())["config"]
            self.recorder.channel_ids |= {c["id"] for t in self.config.get("teams", []) for c in t["channels"]}
            self.proxy.start_stream()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_bot(self) -> None:
        python = ROOT / ".venv" / "bin" / "python"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("Microsoft", "GRAPH_"))}
        env.update(DEFAULT_ENV)
        env.update({"PORT": str(self.bot_port), "HOST": "127.0.0.1", "DATA_DIR": str(self.data_dir),
                    "COORDINATOR_SERVICE_URL": self.service_url, "PYTHONPATH": str(ROOT),
                    "PYTHONUNBUFFERED": "1"})
        env.update(self.extra_env)
        self.env = env
        with self.bot_log.open("wb") as log:
            # cwd is the temp folder, so a developer's .env in the repository is not read
            self.bot = subprocess.Popen([str(python if python.exists() else "python3"), "-m", "bot"],
                                        cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=_die_with_parent)
        _wait_http(self.bot_url + "/healthz", STARTUP_TIMEOUT, self.bot, self.bot_log, expect="ok")

    def _start_playground(self) -> None:
        env = dict(os.environ)
        env.update({"TEAMSAPPTESTER_BROWSER": "none", "APPLICATION_INSIGHTS_NO_STATSBEAT": "true"})
        command = [str(PLAYGROUND_BIN), "start", "-e", f"{self.bot_url}/api/messages", "-c", "msteams",
                   "-p", str(self.playground_port), "--disable-telemetry", "--service-url", self.service_url]
        with self.playground_log.open("wb") as log:
            # cwd is the temp folder: its devTools/ log goes there, and no .m365agentsplayground.yml applies
            self.playground = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True,
                                               preexec_fn=_die_with_parent)
        # it takes another port if ours was taken meanwhile: believe what it says it listens on
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while (found := LISTENING.search(_tail(self.playground_log))) is None:
            if self.playground.poll() is not None or time.monotonic() > deadline:
                raise StackError(f"the Playground did not start:\n{_tail(self.playground_log)}")
            time.sleep(0.05)
        self.playground_port = int(found.group(1))
        self.playground_url = f"http://127.0.0.1:{self.playground_port}"
        self.proxy.upstream = self.playground_url
        _wait_http(self.playground_url + "/_debug/ping", STARTUP_TIMEOUT, self.playground, self.playground_log,
                   expect="pong")

    def stop(self) -> None:
        _stop_process(self.playground)
        _stop_process(self.bot)
        self.proxy.stop()
        atexit.unregister(self.stop)

    # --- what it knows ---------------------------------------------------------------------------
    @property
    def bot_id(self) -> str:
        return str(self.config["bot"]["id"])

    @property
    def bot_name(self) -> str:
        return str(self.config["bot"]["name"])

    @property
    def personal_chat_id(self) -> str:
        return str(self.config["personalChat"]["id"])

    @property
    def group_chat_id(self) -> str:
        return str(self.config["groupChats"][0]["id"])

    def shared_conversation(self, conversation_id: str) -> bool:
        """True unless the conversation is someone's personal chat with the bot."""
        return conversation_id != self.personal_chat_id and \
            conversation_id not in self.recorder.personal_conversations

    def read_bot_log(self, since: int = 0) -> str:
        """The bot's stdout and stderr (from byte offset ``since``, see ``log_position``)."""
        if not self.bot_log.exists():
            return ""
        with self.bot_log.open("rb") as handle:
            handle.seek(since)
            return handle.read().decode(errors="replace")

    def log_position(self) -> int:
        return self.bot_log.stat().st_size if self.bot_log.exists() else 0

    def errors_logged(self, since: int = 0) -> list[str]:
        """Log lines at ERROR or CRITICAL, and tracebacks, written since ``since``."""
        return [line for line in self.read_bot_log(since).splitlines()
                if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]

    def client(self) -> PlaygroundClient:
        return PlaygroundClient(self)


# --- identifiers must stay out of shared places --------------------------------------------------

def shared_activities(stack: Stack) -> list[BotMessage]:
    """Everything the bot sent (or updated) in a channel or group chat during the session."""
    return [m for m in stack.recorder.snapshot() if stack.shared_conversation(m.conversation_id)]


def assert_no_identifiers_shared(stack: Stack, identifiers: Iterable[str], *, check_log: bool = True) -> int:
    """Fail if any activity the bot sent to a channel or group chat (or, with check_log, its log)
    contains one of the identifiers (case-insensitive; whole JSON: text, cards, summaries, data).
    Returns how many shared activities were checked."""
    needles = [i.strip() for i in identifiers if i and i.strip()]
    if not needles:
        raise ValueError("give at least one identifier to look for")
    problems = []
    shared = shared_activities(stack)
    for message in shared:
        blob = json.dumps(message.activity, ensure_ascii=False).lower()
        for needle in needles:
            if needle.lower() in blob:
                problems.append(f"{needle!r} in {message!r}")
    if check_log:
        log = stack.read_bot_log().lower()
        for needle in needles:
            if needle.lower() in log:
                problems.append(f"{needle!r} in the bot's log")
    if problems:
        raise AssertionError("child/family identifiers left personal chat:\n  " + "\n  ".join(problems))
    return len(shared)


# --- the client --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Said:
    """What ``say`` did: where the bot will answer, the Playground message id, the record mark."""

    conversation_id: str
    message_id: str
    mark: int
    user: PlaygroundUser


Predicate = Callable[[BotMessage], bool]


class PlaygroundClient:
    """Drive the Playground over HTTP, as each of its six users, in personal chat, group chat or the
    General channel; read what the bot sent from the recorded connector traffic."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.base = stack.playground_url
        self._session: aiohttp.ClientSession | None = None
        self._personal: dict[str, str] = {stack.config["currentUser"]["id"]: stack.personal_chat_id}

    async def __aenter__(self) -> PlaygroundClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    async def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        async with self.session.post(self.base + path, json=body) as response:
            text = await response.text()
            if response.status >= 300:
                raise AssertionError(f"Playground {path} answered {response.status}: {text[:500]}")
            return json.loads(text) if text.strip() else None

    async def test_config(self) -> dict[str, Any]:
        async with self.session.get(self.base + "/_internal/v1/testConfig") as response:
            return dict((await response.json())["config"])

    # --- where ---------------------------------------------------------------------------------
    async def personal_chat(self, who: str | PlaygroundUser = "alex") -> str:
        """The user's personal chat with the bot (created through the connector API if need be)."""
        person = user(who)
        if person.id not in self._personal:
            answer = await self._post("/_connector/v3/conversations", {
                "isGroup": False, "bot": {"id": self.stack.bot_id}, "members": [{"id": person.id}],
                "tenantId": self.stack.config["tenantId"],
                "channelData": {"tenant": {"id": self.stack.config["tenantId"]}}})
            self._personal[person.id] = str(answer["id"])
            self.stack.recorder.personal_conversations.add(str(answer["id"]))
        return self._personal[person.id]

    async def conversation_id(self, conversation: str, who: PlaygroundUser) -> str:
        if conversation == "personal":
            return await self.personal_chat(who)
        if conversation == "group":
            return self.stack.group_chat_id
        if conversation == "channel":
            return GENERAL_CHANNEL
        return conversation  # an explicit id (e.g. a channel thread "team-id;messageid=N")

    def mark(self) -> int:
        return self.stack.recorder.mark()

    # --- acting ----------------------------------------------------------------------------------
    async def say(self, text: str, user: str | PlaygroundUser = "alex", conversation: str = "personal",
                  mention: bool | None = None) -> Said:
        """Type a message as ``user``. Outside personal chat the bot is @mentioned (it hears nothing
        else there). Alex (the Playground's current user) types through the messages API, exactly
        as the page does; the Playground sends every typed message as its current user, so the
        other five speak through a custom activity shaped like the Playground's own messages."""
        person = globals()["user"](user)
        conversation_id = await self.conversation_id(conversation, person)
        personal = conversation_id in self._personal.values()
        at = f"<at>{self.stack.bot_name}</at>"
        mentioned = mention if mention is not None else not personal
        if mentioned:
            text = f"{at} {text}"
        mark = self.mark()
        if person.id == self.stack.config["currentUser"]["id"]:
            body: dict[str, Any] = {"from": {"id": person.id}, "text": text, "textFormat": "plain"}
            if mentioned:
                body["mentions"] = [{"mentioned": {"id": self.stack.bot_id}, "text": at}]
            answer = await self._post(f"/_conversation/v1/conversations/{conversation_id}/messages", body)
            where = str(answer.get("postConversationId") or conversation_id)
            return Said(conversation_id=where, message_id=str(answer.get("messageId", "")), mark=mark,
                        user=person)
        if not personal and not mentioned:  # the Playground (and Teams) would not deliver it
            return Said(conversation_id=conversation_id, message_id="", mark=mark, user=person)
        if conversation_id in self.stack.recorder.channel_ids:
            conversation_id = await self.start_thread(conversation_id, f"{person.name} wrote to the bot")
        activity = await self.user_activity(conversation_id, person)
        parent_channel = conversation_id.split(";")[0] in self.stack.recorder.channel_ids
        activity.update({"type": "message", "text": text, "textFormat": "plain"})
        entities = [{"type": "mention", "mentioned": {"id": self.stack.bot_id, "name": self.stack.bot_name},
                     "text": at}] if mentioned else []
        entities.append({"locale": "en-US", "country": "US", "platform": None if parent_channel else "Web",
                         "timezone": "UTC", "type": "clientInfo"})
        activity["entities"] = entities
        await self._post("/_internal/v1/customActivities", activity)
        return Said(conversation_id=conversation_id, message_id=str(activity["id"]), mark=mark, user=person)

    async def user_activity(self, conversation_id: str, person: PlaygroundUser) -> dict[str, Any]:
        """The Playground's base activity for ``conversation_id``, from ``person``."""
        activity = await self.activity_template(conversation_id)
        known = {u["id"]: u for u in [self.stack.config["currentUser"], *self.stack.config["users"]]}
        activity["from"] = {"id": person.id, "name": person.name,
                            "aadObjectId": known.get(person.id, {}).get("aadObjectId")}
        channel = conversation_id.split(";")[0]
        tenant = {"id": self.stack.config["tenantId"]}
        if channel in self.stack.recorder.channel_ids:
            team = self.stack.config["teams"][0]["id"]
            activity["channelData"] = {"teamsChannelId": channel, "teamsTeamId": team, "tenant": tenant,
                                       "team": {"id": team}, "channel": {"id": channel}}
        else:
            activity["channelData"] = {"tenant": tenant}
        activity.update({"id": str(uuid.uuid4()), "locale": "en-US", "localTimezone": "UTC",
                         "localTimestamp": activity.get("timestamp")})
        return activity

    async def start_thread(self, channel_id: str, text: str) -> str:
        """A new thread in a channel (``team-id;messageid=N``); its first post is made through the
        connector, since the Playground can't post as anyone but its current user."""
        answer = await self._post("/_connector/v3/conversations", {
            "isGroup": True, "bot": {"id": self.stack.bot_id}, "tenantId": self.stack.config["tenantId"],
            "channelData": {"channel": {"id": channel_id}},
            "activity": {"type": "message", "text": text}})
        return str(answer["id"])

    async def ask(self, text: str, user: str | PlaygroundUser = "alex", conversation: str = "personal",
                  timeout: float = 10.0) -> BotMessage:
        """Say something and wait for the bot's first answer in that conversation."""
        said = await self.say(text, user=user, conversation=conversation)
        return await self.reply(said, timeout=timeout)

    async def reply(self, said: Said, predicate: Predicate | None = None, timeout: float = 10.0) -> BotMessage:
        return await self.wait_for(
            lambda m: m.kind == "send" and m.conversation_id == said.conversation_id
            and (predicate is None or predicate(m)), timeout=timeout, after=said.mark)

    async def submit(self, value: Mapping[str, Any], *, reply_to: BotMessage | str,
                     user: str | PlaygroundUser = "alex", conversation_id: str | None = None) -> Said:
        """Press an Action.Submit button (``value`` is its data merged with the card's inputs)."""
        person = globals()["user"](user)
        reply_to_id, conversation_id = self._target(reply_to, conversation_id)
        mark = self.mark()
        await self._post("/_conversation/v1/submit", {
            "conversation": {"id": conversation_id}, "from": {"id": person.id},
            "replyToId": reply_to_id, "value": dict(value)})
        return Said(conversation_id=conversation_id, message_id="", mark=mark, user=person)

    async def invoke(self, verb: str, data: Mapping[str, Any] | None = None, *, reply_to: BotMessage | str,
                     user: str | PlaygroundUser = "alex", conversation_id: str | None = None) -> Any:
        """Press an Action.Execute button; returns the bot's invoke body
        (``{statusCode, type, value}``: a card replacing the old one, or a message)."""
        person = globals()["user"](user)
        reply_to_id, conversation_id = self._target(reply_to, conversation_id)
        body = await self._post("/_conversation/v1/invoke", {
            "name": "adaptiveCard/action", "from": {"id": person.id},
            "conversation": {"id": conversation_id}, "replyToId": reply_to_id,
            "value": {"action": {"type": "Action.Execute", "verb": verb, "data": dict(data or {})},
                      "trigger": "manual"}})
        # the answer replaces the card in place, for everyone in the conversation: record it as an update
        answer = body if isinstance(body, dict) else {}
        if answer.get("type") == CARD:
            shown: dict[str, Any] = {"type": "message", "attachments": [{"contentType": CARD,
                                                                         "content": answer.get("value")}]}
        else:
            shown = {"type": "message", "text": str(answer.get("value", ""))}
        self.stack.recorder.add(BotMessage(0, "invoke", conversation_id, shown, id=reply_to_id, status=200))
        return body

    async def press(self, message: BotMessage, title: str, inputs: Mapping[str, Any] | None = None, *,
                    user: str | PlaygroundUser = "alex") -> Said | Any:
        """Press the button called ``title`` on a card the bot sent, with ``inputs`` typed into its
        fields (by input id; the card's prefilled values are kept otherwise). Action.Submit returns
        a ``Said`` (wait with ``reply``); Action.Execute returns the bot's invoke body."""
        card = message.card
        if card is None:
            raise AssertionError(f"{message!r} has no card")
        actions = [a for a in card_actions(card) if a.get("title") == title]
        if not actions:
            raise AssertionError(f"no button {title!r} on {message!r}; there are "
                                 f"{[a.get('title') for a in card_actions(card)]}")
        action = actions[0]
        values: dict[str, Any] = {}
        if action.get("associatedInputs") != "none":
            values = {i["id"]: i["value"] for i in card_inputs(card) if "value" in i}
            unknown = set(inputs or {}) - {i["id"] for i in card_inputs(card)}
            if unknown:
                raise AssertionError(f"the card has no inputs {sorted(unknown)}")
            values.update(inputs or {})
        data = action.get("data") or {}
        if action["type"] == "Action.Submit":
            return await self.submit({**(data if isinstance(data, dict) else {"data": data}), **values},
                                     reply_to=message, user=user)
        if action["type"] == "Action.Execute":
            return await self.invoke(str(action.get("verb", "")), {**data, **values}, reply_to=message, user=user)
        raise AssertionError(f"{title!r} is an {action['type']}, not a button that reaches the bot")

    def _target(self, reply_to: BotMessage | str, conversation_id: str | None) -> tuple[str, str]:
        if isinstance(reply_to, BotMessage):
            return reply_to.id, conversation_id or reply_to.conversation_id
        if conversation_id is None:
            raise ValueError("give conversation_id with a message id")
        return reply_to, conversation_id

    async def activity_template(self, conversation_id: str) -> dict[str, Any]:
        async with self.session.get(self.base + "/_internal/v1/customActivities/template",
                                    params={"conversationId": conversation_id}) as response:
            return dict(await response.json())

    async def custom_activity(self, activity: Mapping[str, Any], *, user: str | PlaygroundUser | None = None,
                              conversation: str | None = None) -> int:
        """Send any activity to the bot (meeting events, installs...). With ``conversation`` the
        Playground's template for it is the base (serviceUrl, recipient, conversation, from)."""
        body: dict[str, Any] = {}
        mark = self.mark()
        if conversation is not None:
            person = globals()["user"](user or "alex")
            body = await self.activity_template(await self.conversation_id(conversation, person))
            body["from"] = {"id": person.id, "name": person.name,
                            "aadObjectId": f"00000000-0000-0000-0000-00000000000{20 + int(person.id[-1])}"}
        body.update(activity)
        await self._post("/_internal/v1/customActivities", body)
        return mark

    async def install(self, conversation: str = "personal", who: str | PlaygroundUser = "alex") -> int:
        """What a page load does: installationUpdate (add) and conversationUpdate (membersAdded)."""
        mark = self.mark()
        conversation_id = await self.conversation_id(conversation, user(who))
        await self._post(f"/_debug/conversation/{conversation_id}/installation", {})
        return mark

    # --- reading ---------------------------------------------------------------------------------
    def messages(self, conversation_id: str | None = None, *, after: int = 0,
                 include_updates: bool = True) -> list[BotMessage]:
        """What the bot sent, oldest first; in one conversation (a channel id covers its threads)."""
        out = []
        for message in self.stack.recorder.snapshot()[after:]:
            if conversation_id is not None and conversation_id not in (message.conversation_id, message.channel):
                continue
            if not include_updates and message.kind != "send":
                continue
            out.append(message)
        return out

    async def messages_to(self, who: str | PlaygroundUser, *, after: int = 0) -> list[BotMessage]:
        return self.messages(await self.personal_chat(who), after=after)

    async def wait_for(self, predicate: Predicate, timeout: float = 10.0, after: int = 0) -> BotMessage:
        deadline = time.monotonic() + timeout
        while True:
            for message in self.stack.recorder.snapshot()[after:]:
                if predicate(message):
                    return message
            if time.monotonic() > deadline:
                recent = self.stack.recorder.snapshot()[max(after, self.mark() - 8):]
                raise AssertionError(f"no matching bot message within {timeout}s; recent:\n  " +
                                     "\n  ".join(repr(m) for m in recent) +
                                     f"\nbot log tail:\n{_tail(self.stack.bot_log, 15)}")
            await asyncio.sleep(0.02)

    async def wait_for_card(self, conversation_id: str, containing: str = "", *, after: int = 0,
                            timeout: float = 10.0) -> BotMessage:
        """The first card sent (or updated) in the conversation (or channel) that shows ``containing``."""
        return await self.wait_for(
            lambda m: conversation_id in (m.conversation_id, m.channel) and bool(m.cards)
            and containing in m.all_text, timeout=timeout, after=after)

    async def quiet(self, seconds: float = 0.3, after: int | None = None) -> list[BotMessage]:
        """Wait until the bot has sent nothing for ``seconds``; returns what it sent since ``after``."""
        start = self.mark() if after is None else after
        last = self.mark()
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < seconds:
            await asyncio.sleep(0.05)
            now = self.mark()
            if now != last:
                last, idle_since = now, time.monotonic()
        return self.stack.recorder.snapshot()[start:]

    def stream_frames(self, action: str | None = "createMessage") -> list[dict[str, Any]]:
        """The WebSocket frames the Playground page got (only what Alex can see)."""
        return [f for f in list(self.stack.recorder.frames) if action is None or f.get("action") == action]


@contextlib.contextmanager
def seeded_stack(prefix: str, cases: Iterable[Any], extra_env: Mapping[str, str] | None = None) -> Iterator[Stack]:
    """A stack of its own whose store already holds ``cases`` (supervision.models.Case), written
    through the real repository before the bot starts (the TinyDB store has a single writer)."""
    from storage.tinydb_store import TinyDBStore
    from supervision.repository import CaseRepository

    workdir = Path(tempfile.mkdtemp(prefix=prefix))

    async def seed() -> None:
        store = TinyDBStore(workdir / "data")
        try:
            for case in cases:
                await CaseRepository(store).create(case)
        finally:
            await store.close()

    asyncio.run(seed())
    stack = Stack(extra_env, workdir=workdir).start()
    try:
        yield stack
    finally:
        stack.stop()
    from tests.e2e.identifiers import assert_stack_leaked_nothing

    assert_stack_leaked_nothing(stack)     # every case in its store, against every shared activity

