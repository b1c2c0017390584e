"""Near-dedup as Beam runs it: pairs a star would never compare, chains of edits, components that
do not settle within the round bound, and a giant component split into parts."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam import coders, typehints
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.windowed_value import WindowedValue

from lemur_corpus.dedup.clusters import connected_components
from lemur_corpus.dedup.config import DedupConfig
from lemur_corpus.dedup.exact import DedupRecord, survivor_key
from lemur_corpus.dedup.lsh import band_keys, bucket_pairs, pairs_left_out
from lemur_corpus.dedup.minhash import MinHasher, from_bytes, to_bytes
from lemur_corpus.dedup.survivors import walk
from lemur_corpus.pipelines import dedup_near
from lemur_corpus.pipelines.dedup_common import (
    PAYLOAD_DATA,
    PAYLOAD_KEEP,
    STATS,
    Decision,
    SummedStats,
    payload,
    payload_hash,
    payload_record,
    tagged_stat,
)
from lemur_corpus.pipelines.dedup_files import run_dedup_files
from lemur_corpus.pipelines.dedup_near import (
    BandKeysFn,
    BucketPairsFn,
    NearDuplicates,
    PlanVerificationFn,
    bucket_group,
    bucket_groups,
    id_group,
    merged_requests,
)
from lemur_corpus.pipelines.direct_runner import beam_pipeline
from lemur_corpus.sources import base as sources_base
from tests.conftest import read_jsonl, shared_path


def _w5(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + 5]) for i in range(max(1, len(words) - 4))}


def _jaccard(a: str, b: str) -> float:
    x, y = _w5(a), _w5(b)
    return len(x & y) / len(x | y)


def _words(count: int) -> list[str]:
    pages = read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))
    words = [w for page in pages for w in page["text"].split()]
    return words[:count]


def test_a_pair_the_star_never_compared_is_verified() -> None:
    """The issue's reproduction: B and C agree on 216 of 256 permutations (J 0.84) and share two
    bands with a smaller id A that agrees with B on 34 only. Linked as a star to A, both candidate
    pairs were rejected and nothing was found; verified pairwise, C is removed for B."""
    rng = np.random.default_rng(13)
    bands, rows = 23, 11
    b = rng.integers(0, 2**32, 256, dtype=np.uint64).astype(np.uint32)
    c = b.copy()
    differ = [band * rows for band in range(2, bands)]  # one position in every band but 0 and 1
    differ += [int(p) for p in rng.choice(np.arange(22 + rows, 256), 60, replace=False) if p not in differ][:19]
    c[differ] += np.uint32(1)
    a = rng.integers(0, 2**32, 256, dtype=np.uint64).astype(np.uint32)
    a[:22] = b[:22]  # bands 0 and 1: one bucket of A, B and C
    a[100:112] = b[100:112]
    assert np.count_nonzero(b == c) == 216 and np.count_nonzero(a == b) == 34
    config = DedupConfig.model_validate({"text": {"verify": "signature", "bands": bands, "rows": rows}})
    records = {i: DedupRecord(i, "text", "web", f"h{i}", 100, 0) for i in "ABC"}
    signatures = {"A": a, "B": b, "C": c}
    with beam_pipeline(PipelineOptions()) as p:
        nodes = p | "Nodes" >> beam.Create([(records[i], to_bytes(signatures[i])) for i in "ABC"])
        payloads = p | "Payloads" >> beam.Create(
            [(i, payload(records[i], (i,), to_bytes(signatures[i]))) for i in "ABC"])
        near = nodes | NearDuplicates(config, payloads, {"text": 3})
        assert_that(near.removed, equal_to([("C", Decision("near_duplicate", "B", round(216 / 256, 6)))]))


def test_a_payload_travels_as_a_plain_tuple_beam_encodes_without_pickle() -> None:
    """A payload is str, int and bytes in tuples: Beam's FastPrimitivesCoder encodes it itself (no
    class is named in its bytes, as pickle would), and it comes back with its record, keep and data."""
    record = DedupRecord("stack/a.py", "code", "python", "0f" * 16, 1_700, 12)
    data = np.arange(300, dtype="<u4").tobytes()
    item = payload(record, (-12, record.id), data)
    impl = coders.registry.get_coder(typehints.Any).get_impl()
    encoded = impl.encode(("later", (record.id, item)))
    assert b"lemur_corpus" not in encoded and b"DedupRecord" not in encoded
    back = impl.decode(encoded)[1][1]
    assert back == item and payload_record(back) == record and payload_hash(back) == record.content_hash
    assert back[PAYLOAD_KEEP] == (-12, record.id) and back[PAYLOAD_DATA] == data


def test_verification_hands_on_the_records_of_both_ends_of_each_edge() -> None:
    """The walk joins records only of documents with an edge: verification emits them when the
    bundle ends, once per document with an edge in it however many edges it has (none for a
    rejected pair; an id read twice: the smallest hash's, as a member's record across bundles), and
    each edge's names once, (earlier, later), which `both_ways` keys by either end."""
    rng = np.random.default_rng(5)
    base = rng.integers(0, 2**32, 256, dtype=np.uint64).astype(np.uint32)
    near, far = base.copy(), rng.integers(0, 2**32, 256, dtype=np.uint64).astype(np.uint32)
    near[:10] += np.uint32(1)  # agrees on 246 of 256 with base: an edge; far agrees on none
    records = {i: DedupRecord(i, "text", "web", f"h{i}", 100, 0) for i in "ABCD"}
    fn = dedup_near.SummedStats(dedup_near.VerifyFn(DedupConfig.model_validate({"text": {"verify": "signature"}})))
    fn.setup()
    payloads = {"A": near, "B": far, "C": base, "D": base}
    twice = DedupRecord("A", "text", "web", "h0", 100, 0)  # A read twice: the smaller hash's record goes on

    def group(later: str, earlier: str, a: DedupRecord = records["A"]) -> tuple[tuple[str, int], dict]:
        docs = {**{i: records[i] for i in earlier}, "A": a, later: records[later]}
        return ("A", 0), {"payload": [(i, payload(docs[i], (i,), to_bytes(payloads[i]))) for i in (*earlier, later)],
                          "task": [(later, list(earlier))]}

    fn.start_bundle()
    out = [*fn.process(group("C", "AB")), *fn.process(group("D", "A", twice))]
    ended = list(fn.finish_bundle())
    assert not any(isinstance(o, beam.pvalue.TaggedOutput) and o.tag == dedup_near.RECORDS for o in out)
    handed = [o.value.value for o in ended if o.tag == dedup_near.RECORDS]
    assert handed == [("A", twice), ("C", records["C"]), ("D", records["D"])]
    similarity = round(246 / 256, 6)
    assert [o for o in out if not isinstance(o, beam.pvalue.TaggedOutput)] == [
        ("C", [("A", similarity)]), ("D", [("A", similarity)])]
    names = [o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == dedup_near.NAMES]
    assert names == [(("text", "A"), ("text", "C")), (("text", "A"), ("text", "D"))]
    assert dedup_near.both_ways(names[0]) == (names[0], (("text", "C"), ("text", "A")))
    member = list(dedup_near.GroupMemberFn().process(
        ("A", {"record": [records["A"], twice], "label": [("text", "A", 0)], "edges": []})))
    assert member == [(("text", "A", 0), (twice, []))]
    assert list(dedup_near.GroupMemberFn().process(("B", {"record": [], "label": [], "edges": []}))) == []


