"""Which translation each (dialect, method, path) gets: the upstream request to send, or a
local answer, and the response transform to apply (kept in ``exchange.state["translate"]``).

The only I/O here is what a translation cannot do without: fetching image URLs (when
enabled) and the model list behind ``/api/show`` on an OpenAI backend.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from multidict import CIMultiDict

from ...backend import Backend
from ...dialect import Dialect
from ...errors import GatewayError
from ...exchange import Exchange, LocalResponse, UpstreamRequest
from ...listing import LISTING_PATHS
from ...proxy import request_args
from ...transforms import ResponseTransform
from . import anthropic_request as an_req
from . import anthropic_response as an_res
from . import ollama_to_openai_request as o2o_req
from . import ollama_to_openai_response as to_openai
from . import openai_to_ollama_request as oa_req
from . import openai_to_ollama_response as to_ollama
from . import responses_request as rs_req
from . import responses_response as rs_res
from .common import (
    DEFAULT_MAX_LINE_BYTES,
    bad_request,
    is_number,
    is_zero_duration,
    now_iso,
    ollama_extensions,
)
from .raw_chat import chat_completion_raw
from .raw_embeddings import embed_answer_raw, embedding_list_raw
from .stream import FrontStream, FrontTransform, ListingTransform, OllamaToOpenAI, OpenAIToOllama

Factory = Callable[[Exchange], ResponseTransform]
Result = UpstreamRequest | LocalResponse

STATE = "translate"
DEFAULT_OLLAMA_VERSION = "0.12.0"
_MAX_IMAGE_BYTES = 20 * 1024 * 1024
# The client fronts translated for both backend kinds, by path, and the name a backend's
# ``native`` list gives each (a backend that answers one itself gets it as it is).
FRONTS = {
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "messages",
    "/v1/responses": "responses",
}


def _listing(exchange: Exchange) -> ResponseTransform:
    return ListingTransform(exchange.path)


def forget(exchange: Exchange) -> None:
    """A same-dialect attempt: drop an earlier attempt's plan (listings keep theirs: one
    listing asks many backends at once, and its transform works for all of them)."""
    if exchange.state.get(STATE) not in (None, _listing):
        del exchange.state[STATE]


def _post(exchange: Exchange, path: str, body: dict[str, Any]) -> UpstreamRequest:
    """A JSON POST to ``path``; the client's query string is kept."""
    headers = CIMultiDict({"Content-Type": "application/json"})
    return UpstreamRequest("POST", path, exchange.query, headers, _dumps(body))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def max_line_bytes(exchange: Exchange) -> int:
    """The ``max_line_mb`` setting in bytes (default 16 MB): a longer line in a translated
    stream fails it cleanly instead of being buffered without end."""
    value = exchange.gateway.plugin_config(STATE).get("max_line_mb")
    if is_number(value) and value > 0:
        return int(value * 1024 * 1024)
    return DEFAULT_MAX_LINE_BYTES


def _body(exchange: Exchange) -> dict[str, Any]:
    if exchange.json is None:
        raise GatewayError(400, "a JSON request body is required")
    return exchange.json


async def translate(exchange: Exchange, backend: Backend) -> Result | None:
    """The request for ``backend`` whose API differs from the client's dialect."""
    if (exchange.method, exchange.path) in LISTING_PATHS:
        exchange.state[STATE] = _listing
        path = "/api/tags" if exchange.path == "/v1/models" else "/v1/models"
        return UpstreamRequest("GET", path)
    front = FRONTS.get(exchange.path)
    if front is not None and exchange.method == "POST":
        if front in backend.native:
            exchange.state.pop(STATE, None)
            return None
        return await _front(exchange, backend, front)
    if exchange.dialect is Dialect.ANTHROPIC:
        if "messages" in backend.native:
            exchange.state.pop(STATE, None)
            return None
        raise GatewayError(404, f"{exchange.method} {exchange.path} is not available")
    if backend.api is Dialect.OLLAMA:
        return await _to_ollama(exchange)
    return await _to_openai(exchange, backend)


# --- Messages and Responses clients -> either backend ------------------------------------


