"""The jobs HTTP API, both forms, against a real SQLite file and a fake backend."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from ollamux import hookimpl
from ollamux.exchange import Principal
from ollamux.plugins.jobs.routes import JOBS
from ollamux.testing import gateway_of
from tests.fakes.jobs_backend import JobsFake
from tests.jobs_support import eventually, job_doc, wait_status

MODEL = "llama3.2:latest"


@pytest.fixture
def jobs_gateway(gateway_client: Any, fake_jobs: tuple[JobsFake, str]) -> Any:
    async def make(jobs: dict[str, Any] | None = None, **extra: Any) -> Any:
        _backend, url = fake_jobs
        config = {"backends": [{"url": url, "max_concurrency": 8}], "jobs": jobs or {}, **extra}
        return await gateway_client(config)

    return make


# -- the simple form ---------------------------------------------------------------------------


async def test_prompt_is_answered_with_the_default_model(jobs_gateway: Any, fake_jobs: Any) -> None:
    client = await jobs_gateway({"default_model": "qwen2.5:0.5b"})
    resp = await client.post("/api/v1/prompt", json={"prompt": "hello"})
    assert resp.status == 200
    job_id = (await resp.json())["id"]

    async def completed() -> bool:
        r = await client.get(f"/api/v1/prompt/{job_id}/status")
        return (await r.json()) == {"id": job_id, "status": "completed"}

    await eventually(completed)
    result = await client.get(f"/api/v1/prompt/{job_id}/result")
    assert result.status == 200
    assert await result.json() == {"id": job_id, "status": "completed", "result": "echo: hello"}
    assert (await job_doc(client, job_id))["model"] == "qwen2.5:0.5b"


async def test_prompt_result_is_202_while_running(jobs_gateway: Any, fake_jobs: Any) -> None:
    backend, _ = fake_jobs
    client = await jobs_gateway()
    job_id = (await (await client.post("/api/v1/prompt", json={"prompt": "block"})).json())["id"]
    await wait_status(client, job_id, "processing")
    resp = await client.get(f"/api/v1/prompt/{job_id}/result")
    assert resp.status == 202
    assert await resp.json() == {"id": job_id, "status": "processing"}
    backend.unblock.set()
    await wait_status(client, job_id, "completed")


async def test_prompts_are_listed_newest_first_in_pages(jobs_gateway: Any) -> None:
    client = await jobs_gateway({"workers": 0})
    ids = []
    for i in range(7):
        resp = await client.post("/api/v1/prompt", json={"prompt": f"p{i}"})
        ids.append((await resp.json())["id"])
    first = await (await client.get("/api/v1/prompts?page=1&page_size=5")).json()
    second = await (await client.get("/api/v1/prompts?page=2&page_size=5")).json()
    assert [p["id"] for p in first["prompts"]] == ids[::-1][:5]
    assert [p["id"] for p in second["prompts"]] == ids[::-1][5:]
    assert (first["page"], first["page_size"], first["total"], first["total_pages"]) == (1, 5, 7, 2)
    assert set(first["prompts"][0]) == {"id", "status", "created_at", "updated_at"}
    assert first["prompts"][0]["status"] == "queued"


async def test_prompt_without_text_is_refused(jobs_gateway: Any) -> None:
    client = await jobs_gateway()
    resp = await client.post("/api/v1/prompt", json={"model": MODEL})
    assert resp.status == 400
    assert "prompt" in (await resp.json())["error"]
    listed = await (await client.get("/api/v1/prompts")).json()
    assert listed["total"] == 0


# -- the general form --------------------------------------------------------------------------


async def test_chat_job_result_is_the_complete_non_streamed_answer(
    jobs_gateway: Any, fake_jobs: Any
) -> None:
    backend, _ = fake_jobs
    client = await jobs_gateway()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    resp = await client.post("/jobs", json={"path": "/api/chat", "body": body})
    assert resp.status == 202
    created = await resp.json()
    assert created["status"] == "queued"
    doc = await wait_status(client, created["id"], "completed")
    assert doc["attempts"] == 1
    assert doc["backend"]
    assert doc["path"] == "/api/chat" and doc["model"] == MODEL
    result = await (await client.get(f"/jobs/{created['id']}/result")).json()
    assert result["message"] == {"role": "assistant", "content": "echo: hi"}
    assert result["stream_was"] is False
    assert backend.calls[created["id"]] == 1  # task id = job id


async def test_openai_chat_job_on_an_ollama_backend_gives_a_chat_completion(
    jobs_gateway: Any, fake_jobs: Any
) -> None:
    backend, _ = fake_jobs
    client = await jobs_gateway()
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    job_id = (
        await (
            await client.post("/jobs", json={"path": "/v1/chat/completions", "body": body})
        ).json()
    )["id"]
    await wait_status(client, job_id, "completed")
    result = await (await client.get(f"/jobs/{job_id}/result")).json()
    assert result["object"] == "chat.completion"
    assert result["choices"][0]["message"]["content"] == "echo: hi"
    assert backend.calls[job_id] == 1


async def test_a_job_is_tracked_as_the_task_with_its_id(jobs_gateway: Any) -> None:
    client = await jobs_gateway()
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "x"}}
    job_id = (await (await client.post("/jobs", json=job)).json())["id"]
    await wait_status(client, job_id, "completed")

    async def task_done() -> dict[str, Any] | None:
        resp = await client.get(f"/tasks/status/{job_id}")
        doc: dict[str, Any] = await resp.json() if resp.status == 200 else {}
        return doc if doc.get("state") == "SUCCESS" else None

    doc = await eventually(task_done)
    assert doc["extensions"]["path"] == "/api/generate"


async def test_embed_job_returns_embeddings(jobs_gateway: Any) -> None:
    client = await jobs_gateway()
    job = {"path": "/api/embed", "body": {"model": MODEL, "input": "text"}}
    job_id = (await (await client.post("/jobs", json=job)).json())["id"]
    await wait_status(client, job_id, "completed")
    result = await (await client.get(f"/jobs/{job_id}/result")).json()
    assert result["embeddings"] == [[0.5, 0.25]]


async def test_job_for_unknown_model_fails_with_the_backend_error(jobs_gateway: Any) -> None:
    client = await jobs_gateway()
    job = {"path": "/api/generate", "body": {"model": "nope:1b", "prompt": "x"}}
    job_id = (await (await client.post("/jobs", json=job)).json())["id"]
    doc = await wait_status(client, job_id, "failed")
    assert "404" in doc["error"] and "nope:1b" in doc["error"]
    resp = await client.get(f"/jobs/{job_id}/result")
    assert resp.status == 409
    assert (await resp.json())["status"] == "failed"


async def test_backend_failures_are_retried_until_max_attempts(
    jobs_gateway: Any, fake_jobs: Any
) -> None:
    backend, _ = fake_jobs
    backend.fail_status = 500
    client = await jobs_gateway({"max_attempts": 2}, routing={"retries": 0})
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "x"}}
    job_id = (await (await client.post("/jobs", json=job)).json())["id"]
    doc = await wait_status(client, job_id, "failed")
    assert doc["attempts"] == 2
    assert "backend trouble" in doc["error"]
    assert backend.calls[job_id] == 2


async def test_jobs_list_filters_by_status_and_pages(jobs_gateway: Any) -> None:
    client = await jobs_gateway({"workers": 0})
    for i in range(3):
        await client.post(
            "/jobs", json={"path": "/api/generate", "body": {"model": MODEL, "prompt": f"{i}"}}
        )
    one = (await (await client.get("/jobs?page_size=1")).json())["jobs"][0]["id"]
    assert (await client.delete(f"/jobs/{one}")).status == 200
    queued = await (await client.get("/jobs?status=queued&page_size=10")).json()
    cancelled = await (await client.get("/jobs?status=cancelled")).json()
    assert queued["total"] == 2 and len(queued["jobs"]) == 2
    assert [j["id"] for j in cancelled["jobs"]] == [one]
    page2 = await (await client.get("/jobs?page=2&page_size=2")).json()
    assert page2["total_pages"] == 2 and len(page2["jobs"]) == 1


async def test_unknown_job_is_404(jobs_gateway: Any) -> None:
    client = await jobs_gateway()
    for path in ("/jobs/nope", "/jobs/nope/result", "/api/v1/prompt/nope/status"):
        resp = await client.get(path)
        assert resp.status == 404
        assert "not found" in (await resp.json())["error"]


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "word"),
    [
        ({"path": "/api/pull", "body": {"model": MODEL}}, "path"),
        ({"path": "/api/chat", "body": {"messages": [{"role": "user", "content": "x"}]}}, "model"),
        ({"path": "/api/chat", "body": {"model": MODEL}}, "messages"),
        ({"path": "/api/generate", "body": "text"}, "body"),
        (
            {"path": "/api/generate", "body": {"model": MODEL, "prompt": "x"}, "priority": "hi"},
            "priority",
        ),
        ([1, 2], "object"),
    ],
)
async def test_bad_job_bodies_are_400_and_create_nothing(
    jobs_gateway: Any, payload: Any, word: str
) -> None:
    client = await jobs_gateway({"workers": 0})
    resp = await client.post("/jobs", json=payload)
    assert resp.status == 400
    assert word in (await resp.json())["error"]
    assert (await (await client.get("/jobs")).json())["total"] == 0


async def test_invalid_json_is_400(jobs_gateway: Any) -> None:
    client = await jobs_gateway({"workers": 0})
    resp = await client.post(
        "/jobs", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert "invalid JSON" in (await resp.json())["error"]


async def test_too_large_body_is_413(jobs_gateway: Any) -> None:
    client = await jobs_gateway({"workers": 0}, server={"max_body_mb": 0.001})
    body = {"model": MODEL, "prompt": "x" * 5000}
    resp = await client.post("/jobs", json={"path": "/api/generate", "body": body})
    assert resp.status == 413
    assert "exceeds" in (await resp.json())["error"]
    assert (await (await client.get("/jobs")).json())["total"] == 0


async def test_bad_page_arguments_are_400(jobs_gateway: Any) -> None:
    client = await jobs_gateway({"workers": 0})
    for query in ("page=0", "page_size=1000", "page=x", "status=done"):
        assert (await client.get(f"/jobs?{query}")).status == 400


async def test_full_backlog_is_503_with_retry_after(jobs_gateway: Any) -> None:
    client = await jobs_gateway({"workers": 0, "max_queued": 2})
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "x"}}
    for _ in range(2):
        assert (await client.post("/jobs", json=job)).status == 202
    resp = await client.post("/jobs", json=job)
    assert resp.status == 503
    assert resp.headers["Retry-After"]
    assert "backlog" in (await resp.json())["error"]
    assert (await (await client.get("/jobs")).json())["total"] == 2


# -- cancel ------------------------------------------------------------------------------------


async def test_cancel_queued_job(jobs_gateway: Any, fake_jobs: Any) -> None:
    backend, _ = fake_jobs
    client = await jobs_gateway({"workers": 0})
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "x"}}
    job_id = (await (await client.post("/jobs", json=job)).json())["id"]
    resp = await client.delete(f"/jobs/{job_id}")
    assert resp.status == 200
    assert await resp.json() == {"id": job_id, "status": "cancelled"}
    assert (await job_doc(client, job_id))["status"] == "cancelled"
    assert (await client.delete(f"/jobs/{job_id}")).status == 409
    assert backend.calls[job_id] == 0


async def test_cancel_running_job_cancels_its_upstream_request(
    jobs_gateway: Any, fake_jobs: Any
) -> None:
    backend, _ = fake_jobs
    client = await jobs_gateway()
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "block me"}}
    job_id = (await (await client.post("/jobs", json=job)).json())["id"]
    await wait_status(client, job_id, "processing")
    await eventually(lambda: _true(backend.blocked))
    assert (await client.delete(f"/jobs/{job_id}")).status == 200
    await eventually(lambda: _true(backend.cancelled.is_set()))
    doc = await job_doc(client, job_id)
    assert doc["status"] == "cancelled"
    assert not gateway_of(client).gauges["jobs_running"]()


async def _true(value: Any) -> Any:
    return value


# -- order -------------------------------------------------------------------------------------


async def test_higher_priority_runs_first_then_fifo(jobs_gateway: Any, fake_jobs: Any) -> None:
    backend, _ = fake_jobs
    client = await jobs_gateway({"workers": 1})
    blocker = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "block"}}
    await client.post("/jobs", json=blocker)
    await eventually(lambda: _true(backend.blocked))
    for name, priority in [("low1", 0), ("high1", 5), ("low2", 0), ("high2", 5), ("mid", 2)]:
        job = {
            "path": "/api/generate",
            "body": {"model": MODEL, "prompt": name},
            "priority": priority,
        }
        await client.post("/jobs", json=job)
    backend.unblock.set()
    await eventually(lambda: _true(len(backend.order) == 6))
    assert backend.order[1:] == ["high1", "high2", "mid", "low1", "low2"]


async def test_shutdown_puts_running_jobs_back_in_the_queue(
    jobs_gateway: Any, fake_jobs: Any, tmp_path: Path
) -> None:
    backend, _ = fake_jobs
    client = await jobs_gateway()
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "block"}}
    job_id = (await (await client.post("/jobs", json=job)).json())["id"]
    await eventually(lambda: _true(backend.blocked))
    await client.close()
    await eventually(lambda: _true(backend.cancelled.is_set()))
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        row = db.execute("SELECT status, attempts FROM jobs WHERE id=?", (job_id,)).fetchone()
    assert row == ("queued", 0)


async def test_gauges_are_published(jobs_gateway: Any) -> None:
    client = await jobs_gateway({"workers": 0})
    await client.post("/api/v1/prompt", json={"prompt": "x"})
    gauges = gateway_of(client).gauges
    await eventually(lambda: _true(gauges["jobs_queued"]() == 1))
    assert gauges["jobs_running"]() == 0


async def test_jobs_survive_in_the_sqlite_file(jobs_gateway: Any, tmp_path: Path) -> None:
    client = await jobs_gateway({"workers": 0})
    job_id = (await (await client.post("/api/v1/prompt", json={"prompt": "x"})).json())["id"]
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        row = db.execute("SELECT status, body FROM jobs WHERE id=?", (job_id,)).fetchone()
    assert row[0] == "queued"
    assert json.loads(row[1])["prompt"] == "x"


# -- the page and the root -----------------------------------------------------------------------


async def test_root_serves_the_page_to_browsers(jobs_gateway: Any) -> None:
    client = await jobs_gateway({"workers": 0})
    resp = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "/jobs-ui/jobs.js" in await resp.text()
    for asset, kind in (("jobs.js", "text/javascript"), ("jobs.css", "text/css")):
        got = await client.get(f"/jobs-ui/{asset}")
        assert got.status == 200 and got.content_type == kind
    assert (await client.get("/jobs-ui/secret.py")).status == 404
    assert (await client.get("/list")).content_type == "text/html"


async def test_root_still_answers_like_ollama_for_api_clients(jobs_gateway: Any) -> None:
    client = await jobs_gateway({"workers": 0})
    resp = await client.get("/")
    assert resp.status == 200
    assert await resp.text() == "Ollama is running"
    head = await client.head("/")
    assert head.status == 200


# -- owners ------------------------------------------------------------------------------------


class _HeaderAuth:
    """Stands in for the auth plugin: the caller named by X-Test-User (admin if "root")."""

    @staticmethod
    def _principal(name: str) -> Principal:
        return Principal(name=name, authenticated=True, admin=name == "root", priority=7)

    @hookimpl
    def ollamux_authenticate(self, request: web.Request) -> Principal | None:
        name = request.headers.get("X-Test-User")
        return self._principal(name) if name else None

    @hookimpl
    def ollamux_resolve_principal(self, name: str) -> Principal:
        return self._principal(name)


async def test_with_auth_a_key_sees_and_cancels_only_its_own_jobs(
    gateway_client: Any, fake_jobs: Any
) -> None:
    _backend, url = fake_jobs
    config = {"backends": [{"url": url}], "jobs": {"workers": 0}}
    client = await gateway_client(config, plugins=[("header_auth", _HeaderAuth())])
    alice, bob, root = ({"X-Test-User": n} for n in ("alice", "bob", "root"))
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "x"}}
    mine = (await (await client.post("/jobs", json=job, headers=alice)).json())["id"]
    await client.post("/jobs", json=job, headers=bob)

    listed = await (await client.get("/jobs", headers=alice)).json()
    assert [j["id"] for j in listed["jobs"]] == [mine]
    assert listed["jobs"][0]["owner"] == "alice"
    assert listed["jobs"][0]["priority"] == 7  # the key's priority when the job names none
    assert (await client.get(f"/jobs/{mine}", headers=bob)).status == 404
    assert (await client.delete(f"/jobs/{mine}", headers=bob)).status == 404
    assert (await (await client.get("/jobs", headers=root)).json())["total"] == 2
    assert (await client.delete(f"/jobs/{mine}", headers=alice)).status == 200


async def test_jobs_run_as_their_owner(gateway_client: Any, fake_jobs: Any) -> None:
    backend, url = fake_jobs
    seen: list[tuple[str, int, str, bool]] = []

    class Spy:
        @hookimpl
        def ollamux_upstream_started(self, exchange: Any) -> None:
            p = exchange.principal
            seen.append((p.name, p.priority, exchange.task_id, exchange.request is None))

    config = {"backends": [{"url": url}]}
    client = await gateway_client(config, plugins=[("header_auth", _HeaderAuth()), ("spy", Spy())])
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "x"}}
    job_id = (
        await (await client.post("/jobs", json=job, headers={"X-Test-User": "alice"})).json()
    )["id"]
    await eventually(lambda: _true(backend.calls[job_id]))
    assert ("alice", 7, job_id, True) in seen  # in-process, as alice, task id = job id


# -- Redis: several instances, one queue -----------------------------------------------------------


@pytest.fixture
async def redis_jobs(redis_url: str) -> AsyncIterator[dict[str, Any]]:
    """A ``jobs`` section on the private Redis under a prefix of this test's own."""
    prefix = f"test-jobs-{uuid.uuid4().hex}:"
    yield {"store": "redis", "redis_url": redis_url, "redis_prefix": prefix}
    client = aioredis.from_url(redis_url)
    async for key in client.scan_iter(match=prefix + "*"):
        await client.delete(key)
    await client.aclose()


