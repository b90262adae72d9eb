"""The request path: every proxied request runs through the hook chain here.

authenticate -> request_started -> rewrite_request -> respond? -> (select_backend ->
translate_request -> forward -> transform_response) x attempts -> request_finished
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from .dialect import Dialect
from .errors import GatewayError
from .exchange import Exchange, Outcome, TaskState
from .gateway import Gateway
from .listing import LISTING_PATHS, fanout
from .proxy import AttemptFailed, attempt, relay_failure

log = logging.getLogger("ollamux.pipeline")

GATEWAY: web.AppKey[Gateway] = web.AppKey("ollamux_gateway", Gateway)

# Ollama endpoints that stream unless told otherwise; everything else defaults to a single
# answer (and every OpenAI endpoint does, as OpenAI's API says).
_OLLAMA_STREAMING = frozenset(
    {"/api/chat", "/api/generate", "/api/pull", "/api/push", "/api/create"}
)
# Endpoints that cannot run without a model: without one, a 400 (as Ollama and OpenAI answer)
# rather than a backend picked at random answering "model '' not found".
_NEEDS_MODEL = frozenset(
    {
        "/api/chat",
        "/api/generate",
        "/api/embed",
        "/api/embeddings",
        "/api/show",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
    }
)
# Bodies that are not JSON documents (blob uploads).
_BINARY_PREFIXES = ("/api/blobs/",)


async def handle(request: web.Request) -> web.StreamResponse:
    """The catch-all handler for ``/api/*``, ``/v1/*`` and ``/``."""
    gateway = request.app[GATEWAY]
    path = request.path
    dialect = Dialect.of_path(path)
    exchange: Exchange | None = None
    try:
        exchange = await build_exchange(gateway, request, dialect)
        return await run(exchange)
    except GatewayError as err:
        if exchange is not None:
            _fail(exchange, err.status, err.message)
        return _error_response(err, dialect, exchange)
    except asyncio.CancelledError:
        if exchange is not None:
            exchange.outcome = TaskState.CANCELLED
            exchange.error = "client disconnected"
            log.info("client disconnected: %s %s task=%s", request.method, path, exchange.task_id)
        raise
    except web.HTTPException as exc:  # raised by a plugin: aiohttp renders it
        if exchange is not None:
            _fail(exchange, exc.status, exc.reason)
        raise
    except Exception as exc:
        # A bug in a plugin or the core. The request fails; if nothing was sent yet the
        # client hears it in its dialect, else aiohttp drops the connection.
        started = exchange is not None and exchange.status != 0
        if exchange is not None:
            _fail(exchange, 500, f"internal error: {type(exc).__name__}: {exc}")
        if started:
            raise
        log.exception("internal error: %s %s", request.method, path)
        return _error_response(GatewayError(500, "internal error"), dialect, exchange)
    finally:
        if exchange is not None:
            exchange.finished_at = time.monotonic()
            await gateway.hooks.request_finished(exchange)


def _fail(exchange: Exchange, status: int, message: str) -> None:
    exchange.status = status
    exchange.outcome = TaskState.FAILED
    exchange.error = message


def _error_response(err: GatewayError, dialect: Dialect, exchange: Exchange | None) -> web.Response:
    response = err.response(dialect)
    if exchange is not None:
        response.headers.update(exchange.response_headers)
    return response


async def build_exchange(gateway: Gateway, request: web.Request, dialect: Dialect) -> Exchange:
    """Parse the request into an Exchange (400 bad JSON). Its body is already read: the
    ``hardening.body_deadline`` middleware did that, answering 408 and 413 itself."""
    body = await request.read() if request.body_exists else b""
    exchange = Exchange(
        gateway=gateway,
        request=request,
        method=request.method,
        path=request.path,
        query=request.query_string,
        headers=request.headers,
        body=body,
        dialect=dialect,
    )
    if body and not request.path.startswith(_BINARY_PREFIXES) and _is_json_body(request):
        exchange.json = parse_json_object(body)
    _read_model_and_stream(exchange)
    return exchange


def _is_json_body(request: web.Request) -> bool:
    ct = request.content_type
    return not (ct.startswith("multipart/") or ct == "application/octet-stream")


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError(400, f"invalid JSON in request body: {exc}") from exc
    if not isinstance(data, dict):
        raise GatewayError(400, "request body must be a JSON object")
    return data


def _read_model_and_stream(exchange: Exchange) -> None:
    data = exchange.json
    if data is not None:
        model = data.get("model", data.get("name"))
        if model is not None and not isinstance(model, str):
            raise GatewayError(400, "model must be a string", param="model")
        exchange.model_requested = exchange.model = model or None
        if exchange.model is None and exchange.path in _NEEDS_MODEL:
            raise GatewayError(400, "model is required", param="model")
        default = exchange.dialect is Dialect.OLLAMA and exchange.path in _OLLAMA_STREAMING
        stream = data.get("stream", default)
        exchange.stream = bool(stream) if stream is not None else default
    elif exchange.dialect is Dialect.OPENAI and exchange.path.startswith("/v1/models/"):
        exchange.model_requested = exchange.model = exchange.path[len("/v1/models/") :] or None


async def run(exchange: Exchange) -> web.StreamResponse:
    """The hook chain for one accepted request."""
    hooks = exchange.gateway.hooks
    principal = await hooks.authenticate(exchange)
    if principal is not None:
        exchange.principal = principal
    await hooks.request_started(exchange)
    await hooks.rewrite_request(exchange)
    response = await hooks.respond(exchange)
    if response is None and (exchange.method, exchange.path) in LISTING_PATHS:
        backends = await hooks.fanout_backends(exchange)
        if backends is None:
            backends = list(exchange.gateway.backends.values())
        response = await fanout(exchange, backends)
    if response is None:
        response = await forward(exchange)
    if exchange.outcome is TaskState.PENDING or exchange.outcome is TaskState.RUNNING:
        exchange.outcome = TaskState.SUCCESS if response.status < 400 else TaskState.FAILED
    if not exchange.status:
        exchange.status = response.status
    return response


async def forward(exchange: Exchange) -> web.StreamResponse:
    """Try backends until one answers, at most ``1 + routing.retries`` times."""
    hooks = exchange.gateway.hooks
    max_attempts = 1 + exchange.gateway.config.routing.retries
    last: AttemptFailed | None = None
    while exchange.attempts < max_attempts:
        backend = await hooks.select_backend(exchange)
        if backend is None:
            break
        exchange.backend = backend
        exchange.attempts += 1
        exchange.tried.add(backend.name)
        outcome = Outcome.CANCELLED
        try:
            response = await attempt(exchange, backend)
            if exchange.state.get("stream_broken"):
                outcome = Outcome.STREAM_ERROR
            elif response.status >= 400:
                outcome = Outcome.CLIENT_ERROR
            else:
                outcome = Outcome.OK
            return response
        except AttemptFailed as failure:
            outcome = failure.outcome
            last = failure
            log.warning("attempt %d failed: %s", exchange.attempts, failure.message)
        except GatewayError:
            outcome = Outcome.CLIENT_ERROR
            raise
        finally:
            await hooks.backend_released(exchange, backend, outcome)
    if last is None:
        raise GatewayError(503, "no backend is available", headers={"Retry-After": "1"})
    _fail(exchange, last.status, last.message)
    return await relay_failure(exchange, last)
