"""The benchmark harness's pieces behave as the benchmarks assume (in-process, quick)."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestServer

from bench import harness

ServerFactory = Callable[..., Awaitable[TestServer]]


async def test_fake_backend_streams_the_configured_number_of_chunks(
    aiohttp_server: ServerFactory,
) -> None:
    server = await aiohttp_server(harness.fake_backend_app(chunks=5))
    lines = await _post_lines(server, "/api/chat", harness.ollama_chat_body(stream=True))
    assert len(lines) == 6
    assert [json.loads(line)["done"] for line in lines] == [False] * 5 + [True]


async def test_fake_backend_answers_stream_false_with_one_json_document(
    aiohttp_server: ServerFactory,
) -> None:
    server = await aiohttp_server(harness.fake_backend_app(chunks=5))
    lines = await _post_lines(server, "/api/generate", harness.ollama_chat_body(stream=False))
    assert len(lines) == 1
    assert json.loads(lines[0])["response"] == "tok " * 5


async def test_fake_backend_speaks_openai_sse(aiohttp_server: ServerFactory) -> None:
    server = await aiohttp_server(harness.fake_backend_app(chunks=3))
    lines = await _post_lines(server, "/v1/chat/completions", harness.openai_chat_body(stream=True))
    events = [line for line in lines if line]
    assert len(events) == 5  # 3 deltas, the finish chunk, [DONE]
    assert events[-1] == b"data: [DONE]"


async def test_relay_passes_the_backend_stream_through_unchanged(
    aiohttp_server: ServerFactory,
) -> None:
    backend = await aiohttp_server(harness.fake_backend_app(chunks=4))
    relay = await aiohttp_server(harness.relay_app(str(backend.make_url("")).rstrip("/")))
    body = harness.ollama_chat_body(stream=True)
    assert await _post_lines(relay, "/api/chat", body) == await _post_lines(
        backend, "/api/chat", body
    )


async def test_load_generator_counts_requests_chunks_and_cpu(
    aiohttp_server: ServerFactory,
) -> None:
    server = await aiohttp_server(harness.fake_backend_app(chunks=10))
    result = await harness.generate_load(
        str(server.make_url("/api/chat")),
        harness.ollama_chat_body(stream=True),
        concurrency=2,
        duration=0.3,
        warmup=0.05,
        stream=True,
        cpu_pids=[os.getpid()],
    )
    assert result.errors == 0
    assert result.requests > 0
    assert result.chunks >= result.requests * 10
    assert result.cpu[os.getpid()] > 0


def test_interleave_runs_cases_round_by_round() -> None:
    calls: list[str] = []

    def case(name: str) -> Callable[[], str]:
        def run() -> str:
            calls.append(name)
            return name

        return run

    results = harness.interleave({"a": case("a"), "b": case("b")}, repetitions=2)
    assert calls == ["a", "b", "a", "b"]
    assert results == {"a": ["a", "a"], "b": ["b", "b"]}


async def test_fake_backend_answers_one_embedding_per_input(aiohttp_server: ServerFactory) -> None:
    server = await aiohttp_server(harness.fake_backend_app(embed_dim=8))
    body = json.dumps({"model": "m", "input": ["a", "b", "c"]}).encode()
    (ollama,) = await _post_lines(server, "/api/embed", body)
    assert [len(v) for v in json.loads(ollama)["embeddings"]] == [8, 8, 8]
    (openai,) = await _post_lines(server, "/v1/embeddings", body)
    assert [d["index"] for d in json.loads(openai)["data"]] == [0, 1, 2]


def test_wrk_script_sends_the_body_verbatim() -> None:
    script = harness.wrk_script(b'{"a": "]]"}', headers={"X-Test": "1"})
    assert "wrk.method = [[POST]]" in script
    assert 'wrk.body = [=[{"a": "]]"}]=]' in script  # a long bracket the body cannot end
    assert "wrk.headers[ [[X-Test]] ] = [[1]]" in script


def test_parse_wrk_reads_requests_errors_and_median() -> None:
    output = """Running 3s test @ http://127.0.0.1:1/api/chat
  2 threads and 32 connections
  Latency Distribution
     50%    9.48ms
     75%   12.00ms
  8049 requests in 3.00s, 5.1MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   2683.00
"""
    assert harness.parse_wrk(output) == (8049, 3.0, 7, 9.48)


async def _post_lines(server: TestServer, path: str, body: bytes) -> list[Any]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(server.make_url(path), data=body) as resp,
    ):
        assert resp.status == 200
        return (await resp.read()).splitlines()
