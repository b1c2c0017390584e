"""The multi_processing DirectRunner's bundles, cut to a bounded size.

Beam's FnApiRunner runs a stage on its `--direct_num_workers` workers by cutting the stage's whole
input into exactly one part per worker (`ParallelBundleManager`): each worker's bundle is 1/n of
the stage, whatever its size. What a bundle holds until it ends grows with it: a lifted combiner's
accumulators (the LSH bucket groups' entries of every document of the bundle), the distinct pairs
of a `Distinct`, a DoFn's per-bundle buffers. So a worker's peak RSS grew with the corpus
(`benchmarks/scale.py --runner mp`: x1.63 from 25,000 to 100,000 documents).

`BoundedBundleManager` cuts a stage's input into bundles of about `MAX_BUNDLE_BYTES` (at least one
per worker; a grouping's values are measured by their encoded bytes and counted) and keeps each
worker busy with one bundle at a time: a thread per worker takes the next bundle from a shared
queue, so a slow bundle does not hold the others up. Inputs are cut
where they are already cut (a `ListBuffer`'s chunks, which the data channel flushes at 10 MB), or
by key (a `GroupingBuffer`, a GroupByKey's output), never by decoding and re-encoding elements
(Beam's own cut does that for an input of fewer chunks than workers; so does this one, then). The
workers flush their outputs every `worker_memory.OUTPUT_FLUSH_BYTES` (2 MB), so a stage's input
arrives in pieces small enough to cut into bundles of a few MB.

The driver holds a stage's input while the stage's outputs arrive. So a bundle's share is read back
(from the driver's spill files, `spilled_buffers`) or, for a grouping, encoded only when that bundle
is sent, and let go once it has run (`release`, `GroupingPart`); Beam's cut encoded a whole grouping
before the stage began, holding it twice over, and kept every part until the stage ended.

The bounds must bind early for a worker's memory to stay flat as the corpus grows: with 32 MB and
50,000 grouped values, a 25,000-document build ran most stages in one bundle per worker and a
100,000-document build in bundles four times larger (`benchmarks/scale.py --docs 25000 100000`).
A stage whose every input is empty (and which has no timer to fire) runs no bundle at all: its
DoFns would see no element, and each worker would still pay a stage's fixed cost (a bundle processor,
its descriptor, a state sampler), about 20 ms; the rounds of connected components that a settled graph
no longer needs are such stages (`dedup_components`). Beam's other runners run no bundle for an empty
input either, so no DoFn of the build relies on one. The runner still marks the stage's outputs
produced and gives its consumers empty buffers.
The build's output does not depend on how a stage is cut into bundles: every stage sorts what it
groups, and the same build gives the same bytes on Dask, whose bundles are its partitions.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from apache_beam.metrics import monitoring_infos
from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.portability.fn_api_runner import execution, fn_runner

from lemur_corpus.pipelines.spilled_buffers import (
    BeamGroupingBuffer,
    BeamListBuffer,
    GroupingPart,
    ReadChunks,
    SpilledChunk,
    SpilledGroupingBuffer,
    SpilledListBuffer,
    chunk_length,
)
from lemur_corpus.pipelines.worker_memory import MALLOC_TRIM, trim_heap

MAX_BUNDLE_BYTES = 8 << 20
"""A bundle's input, at most, where it arrives encoded (a few of the workers' 2 MB output chunks;
more where one chunk is larger): big enough that a bundle's fixed cost (a median 33 ms a stage in
`benchmarks/dedup_stages.py`) is noise next
to its work, small enough that what a bundle holds stays bounded."""
MAX_BUNDLE_GROUPED_VALUES = 8_192
"""A bundle's input, at most, where it is a GroupByKey's output, in values (the values of a key are
never cut): beside their bytes, because a worker decodes each into objects of their own."""


class InputSize(NamedTuple):
    """What a stage input buffer holds: its elements' encoded bytes and, for a grouping, its values."""

    encoded_bytes: int = 0
    grouped_values: int = 0


def grouped_bytes(values: list[Any]) -> int:
    """The encoded size of one key's grouped values in Beam's buffer: the runner holds them as the SDK
    encoded them (bytes it cannot decode); a value of another kind, such as a windowed one, is not
    measured."""
    return sum(len(value) for value in values if type(value) is bytes)


def partitioned(buffer: Any) -> bool:
    """Whether `buffer` is a grouping held in its spill file's partitions (`spilled_buffers`)."""
    return isinstance(buffer, SpilledGroupingBuffer) and buffer.partitioned


