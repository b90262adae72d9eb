"""The common chat message (``{role, content}``, text content, nothing else) takes a
shortcut through the OpenAI -> Ollama request translation; it becomes what the general
path makes of it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

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
