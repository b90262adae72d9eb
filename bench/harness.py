"""Reusable pieces for ollamux benchmarks: servers and a load generator, each in its own process.

Every server (fake backend, bare relay, ollamux) and every load run is a separate OS
process, so the numbers of one do not steal the event loop of another, and the CPU time
a server spends can be read from ``/proc/<pid>/stat`` over exactly the measured window.

Typical use::

    from bench import harness

    with harness.Fleet() as fleet:
        backend = fleet.fake_backend(chunks=100)
        relay = fleet.relay(backend.url)
        gw = fleet.ollamux({"backends": [{"url": backend.url, "max_concurrency": 1024}]})
        result = harness.run_load(
            gw.url + "/api/chat", harness.ollama_chat_body(stream=True),
            concurrency=32, duration=2, cpu_pids=[gw.pid], stream=True,
        )
        print(result.req_s, result.chunks_s, result.cpu_per_chunk_us(gw.pid))

Also runnable: ``python bench/harness.py fake-backend --port 8001`` (or ``relay``, ``load``).
Loopback only; teardown (``Fleet.__exit__``) stops every process it started, even on error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

HOST = "127.0.0.1"
HARNESS = Path(__file__).resolve()
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

T = TypeVar("T")


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """CPU time the process ``pid`` (all its threads) has used so far, in seconds.

    Reads the scheduler's nanosecond counters (``/proc/<pid>/task/*/schedstat``); falls back
    to ``/proc/<pid>/stat``, whose clock ticks (10 ms) are too coarse for short windows.
    """
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with (
                contextlib.suppress(FileNotFoundError),
                open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f,
            ):
                total += int(f.read().split()[0])
        return total / 1e9
    except (FileNotFoundError, PermissionError):
        pass
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def wait_listening(
    port: int, host: str = HOST, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until something accepts TCP connections on ``host:port`` (or fail clearly)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


async def wait_http(url: str, within_s: float = 20.0) -> None:
    """Poll ``GET url`` until it answers below 500 (or fail clearly after ``within_s`` seconds)."""
    import aiohttp

    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up within {within_s}s")
            await asyncio.sleep(0.1)


@dataclass
class Server:
    """A server process started by a ``Fleet``: its URL, pid and log file."""

    name: str
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Fleet:
    """Starts server processes and guarantees they are all stopped on exit.

    Use as a context manager; every ``fake_backend`` / ``relay`` / ``ollamux`` call starts one
    process, waits until it listens, and returns a ``Server``.
    """

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self.servers: list[Server] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="ollamux-bench-")
        self.tmp = Path(self._tmp.name)

    def __enter__(self) -> Fleet:
        # A SIGTERM to the benchmark must still run ``__exit__`` and stop the children.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _raise_exit)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Terminate every started process (SIGTERM, then SIGKILL after 5 s)."""
        for server in reversed(self.servers):
            stop(server.proc)
        self.servers.clear()
        self._tmp.cleanup()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        timeout: float = 20.0,
        env: Mapping[str, str] | None = None,
    ) -> Server:
        """Start ``argv`` (output to a log file, ``env`` added to ours), wait until ``port``
        listens."""
        log_path = self.tmp / f"{name}-{port}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env} if env else None,
                cwd=self.tmp,  # relative paths (./ollamux.db) land in the throwaway dir
            )
        server = Server(name, f"http://{HOST}:{port}", port, proc, log_path)
        self.servers.append(server)
        try:
            wait_listening(port, timeout=timeout, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{name} did not start: {exc}\n{server.log_tail()}") from exc
        return server

    def fake_backend(
        self, chunks: int = 100, chunk_delay: float = 0.0, embed_dim: int = 384
    ) -> Server:
        """A fast fake speaking both Ollama (``/api/*``) and OpenAI (``/v1/*``) dialects.

        Streams ``chunks`` content chunks (+ a final one), yielding to the event loop (or
        sleeping ``chunk_delay`` seconds) between chunks as a token generator would; a
        ``?chunk_delay=SECONDS`` query parameter overrides the delay per request.
        """
        port = free_port()
        argv = [self.python, str(HARNESS), "fake-backend", "--port", str(port)]
        argv += ["--chunks", str(chunks), "--chunk-delay", str(chunk_delay)]
        argv += ["--embed-dim", str(embed_dim)]
        return self.start("fake-backend", argv, port)

    def relay(self, upstream: str, uvloop: bool = False) -> Server:
        """The bare aiohttp relay baseline in front of ``upstream``; ``uvloop``: on uvloop
        instead of asyncio's standard loop (ollamux takes uvloop when it is installed)."""
        port = free_port()
        argv = [self.python, str(HARNESS), "relay", "--port", str(port), "--upstream", upstream]
        if uvloop:
            argv.append("--uvloop")
        return self.start("relay-uvloop" if uvloop else "relay", argv, port)

    def ollamux(
        self,
        config: Mapping[str, Any] | None = None,
        name: str = "ollamux",
        src: str | Path | None = None,
    ) -> Server:
        """``python -m ollamux serve`` with ``config`` over ``bench_config()`` defaults.

        ``src``: a directory holding an ``ollamux`` package to run instead of the installed
        one (put first on ``PYTHONPATH``), to compare two versions of the code.
        """
        port = free_port()
        merged = _deep_merge(bench_config(), dict(config or {}))
        merged.setdefault("server", {}).update(host=HOST, port=port)
        path = self.tmp / f"{name}-{port}.yaml"
        path.write_text(json.dumps(merged))  # JSON is YAML
        argv = [self.python, "-m", "ollamux", "serve", "--config", str(path)]
        env = None
        if src is not None:
            env = {"PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
        return self.start(name, argv, port, env=env)


def bench_config() -> dict[str, Any]:
    """Defaults for a benchmarked ollamux: in-memory tasks, no auth, no autoloaded plugins."""
    return {
        "server": {"log_level": "warning"},
        "tasks": {"store": "memory"},
        "plugins": {"autoload": False},
    }


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM ``proc``, then SIGKILL if it has not exited after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- request bodies ----------------------------------------------------------------------


def ollama_chat_body(stream: bool, model: str = "bench:latest") -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    ).encode()


def openai_chat_body(stream: bool, model: str = "bench") -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    ).encode()


