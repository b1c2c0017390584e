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
and keeps a `SpilledChunk` in its place; `SpilledGroupingBuffer` writes each value of at least
`SPILL_MIN_VALUE_BYTES` and keeps its place in the file (one int) in the table. They are read back
by the stage that reads them, a bundle's share when that bundle is sent (`bounded_bundles`), or all
at once on the runner's other paths (small inputs). Small chunks and values (timers, counts, lifted
combiners' small accumulators) stay in memory, where a place would save nothing.

A file is unlinked as soon as it is made (`tempfile.TemporaryFile`, in TMPDIR), so a build that
fails or is killed leaves nothing behind, and it is closed once no buffer holds a place in it: the
disk holds the collections the driver would have held in memory, no more. Only the multi_processing
runner uses them (`sdk_workers.WarmFnApiRunner.run_stages`); the bytes read back are the bytes
written, in Beam's order, so the stages read what they read from Beam's buffers.
"""

from __future__ import annotations

import os
import tempfile
import threading
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
SPILL_MIN_VALUE_BYTES = 32
"""A grouped value this large or larger goes to the file; smaller ones stay in memory. A place in the
file is an int of 40 bytes and a read when the value is sent; a value held is a bytes object of 33
bytes plus its length, rounded up to 8. With 256, near dedup's pair and component groupings held
most of their values in memory as they were (a by-hand probe of the driver's buffers: values of
50-170 bytes, growing faster than the corpus, as the pairs do), several times what their places
take."""
_LENGTH_BITS = 32
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1


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


def is_spilled(value: Any) -> bool:
    """Whether a grouped value is a place in the spill file rather than the value."""
    return type(value) is int


def spilled_length(value: int) -> int:
    """The length of the value a place stands for."""
    return value & _LENGTH_MASK


class SpilledGroupingBuffer(BeamGroupingBuffer):
    """Beam's `GroupingBuffer` whose values of `SPILL_MIN_VALUE_BYTES` or more wait in a `SpillFile`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._spill = _LazySpill()
        self._spilled = False

    def append(self, elements_data: bytes) -> None:
        if not self._windowing.is_default():  # values kept windowed, as Beam keeps them
            super().append(elements_data)
            return
        if self._grouped_output:
            raise RuntimeError("Grouping table append after read.")
        stream = execution.create_InputStream(elements_data)
        coder = self._pre_grouped_coder.get_impl()
        key_coder = self._key_coder.get_impl()
        decode, encode_key = coder.decode_from_stream, key_coder.encode
        keys: list[bytes] = []
        values: list[Any] = []
        while stream.size() > 0:
            key, value = decode(stream, True).value
            keys.append(encode_key(key))
            values.append(value)
        table = self._table
        for encoded_key, value in zip(keys, self.placed(values), strict=True):
            table[encoded_key].append(value)

    def placed(self, values: list[Any]) -> list[Any]:
        """`values` with each large one written to this buffer's file (one write for all: each place
        follows from the lengths) and given as its place."""
        large = [value for value in values if type(value) is bytes and len(value) >= SPILL_MIN_VALUE_BYTES]
        if not large:
            return values
        self._spilled = True
        offset = self._spill.get().write(b"".join(large))
        placed: list[Any] = []
        for value in values:
            if type(value) is bytes and len(value) >= SPILL_MIN_VALUE_BYTES:
                placed.append(offset << _LENGTH_BITS | len(value))
                offset += len(value)
            else:
                placed.append(value)
        return placed

    def extend(self, input_buffer: Any) -> None:
        """Beam's merge of two groupings of the same input (made by different stages): the other's
        spilled values are copied into this buffer's file."""
        if not isinstance(input_buffer, SpilledGroupingBuffer):
            super().extend(input_buffer)
            return
        for key, values in input_buffer._table.items():
            self._table[key].extend(self.placed(input_buffer.read_values(values)))

    def read_values(self, values: Iterable[Any]) -> list[Any]:
        """A key's values as Beam would hold them: each spilled one read back, a read of its own.
        (Not through a map of the file: a bundle's keys have values all over it, so reading one
        bundle's share mapped nearly the whole file into the driver's resident memory while it was
        read: `benchmarks/scale.py`'s driver peak at 200,000 documents was twice the one with reads.)"""
        if not self._spilled:
            return list(values)
        file = self._spill.get()
        return [file.read(value >> _LENGTH_BITS, value & _LENGTH_MASK) if type(value) is int else value
                for value in values]

    def partition(self, n: int) -> list[list[bytes]]:
        """Beam's cut (the runner's paths for small inputs), with the values read back first."""
        if not self._grouped_output and self._spilled:
            for key, values in self._table.items():
                self._table[key] = self.read_values(values)
        return super().partition(n)
