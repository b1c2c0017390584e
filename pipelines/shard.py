"""Stage 7, shards: a seeded global shuffle into Megatron shards of about `target_tokens` each.

Copy c of a document goes to shard (h(id) + c) mod K, so copies of one document land in different
shards (when there are at least as many shards as copies), at a position given by a second seeded
hash; the shard count K comes from the total tokens. A shard is written in two steps: its members are
grouped into parts by ranges of their position (`PART_TOKENS` tokens each, about), each part sorted
and its tokens (read back from the tokenize stage's spill files, `corpus/token_spill.py`) written to
a part file by one worker; then one worker streams the parts, in order,
into the shard's `.bin`, `.idx` and `.docs.jsonl.zst` (the bytes a single sort of the whole shard
gives: the parts are consecutive ranges of the sort key). Part files are removed once every shard is
written, and the spill files once every shard and variant shard is (`RemoveSpills`). Also writes the
per-document drop log, spread over a few files by a hash of the id.

Memory per worker: one part's members (about `PART_TOKENS` tokens: holding one shard's members
would hold a `configs/lemur.yaml` shard of 1B tokens, over 10 GB), a shard's index lines (and the
texts when `write_jsonl` is set), or one drop-log part (about `DROP_LOG_RECORDS_PER_FILE`
records at most past the configured minimum of files, as the driver's planned documents are right):
none grows with the size of the corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
import xxhash
import zstandard

from lemur_corpus.accounting import Drop
from lemur_corpus.io import atomic_writer, delete_if_present, join, makedirs, read_raw_bytes
from lemur_corpus.mixture import MixturePlan
from lemur_corpus.pipelines.ledger import each_stage
from lemur_corpus.pipelines.loose_files import json_line
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.profile import WRITE, profiled
from lemur_corpus.pipelines.tokenize import TokenizedDoc
from lemur_corpus.shards import HashingWriter, ShardDoc, token_digest, write_bin, write_shard
from lemur_corpus.token_spill import read_spilled, remove_spills

log = logging.getLogger("corpus")

SHARDS_DIR = "shards"
DROPS_DIR = "drops"
PARTS = "parts"
"""The shard writer's output of the part files it read (removed once every shard is written)."""
PART_TOKENS = 4_000_000
"""A shard is sorted and written in parts of about this many tokens: a worker holds one part's
documents, over 10 bytes a token with their records (`benchmarks/scale.py --docs 25000 100000`: the
largest worker 838 MiB at 100,000 documents in one 9.8M-token shard, 721 MiB with `--shard-tokens
1000000`)."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def part_file(out_dir: str, index: int, part: int) -> str:
    return join(out_dir, SHARDS_DIR, f"{shard_name(index)}.part-{part:05d}.bin")


def parts_per_shard(target_tokens: int) -> int:
    return max(1, math.ceil(target_tokens / PART_TOKENS))


def _assign(item: tuple[TokenizedDoc, int], num_shards: int, seed: int, parts: int) -> tuple[tuple[int, int], tuple]:
    """((shard, part), sort key and document): the part is the position's range, so the parts of a
    shard, sorted one by one and put end to end, are the shard sorted."""
    doc, copy = item
    base = xxhash.xxh64_intdigest(doc.id.encode("utf-8"), seed=seed)
    position = xxhash.xxh64_intdigest(f"{doc.id}\x00{copy}".encode(), seed=seed ^ 0x5EED)
    return ((base + copy) % num_shards, (position * parts) >> 64), (position, doc.id, copy, doc)


class ShardPart(NamedTuple):
    """One written part of a shard: its file and, in shard order, what the shard's index needs."""

    part: int
    path: str
    ids: list[str]
    sources: list[str]
    copies: list[int]
    lengths: np.ndarray
    lines: list[str] | None
    """The documents' `.jsonl.zst` lines (with `write_jsonl`)."""
    homes: list[tuple[str, int, str]] | None
    """(id, byte offset in the part, token digest) of each first copy (a build with variants)."""


def token_home(index: int, path: str, record: dict[str, Any], tokens: int,
               firsts: list[tuple[str, int, str]]) -> tuple[int, dict[str, Any]]:
    """(shard index, where each document's tokens are in that shard's `.bin`): what variant indexes
    point into (`pipelines/variants.py`); `firsts` are (id, byte pointer, token digest)."""
    return index, {"path": path, "bin": record, "tokens": tokens,
                   "docs": {doc_id: (pointer, digest) for doc_id, pointer, digest in firsts}}


