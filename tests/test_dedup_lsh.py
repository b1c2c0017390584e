"""LSH banding, star linking, connected components and statistics: the pure parts of near-dedup."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from datasketch import MinHashLSH

from lemur_corpus.dedup.clusters import connected_components, union_find_bytes
from lemur_corpus.dedup.config import DedupConfig, NearDedupConfig
from lemur_corpus.dedup.lsh import band_keys, collision_probability, lsh_params, optimal_params, star_pairs
from lemur_corpus.dedup.minhash import MinHasher, estimated_jaccard
from lemur_corpus.dedup.stats import combine, pick, with_rates
from lemur_corpus.pipelines.dedup import min_agreements
from tests.conftest import read_jsonl, shared_path


@pytest.mark.parametrize("threshold", [0.7, 0.8, 0.85])
def test_equal_weights_give_datasketch_banding(threshold: float) -> None:
    lsh = MinHashLSH(threshold=threshold, num_perm=256)
    assert optimal_params(threshold, 256) == (lsh.b, lsh.r)
    weighted = MinHashLSH(threshold=threshold, num_perm=256, weights=(0.1, 0.9))
    assert optimal_params(threshold, 256, 0.9) == (weighted.b, weighted.r)


def test_verified_banding_favours_recall_and_explicit_params_win() -> None:
    config = DedupConfig()
    bands, rows = lsh_params(config.text)
    assert bands * rows <= 256
    assert collision_probability(0.82, bands, rows) > 0.9 > collision_probability(0.82, *optimal_params(0.8, 256))
    unverified = config.text.model_copy(update={"verify": False})
    assert lsh_params(unverified) == optimal_params(0.8, 256)
    assert lsh_params(NearDedupConfig(tokens="words", threshold=0.8, bands=8, rows=16)) == (8, 16)


def test_band_keys_separate_bands_and_agree_on_equal_bands() -> None:
    a = np.arange(256, dtype=np.uint32)
    b = a.copy()
    b[0] = 999  # differs in band 0 only
    ka, kb = band_keys(a, 16, 16), band_keys(b, 16, 16)
    assert len(ka) == 16 and len(set(ka)) == 16
    assert ka[0] != kb[0] and ka[1:] == kb[1:]


def test_a_big_bucket_links_linearly_to_its_smallest_id() -> None:
    members = [f"doc{i:05d}" for i in range(5000)][::-1] + ["doc00007"]
    pairs = list(star_pairs(members))
    assert len(pairs) == 4999 and {root for _, root in pairs} == {"doc00000"}
    assert list(star_pairs(["only"])) == [] and list(star_pairs(["x", "x"])) == []


def test_connected_components_and_their_memory_bound() -> None:
    edges = [("b", "a"), ("c", "b"), ("e", "d"), ("a", "c")]
    assert connected_components(edges) == [["a", "b", "c"], ["d", "e"]]
    assert connected_components([]) == []
    assert union_find_bytes(1000, 2000, 40.0) > union_find_bytes(1000, 1000, 40.0) > 1000 * 40


def test_min_agreements_is_the_threshold_on_the_estimate() -> None:
    assert min_agreements(0.8, 256) == 205  # 204.8
    assert min_agreements(0.75, 256) == 192  # exact: an estimate of 0.75 passes
    assert min_agreements(1.0, 256) == 256


def test_stats_sum_take_maxima_and_derive_rates() -> None:
    key_sum, key_max = ("near", "text", "removed"), ("near", "text", "max_bucket_size")
    assert pick(key_sum, combine([(2, 2), (3, 3)])) == (key_sum, 5)
    assert pick(key_max, combine([(2, 2), (7, 7), (3, 3)])) == (key_max, 7)
    stats = dict(with_rates([(("near", "text", "documents"), 200), (key_sum, 50), (("exact", "code", "removed"), 3)]))
    assert stats[("near", "text", "duplicate_rate")] == 0.25
    assert ("exact", "code", "duplicate_rate") not in stats  # no documents count: no rate


def test_lsh_finds_the_labelled_pairs_on_real_data() -> None:
    """Signatures → bands → star links → verification → components over 40 real pages and their
    variants: every labelled pair above the threshold by a clear margin is clustered, and no pair
    below it by a clear margin is."""
    docs = read_jsonl(shared_path("dups", "web_neardup.docs.jsonl.zst"))
    clusters = sorted({d["cluster"] for d in docs})[:40]
    texts = {d["id"]: d["text"] for d in docs if d["cluster"] in clusters}
    pairs = [p for p in read_jsonl(shared_path("dups", "web_neardup.pairs.jsonl"))
             if p["a"] in texts and p["b"] in texts]
    near = DedupConfig().text.model_copy(update={"threshold": 0.7})
    bands, rows = lsh_params(near)
    hasher = MinHasher(near.num_perm, near.seed, near.hash)
    signatures = {i: hasher.signature(t, near.tokens, near.ngram, near.max_shingles)[0] for i, t in texts.items()}
    buckets: dict[bytes, list[str]] = defaultdict(list)
    for doc_id, signature in signatures.items():
        for key in band_keys(signature, bands, rows):  # type: ignore[arg-type]
            buckets[key].append(doc_id)
    candidates = {pair for members in buckets.values() for pair in star_pairs(members)}
    edges = [(a, b) for a, b in candidates
             if estimated_jaccard(signatures[a], signatures[b]) >= near.threshold]  # type: ignore[arg-type]
    cluster_of = {m: c[0] for c in connected_components(edges) for m in c}
    same = [cluster_of.get(p["a"], p["a"]) == cluster_of.get(p["b"], p["b"]) for p in pairs]
    clear_pos = [s for s, p in zip(same, pairs, strict=True) if p["jaccard_w5"] >= 0.8]
    clear_neg = [s for s, p in zip(same, pairs, strict=True) if p["jaccard_w5"] < 0.5 and not p["is_near_dup"]]
    assert len(clear_pos) > 100 and all(clear_pos)
    assert clear_neg and not any(clear_neg)
    assert len(candidates) < len(texts) * 4  # star links: linear in documents, not quadratic
