"""Dedup against earlier builds' indexes (`--dedup-against`): which new documents duplicate a
document an earlier build published.

    new nodes (record, signature) ─▶ content-hash prefixes and sketch band keys ─▶ per kind, one
      sorted array of each (a side input: the filter the index is read through)
    index files (one element each) ─▶ read, checksum, keep only rows whose hash or a band key the new
      documents have ─▶ ((kind, hash), ref), ((kind, band key), ref), (ref, sketch)
    exact: join on (kind, hash) ─▶ every new document with an earlier one of the same text
    near: join on (kind, band key) ─▶ (ref, new id) pairs, at most 2 x bucket_window earlier
      documents a bucket ─▶ join the earlier sketches ─▶ join the new sketch ─▶ verify
      ─▶ per new document: the best match (exact first, then highest similarity, then (build, id))

Earlier documents are never removed and need no survivor walk: they were all kept, and an earlier
document comes before every new one. A new document with a verified match is removed naming it
(`duplicate_of`, and the build that published it); the others go on to this run's own dedup, where a
document removed here cannot remove another (it is not kept). The index is read once, filtered on
the worker that reads each file: only rows sharing a hash or band key with a new document travel.
The filter holds the new documents' keys (8 bytes a band, per new document) on every worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np

from lemur_corpus.dedup.config import DedupConfig
from lemur_corpus.dedup.index import (
    DedupIndexError,
    IndexHandle,
    SketchVerifier,
    hash_prefixes,
    read_part,
    sketch_band_keys,
    sketch_of,
    unpack_sketches,
)
from lemur_corpus.dedup.minhash import from_bytes
from lemur_corpus.dedup.stats import stat
from lemur_corpus.io import read_bytes
from lemur_corpus.pipelines.dedup_common import STATS, Decision, Node, SummedStats, tagged_stat
from lemur_corpus.pipelines.outputs import MultiOutputParDo

AGAINST = "against"
EXACT_REASON = "published_exact_duplicate"
NEAR_REASON = "published_near_duplicate"
AGAINST_METRICS = ("index_documents", "index_files", "exact_matches", "candidate_pairs", "verified_edges",
                   "rejected_pairs", "pairs_not_compared", "removed", "removed_bytes", "exact_removed",
                   "near_removed")
"""Per kind, in the manifest's `dedup.against.<kind>`: the index read (documents, files), what matched
and what was removed for it."""

Ref = tuple[str, str, str]
"""An earlier document: (build, doc id, source)."""


class AgainstSpec(NamedTuple):
    """What one kind is deduplicated against: its checked index files and its near-dedup shape."""

    files: list[tuple[str, str]]
    """(path, sha256) of every data file of every index of the kind."""
    documents: int
    near: tuple[int, int, int, float, int] | None
    """(bands, rows, num_perm, threshold, bucket_window), or None without near-dedup."""


def against_specs(config: DedupConfig, handles: dict[str, list[IndexHandle]],
                  params: dict[str, tuple[int, int]]) -> dict[str, AgainstSpec]:
    out = {}
    for kind, indexes in handles.items():
        near = config.near(kind)
        shape = None
        if kind in params:
            bands, rows = params[kind]
            shape = (bands, rows, near.num_perm, near.threshold, near.bucket_window)
        out[kind] = AgainstSpec([f for h in indexes for f in h.files()], sum(h.header["documents"] for h in indexes),
                                shape)
    return out


def initial_against_stats(specs: dict[str, AgainstSpec]) -> list[tuple[tuple[str, str, str], float]]:
    out = []
    for kind, spec in sorted(specs.items()):
        out += [stat(AGAINST, kind, metric, 0) for metric in AGAINST_METRICS]
        out += [stat(AGAINST, kind, "index_documents", spec.documents),
                stat(AGAINST, kind, "index_files", len(spec.files))]
    return out


class NewKeysFn(beam.DoFn):
    """A new node → its hash prefix and band keys for the filter, its hash and band memberships for
    the joins, and its sketch."""

    def __init__(self, specs: dict[str, AgainstSpec]) -> None:
        self.specs = specs

    def process(self, node: Node) -> Iterator[Any]:
        record, signature = node
        spec = self.specs.get(record.kind)
        if spec is None:
            return
        content_hash = bytes.fromhex(record.content_hash)
        yield beam.pvalue.TaggedOutput("filter", (("exact", record.kind), hash_prefixes([content_hash])))
        yield beam.pvalue.TaggedOutput("hash", ((record.kind, content_hash), record.id))
        if spec.near is None or signature is None:
            return
        bands, rows, num_perm, _, _ = spec.near
        sketch = sketch_of(from_bytes(signature))
        keys = sketch_band_keys(unpack_sketches([sketch], num_perm), bands, rows)[0]
        yield beam.pvalue.TaggedOutput("filter", (("near", record.kind), keys))
        yield beam.pvalue.TaggedOutput("sketch", (record.id, (record.content_hash, record.kind, sketch)))
        yield record.kind, record.id, keys  # one element a document: its band memberships are made after


def band_members(element: tuple[str, str, np.ndarray]) -> Iterator[tuple[tuple[str, int], tuple[Any, str]]]:
    kind, doc_id, keys = element
    for key in keys.tolist():
        yield (kind, key), ("", doc_id)


class UniqueKeysFn(beam.CombineFn):
    """uint64 arrays → one sorted array of their distinct values."""

    def create_accumulator(self) -> list[np.ndarray]:
        return []

    def add_input(self, acc: list[np.ndarray], keys: np.ndarray) -> list[np.ndarray]:
        acc.append(keys)
        if len(acc) >= 4096:
            acc[:] = [np.unique(np.concatenate(acc))]
        return acc

    def merge_accumulators(self, accs: Iterable[list[np.ndarray]]) -> list[np.ndarray]:
        arrays = [a for acc in accs for a in acc]
        return [np.unique(np.concatenate(arrays))] if arrays else []

    def extract_output(self, acc: list[np.ndarray]) -> np.ndarray:
        return np.unique(np.concatenate(acc)) if acc else np.zeros(0, dtype=np.uint64)


class ReadIndexFileFn(beam.DoFn):
    """One index data file → its rows that share a content hash or a band key with a new document."""

    def __init__(self, specs: dict[str, AgainstSpec]) -> None:
        self.specs = specs

    def process(self, element: tuple[str, str, str], filters: dict[tuple[str, str], np.ndarray]) -> Iterator[Any]:
        kind, path, sha256 = element
        data = read_bytes(path)
        import hashlib

        if hashlib.sha256(data).hexdigest() != sha256:  # changed since the driver checked it
            raise DedupIndexError(f"dedup index file {path}: checksum mismatch (changed while the build ran)")
        table = read_part(data, path)
        builds = table.column("build").to_pylist()
        ids = table.column("doc_id").to_pylist()
        sources = table.column("source").to_pylist()
        hashes = table.column("content_hash").to_pylist()
        exact_filter = filters.get(("exact", kind))
        if exact_filter is not None and hashes:
            for i in np.flatnonzero(np.isin(hash_prefixes(hashes), exact_filter)).tolist():
                yield beam.pvalue.TaggedOutput("exact", ((kind, hashes[i]), (builds[i], ids[i], sources[i])))
        spec = self.specs[kind]
        near_filter = filters.get(("near", kind))
        if spec.near is None or near_filter is None or not near_filter.size:
            return
        bands, rows, num_perm, _, _ = spec.near
        sketches = table.column("sketch").to_pylist()
        present = [i for i, s in enumerate(sketches) if s is not None]
        if not present:
            return
        keys = sketch_band_keys(unpack_sketches([sketches[i] for i in present], num_perm), bands, rows)
        matched = np.isin(keys, near_filter)
        for row in np.flatnonzero(matched.any(axis=1)).tolist():
            i = present[row]
            ref = (builds[i], ids[i], sources[i])
            yield beam.pvalue.TaggedOutput("sketch", (ref, sketches[i]))
            for key in keys[row][matched[row]].tolist():
                yield (kind, key), (ref, "")


class ExactMatchFn(beam.DoFn):
    """Joined on (kind, content hash): every new document with that text duplicates the earlier one."""

    def process(self, element: tuple[tuple[str, bytes], dict[str, list[Any]]]) -> Iterator[Any]:
        (kind, _), grouped = element
        if not grouped["old"] or not grouped["new"]:
            return
        build, doc_id, _ = min(grouped["old"])
        for new_id in sorted(set(grouped["new"])):
            yield tagged_stat(AGAINST, kind, "exact_matches")
            yield new_id, Decision(EXACT_REASON, doc_id, 1.0, build)


class BucketPairsFn(beam.DoFn):
    """A band bucket → (earlier ref, new id) for every new member and the bucket's first
    2 x bucket_window earlier documents (by (build, id)); the pairs left out are counted."""

    def __init__(self, windows: dict[str, int]) -> None:
        self.windows = windows

    def process(self, element: tuple[tuple[str, int], Iterable[tuple[Any, str]]]) -> Iterator[Any]:
        (kind, _), members = element
        olds: set[Ref] = set()
        news: set[str] = set()
        for ref, new_id in members:
            if ref:
                olds.add(tuple(ref))
            else:
                news.add(new_id)
        if not olds or not news:
            return
        limit = 2 * self.windows[kind]
        earlier = sorted(olds)
        if len(earlier) > limit:
            yield tagged_stat(AGAINST, kind, "pairs_not_compared", (len(earlier) - limit) * len(news))
        for ref in earlier[:limit]:
            for new_id in sorted(news):
                yield ref, new_id


class RouteSketchFn(beam.DoFn):
    """Joined on an earlier document: its sketch to every new document it is paired with."""

    def process(self, element: tuple[Ref, dict[str, list[Any]]]) -> Iterator[Any]:
        ref, grouped = element
        if not grouped["sketch"]:
            return
        sketch = min(grouped["sketch"])
        for new_id in sorted(set(grouped["new"])):
            yield new_id, (tuple(ref), sketch)


class VerifyAgainstFn(beam.DoFn):
    """Joined on a new document: its sketch against its earlier candidates' → the best verified match."""

    def __init__(self, specs: dict[str, AgainstSpec]) -> None:
        self.specs = specs

    def setup(self) -> None:
        self.verifiers = {kind: SketchVerifier(spec.near[3], spec.near[2])
                          for kind, spec in self.specs.items() if spec.near is not None}

    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        new_id, grouped = element
        if not grouped["mine"] or not grouped["earlier"]:
            return
        _, kind, sketch = min(grouped["mine"])  # an id read twice: the smallest content hash stands
        candidates = sorted(set(grouped["earlier"]))
        results = self.verifiers[kind].similarities(sketch, [c[1] for c in candidates])
        best: tuple[float, Ref] | None = None
        yield tagged_stat(AGAINST, kind, "candidate_pairs", len(candidates))
        for (ref, _), (similarity, is_edge) in zip(candidates, results, strict=True):
            yield tagged_stat(AGAINST, kind, "verified_edges" if is_edge else "rejected_pairs")
            if is_edge and (best is None or (-similarity, ref) < (-best[0], best[1])):
                best = (similarity, ref)
        if best is not None:
            similarity, (build, doc_id, _) = best
            yield new_id, Decision(NEAR_REASON, doc_id, similarity, build)


