"""Re-measuring a build's shards from their files, trusting none of the manifest's numbers.

Every shard's `.bin`, `.idx` and `.docs.jsonl.zst` is re-read and hashed (sha256); tokens and
documents are counted again, and attributed to their sources with their (document, copy) placements
through the docs index. The `.bin` files are streamed once each, in chunks (sha256, id range and
end-of-document tokens in the same pass), so memory stays bounded by the chunk size plus ~30 bytes per
document copy. What a shard holds is a `ShardMeasure`; comparing it with the manifest is `checks`'.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import xxhash
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from lemur_corpus.errors import CorpusError
from lemur_corpus.io import exists, join, read_bytes
from lemur_corpus.shards import ShardFormatError, parse_index
from lemur_corpus.tokenizer import token_dtype

READ_CHUNK = 1 << 22
"""Bytes of `.bin` read at a time (a multiple of every token size)."""
LENGTH_BINS_PER_OCTAVE = 4
LENGTH_OCTAVES = 40
SHARD_FILES = ("bin", "idx", "docs")


@dataclasses.dataclass
class LengthHistogram:
    """Document lengths in tokens on log2 bins (LENGTH_BINS_PER_OCTAVE per octave): bounded memory at
    any scale, fine enough for quantiles and plots."""

    counts: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(LENGTH_BINS_PER_OCTAVE * LENGTH_OCTAVES, dtype=np.int64))
    documents: int = 0
    tokens: int = 0
    shortest: int = 0
    longest: int = 0

    def add(self, lengths: np.ndarray) -> None:
        if not len(lengths):
            return
        lengths = np.asarray(lengths, dtype=np.int64)
        bins = np.floor(np.log2(np.maximum(lengths, 1)) * LENGTH_BINS_PER_OCTAVE).astype(np.int64)
        self.counts += np.bincount(np.minimum(bins, len(self.counts) - 1), minlength=len(self.counts))
        low, high = int(lengths.min()), int(lengths.max())
        self.shortest = low if not self.documents else min(self.shortest, low)
        self.longest = max(self.longest, high)
        self.documents += len(lengths)
        self.tokens += int(lengths.sum())

    def edges(self) -> np.ndarray:
        return 2.0 ** (np.arange(len(self.counts) + 1) / LENGTH_BINS_PER_OCTAVE)

    def quantile(self, q: float) -> float:
        """Approximate quantile: the geometric middle of the bin holding it, clipped to the real range."""
        if not self.documents:
            return 0.0
        position = int(np.searchsorted(np.cumsum(self.counts), q * self.documents, side="left"))
        edges = self.edges()
        middle = math.sqrt(edges[position] * edges[position + 1])
        return float(min(max(middle, self.shortest), self.longest))

    def summary(self) -> dict[str, float | int]:
        return {"documents": self.documents, "tokens": self.tokens, "min": self.shortest, "max": self.longest,
                "mean": self.tokens / self.documents if self.documents else 0.0,
                "p50": self.quantile(0.5), "p90": self.quantile(0.9), "p99": self.quantile(0.99)}


@dataclasses.dataclass
class SourceCopies:
    """The (document, copy) placements of one source: 128-bit id hashes, copy numbers, token counts."""

    id_hi: list[np.ndarray] = dataclasses.field(default_factory=list)
    id_lo: list[np.ndarray] = dataclasses.field(default_factory=list)
    copy: list[np.ndarray] = dataclasses.field(default_factory=list)
    tokens: list[np.ndarray] = dataclasses.field(default_factory=list)

    def extend(self, other: SourceCopies) -> None:
        for name in ("id_hi", "id_lo", "copy", "tokens"):
            getattr(self, name).extend(getattr(other, name))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        return (cat(self.id_hi, np.uint64), cat(self.id_lo, np.uint64), cat(self.copy, np.int64),
                cat(self.tokens, np.int64))


@dataclasses.dataclass
class ShardMeasure:
    """What one shard's files really hold."""

    name: str
    files: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
    """kind -> (bytes, sha256) of every file that exists."""
    dtype: str | None = None
    tokens: int = 0
    documents: int = 0
    tokens_by_source: dict[str, int] = dataclasses.field(default_factory=dict)
    documents_by_source: dict[str, int] = dataclasses.field(default_factory=dict)
    copies: dict[str, SourceCopies] = dataclasses.field(default_factory=dict)
    max_token_id: int | None = None
    eos_misses: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    tokenizer_signs: list[str] = dataclasses.field(default_factory=list)
    """Evidence that another tokenizer wrote the shard (ids beyond the vocabulary, EOS, dtype)."""


