"""Benchmark of async jobs: submit throughput and drain rate against fast fake backends.

Runs a real gateway (``python -m ollamux serve``) and fake Ollama backends in their own
processes, then measures on loopback:

1. live capacity: plain ``/api/generate`` requests through the gateway, as many at once
   as the backends accept (the fakes answer after ``--delay`` seconds);
2. submit throughput: ``--jobs`` jobs posted to ``/jobs`` by ``--clients`` concurrent
   clients (jobs/s accepted, 202 each);
3. drain rate: jobs completed per second while the queue was never empty.

Targets (issue 6): ≥ 1000 jobs/s accepted; drain ≥ 90 % of live capacity.

    python bench/bench_jobs.py [--jobs 10000] [--store sqlite|redis] [--delay 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

MODEL = "bench:latest"


# -- the fake backend (run in its own process with --fake-backend) -----------------------------


def run_fake_backend(port: int, delay_s: float, slots: int) -> None:
    """Answers after ``delay_s``, at most ``slots`` at once (others wait, like Ollama's
    NUM_PARALLEL), so its capacity is ``slots / delay_s`` however hard it is pushed."""
    busy = asyncio.Semaphore(slots)

    async def tags(_request: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": MODEL, "model": MODEL}]})

    async def generate(request: web.Request) -> web.Response:
        body = await request.json()
        async with busy:
            await asyncio.sleep(delay_s)
        return web.json_response(
            {"model": body["model"], "response": "ok", "done": True, "done_reason": "stop"}
        )

    app = web.Application()
    app.router.add_get("/api/tags", tags)
    app.router.add_post("/api/generate", generate)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- processes -------------------------------------------------------------------------------------


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


# -- measurements ----------------------------------------------------------------------------------


async def measure_live(base: str, n: int, concurrency: int) -> float:
    body = {"model": MODEL, "prompt": "hi", "stream": False}
    remaining = iter(range(n))

    async def client(http: aiohttp.ClientSession) -> None:
        for _ in remaining:
            async with http.post(base + "/api/generate", json=body) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


async def completed_count(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(base + "/jobs?status=completed&page_size=1") as resp:
        total: int = (await resp.json())["total"]
        return total


async def measure_jobs(base: str, n: int, clients: int) -> dict[str, float]:
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "hi"}}
    remaining = iter(range(n))
    refused = 0

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal refused
        for _ in remaining:
            async with http.post(base + "/jobs", json=job) as resp:
                if resp.status != 202:
                    refused += 1
                await resp.read()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        submitted_at = time.perf_counter()
        done_at_submit = await completed_count(http, base)
        done = done_at_submit
        while done < n - refused:
            await asyncio.sleep(0.2)
            done = await completed_count(http, base)
        finished_at = time.perf_counter()
    submit_s = submitted_at - started
    return {
        "jobs": n,
        "refused": refused,
        "submit_s": submit_s,
        "submit_per_s": (n - refused) / submit_s,
        "drained_after_submit": done - done_at_submit,
        "drain_s": finished_at - submitted_at,
        "drain_per_s": (done - done_at_submit) / (finished_at - submitted_at),
        "total_s": finished_at - started,
    }


# -- main ------------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ollamux-bench-jobs-"))
    procs: list[subprocess.Popen[bytes]] = []
    prefix = f"bench-jobs-{uuid.uuid4().hex}:"
    try:
        ports = [harness.free_port() for _ in range(args.backends)]
        for i, port in enumerate(ports):
            procs.append(
                spawn(
                    [
                        sys.executable,
                        __file__,
                        "--fake-backend",
                        str(port),
                        "--delay",
                        str(args.delay),
                        "--concurrency",
                        str(args.concurrency),
                    ],
                    tmp / f"fake{i}.log",
                )
            )
        gateway_port = harness.free_port()
        slots = args.backends * args.concurrency
        # Twice as many requests in flight as the backends serve at once keeps them saturated
        # in both runs (the extra ones wait at the backends).
        pressure = 2 * slots
        jobs_config: dict[str, Any] = {
            "store": args.store,
            "workers": args.workers or pressure,
            "sqlite_path": str(tmp / "jobs.db"),
            "redis_prefix": prefix,
            "max_queued": args.jobs * 2,
        }
        config = {
            "server": {"port": gateway_port, "log_level": "warning"},
            "backends": [
                {
                    "url": f"http://127.0.0.1:{p}",
                    "name": f"fake{i}",
                    "max_concurrency": args.concurrency,
                }
                for i, p in enumerate(ports)
            ],
            "tasks": {"store": "memory"},
            "jobs": jobs_config,
            "plugins": {"autoload": False},
        }
        (tmp / "ollamux.yaml").write_text(yaml.safe_dump(config))
        for port in ports:
            await harness.wait_http(f"http://127.0.0.1:{port}/api/tags", within_s=30)
        procs.append(
            spawn(
                [sys.executable, "-m", "ollamux", "serve", "--config", str(tmp / "ollamux.yaml")],
                tmp / "gateway.log",
            )
        )
        gateway = procs[-1].pid
        base = f"http://127.0.0.1:{gateway_port}"
        await harness.wait_http(base + "/jobs?page_size=1", within_s=30)

        await measure_live(base, min(500, args.live), pressure)  # warm up
        cpu0 = harness.cpu_seconds(gateway)
        live = await measure_live(base, args.live, pressure)
        cpu1 = harness.cpu_seconds(gateway)
        jobs = await measure_jobs(base, args.jobs, args.clients)
        cpu2 = harness.cpu_seconds(gateway)
        return {
            "store": args.store,
            "backends": args.backends,
            "concurrency_per_backend": args.concurrency,
            "backend_delay_s": args.delay,
            "ideal_capacity_per_s": slots / args.delay,
            "live_per_s": live,
            **jobs,
            "drain_vs_live": jobs["drain_per_s"] / live,
            # Gateway CPU per request: the load-independent cost (the machine may be shared).
            "gateway_cpu_ms_per_live_request": 1000 * (cpu1 - cpu0) / args.live,
            "gateway_cpu_ms_per_job": 1000 * (cpu2 - cpu1) / args.jobs,
            "submit_target_met": jobs["submit_per_s"] >= 1000,
            "drain_target_met": jobs["drain_per_s"] >= 0.9 * live,
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        if args.store == "redis":
            import redis.asyncio as aioredis

            r = aioredis.from_url(args.redis_url)
            async for key in r.scan_iter(match=prefix + "*", count=1000):
                await r.delete(key)
            await r.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--live", type=int, default=3000, help="live requests for the capacity run")
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--backends", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8, help="max_concurrency per backend")
    parser.add_argument("--delay", type=float, default=0.05, help="backend answer time (s)")
    parser.add_argument(
        "--workers", type=int, default=0, help="jobs.workers (0: twice the backends' slots)"
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent submitting clients")
    parser.add_argument("--fake-backend", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_backend:
        run_fake_backend(args.fake_backend, args.delay, args.concurrency)
        return
    result = asyncio.run(bench(args))
    print(json.dumps(result, indent=2))
    print(
        f"submit: {result['submit_per_s']:.0f} jobs/s (target ≥ 1000: "
        f"{'met' if result['submit_target_met'] else 'NOT met'}); "
        f"drain: {result['drain_per_s']:.0f} jobs/s = {result['drain_vs_live']:.0%} of live "
        f"{result['live_per_s']:.0f} req/s (target ≥ 90 %: "
        f"{'met' if result['drain_target_met'] else 'NOT met'})",
        file=sys.stderr if os.environ.get("BENCH_QUIET") else sys.stdout,
    )


if __name__ == "__main__":
    main()
