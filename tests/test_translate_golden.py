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

from tests.golden import cases as golden
from tests.golden.runner import run_case

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
    await run_case(case, gateway_client, aiohttp_server, _frames)
