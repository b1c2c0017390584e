"""Stage 4, dedup within each kind: decisions are made on small records, then joined to the bodies.

    docs ─▶ (DedupRecord, MinHash signature) + payload (shingle set) ─▶ group by (kind, hash)
      │       ─▶ exact survivors ─▶ NearDuplicates (pipelines/dedup_near.py) ─▶ near removals ─┐
      │       └─ exact removals ─▶ resolved to the document finally kept for them ─────────────┤
      └──────────────────────── (id, doc) ─────── CoGroupByKey on id ◀──── all removals ◀──────┘

Document bodies cross the network once (the final join); everything before it moves small records:
a record, a signature (num_perm x 4 bytes, 1 KiB at 256) and, with `verify: exact`, the document's
shingle set (4 bytes a distinct shingle). Near-dedup verifies windowed pairs of each LSH bucket,
computes the connected components of the verified edges across workers and walks each component in
`keep` order, so a document is removed only for a verified edge to a document that is kept
(`lemur_corpus.dedup.survivors`). Every removal names that document and the similarity
(`duplicate_of`, `similarity` in the drop log); an exact duplicate of a document later removed as a
near-duplicate names the document kept in the end. Two documents under one id are reported as
`duplicate_id` (the first by origin is kept).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import apache_beam as beam

from lemur_corpus.accounting import DEDUP, Drop
from lemur_corpus.dedup.config import DedupConfig, SurvivorRule
from lemur_corpus.dedup.exact import dedup_record, split_group, survivor_key
from lemur_corpus.dedup.minhash import MinHasher, to_bytes
from lemur_corpus.dedup.stats import combine, pick
from lemur_corpus.dedup.verify import to_set_bytes
from lemur_corpus.document import KINDS, Document
from lemur_corpus.pipelines.dedup_against import AgainstSpec, DedupAgainst
from lemur_corpus.pipelines.dedup_common import (
    REMOVED,
    STATS,
    Decision,
    Node,
    SummedStats,
    first_node,
    payload,
    removal_outputs,
    tagged_stat,
)
from lemur_corpus.pipelines.dedup_index import IndexTarget, WriteIndex, index_node
from lemur_corpus.pipelines.dedup_near import NearDuplicates, initial_stats, near_params
from lemur_corpus.pipelines.ledger import DROPS, CountDocuments
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.profile import EXACT_DEDUP, MINHASH, BundleProfile, profiled, start

__all__ = ["Decision", "Dedup", "DedupDecide", "DedupDecisions", "DedupOutputs", "near_params"]

PAYLOADS = "payloads"
INDEX = "index"


class DedupDecisions(NamedTuple):
    removed: beam.PCollection
    """(id, Decision) of every removed document: exact duplicates (naming the document finally kept
    for them) and near duplicates (naming the kept document they matched)."""
    stats: beam.PCollection
    """((section, group, metric), value), combined, with duplicate rates."""
    nodes: beam.PCollection | None
    """(record, sketch) of every document (when `keep_nodes`: what the index is made from, `index_node`)."""


class SignFn(beam.DoFn):
    """Document → (record, signature), and on `payloads` (id, Payload) for near-dedup's
    verification. Hashers are made once per worker."""

    def __init__(self, config: DedupConfig) -> None:
        self.config = config

    def setup(self) -> None:
        self.hashers = {kind: MinHasher(c.num_perm, c.seed, c.hash)
                        for kind in KINDS if (c := self.config.near(kind)).enabled}

    def start_bundle(self) -> None:
        self.profile = BundleProfile()

    def finish_bundle(self) -> None:
        self.profile.flush()

    def process(self, doc: Document) -> Iterator[Any]:
        started = start(EXACT_DEDUP)
        record = dedup_record(doc)
        self.profile.stop(EXACT_DEDUP, started, doc.nbytes)
        hasher = self.hashers.get(doc.kind)
        if hasher is None:
            yield record, None
            return
        near = self.config.near(doc.kind)
        exact = near.verify == "exact"
        signed = start(MINHASH)
        signature, seen, shingle_set = hasher.sign(doc.text, near.tokens, near.ngram, near.max_shingles, exact)
        self.profile.stop(MINHASH, signed, doc.nbytes)
        if seen.short:
            yield tagged_stat("near", doc.kind, "short_documents")
        if seen.capped:
            yield tagged_stat("near", doc.kind, "capped_documents")
        if signature is None:
            yield tagged_stat("near", doc.kind, "empty_documents")
            yield record, None
            return
        signature_bytes = to_bytes(signature)
        data = to_set_bytes(shingle_set) if shingle_set is not None else signature_bytes
        keep = survivor_key(record, self.config.keep)
        yield beam.pvalue.TaggedOutput(PAYLOADS, (doc.id, payload(record, keep, data)))
        yield record, signature_bytes


class ExactGroupFn(beam.DoFn):
    def __init__(self, rule: SurvivorRule) -> None:
        self.rule = rule

    @profiled(EXACT_DEDUP)
    def process(self, element: tuple[Any, list[Node]]) -> Iterator[Any]:
        (kind, _), nodes = element
        unique: dict[str, Node] = {}
        for node in sorted(nodes, key=lambda n: n[0].id):  # same id twice: see duplicate_id
            unique.setdefault(node[0].id, node)
        survivor, removed = split_group([n[0] for n in unique.values()], self.rule)
        yield unique[survivor.id]
        yield tagged_stat("exact", kind, "documents", len(unique))
        for record in unique.values():
            yield tagged_stat("exact_by_source", record[0].source, "documents")
        if removed:
            yield from removal_outputs("exact", survivor, [(r, 1.0) for r in removed])


class ResolveFn(beam.DoFn):
    """Joined on an exact survivor's id: its removed copies name the document finally kept for them
    (the survivor itself, or the kept document it was removed for as a near-duplicate)."""

    @profiled(EXACT_DEDUP)
    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[tuple[str, Decision]]:
        survivor, grouped = element
        near = sorted(grouped["near"])
        final, similarity = (near[0].survivor, near[0].similarity) if near else (survivor, 1.0)
        for removed in sorted(grouped["exact"]):
            yield removed, Decision("exact_duplicate", final, similarity)


class CombineDedupStats(beam.PTransform):
    """Raw ((section, group, metric), value) statistics -> summed (or maxed, by metric)."""

    def expand(self, stats: beam.PCollection) -> beam.PCollection:
        return (
            stats
            | "SumAndMax" >> beam.Map(lambda kv: (kv[0], (kv[1], kv[1])))
            | "Combine" >> beam.CombinePerKey(combine)
            | "Pick" >> beam.MapTuple(pick)
        )  # the rates are the manifest's to add (`manifest.dedup_section`): they need every statistic


class DedupDecide(beam.PTransform):
    """Documents -> every removal decision of exact and near dedup, and their statistics. Only
    small records move (id, hashes, signature, shingle set); no document body.

    With `against` (kind → the earlier indexes' files, `DedupAgainst`), documents that duplicate an
    earlier build's are removed first, naming it; the others are deduplicated among themselves.
    `planned` (kind → the documents the driver expects, `sources.base.planned_documents`) sizes
    near-dedup's bucket groups; it changes no decision."""

    def __init__(self, config: DedupConfig, planned: Mapping[str, int],
                 against: dict[str, AgainstSpec] | None = None, keep_nodes: bool = False) -> None:
        super().__init__()
        self.config, self.planned, self.against, self.keep_nodes = config, dict(planned), against or {}, keep_nodes

    def expand(self, docs: beam.PCollection) -> DedupDecisions:
        config, p = self.config, docs.pipeline
        near_on = any(config.near(kind).enabled for kind in KINDS)
        tags = (STATS, PAYLOADS) if near_on else (STATS,)  # no payload is made without near-dedup
        wants_nodes = config.exact or near_on or self.keep_nodes or bool(self.against)
        signed = docs | "Sign" >> MultiOutputParDo(SignFn(config), *tags, main="nodes" if wants_nodes else None)
        initial = p | "InitialStats" >> beam.Create(initial_stats(config, self.planned), reshuffle=False)
        stats: list[beam.PCollection] = [signed[STATS], initial]
        nodes = signed.get("nodes")
        earlier_removed = None
        if self.against:
            against = nodes | "Against" >> DedupAgainst(self.against)
            nodes, earlier_removed = against.remaining, against.removed
            stats.append(against.stats)
        if config.exact:
            exact = (
                nodes
                | "KeyByHash" >> beam.Map(lambda node: ((node[0].kind, node[0].content_hash), node))
                | "GroupByHash" >> beam.GroupByKey()
                | "ExactGroups" >> MultiOutputParDo(SummedStats(ExactGroupFn(config.keep)), REMOVED, STATS,
                                                    main="survivors" if near_on else None)  # only near-dedup reads them
            )
            survivors, exact_removed = exact.get("survivors"), exact[REMOVED]
            stats.append(exact[STATS])
        else:
            survivors, exact_removed = nodes, p | "NoExactDecisions" >> beam.Create([])
        if near_on:
            near = survivors | "Near" >> NearDuplicates(config, signed[PAYLOADS], self.planned)
            stats.append(near.stats)
            resolved = (
                {"exact": exact_removed | "BySurvivor" >> beam.MapTuple(lambda i, d: (d.survivor, i)),
                 "near": near.removed}
                | "JoinSurvivors" >> beam.CoGroupByKey()
                | "Resolve" >> beam.ParDo(ResolveFn())
            )
            removed = (resolved, near.removed) | "AllDecisions" >> beam.Flatten()
        else:
            removed = exact_removed
        if earlier_removed is not None:
            removed = (removed, earlier_removed) | "WithEarlier" >> beam.Flatten()
        combined = stats | "FlattenStats" >> beam.Flatten() | "Stats" >> CombineDedupStats()
        index_nodes = signed["nodes"] | "IndexNodes" >> beam.Map(index_node) if self.keep_nodes else None
        return DedupDecisions(removed, combined, index_nodes)


def removal_detail(decision: Decision) -> str:
    where = f" in build {decision.build}" if decision.build else ""
    return f"duplicate of {decision.survivor}{where} (Jaccard {decision.similarity:g})"


class ApplyDecisionsFn(beam.DoFn):
    """Joined on id: the kept document (and, when the index is written, its node on `INDEX`), or
    its drop naming the document it duplicates."""

    @profiled(EXACT_DEDUP)
    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        doc_id, grouped = element
        docs: list[Document] = sorted(grouped["doc"], key=lambda d: (d.origin, d.text))
        decisions = sorted(d for d in grouped["decision"] if d.survivor != doc_id or d.build)
        if not docs:
            return
        first, rest = docs[0], docs[1:]
        if decisions:
            decision = decisions[0]
            yield beam.pvalue.TaggedOutput(
                DROPS, Drop(DEDUP, first.source, decision.reason, first.nbytes, first.id, first.origin,
                            removal_detail(decision), duplicate_of=decision.survivor,
                            similarity=decision.similarity, duplicate_of_build=decision.build),
            )
        else:
            yield first
            nodes = grouped.get("node") or []
            if nodes:  # the node of the document kept (an id read twice: the one of its text)
                mine = [n for n in nodes if n[0].content_hash == dedup_record(first).content_hash]
                yield beam.pvalue.TaggedOutput(INDEX, first_node(mine or nodes))
        for other in rest:
            yield beam.pvalue.TaggedOutput(
                DROPS, Drop(DEDUP, other.source, "duplicate_id", other.nbytes, other.id, other.origin,
                            f"the id was also read at {first.origin}"),
            )


class DedupOutputs(NamedTuple):
    docs: beam.PCollection
    tallies: beam.PCollection
    drops: beam.PCollection
    """Exact and near duplicates (each naming its survivor) and ids read twice."""
    stats: beam.PCollection
    """((section, group, metric), value), combined, with duplicate rates: the manifest's `dedup`."""
    index_written: beam.PCollection
    """(kind, {path, sha256, documents, files, bytes}) of the index written (none without `index`)."""


class Dedup(beam.PTransform):
    """Documents -> the kept documents: decisions on small records, then one join with the bodies.
    With `index`, the kept documents' index is written (`pipelines/dedup_index.py`); with `against`,
    documents that duplicate an earlier build's are removed first. `planned`: as `DedupDecide`."""

    def __init__(self, config: DedupConfig, planned: Mapping[str, int], index: IndexTarget | None = None,
                 against: dict[str, AgainstSpec] | None = None) -> None:
        super().__init__()
        self.config, self.planned, self.index, self.against = config, dict(planned), index, against

    def expand(self, docs: beam.PCollection) -> DedupOutputs:
        counted_in = docs | "CountIn" >> CountDocuments(DEDUP, "in")
        decided = docs | "Decide" >> DedupDecide(self.config, self.planned, self.against,
                                                          keep_nodes=self.index is not None)
        joined: dict[str, beam.PCollection] = {"doc": docs | "KeyById" >> beam.Map(lambda d: (d.id, d)),
                                               "decision": decided.removed}
        if decided.nodes is not None:
            joined["node"] = decided.nodes | "NodesById" >> beam.Map(lambda n: (n[0].id, n))
        kept = (
            joined
            | "JoinDecisions" >> beam.CoGroupByKey()
            | "ApplyDecisions" >> MultiOutputParDo(ApplyDecisionsFn(), DROPS, *((INDEX,) if self.index else ()),
                                                   main="docs")
        )
        counted_out = kept["docs"] | "CountOut" >> CountDocuments(DEDUP, "out")
        tallies = (counted_in, counted_out) | "Tallies" >> beam.Flatten()
        if self.index is not None:
            written = kept[INDEX] | "WriteIndex" >> WriteIndex(self.index, self.planned)
        else:
            written = docs.pipeline | "NoIndex" >> beam.Create([])
        return DedupOutputs(kept["docs"], tallies, kept[DROPS], decided.stats, written)
