"""Where a build's CPU time goes: CPU seconds, elements and bytes per stage, as Beam metrics.

Each stage's DoFns time their own work with `stage_cpu()` and report it as a Beam
distribution `profile:<stage>` of CPU microseconds per element (its count is the elements, its sum
the CPU) and a counter `profile:<stage>.bytes` of the document bytes they saw; the DoFns that see
every document (read, normalize, the filters, signing) sum theirs over a bundle instead
(`BundleProfile`) and report counters `profile:<stage>.elements`, `.cpu_us` and `.bytes` once per
stage when it ends (a metric update per element and stage was part of the profile's cost). Only the stage's own
computation is timed: `profiled` materializes a `process` call's outputs before it stops the clock,
because a runner that fuses stages runs the consumers of an output inside the `yield` that emits it.
What no stage claims (the runner's coders and shuffles, the accounting's counting and combining,
key-by maps) is the build's total CPU minus the stages' sum; `benchmarks/scale.py` prints it as
`runner and bookkeeping`.

Not every element is timed. A thread's CPU clock is a system call (several times the cost of
`time.perf_counter`), read twice per element and stage: some thirty-five reads a document in a
build; with the metric updates, the profile cost a build about 4% of its CPU
(`benchmarks/paired_builds.py`, the profile switched off: docs/measurements.md). Each
process times the first `ALWAYS_TIMED` elements of a stage, then one in `TIMED_ONE_IN`, counted that
many times over; every element and every byte is counted. A stage's CPU seconds are then an
estimate (a stage of few, large elements, such as tokenize's batches or the mixture's steps, is
timed in full), its elements and bytes exact.

The clock is the calling thread's CPU (`time.thread_time`), not the process's: a worker's other
threads (Beam's gRPC data plane) run meanwhile, and process CPU put their work on whichever stage
was running. Every stage runs on its calling thread; tokenization does because `TokenizeFn` has
`tokenizers` encode there (`tokenizer.encode_on_calling_thread`; with `TOKENIZERS_PARALLELISM=true`
set by hand, its pool's CPU falls to the runner's share). The figures are run-dependent,
so the manifest keeps them in its volatile `run` section (`run.profile`), which comparisons of
builds leave out. Every runner that reports user metrics fills them: DirectRunner (in-process and
multi_processing), this project's DaskRunner (`pipelines/dask_runner.py` gathers its workers'
metrics), Dataflow, Flink, Spark.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from apache_beam.metrics import Metrics

PROFILE = "profile"
"""Namespace of the profile's Beam metrics."""
BYTES_SUFFIX = ".bytes"
ELEMENTS_SUFFIX = ".elements"
CPU_SUFFIX = ".cpu_us"

GROUPINGS = "groupings"
"""Namespace of the counters of what each grouping moved between workers, where the runner counts
it (this project's DaskRunner, per P2P grouping: `dask_metrics.grouping_moved`): `items`, and
`bytes`, those of the tables the items went into the shuffle as (pickled, so the bytes that are
sent, written to the shuffle's disk and read back). Keyed by the grouping's transform label."""
GROUPING_ITEMS, GROUPING_BYTES = "items", "bytes"

READ = "read"
EXACT_DEDUP = "exact_dedup"
MINHASH = "minhash"
COMPONENTS = "components"
TOKENIZE = "tokenize"
MIX = "mix"
WRITE = "write"
FILTER_PREFIX = "filter."
"""Each filter is a stage of its own: `filter.<name>`."""
STAGE_ORDER = (READ, "normalize", FILTER_PREFIX, EXACT_DEDUP, MINHASH, COMPONENTS, TOKENIZE, MIX, WRITE)
"""The order stages are reported in (every `filter.*` where `filter.` stands)."""

_UPDATERS: dict[str, tuple[Any, Any]] = {}


def _updaters(stage: str) -> tuple[Any, Any]:
    found = _UPDATERS.get(stage)
    if found is None:
        found = (Metrics.distribution(PROFILE, stage), Metrics.counter(PROFILE, stage + BYTES_SUFFIX))
        _UPDATERS[stage] = found
    return found


def record(stage: str, seconds: float, nbytes: int = 0) -> None:
    """One element's CPU seconds (and its document bytes) for `stage`."""
    cpu, size = _updaters(stage)
    cpu.update(round(seconds * 1e6))
    if nbytes:
        size.inc(nbytes)


