"""The access log (one line per request, text or JSON) and the redacted debug payload log."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from ollamux.exchange import Principal
from ollamux.logging_setup import JsonFormatter
from ollamux.plugins.metrics.payload_log import redact, redact_bytes, redact_headers

MODEL = "llama3.2:latest"
IMAGE = base64.b64encode(bytes(range(256)) * 8).decode()


class AsAlice:
    from ollamux import hookimpl

    @hookimpl
    def ollamux_authenticate(self, request: Any) -> Principal:
        return Principal(name="alice", authenticated=True)


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ollamux.access"]


async def test_text_access_line_names_key_model_backend_status_and_tokens(
    gateway_client: Any, fake_ollama: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ollamux.access")
    _fake, url = fake_ollama
    client = await gateway_client(
        {"backends": [{"name": "gpu1", "url": url}]}, plugins=[("alice", AsAlice())]
    )
    resp = await client.post(
        "/api/chat",
        json={"model": MODEL, "messages": []},
        headers={"Authorization": "Bearer sk-secret-123", "X-Task-Id": "t-1"},
    )
    await resp.read()
    (record,) = access_records(caplog)
    line = record.getMessage()
    assert line.startswith('127.0.0.1 "POST /api/chat" 200 ')
    for part in ("key=alice", f"model={MODEL}", "backend=gpu1", "tokens_in=7", "tokens_out=4"):
        assert part in line.split()
    assert "duration_ms=" in line
    assert "ttft_ms=" in line
    assert "sk-secret-123" not in line


async def test_json_access_line_carries_every_field(
    gateway_client: Any, fake_ollama: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ollamux.access")
    _fake, url = fake_ollama
    client = await gateway_client(
        {"server": {"log_format": "json"}, "backends": [{"name": "gpu1", "url": url}]},
        plugins=[("alice", AsAlice())],
    )
    resp = await client.post("/api/generate", json={"model": MODEL, "prompt": "hi"})
    await resp.read()
    (record,) = access_records(caplog)
    doc = json.loads(JsonFormatter().format(record))
    assert doc["event"] == "access"
    assert doc["key"] == "alice"
    assert doc["model"] == MODEL
    assert doc["backend"] == "gpu1"
    assert doc["status"] == 200
    assert doc["outcome"] == "SUCCESS"
    assert doc["tokens_in"] == 7
    assert doc["tokens_out"] == 4
    assert isinstance(doc["duration_ms"], int)
    assert isinstance(doc["ttft_ms"], int)
    assert "task_id" in doc


async def test_failed_request_is_logged_with_its_error(
    gateway_client: Any, fake_ollama: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ollamux.access")
    fake, url = fake_ollama
    fake.mode = "error_line"
    client = await gateway_client({"backends": [{"name": "gpu1", "url": url}]})
    resp = await client.post("/api/chat", json={"model": MODEL, "messages": []})
    await resp.read()
    (record,) = access_records(caplog)
    assert "outcome=FAILED" in record.getMessage()
    assert 'error="model runner crashed"' in record.getMessage()


async def test_access_log_can_be_switched_off(
    gateway_client: Any, fake_ollama: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ollamux.access")
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}], "server": {"access_log": False}})
    await (await client.get("/api/version")).read()
    assert access_records(caplog) == []


async def test_debug_payloads_log_request_and_chunks_without_secrets_or_images(
    gateway_client: Any, fake_ollama: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ollamux.payload")
    _fake, url = fake_ollama
    client = await gateway_client(
        {"server": {"debug_payloads": True}, "backends": [{"name": "gpu1", "url": url}]}
    )
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi", "images": [IMAGE]}]}
    resp = await client.post(
        "/api/chat", json=body, headers={"Authorization": "Bearer sk-secret-123"}
    )
    await resp.read()
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "ollamux.payload")
    assert '"content": "hi"' in text
    assert "Hello" in text  # the answer's chunks
    assert "sk-secret-123" not in text
    assert IMAGE[:50] not in text
    assert f"<image {len(IMAGE)} chars>" in text


async def test_no_payloads_are_logged_unless_asked(
    gateway_client: Any, fake_ollama: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ollamux.payload")
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    await (await client.post("/api/chat", json={"model": MODEL, "messages": []})).read()
    assert [r for r in caplog.records if r.name == "ollamux.payload"] == []


def test_redact_hides_keys_data_urls_and_base64() -> None:
    doc = {
        "api_key": "sk-1",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}},
                ],
            }
        ],
        "file": IMAGE,
    }
    out = json.dumps(redact(doc))
    assert "sk-1" not in out
    assert IMAGE[:50] not in out
    assert "what is this?" in out
    assert "image/png data URL" in out


def test_redact_headers_hides_credentials_only() -> None:
    out = redact_headers({"Authorization": "Bearer x", "X-Api-Key": "y", "X-Task-Id": "t"})
    assert out == {"Authorization": "***", "X-Api-Key": "***", "X-Task-Id": "t"}


def test_redact_bytes_cuts_base64_runs_out_of_chunks() -> None:
    text = redact_bytes(b'{"images":["' + IMAGE.encode() + b'"]}')
    assert IMAGE[:50] not in text
    assert text.startswith('{"images":["<base64 ')


@pytest.mark.slow
async def test_a_real_server_writes_json_access_lines_to_stderr(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    import aiohttp

    _fake, url = fake_ollama
    gw = await spawn_gateway(
        {"server": {"log_format": "json"}, "backends": [{"name": "gpu1", "url": url}]}
    )
    async with aiohttp.ClientSession() as client:
        body = {"model": MODEL, "prompt": "hi", "stream": False}
        async with client.post(
            gw.url + "/api/generate", json=body, headers={"X-Task-Id": "json-log-1"}
        ) as resp:
            assert resp.status == 200

    def access_line() -> dict[str, Any] | None:
        for line in gw.log().splitlines():
            if '"event": "access"' in line and "json-log-1" in line:
                doc: dict[str, Any] = json.loads(line)
                return doc
        return None

    await gw.wait_for(access_line, "the access line")
    doc = access_line()
    assert doc is not None
    assert (doc["logger"], doc["path"], doc["status"]) == ("ollamux.access", "/api/generate", 200)
    assert (doc["backend"], doc["tokens_in"], doc["tokens_out"]) == ("gpu1", 7, 4)