def test_bucket_groups_stay_one_size_as_the_corpus_grows() -> None:
    entries = dedup_near.BUCKET_GROUP_ENTRIES
    assert bucket_groups(0, 22) == bucket_groups(10, 22) == 1
    for documents in (5_000, 50_000, 1_000_000, 300_000_000):
        groups = bucket_groups(documents, 22)
        assert documents * 22 / groups <= entries < documents * 22 / (groups - 1)  # the fewest that fit
    rng = np.random.default_rng(3)  # band keys: a band index, then a 128-bit hash
    keys = [int(i % 22).to_bytes(2, "big") + rng.bytes(16) for i in range(220_000)]
    sizes = np.bincount([bucket_group(key, bucket_groups(10_000, 22)) for key in keys])
    assert len(sizes) == bucket_groups(10_000, 22) and sizes.max() < 1.1 * entries  # dealt evenly


def _pairs_and_stats(fn: BucketPairsFn, element: tuple) -> tuple[list, list]:
    """One bundle of one bucket group: its pairs (from the lists sent at the bundle's end) and its
    statistics."""
    fn.start_bundle()
    out = [*fn.process(element), *(o if isinstance(o, beam.pvalue.TaggedOutput) else o.value
                                   for o in fn.finish_bundle())]
    stats = sorted(o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == STATS)
    sent = [o for o in out if not isinstance(o, beam.pvalue.TaggedOutput)]
    pairs = [(earlier, later) for later, _, earliers in _candidates(sent, fn.groups) for earlier in earliers]
    return pairs, stats


