"""DirectRunner multi_processing on workers started with the pipeline (`pipelines/sdk_workers.py`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from lemur_corpus.errors import WorkerLostError
from lemur_corpus.pipelines.direct_runner import OfflineDirectRunner, ViewCachingOptions, beam_pipeline
from lemur_corpus.pipelines.sdk_workers import HOW_STARTED, WarmWorkers

ROOT = Path(__file__).resolve().parents[1]

MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _square_and_where(n: int) -> tuple[int, str]:
    return n * n, os.environ.get(HOW_STARTED, "by Beam")


def test_multi_processing_runs_on_the_workers_started_with_the_pipeline() -> None:
    # forked where this process runs no other thread yet; where it has run pipelines before (Beam's
    # threads live on), spawned
    how = "forked" if threading.active_count() == 1 else "spawned"
    with beam_pipeline(PipelineOptions(MULTI_PROCESSING)) as p:
        assert isinstance(p.runner, OfflineDirectRunner)
        results = p | beam.Create(range(10)) | beam.Map(_square_and_where)
        assert_that(results, equal_to([(n * n, how) for n in range(10)]))


FRESH_DRIVER = """
import json, sys
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from lemur_corpus.pipelines.direct_runner import beam_pipeline
from tests.test_sdk_workers import MULTI_PROCESSING, _square_and_where

with beam_pipeline(PipelineOptions(MULTI_PROCESSING)) as p:
    _ = p | beam.Create(range(10)) | beam.Map(_square_and_where) | beam.combiners.ToList() | beam.Map(
        lambda rows: open(sys.argv[1], "w").write(json.dumps(sorted(rows))))
"""


def test_a_fresh_driver_forks_its_workers(tmp_path: Path) -> None:
    """A driver with no other thread (a `corpus build`) forks the workers: they share its modules."""
    out = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, "-c", FRESH_DRIVER, str(out)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(out.read_text()) == [[n * n, "forked"] for n in range(10)]
    assert "Traceback" not in result.stderr


def test_a_worker_given_no_settings_leaves_without_a_harness() -> None:
    pool = WarmWorkers(2)
    processes = [pool.take(), pool.take()]
    extra = pool.take()  # none left: one started now, from the same module
    pool.close()
    for process in processes + [extra]:
        process.dismiss()  # end of input before any settings: what the pool gives those still waiting
        assert process.wait(timeout=120) == 0


def test_a_pool_closes_what_it_started_and_nothing_else() -> None:
    pool = WarmWorkers(2)
    waiting = list(pool._waiting)
    pool.close()
    assert [process.poll() for process in waiting] == [0, 0]
    pool.close()  # twice is harmless


def test_options_views_are_made_once_and_survive_a_copy(tmp_path: Path) -> None:
    """Beam asks for views on every apply; a view shares the options' values, so one per class."""
    import copy
    import pickle

    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    options = PipelineOptions(["--direct_num_workers=3", "--runner=DirectRunner"]).view_as(ViewCachingOptions)
    assert options.view_as(DirectOptions) is options.view_as(DirectOptions)
    options.view_as(DirectOptions).direct_num_workers = 5  # a change through a view is seen by all
    for other in (copy.deepcopy(options), pickle.loads(pickle.dumps(options))):
        assert other.view_as(DirectOptions).direct_num_workers == 5
        assert other.view_as(StandardOptions).runner == "DirectRunner"
        assert other.view_as(DirectOptions) is not options.view_as(DirectOptions)


