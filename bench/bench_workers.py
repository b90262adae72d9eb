"""Does ``ollamux serve --workers 2`` use the second core? 1 worker vs 2, side by side.

    python bench/bench_workers.py [--duration 5] [--connections 64] [--rounds 2]

Starts a fake Ollama backend, then alternately an ollamux with 1 and with 2 workers, and
drives each with the same load for the same time (non-streaming ``/api/generate``,
keep-alive connections). Prints req/s and latency per run and the ratio of the best runs;
the goal is 2 workers >= 1.5x one worker on a 2-core machine. The backend and the load
generator are raw asyncio protocols (no HTTP framework), so they take little of the CPU
the gateway is measured on; each runs in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

HOST = "127.0.0.1"
MODEL = "llama3.2:latest"
_ANSWER = json.dumps(
    {
        "model": MODEL,
        "created_at": "2025-01-01T00:00:00Z",
        "response": "Hello there, friend!",
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 7,
        "eval_count": 4,
    }
).encode()
_BACKEND_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_ANSWER)).encode()
    + b"\r\n\r\n"
    + _ANSWER
)


# -- the fake backend: answers every request with the same JSON ---------------------------


class _Backend(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            i = head.find(b"content-length:")
            if i >= 0:
                length = int(head[i + 15 :].split(b"\r\n", 1)[0])
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            self.transport.write(_BACKEND_RESPONSE)


async def _serve_backend(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Backend, HOST, port, backlog=1024)
    async with server:
        await server.serve_forever()


# -- the load generator: keep-alive connections, one request at a time each ---------------


class _Client(asyncio.Protocol):
    def __init__(self, request: bytes, latencies: list[float], stop_at: float) -> None:
        self.request = request
        self.latencies = latencies
        self.stop_at = stop_at
        self.done = asyncio.get_running_loop().create_future()
        self.errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.buf = b""
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        # The gateway answers chunked: the body ends with the zero-length chunk.
        if not self.buf.endswith(b"0\r\n\r\n") and not self._complete_by_length():
            return
        if not self.buf.startswith(b"HTTP/1.1 200"):
            self.errors += 1
        now = time.perf_counter()
        self.latencies.append(now - self.sent)
        if now >= self.stop_at:
            self.transport.close()
        else:
            self._send()

    def _complete_by_length(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = self.buf[:end].lower()
        i = head.find(b"content-length:")
        if i < 0:
            return False
        length = int(head[i + 15 :].split(b"\r\n", 1)[0])
        return len(self.buf) >= end + 4 + length

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _load(port: int, duration: float, connections: int, warmup: float) -> dict[str, Any]:
    body = json.dumps({"model": MODEL, "prompt": "hi", "stream": False}).encode()
    request = (
        f"POST /api/generate HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    # Warm up (imports, connection pools) without counting.
    scratch: list[float] = []
    warm = [
        (
            await loop.create_connection(
                lambda: _Client(request, scratch, time.perf_counter() + warmup), HOST, port
            )
        )[1]
        for _ in range(connections)
    ]
    await asyncio.gather(*(c.done for c in warm))
    latencies: list[float] = []
    start = time.perf_counter()
    stop_at = start + duration
    clients = [
        (await loop.create_connection(lambda: _Client(request, latencies, stop_at), HOST, port))[1]
        for _ in range(connections)
    ]
    await asyncio.gather(*(c.done for c in clients))
    elapsed = time.perf_counter() - start
    return {
        "elapsed": elapsed,
        "errors": sum(c.errors for c in clients),
        "latencies_ms": [round(1000 * x, 3) for x in latencies],
    }


# -- orchestration ------------------------------------------------------------------------


def _gateway(tmp: Path, backend_port: int, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = harness.free_port()
    config = tmp / f"ollamux-{workers}.json"
    config.write_text(
        json.dumps(
            {
                "server": {"host": HOST, "port": port, "workers": workers, "log_level": "warning"},
                "backends": [
                    {
                        "name": "fake",
                        "url": f"http://{HOST}:{backend_port}",
                        "max_concurrency": 4096,
                    }
                ],
                "routing": {"max_queue": 100000},
                "tasks": {"store": "memory"},
                "jobs": {"sqlite_path": str(tmp / "jobs.db")},
                "plugins": {"autoload": False},
            }
        )
    )
    # JSON is YAML: the .yaml suffix selects the YAML reader.
    path = config.with_suffix(".yaml")
    config.rename(path)
    log_path = tmp / f"ollamux-{workers}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollamux", "serve", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        harness.wait_listening(port, timeout=30, proc=proc)
    except (RuntimeError, TimeoutError) as exc:
        raise RuntimeError(f"{exc}\n{log_path.read_text(errors='replace')[-2000:]}") from exc
    return proc, port


def _run_load(port: int, args: argparse.Namespace) -> dict[str, Any]:
    """``args.load_procs`` load processes at once, each with its share of the connections."""
    per_proc = max(1, args.connections // args.load_procs)
    argv = [sys.executable, __file__, "load", "--port", str(port), "--duration"]
    argv += [str(args.duration), "--connections", str(per_proc)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        for _ in range(args.load_procs)
    ]
    parts = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"load process exited with {proc.returncode}")
        parts.append(json.loads(out))
    latencies = sorted(x for part in parts for x in part["latencies_ms"])
    elapsed = max(part["elapsed"] for part in parts)
    return {
        "requests": len(latencies),
        "errors": sum(part["errors"] for part in parts),
        "req_s": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


def _cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its children still running (the workers), from /proc."""
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        with contextlib.suppress(OSError):
            total += harness.cpu_seconds(p)
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure(
    tmp: Path, backend_pid: int, backend_port: int, workers: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One run; also the cores the gateway used, and those the load processes and the
    backend used (if these are short of CPU, the gateway is not what is measured)."""
    proc, port = _gateway(tmp, backend_port, workers)
    try:
        cpu0 = _cpu_seconds(proc.pid)
        side0 = _children_cpu() + _cpu_seconds(backend_pid)
        t0 = time.monotonic()
        result = _run_load(port, args)
        elapsed = time.monotonic() - t0
        result["cores"] = (_cpu_seconds(proc.pid) - cpu0) / elapsed
        result["side_cores"] = (_children_cpu() + _cpu_seconds(backend_pid) - side0) / elapsed
    finally:
        harness.stop(proc, timeout=15)
    return result


def compare(args: argparse.Namespace) -> int:
    load = os.getloadavg()[0]
    print(
        f"cores: {os.cpu_count()}; load average {load:.1f}; {args.connections} connections "
        f"from {args.load_procs} load processes; "
        f"{args.duration:g}s per run; {args.rounds} rounds, alternating which goes first"
    )
    ratios: list[float] = []
    runs: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="ollamux-bench-workers-") as tmpdir:
        tmp = Path(tmpdir)
        backend_port = harness.free_port()
        backend = subprocess.Popen(
            [sys.executable, __file__, "backend", "--port", str(backend_port)],
            stdin=subprocess.DEVNULL,
        )
        try:
            harness.wait_listening(backend_port, timeout=30, proc=backend)
            header = f"{'round':>5} {'workers':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
            print(header + f" {'gw cores':>9} {'load+backend cores':>19} {'errors':>6}")
            for n in range(args.rounds):
                got: dict[int, float] = {}
                for workers in (1, 2) if n % 2 == 0 else (2, 1):
                    r = _measure(tmp, backend.pid, backend_port, workers, args)
                    got[workers] = r["req_s"]
                    runs[workers].append(r["req_s"])
                    print(
                        f"{n + 1:>5} {workers:>7} {r['req_s']:>9.0f} {r['p50_ms']:>8.2f} "
                        f"{r['p99_ms']:>8.2f} {r['cores']:>9.2f} {r['side_cores']:>19.2f} "
                        f"{r['errors']:>6}"
                    )
                ratios.append(got[2] / got[1] if got[1] else 0.0)
        finally:
            harness.stop(backend, timeout=15)
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio >= 1.5 else "below"
    print(
        f"median req/s: 1 worker {statistics.median(runs[1]):.0f}, "
        f"2 workers {statistics.median(runs[2]):.0f}"
    )
    print(
        f"ratio 2 workers / 1 worker per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"median {ratio:.2f}x ({verdict} the 1.5x goal)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "role", nargs="?", default="compare", choices=["compare", "backend", "load"]
    )
    parser.add_argument("--port", type=int)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--load-procs", type=int, default=2, help="load generator processes")
    args = parser.parse_args()
    if args.role == "backend":
        asyncio.run(_serve_backend(args.port))
        return 0
    if args.role == "load":
        result = asyncio.run(_load(args.port, args.duration, args.connections, args.warmup))
        print(json.dumps(result))
        return 0
    return compare(args)


if __name__ == "__main__":
    raise SystemExit(main())
