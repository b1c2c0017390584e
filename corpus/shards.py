"""Megatron-LM indexed dataset shards (`.bin` + `.idx`, MMIDIDX version 1), written atomically.

`.bin` is the token ids of every document back to back. `.idx` is the header `MMIDIDX\\0\\0`, the
version (u64 = 1), the dtype code (u8), the sequence count and document count (u64 each; documents are
counted with a leading 0), then int32 sequence lengths, int64 byte pointers and int64 document
indices — exactly what `megatron.core.datasets.indexed_dataset.IndexedDataset` memory-maps. Each
shard also has `.docs.jsonl.zst`: one line per document in shard order (id, source, copy, tokens), so
audits can attribute every token to its source.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import numpy as np
import xxhash
import zstandard

from lemur_corpus.io import atomic_writer, read_bytes

INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
DTYPE_CODES: dict[str, int] = {
    "uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7, "uint16": 8,
}
CODE_DTYPES = {code: name for name, code in DTYPE_CODES.items()}


class ShardFormatError(ValueError):
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class ShardDoc:
    """One document (or one copy of it) as placed in a shard."""

    id: str
    source: str
    copy: int
    tokens: np.ndarray


class HashingWriter:
    """A binary file that also hashes (sha256) and counts the bytes written to it, for a file's
    record without reading the file back."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.handle.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.handle.flush()


def index_bytes(lengths: np.ndarray, dtype: np.dtype, pointers: np.ndarray | None = None) -> bytes:
    """The `.idx` of sequences of `lengths` tokens; by default back to back from byte 0, or at the
    given byte `pointers` (a variant's index into shared token bytes: Megatron reads every sequence at
    its own pointer, `IndexedDataset.get`)."""
    lengths = np.asarray(lengths, dtype=np.int32)
    if pointers is None:
        pointers = np.zeros(len(lengths), dtype=np.int64)
        if len(lengths) > 1:
            np.cumsum(lengths[:-1].astype(np.int64) * dtype.itemsize, out=pointers[1:])
    pointers = np.asarray(pointers, dtype=np.int64)
    document_indices = np.arange(len(lengths) + 1, dtype=np.int64)
    return b"".join(
        [
            INDEX_HEADER,
            struct.pack("<Q", INDEX_VERSION),
            struct.pack("<B", DTYPE_CODES[dtype.name]),
            struct.pack("<Q", len(lengths)),
            struct.pack("<Q", len(document_indices)),
            lengths.tobytes(order="C"),
            pointers.tobytes(order="C"),
            document_indices.tobytes(order="C"),
        ]
    )


def _file_record(path: str, name: str, size: int, sha: str) -> dict[str, object]:
    return {"path": name, "bytes": size, "sha256": sha}