def test_a_worker_trims_the_heap_after_every_bundle_even_a_failed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pipelines/worker_memory.py`: glibc keeps what a bundle freed unless asked (a worker's RSS
    then only grows, stage after stage); the worker asks after each bundle."""
    from apache_beam.runners.worker import sdk_worker

    from lemur_corpus.pipelines import worker_memory

    if worker_memory.MALLOC_TRIM is None:
        pytest.skip("this C library has no malloc_trim: nothing to do here")
    calls: list[int] = []
    monkeypatch.setattr(worker_memory, "MALLOC_TRIM", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(sdk_worker.SdkWorker, "process_bundle", sdk_worker.SdkWorker.process_bundle)  # undone after
    assert worker_memory.trim_after_each_bundle() and worker_memory.trim_after_each_bundle()
    wrapped = sdk_worker.SdkWorker.process_bundle
    assert getattr(wrapped, "trims_after", False)
    assert not getattr(getattr(wrapped, "__wrapped__", None), "trims_after", False)  # wrapped once, not twice
    with pytest.raises(AttributeError):
        wrapped(object(), None, "bundle-1")  # not a worker: the bundle fails, the heap is trimmed anyway
    assert calls == [0]


_MAPPED_BYTES = """
import ctypes, json

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

try:
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
except (OSError, AttributeError):
    print(json.dumps(None))
    raise SystemExit
mallinfo2.restype = MallInfo2

def mapped():  # the bytes held by blocks mapped on their own
    return int(mallinfo2().hblkhd)
"""


def test_the_driver_maps_each_large_block_of_its_own_while_it_runs() -> None:
    """`worker_memory.map_large_blocks`: glibc raises its threshold for mapping a block to the size
    of each mapped block freed, so after one 4 MB block freed a 2 MB one grew the heaps, where the
    space the driver's chunks left stayed resident; inside the block every new block of 1 MB or
    more is a mapping of its own, and the threshold is fixed at glibc's initial one after. In a
    fresh process: glibc serves a block from free space its heaps already have, whatever the
    threshold, and a long-lived one (this test run's) has some."""
    script = _MAPPED_BYTES + """
from lemur_corpus.pipelines import worker_memory

with worker_memory.map_large_blocks() as set_here:
    large = bytearray(4 << 20)
    del large  # a large block freed: by default the threshold would follow it
    before = mapped()
    block = bytearray(2 << 20)
    inside = mapped() - before
    del block
    given_back = mapped() == before
small = bytearray(256 << 10)  # above glibc's initial threshold (128 KB), fixed now
print(json.dumps([set_here, inside, given_back, mapped() - before]))
"""
    result = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                       check=True, cwd=ROOT).stdout.splitlines()[-1])
    if result is None:
        pytest.skip("not glibc 2.33 or later (mallinfo2): nothing to measure here")
    set_here, inside, given_back, after = result
    assert set_here
    assert inside >= 2 << 20
    assert given_back
    assert after >= 256 << 10


@pytest.mark.parametrize("variable, value", [("MALLOC_MMAP_THRESHOLD_", "65536"),
                                             ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")])
def test_a_threshold_the_user_gave_glibc_is_left_alone(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                        value: str) -> None:
    from lemur_corpus.pipelines import worker_memory

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(worker_memory, "MALLOPT", lambda param, value: calls.append((param, value)) or 1)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    with worker_memory.map_large_blocks() as set_here:
        assert set_here
    assert calls == [(worker_memory.M_MMAP_THRESHOLD, worker_memory.DRIVER_MMAP_THRESHOLD),
                     (worker_memory.M_MMAP_THRESHOLD, worker_memory.GLIBC_MMAP_THRESHOLD)]
    calls.clear()
    monkeypatch.setenv(variable, value)
    with worker_memory.map_large_blocks() as set_here:
        assert not set_here
    assert calls == []


def test_a_multi_processing_run_maps_the_drivers_large_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import contextmanager

    from lemur_corpus.pipelines import sdk_workers

    seen: list[str] = []

    @contextmanager
    def recording():  # type: ignore[no-untyped-def]  # a stand-in
        seen.append("set")
        yield True
        seen.append("restored")

    monkeypatch.setattr(sdk_workers, "map_large_blocks", recording)
    with beam_pipeline(PipelineOptions(MULTI_PROCESSING)) as p:
        squares = p | beam.Create(range(3)) | beam.Map(lambda n: n * n)
        assert_that(squares, equal_to([0, 1, 4]))
    assert seen == ["set", "restored"]


def test_a_worker_sends_a_bundles_output_in_2_mb_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """`worker_memory.flush_outputs_at`: Beam's output streams, built without a size, flush at 2 MB
    instead of 10 MB (a fused stage holds one such buffer per output)."""
    from apache_beam.runners.worker import data_plane

    from lemur_corpus.pipelines import worker_memory

    streams = (data_plane.SizeBasedBufferingClosableOutputStream, data_plane.TimeBasedBufferingClosableOutputStream)
    for stream in streams:  # undone after the test
        monkeypatch.setattr(stream.__init__, "__defaults__", stream.__init__.__defaults__)
    worker_memory.flush_outputs_at()
    sent: list[int] = []
    for time_limit_ms in (0, 10_000):
        output = data_plane.ClosableOutputStream.create(lambda data: None, lambda data: sent.append(len(data)),
                                                        time_limit_ms)
        assert output._size_flush_threshold == worker_memory.OUTPUT_FLUSH_BYTES == 2 << 20
        for _ in range(5):
            output.write(b"x" * (1 << 20))
            output.maybe_flush()
        output.close()
    assert sent == [3 << 20, 3 << 20]  # flushed once past 2 MB; the rest goes with close


def _die_in_a_worker(element: int, driver: int) -> int:
    if os.getpid() != driver:  # a multi_processing worker: the out-of-memory killer's SIGKILL
        os.kill(os.getpid(), signal.SIGKILL)
    return element


@pytest.mark.slow
def test_a_worker_killed_during_the_run_fails_it_naming_the_worker_and_the_signal() -> None:
    """Beam's runner waited forever for a worker that died before it connected, and gave a data
    channel's traceback for one that died later: the run now fails with `WorkerLostError`."""
    options = PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    pipeline = beam_pipeline(options)
    _ = pipeline | beam.Create(list(range(20))) | beam.Map(_die_in_a_worker, driver=os.getpid())
    started = time.monotonic()
    with pytest.raises(WorkerLostError, match="was killed by SIGKILL") as raised:
        pipeline.run().wait_until_finish()
    assert raised.value.lost and all(status == -signal.SIGKILL for _, status in raised.value.lost)
    assert time.monotonic() - started < 60
