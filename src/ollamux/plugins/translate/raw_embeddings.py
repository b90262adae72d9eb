"""An ``/api/embed`` answer -> OpenAI's embedding list, and back, from their bytes.

Parsing some 6000 numbers into Python floats and writing them back out was nearly all of
a translated embedding request's cost. The vectors are read by ``vectorpath`` (in C when
it was built): as JSON text, each checked (a list of JSON numbers, no objects made per
number) and copied as it is, so the client gets the same JSON values as from the slow
path (``embedding_list``, ``embed_response``), numbers written as the backend wrote them;
for an OpenAI client's ``encoding_format: base64`` the numbers are packed as float32 as
they are read. The answer is put together without ``json.dumps``.

Only the levels around the vectors are walked here; the other fields are parsed as usual.
Anything unusual gives ``None`` and the caller converts the answer the slow way, which
also words the errors: invalid UTF-8, a body that is not one JSON object, vectors that are
not plain number lists (``NaN`` included, and an OpenAI server's base64), a field of the
wrong type, an error object.
"""

from __future__ import annotations

import json
from operator import itemgetter
from typing import Any, TypeVar

from . import vectorpath
from .common import Unreadable, count_of, is_int, text_of
from .jsonwalk import Read, items, members, skip

T = TypeVar("T")


def embedding_list_raw(
    body: bytes, model: str, encoding_format: str
) -> tuple[bytes, int, int] | None:
    """The OpenAI embedding list for a whole ``/api/embed`` answer, and its prompt and
    completion (none) token counts; ``None`` when the answer needs the slow path."""
    read = vectorpath.base64 if encoding_format == "base64" else vectorpath.floats
    found = _answer(body, "embeddings", read)
    if found is None:
        return None
    fields, vectors = found
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


def embed_answer_raw(body: bytes, model: str) -> tuple[bytes, int, int] | None:
    """The ``/api/embed`` answer for a whole OpenAI embedding list (its vectors in the order
    of their ``index``), and its prompt and completion (none) token counts; ``None`` when
    the answer needs the slow path."""
    found = _answer(body, "data", lambda text, i: items(text, i, _entry))
    if found is None:
        return None
    fields, entries = found
    usage = fields.get("usage")
    if usage is not None and type(usage) is not dict:
        return None
    try:
        tokens = count_of(usage or {}, "prompt_tokens")
        count_of(usage or {}, "completion_tokens")
        name = model or text_of(fields, "model")
    except Unreadable:
        return None
    vectors = ", ".join([vector for _, vector in sorted(entries, key=itemgetter(0))])
    answer = (
        f'{{"model": {json.dumps(name)}, "embeddings": [{vectors}], "total_duration": 0, '
        f'"load_duration": 0, "prompt_eval_count": {tokens}}}'
    )
    return answer.encode(), tokens, 0


def _entry(text: str, i: int) -> tuple[tuple[int, str], int] | None:
    """An entry of an OpenAI embedding list at ``i``: its ``index`` and vector (its text),
    and the index after it; ``None`` for anything else (a vector in base64 included)."""
    found = members(text, i, "embedding", vectorpath.one)
    if found is None:
        return None
    fields, vector, end = found
    index = fields.get("index", 0)
    if vector is None or not is_int(index) or index < 0:
        return None
    return (index, vector), end


def _answer(body: bytes, key: str, read: Read[T]) -> tuple[dict[str, Any], T] | None:
    """The members of a whole answer, one JSON object, but ``key``, and the value of ``key``
    as ``read`` gives it; ``None`` when ``read`` does not take it, or the answer is not
    one object or is an error object."""
    try:
        text = body.decode()
        found = members(text, skip(text, 0), key, read)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return None
    if found is None:
        return None
    fields, value, end = found
    if value is None or skip(text, end) != len(text):
        return None
    if fields.get("error") is not None or fields.get("object") == "error":
        return None
    return fields, value
