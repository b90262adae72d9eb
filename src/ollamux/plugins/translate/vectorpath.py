"""Reading a translated embedding answer's vectors from its JSON text: the C helper
(``_vectorpath.c``, built at install when a C compiler is at hand) or, without it, the
same steps in Python (below). Both give the same vectors for any input
(tests/test_vectorpath.py); ``OLLAMUX_PURE_PYTHON=1`` picks Python's.

``floats(text, i)`` / ``base64(text, i)``: at ``i`` must come a JSON list of lists of
JSON numbers; the answer is each vector as it goes into an OpenAI embedding list (its
JSON text as the backend wrote it / a JSON string of its numbers as little-endian float32
in base64, as ``struct`` packs what ``json`` reads), and the index after the list.
``None`` for anything else (``NaN`` included), and in base64 for a number float32 cannot
hold: the caller then converts the answer the parsing way, which words the error.
``one(text, i)``: one vector (a JSON list of numbers) at ``i``, its text as it is, and the
index after it.
"""

from __future__ import annotations

import os
import re

from .common import Unreadable, floats_to_base64
from .jsonwalk import Read, items, value

# JSON's number grammar (RFC 8259), possessive: no backtracking, linear in the text
_NUMBER = r"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+"
_WS = r"[ \t\n\r]*+"
# a vector as Go's encoder writes it (Ollama's server), then with JSON's optional spaces
_COMPACT = re.compile(rf"\[(?:{_NUMBER}(?:,{_NUMBER})*+)?+\]")
_SPACED = re.compile(rf"\[{_WS}(?:{_NUMBER}{_WS}(?:,{_WS}{_NUMBER}{_WS})*+)?+\]")


def _one(text: str, i: int) -> tuple[str, int] | None:
    match = _COMPACT.match(text, i) or _SPACED.match(text, i)
    return None if match is None else (match.group(), match.end())


def _floats(text: str, i: int) -> tuple[list[str], int] | None:
    return items(text, i, _one)


def _base64(text: str, i: int) -> tuple[list[str], int] | None:
    vectors, end = value(text, i)
    if type(vectors) is not list or any(type(vector) is not list for vector in vectors):
        return None
    # ``true``, ``false``, ``NaN`` and ``Infinity``, which ``struct`` would pack: no letter
    # but ``e`` and ``E`` is in a list of JSON numbers
    if any(text.find(letter, i, end) >= 0 for letter in "tfN"):
        return None
    try:  # anything but numbers a 32-bit float holds is refused (a string, null, too large)
        return [f'"{floats_to_base64(vector)}"' for vector in vectors], end
    except (Unreadable, TypeError):
        return None


def _compiled() -> tuple[Read[list[str]], Read[list[str]], Read[str]] | None:
    if os.environ.get("OLLAMUX_PURE_PYTHON"):
        return None
    try:
        from ._vectorpath import one as compiled_one
        from ._vectorpath import vectors
    except ImportError:
        return None

    def floats(text: str, i: int) -> tuple[list[str], int] | None:
        return vectors(text, i, False) if text.isascii() else _floats(text, i)

    def base64(text: str, i: int) -> tuple[list[str], int] | None:
        return vectors(text, i, True) if text.isascii() else _base64(text, i)

    def one(text: str, i: int) -> tuple[str, int] | None:
        return compiled_one(text, i) if text.isascii() else _one(text, i)

    return floats, base64, one


floats, base64, one = _compiled() or (_floats, _base64, _one)
