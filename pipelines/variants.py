"""The variants' shards (docs/design.md, Variants): indexes into token bytes written once.

Megatron reads a document through its `.idx` pointer (`IndexedDataset.get`), so a variant's shard is
an `.idx` and a docs index whose pointers address the tokens where they already are:

- a document the main mixture writes has its first copy in main shard k = h(id) mod K; every copy a
  variant writes of it goes to the variant's shard k, whose `.bin` is main shard k's `.bin`;
- a document the main mixture leaves out but some variant writes is written once, to
  `variants/.shared/shards/shard-<K + i>.bin` (i = h(id) mod R, R from those documents' tokens), and
  every variant's shard K + i points into it.

Each variant folder holds its own name for every `.bin` it indexes: a hard link (no bytes written), or
a copy where the filesystem has none (`io.link_or_copy`). A variant shard lists its copies in the same
seeded order as the main mixture (a hash of id and copy number); a document's copies stay within one
shard there, at independent positions. Memory per worker: one shard's document locations and the
copies that point into it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import xxhash

from lemur_corpus.io import join, link_or_copy, makedirs
from lemur_corpus.mixture import MixturePlan
from lemur_corpus.pipelines.shard import SHARDS_DIR, shard_name
from lemur_corpus.pipelines.tokenize import TokenizedDoc
from lemur_corpus.shards import PointedDoc, token_digest, write_bin, write_pointer_shard
from lemur_corpus.token_spill import read_spilled
from lemur_corpus.variants import MAIN, SHARED_DIR, VARIANTS_DIR

log = logging.getLogger("corpus")


def variant_dir(out_dir: str, name: str) -> str:
    return join(out_dir, VARIANTS_DIR, name)


def _home_hash(doc_id: str, seed: int) -> int:
    """The main mixture's shard hash (pipelines/shard.py `_assign`): copy 0 of a document is in main
    shard h(id) mod K."""
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8"), seed=seed)


def _position(doc_id: str, copy: int, seed: int) -> int:
    return xxhash.xxh64_intdigest(f"{doc_id}\x00{copy}".encode(), seed=seed ^ 0x5EED)


def home_of(doc_id: str, main_copies: int, seed: int, main_shards: int, shared_parts: int) -> int:
    """The shard whose `.bin` holds the document's tokens."""
    h = _home_hash(doc_id, seed)
    return h % main_shards if main_copies else main_shards + h % shared_parts


class WriteSharedFn(beam.DoFn):
    """Documents no main shard holds -> one shared `.bin` per part, and where each document is."""

    def __init__(self, out_dir: str, dtype: str, seed: int) -> None:
        self.out_dir, self.dtype, self.seed = out_dir, np.dtype(dtype), seed

    def process(self, element: tuple[int, list[TokenizedDoc]], failed: list[Any],
                plan: MixturePlan) -> Iterator[tuple[int, dict[str, Any]]]:
        if failed or plan.error:
            return
        index, docs = element
        docs = sorted(docs, key=lambda d: (_home_hash(d.id, self.seed), d.id))
        folder = join(self.out_dir, VARIANTS_DIR, SHARED_DIR, SHARDS_DIR)
        makedirs(folder)
        path = join(folder, shard_name(index) + ".bin")
        arrays = read_spilled([d.spilled for d in docs], self.dtype)
        record, pointers = write_bin(path, f"{SHARDS_DIR}/{shard_name(index)}.bin", arrays, self.dtype)
        log.info("wrote shared token bytes %s: %d documents", shard_name(index), len(docs))
        yield index, {"path": path, "bin": record, "tokens": int(sum(len(a) for a in arrays)),
                      "docs": {d.id: (p, token_digest(a)) for d, a, p in zip(docs, arrays, pointers, strict=True)}}


