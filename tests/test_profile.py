"""The per-stage CPU profile (pipelines/profile.py): Beam metrics that every runner we support fills,
gathered into the manifest's volatile `run.profile`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from lemur_corpus.manifest import manifest_schema, schema_problems
from lemur_corpus.pipelines.build import RUNNER_ALIASES
from lemur_corpus.pipelines.profile import (
    profile_from_metrics,
    profiled,
    profiled_fn,
    run_profile,
    stage_rank,
    timed_items,
)


class ScaleFn(beam.DoFn):
    @profiled("tokenize", size=len)
    def process(self, text: str, factor: int) -> Iterator[str]:
        yield text * factor
        yield text


@profiled_fn("mix", flat=True)
def _pairs(text: str) -> Iterator[tuple[str, int]]:
    yield from ((text, k) for k in range(2))


def _read(task: int) -> Iterator[str]:
    yield from timed_items("read", (f"doc-{task}-{k}" for k in range(3)), len)


def _pipeline(p: beam.Pipeline) -> None:
    factor = p | "Factor" >> beam.Create([2])
    texts = p | "Tasks" >> beam.Create(range(4)) | "Read" >> beam.FlatMap(_read)
    scaled = texts | "Scale" >> beam.ParDo(ScaleFn(), factor=beam.pvalue.AsSingleton(factor))
    _ = scaled | "Pairs" >> beam.FlatMap(_pairs) | "Count" >> beam.combiners.Count.Globally()


def _expected_elements() -> dict[str, tuple[int, int]]:
    texts = [f"doc-{t}-{k}" for t in range(4) for k in range(3)]
    nbytes = sum(len(t) for t in texts)
    return {"read": (12, nbytes), "tokenize": (12, nbytes), "mix": (24, 0)}


def _run(args: list[str]) -> dict[str, dict[str, float | int]]:
    p = beam.Pipeline(options=PipelineOptions(args))
    _pipeline(p)
    result = p.run()
    result.wait_until_finish()
    return profile_from_metrics(result)


def _check(stages: dict[str, dict[str, float | int]]) -> None:
    assert list(stages) == ["read", "tokenize", "mix"]  # in build order
    for name, (elements, nbytes) in _expected_elements().items():
        assert (stages[name]["elements"], stages[name]["bytes"]) == (elements, nbytes), name
        assert stages[name]["cpu_s"] >= 0


def test_profiled_stages_report_elements_bytes_and_cpu_on_the_direct_runner() -> None:
    _check(_run([]))


def test_profiled_stages_report_on_the_fixed_dask_runner(dask_cluster) -> None:  # type: ignore[no-untyped-def]
    address = dask_cluster.scheduler_address
    _check(_run([f"--runner={RUNNER_ALIASES['DaskRunner']}", f"--dask_client_address={address}"]))


def test_profiled_keeps_side_inputs_and_materializes_outputs() -> None:
    fn = ScaleFn()
    assert fn.process("ab", 2) == ["abab", "ab"]  # a list: consumers run after the clock stops
    assert list(_pairs("x")) == [("x", 0), ("x", 1)]


def test_stage_order_and_rates() -> None:
    names = ["write", "filter.pii", "read", "minhash", "filter.c4", "tokenize", "odd", "normalize"]
    assert sorted(names, key=stage_rank) == ["read", "normalize", "filter.c4", "filter.pii", "minhash", "tokenize",
                                             "write", "odd"]
    profile = run_profile({"read": {"cpu_s": 2.0, "elements": 10, "bytes": 4_000_000},
                           "tokenize": {"cpu_s": 6.0, "elements": 1, "bytes": 4_000_000}}, 10, 4_000_000)
    assert profile["cpu_s"] == 8.0
    assert profile["stages"]["tokenize"]["cpu_s_per_input_mb"] == 1.5
    assert profile["stages"]["read"]["cpu_ms_per_input_document"] == 200.0


def test_no_metrics_no_profile() -> None:
    class NoMetrics:
        def metrics(self) -> None:
            raise NotImplementedError

    assert profile_from_metrics(NoMetrics()) == {}


def test_a_manifest_with_a_profile_is_valid(small_build: Path) -> None:
    import json

    manifest = json.loads((small_build / "manifest.json").read_text())
    profile = manifest["run"]["profile"]
    assert not schema_problems(manifest, manifest_schema())
    stages = profile["stages"]
    for stage in ("read", "normalize", "exact_dedup", "minhash", "tokenize", "mix", "write"):
        assert stages[stage]["cpu_s"] > 0, stage
    assert any(name.startswith("filter.") for name in stages)
    read_in = sum(g["in"]["docs"] for g in manifest["accounting"]["stages"]["read"].values())
    assert profile["input_documents"] == read_in == stages["read"]["elements"]
    normalize_in = sum(g["in"]["docs"] for g in manifest["accounting"]["stages"]["normalize"].values())
    assert stages["normalize"]["elements"] == normalize_in
    broken = json.loads(json.dumps(manifest))
    broken["run"]["profile"]["stages"]["read"]["cpu_s"] = -1
    assert schema_problems(broken, manifest_schema())


@pytest.mark.parametrize("key", ["elements", "cpu_s_per_input_mb"])
def test_the_schema_requires_each_stage_figure(small_build: Path, key: str) -> None:
    import json

    manifest = json.loads((small_build / "manifest.json").read_text())
    del manifest["run"]["profile"]["stages"]["read"][key]
    assert schema_problems(manifest, manifest_schema())


def test_a_stage_is_timed_by_its_own_thread_not_the_workers_other_threads() -> None:
    """A worker's other threads (Beam's gRPC data plane) run while a stage computes: their CPU is
    not the stage's. Here another thread burns CPU while the stage only waits."""
    import threading
    import time

    from lemur_corpus.pipelines import profile

    recorded: list[float] = []
    burning = threading.Event()
    stop = threading.Event()

    def burn() -> None:
        burning.set()
        while not stop.is_set():
            sum(range(10_000))

    @profiled_fn("mix")
    def waits() -> None:
        time.sleep(0.3)

    background = threading.Thread(target=burn)
    background.start()
    burning.wait()
    original = profile.record
    try:
        profile.record = lambda stage, seconds, nbytes=0: recorded.append(seconds)  # type: ignore[assignment]  # capture
        waits()
    finally:
        profile.record = original  # type: ignore[assignment]  # restore
        stop.set()
        background.join()
    assert len(recorded) == 1
    assert recorded[0] < 0.05, f"the stage was charged {recorded[0]:.3f} CPU-s of another thread's work"