def _file_path(build_dir: str, record: dict[str, Any], kind: str) -> str:
    extension = {"bin": ".bin", "idx": ".idx", "docs": ".docs.jsonl.zst", "jsonl": ".jsonl.zst"}[kind]
    relative = ((record.get("files") or {}).get(kind) or {}).get("path") or f"{record.get('name', '?')}{extension}"
    return join(build_dir, relative)


def _raw_chunks(path: str) -> Iterator[bytes]:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        while True:
            chunk = handle.read(READ_CHUNK)
            if not chunk:
                return
            yield chunk


def file_digest(path: str) -> tuple[int, str]:
    """(bytes, sha256) of a file as stored (compressed files are not decompressed)."""
    sha = hashlib.sha256()
    size = 0
    for chunk in _raw_chunks(path):
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest()


@dataclasses.dataclass
class BinScan:
    size: int
    sha256: str
    max_id: int | None
    min_id: int | None
    eos_misses: int
    segment_digests: list[str | None] = dataclasses.field(default_factory=list)
    """xxh3-64 of each requested byte range (None: it runs past the end of the file)."""


class SegmentHasher:
    """xxh3-64 of byte ranges of a file fed chunk by chunk in order (a variant's documents in a shared
    `.bin`: any order, any gaps), so the audit reads the `.bin` once."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray) -> None:
        order = np.argsort(starts, kind="stable")
        self.order, self.starts, self.ends = order, starts[order], ends[order]
        self.digests: list[str | None] = [None] * len(starts)
        self.hashers: dict[int, Any] = {}
        self.next = 0

    def feed(self, offset: int, chunk: bytes) -> None:
        end = offset + len(chunk)
        while self.next < len(self.starts) and self.starts[self.next] < end:
            self.hashers[self.next] = xxhash.xxh3_64()
            self.next += 1
        for i in list(self.hashers):
            lo, hi = max(int(self.starts[i]), offset) - offset, min(int(self.ends[i]), end) - offset
            if hi > lo:
                self.hashers[i].update(chunk[lo:hi])
            if self.ends[i] <= end:
                self.digests[int(self.order[i])] = self.hashers.pop(i).hexdigest()


def scan_bin(path: str, dtype: np.dtype | None, ends: np.ndarray, eos_id: int,
             segments: tuple[np.ndarray, np.ndarray] | None = None) -> BinScan:
    """One streaming pass over a `.bin`: sha256, the id range, and how many documents (whose last token
    positions are `ends`, sorted) do not end in `eos_id`; with `segments` (byte starts, byte ends), the
    xxh3-64 of each. With no dtype (a broken index) only the hash is taken."""
    sha = hashlib.sha256()
    size = 0
    carry = b""
    start = 0  # token position of the first token in `carry + chunk`
    max_id: int | None = None
    min_id: int | None = None
    misses = 0
    hasher = SegmentHasher(*segments) if segments is not None else None
    for chunk in _raw_chunks(path):
        sha.update(chunk)
        if hasher is not None:
            hasher.feed(size, chunk)
        size += len(chunk)
        if dtype is None:
            continue
        data = carry + chunk if carry else chunk
        usable = len(data) - len(data) % dtype.itemsize
        carry = data[usable:]
        tokens = np.frombuffer(data[:usable], dtype=dtype)
        if not len(tokens):
            continue
        high, low = int(tokens.max()), int(tokens.min())
        max_id = high if max_id is None else max(max_id, high)
        min_id = low if min_id is None else min(min_id, low)
        lo, hi = np.searchsorted(ends, [start, start + len(tokens)])
        if hi > lo:
            misses += int(np.count_nonzero(tokens[ends[lo:hi] - start] != eos_id))
        start += len(tokens)
    return BinScan(size, sha.hexdigest(), max_id, min_id, misses, hasher.digests if hasher is not None else [])


def read_docs_lines(path: str) -> list[dict[str, Any]]:
    """The docs index of a shard (decompressed with truncation checks by `corpus.io`), parsed as one
    JSON array (7x faster than a `json.loads` per line); a bad line is then found and named."""
    lines = [line for line in read_bytes(path).split(b"\n") if line.strip()]
    try:
        return json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        for number, line in enumerate(lines, 1):
            try:
                json.loads(line)
            except ValueError as exc:
                raise ValueError(f"line {number}: {exc}") from None
        raise


def _index_problems(name: str, index: Any, bin_tokens: int | None = None) -> list[str]:
    """The `.idx` against itself: back-to-back pointers, or (a shared `.bin` of `bin_tokens` tokens)
    pointers at whole tokens inside it."""
    problems = []
    lengths = index.lengths.astype(np.int64)
    if bin_tokens is None:
        expected = np.zeros(len(lengths), dtype=np.int64)
        if len(lengths) > 1:
            np.cumsum(lengths[:-1] * index.dtype.itemsize, out=expected[1:])
        if not np.array_equal(index.pointers, expected):
            problems.append(f"{name}.idx: byte pointers do not follow the sequence lengths")
    else:
        size = bin_tokens * index.dtype.itemsize
        outside = (index.pointers < 0) | (index.pointers + lengths * index.dtype.itemsize > size) | (
            index.pointers % index.dtype.itemsize != 0)
        if outside.any():
            problems.append(f"{name}.idx: {int(outside.sum()):,} byte pointer(s) outside the shared .bin's "
                            f"{bin_tokens:,} tokens or not at a token boundary")
    if not np.array_equal(index.document_indices, np.arange(len(lengths) + 1, dtype=np.int64)):
        problems.append(f"{name}.idx: document indices are not 0..{len(lengths)} (one sequence per document)")
    if len(lengths) and int(lengths.min()) <= 0:
        problems.append(f"{name}.idx: {int(np.count_nonzero(lengths <= 0))} document(s) of length <= 0")
    return problems


def _digest_problems(name: str, lines: list[dict[str, Any]], digests: list[str | None]) -> list[str]:
    """A shared `.bin`: each document's tokens at its pointer must be those its docs-index line names."""
    if len(lines) != len(digests):
        return []  # the count mismatch is reported by `_docs_measure`
    wrong = sum(1 for line, digest in zip(lines, digests, strict=True)
                if not isinstance(line, dict) or line.get("xxh") != digest)
    return [f"{name}: {wrong:,} document(s) whose .idx pointer addresses other tokens than its "
            ".docs.jsonl.zst line names (xxh3-64 of the tokens differs)"] if wrong else []


