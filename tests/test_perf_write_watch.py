"""A write to a client is watched (its timer armed) only once it has to wait for the
client: ``sink._Watched`` awaits it as ``await`` would, and says when it first waits."""

from __future__ import annotations

import asyncio

import pytest

from ollamux.sink import _Watched


class Waits:
    """A write and what happened to it."""

    def __init__(self) -> None:
        self.waited = 0
        self.done = False
        self.cancelled = False

    def on_wait(self) -> None:
        self.waited += 1

    async def at_once(self) -> None:
        self.done = True

    async def until(self, ready: asyncio.Future[None]) -> None:
        try:
            await ready
            await asyncio.sleep(0)  # a second wait: still one call of ``on_wait``
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.done = True


async def test_a_write_done_at_once_is_not_watched() -> None:
    write = Waits()
    await _Watched(write.at_once(), write.on_wait)
    assert write.done and write.waited == 0


async def test_a_write_that_waits_is_watched_once_and_ends_when_the_client_reads() -> None:
    write = Waits()
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def writing() -> None:
        await _Watched(write.until(ready), write.on_wait)

    task = asyncio.create_task(writing())
    await asyncio.sleep(0)
    assert write.waited == 1 and not write.done
    ready.set_result(None)
    await task
    assert write.done and write.waited == 1


async def test_cancelling_a_waiting_write_cancels_the_write() -> None:
    write = Waits()
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_watched(write, ready))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert write.cancelled and not write.done


async def test_an_error_of_the_write_reaches_the_writer() -> None:
    async def failing() -> None:
        await asyncio.sleep(0)
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        await _Watched(failing(), lambda: None)


async def _watched(write: Waits, ready: asyncio.Future[None]) -> None:
    await _Watched(write.until(ready), write.on_wait)
