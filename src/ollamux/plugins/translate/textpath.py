"""Which code re-frames a read of a translated stream's text-only records: the C helper
(``_textpath.c``, built at install when a C compiler is at hand) or, without it, the same
steps in Python (``read_contents``, ``ChatStream.read_texts``). Both give the same bytes
for any input (tests/test_textpath.py); ``OLLAMUX_PURE_PYTHON=1`` picks Python's.

``reframe(data, sep, head, anchored, tail, before, after)``: ``data`` is records each
followed by ``sep``; a record holds no newline and ends with ``tail``; its text follows
``head`` (at the record's start if ``anchored``, else its last occurrence) up to
``tail``. Every text must be one non-empty JSON string and ``data`` valid UTF-8: then
``before + text + after`` for each record, else ``None``; with ``number`` (>= 0), each is
followed by its decimal number (``number``, then one more for each next record) and
``end``.
"""

from __future__ import annotations

import os
from typing import Protocol


class Reframe(Protocol):
    def __call__(
        self,
        data: bytes,
        sep: bytes,
        head: bytes,
        anchored: bool,
        tail: bytes,
        before: bytes,
        after: bytes,
        number: int = -1,
        end: bytes = b"",
    ) -> bytes | None: ...


def _compiled() -> Reframe | None:
    if os.environ.get("OLLAMUX_PURE_PYTHON"):
        return None
    try:
        from ._textpath import reframe as compiled
    except ImportError:
        return None
    return compiled


reframe: Reframe | None = _compiled()


def frame_texts(
    texts: bytes, before: bytes, after: bytes, number: int = -1, end: bytes = b""
) -> bytes | None:
    """``reframe`` of ``texts``, JSON strings one per line (a read's, already checked):
    their events at once, in C; ``None`` without the C helper (then the caller writes
    them one by one)."""
    if reframe is None:
        return None
    return reframe(texts + b"\n", b"\n", b"", True, b"", before, after, number, end)
