"""Golden wire cases of the Messages and Responses fronts (tests/golden/fronts.yaml), one
per row of their field tables in docs/translation.md (rendered from the same file).

Each case is a client request sent through a real gateway over loopback to a scripted
backend that records what it received and answers given bytes; the test checks what the
backend received and what the client got back, event by event.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.ollama_backend import Scripted
from tests.golden import cases as golden

CASES = golden.load(golden.FRONTS_FILE)


def test_the_doc_tables_are_rendered_from_the_golden_cases() -> None:
    section = golden.doc_section(
        golden.DOC_FILE.read_text(), golden.FRONTS_BEGIN, golden.FRONTS_END
    )
    expected = golden.render(CASES, golden.FRONTS_BEGIN, golden.FRONTS_END)
    assert section == expected, "run: python -m tests.golden.cases"


def test_every_golden_case_has_a_unique_id_and_a_doc_row() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))
    assert all({"table", "field", "becomes"} <= set(case["doc"]) for case in CASES)


def _events(body: bytes) -> list[Any]:
    """The client's SSE body as the data of its events; each event must be named by its
    data's ``type``, as Anthropic's and OpenAI's SDKs read them."""
    text = body.decode()
    assert text.endswith("\n\n"), f"SSE body does not end an event: {text[-80:]!r}"
    out: list[Any] = []
    for event in text[:-2].split("\n\n"):
        name, _, data = event.partition("\n")
        assert name.startswith("event: ") and data.startswith("data: "), event
        obj = json.loads(data[6:])
        assert name[7:] == obj["type"], event
        out.append(obj)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
async def test_golden_case(case: dict[str, Any], gateway_client: Any, aiohttp_server: Any) -> None:
    fake = Scripted()
    answer = case.get("answer")
    if answer is not None:
        content_type, pieces = golden.answer_pieces(answer)
        fake.script(answer.get("status", 200), content_type, pieces)
    server = await aiohttp_server(fake.app())
    url = str(server.make_url("")).rstrip("/")
    backend = {"url": url, "api": case["backend"], "native": case.get("native", [])}
    config = {
        "backends": [backend],
        "routing": {"retries": 0},
        "plugins": {"config": {"translate": case.get("settings", {})}},
    }
    client = await gateway_client(config)
    request = case["request"]
    task_id = "golden-" + case["id"]
    headers = {"X-Task-Id": task_id}
    resp = await client.post(request["path"], json=request["json"], headers=headers)
    body = await resp.read()

    received = [r for r in fake.received if r.path not in ("/api/tags", "/api/ps", "/v1/models")]
    upstream = case["upstream"]
    if upstream.get("none"):
        assert received == [], f"the backend was called: {received}"
    else:
        assert len(received) == 1, received
        got = received[0]
        assert (got.method, got.path) == ("POST", upstream["path"])
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
    if "sse" in expect:
        found = golden.mismatch(expect["sse"], _events(body))
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