async def _front(exchange: Exchange, backend: Backend, front: str) -> Result:
    """A Messages or Responses request as a chat request: ``/api/chat`` for an Ollama
    backend, ``/v1/chat/completions`` for an OpenAI one; the answer in the front's shape."""
    body = _body(exchange)
    ollama = backend.api is Dialect.OLLAMA
    model = exchange.model or ""
    if exchange.path == "/v1/messages/count_tokens":
        exchange.state.pop(STATE, None)
        return LocalResponse.json({"input_tokens": an_req.count_tokens(body)})
    whole: Callable[[dict[str, Any]], dict[str, Any]]
    writer: Callable[[], FrontStream]
    if front == "messages":
        chat = an_req.chat_request(body, ollama)
        whole = lambda o: an_res.message(o, model)  # noqa: E731
        writer = lambda: an_res.MessageStream(model)  # noqa: E731
        extras = an_req.ollama_extras
    else:
        chat = rs_req.chat_request(body, ollama)
        echo = rs_req.echo_of(body)
        whole = lambda o: rs_res.response(o, model, echo)  # noqa: E731
        writer = lambda: rs_res.ResponseStream(model, echo)  # noqa: E731
        extras = ollama_extensions
    limit = max_line_bytes(exchange)
    _plan(exchange, lambda ex: FrontTransform(ex, ollama, whole, writer(), limit))
    if not ollama:
        return _post(exchange, "/v1/chat/completions", chat)
    allow_urls = bool(exchange.gateway.plugin_config(STATE).get("fetch_image_urls"))
    out = extras(body, oa_req.chat_request(chat, allow_urls))
    if allow_urls:
        await _fetch_images(exchange, out["messages"])
    return _post(exchange, "/api/chat", out)


# --- OpenAI client -> Ollama backend -----------------------------------------------------


async def _to_ollama(exchange: Exchange) -> Result | None:
    path, method = exchange.path, exchange.method
    model = exchange.model or ""
    if method == "POST" and path == "/v1/chat/completions":
        body = _body(exchange)
        allow_urls = bool(exchange.gateway.plugin_config(STATE).get("fetch_image_urls"))
        out = oa_req.chat_request(body, allow_urls)
        if allow_urls:
            await _fetch_images(exchange, out["messages"])
        usage = oa_req.include_usage(body)
        limit = max_line_bytes(exchange)
        quoted = json.dumps(model) if model else ""
        _plan(
            exchange,
            lambda ex: OllamaToOpenAI(
                ex,
                lambda o: to_openai.chat_completion(o, model),
                to_openai.ChatStream(model, usage),
                limit,
                raw=lambda b: chat_completion_raw(b, quoted),
            ),
        )
        return _post(exchange, "/api/chat", out)
    if method == "POST" and path == "/v1/completions":
        body = _body(exchange)
        out = oa_req.completion_request(body)
        usage = oa_req.include_usage(body)
        limit = max_line_bytes(exchange)
        _plan(
            exchange,
            lambda ex: OllamaToOpenAI(
                ex,
                lambda o: to_openai.text_completion(o, model),
                to_openai.CompletionStream(model, usage),
                limit,
            ),
        )
        return _post(exchange, "/api/generate", out)
    if method == "POST" and path == "/v1/embeddings":
        body = _body(exchange)
        out = oa_req.embedding_request(body)
        fmt = oa_req.encoding_format_of(body)
        _plan(
            exchange,
            lambda ex: OllamaToOpenAI(
                ex,
                lambda o: to_openai.embedding_list(o, model, fmt),
                to_openai.ChatStream(model),
                raw=lambda b: embedding_list_raw(b, model, fmt),
            ),
        )
        return _post(exchange, "/api/embed", out)
    if method == "GET" and path.startswith("/v1/models/") and model:
        _plan(
            exchange,
            lambda ex: OllamaToOpenAI(
                ex, lambda o: to_openai.model_from_show(o, model), to_openai.ChatStream(model)
            ),
        )
        return _post(exchange, "/api/show", oa_req.show_request(model))
    exchange.state.pop(STATE, None)
    return None  # other /v1 paths: Ollama's own OpenAI layer answers them as they are


async def _fetch_images(exchange: Exchange, messages: list[dict[str, Any]]) -> None:
    """Replace image URLs by the images' bytes (base64), when fetching is enabled."""
    session = exchange.gateway.session
    for msg in messages:
        images = msg.get("images") or []
        for i, image in enumerate(images):
            if not image.startswith(("http://", "https://")):
                continue
            try:
                async with session.get(image) as resp:
                    resp.raise_for_status()
                    data = await resp.content.read(_MAX_IMAGE_BYTES + 1)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise GatewayError(
                    400, f"could not fetch image {image}: {exc}", param="messages"
                ) from exc
            if len(data) > _MAX_IMAGE_BYTES:
                raise GatewayError(400, f"image {image} is larger than 20 MB", param="messages")
            images[i] = base64.b64encode(data).decode()


# --- Ollama client -> OpenAI backend -----------------------------------------------------


async def _to_openai(exchange: Exchange, backend: Backend) -> Result:
    path, method = exchange.path, exchange.method
    model = exchange.model or ""
    started = time.monotonic_ns()

    def elapsed() -> int:
        return time.monotonic_ns() - started

    if path == "/" and method in ("GET", "HEAD"):
        exchange.state.pop(STATE, None)
        return LocalResponse(body=b"Ollama is running", content_type="text/plain")
    if method == "GET" and path == "/api/version":
        exchange.state.pop(STATE, None)
        version = exchange.gateway.plugin_config(STATE).get("ollama_version")
        return LocalResponse.json({"version": version or DEFAULT_OLLAMA_VERSION})
    limit = max_line_bytes(exchange)
    if method == "POST" and path == "/api/chat":
        body = _body(exchange)
        messages = body.get("messages")
        if messages is not None and not isinstance(messages, list):
            raise bad_request("'messages' must be a list", "messages")
        if not messages:
            return _loaded(exchange, body, model, chat=True)
        out = o2o_req.chat_request(body)
        _plan(
            exchange,
            lambda ex: OpenAIToOllama(
                ex,
                lambda o: to_ollama.chat_response(o, model, elapsed()),
                to_ollama.ChatStream(model),
                limit,
            ),
        )
        return _post(exchange, "/v1/chat/completions", out)
    if method == "POST" and path == "/api/generate":
        body = _body(exchange)
        prompt = body.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise bad_request("'prompt' must be a string", "prompt")
        if not prompt:
            return _loaded(exchange, body, model, chat=False)
        out = o2o_req.generate_request(body)
        _plan(
            exchange,
            lambda ex: OpenAIToOllama(
                ex,
                lambda o: to_ollama.generate_response(o, model, elapsed()),
                to_ollama.ChatStream(model, generate=True),
                limit,
            ),
        )
        target = "/v1/completions" if o2o_req.uses_completions(body) else "/v1/chat/completions"
        return _post(exchange, target, out)
    if method == "POST" and path in ("/api/embed", "/api/embeddings"):
        legacy = path == "/api/embeddings"
        out = o2o_req.embed_request(_body(exchange), legacy)
        _plan(
            exchange,
            lambda ex: OpenAIToOllama(
                ex,
                lambda o: to_ollama.embed_response(o, model, legacy),
                to_ollama.ChatStream(model),
                limit,
                raw=None if legacy else lambda b: embed_answer_raw(b, model),
            ),
        )
        return _post(exchange, "/v1/embeddings", out)
    if method == "POST" and path == "/api/show":
        exchange.state.pop(STATE, None)
        return await _show(exchange, backend, model)
    raise GatewayError(501, f"{method} {path} is not available on an OpenAI-compatible backend")


def _plan(exchange: Exchange, factory: Factory) -> None:
    exchange.state[STATE] = factory


def _loaded(exchange: Exchange, body: dict[str, Any], model: str, chat: bool) -> LocalResponse:
    """What Ollama answers to an empty chat or prompt: the model is loaded, nothing said;
    with ``keep_alive: 0`` it is unloaded instead (``done_reason: "unload"``)."""
    exchange.state.pop(STATE, None)
    keep_alive = o2o_req.check_keep_alive(body)
    answer: dict[str, Any] = {"model": model, "created_at": now_iso()}
    if chat:
        answer["message"] = {"role": "assistant", "content": ""}
    else:
        answer["response"] = ""
    reason = "unload" if is_zero_duration(keep_alive) else "load"
    answer.update(done=True, done_reason=reason)
    return LocalResponse.json(answer)


async def _show(exchange: Exchange, backend: Backend, model: str) -> LocalResponse:
    """``/api/show`` from the backend's model list (404 for a model it does not list)."""
    up = UpstreamRequest("GET", "/v1/models")
    args = request_args(exchange, backend, up, None)
    try:
        async with exchange.gateway.session.request(**args) as resp:
            body = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise GatewayError(502, f"backend {backend.name} unreachable: {exc}") from exc
    if status >= 400:
        raise GatewayError(status, f"backend {backend.name} could not list its models")
    try:
        models = json.loads(body)
    except ValueError as exc:
        raise GatewayError(502, f"backend {backend.name} sent an unreadable model list") from exc
    show = to_ollama.show_response(models if isinstance(models, dict) else {}, model)
    if show is None:
        return LocalResponse.json({"error": f"model '{model}' not found"}, status=404)
    return LocalResponse.json(show)
