from __future__ import annotations

import json
from typing import Any

import pytest

from bench import bench_transform_cost
from ollamux.plugins.translate import stream


def _whole_stream(make: Any, reads: list[bytes]) -> bytes:
    t = make()
    return b"".join([t.feed(data) for data in reads]) + t.end()


def test_the_in_process_streams_translate_to_the_whole_answer() -> None:
    transforms = bench_transform_cost._transforms(chunks=20, lines=6)
    make, reads = transforms["openai->ollama"]
    events = [e for e in _whole_stream(make, reads).split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    chunks = [json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "tok " * 20
    make, reads = transforms["ollama->openai"]
    lines = [json.loads(line) for line in _whole_stream(make, reads).splitlines()]
    assert "".join(line["message"]["content"] for line in lines) == "tok " * 20
    assert lines[-1]["done"] is True and len(reads) == 4  # 22 events, 6 a read


def test_in_process_times_every_part_of_both_translations() -> None:
    args = bench_transform_cost._parser().parse_args(
        ["--chunks", "20", "--lines", "6", "--number", "3", "--repeat", "1"]
    )
    results = bench_transform_cost.run(args)
    timed = results["in_process_us"]
    assert set(timed) == {"openai->ollama", "ollama->openai"}
    for parts in timed.values():
        assert parts["whole stream"] > 0 and parts["set-up"] > 0
    table = bench_transform_cost.report(results).splitlines()
    assert [line.split()[0] for line in table[3:]] == ["openai->ollama", "ollama->openai"]


def test_free_transform_answers_a_read_it_saw_from_its_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for cls in (stream.OllamaToOpenAI, stream.OpenAIToOllama):
        monkeypatch.setattr(cls, "feed", cls.feed)  # put back after the test
    exec(bench_transform_cost.FREE_TRANSFORM, {})
    make, reads = bench_transform_cost._transforms(chunks=20, lines=6)["openai->ollama"]
    first = _whole_stream(make, reads)
    # A real transform gives each stream an id of its own; the cache answers with the first's.
    assert _whole_stream(make, reads) == first
