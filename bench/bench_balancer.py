"""Routing cost: does the balancer slow the gateway down as the fleet grows?

Runs a tiny upstream and gateways (``ollamux serve``) as separate processes: one with 1
backend, one with N (default 100, all pointing at the same upstream, all serving the model,
none full), and a control with 1 backend again, whose gap to the first is the noise floor.
Non-streaming ``/api/generate`` requests go through each in turn, over several rounds in
rotating order. Besides wall-clock req/s it reports requests per CPU-second of each gateway
process (from /proc), which moves less with other load on the machine.

It also times ``choose()`` alone for growing fleets (linear in the number of backends,
with an early stop in the usual case) and the balancer's own time per request (selection
and release) inside a real gateway with 1 and N backends. The verdict compares that
difference with the gateway's CPU time per request: on a shared machine it is steadier
than the end-to-end difference.

    python bench/bench_balancer.py [--backends 100] [--seconds 2] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from ollamux.app import create_app
from ollamux.backend import Backend
from ollamux.config_loader import build_config
from ollamux.exchange import Exchange, Outcome
from ollamux.pipeline import GATEWAY
from ollamux.plugins.balancer.queue import slots_of
from ollamux.plugins.health import health_of
from ollamux.plugins.selection import choose

MODEL = "bench:1b"

UPSTREAM = """
import sys
from aiohttp import web
body = b'{"model":"bench:1b","response":"ok","done":true}'
tags = b'{"models":[{"name":"bench:1b","model":"bench:1b"}]}'
ps = b'{"models":[{"name":"bench:1b","model":"bench:1b"}]}'
async def gen(r):
    await r.read()
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_post("/api/generate", gen)
app.router.add_get("/api/tags", lambda r: web.Response(body=tags, content_type="application/json"))
app.router.add_get("/api/ps", lambda r: web.Response(body=ps, content_type="application/json"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def write_config(tmp: Path, n: int, upstream: str, port: int) -> Path:
    cfg = {
        "server": {"port": port, "log_level": "warning"},
        "backends": [
            {"name": f"gpu{i:03d}", "url": upstream, "max_concurrency": 1000} for i in range(n)
        ],
        "routing": {"health_interval_s": 3600, "retries": 0},
        "tasks": {"store": "memory"},
        "jobs": {"sqlite_path": str(tmp / f"jobs{port}.db")},
        "plugins": {"autoload": False},
    }
    path = tmp / f"gateway{port}.json.yaml"
    path.write_text(json.dumps(cfg))  # JSON is valid YAML
    return path


async def load(url: str, seconds: float, concurrency: int) -> tuple[int, float]:
    """(requests done, seconds taken) through ``url`` with ``concurrency`` clients."""
    body = json.dumps({"model": MODEL, "prompt": "hi", "stream": False}).encode()
    headers = {"Content-Type": "application/json"}
    done = 0
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"status {resp.status}")
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.monotonic() - started


async def measure(url: str, pid: int, seconds: float, concurrency: int) -> tuple[float, float]:
    """(wall-clock req/s, requests per gateway CPU-second)."""
    cpu0 = harness.cpu_seconds(pid)
    done, took = await load(url, seconds, concurrency)
    return done / took, done / max(harness.cpu_seconds(pid) - cpu0, 1e-9)


async def balancer_us_per_request(n: int, requests: int, concurrency: int) -> float:
    """Time spent choosing and releasing backends per request, in a real gateway with
    ``n`` backends, measured in-process around the methods doing it: the balancer's select
    (with the selection policy) and release, and what ``health`` learns from the outcome."""
    upstream = web.Application()
    upstream.router.add_post("/api/generate", _answer)
    upstream.router.add_get("/api/tags", _answer)
    upstream.router.add_get("/api/ps", _answer)
    async with TestServer(upstream) as up:
        url = str(up.make_url("")).rstrip("/")
        cfg = build_config(
            {
                "backends": [
                    {"name": f"gpu{i:03d}", "url": url, "max_concurrency": 1000} for i in range(n)
                ],
                "routing": {"health_interval_s": 3600, "retries": 0},
                "tasks": {"store": "memory"},
                "jobs": {"sqlite_path": str(Path(tempfile.gettempdir()) / "bench-jobs.db")},
                "plugins": {"autoload": False, "disable": ["jobs"]},
            }
        )
        app = create_app(cfg)
        spent = 0.0
        slots = slots_of(app[GATEWAY])
        health = health_of(app[GATEWAY])
        select, release, learn = slots.select, slots.release, health.learn

        async def timed_select(exchange: Exchange) -> Backend | None:
            nonlocal spent
            t = time.perf_counter()
            backend = await select(exchange)
            spent += time.perf_counter() - t
            return backend

        def timed_release(backend: Backend, outcome: Outcome) -> None:
            nonlocal spent
            t = time.perf_counter()
            release(backend, outcome)
            spent += time.perf_counter() - t

        def timed_learn(exchange: Exchange, backend: Backend, outcome: Outcome) -> bool:
            nonlocal spent
            t = time.perf_counter()
            changed = learn(exchange, backend, outcome)
            spent += time.perf_counter() - t
            return changed

        slots.select = timed_select  # type: ignore[method-assign]
        slots.release = timed_release  # type: ignore[method-assign]
        health.learn = timed_learn  # type: ignore[method-assign]
        async with TestServer(app) as gw, aiohttp.ClientSession() as session:
            target = str(gw.make_url("/api/generate"))
            body = json.dumps({"model": MODEL, "prompt": "hi", "stream": False}).encode()
            per_worker = requests // concurrency

            async def worker() -> None:
                for _ in range(per_worker):
                    async with session.post(target, data=body) as resp:
                        await resp.read()

            await worker()  # warm up
            spent = 0.0
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return spent / (per_worker * concurrency) * 1e6


async def _answer(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response(
        {"model": MODEL, "response": "ok", "done": True, "models": [{"name": MODEL}]}
    )


def selection_cost_us(n: int, worst: bool) -> float:
    """One ``choose()`` call over ``n`` backends. Worst case: the model is loaded nowhere
    and every backend is busy, so no early stop; else all have it loaded, a few are busy."""
    backends = [
        Backend(
            name=f"gpu{i:04d}",
            url="http://x",
            models={MODEL},
            loaded_models=set() if worst else {MODEL},
            in_flight=1 if worst or i < 16 else 0,
            max_concurrency=1000,
        )
        for i in range(n)
    ]
    now = time.monotonic()
    number = max(200, 20000 // n)
    total = timeit.timeit(lambda: choose(backends, MODEL, set(), True, now), number=number)
    return total / number * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()

    print("choose() alone, one call (worst case: full scan / typical: early stop):")
    for n in (1, 10, 100, 1000):
        worst, typical = selection_cost_us(n, True), selection_cost_us(n, False)
        print(f"  {n:5d} backends: {worst:8.1f} us / {typical:6.1f} us")

    procs: list[asyncio.subprocess.Process] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        try:
            up_port = harness.free_port()
            upstream = f"http://127.0.0.1:{up_port}"
            procs.append(
                await asyncio.create_subprocess_exec(sys.executable, "-c", UPSTREAM, str(up_port))
            )
            await harness.wait_http(upstream + "/api/tags")
            configs = [("1 backend", 1), ("1 backend, control", 1)]
            configs.append((f"{args.backends} backends", args.backends))
            gateways: dict[str, tuple[str, int]] = {}
            for label, n in configs:
                port = harness.free_port()
                cfg = write_config(tmp, n, upstream, port)
                env = {**os.environ, "OLLAMUX_CONFIG": str(cfg)}
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "ollamux", "serve", env=env
                )
                procs.append(proc)
                gateways[label] = (f"http://127.0.0.1:{port}", proc.pid)
            for url, _ in gateways.values():
                await harness.wait_http(url + "/ollamux/health")
                await load(url + "/api/generate", 0.5, args.concurrency)  # warm up
            wall: dict[str, list[float]] = {label: [] for label in gateways}
            per_cpu: dict[str, list[float]] = {label: [] for label in gateways}
            order = list(gateways.items())
            for i in range(args.rounds):
                for label, (url, pid) in order[i % 3 :] + order[: i % 3]:
                    rate, efficiency = await measure(
                        url + "/api/generate", pid, args.seconds, args.concurrency
                    )
                    wall[label].append(rate)
                    per_cpu[label].append(efficiency)
        finally:
            for p in procs:
                if p.returncode is None:
                    p.terminate()
            for p in procs:
                await p.wait()
    print(f"\nthrough the gateway, {args.concurrency} clients, {args.rounds} rounds:")
    base = configs[0][0]
    for label in wall:
        line = (
            f"  {label:20s}: {statistics.median(wall[label]):6.0f} req/s wall, "
            f"{statistics.median(per_cpu[label]):6.0f} req per gateway CPU-second (median)"
        )
        if label != base:
            cost = 1 - statistics.median(per_cpu[label]) / statistics.median(per_cpu[base])
            best = 1 - max(per_cpu[label]) / max(per_cpu[base])
            line += f"; vs 1 backend: {cost * 100:+.1f} % (median), {best * 100:+.1f} % (best)"
        print(line)
    print("  (the control runs the same config as the first: its gap is the noise floor)")
    # The end-to-end figures move by several % between runs on a shared machine. The
    # balancer's own time per request, measured directly, is the steadier verdict.
    gateway_us = 1e6 / statistics.median(per_cpu[base])
    own = {n: await balancer_us_per_request(n, 4000, args.concurrency) for n in (1, args.backends)}
    added = own[args.backends] - own[1]
    print("\nbalancer's own time per request (select + release), in-process:")
    for n, us in own.items():
        print(f"  {n:4d} backend(s): {us:6.1f} us")
    share = added / gateway_us * 100
    verdict = "PASS" if share <= 5 else "FAIL"
    print(
        f"  {verdict}: {args.backends} backends add {added:.1f} us to a request that costs the "
        f"gateway {gateway_us:.0f} us of CPU: {share:.1f} % (limit 5 %)"
    )


if __name__ == "__main__":
    asyncio.run(main())
