"""What the stores receive: the status document written once as compact JSON text, the end
state of a short request with the backend's figures, batches of any size in SQLite."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from ollamux.plugins.tasks.document import new_event_id, status_text
from ollamux.plugins.tasks.progress import FinalLine, parse_final, progress_text, read_final
from ollamux.plugins.tasks.routes import TRACKER
from ollamux.plugins.tasks.sqlite_store import SqliteStore
from ollamux.plugins.tasks.store import TaskRecord
from ollamux.testing import gateway_of
from tests.exchange_support import chat_exchange
from tests.tasks_util import MODEL, settle, wait_for_state

OLLAMA_END = (
    b'{"model":"m","message":{"role":"assistant","content":"!"},"done":true,'
    b'"total_duration":9000000,"load_duration":1000000,"prompt_eval_count":7,'
    b'"prompt_eval_duration":2000000,"eval_count":4,"eval_duration":3000000}\n'
)


class _Backend:
    name = 'gpu "1"'


def test_the_document_text_is_the_compact_json_of_the_documented_shape() -> None:
    started = time.monotonic()
    exchange = chat_exchange(
        task_id="doc-1",
        model='odd "model" \\ näme\n',
        stream=True,
        backend=_Backend(),
        chunks=4,
        attempts=1,
        status=200,
        started_at=started,
        routed_at=started,
        selected_at=started + 0.25,
        first_chunk_at=started + 0.5,
        cancelled_by="key \u2603",
    )
    final = FinalLine()
    final.feed(OLLAMA_END)
    final.end()
    text = status_text(
        exchange, "SUCCESS", "completed", 'done: "ok"', progress_text(exchange, final), 1e9
    )
    doc = json.loads(text)
    assert text == json.dumps(doc, separators=(",", ":"))  # exactly what json would write
    assert doc == {
        "version": "1.0",
        "event_type": "task.status.update",
        "event_id": doc["event_id"],
        "algorithm_id": "ollama-openai",
        "task_id": "doc-1",
        "state": "SUCCESS",
        "stage": "completed",
        "message": 'done: "ok"',
        "extensions": {
            "method": "POST",
            "path": "/api/chat",
            "stream": True,
            "model": 'odd "model" \\ näme\n',
            "backend": 'gpu "1"',
            "chunks": 4,
            "ttft_ms": 500,
            "queued_ms": 250,
            "attempts": 1,
            "status": 200,
            "total_ms": 9,
            "load_ms": 1,
            "prompt_eval_count": 7,
            "prompt_eval_ms": 2,
            "eval_count": 4,
            "eval_ms": 3,
            "wait_ms": 250,
            "tokens": 4,
            "cancelled_by": "key \u2603",
        },
        "timestamp": 1_000_000_000,
    }
    assert len(doc["event_id"]) == 36


def test_a_queued_requests_document_has_nulls_where_nothing_is_known_yet() -> None:
    exchange = chat_exchange(task_id="doc-2", model=None, chunks=0)
    doc = json.loads(
        status_text(exchange, "PENDING", "queued", "waiting", progress_text(exchange, None), 5)
    )
    ext = doc["extensions"]
    assert (ext["model"], ext["backend"], ext["ttft_ms"], ext["queued_ms"]) == (None,) * 4
    assert (ext["status"], ext["tokens"], ext["stream"]) == (None, 0, False)
    assert "eval_count" not in ext and "wait_ms" not in ext


def test_a_record_gives_its_document_as_text_or_dict_whichever_it_was_made_from() -> None:
    from_dict = TaskRecord("t", "me", "SUCCESS", 1.0, 2.0, doc={"a": [1, "é"]})
    from_text = TaskRecord("t", "me", "SUCCESS", 1.0, 2.0, text='{"a":[1,"\\u00e9"]}')
    assert from_dict.text == from_text.text == '{"a":[1,"\\u00e9"]}'
    assert from_dict.doc == from_text.doc == {"a": [1, "é"]}


async def test_a_finished_requests_row_is_its_end_state_with_the_backends_figures(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    _fake, url = fake_ollama
    path = tmp_path / "tasks.db"
    client = await gateway_client(
        {
            "backends": [{"url": url, "name": "gpu1"}],
            "tasks": {"store": "sqlite", "sqlite_path": str(path)},
        }
    )
    resp = await client.post(
        "/api/chat",
        json={"model": MODEL, "messages": [], "stream": False},
        headers={"X-Task-Id": "end-1"},
    )
    assert resp.status == 200
    await resp.read()
    shown = await wait_for_state(client, "end-1", "SUCCESS")
    await settle(client)
    with sqlite3.connect(path) as db:
        state, raw = db.execute("SELECT state, doc FROM tasks WHERE task_id = 'end-1'").fetchone()
    stored = json.loads(raw)
    assert state == stored["state"] == "SUCCESS"
    assert stored == shown  # the API shows exactly the row
    ext = stored["extensions"]
    assert (ext["backend"], ext["status"], ext["chunks"]) == ("gpu1", 200, 1)
    assert (ext["prompt_eval_count"], ext["eval_count"], ext["load_ms"]) == (7, 4, 1)
    assert ext["tokens"] == 4


async def test_a_short_request_is_written_once_in_its_end_state(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}], "tasks": {"store": "memory"}})
    tracker = gateway_of(client).app[TRACKER]  # type: ignore[index]
    tracker.writer.linger_s = 2.0  # ample for the request to end before the batch is taken
    written: list[TaskRecord] = []
    put_many = tracker.store.put_many

    async def spy(records: list[TaskRecord]) -> None:
        written.extend(records)
        await put_many(records)

    tracker.store.put_many = spy  # type: ignore[method-assign]
    resp = await client.post(
        "/api/chat",
        json={"model": MODEL, "messages": [], "stream": False},
        headers={"X-Task-Id": "once-1"},
    )
    await resp.read()
    await settle(client)
    assert [(r.task_id, r.state) for r in written] == [("once-1", "SUCCESS")]
    assert written[0].doc["extensions"]["eval_count"] == 4


async def test_sqlite_writes_a_batch_of_any_size_but_never_over_another_keys_task(
    tmp_path: Path,
) -> None:
    store = SqliteStore(str(tmp_path / "tasks.db"))
    await store.open()
    try:
        now = time.time()

        def record(task_id: str, owner: str, n: int) -> TaskRecord:
            return TaskRecord(task_id, owner, "SUCCESS", now + n, now + 60, doc={"n": n})

        await store.put_many([record("taken", "other", -1)])
        batch = [record(f"t{n}", "me", n) for n in range(299)] + [record("taken", "me", 299)]
        await store.put_many(batch)  # 300 rows: statements of 256, 32, 8 and 4 rows
        docs = await store.recent("me", None, 1000)
        assert sorted(d["n"] for d in docs) == list(range(299))
        assert await store.get("taken") == ("other", {"n": -1})
        await store.put_many([record("t7", "me", 1000)])  # a task's later state replaces it
        assert await store.get("t7") == ("me", {"n": 1000})
    finally:
        await store.close()


def test_ollamas_final_line_is_read_alike_whether_compact_or_not() -> None:
    spaced = OLLAMA_END.replace(b":", b": ").replace(b",", b", ")
    without_load = OLLAMA_END.replace(b'"load_duration":1000000,', b"")
    openai = b'{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}'
    figures = {
        "load_ms": 1,
        "prompt_eval_ms": 2,
        "eval_ms": 3,
        "total_ms": 9,
        "prompt_eval_count": 7,
        "eval_count": 4,
    }
    assert parse_final(OLLAMA_END) == parse_final(spaced) == figures
    assert parse_final(without_load) == {k: v for k, v in figures.items() if k != "load_ms"}
    assert parse_final(openai) == {"prompt_eval_count": 5, "eval_count": 3}
    assert parse_final(b'{"content":"no figures"}') == {}


def test_a_final_line_without_some_figures_gives_those_it_has_or_the_tails_own() -> None:
    without = OLLAMA_END.replace(b'"load_duration":1000000,', b"").replace(
        b'"prompt_eval_duration":2000000,', b""
    )
    assert read_final(without) == (
        {"eval_ms": 3, "total_ms": 9, "prompt_eval_count": 7, "eval_count": 4},
        ',"eval_ms":3,"total_ms":9,"prompt_eval_count":7,"eval_count":4',
    )
    # A figure the final line lacks but the tail names before it: read from there.
    earlier = b'{"load_duration":5000000}\n' + without
    assert parse_final(earlier) == {"load_ms": 5, **parse_final(without)}
    assert list(parse_final(earlier)) == [
        "load_ms",
        "eval_ms",
        "total_ms",
        "prompt_eval_count",
        "eval_count",
    ]


def test_event_ids_are_unique_uuid_shaped_and_drawn_anew_in_a_forked_child() -> None:
    ids = {new_event_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in list(ids)[:10]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    before = new_event_id()
    new_event_id.reset()  # what a forked child does first
    assert new_event_id()[:24] != before[:24]


async def test_a_translated_answer_s_document_has_the_counts_the_translation_noted(
    gateway_client: Any, fake_ollama: Any
) -> None:
    """An OpenAI client's stream without ``include_usage`` carries no counts to read from
    its end; the document still has the backend's, as the translation counted them."""
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}], "tasks": {"store": "memory"}})
    for task_id, stream in (("oa-whole", False), ("oa-stream", True)):
        resp = await client.post(
            "/v1/chat/completions",
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "stream": stream,
            },
            headers={"X-Task-Id": task_id},
        )
        assert resp.status == 200
        await resp.read()
        ext = (await wait_for_state(client, task_id, "SUCCESS"))["extensions"]
        assert (ext["prompt_eval_count"], ext["eval_count"], ext["tokens"]) == (7, 4, 4)
        assert "load_ms" not in ext  # an OpenAI answer has no durations
