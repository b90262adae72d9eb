"""Translation overhead: CPU per streamed chunk when ollamux translates, against the bare
aiohttp relay's passthrough, measured in the same run.

Cases, interleaved over ``--repetitions`` rounds, each streaming ``--chunks`` chunks per
answer from one fake backend (which speaks both dialects):

- ``relay``: Ollama client -> bare relay -> Ollama backend (the baseline)
- ``relay-uvloop``: the same relay on uvloop, the loop ollamux takes when it is installed
  (as it is by default): the ratios against it show what is ollamux's own
- ``passthrough``: Ollama client -> ollamux -> Ollama backend (no translation)
- ``openai->ollama``: OpenAI client -> ollamux -> Ollama backend (NDJSON -> SSE)
- ``ollama->openai``: Ollama client -> ollamux -> OpenAI backend (SSE -> NDJSON)
- ``messages->ollama`` / ``responses->ollama``: Anthropic Messages / OpenAI Responses
  client -> ollamux -> Ollama backend (NDJSON -> named SSE events)
- ``messages->openai`` / ``responses->openai``: the same fronts over the OpenAI backend
  (SSE chunks -> named SSE events)

in two modes: ``stream`` (chunks as fast as the backend makes them, often several per
read) and ``paced`` (``--paced-delay`` between chunks, one read each, like a model's
tokens). Prints medians and the ratios against the targets (translated CPU per chunk
<= 2x the relay's passthrough CPU per chunk; the fronts' CPU per chunk <= 1.2x the
chat-completions translation's, ``openai->ollama``, over the same backend kind; over the
OpenAI backend the fronts are compared with ``ollama->openai``, the other SSE-reading
translation). A chunk is an event the client receives (a named event counts once).

    python bench/bench_translate.py              # ~1 minute
    python bench/bench_translate.py --long --json results.json
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

CASES = (
    "relay",
    "relay-uvloop",
    "passthrough",
    "openai->ollama",
    "ollama->openai",
    "messages->ollama",
    "responses->ollama",
    "messages->openai",
    "responses->openai",
)
MODES = ("stream", "paced")
CPU_RATIO_TARGET = 2.0
FRONTS_RATIO_TARGET = 1.2
# the chat-completions translation each front is compared with
FRONT_BASELINES = {
    "messages->ollama": "openai->ollama",
    "responses->ollama": "openai->ollama",
    "messages->openai": "ollama->openai",
    "responses->openai": "ollama->openai",
}
# named SSE events (``event: x\ndata: ...\n\n``) have 3 newlines where the harness counts 2
NAMED_EVENTS = frozenset(FRONT_BASELINES)


def _messages_body(model: str) -> bytes:
    return json.dumps(
        {
            "model": model,
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
    ).encode()


def _responses_body(model: str) -> bytes:
    return json.dumps({"model": model, "input": "hi", "stream": True}).encode()


def _parser() -> argparse.ArgumentParser:
    p = harness.load_parser(__doc__.split("\n\n")[0])
    p.add_argument("--paced-delay", type=float, default=0.005, help="seconds between chunks")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the servers, run the interleaved load, return the medians."""
    with harness.Fleet() as fleet:
        backend = fleet.fake_backend(chunks=args.chunks)
        relay = fleet.relay(backend.url)
        relay_uv = fleet.relay(backend.url, uvloop=True)
        over_ollama = fleet.ollamux(
            {"backends": [{"url": backend.url, "api": "ollama", "max_concurrency": 4096}]},
            name="ollamux-ollama",
        )
        over_openai = fleet.ollamux(
            {"backends": [{"url": backend.url, "api": "openai", "max_concurrency": 4096}]},
            name="ollamux-openai",
        )
        # case -> (proxy, path, body for stream=True, client reads SSE)
        setups = {
            "relay": (relay, "/api/chat", harness.ollama_chat_body(True), False),
            "relay-uvloop": (relay_uv, "/api/chat", harness.ollama_chat_body(True), False),
            "passthrough": (over_ollama, "/api/chat", harness.ollama_chat_body(True), False),
            "openai->ollama": (
                over_ollama,
                "/v1/chat/completions",
                harness.openai_chat_body(True, model="bench:latest"),
                True,
            ),
            "ollama->openai": (
                over_openai,
                "/api/chat",
                harness.ollama_chat_body(True, model="bench"),
                False,
            ),
            "messages->ollama": (over_ollama, "/v1/messages", _messages_body("bench:latest"), True),
            "responses->ollama": (
                over_ollama,
                "/v1/responses",
                _responses_body("bench:latest"),
                True,
            ),
            "messages->openai": (over_openai, "/v1/messages", _messages_body("bench"), True),
            "responses->openai": (over_openai, "/v1/responses", _responses_body("bench"), True),
        }

        def case(name: str, mode: str) -> Callable[[], dict[str, float]]:
            proxy, path, body, sse = setups[name]
            url = proxy.url + path
            if mode == "paced":
                url += f"?chunk_delay={args.paced_delay}"

            named = 1.5 if name in NAMED_EVENTS else 1.0

            def measure() -> dict[str, float]:
                r = harness.run_load(
                    url,
                    body,
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    stream=True,
                    sse=sse,
                    cpu_pids=[proxy.pid, backend.pid],
                )
                return {
                    "req_s": r.req_s,
                    "chunks_s": r.chunks_s / named,
                    "errors": r.errors,
                    "cpu_per_chunk_us": r.cpu_per_chunk_us(proxy.pid) * named,
                    "client_cpu_share": r.client_cpu / r.seconds,
                }

            return measure

        cases = {f"{c}/{m}": case(c, m) for m in MODES for c in CASES}
        raw = harness.interleave(cases, args.repetitions)
    medians = {
        name: {k: harness.median([one[k] for one in runs]) for k in runs[0]}
        for name, runs in raw.items()
    }
    ratios = {}
    for mode in MODES:
        base = medians[f"relay/{mode}"]["cpu_per_chunk_us"]
        for c in CASES[1:]:
            ratios[f"cpu/chunk {c} / relay ({mode})"] = (
                medians[f"{c}/{mode}"]["cpu_per_chunk_us"] / base if base else float("nan")
            )
        same_loop = medians[f"relay-uvloop/{mode}"]["cpu_per_chunk_us"]
        for c in ("passthrough", "openai->ollama", "ollama->openai"):
            ratios[f"cpu/chunk {c} / relay-uvloop ({mode})"] = (
                medians[f"{c}/{mode}"]["cpu_per_chunk_us"] / same_loop
                if same_loop
                else float("nan")
            )
        for front, baseline in FRONT_BASELINES.items():
            under = medians[f"{baseline}/{mode}"]["cpu_per_chunk_us"]
            ratios[f"cpu/chunk {front} / {baseline} ({mode})"] = (
                medians[f"{front}/{mode}"]["cpu_per_chunk_us"] / under if under else float("nan")
            )
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "settings": {
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "repetitions": args.repetitions,
            "chunks_per_stream": args.chunks,
            "paced_delay_s": args.paced_delay,
            "machine": f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}",
        },
        "medians": medians,
        "ratios": ratios,
    }


