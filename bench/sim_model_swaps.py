"""How many model loads does the loaded-model preference save?

A discrete-event simulation of a small fleet: 4 Ollama backends (one request at a time each,
Ollama's default), 8 models, each backend's GPU holding a few models at once (least recently
used one evicted). Requests arrive at random with locality: most ask for a model asked for
recently (a conversation goes on), the rest pick a model by popularity (Zipf). The real
``choose()`` of the balancer routes them, once with its loaded-model preference and once as
plain least-in-flight (the same function told nothing about the model). A request routed
to a backend without its model in memory pays a load before it runs.

    python bench/sim_model_swaps.py [--requests 4000] [--seeds 5] [--slots 2]
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ollamux.backend import Backend
from ollamux.fleet import Verdict
from ollamux.plugins.selection import choose

MODELS = [f"model-{i}:7b" for i in range(8)]


@dataclass
class Gpu:
    """What a backend holds in memory, least recently used first."""

    slots: int
    resident: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def use(self, model: str) -> bool:
        """Run ``model``; True when it had to be loaded first."""
        if model in self.resident:
            self.resident.move_to_end(model)
            return False
        self.resident[model] = None
        if len(self.resident) > self.slots:
            self.resident.popitem(last=False)
        return True


@dataclass
class Result:
    loads: int
    latencies: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[-1]


def workload(n: int, seed: int, locality: float, rate: float) -> list[tuple[float, str]]:
    """(arrival time, model) pairs: a Poisson stream; with probability ``locality`` the
    model is one of the last few asked for, else a Zipf draw over all models."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(MODELS))]
    recent: deque[str] = deque(maxlen=4)
    t = 0.0
    out = []
    for _ in range(n):
        t += rng.expovariate(rate)
        if recent and rng.random() < locality:
            model = rng.choice(list(recent))
        else:
            model = rng.choices(MODELS, weights)[0]
        recent.append(model)
        out.append((t, model))
    return out


def simulate(
    requests: list[tuple[float, str]],
    prefer_loaded: bool,
    slots: int,
    seed: int,
    run_s: float,
    load_s: float,
) -> Result:
    rng = random.Random(seed + 1)
    backends = [Backend(name=f"gpu{i}", url=f"http://gpu{i}", models=set(MODELS)) for i in range(4)]
    gpus = {b.name: Gpu(slots) for b in backends}
    events: list[tuple[float, int, str, object]] = []  # (time, seq, kind, payload)
    seq = 0
    for arrival, model in requests:
        events.append((arrival, seq, "arrive", (arrival, model)))
        seq += 1
    heapq.heapify(events)
    waiting: deque[tuple[float, str]] = deque()
    loads = 0
    latencies: list[float] = []

    def start(now: float, arrival: float, model: str) -> bool:
        nonlocal loads, seq
        choice = choose(backends, model if prefer_loaded else None, set(), True, 0.0)
        if choice.verdict is not Verdict.PICKED or choice.backend is None:
            return False
        b = choice.backend
        b.in_flight += 1
        loaded = gpus[b.name].use(model)
        loads += loaded
        b.loaded_models = set(gpus[b.name].resident)  # what /api/ps would report
        done = now + (load_s if loaded else 0.0) + rng.expovariate(1 / run_s)
        heapq.heappush(events, (done, seq, "done", (b, arrival)))
        seq += 1
        return True

    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == "arrive":
            arrival, model = payload  # type: ignore[misc]
            if waiting or not start(now, arrival, model):
                waiting.append((arrival, model))
        else:
            b, arrival = payload  # type: ignore[misc]
            b.in_flight -= 1
            latencies.append(now - arrival)
            while waiting and start(now, *waiting[0]):
                waiting.popleft()
    return Result(loads, latencies)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--slots", type=int, default=2, help="models a GPU holds at once")
    ap.add_argument("--locality", type=float, default=0.8)
    ap.add_argument("--rate", type=float, default=0.5, help="requests per second")
    ap.add_argument("--run-s", type=float, default=2.0, help="mean generation time")
    ap.add_argument("--load-s", type=float, default=6.0, help="time to load a model")
    args = ap.parse_args()
    print(
        f"4 backends x 1 slot, 8 models, GPUs hold {args.slots} model(s), "
        f"{args.requests} requests at {args.rate}/s, locality {args.locality}, "
        f"run {args.run_s} s, load {args.load_s} s; {args.seeds} seeds"
    )
    totals: dict[str, list[Result]] = {"least in flight": [], "loaded preferred": []}
    for seed in range(args.seeds):
        reqs = workload(args.requests, seed, args.locality, args.rate)
        for label, prefer in (("least in flight", False), ("loaded preferred", True)):
            totals[label].append(simulate(reqs, prefer, args.slots, seed, args.run_s, args.load_s))
    for label, results in totals.items():
        loads = statistics.mean(r.loads for r in results)
        p50 = statistics.mean(r.p50 for r in results)
        p95 = statistics.mean(r.p95 for r in results)
        print(
            f"  {label:17s}: {loads:7.0f} model loads ({loads / args.requests:5.1%} of requests), "
            f"latency p50 {p50:5.1f} s, p95 {p95:6.1f} s"
        )
    plain = statistics.mean(r.loads for r in totals["least in flight"])
    smart = statistics.mean(r.loads for r in totals["loaded preferred"])
    print(f"  loaded-model preference: {1 - smart / plain:.0%} fewer model loads")


if __name__ == "__main__":
    main()
