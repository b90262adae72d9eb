from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.jobs_backend import JobsFake
from tests.fakes.ollama_backend import FakeOllama
from tests.fakes.openai_backend import FakeOpenAI
from tests.redis_server import PrivateRedis, private_redis, stop_private_redis

pytest_plugins = ["ollamux.testing"]

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture(scope="session", autouse=True)
def _private_redis_lifetime() -> Iterator[None]:
    """Kill the session's private redis-server (if a test started one) at the end."""
    yield
    stop_private_redis()


@pytest.fixture
def redis_server() -> PrivateRedis:
    """The session's private redis-server (started on first use; skipped without one)."""
    return private_redis()


@pytest.fixture
def redis_url(redis_server: PrivateRedis) -> str:
    """``redis://127.0.0.1:<port>/0`` of the session's private redis-server."""
    return redis_server.url


@pytest.fixture
async def fake_ollama(aiohttp_server: Any) -> tuple[FakeOllama, str]:
    """A fake Ollama server on loopback and its base URL."""
    fake = FakeOllama()
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def fake_openai(aiohttp_server: Any) -> tuple[FakeOpenAI, str]:
    """A fake OpenAI-compatible server on loopback and its base URL."""
    fake = FakeOpenAI()
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def fake_jobs(aiohttp_server: Any) -> tuple[JobsFake, str]:
    """A fake Ollama for the jobs tests (answers can be held; counts requests) and its URL."""
    fake = JobsFake()
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def spawn_gateway(tmp_path: Any) -> Any:
    """Start real ``ollamux serve`` subprocesses: ``await spawn_gateway(config, *args)``."""
    from tests.fakes.gateway_process import GatewayProcess

    started: list[GatewayProcess] = []

    async def factory(config: dict[str, Any], *args: str) -> GatewayProcess:
        gp = GatewayProcess(tmp_path, config, *args)
        started.append(gp)
        await gp.start()
        return gp

    yield factory
    for gp in started:
        await gp.stop()