def input_size(buffer: Any) -> InputSize:
    """The size of a stage input buffer; zeros for a kind not cut here.

    A grouping's values are measured as well as counted: a lifted combiner's accumulators are one
    value per key and producing bundle, each as large as that bundle made it (the LSH bucket groups'
    band entries: about `dedup_near.BUCKET_GROUP_ENTRIES` a group, in a few dozen lists). Counted
    only, the stage that splits the bucket groups stayed one bundle per worker at 200,000 documents
    (a few thousand values, well over a hundred MB), and that bundle was each worker's peak, which
    followed the corpus (`benchmarks/scale.py`: x1.28-1.33 from 50,000 to 200,000 documents; x1.11-1.19 in
    three runs with the bytes counted)."""
    if isinstance(buffer, BeamListBuffer):  # chunks of encoded elements (or, for some inputs, elements)
        return InputSize(encoded_bytes=sum(map(chunk_length, held_chunks(buffer))))
    if partitioned(buffer):
        return InputSize(*buffer.size())
    if isinstance(buffer, BeamGroupingBuffer):
        table = buffer._table.values()
        return InputSize(encoded_bytes=sum(map(grouped_bytes, table)), grouped_values=sum(map(len, table)))
    return InputSize()


def held_chunks(buffer: BeamListBuffer) -> list[Any]:
    """A ListBuffer's chunks as it holds them, without reading a spilled one back (`spilled_buffers`)."""
    return buffer.chunks() if isinstance(buffer, SpilledListBuffer) else list(buffer)


