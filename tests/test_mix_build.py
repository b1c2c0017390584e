"""The mixture inside `corpus build`, on real data: every source within 0.5% of its target (or one
document), code:text 10:1 within 0.5%, copies spread over shards, another seed another exact sample."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus.mixture import HISTOGRAM_BINS
from lemur_corpus.pipelines.build import run_build
from lemur_corpus.pipelines.mix import HistogramFn
from lemur_corpus.shards import read_docs_index
from tests.buildutil import slice_config

pytestmark = pytest.mark.slow


def _build(tmp_path_factory: pytest.TempPathFactory, seed: int) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp(f"mixed{seed}")
    # The pages are mostly German: the language filter keeps the sample's main languages, so the text
    # pool stays large enough for a 0.5% code:text target with every filter on.
    # A source of a few hundred tokens (three shell scripts) would bind the total at a few thousand
    # tokens: min_pool_tokens treats it as empty, as the embedded default does.
    config = slice_config(code_rows=1200, web_rows=1033, seed=seed, shards={"target_tokens": 1_000_000},
                          filters={"text": {"lid": {"languages": ["en", "de", "es", "fr", "pl"]}}},
                          mixture={"min_pool_tokens": 20_000})
    return out, run_build(config, str(out))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return _build(tmp_path_factory, 20231010)


def _per_source_rows(out: Path, manifest: dict) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for shard in manifest["shards"]:
        for row in read_docs_index(str(out / shard["name"])):
            rows.setdefault(row["source"], []).append({**row, "shard": shard["name"]})
    return rows


def _assert_exact(out: Path, manifest: dict) -> None:
    rows = _per_source_rows(out, manifest)
    for name, src in manifest["mixture"]["sources"].items():
        tokens = sum(r["tokens"] for r in rows.get(name, []))
        assert tokens == src["realized_tokens"]  # the manifest's figure is what the shards hold
        if src["target_tokens"] == 0:
            assert tokens == 0
            continue
        largest = max(r["tokens"] for r in rows[name])
        assert abs(tokens - src["target_tokens"]) <= max(0.005 * src["target_tokens"], largest), name
    ratio = manifest["mixture"]["code_text_ratio"]
    assert ratio["realized"] == pytest.approx(ratio["target"], rel=0.005)
    assert ratio["target"] == pytest.approx(90.80 / 9.10, rel=1e-9)  # Table 8, redistributed within kinds


def test_every_source_hits_its_target(mixed: tuple[Path, dict]) -> None:
    out, manifest = mixed
    _assert_exact(out, manifest)
    mixture = manifest["mixture"]
    assert mixture["enabled"] and mixture["total_from"] == "caps"
    assert sum(mixture["sources"][s]["weight"] for s in mixture["sources"]) == pytest.approx(1.0)
    # Sources with no data gave their weight to their kind.
    assert set(mixture["redistributed"]) >= {"books", "arxiv", "dm_mathematics", "stackexchange"}
    assert manifest["totals"]["sequences"]["4096"] == sum(
        max(s["tokens"] - 1, 0) // 4096 for s in manifest["shards"])


def test_copies_land_in_different_shards(mixed: tuple[Path, dict]) -> None:
    out, manifest = mixed
    shards_of: dict[str, set[str]] = {}
    copies_of: dict[str, int] = {}
    for rows in _per_source_rows(out, manifest).values():
        for row in rows:
            shards_of.setdefault(row["id"], set()).add(row["shard"])
            copies_of[row["id"]] = copies_of.get(row["id"], 0) + 1
    many = [i for i, n in copies_of.items() if n > 1]
    assert many, "the caps make some source repeat"
    k = len(manifest["shards"])
    for doc_id in many:
        assert len(shards_of[doc_id]) == min(copies_of[doc_id], k)
    # No shard is one source.
    assert all(len(s["tokens_by_source"]) > 3 for s in manifest["shards"])


def test_another_seed_gives_another_equally_exact_sample(
    mixed: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory
) -> None:
    out, manifest = mixed
    other_out, other = _build(tmp_path_factory, 7)
    _assert_exact(other_out, other)
    ids = {r["id"] for rows in _per_source_rows(out, manifest).values() for r in rows}
    other_ids = {r["id"] for rows in _per_source_rows(other_out, other).values() for r in rows}
    assert ids != other_ids
    assert [s["files"]["bin"]["sha256"] for s in manifest["shards"]] != [
        s["files"]["bin"]["sha256"] for s in other["shards"]]


@settings(max_examples=60, deadline=None)
@given(items=st.lists(st.tuples(st.integers(0, HISTOGRAM_BINS - 1), st.integers(0, 5_000)), max_size=200),
       cuts=st.lists(st.integers(0, 200), max_size=6), compacted=st.lists(st.booleans(), min_size=7, max_size=7))
def test_histogram_accumulators_compacted_for_the_shuffle_merge_to_the_same_pool(
        items: list[tuple[int, int]], cuts: list[int], compacted: list[bool]) -> None:
    """A pool's histogram does not depend on how its documents were cut into bundles, nor on which
    bundles' accumulators crossed the shuffle as their non-empty bins (`compact`)."""
    fn = HistogramFn()
    whole = fn.create_accumulator()
    for item in items:
        whole = fn.add_input(whole, item)
    bounds = [0, *sorted(min(c, len(items)) for c in cuts), len(items)]
    parts = []
    for n, (start, end) in enumerate(itertools.pairwise(bounds)):
        acc = fn.create_accumulator()
        for item in items[start:end]:
            acc = fn.add_input(acc, item)
        parts.append(fn.compact(acc) if compacted[n] else acc)
    merged, expected = fn.extract_output(fn.merge_accumulators(parts)), fn.extract_output(whole)
    assert merged.keys() == expected.keys()
    for key, value in expected.items():
        assert np.array_equal(merged[key], value), key
    sparse = fn.compact(whole)
    assert len(sparse.bins) == len({b for b, _ in items}) and fn.compact(sparse) is sparse
    assert all(np.array_equal(a, b) for a, b in zip(fn.extract_output(sparse).values(), expected.values(), strict=True))
