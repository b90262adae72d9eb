"""Per-request overhead under wrk: ollamux against the bare aiohttp relay, same run.

``wrk`` (a C load generator) drives non-streamed chat and embedding requests, so the
client is never what limits req/s (the Python load generator of ``bench_passthrough.py``
caps the relay and hides the gap). Cases, interleaved over ``--repetitions`` rounds, each
against one fast fake backend that speaks both dialects:

chat (``POST``, ``"stream": false``):

- ``relay``: ``/api/chat`` through the bare relay (the baseline)
- ``relay-uvloop``: the same relay on uvloop (ollamux runs on uvloop when it is installed,
  as it is by default: the ``default / relay-uvloop`` ratio shows what is ollamux's own)
- ``default``: ``/api/chat`` through ollamux with its default config (SQLite tasks,
  ``log_level: info`` with the access log, every built-in plugin, uvloop)
- ``asyncio``: the same on asyncio's standard loop (``server.event_loop: asyncio``)
- ``memory``: the same with ``tasks.store: memory``
- ``no-tasks``: the same with the tasks plugin disabled
- ``core``: every optional plugin disabled
- ``translated``: ``/v1/chat/completions`` through ``default`` to the Ollama backend

embeddings (16 inputs):

- ``relay-embed`` / ``embed``: ``/api/embed`` through the relay / ``default``
- ``relay-v1embed`` / ``v1embed``: ``/v1/embeddings`` through the relay / ollamux in front
  of the backend's OpenAI dialect (default config otherwise)
- ``v1embed-translated``: ``/v1/embeddings`` through ``default`` (translated to
  ``/api/embed``)
- ``v1embed-base64``: the same with ``encoding_format: base64``, which the ``openai``
  SDK asks for unless told otherwise
- ``embed-translated``: ``/api/embed`` through ollamux in front of the backend's OpenAI
  dialect (translated to ``/v1/embeddings``)

Prints medians (req/s, p50 latency, CPU per request of the proxy), the ratios to the
relay of the same kind, each round's ratios' median, the targets, and the load average
(the machine is shared: other load shows there).

    python bench/bench_wrk.py                     # about 7 minutes
    python bench/bench_wrk.py --cases relay,default --repetitions 3
    python bench/bench_wrk.py --long --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

OPTIONAL_PLUGINS = ["tasks", "jobs", "metrics", "cors", "auth", "model_rewrite", "translate"]
CHAT_CASES = (
    "relay",
    "relay-uvloop",
    "default",
    "asyncio",
    "memory",
    "no-tasks",
    "core",
    "translated",
)
EMBED_CASES = (
    "relay-embed",
    "embed",
    "relay-v1embed",
    "v1embed",
    "v1embed-translated",
    "v1embed-base64",
    "embed-translated",
)
# case -> (the case it is compared with, target ratio of req/s or None)
BASELINE: dict[str, tuple[str, float | None]] = {
    "relay-uvloop": ("relay", None),
    "default": ("relay", 0.80),
    "asyncio": ("relay", None),
    "memory": ("relay", None),
    "no-tasks": ("relay", None),
    "core": ("relay", None),
    "translated": ("relay", 0.65),
    "embed": ("relay-embed", 0.80),
    "v1embed": ("relay-v1embed", 0.80),
    "v1embed-translated": ("relay-v1embed", None),
    "v1embed-base64": ("relay-v1embed", None),
    "embed-translated": ("relay-embed", None),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=32, help="wrk -c")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (1-2 on a 2-core machine)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each run")
    p.add_argument("--repetitions", type=int, default=5, help="interleaved rounds")
    p.add_argument("--inputs", type=int, default=16, help="inputs per embedding request")
    p.add_argument("--embed-dim", type=int, default=384, help="floats per embedding vector")
    p.add_argument("--cases", default=",".join(CHAT_CASES + EMBED_CASES))
    p.add_argument("--no-install", action="store_true", help="never try apt-get for wrk")
    p.add_argument(
        "--base",
        metavar="REV",
        help="also run git revision REV's code in the default and translated cases (NAME@REV)",
    )
    p.add_argument("--long", action="store_true", help="10 s windows, 5 rounds")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return p


def _chat(stream: bool, model: str) -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    ).encode()


def _embed(inputs: int, model: str, **extra: str) -> bytes:
    texts = [f"chunk {i} of a document being indexed for retrieval" for i in range(inputs)]
    return json.dumps({"model": model, "input": texts, **extra}).encode()


def run(args: argparse.Namespace, wrk: str) -> dict[str, Any]:
    wanted = [c for c in args.cases.split(",") if c]
    unknown = set(wanted) - set(CHAT_CASES + EMBED_CASES)
    if unknown:
        raise SystemExit(f"unknown cases: {', '.join(sorted(unknown))}")
    load: list[tuple[float, float, float]] = []
    with harness.Fleet() as fleet:
        backend = fleet.fake_backend(embed_dim=args.embed_dim)
        relay = fleet.relay(backend.url)

        def gw(
            name: str, api: str = "ollama", src: Path | None = None, **extra: Any
        ) -> harness.Server:
            # The real defaults (log level info, access log, SQLite tasks), not bench_config's.
            cfg: dict[str, Any] = {
                "server": {"log_level": "info"},
                "tasks": {"store": "sqlite", "sqlite_path": str(fleet.tmp / f"{name}.db")},
                "plugins": {"autoload": False},  # built-in plugins only
                "backends": [{"url": backend.url, "api": api, "max_concurrency": 4096}],
            }
            return fleet.ollamux(harness._deep_merge(cfg, extra), name=name, src=src)

        servers: dict[str, harness.Server] = {"relay": relay}
        if "relay-uvloop" in wanted:
            servers["relay-uvloop"] = fleet.relay(backend.url, uvloop=True)
        needs = {c: BASELINE.get(c, (c, None))[0] for c in wanted}
        on_default = ("default", "translated", "embed", "v1embed-translated", "v1embed-base64")
        if any(c in wanted for c in on_default):
            servers["default"] = gw("default")
        if "asyncio" in wanted:
            servers["asyncio"] = gw("asyncio", server={"event_loop": "asyncio"})
        if "memory" in wanted:
            servers["memory"] = gw("memory", tasks={"store": "memory"})
        if "no-tasks" in wanted:
            servers["no-tasks"] = gw("no-tasks", plugins={"disable": ["tasks"]})
        if "core" in wanted:
            servers["core"] = gw("core", plugins={"disable": OPTIONAL_PLUGINS})
        if "v1embed" in wanted or "embed-translated" in wanted:
            servers["openai"] = gw("openai", api="openai")
        if args.base:
            from bench.bench_ab import export_src

            base_src = export_src(args.base, fleet.tmp / "base")
            servers["base"] = gw("base", src=base_src)
            if "embed-translated" in wanted:
                servers["base-openai"] = gw("base-openai", api="openai", src=base_src)

        setups: dict[str, tuple[str, str, bytes]] = {
            "relay": ("relay", "/api/chat", _chat(False, "bench:latest")),
            "relay-uvloop": ("relay-uvloop", "/api/chat", _chat(False, "bench:latest")),
            "asyncio": ("asyncio", "/api/chat", _chat(False, "bench:latest")),
            "default": ("default", "/api/chat", _chat(False, "bench:latest")),
            "memory": ("memory", "/api/chat", _chat(False, "bench:latest")),
            "no-tasks": ("no-tasks", "/api/chat", _chat(False, "bench:latest")),
            "core": ("core", "/api/chat", _chat(False, "bench:latest")),
            "translated": ("default", "/v1/chat/completions", _chat(False, "bench:latest")),
            "relay-embed": ("relay", "/api/embed", _embed(args.inputs, "bench:latest")),
            "embed": ("default", "/api/embed", _embed(args.inputs, "bench:latest")),
            "relay-v1embed": ("relay", "/v1/embeddings", _embed(args.inputs, "bench")),
            "v1embed": ("openai", "/v1/embeddings", _embed(args.inputs, "bench")),
            "v1embed-translated": (
                "default",
                "/v1/embeddings",
                _embed(args.inputs, "bench:latest"),
            ),
            "v1embed-base64": (
                "default",
                "/v1/embeddings",
                _embed(args.inputs, "bench:latest", encoding_format="base64"),
            ),
            "embed-translated": ("openai", "/api/embed", _embed(args.inputs, "bench")),
        }
        # Baselines run whenever a case compared with them does.
        cases_run = list(dict.fromkeys([*(needs[c] for c in wanted), *wanted]))
        order = [c for c in CHAT_CASES + EMBED_CASES if c in cases_run]
        if args.base:
            translated = ("translated", "v1embed-translated", "v1embed-base64", "embed-translated")
            for name in ("default", *translated):
                if name in wanted:
                    server_name, path, body = setups[name]
                    base = "base-openai" if server_name == "openai" else "base"
                    setups[f"{name}@{args.base}"] = (base, path, body)
                    BASELINE[f"{name}@{args.base}"] = BASELINE[name]
                    order.insert(order.index(name) + 1, f"{name}@{args.base}")

        def case(name: str) -> Callable[[], dict[str, float]]:
            server_name, path, body = setups[name]
            server = servers[server_name]

            def measure() -> dict[str, float]:
                r = harness.run_wrk(
                    server.url + path,
                    body,
                    wrk=wrk,
                    connections=args.connections,
                    threads=args.threads,
                    duration=args.duration,
                    warmup=args.warmup,
                    cpu_pids=[server.pid, backend.pid],
                    script_dir=fleet.tmp,
                )
                load.append(os.getloadavg())
                if r.errors:
                    print(
                        f"warning: {name}: {r.errors} errors\n{server.log_tail(5)}", file=sys.stderr
                    )
                return {
                    "req_s": r.req_s,
                    "errors": r.errors,
                    "latency_median_ms": r.latency_median_ms,
                    "cpu_per_req_us": r.cpu_per_request_us(server.pid),
                    "backend_cpu_per_req_us": r.cpu_per_request_us(backend.pid),
                }

            return measure

        raw = harness.interleave({name: case(name) for name in order}, args.repetitions)
    medians = {
        name: {k: harness.median([one[k] for one in runs]) for k in runs[0]}
        for name, runs in raw.items()
    }
    ratios: dict[str, dict[str, Any]] = {}
    comparisons = [(name, *BASELINE[name]) for name in order if name in BASELINE]
    if "relay-uvloop" in order:  # against the relay on the same loop as ollamux
        comparisons += [(n, "relay-uvloop", None) for n in ("default", "core") if n in order]
    for name, base, target in comparisons:
        pairs = list(zip(raw[name], raw[base], strict=True))
        ratios[f"{name} / {base}"] = {
            "req_s": medians[name]["req_s"] / medians[base]["req_s"],
            "req_s_rounds": harness.median([a["req_s"] / b["req_s"] for a, b in pairs]),
            "cpu_capacity": medians[base]["cpu_per_req_us"] / medians[name]["cpu_per_req_us"],
            "target": target,
        }
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "settings": {
            "connections": args.connections,
            "threads": args.threads,
            "duration_s": args.duration,
            "repetitions": args.repetitions,
            "inputs": args.inputs,
            "embed_dim": args.embed_dim,
            "machine": f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}",
            "load_average_1m": {
                "min": min(x[0] for x in load),
                "median": harness.median([x[0] for x in load]),
                "max": max(x[0] for x in load),
            },
        },
        "medians": medians,
        "ratios": ratios,
    }


def report(results: dict[str, Any]) -> str:
    s = results["settings"]
    la = s["load_average_1m"]
    lines = [
        f"wrk -t{s['threads']} -c{s['connections']}, {s['repetitions']} x {s['duration_s']:g} s "
        f"interleaved; embeddings: {s['inputs']} inputs x {s['embed_dim']} floats; {s['machine']}",
        f"load average (1 min) during the run: {la['min']:.1f} - {la['max']:.1f}, "
        f"median {la['median']:.1f}",
        "",
        f"{'case':<20}{'req/s':>9}{'p50 ms':>9}{'CPU us/req':>12}{'backend us/req':>16}"
        f"{'errors':>8}",
    ]
    for name, m in results["medians"].items():
        lines.append(
            f"{name:<20}{m['req_s']:>9.0f}{m['latency_median_ms']:>9.2f}"
            f"{m['cpu_per_req_us']:>12.0f}{m['backend_cpu_per_req_us']:>16.0f}{m['errors']:>8.0f}"
        )
    lines += [
        "(CPU us/req: the proxy process's CPU time per completed request)",
        "",
        f"{'ratio':<34}{'req/s':>7}{'rounds':>8}{'CPU cap.':>10}{'target':>8}",
    ]
    verdicts = []
    for name, r in results["ratios"].items():
        target = r["target"]
        lines.append(
            f"{name:<34}{r['req_s']:>7.2f}{r['req_s_rounds']:>8.2f}{r['cpu_capacity']:>10.2f}"
            f"{'' if target is None else format(target, '>8.2f')}"
        )
        if target is not None:
            verdicts.append(
                f"{name}: req/s >= {target:.2f}x: {'met' if r['req_s'] >= target else 'MISSED'}"
            )
    lines.append(
        "(req/s: ratio of the medians; rounds: median of each round's ratio; CPU cap.:"
        " baseline CPU per request / this case's)"
    )
    return "\n".join([*lines, "", *verdicts])


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.long:
        args.duration, args.repetitions = max(args.duration, 10.0), max(args.repetitions, 5)
    return harness.wrk_main(args, run, report, install=not args.no_install)


if __name__ == "__main__":
    raise SystemExit(main())