# -- load generator ----------------------------------------------------------------------


@dataclass
class LoadResult:
    """What one load run measured over its window (warm-up excluded)."""

    requests: int
    errors: int
    chunks: int
    seconds: float
    latency_median_ms: float
    latency_p99_ms: float
    cpu: dict[int, float] = field(default_factory=dict)  # pid -> CPU seconds in the window
    client_cpu: float = 0.0  # CPU seconds the load generator itself used in the window

    @property
    def req_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def chunks_s(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    def cpu_per_chunk_us(self, pid: int) -> float:
        """CPU microseconds process ``pid`` spent per chunk delivered to clients."""
        return self.cpu[pid] / self.chunks * 1e6 if self.chunks else float("nan")

    def cpu_per_request_us(self, pid: int) -> float:
        return self.cpu[pid] / self.requests * 1e6 if self.requests else float("nan")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoadResult:
        data = json.loads(text)
        data["cpu"] = {int(k): v for k, v in data["cpu"].items()}
        return cls(**data)


async def generate_load(
    url: str,
    body: bytes,
    *,
    concurrency: int = 32,
    duration: float = 2.0,
    warmup: float = 0.5,
    stream: bool = False,
    sse: bool = False,
    method: str = "POST",
    cpu_pids: Sequence[int] = (),
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """Run ``concurrency`` workers sending ``body`` to ``url`` back to back, in this process.

    Counts requests completed and chunks received inside the window ``[warmup, warmup +
    duration)``; a chunk is an NDJSON line (``sse``: an SSE event). Reads the CPU time of
    ``cpu_pids`` at the window's edges.
    """
    import aiohttp

    newlines_per_chunk = 2 if sse else 1
    latencies: list[float] = []
    counts = {"requests": 0, "errors": 0, "newlines": 0}
    measuring = False
    stop = False
    headers = {"Content-Type": "application/json", **(headers or {})}

    async def worker(session: aiohttp.ClientSession) -> None:
        while not stop:
            t0 = time.perf_counter()
            ok = True
            try:
                async with session.request(method, url, data=body, headers=headers) as resp:
                    ok = resp.status == 200
                    if stream:
                        async for data in resp.content.iter_any():
                            if measuring:
                                counts["newlines"] += data.count(b"\n")
                    else:
                        await resp.read()
            except (aiohttp.ClientError, OSError):
                ok = False
            if measuring:
                if ok:
                    counts["requests"] += 1
                    latencies.append(time.perf_counter() - t0)
                else:
                    counts["errors"] += 1
            if not ok and stop:
                return

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        cpu0 = {pid: cpu_seconds(pid) for pid in cpu_pids}
        own0 = time.process_time()
        t0 = time.perf_counter()
        measuring = True
        await asyncio.sleep(duration)
        measuring = False
        seconds = time.perf_counter() - t0
        own = time.process_time() - own0
        cpu1 = {pid: cpu_seconds(pid) for pid in cpu_pids}
        stop = True
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    return LoadResult(
        requests=counts["requests"],
        errors=counts["errors"],
        chunks=counts["newlines"] // newlines_per_chunk,
        seconds=seconds,
        latency_median_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        latency_p99_ms=latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
        cpu={pid: cpu1[pid] - cpu0[pid] for pid in cpu_pids},
        client_cpu=own,
    )


def run_load(
    url: str,
    body: bytes,
    *,
    concurrency: int = 32,
    duration: float = 2.0,
    warmup: float = 0.5,
    stream: bool = False,
    sse: bool = False,
    method: str = "POST",
    cpu_pids: Sequence[int] = (),
    python: str = sys.executable,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """``generate_load`` in a fresh process (so the client does not share our CPU time)."""
    argv = [python, str(HARNESS), "load", "--url", url, "--body", body.decode()]
    argv += ["--concurrency", str(concurrency), "--duration", str(duration)]
    argv += ["--warmup", str(warmup), "--method", method]
    argv += ["--stream"] if stream else []
    argv += ["--sse"] if sse else []
    for pid in cpu_pids:
        argv += ["--cpu-pid", str(pid)]
    for name, value in (headers or {}).items():
        argv += ["--header", f"{name}: {value}"]
    proc = subprocess.run(
        argv, capture_output=True, timeout=duration + warmup + 60, check=False, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode}):\n{proc.stderr}")
    return LoadResult.from_json(proc.stdout.strip().splitlines()[-1])


def cpu_cost(
    server: Server,
    *,
    paced_delay: float | None = None,
    concurrency: int = 32,
    duration: float = 1.5,
    warmup: float = 0.3,
) -> float:
    """CPU microseconds ``server`` spends per non-streamed ``/api/chat`` request, or, with
    ``paced_delay`` (seconds between chunks), per streamed chunk. Fails on any error."""
    stream = paced_delay is not None
    url = server.url + "/api/chat" + (f"?chunk_delay={paced_delay}" if stream else "")
    r = run_load(
        url,
        ollama_chat_body(stream=stream),
        concurrency=concurrency,
        duration=duration,
        warmup=warmup,
        stream=stream,
        cpu_pids=[server.pid],
    )
    if r.errors:
        raise RuntimeError(f"{r.errors} failed requests to {server.name}:\n{server.log_tail()}")
    return r.cpu_per_chunk_us(server.pid) if stream else r.cpu_per_request_us(server.pid)


# -- wrk: a C load generator for non-streamed requests ------------------------------------

WRK_INSTALL_HINT = "wrk not found on PATH; install it with: apt-get install -y wrk (Debian/Ubuntu)"


def wrk_main(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, str], dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
    install: bool = True,
) -> int:
    """A wrk benchmark's ``main``: find (or install) wrk, ``run``, print the ``report``,
    write ``args.json`` when asked; 2 when wrk cannot be had."""
    wrk = find_wrk(install=install)
    if wrk is None:
        print(WRK_INSTALL_HINT, file=sys.stderr)
        return 2
    results = run(args, wrk)
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def find_wrk(install: bool = False) -> str | None:
    """The path of ``wrk``; with ``install`` (and root), try ``apt-get install -y wrk`` first
    when it is missing. ``None`` when it cannot be had."""
    import shutil

    found = shutil.which("wrk")
    if found or not install or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    subprocess.run(
        ["apt-get", "install", "-y", "wrk"], capture_output=True, check=False, timeout=300
    )
    return shutil.which("wrk")


def wrk_script(body: bytes, method: str = "POST", headers: Mapping[str, str] | None = None) -> str:
    """A wrk Lua script sending ``body`` with ``method`` and ``headers`` on every request."""
    lines = [f"wrk.method = {_lua_str(method)}", f"wrk.body = {_lua_str(body.decode())}"]
    for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
        lines.append(f"wrk.headers[ {_lua_str(name)} ] = {_lua_str(value)}")
    return "\n".join(lines) + "\n"


def _lua_str(text: str) -> str:
    # A Lua long bracket takes the text as it is; pick a level the text does not contain.
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


@dataclass
class WrkResult:
    """What one wrk run measured: requests completed, non-2xx/3xx and socket errors, the
    median latency, and the CPU seconds of ``cpu_pids`` over the run."""

    requests: int
    errors: int
    seconds: float
    latency_median_ms: float
    cpu: dict[int, float] = field(default_factory=dict)

    @property
    def req_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def cpu_per_request_us(self, pid: int) -> float:
        return self.cpu[pid] / self.requests * 1e6 if self.requests else float("nan")


def parse_wrk(output: str) -> tuple[int, float, int, float]:
    """(requests, seconds, errors, median latency in ms) from wrk's ``--latency`` output."""
    import re

    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", output)
    if m is None:
        raise ValueError(f"no request count in wrk's output:\n{output}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    requests, seconds = int(m.group(1)), float(m.group(2)) * scale
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sock:
        errors += sum(int(x) for x in sock.groups())
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    latency = float("nan")
    if p50:
        latency = float(p50.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[p50.group(2)]
    return requests, seconds, errors, latency


def run_wrk(
    url: str,
    body: bytes,
    *,
    wrk: str = "wrk",
    connections: int = 32,
    threads: int = 2,
    duration: float = 3.0,
    warmup: float = 0.5,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    cpu_pids: Sequence[int] = (),
    script_dir: str | Path | None = None,
    timeout: float = 10.0,
) -> WrkResult:
    """Load ``url`` with wrk (``connections`` keep-alive connections over ``threads``
    threads): a ``warmup`` run first (connections open, caches warm), then the measured
    run, with the CPU time of ``cpu_pids`` read around it. wrk's windows are whole
    seconds; a fractional ``duration`` is rounded up. A request unanswered after
    ``timeout`` seconds counts as an error."""
    with tempfile.NamedTemporaryFile(
        "w", suffix=".lua", dir=script_dir, delete=False, prefix="wrk-"
    ) as f:
        f.write(wrk_script(body, method, headers))
        script = f.name
    try:

        def one(seconds: float) -> str:
            argv = [
                wrk,
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{max(1, round(seconds + 0.49))}s",
            ]
            argv += ["--latency", "--timeout", f"{timeout:g}s", "-s", script, url]
            proc = subprocess.run(
                argv, capture_output=True, text=True, check=False, timeout=seconds + 60
            )
            if proc.returncode != 0:
                raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
            return proc.stdout

        if warmup > 0:
            one(warmup)
        cpu0 = {pid: cpu_seconds(pid) for pid in cpu_pids}
        out = one(duration)
        cpu1 = {pid: cpu_seconds(pid) for pid in cpu_pids}
    finally:
        os.unlink(script)
    requests, seconds, errors, latency = parse_wrk(out)
    return WrkResult(requests, errors, seconds, latency, {p: cpu1[p] - cpu0[p] for p in cpu_pids})


# -- repetitions -------------------------------------------------------------------------


def interleave(cases: Mapping[str, Callable[[], T]], repetitions: int) -> dict[str, list[T]]:
    """Run every case once per round, ``repetitions`` rounds (A,B,C,A,B,C...): slow drifts
    of a noisy machine then hit every case alike. Returns each case's results in order."""
    results: dict[str, list[T]] = {name: [] for name in cases}
    for _ in range(repetitions):
        for name, case in cases.items():
            results[name].append(case())
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def load_parser(
    description: str, *, duration: float = 2.0, repetitions: int = 3, chunks: int = 100
) -> argparse.ArgumentParser:
    """The options every interleaved load benchmark takes (the caller adds its own)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=duration, help="seconds measured per run")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds before each window")
    p.add_argument("--repetitions", type=int, default=repetitions, help="interleaved rounds")
    p.add_argument("--chunks", type=int, default=chunks, help="chunks per streamed answer")
    p.add_argument("--long", action="store_true", help="10 s windows, 5 rounds")
    p.add_argument("--json", metavar="FILE", help="also write the medians as JSON")
    return p


def run_benchmark(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` (``--long``: at least 10 s windows and 5 rounds), ``run``, print the
    ``report``, and write the results to ``--json`` if given."""
    args = parser.parse_args(argv)
    if args.long:
        args.duration, args.repetitions = max(args.duration, 10.0), max(args.repetitions, 5)
    results = run(args)
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


# -- the servers themselves (run in child processes) -------------------------------------


_CREATED = "2024-01-01T00:00:00Z"


def ollama_line(content: str, done: bool, key: str = "message", chunks: int = 100) -> bytes:
    """One line of the fake backend's Ollama stream (``key``: ``message`` for
    ``/api/chat``, ``response`` for ``/api/generate``), compact, members in the order
    Ollama's server writes them; the final one counts ``chunks`` tokens."""
    obj: dict[str, Any] = {"model": "bench:latest", "created_at": _CREATED}
    if key == "message":
        obj["message"] = {"role": "assistant", "content": content}
    else:
        obj["response"] = content
    if done:
        obj["done_reason"] = "stop"
    obj["done"] = done
    if done:
        obj.update(total_duration=1_000_000, load_duration=1000, prompt_eval_count=1)
        obj.update(prompt_eval_duration=1000, eval_count=chunks, eval_duration=1000)
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def openai_event(content: str | None, finish: str | None) -> bytes:
    """One event of the fake backend's OpenAI stream (compact, as servers write them)."""
    delta = {"content": content} if content is not None else {}
    obj = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1704067200,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def ollama_stream_lines(chunks: int, key: str = "message") -> list[bytes]:
    """The fake backend's Ollama stream: ``chunks`` text lines and the final one."""
    return [ollama_line("tok ", False, key) for _ in range(chunks)] + [
        ollama_line("", True, key, chunks)
    ]


def openai_stream_events(chunks: int) -> list[bytes]:
    """The fake backend's OpenAI stream: ``chunks`` text events, the finish, ``[DONE]``."""
    events = [openai_event("tok ", None) for _ in range(chunks)]
    return [*events, openai_event(None, "stop"), b"data: [DONE]\n\n"]


def fake_backend_app(chunks: int = 100, chunk_delay: float = 0.0, embed_dim: int = 384) -> Any:
    """A minimal, fast fake Ollama + OpenAI server: canned answers, no parsing beyond
    spotting ``"stream"`` in the body (embeddings: one ``embed_dim`` vector per input, the
    inputs counted from the parsed body)."""
    from aiohttp import web

    ollama_stream = {key: ollama_stream_lines(chunks, key) for key in ("message", "response")}
    openai_stream = openai_stream_events(chunks)
    ollama_json = {
        key: ollama_line("tok " * chunks, True, key, chunks) for key in ("message", "response")
    }
    openai_json = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1704067200,
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "tok " * chunks},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": chunks, "total_tokens": chunks + 1},
        }
    ).encode()
    tags = json.dumps(
        {"models": [{"name": "bench:latest", "model": "bench:latest", "size": 1, "digest": "0"}]}
    ).encode()
    models = json.dumps(
        {"object": "list", "data": [{"id": "bench", "object": "model", "owned_by": "bench"}]}
    ).encode()
    embed_cache: dict[tuple[str, int], bytes] = {}

    def embed_answer(api: str, count: int) -> bytes:
        """``count`` vectors of ``embed_dim`` floats, made once per (dialect, count)."""
        found = embed_cache.get((api, count))
        if found is None:
            vectors = [[round(0.001 * (i + j), 6) for j in range(embed_dim)] for i in range(count)]
            if api == "ollama":
                obj: dict[str, Any] = {"model": "bench:latest", "embeddings": vectors}
            else:
                data = [
                    {"object": "embedding", "index": i, "embedding": v}
                    for i, v in enumerate(vectors)
                ]
                obj = {"object": "list", "data": data, "model": "bench"}
                obj["usage"] = {"prompt_tokens": count, "total_tokens": count}
            found = embed_cache[(api, count)] = json.dumps(obj, separators=(",", ":")).encode()
        return found

    def embeddings(api: str) -> Any:
        async def handler(request: web.Request) -> Any:
            inputs = json.loads(await request.read()).get("input", "")
            count = len(inputs) if isinstance(inputs, list) else 1
            return web.Response(body=embed_answer(api, count), content_type="application/json")

        return handler

    async def stream_lines(request: web.Request, lines: list[bytes], ctype: str) -> Any:
        delay = float(request.query.get("chunk_delay", chunk_delay))
        resp = web.StreamResponse(headers={"Content-Type": ctype})
        await resp.prepare(request)
        for line in lines:
            await resp.write(line)
            await asyncio.sleep(delay)
        await resp.write_eof()
        return resp

    def ollama(key: str) -> Any:
        async def handler(request: web.Request) -> Any:
            body = await request.read()
            if b'"stream":false' in body or b'"stream": false' in body:
                return web.Response(body=ollama_json[key], content_type="application/json")
            return await stream_lines(request, ollama_stream[key], "application/x-ndjson")

        return handler

    async def openai_chat(request: web.Request) -> Any:
        body = await request.read()
        if b'"stream":true' in body or b'"stream": true' in body:
            return await stream_lines(request, openai_stream, "text/event-stream")
        return web.Response(body=openai_json, content_type="application/json")

    def canned(data: bytes) -> Any:
        async def handler(request: web.Request) -> Any:
            await request.read()
            return web.Response(body=data, content_type="application/json")

        return handler

    app = web.Application()
    app.router.add_post("/api/chat", ollama("message"))
    app.router.add_post("/api/generate", ollama("response"))
    app.router.add_get("/api/tags", canned(tags))
    app.router.add_post("/api/embed", embeddings("ollama"))
    app.router.add_post("/v1/embeddings", embeddings("openai"))
    app.router.add_get("/api/version", canned(b'{"version":"0.0.0-bench"}'))
    app.router.add_post("/v1/chat/completions", openai_chat)
    app.router.add_get("/v1/models", canned(models))
    return app


