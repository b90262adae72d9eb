"""With ``--workers N`` and keys, a job may re-enter through any worker: they all share the
internal token, so every job runs as its key."""

from __future__ import annotations

import signal
from typing import Any

import aiohttp
import pytest

from tests.auth_support import ALICE, bearer, keyed


@pytest.mark.slow
async def test_jobs_complete_whichever_worker_their_request_lands_on(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    config = keyed(url) | {"jobs": {"workers": 2}}
    config["backends"][0]["max_concurrency"] = 4
    gw = await spawn_gateway(config, "--workers", "2")
    job = {"path": "/api/generate", "body": {"model": "llama3.2:latest", "prompt": "x"}}
    async with aiohttp.ClientSession(headers=bearer(ALICE)) as client:
        for _ in range(8):
            async with client.post(gw.url + "/jobs", json=job) as resp:
                assert resp.status == 202

        async def all_done() -> dict[str, Any] | None:
            async with client.get(gw.url + "/jobs") as resp:
                jobs = (await resp.json())["jobs"]
            finished = [j for j in jobs if j["status"] in ("completed", "failed")]
            return jobs if len(finished) == 8 else None

        await gw.wait_for(all_done, "eight jobs to finish", deadline_s=60)
        jobs = await all_done()
    assert jobs is not None
    assert [j["status"] for j in jobs] == ["completed"] * 8, [j.get("error") for j in jobs]
    gw.signal(signal.SIGTERM)
    assert await gw.wait_exit() == 0
