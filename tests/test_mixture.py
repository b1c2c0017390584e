"""The token-exact mixture: rates, redistribution, caps, and samples within one document of target."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus.config import MixtureConfig, MixtureSource
from lemur_corpus.mixture import MixtureError, make_plan, mix_in_memory, sequences


def config(weights: dict[str, tuple[str, float]], **kwargs) -> MixtureConfig:  # type: ignore[no-untyped-def]
    return MixtureConfig(sources={n: MixtureSource(kind=k, weight=w) for n, (k, w) in weights.items()}, **kwargs)


def realized(docs: list[tuple[str, str, int]], copies: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for source, doc_id, tokens in docs:
        out[source] = out.get(source, 0) + copies[doc_id] * tokens
    return out


def corpus_of(sizes: dict[str, list[int]]) -> list[tuple[str, str, int]]:
    return [(s, f"{s}/{i}", t) for s, ts in sizes.items() for i, t in enumerate(ts)]


def assert_exact(plan, docs, copies) -> None:  # type: ignore[no-untyped-def]
    got = realized(docs, copies)
    largest = {}
    for s, _, t in docs:
        largest[s] = max(largest.get(s, 0), t)
    for name, sp in plan.sources.items():
        if sp.target_tokens == 0:
            assert got.get(name, 0) == 0
            continue
        tolerance = max(0.005 * sp.target_tokens, largest[name])
        assert abs(got[name] - sp.target_tokens) <= tolerance, (name, got[name], sp.target_tokens)


def test_rates_follow_the_weights_and_the_binding_cap() -> None:
    rng = random.Random(0)
    docs = corpus_of({"python": [rng.randint(50, 5000) for _ in range(3000)],
                      "web": [rng.randint(100, 3000) for _ in range(800)]})
    cfg = config({"python": ("code", 90.9), "web": ("text", 9.1)}, default_max_epochs=3.0)
    plan, copies = mix_in_memory(cfg, 7, docs)
    pools = {s: sum(t for src, _, t in docs if src == s) for s in ("python", "web")}
    # N is the largest total under the caps: the tighter of 3·P_s / w_s.
    limits = {s: 3.0 * pools[s] / w for s, w in (("python", 0.909), ("web", 0.091))}
    assert plan.total_from == "caps" and plan.binding_source == min(limits, key=limits.get)
    assert plan.total_tokens == pytest.approx(min(limits.values()), abs=1)
    assert plan.sources[plan.binding_source].rate == pytest.approx(3.0, rel=1e-6)
    assert_exact(plan, docs, copies)
    got = realized(docs, copies)
    assert got["python"] / got["web"] == pytest.approx(90.9 / 9.1, rel=0.005)


def test_fractional_rates_take_whole_copies_plus_a_hashed_subset() -> None:
    rng = random.Random(1)
    docs = corpus_of({"a": [rng.randint(10, 400) for _ in range(2000)],
                      "b": [rng.randint(10, 400) for _ in range(2000)]})
    pool_a = sum(t for s, _, t in docs if s == "a")
    cfg = config({"a": ("code", 75), "b": ("text", 25)}, total_tokens=int(pool_a * 2.37 / 0.75))
    plan, copies = mix_in_memory(cfg, 3, docs)
    a = plan.sources["a"]
    assert a.full_copies == 2 and a.rate == pytest.approx(2.37, rel=1e-4)
    assert {copies[d] for s, d, _ in docs if s == "a"} == {2, 3}
    assert_exact(plan, docs, copies)


def test_same_seed_same_sample_other_seed_other_sample_equally_exact() -> None:
    rng = random.Random(2)
    docs = corpus_of({"a": [rng.randint(10, 900) for _ in range(1500)],
                      "b": [rng.randint(10, 900) for _ in range(600)]})
    cfg = config({"a": ("code", 90), "b": ("text", 10)}, total_tokens=400_000)
    plan1, copies1 = mix_in_memory(cfg, 11, docs)
    plan1b, copies1b = mix_in_memory(cfg, 11, list(reversed(docs)))  # order does not matter
    plan2, copies2 = mix_in_memory(cfg, 12, docs)
    assert copies1 == copies1b
    assert copies1 != copies2
    assert_exact(plan1, docs, copies1)
    assert_exact(plan2, docs, copies2)


def test_empty_source_is_an_error_or_redistributed_within_its_kind() -> None:
    docs = corpus_of({"python": [100] * 500, "sql": [], "web": [100] * 100})
    weights = {"python": ("code", 80), "sql": ("code", 10), "web": ("text", 10)}
    with pytest.raises(MixtureError, match="sql.*on_empty_source: redistribute"):
        mix_in_memory(config(weights, total_tokens=50_000), 1, docs)
    plan, copies = mix_in_memory(config(weights, total_tokens=50_000, on_empty_source="redistribute"), 1, docs)
    assert plan.redistributed == {"sql": {"python": pytest.approx(0.1)}}
    assert plan.sources["python"].weight == pytest.approx(0.9) and plan.sources["sql"].status == "empty"
    got = realized(docs, copies)
    assert got["python"] / got["web"] == pytest.approx(9.0, rel=0.01)


def test_small_pool_counts_as_empty_and_says_so() -> None:
    docs = corpus_of({"python": [100] * 500, "shell": [30], "web": [100] * 100})
    cfg = config({"python": ("code", 80), "shell": ("code", 10), "web": ("text", 10)},
                 on_empty_source="redistribute", min_pool_tokens=1000)
    plan, copies = mix_in_memory(cfg, 1, docs)
    assert plan.sources["shell"].status == "below_min_pool" and plan.sources["shell"].pool_tokens == 30
    assert copies["shell/0"] == 0


def test_impossible_total_names_the_source_and_cap() -> None:
    docs = corpus_of({"python": [100] * 100, "web": [100] * 10})
    cfg = config({"python": ("code", 50), "web": ("text", 50)}, total_tokens=20_000, default_max_epochs=4)
    with pytest.raises(MixtureError, match=r"needs 10\.000 epochs of source 'web'.*cap of 4"):
        mix_in_memory(cfg, 1, docs)


def test_unknown_source_in_the_data_is_an_error() -> None:
    with pytest.raises(MixtureError, match="unbucketed"):
        make_plan(config({"a": ("code", 100)}), 0, {"a": 10, "unbucketed": 5}, {"a": 1, "unbucketed": 1}, {})


def test_disabled_mixture_writes_every_document_once() -> None:
    docs = corpus_of({"a": [10, 20, 30], "b": [5]})
    plan, copies = mix_in_memory(config({"a": ("code", 50), "b": ("text", 50)}, enabled=False), 0, docs)
    assert set(copies.values()) == {1} and plan.total_tokens == 65


def test_sequences_count_like_megatron() -> None:
    assert sequences([4097, 4096, 8193], 4096) == 1 + 0 + 2


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.dictionaries(
        st.sampled_from(["python", "sql", "c", "web", "wiki"]),
        st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=300),
        min_size=2,
    ),
    seed=st.integers(min_value=0, max_value=2**32),
    scale=st.floats(min_value=0.05, max_value=3.5),
)
def test_realized_tokens_within_half_a_percent_or_one_document(sizes, seed, scale) -> None:  # type: ignore[no-untyped-def]
    names = sorted(sizes)
    weights = {n: ("code" if n in ("python", "sql", "c") else "text", 100 / len(names)) for n in names}
    weights[names[-1]] = (weights[names[-1]][0], 100 - 100 / len(names) * (len(names) - 1))
    docs = corpus_of(sizes)
    pools = {n: sum(sizes[n]) for n in names}
    smallest = min(pools[n] / (1 / len(names)) for n in names)
    cfg = config(weights, total_tokens=max(1, int(smallest * scale)), default_max_epochs=4)
    plan, copies = mix_in_memory(cfg, seed, docs)
    assert_exact(plan, docs, copies)
