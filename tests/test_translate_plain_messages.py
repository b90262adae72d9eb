"""The common chat message (``{role, content}``, text content, nothing else) takes a
shortcut through the OpenAI -> Ollama request translation; it becomes what the general
path makes of it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ollamux.errors import GatewayError
from ollamux.plugins.translate import openai_to_ollama_request as req

roles = st.sampled_from(["user", "assistant", "system", "developer", "tool", "Tool", ""])


def _chat(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return req.chat_request({"model": "m", "messages": messages})


@settings(max_examples=200, deadline=None)
@given(roles | st.text(max_size=8), st.text(max_size=20))
def test_a_plain_message_becomes_what_the_general_path_makes_of_it(role: str, content: str) -> None:
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "", "function": {"name": "f"}}],
    }
    for history in ([], [call]):
        plain = {"role": role, "content": content}
        general = {**plain, "name": None}  # one more field: the general path
        assert _chat([*history, plain]) == _chat([*history, general])


def test_a_developer_message_is_sent_as_system() -> None:
    out = _chat([{"role": "developer", "content": "be brief"}])
    assert out["messages"] == [{"role": "system", "content": "be brief"}]


def _outcome(body: dict[str, Any]) -> Any:
    """What the translation makes of ``body``, or the error it answers with."""
    try:
        return req.chat_request(body)
    except GatewayError as exc:
        return (exc.status, str(exc), exc.param)


streams = st.none() | st.booleans() | st.sampled_from(["yes", 1, {}])
histories = st.lists(
    st.fixed_dictionaries({"role": roles, "content": st.text(max_size=8) | st.none()}),
    max_size=3,
) | st.sampled_from([None, [], "hi", [1]])


@settings(max_examples=200, deadline=None)
@given(histories, streams, st.booleans())
def test_a_request_of_only_model_messages_and_stream_becomes_what_the_general_path_makes(
    messages: Any, stream: Any, with_stream: bool
) -> None:
    body: dict[str, Any] = {"model": "m", "messages": messages}
    if with_stream:
        body["stream"] = stream
    general = {**body, "user": "someone"}  # a member the translation ignores: the general path
    assert _outcome(body) == _outcome(general)
