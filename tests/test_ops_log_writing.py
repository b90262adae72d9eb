"""How a served process writes its log: the lines of one event-loop iteration in one write,
and access lines handed straight to that handler when nothing else listens."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ollamux import access_log
from ollamux.exchange import Exchange, Principal, TaskState
from ollamux.logging_setup import (
    TEXT_FORMAT,
    BatchingStreamHandler,
    JsonFormatter,
    TextFormatter,
    sole_handler,
)
from ollamux.redact import REDACTOR
from tests.exchange_support import chat_exchange

FIELDS: dict[str, Any] = {
    "remote": "127.0.0.1",
    "method": "POST",
    "path": "/api/chat",
    "status": 200,
    "outcome": "SUCCESS",
    "task_id": "t-1",
    "key": "alice",
    "model": "llama3.2:latest",
    "backend": "gpu1",
    "attempts": 1,
    "duration_ms": 3,
    "ttft_ms": None,
    "error": None,
}


class CountingStream(io.StringIO):
    """A stream that remembers each ``write`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def root_handler() -> BatchingStreamHandler:
    """A ``BatchingStreamHandler`` on a counting stream, as ``setup_logging`` makes it,
    the root logger's only handler for the test's body (``root_only``)."""
    handler = BatchingStreamHandler(CountingStream())
    handler.setFormatter(TextFormatter(TEXT_FORMAT))
    handler.addFilter(REDACTOR)
    return handler


@contextmanager
def root_only(handler: logging.Handler) -> Iterator[None]:
    """``handler`` as the root logger's only one (pytest's own capture handlers are put
    back afterwards: they are added around each test phase)."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def written(handler: BatchingStreamHandler) -> list[str]:
    stream = handler.stream
    assert isinstance(stream, CountingStream)
    return stream.writes


async def test_lines_of_one_loop_iteration_go_out_in_one_write_at_its_end(
    root_handler: BatchingStreamHandler,
) -> None:
    with root_only(root_handler):
        log = logging.getLogger("ollamux.test")
        for n in range(3):
            log.info("line %d", n)
        assert written(root_handler) == []
        await asyncio.sleep(0)  # one loop turn: the flush scheduled by the first line runs
        (text,) = written(root_handler)
        assert [line.rsplit(": ", 1)[1] for line in text.splitlines()] == [
            "line 0",
            "line 1",
            "line 2",
        ]


def test_a_line_logged_off_the_event_loop_is_written_at_once(
    root_handler: BatchingStreamHandler,
) -> None:
    with root_only(root_handler):
        logging.getLogger("ollamux.test").info("starting")
        (text,) = written(root_handler)
        assert text.endswith("ollamux.test: starting\n")


async def test_flush_writes_the_lines_still_waiting(root_handler: BatchingStreamHandler) -> None:
    with root_only(root_handler):
        logging.getLogger("ollamux.test").info("last words")
        root_handler.flush()  # what ``logging.shutdown`` does at exit
        assert "".join(written(root_handler)).endswith("last words\n")


def test_lines_left_by_a_loop_closed_before_its_flush_go_out_with_the_next_loop(
    root_handler: BatchingStreamHandler,
) -> None:
    with root_only(root_handler):
        log = logging.getLogger("ollamux.test")

        async def log_as_the_loop_stops(text: str) -> None:
            asyncio.get_running_loop().stop()  # ends after this iteration: no flush ran
            log.info(text)

        loop = asyncio.new_event_loop()
        task = loop.create_task(log_as_the_loop_stops("first"))
        loop.run_forever()
        loop.close()
        assert task.done()
        assert written(root_handler) == []
        asyncio.run(log_as_the_loop_stops("second"))
        assert [w.rsplit(": ", 1)[1] for w in "".join(written(root_handler)).splitlines()] == [
            "first",
            "second",
        ]


def test_access_lines_go_straight_to_the_only_handler(
    root_handler: BatchingStreamHandler,
) -> None:
    with root_only(root_handler):
        assert sole_handler(access_log.log) is root_handler


def test_another_handler_on_the_way_takes_the_usual_path(
    root_handler: BatchingStreamHandler,
) -> None:
    with root_only(root_handler):
        other = logging.Handler()
        logging.getLogger("ollamux").addHandler(other)
        try:
            assert sole_handler(access_log.log) is None
        finally:
            logging.getLogger("ollamux").removeHandler(other)
        logging.getLogger().addHandler(other)
        assert sole_handler(access_log.log) is None


@pytest.mark.parametrize("json_format", [False, True])
def test_the_direct_path_writes_what_the_usual_path_writes(
    root_handler: BatchingStreamHandler, json_format: bool
) -> None:
    with root_only(root_handler):
        if json_format:
            root_handler.setFormatter(JsonFormatter())
        access_log._write(FIELDS, json_format)  # alone: handed straight to the handler
        listener = logging.NullHandler()  # someone else listens: the logger's own way
        logging.getLogger("ollamux").addHandler(listener)
        try:
            assert sole_handler(access_log.log) is None
            access_log._write(FIELDS, json_format)
        finally:
            logging.getLogger("ollamux").removeHandler(listener)
        direct, usual = written(root_handler)
        if json_format:
            a, b = json.loads(direct), json.loads(usual)
            assert a.pop("ts") <= b.pop("ts")
            assert a == b
        else:  # the same line after the timestamp
            assert direct.split(" ", 2)[2] == usual.split(" ", 2)[2]
            assert direct.split(" ", 2)[2].startswith(
                'INFO ollamux.access: 127.0.0.1 "POST /api/chat"'
            )


def test_the_direct_path_still_masks_credentials(root_handler: BatchingStreamHandler) -> None:
    with root_only(root_handler):
        access_log._write(
            {**FIELDS, "error": "backend said: Authorization: Bearer sk-live-1234"}, False
        )
        (line,) = written(root_handler)
        assert "sk-live-1234" not in line
        assert "Bearer ***" in line or "Authorization: ***" in line


class _Sink:
    remote = "10.0.0.7"


class _Backend:
    def __init__(self, name: str) -> None:
        self.name = name


def _exchange(**fields: Any) -> Exchange:
    """An ended exchange of ``POST /api/chat`` with ``fields`` set on it."""
    exchange = chat_exchange(_Sink())
    exchange.finished_at = exchange.started_at + 0.0123
    for name, value in fields.items():
        setattr(exchange, name, value)
    return exchange


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {
            "status": 200,
            "outcome": TaskState.SUCCESS,
            "task_id": "t-1",
            "principal": Principal(name="alice"),
            "model": "llama3.2:latest",
            "backend": _Backend("gpu1"),
            "attempts": 1,
            "bytes_out": 312,
            "usage": {"prompt_tokens": 7, "completion_tokens": 4},
        },
        {"usage": {"prompt_eval_count": 7, "eval_count": 4}},
        {"usage": {"prompt_tokens": 7}},
        {"model": 'odd "model" name', "backend": _Backend(""), "principal": Principal(name="")},
        {"status": 502, "outcome": TaskState.FAILED, "error": 'backend said "no" twice'},
    ],
    ids=["bare", "full", "ollama-counts", "prompt-only", "quoted", "failed"],
)
def test_an_exchange_line_is_the_text_line_of_its_fields(fields: dict[str, Any]) -> None:
    exchange = _exchange(**fields)
    exchange.first_chunk_at = exchange.started_at + 0.004 if fields else None
    assert access_log.exchange_line(exchange) == access_log.text_line(
        access_log.exchange_fields(exchange)
    )


async def test_an_access_line_on_the_loop_is_the_formatted_redacted_record(
    root_handler: BatchingStreamHandler,
) -> None:
    message = 'x "POST /api/chat" 200 error="Authorization: Bearer sk-live-1234"'
    record = logging.LogRecord("ollamux.access", logging.INFO, __file__, 0, message, (), None)
    REDACTOR.filter(record)
    expected = root_handler.format(record).split(" ", 2)[2]
    assert root_handler.info_line("ollamux.access", message)
    root_handler.flush()
    (line,) = written(root_handler)
    assert line.split(" ", 2)[2] == expected + "\n"
    assert "sk-live-1234" not in line


@pytest.mark.parametrize("change", ["formatter", "date format", "filter"])
async def test_a_handler_set_up_otherwise_declines_the_direct_access_line(
    root_handler: BatchingStreamHandler, change: str
) -> None:
    if change == "formatter":
        root_handler.setFormatter(logging.Formatter("%(message)s"))
    elif change == "date format":
        root_handler.setFormatter(TextFormatter(TEXT_FORMAT, datefmt="%H:%M"))
    else:
        root_handler.addFilter(logging.Filter("ollamux"))
    assert not root_handler.info_line("ollamux.access", '127.0.0.1 "GET /" 200')
    root_handler.flush()
    assert written(root_handler) == []


def test_off_the_loop_the_direct_access_line_is_declined(
    root_handler: BatchingStreamHandler,
) -> None:
    assert not root_handler.info_line("ollamux.access", '127.0.0.1 "GET /" 200')