class WriteVariantShardsFn(beam.DoFn):
    """One home shard: for every variant with copies there, its `.idx` and docs index pointing into
    the home's `.bin`, and its own name for that `.bin`. Yields (variant, shard record)."""

    def __init__(self, out_dir: str, dtype: str, seed: int) -> None:
        self.out_dir, self.dtype, self.seed = out_dir, np.dtype(dtype), seed

    def process(self, element: tuple[int, dict[str, list[Any]]], failed: list[Any],
                plan: MixturePlan) -> Iterator[tuple[str, dict[str, Any]]]:
        if failed or plan.error:
            return
        index, joined = element
        homes, members = joined["home"], joined["docs"]
        if not members:
            return
        if len(homes) != 1:
            raise RuntimeError(f"shard {index}: {len(homes)} token homes for the variants' copies, expected 1")
        home = homes[0]
        by_variant: dict[str, list[tuple[int, str, int, str, int]]] = {}
        for doc_id, source, tokens, counts in members:
            for variant, n in counts.items():
                for copy in range(n):
                    by_variant.setdefault(variant, []).append((_position(doc_id, copy, self.seed), doc_id, copy,
                                                               source, tokens))
        name = shard_name(index)
        for variant, placed in sorted(by_variant.items()):
            placed.sort()
            folder = join(variant_dir(self.out_dir, variant), SHARDS_DIR)
            makedirs(folder)
            prefix = join(folder, name)
            docs = [PointedDoc(doc_id, source, copy, tokens, *home["docs"][doc_id])
                    for _, doc_id, copy, source, tokens in placed]
            record = write_pointer_shard(prefix, f"{SHARDS_DIR}/{name}", docs, self.dtype)
            linked = link_or_copy(home["path"], prefix + ".bin")
            record["files"]["bin"] = dict(home["bin"], path=f"{SHARDS_DIR}/{name}.bin")
            record["bin_tokens"] = home["tokens"]
            record["bin_linked"] = linked
            yield variant, record


def _extra_part(doc: TokenizedDoc, seed: int, main_shards: int, parts: int) -> tuple[int, TokenizedDoc]:
    return main_shards + _home_hash(doc.id, seed) % parts, doc


def _member(item: tuple[TokenizedDoc, int, dict[str, int]], seed: int, main_shards: int,
            parts: int) -> tuple[int, tuple[str, str, int, dict[str, int]]]:
    doc, main_copies, counts = item
    return home_of(doc.id, main_copies, seed, main_shards, parts), (doc.id, doc.source, doc.length, counts)


class WriteVariantShards(beam.PTransform):
    """(doc, main copies, {variant: copies}) -> (variant, shard record) for every variant shard."""

    def __init__(self, out_dir: str, dtype: str, target_tokens: int, seed: int, main_shards: beam.PCollection,
                 main_homes: beam.PCollection, file_errors: beam.PCollection, plan: beam.PCollection) -> None:
        super().__init__()
        self.out_dir, self.dtype, self.target_tokens, self.seed = out_dir, dtype, target_tokens, seed
        self.main_shards, self.main_homes, self.file_errors, self.plan = main_shards, main_homes, file_errors, plan

    def expand(self, variant_copies: beam.PCollection) -> beam.PCollection:
        seed, target = self.seed, self.target_tokens
        k = beam.pvalue.AsSingleton(self.main_shards)
        failed = beam.pvalue.AsList(self.file_errors)
        plan = beam.pvalue.AsSingleton(self.plan)
        unwritten = variant_copies | "NotInMain" >> beam.FlatMap(lambda item: [item[0]] if item[1] == 0 else [])
        parts = beam.pvalue.AsSingleton(
            unwritten
            | "SharedTokens" >> beam.Map(lambda d: d.length)
            | "SharedTotal" >> beam.CombineGlobally(sum)
            | "SharedParts" >> beam.Map(lambda t: max(1, math.ceil(t / target)))
        )
        shared_homes = (
            unwritten
            | "AssignShared" >> beam.Map(_extra_part, seed=seed, main_shards=k, parts=parts)
            | "GroupShared" >> beam.GroupByKey()
            | "WriteShared" >> beam.ParDo(WriteSharedFn(self.out_dir, self.dtype, seed), failed=failed, plan=plan)
        )
        homes = (self.main_homes, shared_homes) | "AllHomes" >> beam.Flatten()
        members = variant_copies | "Home" >> beam.Map(_member, seed=seed, main_shards=k, parts=parts)
        return (
            {"home": homes, "docs": members}
            | "Join" >> beam.CoGroupByKey()
            | "Write" >> beam.ParDo(WriteVariantShardsFn(self.out_dir, self.dtype, seed), failed=failed, plan=plan)
        )


def bytes_added(records: list[dict[str, Any]]) -> dict[str, int]:
    """What a variant's shards cost: index bytes it writes, `.bin` bytes it shares by hard link, and
    `.bin` bytes it had to copy."""
    index = sum(r["files"][k]["bytes"] for r in records for k in ("idx", "docs"))
    linked = sum(r["files"]["bin"]["bytes"] for r in records if r.get("bin_linked"))
    copied = sum(r["files"]["bin"]["bytes"] for r in records if not r.get("bin_linked"))
    return {"index_bytes": index, "linked_bin_bytes": linked, "copied_bin_bytes": copied}


__all__ = ["MAIN", "WriteVariantShards", "bytes_added", "home_of", "variant_dir"]
