"""Near-duplicates within a kind: LSH buckets, verified pairs, components across workers, survivors.

    exact survivors (record, signature)            payloads (id, shingle set or signature)
      ─▶ band keys ─▶ bucket groups (combined per bundle) ─▶ each bucket of a group
      ─▶ windowed pairs in keep order, gathered per bundle and id group as [(later, rank, [earlier])]
      ─▶ group by id group ─▶ each later document's task (its earlier documents) in the chunk of its
         least rank, and the chunks' requests for payloads, gathered per bundle and id group
      ─▶ group the requests by id group ─▶ each document's chunks
      ─▶ join them and payloads on id ─▶ each payload to each chunk that needs it, once
      ─▶ group tasks and payloads by chunk ─▶ verify each task's pairs
      ─▶ verified edges ─▶ ConnectedComponents (large-star/small-star rounds) ─▶ (id, label)
      ─▶ join labels, edges and the records of their documents on id ─▶ group by label
      ─▶ walk in keep order ─▶ removals

Every payload crosses the network once, plus one copy per verification chunk that compares it. A
chunk gathers the later documents whose first bucket (by its first member in keep order) and block
of places in it (`VERIFY_BLOCK_PLACES`) are the same, so a cluster's members meet in a few chunks:
a payload copy per candidate pair, as when each later document was a group of its own, cost the
grouping's bytes x8.5 from 250,000 to a million documents of the scale corpus (its code documents'
candidate pairs grow with their clusters). What planning reads and writes per document (a later
document's candidates from each bucket group's bundle, a document's requests from each of planning's
bundles) travels in lists per id group (`ID_GROUP_DOCUMENTS`), merged per document after the
grouping, so the runner moves a list per bundle and id group rather than an element per document
and bundle. A payload carries its document's record, and
verification hands on the records of the documents it found an edge for: the walk joins only those
(a few per cluster), not every signed document's. Buckets travel in groups
(`BUCKET_GROUP_ENTRIES`): a document has one band key per band and almost every bucket holds one
document, so a shuffle of one element per document and band would move ~20 elements per document
only to find most of them alone; a group is a list of about `BUCKET_GROUP_ENTRIES` band keys,
gathered per bundle by `BandKeysFn` itself (each bundle sends a list per group it touched) and
merged by the runner's combiner.

Memory per worker: a bucket group holds its band keys and members' ids and keep keys (at most about
`BUCKET_GROUP_ENTRIES` when the driver's planned documents are not below the real ones, plus any
bucket that is large by itself; their number is fixed before the run, so no signed document waits
for a count of the others), `BandKeysFn` at most `BAND_ENTRIES_PER_FLUSH` band keys of its bundle,
`BucketPairsFn` and `PlanVerificationFn` at most `PAIRS_PER_FLUSH` pairs; planning holds one id
group's later documents and their earlier ids (at most 2 x bucket_window per bucket each shares,
counted as `max_verify_group`), the requests' merge one id group's documents and their chunks; the
join holds one document's payload and its chunks; a chunk holds its tasks
and their documents' payloads (at most `VERIFY_BLOCK_PLACES` later documents per bucket its anchor
leads, one bucket per band, and their earlier documents), and a bundle of chunks one record's fields
per document with an edge (sent once when the bundle ends); the components steps hold one node's
neighbours; the walk holds one component (or one part of `max_component_size` documents) and its
edges. Nothing holds the whole edge list.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

import apache_beam as beam
import xxhash
from apache_beam.utils.windowed_value import WindowedValue

from lemur_corpus.dedup.config import DedupConfig, SurvivorRule
from lemur_corpus.dedup.exact import survivor_key
from lemur_corpus.dedup.lsh import band_keys, bucket_pairs, lsh_params, pairs_left_out
from lemur_corpus.dedup.minhash import from_bytes
from lemur_corpus.dedup.stats import NEAR_METRICS, Stat, stat
from lemur_corpus.document import KINDS
from lemur_corpus.pipelines.dask_combine import GLOBAL_WINDOWS
from lemur_corpus.pipelines.dedup_common import (
    REMOVED,
    STATS,
    Payload,
    SignedNode,
    SummedStats,
    first_payload,
    tagged_stat,
)
from lemur_corpus.pipelines.dedup_components import ConnectedComponents
from lemur_corpus.pipelines.dedup_verify import (
    NAMES,
    RECORDS,
    Chunk,
    DecideComponentFn,
    GroupMemberFn,
    VerifyFn,
    both_ways,
)
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.profile import MINHASH, profiled, profiled_fn

CHUNKS = "chunks"


def near_params(config: DedupConfig) -> dict[str, tuple[int, int]]:
    """(bands, rows) of every kind whose near-dedup is enabled (computed once, on the driver; LSH
    parameters datasketch would refuse are a `ConfigError` naming the keys)."""
    return {kind: lsh_params(config.near(kind), f"dedup.{kind}") for kind in KINDS if config.near(kind).enabled}


def initial_stats(config: DedupConfig, planned: Mapping[str, int]) -> list[tuple[tuple[str, str, str], float]]:
    """Zeros for every near metric, the LSH parameters, the bounds and the bucket groups planned, so
    the manifest always shows them."""
    out = []
    groups = planned_bucket_groups(config, planned)
    for kind, (bands, rows) in sorted(near_params(config).items()):
        near = config.near(kind)
        out += [stat("near", kind, metric, 0) for metric in NEAR_METRICS]
        out += [stat("near", kind, "bands", bands), stat("near", kind, "rows", rows),
                stat("near", kind, "num_perm", near.num_perm), stat("near", kind, "bucket_window", near.bucket_window),
                stat("near", kind, "component_round_limit", config.component_rounds),
                stat("near", kind, "component_size_limit", near.max_component_size),
                stat("near", kind, "bucket_groups", groups[kind])]
    return out


BUCKET_GROUP_ENTRIES = 8_192
"""Band keys per bucket group, at most about. A kind's buckets are dealt into `bucket_groups(planned
documents, bands)` groups by their key's hash, so the groups stay this size whatever the corpus's
(more documents: more groups, not larger ones). About 0.5 MB of entries: small enough for any
worker, large enough that a bundle sends a few lists, not thousands of elements.

The number comes from the driver's estimate of the kind's documents (`planned_documents`: input
bytes / 1,000), not from counting the signed documents: a count taken as a side input makes every
partition's signed documents wait in memory until the last is counted (1,345 of the 1,541 MiB two
Dask workers held at a million documents). Which group a bucket is in changes no output; a low
estimate only makes groups larger (the manifest's `bucket_groups` and `documents` show by how much)."""

BandEntry = tuple
"""(band key, *keep key): one document in one LSH bucket (a keep key ends with the document's id;
flat, because the coders decode nested tuples several times slower)."""


def bucket_groups(documents: int, bands: int) -> int:
    """Groups for a kind of `documents` documents of `bands` band keys each: about
    `BUCKET_GROUP_ENTRIES` keys per group, at least one group."""
    return max(1, -(-documents * bands // BUCKET_GROUP_ENTRIES))


def planned_bucket_groups(config: DedupConfig, planned: Mapping[str, int]) -> dict[str, int]:
    """Bucket groups of every kind with near-dedup, from its planned documents (a kind not planned:
    one group)."""
    return {kind: bucket_groups(planned.get(kind, 0), bands) for kind, (bands, _) in near_params(config).items()}


def signed_documents(counted: tuple[tuple[str, str], int]) -> Iterator[Stat]:
    """A (kind, source)'s signed documents as the statistics `documents` of its kind and its source."""
    (kind, source), count = counted
    yield stat("near", kind, "documents", count)
    yield stat("near_by_source", source, "documents", count)


def bucket_group(key: bytes, groups: int) -> int:
    """The group of a bucket: its key's hash (the last 8 bytes of a 128-bit hash) modulo `groups`."""
    return int.from_bytes(key[-8:], "big") % groups


ID_GROUP_DOCUMENTS = 8_192
"""Documents per id group, at most about. What verification's planning sends on keyed by a
document's id (a later document's candidates, each document's requests for its payload) is sent
gathered per bundle into `id_groups(planned documents)` groups by the id's hash, one list per group
a bundle touched: keyed by the id itself, a document took an element from every bundle that saw it,
and the runner's cost per element, not per byte, grew with the clusters (`benchmarks/scale.py
--runner dask-cluster`: the requests 338,000 → 4.1 million elements from 250,000 to a million
documents, x12). Which group a document is in changes no output; a low estimate only makes groups
larger."""


def id_groups(planned: Mapping[str, int]) -> int:
    """Id groups for the planned documents of every kind (at least one)."""
    return max(1, -(-sum(planned.values()) // ID_GROUP_DOCUMENTS))


def id_group(doc_id: str, groups: int) -> int:
    """The id group of a document: its id's 64-bit hash modulo `groups` (the same on every worker)."""
    return xxhash.xxh3_64_intdigest(doc_id.encode("utf-8", "surrogatepass")) % groups


IdItem = TypeVar("IdItem", bound=tuple)


def by_id_group(items: Iterable[IdItem], groups: int) -> dict[int, list[IdItem]]:
    """`items`, each a document's id and what goes with it, in lists per id group (in their order)."""
    gathered: dict[int, list[IdItem]] = {}
    for item in items:
        group = id_group(item[0], groups)
        found = gathered.get(group)
        if found is None:
            found = gathered[group] = []
        found.append(item)
    return gathered


BAND_ENTRIES_PER_FLUSH = 65_536
"""Band entries `BandKeysFn` holds before it sends them on, whatever a bundle's size."""


class BandKeysFn(beam.DoFn):
    """(record, signature) → ((kind, bucket group), [(band key, *keep key), ...]): every band of the
    bundle's documents, into the kind's `groups` bucket groups, one list per group the bundle touched
    (sent when the bundle ends, or every `BAND_ENTRIES_PER_FLUSH` entries). One element per document
    and band, as before, cost the runner's per-element machinery ~20 times per document only to be
    combined per bundle again."""

    def __init__(self, params: dict[str, tuple[int, int]], rule: SurvivorRule, groups: dict[str, int]) -> None:
        self.params, self.rule, self.groups = params, rule, groups

    def start_bundle(self) -> None:
        self.pending: dict[tuple[str, int], list[BandEntry]] = {}
        self.held = 0

    @profiled(MINHASH)
    def process(self, node: SignedNode) -> Iterator[tuple[tuple[str, int], list[BandEntry]]]:
        record, signature = node
        bands, rows = self.params[record.kind]
        groups = self.groups[record.kind]
        keep = survivor_key(record, self.rule)
        pending = self.pending
        for key in band_keys(from_bytes(signature), bands, rows):
            group = (record.kind, bucket_group(key, groups))
            entries = pending.get(group)
            if entries is None:
                entries = pending[group] = []
            entries.append((key, *keep))
        self.held += bands
        if self.held >= BAND_ENTRIES_PER_FLUSH:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for element in self._flush():
            yield WindowedValue(element, 0, GLOBAL_WINDOWS)

    def _flush(self) -> Iterator[tuple[tuple[str, int], list[BandEntry]]]:
        pending, self.pending, self.held = self.pending, {}, 0
        yield from pending.items()


class BucketEntriesFn(beam.CombineFn):
    """A bucket group's band entries, from lists of them, as one list (in no particular order:
    `BucketPairsFn` sorts)."""

    def create_accumulator(self) -> list[BandEntry]:
        return []

    def add_input(self, accumulator: list[BandEntry], entries: list[BandEntry]) -> list[BandEntry]:
        accumulator.extend(entries)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[list[BandEntry]]) -> list[BandEntry]:
        merged: list[BandEntry] = []
        for accumulator in accumulators:
            merged.extend(accumulator)
        return merged

    def extract_output(self, accumulator: list[BandEntry]) -> list[BandEntry]:
        return accumulator


PAIRS_PER_FLUSH = 65_536
"""Pairs `BucketPairsFn` (and requests `PlanVerificationFn`) gather before they send them on, whatever
a bundle's or a bucket's size (a bound on their memory)."""

VERIFY_BLOCK_PLACES = 256
"""Later documents of one bucket verified in one chunk, by their place in it in keep order. A chunk
holds the payloads its later documents are compared with once each, so a bucket of n members costs
about n + n / 256 x (2 x bucket_window) payload copies, not one per candidate pair; a chunk holds at
most this many later documents per bucket its anchor leads (one per band)."""

Rank = tuple
"""(*anchor's keep key, block): where a later document is verified. The anchor is the first member
in keep order of a bucket the document is a later member of, the block its place there //
`VERIFY_BLOCK_PLACES`; a document in several buckets takes the least rank, so the members of one
cluster meet in one chunk (flat, as `BandEntry`)."""

Candidates = tuple[str, Rank, list[str]]
"""(later id, its least rank, [earlier ids]) as one bundle of `BucketPairsFn` found them."""

Requests = tuple[str, list[Chunk]]
"""(id, [chunks]): the chunks that need a document's payload, as one flush of planning asked."""


class BucketPairsFn(beam.DoFn):
    """A bucket group → for each of its buckets, the pairs its window verifies (see
    `dedup.lsh.bucket_pairs`), gathered per bundle as each later document's rank and distinct
    earlier ones, one list per id group (`id_group` of the later id) the bundle touched: (group,
    [(later id, rank, [earlier ids]), ...]), sent when the bundle ends or every `PAIRS_PER_FLUSH`
    pairs; the group's statistics, summed over its buckets (one record each, not one per bucket: a
    bucket group holds thousands).

    One element per pair (a `Distinct` of them) cost the runner a crossing per pair, a pair being in
    several bands' buckets; the rank (the bucket's first member, the later document's block of
    places) lets verification gather a cluster's pairs in a few chunks instead of one group per
    later document, each with its own copy of every earlier document's payload."""

    def __init__(self, windows: dict[str, int], groups: int) -> None:
        self.windows, self.groups = windows, groups

    def start_bundle(self) -> None:
        self.pending: dict[str, tuple[Rank, set[str]]] = {}
        self.held = 0

    @profiled(MINHASH)
    def process(self, element: tuple[tuple[str, int], list[BandEntry]]) -> Iterator[Any]:
        (kind, _), entries = element
        window = self.windows[kind]
        sizes = Counter(entry[0] for entry in entries)
        shared = sorted((entry for entry in entries if sizes[entry[0]] > 1), key=itemgetter(0))
        linked = largest = limited = left_out = 0
        for _, bucket in itertools.groupby(shared, key=itemgetter(0)):  # almost every bucket holds one
            keys = bucket_members([entry[1:] for entry in bucket])
            if len(keys) < 2:
                continue
            ordered = [key[-1] for key in keys]
            linked, largest = linked + 1, max(largest, len(ordered))
            missing = pairs_left_out(len(ordered), window)
            limited, left_out = limited + bool(missing), left_out + missing
            anchor = keys[0]  # a member's rank here, made once per member, not once per pair
            rank_of = {doc_id: (*anchor, j // VERIFY_BLOCK_PLACES) for j, doc_id in enumerate(ordered)}
            for earlier, later in bucket_pairs(ordered, window):
                rank = rank_of[later]
                held = self.pending.get(later)
                if held is None:
                    self.pending[later] = (rank, {earlier})
                else:
                    held[1].add(earlier)
                    if rank < held[0]:
                        self.pending[later] = (rank, held[1])
                self.held += 1
                if self.held >= PAIRS_PER_FLUSH:
                    yield from self._flush()
        if linked:
            yield tagged_stat("near", kind, "buckets_linked", linked)
            yield tagged_stat("near", kind, "max_bucket_size", largest)
        if limited:
            yield tagged_stat("near", kind, "window_limited_buckets", limited)
            yield tagged_stat("near", kind, "pairs_not_compared", left_out)

    def finish_bundle(self) -> Iterator[Any]:
        for out in self._flush():
            yield WindowedValue(out, 0, GLOBAL_WINDOWS)

    def _flush(self) -> Iterator[tuple[int, list[Candidates]]]:
        pending, self.pending, self.held = self.pending, {}, 0
        candidates = ((later, rank, sorted(earliers)) for later, (rank, earliers) in pending.items())
        yield from by_id_group(candidates, self.groups).items()


def bucket_members(members: list[tuple]) -> list[tuple]:
    """One bucket's members' keep keys (the id last) → its distinct members' keep keys in keep
    order; an id read twice is one member, at its first place."""
    keys: dict[str, tuple] = {}
    for key in members:
        doc_id = key[-1]
        if doc_id not in keys or key < keys[doc_id]:
            keys[doc_id] = key
    return sorted(keys.values())


class PlanVerificationFn(beam.DoFn):
    """An id group's later documents, their ranks and earlier documents from every bucket group's
    bundles → each later document's task, keyed by the chunk of its least rank: (chunk, (later,
    [earlier ids])); and on `CHUNKS`, gathered per bundle into id groups, each document's chunks:
    (group, [(id, [chunks]), ...]), for `merged_requests` to join them per document and its payload
    to go to each once (sent when the bundle ends, or every `PAIRS_PER_FLUSH` requests). Holds one
    id group's later documents and their earlier ids."""

    def __init__(self, groups: int) -> None:
        self.groups = groups

    def start_bundle(self) -> None:
        self.chunks_of: dict[str, set[Chunk]] = {}
        self.held = 0

    @profiled(MINHASH)
    def process(self, element: tuple[int, Iterable[list[Candidates]]]) -> Iterator[Any]:
        _, sent = element
        found: dict[str, tuple[Rank, set[str]]] = {}
        for gathered in sent:
            for later, rank, ids in gathered:
                held = found.get(later)
                if held is None:
                    found[later] = (rank, set(ids))
                else:
                    held[1].update(ids)
                    if rank < held[0]:
                        found[later] = (rank, held[1])
        for later in sorted(found):
            rank, earliers = found[later]
            yield from self._plan(later, rank, earliers)

    def _plan(self, later: str, rank: Rank, earliers: set[str]) -> Iterator[Any]:
        chunk = (rank[-2], rank[-1])
        yield chunk, (later, sorted(earliers))
        chunks_of = self.chunks_of
        for doc_id in (later, *earliers):
            chunks = chunks_of.get(doc_id)
            if chunks is None:
                chunks = chunks_of[doc_id] = set()
            chunks.add(chunk)
        self.held += 1 + len(earliers)
        if self.held >= PAIRS_PER_FLUSH:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        for out in self._flush():
            yield beam.pvalue.TaggedOutput(out.tag, WindowedValue(out.value, 0, GLOBAL_WINDOWS))

    def _flush(self) -> Iterator[beam.pvalue.TaggedOutput]:
        chunks_of, self.chunks_of, self.held = self.chunks_of, {}, 0
        requests = by_id_group(((doc_id, sorted(chunks_of[doc_id])) for doc_id in sorted(chunks_of)), self.groups)
        for group in sorted(requests):
            yield beam.pvalue.TaggedOutput(CHUNKS, (group, requests[group]))


@profiled_fn(MINHASH, flat=True)
def merged_requests(element: tuple[int, Iterable[list[Requests]]]) -> Iterator[Requests]:
    """An id group's requests from every flush of planning → each document's distinct chunks, one
    element per document (in id order), to be joined with its payload."""
    _, sent = element
    merged: dict[str, set[Chunk]] = {}
    for gathered in sent:
        for doc_id, chunks in gathered:
            held = merged.get(doc_id)
            if held is None:
                merged[doc_id] = set(chunks)
            else:
                held.update(chunks)
    for doc_id in sorted(merged):
        yield doc_id, sorted(merged[doc_id])


class RoutePayloadFn(beam.DoFn):
    """Joined on a document's id: its payload goes to each distinct chunk that verifies one of its
    pairs (as `merged_requests` gathered them), once."""

    @profiled(MINHASH)
    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[tuple[Chunk, tuple[str, Payload]]]:
        doc_id, grouped = element
        payload = first_payload(grouped["payload"])
        if payload is None:
            return
        for chunk in sorted(set().union(*grouped["chunks"])):
            yield chunk, (doc_id, payload)


class NearOutputs(NamedTuple):
    removed: beam.PCollection
    """(id, Decision) of near-duplicate removals."""
    stats: beam.PCollection
    """((section, group, metric), value) before combining."""


class NearDuplicates(beam.PTransform):
    """Exact survivors (record, signature) and payloads (id, Payload) -> near removals and their
    statistics: LSH buckets, verified pairs, connected components, each component's walk. `planned`
    (kind → documents the driver expects, `sources.base.planned_documents`) sizes the bucket groups."""

    def __init__(self, config: DedupConfig, payloads: beam.PCollection, planned: Mapping[str, int]) -> None:
        super().__init__()
        self.config, self.payloads, self.planned = config, payloads, dict(planned)

    def expand(self, survivors: beam.PCollection) -> NearOutputs:
        config, payloads = self.config, self.payloads
        enabled = [kind for kind in KINDS if config.near(kind).enabled]
        groups = id_groups({kind: self.planned.get(kind, 0) for kind in enabled})
        signed = survivors | "Signed" >> beam.Filter(lambda node: node[1] is not None)
        signed_per_source = (
            signed
            | "SourceOfSigned" >> beam.Map(lambda node: ((node[0].kind, node[0].source), 1))
            | "CountSigned" >> beam.CombinePerKey(sum)
        )
        signed_stats = signed_per_source | "SignedStats" >> beam.FlatMap(signed_documents)
        keys = signed | "BandKeys" >> beam.ParDo(
            BandKeysFn(near_params(config), config.keep, planned_bucket_groups(config, self.planned)))
        pairs = (
            keys
            | "GroupBuckets" >> beam.CombinePerKey(BucketEntriesFn())
            | "BucketPairs" >> MultiOutputParDo(
                SummedStats(BucketPairsFn({k: config.near(k).bucket_window for k in enabled}, groups)), STATS,
                main="pairs")
        )
        tasks = (
            pairs["pairs"]
            | "GroupCandidates" >> beam.GroupByKey()
            | "PlanVerification" >> MultiOutputParDo(PlanVerificationFn(groups), CHUNKS, main="tasks")
        )
        requests = tasks[CHUNKS] | "GroupRequests" >> beam.GroupByKey() | "MergeRequests" >> beam.FlatMap(
            merged_requests)
        routed = (
            {"chunks": requests, "payload": payloads}
            | "JoinPayloads" >> beam.CoGroupByKey()
            | "RoutePayloads" >> beam.ParDo(RoutePayloadFn())
        )
        verified = (
            {"payload": routed, "task": tasks["tasks"]}
            | "GroupChunks" >> beam.CoGroupByKey()
            | "Verify" >> MultiOutputParDo(SummedStats(VerifyFn(config)), STATS, NAMES, RECORDS, main="edges")
        )
        components = verified["names"] | "BothWays" >> beam.FlatMap(both_ways) | "Components" >> ConnectedComponents(
            config.component_rounds, {k: config.near(k).max_component_size for k in enabled})
        decided = (
            {"record": verified[RECORDS], "label": components.labels, "edges": verified["edges"]}
            | "JoinComponents" >> beam.CoGroupByKey()
            | "KeyByComponent" >> beam.ParDo(GroupMemberFn())
            | "GroupComponents" >> beam.GroupByKey()
            | "Decide" >> MultiOutputParDo(SummedStats(DecideComponentFn(config.keep)), STATS, REMOVED)
        )
        stats = (signed_stats, pairs[STATS], verified[STATS], *components.stats, decided[STATS])
        return NearOutputs(decided[REMOVED], stats | "Stats" >> beam.Flatten())
