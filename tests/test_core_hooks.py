"""The async hook dispatcher: pluggy's order, firstresult, tryfirst/trylast, failures."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ollamux import hookimpl, hookspecs
from ollamux.hooks import Hooks, PluginManager

EXCHANGE: Any = object()  # the dispatcher never looks inside the objects it passes on


def _hooks(*plugins: tuple[str, object]) -> Hooks:
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    return Hooks(pm)


class Recorder:
    """A plugin whose ``ollamux_request_started`` notes its name in a shared list."""

    def __init__(self, name: str, calls: list[str], is_async: bool) -> None:
        self.name = name
        self.calls = calls
        self.is_async = is_async

    @hookimpl
    def ollamux_request_started(self, exchange: Any) -> Any:
        if not self.is_async:
            self.calls.append(self.name)
            return None

        async def later() -> None:
            self.calls.append(self.name)

        return later()


async def test_async_and_sync_impls_are_awaited_last_registered_first() -> None:
    calls: list[str] = []
    hooks = _hooks(
        ("a", Recorder("a", calls, is_async=False)),
        ("b", Recorder("b", calls, is_async=True)),
        ("c", Recorder("c", calls, is_async=False)),
        ("d", Recorder("d", calls, is_async=True)),
    )
    await hooks.request_started(EXCHANGE)
    assert calls == ["d", "c", "b", "a"]


async def test_async_def_impls_are_awaited() -> None:
    seen: list[object] = []

    class Plugin:
        @hookimpl
        async def ollamux_rewrite_request(self, exchange: Any) -> None:
            seen.append(exchange)

    await _hooks(("p", Plugin())).rewrite_request(EXCHANGE)
    assert seen == [EXCHANGE]


async def test_firstresult_stops_at_first_non_none_result() -> None:
    called: list[str] = []

    class Older:
        @hookimpl
        async def ollamux_select_backend(self, exchange: Any) -> Any:
            called.append("older")
            return "older-backend"

    class Middle:
        @hookimpl
        async def ollamux_select_backend(self, exchange: Any) -> Any:
            called.append("middle")
            return "middle-backend"

    class Newest:
        @hookimpl
        async def ollamux_select_backend(self, exchange: Any) -> Any:
            called.append("newest")
            return None

    hooks = _hooks(("older", Older()), ("middle", Middle()), ("newest", Newest()))
    assert await hooks.select_backend(EXCHANGE) == "middle-backend"
    assert called == ["newest", "middle"]


async def test_firstresult_is_none_when_every_impl_declines() -> None:
    class Declines:
        @hookimpl
        async def ollamux_authenticate(self, request: Any) -> None:
            return None

    assert await _hooks(("d", Declines())).authenticate(EXCHANGE) is None


async def test_tryfirst_and_trylast_override_registration_order() -> None:
    calls: list[str] = []

    class First:
        @hookimpl(tryfirst=True)
        async def ollamux_request_finished(self, exchange: Any) -> None:
            calls.append("tryfirst")

    class Last:
        @hookimpl(trylast=True)
        def ollamux_request_finished(self, exchange: Any) -> None:
            calls.append("trylast")

    class Plain:
        @hookimpl
        async def ollamux_request_finished(self, exchange: Any) -> None:
            calls.append("plain")

    # Registered in the opposite of the order they must run in.
    hooks = _hooks(("first", First()), ("plain", Plain()), ("last", Last()))
    await hooks.request_finished(EXCHANGE)
    assert calls == ["tryfirst", "plain", "trylast"]


async def test_trylast_default_answers_only_when_nobody_else_does() -> None:
    class Default:
        @hookimpl(trylast=True)
        def ollamux_select_backend(self, exchange: Any) -> Any:
            return "default"

    class Specific:
        @hookimpl
        async def ollamux_select_backend(self, exchange: Any) -> Any:
            return "specific"

    both = _hooks(("specific", Specific()), ("default", Default()))
    assert await both.select_backend(EXCHANGE) == "specific"
    assert await _hooks(("default", Default())).select_backend(EXCHANGE) == "default"


async def test_an_impl_may_take_a_subset_of_the_arguments() -> None:
    got: list[object] = []

    class OnlyOutcome:
        @hookimpl
        async def ollamux_backend_released(self, outcome: Any) -> None:
            got.append(outcome)

    class NoArgs:
        @hookimpl
        def ollamux_backend_released(self) -> None:
            got.append("no-args")

    hooks = _hooks(("only", OnlyOutcome()), ("none", NoArgs()))
    await hooks.backend_released(EXCHANGE, backend=object(), outcome="ok")  # type: ignore[arg-type]
    assert got == ["no-args", "ok"]


async def test_call_all_collects_every_non_none_result_in_order() -> None:
    class One:
        @hookimpl
        async def ollamux_transform_response(self, exchange: Any, head: Any) -> Any:
            return "one"

    class Nothing:
        @hookimpl
        def ollamux_transform_response(self, exchange: Any, head: Any) -> Any:
            return None

    class Two:
        @hookimpl
        def ollamux_transform_response(self, exchange: Any, head: Any) -> Any:
            return "two"

    hooks = _hooks(("one", One()), ("nothing", Nothing()), ("two", Two()))
    assert await hooks.transform_response(EXCHANGE, head=object()) == ["two", "one"]  # type: ignore[arg-type]


async def test_notify_hooks_isolate_a_failing_impl(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    class Fails:
        @hookimpl
        async def ollamux_request_finished(self, exchange: Any) -> None:
            raise RuntimeError("plugin bug")

    class Works:
        @hookimpl
        def ollamux_request_finished(self, exchange: Any) -> None:
            calls.append("works")

    hooks = _hooks(("works", Works()), ("fails", Fails()))
    with caplog.at_level(logging.ERROR, logger="ollamux.hooks"):
        await hooks.request_finished(EXCHANGE)
    assert calls == ["works"]
    assert any("fails" in r.getMessage() for r in caplog.records)


async def test_a_failing_request_hook_propagates() -> None:
    class Refuses:
        @hookimpl
        async def ollamux_rewrite_request(self, exchange: Any) -> None:
            raise PermissionError("no")

    with pytest.raises(PermissionError):
        await _hooks(("r", Refuses())).rewrite_request(EXCHANGE)


async def test_registering_a_plugin_later_is_seen_by_the_next_call() -> None:
    class Late:
        @hookimpl
        async def ollamux_select_backend(self, exchange: Any) -> Any:
            return "late"

    hooks = _hooks()
    assert await hooks.select_backend(EXCHANGE) is None
    late = Late()
    hooks.pm.register(late, name="late")
    assert await hooks.select_backend(EXCHANGE) == "late"
    hooks.pm.unregister(late)
    assert await hooks.select_backend(EXCHANGE) is None
