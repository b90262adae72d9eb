"""The cost of watching and keeping a stream: gateway CPU per chunk for paced streams that
nobody watches, that keep their output (``X-Ollamux-Keep: true``), and that are each
watched by a client of ``GET /tasks/{id}/events``.

One ``ollamux serve`` (tasks in memory, or Redis with ``--store redis``) in front of the
harness's fake backend; streams of ``--chunks`` chunks paced ``--chunk-delay`` s apart, run
``--concurrency`` at a time for ``--duration`` s per case, cases interleaved over
``--repetitions`` rounds; the report gives the median CPU microseconds per chunk of each
case and the extra cost over "plain".

    python bench/bench_watch.py
    python bench/bench_watch.py --store redis
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench import harness

CASES = ("plain", "keep", "watched")


async def _load(url: str, case: str, args: argparse.Namespace, pid: int) -> tuple[int, float]:
    """Chunks delivered and gateway CPU seconds during one window."""
    body = harness.ollama_chat_body(stream=True)
    counting = False
    chunks = 0
    stop = False

    async def watch(session: aiohttp.ClientSession, task_id: str) -> None:
        async with session.get(f"{url}/tasks/{task_id}/events") as resp:
            async for _line in resp.content:
                pass

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal chunks
        while not stop:
            task_id = uuid.uuid4().hex
            headers = {"Content-Type": "application/json", "X-Task-Id": task_id}
            if case == "keep":
                headers["X-Ollamux-Keep"] = "true"
            watcher = None
            async with session.post(
                f"{url}/api/chat?chunk_delay={args.chunk_delay}", data=body, headers=headers
            ) as resp:
                if case == "watched":
                    watcher = asyncio.create_task(watch(session, task_id))
                async for data in resp.content.iter_any():
                    if counting:
                        chunks += data.count(b"\n")
            if watcher is not None:
                await watcher

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(args.concurrency)]
        await asyncio.sleep(args.warmup)
        cpu0 = harness.cpu_seconds(pid)
        counting = True
        await asyncio.sleep(args.duration)
        counting = False
        cpu = harness.cpu_seconds(pid) - cpu0
        stop = True
        await asyncio.gather(*workers, return_exceptions=True)
    return chunks, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", default="memory", choices=("memory", "redis"))
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--chunks", type=int, default=200)
    p.add_argument("--chunk-delay", type=float, default=0.005)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    tasks: dict[str, Any] = {"store": args.store}
    if args.store == "redis":
        tasks.update(redis_url=args.redis_url, redis_prefix=f"bench-{uuid.uuid4().hex[:8]}:")
    with harness.Fleet() as fleet:
        backend = fleet.fake_backend(chunks=args.chunks)
        gw = fleet.ollamux(
            {"backends": [{"url": backend.url, "max_concurrency": 4096}], "tasks": tasks}
        )
        per_chunk: dict[str, list[float]] = {c: [] for c in CASES}
        for _ in range(args.repetitions):
            for case in CASES:
                chunks, cpu = asyncio.run(_load(gw.url, case, args, gw.pid))
                per_chunk[case].append(cpu / chunks * 1e6 if chunks else float("nan"))
                time.sleep(0.2)
    medians = {c: harness.median(v) for c, v in per_chunk.items()}
    print(f"gateway CPU per chunk (median of {args.repetitions}), store {args.store}:")
    for case in CASES:
        extra = medians[case] - medians["plain"]
        print(f"  {case:8s} {medians[case]:7.1f} us/chunk  ({extra:+.1f} us over plain)")
    if args.json:
        Path(args.json).write_text(json.dumps({"per_chunk_us": per_chunk, "median": medians}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