def _candidates(sent: list, groups: int) -> list[tuple]:
    """The (later, rank, [earlier ids]) that `BucketPairsFn` sent, from its id groups' lists; each
    in its later document's id group, one list per group and sending."""
    out = []
    for group, gathered in sent:
        assert all(id_group(later, groups) == group for later, _, _ in gathered)
        out += gathered
    return out


def test_a_bucket_group_gives_each_of_its_buckets_pairs_whatever_the_order() -> None:
    """Singletons give nothing; a bucket of several gives its window's pairs in keep order; an id
    seen twice in a bucket is one member at its best place; other buckets of the group stay apart."""
    rng = random.Random(7)
    big = [(-stars, f"d{n:03d}") for n, stars in enumerate(rng.sample(range(1000), 9))]
    entries = [(b"\x00\x01big", *key) for key in big]
    entries += [(b"\x00\x02two", -5, "x1"), (b"\x00\x02two", -9, "x2"), (b"\x00\x02two", -7, "x1")]
    entries += [(f"\x00\x03{n}".encode(), -1, f"s{n}") for n in range(50)]  # singletons
    fn = BucketPairsFn({"code": 2}, 3)
    expected = sorted([*bucket_pairs([doc_id for _, doc_id in sorted(big)], 2), ("x2", "x1")])
    first = None
    for _ in range(5):
        rng.shuffle(entries)
        pairs, stats = _pairs_and_stats(fn, (("code", 0), list(entries)))
        assert sorted(pairs) == expected
        first = first or stats
        assert stats == first
    # one record per statistic for the group: two buckets linked (big, two), the largest of 9 members,
    # one bucket (big) whose window of 2 left out pairs
    assert first == [(("near", "code", "buckets_linked"), 2), (("near", "code", "max_bucket_size"), 9),
                     (("near", "code", "pairs_not_compared"), pairs_left_out(9, 2)),
                     (("near", "code", "window_limited_buckets"), 1)]


@pytest.mark.slow
def test_decisions_do_not_depend_on_how_buckets_are_grouped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The number of bucket groups is planned on the driver from the input's size, an estimate:
    whatever it is, the decisions and every statistic but `bucket_groups` are the same; and so
    whatever the size of verification's chunks and how often pairs are sent on."""
    docs = _chain(40, 4, seed=11)
    path = _write(tmp_path / "chain.jsonl", docs)
    one = run_dedup_files([str(path)], "text", str(tmp_path / "one"), DedupConfig(), shards=1)
    monkeypatch.setattr(dedup_near, "BUCKET_GROUP_ENTRIES", 7)  # ~50 planned documents x 23 band keys: ~160 groups
    monkeypatch.setattr(dedup_near, "ID_GROUP_DOCUMENTS", 2)  # candidates and requests in ~25 id groups
    many = run_dedup_files([str(path)], "text", str(tmp_path / "many"), DedupConfig(), shards=1)
    monkeypatch.setattr(sources_base, "BYTES_PER_PLANNED_DOCUMENT", 10**9)  # planned: 1 document, 4 groups
    few = run_dedup_files([str(path)], "text", str(tmp_path / "few"), DedupConfig(), shards=1)
    monkeypatch.setattr(dedup_near, "BAND_ENTRIES_PER_FLUSH", 1)  # band keys sent after every document
    flushed = run_dedup_files([str(path)], "text", str(tmp_path / "flushed"), DedupConfig(), shards=1)
    monkeypatch.setattr(dedup_near, "VERIFY_BLOCK_PLACES", 1)  # a chunk per place in a bucket: many chunks
    monkeypatch.setattr(dedup_near, "PAIRS_PER_FLUSH", 3)  # pairs and requests sent every few
    chunked = run_dedup_files([str(path)], "text", str(tmp_path / "chunked"), DedupConfig(), shards=1)
    runs = {"one": one, "many": many, "few": few, "flushed": flushed, "chunked": chunked}
    groups = [summary["dedup"]["near"]["text"].pop("bucket_groups") for summary in runs.values()]
    assert groups[0] == 1 and groups[1] > 100 and groups[2] == groups[3] == groups[4] == 4
    assert many["dedup"]["near"]["text"]["buckets_linked"] > 0
    assert all(summary["dedup"] == one["dedup"] for summary in runs.values())
    assert all(_rows(tmp_path / name) == _rows(tmp_path / "one") for name in runs)


