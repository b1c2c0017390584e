"""The pure parts of near-dedup's decisions: exact verification, large-star/small-star components,
giant-component parts, and the walk that keeps survivors by construction."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus.dedup.clusters import (
    connected_components,
    label_component,
    spanning_stars,
    star_rounds,
    unsettled,
)
from lemur_corpus.dedup.config import DedupConfig
from lemur_corpus.dedup.exact import DedupRecord
from lemur_corpus.dedup.minhash import MinHasher, sorted_distinct
from lemur_corpus.dedup.shingles import shingles
from lemur_corpus.dedup.stats import MAX_METRICS
from lemur_corpus.dedup.survivors import walk
from lemur_corpus.dedup.verify import Verifier, min_agreements, set_jaccard, to_set_bytes
from lemur_corpus.pipelines.dedup_components import LABELS, LabelFn, LargeStarFn, Name, SmallStarFn
from tests.conftest import read_jsonl, shared_path


def _record(doc_id: str, stars: int = 0, nbytes: int = 10) -> DedupRecord:
    return DedupRecord(doc_id, "text", "web", f"hash-{doc_id}", nbytes, stars)


def _components_after(edges: list[tuple[int, int]], rounds: int) -> list[list[int]]:
    final, _ = star_rounds(edges, rounds)
    return connected_components(final)


edge_lists = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=120)


@settings(max_examples=150, deadline=None)
@given(edge_lists)
def test_rounds_keep_the_components_and_settle_into_stars(edges: list[tuple[int, int]]) -> None:
    final, counts = star_rounds(edges, 30)
    proper = [(a, b) for a, b in edges if a != b]
    assert connected_components(final) == connected_components(proper)  # every round keeps the components
    assert counts[-1] == 0  # settled: every component is a star around its smallest node
    for component in connected_components(final):
        centre = component[0]
        assert {(centre, member) for member in component[1:]} == {e for e in final if e[0] in component}


@settings(max_examples=150, deadline=None)
@given(st.lists(edge_lists, max_size=6))
def test_spanning_stars_of_edge_sets_keep_the_components_of_their_union(sets: list[list[tuple[int, int]]]) -> None:
    """What verification sends on per chunk: each set's components as stars, one edge per member
    but the centre, already settled; the union of the stars has the union's components."""
    stars = [spanning_stars(edges) for edges in sets]
    union = [e for edges in sets for e in edges if e[0] != e[1]]
    assert connected_components([e for star in stars for e in star]) == connected_components(union)
    for edges, star in zip(sets, stars, strict=True):
        components = connected_components([e for e in edges if e[0] != e[1]])
        assert len(star) == sum(len(c) - 1 for c in components)
        assert star_rounds(star, 1)[1][0] == 0  # no node unsettled: stars around each smallest node


def test_unsettled_is_the_local_test_of_a_star_forest() -> None:
    assert not unsettled(1, {2, 3}) and not unsettled(2, {1}) and not unsettled(3, set())
    assert unsettled(2, {1, 3}) and unsettled(3, {1, 2})


def test_rounds_needed_grow_slowly_and_a_low_bound_leaves_nodes_unsettled() -> None:
    rng = random.Random(7)
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(2000)]
    path = list(zip(ids, ids[1:], strict=False))  # the worst shape: a long chain of edits
    _, counts = star_rounds(path, 30)
    needed = next(i for i, c in enumerate(counts) if c == 0)
    assert 3 <= needed <= 12  # ~log(n) rounds for 2,000 nodes in a chain
    _, short = star_rounds(path, 2)
    assert short[-1] > 0  # the pipeline counts these as unconverged_nodes


def _reference_labels(edges: list[tuple[Name, Name]], rounds: int, limit: int) -> tuple[set, int, int]:
    """What the final step would label after `rounds` rounds without early retirement (the
    one-process `star_rounds`), the last round that found a node unsettled, and the unsettled
    nodes after the last round."""
    final, counts = star_rounds(edges, rounds)
    neighbours: dict[Name, set[Name]] = {}
    for a, b in final:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    labels = set()
    for node, around in neighbours.items():
        if min(around) > node:
            _, parts = label_component(node, around, limit)
            labels |= {(member[-1], (node[0], node[-1], part)) for member, part in parts}
    last = max((i + 1 for i, c in enumerate(counts[:rounds]) if c), default=0)
    return labels, last, counts[rounds]


