"""The dispatcher's fast paths pass every implementation the right arguments: the facade
calls by position in the hookspec's order, implementations may take any subset in any
order, and calls by keyword still work."""

from __future__ import annotations

from typing import Any

from ollamux import hookimpl, hookspecs
from ollamux.hooks import Hooks, PluginManager

EXCHANGE: Any = object()
BACKEND: Any = object()
HEAD: Any = object()
OUTCOME: Any = object()


class Picky:
    """Implementations taking some of their hook's arguments, in an unusual order."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[Any, ...]] = {}

    @hookimpl
    def ollamux_translate_request(self, backend: Any, exchange: Any) -> None:
        self.seen["translate_request"] = (backend, exchange)

    @hookimpl
    async def ollamux_upstream_started(self, head: Any, exchange: Any) -> None:
        self.seen["upstream_started"] = (head, exchange)

    @hookimpl
    def ollamux_transform_response(self, head: Any) -> Any:
        self.seen["transform_response"] = (head,)
        return "transform"

    @hookimpl
    def ollamux_backend_released(self, outcome: Any) -> None:
        self.seen["backend_released"] = (outcome,)


class Complete:
    """Implementations taking every argument, in the hookspec's order."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[Any, ...]] = {}

    @hookimpl
    def ollamux_upstream_started(self, exchange: Any, backend: Any, head: Any) -> None:
        self.seen["upstream_started"] = (exchange, backend, head)

    @hookimpl
    async def ollamux_backend_released(self, exchange: Any, backend: Any, outcome: Any) -> None:
        self.seen["backend_released"] = (exchange, backend, outcome)


def _hooks(*plugins: object) -> Hooks:
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for i, plugin in enumerate(plugins):
        pm.register(plugin, name=f"p{i}")
    return Hooks(pm)


async def test_implementations_get_the_arguments_they_name_whatever_their_order() -> None:
    picky = Picky()
    hooks = _hooks(picky)
    assert await hooks.translate_request(EXCHANGE, BACKEND) is None
    await hooks.upstream_started(EXCHANGE, BACKEND, HEAD)
    assert await hooks.transform_response(EXCHANGE, HEAD) == ["transform"]
    await hooks.backend_released(EXCHANGE, BACKEND, OUTCOME)
    assert picky.seen == {
        "translate_request": (BACKEND, EXCHANGE),
        "upstream_started": (HEAD, EXCHANGE),
        "transform_response": (HEAD,),
        "backend_released": (OUTCOME,),
    }


async def test_implementations_taking_every_argument_get_them_in_spec_order() -> None:
    complete = Complete()
    hooks = _hooks(complete)
    await hooks.upstream_started(EXCHANGE, BACKEND, HEAD)
    await hooks.backend_released(EXCHANGE, BACKEND, OUTCOME)
    assert complete.seen == {
        "upstream_started": (EXCHANGE, BACKEND, HEAD),
        "backend_released": (EXCHANGE, BACKEND, OUTCOME),
    }


async def test_calls_by_keyword_reach_implementations_like_calls_by_position() -> None:
    picky, complete = Picky(), Complete()
    hooks = _hooks(picky, complete)
    await hooks.notify(
        "ollamux_backend_released", outcome=OUTCOME, exchange=EXCHANGE, backend=BACKEND
    )
    assert complete.seen["backend_released"] == (EXCHANGE, BACKEND, OUTCOME)
    assert picky.seen["backend_released"] == (OUTCOME,)


async def test_a_hook_nobody_implements_returns_nothing() -> None:
    hooks = _hooks()
    assert await hooks.select_backend(EXCHANGE) is None
    assert await hooks.transform_response(EXCHANGE, HEAD) == []
