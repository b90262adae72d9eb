"""Passthrough overhead: the fake backend directly, through a bare aiohttp relay, through ollamux.

Measures, at ``--concurrency`` clients, non-streaming requests per second and streamed
chunks per second, plus the CPU each proxy spends per request and per chunk, for the
targets (direct, relay, ollamux with only its core, ollamux with its default plugins)
interleaved over ``--repetitions`` rounds; prints medians and the ratios against the
issue's targets (ollamux req/s >= 80 % of the relay's, CPU per streamed chunk <= 1.3x the
relay's). See docs/benchmarks.md.

    python bench/bench_passthrough.py            # about 2 minutes
    python bench/bench_passthrough.py --long     # longer windows, more rounds
    python bench/bench_passthrough.py --api openai --json results.json
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

# ollamux-core: only what cannot be disabled (the balancer); ollamux: the default plugins.
TARGETS = ("direct", "relay", "ollamux-core", "ollamux")
OPTIONAL_PLUGINS = ["tasks", "jobs", "metrics", "cors", "auth", "model_rewrite", "translate"]
# json: one JSON answer per request; stream: chunks as fast as the backend can make them
# (consecutive chunks often arrive in one read); paced: chunks ``--paced-delay`` apart, so
# each is a read of its own, as with a real model's tokens.
MODES = ("json", "stream", "paced")
REQ_RATIO_TARGET = 0.80
CPU_RATIO_TARGET = 1.30


def _parser() -> argparse.ArgumentParser:
    p = harness.load_parser(__doc__.split("\n\n")[0], duration=1.5)
    p.add_argument("--paced-delay", type=float, default=0.005, help="seconds between chunks")
    p.add_argument("--api", choices=("ollama", "openai"), default="ollama")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the three targets, run the interleaved load, return the medians."""
    openai = args.api == "openai"
    path = "/v1/chat/completions" if openai else "/api/chat"
    body_for = harness.openai_chat_body if openai else harness.ollama_chat_body
    with harness.Fleet() as fleet:
        backend = fleet.fake_backend(chunks=args.chunks)
        relay = fleet.relay(backend.url)
        cfg = {"backends": [{"url": backend.url, "api": args.api, "max_concurrency": 4096}]}
        core = fleet.ollamux({**cfg, "plugins": {"disable": OPTIONAL_PLUGINS}}, name="core")
        proxies = {
            "direct": None,
            "relay": relay,
            "ollamux-core": core,
            "ollamux": fleet.ollamux(cfg),
        }

        def case(target: str, mode: str) -> Callable[[], dict[str, float]]:
            proxy = proxies[target]
            url = (proxy or backend).url + path
            if mode == "paced":
                url += f"?chunk_delay={args.paced_delay}"
            pids = [backend.pid] + ([proxy.pid] if proxy else [])
            stream = mode != "json"

            def measure() -> dict[str, float]:
                r = harness.run_load(
                    url,
                    body_for(stream),
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    stream=stream,
                    sse=openai,
                    cpu_pids=pids,
                )
                cpu_pid = proxy.pid if proxy else backend.pid
                return {
                    "req_s": r.req_s,
                    "chunks_s": r.chunks_s,
                    "errors": r.errors,
                    "latency_median_ms": r.latency_median_ms,
                    "cpu_per_req_us": r.cpu_per_request_us(cpu_pid),
                    "cpu_per_chunk_us": r.cpu_per_chunk_us(cpu_pid),
                    "backend_cpu_s": r.cpu[backend.pid],
                    "client_cpu_share": r.client_cpu / r.seconds,
                }

            return measure

        cases = {f"{t}/{m}": case(t, m) for m in MODES for t in TARGETS}
        raw = harness.interleave(cases, args.repetitions)
    medians = {
        name: {k: harness.median([run[k] for run in runs]) for k in runs[0]}
        for name, runs in raw.items()
    }
    return {
        "settings": {
            "api": args.api,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "repetitions": args.repetitions,
            "chunks_per_stream": args.chunks,
            "paced_delay_s": args.paced_delay,
            "machine": f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}",
        },
        "medians": medians,
        "ratios": _ratios(medians),
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def _ratios(m: dict[str, dict[str, float]]) -> dict[str, float]:
    def ratio(a: str, b: str, key: str) -> float:
        return m[a][key] / m[b][key] if m[b][key] else float("nan")

    out = {}
    for gw in ("ollamux", "ollamux-core"):
        out[f"req_s {gw}/relay (json)"] = ratio(f"{gw}/json", "relay/json", "req_s")
        out[f"chunks_s {gw}/relay (stream)"] = ratio(f"{gw}/stream", "relay/stream", "chunks_s")
        out[f"cpu/req {gw}/relay (json)"] = ratio(f"{gw}/json", "relay/json", "cpu_per_req_us")
        for mode in ("stream", "paced"):
            out[f"cpu/chunk {gw}/relay ({mode})"] = ratio(
                f"{gw}/{mode}", f"relay/{mode}", "cpu_per_chunk_us"
            )
    out["req_s relay/direct (json)"] = ratio("relay/json", "direct/json", "req_s")
    return out


def report(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        f"passthrough, {s['api']} API, {s['concurrency']} clients, {s['repetitions']} x "
        f"{s['duration_s']:g} s interleaved, {s['chunks_per_stream']} chunks/stream; "
        f"{s['machine']}",
        "",
        f"{'target':<20}{'req/s':>9}{'chunks/s':>11}{'p50 ms':>9}{'CPU us/req':>12}"
        f"{'CPU us/chunk':>14}{'client CPU':>12}{'errors':>8}",
    ]
    for name, m in results["medians"].items():
        lines.append(
            f"{name:<20}{m['req_s']:>9.0f}{m['chunks_s']:>11.0f}{m['latency_median_ms']:>9.1f}"
            f"{m['cpu_per_req_us']:>12.0f}{m['cpu_per_chunk_us']:>14.1f}"
            f"{m['client_cpu_share']:>12.0%}{m['errors']:>8.0f}"
        )
    lines.append(
        "(CPU us: the proxy process's; for direct/*, the backend's. client CPU: the load"
        " generator's share of one core; near 100 % it, not the proxy, limits req/s)"
    )
    lines.append("")
    r = results["ratios"]
    for name, value in r.items():
        lines.append(f"{name:<40}{value:>6.2f}")
    lines.append("")
    for gw in ("ollamux", "ollamux-core"):
        req_ok = r[f"req_s {gw}/relay (json)"] >= REQ_RATIO_TARGET
        cpu = max(r[f"cpu/chunk {gw}/relay (stream)"], r[f"cpu/chunk {gw}/relay (paced)"])
        lines.append(
            f"{gw}: req/s >= {REQ_RATIO_TARGET:.0%} of relay: {'met' if req_ok else 'MISSED'}; "
            f"CPU/chunk <= {CPU_RATIO_TARGET:g}x relay: {'met' if cpu <= CPU_RATIO_TARGET else 'MISSED'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return harness.run_benchmark(_parser(), run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
