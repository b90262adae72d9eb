"""Attacks by clients: each test is one way a client could get past a rule, and the rule
holding. Real HTTP over loopback, scripted fake backends."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from ollamux import cli
from ollamux.config_loader import build_config
from ollamux.exchange import TaskState
from tests.auth_support import ADMIN, ALICE, BOB, bearer, keyed
from tests.fakes.finished import Finished
from tests.jobs_support import eventually
from tests.tasks_util import wait_until

DEEP = 5000
MODEL = "llama3.2:latest"


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# -- 1. case-variant keys --------------------------------------------------------------------


async def test_a_case_variant_model_key_is_refused_naming_the_key(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.models = ["llama3.2:latest", "qwen2.5:0.5b"]
    client = await gateway_client(keyed(url))
    body = {"model": "llama3.2:latest", "Model": "qwen2.5:0.5b", "prompt": "hi", "stream": False}
    resp = await client.post("/api/generate", json=body, headers=bearer(ALICE))
    assert resp.status == 400
    assert "'Model'" in (await resp.json())["error"]
    assert fake.received == []


async def test_a_case_variant_of_a_known_field_alone_is_refused_in_openai_dialect(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    client = await gateway_client(keyed(url, api="openai"))
    body = {"MODEL": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}
    resp = await client.post("/v1/chat/completions", json=body, headers=bearer(BOB))
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["param"] == "MODEL" and "'MODEL'" in error["message"]
    assert fake.received == []


async def test_two_keys_equal_but_for_case_are_refused(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    body = {"model": "llama3.2:latest", "prompt": "hi", "x_extra": 1, "X_Extra": 2}
    resp = await client.post("/api/generate", json=body, headers=bearer(ALICE))
    assert resp.status == 400
    assert "'X_Extra'" in (await resp.json())["error"]
    assert fake.received == []


async def test_a_job_with_a_case_variant_model_key_is_refused_at_submit(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    inner = {"model": "llama3.2:latest", "Model": "qwen2.5:0.5b", "prompt": "hi"}
    resp = await client.post(
        "/jobs", json={"path": "/api/generate", "body": inner}, headers=bearer(ALICE)
    )
    assert resp.status == 400
    assert "'Model'" in (await resp.json())["error"]


async def test_a_prompt_with_a_case_variant_model_key_is_refused_at_submit(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    body = {"prompt": "hi", "model": "llama3.2:latest", "MODEL": "qwen2.5:0.5b"}
    resp = await client.post("/api/v1/prompt", json=body, headers=bearer(ALICE))
    assert resp.status == 400
    assert "'MODEL'" in (await resp.json())["error"]


# -- 4. deep JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize("debug_payloads", [False, True])
@pytest.mark.parametrize(
    "path", ["/api/chat", "/api/generate", "/v1/chat/completions", "/jobs", "/api/v1/prompt"]
)
@pytest.mark.parametrize("levels", [DEEP, 900])
async def test_deeply_nested_json_is_a_400_without_a_traceback(
    gateway_client: Any,
    fake_ollama: Any,
    caplog: pytest.LogCaptureFixture,
    path: str,
    debug_payloads: bool,
    levels: int,
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url) | {"server": {"debug_payloads": debug_payloads}})
    deep = _deep(levels)
    if path == "/jobs":
        raw = f'{{"path": "/api/chat", "body": {{"model": "llama3.2:latest", "messages": {deep}}}}}'
    elif path == "/api/v1/prompt":
        raw = f'{{"prompt": "hi", "options": {deep}}}'
    else:
        raw = f'{{"model": "llama3.2:latest", "messages": {deep}}}'
    headers = bearer(BOB) | {"Content-Type": "application/json"}
    resp = await client.post(path, data=raw.encode(), headers=headers)
    assert resp.status == 400
    payload = await resp.json()
    message = payload["error"]["message"] if path.startswith("/v1") else payload["error"]
    assert "nested" in message
    # The gateway's records only: an SDK client garbage-collected from an earlier test may
    # log on asyncio's logger meanwhile.
    ours = [r for r in caplog.records if r.name.startswith(("ollamux", "aiohttp"))]
    assert not [r for r in ours if r.exc_info or "Traceback" in r.getMessage()]
    assert fake.received == []


# -- 6. a declared Content-Length over the limit -----------------------------------------------


async def _raw_head(client: Any, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()


async def test_a_declared_length_over_the_limit_is_a_413_before_the_body(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    config = keyed(url) | {"server": {"max_body_mb": 0.01, "body_timeout_s": 30}}
    client = await gateway_client(config)
    head = await _raw_head(
        client,
        b"POST /api/generate HTTP/1.1\r\nHost: t\r\nContent-Length: 50000000\r\n"
        + f"Authorization: Bearer {ALICE}\r\nContent-Type: application/json\r\n\r\n".encode(),
    )
    assert head.startswith(b"HTTP/1.1 413")
    assert fake.received == []


async def test_expect_continue_over_the_limit_gets_a_413_and_no_100(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    config = keyed(url) | {"server": {"max_body_mb": 0.01, "body_timeout_s": 30}}
    client = await gateway_client(config)
    head = await _raw_head(
        client,
        b"POST /api/generate HTTP/1.1\r\nHost: t\r\nContent-Length: 50000000\r\n"
        b"Expect: 100-continue\r\n" + f"Authorization: Bearer {ALICE}\r\n\r\n".encode(),
    )
    assert head.startswith(b"HTTP/1.1 413"), head


async def test_expect_continue_without_a_key_gets_a_401_and_no_100(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    head = await _raw_head(
        client,
        b"POST /api/generate HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n"
        b"Expect: 100-continue\r\n\r\n",
    )
    assert head.startswith(b"HTTP/1.1 401"), head


async def test_expect_continue_within_the_limit_gets_its_100_and_an_answer(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    body = json.dumps({"model": "llama3.2:latest", "prompt": "hi", "stream": False}).encode()
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        b"POST /api/generate HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n".encode()
        + f"Authorization: Bearer {ALICE}\r\n\r\n".encode()
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(body)
    await writer.drain()
    final = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert final.startswith(b"HTTP/1.1 200"), final[:200]


# -- 3. a client that stops reading ------------------------------------------------------------


class StreamingGenerate:
    """A backend whose ``/api/generate`` streams NDJSON (``stream`` writes the lines)."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/generate", self.generate)
        return app

    async def generate(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        await self.stream(resp)
        return resp

    async def stream(self, resp: web.StreamResponse) -> None:
        raise NotImplementedError


async def generate_on_a_socket(
    client: Any, *, close: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A streamed ``/api/generate`` sent as raw bytes on a socket of the test's own, so the
    test decides when (and whether) the answer is read."""
    body = json.dumps({"model": "llama3.2:latest", "prompt": "hi"}).encode()
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        b"POST /api/generate HTTP/1.1\r\nHost: t\r\n"
        + (b"Connection: close\r\n" if close else b"")
        + f"Content-Length: {len(body)}\r\nAuthorization: Bearer {ALICE}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    return reader, writer


class EndlessStream(StreamingGenerate):
    """A backend streaming NDJSON lines as fast as it can, until its reader goes away."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.streaming = asyncio.Event()

    async def stream(self, resp: web.StreamResponse) -> None:
        line = json.dumps({"model": "llama3.2:latest", "response": "x" * 60000}).encode() + b"\n"
        try:
            while True:
                await resp.write(line)
                self.streaming.set()
        except (ConnectionError, asyncio.CancelledError):
            self.closed.set()
            raise


async def test_a_client_that_stops_reading_is_dropped_and_its_backend_slot_freed(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fake = EndlessStream()
    server = await aiohttp_server(fake.app())
    url = str(server.make_url("")).rstrip("/")
    finished = Finished()
    config = keyed(url) | {"server": {"write_timeout_s": 0.3}}
    client = await gateway_client(config, plugins=[("finished", finished)])
    _reader, writer = await generate_on_a_socket(client)  # ... and never read
    try:
        await asyncio.wait_for(fake.closed.wait(), 10)  # the upstream was cancelled
        exchange = await finished.last()
        assert exchange.outcome is TaskState.CANCELLED

        async def slot_freed() -> bool:
            resp = await client.get("/ollamux/backends", headers=bearer(ADMIN))
            return all(b["in_flight"] == 0 for b in (await resp.json())["backends"])

        await wait_until(slot_freed)
    finally:
        writer.close()


# -- 2. cross-site requests riding on cached Basic credentials --------------------------------

EVIL = "https://evil.example"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"user:{key}".encode()).decode()}


def _simple_post(key: str, **extra: str) -> dict[str, str]:
    """What a cross-site form or ``fetch`` without preflight sends, credentials cached."""
    return basic(key) | {"Content-Type": "text/plain"} | extra


async def test_a_cross_site_chat_with_cached_credentials_is_refused(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    body = json.dumps({"model": "llama3.2:latest", "messages": []})
    resp = await client.post("/api/chat", data=body, headers=_simple_post(ALICE, Origin=EVIL))
    assert resp.status == 403
    assert EVIL in (await resp.json())["error"]
    assert fake.received == []


async def test_a_cross_site_request_is_refused_in_openai_dialect(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    client = await gateway_client(keyed(url, api="openai"))
    body = json.dumps({"model": "llama3.2:latest", "messages": []})
    headers = _simple_post(BOB, Origin=EVIL)
    resp = await client.post("/v1/chat/completions", data=body, headers=headers)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "cross_origin_refused"
    assert fake.received == []


async def test_a_cross_site_job_submission_is_refused(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    job = {"path": "/api/generate", "body": {"model": "llama3.2:latest", "prompt": "hi"}}
    headers = _simple_post(ALICE, **{"Sec-Fetch-Site": "cross-site"})
    resp = await client.post("/jobs", data=json.dumps(job), headers=headers)
    assert resp.status == 403
    listed = await client.get("/jobs", headers=bearer(ALICE))
    assert (await listed.json())["total"] == 0


async def test_a_cross_site_model_delete_is_refused(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    resp = await client.delete(
        "/api/delete",
        data=json.dumps({"model": "llama3.2:latest"}),
        headers=_simple_post(ADMIN, Origin="null"),
    )
    assert resp.status == 403
    assert fake.received == []


async def test_the_jobs_page_same_origin_submission_is_accepted(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    own = f"http://{client.server.host}:{client.server.port}"
    job = {"path": "/api/generate", "body": {"model": "llama3.2:latest", "prompt": "hi"}}
    headers = basic(ALICE) | {"Origin": own, "Sec-Fetch-Site": "same-origin"}
    resp = await client.post("/jobs", json=job, headers=headers)
    assert resp.status == 202


async def test_a_same_origin_submission_through_a_reverse_proxy_is_accepted(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    job = {"path": "/api/generate", "body": {"model": "llama3.2:latest", "prompt": "hi"}}
    headers = basic(ALICE) | {
        "Origin": "https://gw.example",
        "X-Forwarded-Host": "gw.example",
        "Sec-Fetch-Site": "same-origin",
    }
    resp = await client.post("/jobs", json=job, headers=headers)
    assert resp.status == 202


async def test_a_cross_origin_request_from_an_allowed_cors_origin_is_accepted(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url) | {"cors": {"allow_origins": [EVIL]}})
    body = {"model": "llama3.2:latest", "prompt": "hi", "stream": False}
    headers = bearer(ALICE) | {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    resp = await client.post("/api/generate", json=body, headers=headers)
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == EVIL


async def test_a_cross_site_read_is_not_refused(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    resp = await client.get("/api/tags", headers=bearer(ALICE) | {"Origin": EVIL})
    assert resp.status == 200


async def test_a_refused_cross_site_request_is_a_finished_request_event(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    finished = Finished()
    client = await gateway_client(keyed(url), plugins=[("finished", finished)])
    body = json.dumps({"model": MODEL, "prompt": "hi"})
    resp = await client.post("/api/generate", data=body, headers=_simple_post(ALICE, Origin=EVIL))
    assert resp.status == 403
    exchange = await finished.last()
    assert (exchange.status, exchange.outcome) == (403, TaskState.FAILED)


# -- 7. keys in the log ----------------------------------------------------------------------


BROKEN_LINES = [
    f"Authorization Bearer {ALICE}",  # no colon
    f"Authorization: Bearer {BOB}\x01",  # a control character in the value
    f"X-API-Key : {ALICE}",  # space before the colon
    f" Authorization: Basic {BOB}",  # a continuation line
    f"X-Weird\x01: {ALICE}",  # a configured key under any name
]


@pytest.mark.parametrize("line", BROKEN_LINES)
async def test_a_malformed_header_line_never_puts_a_key_in_the_log(
    gateway_client: Any, fake_ollama: Any, caplog: pytest.LogCaptureFixture, line: str
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(f"GET /api/tags HTTP/1.1\r\nHost: t\r\n{line}\r\n\r\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")

    async def logged() -> bool:
        return any(r.name == "aiohttp.server" for r in caplog.records)

    await wait_until(logged)
    assert ALICE not in caplog.text and BOB not in caplog.text
    for record in caplog.records:
        assert ALICE not in record.getMessage() and BOB not in record.getMessage()
        assert ALICE not in (record.exc_text or "") and BOB not in (record.exc_text or "")


# -- 11. open by default only on loopback ---------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "gpu-gw.internal"])
def test_serving_beyond_loopback_without_keys_exits_2_with_one_line(
    host: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OLLAMUX_CONFIG", raising=False)
    code = cli.main(["serve", "--host", host, "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "ollamux keys new" in err and "auth.keys" in err
    assert "--allow-anonymous" in err and "auth.allow_anonymous: true" in err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "[::1]"])
def test_loopback_hosts_count_as_private(host: str) -> None:
    assert cli.is_loopback(host)


def test_the_refusal_does_not_apply_with_keys_or_an_explicit_opt_in() -> None:
    base = {"server": {"host": "0.0.0.0"}}
    assert cli.open_to_anyone(build_config(base))
    assert not cli.open_to_anyone(build_config(base | {"auth": {"allow_anonymous": True}}))
    assert not cli.open_to_anyone(build_config(base | {"auth": {"admin_keys": [ADMIN]}}))
    keys = {"keys": [{"name": "alice", "key": ALICE}]}
    assert not cli.open_to_anyone(build_config(base | {"auth": keys}))


# -- 10. metric labels from client input ---------------------------------------------------------


class AnyModel:
    """A backend that runs whatever model it is asked for and cannot list its models."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/tags", self.no_list)
        app.router.add_route("*", "/api/{tail:.*}", self.answer)
        return app

    async def no_list(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "listing unavailable"}, status=500)

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        return web.json_response({"model": body.get("model"), "response": "ok", "done": True})


def _label_values(text: str, metric: str, label: str) -> set[str]:
    return {
        s.labels[label]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == metric
    }


async def test_model_names_a_client_invents_are_not_metric_labels(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    server = await aiohttp_server(AnyModel().app())
    url = str(server.make_url("")).rstrip("/")
    client = await gateway_client(keyed(url))
    for i in range(30):
        body = {"model": f"invented-{i}", "prompt": "hi", "stream": False}
        resp = await client.post("/api/generate", json=body, headers=bearer(BOB))
        assert resp.status == 200
    text = await (await client.get("/metrics", headers=bearer(ADMIN))).text()
    assert _label_values(text, "ollamux_requests_total", "model") == {"other"}
    assert _label_values(text, "ollamux_tokens_total", "model") <= {"other"}


async def test_a_model_a_backend_lists_keeps_its_own_label(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url) | {"backends": [{"url": url, "models": [MODEL]}]})
    body = {"model": MODEL, "prompt": "hi", "stream": False}
    resp = await client.post("/api/generate", json=body, headers=bearer(BOB))
    assert resp.status == 200
    text = await (await client.get("/metrics", headers=bearer(ADMIN))).text()
    assert MODEL in _label_values(text, "ollamux_requests_total", "model")


async def test_paths_a_client_invents_are_not_metric_labels(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    server = await aiohttp_server(AnyModel().app())
    url = str(server.make_url("")).rstrip("/")
    client = await gateway_client(keyed(url))
    for i in range(20):
        await client.post(f"/api/made-up-{i}", json={"model": "m"}, headers=bearer(BOB))
        await client.get(f"/v1/made-up-{i}", headers=bearer(BOB))
    text = await (await client.get("/metrics", headers=bearer(ADMIN))).text()
    endpoints = _label_values(text, "ollamux_requests_total", "endpoint")
    assert not [e for e in endpoints if "made-up" in e]


# -- 9. task-id squatting ------------------------------------------------------------------------


def _jobs_config(url: str) -> dict[str, Any]:
    config = keyed(url) | {"jobs": {"workers": 1, "lease_s": 5}}
    config["backends"] = [{"url": url, "max_concurrency": 4}]
    return config


async def _submit(client: Any, key: str, prompt: str) -> str:
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": prompt}}
    resp = await client.post("/jobs", json=job, headers=bearer(key))
    assert resp.status == 202, await resp.text()
    job_id: str = (await resp.json())["id"]
    return job_id


async def _job_in(client: Any, job_id: str, key: str, *states: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        doc: dict[str, Any] = await (
            await client.get(f"/jobs/{job_id}", headers=bearer(key))
        ).json()
        return doc if doc.get("status") in states else None

    result: dict[str, Any] = await eventually(check)
    return result


async def test_another_key_using_a_queued_jobs_id_does_not_make_it_fail(
    gateway_client: Any, fake_jobs: Any
) -> None:
    fake, url = fake_jobs
    client = await gateway_client(_jobs_config(url))
    holder = await _submit(client, ALICE, "block the only worker")
    await _job_in(client, holder, ALICE, "processing")
    queued = await _submit(client, ALICE, "mine")
    body = {"model": MODEL, "prompt": "squat", "stream": False}
    headers = bearer(BOB) | {"X-Task-Id": queued}
    squat = await client.post("/api/generate", json=body, headers=headers)
    assert squat.status == 200  # bob's own request, under an id nobody held yet
    fake.unblock.set()
    doc = await _job_in(client, queued, ALICE, "completed", "failed")
    assert doc["status"] == "completed", doc


async def test_a_refused_foreign_task_id_leaves_the_owners_task_alone(
    gateway_client: Any, fake_jobs: Any
) -> None:
    fake, url = fake_jobs
    client = await gateway_client(_jobs_config(url))
    job_id = await _submit(client, ALICE, "block until told")
    await _job_in(client, job_id, ALICE, "processing")
    body = {"model": MODEL, "prompt": "squat", "stream": False}
    squat = await client.post(
        "/api/generate", json=body, headers=bearer(BOB) | {"X-Task-Id": job_id}
    )
    assert squat.status == 409
    task = await client.get(f"/tasks/status/{job_id}", headers=bearer(ALICE))
    assert (await task.json())["state"] == "RUNNING"
    fake.unblock.set()
    assert (await _job_in(client, job_id, ALICE, "completed", "failed"))["status"] == "completed"

    async def task_succeeded() -> bool:
        resp = await client.get(f"/tasks/status/{job_id}", headers=bearer(ALICE))
        return (await resp.json()).get("state") == "SUCCESS"

    await wait_until(task_succeeded)


# -- 4. a client that falls behind, then catches up --------------------------------------------


class NumberedStream(StreamingGenerate):
    """A backend streaming ``count`` numbered NDJSON lines as fast as it can, then the end."""

    def __init__(self, count: int) -> None:
        self.count = count

    async def stream(self, resp: web.StreamResponse) -> None:
        for i in range(self.count):
            line = {"model": "llama3.2:latest", "response": f"{i:06d}" + "x" * 2000, "done": False}
            await resp.write(json.dumps(line).encode() + b"\n")
        await resp.write(b'{"model":"llama3.2:latest","response":"","done":true}\n')
        await resp.write_eof()


async def test_a_stream_to_a_client_that_stalls_then_reads_arrives_whole_and_in_order(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    count = 3000  # ~6 MB: more than the sockets buffer while the client stalls
    server = await aiohttp_server(NumberedStream(count).app())
    client = await gateway_client(keyed(str(server.make_url("")).rstrip("/")))
    reader, writer = await generate_on_a_socket(client, close=True)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower()
    first = await asyncio.wait_for(reader.read(1000), 5)  # then a stall: nothing read
    for _ in range(20):
        await asyncio.sleep(0)  # the relay runs on while the client reads nothing
    raw = first + await asyncio.wait_for(reader.read(), 30)
    writer.close()
    pieces, at = [], 0
    while True:  # undo the chunked framing
        eol = raw.index(b"\r\n", at)
        size = int(raw[at:eol], 16)
        pieces.append(raw[eol + 2 : eol + 2 + size])
        at = eol + 2 + size + 2
        if size == 0:
            break
    lines = [json.loads(x) for x in b"".join(pieces).splitlines()]
    assert [x["response"][:6] for x in lines[:-1]] == [f"{i:06d}" for i in range(count)]
    assert lines[-1]["done"] is True