def write_shard(prefix: str, name: str, docs: Iterable[ShardDoc], dtype: np.dtype) -> dict[str, Any]:
    """Write `<prefix>.bin`, `.idx` and `.docs.jsonl.zst`; return the shard's manifest record.

    `prefix` is the full path without extension, `name` the file name part used in the manifest.
    Every file is written under a temporary name and renamed when complete.
    """
    lengths: list[int] = []
    tokens_by_source: dict[str, int] = {}
    docs_by_source: dict[str, int] = {}
    index_lines: list[bytes] = []
    with atomic_writer(prefix + ".bin") as handle:
        writer = HashingWriter(handle)
        for doc in docs:
            tokens = np.ascontiguousarray(doc.tokens, dtype=dtype)
            writer.write(memoryview(tokens).cast("B"))  # type: ignore[arg-type]  # numpy stubs: __buffer__ only on 3.12+
            lengths.append(len(tokens))
            tokens_by_source[doc.source] = tokens_by_source.get(doc.source, 0) + len(tokens)
            docs_by_source[doc.source] = docs_by_source.get(doc.source, 0) + 1
            index_lines.append(
                json.dumps({"id": doc.id, "source": doc.source, "copy": doc.copy, "tokens": len(tokens)},
                           ensure_ascii=False, sort_keys=True).encode("utf-8")
            )
    bin_record = _file_record(prefix + ".bin", name + ".bin", writer.size, writer.sha.hexdigest())
    idx = index_bytes(np.asarray(lengths, dtype=np.int32), dtype)
    with atomic_writer(prefix + ".idx") as handle:
        handle.write(idx)
    idx_record = _file_record(prefix + ".idx", name + ".idx", len(idx), hashlib.sha256(idx).hexdigest())
    docs_blob = zstandard.ZstdCompressor(level=10).compress(b"\n".join(index_lines) + b"\n" if index_lines else b"")
    with atomic_writer(prefix + ".docs.jsonl.zst") as handle:
        handle.write(docs_blob)
    docs_record = _file_record(
        prefix + ".docs.jsonl.zst", name + ".docs.jsonl.zst", len(docs_blob), hashlib.sha256(docs_blob).hexdigest()
    )
    return {
        "name": name,
        "tokens": int(sum(lengths)),
        "documents": len(lengths),
        "dtype": dtype.name,
        "tokens_by_source": dict(sorted(tokens_by_source.items())),
        "documents_by_source": dict(sorted(docs_by_source.items())),
        "files": {"bin": bin_record, "idx": idx_record, "docs": docs_record},
    }


def token_digest(tokens: np.ndarray) -> str:
    """A document's identity in shared token bytes: xxh3-64 of its token bytes, as hex."""
    return f"{xxhash.xxh3_64_intdigest(memoryview(np.ascontiguousarray(tokens)).cast('B')):016x}"  # type: ignore[arg-type]  # numpy stubs: __buffer__ only on 3.12+


def write_bin(path: str, name: str, arrays: Iterable[np.ndarray],
              dtype: np.dtype) -> tuple[dict[str, object], list[int]]:
    """Token arrays back to back in one `.bin` (no index): (its file record, each array's byte offset)."""
    pointers: list[int] = []
    with atomic_writer(path) as handle:
        writer = HashingWriter(handle)
        for tokens in arrays:
            pointers.append(writer.size)
            writer.write(memoryview(np.ascontiguousarray(tokens, dtype=dtype)).cast("B"))  # type: ignore[arg-type]  # numpy stubs: __buffer__ only on 3.12+
    return _file_record(path, name, writer.size, writer.sha.hexdigest()), pointers


@dataclasses.dataclass(frozen=True, slots=True)
class PointedDoc:
    """One document (or copy) of a shard whose `.bin` is shared: where its tokens already are."""

    id: str
    source: str
    copy: int
    tokens: int
    pointer: int
    """Byte offset of the document in the shared `.bin`."""
    digest: str
    """`token_digest` of its tokens, so an audit can check the pointer addresses this document."""


def write_pointer_shard(prefix: str, name: str, docs: Iterable[PointedDoc], dtype: np.dtype) -> dict[str, Any]:
    """Write `<prefix>.idx` and `.docs.jsonl.zst` of documents whose tokens are in an existing `.bin`
    (`<prefix>.bin`, placed by the caller); return the record without its `bin` file."""
    docs = list(docs)
    lengths = np.asarray([d.tokens for d in docs], dtype=np.int32)
    idx = index_bytes(lengths, dtype, np.asarray([d.pointer for d in docs], dtype=np.int64))
    with atomic_writer(prefix + ".idx") as handle:
        handle.write(idx)
    lines = [json.dumps({"id": d.id, "source": d.source, "copy": d.copy, "tokens": d.tokens, "xxh": d.digest},
                        ensure_ascii=False, sort_keys=True).encode("utf-8") for d in docs]
    blob = zstandard.ZstdCompressor(level=10).compress(b"\n".join(lines) + b"\n" if lines else b"")
    with atomic_writer(prefix + ".docs.jsonl.zst") as handle:
        handle.write(blob)
    tokens_by_source: dict[str, int] = {}
    docs_by_source: dict[str, int] = {}
    for d in docs:
        tokens_by_source[d.source] = tokens_by_source.get(d.source, 0) + d.tokens
        docs_by_source[d.source] = docs_by_source.get(d.source, 0) + 1
    return {
        "name": name,
        "tokens": int(lengths.astype(np.int64).sum()),
        "documents": len(docs),
        "dtype": dtype.name,
        "tokens_by_source": dict(sorted(tokens_by_source.items())),
        "documents_by_source": dict(sorted(docs_by_source.items())),
        "files": {"idx": _file_record(prefix + ".idx", name + ".idx", len(idx), hashlib.sha256(idx).hexdigest()),
                  "docs": _file_record(prefix + ".docs.jsonl.zst", name + ".docs.jsonl.zst", len(blob),
                                       hashlib.sha256(blob).hexdigest())},
    }


