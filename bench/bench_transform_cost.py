"""What the translated streams' response transforms cost, and the most a faster one could
save.

- In process (the default, a few seconds): microseconds per 100-chunk stream (``--chunks``)
  of the two chat translations' transforms, ``openai->ollama`` (an Ollama backend's NDJSON
  as SSE for an OpenAI client) and ``ollama->openai`` (an OpenAI backend's SSE as NDJSON),
  fed the fake backend's stream in reads of ``--lines`` lines or events each (14 is what a
  back-to-back read carried here), split into the stream's set-up, its first read, its
  middle reads and its last read with the end. Medians of ``--repeat`` timings.
- ``--e2e``: ``bench_translate``'s back-to-back load (32 clients) on the relay, the
  passthrough and both translations, next to the same translations with a *free*
  transform: each read is answered from a cache keyed by its bytes (a ``sitecustomize``
  on that proxy's ``PYTHONPATH`` wraps ``feed``; a miss runs the real one). The gap
  between a translation and its free twin is what its transform costs in the running
  proxy; the twin is the floor a faster transform (a compiled helper) could reach.

    python bench/bench_transform_cost.py                 # in process
    python bench/bench_transform_cost.py --e2e           # ~2 minutes
    python bench/bench_transform_cost.py --e2e --long --json out.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

# Answers each read of a translated stream from a cache keyed by its bytes (misses run the
# real ``feed`` and fill the cache): loaded by the proxy as its ``sitecustomize``.
FREE_TRANSFORM = """
from ollamux.plugins.translate import stream

_CACHE = {}


def _free(cls):
    real = cls.feed

    def feed(self, data):
        hit = _CACHE.get((cls, data))
        if hit is not None and self.mode == "stream":
            out, done = hit
            self.stream.done = self.stream.done or done
            self.sent = True
            return out
        out = real(self, data)
        if len(_CACHE) < 20000 and not self.lines.pending:
            _CACHE[(cls, data)] = (out, self.stream.done)
        return out

    cls.feed = feed


