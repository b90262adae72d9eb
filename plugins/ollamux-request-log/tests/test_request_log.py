"""The request log: one JSON line per finished request, in the configured file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ollamux_request_log
from aiohttp import web


async def _backend(aiohttp_server: Any) -> str:
    """A tiny Ollama-like backend: /api/generate answers, /api/missing is a 404."""

    async def generate(request: web.Request) -> web.Response:
        return web.json_response({"model": "m", "response": "hi", "done": True})

    app = web.Application()
    app.router.add_post("/api/generate", generate)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


def _logs(folder: Path) -> list[Path]:
    return list(folder.glob("*.jsonl"))


def _config(url: str, path: Path) -> dict[str, Any]:
    return {
        "backends": [{"name": "b1", "url": url}],
        "plugins": {"config": {"request_log": {"path": str(path)}}},
    }


async def test_a_finished_request_appends_one_line(
    gateway_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    path = tmp_path / "requests.jsonl"
    client = await gateway_client(
        _config(await _backend(aiohttp_server), path),
        plugins=[("request_log", ollamux_request_log)],
    )
    resp = await client.post("/api/generate", json={"model": "m", "prompt": "x", "stream": False})
    assert resp.status == 200
    await resp.read()
    (line,) = path.read_text().splitlines()
    row = json.loads(line)
    assert {k: row[k] for k in ("method", "path", "model", "backend", "status", "outcome")} == {
        "method": "POST",
        "path": "/api/generate",
        "model": "m",
        "backend": "b1",
        "status": 200,
        "outcome": "SUCCESS",
    }
    assert row["duration_ms"] >= 0
    assert row["task_id"] == resp.headers["X-Task-Id"]  # given by ollamux's task tracker


async def test_a_failed_request_is_logged_as_failed(
    gateway_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    path = tmp_path / "requests.jsonl"
    client = await gateway_client(
        _config(await _backend(aiohttp_server), path),
        plugins=[("request_log", ollamux_request_log)],
    )
    resp = await client.post("/api/missing", json={"model": "m"})
    assert resp.status == 404
    await resp.read()
    row = json.loads(path.read_text().splitlines()[-1])
    assert (row["status"], row["outcome"]) == (404, "FAILED")


async def test_without_a_path_nothing_is_written(
    gateway_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    client = await gateway_client(
        {"backends": [{"url": await _backend(aiohttp_server)}]},
        plugins=[("request_log", ollamux_request_log)],
    )
    resp = await client.post("/api/generate", json={"model": "m", "prompt": "x", "stream": False})
    assert resp.status == 200
    assert _logs(tmp_path) == []
