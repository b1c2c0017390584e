"""Stage 7, shards: a seeded global shuffle into Megatron shards of about `target_tokens` each.

Copy c of a document goes to shard (h(id) + c) mod K, so copies of one document land in different
shards (when there are at least as many shards as copies), at a position given by a second seeded
hash; the shard count K comes from the total tokens. Each shard is sorted and written by one worker.
Also writes the per-document drop log, spread over a few files by a hash of the id.

Memory per worker: one shard's members (about `target_tokens` tokens, and their texts when
`write_jsonl` is set), or one drop-log part (at most `DROP_LOG_RECORDS_PER_FILE` records past the
configured minimum of files): neither grows with the size of the corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import xxhash
import zstandard

from lemur_corpus.accounting import Drop
from lemur_corpus.io import atomic_writer, join, makedirs
from lemur_corpus.mixture import MixturePlan
from lemur_corpus.pipelines.profile import WRITE, profiled
from lemur_corpus.pipelines.tokenize import TokenizedDoc
from lemur_corpus.shards import ShardDoc, token_digest, write_shard

log = logging.getLogger("corpus")

SHARDS_DIR = "shards"
DROPS_DIR = "drops"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def _assign(item: tuple[TokenizedDoc, int], num_shards: int, seed: int) -> tuple[int, tuple]:
    doc, copy = item
    base = xxhash.xxh64_intdigest(doc.id.encode("utf-8"), seed=seed)
    position = xxhash.xxh64_intdigest(f"{doc.id}\x00{copy}".encode(), seed=seed ^ 0x5EED)
    return (base + copy) % num_shards, (position, doc.id, copy, doc)


def token_home(index: int, path: str, record: dict[str, Any], tokens: int,
               docs: list[tuple[str, np.ndarray]], pointers: list[int]) -> tuple[int, dict[str, Any]]:
    """(shard index, where each document's tokens are in that shard's `.bin`): what variant indexes
    point into (`pipelines/variants.py`)."""
    return index, {"path": path, "bin": record, "tokens": tokens,
                   "docs": {doc_id: (pointer, token_digest(tokens_))
                            for (doc_id, tokens_), pointer in zip(docs, pointers, strict=True)}}


class WriteShardFn(beam.DoFn):
    def __init__(self, out_dir: str, dtype: str, write_jsonl: bool, homes: bool = False) -> None:
        self.out_dir = out_dir
        self.dtype = np.dtype(dtype)
        self.write_jsonl = write_jsonl
        self.homes = homes
        """Also emit, tagged `home`, where each document's first copy is (a build with variants)."""

    @profiled(WRITE)
    def process(self, element: tuple[int, list[tuple]], file_errors: list[Any],
                plan: MixturePlan) -> Iterator[Any]:
        if file_errors or plan.error:  # a failed build writes no shards
            return
        record = self._write(*element)
        if not self.homes:
            yield record
            return
        yield "record", record
        index, members = element
        members = sorted(members, key=lambda m: m[:3])
        offsets = np.cumsum([0] + [len(doc.tokens) * self.dtype.itemsize for _, _, _, doc in members[:-1]])
        firsts = [(doc, int(offset)) for (_, _, copy, doc), offset in zip(members, offsets, strict=True) if copy == 0]
        yield "home", token_home(index, join(self.out_dir, SHARDS_DIR, shard_name(index) + ".bin"),
                                 record["files"]["bin"], record["tokens"],
                                 [(d.id, np.asarray(d.tokens, dtype=self.dtype)) for d, _ in firsts],
                                 [o for _, o in firsts])

    def _write(self, index: int, members: list[tuple]) -> dict[str, Any]:
        members = sorted(members, key=lambda m: m[:3])
        name = shard_name(index)
        folder = join(self.out_dir, SHARDS_DIR)
        makedirs(folder)
        prefix = join(folder, name)
        docs = (ShardDoc(doc.id, doc.source, copy, doc.tokens) for _, _, copy, doc in members)
        record = write_shard(prefix, f"{SHARDS_DIR}/{name}", docs, self.dtype)
        if self.write_jsonl:
            lines = (
                json.dumps({"id": doc.id, "source": doc.source, "copy": copy, "text": doc.text},
                           ensure_ascii=False, sort_keys=True)
                for _, _, copy, doc in members
            )
            blob = zstandard.ZstdCompressor(level=6).compress(("\n".join(lines) + "\n").encode("utf-8"))
            with atomic_writer(prefix + ".jsonl.zst") as handle:
                handle.write(blob)
            record["files"]["jsonl"] = {"path": f"{SHARDS_DIR}/{name}.jsonl.zst", "bytes": len(blob),
                                        "sha256": hashlib.sha256(blob).hexdigest()}
        log.info("wrote %s: %d documents, %d tokens", name, record["documents"], record["tokens"])
        return record


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
            | "CopyTokens" >> beam.Map(lambda item: len(item[0].tokens))
            | "TotalTokens" >> beam.CombineGlobally(sum)
        )
        num_shards = total | "NumShards" >> beam.Map(lambda t: max(1, math.ceil(t / target_tokens)))
        self.num_shards = num_shards
        written = (
            copies
            | "Assign" >> beam.Map(_assign, num_shards=beam.pvalue.AsSingleton(num_shards), seed=self.seed)
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(
                WriteShardFn(self.out_dir, self.dtype, self.write_jsonl, self.homes),
                file_errors=beam.pvalue.AsList(self.file_errors),
                plan=beam.pvalue.AsSingleton(self.plan),
            )
        )
        if not self.homes:
            return written
        self.token_homes = written | "Homes" >> beam.FlatMap(lambda pair: [pair[1]] if pair[0] == "home" else [])
        return written | "Records" >> beam.FlatMap(lambda pair: [pair[1]] if pair[0] == "record" else [])


