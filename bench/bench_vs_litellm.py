"""ollamux next to LiteLLM's proxy, same fake backend, same run: an OpenAI client in front
of an Ollama backend (both proxies translate).

LiteLLM (``litellm[proxy]`` from PyPI) is installed on demand into a venv of its own under
``--cache-dir`` (default ``~/.cache/ollamux-bench/litellm-venv``), never into ours. Then,
with the bare aiohttp relay's Ollama passthrough as the floor:

- non-streamed ``POST /v1/chat/completions``: req/s and CPU per request under ``wrk``
  (interleaved rounds, medians);
- streamed: CPU per chunk (``--chunks`` chunks, ``--paced-delay`` apart) from the Python
  load generator;
- TTFT (time to the first content chunk) with 50 and 200 streams started at once;
- peak RSS of each proxy process (its whole process tree), and RSS while ``--max-streams``
  streams (1 000) are open through ollamux and the relay.

    python bench/bench_vs_litellm.py                 # installs LiteLLM once (minutes)
    python bench/bench_vs_litellm.py --repetitions 5 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

DEFAULT_CACHE = Path.home() / ".cache" / "ollamux-bench"
MODEL = "bench:latest"
# LiteLLM's proxy refuses to start without a master key; every client sends it (the others
# ignore it: ollamux runs without keys, the relay passes only the content type on).
MASTER_KEY = "sk-bench-" + os.urandom(16).hex()
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--litellm-spec", default="litellm[proxy]", help="pip requirement")
    p.add_argument("--repetitions", type=int, default=3, help="interleaved rounds")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per measured run")
    p.add_argument("--connections", type=int, default=32, help="wrk -c / stream clients")
    p.add_argument("--threads", type=int, default=2, help="wrk -t")
    p.add_argument("--chunks", type=int, default=100, help="chunks per streamed answer")
    p.add_argument("--paced-delay", type=float, default=0.005, help="seconds between chunks")
    p.add_argument("--ttft-streams", default="50,200", help="concurrent streams for TTFT")
    p.add_argument("--max-streams", type=int, default=1000, help="streams open for the RSS")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return p


# -- LiteLLM ---------------------------------------------------------------------------


def litellm_python(cache_dir: Path, spec: str) -> Path:
    """The Python of a venv holding LiteLLM's proxy, made (once) under ``cache_dir``."""
    venv = cache_dir / "litellm-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import litellm.proxy.proxy_cli"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"installing {spec} into {venv} (once) ...", file=sys.stderr)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", spec], check=True)
    return python


