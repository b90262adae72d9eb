"""An async dispatcher over pluggy and the typed facade the core calls hooks through.

pluggy calls implementations but does not await them. ``Hooks`` walks
``hook.get_hookimpls()`` in pluggy's call order (reversed registration order, with
tryfirst/trylast honoured), awaits what is awaitable, and stops at the first non-None
result for firstresult hooks. The per-hook implementation lists are cached and rebuilt
whenever a plugin is registered or unregistered.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, cast

import pluggy

if TYPE_CHECKING:
    from aiohttp import web

    from .backend import Backend
    from .config import Config
    from .exchange import (
        Exchange,
        LocalResponse,
        Outcome,
        Principal,
        ResponseHead,
        UpstreamRequest,
    )
    from .fleet import SelectionPolicy
    from .gateway import Gateway
    from .transforms import ResponseTransform

log = logging.getLogger("ollamux.hooks")

# One implementation, ready to call: the function; which of the call's arguments it takes
# (indexes into the hookspec's argument order, or None when it takes them all, in order);
# whether it is ``async def``; its plugin's name (for logs).
_Impl = tuple[Callable[..., Any], tuple[int, ...] | None, bool, str]


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, bumping a generation counter so the dispatcher's cache stays true."""

    def __init__(self) -> None:
        super().__init__("ollamux")
        self.generation = 0
        self.origins: dict[str, str] = {}

    def register(self, plugin: object, name: str | None = None) -> str | None:
        result = super().register(plugin, name)
        self.generation += 1
        return result

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        result = super().unregister(plugin, name)
        self.generation += 1
        return result


