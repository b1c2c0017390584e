"""Near-duplicates within a kind: LSH buckets, verified pairs, components across workers, survivors.

    exact survivors (record, signature)            payloads (id, shingle set or signature)
      ─▶ band keys ─▶ bucket groups (combined per bundle) ─▶ each bucket of a group
      ─▶ windowed pairs in keep order (earlier, later), gathered per bundle as (earlier, [later])
      ─▶ join them and payloads on id ─▶ each payload to the distinct later documents of its pairs
      ─▶ group by later document ─▶ verify its pairs
      ─▶ verified edges ─▶ ConnectedComponents (large-star/small-star rounds) ─▶ (id, label)
      ─▶ join labels, edges and the records of their documents on id ─▶ group by label
      ─▶ walk in keep order ─▶ removals

Every payload crosses the network once, plus one copy per later document it is paired with. A
payload carries its document's record, and verification hands on the records of the documents it
found an edge for: the walk joins only those (a few per cluster), not every signed document's.
Buckets travel in groups (`BUCKET_GROUP_ENTRIES`): a document has one band key per band and almost
every bucket holds one document, so a shuffle of one element per document and band would move
~20 elements per document only to find most of them alone; a group is a list of about
`BUCKET_GROUP_ENTRIES` band keys, gathered per bundle by `BandKeysFn` itself (each bundle sends a
list per group it touched) and merged by the runner's combiner.

Memory per worker: a bucket group holds its band keys and members' ids and keep keys (at most about
`BUCKET_GROUP_ENTRIES` when the driver's planned documents are not below the real ones, plus any
bucket that is large by itself; their number is fixed before the run, so no signed document waits
for a count of the others), `BandKeysFn` at most `BAND_ENTRIES_PER_FLUSH` band keys of
its bundle, and `BucketPairsFn` at most `PAIRS_PER_FLUSH` pairs; the join holds one document's
payload and the ids of the distinct later documents paired with it (all of a bucket's members for
one of its first `bucket_window`: ids only); a verification group holds one document
and the payloads of the documents before it it is verified against (at most 2 x bucket_window per
bucket it shares, counted as `max_verify_group`), and a bundle of them one record's fields per
document with an edge (sent once when the bundle ends); the components steps hold one node's neighbours;
the walk holds one component (or one part of `max_component_size` documents) and its edges. Nothing
holds the whole edge list.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from operator import itemgetter
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from lemur_corpus.dedup.config import DedupConfig, SurvivorRule
from lemur_corpus.dedup.exact import DedupRecord, survivor_key
from lemur_corpus.dedup.lsh import band_keys, bucket_pairs, lsh_params, pairs_left_out
from lemur_corpus.dedup.minhash import from_bytes
from lemur_corpus.dedup.stats import NEAR_METRICS, Stat, stat
from lemur_corpus.dedup.survivors import walk
from lemur_corpus.dedup.verify import Verifier
from lemur_corpus.document import KINDS
from lemur_corpus.pipelines.dask_combine import GLOBAL_WINDOWS
from lemur_corpus.pipelines.dedup_common import (
    PAYLOAD_DATA,
    PAYLOAD_KEEP,
    REMOVED,
    STATS,
    Payload,
    SignedNode,
    SummedStats,
    first_payload,
    payload_hash,
    payload_record,
    removal_outputs,
    removed_outputs,
    tagged_stat,
)
from lemur_corpus.pipelines.dedup_components import ConnectedComponents, Label, Name
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.profile import COMPONENTS, MINHASH, profiled

NAMES = "names"
RECORDS = "records"
LATER = "later"


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
"""Pairs `BucketPairsFn` gathers before it sends them on, whatever a bundle's or a bucket's size (a
bound on its memory)."""


class BucketPairsFn(beam.DoFn):
    """A bucket group → for each of its buckets, the pairs its window verifies (see
    `dedup.lsh.bucket_pairs`), gathered per bundle as each earlier document's distinct later ones:
    (earlier id, [later ids]), sent when the bundle ends or every `PAIRS_PER_FLUSH` pairs, and on
    `LATER` (later id, None) once per later document of each sending; the group's statistics,
    summed over its buckets (one record each, not one per bucket: a bucket group holds thousands).

    One element per pair (a `Distinct` of them, then a mark per later document) cost the runner a
    crossing per pair, a pair being in several bands' buckets, only for the join to list each
    earlier document's later ones again."""

    def __init__(self, windows: dict[str, int]) -> None:
        self.windows = windows

    def start_bundle(self) -> None:
        self.later_of: dict[str, set[str]] = {}
        self.held = 0

    @profiled(MINHASH)
    def process(self, element: tuple[tuple[str, int], list[BandEntry]]) -> Iterator[Any]:
        (kind, _), entries = element
        window = self.windows[kind]
        sizes = Counter(entry[0] for entry in entries)
        shared = sorted((entry for entry in entries if sizes[entry[0]] > 1), key=itemgetter(0))
        linked = largest = limited = left_out = 0
        for _, bucket in itertools.groupby(shared, key=itemgetter(0)):  # almost every bucket holds one
            ordered = bucket_members([entry[1:] for entry in bucket])
            if len(ordered) < 2:
                continue
            linked, largest = linked + 1, max(largest, len(ordered))
            missing = pairs_left_out(len(ordered), window)
            limited, left_out = limited + bool(missing), left_out + missing
            later_of = self.later_of
            for earlier, later in bucket_pairs(ordered, window):
                laters = later_of.get(earlier)
                if laters is None:
                    laters = later_of[earlier] = set()
                laters.add(later)
                self.held += 1
                if self.held >= PAIRS_PER_FLUSH:
                    yield from self._flush()
                    later_of = self.later_of
        if linked:
            yield tagged_stat("near", kind, "buckets_linked", linked)
            yield tagged_stat("near", kind, "max_bucket_size", largest)
        if limited:
            yield tagged_stat("near", kind, "window_limited_buckets", limited)
            yield tagged_stat("near", kind, "pairs_not_compared", left_out)

    def finish_bundle(self) -> Iterator[Any]:
        for out in self._flush():
            if out.__class__ is beam.pvalue.TaggedOutput:
                yield beam.pvalue.TaggedOutput(out.tag, WindowedValue(out.value, 0, GLOBAL_WINDOWS))
            else:
                yield WindowedValue(out, 0, GLOBAL_WINDOWS)

    def _flush(self) -> Iterator[Any]:
        later_of, self.later_of, self.held = self.later_of, {}, 0
        marked: set[str] = set()
        for earlier, laters in later_of.items():
            marked |= laters
            yield earlier, sorted(laters)
        for later in sorted(marked):
            yield beam.pvalue.TaggedOutput(LATER, (later, None))


