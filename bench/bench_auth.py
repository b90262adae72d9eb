"""What auth costs: ollamux with no keys against ollamux with keys, same load.

Both gateways run side by side in front of one fake backend; short non-streaming
``/api/chat`` runs are interleaved (off, on, off, on...) and the medians compared. The
"on" gateway has 50 keys configured, the caller's with a model allow-list, so the request
pays for the key lookup, the allow-list check and the listing-free path of the hooks.
The target is ``on/off`` req/s >= 0.95 (auth costs at most 5 %); CPU per request is
printed too, being far steadier than req/s on a busy machine. Last, the auth work itself
(finding the key, checking the model) is timed in this process, in microseconds per request.

    python bench/bench_auth.py
    python bench/bench_auth.py --repetitions 10 --concurrency 64
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

KEY = "bench-key-0123456789abcdef"


def keyed_config(backend_url: str) -> dict[str, object]:
    keys = [{"name": f"k{i}", "key": f"other-key-{i:04d}"} for i in range(49)]
    keys.append({"name": "bench", "key": KEY, "models": ["bench:*", "llama*"]})
    return {
        "backends": [{"url": backend_url, "max_concurrency": 4096}],
        "auth": {"keys": keys},
    }


def auth_work_us(number: int = 100_000) -> float:
    """Microseconds one request spends finding its key and checking its model."""
    from multidict import CIMultiDict

    from ollamux.config_loader import build_config
    from ollamux.plugins.auth.keys import KeyRing, presented_key
    from ollamux.plugins.auth.policy import model_allowed

    config = build_config(keyed_config("http://127.0.0.1:9"))
    ring = KeyRing.from_config(config.auth)
    headers = CIMultiDict({"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})

    def one() -> None:
        entry = ring.lookup(presented_key(headers) or "")
        assert entry is not None
        model_allowed(entry.principal, "bench:latest")

    # CPU time, not wall time: on a busy machine the process is often not running at all.
    return timeit.Timer(one, timer=time.process_time).timeit(number) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=1.5)
    p.add_argument("--repetitions", type=int, default=5)
    args = p.parse_args(argv)

    with harness.Fleet() as fleet:
        backend = fleet.fake_backend()
        plain = {"backends": [{"url": backend.url, "max_concurrency": 4096}]}
        servers = {
            "auth off": (fleet.ollamux(plain, name="off"), {}),
            "auth on": (
                fleet.ollamux(keyed_config(backend.url), name="on"),
                {"Authorization": f"Bearer {KEY}"},
            ),
        }

        def case(
            server: harness.Server, headers: dict[str, str]
        ) -> Callable[[], tuple[float, float]]:
            def measure() -> tuple[float, float]:
                r = harness.run_load(
                    server.url + "/api/chat",
                    harness.ollama_chat_body(stream=False),
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=0.3,
                    cpu_pids=[server.pid],
                    headers=headers,
                )
                if r.errors:
                    raise RuntimeError(f"{r.errors} failed requests:\n{server.log_tail()}")
                return r.req_s, r.cpu_per_request_us(server.pid)

            return measure

        raw = harness.interleave(
            {name: case(server, headers) for name, (server, headers) in servers.items()},
            args.repetitions,
        )

    print(f"{'':<12}{'req/s':>10}{'CPU us/req':>14}")
    medians = {}
    for name, runs in raw.items():
        rps = harness.median([r[0] for r in runs])
        cpu = harness.median([r[1] for r in runs])
        medians[name] = (rps, cpu)
        print(f"{name:<12}{rps:>10.0f}{cpu:>14.1f}")
    (off_rps, off_cpu), (on_rps, on_cpu) = medians["auth off"], medians["auth on"]
    print(f"{'on/off':<12}{on_rps / off_rps:>10.3f}{on_cpu / off_cpu:>14.3f}")
    work = auth_work_us()
    print(f"auth work: {work:.1f} us/request = {work / off_cpu:.1%} of the CPU of a request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
