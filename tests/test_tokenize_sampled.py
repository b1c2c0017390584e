"""`mixture.tokenize: sampled`: only what the mixture can sample is tokenized, and the shards are the
bytes of tokenizing everything (lemur_corpus.partial_pools)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from apache_beam.pvalue import TaggedOutput
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lemur_corpus.audit import audit_build
from lemur_corpus.document import Document
from lemur_corpus.mixture import (
    HISTOGRAM_BINS,
    MixtureConfig,
    MixtureError,
    MixtureSource,
    boundary_choice,
    copies_of,
    histogram_bin,
    in_boundary,
    mix_in_memory,
    sample_point,
)
from lemur_corpus.partial_pools import (
    LAST_BIN,
    estimated_weights,
    final_problems,
    first_bound,
    first_bounds,
    plan_from_pools,
    unsettled_sources,
)
from lemur_corpus.pipelines.build import run_build, tokenizes_sampled
from lemur_corpus.pipelines.mix import HistogramFn
from lemur_corpus.pipelines.tokenize_sampled import (
    REST,
    REST_POINTS,
    ParkDocumentFn,
    ParkedDoc,
    SplitByBoundFn,
    UnparkFn,
)
from lemur_corpus.variants import MAIN, VariantConfig, mix_variants_in_memory, variant_mixture
from tests.buildutil import output_digest, slice_config

SEED = 7


def _pools(docs: list[tuple[str, str, int]], tokenized: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """HistogramFn's output per source, as the pipeline combines it: documents not in `tokenized`
    (all when None) count as untokenized."""
    fn = HistogramFn()
    accs: dict[str, Any] = {}
    for source, doc_id, tokens in docs:
        point = histogram_bin(sample_point(SEED, doc_id))
        acc = accs.setdefault(source, fn.create_accumulator())
        fn.add_input(acc, (point, tokens if tokenized is None or doc_id in tokenized else None))
    # as across a shuffle: each accumulator compacted, then merged
    return {s: fn.extract_output(fn.merge_accumulators([fn.compact(a)])) for s, a in accs.items()}


def _byte_pools(docs: list[tuple[str, str, int]], nbytes: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    return _pools([(s, d, nbytes[d]) for s, d, _ in docs])


def _sampled_copies(mixture: MixtureConfig, docs: list[tuple[str, str, int]],
                    nbytes: Mapping[str, int]) -> tuple[dict[str, int], set[str], Any]:
    """The pipeline's steps in one process: first bounds, partial pools, the unsettled sources'
    rest, the final plan; then every document's copies (the untokenized ones' from their bins)."""
    bounds = first_bounds([mixture], _byte_pools(docs, nbytes))
    first = {d for s, d, _ in docs if histogram_bin(sample_point(SEED, d)) <= bounds[s]}
    unsettled = unsettled_sources([mixture], SEED, _pools(docs, first), bounds)
    tokenized = first | {d for s, d, _ in docs if s in unsettled}
    plan = plan_from_pools(mixture, SEED, _pools(docs, tokenized))
    assert not final_problems(plan, bounds)
    exact_plan, exact = mix_in_memory(mixture, SEED, docs)
    for source, source_plan in plan.sources.items():
        if not source_plan.untokenized_documents:  # a fully tokenized source: the exact plan's own figures
            assert source_plan == exact_plan.sources[source]
    return exact, tokenized, plan


def _mixture(total: int, bytes_per_token: float, **extra: Any) -> MixtureConfig:
    return MixtureConfig(
        sources={"py": MixtureSource(kind="code", weight=60), "java": MixtureSource(kind="code", weight=30),
                 "web": MixtureSource(kind="text", weight=10)},
        total_tokens=total, tokenize="sampled", sampled_bytes_per_token=bytes_per_token, **extra)


documents = st.lists(  # (source, tokens, bytes per token): enough documents for a window of 64 and more
    st.tuples(st.sampled_from(["py", "java", "web"]), st.integers(1, 400), st.integers(1, 6)),
    min_size=1, max_size=1500,
)


@settings(max_examples=60, deadline=None)
@given(documents, st.integers(50, 60_000), st.floats(0.3, 12), st.sampled_from([1, 500, 5_000]))
def test_untokenized_documents_are_never_written_and_the_rest_is_the_exact_plan(
        rows: list[tuple[str, int, int]], total: int, bytes_per_token: float, min_pool: int) -> None:
    docs = [(s, f"{s}-{i}", tokens) for i, (s, tokens, _) in enumerate(rows)]
    nbytes = {f"{s}-{i}": tokens * per for i, (s, tokens, per) in enumerate(rows)}
    mixture = _mixture(total, bytes_per_token, min_pool_tokens=min_pool, on_empty_source="redistribute")
    try:
        exact_plan, _ = mix_in_memory(mixture, SEED, docs)
    except MixtureError:
        with pytest.raises(MixtureError):  # what tokenizing everything cannot give, neither can this
            _sampled_copies(mixture, docs, nbytes)
        return
    exact, tokenized, plan = _sampled_copies(mixture, docs, nbytes)
    event("some documents left untokenized" if len(tokenized) < len(docs) else "all tokenized")
    points = {d: sample_point(SEED, d) for _, d, _ in docs}
    members: dict[str, list[tuple[float, str, int]]] = {}
    for source, doc_id, tokens in docs:
        if doc_id in tokenized and in_boundary(plan.sources[source], points[doc_id]):
            members.setdefault(source, []).append((points[doc_id], doc_id, tokens))
    cuts = {s: boundary_choice(m, plan.sources[s].boundary_tokens) for s, m in members.items()}
    for source, doc_id, _ in docs:
        copies = copies_of(plan.sources[source], points[doc_id], doc_id, cuts.get(source))
        assert copies == exact[doc_id], (source, doc_id)
        if doc_id not in tokenized:
            assert copies == 0
    for source, source_plan in plan.sources.items():
        assert source_plan.target_tokens == exact_plan.sources[source].target_tokens
        assert source_plan.pool_documents == exact_plan.sources[source].pool_documents
        assert source_plan.pool_tokens <= exact_plan.sources[source].pool_tokens  # a lower bound


def test_a_first_bound_covers_the_target_and_the_minimum_pool_at_the_stated_bytes_per_token() -> None:
    docs = [("py", f"p{i}", 10) for i in range(5000)] + [("web", f"w{i}", 10) for i in range(50)]
    nbytes = {d: 40 for _, d, _ in docs}  # 4 bytes a token
    byte_pools = _byte_pools(docs, nbytes)
    mixture = _mixture(3000, 5.0, on_empty_source="redistribute")
    # java has no documents: py takes its weight (the other code source), 90% of 3,000 tokens, 13,500 bytes
    assert estimated_weights(mixture, byte_pools) == pytest.approx({"py": 0.9, "java": 0.0, "web": 0.1})
    # web's 2,000 bytes are under min_pool_tokens 500 at 5 bytes a token, and no other text source can
    # take its weight: the plan will fail, so the estimate keeps the configured weights
    assert estimated_weights(mixture.model_copy(update={"min_pool_tokens": 500}), byte_pools) == \
        pytest.approx({"py": 0.6, "java": 0.3, "web": 0.1})

    def tokenized(bound: int) -> int:
        return sum(1 for s, d, _ in docs if s == "py" and histogram_bin(sample_point(SEED, d)) <= bound)

    bound = first_bounds([mixture], byte_pools)["py"]
    assert 13_500 / 40 + 63 <= tokenized(bound) < 13_500 / 40 + 64 + 20  # the target's bytes, then the window
    big_minimum = mixture.model_copy(update={"min_pool_tokens": 8_000})  # 40,000 bytes: more than the target's
    assert 40_000 / 40 + 63 <= tokenized(first_bounds([big_minimum], byte_pools)["py"]) < 40_000 / 40 + 64 + 20
    assert first_bound(mixture.model_copy(update={"tokenize": "all"}), "py", byte_pools["py"], 0.9) == LAST_BIN
    assert first_bound(mixture.model_copy(update={"total_tokens": None}), "py", byte_pools["py"], 0.9) == LAST_BIN
    assert first_bounds([_mixture(10**9, 5.0)], byte_pools)["py"] == LAST_BIN  # over one epoch: all of it


def test_variants_settle_only_when_every_plan_does() -> None:
    docs = [(s, f"{s}{i}", 5 + i % 17) for s in ("py", "java", "web") for i in range(3000)]
    nbytes = {d: 4 * t for _, d, t in docs}
    main = _mixture(20_000, 5.0)
    variant = variant_mixture(main, VariantConfig(name="more_text", code_text_ratio=1.0))
    mixtures = [main, variant]
    bounds = first_bounds(mixtures, _byte_pools(docs, nbytes))
    assert all(b < LAST_BIN for b in bounds.values())
    first = {d for s, d, _ in docs if histogram_bin(sample_point(SEED, d)) <= bounds[s]}
    assert not unsettled_sources(mixtures, SEED, _pools(docs, first), bounds)
    partial = _pools(docs, first)
    plans = {MAIN: plan_from_pools(main, SEED, partial), "more_text": plan_from_pools(variant, SEED, partial)}
    exact = mix_variants_in_memory(main, {"more_text": variant}, SEED, docs)
    for key, plan in plans.items():
        exact_plan = exact[key][0]
        for source in ("py", "java", "web"):
            mine, theirs = plan.sources[source], exact_plan.sources[source]
            assert (mine.boundary_bin, mine.boundary_end_bin, mine.boundary_tokens, mine.target_tokens) == \
                (theirs.boundary_bin, theirs.boundary_end_bin, theirs.boundary_tokens, theirs.target_tokens)
    # bounds that stop short of one variant's window leave that source unsettled
    short = {s: b // 4 for s, b in bounds.items()}
    first = {d for s, d, _ in docs if histogram_bin(sample_point(SEED, d)) <= short[s]}
    assert unsettled_sources(mixtures, SEED, _pools(docs, first), short)


def test_a_plan_that_fails_on_a_lower_bound_tokenizes_every_partial_source() -> None:
    docs = [("py", f"p{i}", 10) for i in range(2000)] + [("web", f"w{i}", 10) for i in range(200)]
    mixture = MixtureConfig(sources={"py": MixtureSource(kind="code", weight=90),
                                     "web": MixtureSource(kind="text", weight=10, max_epochs=0.5)},
                            total_tokens=9_000, tokenize="sampled")
    mix_in_memory(mixture, SEED, docs)  # the whole pool gives it: 900 of web's 2,000 tokens
    first = {d for s, d, _ in docs if s == "py" or int(d[1:]) < 50}
    pools = _pools(docs, first)
    assert pools["web"]["untokenized"] == 150
    with pytest.raises(MixtureError, match="above its cap"):
        plan_from_pools(mixture, SEED, pools)  # 900 tokens of a lower bound of 650: over 0.5 epochs
    assert unsettled_sources([mixture], SEED, pools, {"py": LAST_BIN, "web": 10}) == frozenset({"web"})


# ---------------------------------------------------------------------------------------------
# Real builds


def _overrides(tokenize: str, **mixture: Any) -> dict[str, Any]:
    return {"code_rows": 1200, "web_rows": 1033, "shards": {"target_tokens": 1_000_000},
            "filters": {"text": {"lid": {"languages": ["en", "de", "es", "fr", "pl"]}}},
            "mixture": {"min_pool_tokens": 20_000, "total_tokens": 300_000, "tokenize": tokenize, **mixture}}


def _config(tokenize: str, **mixture: Any) -> Any:
    return slice_config(**_overrides(tokenize, **mixture))


def _shards(out: Path) -> dict[str, str]:
    """Digests of every file but the manifests (pool sizes, config) and the dedup index (the build id
    follows the config's hash)."""
    return {k: v for k, v in output_digest(out).items()
            if not k.endswith("manifest.json") and not k.startswith("dedup-index")}


def test_documents_wait_parked_and_come_back_whole(tmp_path: Path) -> None:
    """Every document waits for the bounds as a flat `ParkedDoc` (its source, sample bin and size),
    the document itself in a spill file of the build's folder (like the token ids after it); the
    split sends the first on and the rest to `REST` as they are, and `UnparkFn` gives back each
    document as it went in, metadata and origin included (a lone surrogate too, which the size
    counts 3 bytes as `Document.nbytes` does)."""
    docs = [Document(id=f"d{n}", source="python" if n % 2 else "web", kind="code", lang="Python",
                     text="é" * n + ("\ud800" if n % 7 == 0 else "x"), meta={"n": n, "repo": f"r/{n}"},
                     origin=f"in.jsonl:{n}") for n in range(80)]
    docs.append(Document(id="big", source="python", kind="code", text="x = 1\n" * 5_000,
                         meta={f"field{k}": "v" * 100 for k in range(100)}))
    park = ParkDocumentFn(str(tmp_path), SEED)
    park.setup()
    park.start_bundle()
    parked = [out for doc in docs for out in park.process(doc)]
    park.finish_bundle()
    assert all(type(p) is ParkedDoc for p in parked)
    # what waits holds neither text nor metadata: its spill file's name and a few numbers, whatever
    # the document (the last one pickles to over 30 KB)
    assert all(len(pickle.dumps(p)) < len(p.path) + 160 for p in parked)
    assert [(p.source, p.u_bin, p.nbytes) for p in parked] == [
        (d.source, histogram_bin(sample_point(SEED, d.id)), d.nbytes) for d in docs]
    split = SplitByBoundFn()
    bound = HISTOGRAM_BINS // 2
    outputs = [out for p in parked for out in split.process(p, {"python": bound})]
    first = [out for out in outputs if isinstance(out, ParkedDoc)]
    rest = [out.value for out in outputs if isinstance(out, TaggedOutput) and out.tag == REST]
    points = [out.value for out in outputs if isinstance(out, TaggedOutput) and out.tag == REST_POINTS]
    assert first and rest and len(first) + len(rest) == len(docs)  # web has no bound: all first
    assert {p.source for p in rest} == {"python"} and all(p.u_bin > bound for p in rest)
    assert [(point.source, point.u_bin, point.nbytes) for point in points] == [
        (p.source, p.u_bin, p.nbytes) for p in rest]
    by_place = {p.place: doc for p, doc in zip(parked, docs, strict=True)}
    for waiting in (first, rest[::-1]):
        assert list(UnparkFn().process(waiting)) == [by_place[p.place] for p in waiting]
    assert len(list(tmp_path.glob("spill-*.bin"))) == 1  # one file for the bundle, gone with the token ids'


@pytest.fixture(scope="module")
def tokenize_all(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("all")
    return out, run_build(_config("all"), str(out))


@pytest.mark.slow
@pytest.mark.parametrize("bytes_per_token", [5.0, 0.5])
def test_a_sampled_build_writes_the_bytes_of_tokenizing_all(
        tokenize_all: tuple[Path, dict[str, Any]], tmp_path: Path, bytes_per_token: float) -> None:
    """5 bytes a token: most code sources settle in the first pass; 0.5: most need the second."""
    out = tmp_path / "sampled"
    manifest = run_build(_config("sampled", sampled_bytes_per_token=bytes_per_token), str(out))
    assert _shards(out) == _shards(tokenize_all[0]) and _shards(out)
    exact = tokenize_all[1]["mixture"]["sources"]
    sources = manifest["mixture"]["sources"]
    partial = {s for s, p in sources.items() if p.get("untokenized_documents")}
    assert partial, "nothing was left untokenized"
    for name, plan in sources.items():
        assert plan["pool_documents"] == exact[name]["pool_documents"]
        assert plan["realized_tokens"] == exact[name]["realized_tokens"]
        if name in partial:
            assert plan["untokenized_documents"] + 1 <= plan["pool_documents"]
            assert plan["pool_tokens"] < exact[name]["pool_tokens"] and plan["full_copies"] == 0
        else:
            assert plan["pool_tokens"] == exact[name]["pool_tokens"]
    tokenize = manifest["accounting"]["stages"]["tokenize"]
    assert manifest["accounting"]["balanced"]
    assert {g: e["out"]["docs"] for g, e in tokenize.items()} == \
        {g: e["out"]["docs"] for g, e in tokenize_all[1]["accounting"]["stages"]["tokenize"].items()}
    written = sum(g["tokens"] for g in json.loads((out / "manifest.json").read_text())["shards"])
    assert written == sum(g["tokens"] for g in tokenize_all[1]["shards"])
    assert manifest["config"]["mixture"]["tokenize"] == "sampled"
    assert not audit_build(str(out)).mismatches
    if bytes_per_token == 5.0:  # fewer tokens went through the tokenizer
        assert manifest["run"]["profile"]["stages"]["tokenize"]["bytes"] < \
            tokenize_all[1]["run"]["profile"]["stages"]["tokenize"]["bytes"]


@pytest.mark.slow
def test_a_sampled_build_with_variants_writes_the_bytes_of_tokenizing_all(tmp_path: Path) -> None:
    variants = [{"name": "r5", "code_text_ratio": 5}]
    all_out, sampled_out = tmp_path / "all", tmp_path / "sampled"
    run_build(slice_config(**_overrides("all"), variants=variants), str(all_out))
    manifest = run_build(slice_config(**_overrides("sampled"), variants=variants), str(sampled_out))
    assert _shards(sampled_out) == _shards(all_out)  # the variants' folders included
    assert any(name.startswith("variants/r5/") for name in _shards(all_out))
    assert any(p.get("untokenized_documents") for p in manifest["mixture"]["sources"].values())


def test_a_build_that_tokenizes_all_hashes_as_before() -> None:
    assert "tokenize" not in _config("all").resolved()["mixture"]
    assert _config("sampled").resolved()["mixture"]["tokenize"] == "sampled"
    assert HISTOGRAM_BINS - 1 == LAST_BIN


def test_sampled_needs_a_stated_total_in_every_mixture(caplog: pytest.LogCaptureFixture) -> None:
    assert tokenizes_sampled(_config("sampled"))
    assert not tokenizes_sampled(_config("all"))
    assert not caplog.records
    assert not tokenizes_sampled(_config("sampled", total_tokens=None))
    assert "needs mixture.enabled and a stated mixture.total_tokens" in caplog.text
    caplog.clear()
    with_variant = slice_config(**_overrides("sampled"), variants=[{"name": "r5", "code_text_ratio": 5}])
    assert tokenizes_sampled(with_variant)  # the variant keeps the main mixture's total
