"""Spilled tokens: where a tokenized document's token ids wait between tokenize and the shard writer,
and where a document's text waits for the second pass of the sampled tokenizer.

The mixture is planned from every document's token count, so every tokenized document waits for
the plan before its copies are cut. Held in memory, that is all of the corpus's token ids at once
(4 bytes a token: a million documents of 1.6 KB hold about 2 GB), on the workers that tokenized
them, and it grows with the corpus. Instead a tokenize bundle streams its documents' ids to a spill
file in the build's folder (`SPILL_GLOB`, in the build's token dtype, back to back) and a tokenized
document carries only where its ids are (`SpilledTokens`). The shard writer reads them back
(`read_spilled`: one read per run of nearby documents of a file), and the spill files are removed
once every shard is written (`remove_spills`). The build's folder must be storage every worker
reads, as its shards already must be.

The sampled tokenizer (`pipelines/tokenize_sampled.py`) parks whole documents the same way
(`park_document`, `read_documents`: each pickled into a spill file) while they wait for the first
bounds and, past their source's bound, for the partial pools (most are never tokenized): held with
their texts, they were most of what a Dask worker held at a million documents, and with their
metadata still its largest rise.

A spill file's name is random (uuid4): a retried bundle writes a file of its own instead of racing
the failed attempt's, and the failed attempt's file goes with the rest (by its name's pattern).
Names never reach the build's output, whose bytes do not depend on them.
"""

from __future__ import annotations

import pickle
import re
import uuid
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from lemur_corpus.document import Document
from lemur_corpus.io import delete_if_present, join, makedirs, names_in, open_for_writing, open_ranged

SPILL_GLOB = "spill-*.bin"
SPILL_NAME = r"spill-[0-9a-f]{32}\.bin"
"""A spill file's name, as a glob (to list a folder, remote ones too) and as the regular expression a
name must match (the build's folder claims it; `spill-notes.bin` is the user's)."""
COALESCE_BYTES = 1 << 16
"""Documents of one spill file less than this apart are read in one read (the bytes between are
skipped): the shard writer asks for a sample of a file's documents, in order."""


class SpilledTokens(NamedTuple):
    """Where a document's token ids are: the spill file, the offset of its first id (in ids), how many."""

    path: str
    offset: int
    length: int


class SpillWriter:
    """One bundle's spill file, token arrays appended back to back. The file is complete once
    `close` returns; the documents it holds must not be read before (their bundle is not done)."""

    def __init__(self, folder: str, dtype: np.dtype) -> None:
        makedirs(folder)
        self.path = join(folder, f"spill-{uuid.uuid4().hex}.bin")
        self.dtype = np.dtype(dtype)
        self._handle = open_for_writing(self.path)
        self._written = 0

    def append(self, tokens: np.ndarray) -> SpilledTokens:
        ids = np.ascontiguousarray(tokens, dtype=self.dtype)
        self._handle.write(memoryview(ids).cast("B"))  # type: ignore[arg-type]  # numpy stubs: __buffer__ only on 3.12+
        where = SpilledTokens(self.path, self._written, len(ids))
        self._written += len(ids)
        return where

    def close(self) -> None:
        self._handle.close()


class BundleSpill:
    """A bundle's spill file, made on its first append (a bundle may have nothing to spill) and
    closed at the bundle's end, or at the start of the next one after a failure left it open."""

    def __init__(self, folder: str, dtype: np.dtype) -> None:
        self.folder, self.dtype = folder, np.dtype(dtype)
        self._writer: SpillWriter | None = None

    def append(self, values: np.ndarray) -> SpilledTokens:
        if self._writer is None:
            self._writer = SpillWriter(self.folder, self.dtype)
        return self._writer.append(values)

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


PARKED_DTYPE = np.dtype(np.uint8)
"""A parked document's unit: a byte of its pickle."""


def park_document(spill: BundleSpill, doc: Document) -> SpilledTokens:
    """Write the whole of `doc` (pickled, text and metadata: `Document` pickles as its field values)
    to a spill file of `PARKED_DTYPE`."""
    return spill.append(np.frombuffer(pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL), dtype=PARKED_DTYPE))


def read_documents(places: Sequence[SpilledTokens]) -> list[Document]:
    """The documents parked at `places`, in the order given (`read_spilled`'s reads), equal to the
    ones parked (lone surrogates in a text included: pickle keeps them)."""
    return [pickle.loads(memoryview(data)) for data in read_spilled(places, PARKED_DTYPE)]  # type: ignore[arg-type]  # numpy stubs: __buffer__ only on 3.12+


def read_spilled(places: Sequence[SpilledTokens], dtype: np.dtype) -> list[np.ndarray]:
    """The token ids at each place, in the order given: one open per spill file, one read per run
    of places less than `COALESCE_BYTES` apart. A file shorter than its places say is an `OSError`."""
    dtype = np.dtype(dtype)
    out: list[np.ndarray] = [np.empty(0, dtype=dtype)] * len(places)
    by_file: dict[str, list[int]] = {}
    for i, place in enumerate(places):
        by_file.setdefault(place.path, []).append(i)
    for path, indexes in by_file.items():
        indexes.sort(key=lambda i: places[i].offset)
        with open_ranged(path) as handle:
            for run in _runs(places, indexes, dtype.itemsize):
                start = places[run[0]].offset
                end = max(places[i].offset + places[i].length for i in run)
                handle.seek(start * dtype.itemsize)
                data = handle.read((end - start) * dtype.itemsize)
                if len(data) != (end - start) * dtype.itemsize:
                    raise OSError(f"{path}: {len(data) // dtype.itemsize} token ids at offset {start}, "
                                  f"{end - start} expected (the spill file is shorter than its documents say)")
                ids = np.frombuffer(data, dtype=dtype)
                for i in run:
                    out[i] = ids[places[i].offset - start:places[i].offset - start + places[i].length]
    return out


def _runs(places: Sequence[SpilledTokens], indexes: list[int], itemsize: int) -> Iterator[list[int]]:
    """`indexes` (one file's places, sorted by offset) cut where the gap to the next place exceeds
    `COALESCE_BYTES`."""
    run: list[int] = []
    end = 0
    for i in indexes:
        place = places[i]
        if run and (place.offset - end) * itemsize > COALESCE_BYTES:
            yield run
            run = []
        run.append(i)
        end = max(end, place.offset + place.length)
    if run:
        yield run


def remove_spills(folder: str) -> int:
    """Remove every spill file in `folder` (the build's own, by their names); how many there were."""
    paths = [join(folder, name) for name in names_in(folder, SPILL_GLOB) if re.fullmatch(SPILL_NAME, name)]
    delete_if_present(paths)
    return len(paths)