def bucket_members(members: list[tuple]) -> list[str]:
    """One bucket's members' keep keys (the id last) → its ids in keep order; an id read twice is
    one member, at its first place."""
    keys: dict[str, tuple] = {}
    for key in members:
        doc_id = key[-1]
        if doc_id not in keys or key < keys[doc_id]:
            keys[doc_id] = key
    return sorted(keys, key=keys.__getitem__)


class RoutePayloadFn(beam.DoFn):
    """Joined on a document's id: its payload goes to each distinct later document it is paired
    with (the union of the lists `BucketPairsFn` sent), and to itself when it is the later document
    of a pair; all its pairs meet there, once each."""

    @profiled(MINHASH)
    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[tuple[str, tuple[str, Payload]]]:
        doc_id, grouped = element
        payload = first_payload(grouped["payload"])
        if payload is None:
            return
        for later in sorted(set().union(*grouped["later"])):
            yield later, (doc_id, payload)
        if grouped["is_later"]:
            yield doc_id, (doc_id, payload)


class VerifyFn(beam.DoFn):
    """A later document's payload and those of the earlier documents paired with it: each pair's
    similarity; the edges that reach the threshold go to the components (as names (earlier, later),
    once: `both_ways` keys them both ways as they leave) and to the walk (as the later document's
    edges, and on `RECORDS` the record of every document with an edge once per bundle, when it ends).

    An earlier document is paired with many later ones in a large cluster (up to `bucket_window` per
    bucket): its record went out once per edge and its name twice, each through a shuffle
    (`benchmarks/scale.py --runner dask-cluster`: the MinHash stage's CPU per input MB x1.91 from
    250,000 to a million documents before, x1.31-1.36 after). Per bundle it holds one record's
    fields per document with an edge."""

    def __init__(self, config: DedupConfig) -> None:
        self.config = config

    def setup(self) -> None:
        self.verifiers = {kind: Verifier(near.verify, near.threshold)
                          for kind in KINDS if (near := self.config.near(kind)).enabled}

    def start_bundle(self) -> None:
        self.records: dict[str, Payload] = {}
        """id → the payload whose record goes out for it (an id read twice: the smallest hash's, as
        `first_payload` picks and `GroupMemberFn` across bundles), its fields only (no shingles)."""

    def _note(self, doc_id: str, payload: Payload) -> None:
        held = self.records.get(doc_id)
        if held is None or payload_hash(payload) < payload_hash(held):
            self.records[doc_id] = (payload[0],)

    def finish_bundle(self) -> Iterator[Any]:
        records, self.records = self.records, {}
        for doc_id in sorted(records):
            yield beam.pvalue.TaggedOutput(
                RECORDS, WindowedValue((doc_id, payload_record(records[doc_id])), 0, GLOBAL_WINDOWS))

    @profiled(MINHASH)
    def process(self, element: tuple[str, Iterable[tuple[str, Payload]]]) -> Iterator[Any]:
        later, values = element
        earlier: dict[str, Payload] = {}
        mine: Payload | None = None
        for doc_id, payload in values:
            if doc_id == later:
                mine = payload
            elif doc_id not in earlier or payload_hash(payload) < payload_hash(earlier[doc_id]):
                earlier[doc_id] = payload
        if mine is None or not earlier:
            return
        ids = sorted(earlier)
        record = payload_record(mine)
        kind, source = record.kind, record.source
        name = (kind, *mine[PAYLOAD_KEEP])
        yield tagged_stat("near", kind, "max_verify_group", len(ids))
        yield tagged_stat("near", kind, "candidate_pairs", len(ids))
        yield tagged_stat("near_by_source", source, "candidate_pairs", len(ids))
        results = self.verifiers[kind].similarities(mine[PAYLOAD_DATA], [earlier[i][PAYLOAD_DATA] for i in ids])
        edges = []
        for doc_id, (similarity, is_edge) in zip(ids, results, strict=True):
            metric = "verified_edges" if is_edge else "rejected_pairs"
            yield tagged_stat("near", kind, metric)
            yield tagged_stat("near_by_source", source, metric)
            if is_edge:
                edges.append((doc_id, similarity))
                self._note(doc_id, earlier[doc_id])
                yield beam.pvalue.TaggedOutput(NAMES, ((kind, *earlier[doc_id][PAYLOAD_KEEP]), name))
        if edges:
            yield later, edges
            self._note(later, mine)