def relay_app(upstream: str) -> Any:
    """The baseline: the least a proxy must do — one client session, method, path, body and
    content type relayed, the answer streamed back chunk by chunk as it arrives."""
    import aiohttp
    from aiohttp import web

    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def session_ctx(app: web.Application) -> Any:
        app[session_key] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app[session_key].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        session = request.app[session_key]
        async with session.request(
            request.method, upstream + request.path_qs, data=body, headers=headers
        ) as up:
            resp = web.StreamResponse(status=up.status)
            resp.content_type = up.content_type
            await resp.prepare(request)
            async for data in up.content.iter_any():
                await resp.write(data)
            await resp.write_eof()
            return resp

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


def _serve(app: Any, port: int, uvloop: bool = False) -> None:
    from aiohttp import web

    loop = None
    if uvloop:
        import uvloop as uv

        loop = uv.new_event_loop()
    web.run_app(
        app,
        host=HOST,
        port=port,
        access_log=None,
        print=None,
        handler_cancellation=True,
        loop=loop,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ollamux benchmark processes")
    sub = parser.add_subparsers(dest="role", required=True)
    fake = sub.add_parser("fake-backend", help="fast fake Ollama/OpenAI server")
    fake.add_argument("--port", type=int, required=True)
    fake.add_argument("--chunks", type=int, default=100)
    fake.add_argument("--chunk-delay", type=float, default=0.0)
    fake.add_argument("--embed-dim", type=int, default=384)
    relay = sub.add_parser("relay", help="bare aiohttp relay baseline")
    relay.add_argument("--port", type=int, required=True)
    relay.add_argument("--upstream", required=True)
    relay.add_argument("--uvloop", action="store_true", help="run on uvloop")
    load = sub.add_parser("load", help="load generator; prints a LoadResult as JSON")
    load.add_argument("--url", required=True)
    load.add_argument("--body", default="")
    load.add_argument("--method", default="POST")
    load.add_argument("--concurrency", type=int, default=32)
    load.add_argument("--duration", type=float, default=2.0)
    load.add_argument("--warmup", type=float, default=0.5)
    load.add_argument("--stream", action="store_true")
    load.add_argument("--sse", action="store_true")
    load.add_argument("--cpu-pid", type=int, action="append", default=[])
    load.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    args = parser.parse_args(argv)
    if args.role == "fake-backend":
        _serve(fake_backend_app(args.chunks, args.chunk_delay, args.embed_dim), args.port)
    elif args.role == "relay":
        _serve(relay_app(args.upstream.rstrip("/")), args.port, uvloop=args.uvloop)
    else:
        result = asyncio.run(
            generate_load(
                args.url,
                args.body.encode(),
                concurrency=args.concurrency,
                duration=args.duration,
                warmup=args.warmup,
                stream=args.stream,
                sse=args.sse,
                method=args.method,
                cpu_pids=args.cpu_pid,
                headers=dict(_split_header(h) for h in args.header),
            )
        )
        print(result.to_json())
    return 0


def _split_header(text: str) -> tuple[str, str]:
    name, _, value = text.partition(":")
    return name.strip(), value.strip()


if __name__ == "__main__":
    raise SystemExit(main())
