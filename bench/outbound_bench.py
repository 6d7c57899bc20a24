"""Outbound benchmark: the bot's sends through msrest's operations vs the direct path (bot/outbound.py).

``python -m bench outbound [--replies N] [--rounds R]``

Both paths use one pool (bot/connector.py: one aiohttp session, our token and retry policies, the
``WireSerializer`` body writer) and one signed-in credentials object (token from the loopback login
stand-in, fetched once), and send the same mix of Teams-shaped activities - a text reply, an
Adaptive Card reply (``reply_to_activity``), a proactive text (``send_to_conversation``) and a card
update (``update_activity``) - one at a time to a loopback Bot Connector running in a child process
(so the CPU measured is the bot's side only: building, sending, reading the answer). Rounds
alternate the two paths; the figures are medians over rounds of CPU (process time) and wall time
per send, and the ratio direct/msrest measured in the same run. A third row, the floor, sends the
same requests prepared beforehand (URL, headers, JSON body) straight on an aiohttp session.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import statistics
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from bot.adapter import ACTIVITY_DESERIALIZER
from bot.connector import ConnectorPool
from bot.credentials import CachedAppCredentials
from bot.outbound import pooled_client
from tests.support.auth import APP_ID, APP_PASSWORD, KeyServer, LoginStandInCredentials

CARD = {"type": "AdaptiveCard", "version": "1.5", "body": [
    {"type": "TextBlock", "text": "Session for MAGS-BOL-260105-0001", "wrap": True, "weight": "Bolder"},
    {"type": "FactSet", "facts": [{"title": "When", "value": "Monday 5 January 2026, 10:00"},
                                  {"title": "Where", "value": "Teams meeting"}]},
    {"type": "Input.Text", "id": "note", "label": "Your note", "isMultiline": True, "isRequired": True,
     "errorMessage": "Please write a note"},
    {"type": "Input.ChoiceSet", "id": "agency", "label": "Agency", "choices": [
        {"title": "Health", "value": "health"}, {"title": "Police", "value": "police"}]}],
    "actions": [{"type": "Action.Execute", "title": "Send", "verb": "request.submit",
                 "data": {"case": "bench-case-00001"}}]}


def addressed(service_url: str, n: int, **extra: Any) -> dict[str, Any]:
    """A reply as the turn context sends it (addressed from a personal-chat message)."""
    return {"type": "message", "channelId": "msteams", "serviceUrl": service_url, "locale": "en-GB",
            "from": {"id": "28:bench-bot", "name": "Group Supervision"},
            "recipient": {"id": f"29:bench-user-{n:05d}", "name": f"Bench User {n}", "aadObjectId": f"aad-{n}"},
            "conversation": {"id": f"a:bench-personal-{n:05d}", "conversationType": "personal",
                             "tenantId": "00000000-0000-0000-0000-000000000001"},
            "replyToId": f"1{n:05d}00000001", "inputHint": "acceptingInput", **extra}


def workload(service_url: str) -> list[tuple[str, Any]]:
    """(operation, activity): reply text, reply card, proactive text, card update."""
    card = {"attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": CARD}]}
    text = ACTIVITY_DESERIALIZER("Activity", addressed(service_url, 1, text="Noted for MAGS-BOL-260105-0001."))
    card_reply = ACTIVITY_DESERIALIZER("Activity", addressed(service_url, 2, **card))
    proactive = ACTIVITY_DESERIALIZER("Activity", {**addressed(service_url, 3, text="Reminder: evaluation due"),
                                                   "replyToId": None})
    update = ACTIVITY_DESERIALIZER("Activity", {**addressed(service_url, 4, **card), "id": "1:card-4"})
    return [("reply", text), ("reply", card_reply), ("send", proactive), ("update", update)]


async def send(conversations: Any, operation: str, activity: Any) -> Any:
    cid = activity.conversation.id
    if operation == "reply":
        return await conversations.reply_to_activity(cid, activity.reply_to_id, activity)
    if operation == "send":
        return await conversations.send_to_conversation(cid, activity)
    return await conversations.update_activity(cid, activity.id, activity)


def prepare(service_url: str, operation: str, activity: Any, token: str) -> tuple[str, str, dict[str, str], str]:
    """The request of one send, made beforehand (for the floor): method, URL, headers, JSON body."""
    cid = quote(activity.conversation.id, safe="")
    url = f"{service_url}v3/conversations/{cid}/activities"
    if operation != "send":
        url += "/" + quote(activity.reply_to_id if operation == "reply" else activity.id, safe="")
    data = json.dumps(activity.serialize())
    headers = {"Accept": "application/json", "Content-Type": "application/json; charset=utf-8",
               "Content-Length": str(len(data)), "Authorization": f"Bearer {token}"}
    return ("PUT" if operation == "update" else "POST"), url, headers, data


# --- the loopback connector, in a child process ------------------------------------------------------

def serve(port_out: Any) -> None:
    ids = itertools.count(1)

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"id": f"act-{next(ids)}"})

    async def run() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(run())


async def measure(args: argparse.Namespace, service_url: str, token_url: str) -> dict[str, list[tuple[float, float]]]:
    pool = ConnectorPool()
    credentials = CachedAppCredentials(LoginStandInCredentials(APP_ID, APP_PASSWORD, token_url))
    clients = {"msrest": pooled_client(pool, service_url, credentials, direct=False),
               "direct": pooled_client(pool, service_url, credentials)}
    work = workload(service_url)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in (*clients, "aiohttp", "body")}
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=64, keepalive_timeout=60))
    token = await credentials.token()
    prepared = [prepare(service_url, operation, activity, token) for operation, activity in work]
    try:
        for client in clients.values():            # warm up: token, connections, plans
            for operation, activity in work * 25:
                await send(client.conversations, operation, activity)
        for method, url, headers, data in prepared * 25:
            async with session.request(method, url, headers=headers, data=data) as raw:
                await raw.read()
        for round_ in range(args.rounds):
            order = list(clients.items()) if round_ % 2 == 0 else list(reversed(clients.items()))
            for name, client in order:
                cpu, wall = time.process_time(), time.perf_counter()
                for i in range(args.replies):
                    operation, activity = work[i % len(work)]
                    response = await send(client.conversations, operation, activity)
                    assert response is not None and response.id
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                results[name].append((cpu / args.replies * 1e6, wall / args.replies * 1e6))
            # the floor: the same requests, prepared beforehand, straight on an aiohttp session
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(args.replies):
                method, url, headers, data = prepared[i % len(prepared)]
                async with session.request(method, url, headers=headers, data=data) as raw:
                    assert json.loads(await raw.read())["id"]
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            results["aiohttp"].append((cpu / args.replies * 1e6, wall / args.replies * 1e6))
            # of which: writing each body (the pooled client's WireSerializer, then json.dumps), alone
            serializer = clients["direct"]._serialize
            cpu = time.process_time()
            for i in range(args.replies):
                json.dumps(serializer.body(work[i % len(work)][1], "Activity"))
            results["body"].append(((time.process_time() - cpu) / args.replies * 1e6, 0.0))
        direct = clients["direct"].conversations
        assert direct.deferred == 0 and direct.direct > 0, "the direct path was not taken"
    finally:
        await pool.close()
        await session.close()
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench outbound")
    parser.add_argument("--replies", type=int, default=2000, help="sends per path per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="500 sends x 4 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.replies, args.rounds = 500, 4
    context = multiprocessing.get_context("fork")
    receive, port_out = context.Pipe(duplex=False)
    server = context.Process(target=serve, args=(port_out,), daemon=True)
    server.start()
    key_server = KeyServer().start()
    try:
        port = receive.recv()
        results = asyncio.run(measure(args, f"http://127.0.0.1:{port}/", key_server.token_url))
    finally:
        key_server.stop()
        server.terminate()
        server.join(5)
    cpu = {name: statistics.median(c for c, _ in rows) for name, rows in results.items()}
    wall = {name: statistics.median(w for _, w in rows) for name, rows in results.items()}
    print(f"{args.replies} sends x {args.rounds} rounds per path (reply text, reply card, proactive text, "
          "card update), one at a time, loopback connector in a child process")
    print(f"{'path':<8} {'CPU us/send':>12} {'wall us/send':>13}   CPU per round")
    for name in ("msrest", "direct", "aiohttp"):
        rounds = " ".join(f"{c:.0f}" for c, _ in results[name])
        print(f"{name:<8} {cpu[name]:>12.0f} {wall[name]:>13.0f}   {rounds}")
    print(f"ratio direct/msrest: CPU {cpu['direct'] / cpu['msrest']:.2f}x, wall {wall['direct'] / wall['msrest']:.2f}x; "
          f"CPU saved {cpu['msrest'] - cpu['direct']:.0f} us per send")
    print(f"above the floor (the same requests prepared beforehand, straight on aiohttp): msrest "
          f"+{cpu['msrest'] - cpu['aiohttp']:.0f} us, direct +{cpu['direct'] - cpu['aiohttp']:.0f} us CPU per send, "
          f"of which writing the JSON body (both paths) {cpu['body']:.0f} us")
    return 0
