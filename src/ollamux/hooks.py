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
from collections.abc import Callable
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
    from .gateway import Gateway
    from .transforms import ResponseTransform

log = logging.getLogger("ollamux.hooks")

_Impl = tuple[Callable[..., Any], tuple[str, ...], bool, str]


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
        self._generation = -1

    def impls(self, name: str) -> list[_Impl]:
        if self._generation != self.pm.generation:
            self._cache.clear()
            self._generation = self.pm.generation
        found = self._cache.get(name)
        if found is None:
            caller = getattr(self.pm.hook, name)
            found = [
                (
                    impl.function,
                    tuple(impl.argnames),
                    inspect.iscoroutinefunction(impl.function),
                    impl.plugin_name,
                )
                for impl in reversed(caller.get_hookimpls())
            ]
            self._cache[name] = found
        return found

    async def call_first(self, name: str, **kwargs: Any) -> Any:
        for fn, argnames, is_async, _ in self.impls(name):
            result = fn(*[kwargs[a] for a in argnames])
            if is_async or inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return None

    async def call_all(self, name: str, **kwargs: Any) -> list[Any]:
        results = []
        for fn, argnames, is_async, _ in self.impls(name):
            result = fn(*[kwargs[a] for a in argnames])
            if is_async or inspect.isawaitable(result):
                result = await result
            if result is not None:
                results.append(result)
        return results

    async def notify(self, name: str, **kwargs: Any) -> None:
        """Call every implementation; a failing one is logged and the rest still run."""
        for fn, argnames, is_async, plugin in self.impls(name):
            try:
                result = fn(*[kwargs[a] for a in argnames])
                if is_async or inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("plugin %s failed in %s", plugin, name)

    def has_impl(self, name: str) -> bool:
        return bool(self.impls(name))

    # -- setting up ---------------------------------------------------------------------

    def register_routes(self, gateway: Gateway, app: web.Application) -> None:
        self.pm.hook.ollamux_register_routes(gateway=gateway, app=app)

    async def startup(self, gateway: Gateway) -> None:
        # Startup failures are fatal: a plugin that cannot open its store must stop the server.
        await self.call_all("ollamux_startup", gateway=gateway)

    async def shutdown(self, gateway: Gateway) -> None:
        await self.notify("ollamux_shutdown", gateway=gateway)

    async def config_reloaded(self, gateway: Gateway, old: Config, new: Config) -> None:
        await self.notify("ollamux_config_reloaded", gateway=gateway, old=old, new=new)

    # -- the request path ---------------------------------------------------------------

    async def authenticate(self, exchange: Exchange) -> Principal | None:
        return cast(
            "Principal | None", await self.call_first("ollamux_authenticate", exchange=exchange)
        )

    async def request_started(self, exchange: Exchange) -> None:
        await self.call_all("ollamux_request_started", exchange=exchange)

    async def rewrite_request(self, exchange: Exchange) -> None:
        await self.call_all("ollamux_rewrite_request", exchange=exchange)

    async def respond(self, exchange: Exchange) -> web.StreamResponse | None:
        return cast(
            "web.StreamResponse | None", await self.call_first("ollamux_respond", exchange=exchange)
        )

    async def fanout_backends(self, exchange: Exchange) -> list[Backend] | None:
        return cast(
            "list[Backend] | None",
            await self.call_first("ollamux_fanout_backends", exchange=exchange),
        )

    async def select_backend(self, exchange: Exchange) -> Backend | None:
        return cast(
            "Backend | None", await self.call_first("ollamux_select_backend", exchange=exchange)
        )

    async def translate_request(
        self, exchange: Exchange, backend: Backend
    ) -> UpstreamRequest | LocalResponse | None:
        return cast(
            "UpstreamRequest | LocalResponse | None",
            await self.call_first("ollamux_translate_request", exchange=exchange, backend=backend),
        )

    async def upstream_started(
        self, exchange: Exchange, backend: Backend, head: ResponseHead
    ) -> None:
        await self.notify("ollamux_upstream_started", exchange=exchange, backend=backend, head=head)

    async def transform_response(
        self, exchange: Exchange, head: ResponseHead
    ) -> list[ResponseTransform]:
        return await self.call_all("ollamux_transform_response", exchange=exchange, head=head)

    async def backend_released(
        self, exchange: Exchange, backend: Backend, outcome: Outcome
    ) -> None:
        await self.notify(
            "ollamux_backend_released", exchange=exchange, backend=backend, outcome=outcome
        )

    async def request_finished(self, exchange: Exchange) -> None:
        await self.notify("ollamux_request_finished", exchange=exchange)