class _ShardStepFn(beam.DoFn):
    """What both steps of the shard writer are told: the build's folder, the token dtype, whether
    texts are written too, and whether to report where each document's first copy is (a build
    with variants)."""

    def __init__(self, out_dir: str, dtype: str, write_jsonl: bool, homes: bool = False) -> None:
        self.out_dir = out_dir
        self.dtype = np.dtype(dtype)
        self.write_jsonl = write_jsonl
        self.homes = homes


class WritePartFn(_ShardStepFn):
    """A part of a shard, sorted: its tokens to the part file, its index to the shard step."""

    @profiled(WRITE)
    def process(self, element: tuple[tuple[int, int], list[tuple]], file_errors: list[Any],
                plan: MixturePlan) -> Iterator[tuple[int, ShardPart]]:
        if file_errors or plan.error:  # a failed build writes no shards
            return
        (index, part), members = element
        members = sorted(members, key=lambda m: m[:3])
        arrays = read_spilled([doc.spilled for _, _, _, doc in members], self.dtype)
        path = part_file(self.out_dir, index, part)
        makedirs(join(self.out_dir, SHARDS_DIR))
        _, offsets = write_bin(path, path, arrays, self.dtype)
        lengths = np.array([len(tokens) for tokens in arrays], dtype=np.int64)
        lines = None
        if self.write_jsonl:
            lines = [json.dumps({"id": doc.id, "source": doc.source, "copy": copy, "text": doc.text},
                                ensure_ascii=False, sort_keys=True) for _, _, copy, doc in members]
        homes = None
        if self.homes:
            homes = [(doc.id, offset, token_digest(tokens))
                     for (_, _, copy, doc), offset, tokens in zip(members, offsets, arrays, strict=True) if copy == 0]
        docs = [doc for _, _, _, doc in members]
        yield index, ShardPart(part, path, [doc.id for doc in docs], [doc.source for doc in docs],
                               [copy for _, _, copy, _ in members], lengths, lines, homes)


class WriteShardFn(_ShardStepFn):
    """A shard from its parts, in order; with `homes`, also emits where each first copy is, tagged `home`."""

    @profiled(WRITE)
    def process(self, element: tuple[int, list[ShardPart]], file_errors: list[Any],
                plan: MixturePlan) -> Iterator[Any]:
        if file_errors or plan.error:  # a failed build writes no shards
            return
        index, parts = element
        parts = sorted(parts, key=lambda p: p.part)
        record = self._write(index, parts)
        yield beam.pvalue.TaggedOutput(PARTS, [p.path for p in parts])
        if not self.homes:
            yield record
            return
        yield "record", record
        firsts, base = [], 0
        for p in parts:
            firsts += [(doc_id, base + offset, digest) for doc_id, offset, digest in p.homes or ()]
            base += int(p.lengths.sum()) * self.dtype.itemsize
        yield "home", token_home(index, join(self.out_dir, SHARDS_DIR, shard_name(index) + ".bin"),
                                 record["files"]["bin"], record["tokens"], firsts)

    def _documents(self, parts: list[ShardPart]) -> Iterator[ShardDoc]:
        """The shard's documents in order, read back from its parts one part at a time."""
        for p in parts:
            tokens = np.frombuffer(read_raw_bytes(p.path), dtype=self.dtype)
            ends = np.cumsum(p.lengths)
            if len(tokens) != (int(ends[-1]) if len(ends) else 0):
                raise OSError(f"{p.path}: {len(tokens)} tokens, its part record says {int(ends[-1])}")
            for doc_id, source, copy, start, end in zip(p.ids, p.sources, p.copies, ends - p.lengths, ends,
                                                        strict=True):
                yield ShardDoc(doc_id, source, copy, tokens[start:end])

    def _write(self, index: int, parts: list[ShardPart]) -> dict[str, Any]:
        name = shard_name(index)
        prefix = join(self.out_dir, SHARDS_DIR, name)
        record = write_shard(prefix, f"{SHARDS_DIR}/{name}", self._documents(parts), self.dtype)
        if self.write_jsonl:
            lines = (line for p in parts for line in p.lines or ())
            blob = zstandard.ZstdCompressor(level=6).compress(("\n".join(lines) + "\n").encode("utf-8"))
            with atomic_writer(prefix + ".jsonl.zst") as handle:
                handle.write(blob)
            record["files"]["jsonl"] = {"path": f"{SHARDS_DIR}/{name}.jsonl.zst", "bytes": len(blob),
                                        "sha256": hashlib.sha256(blob).hexdigest()}
        log.info("wrote %s: %d documents, %d tokens", name, record["documents"], record["tokens"])
        return record