def bundle_count(inputs: Mapping[str, Any], workers: int, max_bytes: int | None = None,
                 max_values: int | None = None) -> int:
    """Bundles for a stage's inputs: a multiple of `workers`, each within both bounds (about; the
    module's by default)."""
    max_bytes = max_bytes or MAX_BUNDLE_BYTES
    max_values = max_values or MAX_BUNDLE_GROUPED_VALUES
    sizes = [input_size(buffer) for buffer in inputs.values()]
    total_bytes = sum(size.encoded_bytes for size in sizes)
    total_values = sum(size.grouped_values for size in sizes)
    rounds = max(1, -(-total_bytes // (max_bytes * workers)), -(-total_values // (max_values * workers)))
    return rounds * workers


def cut(buffer: Any, parts: int, workers: int) -> list[Iterable[bytes]]:
    """`buffer` in `parts` pieces (some may be empty), each an iterable of encoded chunks: a
    ListBuffer by its chunks, dealt in turn; a ListBuffer of fewer chunks than `workers` by Beam's
    own cut into `workers` pieces (which re-encodes its elements to spread them); a grouping in the
    global window into `GroupingPart`s (of its keys dealt in turn, as Beam deals them, or of the
    partitions its spill file holds them in); anything else by its own `partition`."""
    if isinstance(buffer, BeamListBuffer):
        chunks = held_chunks(buffer)
        if all(type(chunk) in (bytes, SpilledChunk) for chunk in chunks) and (len(chunks) >= workers or not chunks):
            return [ReadChunks(chunks[k::parts]) for k in range(parts)]
        return [*buffer.partition(workers), *([] for _ in range(parts - workers))]
    if partitioned(buffer) and not buffer._grouped_output:
        return list(buffer.cut(parts))
    if isinstance(buffer, BeamGroupingBuffer) and buffer._windowing.is_default() and not buffer._grouped_output:
        keys = list(buffer._table)
        return [GroupingPart(buffer, keys[k::parts]) for k in range(parts)]
    return list(buffer.partition(parts))


class _Released(list):  # stands where a buffer's cut parts were
    """What a stage input buffer holds once its bundles have been dealt (`release`): reading it again
    is an error, not an empty input."""

    def __iter__(self) -> Any:
        raise RuntimeError("a stage input was read again after its bundles were dealt and released")

    def __getitem__(self, _index: Any) -> Any:
        raise RuntimeError("a stage input was read again after its bundles were dealt and released")

    def __bool__(self) -> bool:  # Beam's GroupingBuffer.partition returns its parts when they are set
        return True


def release(buffer: Any) -> None:
    """Drop a stage input buffer's hold on its data once `cut` has dealt it into bundles, so that each
    bundle's data is freed as soon as that bundle has run rather than when the whole stage has (a
    grouping's values leave it as its `GroupingPart`s are read; a spilled grouping's file goes after
    the last): the driver holds a stage's input and
    its outputs at the same time, and the stage that joins every document with its dedup decision
    turns one copy of the corpus into another. The runner gives each consuming stage its own
    ListBuffer (`ListBuffer.copy`) and reads a grouping once."""
    if isinstance(buffer, BeamListBuffer):
        buffer.clear()  # reading a cleared ListBuffer raises
    elif isinstance(buffer, BeamGroupingBuffer):
        buffer._grouped_output = _Released()


def is_empty(buffer: Any) -> bool:
    """Whether a stage input buffer holds no element (a kind not known here never is)."""
    if isinstance(buffer, BeamListBuffer):
        return all(type(chunk) is bytes and not chunk for chunk in held_chunks(buffer))
    if isinstance(buffer, SpilledGroupingBuffer):
        return buffer.is_empty()
    if isinstance(buffer, BeamGroupingBuffer):
        return not buffer._table
    return False


NOTHING_RAN: tuple[Any, list[Any]] = (
    beam_fn_api_pb2.InstructionResponse(process_bundle=beam_fn_api_pb2.ProcessBundleResponse()), [])
"""What a stage that had nothing to process returns: no metrics, no residuals, no splits."""


class _OneWorker:
    """A stage's `BundleContextManager` that offers one worker handler: Beam's `BundleManager` picks
    its handler from the context (by a global counter), and a bundle here goes to a chosen one."""

    def __init__(self, context: execution.BundleContextManager, handler: Any) -> None:
        self._context = context
        self.worker_handlers = [handler]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class BoundedBundleManager(fn_runner.ParallelBundleManager):
    """`ParallelBundleManager` with bundles of about `MAX_BUNDLE_BYTES`, one at a time per worker."""

    def process_bundle(self, inputs: Mapping[str, Any], expected_outputs: Any, fired_timers: Mapping[Any, Any],
                       expected_output_timers: Any, dry_run: bool = False) -> Any:
        if not fired_timers and inputs and all(is_empty(buffer) for buffer in inputs.values()):
            return NOTHING_RAN
        handlers = list(self.bundle_context_manager.worker_handlers)
        workers = len(handlers)
        parts = bundle_count(inputs, workers)
        if parts <= workers or dry_run:  # a dry run (Beam's --bundle_repeat) is replayed: Beam's cut keeps its input
            return super().process_bundle(inputs, expected_outputs, fired_timers, expected_output_timers, dry_run)
        try:
            return self._process_in_bounded_bundles(inputs, expected_outputs, fired_timers, expected_output_timers,
                                                    handlers, parts)
        finally:
            # What the stage's input held is free now; glibc would keep most of it in its heaps, where
            # the driver's next stages, holding other collections, could not always reuse it.
            if MALLOC_TRIM is not None:
                MALLOC_TRIM(0)

    def _process_in_bounded_bundles(self, inputs: Mapping[str, Any], expected_outputs: Any,
                                    fired_timers: Mapping[Any, Any], expected_output_timers: Any,
                                    handlers: list[Any], parts: int) -> Any:
        workers = len(handlers)
        part_inputs: list[dict[str, Iterable[bytes]]] = [{} for _ in range(parts)]
        for name, buffer in inputs.items():
            for index, piece in enumerate(cut(buffer, parts, workers)):
                part_inputs[index][name] = piece
            release(buffer)
        # Timers go with the first bundle only, as in Beam's ParallelBundleManager. The queue holds
        # the only reference to each part: a part's data is freed once its bundle has run.
        work: queue.SimpleQueue[tuple[int, dict[str, Iterable[bytes]]]] = queue.SimpleQueue()
        for index, part in enumerate(part_inputs):
            work.put((index, part))
        del part_inputs, part
        results: list[Any] = [None] * parts
        errors: list[BaseException] = []

        def serve(handler: Any) -> None:
            context = _OneWorker(self.bundle_context_manager, handler)
            while not errors:
                try:
                    index, part = work.get_nowait()
                except queue.Empty:
                    return
                manager = fn_runner.BundleManager(context, self._progress_frequency,  # type: ignore[arg-type]  # a proxy
                                                  cache_token_generator=self._cache_token_generator)
                try:
                    results[index] = manager.process_bundle(
                        part,  # type: ignore[arg-type]  # lists of encoded chunks, as Beam's ParallelBundleManager passes
                        expected_outputs, fired_timers if index == 0 else {}, expected_output_timers)
                except BaseException as exc:  # handed to the caller's thread below
                    errors.append(exc)
                    return
                finally:
                    del part, manager
                    trim_heap()  # the part's data, freed (at most every TRIM_INTERVAL_S)

        threads = [threading.Thread(target=serve, args=(handler,), name=f"bundles-{n}", daemon=True)
                   for n, handler in enumerate(handlers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return merge_results(results)


def merge_results(results: list[Any]) -> Any:
    """The stage's response and split results from its bundles', as Beam's ParallelBundleManager
    merges them: monitoring infos consolidated, the first error kept."""
    responses = [result for result, _ in results]
    splits = list(itertools.chain.from_iterable(split for _, split in results))
    merged = beam_fn_api_pb2.InstructionResponse(
        process_bundle=beam_fn_api_pb2.ProcessBundleResponse(monitoring_infos=monitoring_infos.consolidate(
            itertools.chain.from_iterable(r.process_bundle.monitoring_infos for r in responses))),
        error=next((r.error for r in responses if r.error), ""))
    return merged, splits
