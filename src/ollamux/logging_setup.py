"""Log configuration: plain text or one JSON object per line (``server.log_format``)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import TextIO

from .redact import REDACTOR

# The text lines ``setup_logging`` writes.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            data.update(extra)
        if record.exc_text:  # already formatted (and redacted) by ``redact``
            data["exc"] = record.exc_text
        elif record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """``%(asctime)s`` in UTC, its date and time formatted once per second (``strftime``
    was a third of the cost of formatting an access-log line)."""

    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return time.strftime(datefmt, time.gmtime(record.created))
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.created))
            self._second = second
        return f"{self._text},{int(record.msecs):03d}"

    def stamp(self, now: float) -> str:
        """``formatTime`` of a record created at ``now`` (``time.time()``)."""
        second = int(now)
        if second != self._second:
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
            self._second = second
        return f"{self._text},{int((now - second) * 1000):03d}"


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that, on the event loop's thread, writes the lines of one loop
    iteration with one ``write``, at the end of that iteration.

    Under load many requests end in the same iteration, each with its access line: one
    system call instead of one per line (stderr flushes every line). Off the loop (start,
    threads, shutdown) a line is written at once. ``flush`` (called by ``logging.shutdown``
    at exit) writes whatever waits, so a line is delayed by at most one iteration and lost
    only if the process is killed within it.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        # The loop a flush is scheduled on: a loop closed before running it (a stopped
        # server, a test's loop) must not leave the lines waiting for good.
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            loop = asyncio.get_running_loop()  # the lines of one iteration go out together
        except RuntimeError:
            super().emit(record)
            return
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        if self._flush_on is not loop:
            self._flush_on = loop
            loop.call_soon(self.flush)
        self._waiting.append(line)  # under the handler's lock, held by ``handle``

    def info_line(self, logger: str, message: str) -> bool:
        """Queue the INFO line of ``logger`` saying ``message``, built as ``handle`` would
        build it (redacted, in ``TEXT_FORMAT``), when this handler is as ``setup_logging``
        made it (that formatter, only the redactor as filter) and the loop is running;
        else nothing is done and False says so (the caller takes the usual way).

        The access line of every request comes this way: no record, no filter chain, no
        ``%`` formatting."""
        formatter = self.formatter
        if (
            type(formatter) is not TextFormatter
            or formatter._fmt != TEXT_FORMAT
            or formatter.datefmt is not None
            or self.filters != _REDACTOR_ONLY
        ):
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        line = f"{formatter.stamp(time.time())} INFO {logger}: {REDACTOR.redact(message)}\n"
        with self.lock:  # type: ignore[union-attr]  # always made by ``Handler.__init__``
            if self._flush_on is not loop:
                self._flush_on = loop
                loop.call_soon(self.flush)
            self._waiting.append(line)
        return True

    def flush(self) -> None:
        self.acquire()
        try:
            self._flush_on = None
            if self._waiting:
                text, self._waiting = "".join(self._waiting), []
                self.stream.write(text)
            super().flush()
        except Exception:
            # A closed or broken stream. Raising here would reach the loop's exception
            # handler, which logs, which schedules this again: the lines are dropped.
            pass
        finally:
            self.release()


_REDACTOR_ONLY: list[object] = [REDACTOR]


def sole_handler(logger: logging.Logger) -> BatchingStreamHandler | None:
    """The handler that alone would write ``logger``'s INFO lines, if it is the one
    ``setup_logging`` installed and nothing else (handler, filter, level) is on the way:
    then a record may be handed to it directly (``access_log``), skipping the logger
    machinery that would reach the same result."""
    node: logging.Logger | None = logger
    while node is not None and node is not logging.root:
        if node.handlers or node.filters or node.disabled or not node.propagate:
            return None
        node = node.parent
    handlers = logging.root.handlers
    if len(handlers) != 1 or logging.root.filters:
        return None
    handler = handlers[0]
    if type(handler) is not BatchingStreamHandler or handler.level > logging.INFO:
        return None
    return handler


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = BatchingStreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    handler.addFilter(REDACTOR)  # every logger's lines, not only aiohttp's
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
