"""The golden cases of the translations (``translate.yaml``; ``fronts.yaml`` for the
Messages and Responses fronts) and the documentation tables rendered from them
(docs/translation.md holds each file's tables between its markers;
``test_translate_golden.py`` and ``test_fronts_golden.py`` check they are current).

    python -m tests.golden.cases        # rewrite the tables in docs/translation.md
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
CASES_FILE = HERE / "translate.yaml"
DOC_FILE = HERE.parent.parent / "docs" / "translation.md"
BEGIN = "<!-- golden-table:begin (generated from tests/golden/translate.yaml) -->"
END = "<!-- golden-table:end -->"
FRONTS_FILE = HERE / "fronts.yaml"
FRONTS_BEGIN = "<!-- fronts-table:begin (generated from tests/golden/fronts.yaml) -->"
FRONTS_END = "<!-- fronts-table:end -->"


def load(path: Path = CASES_FILE) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text())
    cases: list[dict[str, Any]] = data["cases"]
    return cases


def _cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def render(cases: list[dict[str, Any]], begin: str = BEGIN, end: str = END) -> str:
    """One Markdown table per ``doc.table``, in the order the cases first name them; one
    row per case."""
    tables: dict[str, list[str]] = {}
    for case in cases:
        doc = case["doc"]
        row = "| {} | {} | {} | {} | `{}` |".format(
            _cell(doc["field"]),
            _cell(doc["becomes"]),
            _cell(doc.get("default", "—")),
            _cell(doc.get("notes", "")),
            case["id"],
        )
        tables.setdefault(doc["table"], []).append(row)
    out = [begin]
    for title, rows in tables.items():
        out += ["", f"### {title}", ""]
        out += ["| field | becomes | when absent | notes | golden case |", "|---|---|---|---|---|"]
        out += rows
    out += ["", end]
    return "\n".join(out)


def doc_section(text: str, begin: str = BEGIN, end: str = END) -> str:
    start = text.index(begin)
    stop = text.index(end) + len(end)
    return text[start:stop]


def write_doc() -> None:
    text = DOC_FILE.read_text()
    text = text.replace(doc_section(text), render(load()))
    fronts = render(load(FRONTS_FILE), FRONTS_BEGIN, FRONTS_END)
    text = text.replace(doc_section(text, FRONTS_BEGIN, FRONTS_END), fronts)
    DOC_FILE.write_text(text)


# --- wire encodings of the scripted answers ------------------------------------------


def compact(obj: Any) -> bytes:
    """JSON as Go's encoder writes it (what Ollama's server sends)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def answer_pieces(answer: dict[str, Any]) -> tuple[str, list[bytes]]:
    """The content type and body pieces a case's backend answers with."""
    if "ndjson" in answer:
        return answer.get("type", "application/x-ndjson"), [
            (_raw(x) if isinstance(x, str) else compact(x) + b"\n") for x in answer["ndjson"]
        ]
    if "sse" in answer:
        pieces = []
        for x in answer["sse"]:
            if isinstance(x, str):
                pieces.append(_raw(x) if x != "[DONE]" else b"data: [DONE]\n\n")
            else:
                pieces.append(b"data: " + json.dumps(x).encode() + b"\n\n")
        return answer.get("type", "text/event-stream"), pieces
    if "raw" in answer:
        raw = answer["raw"]
        body = _raw(raw) if isinstance(raw, str) else raw
        return answer.get("type", "application/json"), [body]
    return answer.get("type", "application/json"), [compact(answer["json"])]


# --- comparing with placeholders -----------------------------------------------------

_PLACEHOLDERS: dict[str, Any] = {
    "<any>": lambda v: True,
    "<str>": lambda v: isinstance(v, str) and v != "",
    "<id>": lambda v: isinstance(v, str) and re.fullmatch(r"(chatcmpl|cmpl)-[0-9a-z]+", v),
    "<call>": lambda v: isinstance(v, str) and re.fullmatch(r"call_[0-9a-z]+", v),
    "<ts>": lambda v: (
        isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", v)
    ),
    "<int>": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "<now>": lambda v: isinstance(v, int) and v > 1_700_000_000,
}


def mismatch(expected: Any, actual: Any, where: str = "$") -> str | None:
    """Where ``actual`` differs from ``expected`` (placeholders match a kind of value)."""
    if isinstance(expected, str) and expected in _PLACEHOLDERS:
        return None if _PLACEHOLDERS[expected](actual) else f"{where}: {actual!r} is not {expected}"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {actual!r}"
        if set(expected) != set(actual):
            return f"{where}: keys {sorted(actual)} != expected {sorted(expected)}"
        for key in expected:
            found = mismatch(expected[key], actual[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where}: expected {len(expected)} items, got {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found = mismatch(e, a, f"{where}[{i}]")
            if found:
                return found
        return None
    numbers = (int, float)
    both_numbers = (
        isinstance(expected, numbers)
        and isinstance(actual, numbers)
        and not isinstance(expected, bool)
        and not isinstance(actual, bool)
    )
    if type(expected) is not type(actual) and not both_numbers:
        return f"{where}: {actual!r} != expected {expected!r}"
    return None if expected == actual else f"{where}: {actual!r} != expected {expected!r}"


def subset_mismatch(expected: dict[str, Any], actual: Any, where: str = "$") -> str | None:
    """As ``mismatch`` for the keys ``expected`` names (the others may be anything)."""
    if not isinstance(actual, dict):
        return f"{where}: expected an object, got {actual!r}"
    for key, value in expected.items():
        if key not in actual:
            return f"{where}.{key} is missing"
        found = mismatch(value, actual[key], f"{where}.{key}")
        if found:
            return found
    return None


def _raw(text: str) -> bytes:
    """Bytes given as text; ``\\udcXX`` stands for the (invalid UTF-8) byte ``0xXX``."""
    return text.encode("utf-8", "surrogateescape")


if __name__ == "__main__":
    write_doc()