def test_band_keys_leave_a_bundle_as_one_list_per_group_it_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every document's band keys reach their group's list once, whether sent when the bundle ends
    or every `BAND_ENTRIES_PER_FLUSH` entries; a flush never holds more than that plus one document's."""
    hasher = MinHasher(128, 1, "xxh32")
    nodes = []
    for n, text in enumerate(_words(400)[i:i + 60] for i in range(0, 300, 10)):
        signature, _, _ = hasher.sign(" ".join(text), "words", 5, 100_000, False)
        record = DedupRecord(f"d{n}", "text", "web", "h", 100 + n, n % 7)
        nodes.append((record, to_bytes(signature)))
    params, groups = {"text": (16, 8)}, {"text": 5}
    expected = sorted((((r.kind, bucket_group(k, 5)), (k, *survivor_key(r, "most_stars"))))
                      for r, sig in nodes for k in band_keys(from_bytes(sig), 16, 8))
    for every in (10**6, 40, 1):
        monkeypatch.setattr(dedup_near, "BAND_ENTRIES_PER_FLUSH", every)
        fn = BandKeysFn(params, "most_stars", groups)
        fn.start_bundle()
        sent = [out for node in nodes for out in fn.process(node)]
        sent += [w.value for w in fn.finish_bundle()]
        assert sorted((group, entry) for group, entries in sent for entry in entries) == expected
        assert all(len(entries) <= every + 16 for _, entries in sent)
        if every > len(expected):  # sent when the bundle ends: one list per group
            assert len(sent) == len({group for group, _ in expected}) == 5



class _EmitsStats(beam.DoFn):
    """Per element: the element itself, a count, its size and its size as a maximum (stats as dedup emits them)."""

    def process(self, n: int):  # type: ignore[no-untyped-def]
        yield n
        yield tagged_stat("near", "text", "candidate_pairs")
        yield tagged_stat("near", "text", "removed_bytes", n)
        yield tagged_stat("near", "text", "max_verify_group", n)
        yield tagged_stat("near_by_source", f"s{n % 3}", "removed")


def test_summed_stats_sum_per_bundle_what_the_combine_would_sum() -> None:
    """Bundle by bundle: the other outputs as they come, one statistic per key when the bundle ends,
    added (or maxed, `max_*`) as `CombineDedupStats` adds them; the combine of both gives the same."""
    from lemur_corpus.dedup.stats import combine, pick

    fn = SummedStats(_EmitsStats())
    fn.setup()
    sent: list = []
    for bundle in ([1, 2, 3, 4], [5], [6, 7]):
        fn.start_bundle()
        sent += [out for n in bundle for out in fn.process(n)]
        sent += list(fn.finish_bundle())
    fn.teardown()
    assert [out for out in sent if not isinstance(out, beam.pvalue.TaggedOutput)] == [1, 2, 3, 4, 5, 6, 7]
    summed = [out.value.value for out in sent if isinstance(out, beam.pvalue.TaggedOutput)]
    assert len(summed) == (3 + 3) + (3 + 1) + (3 + 2)  # each bundle's keys once: 3 of the kind, 1 per source seen
    raw = [s.value for n in range(1, 8) for s in _EmitsStats().process(n) if isinstance(s, beam.pvalue.TaggedOutput)]

    def combined(stats: list) -> dict:
        keys = sorted({k for k, _ in stats})
        return dict(pick(k, combine((v, v) for key, v in stats if key == k)) for k in keys)

    assert combined(summed) == combined(raw) == {
        ("near", "text", "candidate_pairs"): 7, ("near", "text", "removed_bytes"): 28,
        ("near", "text", "max_verify_group"): 7, ("near_by_source", "s0", "removed"): 2,
        ("near_by_source", "s1", "removed"): 3, ("near_by_source", "s2", "removed"): 2}