def both_ways(edge: tuple[Name, Name]) -> tuple[tuple[Name, Name], tuple[Name, Name]]:
    """A verified edge (a, b) as `ConnectedComponents` reads it: keyed by either end."""
    a, b = edge
    return (a, b), (b, a)


class GroupMemberFn(beam.DoFn):
    """Joined on id: a document with an edge → (its label, (record, its edges)). Its record came
    from every verification that found one of its edges (an id read twice: the smallest hash's, as
    `first_payload` picked)."""

    @profiled(COMPONENTS)
    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        doc_id, grouped = element
        records: list[DedupRecord] = grouped["record"]
        if not records:
            return
        record = min(records, key=lambda r: r.content_hash)
        labels: list[Label] = sorted(grouped["label"])
        label = labels[0] if labels else (record.kind, doc_id, 0)  # unsettled, unreached: decided alone
        edges = [edge for edges in grouped["edges"] for edge in edges]
        yield label, (record, edges)


class DecideComponentFn(beam.DoFn):
    """One component (or one part of a split one) → kept and removed documents, walked in keep
    order. A part after the first also uses its edges to the component's first document in keep
    order (the label's centre), which the first part keeps for certain."""

    def __init__(self, rule: SurvivorRule) -> None:
        self.rule = rule

    @profiled(COMPONENTS)
    def process(self, element: tuple[Label, Iterable[tuple[DedupRecord, list]]]) -> Iterator[Any]:
        (kind, centre, part), members = element
        result = walk(members, self.rule, kept_elsewhere=(centre,) if part else ())
        if result.outside_edges:
            yield tagged_stat("near", kind, "edges_outside_parts", result.outside_edges)
        for kept, removals in result.clusters():
            yield from removal_outputs("near", kept, [(r.record, r.similarity) for r in removals])
        # a split component's later parts: removals for the centre (its cluster is counted in part 0)
        yield from removed_outputs("near", centre, [(r.record, r.similarity) for r in result.absorbed_elsewhere()])


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
                SummedStats(BucketPairsFn({k: config.near(k).bucket_window for k in enabled})), STATS, LATER,
                main="pairs")
        )
        routed = (
            {"later": pairs["pairs"], "is_later": pairs[LATER], "payload": payloads}
            | "JoinPayloads" >> beam.CoGroupByKey()
            | "RoutePayloads" >> beam.ParDo(RoutePayloadFn())
        )
        verified = (
            routed
            | "GroupPairs" >> beam.GroupByKey()
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
