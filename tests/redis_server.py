"""A private ``redis-server`` for the test session: our own process on a free loopback port.

The tests never touch a Redis they did not start. The server is started the first time a
test needs it (``redis_url()`` or the ``redis_server`` fixture), runs without persistence
in a temporary directory, and is killed when the session ends (``stop_private_redis``,
called by a session fixture in tests/conftest.py). Without a ``redis-server`` binary
(Debian package ``redis-server``) the tests that need one are skipped with ``NO_REDIS``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import redis

NO_REDIS = "needs the redis-server binary (Debian: apt-get install redis-server)"


def find_redis_server() -> str | None:
    """The ``redis-server`` binary: ``$REDIS_SERVER``, else the one on ``PATH``."""
    given = os.environ.get("REDIS_SERVER")
    if given:
        return given if os.access(given, os.X_OK) else None
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """One ``redis-server`` process of ours: started, answering PING, then killed."""

    def __init__(self, binary: str, *, port: int = 0, persist: bool = False) -> None:
        """``port`` 0: a free one; ``persist``: an append-only file fsynced at every write
        in its directory, so that a restart on the same port finds the data again."""
        self.binary = binary
        self.port = port
        self.fixed_port = port != 0
        self.persist = persist
        self.dir = tempfile.mkdtemp(prefix="ollamux-test-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, within_s: float = 15.0) -> None:
        # A free port may be taken between choosing it and binding it: try a few.
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        for _ in range(5):
            if not self.fixed_port:
                self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    *(persistence if self.persist else ["--appendonly", "no"]),
                    "--dir",
                    self.dir,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._answers(within_s):
                return
            self.stop()
        raise RuntimeError(f"{self.binary} did not start (port {self.port})")

    def _answers(self, within_s: float) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + within_s
        try:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.ConnectionError:
                    pass
                time.sleep(0.02)
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


_server: PrivateRedis | None = None


def private_redis() -> PrivateRedis:
    """The session's private server, started on first use (the test is skipped without a
    ``redis-server`` binary)."""
    global _server
    if _server is None:
        binary = find_redis_server()
        if binary is None:
            pytest.skip(NO_REDIS)
        server = PrivateRedis(binary)
        server.start()
        _server = server
    return _server


def redis_url() -> str:
    """The URL of the session's private Redis (database 0)."""
    return private_redis().url


def running_url() -> str | None:
    """The private server's URL if it was started, else ``None`` (nothing to clean)."""
    return _server.url if _server is not None else None


def stop_private_redis() -> None:
    global _server
    if _server is not None:
        _server.remove()
        _server = None
