"""What the ``metrics`` plugin (metrics, access log, usage parsing) costs per request and
per streamed chunk: ollamux with it against ollamux with ``plugins.disable: [metrics]``.

Both run side by side in front of one fake backend; short runs are interleaved and the
median CPU per request (non-streaming) and per chunk (paced stream) is printed, with the
ratio. CPU per unit of work is steadier than req/s on a busy machine.

    python bench/bench_metrics.py [--repetitions 5] [--duration 1.5]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=1.5)
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--paced-delay", type=float, default=0.005)
    args = p.parse_args(argv)

    with harness.Fleet() as fleet:
        backend = fleet.fake_backend()
        cfg = {"backends": [{"url": backend.url, "max_concurrency": 4096}]}
        versions = {
            "without metrics": fleet.ollamux(
                {**cfg, "plugins": {"autoload": False, "disable": ["metrics"]}}, name="off"
            ),
            "with metrics": fleet.ollamux(cfg, name="on"),
        }

        def case(server: harness.Server, mode: str) -> Callable[[], float]:
            def measure() -> float:
                paced = mode == "paced"
                url = server.url + "/api/chat"
                url += f"?chunk_delay={args.paced_delay}" if paced else ""
                r = harness.run_load(
                    url,
                    harness.ollama_chat_body(stream=paced),
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=0.3,
                    stream=paced,
                    cpu_pids=[server.pid],
                )
                if r.errors:
                    raise RuntimeError(f"{r.errors} failed requests:\n{server.log_tail()}")
                if paced:
                    return r.cpu_per_chunk_us(server.pid)
                return r.cpu_per_request_us(server.pid)

            return measure

        cases = {
            f"{mode}|{name}": case(server, mode)
            for mode in ("json", "paced")
            for name, server in versions.items()
        }
        raw = harness.interleave(cases, args.repetitions)

    medians = {name: harness.median(values) for name, values in raw.items()}
    print(f"{'':<20}{'json CPU us/req':>18}{'paced CPU us/chunk':>20}")
    for name in versions:
        print(f"{name:<20}{medians['json|' + name]:>18.1f}{medians['paced|' + name]:>20.2f}")
    off, on = versions
    print(
        f"{'with / without':<20}{medians['json|' + on] / medians['json|' + off]:>18.3f}"
        f"{medians['paced|' + on] / medians['paced|' + off]:>20.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
