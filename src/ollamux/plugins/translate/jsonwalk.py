"""Walking the outer levels of a JSON text without parsing what lies below them: a list's
items and an object's members, each read by a function the caller gives (the embedding
vectors: ``vectorpath``), every other value by ``json``'s C scanner. Used where parsing a
whole answer into Python objects would cost most of a request (``raw_embeddings``).

Each reader takes the text and an index and gives what it read and the index after it,
or ``None`` when the text there is not what it reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Read = Callable[[str, int], tuple[T, int] | None]

_BLANKS = frozenset(" \t\n\r")
_SKIP = re.compile(r"[ \t\n\r]*+")
value = json.JSONDecoder().raw_decode  # one JSON value at an index (its C scanner)


def skip(text: str, i: int) -> int:
    """The index of the first character at or after ``i`` that is not JSON whitespace."""
    if text[i : i + 1] not in _BLANKS:  # compact JSON: no regular expression to run
        return i
    match = _SKIP.match(text, i)
    return i if match is None else match.end()


def items(text: str, i: int, read: Read[T]) -> tuple[list[T], int] | None:
    """The items of the JSON list at ``i``, each as ``read`` gives it, and the index after
    the list; ``None`` unless ``read`` takes every item."""
    if text[i : i + 1] != "[":
        return None
    i = skip(text, i + 1)
    out: list[T] = []
    if text[i : i + 1] == "]":
        return out, i + 1
    while True:
        found = read(text, i)
        if found is None:
            return None
        item, i = found
        out.append(item)
        i = skip(text, i)
        sep = text[i : i + 1]
        if sep == "]":
            return out, i + 1
        if sep != ",":
            return None
        i = skip(text, i + 1)


def members(
    text: str, i: int, key: str, read: Read[T]
) -> tuple[dict[str, Any], T | None, int] | None:
    """The members of the JSON object at ``i`` but ``key``, the value of ``key`` as
    ``read`` gives it (``None`` when absent), and the index after the object; ``None``
    unless ``read`` takes that value. A repeated key counts once, the last, as in ``json``.
    ``ValueError`` (from ``json``) for a text that is not JSON where a value should be."""
    if text[i : i + 1] != "{":
        return None
    fields: dict[str, Any] = {}
    found_value: T | None = None
    i = skip(text, i + 1)
    while text[i : i + 1] != "}":
        if text[i : i + 1] != '"':
            return None
        name, i = value(text, i)  # a string: it starts with a quote
        i = skip(text, i)
        if text[i : i + 1] != ":":
            return None
        i = skip(text, i + 1)
        if name == key:
            found = read(text, i)
            if found is None:
                return None
            found_value, i = found
        else:
            fields[name], i = value(text, i)
        i = skip(text, i)
        if text[i : i + 1] == ",":
            i = skip(text, i + 1)
            if text[i : i + 1] != '"':
                return None
        elif text[i : i + 1] != "}":
            return None
    return fields, found_value, i + 1
