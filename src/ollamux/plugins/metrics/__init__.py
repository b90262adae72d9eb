"""The ``metrics`` built-in plugin: what an operator watches.

- ``GET /metrics``: Prometheus metrics (a registry per app, see ``prom``);
- token counts of each answer (``usage``), left in ``exchange.usage`` for the access log;
- with ``server.debug_payloads``, the request bodies and answer chunks, redacted
  (``payload_log``);
- ``GET /ollamux/stats`` (recent numbers as JSON) and the dashboard at ``GET /ollamux/``.

Per-app state lives on the app (``OBSERVER``); per-request state (the answer's
``UsageTransform``) in ``exchange.state["metrics"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ...exchange import Exchange, ResponseHead
from ...gateway import Gateway
from ...hookspecs import hookimpl
from ...permissions import ADMIN, METRICS
from ...transforms import ResponseTransform
from ...workers import WORKER_SLOT
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
    peers: PeerMetrics | None = None


OBSERVER: web.AppKey[Observer] = web.AppKey("ollamux_metrics", Observer)


def _observer(exchange: Exchange) -> Observer:
    app = exchange.gateway.app
    assert app is not None
    return app[OBSERVER]


@hookimpl
def ollamux_register_routes(gateway: Gateway, app: web.Application) -> None:
    stats = RecentStats()
    # The requests in flight are the ones the stats hold: read at scrape time, so that no
    # request pays for a gauge update on its way in and out.
    registry, metrics = build_registry(gateway, lambda: float(len(stats.live)))
    app[OBSERVER] = Observer(gateway, registry, metrics, stats)
    routes = gateway.routes
    routes.add(
        "GET", "/metrics", _metrics, action=METRICS, openapi={"summary": "Prometheus metrics"}
    )
    routes.add(
        "GET", "/ollamux/stats", _stats, action=ADMIN, openapi={"summary": "dashboard numbers"}
    )
    routes.add("GET", "/ollamux", _dashboard_redirect, action=ADMIN)
    routes.add("GET", "/ollamux/", _dashboard, action=ADMIN)
    routes.add("GET", "/ollamux/static/{name}", _static, action=ADMIN)


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
def ollamux_request_started(exchange: Exchange) -> None:
    obs = _observer(exchange)
    obs.stats.begin(exchange)
    if obs.gateway.config.server.debug_payloads:
        log_request(exchange)


@hookimpl
def ollamux_transform_response(exchange: Exchange, head: ResponseHead) -> ResponseTransform | None:
    """The transform that reads the answer's token counts, kept in ``exchange.state``
    (the last attempt's is the one the client got)."""
    transform: UsageTransform
    if exchange.gateway.config.server.debug_payloads:
        transform = PayloadLogTransform(exchange)
    elif head.status < 400 and exchange.method == "POST" and not exchange.counts_usage:
        transform = UsageTransform()
    else:
        exchange.state.pop(NAME, None)
        return None
    exchange.state[NAME] = transform
    return transform


@hookimpl
def ollamux_request_finished(exchange: Exchange) -> None:
    obs = _observer(exchange)
    usage = usage_of(exchange, exchange.state.get(NAME))
    if usage:
        exchange.usage.update(usage)
    wait = None
    if exchange.routed_at is not None and exchange.selected_at is not None:
        wait = max(0.0, exchange.selected_at - exchange.routed_at)
    obs.metrics.observe(exchange, usage, wait)
    obs.stats.end(exchange, usage)


_USAGE_KEYS = {
    "prompt_tokens": "prompt_tokens",
    "prompt_eval_count": "prompt_tokens",
    "input_tokens": "prompt_tokens",
    "completion_tokens": "completion_tokens",
    "eval_count": "completion_tokens",
    "output_tokens": "completion_tokens",
}


def usage_of(exchange: Exchange, transform: object = None) -> dict[str, int]:
    """Token counts as ``prompt_tokens`` / ``completion_tokens``: from ``exchange.usage``
    (translation fills it) or else read from the tail of the answer by ``transform`` (the
    request's ``UsageTransform``, if it had one)."""
    if not exchange.usage:  # a passthrough answer: the counts its tail gave, if any
        return dict(transform.usage) if isinstance(transform, UsageTransform) else {}
    out: dict[str, int] = {}
    for key, value in exchange.usage.items():
        if key in _USAGE_KEYS and isinstance(value, int):
            out[_USAGE_KEYS[key]] = value
    if not out and isinstance(transform, UsageTransform):
        out = dict(transform.usage)
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