def _sent(fn: beam.DoFn, elements: list) -> list:
    """What a DoFn sends for one bundle of `elements`, its end's outputs unwrapped."""
    fn.start_bundle()
    out = [o for element in elements for o in fn.process(element)]
    for o in fn.finish_bundle():
        if isinstance(o, beam.pvalue.TaggedOutput):
            o = beam.pvalue.TaggedOutput(o.tag, o.value.value if isinstance(o.value, WindowedValue) else o.value)
        out.append(o.value if isinstance(o, WindowedValue) else o)
    return out


def _held_at_each_flush(fn: beam.DoFn) -> list[int]:
    held: list[int] = []
    flush = fn._flush

    def recorded() -> Iterator:
        held.append(fn.held)
        return flush()

    fn._flush = recorded
    return held


def test_pairs_go_as_each_later_documents_earlier_ones_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle's pairs are sent as (later, (rank, [earlier ids])) every `PAIRS_PER_FLUSH` pairs and
    when the bundle ends: whatever the bound, the pairs sent are the distinct pairs of the group's
    buckets (a pair in two bands' buckets once per sending), and the bundle never holds more than
    the bound."""
    members = [(-n, f"d{n:02d}") for n in range(12)]
    entries = [(band, *key) for band in (b"\x00\x01a", b"\x00\x02b") for key in members]  # two bands, one cluster
    entries += [(b"\x00\x03c", -1, "x1"), (b"\x00\x03c", -2, "x2")]
    expected = {*bucket_pairs([doc_id for _, doc_id in sorted(members)], 3), ("x2", "x1")}
    for bound in (10**6, 7, 1):
        monkeypatch.setattr(dedup_near, "PAIRS_PER_FLUSH", bound)
        fn = BucketPairsFn({"code": 3}, 4)
        held = _held_at_each_flush(fn)
        out = _candidates([o for o in _sent(fn, [(("code", 0), list(entries))])
                           if not isinstance(o, beam.pvalue.TaggedOutput)], 4)
        sent = [(e, later) for later, _, earliers in out for e in earliers]
        assert set(sent) == expected
        assert max(held) <= bound and (bound > 100 or len(held) > 2)
        if bound == 10**6:  # one sending: each pair once, though both bands' buckets hold it
            assert sorted(sent) == sorted(expected)
        # a later document's rank: its bucket's first member's keep key, and its block of places
        assert {later: rank for later, rank, _ in out} == {
            **{doc_id: (-11, "d11", 0) for _, doc_id in members[:11]}, "x1": (-2, "x2", 0)}


def test_a_clusters_pairs_meet_in_few_chunks_each_with_the_payloads_it_compares(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pairs → a task per later document in the chunk of its least rank, and each document's
    payload requested once per chunk that compares it: every candidate pair is verified where both
    its payloads are, and a large cluster costs about a copy per member, not one per pair."""
    monkeypatch.setattr(dedup_near, "VERIFY_BLOCK_PLACES", 50)
    rng = random.Random(4)
    cluster = [(-rng.randrange(10**6), f"c{n:03d}") for n in range(200)]
    entries = []
    for band in range(4):  # every band's bucket holds most of the cluster, a few members fall out
        members = [key for key in cluster if rng.random() < 0.9]
        entries += [(bytes([0, band]) + b"big", *key) for key in members]
    loose = [(-n, f"l{n}") for n in range(6)]
    entries += [(bytes([0, 9, n]), *loose[n]) for n in range(6)]
    entries += [(bytes([0, 9, n]), *loose[n + 1]) for n in range(5)]  # a chain of pairs l0-l1, l1-l2, ...
    windows = {"code": 4}
    groups = 3
    sent = [o for o in _sent(BucketPairsFn(windows, groups), [(("code", 0), entries)])
            if not isinstance(o, beam.pvalue.TaggedOutput)]
    candidates = _candidates(sent, groups)
    expected = {(e, later) for later, _, earliers in candidates for e in earliers}
    by_group: dict[int, list] = {}
    for group, gathered in sent:  # what GroupCandidates gives planning: an id group's lists
        by_group.setdefault(group, []).append(gathered)
    plans = []
    for bound in (dedup_near.PAIRS_PER_FLUSH, 7):  # requests sent once, or every few pairs
        monkeypatch.setattr(dedup_near, "PAIRS_PER_FLUSH", bound)
        planned = _sent(PlanVerificationFn(groups), sorted(by_group.items()))
        asked: dict[int, list] = {}
        for out in planned:
            if isinstance(out, beam.pvalue.TaggedOutput):
                group, gathered = out.value
                assert all(id_group(doc_id, groups) == group for doc_id, _ in gathered)
                asked.setdefault(group, []).append(gathered)
        assert bound > 100 or max(len(lists) for lists in asked.values()) > 1
        requests = [r for element in sorted(asked.items()) for r in merged_requests(element)]
        assert len({doc_id for doc_id, _ in requests}) == len(requests)  # one element per document
        plans.append(([o for o in planned if not isinstance(o, beam.pvalue.TaggedOutput)], dict(requests)))
    assert plans[0] == plans[1]
    tasks, requested = plans[0]
    assert sorted(later for _, (later, _) in tasks) == sorted({later for later, _, _ in candidates})  # one task each
    assert {(e, later) for _, (later, earliers) in tasks for e in earliers} == expected
    for chunk, (later, earliers) in tasks:
        assert all(chunk in requested[doc_id] for doc_id in (later, *earliers))
    copies = sum(len(chunks) for doc_id, chunks in requested.items() if doc_id.startswith("c"))
    pairs = sum(1 for _, later in expected if later.startswith("c"))
    assert pairs > 1_500 and copies < 1.5 * len(cluster)  # a chunk per 50 places of the bucket, few more


def test_verification_chunks_verify_each_task_with_the_payloads_they_hold() -> None:
    """A chunk of several tasks: each later document against its own earlier ones only (not every
    payload in the chunk); a task whose document has no payload, or none of whose earlier
    documents has, gives nothing."""
    rng = np.random.default_rng(8)
    base = rng.integers(0, 2**32, 256, dtype=np.uint64).astype(np.uint32)
    near = base.copy()
    near[:5] += np.uint32(1)
    fn = dedup_near.SummedStats(dedup_near.VerifyFn(DedupConfig.model_validate({"text": {"verify": "signature"}})))
    fn.setup()

    def item(doc_id: str, data: np.ndarray) -> tuple[str, tuple]:
        return doc_id, payload(DedupRecord(doc_id, "text", "web", f"h{doc_id}", 100, 0), (doc_id,), to_bytes(data))

    chunk = {"payload": [item("A", base), item("B", near), item("C", near), item("E", base)],
             "task": [("C", ["A"]), ("B", ["A", "C"]), ("D", ["A"]), ("E", ["Z"])]}
    out = _sent(fn, [(("A", 0), chunk)])
    similarity = round(251 / 256, 6)
    assert [o for o in out if not isinstance(o, beam.pvalue.TaggedOutput)] == [
        ("B", [("A", similarity), ("C", 1.0)]), ("C", [("A", similarity)])]
    stats = dict(o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == STATS)
    assert stats[("near", "text", "candidate_pairs")] == 3 and stats[("near", "text", "max_verify_group")] == 2
    assert stats[("near", "text", "verify_groups")] == 2  # B and C; D has no payload, E no earlier one
    # the components get the chunk's three edges (B-A, B-C, C-A) as a star around its first document
    names = [o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == dedup_near.NAMES]
    assert names == [(("text", "A"), ("text", "B")), (("text", "A"), ("text", "C"))]


def _chain(count: int, step: int, seed: int) -> list[dict[str, str]]:
    """Documents sliding along real text `step` words at a time: neighbours are near-duplicates,
    documents far apart are not. Ids are random, so id order says nothing about the chain."""
    words = _words(count * step + 200)
    rng = random.Random(seed)
    ids = [f"{rng.getrandbits(40):010x}" for _ in range(count)]
    return [{"id": ids[i], "text": " ".join(words[i * step:i * step + 200])} for i in range(count)]


def _write(path: Path, docs: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _rows(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_jsonl(out / "clusters.jsonl")}


@pytest.mark.slow
def test_chains_of_edits_match_the_one_process_reference_and_survive_unsettled_components(tmp_path: Path) -> None:
    docs = _chain(60, 4, seed=5)
    texts = {d["id"]: d["text"] for d in docs}
    path = _write(tmp_path / "chain.jsonl", docs)
    settled, unsettled = tmp_path / "settled", tmp_path / "unsettled"
    summary = run_dedup_files([str(path)], "text", str(settled), DedupConfig(), shards=1)
    near = summary["dedup"]["near"]["text"]
    assert near["unconverged_nodes"] == 0 and 1 <= near["component_rounds"] <= DedupConfig().component_rounds
    assert near["components"] == 1 and near["max_component_size"] == len(docs)
    rows = _rows(settled)
    # the reference, in one process: every pair at exact J >= 0.8, union-find, the same walk
    ids = sorted(texts)
    edges = [(a, b, _jaccard(texts[a], texts[b])) for i, a in enumerate(ids) for b in ids[i + 1:]]
    edges = [e for e in edges if e[2] >= 0.8]
    [component] = connected_components([(a, b) for a, b, _ in edges])
    assert len(component) == len(docs)
    reference = walk([(DedupRecord(i, "text", "input", "", 1, 0), [(a, s) for a, b, s in edges if b == i])
                      for i in component], "smallest_id")
    assert {r.id for r in reference.kept} == {i for i, row in rows.items() if row["kept"]}
    assert {r.record.id: r.duplicate_of for r in reference.removed} == {
        i: row["duplicate_of"] for i, row in rows.items() if not row["kept"]}
    assert len(reference.kept) > 1  # a chain is not one cluster: its far ends are not near-duplicates

    summary = run_dedup_files([str(path)], "text", str(unsettled), DedupConfig(component_rounds=1), shards=1)
    assert summary["dedup"]["near"]["text"]["unconverged_nodes"] > 0
    rows = _rows(unsettled)
    assert len(rows) == len(docs)  # every document still has a verdict
    for row in rows.values():  # and every removal still has a kept near-duplicate, named
        if not row["kept"]:
            twin = rows[row["duplicate_of"]]
            assert twin["kept"] and _jaccard(texts[row["id"]], texts[twin["id"]]) >= 0.8
            assert row["similarity"] == pytest.approx(_jaccard(texts[row["id"]], texts[twin["id"]]), abs=1e-3)


@pytest.mark.slow
def test_a_giant_component_is_split_deterministically_and_every_member_gets_a_verdict(tmp_path: Path) -> None:
    """A boilerplate page copied 150 times, each copy with its own small edit: one component, above a
    bound of 40 documents, decided in parts of 40, counted; nothing lost."""
    page = " ".join(_words(400))
    rng = random.Random(3)
    docs = [{"id": f"{rng.getrandbits(40):010x}", "text": f"{page} edition {i} of {rng.getrandbits(30)}"}
            for i in range(150)]
    path = _write(tmp_path / "copies.jsonl", docs)
    config = DedupConfig.model_validate({"text": {"max_component_size": 40}})
    first, second = tmp_path / "a", tmp_path / "b"
    summary = run_dedup_files([str(path)], "text", str(first), config, shards=1)
    run_dedup_files([str(path)], "text", str(second), config, shards=1,
                    beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_threading"])
    assert (first / "clusters.jsonl").read_bytes() == (second / "clusters.jsonl").read_bytes()
    near = summary["dedup"]["near"]["text"]
    assert near["components"] == 1 and near["max_component_size"] == 150
    assert near["split_components"] == 1 and near["component_parts"] == 4  # 40 + 40 + 40 + 30
    assert near["window_limited_buckets"] > 0 and near["pairs_not_compared"] > 0
    rows = _rows(first)
    kept = [r for r in rows.values() if r["kept"]]
    assert len(rows) == 150 and summary["kept"] == len(kept)
    assert summary["kept"] + summary["near_removed"] + summary["exact_removed"] == 150
    assert len(kept) == 1, kept  # the later parts use their edges to the first document, kept for certain
    assert all(rows[r["duplicate_of"]]["kept"] and r["similarity"] >= 0.8 for r in rows.values() if not r["kept"])
