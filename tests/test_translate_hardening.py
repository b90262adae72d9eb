"""Hardening of the translated paths, on the wire: wrong types are a 400 naming the field
in the endpoint's dialect; a backend answer that cannot be understood is never relayed as
a success (502 and another backend tried before the first byte); long lines are bounded."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from ollamux.exchange import ResponseHead
from ollamux.hookspecs import hookimpl
from ollamux.plugins.translate.common import TEXT_STRING, Lines, LineTooLong, all_text
from ollamux.transforms import BadUpstreamAnswer, ResponseTransform
from tests.fakes.ollama_backend import Scripted

USER = [{"role": "user", "content": "hi"}]


async def _gateway(gateway_client: Any, aiohttp_server: Any, api: str, *fakes: Scripted) -> Any:
    backends = []
    for fake in fakes:
        server = await aiohttp_server(fake.app())
        backends.append({"url": str(server.make_url("")).rstrip("/"), "api": api})
    return await gateway_client({"backends": backends, "routing": {"retries": len(fakes) - 1}})


def _calls(fake: Scripted) -> list[Any]:
    return [r for r in fake.received if r.method == "POST"]


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("stream_options", -1, "stream_options"),
        ("reasoning_effort", [], "reasoning_effort"),
        ("stream", "yes", "stream"),
        ("tools", {"a": 1}, "tools"),
        ("messages", [{"role": "assistant", "tool_calls": {"id": "x"}}], "messages"),
        ("messages", [{"role": "user", "content": 5}], "messages"),
        ("response_format", "json", "response_format"),
        ("seed", "7", "seed"),
    ],
)
async def test_wrong_types_from_openai_clients_are_a_400_naming_the_field(
    gateway_client: Any, aiohttp_server: Any, field: str, value: Any, param: str
) -> None:
    fake = Scripted()
    client = await _gateway(gateway_client, aiohttp_server, "ollama", fake)
    body = {"model": "m:latest", "messages": USER, field: value}
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert _calls(fake) == []


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/api/chat", {"messages": USER, "think": []}, "think"),
        (
            "/api/chat",
            {"messages": [{"role": "user", "content": "x", "images": "abc"}]},
            "messages[0].images",
        ),
        (
            "/api/chat",
            {"messages": [{"role": "user", "content": "x", "images": [1]}]},
            "messages[0].images",
        ),
        ("/api/generate", {"prompt": "x", "images": ["ünï"]}, "images"),
        ("/api/generate", {"prompt": "x", "images": ["%%%="]}, "images"),
        ("/api/chat", {"messages": USER, "options": []}, "options"),
        ("/api/chat", {"messages": USER, "options": {"temperature": "hot"}}, "options.temperature"),
        (
            "/api/chat",
            {"messages": [{"role": "assistant", "tool_calls": 3}]},
            "messages[0].tool_calls",
        ),
        ("/api/generate", {"prompt": ["x"]}, "prompt"),
        ("/api/embed", {"input": [1, 2]}, "input"),
        ("/api/embed", {"input": "x", "dimensions": float("inf")}, "dimensions"),
        ("/api/embed", {"input": "x", "dimensions": float("nan")}, "dimensions"),
    ],
)
async def test_wrong_types_from_ollama_clients_are_a_400_naming_the_field(
    gateway_client: Any, aiohttp_server: Any, path: str, body: dict[str, Any], named: str
) -> None:
    fake = Scripted()
    client = await _gateway(gateway_client, aiohttp_server, "openai", fake)
    resp = await client.post(path, json={"model": "m", **body})
    assert resp.status == 400
    message = (await resp.json())["error"]
    assert isinstance(message, str) and named in message
    assert _calls(fake) == []


async def test_garbage_from_one_backend_is_retried_on_another(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    bad = Scripted(content_type="text/html", pieces=[b"<html>Bad Gateway</html>"])
    good = Scripted(
        pieces=[
            b'{"model":"m:latest","created_at":"2025-01-01T00:00:00Z",'
            b'"message":{"role":"assistant","content":"Hi"},"done":true}'
        ]
    )
    client = await _gateway(gateway_client, aiohttp_server, "ollama", bad, good)
    for _ in range(2):  # whichever backend is picked first, the answer is the good one
        resp = await client.post(
            "/v1/chat/completions", json={"model": "m:latest", "messages": USER}
        )
        assert resp.status == 200
        assert (await resp.json())["choices"][0]["message"]["content"] == "Hi"


async def test_garbage_from_every_backend_is_a_502_in_the_clients_dialect(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = [Scripted(pieces=[b'{"data": 5}']), Scripted(pieces=[b"[1,2,3]"])]
    client = await _gateway(gateway_client, aiohttp_server, "openai", *fakes)
    resp = await client.post("/api/chat", json={"model": "m", "messages": USER, "stream": False})
    assert resp.status == 502
    assert "cannot be understood" in (await resp.json())["error"]
    assert [len(_calls(f)) for f in fakes] == [1, 1]


def test_a_line_split_in_many_reads_is_joined_once() -> None:
    lines = Lines(limit=1 << 20)
    piece = b"x" * 4096
    for _ in range(100):
        assert lines.feed(piece) == []
    assert lines.feed(b"y\nrest") == [piece * 100 + b"y"]
    assert lines.flush() == [b"rest"]


def test_a_line_longer_than_the_limit_fails() -> None:
    lines = Lines(limit=10_000)
    lines.feed(b"x" * 6000)
    with pytest.raises(LineTooLong):
        lines.feed(b"x" * 6000)
    with pytest.raises(LineTooLong):
        Lines(limit=10).feed(b"a" * 11 + b"\n")


class _Rejecting:
    """A plugin whose transform rejects the answer at ``when`` (``head`` or the n-th
    ``feed``), as a translation does with an answer it cannot understand."""

    def __init__(self, when: str) -> None:
        self.when = when

    @hookimpl
    def ollamux_transform_response(self, exchange: Any, head: Any) -> ResponseTransform:
        when = self.when

        class Rejecting(ResponseTransform):
            feeds = 0

            def head(self, head: ResponseHead) -> ResponseHead:
                if when == "head":
                    raise BadUpstreamAnswer("not an answer")
                return head

            def feed(self, data: bytes) -> bytes:
                self.feeds += 1
                if when == "feed" and self.feeds > 1:
                    raise BadUpstreamAnswer("not an answer")
                return data

        return Rejecting()


async def test_an_answer_rejected_before_the_first_byte_is_a_502_after_retries(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    config = {"backends": [{"url": url}], "routing": {"retries": 1}}
    client = await gateway_client(config, plugins=[("rejecting", _Rejecting("head"))])
    resp = await client.post("/api/chat", json={"model": "llama3.2:latest", "messages": USER})
    assert resp.status == 502
    assert "cannot be understood: not an answer" in (await resp.json())["error"]


async def test_an_answer_rejected_mid_stream_ends_with_an_error_line(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "wait"  # the first line goes out alone, the rest once released
    client = await gateway_client(
        {"backends": [{"url": url}]}, plugins=[("rejecting", _Rejecting("feed"))]
    )
    resp = await client.post(
        "/api/chat",
        json={"model": "llama3.2:latest", "messages": USER},
        headers={"X-Task-Id": "rejected-mid-stream"},
    )
    assert resp.status == 200
    fake.release.set()
    lines = (await resp.read()).decode().splitlines()
    assert json.loads(lines[0])["message"]["content"] == "Hello"
    assert "cannot be understood: not an answer" in json.loads(lines[-1])["error"]
    status = await (await client.get("/tasks/status/rejected-mid-stream")).json()
    assert status["state"] == "FAILED"


_STRING_PIECES = ["a", "é", " ", '"', "\\", "n", "u", "00e9", "0", "/", "\t", "\x01", "\\u12"]


def _json_text(data: bytes) -> bool:
    """The oracle: ``data`` is one JSON document, a string that is not empty."""
    try:
        value = json.loads(data)
    except ValueError:
        return False
    return isinstance(value, str) and value != ""


def _json_string(rng: random.Random) -> bytes:
    inner = "".join(rng.choice(_STRING_PIECES) for _ in range(rng.randrange(0, 8)))
    return ('"' + inner + '"').encode()


def test_the_fast_paths_string_check_takes_exactly_the_non_empty_json_strings() -> None:
    rng = random.Random(16)
    for _ in range(20_000):
        data = _json_string(rng)
        assert (TEXT_STRING.fullmatch(data) is not None) == _json_text(data), data


def test_a_reads_strings_are_taken_together_only_when_each_is_one() -> None:
    rng = random.Random(17)
    for _ in range(5_000):
        values = [_json_string(rng) for _ in range(rng.randrange(1, 5))]
        assert all_text(values, b"".join(values)) == all(map(_json_text, values)), values
    assert not all_text([], b"")