class BestMatchFn(beam.DoFn):
    """Joined on a new document: no match → its node(s) go on to this run's own dedup; matches → its
    one removal: exact first, then the highest similarity, then the earliest (build, id)."""

    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        new_id, grouped = element
        decisions = grouped["decision"]
        nodes = grouped["node"]
        if not decisions:
            yield from nodes
            return
        if not nodes:
            return
        record = min(nodes, key=lambda n: n[0].content_hash)[0]
        decision = min(decisions, key=lambda d: (d.reason != EXACT_REASON, -d.similarity, d.build, d.survivor))
        yield tagged_stat(AGAINST, record.kind, "removed")
        yield tagged_stat(AGAINST, record.kind, "removed_bytes", record.nbytes)
        yield tagged_stat(AGAINST, record.kind, "exact_removed" if decision.reason == EXACT_REASON else "near_removed")
        yield beam.pvalue.TaggedOutput("removed", (new_id, decision))


class AgainstOutputs(NamedTuple):
    removed: beam.PCollection
    """(id, Decision) of every new document removed for an earlier one."""
    remaining: beam.PCollection
    """The new nodes that go on to this run's own dedup."""
    stats: beam.PCollection


class DedupAgainst(beam.PTransform):
    """New nodes (record, signature) → those removed for a document of an earlier build's index,
    and the rest."""

    def __init__(self, specs: dict[str, AgainstSpec]) -> None:
        super().__init__()
        self.specs = specs

    def expand(self, nodes: beam.PCollection) -> AgainstOutputs:
        p, specs = nodes.pipeline, self.specs
        new = nodes | "NewKeys" >> MultiOutputParDo(NewKeysFn(specs), "filter", "hash", "sketch", main="members")
        filters = new["filter"] | "Filters" >> beam.CombinePerKey(UniqueKeysFn())
        files = [(kind, path, sha) for kind, spec in sorted(specs.items()) for path, sha in spec.files]
        index = (
            p
            | "IndexFiles" >> beam.Create(files)
            | "Reshuffle" >> beam.Reshuffle()
            | "ReadIndex" >> MultiOutputParDo(ReadIndexFileFn(specs), "exact", "sketch", main="members",
                                              filters=beam.pvalue.AsDict(filters))
        )
        exact = (
            {"new": new["hash"], "old": index["exact"]}
            | "JoinHashes" >> beam.CoGroupByKey()
            | "ExactMatches" >> MultiOutputParDo(SummedStats(ExactMatchFn()), STATS, main="decisions")
        )
        members = new["members"] | "BandMembers" >> beam.FlatMap(band_members)
        pairs = (
            (members, index["members"])
            | "AllMembers" >> beam.Flatten()
            | "GroupByBucket" >> beam.GroupByKey()
            | "BucketPairs" >> MultiOutputParDo(
                SummedStats(BucketPairsFn({k: s.near[4] for k, s in specs.items() if s.near is not None})), STATS,
                main="pairs")
        )
        routed = (
            {"new": pairs["pairs"] | "DistinctPairs" >> beam.Distinct(), "sketch": index["sketch"]}
            | "JoinEarlierSketches" >> beam.CoGroupByKey()
            | "RouteSketches" >> beam.ParDo(RouteSketchFn())
        )
        verified = (
            {"earlier": routed, "mine": new["sketch"]}
            | "JoinNewSketches" >> beam.CoGroupByKey()
            | "Verify" >> MultiOutputParDo(SummedStats(VerifyAgainstFn(specs)), STATS, main="decisions")
        )
        decided = (
            {"decision": (exact["decisions"], verified["decisions"]) | "AllMatches" >> beam.Flatten(),
             "node": nodes | "NodesById" >> beam.Map(lambda n: (n[0].id, n))}
            | "JoinMatches" >> beam.CoGroupByKey()
            | "BestMatch" >> MultiOutputParDo(SummedStats(BestMatchFn()), STATS, "removed", main="remaining")
        )
        remaining = decided["remaining"]
        stats = ((exact[STATS], pairs[STATS], verified[STATS], decided[STATS],
                  p | "InitialStats" >> beam.Create(initial_against_stats(specs), reshuffle=False))
                 | "Stats" >> beam.Flatten())
        return AgainstOutputs(decided["removed"], remaining, stats)
