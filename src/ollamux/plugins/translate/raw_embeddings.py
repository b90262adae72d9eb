"""An ``/api/embed`` answer -> OpenAI's embedding list, from its bytes.

Parsing some 6000 numbers into Python floats and writing them back out was nearly all of
a translated embedding request's cost. For ``encoding_format: float`` each vector's JSON
text is checked instead (a list of JSON numbers, by one compiled regular expression: in C,
no objects made per number) and copied as it is; the client gets the same JSON values as
from the slow path (``embedding_list``), numbers written as the backend wrote them. For
``base64`` the vectors must be parsed (to be packed as float32), but their types are left
to ``struct`` to check and the answer is put together without ``json.dumps``.

Only the top level is walked here; its other fields are parsed as usual. Anything unusual
gives ``None`` and the caller converts the answer the slow way, which also words the
errors: invalid UTF-8, a body that is not one JSON object, an ``embeddings`` that is not a
list of plain number lists (``NaN`` included), a field of the wrong type, an error object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .common import Unreadable, count_of, floats_to_base64, text_of

# JSON's number grammar (RFC 8259), possessive: no backtracking, linear in the text
_NUMBER = r"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+"
_WS = r"[ \t\n\r]*+"
# a vector as Go's encoder writes it (Ollama's server), then with JSON's optional spaces
_COMPACT = re.compile(rf"\[(?:{_NUMBER}(?:,{_NUMBER})*+)?+\]")
_SPACED = re.compile(rf"\[{_WS}(?:{_NUMBER}{_WS}(?:,{_WS}{_NUMBER}{_WS})*+)?+\]")
_SKIP = re.compile(_WS)
_VALUE = json.JSONDecoder().raw_decode  # one JSON value at an index (its C scanner)

# Reads the ``embeddings`` value at an index: each vector as it goes into the answer (its
# JSON text), and the index after the value; ``None`` when it is not a list of vectors.
Reader = Callable[[str, int], tuple[list[str], int] | None]


def embedding_list_raw(
    body: bytes, model: str, encoding_format: str
) -> tuple[bytes, int, int] | None:
    """The OpenAI embedding list for a whole ``/api/embed`` answer, and its prompt and
    completion (none) token counts; ``None`` when the answer needs the slow path."""
    read = _base64_vectors if encoding_format == "base64" else _vectors
    try:
        found = split_answer(body.decode(), read)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return None
    if found is None:
        return None
    fields, vectors = found
    if fields.get("error") is not None or fields.get("object") == "error":
        return None
    try:
        tokens = count_of(fields, "prompt_eval_count")
        name = model or text_of(fields, "model")
    except Unreadable:
        return None
    data = ", ".join(
        [
            f'{{"object": "embedding", "index": {i}, "embedding": {vector}}}'
            for i, vector in enumerate(vectors)
        ]
    )
    answer = (
        f'{{"object": "list", "data": [{data}], "model": {json.dumps(name)}, '
        f'"usage": {{"prompt_tokens": {tokens}, "total_tokens": {tokens}}}}}'
    )
    return answer.encode(), tokens, 0


def split_answer(text: str, read: Reader) -> tuple[dict[str, Any], list[str]] | None:
    """The top-level fields of one JSON object (``embeddings`` left out) and its
    ``embeddings`` vectors as ``read`` gives them; ``None`` unless ``read`` takes them.

    Only the top level is walked here (a key, a value, a comma: as ``json`` does it, with
    its C scanner for every value); a repeated key counts once, the last, as in ``json``.
    """
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        return None
    fields: dict[str, Any] = {}
    vectors: list[str] | None = None
    i = _skip(text, i + 1)
    while text[i : i + 1] != "}":
        if text[i : i + 1] != '"':
            return None
        key, i = _VALUE(text, i)  # a string: it starts with a quote
        i = _skip(text, i)
        if text[i : i + 1] != ":":
            return None
        i = _skip(text, i + 1)
        if key == "embeddings":
            found = read(text, i)
            if found is None:
                return None
            vectors, i = found
        else:
            fields[key], i = _VALUE(text, i)
        i = _skip(text, i)
        if text[i : i + 1] == ",":
            i = _skip(text, i + 1)
            if text[i : i + 1] != '"':
                return None
        elif text[i : i + 1] != "}":
            return None
    if _skip(text, i + 1) != len(text) or vectors is None:
        return None
    return fields, vectors


def _skip(text: str, i: int) -> int:
    """The index of the first character at or after ``i`` that is not JSON whitespace."""
    match = _SKIP.match(text, i)
    return i if match is None else match.end()


def _vectors(text: str, i: int) -> tuple[list[str], int] | None:
    """The vectors of the list at ``i`` (each a list of JSON numbers, as its text) and
    the index after the list; ``None`` for anything else."""
    if text[i : i + 1] != "[":
        return None
    i = _skip(text, i + 1)
    vectors: list[str] = []
    if text[i : i + 1] == "]":
        return vectors, i + 1
    while True:
        match = _COMPACT.match(text, i) or _SPACED.match(text, i)
        if match is None:
            return None
        vectors.append(match.group())
        i = _skip(text, match.end())
        sep = text[i : i + 1]
        if sep == "]":
            return vectors, i + 1
        if sep != ",":
            return None
        i = _skip(text, i + 1)


def _base64_vectors(text: str, i: int) -> tuple[list[str], int] | None:
    """The vectors of the list at ``i`` as JSON strings of their little-endian float32
    bytes in base64, and the index after the list; ``None`` for anything else (also
    ``true``, ``false`` and ``Infinity``, which ``struct`` would pack: the letters ``t``
    and ``f`` cannot be in a list of numbers)."""
    vectors, end = _VALUE(text, i)
    if type(vectors) is not list or any(type(vector) is not list for vector in vectors):
        return None
    if text.find("t", i, end) >= 0 or text.find("f", i, end) >= 0:
        return None
    try:  # anything but numbers a 32-bit float holds is refused (a string, null, too large)
        return [f'"{floats_to_base64(vector)}"' for vector in vectors], end
    except (Unreadable, TypeError):
        return None
