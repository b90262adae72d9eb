"""Every hook ollamux calls, in the order a request meets them.

Implementations may be plain functions or ``async def``; ollamux awaits them itself
(pluggy has no async support), in pluggy's order: ``tryfirst`` implementations first,
then the most recently registered, ``trylast`` last. An implementation may accept any
subset of a hook's arguments, by name.

"firstresult" hooks stop at the first implementation that returns something other than
``None``; all other hooks call every implementation and collect the non-``None`` results.
Raising ``ollamux.GatewayError`` from a request hook answers the client with that status,
in the dialect of the endpoint called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from aiohttp import web

    from .backend import Backend
    from .config import Config, ConfigSection
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

hookspec = pluggy.HookspecMarker("ollamux")
hookimpl = pluggy.HookimplMarker("ollamux")


# ---------------------------------------------------------------------------------------
# Setting up
# ---------------------------------------------------------------------------------------


@hookspec
def ollamux_config_section() -> ConfigSection | None:
    """Declare the top-level config section this plugin owns (``ollamux.ConfigSection``:
    its name, a dataclass of its keys with their defaults, a check), or ``None``.

    Called when a config is built (also by ``ollamux check`` and on reload), before any
    app exists. Unknown keys in the section, ill-typed values and the check's
    ``ConfigError`` are refused naming the key. Read the section back with
    ``gateway.config.section(name, YourDataclass)``. Every implementation runs.
    """


@hookspec
def ollamux_register_routes(gateway: Gateway, app: web.Application) -> None:
    """Add HTTP routes (or middlewares) to the app before it starts.

    Called once per app, synchronously, in ``create_app``. Routes added here take precedence
    over the catch-all proxy routes. Read your settings with
    ``gateway.plugin_config("<your plugin name>")``.
    """


@hookspec
def ollamux_startup(gateway: Gateway) -> None:
    """Open what the plugin needs (stores, background tasks) when the server starts.

    Called once, after the shared ``gateway.session`` exists. Every implementation runs.
    """


@hookspec
def ollamux_shutdown(gateway: Gateway) -> None:
    """Close what ``ollamux_startup`` opened. Every implementation runs, even if one fails.

    On a graceful shutdown (SIGTERM) it runs after requests in flight have drained (or
    were cancelled at ``server.shutdown_timeout_s``): requeue running jobs, close stores.
    ``gateway.draining`` is already true then (it turns true as soon as the signal arrives).
    """


@hookspec
def ollamux_config_reloaded(gateway: Gateway, old: Config, new: Config) -> None:
    """The config file was re-read (SIGHUP) and ``gateway.config`` is now ``new``.

    By then ``gateway.backends`` holds the new static backends (added, removed, updated in
    place; requests in flight keep the backend they have). Refresh whatever you derived
    from ``old`` (keys, aliases, limits). A config that fails validation never gets here:
    it is refused and the old one kept. Every implementation runs; errors are logged.
    """


@hookspec(firstresult=True)
def ollamux_selection_policy(gateway: Gateway) -> SelectionPolicy | None:
    """The selection policy: an object whose plain ``choose(backends, model, tried,
    capped, now)`` ranks the backends (``ollamux.fleet.SelectionPolicy``).

    Called by the ``balancer`` once at start and again after each config reload, never per
    request: ``choose()`` itself runs on every attempt and for every waiter the queue looks
    at, so it must not await. The built-in ``selection`` plugin answers last
    (``trylast``); return a policy to replace it, or ``None`` to leave the choice to the
    next implementation. Stops at the first non-``None`` result; while the ``balancer``
    is enabled at least one implementation is required.
    """


# ---------------------------------------------------------------------------------------
# Fleet events
# ---------------------------------------------------------------------------------------


@hookspec
def ollamux_backend_changed(gateway: Gateway, backend: Backend) -> None:
    """``backend``'s health or draining changed (a probe brought it back or found it dead,
    an attempt marked it unhealthy, an admin drained or undrained it).

    The fields of ``backend`` already hold the new state. The ``balancer`` hands free
    backends to waiting requests here. Every implementation runs; errors are logged.
    """


@hookspec
def ollamux_backend_models_changed(gateway: Gateway, backend: Backend) -> None:
    """``backend``'s stored models may have changed: a pull, push, create, copy or delete
    went through ollamux to it and succeeded.

    The ``health`` plugin probes it again at once, so the new model is routable and
    listed without waiting for the next probe. Every implementation runs; errors are
    logged.
    """


@hookspec
def ollamux_fleet_changed(gateway: Gateway) -> None:
    """``gateway.backends`` gained or lost backends (discovery, a config reload), or
    discovery finished its first scan (``ollamux.fleet.fleet_of(gateway).discovery_ready``).

    Waiters for a model nobody serves get their 404 now. Every implementation runs; errors
    are logged.
    """


# ---------------------------------------------------------------------------------------
# Identity and permissions (every route)
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def ollamux_authenticate(request: web.Request) -> Principal | None:
    """Decide who is calling, for any route but the public ones (health).

    Called once per HTTP request by the core, before the route's handler and before the
    body is read; the answer is left on the request (``ollamux.principal_of(request)``)
    and on the exchange of a proxied request. Return a ``Principal`` to accept the caller,
    raise ``GatewayError(401)`` to refuse (its headers, such as ``WWW-Authenticate``, are
    sent), or return ``None`` so other plugins can be tried. Stops at the first non-``None``
    result; when every implementation returns ``None`` the caller is anonymous.
    """


@hookspec
def ollamux_permission_allowed(
    gateway: Gateway, principal: Principal, action: str, resource: str | None
) -> bool | None:
    """May ``principal`` do ``action`` (on ``resource``)?

    Asked by the core before every route's handler, with the action the route declared
    (``ollamux.permissions``: ``proxy``, ``tasks.read``, ``jobs.submit``, ``admin``,
    ``metrics``, ...), and on the request path for ``model.use`` (resource: the model
    name) and ``models.manage``. Routes ask it too for owned resources (``tasks.read``
    with the task's owner). Every implementation runs: any ``False`` refuses (403), and
    when none says ``False`` the action is allowed. Raising ``GatewayError`` refuses with
    that status (a rate limit charged on ``jobs.submit`` answers 429).
    """


@hookspec(firstresult=True)
def ollamux_cancel_task(gateway: Gateway, task_id: str, principal: Principal) -> bool | None:
    """``DELETE /tasks/{task_id}`` by ``principal``, on this instance. A plugin holding work
    queued under that id that no request runs yet (the jobs plugin: a job, detached or
    submitted) checks the principal may cancel it, cancels it and returns ``True``;
    ``None`` when it holds nothing of that id (or the principal may not see it). Requests
    already running are cancelled by the tasks plugin itself, on whichever instance runs
    them. Stops at the first non-``None`` result.
    """


@hookspec(firstresult=True)
def ollamux_resolve_principal(gateway: Gateway, name: str) -> Principal | None:
    """The principal named ``name`` now, for work done later on its behalf (jobs run as
    their owner). Return ``None`` if unknown to you; raise ``GatewayError(403)`` if that
    principal may no longer act. When no plugin knows it, the job runs as a plain
    authenticated principal of that name. Stops at the first non-``None`` result.
    """


@hookspec(firstresult=True)
def ollamux_cross_origin_allowed(gateway: Gateway, origin: str) -> bool | None:
    """May a page on ``origin`` (another site) send state-changing requests (``POST``,
    ``PUT``, ``PATCH``, ``DELETE``) here? Asked by the core's cross-origin guard before
    refusing such a request with 403 (a browser sends cached credentials along with a
    cross-site form post). Return ``True`` to let it through, ``None`` for no opinion
    (refused when nobody says ``True``). The built-in ``cors`` plugin answers ``True`` for
    ``cors.allow_origins``. Stops at the first non-``None`` result.
    """


# ---------------------------------------------------------------------------------------
# The request path
# ---------------------------------------------------------------------------------------


@hookspec
def ollamux_admit(exchange: Exchange) -> None:
    """The caller is known and its body parsed: admit the request or refuse it.

    Rate and concurrency limits belong here (``GatewayError(429)``). Runs for live
    requests and for jobs (``exchange.request`` is ``None``) alike, so a job takes its
    owner's concurrency slot while it runs. Every implementation runs.
    """


@hookspec
def ollamux_request_started(exchange: Exchange) -> None:
    """The request was admitted and is about to be routed.

    The task tracker gives it a task id here and records it as PENDING. Every
    implementation runs; raise ``GatewayError`` to refuse the request (a bad task id).
    """


@hookspec
def ollamux_rewrite_request(exchange: Exchange) -> None:
    """Change the request before routing: the model name (``exchange.set_model``), options.

    Every implementation runs, in order. Raise ``GatewayError`` to refuse (a model the
    caller may not use is a 403).
    """


@hookspec(firstresult=True)
def ollamux_respond(exchange: Exchange) -> web.StreamResponse | None:
    """Answer the request without any backend (return a response), or ``None`` to route it.

    Stops at the first non-``None`` result.
    """


@hookspec(firstresult=True)
def ollamux_fanout_backends(exchange: Exchange) -> list[Backend] | None:
    """For listings (``/api/tags``, ``/api/ps``, ``/v1/models``): the backends to ask.

    The core sends the listing request to each, through translation and response
    transforms, and merges the answers. Stops at the first non-``None`` result.
    """


@hookspec(firstresult=True)
def ollamux_select_backend(exchange: Exchange) -> Backend | None:
    """Choose the backend for one attempt, waiting for a free one if need be.

    ``exchange.tried`` names backends already tried for this request; avoid them. The
    returned backend counts one more request in flight until ``ollamux_backend_released``.
    Raise ``GatewayError`` (404 unknown model, 503 + Retry-After when nothing frees up in
    time). Stops at the first non-``None`` result; at least one implementation is required.
    """


@hookspec
def ollamux_attempt_started(exchange: Exchange, backend: Backend) -> None:
    """An attempt on ``backend`` begins (``exchange.attempts`` counts it); the request is
    about to be translated and sent. An event: every implementation runs."""


@hookspec(firstresult=True)
def ollamux_translate_request(
    exchange: Exchange, backend: Backend
) -> UpstreamRequest | LocalResponse | None:
    """Build what is sent to ``backend`` (an ``UpstreamRequest``) or answer in its stead
    (a ``LocalResponse``).

    Called once per attempt, after selection, because the backend's API decides the
    translation. The built-in passthrough answers last (``trylast``) with the client's
    request unchanged. Stops at the first non-``None`` result.
    """


@hookspec
def ollamux_upstream_started(exchange: Exchange, backend: Backend, head: ResponseHead) -> None:
    """The backend answered with a status and headers; the body is about to be relayed.

    A task becomes RUNNING here. Every implementation runs.
    """


@hookspec
def ollamux_transform_response(exchange: Exchange, head: ResponseHead) -> ResponseTransform | None:
    """Return a ``ResponseTransform`` to rewrite this response, or ``None`` to leave it alone.

    Called once per response (not per chunk). Every implementation runs; the transforms
    returned are applied in the order of the calls (``tryfirst`` ones see the backend's
    bytes first).
    """


@hookspec
def ollamux_backend_released(exchange: Exchange, backend: Backend, outcome: Outcome) -> None:
    """One attempt on ``backend`` ended with ``outcome``: free its slot, learn its health.

    Every implementation runs.
    """


@hookspec
def ollamux_response_started(exchange: Exchange, status: int) -> None:
    """The answer to the client began with ``status`` (headers sent, or a whole answer
    about to be). An event: every implementation runs."""


@hookspec
def ollamux_request_finished(exchange: Exchange) -> None:
    """The request ended: ``exchange.outcome`` is SUCCESS, FAILED or CANCELLED, with
    ``exchange.status``, ``exchange.error``, ``exchange.stream_broken`` (the answer began,
    then broke), timings and ``exchange.usage``.

    Runs for every proxied request and job, refusals included (401/403/429, bad JSON: then
    ``exchange.backend`` is ``None``). Every implementation runs; errors are logged, never
    shown to the client.
    """
