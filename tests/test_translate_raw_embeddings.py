"""Translated embedding answers are converted from their bytes, both ways: the vectors are
checked and copied, not parsed (or packed as they are read, for base64). The client gets
what the parsing path gives (the same JSON values); any answer that path refuses is
refused the same way."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ollamux.plugins.translate import ollama_to_openai_response as to_openai
from ollamux.plugins.translate import openai_to_ollama_response as to_ollama
from ollamux.plugins.translate.raw_embeddings import embed_answer_raw, embedding_list_raw
from ollamux.transforms import BadUpstreamAnswer
from tests.fakes.ollama_backend import Scripted
from tests.translate_support import same_either_way, whole_for_ollama, whole_for_openai

MODEL = "m:latest"


def _answer(body: bytes, fast: bool, fmt: str = "float") -> tuple[Any, dict[str, int]]:
    """What a client gets for ``body`` (parsed), with or without the bytes path, and the
    usage recorded; ``BadUpstreamAnswer`` when the answer is refused."""
    raw = (lambda b: embedding_list_raw(b, MODEL, fmt)) if fast else None
    text, usage = whole_for_openai(
        body, lambda o: to_openai.embedding_list(o, MODEL, fmt), MODEL, raw
    )
    return json.loads(text), usage


def _same_either_way(body: bytes) -> None:
    for fmt in ("float", "base64"):
        same_either_way(lambda fast, fmt=fmt: _answer(body, fast, fmt))


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


numbers = st.integers() | st.floats(allow_nan=False, allow_infinity=False)
vectors = st.lists(st.lists(numbers, max_size=6), max_size=4)
others = st.dictionaries(
    st.sampled_from(["model", "total_duration", "prompt_eval_count", "error", "object", "x"]),
    st.none() | st.integers(-1, 9) | st.text(max_size=4) | st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(vectors, others, st.booleans())
def test_any_embed_answer_converts_as_the_parsing_path_does(
    embeddings: list[list[Any]], fields: dict[str, Any], compact: bool
) -> None:
    obj = {**fields, "embeddings": embeddings}
    body = _compact(obj) if compact else json.dumps(obj, indent=1).encode()
    _same_either_way(body)


@settings(max_examples=300, deadline=None)
@given(vectors, st.data())
def test_a_damaged_byte_in_the_vectors_is_refused_or_converted_as_the_parsing_path_does(
    embeddings: list[list[Any]], data: Any
) -> None:
    body = bytearray(_compact({"model": MODEL, "embeddings": embeddings}))
    at = data.draw(st.integers(len(b'{"model":"m:latest","embeddings":'), len(body) - 1))
    body[at] = ord(data.draw(st.sampled_from('0123456789.eE+-,[]" x\n')))
    _same_either_way(bytes(body))


def test_the_vectors_are_copied_as_the_backend_wrote_them() -> None:
    body = b'{"model":"m","embeddings":[[1E-7,-0.50,3],[ 2e+2 , 0 ]],"prompt_eval_count":2}'
    found = embedding_list_raw(body, MODEL, "float")
    assert found is not None
    answer, tokens, _ = found
    assert b'"embedding": [1E-7,-0.50,3]' in answer
    assert b'"embedding": [ 2e+2 , 0 ]' in answer
    assert tokens == 2
    assert json.loads(answer) == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [1e-7, -0.5, 3]},
            {"object": "embedding", "index": 1, "embedding": [200.0, 0]},
        ],
        "model": MODEL,
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }


def test_the_usage_is_recorded_from_the_prompt_count() -> None:
    body = b'{"model":"m","embeddings":[[0.5]],"prompt_eval_count":7}'
    assert _answer(body, fast=True)[1] == {"prompt_tokens": 7, "completion_tokens": 0}


@pytest.mark.parametrize(
    "body",
    [
        b'\xef\xbb\xbf{"embeddings":[[1]]}',  # a byte-order mark
        b'{"embeddings":[[1]],"model":"\xff"}',  # invalid UTF-8
        b'{"embeddings":[[NaN]]}',
        b'{"embeddings":[[1,"2"]]}',
        b'{"embeddings":[[[1]]]}',
        b'{"embeddings":[1,2]}',
        b'{"embeddings":[[01]]}',
        b'{"embeddings":[[1.]]}',
        b'{"embeddings":[[1,]]}',
        b'{"embeddings":[[1]],}',
        b'{"embeddings":[[1]]',
        b'{"embeddings":[[1]]} x',
        b'{"embeddings":[[1]],"error":"boom"}',
        b'{"embeddings":[[1]],"prompt_eval_count":-1}',
        b'{"embeddings":[[1]],"embeddings":5}',
        b'{"data":5}',
        b"[[1]]",
    ],
)
def test_unusual_answers_are_left_to_the_parsing_path(body: bytes) -> None:
    assert embedding_list_raw(body, MODEL, "float") is None


def test_a_repeated_key_counts_once_the_last_as_in_json() -> None:
    body = b'{"model":"a","embeddings":[[1]],"model":"b","embeddings":[[2],[3]]}'
    found = embedding_list_raw(body, "", "float")
    assert found is not None
    answer = json.loads(found[0])
    assert answer["model"] == "b"
    assert [d["embedding"] for d in answer["data"]] == [[2], [3]]


@pytest.mark.parametrize(
    "embeddings",
    [b"[[true]]", b"[[false,1]]", b"[[Infinity]]", b"[{}]", b'[""]', b'[[1,"2"]]', b"[[1e39]]"],
)
def test_vectors_struct_would_pack_wrongly_are_left_to_the_parsing_path_in_base64(
    embeddings: bytes,
) -> None:
    body = b'{"model":"m","embeddings":' + embeddings + b"}"
    assert embedding_list_raw(body, MODEL, "base64") is None


def test_base64_vectors_are_little_endian_float32() -> None:
    found = embedding_list_raw(b'{"embeddings":[[0.5,-1],[]]}', MODEL, "base64")
    assert found is not None
    data = json.loads(found[0])["data"]
    assert [d["embedding"] for d in data] == ["AAAAPwAAgL8=", ""]


async def test_an_embed_answer_with_a_broken_vector_is_a_502_on_the_wire(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fake = Scripted(pieces=[b'{"model":"m:latest","embeddings":[[0.5,1..2]]}'])
    server = await aiohttp_server(fake.app())
    url = str(server.make_url("")).rstrip("/")
    client = await gateway_client({"backends": [{"url": url, "api": "ollama"}]})
    resp = await client.post("/v1/embeddings", json={"model": MODEL, "input": "a"})
    assert resp.status == 502
    assert "cannot be understood" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize("value", [1e39, 10**40, 10**400])
def test_a_number_no_32_bit_float_holds_is_refused_for_base64_either_way(value: int) -> None:
    body = _compact({"model": MODEL, "embeddings": [[0.5, value]]})
    for fast in (False, True):
        with pytest.raises(BadUpstreamAnswer, match="32-bit float"):
            _answer(body, fast, "base64")
    assert _answer(body, True, "float") == _answer(body, False, "float")


# --- an OpenAI server's embedding list for an Ollama client (/api/embed) ------------------


def _for_ollama(body: bytes, fast: bool) -> tuple[Any, dict[str, int]]:
    raw = (lambda b: embed_answer_raw(b, MODEL)) if fast else None
    text, usage = whole_for_ollama(body, lambda o: to_ollama.embed_response(o, MODEL), MODEL, raw)
    return json.loads(text), usage


def _openai_list(entries: list[dict[str, Any]], **fields: Any) -> bytes:
    return _compact({"object": "list", "data": entries, "model": "m", **fields})


entries = st.lists(
    st.fixed_dictionaries(
        {"embedding": st.lists(numbers, max_size=6) | st.sampled_from(["AACAPw==", None, 5])},
        optional={
            "index": st.integers(-1, 4) | st.none() | st.sampled_from(["0", True]),
            "object": st.just("embedding"),
        },
    ),
    max_size=4,
)
openai_fields = st.dictionaries(
    st.sampled_from(["model", "usage", "error", "object", "x"]),
    st.none()
    | st.integers(-1, 9)
    | st.text(max_size=4)
    | st.fixed_dictionaries({"prompt_tokens": st.integers(-1, 9) | st.none()}),
)


@settings(max_examples=300, deadline=None)
@given(entries, openai_fields, st.booleans())
def test_any_openai_embedding_list_converts_as_the_parsing_path_does(
    data: list[dict[str, Any]], fields: dict[str, Any], compact: bool
) -> None:
    obj = {**fields, "data": data}
    body = _compact(obj) if compact else json.dumps(obj, indent=1).encode()
    same_either_way(lambda fast: _for_ollama(body, fast))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(numbers, max_size=4), max_size=3), st.data())
def test_a_damaged_byte_in_an_openai_list_is_refused_or_converted_as_parsing_does(
    vectors: list[list[Any]], data: Any
) -> None:
    body = bytearray(
        _openai_list(
            [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        )
    )
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] = ord(data.draw(st.sampled_from('0123456789.eE+-,[]{}:" x\n')))
    same_either_way(lambda fast: _for_ollama(bytes(body), fast))


def test_an_openai_list_gives_the_vectors_as_written_in_the_order_of_their_index() -> None:
    body = (
        b'{"object":"list","data":[{"object":"embedding","index":1,"embedding":[1E-7, 2]},'
        b'{"embedding":[-0.50],"index":0,"object":"embedding"}],"model":"x",'
        b'"usage":{"prompt_tokens":4,"total_tokens":4}}'
    )
    found = embed_answer_raw(body, MODEL)
    assert found is not None
    answer, tokens, _ = found
    assert answer == (
        b'{"model": "m:latest", "embeddings": [[-0.50], [1E-7, 2]], "total_duration": 0, '
        b'"load_duration": 0, "prompt_eval_count": 4}'
    )
    assert tokens == 4
    assert _for_ollama(body, True) == _for_ollama(body, False)


@pytest.mark.parametrize(
    "body",
    [
        _openai_list([{"index": 0, "embedding": "AACAPw=="}]),  # base64: decoded by parsing
        _openai_list([{"index": 0, "embedding": [float("nan")]}]),
        _openai_list([{"index": -1, "embedding": [1]}]),
        _openai_list([{"index": 0}]),
        _openai_list([{"index": 0, "embedding": [1]}], error={"message": "boom"}),
        _openai_list([{"index": 0, "embedding": [1]}], usage=[]),
        _compact({"object": "list", "model": "m"}),
        b'{"data":[{"embedding":[1]}]} x',
    ],
)
def test_unusual_openai_lists_are_left_to_the_parsing_path(body: bytes) -> None:
    assert embed_answer_raw(body, MODEL) is None
