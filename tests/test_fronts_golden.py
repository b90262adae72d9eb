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

from tests.golden import cases as golden
from tests.golden.runner import run_case

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


def _frames(kind: str, body: bytes) -> list[Any]:
    assert kind == "sse", f"the fronts stream SSE, not {kind}"
    return _events(body)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
async def test_golden_case(case: dict[str, Any], gateway_client: Any, aiohttp_server: Any) -> None:
    await run_case(case, gateway_client, aiohttp_server, _frames)