def _docs_measure(measure: ShardMeasure, lines: list[dict[str, Any]], lengths: np.ndarray | None) -> None:
    """Per-source counts and copy placements from the docs index, checked against the `.idx` lengths."""
    name = measure.name
    if lengths is not None and len(lines) != len(lengths):
        measure.problems.append(
            f"{name}.docs.jsonl.zst lists {len(lines):,} documents, the .idx {len(lengths):,}")
    by_source: dict[str, list[tuple[int, int, int, int]]] = {}
    disagree = 0
    for position, line in enumerate(lines):
        try:
            source, doc_id = str(line["source"]), str(line["id"])
            copy, tokens = int(line["copy"]), int(line["tokens"])
        except (KeyError, TypeError, ValueError):
            measure.problems.append(
                f"{name}.docs.jsonl.zst, line {position + 1}: not a {{id, source, copy, tokens}} record")
            continue
        if lengths is not None and position < len(lengths) and int(lengths[position]) != tokens:
            disagree += 1
        digest = xxhash.xxh3_128_intdigest(doc_id.encode("utf-8", "surrogatepass"))
        by_source.setdefault(source, []).append((digest >> 64, digest & 0xFFFFFFFFFFFFFFFF, copy, tokens))
    if disagree:
        measure.problems.append(f"{name}.docs.jsonl.zst: {disagree:,} document length(s) differ from the .idx")
    for source, rows in sorted(by_source.items()):
        hi, lo, copies, token_counts = (
            np.array(col, dtype=dt)
            for col, dt in zip(zip(*rows, strict=True), (np.uint64, np.uint64, np.int64, np.int64), strict=True))
        measure.copies[source] = SourceCopies([hi], [lo], [copies], [token_counts])
        measure.tokens_by_source[source] = int(token_counts.sum())
        measure.documents_by_source[source] = len(rows)