def _run_rounds(edges: list[tuple[Name, Name]], rounds: int, limit: int) -> tuple[set, dict, list[int]]:
    """The pipeline's steps in one process: (labels, summed/maxed stats, edges entering each round)."""
    def grouped(pairs: list[tuple[Any, Any]]) -> list[tuple[Any, list[Any]]]:
        groups: dict[Any, list[Any]] = {}
        for key, value in pairs:
            groups.setdefault(key, []).append(value)
        return sorted(groups.items())

    labels: set = set()
    stats: dict = {}
    sizes = []

    def split(outputs: Iterable[Any]) -> list[Any]:
        main = []
        for out in outputs:
            if isinstance(out, beam.pvalue.TaggedOutput):
                if out.tag == LABELS:
                    labels.add(out.value)
                else:
                    (_, _, metric), value = out.value
                    stats[metric] = max(stats.get(metric, 0), value) if metric in MAX_METRICS else (
                        stats.get(metric, 0) + value)
            else:
                main.append(out)
        return main

    current = [pair for a, b in edges for pair in ((a, b), (b, a))]
    for number in range(1, rounds + 1):
        sizes.append(len(current))
        large_star_fn = LargeStarFn(number, {"text": limit})
        large = [out for group in grouped(current) for out in split(large_star_fn.process(group))]
        current = [out for group in grouped(large) for out in split(SmallStarFn().process(group))]
    sizes.append(len(current))
    for group in grouped(current):
        split(LabelFn({"text": limit}).process(group))
    return labels, stats, sizes


graphs = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=80)


@settings(max_examples=150, deadline=None)
@given(graphs, st.integers(1, 14), st.integers(2, 12))
def test_settled_components_retire_early_with_the_labels_the_last_round_would_give(
        raw: list[tuple[int, int]], rounds: int, limit: int) -> None:
    edges = sorted({(("text", f"d{a:02d}"), ("text", f"d{b:02d}")) for a, b in raw if a != b})
    labels, stats, sizes = _run_rounds(edges, rounds, limit)
    expected, last, unsettled_after = _reference_labels(edges, rounds, limit)
    assert labels == expected
    assert stats.get("component_rounds", 0) == last
    assert stats.get("unconverged_nodes", 0) == unsettled_after
    if unsettled_after == 0 and rounds >= last + 2:
        assert sizes[-1] == 0  # settled, certified, retired: nothing left for the rounds after


def test_a_small_graph_leaves_the_rounds_it_does_not_need_empty() -> None:
    chain = [(("text", f"d{i:02d}"), ("text", f"d{i + 1:02d}")) for i in range(6)]
    star = [(("text", "s0"), ("text", f"s{i}")) for i in range(1, 5)]
    labels, stats, sizes = _run_rounds(chain + star, 12, 100)
    assert stats["component_rounds"] <= 3 and stats.get("unconverged_nodes", 0) == 0
    assert sizes[5:] == [0] * len(sizes[5:])  # rounds 6-12 get nothing
    assert {centre for _, (_, centre, _) in labels} == {"d00", "s0"}
    assert len(labels) == 7 + 5


