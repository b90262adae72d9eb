"""Task lifecycle: every request gets a task id and goes PENDING -> RUNNING -> an end state,
recorded in each store (memory, a real SQLite file, the real Redis)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ollamux import hookimpl
from ollamux.exchange import Exchange
from tests.tasks_util import MODEL, redis_prefix, store_config, wait_for_state, wait_for_status

__all__ = ["redis_prefix"]

DEADLINE_S = 10


class Gate:
    """Test plugin: holds every request in backend selection until ``opened`` is set."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()

    @hookimpl(tryfirst=True)
    async def ollamux_select_backend(self, exchange: Exchange) -> None:
        await self.opened.wait()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_client(
    request: Any, gateway_client: Any, fake_ollama: Any, tmp_path: Path, redis_prefix: str
) -> Any:
    _fake, url = fake_ollama

    async def make(plugins: Any = (), **tasks: Any) -> Any:
        cfg = store_config(request.param, tmp_path, redis_prefix, **tasks)
        cfg["backends"] = [{"url": url, "name": "gpu1"}]
        cfg["routing"] = {"retries": 0}
        return await gateway_client(cfg, plugins=plugins)

    return make


def chat(task_id: str | None = None, stream: bool = True) -> dict[str, Any]:
    headers = {"X-Task-Id": task_id} if task_id else {}
    return {"json": {"model": MODEL, "messages": [], "stream": stream}, "headers": headers}


async def test_generated_task_id_is_returned_and_ends_in_success(make_client: Any) -> None:
    client = await make_client()
    resp = await client.post("/api/chat", **chat())
    assert resp.status == 200
    await resp.read()
    task_id = resp.headers["X-Task-Id"]
    assert len(task_id) == 36  # a UUID4
    doc = await wait_for_state(client, task_id, "SUCCESS")
    assert (doc["task_id"], doc["stage"], doc["message"]) == (
        task_id,
        "completed",
        "completed",
    )
    ext = doc["extensions"]
    assert (ext["method"], ext["path"], ext["stream"]) == ("POST", "/api/chat", True)
    assert (ext["model"], ext["backend"], ext["attempts"]) == (MODEL, "gpu1", 1)
    assert ext["chunks"] >= 1
    assert ext["ttft_ms"] >= 0
    assert ext["queued_ms"] >= 0


async def test_document_has_the_published_shape(make_client: Any) -> None:
    client = await make_client()
    resp = await client.post("/api/chat", **chat("shape-1"))
    await resp.read()
    doc = await wait_for_state(client, "shape-1", "SUCCESS")
    assert set(doc) == {
        "version", "event_type", "event_id", "algorithm_id", "task_id",
        "state", "stage", "message", "extensions", "timestamp",
    }  # fmt: skip
    assert (doc["version"], doc["event_type"], doc["algorithm_id"]) == (
        "1.0",
        "task.status.update",
        "ollama-openai",
    )
    assert isinstance(doc["timestamp"], int)
    assert {"method", "path", "stream", "model", "backend", "chunks", "ttft_ms"} <= set(
        doc["extensions"]
    )
    assert {"queued_ms", "attempts"} <= set(doc["extensions"])


async def test_task_goes_pending_then_running_then_success(
    make_client: Any, fake_ollama: Any
) -> None:
    fake, _url = fake_ollama
    fake.mode = "wait"
    gate = Gate()
    client = await make_client(plugins=[("gate", gate)], heartbeat_s=0.05)
    request = asyncio.ensure_future(client.post("/api/chat", **chat("life-1")))
    pending = await wait_for_state(client, "life-1", "PENDING")
    assert (pending["stage"], pending["extensions"]["backend"]) == ("queued", None)
    gate.opened.set()
    resp = await asyncio.wait_for(request, DEADLINE_S)
    assert resp.headers["X-Task-Id"] == "life-1"
    await resp.content.readline()
    running = await wait_for_status(
        client, "life-1", lambda d: d["state"] == "RUNNING" and d["extensions"]["chunks"] >= 1
    )
    assert (running["stage"], running["message"]) == ("streaming", "stream alive")
    assert running["extensions"]["backend"] == "gpu1"
    assert running["extensions"]["ttft_ms"] is not None
    fake.release.set()
    await resp.read()
    done = await wait_for_state(client, "life-1", "SUCCESS")
    assert done["extensions"]["chunks"] > running["extensions"]["chunks"]


async def test_heartbeat_refreshes_running_task_during_slow_stream(
    make_client: Any, fake_ollama: Any
) -> None:
    fake, _url = fake_ollama
    fake.mode = "wait"
    client = await make_client(heartbeat_s=0.05)
    resp = await client.post("/api/chat", **chat("beat-1"))
    await resp.content.readline()
    first = await wait_for_status(
        client, "beat-1", lambda d: d["state"] == "RUNNING" and d["extensions"]["chunks"] >= 1
    )
    # Nothing happens on the stream, yet the document keeps being rewritten.
    later = await wait_for_status(
        client, "beat-1", lambda d: d["event_id"] != first["event_id"] and d["state"] == "RUNNING"
    )
    assert later["stage"] == "streaming"
    assert later["extensions"]["chunks"] == first["extensions"]["chunks"]
    fake.release.set()
    await resp.read()
    await wait_for_state(client, "beat-1", "SUCCESS")