_free(stream.OllamaToOpenAI)
_free(stream.OpenAIToOllama)
"""

E2E_CASES = (
    "relay",
    "passthrough",
    "openai->ollama",
    "openai->ollama (free)",
    "ollama->openai",
    "ollama->openai (free)",
)
PARTS = ("set-up", "first read", "middle reads", "last read + end", "whole stream")


def _transforms(chunks: int, lines: int) -> dict[str, tuple[Callable[[], Any], list[bytes]]]:
    """Per translation: a factory of its transform, ready for a stream, and the reads."""
    from multidict import CIMultiDict

    from ollamux.dialect import NDJSON, SSE, Dialect
    from ollamux.exchange import Exchange, ResponseHead
    from ollamux.plugins.translate import ollama_to_openai_response as to_openai
    from ollamux.plugins.translate import openai_to_ollama_response as to_ollama
    from ollamux.plugins.translate.stream import OllamaToOpenAI, OpenAIToOllama

    def exchange(dialect: Dialect) -> Exchange:
        return Exchange(
            None,  # type: ignore[arg-type]  # no gateway: the transform never asks for it
            None,
            None,
            "POST",
            "/api/chat",
            "",
            CIMultiDict(),
            b"",
            dialect,
        )

    def openai_client() -> Any:
        t = OllamaToOpenAI(
            exchange(Dialect.OPENAI), lambda o: o, to_openai.ChatStream("bench:latest")
        )
        t.head(ResponseHead(200, CIMultiDict({"Content-Type": NDJSON})))
        return t

    def ollama_client() -> Any:
        t = OpenAIToOllama(exchange(Dialect.OLLAMA), lambda o: o, to_ollama.ChatStream("bench"))
        t.head(ResponseHead(200, CIMultiDict({"Content-Type": SSE})))
        return t

    def reads(items: list[bytes]) -> list[bytes]:
        return [b"".join(items[i : i + lines]) for i in range(0, len(items), lines)]

    return {
        "openai->ollama": (openai_client, reads(harness.ollama_stream_lines(chunks))),
        "ollama->openai": (ollama_client, reads(harness.openai_stream_events(chunks))),
    }


def _time_us(step: Callable[[], object], number: int, repeat: int) -> float:
    """The median over ``repeat`` timings of ``number`` calls of ``step``, in us per call."""
    timings = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            step()
        timings.append((time.perf_counter_ns() - start) / number / 1000)
    return harness.median(timings)


def _fed(make: Callable[[], Any], reads: list[bytes], end: bool) -> Callable[[], None]:
    """A step that makes a transform and feeds it ``reads`` (and its end if ``end``)."""

    def step() -> None:
        t = make()
        for data in reads:
            t.feed(data)
        if end:
            t.end()

    return step


def in_process(args: argparse.Namespace) -> dict[str, Any]:
    """Microseconds per stream of each transform, by part of the stream (cumulative
    timings of a stream fed up to a point, less the point before)."""
    out: dict[str, Any] = {}
    for name, (make, reads) in _transforms(args.chunks, args.lines).items():
        n = len(reads)
        total = [
            _time_us(_fed(make, reads[:count], end), args.number, args.repeat)
            for count, end in ((0, False), (1, False), (n - 1, False), (n, True))
        ]
        out[name] = {
            "reads": n,
            "set-up": total[0],
            "first read": total[1] - total[0],
            "middle reads": total[2] - total[1],
            "last read + end": total[3] - total[2],
            "whole stream": total[3],
        }
    return {
        "settings": {"chunks": args.chunks, "lines_per_read": args.lines},
        "in_process_us": out,
    }


def e2e(args: argparse.Namespace) -> dict[str, Any]:
    """CPU per chunk of the relay, the passthrough and both translations, each translation
    beside its free-transform twin, back to back, interleaved."""
    with harness.Fleet() as fleet:
        free = fleet.tmp / "free-transform"
        free.mkdir()
        (free / "sitecustomize.py").write_text(FREE_TRANSFORM)
        backend = fleet.fake_backend(chunks=args.chunks)

        def gateway(api: str, name: str, src: Path | None = None) -> harness.Server:
            config = {"backends": [{"url": backend.url, "api": api, "max_concurrency": 4096}]}
            return fleet.ollamux(config, name=name, src=src)

        over_ollama, over_openai = gateway("ollama", "ollama"), gateway("openai", "openai")
        free_ollama = gateway("ollama", "ollama-free", free)
        free_openai = gateway("openai", "openai-free", free)
        to_openai = ("/v1/chat/completions", harness.openai_chat_body(True, "bench:latest"), True)
        to_ollama = ("/api/chat", harness.ollama_chat_body(True, model="bench"), False)
        setups = {
            "relay": (fleet.relay(backend.url), "/api/chat", harness.ollama_chat_body(True), False),
            "passthrough": (over_ollama, "/api/chat", harness.ollama_chat_body(True), False),
            "openai->ollama": (over_ollama, *to_openai),
            "openai->ollama (free)": (free_ollama, *to_openai),
            "ollama->openai": (over_openai, *to_ollama),
            "ollama->openai (free)": (free_openai, *to_ollama),
        }

        def case(name: str) -> Callable[[], float]:
            proxy, path, body, sse = setups[name]

            def measure() -> float:
                r = harness.run_load(
                    proxy.url + path,
                    body,
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    stream=True,
                    sse=sse,
                    cpu_pids=[proxy.pid],
                )
                return r.cpu_per_chunk_us(proxy.pid)

            return measure

        raw = harness.interleave({c: case(c) for c in E2E_CASES}, args.repetitions)
    return {
        "settings": {
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "repetitions": args.repetitions,
            "chunks_per_stream": args.chunks,
        },
        "cpu_per_chunk_us": {c: harness.median(v) for c, v in raw.items()},
        "rounds": raw,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    return e2e(args) if args.e2e else in_process(args)


def report(results: dict[str, Any]) -> str:
    if "in_process_us" in results:
        s = results["settings"]
        lines = [
            f"response transforms in process, us per {s['chunks']}-chunk stream, "
            f"{s['lines_per_read']} lines per read",
            "",
            f"{'translation':16s} {'reads':>5s}" + "".join(f"{p:>17s}" for p in PARTS),
        ]
        for name, parts in results["in_process_us"].items():
            cells = "".join(f"{parts[p]:17.1f}" for p in PARTS)
            lines.append(f"{name:16s} {parts['reads']:5d}{cells}")
        return "\n".join(lines)
    s, cpu = results["settings"], results["cpu_per_chunk_us"]
    relay = cpu["relay"]
    lines = [
        f"back-to-back streams, {s['concurrency']} clients, {s['repetitions']} x "
        f"{s['duration_s']:g} s interleaved, {s['chunks_per_stream']} chunks/stream",
        "",
        f"{'case':24s} {'CPU us/chunk':>12s} {'/ relay':>8s}",
    ]
    lines += [f"{c:24s} {cpu[c]:12.2f} {cpu[c] / relay:8.2f}" for c in E2E_CASES]
    lines.append("")
    for c in ("openai->ollama", "ollama->openai"):
        saved = 1 - cpu[f"{c} (free)"] / cpu[c]
        lines.append(f"{c}: the transform is {saved:.0%} of its CPU per chunk")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = harness.load_parser(__doc__.split("\n\n")[0], repetitions=5)
    p.add_argument("--e2e", action="store_true", help="end to end, with free-transform twins")
    p.add_argument("--lines", type=int, default=14, help="lines or events per read")
    p.add_argument("--number", type=int, default=2000, help="streams per in-process timing")
    p.add_argument("--repeat", type=int, default=7, help="in-process timings per figure")
    return p


def main(argv: list[str] | None = None) -> int:
    return harness.run_benchmark(_parser(), run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
