"""Translated whole chat answers (an OpenAI client, an Ollama backend) are converted from
their bytes when they are plain text as Ollama writes them: the text is checked and
copied, not parsed. The client gets what the parsing path gives (the same JSON values,
the same usage); any other answer takes the parsing path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ollamux.plugins.translate import ollama_to_openai_response as to_openai
from ollamux.plugins.translate.raw_chat import chat_completion_raw
from tests.translate_support import same_either_way, whole_for_openai

MODEL = "gpt-4o"
QUOTED = json.dumps(MODEL)


def _go(value: Any) -> str:
    """JSON text as Go's encoder writes it (Ollama's server): raw UTF-8, HTML escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _ollama(content: str = "Hello!", model: str = "llama3:8b", **figures: Any) -> bytes:
    """A whole ``/api/chat`` answer in the order Ollama's ``ChatResponse`` has its members."""
    reason = figures.pop("done_reason", "stop")
    text = (
        f'{{"model":{_go(model)},"created_at":"2024-05-01T10:00:00.123456789Z",'
        f'"message":{{"role":"assistant","content":{_go(content)}}},'
    )
    if reason is not None:
        text += f'"done_reason":{_go(reason)},'
    text += '"done":true'
    defaults = {
        "total_duration": 5_000_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": 26,
        "prompt_eval_duration": 300_000_000,
        "eval_count": 290,
        "eval_duration": 4_000_000_000,
    }
    for key, value in {**defaults, **figures}.items():
        if value is not None:
            text += f',"{key}":{value}'
    return (text + "}").encode()


def _answer(body: bytes, fast: bool, model: str = MODEL) -> tuple[Any, dict[str, int]]:
    """What a client gets for ``body`` (parsed, its id checked and left out), with or without
    the bytes path, and the usage recorded; ``BadUpstreamAnswer`` when it is refused."""
    quoted = json.dumps(model) if model else ""
    raw = (lambda b: chat_completion_raw(b, quoted)) if fast else None
    text, usage = whole_for_openai(body, lambda o: to_openai.chat_completion(o, model), model, raw)
    answer = json.loads(text)
    answer_id = answer.pop("id")
    assert answer_id.startswith("chatcmpl-") and len(answer_id) == len("chatcmpl-") + 24
    return answer, usage


def _same_either_way(body: bytes, model: str = MODEL) -> None:
    same_either_way(lambda fast: _answer(body, fast, model))


def test_a_plain_answer_is_converted_from_its_bytes() -> None:
    found = chat_completion_raw(_ollama('Hi <there> & "you"\n'), QUOTED)
    assert found is not None
    answer, prompt, completion = found
    assert b'"content": "Hi \\u003cthere\\u003e \\u0026 \\"you\\"\\n"' in answer
    assert (prompt, completion) == (26, 290)
    parsed = json.loads(answer)
    assert parsed["choices"][0]["message"]["content"] == 'Hi <there> & "you"\n'
    assert parsed["created"] == 1714557600
    assert parsed["model"] == MODEL
    assert parsed["usage"] == {"prompt_tokens": 26, "completion_tokens": 290, "total_tokens": 316}


@pytest.mark.parametrize(
    "body",
    [
        _ollama(),
        _ollama(""),
        _ollama("héllo wörld 你好 🙂"),
        _ollama("tab\there, bell \u0007, line\u2028sep"),
        _ollama(done_reason="length"),
        _ollama(done_reason="load"),
        _ollama(done_reason=None),
        _ollama(prompt_eval_count=None, eval_count=None),
        _ollama(load_duration=None, prompt_eval_duration=None, total_duration=None),
        b"  \n" + _ollama() + b"\r\n",
    ],
)
def test_plain_answers_convert_as_the_parsing_path_does(body: bytes) -> None:
    assert chat_completion_raw(body, QUOTED) is not None
    _same_either_way(body)
    _same_either_way(body, model="")


def test_without_a_model_asked_for_the_backend_s_name_is_given() -> None:
    answer, _ = _answer(_ollama(model="qwen3:0.6b"), True, model="")
    assert answer["model"] == "qwen3:0.6b"


@pytest.mark.parametrize(
    "body",
    [
        _ollama().replace(b'"content":"Hello!"', b'"content":"Hello!","thinking":"hmm"'),
        _ollama().replace(
            b'"content":"Hello!"',
            b'"content":"","tool_calls":[{"function":{"name":"f","arguments":{}}}]',
        ),
        _ollama().replace(b'"content":"Hello!"', b'"content":"Hello!","images":null'),
        _ollama().replace(b'"done":true', b'"done":false'),
        _ollama(done_reason="weird"),
        _ollama(eval_count="007"),
        _ollama(eval_count=-1),
        _ollama().replace(b'"done":true', b'"done":true,"logprobs":[]'),
        _ollama().replace(b'"role":"assistant"', b'"role":"user"'),
        _ollama().replace(b"Hello!", b"Hel\tlo"),  # a raw control character: not JSON
        _ollama().replace(b"Hello!", b"Hel\xfflo"),  # not UTF-8: the parsing path replaces
        _ollama().replace(b"Hello!", b"Hel\\xlo"),  # an escape JSON does not have
        b'{"error":"model not found"}',
        _ollama() + b"{}",
        _ollama()[:-1],
    ],
)
def test_other_answers_take_the_parsing_path(body: bytes) -> None:
    assert chat_completion_raw(body, QUOTED) is None


def test_the_usage_is_recorded_for_the_access_log_and_metrics() -> None:
    _, usage = _answer(_ollama(prompt_eval_count=3, eval_count=9), True)
    assert usage == {"prompt_tokens": 3, "completion_tokens": 9}


texts = st.text(max_size=40)
counts = st.none() | st.integers(0, 10**12)


@settings(max_examples=300, deadline=None)
@given(texts, texts, counts, counts, st.sampled_from(["stop", "length", "unload", None]))
def test_any_plain_answer_converts_as_the_parsing_path_does(
    content: str, model: str, prompt: int | None, completion: int | None, reason: str | None
) -> None:
    body = _ollama(
        content, model, prompt_eval_count=prompt, eval_count=completion, done_reason=reason
    )
    assert chat_completion_raw(body, QUOTED) is not None
    _same_either_way(body)
    _same_either_way(body, model="")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_damaged_byte_is_refused_or_converted_as_the_parsing_path_does(data: Any) -> None:
    body = bytearray(_ollama('some "quoted" text\\ and more'))
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] = ord(data.draw(st.sampled_from('0123456789"\\{}[]:, x\n\ttu')))
    _same_either_way(bytes(body))