def measure_shard(build_dir: str, record: dict[str, Any], tokenizer: dict[str, Any]) -> ShardMeasure:
    """Re-read one shard's files; the record only says where they are and what dtype to expect."""
    name = str(record.get("name", "?"))
    measure = ShardMeasure(name)
    paths = {kind: _file_path(build_dir, record, kind) for kind in (*SHARD_FILES, *(
        k for k in (record.get("files") or {}) if k not in SHARD_FILES))}
    missing = [kind for kind, path in paths.items() if not exists(path)]
    for kind in missing:
        measure.problems.append(f"{name}: {paths[kind].rsplit('/', 1)[-1]} is missing (deleted or never written)")
    index = None
    if "idx" not in missing:
        raw = b"".join(_raw_chunks(paths["idx"]))
        measure.files["idx"] = (len(raw), hashlib.sha256(raw).hexdigest())
        try:
            index = parse_index(raw, f"{name}.idx")
        except ShardFormatError as exc:
            measure.problems.append(str(exc))
    shared = record.get("bin_tokens")  # a variant's shard: its .bin is token bytes shared with others
    bin_tokens = int(shared) if isinstance(shared, int) else None
    if index is not None:
        measure.dtype = index.dtype.name
        measure.problems.extend(_index_problems(name, index, bin_tokens))
        measure.documents = len(index.lengths)
        measure.tokens = int(index.lengths.astype(np.int64).sum())
    scan = None
    if "bin" not in missing:
        segments = None
        if index is None:
            ends = np.zeros(0, np.int64)
        elif bin_tokens is None:
            ends = np.cumsum(index.lengths.astype(np.int64)) - 1
        else:
            starts = index.pointers.astype(np.int64)
            stops = starts + index.lengths.astype(np.int64) * index.dtype.itemsize
            segments = (starts, stops)
            ends = np.unique(stops // index.dtype.itemsize - 1)
        scan = scan_bin(paths["bin"], index.dtype if index is not None else None, ends,
                        int(tokenizer.get("eos_id", -1)), segments)
        measure.files["bin"] = (scan.size, scan.sha256)
        if index is not None:
            described = measure.tokens if bin_tokens is None else bin_tokens
            expected = described * index.dtype.itemsize
            if scan.size != expected:
                measure.problems.append(f"{name}.bin is {scan.size:,} bytes, its "
                                        f"{'.idx' if bin_tokens is None else 'record (bin_tokens)'} describes "
                                        f"{expected:,} ({described:,} {index.dtype.name} tokens)")
            else:
                _tokenizer_signs(measure, scan, index.dtype, tokenizer)
    if "docs" not in missing:
        measure.files["docs"] = file_digest(paths["docs"])
        try:
            lines = read_docs_lines(paths["docs"])
        except (CorpusError, ValueError) as exc:
            measure.problems.append(f"{name}.docs.jsonl.zst is unreadable: {exc}")
        else:
            _docs_measure(measure, lines, index.lengths if index is not None else None)
            if bin_tokens is not None and scan is not None and index is not None:
                measure.problems.extend(_digest_problems(name, lines, scan.segment_digests))
    for kind in paths:
        if kind not in SHARD_FILES and kind not in missing:
            measure.files[kind] = file_digest(paths[kind])
    return measure


def _tokenizer_signs(measure: ShardMeasure, scan: BinScan, dtype: np.dtype, tokenizer: dict[str, Any]) -> None:
    name = measure.name
    vocab = tokenizer.get("vocab_size")
    measure.max_token_id = scan.max_id
    measure.eos_misses = scan.eos_misses
    if isinstance(vocab, int):
        try:
            wanted = token_dtype(vocab).name
        except CorpusError:
            wanted = None
        if wanted and dtype.name != wanted:
            measure.tokenizer_signs.append(
                f"{name}: tokens are {dtype.name}, but a vocabulary of {vocab:,} ids is written as {wanted}")
        if scan.max_id is not None and scan.max_id >= vocab:
            measure.tokenizer_signs.append(f"{name}: token id {scan.max_id:,} is beyond the vocabulary ({vocab:,} ids)")
    if scan.min_id is not None and scan.min_id < 0:
        measure.tokenizer_signs.append(f"{name}: negative token id {scan.min_id}")
    if scan.eos_misses:
        measure.tokenizer_signs.append(
            f"{name}: {scan.eos_misses:,} of {measure.documents:,} documents do not end with EOS id "
            f"{tokenizer.get('eos_id')} ({tokenizer.get('eos_token')!r})")


# ---------------------------------------------------------------------------------------------
# Every shard of a build


def _measure_all(build_dir: str, records: list[dict[str, Any]], tokenizer: dict[str, Any],
                 workers: int, progress: Callable[[str], None] | None) -> list[ShardMeasure]:
    """Shards are independent: hash and scan them on a few threads (hashlib and numpy release the GIL)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(measure_shard, build_dir, r, tokenizer) for r in records]
        measures = []
        for record, future in zip(records, futures, strict=True):
            measures.append(future.result())
            if progress:
                progress(str(record.get("name")))
    return measures


def _combined(measures: list[ShardMeasure]) -> tuple[dict[str, SourceCopies], dict[str, int], dict[str, int]]:
    copies: dict[str, SourceCopies] = {}
    tokens: dict[str, int] = {}
    documents: dict[str, int] = {}
    for m in measures:
        for source, placed in m.copies.items():
            copies.setdefault(source, SourceCopies()).extend(placed)
        for source, t in m.tokens_by_source.items():
            tokens[source] = tokens.get(source, 0) + t
        for source, d in m.documents_by_source.items():
            documents[source] = documents.get(source, 0) + d
    return copies, tokens, documents
