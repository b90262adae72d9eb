"""An async dispatcher over pluggy and the typed facade the core calls hooks through.

pluggy calls implementations but does not await them. ``Hooks`` walks
``hook.get_hookimpls()`` in pluggy's call order (reversed registration order, with
tryfirst/trylast honoured), awaits what is awaitable, and stops at the first non-None
result for firstresult hooks. The per-hook implementation lists are cached and dropped
whenever a plugin is registered or unregistered (the plugin manager tells the dispatcher).
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
    """pluggy's manager, bumping a generation counter and telling the dispatchers built on
    it, so that their caches stay true."""

    def __init__(self) -> None:
        super().__init__("ollamux")
        self.generation = 0
        self.origins: dict[str, str] = {}
        self._on_change: list[Callable[[], None]] = []

    def register(self, plugin: object, name: str | None = None) -> str | None:
        result = super().register(plugin, name)
        self._changed()
        return result

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        result = super().unregister(plugin, name)
        self._changed()
        return result

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever a plugin is registered or unregistered."""
        self._on_change.append(callback)

    def _changed(self) -> None:
        self.generation += 1
        for callback in self._on_change:
            callback()


class _ImplCache(dict[str, "list[_Impl]"]):
    """Hook name -> its implementations, prepared on first use: a hit is one dictionary
    lookup, with no method call in between."""

    __slots__ = ("_prepare",)

    def __init__(self, prepare: Callable[[str], list[_Impl]]) -> None:
        super().__init__()
        self._prepare = prepare

    def __missing__(self, name: str) -> list[_Impl]:
        found = self[name] = self._prepare(name)
        return found


class Hooks:
    """One typed method per hook; the only place that names hooks by string."""

    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        self._cache = _ImplCache(self._prepare)
        self._argnames: dict[str, tuple[str, ...]] = {}
        pm.on_change(self._forget)

    def _forget(self) -> None:
        self._cache.clear()
        self._argnames.clear()

    def impls(self, name: str) -> list[_Impl]:
        return self._cache[name]

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
        self._cache[name]  # prepares the hook, and its argument names
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
        impls = self._cache[name]
        return _first_of(impls, args) if impls else _NONE

    def _all(self, name: str, args: tuple[Any, ...]) -> Awaitable[list[Any]]:
        return _all_of(self._cache[name], args)

    def _each(self, name: str, args: tuple[Any, ...]) -> Awaitable[None]:
        """Every implementation, results ignored, errors raised (``call_all`` without the
        list)."""
        impls = self._cache[name]
        return _each_of(impls, args) if impls else _NONE

    def _notify(self, name: str, args: tuple[Any, ...]) -> Awaitable[None]:
        impls = self._cache[name]
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
        impls = self._cache["ollamux_authenticate"]
        return _first_of(impls, (request,)) if impls else _NONE

    async def permission_allowed(
        self, gateway: Gateway, principal: Principal, action: str, resource: str | None = None
    ) -> bool:
        """False when any implementation says so; allowed when none objects."""
        args = (gateway, principal, action, resource)
        for fn, picks, is_async, _ in self._cache["ollamux_permission_allowed"]:
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
    # Each looks its implementations up itself (one dictionary lookup, no call in between):
    # these run several times per request.

    def admit(self, exchange: Exchange) -> Awaitable[None]:
        impls = self._cache["ollamux_admit"]
        return _each_of(impls, (exchange,)) if impls else _NONE

    def request_started(self, exchange: Exchange) -> Awaitable[None]:
        impls = self._cache["ollamux_request_started"]
        return _each_of(impls, (exchange,)) if impls else _NONE

    def rewrite_request(self, exchange: Exchange) -> Awaitable[None]:
        impls = self._cache["ollamux_rewrite_request"]
        return _each_of(impls, (exchange,)) if impls else _NONE

    def respond(self, exchange: Exchange) -> Awaitable[web.StreamResponse | None]:
        impls = self._cache["ollamux_respond"]
        return _first_of(impls, (exchange,)) if impls else _NONE

    def fanout_backends(self, exchange: Exchange) -> Awaitable[list[Backend] | None]:
        impls = self._cache["ollamux_fanout_backends"]
        return _first_of(impls, (exchange,)) if impls else _NONE

    def select_backend(self, exchange: Exchange) -> Awaitable[Backend | None]:
        impls = self._cache["ollamux_select_backend"]
        return _first_of(impls, (exchange,)) if impls else _NONE

    def attempt_started(self, exchange: Exchange, backend: Backend) -> Awaitable[None]:
        impls = self._cache["ollamux_attempt_started"]
        return _notify_of("ollamux_attempt_started", impls, (exchange, backend)) if impls else _NONE

    def translate_request(
        self, exchange: Exchange, backend: Backend
    ) -> Awaitable[UpstreamRequest | LocalResponse | None]:
        impls = self._cache["ollamux_translate_request"]
        return _first_of(impls, (exchange, backend)) if impls else _NONE

    def upstream_started(
        self, exchange: Exchange, backend: Backend, head: ResponseHead
    ) -> Awaitable[None]:
        impls = self._cache["ollamux_upstream_started"]
        if not impls:
            return _NONE
        return _notify_of("ollamux_upstream_started", impls, (exchange, backend, head))

    def transform_response(
        self, exchange: Exchange, head: ResponseHead
    ) -> Awaitable[list[ResponseTransform]]:
        return _all_of(self._cache["ollamux_transform_response"], (exchange, head))

    def backend_released(
        self, exchange: Exchange, backend: Backend, outcome: Outcome
    ) -> Awaitable[None]:
        impls = self._cache["ollamux_backend_released"]
        if not impls:
            return _NONE
        return _notify_of("ollamux_backend_released", impls, (exchange, backend, outcome))

    def response_started(self, exchange: Exchange, status: int) -> Awaitable[None]:
        impls = self._cache["ollamux_response_started"]
        if not impls:
            return _NONE
        return _notify_of("ollamux_response_started", impls, (exchange, status))

    def request_finished(self, exchange: Exchange) -> Awaitable[None]:
        impls = self._cache["ollamux_request_finished"]
        return _notify_of("ollamux_request_finished", impls, (exchange,)) if impls else _NONE


class _Nothing:
    """An awaitable that is already done with ``None``: the call of a hook nobody
    implements. Awaiting it iterates an empty tuple (half the cost of a generator)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return cast("Generator[Any, None, None]", iter(()))


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
