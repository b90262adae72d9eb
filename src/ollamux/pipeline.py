"""The request path: every proxied request and every dispatched job runs through the hook
chain here.

(identity, by the middleware) -> permission -> admit -> request_started -> rewrite_request
-> model permission -> respond? -> (select_backend -> attempt_started -> translate_request
-> forward -> transform_response) x attempts -> request_finished
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any

from aiohttp import hdrs, web
from multidict import istr

from .access_log import EXCHANGE_KEY
from .dialect import Dialect
from .endpoints import BLOBS_PREFIX, ENDPOINTS, endpoint, is_management, listing
from .errors import GatewayError, stream_error_bytes
from .exchange import Exchange, Outcome, Principal, TaskState, principal_of
from .gateway import Gateway
from .listing import fanout
from .permissions import MODEL_USE, MODELS_MANAGE, PROXY
from .protocol import KEEP
from .proxy import AttemptFailed, attempt, relay_failure
from .sink import HttpSink

log = logging.getLogger("ollamux.pipeline")

GATEWAY: web.AppKey[Gateway] = web.AppKey("ollamux_gateway", Gateway)
_KEEP = istr(KEEP)  # made once: a plain str is case-folded on every lookup

# Enum members bound once: on Python 3.11 looking one up on its class costs more than the
# rest of the line it is on, and the request path names several.
_PENDING, _RUNNING = TaskState.PENDING, TaskState.RUNNING
_SUCCESS, _FAILED = TaskState.SUCCESS, TaskState.FAILED
_OK, _CANCELLED = Outcome.OK, Outcome.CANCELLED
_CLIENT_ERROR, _STREAM_ERROR = Outcome.CLIENT_ERROR, Outcome.STREAM_ERROR
_OLLAMA = Dialect.OLLAMA


async def handle(request: web.Request) -> web.StreamResponse:
    """The catch-all handler for ``/api/*``, ``/v1/*`` and ``/``: the caller is already
    known (the identity middleware), the body already read (``hardening``).

    The identity middleware calls ``proxy`` itself for these routes, with the caller and
    the body it has at hand (one coroutine frame less under every await of the request);
    this handler serves the routes that hand a request on to the pipeline."""
    body = await request.read() if request.body_exists else b""
    return await proxy(request.app[GATEWAY], request, principal_of(request), body)


def proxy(
    gateway: Gateway, request: web.Request, principal: Principal, body: bytes
) -> Awaitable[web.StreamResponse]:
    """Serve a live request from ``principal`` whose ``body`` was read."""
    exchange = _http_exchange(gateway, request, body)
    exchange.principal = principal
    if request.headers.get(_KEEP, "").lower() == "true":
        return _serve_kept(exchange)
    return serve(exchange)


_KEPT: set[asyncio.Task[web.StreamResponse]] = set()


async def _serve_kept(exchange: Exchange) -> web.StreamResponse:
    """``X-Ollamux-Keep: true``: the request runs in a task of its own, so a client that
    disconnects does not cancel it; it runs to its end (its output is kept by the tasks
    plugin). Only ``DELETE /tasks/{id}`` stops it."""
    task = asyncio.create_task(serve(exchange))
    _KEPT.add(task)
    task.add_done_callback(_KEPT.discard)
    return await asyncio.shield(task)


async def serve(exchange: Exchange) -> web.StreamResponse:
    """Run one exchange through the hook chain, answering errors in its dialect; the
    ``ollamux_request_finished`` event fires whatever happened."""
    gateway = exchange.gateway
    try:
        parse_body(exchange)
        return await run(exchange)
    except GatewayError as err:
        _fail(exchange, err.status, err.message)
        return await _answer_error(exchange, err)
    except asyncio.CancelledError:
        exchange.outcome = TaskState.CANCELLED
        who = "client disconnected" if exchange.request is not None else "cancelled"
        if exchange.cancelled_by:
            who = f"cancelled by {exchange.cancelled_by}"
        exchange.error = exchange.error or who
        log.info("%s: %s %s task=%s", who, exchange.method, exchange.path, exchange.task_id)
        if exchange.cancelled_by and exchange.request is not None and not exchange.sink.gone():
            # Cancelled on purpose (``DELETE /tasks/{id}``) while the client still listens:
            # it hears why, in its dialect, instead of a dropped connection.
            task = asyncio.current_task()
            if task is not None and task.uncancel() == 0:
                return await _answer_cancelled(exchange, who)
        raise
    except web.HTTPException as exc:  # raised by a plugin: aiohttp renders it
        _fail(exchange, exc.status, exc.reason)
        raise
    except Exception as exc:
        # A bug in a plugin or the core. The request fails; if nothing was sent yet the
        # client hears it in its dialect, else the connection is dropped.
        started = exchange.sink.started
        _fail(exchange, 500, f"internal error: {type(exc).__name__}: {exc}")
        if started:
            raise
        log.exception("internal error: %s %s", exchange.method, exchange.path)
        return await _answer_error(exchange, GatewayError(500, "internal error"))
    finally:
        exchange.finished_at = time.monotonic()
        await gateway.hooks.request_finished(exchange)


async def refuse(gateway: Gateway, request: web.Request, err: GatewayError) -> web.Response:
    """A proxied request refused before its body was read (401/403 from the identity
    middleware): an exchange all the same, so the refusal is an event like any outcome."""
    exchange = _http_exchange(gateway, request, b"")
    _fail(exchange, err.status, err.message)
    try:
        return await _answer_error(exchange, err)
    finally:
        exchange.finished_at = time.monotonic()
        await gateway.hooks.request_finished(exchange)


async def _answer_cancelled(exchange: Exchange, message: str) -> web.StreamResponse:
    """A live request cancelled by ``DELETE /tasks/{id}``: a 409 in the endpoint's dialect,
    or, once the answer began, the dialect's error event/line ending the stream."""
    exchange.status = exchange.status or 409
    sink = exchange.sink
    if not sink.started:
        return await _answer_error(exchange, GatewayError(409, message, code="cancelled"))
    try:
        await sink.write(stream_error_bytes(exchange.dialect, message, 409))
        await sink.end()
    except (ConnectionError, RuntimeError):
        pass
    return sink.answer()


def _http_exchange(gateway: Gateway, request: web.Request, body: bytes) -> Exchange:
    """The exchange of a live HTTP request, answered through an ``HttpSink``."""
    exchange = Exchange(
        gateway=gateway,
        request=request,
        sink=HttpSink(request, gateway.config.server.write_timeout_s),
        method=request.method,
        path=request.path,
        query=request.query_string,
        headers=request.headers,
        body=body,
        dialect=_dialect_of(request.path),
    )
    request[EXCHANGE_KEY] = exchange
    return exchange


def _dialect_of(path: str) -> Dialect:
    """``Dialect.of_path``, read from the endpoint table for the endpoints ollamux knows."""
    known = ENDPOINTS.get(path)
    return known.dialect if known is not None else Dialect.of_path(path)


def _fail(exchange: Exchange, status: int, message: str) -> None:
    exchange.status = status
    exchange.outcome = _FAILED
    exchange.error = message


async def _answer_error(exchange: Exchange, err: GatewayError) -> web.Response:
    response = err.response(exchange.dialect)
    response.headers.update(exchange.response_headers)
    await exchange.gateway.hooks.response_started(exchange, response.status)
    return response


def parse_body(exchange: Exchange) -> None:
    """Read the JSON body, the model and whether to stream (400 on bad JSON).

    A body is JSON by its content, whatever its ``Content-Type`` says or when it has none
    (litellm's Ollama providers send none): only multipart uploads, octet streams and
    blob uploads are left as bytes. A body that is not a JSON object is a 400 on the
    endpoints that take JSON (every known one) or when it says it is JSON; on a path
    ollamux does not know it is passed on as it is."""
    body = exchange.body
    if not body or exchange.path.startswith(BLOBS_PREFIX):
        _read_model_and_stream(exchange)
        return
    ct = exchange.headers.get(hdrs.CONTENT_TYPE, "")
    if not (ct.startswith("multipart/") or ct.startswith("application/octet-stream")):
        try:
            exchange.json = parse_json_object(body)
        except GatewayError:
            if endpoint(exchange.path) is not None or "json" in ct:
                raise
        else:
            check_field_names(exchange.json)
    _read_model_and_stream(exchange)


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError(400, f"invalid JSON in request body: {exc}") from exc
    except RecursionError as exc:
        raise GatewayError(400, "invalid JSON in request body: nested too deeply") from exc
    if not isinstance(data, dict):
        raise GatewayError(400, "request body must be a JSON object")
    # Only a body with many brackets can be deep: counting them is cheap, walking is not.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _depth(data) > MAX_JSON_DEPTH:
        raise GatewayError(
            400, f"invalid JSON in request body: nested deeper than {MAX_JSON_DEPTH} levels"
        )
    return data


# Deeper bodies are refused: whatever walks them later (payload log, translation, stores)
# would otherwise run out of stack on one a little shallower than the parser's own limit.
MAX_JSON_DEPTH = 100


def _depth(value: Any) -> int:
    """The nesting depth of a parsed JSON value (iterative: no recursion to run out of)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            items: Any = item.values()
        elif isinstance(item, list):
            items = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((v, level + 1) for v in items if isinstance(v, (dict, list)))
    return deepest


# The top-level fields of the requests ollamux proxies (both dialects). Ollama's decoder
# (Go's encoding/json) matches keys case-insensitively and the last one wins, so
# ``{"model": "a", "Model": "b"}`` would reach the backend as model ``b`` while ollamux
# checked ``a``: a key that differs from a known field (or from another key) only by case
# is refused instead.
KNOWN_FIELDS = frozenset(
    {
        "model", "name", "stream", "messages", "prompt", "suffix", "system", "template",
        "context", "raw", "images", "format", "options", "keep_alive", "think", "tools",
        "input", "truncate", "dimensions", "source", "destination", "insecure", "quantize",
        "from", "files", "adapters", "license", "parameters", "verbose", "n", "stop",
        "temperature", "top_p", "max_tokens", "max_completion_tokens", "stream_options",
        "response_format", "tool_choice", "functions", "function_call", "logprobs",
        "top_logprobs", "seed", "user", "presence_penalty", "frequency_penalty",
        "logit_bias", "encoding_format", "echo", "best_of", "reasoning_effort",
        "parallel_tool_calls", "modalities", "metadata", "store", "service_tier",
    }
)  # fmt: skip


def check_field_names(data: dict[str, Any]) -> None:
    """400, naming the key, for a top-level key that differs only by case from a known
    field or from another key of the body: the backend must see the fields ollamux read."""
    seen: dict[str, str] = {}
    for key in data:
        folded = key.casefold()
        other = seen.get(folded)
        if other is not None:
            raise GatewayError(400, f"keys {other!r} and {key!r} differ only by case", param=key)
        seen[folded] = key
        if folded != key and folded in KNOWN_FIELDS:
            raise GatewayError(
                400,
                f"unknown key {key!r}: did you mean {folded!r}? (keys are case-sensitive)",
                param=key,
            )


def _read_model_and_stream(exchange: Exchange) -> None:
    data = exchange.json
    known = endpoint(exchange.path)
    if data is not None:
        model = data.get("model", data.get("name"))
        if model is not None and not isinstance(model, str):
            raise GatewayError(400, "model must be a string", param="model")
        exchange.model_requested = exchange.model = model or None
        if exchange.model is None and known is not None and known.needs_model:
            raise GatewayError(400, "model is required", param="model")
        default = exchange.dialect is _OLLAMA and known is not None and known.streams_by_default
        stream = data.get("stream", default)
        exchange.stream = bool(stream) if stream is not None else default
    elif exchange.dialect is Dialect.OPENAI and exchange.path.startswith("/v1/models/"):
        exchange.model_requested = exchange.model = exchange.path[len("/v1/models/") :] or None
    elif known is not None and known.needs_model and exchange.method == "POST":
        raise GatewayError(400, "request body must be a JSON object with a model", param="model")


async def run(exchange: Exchange) -> web.StreamResponse:
    """The hook chain for one identified request, the attempts included (one coroutine
    frame for the whole chain: every await of the upstream leg passes through each)."""
    gateway = exchange.gateway
    hooks = gateway.hooks
    action = MODELS_MANAGE if is_management(exchange.path) else PROXY
    if not await gateway.allowed(exchange.principal, action, exchange.path):
        raise GatewayError(403, "this endpoint needs an admin key", code="admin_required")
    await hooks.admit(exchange)
    await hooks.request_started(exchange)
    await hooks.rewrite_request(exchange)
    # ``model.use``: the model as sent upstream, or as the client named it (an alias).
    model = exchange.model
    if (model is not None or exchange.method not in ("GET", "HEAD")) and not (
        await gateway.allowed(exchange.principal, MODEL_USE, model)
    ):
        await _check_alias(exchange)
    exchange.routed_at = time.monotonic()
    response = await hooks.respond(exchange)
    if response is None and listing(exchange.method, exchange.path) is not None:
        backends = await hooks.fanout_backends(exchange)
        if backends is None:
            backends = list(gateway.backends.values())
        response = await fanout(exchange, backends)
    if response is None:
        # Try backends until one answers, at most ``1 + routing.retries`` times.
        max_attempts = 1 + gateway.config.routing.retries
        last: AttemptFailed | None = None
        while exchange.attempts < max_attempts:
            backend = await hooks.select_backend(exchange)
            if backend is None:
                break
            exchange.backend = backend
            exchange.attempts += 1
            exchange.tried.add(backend.name)
            if exchange.selected_at is None:
                exchange.selected_at = time.monotonic()
            outcome = _CANCELLED
            try:
                await hooks.attempt_started(exchange, backend)
                response = await attempt(exchange, backend)
                if exchange.stream_broken:
                    outcome = _STREAM_ERROR
                elif response.status >= 400:
                    outcome = _CLIENT_ERROR
                else:
                    outcome = _OK
                break
            except AttemptFailed as failure:
                outcome = failure.outcome
                last = failure
                log.warning("attempt %d failed: %s", exchange.attempts, failure.message)
            except GatewayError:
                outcome = _CLIENT_ERROR
                raise
            finally:
                await hooks.backend_released(exchange, backend, outcome)
        if response is None:
            if last is None:
                raise GatewayError(503, "no backend is available", headers={"Retry-After": "1"})
            _fail(exchange, last.status, last.message)
            response = await relay_failure(exchange, last)
    if exchange.outcome is _PENDING or exchange.outcome is _RUNNING:
        exchange.outcome = _SUCCESS if response.status < 400 else _FAILED
    if not exchange.status:
        exchange.status = response.status
    if not exchange.sink.started:
        await hooks.response_started(exchange, exchange.status)
    return response


async def _check_alias(exchange: Exchange) -> None:
    """``model.use`` refused the model as sent upstream: allowed all the same as the client
    named it (an alias), else a 403."""
    model, asked = exchange.model, exchange.model_requested
    if asked != model and await exchange.gateway.allowed(exchange.principal, MODEL_USE, asked):
        return
    if model is None:
        raise GatewayError(
            403, "this key may only send requests naming an allowed model", code="model_not_allowed"
        )
    raise GatewayError(
        403,
        f"model {asked or model!r} is not allowed for this key",
        code="model_not_allowed",
        param="model",
    )