def _remove_parts(paths: list[str], _written: list[Any]) -> list[Any]:
    delete_if_present(paths)
    return []


class WriteShards(beam.PTransform):
    """(doc, copy) pairs -> one shard record (path, counts, sha256) per shard written. A build with
    file errors or a failed plan writes none (`file_errors`, `plan`: that build's PCollections)."""

    def __init__(self, out_dir: str, dtype: str, target_tokens: int, seed: int, write_jsonl: bool,
                 file_errors: beam.PCollection, plan: beam.PCollection, homes: bool = False) -> None:
        super().__init__()
        self.out_dir, self.dtype, self.target_tokens, self.seed = out_dir, dtype, target_tokens, seed
        self.write_jsonl, self.file_errors, self.plan = write_jsonl, file_errors, plan
        self.homes = homes
        self.num_shards: beam.PCollection | None = None
        """After expansion: the shard count K, a singleton."""
        self.token_homes: beam.PCollection | None = None
        """After expansion, with `homes`: (shard index, where its documents' tokens are), per shard."""

    def expand(self, copies: beam.PCollection) -> beam.PCollection:
        target_tokens = self.target_tokens
        total = (
            copies
            | "CopyTokens" >> beam.Map(lambda item: item[0].length)
            | "TotalTokens" >> beam.CombineGlobally(sum)
        )
        num_shards = total | "NumShards" >> beam.Map(lambda t: max(1, math.ceil(t / target_tokens)))
        self.num_shards = num_shards
        file_errors, plan = beam.pvalue.AsList(self.file_errors), beam.pvalue.AsSingleton(self.plan)
        written = (
            copies
            | "Assign" >> beam.Map(_assign, num_shards=beam.pvalue.AsSingleton(num_shards), seed=self.seed,
                                   parts=parts_per_shard(target_tokens))
            | "GroupParts" >> beam.GroupByKey()
            | "WriteParts" >> beam.ParDo(WritePartFn(self.out_dir, self.dtype, self.write_jsonl, self.homes),
                                         file_errors=file_errors, plan=plan)
            | "Group" >> beam.GroupByKey()
            | "Write" >> MultiOutputParDo(WriteShardFn(self.out_dir, self.dtype, self.write_jsonl, self.homes),
                                          PARTS, main="written", file_errors=file_errors, plan=plan)
        )
        records = written["written"]
        if self.homes:
            self.token_homes = records | "Homes" >> beam.FlatMap(lambda pair: [pair[1]] if pair[0] == "home" else [])
            records = records | "Records" >> beam.FlatMap(lambda pair: [pair[1]] if pair[0] == "record" else [])
        # Part files go once every shard is written (the side input waits for all of them): a
        # retried shard bundle still finds its parts. Nothing comes out; flattened in, the removal
        # is among the manifest's ancestors.
        removed = written[PARTS] | "RemoveParts" >> beam.FlatMap(_remove_parts, beam.pvalue.AsList(records))
        return (records, removed) | "AfterParts" >> beam.Flatten()


def _remove_spills(folder: str, *_written: list[Any]) -> list[Any]:
    removed = remove_spills(folder)
    log.info("removed %d token spill files", removed)
    return []


class RemoveSpills(beam.PTransform):
    """Shard records -> the same records, once the tokenize stage's spill files (`corpus/token_spill.py`)
    are removed: after the shards and every other writer that reads them (`readers`: their outputs)
    are done, all waited for as side inputs. What reads the records (the manifest) so has the
    removal among its ancestors. A failed build removes them too."""

    def __init__(self, folder: str, *readers: beam.PCollection) -> None:
        super().__init__()
        self.folder, self.readers = folder, readers

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        removed = (
            records.pipeline
            | "Folder" >> beam.Create([self.folder])
            | "Remove" >> beam.FlatMap(_remove_spills, *(beam.pvalue.AsList(r) for r in (records, *self.readers)))
        )
        return (records, removed) | "AfterRemoval" >> beam.Flatten()


