"""Beam metrics on the Dask runner: counters and distributions kept on each worker, gathered at the end.

Beam's DaskRunner sets no metrics context, so `Metrics.counter(...).inc()` in a DoFn does nothing
there and `result.metrics()` raises. Here a bundle runs with a tracker whose metrics container is
this worker's for (run, transform) — the same cells Beam's own workers update — and when the
pipeline is done the client gathers every worker's containers (`client.run`) and sums them. A task
that is retried reports the CPU both attempts spent (metrics are `attempted`, as Beam calls them);
a worker that died takes its metrics with it.
"""

from __future__ import annotations

import threading
import typing as t

from apache_beam.metrics.cells import DistributionData, DistributionResult
from apache_beam.metrics.execution import MetricKey, MetricResult, MetricsContainer
from apache_beam.metrics.metric import MetricResults, MetricsFilter
from apache_beam.metrics.metricbase import MetricName

from lemur_corpus.pipelines.profile import GROUPING_BYTES, GROUPING_ITEMS, GROUPINGS

_CONTAINERS: dict[tuple[str, str], MetricsContainer] = {}
"""This worker's containers by (run, transform label)."""
_LOCK = threading.Lock()

Gathered = dict[str, dict[tuple[str, str, str], t.Any]]
"""{"counters": {(step, namespace, name): int}, "distributions": {...: (sum, count, min, max)}}."""


class BundleTracker:
    """What Beam's metric updaters ask of the current state sampler: a state with a container."""

    def __init__(self, container: MetricsContainer) -> None:
        self.metrics_container = container

    def current_state(self) -> BundleTracker:
        return self

    def update_metric(self, typed_metric_name: t.Any, value: t.Any) -> None:
        self.metrics_container.get_metric_cell(typed_metric_name).update(value)


def bundle_tracker(run: str, label: str) -> BundleTracker:
    """The tracker whose container is this worker's for (run, label): set it as the thread's
    current tracker and the metrics updated meanwhile go there."""
    with _LOCK:
        container = _CONTAINERS.get((run, label))
        if container is None:
            container = _CONTAINERS[(run, label)] = MetricsContainer(label)
    return BundleTracker(container)


def grouping_moved(run: str, label: str, items: int, nbytes: int) -> None:
    """Count what one transfer task handed to the shuffle of the grouping `label`: its items and the
    bytes of the tables they went in (`profile.groupings_from_metrics` reads them)."""
    container = bundle_tracker(run, label).metrics_container
    container.get_counter(MetricName(GROUPINGS, GROUPING_ITEMS)).inc(items)
    container.get_counter(MetricName(GROUPINGS, GROUPING_BYTES)).inc(nbytes)


def collect_worker_metrics(run: str) -> Gathered:
    """Runs on a worker (`client.run`): its metrics of `run` as plain values, then forgets them."""
    out: Gathered = {"counters": {}, "distributions": {}}
    with _LOCK:
        mine = [(label, _CONTAINERS.pop((r, label))) for (r, label) in list(_CONTAINERS) if r == run]
    for label, container in mine:
        updates = container.get_cumulative()
        for key, value in updates.counters.items():
            out["counters"][(label, key.metric.namespace, key.metric.name)] = value
        for key, data in updates.distributions.items():
            out["distributions"][(label, key.metric.namespace, key.metric.name)] = (
                data.sum, data.count, data.min, data.max)
    return out


def gather(client: t.Any, run: str) -> DaskMetrics:
    """Every worker's metrics of `run`, summed."""
    from apache_beam.metrics.metricbase import MetricName

    counters: dict[MetricKey, int] = {}
    distributions: dict[MetricKey, DistributionData] = {}
    for gathered in client.run(collect_worker_metrics, run).values():
        for (step, namespace, name), value in gathered["counters"].items():
            key = MetricKey(step, MetricName(namespace, name))
            counters[key] = counters.get(key, 0) + value
        for (step, namespace, name), (total, count, low, high) in gathered["distributions"].items():
            key = MetricKey(step, MetricName(namespace, name))
            data = DistributionData(total, count, low, high)
            distributions[key] = distributions[key].combine(data) if key in distributions else data
    return DaskMetrics(counters, distributions)


class DaskMetrics(MetricResults):
    """The gathered metrics; attempted and committed are the same numbers (see the module docstring)."""

    def __init__(self, counters: dict[MetricKey, int], distributions: dict[MetricKey, DistributionData]) -> None:
        self.counters, self.distributions = counters, distributions

    def query(self, filter: MetricsFilter | None = None) -> dict[str, list[MetricResult]]:
        return {
            self.COUNTERS: [MetricResult(k, v, v) for k, v in self.counters.items() if self.matches(filter, k)],
            self.DISTRIBUTIONS: [MetricResult(k, DistributionResult(v), DistributionResult(v))
                                 for k, v in self.distributions.items() if self.matches(filter, k)],
            self.GAUGES: [], self.STRINGSETS: [], self.BOUNDED_TRIES: [],
        }