def start_litellm(fleet: harness.Fleet, python: Path, backend_url: str) -> harness.Server:
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {"model": f"ollama_chat/{MODEL}", "api_base": backend_url},
            }
        ],
        "litellm_settings": {"telemetry": False, "drop_params": True},
        "general_settings": {"master_key": MASTER_KEY},
    }
    path = fleet.tmp / "litellm.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    port = harness.free_port()
    argv = [str(python), "-m", "litellm.proxy.proxy_cli", "--config", str(path)]
    argv += ["--host", harness.HOST, "--port", str(port), "--num_workers", "1"]
    env = {"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "NO_DOCS": "True"}
    return fleet.start("litellm", argv, port, timeout=180, env=env)


# -- measurements ------------------------------------------------------------------------


def tree_rss_kb(pid: int, field: str = "VmRSS") -> int:
    """``field`` (VmRSS, or VmHWM for the peak) summed over ``pid`` and its descendants."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def tree_cpu(pid: int) -> float:
    total = 0.0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            total += harness.cpu_seconds(p)
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


async def ttft(url: str, body: bytes, streams: int, rss_pid: int | None = None) -> dict[str, float]:
    """Start ``streams`` streams at once; the time each took to its first content chunk
    (median, p90, max, ms), failures, and the RSS of ``rss_pid`` while all are open."""
    import aiohttp

    firsts: list[float] = []
    failures = 0
    rss_kb = 0
    opened = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal failures, opened
        t0 = time.perf_counter()
        try:
            headers = {"Content-Type": "application/json", **AUTH}
            async with session.post(url, data=body, headers=headers) as r:
                if r.status != 200:
                    failures += 1
                    return
                seen = False
                async for line in r.content:
                    # the first SSE event or NDJSON line with content
                    if not seen and (line.startswith(b"data: {") or line.startswith(b"{")):
                        firsts.append(time.perf_counter() - t0)
                        seen = True
                        opened += 1
                if not seen:
                    failures += 1
        except (aiohttp.ClientError, OSError):
            failures += 1

    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(streams)]
        if rss_pid is not None:
            done = asyncio.ensure_future(asyncio.gather(*tasks))
            while not done.done():
                rss_kb = max(rss_kb, tree_rss_kb(rss_pid))
                await asyncio.sleep(0.05)
            await done
        else:
            await asyncio.gather(*tasks)
    firsts.sort()
    ms = [x * 1000 for x in firsts]
    return {
        "median_ms": statistics.median(ms) if ms else float("nan"),
        "p90_ms": ms[int(len(ms) * 0.9)] if ms else float("nan"),
        "max_ms": ms[-1] if ms else float("nan"),
        "failures": failures,
        "rss_mb": rss_kb / 1024,
    }


def run(args: argparse.Namespace, wrk: str) -> dict[str, Any]:
    python = litellm_python(args.cache_dir, args.litellm_spec)
    with harness.Fleet() as fleet:
        # Paced for every client (LiteLLM does not pass ``?chunk_delay`` on): each chunk is a
        # read of its own, as with a model's tokens; non-streamed answers are not delayed.
        backend = fleet.fake_backend(chunks=args.chunks, chunk_delay=args.paced_delay)
        relay = fleet.relay(backend.url)
        ollamux = fleet.ollamux(
            {
                "server": {"log_level": "info"},
                "tasks": {"store": "sqlite", "sqlite_path": str(fleet.tmp / "tasks.db")},
                "backends": [{"url": backend.url, "api": "ollama", "max_concurrency": 8192}],
            }
        )
        litellm = start_litellm(fleet, python, backend.url)
        oa_json = harness.openai_chat_body(False, model=MODEL)
        oa_stream = harness.openai_chat_body(True, model=MODEL)
        # name -> (server, path, non-stream body, stream body, SSE)
        targets: dict[str, tuple[harness.Server, str, bytes, bytes, bool]] = {
            "relay (Ollama passthrough)": (
                relay,
                "/api/chat",
                harness.ollama_chat_body(False),
                harness.ollama_chat_body(True),
                False,
            ),
            "ollamux (OpenAI -> Ollama)": (
                ollamux,
                "/v1/chat/completions",
                oa_json,
                oa_stream,
                True,
            ),
            "LiteLLM (OpenAI -> Ollama)": (
                litellm,
                "/v1/chat/completions",
                oa_json,
                oa_stream,
                True,
            ),
        }
        # Fail early (and clearly) when a target does not answer as expected; this also
        # warms LiteLLM up (its first request takes a second or more).
        for name, (server, path, body, _, _) in targets.items():
            if not _answers(server.url + path, body):
                raise RuntimeError(f"{name} does not answer:\n{server.log_tail()}")

        def json_case(name: str) -> Callable[[], dict[str, float]]:
            server, path, body, _, _ = targets[name]

            def measure() -> dict[str, float]:
                cpu0 = tree_cpu(server.pid)
                r = harness.run_wrk(
                    server.url + path,
                    body,
                    wrk=wrk,
                    connections=args.connections,
                    threads=args.threads,
                    duration=args.duration,
                    warmup=0.5,
                    script_dir=fleet.tmp,
                    headers=AUTH,
                )
                cpu = tree_cpu(server.pid) - cpu0  # includes the warm-up: an upper bound
                return {
                    "req_s": r.req_s,
                    "errors": r.errors,
                    "cpu_per_req_us": cpu / r.requests * 1e6 if r.requests else float("nan"),
                }

            return measure

        def stream_case(name: str) -> Callable[[], dict[str, float]]:
            server, path, _, body, sse = targets[name]
            url = server.url + path

            def measure() -> dict[str, float]:
                r = harness.run_load(
                    url,
                    body,
                    concurrency=args.connections,
                    duration=args.duration,
                    warmup=0.5,
                    stream=True,
                    sse=sse,
                    cpu_pids=[server.pid],
                    headers=AUTH,
                )
                return {
                    "chunks_s": r.chunks_s,
                    "cpu_per_chunk_us": r.cpu_per_chunk_us(server.pid),
                    "errors": r.errors,
                }

            return measure

        cases: dict[str, Callable[[], dict[str, float]]] = {}
        for name in targets:
            cases[f"json|{name}"] = json_case(name)
            cases[f"stream|{name}"] = stream_case(name)
        raw = harness.interleave(cases, args.repetitions)
        ttfts: dict[str, dict[str, dict[str, float]]] = {}
        for name in list(targets)[1:]:
            server, path, _, body, _ = targets[name]
            ttfts[name] = {}
            for n in (int(x) for x in args.ttft_streams.split(",")):
                ttfts[name][str(n)] = asyncio.run(ttft(server.url + path, body, n))
        many: dict[str, dict[str, float]] = {}
        slow = harness.openai_chat_body(True, model=MODEL)
        for name, (server, path, _, _, _) in targets.items():
            if name.startswith("LiteLLM"):
                continue
            body = slow if path.startswith("/v1") else harness.ollama_chat_body(True)
            # 20 ms between chunks: every stream stays open while the others start.
            url = server.url + path + "?chunk_delay=0.02"
            many[name] = asyncio.run(ttft(url, body, args.max_streams, rss_pid=server.pid))
        peaks = {name: tree_rss_kb(t[0].pid, "VmHWM") / 1024 for name, t in targets.items()}
    medians = {
        name: {k: harness.median([one[k] for one in runs]) for k in runs[0]}
        for name, runs in raw.items()
    }
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "settings": {
            "repetitions": args.repetitions,
            "duration_s": args.duration,
            "connections": args.connections,
            "chunks": args.chunks,
            "paced_delay_s": args.paced_delay,
            "max_streams": args.max_streams,
            "litellm": _litellm_version(python),
            "machine": f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}",
            "load_average_1m": os.getloadavg()[0],
        },
        "targets": list(targets),
        "medians": medians,
        "ttft": ttfts,
        "many_streams": many,
        "peak_rss_mb": peaks,
    }


def _answers(url: str, body: bytes, tries: int = 3) -> bool:
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", **AUTH}
    for _ in range(tries):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                resp.read()
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    return False


def _litellm_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "?"


def report(results: dict[str, Any]) -> str:
    s = results["settings"]
    m = results["medians"]
    relay = results["targets"][0]
    lines = [
        f"ollamux vs LiteLLM {s['litellm']}: {s['repetitions']} x {s['duration_s']:g} s "
        f"interleaved, {s['connections']} clients, {s['chunks']} chunks/stream; {s['machine']}; "
        f"load average {s['load_average_1m']:.1f}",
        "",
        f"{'target':<30}{'req/s':>9}{'x relay':>9}{'CPU us/req':>12}{'CPU us/chunk':>14}"
        f"{'x relay':>9}{'peak RSS MB':>13}",
    ]
    for name in results["targets"]:
        j, st = m[f"json|{name}"], m[f"stream|{name}"]
        rj, rs = m[f"json|{relay}"], m[f"stream|{relay}"]
        lines.append(
            f"{name:<30}{j['req_s']:>9.0f}{j['req_s'] / rj['req_s']:>9.3f}"
            f"{j['cpu_per_req_us']:>12.0f}{st['cpu_per_chunk_us']:>14.1f}"
            f"{st['cpu_per_chunk_us'] / rs['cpu_per_chunk_us']:>9.2f}"
            f"{results['peak_rss_mb'][name]:>13.0f}"
        )
    lines += [
        "",
        f"{'TTFT (streams started at once)':<30}{'streams':>8}{'median ms':>11}"
        f"{'p90 ms':>9}{'max ms':>9}{'failed':>8}",
    ]
    for name, by_n in results["ttft"].items():
        for n, t in by_n.items():
            lines.append(
                f"{name:<30}{n:>8}{t['median_ms']:>11.1f}{t['p90_ms']:>9.1f}{t['max_ms']:>9.1f}"
                f"{t['failures']:>8.0f}"
            )
    lines += ["", f"{s['max_streams']} streams open at once (20 ms between chunks):"]
    for name, t in results["many_streams"].items():
        lines.append(
            f"{name:<30} RSS {t['rss_mb']:.0f} MB, TTFT median {t['median_ms']:.0f} ms, "
            f"max {t['max_ms']:.0f} ms, failed {t['failures']:.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return harness.wrk_main(_parser().parse_args(argv), run, report)


if __name__ == "__main__":
    raise SystemExit(main())
