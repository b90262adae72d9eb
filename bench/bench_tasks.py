"""The cost of task tracking: req/s through ollamux with tasks off, and on with each store.

Every target is its own ``ollamux serve`` process in front of the same fake backend; the
load generator runs in a process of its own. Cases are interleaved over ``--repetitions``
rounds and compared with "tasks off" (the ``tasks`` plugin disabled) round by round; the
report gives the median of those per-round ratios. Two ratios: req/s, and CPU capacity
(tasks-off CPU per request / tasks-on CPU per request: the req/s ratio a CPU-bound gateway
would show, and much less sensitive to other load on a shared machine). The issue's target:
with tasks on, SQLite and Redis each keep >= 85 % of the req/s of tasks off.

    python bench/bench_tasks.py                 # ~1-2 minutes
    python bench/bench_tasks.py --long          # longer windows, more rounds
    python bench/bench_tasks.py --json out.json

Redis: ``--redis-url`` (default the local server); the benchmark writes under a prefix of
its own and deletes those keys afterwards.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

TARGET_RATIO = 0.85
MODES = ("json", "stream")


def _parser() -> argparse.ArgumentParser:
    p = harness.load_parser(__doc__.split("\n\n")[0], repetitions=4, chunks=20)
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--stores", default="memory,sqlite,redis", help="stores to measure")
    return p


def _configs(args: argparse.Namespace, tmp: Path, prefix: str) -> dict[str, dict[str, Any]]:
    stores = {
        "memory": {"store": "memory"},
        "sqlite": {"store": "sqlite", "sqlite_path": str(tmp / "tasks.db")},
        "redis": {"store": "redis", "redis_url": args.redis_url, "redis_prefix": prefix},
    }
    configs: dict[str, dict[str, Any]] = {"off": {"plugins": {"disable": ["tasks"]}}}
    for name in args.stores.split(","):
        configs[name] = {"tasks": stores[name]}
    return configs


def run(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}:ts:ollama:"
    with tempfile.TemporaryDirectory() as tmp_dir, harness.Fleet() as fleet:
        backend = fleet.fake_backend(chunks=args.chunks)
        gateways = {
            name: fleet.ollamux(
                {"backends": [{"url": backend.url, "max_concurrency": 4096}], **cfg}, name=name
            )
            for name, cfg in _configs(args, Path(tmp_dir), prefix).items()
        }

        def case(name: str, mode: str) -> Callable[[], dict[str, float]]:
            gw = gateways[name]
            stream = mode == "stream"

            def measure() -> dict[str, float]:
                r = harness.run_load(
                    gw.url + "/api/chat",
                    harness.ollama_chat_body(stream),
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    stream=stream,
                    cpu_pids=[gw.pid],
                )
                return {
                    "req_s": r.req_s,
                    "errors": r.errors,
                    "latency_median_ms": r.latency_median_ms,
                    "cpu_per_req_us": r.cpu_per_request_us(gw.pid),
                }

            return measure

        cases = {f"{name}/{mode}": case(name, mode) for mode in MODES for name in gateways}
        raw = harness.interleave(cases, args.repetitions)
    _drop_redis_keys(args.redis_url, prefix)
    medians = {
        name: {k: harness.median([run[k] for run in runs]) for k in runs[0]}
        for name, runs in raw.items()
    }
    ratios: dict[str, dict[str, float]] = {}
    for mode in MODES:
        base = raw[f"off/{mode}"]
        for name in gateways:
            if name == "off":
                continue
            runs = raw[f"{name}/{mode}"]
            pairs = list(zip(runs, base, strict=True))
            ratios[f"{name}/{mode} vs off"] = {
                "req_s": harness.median([r["req_s"] / b["req_s"] for r, b in pairs]),
                "cpu_capacity": harness.median(
                    [b["cpu_per_req_us"] / r["cpu_per_req_us"] for r, b in pairs]
                ),
            }
    return {
        "settings": {
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "repetitions": args.repetitions,
            "chunks_per_stream": args.chunks,
            "machine": f"{platform.machine()}, Python {platform.python_version()}",
        },
        "medians": medians,
        "ratios": ratios,
    }


def _drop_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        for pattern in (f"{prefix}*", f"ollamux:idx:{prefix}*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i : i + 1000])
    except redis.ConnectionError:
        pass
    finally:
        client.close()


def report(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        f"task tracking cost: {s['concurrency']} clients, {s['repetitions']} x "
        f"{s['duration_s']:g} s interleaved, {s['chunks_per_stream']} chunks/stream; "
        f"{s['machine']}",
        "",
        f"{'target':<16}{'req/s':>9}{'p50 ms':>9}{'CPU us/req':>12}{'errors':>8}",
    ]
    for name, m in results["medians"].items():
        lines.append(
            f"{name:<16}{m['req_s']:>9.0f}{m['latency_median_ms']:>9.1f}"
            f"{m['cpu_per_req_us']:>12.0f}{m['errors']:>8.0f}"
        )
    lines.append("")
    lines.append(f"{'ratio (median of rounds)':<26}{'req/s':>8}{'CPU capacity':>14}")
    missed: dict[str, list[str]] = {"req_s": [], "cpu_capacity": []}
    for name, value in results["ratios"].items():
        lines.append(f"{name:<26}{value['req_s']:>8.2f}{value['cpu_capacity']:>14.2f}")
        for key, names in missed.items():
            if not name.startswith("memory") and value[key] < TARGET_RATIO:
                names.append(name)
    lines.append("")
    for key, label in (("req_s", "req/s"), ("cpu_capacity", "CPU capacity")):
        verdict = "met" if not missed[key] else "MISSED (" + ", ".join(missed[key]) + ")"
        lines.append(
            f"target ({label}): SQLite and Redis >= {TARGET_RATIO:.0%} of tasks off: {verdict}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return harness.run_benchmark(_parser(), run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
