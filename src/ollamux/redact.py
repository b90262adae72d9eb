"""No credential in any log line, whatever a client sends.

aiohttp's server logs a malformed request at ERROR with the parser's exception, and that
exception quotes the raw header line: ``Authorization: Bearer <key>`` would be written to
the log as sent. ``RedactingFilter`` rewrites such records before any handler sees them:
the values of credential headers (``Authorization``, ``X-API-Key``, ``api-key``,
``Cookie``), anything after ``Bearer`` / ``Basic``, and the plain keys the config holds are
replaced by ``***``, in the message and in the exception text (the formatted traceback,
``exc_text``, which formatters print instead of formatting the exception again). It sits on aiohttp's loggers (``install``) and, in a served process, on the root
handler too (``logging_setup``), so ollamux's own loggers are covered as well.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit

from .config import SECRET_KEYS, Config

MASK = "***"
# The loggers aiohttp writes to; filters on a logger only see its own records.
AIOHTTP_LOGGERS = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
)
_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|api-key|cookie|set-cookie|x-ollamux-internal)"
    r"(\s*[:=]\s*|\s+)([^\r\n'\"\\]+)"
)
_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s'\"\\]+")
# The password of ``scheme://user:password@host`` (backend, Redis URLs) in any text.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@'\"]*:)[^@/\s'\"]+@")
_MIN_SECRET = 8  # shorter values would mask ordinary words


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's message and exception text (never drops one)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._secret_re: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add_secrets(self, values: set[str]) -> None:
        with self._lock:
            new = {v for v in values if len(v) >= _MIN_SECRET} - self._secrets
            if not new:
                return
            self._secrets |= new
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._secret_re = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        # A line without a word one of the two patterns needs (case-folded), as nearly
        # every line is, skips those regular expressions (a case-insensitive scan costs
        # several times more than ``casefold()`` and these tests; the words are spelled
        # out: ``any()`` over a generator cost more than the tests themselves).
        lowered = text.casefold()
        if (
            "authorization" in lowered
            or "api-key" in lowered
            or "cookie" in lowered
            or "x-ollamux-internal" in lowered
        ):
            text = _HEADER.sub(_mask_value, text)
        if "bearer" in lowered or "basic" in lowered:
            text = _SCHEME.sub(_mask_value, text)
        if "@" in text:
            text = mask_url_passwords(text)
        if self._secret_re is not None:
            text = self._secret_re.sub(MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_ollamux_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler's own error
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters print ``exc_text`` when it is set instead of formatting
            # ``exc_info`` again; ``exc_info`` stays for whoever inspects the record.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(text)
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        record._ollamux_redacted = True
        return True


REDACTOR = RedactingFilter()


def _mask_value(m: re.Match[str]) -> str:
    """``Authorization: <value>`` -> ``Authorization: ***`` (a match of ``_HEADER`` or
    ``_SCHEME``)."""
    return f"{m.group(1)}{m.group(2)}{MASK}"


def mask_url_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text) if "@" in text else text


def install(config: Config | None = None) -> None:
    """Put the filter on aiohttp's loggers and on the root logger's handlers (once), and
    learn the config's plain secrets."""
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if REDACTOR not in logger.filters:
            logger.addFilter(REDACTOR)
    for handler in logging.getLogger().handlers:
        if REDACTOR not in handler.filters:
            handler.addFilter(REDACTOR)
    if config is not None:
        REDACTOR.add_secrets(secrets_of(config))


def _plain_secret(value: str) -> bool:
    return len(value) >= 4 and not value.startswith("sha256:")


def secrets_of(config: Config) -> set[str]:
    """The plain secrets a config holds, in any section: values of the keys ``check``
    masks (client and admin keys, backend api keys, ...) and passwords in backend URLs."""
    found: set[str] = set()

    def walk(value: Any, key: str | None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key in SECRET_KEYS and _plain_secret(value):
            found.add(value)

    plain = dataclasses.asdict(config)
    plain.update(plain.pop("sections"))
    walk(plain, None)
    for b in config.backends:
        try:
            password = urlsplit(b.url).password
        except ValueError:
            password = None
        if password:
            found.add(password)
    return found
