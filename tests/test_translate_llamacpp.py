"""The ``ollama`` SDK through ollamux to a real OpenAI-compatible server: llama-cpp-python's,
serving a tiny random-weight LLaMA that the test writes itself (its text is gibberish, its
protocol is real). Needs the ``llama`` extra; skipped without it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest

pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")

pytestmark = pytest.mark.slow

MODEL = "tiny-llama"


def write_tiny_llama(path: Path) -> None:
    """A 2-layer LLaMA with a 315-token byte-fallback vocabulary and random weights (~0.5 MB)."""
    rng = np.random.default_rng(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = ["\u2581" + c for c in letters] + list(letters) + ["\u2581"]
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    tokens += [p.encode() for p in pieces]
    types = [2, 3, 3] + [6] * 256 + [1] * len(pieces)  # unknown, control, byte, normal
    n_vocab, n_embd, n_ff, n_head, n_layer = len(tokens), 64, 128, 4, 2
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(MODEL)
    w.add_context_length(512)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_chat_template(
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    )

    def random(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))

    def ones(name: str) -> None:
        w.add_tensor(name, np.ones(n_embd, dtype=np.float32))

    random("token_embd.weight", n_vocab, n_embd)
    ones("output_norm.weight")
    random("output.weight", n_vocab, n_embd)
    for i in range(n_layer):
        ones(f"blk.{i}.attn_norm.weight")
        ones(f"blk.{i}.ffn_norm.weight")
        for part in ("q", "k", "v", "output"):
            random(f"blk.{i}.attn_{part}.weight", n_embd, n_embd)
        random(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        random(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        random(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's server on loopback; its base URL."""
    model = tmp_path_factory.mktemp("llama") / "tiny.gguf"
    write_tiny_llama(model)
    assert model.stat().st_size < 1_000_000
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    args += ["--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port)]
    args += ["--n_ctx", "512", "--n_threads", "1", "--verbose", "false"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"llama_cpp.server exited: {err[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not start within 120 s")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
async def host(gateway_client: Any, llama_server: str) -> str:
    client = await gateway_client(
        {"backends": [{"url": llama_server, "api": "openai"}], "routing": {"retries": 0}}
    )
    return str(client.make_url("")).rstrip("/")


async def test_ollama_chat_streams_from_llama_cpp(host: str) -> None:
    parts = [
        p
        async for p in await ollama.AsyncClient(host=host).chat(
            model=MODEL,
            messages=[{"role": "user", "content": "hello"}],
            options={"num_predict": 6, "seed": 1},
            stream=True,
        )
    ]
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].done_reason in ("length", "stop")
    assert all(p.model == MODEL for p in parts)


async def test_ollama_chat_streamed_text_is_the_whole_answers_text(host: str) -> None:
    """Each streamed piece's text arrives exactly (the raw fast paths copy it as bytes)."""
    client = ollama.AsyncClient(host=host)
    request: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hello"}],
        "options": {"num_predict": 12, "seed": 1, "temperature": 0},
    }
    whole = await client.chat(**request, stream=False)
    parts = [p async for p in await client.chat(**request, stream=True)]
    assert "".join(p.message.content or "" for p in parts) == whole.message.content


async def test_ollama_chat_whole_answer_has_counts(host: str) -> None:
    done = await ollama.AsyncClient(host=host).chat(
        model=MODEL,
        messages=[{"role": "user", "content": "hello"}],
        options={"num_predict": 4},
        stream=False,
    )
    assert done.done and done.message.role == "assistant"
    assert done.prompt_eval_count and done.prompt_eval_count > 0
    assert done.eval_count is not None and 0 < done.eval_count <= 4


async def test_ollama_raw_generate_uses_completions(host: str) -> None:
    done = await ollama.AsyncClient(host=host).generate(
        model=MODEL, prompt="abc", raw=True, options={"num_predict": 3}, stream=False
    )
    assert done.done and isinstance(done.response, str)
    assert done.eval_count is not None and done.eval_count <= 3


async def test_ollama_list_and_show(host: str) -> None:
    client = ollama.AsyncClient(host=host)
    assert [m.model for m in (await client.list()).models] == [MODEL]
    assert (await client.show(MODEL)).capabilities == ["completion"]


async def test_openai_sdk_passthrough_streams_from_llama_cpp(host: str) -> None:
    sdk = openai.AsyncOpenAI(base_url=host + "/v1", api_key="x", max_retries=0)
    stream = await sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_model_file_is_small(tmp_path: Path) -> None:
    write_tiny_llama(tmp_path / "m.gguf")
    assert (tmp_path / "m.gguf").stat().st_size < 1_000_000


# --- the Messages and Responses fronts over llama.cpp (as /v1/chat/completions) -------------


async def test_anthropic_sdk_message_and_stream_from_llama_cpp(host: str) -> None:
    anthropic = pytest.importorskip("anthropic")
    sdk = anthropic.AsyncAnthropic(base_url=host, api_key="x", max_retries=0)
    done = await sdk.messages.create(
        model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "hello"}]
    )
    assert done.stop_reason in ("max_tokens", "end_turn")
    # the counts are the server's (llama-cpp-python's are off after a cached prompt)
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0
    async with sdk.messages.stream(
        model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert final.content[0].text == "".join(pieces)
    assert pieces  # (how many: llama-cpp-python's limit drifts once its prompt cache is warm)
    assert final.stop_reason in ("max_tokens", "end_turn")


async def test_openai_responses_create_and_stream_from_llama_cpp(host: str) -> None:
    sdk = openai.AsyncOpenAI(base_url=host + "/v1", api_key="x", max_retries=0)
    done = await sdk.responses.create(
        model=MODEL, instructions="be brief", input="hello", max_output_tokens=4
    )
    assert done.status in ("completed", "incomplete")
    assert done.usage is not None and done.usage.output_tokens > 0
    async with sdk.responses.stream(model=MODEL, input="hello", max_output_tokens=4) as stream:
        events = [event async for event in stream]
    assert events[0].type == "response.created"
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert deltas
    assert "".join(d.delta for d in deltas) == events[-1].response.output_text  # type: ignore[union-attr]
    assert events[-1].type in ("response.completed", "response.incomplete")
