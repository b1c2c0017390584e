"""LSH banding, the pairs a bucket verifies, LSH parameters datasketch refuses, and statistics."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest
from datasketch import MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus.config import parse_config
from lemur_corpus.dedup.config import DedupConfig, NearDedupConfig
from lemur_corpus.dedup.lsh import (
    band_keys,
    bucket_pair_count,
    bucket_pairs,
    collision_probability,
    lsh_params,
    optimal_params,
    pairs_left_out,
)
from lemur_corpus.dedup.minhash import MinHasher, estimated_jaccard
from lemur_corpus.dedup.stats import combine, is_max_metric, pick, with_rates
from lemur_corpus.errors import ConfigError
from lemur_corpus.pipelines.dedup import near_params
from tests.conftest import read_jsonl, shared_path


@pytest.mark.parametrize("threshold", [0.7, 0.8, 0.85])
def test_equal_weights_give_datasketch_banding(threshold: float) -> None:
    lsh = MinHashLSH(threshold=threshold, num_perm=256)
    assert optimal_params(threshold, 256) == (lsh.b, lsh.r)
    weighted = MinHashLSH(threshold=threshold, num_perm=256, weights=(0.1, 0.9))
    assert optimal_params(threshold, 256, 0.9) == (weighted.b, weighted.r)


@pytest.mark.parametrize("num_perm", [16, 64, 100, 256])
def test_the_exact_quadrature_finds_datasketchs_banding_on_a_grid(num_perm: int) -> None:
    """optimal_params integrates with Gauss-Legendre, datasketch with SciPy's quad: same (b, r)."""
    from datasketch.lsh import _optimal_param

    for threshold in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        for fn_weight in (0.1, 0.5, 0.9):
            expected = _optimal_param(threshold, num_perm, 1.0 - fn_weight, fn_weight)
            assert optimal_params(threshold, num_perm, fn_weight) == tuple(map(int, expected)), (threshold, fn_weight)


def test_verified_banding_favours_recall_and_explicit_params_win() -> None:
    config = DedupConfig()
    bands, rows = lsh_params(config.text)
    assert bands * rows <= 256
    assert collision_probability(0.82, bands, rows) > 0.9 > collision_probability(0.82, *optimal_params(0.8, 256))
    for mode in ("exact", "signature"):
        assert lsh_params(config.text.model_copy(update={"verify": mode})) == (bands, rows)
    unverified = config.text.model_copy(update={"verify": "off"})
    assert lsh_params(unverified) == optimal_params(0.8, 256)
    assert lsh_params(NearDedupConfig(tokens="words", threshold=0.8, bands=8, rows=16)) == (8, 16)


def test_fewer_than_two_bands_is_a_config_error_naming_the_key() -> None:
    """datasketch's MinHashLSH refuses b < 2; so do we, before any data is read."""
    with pytest.raises(ValueError, match="The number of bands are too small"):
        MinHashLSH(threshold=0.9, num_perm=16)
    unverified = DedupConfig.model_validate({"text": {"num_perm": 16, "threshold": 0.9, "verify": "off"}})
    with pytest.raises(ConfigError, match=r"dedup\.text\.threshold = 0\.9 with dedup\.text\.num_perm = 16.*"
                                          r"at least 2 bands"):
        near_params(unverified)
    verified = DedupConfig.model_validate({"code": {"num_perm": 32, "threshold": 0.99}})
    with pytest.raises(ConfigError, match=r"dedup\.code\.threshold = 0\.99 with dedup\.code\.num_perm = 32"):
        near_params(verified)
    with pytest.raises(ConfigError, match=r"dedup\.text\.bands"):
        parse_config({"name": "x", "inputs": [{"name": "a", "format": "jsonl", "paths": ["x.jsonl"]}],
                      "dedup": {"text": {"bands": 1, "rows": 16}}, "mixture": {"sources": {"a": {"kind": "text",
                                                                                             "weight": 100}}}})
    assert near_params(DedupConfig.model_validate({"text": {"num_perm": 32, "threshold": 0.9}}))["text"][0] >= 2


def test_band_keys_separate_bands_and_agree_on_equal_bands() -> None:
    a = np.arange(256, dtype=np.uint32)
    b = a.copy()
    b[0] = 999  # differs in band 0 only
    ka, kb = band_keys(a, 16, 16), band_keys(b, 16, 16)
    assert len(ka) == 16 and len(set(ka)) == 16
    assert ka[0] != kb[0] and ka[1:] == kb[1:]


