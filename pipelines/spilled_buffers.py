"""The multi_processing driver's collections, their data on disk.

Beam's FnApiRunner holds every PCollection between two stages in the driver: a stage's output as the
chunks its workers sent (`ListBuffer`), a GroupByKey's input as every value, encoded, under its key
(`GroupingBuffer`), until the stage that reads it runs. A build's largest collections are the size
of the corpus or more (the documents joined with their dedup decisions, then waiting for the
tokenizer's split; near dedup's verification groups, a copy of a document's payload for each later
document it is paired with, which grow faster than the corpus): the driver's memory followed them
(`benchmarks/scale.py`: x2.9 for x4 documents).

Here both wait in temporary files instead. `SpilledListBuffer` writes each chunk of at least
`SPILL_MIN_CHUNK_BYTES` (the workers send theirs in 2 MB pieces: `worker_memory.OUTPUT_FLUSH_BYTES`)
and keeps a `SpilledChunk` in its place; small chunks (timers, the end of a bundle's output) stay in
memory, where a place would save nothing. `SpilledGroupingBuffer` writes every key and value, in
hash partitions of the keys, and holds no table of keys: the groupings keyed by document have a
key or more per document. Both are read back by the stage that reads them, a bundle's share when
that bundle is sent (`bounded_bundles`), or all at once on the runner's other paths (small inputs).

A file is unlinked as soon as it is made (`tempfile.TemporaryFile`, in TMPDIR), so a build that
fails or is killed leaves nothing behind, and it is closed once no buffer holds a place in it: the
disk holds the collections the driver would have held in memory, no more. Only the multi_processing
runner uses them (`sdk_workers.WarmFnApiRunner.run_stages`). A stage reads the same elements as
from Beam's buffers: a chunk's bytes as written, each key with all its values in the order they
came; a grouping's keys are dealt to bundles by partition rather than in the order they came, and
every stage of the build sorts what it groups (the same build writes the same bytes on Dask, whose
bundles are its partitions).
"""

from __future__ import annotations

import os
import tempfile
import threading
import zlib
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from apache_beam.runners.portability.fn_api_runner import execution

from lemur_corpus.errors import SpillError

BeamListBuffer = execution.ListBuffer
"""Beam's own classes, as imported before a run swapped them."""
BeamGroupingBuffer = execution.GroupingBuffer

SPILL_MIN_CHUNK_BYTES = 64 << 10
"""A stage output's chunk this large or larger goes to the file (the workers' output arrives in
chunks of about 2 MB); smaller ones (the end of a bundle's output, timers) stay in memory."""


class _Usage:
    """The bytes this process's spill files hold now, and the most they have held."""

    def __init__(self) -> None:
        self.held = 0
        self.peak = 0
        self.lock = threading.Lock()

    def add(self, size: int) -> None:
        with self.lock:
            self.held += size
            self.peak = max(self.peak, self.held)


_USAGE = _Usage()


def peak_spilled_bytes() -> int:
    """The most this process's spill files held on disk at once (`benchmarks/scale.py` prints it)."""
    return _USAGE.peak


class SpillFile:
    """An append-only temporary file, unlinked at birth, that several threads write (the bundles of a
    stage send their outputs to the same collection at once) and read at known places; closed when
    the last buffer or chunk that refers to it is gone."""

    def __init__(self) -> None:
        try:
            self._file = tempfile.TemporaryFile(prefix="lemur-corpus-spill-")  # noqa: SIM115  # closed in close/__del__
        except OSError as exc:
            raise SpillError(tempfile.gettempdir(), exc.strerror or str(exc)) from exc
        self._fd = self._file.fileno()
        self._size = 0
        self._lock = threading.Lock()

    def write(self, blob: bytes) -> int:
        """Append `blob`; where it begins."""
        with self._lock:
            offset = self._size
            self._size += len(blob)
        _USAGE.add(len(blob))
        try:
            written = os.pwrite(self._fd, blob, offset)
        except OSError as exc:
            raise SpillError(tempfile.gettempdir(), exc.strerror or str(exc)) from exc
        if written != len(blob):  # a regular file is written whole, or the write fails
            raise SpillError(tempfile.gettempdir(), f"{written} of {len(blob)} bytes written")
        return offset

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise OSError(f"a spill file of the driver is short: {len(data)} of {length} bytes read back")
        return data

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            self._file.close()
            _USAGE.add(-self._size)

    def __del__(self) -> None:
        if getattr(self, "_file", None) is not None:
            self.close()