@dataclasses.dataclass(frozen=True)
class ShardIndex:
    dtype: np.dtype
    lengths: np.ndarray
    pointers: np.ndarray
    document_indices: np.ndarray


def parse_index(data: bytes, where: str = "index") -> ShardIndex:
    """Parse and validate an MMIDIDX v1 index; every inconsistency is a `ShardFormatError`."""
    fixed = len(INDEX_HEADER) + 8 + 1 + 8 + 8
    if len(data) < fixed:
        raise ShardFormatError(f"{where}: truncated index ({len(data)} bytes, header needs {fixed})")
    if data[: len(INDEX_HEADER)] != INDEX_HEADER:
        raise ShardFormatError(f"{where}: not a Megatron MMIDIDX index (bad magic)")
    offset = len(INDEX_HEADER)
    (version,) = struct.unpack_from("<Q", data, offset)
    offset += 8
    if version != INDEX_VERSION:
        raise ShardFormatError(f"{where}: index version {version}, expected {INDEX_VERSION}")
    (code,) = struct.unpack_from("<B", data, offset)
    offset += 1
    if code not in CODE_DTYPES:
        raise ShardFormatError(f"{where}: unknown dtype code {code}")
    dtype = np.dtype(CODE_DTYPES[code])
    sequences, documents = struct.unpack_from("<QQ", data, offset)
    offset += 16
    expected = offset + sequences * 4 + sequences * 8 + documents * 8
    if len(data) != expected:
        raise ShardFormatError(
            f"{where}: index is {len(data)} bytes, but its counts ({sequences} sequences, "
            f"{documents} document indices) need {expected}"
        )
    lengths = np.frombuffer(data, dtype=np.int32, count=sequences, offset=offset)
    offset += sequences * 4
    pointers = np.frombuffer(data, dtype=np.int64, count=sequences, offset=offset)
    offset += sequences * 8
    document_indices = np.frombuffer(data, dtype=np.int64, count=documents, offset=offset)
    return ShardIndex(dtype, lengths, pointers, document_indices)


def read_shard_documents(prefix: str) -> Iterator[np.ndarray]:
    """The token arrays of a shard, in order (reads the whole `.bin`; for audits and tests)."""
    index = parse_index(read_bytes(prefix + ".idx"), prefix + ".idx")
    data = read_bytes(prefix + ".bin")
    expected = int(index.lengths.astype(np.int64).sum()) * index.dtype.itemsize
    if len(data) != expected:
        raise ShardFormatError(f"{prefix}.bin: {len(data)} bytes, the index describes {expected}")
    tokens = np.frombuffer(data, dtype=index.dtype)
    start = 0
    for length in index.lengths:
        yield tokens[start : start + int(length)]
        start += int(length)


def read_docs_index(prefix: str) -> list[dict[str, object]]:
    blob = read_bytes(prefix + ".docs.jsonl.zst")
    return [json.loads(line) for line in blob.decode("utf-8").splitlines() if line]