DROP_LOG_RECORDS_PER_FILE = 100_000
"""Documents the driver plans (`sources.planned_documents`: every input document, an estimate made
before anything is read) per drop-log part, past `shards.log_files` parts: a document is dropped at
most once, so a part holds about this many records at most (as the estimate is right) however large
the build. The parts are fixed before the run, not counted from the drops, so that each stage's
drops go to the drop log's grouping as they are made instead of waiting in the workers' memory for
the last stage's (a million documents of `benchmarks/scale.py` held every filter's drops through
dedup and tokenize)."""
DROP_LOG_CHUNK_BYTES = 1 << 20
"""A drop-log part's lines are joined and go to its compressor this many bytes at a time: a worker
holds the part's records and their lines once, not the lines, their join and the compressed file
besides."""


def drop_log_parts(planned_documents: int, minimum: int) -> int:
    """The drop log's files: `minimum` (`shards.log_files`), or one per `DROP_LOG_RECORDS_PER_FILE`
    planned documents where that is more."""
    return max(minimum, math.ceil(planned_documents / DROP_LOG_RECORDS_PER_FILE))


def drop_order(drop: Drop) -> tuple[str, str, str, str, str, str]:
    """Where a record goes in its drop-log part: by stage, group and reason, then by document."""
    return drop.stage, drop.group, drop.reason, drop.id, drop.origin, drop.detail


def jsonl_chunks(drops: list[Drop], chunk_bytes: int = DROP_LOG_CHUNK_BYTES) -> Iterator[bytes]:
    """The records as JSON lines (`loose_files.json_line`), in order, in pieces of about `chunk_bytes`
    (whole lines)."""
    chunk: list[bytes] = []
    held = 0
    for drop in drops:
        line = json_line(drop.to_dict())
        chunk.append(line)
        held += len(line)
        if held >= chunk_bytes:
            yield b"".join(chunk)
            chunk, held = [], 0
    if chunk:
        yield b"".join(chunk)


class WriteDropLogFn(beam.DoFn):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    @profiled(WRITE)
    def process(self, element: tuple[int, list[Drop]], file_errors: list[Any],
                parts: int) -> Iterator[dict[str, Any]]:
        if not file_errors:
            yield self._write(*element, parts)

    def _write(self, part: int, drops: list[Drop], parts: int) -> dict[str, Any]:
        drops = sorted(drops, key=drop_order)
        folder = join(self.out_dir, DROPS_DIR)
        makedirs(folder)
        name = f"drops-{part:05d}-of-{parts:05d}.jsonl.zst"
        with atomic_writer(join(folder, name)) as handle:
            written = HashingWriter(handle)
            # the size goes in the frame header, as one-shot compress puts it: measured in a first
            # pass over the lines, so the part's JSON lines are never held whole (this runs at the
            # end of a build, on top of whatever the worker holds then)
            size = sum(len(chunk) for chunk in jsonl_chunks(drops))
            compressor = zstandard.ZstdCompressor(level=10)
            with compressor.stream_writer(written, size=size, closefd=False) as compressed:  # type: ignore[arg-type]  # it writes and flushes only
                for chunk in jsonl_chunks(drops):
                    compressed.write(chunk)
        return {"path": f"{DROPS_DIR}/{name}", "records": len(drops), "bytes": written.size,
                "sha256": written.sha.hexdigest()}


class WriteDropLog(beam.PTransform):
    """Each stage's drops (`ledger.Ledger.drops`) -> the drop log in `parts` files (`drop_log_parts`;
    a drop's part is a hash of its id, or of its origin), one record per file written; none when the
    build has file errors. Each stage's drops are keyed on their own, so that a distributed runner
    sends them to the grouping as the stage makes them."""

    def __init__(self, out_dir: str, parts: int, file_errors: beam.PCollection) -> None:
        super().__init__()
        self.out_dir, self.parts, self.file_errors = out_dir, parts, file_errors

    def expand(self, drops: tuple[beam.PCollection, ...]) -> beam.PCollection:
        parts = self.parts
        return (
            each_stage(drops, "Key", lambda: beam.Map(
                lambda d: (xxhash.xxh64_intdigest((d.id or d.origin).encode("utf-8")) % parts, d)))
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(WriteDropLogFn(self.out_dir), file_errors=beam.pvalue.AsList(self.file_errors),
                                    parts=parts)
        )