class _LazySpill:
    """A buffer's spill file, made on its first large write (most collections are small)."""

    def __init__(self) -> None:
        self._file: SpillFile | None = None
        self._lock = threading.Lock()

    def get(self) -> SpillFile:
        with self._lock:
            if self._file is None:
                self._file = SpillFile()
            return self._file

    def close(self) -> None:
        """Close the file, if one was made, once nothing will read it again."""
        with self._lock:
            if self._file is not None:
                self._file.close()


# ---------------------------------------------------------------------------------------------
# A stage's output


class SpilledChunk(NamedTuple):
    """A chunk of encoded elements, in a spill file."""

    file: SpillFile
    offset: int
    length: int

    def read(self) -> bytes:
        return self.file.read(self.offset, self.length)


def chunk_bytes(chunk: Any) -> bytes:
    """A ListBuffer's chunk as bytes: a spilled one read back, anything else as it is."""
    return chunk.read() if type(chunk) is SpilledChunk else chunk


def chunk_length(chunk: Any) -> int:
    """A ListBuffer's chunk's size in bytes (0 for an element that is not encoded bytes)."""
    if type(chunk) is SpilledChunk:
        return chunk.length
    return len(chunk) if type(chunk) is bytes else 0


class ReadChunks:
    """Some of a buffer's chunks, read back one at a time as they are sent."""

    def __init__(self, chunks: list[Any]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[Any]:
        return map(chunk_bytes, self._chunks)


class SpilledListBuffer(BeamListBuffer):
    """Beam's `ListBuffer` whose chunks of `SPILL_MIN_CHUNK_BYTES` or more wait in a `SpillFile`."""

    def __init__(self, coder_impl: Any) -> None:
        super().__init__(coder_impl)
        self._spill = _LazySpill()

    def append(self, element: bytes) -> None:
        if type(element) is not bytes or len(element) < SPILL_MIN_CHUNK_BYTES:
            super().append(element)
            return
        if self.cleared:
            raise RuntimeError("Trying to append to a cleared ListBuffer.")
        if self._grouped_output:
            raise RuntimeError("ListBuffer append after read.")
        file = self._spill.get()
        self._inputs.append(SpilledChunk(file, file.write(element), len(element)))  # type: ignore[arg-type]  # held in place of the bytes

    def copy(self) -> SpilledListBuffer:
        new = SpilledListBuffer(self._coder_impl)
        new._inputs = list(self._inputs)
        return new

    def chunks(self) -> list[Any]:
        """The chunks as held: bytes, or `SpilledChunk`s."""
        if self.cleared:
            raise RuntimeError("Trying to iterate through a cleared ListBuffer.")
        return self._inputs

    def __iter__(self) -> Iterator[bytes]:
        return map(chunk_bytes, self.chunks())

    def partition(self, n: int) -> list[list[bytes]]:
        """Beam's cut (the runner's paths for small inputs), with the chunks read back first."""
        if not self._grouped_output:
            self._inputs = list(self)
        return super().partition(n)


# ---------------------------------------------------------------------------------------------
# A GroupByKey's input


GROUPING_PARTITIONS = 256
"""The hash partitions of a grouping's spill file: a key's records all land in one
(`key_partition`), and a bundle's share of the grouping is a few whole partitions. Enough that a
grouping cut into a few dozen bundles (`bounded_bundles`: one per 8 MB or 8,192 values a worker)
gives each several, so they come out about even; a grouping cut into more bundles than this splits
each partition by a second hash of its keys (`GroupingPart`)."""
_ON_TIME = execution.GlobalWindows.windowed_value(
    None, timestamp=execution.GlobalWindow().max_timestamp(),
    pane_info=execution.windowed_value.PaneInfo(is_first=True, is_last=True,
                                                timing=execution.windowed_value.PaneInfoTiming.ON_TIME,
                                                index=0, nonspeculative_index=0)).with_value
"""A key's grouped values as Beam's `GroupingBuffer.partition` emits them in the global window: one
on-time pane at the end of time."""


def key_partition(encoded_key: bytes) -> int:
    """The partition of a grouping's spill file that holds a key's records (the same in every run)."""
    return zlib.crc32(encoded_key) % GROUPING_PARTITIONS


def key_slice(encoded_key: bytes, slices: int) -> int:
    """Which of `slices` parts of its partition a key goes to (the hash's bits above the partition's)."""
    return zlib.crc32(encoded_key) // GROUPING_PARTITIONS % slices


def encode_groups(buffer: BeamGroupingBuffer, groups: Iterable[tuple[bytes, list[Any]]]) -> bytes:
    """Keys (encoded) with their values, as Beam's `GroupingBuffer.partition` encodes a part of a
    grouping in the global window."""
    coder = buffer._post_grouped_coder.get_impl()
    decode_key = buffer._key_coder.get_impl().decode
    stream = execution.create_OutputStream()
    for encoded_key, values in groups:
        coder.encode_to_stream(_ON_TIME((decode_key(encoded_key), values)), stream, True)
    return stream.get()


class SpilledGroupingBuffer(BeamGroupingBuffer):
    """Beam's `GroupingBuffer` whose keys and values, in the global window, wait in a `SpillFile`,
    in `GROUPING_PARTITIONS` hash partitions of their keys.

    Beam's holds a table of every key with the list of its values. The groupings keyed by document
    (the documents waiting for their dedup decisions, near dedup's pairs and components) have a key
    or more per document, so that table, even with every value in the file, grew with the corpus in
    the driver. Here nothing is held per key: an append's records (key, value) are written in one
    piece, sorted by partition, and the buffer keeps where each partition's records are (two ints
    per partition and append) and how many values and bytes it holds, which is what the runner cuts
    by. A bundle's share is grouped by key when the bundle is sent (`GroupingPart`). Values in other
    windows are kept as Beam keeps them (`partitioned` is false)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.partitioned = self._windowing.is_default()
        self._spill = _LazySpill()
        self._lock = threading.Lock()
        self._segments = [array("q") for _ in range(GROUPING_PARTITIONS)]  # (offset, length) pairs
        self._values = 0
        self._value_bytes = 0
        self._parts_unread = 0
        value_coder = self._pre_grouped_coder.value_coder().get_impl()
        self._encode_value, self._decode_value = value_coder.encode, value_coder.decode

    def append(self, elements_data: bytes) -> None:
        if not self.partitioned:
            super().append(elements_data)
            return
        if self._grouped_output:
            raise RuntimeError("Grouping table append after read.")
        stream = execution.create_InputStream(elements_data)
        decode = self._pre_grouped_coder.get_impl().decode_from_stream
        encode_key = self._key_coder.get_impl().encode
        pairs = []
        while stream.size() > 0:
            key, value = decode(stream, True).value
            pairs.append((encode_key(key), value))
        self._add(pairs)

    def _add(self, pairs: Iterable[tuple[bytes, Any]]) -> None:
        """Write (encoded key, value) records, sorted by partition, in one piece. A record is the key's
        length and the key, then the value's length (doubled, plus one where the value is encoded by
        the value coder rather than bytes as they came) and the value."""
        streams = [execution.create_OutputStream() for _ in range(GROUPING_PARTITIONS)]
        values = value_bytes = 0
        for encoded_key, value in pairs:
            if type(value) is bytes:
                blob, header = value, len(value) << 1
            else:
                blob = self._encode_value(value)
                header = len(blob) << 1 | 1
            out = streams[key_partition(encoded_key)]
            out.write_var_int64(len(encoded_key))
            out.write(encoded_key)
            out.write_var_int64(header)
            out.write(blob)
            values += 1
            value_bytes += len(blob)
        self._write([(partition, stream.get()) for partition, stream in enumerate(streams) if stream.size()],
                    values, value_bytes)

    def _write(self, pieces: list[tuple[int, bytes]], values: int, value_bytes: int) -> None:
        """Append partitions' records (`pieces`: partition, records) holding `values` values."""
        if not pieces:
            return
        offset = self._spill.get().write(b"".join(records for _, records in pieces))
        with self._lock:
            for partition, records in pieces:
                self._segments[partition].extend((offset, len(records)))
                offset += len(records)
            self._values += values
            self._value_bytes += value_bytes

    def size(self) -> tuple[int, int]:
        """The bytes of the values held (as the SDK encoded them) and their count."""
        return self._value_bytes, self._values

    def is_empty(self) -> bool:
        return not self._values if self.partitioned else not self._table

    def records(self, partition: int) -> bytes:
        """A partition's records, read back (one read per append that wrote to it)."""
        segments = self._segments[partition]
        if not segments:
            return b""
        file = self._spill.get()
        return b"".join(file.read(segments[i], segments[i + 1]) for i in range(0, len(segments), 2))

    def groups(self, partitions: Iterable[int], slices: int = 1, index: int = 0) -> dict[bytes, list[Any]]:
        """The keys of `partitions` (of their `index`th slice of `slices`) with their values, in the
        order they came in."""
        table: dict[bytes, list[Any]] = defaultdict(list)
        decode_value = self._decode_value
        for partition in partitions:
            stream = execution.create_InputStream(self.records(partition))
            while stream.size() > 0:
                encoded_key = stream.read(stream.read_var_int64())
                header = stream.read_var_int64()
                blob = stream.read(header >> 1)
                if slices == 1 or key_slice(encoded_key, slices) == index:
                    table[encoded_key].append(decode_value(blob) if header & 1 else blob)
        return table

    def cut(self, parts: int) -> list[GroupingPart]:
        """The grouping in `parts` bundles' shares: the partitions dealt in turn, each split into
        slices where there are more parts than partitions."""
        slices = -(-parts // GROUPING_PARTITIONS)
        pieces = [(partition, index) for partition in range(GROUPING_PARTITIONS) for index in range(slices)]
        self._parts_unread = parts
        return [GroupingPart(self, pieces[k::parts], slices) for k in range(parts)]

    def part_read(self) -> None:
        """One of the parts `cut` made has been read: after the last, the file's space goes back (the
        runner keeps the buffer, emptied, until the build ends)."""
        with self._lock:
            self._parts_unread -= 1
            last = self._parts_unread == 0
        if last:
            self._drop_records()

    def _drop_records(self) -> None:
        self._segments = [array("q") for _ in range(GROUPING_PARTITIONS)]
        self._spill.close()

    def extend(self, input_buffer: Any) -> None:
        """Beam's merge of two groupings of the same input (made by different stages): the other's
        records are copied into this buffer's file."""
        if not self.partitioned or isinstance(input_buffer, BeamListBuffer):
            super().extend(input_buffer)  # Beam's: a ListBuffer is ignored
            return
        if isinstance(input_buffer, SpilledGroupingBuffer) and input_buffer.partitioned:
            for partition in range(GROUPING_PARTITIONS):  # one partition in memory at a time
                self._write([(partition, input_buffer.records(partition))], 0, 0)
            with self._lock:
                self._values += input_buffer._values
                self._value_bytes += input_buffer._value_bytes
            return
        self._add((key, value) for key, values in input_buffer._table.items() for value in values)

    def partition(self, n: int) -> list[list[bytes]]:
        """Beam's cut (the runner's paths for small inputs): the keys dealt in turn over `n` parts."""
        if not self.partitioned or self._grouped_output:
            return super().partition(n)
        groups = list(self.groups(range(GROUPING_PARTITIONS)).items())
        self._grouped_output = [[encode_groups(self, groups[k::n])] for k in range(n)]
        self._drop_records()
        return self._grouped_output


class GroupingPart:
    """One bundle's share of a grouping in the global window, encoded only when its bundle sends it.
    Beam's cut encodes every part before the stage starts and holds them all until it ends, so the
    driver held a grouping twice over (its values, then its parts) and then its parts beside the
    stage's outputs; the largest grouping of a build (near dedup's verification groups, a copy of a
    document's payload for each document it is paired with) was the driver's peak.

    Of a `SpilledGroupingBuffer`, its pieces (partition, slice) are read from the file and grouped
    by key; of Beam's own buffer (`pieces` are its keys), each key's values leave the buffer as
    they are encoded, and the keys and values come out as Beam's cut gives them."""

    def __init__(self, buffer: BeamGroupingBuffer, pieces: list[Any], slices: int = 1) -> None:
        self._buffer = buffer
        self._pieces: list[Any] | None = pieces
        self._slices = slices

    def __iter__(self) -> Iterator[bytes]:
        yield self._encode()

    def _encode(self) -> bytes:
        pieces, self._pieces = self._pieces, None  # read once: Beam's buffer's values are gone after,
        if pieces is None:  # and a spilled grouping's file once its last part is read
            return b""
        buffer = self._buffer
        if isinstance(buffer, SpilledGroupingBuffer):
            groups: dict[bytes, list[Any]] = {}
            for partition, index in pieces:
                groups.update(buffer.groups([partition], self._slices, index))
            buffer.part_read()
            return encode_groups(buffer, groups.items())
        table = buffer._table
        return encode_groups(buffer, ((encoded_key, table.pop(encoded_key)) for encoded_key in pieces))