DROP_LOG_RECORDS_PER_FILE = 100_000
"""A drop-log part is sorted in one worker's memory (a record is a few hundred bytes, its detail at
most 500 characters): past `shards.log_files` parts, one more part per this many drops keeps a
worker's share bounded however many documents are dropped."""


def drop_log_parts(drops: int, minimum: int) -> int:
    return max(minimum, math.ceil(drops / DROP_LOG_RECORDS_PER_FILE))


class WriteDropLogFn(beam.DoFn):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    @profiled(WRITE)
    def process(self, element: tuple[int, list[Drop]], file_errors: list[Any],
                parts: int) -> Iterator[dict[str, Any]]:
        if not file_errors:
            yield self._write(*element, parts)

    def _write(self, part: int, drops: list[Drop], parts: int) -> dict[str, Any]:
        drops = sorted(drops, key=lambda d: (d.stage, d.group, d.reason, d.id, d.origin, d.detail))
        lines = "\n".join(json.dumps(d.to_dict(), ensure_ascii=False, sort_keys=True) for d in drops) + "\n"
        blob = zstandard.ZstdCompressor(level=10).compress(lines.encode("utf-8"))
        folder = join(self.out_dir, DROPS_DIR)
        makedirs(folder)
        name = f"drops-{part:05d}-of-{parts:05d}.jsonl.zst"
        with atomic_writer(join(folder, name)) as handle:
            handle.write(blob)
        return {"path": f"{DROPS_DIR}/{name}", "records": len(drops), "bytes": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest()}


class WriteDropLog(beam.PTransform):
    """Drops -> the drop log in `drop_log_parts` files (a drop's part is a hash of its id, or of its
    origin), one record per file written; none when the build has file errors."""

    def __init__(self, out_dir: str, min_parts: int, file_errors: beam.PCollection) -> None:
        super().__init__()
        self.out_dir, self.min_parts, self.file_errors = out_dir, min_parts, file_errors

    def expand(self, drops: beam.PCollection) -> beam.PCollection:
        parts = beam.pvalue.AsSingleton(
            drops
            | "Count" >> beam.combiners.Count.Globally()
            | "Parts" >> beam.Map(drop_log_parts, self.min_parts)
        )
        return (
            drops
            | "Key" >> beam.Map(lambda d, n: (xxhash.xxh64_intdigest((d.id or d.origin).encode("utf-8")) % n, d),
                                n=parts)
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(WriteDropLogFn(self.out_dir), file_errors=beam.pvalue.AsList(self.file_errors),
                                    parts=parts)
        )
