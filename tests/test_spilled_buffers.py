"""The multi_processing driver's collections wait in temporary files (`pipelines/spilled_buffers.py`):
a stage's output chunks read back as they were written; a grouping, held in hash partitions of its
file with nothing per key in memory, gives the stage that reads it each key with all its values, as
Beam's own buffer does, by either of the runner's cuts, after a merge of two groupings, and with the
values arriving from several threads at once."""

from __future__ import annotations

import errno
import gc
import os
import random
import threading
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam import coders
from apache_beam.coders.coders import GlobalWindowCoder, IntervalWindowCoder
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import execution
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.core import Windowing
from apache_beam.transforms.window import FixedWindows, GlobalWindows, IntervalWindow
from apache_beam.utils.windowed_value import WindowedValue
from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus.errors import SpillError
from lemur_corpus.pipelines import bounded_bundles, spilled_buffers
from lemur_corpus.pipelines.direct_runner import beam_pipeline
from lemur_corpus.pipelines.spilled_buffers import (
    SPILL_MIN_CHUNK_BYTES,
    BeamGroupingBuffer,
    BeamListBuffer,
    SpilledChunk,
    SpilledGroupingBuffer,
    SpilledListBuffer,
)

WINDOW = GlobalWindowCoder()
KEYED = coders.WindowedValueCoder(coders.TupleCoder([coders.BytesCoder(), coders.BytesCoder()]), WINDOW)
GROUPED = coders.WindowedValueCoder(
    coders.TupleCoder([coders.BytesCoder(), coders.IterableCoder(coders.BytesCoder())]), WINDOW)


def chunk(pairs: list[tuple[bytes, Any]], coder: coders.Coder = KEYED) -> bytes:
    """A stage's output to a grouping as a worker sends it: windowed (key, value) pairs, encoded."""
    stream = execution.create_OutputStream()
    for pair in pairs:
        coder.get_impl().encode_to_stream(WindowedValue(pair, 0, [GlobalWindows.windowed_value(None).windows[0]]),
                                          stream, True)
    return stream.get()


def pairs(seed: int, count: int = 300) -> list[tuple[bytes, bytes]]:
    """Keys shared across chunks; values empty, small and large."""
    rng = random.Random(seed)
    sizes = [0, 5, 31, 32, 3_000]
    return [(b"key-%d" % rng.randrange(40), rng.randbytes(rng.choice(sizes))) for _ in range(count)]


def both(chunks: list[bytes], keyed: coders.Coder = KEYED, grouped: coders.Coder = GROUPED,
         ) -> tuple[BeamGroupingBuffer, SpilledGroupingBuffer]:
    beam_buffer = BeamGroupingBuffer(keyed, grouped, Windowing(GlobalWindows()))
    ours = SpilledGroupingBuffer(keyed, grouped, Windowing(GlobalWindows()))
    for data in chunks:
        beam_buffer.append(data)
        ours.append(data)
    return beam_buffer, ours


def groups(parts: list[Any], grouped: coders.Coder = GROUPED) -> dict[bytes, list[Any]]:
    """Each key of a cut grouping with its values, as the stage that reads it decodes them; a key
    found in two parts fails."""
    found: dict[bytes, list[Any]] = {}
    for part in parts:
        for data in part:
            stream = execution.create_InputStream(data)
            while stream.size() > 0:
                key, values = grouped.get_impl().decode_from_stream(stream, True).value
                assert key not in found, "a key was cut into two parts"
                found[key] = list(values)
    return found


def test_keys_and_values_wait_on_disk_and_the_grouping_reads_back_as_beam_s() -> None:
    chunks = [chunk(pairs(seed)) for seed in range(4)]
    beam_buffer, ours = both(chunks)
    assert not ours._table  # nothing held per key
    assert os.fstat(ours._spill.get()._fd).st_size > 4 * 300 * 600
    assert bounded_bundles.input_size(ours) == bounded_bundles.input_size(beam_buffer)  # sizes count the file's
    beam_parts, our_parts = beam_buffer.partition(3), ours.partition(3)  # Beam's cut, for small inputs
    assert len(our_parts) == 3 and all(len(part) == 1 for part in our_parts)
    assert groups(our_parts) == groups(beam_parts)  # each key with its values, in the order they came
    assert ours.partition(3) is our_parts  # cut once, as Beam's


@settings(max_examples=25, deadline=None)
@given(seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=4), parts=st.integers(1, 12),
       partitions=st.sampled_from([1, 4, 256]))
