"""Error statuses in the endpoint's dialect, and failures inside a streamed answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ollamux import hookimpl
from ollamux.exchange import Exchange, TaskState
from ollamux.transforms import ResponseTransform
from tests.fakes.finished import Finished

CHAT = {"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}
OPENAI_CHAT = {"model": "qwen2.5-7b", "messages": [{"role": "user", "content": "hi"}]}


def _assert_ollama_error(body: Any) -> str:
    assert set(body) == {"error"}
    assert isinstance(body["error"], str)
    return str(body["error"])


def _assert_openai_error(body: Any) -> dict[str, Any]:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


def _generation_calls(fake: Any) -> list[Any]:
    """What a fake received, minus the balancer's health probes and listings."""
    return [r for r in fake.received if r.method == "POST"]


# -- unreachable backend: 502 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"), [("/api/chat", CHAT), ("/v1/chat/completions", OPENAI_CHAT)]
)
async def test_unreachable_backend_is_502_in_the_endpoints_dialect(
    gateway_client: Any, unused_tcp_port: int, path: str, body: dict[str, Any]
) -> None:
    client = await gateway_client({"backends": [{"url": f"http://127.0.0.1:{unused_tcp_port}"}]})
    resp = await client.post(path, json=body)
    assert resp.status == 502
    if path.startswith("/v1/"):
        error = _assert_openai_error(await resp.json())
        assert "unreachable" in error["message"]
        assert error["type"] == "api_error"
    else:
        assert "unreachable" in _assert_ollama_error(await resp.json())


# -- upstream timeout: 504 -----------------------------------------------------------------


async def test_ollama_upstream_timeout_is_504(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    fake.mode = "hang"
    client = await gateway_client(
        {"backends": [{"url": url}], "routing": {"read_timeout_s": 0.2, "retries": 0}}
    )
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 504
    assert "timed out" in _assert_ollama_error(await resp.json())


async def test_openai_upstream_timeout_is_504(gateway_client: Any, fake_openai: Any) -> None:
    fake, url = fake_openai
    fake.mode = "hang"
    client = await gateway_client(
        {
            "backends": [{"url": url, "api": "openai"}],
            "routing": {"read_timeout_s": 0.2, "retries": 0},
        }
    )
    resp = await client.post("/v1/chat/completions", json=OPENAI_CHAT)
    assert resp.status == 504
    error = _assert_openai_error(await resp.json())
    assert error["type"] == "timeout_error"
    assert "timed out" in error["message"]


# -- bad JSON: 400 ---------------------------------------------------------------------------


async def test_bad_json_is_400_on_ollama_paths(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post(
        "/api/chat", data=b'{"model": "x", ', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert "invalid JSON" in _assert_ollama_error(await resp.json())
    assert _generation_calls(fake) == []


async def test_bad_json_is_400_on_openai_paths(gateway_client: Any, fake_openai: Any) -> None:
    fake, url = fake_openai
    client = await gateway_client({"backends": [{"url": url, "api": "openai"}]})
    resp = await client.post(
        "/v1/chat/completions", data=b"not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    error = _assert_openai_error(await resp.json())
    assert error["type"] == "invalid_request_error"
    assert _generation_calls(fake) == []


async def test_a_json_body_that_is_not_an_object_is_400(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/api/generate", json=["a", "list"])
    assert resp.status == 400
    assert "JSON object" in _assert_ollama_error(await resp.json())


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/api/embed", "/api/show"])
async def test_a_body_without_a_model_is_400_on_ollama_paths(
    gateway_client: Any, fake_ollama: Any, path: str
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post(path, json={"messages": [], "prompt": "x", "input": "x"})
    assert resp.status == 400
    assert _assert_ollama_error(await resp.json()) == "model is required"
    assert _generation_calls(fake) == []


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"])
async def test_a_body_without_a_model_is_400_on_openai_paths(
    gateway_client: Any, fake_openai: Any, path: str
) -> None:
    fake, url = fake_openai
    client = await gateway_client({"backends": [{"url": url, "api": "openai"}]})
    resp = await client.post(path, json={"messages": [], "prompt": "x", "input": "x"})
    assert resp.status == 400
    error = _assert_openai_error(await resp.json())
    assert (error["message"], error["param"]) == ("model is required", "model")
    assert _generation_calls(fake) == []


# -- oversized body: 413 ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/generate", "/v1/completions"])
async def test_body_over_max_body_mb_is_413(
    gateway_client: Any, fake_ollama: Any, path: str
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}], "server": {"max_body_mb": 0.01}})
    resp = await client.post(path, json={"model": "llama3.2:latest", "prompt": "x" * 20_000})
    assert resp.status == 413
    body = await resp.json()
    if path.startswith("/v1/"):
        assert "exceeds" in _assert_openai_error(body)["message"]
    else:
        assert "exceeds" in _assert_ollama_error(body)
    assert _generation_calls(fake) == []


async def test_body_under_max_body_mb_passes(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}], "server": {"max_body_mb": 0.01}})
    resp = await client.post(
        "/api/generate", json={"model": "llama3.2:latest", "prompt": "x" * 100, "stream": False}
    )
    assert resp.status == 200


