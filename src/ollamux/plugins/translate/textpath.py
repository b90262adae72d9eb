"""Which code re-frames a read of a translated stream's text-only records: the C helper
(``_textpath.c``, built at install when a C compiler is at hand) or, without it, the same
steps in Python (``read_contents``, ``ChatStream.read_texts``). Both give the same bytes
for any input (tests/test_textpath.py); ``OLLAMUX_PURE_PYTHON=1`` picks Python's.

``reframe(data, sep, head, anchored, tail, before, after)``: ``data`` is records each
followed by ``sep``; a record holds no newline and ends with ``tail``; its text follows
``head`` (at the record's start if ``anchored``, else its last occurrence) up to
``tail``. Every text must be one non-empty JSON string and ``data`` valid UTF-8: then
``before + text + after`` for each record, else ``None``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

Reframe = Callable[[bytes, bytes, bytes, bool, bytes, bytes, bytes], bytes | None]


def _compiled() -> Reframe | None:
    if os.environ.get("OLLAMUX_PURE_PYTHON"):
        return None
    try:
        from ._textpath import reframe as compiled
    except ImportError:
        return None
    return compiled


reframe: Reframe | None = _compiled()
