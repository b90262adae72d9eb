"""The admission queue: requests wait for a free slot, in priority then arrival order, and
get a 503 with Retry-After when the wait runs out or the queue is full."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ollamux import hookimpl
from ollamux.exchange import Principal
from ollamux.testing import gateway_of
from tests.fakes.fleet import calls, start_fakes, until

CHAT = {"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}


def one_slot(url: str, **routing: Any) -> dict[str, Any]:
    return {
        "backends": [{"name": "a", "url": url, "max_concurrency": 1}],
        "routing": {"health_interval_s": 60, **routing},
    }


def depth(client: Any) -> float:
    return gateway_of(client).gauges["queue_depth"]()


class PriorityFromHeader:
    """A stand-in for auth: the caller's priority comes from an X-Priority header."""

    @hookimpl
    def ollamux_authenticate(self, request: web.Request) -> Principal:
        prio = int(request.headers.get("X-Priority", "0"))
        return Principal(name=f"p{prio}", priority=prio)


def said(fake: Any) -> list[str]:
    return [r.body["messages"][0]["content"] for r in calls(fake, "/api/chat")]


async def test_request_waits_for_a_slot_then_proceeds(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fake, _, url = (await start_fakes(aiohttp_server, ["a"]))["a"]
    fake.mode = "wait"
    client = await gateway_client(one_slot(url))
    first = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: len(calls(fake, "/api/chat")) == 1)
    second = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: depth(client) == 1, what="second request queued")
    assert len(calls(fake, "/api/chat")) == 1
    fake.release.set()
    for task in (first, second):
        resp = await task
        assert resp.status == 200
        assert (await resp.text()).count('"done": true') == 1
    assert len(calls(fake, "/api/chat")) == 2
    assert depth(client) == 0


async def test_wait_that_runs_out_is_503_with_retry_after(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fake, _, url = (await start_fakes(aiohttp_server, ["a"]))["a"]
    fake.mode = "wait"
    client = await gateway_client(one_slot(url, queue_timeout_s=0.2))
    first = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: len(calls(fake, "/api/chat")) == 1)
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) >= 1
    assert "no backend became free" in (await resp.json())["error"]
    assert gateway_of(client).gauges["queue_timeouts_total"]() == 1
    fake.release.set()
    assert (await first).status == 200


async def test_timeout_in_openai_dialect_keeps_its_error_shape(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fake, _, url = (await start_fakes(aiohttp_server, ["a"]))["a"]
    fake.mode = "wait"
    client = await gateway_client(one_slot(url, queue_timeout_s=0.1))
    first = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: len(calls(fake, "/api/chat")) == 1)
    resp = await client.post(
        "/v1/chat/completions", json={**CHAT, "messages": [{"role": "user", "content": "x"}]}
    )
    assert resp.status == 503
    assert "Retry-After" in resp.headers
    assert (await resp.json())["error"]["type"] == "service_unavailable"
    fake.release.set()
    assert (await first).status == 200


async def test_full_queue_answers_503_at_once(gateway_client: Any, aiohttp_server: Any) -> None:
    fake, _, url = (await start_fakes(aiohttp_server, ["a"]))["a"]
    fake.mode = "wait"
    client = await gateway_client(one_slot(url, max_queue=1, queue_timeout_s=60))
    first = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: len(calls(fake, "/api/chat")) == 1)
    second = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: depth(client) == 1)
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 503
    assert "Retry-After" in resp.headers
    assert "too many requests are waiting" in (await resp.json())["error"]
    assert gateway_of(client).gauges["queue_rejected_total"]() == 1
    fake.release.set()
    assert [(await t).status for t in (first, second)] == [200, 200]


async def test_higher_priority_is_served_first_then_arrival_order(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fake, _, url = (await start_fakes(aiohttp_server, ["a"]))["a"]
    fake.mode = "wait"
    client = await gateway_client(one_slot(url), plugins=[("prio", PriorityFromHeader())])
    first = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: len(calls(fake, "/api/chat")) == 1)
    queued: list[Any] = []
    for n, (text, prio) in enumerate((("low-1", 0), ("high", 5), ("low-2", 0)), start=1):
        body = {**CHAT, "messages": [{"role": "user", "content": text}]}
        queued.append(
            asyncio.create_task(
                client.post("/api/chat", json=body, headers={"X-Priority": str(prio)})
            )
        )
        await until(lambda: depth(client) == n)  # noqa: B023
    fake.release.set()
    for task in (first, *queued):
        assert (await task).status == 200
    assert said(fake) == ["hi", "high", "low-1", "low-2"]


async def test_a_waiter_whose_client_leaves_frees_its_place(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fake, _, url = (await start_fakes(aiohttp_server, ["a"]))["a"]
    fake.mode = "wait"
    client = await gateway_client(one_slot(url))
    first = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: len(calls(fake, "/api/chat")) == 1)
    gone = asyncio.create_task(
        client.post("/api/chat", json={**CHAT, "messages": [{"role": "user", "content": "gone"}]})
    )
    await until(lambda: depth(client) == 1)
    gone.cancel()
    await until(lambda: depth(client) == 0, what="the waiter left the queue")
    fake.release.set()
    assert (await first).status == 200
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 200
    assert "gone" not in said(fake)
    await until(lambda: gateway_of(client).backends["a"].in_flight == 0)


async def test_slot_freed_on_another_backend_wakes_the_waiter(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b"])
    for fake, _, _ in fakes.values():
        fake.mode = "wait"
    client = await gateway_client(
        {
            "backends": [{"name": n, "url": u} for n, (_, _, u) in fakes.items()],
            "routing": {"health_interval_s": 60},
        }
    )
    held = [asyncio.create_task(client.post("/api/chat", json=CHAT)) for _ in range(2)]
    await until(lambda: all(len(calls(f, "/api/chat")) == 1 for f, _, _ in fakes.values()))
    waiting = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: depth(client) == 1)
    fakes["b"][0].release.set()
    await until(lambda: len(calls(fakes["b"][0], "/api/chat")) == 2, what="waiter went to b")
    fakes["a"][0].release.set()
    for task in (*held, waiting):
        assert (await task).status == 200