def test_a_bounded_cut_of_a_spilled_grouping_gives_each_key_to_one_bundle_with_all_its_values(
        seeds: list[int], parts: int, partitions: int) -> None:
    """Whatever the number of bundles against the file's partitions (more bundles than partitions
    split each partition by a second hash of its keys)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spilled_buffers, "GROUPING_PARTITIONS", partitions)
        beam_buffer, ours = both([chunk(pairs(seed, 60)) for seed in seeds])
        cut = bounded_bundles.cut(ours, parts=parts, workers=2)
        assert len(cut) == parts
        assert groups(cut) == groups(beam_buffer.partition(1))
    if parts >= 4 and partitions == 256:  # the keys are spread, not all in one bundle
        assert sum(1 for part in bounded_bundles.cut(both([chunk(pairs(seeds[0], 60))])[1], parts, 2)
                   if groups([part])) >= 2


def test_a_grouping_s_file_is_closed_once_its_last_part_is_read() -> None:
    """The runner keeps a stage's input buffer until the build ends; its file goes back as soon as
    every bundle's share has been read (or Beam's cut has encoded them all)."""
    _, ours = both([chunk(pairs(seed)) for seed in range(2)])
    file = ours._spill.get()._file
    parts = bounded_bundles.cut(ours, parts=3, workers=2)
    bounded_bundles.release(ours)
    for part in parts[:2]:
        assert list(part) and not file.closed
    assert list(parts[0]) == [b""] and not file.closed  # a part read again is empty, not the last read
    assert list(parts[2]) and file.closed
    _, small = both([chunk(pairs(5))])
    small_file = small._spill.get()._file
    small.partition(2)
    assert small_file.closed and small.partition(2)  # the parts encoded, kept as Beam keeps them


def test_values_the_sdk_decodes_are_written_with_their_coder_and_read_back() -> None:
    """A value coder the runner knows (here integers) gives values that are not bytes."""
    keyed = coders.WindowedValueCoder(coders.TupleCoder([coders.BytesCoder(), coders.VarIntCoder()]), WINDOW)
    grouped = coders.WindowedValueCoder(
        coders.TupleCoder([coders.BytesCoder(), coders.IterableCoder(coders.VarIntCoder())]), WINDOW)
    data = chunk([(b"k%d" % (n % 7), n * 1_000_003 - 5) for n in range(100)], keyed)
    beam_buffer, ours = both([data], keyed, grouped)
    assert groups(bounded_bundles.cut(ours, parts=4, workers=2), grouped) == groups(beam_buffer.partition(1), grouped)


def test_two_groupings_of_the_same_input_merge_with_their_values() -> None:
    first, second, third = [chunk(pairs(seed)) for seed in (7, 8, 9)]
    beam_first, ours_first = both([first])
    beam_second, ours_second = both([second])
    beam_third, _ = both([third])
    beam_first.extend(beam_second)
    ours_first.extend(ours_second)
    ours_second._spill.get().close()  # the merged values were copied: the other's file may go
    ours_first.extend(both([third])[0])  # and a grouping held as Beam holds it
    beam_first.extend(beam_third)
    assert bounded_bundles.input_size(ours_first) == bounded_bundles.input_size(beam_first)
    assert groups(ours_first.partition(2)) == groups(beam_first.partition(2))


def test_values_appended_from_several_threads_all_read_back() -> None:
    chunks = [chunk(pairs(seed, 200)) for seed in range(16)]
    ours = SpilledGroupingBuffer(KEYED, GROUPED, Windowing(GlobalWindows()))
    threads = [threading.Thread(target=lambda part=chunks[k::4]: [ours.append(c) for c in part]) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = ours.groups(range(spilled_buffers.GROUPING_PARTITIONS))
    got = sorted((key, value) for key, values in held.items() for value in values)
    assert got == sorted(pair for seed in range(16) for pair in pairs(seed, 200))
    assert bounded_bundles.input_size(ours).grouped_values == 16 * 200


def test_a_grouping_in_other_windows_is_kept_as_beam_keeps_it() -> None:
    windowing = Windowing(FixedWindows(10))
    keyed = coders.WindowedValueCoder(coders.TupleCoder([coders.BytesCoder(), coders.BytesCoder()]),
                                      IntervalWindowCoder())
    grouped = coders.WindowedValueCoder(
        coders.TupleCoder([coders.BytesCoder(), coders.IterableCoder(coders.BytesCoder())]),
        IntervalWindowCoder())
    stream = execution.create_OutputStream()
    for n in range(40):
        keyed.get_impl().encode_to_stream(
            WindowedValue((b"k%d" % (n % 3), b"v%d" % n), n, [IntervalWindow(n // 10 * 10, n // 10 * 10 + 10)]),
            stream, True)
    beam_buffer = BeamGroupingBuffer(keyed, grouped, windowing)
    ours = SpilledGroupingBuffer(keyed, grouped, windowing)
    for buffer in (beam_buffer, ours):
        buffer.append(stream.get())
    assert not ours.partitioned and not ours.is_empty()
    assert ours.partition(2) == beam_buffer.partition(2)


def test_the_spill_file_has_no_name_left_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(spilled_buffers.tempfile, "tempdir", None)
    _, ours = both([chunk(pairs(1))])
    assert os.fstat(ours._spill.get()._fd).st_size > 0
    assert list(tmp_path.iterdir()) == []  # unlinked at birth: a killed build leaves nothing


def list_buffers(chunks: list[bytes]) -> tuple[BeamListBuffer, SpilledListBuffer]:
    beam_buffer, ours = BeamListBuffer(None), SpilledListBuffer(None)
    for data in chunks:
        beam_buffer.append(data)
        ours.append(data)
    return beam_buffer, ours


def output_chunks(seed: int) -> list[bytes]:
    """A stage's output as its workers send it: chunks of encoded elements, most large, some small."""
    rng = random.Random(seed)
    return [rng.randbytes(rng.choice([10, SPILL_MIN_CHUNK_BYTES - 1, SPILL_MIN_CHUNK_BYTES, 300_000]))
            for _ in range(9)]