def test_label_component_splits_giant_components_by_rank() -> None:
    size, parts = label_component("a", ["c", "b", "d"], 10)
    assert size == 4 and parts == [("a", 0), ("b", 0), ("c", 0), ("d", 0)]
    size, parts = label_component("m000", [f"m{i:03d}" for i in range(1, 250)], 100)
    assert size == 250 and [p for _, p in parts].count(0) == 100 and max(p for _, p in parts) == 2
    assert all(part == rank // 100 for rank, (_, part) in enumerate(parts))


def test_walk_keeps_the_end_of_a_chain_whose_middle_was_removed() -> None:
    """A~B~C, A not ~ C: B goes for A; C's only near-duplicate is gone, so C stays."""
    members = [(_record("A"), []), (_record("B"), [("A", 0.9)]), (_record("C"), [("B", 0.85)])]
    result = walk(members, "smallest_id")
    assert [r.id for r in result.kept] == ["A", "C"]
    assert [(r.record.id, r.duplicate_of, r.similarity) for r in result.removed] == [("B", "A", 0.9)]
    assert [(k.id, [r.record.id for r in removed]) for k, removed in result.clusters()] == [("A", ["B"])]


def test_walk_names_the_most_similar_kept_document_and_follows_the_keep_rule() -> None:
    members = [(_record("A", stars=1), []), (_record("B", stars=5), []),
               (_record("C"), [("A", 0.82), ("B", 0.95)]), (_record("D"), [("A", 0.9)])]
    by_id = walk(members, "smallest_id")  # A kept; B has no edge: kept; C → B (0.95 > 0.82); D → A
    assert {r.record.id: (r.duplicate_of, r.similarity) for r in by_id.removed} == {"C": ("B", 0.95),
                                                                                     "D": ("A", 0.9)}
    chain = [(_record("A", stars=1), []), (_record("B", stars=5), [("A", 0.9)])]
    assert [r.id for r in walk(chain, "most_stars").kept] == ["B"]  # B first in keep order; A joins it
    assert walk(chain, "smallest_id").removed[0].duplicate_of == "A"


def test_walk_counts_edges_to_other_parts_and_never_drops_a_member() -> None:
    members = [(_record("B"), [("A", 0.9)]), (_record("C"), [("B", 0.9)])]  # A is in another part
    result = walk(members, "smallest_id")
    assert result.outside_edges == 1
    assert [r.id for r in result.kept] == ["B"] and result.removed[0].record.id == "C"
    assert len(result.kept) + len(result.removed) == 2


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 25), st.integers(0, 25), st.floats(0.8, 1.0)), max_size=80))
def test_every_removal_names_a_kept_neighbour_and_kept_documents_are_independent(
        edges: list[tuple[int, int, float]]) -> None:
    ids = sorted({f"d{i:02d}" for a, b, _ in edges for i in (a, b)})
    attached: dict[str, list[tuple[str, float]]] = {i: [] for i in ids}
    weight = {}
    for a, b, similarity in edges:
        x, y = f"d{a:02d}", f"d{b:02d}"
        attached[max(x, y)].append((min(x, y), similarity))
        weight[frozenset((x, y))] = max(similarity, weight.get(frozenset((x, y)), 0.0))
    result = walk([(_record(i), attached[i]) for i in ids], "smallest_id")
    kept = {r.id for r in result.kept}
    assert kept | {r.record.id for r in result.removed} == set(ids)
    assert len(result.kept) + len(result.removed) == len(ids)
    for removal in result.removed:
        assert removal.duplicate_of in kept and removal.duplicate_of < removal.record.id
        assert removal.similarity == weight[frozenset((removal.record.id, removal.duplicate_of))]
    for a, b in ((x, y) for x in kept for y in kept if x < y):
        assert frozenset((a, b)) not in weight  # no two kept documents share a verified edge


def test_exact_verification_is_the_jaccard_of_the_shingle_sets() -> None:
    records = {r["id"]: r["text"] for r in read_jsonl(shared_path("dups", "web_neardup.docs.jsonl.zst"))}
    pairs = read_jsonl(shared_path("dups", "web_neardup.pairs.jsonl"))[:80]
    near = DedupConfig().text
    hasher = MinHasher(near.num_perm, near.seed, near.hash)
    verifier = Verifier("exact", 0.8)
    for pair in pairs:
        texts = records[pair["a"]], records[pair["b"]]
        sets = []
        for text in texts:
            _, _, shingle_set = hasher.sign(text, near.tokens, near.ngram, near.max_shingles)
            assert shingle_set is not None
            expected = sorted({xxhash.xxh32_intdigest(s) for s in shingles(text, near.tokens, near.ngram, 10**6)})
            assert shingle_set.tolist() == expected  # sorted distinct 32-bit hashes of the shingles
            sets.append(shingle_set)
        inter, union = set_jaccard(*sets)
        assert inter / union == pytest.approx(pair["jaccard_w5"], abs=1e-4)  # the labelled sets' definition
        [(similarity, is_edge)] = verifier.similarities(to_set_bytes(sets[0]), [to_set_bytes(sets[1])])
        assert similarity == round(inter / union, 6) and is_edge == (inter / union >= 0.8)


def test_signature_verification_and_off() -> None:
    a = np.arange(256, dtype=np.uint32)
    b = a.copy()
    b[:51] += 1  # 205 of 256 agree: 0.80078
    c = a.copy()
    c[:52] += 1  # 204 agree: below 0.8
    signature = Verifier("signature", 0.8)
    results = signature.similarities(a.tobytes(), [b.tobytes(), c.tobytes()])
    assert [edge for _, edge in results] == [True, False] and min_agreements(0.8, 256) == 205
    assert min_agreements(0.75, 256) == 192 and min_agreements(1.0, 256) == 256  # an estimate of 0.75 passes
    assert results[0][0] == round(205 / 256, 6)
    assert [edge for _, edge in Verifier("off", 0.8).similarities(a.tobytes(), [c.tobytes()])] == [True]


def test_sorted_distinct_is_numpy_unique() -> None:
    values = np.random.default_rng(3).integers(0, 50, 300).astype(np.uint32)
    assert np.array_equal(sorted_distinct(values), np.unique(values))
    assert sorted_distinct(np.array([], dtype=np.uint32)).size == 0