def test_a_process_times_every_early_element_then_one_in_n_standing_for_n(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock is a system call read twice per element and stage: after a stage's first
    `ALWAYS_TIMED` elements a process times one in `TIMED_ONE_IN`, weighted by it. Every element and
    byte is still counted, and the weights add up to the elements."""
    from lemur_corpus.pipelines import profile

    monkeypatch.setattr(profile, "_SEEN", {})
    recorded: list[tuple[float, int]] = []
    monkeypatch.setattr(profile, "record", lambda stage, seconds, nbytes=0: recorded.append((seconds, nbytes)))
    reads = iter(range(10**6))
    monkeypatch.setattr(profile, "stage_cpu", lambda: float(next(reads)))  # each element "costs" one read
    elements = profile.ALWAYS_TIMED + 10 * profile.TIMED_ONE_IN
    weights = []
    for k in range(elements):
        started = profile.start("tokenize")
        weights.append(started[0])
        profile.stop("tokenize", started, nbytes=k)
    assert weights[: profile.ALWAYS_TIMED] == [1] * profile.ALWAYS_TIMED
    assert weights[profile.ALWAYS_TIMED :] == ([0] * (profile.TIMED_ONE_IN - 1) + [profile.TIMED_ONE_IN]) * 10
    assert sum(weights) == elements
    assert [n for _, n in recorded] == list(range(elements))  # every element and its bytes
    assert sum(s for s, _ in recorded) == elements  # one clock step per timed element, times its weight
    assert next(reads) == 2 * (profile.ALWAYS_TIMED + 10)  # the clock was read only for the timed ones
    assert profile.timing_weight("read") == 1  # each stage counts its own elements


def test_a_build_counts_every_filtered_document_though_it_times_some(small_build: Path) -> None:
    """The filter stages' elements and bytes in the manifest's profile are the documents each filter
    saw, exactly, though past the first ones only some documents' filters are timed."""
    import json

    from lemur_corpus.pipelines import profile

    manifest = json.loads((small_build / "manifest.json").read_text())
    stages = manifest["run"]["profile"]["stages"]
    filtered = {name: s for name, s in stages.items() if name.startswith("filter.")}
    assert filtered and all(s["elements"] > 0 and s["bytes"] > 0 and s["cpu_s"] > 0 for s in filtered.values())
    into_filters = manifest["accounting"]["stages"]["filter"].values()
    docs, nbytes = sum(g["in"]["docs"] for g in into_filters), sum(g["in"]["bytes"] for g in into_filters)
    assert docs > profile.ALWAYS_TIMED  # the build's process sampled
    # decontam is the first filter of both chains: it sees every document the filter stage takes in
    assert (filtered["filter.decontam"]["elements"], filtered["filter.decontam"]["bytes"]) == (docs, nbytes)


def test_a_bundle_profile_reports_per_element_records_once_per_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    from lemur_corpus.pipelines import profile

    reported: list[tuple[str, int, float, int]] = []
    monkeypatch.setattr(profile, "report", lambda *args: reported.append(args))
    bundle = profile.BundleProfile()
    for k in range(5):
        bundle.add("filter.lid", 0.5, 100 + k)
        bundle.add("normalize", 0.25)
    assert not reported  # nothing before the bundle ends
    bundle.flush()
    assert reported == [("filter.lid", 5, 2.5, 510), ("normalize", 5, 1.25, 0)]
    bundle.flush()
    assert len(reported) == 2  # flushed sums are not reported twice