async def test_non_streaming_request_is_running_while_backend_works(
    make_client: Any, fake_ollama: Any
) -> None:
    fake, _url = fake_ollama
    fake.mode = "hang"
    client = await make_client()
    request = asyncio.ensure_future(client.post("/api/chat", **chat("fwd-1", stream=False)))
    running = await wait_for_state(client, "fwd-1", "RUNNING")
    assert (running["stage"], running["message"]) == ("forwarded", "sent to backend gpu1")
    assert running["extensions"]["stream"] is False
    request.cancel()
    await wait_for_state(client, "fwd-1", "CANCELLED")


async def test_backend_error_marks_task_failed_with_status_and_message(
    make_client: Any, fake_ollama: Any
) -> None:
    fake, _url = fake_ollama
    fake.mode = "status"
    client = await make_client()
    resp = await client.post("/api/chat", **chat("err-1"))
    assert resp.status == 500
    assert resp.headers["X-Task-Id"] == "err-1"
    doc = await wait_for_state(client, "err-1", "FAILED")
    assert doc["stage"] == "failed"
    assert "500" in doc["message"]
    assert "boom" in doc["message"]
    assert doc["extensions"]["status"] == 500


async def test_unknown_model_marks_task_failed_with_backend_message(make_client: Any) -> None:
    client = await make_client()
    resp = await client.post(
        "/api/chat", json={"model": "nope:1b", "messages": []}, headers={"X-Task-Id": "err-2"}
    )
    assert resp.status == 404
    doc = await wait_for_state(client, "err-2", "FAILED")
    assert "model 'nope:1b' not found" in doc["message"]
    assert doc["extensions"]["status"] == 404


async def test_stream_breaking_midway_marks_task_failed(make_client: Any, fake_ollama: Any) -> None:
    fake, _url = fake_ollama
    fake.mode = "die"
    client = await make_client()
    resp = await client.post("/api/chat", **chat("brk-1"))
    assert resp.status == 200
    body = await resp.text()
    assert '"error"' in body.splitlines()[-1]
    doc = await wait_for_state(client, "brk-1", "FAILED")
    assert "mid-stream" in doc["message"]


async def test_error_line_in_stream_marks_task_failed(make_client: Any, fake_ollama: Any) -> None:
    fake, _url = fake_ollama
    fake.mode = "error_line"
    client = await make_client()
    resp = await client.post("/api/chat", **chat("brk-2"))
    await resp.read()
    doc = await wait_for_state(client, "brk-2", "FAILED")
    assert doc["message"] == "model runner crashed"


async def test_client_disconnect_mid_stream_marks_task_cancelled(
    make_client: Any, fake_ollama: Any
) -> None:
    fake, _url = fake_ollama
    fake.mode = "wait"
    client = await make_client()
    resp = await client.post("/api/chat", **chat("gone-1"))
    await resp.content.readline()
    await wait_for_state(client, "gone-1", "RUNNING")
    resp.close()  # the client goes away mid-stream
    fake.release.set()
    doc = await wait_for_state(client, "gone-1", "CANCELLED")
    assert (doc["stage"], doc["message"]) == ("cancelled", "client disconnected")


async def test_unreachable_backend_fails_task_and_error_carries_task_id(
    gateway_client: Any, tmp_path: Path
) -> None:
    client = await gateway_client(
        {
            "backends": [{"url": "http://127.0.0.1:9", "name": "dead"}],
            "routing": {"retries": 0},
            "tasks": {"store": "sqlite", "sqlite_path": str(tmp_path / "t.db")},
        }
    )
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status == 502
    task_id = resp.headers["X-Task-Id"]
    doc = await wait_for_state(client, task_id, "FAILED")
    assert "unreachable" in doc["message"]
    assert doc["extensions"]["status"] == 502


async def test_same_caller_may_reuse_its_task_id(make_client: Any) -> None:
    client = await make_client()
    for _ in range(2):
        resp = await client.post("/api/chat", **chat("again-1"))
        assert resp.status == 200
        await resp.read()
    doc = await wait_for_state(client, "again-1", "SUCCESS")
    assert doc["task_id"] == "again-1"


async def test_openai_endpoint_streams_carry_task_id(gateway_client: Any, fake_openai: Any) -> None:
    _fake, url = fake_openai
    client = await gateway_client({"backends": [{"url": url, "api": "openai"}]})
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "qwen2.5-7b", "messages": [], "stream": True},
        headers={"X-Task-Id": "oa-1"},
    )
    assert resp.headers["X-Task-Id"] == "oa-1"
    assert (await resp.text()).rstrip().endswith("data: [DONE]")
    doc = await wait_for_state(client, "oa-1", "SUCCESS")
    assert doc["extensions"]["path"] == "/v1/chat/completions"
