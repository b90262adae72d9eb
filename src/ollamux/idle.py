"""A between-bytes timeout for relayed answers that costs next to nothing per chunk.

aiohttp's ``sock_read`` timeout re-arms an event-loop timer on every read from the socket:
for a token stream that is a new timer and a cancelled one per chunk, the largest share of
a relay's CPU per chunk. Once an answer's headers are in, ``IdleWatch`` takes the job over
with one timer per answer: when it fires, it looks at when the relay last started waiting
for the backend and re-arms for the time left, failing the read the way aiohttp would
(``SocketTimeoutError``) only when the backend really was silent that long. Time spent
writing to a slow client does not count, as it does not for ``sock_read``.
"""

from __future__ import annotations

import asyncio

import aiohttp


class IdleWatch:
    """Fails ``response``'s body read after ``timeout`` seconds without a chunk.

    Call ``busy()`` when a chunk arrived (the relay is now writing it to the client),
    ``waiting()`` when the relay goes back to reading, ``stop()`` when done.
    """

    __slots__ = ("_handle", "_loop", "_response", "_since", "_timeout")

    def __init__(self, response: aiohttp.ClientResponse, timeout: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._response = response
        self._timeout = timeout or 0.0
        self._since: float | None = self._loop.time()
        self._handle: asyncio.TimerHandle | None = None
        conn = response.connection
        if self._timeout and conn is not None and conn.protocol is not None:
            conn.protocol.read_timeout = None  # aiohttp's per-read timer stops here
            self._handle = self._loop.call_at(self._since + self._timeout, self._check)

    def busy(self) -> None:
        self._since = None

    def waiting(self) -> None:
        self._since = self._loop.time()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        now = self._loop.time()
        due = now + self._timeout if self._since is None else self._since + self._timeout
        if now < due:
            self._handle = self._loop.call_at(due, self._check)
            return
        self._handle = None
        exc = aiohttp.SocketTimeoutError("Timeout on reading data from socket")
        self._response.content.set_exception(exc)