class Hooks:
    """One typed method per hook; the only place that names hooks by string."""

    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        self._cache: dict[str, list[_Impl]] = {}
        self._argnames: dict[str, tuple[str, ...]] = {}
        self._generation = -1

    def impls(self, name: str) -> list[_Impl]:
        if self._generation != self.pm.generation:
            self._cache.clear()
            self._argnames.clear()
            self._generation = self.pm.generation
        found = self._cache.get(name)
        if found is None:
            found = self._cache[name] = self._prepare(name)
        return found

    def _prepare(self, name: str) -> list[_Impl]:
        caller = getattr(self.pm.hook, name, None)
        if caller is None or caller.spec is None:
            return []  # not a declared hook (``check_pending`` reports stray impls at start)
        spec = tuple(caller.spec.argnames)
        self._argnames[name] = spec
        found: list[_Impl] = []
        for impl in reversed(caller.get_hookimpls()):
            names = tuple(impl.argnames)
            picks = None if names == spec else tuple(spec.index(a) for a in names)
            is_async = inspect.iscoroutinefunction(impl.function)
            found.append((impl.function, picks, is_async, impl.plugin_name))
        return found

    def _args(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """Keyword arguments put in the hookspec's order (the slow path; the facade passes
        arguments by position)."""
        self.impls(name)
        return (*args, *(kwargs[a] for a in self._argnames.get(name, ())[len(args) :]))

    # The three calling conventions. Arguments come by position, in the hookspec's order;
    # an implementation taking them all is called without building a new argument list, a
    # plain function's result is only checked for awaitability when it is not None, and a
    # hook nobody implements costs one dictionary lookup and no coroutine.

    async def call_first(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Stop at the first non-None result."""
        if kwargs:
            args = self._args(name, args, kwargs)
        return await self._first(name, args)

    async def call_all(self, name: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Every implementation's non-None result, in call order."""
        if kwargs:
            args = self._args(name, args, kwargs)
        return await self._all(name, args)

    async def notify(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Call every implementation; a failing one is logged and the rest still run."""
        if kwargs:
            args = self._args(name, args, kwargs)
        await self._notify(name, args)

    # The facade's per-request methods are plain functions returning these awaitables, so
    # that each hook call is one coroutine, or none when nobody implements the hook.

    def _first(self, name: str, args: tuple[Any, ...]) -> Awaitable[Any]:
        impls = self.impls(name)
        return _first_of(impls, args) if impls else _NONE

    def _all(self, name: str, args: tuple[Any, ...]) -> Awaitable[list[Any]]:
        return _all_of(self.impls(name), args)

    def _each(self, name: str, args: tuple[Any, ...]) -> Awaitable[None]:
        """Every implementation, results ignored, errors raised (``call_all`` without the
        list)."""
        impls = self.impls(name)
        return _each_of(impls, args) if impls else _NONE

    def _notify(self, name: str, args: tuple[Any, ...]) -> Awaitable[None]:
        impls = self.impls(name)
        return _notify_of(name, impls, args) if impls else _NONE

    # -- setting up ---------------------------------------------------------------------

    def register_routes(self, gateway: Gateway, app: web.Application) -> None:
        self.pm.hook.ollamux_register_routes(gateway=gateway, app=app)

    async def startup(self, gateway: Gateway) -> None:
        # Startup failures are fatal: a plugin that cannot open its store must stop the server.
        await self.call_all("ollamux_startup", gateway)

    async def shutdown(self, gateway: Gateway) -> None:
        await self.notify("ollamux_shutdown", gateway)

    async def config_reloaded(self, gateway: Gateway, old: Config, new: Config) -> None:
        await self.notify("ollamux_config_reloaded", gateway, old, new)

    # -- identity and permissions -------------------------------------------------------

    def authenticate(self, request: web.Request) -> Awaitable[Principal | None]:
        return self._first("ollamux_authenticate", (request,))

    async def permission_allowed(
        self, gateway: Gateway, principal: Principal, action: str, resource: str | None = None
    ) -> bool:
        """False when any implementation says so; allowed when none objects."""
        args = (gateway, principal, action, resource)
        for fn, picks, is_async, _ in self.impls("ollamux_permission_allowed"):
            result = fn(*args) if picks is None else fn(*[args[i] for i in picks])
            if is_async or (result is not None and inspect.isawaitable(result)):
                result = await result
            if result is False:
                return False
        return True

    async def resolve_principal(self, gateway: Gateway, name: str) -> Principal | None:
        return cast(
            "Principal | None", await self.call_first("ollamux_resolve_principal", gateway, name)
        )

    async def cancel_task(self, gateway: Gateway, task_id: str, principal: Principal) -> bool:
        """Whether a plugin cancelled work queued under ``task_id``."""
        return bool(await self.call_first("ollamux_cancel_task", gateway, task_id, principal))

    async def selection_policy(self, gateway: Gateway) -> SelectionPolicy | None:
        return cast(
            "SelectionPolicy | None", await self.call_first("ollamux_selection_policy", gateway)
        )

    # -- fleet events -------------------------------------------------------------------

    async def backend_changed(self, gateway: Gateway, backend: Backend) -> None:
        await self.notify("ollamux_backend_changed", gateway, backend)

    async def backend_models_changed(self, gateway: Gateway, backend: Backend) -> None:
        await self.notify("ollamux_backend_models_changed", gateway, backend)

    async def fleet_changed(self, gateway: Gateway) -> None:
        await self.notify("ollamux_fleet_changed", gateway)

    async def cross_origin_allowed(self, gateway: Gateway, origin: str) -> bool:
        return (await self.call_first("ollamux_cross_origin_allowed", gateway, origin)) is True

    # -- the request path ---------------------------------------------------------------

    def admit(self, exchange: Exchange) -> Awaitable[None]:
        return self._each("ollamux_admit", (exchange,))

    def request_started(self, exchange: Exchange) -> Awaitable[None]:
        return self._each("ollamux_request_started", (exchange,))

    def rewrite_request(self, exchange: Exchange) -> Awaitable[None]:
        return self._each("ollamux_rewrite_request", (exchange,))

    def respond(self, exchange: Exchange) -> Awaitable[web.StreamResponse | None]:
        return self._first("ollamux_respond", (exchange,))

    def fanout_backends(self, exchange: Exchange) -> Awaitable[list[Backend] | None]:
        return self._first("ollamux_fanout_backends", (exchange,))

    def select_backend(self, exchange: Exchange) -> Awaitable[Backend | None]:
        return self._first("ollamux_select_backend", (exchange,))

    def attempt_started(self, exchange: Exchange, backend: Backend) -> Awaitable[None]:
        return self._notify("ollamux_attempt_started", (exchange, backend))

    def translate_request(
        self, exchange: Exchange, backend: Backend
    ) -> Awaitable[UpstreamRequest | LocalResponse | None]:
        return self._first("ollamux_translate_request", (exchange, backend))

    def upstream_started(
        self, exchange: Exchange, backend: Backend, head: ResponseHead
    ) -> Awaitable[None]:
        return self._notify("ollamux_upstream_started", (exchange, backend, head))

    def transform_response(
        self, exchange: Exchange, head: ResponseHead
    ) -> Awaitable[list[ResponseTransform]]:
        return self._all("ollamux_transform_response", (exchange, head))

    def backend_released(
        self, exchange: Exchange, backend: Backend, outcome: Outcome
    ) -> Awaitable[None]:
        return self._notify("ollamux_backend_released", (exchange, backend, outcome))

    def response_started(self, exchange: Exchange, status: int) -> Awaitable[None]:
        return self._notify("ollamux_response_started", (exchange, status))

    def request_finished(self, exchange: Exchange) -> Awaitable[None]:
        return self._notify("ollamux_request_finished", (exchange,))


class _Nothing:
    """An awaitable that is already done with ``None``: the call of a hook nobody
    implements."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


_NONE: Awaitable[None] = _Nothing()


async def _first_of(impls: list[_Impl], args: tuple[Any, ...]) -> Any:
    for fn, picks, is_async, _ in impls:
        result = fn(*args) if picks is None else fn(*[args[i] for i in picks])
        if is_async or (result is not None and inspect.isawaitable(result)):
            result = await result
        if result is not None:
            return result
    return None


async def _all_of(impls: list[_Impl], args: tuple[Any, ...]) -> list[Any]:
    results = []
    for fn, picks, is_async, _ in impls:
        result = fn(*args) if picks is None else fn(*[args[i] for i in picks])
        if is_async or (result is not None and inspect.isawaitable(result)):
            result = await result
        if result is not None:
            results.append(result)
    return results


async def _each_of(impls: list[_Impl], args: tuple[Any, ...]) -> None:
    for fn, picks, is_async, _ in impls:
        result = fn(*args) if picks is None else fn(*[args[i] for i in picks])
        if is_async or (result is not None and inspect.isawaitable(result)):
            await result


async def _notify_of(name: str, impls: list[_Impl], args: tuple[Any, ...]) -> None:
    for fn, picks, is_async, plugin in impls:
        try:
            result = fn(*args) if picks is None else fn(*[args[i] for i in picks])
            if is_async or (result is not None and inspect.isawaitable(result)):
                await result
        except Exception:
            log.exception("plugin %s failed in %s", plugin, name)
