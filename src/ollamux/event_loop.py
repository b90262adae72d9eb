"""Which event loop a served process runs on (``server.event_loop``).

uvloop (libuv under asyncio's interface) runs aiohttp's sockets, timers and callbacks in C:
per proxied request and per streamed chunk it costs markedly less CPU than the standard
loop. ``auto`` takes it when it is installed (the default install brings it on Linux and
macOS), else the standard loop; ``asyncio`` never uses it; ``uvloop`` requires it.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

EventLoopChoice = Literal["auto", "asyncio", "uvloop"]
T = TypeVar("T")


class EventLoopUnavailable(RuntimeError):
    """``server.event_loop: uvloop`` on a machine without uvloop."""


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop ``choice`` names; ``None`` for asyncio's standard loop."""
    if choice == "asyncio":
        return None
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise EventLoopUnavailable(
                "server.event_loop is uvloop but uvloop is not installed (pip install uvloop)"
            )
        return None
    import uvloop

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice) -> T:
    """``asyncio.run(main)`` on the loop ``choice`` names."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what the startup line reports."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
