"""Golden wire cases of the translations, one per row of the field table in
docs/translation.md (the table is rendered from the same file, tests/golden/translate.yaml,
so the two cannot drift).

Each case is a client request sent through a real gateway over loopback to a scripted
backend that records what it received and answers given bytes; the test checks what the
backend received and what the client got back, frame by frame.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.ollama_backend import Scripted
from tests.golden import cases as golden

CASES = golden.load()


def test_the_doc_table_is_rendered_from_the_golden_cases() -> None:
    section = golden.doc_section(golden.DOC_FILE.read_text())
    assert section == golden.render(CASES), "run: python -m tests.golden.cases"


def test_every_golden_case_has_a_unique_id_and_a_doc_row() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))
    assert all({"table", "field", "becomes"} <= set(case["doc"]) for case in CASES)


def _frames(kind: str, body: bytes) -> list[Any]:
    """The client's body split by its framing (the framing itself checked exactly)."""
    text = body.decode()
    if kind == "sse":
        assert text.endswith("\n\n"), f"SSE body does not end an event: {text[-80:]!r}"
        events = text[:-2].split("\n\n")
        out: list[Any] = []
        for event in events:
            assert event.startswith("data: "), f"not a data event: {event!r}"
            data = event[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
        return out
    assert text.endswith("\n"), f"NDJSON body does not end a line: {text[-80:]!r}"
    return [json.loads(line) for line in text[:-1].split("\n")]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
async def test_golden_case(case: dict[str, Any], gateway_client: Any, aiohttp_server: Any) -> None:
    fake = Scripted()
    answer = case.get("answer")
    if answer is not None:
        content_type, pieces = golden.answer_pieces(answer)
        fake.script(answer.get("status", 200), content_type, pieces)
    server = await aiohttp_server(fake.app())
    url = str(server.make_url("")).rstrip("/")
    config = {
        "backends": [{"url": url, "api": case["backend"]}],
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

    received = [r for r in fake.received if r.path not in ("/api/tags", "/api/ps", "/v1/models")]
    upstream = case.get("upstream")
    if upstream is None or upstream.get("none"):
        assert received == [], f"the backend was called: {received}"
    else:
        assert len(received) == 1, received
        got = received[0]
        assert (got.method, got.path) == (upstream.get("method", "POST"), upstream["path"])
        if "json" in upstream:
            assert not golden.mismatch(upstream["json"], got.body), golden.mismatch(
                upstream["json"], got.body
            )
        if "has" in upstream:
            found = golden.subset_mismatch(upstream["has"], got.body)
            assert not found, found
        for key in upstream.get("lacks", []):
            assert key not in got.body, f"{key} reached the backend"

    expect = case["expect"]
    assert resp.status == expect.get("status", 200), body[:300]
    if "type" in expect:
        assert resp.content_type == expect["type"]
    if "sse" in expect or "ndjson" in expect:
        kind = "sse" if "sse" in expect else "ndjson"
        found = golden.mismatch(expect[kind], _frames(kind, body))
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
