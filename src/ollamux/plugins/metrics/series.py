"""Counters and histograms kept as plain Python numbers, turned into Prometheus samples only
when ``/metrics`` is scraped.

A request's end costs a few additions and one ``bisect`` per histogram: no lock (every
update and every scrape runs on the event loop's thread, so a scrape never sees half an
update) and no label lookup. The samples are the ones ``prometheus_client``'s own
``Counter`` and ``Histogram`` would expose: same names, labels, values and order (series in
the order they first appeared), ``_created`` included unless ``prometheus_client`` was told
to leave it out.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

import prometheus_client.metrics
from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]

# How prometheus_client writes a bucket's bound as its ``le`` label (untyped there).
_go_float: Callable[[float], str] = floatToGoString


def _created_wanted() -> bool:
    """``prometheus_client``'s switch for ``_created`` samples (its environment variable
    ``PROMETHEUS_DISABLE_CREATED_SERIES`` or ``disable_created_metrics()``), read per scrape."""
    return bool(getattr(prometheus_client.metrics, "_use_created", True))


class Count:
    """One counter series: a running total and when the series appeared."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()


class Buckets:
    """One histogram series: observations per bucket (not cumulative; the last one is
    ``+Inf``), their sum, and when the series appeared."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound is ``>= value``."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class CounterFamily:
    """A counter's series by label values."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.series: dict[Labels, Count] = {}

    def child(self, values: Labels) -> Count:
        found = self.series.get(values)
        if found is None:
            found = self.series[values] = Count()
        return found

    def metric(self) -> Metric:
        created = _created_wanted()
        family = Metric(self.name, self.documentation, "counter")
        for values, count in self.series.items():
            labels = dict(zip(self.labelnames, values, strict=True))
            family.add_sample(self.name + "_total", labels, float(count.value))
            if created:
                family.add_sample(self.name + "_created", labels, count.created)
        return family


class HistogramFamily:
    """A histogram's series by label values; every series has the family's buckets."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Iterable[float],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self._les = [_go_float(b) for b in self.bounds] + ["+Inf"]
        self.series: dict[Labels, Buckets] = {}
        if not self.labelnames:  # like prometheus_client: an unlabelled series always exists
            self.child(())

    def child(self, values: Labels) -> Buckets:
        found = self.series.get(values)
        if found is None:
            found = self.series[values] = Buckets(self.bounds)
        return found

    def metric(self) -> Metric:
        created = _created_wanted()
        family = Metric(self.name, self.documentation, "histogram")
        name = self.name
        for values, buckets in self.series.items():
            labels = dict(zip(self.labelnames, values, strict=True))
            total = 0
            for le, n in zip(self._les, buckets.counts, strict=True):
                total += n
                family.add_sample(name + "_bucket", {**labels, "le": le}, float(total))
            family.add_sample(name + "_count", labels, float(total))
            family.add_sample(name + "_sum", labels, buckets.sum)
            if created:
                family.add_sample(name + "_created", labels, buckets.created)
        return family