def test_a_stage_output_s_large_chunks_wait_on_disk_and_read_back_in_order() -> None:
    chunks = output_chunks(1)
    beam_buffer, ours = list_buffers(chunks)
    held = ours.chunks()
    assert [type(chunk) is SpilledChunk for chunk in held] == [len(c) >= SPILL_MIN_CHUNK_BYTES for c in chunks]
    assert list(ours) == chunks
    assert bounded_bundles.input_size(ours) == bounded_bundles.input_size(beam_buffer)
    assert [list(part) for part in bounded_bundles.cut(ours, parts=4, workers=2)] == [
        list(part) for part in bounded_bundles.cut(beam_buffer, parts=4, workers=2)]
    copy = ours.copy()  # a second consuming stage's own buffer
    copy.extend(list_buffers(output_chunks(2))[1])  # and another stage's output to the same collection
    assert list(copy) == chunks + output_chunks(2)
    assert ours.partition(2) == beam_buffer.partition(2)  # Beam's cut, for small inputs: the same bytes


def test_a_spill_file_is_closed_once_nothing_refers_to_it() -> None:
    _, ours = list_buffers(output_chunks(3))
    parts = bounded_bundles.cut(ours, parts=2, workers=2)
    file = ours._spill.get()._file
    bounded_bundles.release(ours)
    assert not file.closed  # the parts still hold chunks in it
    del ours, parts
    gc.collect()
    assert file.closed


def test_a_failed_write_is_one_clear_error_naming_the_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(spilled_buffers.os, "pwrite", full)
    with pytest.raises(SpillError, match=r"cannot write the run's temporary data in .*No space left on device.*TMPDIR"):
        SpilledListBuffer(None).append(b"x" * SPILL_MIN_CHUNK_BYTES)


def _keyed(n: int) -> tuple[int, bytes]:
    return n % 50, bytes([n % 251]) * 1_000


@pytest.mark.slow
def test_a_multi_processing_run_keeps_its_collections_on_disk_and_gets_beam_s_results(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a stage's output and grouped values both large enough to spill, on the real runner."""
    monkeypatch.setattr(spilled_buffers, "_USAGE", spilled_buffers._Usage())  # this run's files only
    options = PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    pipeline = beam_pipeline(options)
    keyed = pipeline | beam.Create(range(6_000)) | beam.Reshuffle() | beam.Map(_keyed)
    sizes = keyed | beam.GroupByKey() | beam.MapTuple(lambda key, values: (key, sorted(len(v) + v[0] for v in values)))
    expected = [(k, sorted(1_000 + n % 251 for n in range(6_000) if n % 50 == k)) for k in range(50)]
    assert_that(sizes, equal_to(expected))
    pipeline.run().wait_until_finish()
    assert spilled_buffers.peak_spilled_bytes() > 6_000 * 1_000  # the grouping's values, at least, went to disk
    gc.collect()
    assert spilled_buffers._USAGE.held == 0  # and every file was closed after
