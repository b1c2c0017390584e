"""Stage 4, dedup within each kind: decisions are made on small records, then joined to the bodies.

    docs ─▶ (DedupRecord, MinHash signature) ─▶ group by (kind, hash) ─▶ exact survivors ─┐
      │                                               └─ exact removals ─────────────────┐ │
      │   ┌──────────────────────────────────────────────────────────────────────────────┼─┘
      │   └▶ band keys ─▶ group by bucket ─▶ (member, bucket's smallest id) candidate pairs
      │        ─▶ join member signature ─▶ join root signature ─▶ verified edges (est. J >= t)
      │        ─▶ connected components (one worker per kind, ids only) ─▶ cluster of each id
      │        ─▶ group records by cluster ─▶ survivor by the `keep` rule ─▶ near removals ──┤
      └──────────────────────── (id, doc) ─────── CoGroupByKey on id ◀──── all removals ◀─┘

Document bodies cross the network once (the final join); everything before it moves small records:
a signature is num_perm x 4 bytes (1 KiB at 256). Memory per worker: the signature step holds one
document; a bucket holds its members' ids; a verification group holds one root's candidates'
signatures; only the components step is global (per kind), and it holds ids of the documents that
have a verified edge, bounded by `corpus/dedup/clusters.py: union_find_bytes`, which the manifest
records with the counts it comes from. Two documents under one id are reported as `duplicate_id`
(the first by origin is kept).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import apache_beam as beam
import numpy as np

from lemur_corpus.accounting import DEDUP, Drop
from lemur_corpus.dedup.clusters import connected_components, union_find_bytes
from lemur_corpus.dedup.config import DedupConfig, SurvivorRule
from lemur_corpus.dedup.exact import DedupRecord, dedup_record, split_group
from lemur_corpus.dedup.lsh import band_keys, lsh_params, star_pairs
from lemur_corpus.dedup.minhash import MinHasher, from_bytes, to_bytes
from lemur_corpus.dedup.stats import NEAR_METRICS, combine, pick, stat, with_rates
from lemur_corpus.document import KINDS, Document
from lemur_corpus.manifest import cluster_size_metric
from lemur_corpus.pipelines.ledger import DROPS, CountDocuments
from lemur_corpus.pipelines.outputs import MultiOutputParDo

STATS = "stats"
REMOVED = "removed"

Node = tuple[DedupRecord, bytes | None]
"""A document as dedup sees it: its small record and its MinHash signature (None when near-dedup
is off for its kind or it has no token)."""
SignedNode = tuple[DedupRecord, bytes]
"""A node with a signature: the only kind near-dedup sees (`NearDuplicates` filters the others out)."""
AnyNode = TypeVar("AnyNode", bound=Node)


class Decision(NamedTuple):
    reason: str
    """`exact_duplicate` or `near_duplicate`."""
    survivor: str
    """The id of the document that stays for this one."""


class DedupDecisions(NamedTuple):
    exact: beam.PCollection
    """(id, Decision) of documents removed as exact duplicates (survivor: the group's survivor)."""
    near: beam.PCollection
    """(id, Decision) of documents removed as near-duplicates (survivor: the cluster's survivor)."""
    stats: beam.PCollection
    """((section, group, metric), value), combined, with duplicate rates."""


def _stat(section: str, group: str, metric: str, value: float = 1) -> beam.pvalue.TaggedOutput:
    return beam.pvalue.TaggedOutput(STATS, stat(section, group, metric, value))


def first_node(nodes: Sequence[AnyNode]) -> AnyNode | None:
    """The node that stands for an id read twice (deterministic: smallest content hash)."""
    return min(nodes, key=lambda n: n[0].content_hash) if nodes else None


class SignFn(beam.DoFn):
    """Document → (record, signature). Hashers are made once per worker."""

    def __init__(self, config: DedupConfig) -> None:
        self.config = config

    def setup(self) -> None:
        self.hashers = {kind: MinHasher(c.num_perm, c.seed, c.hash)
                        for kind in KINDS if (c := self.config.near(kind)).enabled}

    def process(self, doc: Document) -> Iterator[Any]:
        record = dedup_record(doc)
        hasher = self.hashers.get(doc.kind)
        if hasher is None:
            yield record, None
            return
        near = self.config.near(doc.kind)
        signature, seen = hasher.signature(doc.text, near.tokens, near.ngram, near.max_shingles)
        if signature is None:
            yield _stat("near", doc.kind, "empty_documents")
        if seen.short:
            yield _stat("near", doc.kind, "short_documents")
        if seen.capped:
            yield _stat("near", doc.kind, "capped_documents")
        yield record, (to_bytes(signature) if signature is not None else None)


def removal_outputs(section: str, survivor: DedupRecord,
                    removed: list[DedupRecord]) -> Iterator[beam.pvalue.TaggedOutput]:
    """The decisions and statistics of one duplicate cluster (`section`: exact or near)."""
    kind = survivor.kind
    yield _stat(section, kind, "clusters")
    yield _stat(section, kind, cluster_size_metric(len(removed) + 1))  # the report's histogram
    yield _stat(f"{section}_by_source", survivor.source, "clusters")
    for record in removed:
        yield _stat(section, kind, "removed")
        yield _stat(section, kind, "removed_bytes", record.nbytes)
        yield _stat(f"{section}_by_source", record.source, "removed")
        yield beam.pvalue.TaggedOutput(REMOVED, (record.id, Decision(f"{section}_duplicate", survivor.id)))


class ExactGroupFn(beam.DoFn):
    def __init__(self, rule: SurvivorRule) -> None:
        self.rule = rule

    def process(self, element: tuple[Any, list[Node]]) -> Iterator[Any]:
        (kind, _), nodes = element
        unique: dict[str, Node] = {}
        for node in sorted(nodes, key=lambda n: n[0].id):  # same id twice: see duplicate_id
            unique.setdefault(node[0].id, node)
        survivor, removed = split_group([n[0] for n in unique.values()], self.rule)
        yield unique[survivor.id]
        yield _stat("exact", kind, "documents", len(unique))
        for record in unique.values():
            yield _stat("exact_by_source", record[0].source, "documents")
        if removed:
            yield from removal_outputs("exact", survivor, removed)


class BandKeysFn(beam.DoFn):
    """(record, signature) → ((kind, band key), id) for every band."""

    def __init__(self, params: dict[str, tuple[int, int]]) -> None:
        self.params = params

    def process(self, node: SignedNode) -> Iterator[Any]:
        record, signature = node
        bands, rows = self.params[record.kind]
        yield _stat("near", record.kind, "documents")
        yield _stat("near_by_source", record.source, "documents")
        for key in band_keys(from_bytes(signature), bands, rows):
            yield (record.kind, key), record.id


class LinkBucketFn(beam.DoFn):
    """A bucket → (member, smallest id) for every other member: linear, never quadratic."""

    def process(self, element: tuple[tuple[str, bytes], list[str]]) -> Iterator[Any]:
        (kind, _), ids = element
        pairs = list(star_pairs(ids))
        if pairs:
            yield _stat("near", kind, "buckets_linked")
            yield _stat("near", kind, "max_bucket_size", len(pairs) + 1)
        yield from pairs


class AttachMemberFn(beam.DoFn):
    """Joined on the member's id: (root, member node) once per distinct candidate pair."""

    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        _, grouped = element
        node = first_node(grouped["node"])
        roots = sorted(set(grouped["root"]))
        if node is None or not roots:
            return
        record = node[0]
        yield _stat("near", record.kind, "candidate_pairs", len(roots))
        yield _stat("near_by_source", record.source, "candidate_pairs", len(roots))
        for root in roots:
            yield root, node


def min_agreements(threshold: float, num_perm: int) -> int:
    """Permutations two signatures must agree on for an estimated Jaccard >= threshold."""
    return math.ceil(threshold * num_perm - 1e-9)


class VerifyFn(beam.DoFn):
    """Joined on the root's id: a candidate becomes an edge if its estimated Jaccard with the root
    reaches the threshold (all at once: one comparison of a members x num_perm matrix)."""

    def __init__(self, config: DedupConfig) -> None:
        self.config = config

    def process(self, element: tuple[str, dict[str, list[SignedNode]]]) -> Iterator[Any]:
        root_id, grouped = element
        root = first_node(grouped["node"])
        if root is None or not grouped["member"]:
            return
        members = sorted(grouped["member"], key=lambda n: n[0].id)
        kind = root[0].kind
        near = self.config.near(kind)
        yield _stat("near", kind, "max_root_candidates", len(members))  # this worker's signatures
        if near.verify:
            matrix = np.stack([from_bytes(m[1]) for m in members])
            agree = np.count_nonzero(matrix == from_bytes(root[1])[None, :], axis=1)
            keep = agree >= min_agreements(near.threshold, near.num_perm)
        else:
            keep = np.ones(len(members), dtype=bool)
        for (record, _), verified in zip(members, keep.tolist(), strict=True):
            metric = "verified_edges" if verified else "rejected_pairs"
            yield _stat("near", kind, metric)
            yield _stat("near_by_source", record.source, metric)
            if verified:
                yield kind, (root_id, record.id)


class ComponentsFn(beam.DoFn):
    """All verified edges of one kind → (id, cluster) for every id with an edge; the cluster is named
    by its smallest id. The one global step: memory bounded by `union_find_bytes`."""

    def process(self, element: tuple[str, list[tuple[str, str]]]) -> Iterator[Any]:
        kind, edges = element
        components = connected_components(edges)
        nodes = sum(len(c) for c in components)
        mean_id = sum(len(i) for c in components for i in c) / nodes if nodes else 0.0
        yield _stat("near", kind, "union_find_nodes", nodes)
        yield _stat("near", kind, "union_find_edges", len(edges))
        yield _stat("near", kind, "union_find_bytes", union_find_bytes(nodes, len(edges), mean_id))
        for component in components:
            for member in component:
                yield member, component[0]


class KeyByClusterFn(beam.DoFn):
    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        _, grouped = element
        node = first_node(grouped["node"])
        if node is not None and grouped["cluster"]:
            yield grouped["cluster"][0], node[0]


class NearSurvivorFn(beam.DoFn):
    """One cluster's records → the survivor by the `keep` rule; the others are removed."""

    def __init__(self, rule: SurvivorRule) -> None:
        self.rule = rule

    def process(self, element: tuple[str, list[DedupRecord]]) -> Iterator[beam.pvalue.TaggedOutput]:
        _, records = element
        unique = {r.id: r for r in sorted(records, key=lambda r: r.id)}
        survivor, removed = split_group(unique.values(), self.rule)
        yield _stat("near", survivor.kind, "max_cluster_size", len(unique))
        yield from removal_outputs("near", survivor, removed)


def near_params(config: DedupConfig) -> dict[str, tuple[int, int]]:
    """(bands, rows) of every kind whose near-dedup is enabled (computed once, on the driver)."""
    return {kind: lsh_params(config.near(kind)) for kind in KINDS if config.near(kind).enabled}


def initial_stats(config: DedupConfig) -> list[tuple[tuple[str, str, str], float]]:
    """Zeros for every near metric and the LSH parameters, so the manifest always shows them."""
    out = []
    for kind, (bands, rows) in sorted(near_params(config).items()):
        out += [stat("near", kind, metric, 0) for metric in NEAR_METRICS]
        out += [stat("near", kind, "bands", bands), stat("near", kind, "rows", rows),
                stat("near", kind, "num_perm", config.near(kind).num_perm)]
    return out


class NearOutputs(NamedTuple):
    removed: beam.PCollection
    """(id, Decision) of near-duplicate removals."""
    stats: beam.PCollection
    """((section, group, metric), value) before combining."""


class NearDuplicates(beam.PTransform):
    """Exact survivors (record, signature) -> near removals and their statistics: LSH buckets,
    candidate pairs, verified edges, connected components, each cluster's survivor."""

    def __init__(self, config: DedupConfig) -> None:
        super().__init__()
        self.config = config

    def expand(self, survivors: beam.PCollection) -> NearOutputs:
        config = self.config
        signed = survivors | "Signed" >> beam.Filter(lambda node: node[1] is not None)
        nodes = signed | "NodesById" >> beam.Map(lambda node: (node[0].id, node))
        keyed = signed | "BandKeys" >> MultiOutputParDo(BandKeysFn(near_params(config)), STATS, main="keys")
        linked = (
            keyed["keys"]
            | "GroupByBucket" >> beam.GroupByKey()
            | "LinkBuckets" >> MultiOutputParDo(LinkBucketFn(), STATS, main="pairs")
        )
        attached = (
            {"root": linked["pairs"], "node": nodes}
            | "JoinMembers" >> beam.CoGroupByKey()
            | "AttachMembers" >> MultiOutputParDo(AttachMemberFn(), STATS, main="candidates")
        )
        verified = (
            {"member": attached["candidates"], "node": nodes}
            | "JoinRoots" >> beam.CoGroupByKey()
            | "Verify" >> MultiOutputParDo(VerifyFn(config), STATS, main="edges")
        )
        components = (
            verified["edges"]
            | "GroupEdgesByKind" >> beam.GroupByKey()
            | "Components" >> MultiOutputParDo(ComponentsFn(), STATS, main="clusters")
        )
        decided = (
            {"cluster": components["clusters"], "node": nodes}
            | "JoinClusters" >> beam.CoGroupByKey()
            | "KeyByCluster" >> beam.ParDo(KeyByClusterFn())
            | "GroupClusters" >> beam.GroupByKey()
            | "Survivors" >> MultiOutputParDo(NearSurvivorFn(config.keep), STATS, REMOVED)
        )
        stats = (keyed[STATS], linked[STATS], attached[STATS], verified[STATS], components[STATS], decided[STATS])
        return NearOutputs(decided[REMOVED], stats | "Stats" >> beam.Flatten())


class CombineDedupStats(beam.PTransform):
    """Raw ((section, group, metric), value) statistics -> summed (or maxed, by metric), with rates."""

    def expand(self, stats: beam.PCollection) -> beam.PCollection:
        return (
            stats
            | "SumAndMax" >> beam.Map(lambda kv: (kv[0], (kv[1], kv[1])))
            | "Combine" >> beam.CombinePerKey(combine)
            | "Pick" >> beam.MapTuple(pick)
            | "All" >> beam.combiners.ToList()
            | "WithRates" >> beam.FlatMap(with_rates)
        )


class DedupDecide(beam.PTransform):
    """Documents -> every removal decision of exact and near dedup, and their statistics. Only
    small records move (id, hashes, signature); no document body."""

    def __init__(self, config: DedupConfig) -> None:
        super().__init__()
        self.config = config

    def expand(self, docs: beam.PCollection) -> DedupDecisions:
        config, p = self.config, docs.pipeline
        signed = docs | "Sign" >> MultiOutputParDo(SignFn(config), STATS, main="nodes")
        stats: list[beam.PCollection] = [signed[STATS], p | "InitialStats" >> beam.Create(initial_stats(config))]
        if config.exact:
            exact = (
                signed["nodes"]
                | "KeyByHash" >> beam.Map(lambda node: ((node[0].kind, node[0].content_hash), node))
                | "GroupByHash" >> beam.GroupByKey()
                | "ExactGroups" >> MultiOutputParDo(ExactGroupFn(config.keep), REMOVED, STATS, main="survivors")
            )
            survivors, exact_removed = exact["survivors"], exact[REMOVED]
            stats.append(exact[STATS])
        else:
            survivors, exact_removed = signed["nodes"], p | "NoExactDecisions" >> beam.Create([])
        if any(config.near(kind).enabled for kind in KINDS):
            near = survivors | "Near" >> NearDuplicates(config)
            near_removed = near.removed
            stats.append(near.stats)
        else:
            near_removed = p | "NoNearDecisions" >> beam.Create([])
        combined = stats | "FlattenStats" >> beam.Flatten() | "Stats" >> CombineDedupStats()
        return DedupDecisions(exact_removed, near_removed, combined)


class ApplyDecisionsFn(beam.DoFn):
    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        doc_id, grouped = element
        docs: list[Document] = sorted(grouped["doc"], key=lambda d: (d.origin, d.text))
        decisions = sorted(d for d in grouped["decision"] if d.survivor != doc_id)
        if not docs:
            return
        first, rest = docs[0], docs[1:]
        if decisions:
            decision = decisions[0]
            yield beam.pvalue.TaggedOutput(
                DROPS, Drop(DEDUP, first.source, decision.reason, first.nbytes, first.id, first.origin,
                            f"duplicate of {decision.survivor}"),
            )
        else:
            yield first
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


class Dedup(beam.PTransform):
    """Documents -> the kept documents: decisions on small records, then one join with the bodies."""

    def __init__(self, config: DedupConfig) -> None:
        super().__init__()
        self.config = config

    def expand(self, docs: beam.PCollection) -> DedupOutputs:
        counted_in = docs | "CountIn" >> CountDocuments(DEDUP, "in")
        decided = docs | "Decide" >> DedupDecide(self.config)
        all_decisions = (decided.exact, decided.near) | "FlattenDecisions" >> beam.Flatten()
        kept = (
            {"doc": docs | "KeyById" >> beam.Map(lambda d: (d.id, d)), "decision": all_decisions}
            | "JoinDecisions" >> beam.CoGroupByKey()
            | "ApplyDecisions" >> MultiOutputParDo(ApplyDecisionsFn(), DROPS, main="docs")
        )
        counted_out = kept["docs"] | "CountOut" >> CountDocuments(DEDUP, "out")
        tallies = (counted_in, counted_out) | "Tallies" >> beam.Flatten()
        return DedupOutputs(kept["docs"], tallies, kept[DROPS], decided.stats)