_COUNTERS: dict[str, tuple[Any, Any, Any]] = {}


def report(stage: str, elements: int, seconds: float, nbytes: int) -> None:
    """Elements of `stage`, their CPU seconds and document bytes, summed (`BundleProfile.flush`)."""
    if stage not in _COUNTERS:
        _COUNTERS[stage] = (Metrics.counter(PROFILE, stage + ELEMENTS_SUFFIX),
                            Metrics.counter(PROFILE, stage + CPU_SUFFIX),
                            Metrics.counter(PROFILE, stage + BYTES_SUFFIX))
    count, cpu, size = _COUNTERS[stage]
    count.inc(elements)
    cpu.inc(round(seconds * 1e6))
    if nbytes:
        size.inc(nbytes)


stage_cpu = time.thread_time
"""The clock every stage is timed with (see the module docstring)."""

ALWAYS_TIMED = 64
"""Elements of each stage a process times every one of, before it samples."""
TIMED_ONE_IN = 8
"""After the first `ALWAYS_TIMED`, one element in this many is timed and stands for this many."""

_SEEN: dict[str, int] = {}


def timing_weight(stage: str) -> int:
    """How many elements of `stage` the next one stands for in the profile's CPU seconds: 1 for each
    of the first `ALWAYS_TIMED` this process sees, then `TIMED_ONE_IN` for one in that many and 0
    (not timed) for the others. A process's count, not a bundle's: a stage of one element per bundle
    is sampled too."""
    seen = _SEEN.get(stage, 0) + 1
    _SEEN[stage] = seen
    if seen <= ALWAYS_TIMED:
        return 1
    return TIMED_ONE_IN if seen % TIMED_ONE_IN == 0 else 0


def start(stage: str) -> tuple[int, float]:
    """(weight, CPU time now) for an element of `stage` about to be computed; the clock is read only
    when the element is timed (`timing_weight`)."""
    weight = timing_weight(stage)
    return weight, stage_cpu() if weight else 0.0


def weighted_cpu(started: tuple[int, float]) -> float:
    """The CPU seconds since `start` times the element's weight (0 when it was not timed)."""
    weight, at = started
    return (stage_cpu() - at) * weight if weight else 0.0


def stop(stage: str, started: tuple[int, float], nbytes: int = 0) -> None:
    """Record the element `start` was called for (`weighted_cpu`)."""
    record(stage, weighted_cpu(started), nbytes)


class BundleProfile:
    """A DoFn's profile records summed per stage until `flush`, which its `finish_bundle` calls (or
    its `process`, for records of that call only): one report per stage and bundle instead of two
    metric updates per element. What is summed is what `record` would have reported."""

    def __init__(self) -> None:
        self.sums: dict[str, list[Any]] = {}

    def add(self, stage: str, seconds: float, nbytes: int = 0) -> None:
        entry = self.sums.get(stage)
        if entry is None:
            self.sums[stage] = [1, seconds, nbytes]
        else:
            entry[0] += 1
            entry[1] += seconds
            entry[2] += nbytes

    def stop(self, stage: str, started: tuple[int, float], nbytes: int = 0) -> None:
        """`stop`, summed here."""
        self.add(stage, weighted_cpu(started), nbytes)

    def flush(self) -> None:
        sums, self.sums = self.sums, {}
        for stage, (elements, seconds, nbytes) in sorted(sums.items()):
            report(stage, elements, seconds, nbytes)

F = TypeVar("F", bound=Callable[..., Any])


def profiled(stage: str, size: Callable[[Any], int] | None = None) -> Callable[[F], F]:
    """A DoFn's `process(self, element, ...)` timed as `stage`; `size(element)` gives the document
    bytes it counts. Its outputs come back as a list (see the module docstring); `functools.wraps`
    keeps the signature Beam reads side inputs from."""

    def decorate(process: F) -> F:
        @functools.wraps(process)
        def timed(self: Any, element: Any, *args: Any, **kwargs: Any) -> list[Any]:
            started = start(stage)
            outputs = list(process(self, element, *args, **kwargs) or ())
            stop(stage, started, size(element) if size is not None else 0)
            return outputs

        return timed  # type: ignore[return-value]  # the same signature, see functools.wraps

    return decorate