def report(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        f"translation, {s['concurrency']} clients, {s['repetitions']} x {s['duration_s']:g} s "
        f"interleaved, {s['chunks_per_stream']} chunks/stream; {s['machine']}",
        "",
        f"{'case':<24}{'req/s':>8}{'chunks/s':>11}{'CPU us/chunk':>14}{'client CPU':>12}"
        f"{'errors':>8}",
    ]
    for name, m in results["medians"].items():
        lines.append(
            f"{name:<24}{m['req_s']:>8.0f}{m['chunks_s']:>11.0f}{m['cpu_per_chunk_us']:>14.1f}"
            f"{m['client_cpu_share']:>12.0%}{m['errors']:>8.0f}"
        )
    lines.append(
        "(CPU us/chunk: the proxy process's CPU over the chunks its clients received; a"
        " translated OpenAI stream has 2 more events per answer than the backend's lines)"
    )
    lines.append("")
    for name, value in results["ratios"].items():
        lines.append(f"{name:<44}{value:>6.2f}")
    ratios = results["ratios"]
    worst = max(v for k, v in ratios.items() if k.startswith("cpu/chunk openai->ollama / relay ("))
    verdict = "met" if worst <= CPU_RATIO_TARGET else "MISSED"
    lines += ["", f"target: translated CPU/chunk <= {CPU_RATIO_TARGET:g}x relay: {verdict}"]
    for c in ("passthrough", "openai->ollama", "ollama->openai"):  # issue 16's target
        worst = max(ratios[f"cpu/chunk {c} / relay ({mode})"] for mode in MODES)
        verdict = "met" if worst <= 1.0 else "MISSED"
        lines.append(f"target: {c} CPU/chunk <= the relay's: {verdict} (worst {worst:.2f})")
    fronts = [
        v
        for k, v in results["ratios"].items()
        if any(k.startswith(f"cpu/chunk {f} / {b} (") for f, b in FRONT_BASELINES.items())
    ]
    verdict = "met" if max(fronts) <= FRONTS_RATIO_TARGET else "MISSED"
    lines.append(
        f"target: fronts' CPU/chunk <= {FRONTS_RATIO_TARGET:g}x the chat-completions "
        f"translation: {verdict} (worst {max(fronts):.2f})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return harness.run_benchmark(_parser(), run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
