"""A/B: the installed (working tree) ollamux against another git revision, same load.

Exports ``--base`` (default ``HEAD``) into a temporary directory, runs both versions side
by side in front of one fake backend, interleaves short runs (A,B,A,B...) and prints the
median CPU each spends per request (non-streaming) and per chunk (paced stream). CPU time
per unit of work is far steadier than req/s on a busy machine, so small changes show.

    python bench/bench_ab.py                 # working tree vs HEAD
    python bench/bench_ab.py --base main --repetitions 10
    python bench/bench_ab.py --wrk --path /v1/chat/completions   # req/s and CPU under wrk
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.bench_passthrough import OPTIONAL_PLUGINS

REPO = Path(__file__).resolve().parent.parent


def export_src(rev: str, dest: Path) -> Path:
    """Extract ``src/`` of git revision ``rev`` under ``dest``; returns that ``src``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="HEAD", help="git revision to compare against")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=1.5)
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--paced-delay", type=float, default=0.005)
    p.add_argument(
        "--core", action="store_true", help="disable the optional plugins in both versions"
    )
    p.add_argument(
        "--wrk", action="store_true", help="non-streamed requests under wrk (req/s, CPU/req)"
    )
    p.add_argument("--path", default="/api/chat", help="with --wrk: the path to load")
    p.add_argument("--body", default="", help="with --wrk: the JSON body (default: a chat)")
    p.add_argument(
        "--config",
        default="{}",
        help="with --wrk: JSON merged into both configs; {name} becomes base or work",
    )
    args = p.parse_args(argv)
    if args.wrk:
        return _main_wrk(args)

    with harness.Fleet() as fleet:
        base_src = export_src(args.base, fleet.tmp / "base")
        backend = fleet.fake_backend()
        cfg: dict[str, object] = {"backends": [{"url": backend.url, "max_concurrency": 4096}]}
        if args.core:
            cfg["plugins"] = {"disable": list(OPTIONAL_PLUGINS)}
        versions = {
            f"A {args.base}": fleet.ollamux(cfg, name="base", src=base_src),
            "B working tree": fleet.ollamux(cfg, name="work"),
        }

        def case(server: harness.Server, mode: str) -> Callable[[], float]:
            paced = args.paced_delay if mode == "paced" else None
            return lambda: harness.cpu_cost(
                server, paced_delay=paced, concurrency=args.concurrency, duration=args.duration
            )

        cases = {
            f"{mode}|{name}": case(server, mode)
            for mode in ("json", "paced")
            for name, server in versions.items()
        }
        raw = harness.interleave(cases, args.repetitions)

    print(f"{'':<28}{'json CPU us/req':>18}{'paced CPU us/chunk':>20}")
    medians = {name: harness.median(values) for name, values in raw.items()}
    for name in versions:
        print(f"{name:<28}{medians['json|' + name]:>18.1f}{medians['paced|' + name]:>20.2f}")
    a, b = versions
    print(
        f"{'B/A':<28}{medians['json|' + b] / medians['json|' + a]:>18.3f}"
        f"{medians['paced|' + b] / medians['paced|' + a]:>20.3f}"
    )
    return 0


def _main_wrk(args: argparse.Namespace) -> int:
    """A and B under wrk: median req/s and CPU per request, and each round's B/A."""
    import json

    wrk = harness.find_wrk()
    if wrk is None:
        print(harness.WRK_INSTALL_HINT, file=sys.stderr)
        return 2
    body = args.body.encode() or harness.ollama_chat_body(stream=False)
    with harness.Fleet() as fleet:
        base_src = export_src(args.base, fleet.tmp / "base")
        backend = fleet.fake_backend()
        cfg: dict[str, Any] = {"backends": [{"url": backend.url, "max_concurrency": 4096}]}
        if args.core:
            cfg["plugins"] = {"disable": list(OPTIONAL_PLUGINS)}

        def config(name: str) -> dict[str, Any]:  # "{name}" in --config: per version
            return harness._deep_merge(cfg, json.loads(args.config.replace("{name}", name)))

        versions = {
            f"A {args.base}": fleet.ollamux(config("base"), name="base", src=base_src),
            "B working tree": fleet.ollamux(config("work"), name="work"),
        }

        def case(server: harness.Server) -> Callable[[], tuple[float, float]]:
            def measure() -> tuple[float, float]:
                r = harness.run_wrk(
                    server.url + args.path,
                    body,
                    wrk=wrk,
                    connections=args.concurrency,
                    duration=max(1.0, args.duration),
                    warmup=0.5,
                    cpu_pids=[server.pid],
                    script_dir=fleet.tmp,
                )
                if r.errors:
                    raise RuntimeError(f"{r.errors} errors from {server.name}")
                return r.req_s, r.cpu_per_request_us(server.pid)

            return measure

        raw = harness.interleave({n: case(s) for n, s in versions.items()}, args.repetitions)
    a, b = versions
    print(f"{'':<28}{'req/s':>10}{'CPU us/req':>12}")
    for name in versions:
        req = harness.median([x[0] for x in raw[name]])
        cpu = harness.median([x[1] for x in raw[name]])
        print(f"{name:<28}{req:>10.0f}{cpu:>12.1f}")
    pairs = list(zip(raw[a], raw[b], strict=True))
    req_ratio = harness.median([y[0] / x[0] for x, y in pairs])
    cpu_ratio = harness.median([y[1] / x[1] for x, y in pairs])
    print(f"{'B/A (median of rounds)':<28}{req_ratio:>10.3f}{cpu_ratio:>12.3f}")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
