"""What each built-in plugin costs on the request path.

Runs ollamux with every default plugin and, side by side, once per plugin with that one
disabled (``plugins.disable``), interleaved; prints the CPU each spends per non-streamed
request and per paced streamed chunk, and the difference to the full set: the plugin's
cost. ``balancer`` cannot be disabled (it picks the backend).

    python bench/bench_plugins.py
    python bench/bench_plugins.py --plugins tasks metrics --repetitions 7
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

OPTIONAL = ("tasks", "jobs", "metrics", "cors", "auth", "model_rewrite", "translate")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plugins", nargs="+", default=list(OPTIONAL), help="plugins to price")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=1.5)
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--paced-delay", type=float, default=0.005)
    args = p.parse_args(argv)

    with harness.Fleet() as fleet:
        backend = fleet.fake_backend()
        base = {"backends": [{"url": backend.url, "max_concurrency": 4096}]}
        variants = {"all plugins": fleet.ollamux(base, name="all")}
        for plugin in args.plugins:
            cfg = {**base, "plugins": {"disable": [plugin]}}
            variants[f"without {plugin}"] = fleet.ollamux(cfg, name=f"no-{plugin}")

        def case(server: harness.Server, paced: float | None) -> Callable[[], float]:
            return lambda: harness.cpu_cost(
                server, paced_delay=paced, concurrency=args.concurrency, duration=args.duration
            )

        cases = {
            f"{mode}|{name}": case(server, args.paced_delay if mode == "paced" else None)
            for mode in ("json", "paced")
            for name, server in variants.items()
        }
        raw = harness.interleave(cases, args.repetitions)

    med = {name: harness.median(values) for name, values in raw.items()}
    full_json, full_paced = med["json|all plugins"], med["paced|all plugins"]
    print(f"{'':<24}{'CPU us/req':>12}{'plugin cost':>13}{'CPU us/chunk':>14}{'plugin cost':>13}")
    for name in variants:
        j, c = med[f"json|{name}"], med[f"paced|{name}"]
        print(f"{name:<24}{j:>12.0f}{full_json - j:>13.0f}{c:>14.2f}{full_paced - c:>13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
