"""A whole ``/api/chat`` answer -> OpenAI's ``chat.completion``, from its bytes.

A plain text answer (no thinking, tool calls or images) is most non-streamed answers,
and parsing it into a dict, building the completion and encoding it again was most of
what translating it cost. Such an answer, as Ollama's server writes it (Go's encoder:
compact, members in the order of its ``ChatResponse``, zero figures left out), is
recognised by two compiled patterns, before and after its text (the text itself checked
by ``json``'s string scanner); its text and model are copied as the JSON strings they
are, and the completion is written from a template. The client gets the same JSON values
as from ``chat_completion`` (strings may keep the backend's escapes). Anything else gives
``None`` and the caller converts the answer the slow way.
"""

from __future__ import annotations

import re
from _json import scanstring  # ``json``'s own string scanner (C)

from .common import new_id, unix_of
from .ollama_to_openai_response import FINISH_REASONS

_COUNT = r"(?:0|[1-9][0-9]*+)"
# The answer up to its text's opening quote, and from its closing quote to the end (the
# text between is scanned by ``scanstring``: much faster than a pattern, per character).
_HEAD = re.compile(
    r'[ \t\r\n]*+\{"model":("(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+"),'
    r'"created_at":"([0-9A-Za-z:.+-]{1,40}+)",'
    r'"message":\{"role":"assistant","content":"'
)
_TAIL = re.compile(
    r'\},(?:"done_reason":"(stop|length|load|unload)",)?+"done":true'
    rf"(?:,\"total_duration\":{_COUNT})?+"
    rf"(?:,\"load_duration\":{_COUNT})?+"
    rf"(?:,\"prompt_eval_count\":({_COUNT}))?+"
    rf"(?:,\"prompt_eval_duration\":{_COUNT})?+"
    rf"(?:,\"eval_count\":({_COUNT}))?+"
    rf"(?:,\"eval_duration\":{_COUNT})?+"
    r"\}[ \t\r\n]*+"
)
_COMPLETION = (
    '{"id": "%s", "object": "chat.completion", "created": %d, "model": %s, '
    '"system_fingerprint": "fp_ollama", "choices": [{"index": 0, "message": '
    '{"role": "assistant", "content": %s}, "finish_reason": "%s", "logprobs": null}], '
    '"usage": {"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d}}'
)


def chat_completion_raw(body: bytes, model: str) -> tuple[bytes, int, int] | None:
    """The completion for a whole plain-text ``/api/chat`` answer, with its prompt and
    completion token counts; ``None`` when the answer needs the slow path.

    ``model``: the name the client asked for, as JSON text (empty: the backend's)."""
    try:
        text = body.decode()  # strict: the parsing path would replace what is not UTF-8
    except UnicodeDecodeError:
        return None
    head = _HEAD.match(text)
    if head is None:
        return None
    start = head.end()
    try:
        end = scanstring(text, start, True)[1]  # strict: no raw control characters
    except ValueError:
        return None
    tail = _TAIL.fullmatch(text, end)
    if tail is None:
        return None
    reason, prompt, completion = tail.groups()
    p = int(prompt) if prompt is not None else 0
    c = int(completion) if completion is not None else 0
    answer = _COMPLETION % (
        new_id("chatcmpl-"),
        unix_of(head[2]),
        model or head[1],
        text[start - 1 : end],  # the text as the JSON string the backend wrote
        FINISH_REASONS[reason or "stop"],  # the pattern takes only its keys
        p,
        c,
        p + c,
    )
    return answer.encode(), p, c