async def test_redis_store_runs_jobs_end_to_end(
    jobs_gateway: Any, redis_jobs: dict[str, Any]
) -> None:
    client = await jobs_gateway(redis_jobs)
    job_id = (await (await client.post("/api/v1/prompt", json={"prompt": "hi"})).json())["id"]
    await wait_status(client, job_id, "completed")
    result = await (await client.get(f"/api/v1/prompt/{job_id}/result")).json()
    assert result["result"] == "echo: hi"


async def test_job_cancelled_on_one_instance_stops_running_on_another(
    jobs_gateway: Any, fake_jobs: Any, redis_jobs: dict[str, Any]
) -> None:
    backend, _ = fake_jobs
    jobs = {**redis_jobs, "lease_s": 3}
    runner = await jobs_gateway({**jobs, "workers": 1})
    other = await jobs_gateway({**jobs, "workers": 0})
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "block"}}
    job_id = (await (await other.post("/jobs", json=job)).json())["id"]
    await eventually(lambda: _true(backend.blocked))
    app = gateway_of(runner).app
    assert app is not None and job_id in app[JOBS].runner.running
    assert (await other.delete(f"/jobs/{job_id}")).status == 200
    await eventually(lambda: _true(backend.cancelled.is_set()))
    assert (await job_doc(runner, job_id))["status"] == "cancelled"