def profiled_fn(stage: str, flat: bool = False) -> Callable[[F], F]:
    """A `Map` function (or, `flat`, a `FlatMap` one, whose outputs are materialized) timed as `stage`."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = start(stage)
            result = fn(*args, **kwargs)
            if flat:
                result = list(result)
            stop(stage, started)
            return result

        return timed  # type: ignore[return-value]  # the same signature, see functools.wraps

    return decorate


def timed_items(stage: str, items: Iterable[Any], size: Callable[[Any], int]) -> Iterator[Any]:
    """`items` (a reader's generator) with the time spent producing each one recorded as `stage`,
    reported when the items end or the consumer stops (a `BundleProfile` of its own); the
    consumer's time between items is not counted, and no item is held."""
    iterator = iter(items)
    profile = BundleProfile()
    try:
        while True:
            started = start(stage)
            try:
                item = next(iterator)
            except StopIteration:
                return
            profile.stop(stage, started, size(item))
            yield item
    finally:
        profile.flush()


def profile_from_metrics(result: Any) -> dict[str, dict[str, float | int]]:
    """Stage -> {cpu_s, elements, bytes} from a finished pipeline's metrics, summed over steps;
    empty when the runner reports none."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        found = result.metrics().query(MetricsFilter().with_namespace(PROFILE))
    except (NotImplementedError, AttributeError):
        return {}
    stages: dict[str, dict[str, float | int]] = {}

    def entry(name: str) -> dict[str, float | int]:
        return stages.setdefault(name, {"cpu_s": 0.0, "elements": 0, "bytes": 0})

    for item in found.get("distributions", []):
        data = item.committed if item.committed is not None else item.attempted
        if data is None:
            continue
        e = entry(item.key.metric.name)
        e["cpu_s"] += data.sum / 1e6
        e["elements"] += data.count
    for item in found.get("counters", []):
        name = item.key.metric.name
        value = item.committed if item.committed is not None else item.attempted
        if not value:
            continue
        if name.endswith(BYTES_SUFFIX):
            entry(name[: -len(BYTES_SUFFIX)])["bytes"] += value
        elif name.endswith(ELEMENTS_SUFFIX):
            entry(name[: -len(ELEMENTS_SUFFIX)])["elements"] += value
        elif name.endswith(CPU_SUFFIX):
            entry(name[: -len(CPU_SUFFIX)])["cpu_s"] += value / 1e6
    return {name: stages[name] for name in sorted(stages, key=stage_rank)}


def groupings_from_metrics(result: Any) -> dict[str, dict[str, int]]:
    """Grouping label -> {items, bytes} it moved (`GROUPINGS`), most bytes first; empty when the
    runner counts none."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        found = result.metrics().query(MetricsFilter().with_namespace(GROUPINGS))
    except (NotImplementedError, AttributeError):
        return {}
    moved: dict[str, dict[str, int]] = {}
    for item in found.get("counters", []):
        value = item.committed if item.committed is not None else item.attempted
        entry = moved.setdefault(item.key.step, {GROUPING_ITEMS: 0, GROUPING_BYTES: 0})
        entry[item.key.metric.name] += int(value or 0)
    return dict(sorted(moved.items(), key=lambda kv: (-kv[1][GROUPING_BYTES], kv[0])))


def stage_rank(name: str) -> tuple[int, str]:
    """Sort key: `STAGE_ORDER`, filters in their place, unknown stages last."""
    for rank, stage in enumerate(STAGE_ORDER):
        if name == stage or (stage.endswith(".") and name.startswith(stage)):
            return rank, name
    return len(STAGE_ORDER), name


def run_profile(stages: dict[str, dict[str, float | int]], input_docs: int, input_bytes: int) -> dict[str, Any]:
    """The manifest's `run.profile`: each stage's CPU seconds, elements and bytes, and its CPU per
    MB and per document of the build's input (so the stages add up to the build's rates)."""
    mb = input_bytes / 1e6
    out: dict[str, Any] = {"input_documents": input_docs, "input_bytes": input_bytes, "stages": {}}
    for name, s in stages.items():
        cpu = float(s["cpu_s"])
        out["stages"][name] = {
            "cpu_s": round(cpu, 6), "elements": int(s["elements"]), "bytes": int(s["bytes"]),
            "cpu_s_per_input_mb": round(cpu / mb, 6) if mb else 0.0,
            "cpu_ms_per_input_document": round(1e3 * cpu / input_docs, 6) if input_docs else 0.0,
        }
    out["cpu_s"] = round(sum(float(s["cpu_s"]) for s in stages.values()), 6)
    return out

