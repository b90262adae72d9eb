"""The ``metrics`` built-in plugin: what an operator watches.

- ``GET /metrics``: Prometheus metrics (a registry per app, see ``prom``);
- the access log, one line per request (``access_log``), and with
  ``server.debug_payloads`` the request bodies and answer chunks, redacted (``payload_log``);
- ``GET /ollamux/stats`` (recent numbers as JSON) and the dashboard at ``GET /ollamux/``.

Per-app state lives on the app (``OBSERVER``); per-request state in
``exchange.state["metrics"]``. Settings (``plugins.config.metrics``): ``access_log``
(default true).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ...backend import Backend
from ...config import Config
from ...exchange import Exchange, ResponseHead
from ...gateway import Gateway
from ...hookspecs import hookimpl
from ...transforms import ResponseTransform
from ...workers import WORKER_SLOT
from .access_log import log_access
from .payload_log import PayloadLogTransform, log_request
from .peers import PeerMetrics
from .prom import RequestMetrics, build_registry
from .stats import RecentStats
from .usage import UsageTransform

NAME = "metrics"


@dataclass
class Observer:
    """Everything the plugin keeps for one app."""

    gateway: Gateway
    registry: CollectorRegistry
    metrics: RequestMetrics
    stats: RecentStats = field(default_factory=RecentStats)
    access_log: bool = True
    peers: PeerMetrics | None = None


OBSERVER: web.AppKey[Observer] = web.AppKey("ollamux_metrics", Observer)


@dataclass
class _RequestState:
    started: bool = False
    route_at: float | None = None
    selected_at: float | None = None
    transform: UsageTransform | None = None


def _observer(exchange: Exchange) -> Observer:
    return exchange.request.app[OBSERVER]


def _state(exchange: Exchange) -> _RequestState:
    st = exchange.state.get(NAME)
    if st is None:
        st = exchange.state[NAME] = _RequestState()
    assert isinstance(st, _RequestState)
    return st


@hookimpl
def ollamux_register_routes(gateway: Gateway, app: web.Application) -> None:
    registry, metrics = build_registry(gateway)
    settings = gateway.plugin_config(NAME)
    app[OBSERVER] = Observer(
        gateway, registry, metrics, access_log=bool(settings.get("access_log", True))
    )
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/ollamux/stats", _stats)
    app.router.add_get("/ollamux", _dashboard_redirect)
    app.router.add_get("/ollamux/", _dashboard)
    app.router.add_get("/ollamux/static/{name}", _static)


@hookimpl
async def ollamux_startup(gateway: Gateway) -> None:
    """With several workers, serve this worker's numbers to its peers (see ``peers``)."""
    app = gateway.app
    slot = app.get(WORKER_SLOT) if app is not None else None
    if app is not None and slot is not None and slot.count > 1 and slot.peers_dir:
        obs = app[OBSERVER]
        obs.peers = PeerMetrics(slot, obs.registry)
        await obs.peers.start()


@hookimpl
async def ollamux_shutdown(gateway: Gateway) -> None:
    peers = gateway.app[OBSERVER].peers if gateway.app is not None else None
    if peers is not None:
        await peers.stop()


@hookimpl
def ollamux_config_reloaded(gateway: Gateway, new: Config) -> None:
    if gateway.app is not None:
        settings = new.plugin_config(NAME)
        gateway.app[OBSERVER].access_log = bool(settings.get("access_log", True))


@hookimpl
def ollamux_request_started(exchange: Exchange) -> None:
    obs = _observer(exchange)
    _state(exchange).started = True
    obs.metrics.in_flight.inc()
    obs.stats.begin(exchange)
    if obs.gateway.config.server.debug_payloads:
        log_request(exchange)


@hookimpl(tryfirst=True)
def ollamux_respond(exchange: Exchange) -> None:
    """Not answering: noting when routing starts, to measure the wait for a backend."""
    _state(exchange).route_at = time.monotonic()


@hookimpl(tryfirst=True)
def ollamux_translate_request(exchange: Exchange, backend: Backend) -> None:
    """Not translating: noting when the first backend was chosen (the end of the wait)."""
    st = _state(exchange)
    if st.selected_at is None:
        st.selected_at = time.monotonic()


@hookimpl
def ollamux_transform_response(exchange: Exchange, head: ResponseHead) -> ResponseTransform | None:
    st = _state(exchange)
    if exchange.gateway.config.server.debug_payloads:
        st.transform = PayloadLogTransform(exchange)
    elif head.status < 400 and exchange.method == "POST":
        st.transform = UsageTransform()
    else:
        return None
    return st.transform


@hookimpl
def ollamux_request_finished(exchange: Exchange) -> None:
    obs = _observer(exchange)
    st = _state(exchange)
    usage = usage_of(exchange, st)
    wait = None
    if st.route_at is not None and st.selected_at is not None:
        wait = max(0.0, st.selected_at - st.route_at)
    obs.metrics.observe(exchange, usage, wait)
    if st.started:
        obs.metrics.in_flight.dec()
    obs.stats.end(exchange, usage)
    if obs.access_log:
        log_access(exchange, usage, obs.gateway.config.server.log_format == "json")


_USAGE_KEYS = {
    "prompt_tokens": "prompt_tokens",
    "prompt_eval_count": "prompt_tokens",
    "input_tokens": "prompt_tokens",
    "completion_tokens": "completion_tokens",
    "eval_count": "completion_tokens",
    "output_tokens": "completion_tokens",
}


def usage_of(exchange: Exchange, st: _RequestState | None = None) -> dict[str, int]:
    """Token counts as ``prompt_tokens`` / ``completion_tokens``: from ``exchange.usage``
    (translation fills it) or else read from the tail of the answer."""
    out: dict[str, int] = {}
    for key, value in exchange.usage.items():
        if key in _USAGE_KEYS and isinstance(value, int):
            out[_USAGE_KEYS[key]] = value
    if not out and st is not None and st.transform is not None:
        out = dict(st.transform.usage)
    return out


# -- routes ---------------------------------------------------------------------------


async def _metrics(request: web.Request) -> web.Response:
    obs = request.app[OBSERVER]
    body = await obs.peers.exposition() if obs.peers is not None else generate_latest(obs.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _stats(request: web.Request) -> web.Response:
    obs = request.app[OBSERVER]
    return web.json_response(obs.stats.snapshot(obs.gateway))


_STATIC_TYPES = {".html": "text/html", ".js": "application/javascript", ".css": "text/css"}


def _read_static(name: str) -> bytes | None:
    if "/" in name or name.startswith("."):
        return None
    res = resources.files(__package__).joinpath("static", name)
    return res.read_bytes() if res.is_file() else None


async def _dashboard_redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ollamux/")


async def _dashboard(request: web.Request) -> web.Response:
    return _static_response("dashboard.html")


async def _static(request: web.Request) -> web.Response:
    return _static_response(request.match_info["name"])


def _static_response(name: str) -> web.Response:
    data = _read_static(name)
    suffix = name[name.rfind(".") :] if "." in name else ""
    if data is None or suffix not in _STATIC_TYPES:
        raise web.HTTPNotFound()
    return web.Response(
        body=data,
        content_type=_STATIC_TYPES[suffix],
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )
