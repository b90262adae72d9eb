"""The ``translate`` built-in plugin: lets either dialect's clients use either kind of
backend, and Anthropic Messages (``/v1/messages``) and OpenAI Responses (``/v1/responses``)
clients use both (as chat requests, unless the backend lists the front in ``native``).

This module only wires the converters into the hook chain: ``paths`` decides what each
path becomes; the pure converters live in ``openai_to_ollama_request``,
``ollama_to_openai_response``, ``ollama_to_openai_request`` and
``openai_to_ollama_response``, and for the two fronts ``anthropic_request``,
``anthropic_response``, ``responses_request``, ``responses_response``; ``stream``
re-frames bodies (``textpath``: a read of text lines at once, in C when it was built;
``raw_embeddings`` converts embedding answers from their bytes: ``jsonwalk`` walks their
outer levels, ``vectorpath`` reads their vectors, in C when it was built). A request whose
dialect matches its backend's API costs one comparison: both hooks return ``None`` at
once.

Settings (``plugins.config.translate``): ``fetch_image_urls`` (default false) lets
``http(s)`` image URLs in OpenAI chat messages be fetched for Ollama backends;
``ollama_version`` (default ``"0.12.0"``) is what ``/api/version`` reports for OpenAI
backends; ``max_line_mb`` (default 16) bounds one line of a translated stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...hookspecs import hookimpl
from .paths import FRONTS, STATE, forget, translate
from .stream import Translating

if TYPE_CHECKING:
    from ...backend import Backend
    from ...exchange import Exchange, LocalResponse, ResponseHead, UpstreamRequest
    from ...transforms import ResponseTransform


@hookimpl
async def ollamux_translate_request(
    exchange: Exchange, backend: Backend
) -> UpstreamRequest | LocalResponse | None:
    if exchange.dialect is backend.api and exchange.path not in FRONTS:
        if STATE in exchange.state:
            forget(exchange)
        return None
    return await translate(exchange, backend)


@hookimpl(tryfirst=True)  # first: every other transform reads the client's dialect
def ollamux_transform_response(exchange: Exchange, head: ResponseHead) -> ResponseTransform | None:
    factory = exchange.state.get(STATE)
    transform = None if factory is None else factory(exchange)
    exchange.counts_usage = isinstance(transform, Translating)
    return transform