# -- backend 4xx / 5xx passed through --------------------------------------------------------


@pytest.mark.parametrize("status", [404, 429, 500, 503])
async def test_ollama_backend_error_status_and_body_are_passed_through(
    gateway_client: Any, fake_ollama: Any, status: int
) -> None:
    fake, url = fake_ollama
    fake.mode = "status"
    fake.status = status
    fake.status_body = {"error": f"backend says {status}"}
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == status
    assert await resp.json() == {"error": f"backend says {status}"}


@pytest.mark.parametrize("status", [400, 401, 500, 502])
async def test_openai_backend_error_status_and_body_are_passed_through(
    gateway_client: Any, fake_openai: Any, status: int
) -> None:
    fake, url = fake_openai
    fake.mode = "status"
    fake.status = status
    fake.status_body = {"error": {"message": f"vllm says {status}", "type": "x", "code": None}}
    client = await gateway_client({"backends": [{"url": url, "api": "openai"}]})
    resp = await client.post("/v1/chat/completions", json=OPENAI_CHAT)
    assert resp.status == status
    assert await resp.json() == fake.status_body


async def test_a_backend_5xx_is_retried_on_another_backend(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    from tests.fakes.ollama_backend import FakeOllama

    broken, healthy = FakeOllama(mode="status", status=500), FakeOllama()
    urls = [
        str((await aiohttp_server(f.app())).make_url("")).rstrip("/") for f in (broken, healthy)
    ]
    client = await gateway_client(
        {"backends": [{"name": "a", "url": urls[0]}, {"name": "b", "url": urls[1]}]}
    )
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 200
    assert len(_generation_calls(broken)) == 1
    assert len(_generation_calls(healthy)) == 1


async def test_a_backend_4xx_is_not_retried(gateway_client: Any, aiohttp_server: Any) -> None:
    from tests.fakes.ollama_backend import FakeOllama

    first, second = FakeOllama(mode="status", status=404), FakeOllama(mode="status", status=404)
    urls = [str((await aiohttp_server(f.app())).make_url("")).rstrip("/") for f in (first, second)]
    client = await gateway_client(
        {"backends": [{"name": "a", "url": urls[0]}, {"name": "b", "url": urls[1]}]}
    )
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 404
    assert len(_generation_calls(first)) + len(_generation_calls(second)) == 1


# -- failures inside a 200 stream ------------------------------------------------------------


async def test_an_error_line_inside_a_200_stream_marks_the_request_failed(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "error_line"
    finished = Finished()
    client = await gateway_client({"backends": [{"url": url}]}, plugins=[("finished", finished)])
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 200
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert lines[-1] == {"error": "model runner crashed"}
    exchange = await finished.last()
    assert exchange.outcome is TaskState.FAILED
    assert exchange.error == "model runner crashed"


async def test_a_successful_stream_is_marked_success(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    finished = Finished()
    client = await gateway_client({"backends": [{"url": url}]}, plugins=[("finished", finished)])
    resp = await client.post("/api/chat", json=CHAT)
    await resp.read()
    exchange = await finished.last()
    assert (exchange.outcome, exchange.status) == (TaskState.SUCCESS, 200)


async def test_a_stream_broken_midway_ends_with_an_ndjson_error_line(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "die"
    finished = Finished()
    client = await gateway_client({"backends": [{"url": url}]}, plugins=[("finished", finished)])
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 200
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert [x["message"]["content"] for x in lines[:-1]] == ["Hello", " there"]
    assert "failed mid-stream" in _assert_ollama_error(lines[-1])
    assert (await finished.last()).outcome is TaskState.FAILED


async def test_a_stream_broken_midway_ends_with_an_sse_error_event(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    fake.mode = "die"
    finished = Finished()
    client = await gateway_client(
        {"backends": [{"url": url, "api": "openai"}]}, plugins=[("finished", finished)]
    )
    resp = await client.post("/v1/chat/completions", json={**OPENAI_CHAT, "stream": True})
    assert resp.status == 200
    events = [e for e in (await resp.text()).split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert "[DONE]" not in events[-1]
    error = _assert_openai_error(json.loads(events[-1][len("data: ") :]))
    assert "failed mid-stream" in error["message"]
    assert (await finished.last()).outcome is TaskState.FAILED


async def test_a_stream_silent_past_read_timeout_ends_with_an_error_line(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "hang_body"  # one line, then silence
    finished = Finished()
    client = await gateway_client(
        {"backends": [{"url": url}], "routing": {"read_timeout_s": 0.2}},
        plugins=[("finished", finished)],
    )
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 200
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert lines[0]["message"]["content"] == "Hello"
    assert "timed out" in _assert_ollama_error(lines[-1])
    assert (await finished.last()).outcome is TaskState.FAILED


# -- bugs in plugins -------------------------------------------------------------------------


class BrokenRewrite(Finished):
    @hookimpl
    def ollamux_rewrite_request(self, exchange: Exchange) -> None:
        raise RuntimeError("plugin bug")


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
async def test_a_plugin_bug_before_any_byte_is_a_500_in_the_dialect(
    gateway_client: Any, fake_ollama: Any, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = fake_ollama
    plugin = BrokenRewrite()
    client = await gateway_client({"backends": [{"url": url}]}, plugins=[("broken", plugin)])
    resp = await client.post(path, json=CHAT)
    assert resp.status == 500
    body = await resp.json()
    if path.startswith("/v1/"):
        assert _assert_openai_error(body)["message"] == "internal error"
    else:
        assert _assert_ollama_error(body) == "internal error"
    exchange = await plugin.last()
    assert (exchange.outcome, exchange.status) == (TaskState.FAILED, 500)
    assert "plugin bug" in exchange.error
    assert _generation_calls(fake) == []
    # Other plugins' background tasks may log too under load: look at the pipeline's lines.
    (record,) = [r for r in caplog.records if r.exc_info and r.name == "ollamux.pipeline"]
    assert record.getMessage() == f"internal error: POST {path}"


class BrokenTransform(Finished):
    @hookimpl
    def ollamux_transform_response(self, exchange: Exchange, head: Any) -> Any:
        class Breaks(ResponseTransform):
            def end(self) -> bytes:  # after the body went out
                raise ValueError("transform bug")

        return Breaks()


async def test_a_plugin_bug_mid_stream_drops_the_connection_and_fails_the_request(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    plugin = BrokenTransform()
    client = await gateway_client({"backends": [{"url": url}]}, plugins=[("broken", plugin)])
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    exchange = await plugin.last()
    assert exchange.outcome is TaskState.FAILED
    assert "transform bug" in exchange.error


async def test_an_error_line_split_across_reads_still_marks_the_request_failed(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    first_half_seen = asyncio.Event()

    async def chat(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        await resp.write(b'{"model": "m", "done": false}\n{"error": "model run')
        await first_half_seen.wait()  # the gateway relayed the first half on its own
        await resp.write(b'ner crashed"}\n')
        await resp.write_eof()
        return resp

    backend = web.Application()
    backend.router.add_post("/api/chat", chat)
    server = await aiohttp_server(backend)
    finished = Finished()
    client = await gateway_client(
        {"backends": [{"url": str(server.make_url("")).rstrip("/")}]},
        plugins=[("finished", finished)],
    )
    resp = await client.post("/api/chat", json=CHAT)
    received = b""
    while b"model run" not in received:
        received += await asyncio.wait_for(resp.content.readany(), 10)
    first_half_seen.set()
    received += await resp.read()
    assert received.splitlines()[-1] == b'{"error": "model runner crashed"}'
    exchange = await finished.last()
    assert exchange.outcome is TaskState.FAILED
    assert exchange.error.startswith("model run")


# -- error bodies that are not in the endpoint's dialect -------------------------------------


async def test_a_plain_text_backend_404_becomes_an_ollama_error(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.get("/api/no-such-endpoint")
    assert resp.status == 404
    assert resp.headers["Content-Type"].startswith("application/json")
    assert _assert_ollama_error(await resp.json()) == "404: Not Found"


async def test_a_fastapi_style_detail_becomes_an_openai_error(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"detail": "temperature must be <= 2"}, status=422)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", refuse)
    server = await aiohttp_server(app)
    client = await gateway_client(
        {"backends": [{"url": str(server.make_url("")).rstrip("/"), "api": "openai"}]}
    )
    resp = await client.post("/v1/chat/completions", json={**CHAT, "temperature": 9})
    assert resp.status == 422
    error = _assert_openai_error(await resp.json())
    assert error["message"] == "temperature must be <= 2"


async def test_an_error_already_in_the_dialect_passes_unchanged(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    client = await gateway_client({"backends": [{"url": url, "api": "openai"}]})
    resp = await client.get("/v1/models/no-such-model")
    assert resp.status == 404
    assert (await resp.json())["error"]["message"] == "model no-such-model not found"
