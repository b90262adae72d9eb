"""An ``/api/embed`` answer -> OpenAI's embedding list, from its bytes.

Parsing some 6000 numbers into Python floats and writing them back out was nearly all of
a translated embedding request's cost. The vectors are read by ``vectorpath`` (in C when
it was built): for ``encoding_format: float`` each vector's JSON text is checked (a list
of JSON numbers, no objects made per number) and copied as it is, so the client gets the
same JSON values as from the slow path (``embedding_list``), numbers written as the
backend wrote them; for ``base64`` the numbers are packed as float32 as they are read.
The answer is put together without ``json.dumps``.

Only the top level is walked here; its other fields are parsed as usual. Anything unusual
gives ``None`` and the caller converts the answer the slow way, which also words the
errors: invalid UTF-8, a body that is not one JSON object, an ``embeddings`` that is not a
list of plain number lists (``NaN`` included), a field of the wrong type, an error object.
"""

from __future__ import annotations

import json
from typing import Any

from . import vectorpath
from .common import Unreadable, count_of, text_of
from .vectorpath import Reader, skip

_VALUE = json.JSONDecoder().raw_decode  # one JSON value at an index (its C scanner)


def embedding_list_raw(
    body: bytes, model: str, encoding_format: str
) -> tuple[bytes, int, int] | None:
    """The OpenAI embedding list for a whole ``/api/embed`` answer, and its prompt and
    completion (none) token counts; ``None`` when the answer needs the slow path."""
    read = vectorpath.base64 if encoding_format == "base64" else vectorpath.floats
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
    i = skip(text, 0)
    if text[i : i + 1] != "{":
        return None
    fields: dict[str, Any] = {}
    vectors: list[str] | None = None
    i = skip(text, i + 1)
    while text[i : i + 1] != "}":
        if text[i : i + 1] != '"':
            return None
        key, i = _VALUE(text, i)  # a string: it starts with a quote
        i = skip(text, i)
        if text[i : i + 1] != ":":
            return None
        i = skip(text, i + 1)
        if key == "embeddings":
            found = read(text, i)
            if found is None:
                return None
            vectors, i = found
        else:
            fields[key], i = _VALUE(text, i)
        i = skip(text, i)
        if text[i : i + 1] == ",":
            i = skip(text, i + 1)
            if text[i : i + 1] != '"':
                return None
        elif text[i : i + 1] != "}":
            return None
    if skip(text, i + 1) != len(text) or vectors is None:
        return None
    return fields, vectors
