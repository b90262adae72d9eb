"""The Gateway: one per app, shared by the core and every plugin.

It holds the effective config, the hook facade, the backends, the pool of connections
the proxy forwards over and the ``aiohttp.ClientSession`` everything else talks to
backends with.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiohttp

from .backend import Backend
from .config import Config
from .hooks import Hooks, PluginManager
from .permissions import owner_rule
from .upstream_client import UpstreamPool

if TYPE_CHECKING:
    from aiohttp import web

    from .dispatch import Dispatched
    from .exchange import Principal
    from .routes import RouteTable

log = logging.getLogger("ollamux")

T = TypeVar("T")


class Gateway:
    def __init__(self, config: Config, pm: PluginManager) -> None:
        self.config = config
        self.pm = pm
        self.hooks = Hooks(pm)
        self.backends: dict[str, Backend] = {
            b.name: Backend.from_config(b) for b in config.backends
        }
        self._session: aiohttp.ClientSession | None = None
        self._upstream: UpstreamPool | None = None
        self.app: web.Application | None = None
        self.routes: RouteTable  # set by ``create_app``
        self._states: dict[object, Any] = {}
        self.draining = False
        # Live numbers plugins publish for others to read (metrics, dashboard, health):
        # name -> a function returning the current value, e.g. "queue_depth".
        self.gauges: dict[str, Callable[[], float]] = {}
        # Event counts plugins bump for metrics, e.g. ``counters["task_store_errors"] += 1``;
        # exported as ``ollamux_<name>_total``.
        self.counters: Counter[str] = Counter()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the gateway's client session exists only while the app runs")
        return self._session

    @property
    def upstream(self) -> UpstreamPool:
        """The connections the proxy forwards requests over (``upstream_client``)."""
        if self._upstream is None:
            raise RuntimeError("the gateway's upstream pool exists only while the app runs")
        return self._upstream

    def state_of(self, kind: Callable[[Gateway], T]) -> T:
        """This gateway's one ``kind(gateway)``, made on first use: per-gateway state of
        a plugin or of core (the fleet), without a module-level registry."""
        found = self._states.get(kind)
        if found is None:
            found = self._states[kind] = kind(self)
        return cast("T", found)

    async def allowed(self, principal: Principal, action: str, resource: str | None = None) -> bool:
        """Whether ``principal`` may do ``action`` (``ollamux.permissions``) on ``resource``:
        no plugin objects, and the core's ownership rule agrees."""
        return owner_rule(principal, action, resource) and await self.hooks.permission_allowed(
            self, principal, action, resource
        )

    async def dispatch(
        self,
        method: str,
        path: str,
        body: bytes | Mapping[str, Any] | None,
        principal: Principal,
        *,
        task_id: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Dispatched:
        """Run a request through the whole hook chain in-process, as ``principal``."""
        from .dispatch import dispatch

        return await dispatch(self, method, path, body, principal, task_id=task_id, headers=headers)

    def plugin_config(self, name: str) -> dict[str, Any]:
        return self.config.plugin_config(name)

    def client_timeout(self) -> aiohttp.ClientTimeout:
        """No total timeout (LLM streams are long): connect and between-bytes limits only."""
        r = self.config.routing
        return aiohttp.ClientTimeout(
            total=None,
            connect=r.connect_timeout_s,
            sock_connect=r.connect_timeout_s,
            sock_read=r.read_timeout_s,
        )

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.client_timeout(),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        r = self.config.routing
        self._upstream = UpstreamPool(r.connect_timeout_s, r.read_timeout_s)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None
