"""Running one golden wire case: the client request through a real gateway over loopback to
a scripted backend, then what the backend received and what the client got back, checked
against the case. The translation and front suites differ only in how a streamed body is
split into frames (``frames(kind, body)``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.fakes.ollama_backend import Scripted
from tests.golden import cases as golden

Frames = Callable[[str, bytes], list[Any]]

_PROBES = ("/api/tags", "/api/ps", "/v1/models")


async def run_case(
    case: dict[str, Any], gateway_client: Any, aiohttp_server: Any, frames: Frames
) -> None:
    fake = Scripted()
    answer = case.get("answer")
    if answer is not None:
        content_type, pieces = golden.answer_pieces(answer)
        fake.script(answer.get("status", 200), content_type, pieces)
    server = await aiohttp_server(fake.app())
    backend = {"url": str(server.make_url("")).rstrip("/"), "api": case["backend"]}
    if "native" in case:
        backend["native"] = case["native"]
    config = {
        "backends": [backend],
        "routing": {"retries": 0},
        "plugins": {"config": {"translate": case.get("settings", {})}},
    }
    client = await gateway_client(config)
    request = case["request"]
    task_id = "golden-" + case["id"].replace("/", "-")[:100]
    kwargs: dict[str, Any] = {"headers": {"X-Task-Id": task_id}}
    if "json" in request:
        kwargs["json"] = request["json"]
    elif "raw" in request:
        kwargs["data"] = request["raw"].encode()
        kwargs["headers"]["Content-Type"] = "application/json"
    resp = await client.request(request.get("method", "POST"), request["path"], **kwargs)
    body = await resp.read()

    received = [r for r in fake.received if r.path not in _PROBES]
    upstream = case.get("upstream")
    if upstream is None or upstream.get("none"):
        assert received == [], f"the backend was called: {received}"
    else:
        assert len(received) == 1, received
        got = received[0]
        assert (got.method, got.path) == (upstream.get("method", "POST"), upstream["path"])
        if "json" in upstream:
            found = golden.mismatch(upstream["json"], got.body)
            assert not found, found
        if "has" in upstream:
            found = golden.subset_mismatch(upstream["has"], got.body)
            assert not found, found
        for key in upstream.get("lacks", []):
            assert key not in got.body, f"{key} reached the backend"

    expect = case["expect"]
    assert resp.status == expect.get("status", 200), body[:300]
    if "type" in expect:
        assert resp.content_type == expect["type"]
    for kind in ("sse", "ndjson"):
        if kind in expect:
            found = golden.mismatch(expect[kind], frames(kind, body))
            assert not found, f"{found}\n{body.decode()}"
    if "json" in expect:
        found = golden.mismatch(expect["json"], json.loads(body))
        assert not found, f"{found}\n{body.decode()}"
    if "has" in expect:
        found = golden.subset_mismatch(expect["has"], json.loads(body))
        assert not found, f"{found}\n{body.decode()}"
    if "task" in expect:
        status = await (await client.get(f"/tasks/status/{task_id}")).json()
        assert status["state"] == expect["task"]
