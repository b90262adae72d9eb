from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.jobs_backend import JobsFake
from tests.fakes.ollama_backend import FakeOllama
from tests.fakes.openai_backend import FakeOpenAI

pytest_plugins = ["ollamux.testing"]

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


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