def test_a_small_bucket_verifies_every_pair() -> None:
    """The star's blind spot: B~C share a bucket with a smaller A that resembles neither; linking
    each member to A alone never compares B with C."""
    assert list(bucket_pairs(["A", "B", "C"], 16)) == [("A", "B"), ("A", "C"), ("B", "C")]
    members = [f"d{i:02d}" for i in range(33)]  # up to 2 x window + 1 members: every pair
    assert set(bucket_pairs(members, 16)) == set(itertools.combinations(members, 2))
    assert pairs_left_out(33, 16) == 0 and pairs_left_out(34, 16) > 0
    assert list(bucket_pairs(["only"], 16)) == []


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 200), window=st.integers(1, 40))
def test_big_buckets_cost_linear_work_and_count_what_they_leave_out(size: int, window: int) -> None:
    members = [f"m{i:04d}" for i in range(size)]
    pairs = list(bucket_pairs(members, window))
    assert len(pairs) == len(set(pairs)) == bucket_pair_count(size, window)
    assert all(members.index(a) < members.index(b) for a, b in pairs)  # (earlier, later) in keep order
    assert len(pairs) <= 2 * window * size
    assert pairs_left_out(size, window) == size * (size - 1) // 2 - len(pairs)
    later_of = defaultdict(set)
    for a, b in pairs:
        later_of[b].add(a)
    for j, member in enumerate(members[1:], start=1):
        heads = set(members[:min(window, j)])
        before = set(members[max(0, j - window):j])
        assert later_of[member] == heads | before  # the first members, the likely survivors, and the window


def test_stats_sum_take_maxima_and_derive_rates() -> None:
    key_sum, key_max = ("near", "text", "removed"), ("near", "text", "max_bucket_size")
    assert pick(key_sum, combine([(2, 2), (3, 3)])) == (key_sum, 5)
    assert pick(key_max, combine([(2, 2), (7, 7), (3, 3)])) == (key_max, 7)
    rounds = ("near", "text", "component_rounds")
    assert is_max_metric(rounds) and pick(rounds, combine([(2, 2), (4, 4)])) == (rounds, 4)
    stats = dict(with_rates([(("near", "text", "documents"), 200), (key_sum, 50), (("exact", "code", "removed"), 3)]))
    assert stats[("near", "text", "duplicate_rate")] == 0.25
    assert ("exact", "code", "duplicate_rate") not in stats  # no documents count: no rate


def test_lsh_candidates_hold_the_labelled_pairs_on_real_data() -> None:
    """Signatures → bands → windowed bucket pairs over 40 real pages and their variants: every
    labelled pair above the threshold by a clear margin is a candidate, and the candidates are
    few (linear in the documents)."""
    docs = read_jsonl(shared_path("dups", "web_neardup.docs.jsonl.zst"))
    clusters = sorted({d["cluster"] for d in docs})[:40]
    texts = {d["id"]: d["text"] for d in docs if d["cluster"] in clusters}
    pairs = [p for p in read_jsonl(shared_path("dups", "web_neardup.pairs.jsonl"))
             if p["a"] in texts and p["b"] in texts]
    near = DedupConfig().text
    bands, rows = lsh_params(near)
    hasher = MinHasher(near.num_perm, near.seed, near.hash)
    signatures = {i: hasher.signature(t, near.tokens, near.ngram, near.max_shingles)[0] for i, t in texts.items()}
    buckets: dict[bytes, list[str]] = defaultdict(list)
    for doc_id, signature in sorted(signatures.items()):
        assert signature is not None
        for key in band_keys(signature, bands, rows):
            buckets[key].append(doc_id)
    candidates = {frozenset(pair) for members in buckets.values() for pair in bucket_pairs(members, 16)}
    clear = [p for p in pairs if p["jaccard_w5"] >= 0.85]
    assert len(clear) > 100 and all(frozenset((p["a"], p["b"])) in candidates for p in clear)
    assert len(candidates) < len(texts) * 4
    for pair in clear:  # the estimate the signature verification uses tracks them
        a, b = signatures[pair["a"]], signatures[pair["b"]]
        assert a is not None and b is not None
        assert estimated_jaccard(a, b) > 0.7
