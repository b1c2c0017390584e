"""Mixture variants: validated before anything is read, planned from the same pools, nested samples
(a larger rate takes a superset), token-exact, and written as index files over token bytes written
once, which `corpus audit` accepts folder by folder and megatron-core reads."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus.audit import audit_build
from lemur_corpus.cli import main
from lemur_corpus.config import MixtureConfig, MixtureSource
from lemur_corpus.errors import ConfigError
from lemur_corpus.mixture import mix_in_memory
from lemur_corpus.pipelines.build import run_build
from lemur_corpus.shards import parse_index, read_docs_index, read_shard_documents
from lemur_corpus.variants import MAIN, VariantConfig, mix_variants_in_memory, variant_mixture
from tests.buildutil import slice_config

# ---------------------------------------------------------------------------------------------
# Config: every mistake names the variant, before any data is read


def _mixture() -> MixtureConfig:
    return MixtureConfig(sources={"python": MixtureSource(kind="code", weight=60),
                                  "c": MixtureSource(kind="code", weight=30),
                                  "web": MixtureSource(kind="text", weight=10)})


@pytest.mark.parametrize(("variants", "message"), [
    ([{"name": "r0", "code_text_ratio": 0}], "variants[0]: variant 'r0': code_text_ratio must be a number > 0"),
    ([{"name": "neg", "code_text_ratio": -2}], "variant 'neg': code_text_ratio must be a number > 0"),
    ([{"name": "a", "code_text_ratio": 2}, {"name": "a", "code_text_ratio": 3}],
     "variant names must be unique; repeated: a"),
    ([{"name": "t", "sources": {"cobol": 100}}], "variant 't': unknown source(s) cobol"),
    ([{"name": "t", "sources": {"python": 50}}], "variant 't': weights add up to 50%, not 100%"),
    ([{"name": "both", "code_text_ratio": 2, "sources": {"python": 100}}],
     "variant 'both': give exactly one of code_text_ratio or sources"),
    ([{"name": "capped", "code_text_ratio": 2, "max_epochs": 0}], "variant 'capped': max_epochs must be > 0"),
    ([{"name": "r2", "code_text_ratio": 2, "colour": 1}], "variants[0].colour: unknown key"),
])
def test_bad_variants_are_config_errors_naming_the_variant(variants: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        slice_config(variants=variants)
    assert message in str(err.value)


def test_a_ratio_needs_both_kinds() -> None:
    only_code = MixtureConfig(sources={"python": MixtureSource(kind="code", weight=100)})
    with pytest.raises(ValueError, match="variant 'r5': code_text_ratio needs code and text sources"):
        variant_mixture(only_code, VariantConfig(name="r5", code_text_ratio=5))


def test_a_ratio_rescales_each_kind_and_keeps_proportions_inside_it() -> None:
    mixture = variant_mixture(_mixture(), VariantConfig(name="r20", code_text_ratio=20))
    w = {n: s.weight for n, s in mixture.sources.items()}
    assert (w["python"] + w["c"]) / w["web"] == pytest.approx(20)
    assert w["python"] / w["c"] == pytest.approx(2)
    assert sum(w.values()) == pytest.approx(100)
    table = variant_mixture(_mixture(), VariantConfig(name="t", sources={"python": 50, "web": {"weight": 50,
                                                                                               "max_epochs": 9}},
                                                      total_tokens=1000, max_epochs=2))
    assert table.sources["c"].weight == 0 and table.sources["web"].max_epochs == 9
    assert table.total_tokens == 1000 and table.default_max_epochs == 2


def test_cli_refuses_a_bad_variant_before_reading_or_writing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["build", "--out", str(out), "--set", "variants=[{name: r0, code_text_ratio: 0}]"]) == 2
    err = capsys.readouterr().err
    assert "variant 'r0': code_text_ratio must be a number > 0" in err and "Traceback" not in err
    assert not out.exists()


def test_default_config_hash_is_unchanged_without_variants() -> None:
    config = slice_config()
    assert "variants" not in config.resolved()
    assert "variants" in slice_config(variants=[{"name": "r5", "code_text_ratio": 5}]).resolved()


# ---------------------------------------------------------------------------------------------
# Nested samples: a larger rate takes a superset, the main mixture is unchanged, every plan exact


def _docs(rng: random.Random, sizes: dict[str, tuple[int, int, int]]) -> list[tuple[str, str, int]]:
    return [(s, f"{s}/{i}", rng.randint(lo, hi)) for s, (n, lo, hi) in sizes.items() for i in range(n)]


def _check_nested(results: dict[str, Any], docs: list[tuple[str, str, int]]) -> None:
    sources = {s for s, _, _ in docs}
    for source in sources:
        ids = [d for s, d, _ in docs if s == source]
        rated = sorted(((plan.sources[source].rate, key) for key, (plan, _) in results.items()), key=lambda r: r[0])
        for (rate_a, a), (rate_b, b) in zip(rated, rated[1:], strict=False):
            ca, cb = results[a][1], results[b][1]
            smaller = [d for d in ids if ca[d] > cb[d]]
            assert not smaller, (source, a, rate_a, b, rate_b, smaller[:3])


def _check_exact(plan: Any, copies: dict[str, int], docs: list[tuple[str, str, int]]) -> None:
    got: dict[str, int] = {}
    largest: dict[str, int] = {}
    for s, d, t in docs:
        got[s] = got.get(s, 0) + copies[d] * t
        largest[s] = max(largest.get(s, 0), t)
    for name, sp in plan.sources.items():
        assert abs(got.get(name, 0) - sp.target_tokens) <= largest.get(name, 0), (name, got.get(name), sp.target_tokens)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ratios=st.lists(st.floats(0.5, 40), min_size=1, max_size=5),
       total=st.one_of(st.none(), st.integers(50_000, 900_000)))
def test_larger_rates_take_supersets(seed: int, ratios: list[float], total: int | None) -> None:
    rng = random.Random(seed)
    docs = _docs(rng, {"python": (400, 20, 3000), "c": (150, 10, 800), "web": (300, 50, 2000)})
    main_mixture = _mixture().model_copy(update={"default_max_epochs": 6.0})
    variants = {f"v{i}": variant_mixture(main_mixture, VariantConfig(name=f"v{i}", code_text_ratio=r,
                                                                     total_tokens=total))
                for i, r in enumerate(ratios)}
    results = mix_variants_in_memory(main_mixture, variants, seed, docs)
    plain_plan, plain_copies = mix_in_memory(main_mixture, seed, docs)
    assert results[MAIN][1] == plain_copies and results[MAIN][0] == plain_plan  # variants change no main copy
    _check_nested(results, docs)
    for plan, copies in results.values():
        _check_exact(plan, copies, docs)


def test_close_rates_in_one_boundary_window_stay_nested() -> None:
    """The case a greedy choice per plan gets wrong: rates so close that their boundary windows are the
    same bins, where the documents that fit differ."""
    rng = random.Random(3)
    docs = _docs(rng, {"python": (60, 10, 5000), "c": (60, 10, 5000), "web": (60, 10, 5000)})
    main_mixture = _mixture().model_copy(update={"default_max_epochs": 1.0})
    variants = {f"v{i}": variant_mixture(main_mixture, VariantConfig(name=f"v{i}", code_text_ratio=9 + 0.01 * i))
                for i in range(-20, 21) if i}
    results = mix_variants_in_memory(main_mixture, variants, 11, docs)
    _check_nested(results, docs)


# ---------------------------------------------------------------------------------------------
# A real build with variants


VARIANTS = [{"name": "r3", "code_text_ratio": 3}, {"name": "r30", "code_text_ratio": 30},
            {"name": "table", "sources": {"python": 40, "cpp": 20, "refinedweb": 40}}]


@pytest.fixture(scope="module")
def variant_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("variants")
    return out, run_build(slice_config(variants=VARIANTS), str(out))


@pytest.mark.slow
def test_main_mixture_is_the_build_without_variants(variant_build: tuple[Path, dict[str, Any]],
                                                     tmp_path: Path) -> None:
    out, manifest = variant_build
    plain = run_build(slice_config(), str(tmp_path))
    assert manifest["shards"] == plain["shards"] and manifest["mixture"] == plain["mixture"]
    assert "variants" not in plain and [v["name"] for v in manifest["variants"]] == ["r3", "r30", "table"]


@pytest.mark.slow
def test_every_variant_folder_passes_the_audit_alone(variant_build: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = variant_build
    assert audit_build(str(out)).ok
    for entry in manifest["variants"]:
        folder = out / entry["path"]
        result = audit_build(str(folder))
        assert result.ok, result.mismatches
        target = entry["code_text_ratio"]["target"]
        assert result.code_text_ratio == pytest.approx(target, rel=0.005)
        variant = json.loads((folder / "manifest.json").read_text())
        assert variant["variant"]["name"] == entry["name"]
        assert variant["variant"]["of"]["config_hash"] == manifest["build"]["config_hash"]
        assert variant["accounting"] == manifest["accounting"]  # one pass: the same pools


@pytest.mark.slow
def test_variants_share_token_bytes(variant_build: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = variant_build
    main_bytes = manifest["totals"]["bytes"]
    for entry in manifest["variants"]:
        assert entry["bytes"]["copied_bin_bytes"] == 0  # one filesystem: every .bin is a hard link
        assert entry["bytes"]["index_bytes"] <= 0.10 * main_bytes
        for bin_path in (out / entry["path"] / "shards").glob("*.bin"):
            home = out / "shards" / bin_path.name
            if not home.exists():
                home = out / "variants" / ".shared" / "shards" / bin_path.name
            assert bin_path.stat().st_ino == home.stat().st_ino


@pytest.mark.slow
def test_nested_in_the_real_build(variant_build: tuple[Path, dict[str, Any]]) -> None:
    out, _ = variant_build

    def copies(folder: Path) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for idx in (folder / "shards").glob("*.idx"):
            for row in read_docs_index(str(idx.with_suffix(""))):
                by_source = found.setdefault(str(row["source"]), {})
                by_source[str(row["id"])] = by_source.get(str(row["id"]), 0) + 1
        return found

    low, high = copies(out / "variants" / "r3"), copies(out / "variants" / "r30")
    code = [s for s in high if s != "refinedweb" and s != "wikipedia"]
    assert code
    for source in code:  # code gets more epochs at 30:1 than at 3:1: every document at least as often
        assert all(high[source].get(d, 0) >= n for d, n in low.get(source, {}).items())
    for source in ("refinedweb",):  # and text fewer
        assert all(low[source].get(d, 0) >= n for d, n in high.get(source, {}).items())


@pytest.mark.slow
def test_megatron_reads_every_variant(variant_build: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    pytest.importorskip("torch")
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    gpt = pytest.importorskip("megatron.core.datasets.gpt_dataset")
    builder = pytest.importorskip("megatron.core.datasets.blended_megatron_dataset_builder")
    out, manifest = variant_build
    tokens_of: dict[str, np.ndarray] = {}
    for shard in manifest["shards"]:  # the main mixture's documents, read our way
        prefix = str(out / shard["name"])
        for row, tokens in zip(read_docs_index(prefix), read_shard_documents(prefix), strict=True):
            tokens_of[str(row["id"])] = tokens
    eos = manifest["tokenizer"]["eos_id"]
    for entry in manifest["variants"]:
        folder = out / entry["path"]
        variant = json.loads((folder / "manifest.json").read_text())
        prefixes = []
        for shard in variant["shards"]:
            prefix = str(folder / shard["name"])
            prefixes.append(prefix)
            dataset = indexed.IndexedDataset(prefix, mmap=True)
            rows = read_docs_index(prefix)
            assert len(dataset) == len(rows) == shard["documents"]
            for i, row in enumerate(rows):
                got = dataset.get(i)
                assert got[-1] == eos and len(got) == row["tokens"]
                if str(row["id"]) in tokens_of:
                    assert np.array_equal(got, tokens_of[str(row["id"])])
            assert np.array_equal(dataset.get(0, offset=1, length=3), dataset[0][1:4])  # partial reads
        import shutil
        from types import SimpleNamespace

        # GPTDataset caches its sample index beside the shards unless given a cache folder, and a cache
        # folder needs torch.distributed: read a copy, so the build folder stays as the audit expects
        copy = tmp_path / entry["name"]
        shutil.copytree(folder / "shards", copy)
        config = gpt.GPTDatasetConfig(
            random_seed=1, sequence_length=256, blend=([str(copy / Path(p).name) for p in prefixes], None),
            split="1,0,0", tokenizer=SimpleNamespace(vocab_size=manifest["tokenizer"]["vocab_size"], eod=eos, pad=0,
                                                     unique_identifiers={"class": "test"}),
            reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False,
            path_to_cache=None, mmap_bin_files=True)
        blended = builder.BlendedMegatronDatasetBuilder(gpt.GPTDataset, [64, None, None], lambda: True,
                                                        config).build()[0]
        samples = [blended[i]["tokens"] for i in range(64)]
        assert all(len(s) == 256 for s in samples)
        assert sum(int((s == eos).sum()) for s in samples) > 0  # documents end inside the samples


@pytest.mark.slow
def test_the_audit_notices_a_pointer_at_other_tokens(variant_build: tuple[Path, dict[str, Any]],
                                                      tmp_path: Path) -> None:
    import shutil

    out, _ = variant_build
    folder = tmp_path / "r3"
    shutil.copytree(out / "variants" / "r3", folder)
    idx_path = sorted((folder / "shards").glob("*.idx"))[0]
    raw = bytearray(idx_path.read_bytes())
    index = parse_index(bytes(raw))
    distinct = np.flatnonzero(index.pointers != index.pointers[0])
    assert len(distinct)
    # point sequence 0 at another document's tokens (same length field: the bytes simply differ)
    pointers_at = 9 + 8 + 1 + 8 + 8 + 4 * len(index.lengths)
    struct.pack_into("<q", raw, pointers_at, int(index.pointers[distinct[0]]))
    idx_path.write_bytes(bytes(raw))
    result = audit_build(str(folder))
    assert any("addresses other tokens than its .docs.jsonl.zst line names" in m for m in result.mismatches)


@pytest.mark.slow
def test_the_summary_and_the_dags_know_the_variants(variant_build: tuple[Path, dict[str, Any]],
                                                    capsys: pytest.CaptureFixture) -> None:
    import importlib.util

    from lemur_corpus.summary import print_summary

    out, manifest = variant_build
    print_summary(manifest, str(out), 1.0)
    printed = capsys.readouterr().out
    for entry in manifest["variants"]:
        assert f"variant {entry['name']}: {out}/variants/{entry['name']}" in printed
    spec = importlib.util.spec_from_file_location("ops_for_variants", Path(__file__).parents[1] / "dags" /
                                                  "lemur_corpus_ops.py")
    assert spec and spec.loader
    ops = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = ops  # its dataclasses look their module up while being defined
    spec.loader.exec_module(ops)
    assert ops.variant_dirs(str(out)) == [str(out / "variants" / n) for n in ("r3", "r30", "table")]


def test_a_variants_folder_the_build_did_not_write_is_refused(tmp_path: Path) -> None:
    from lemur_corpus.pipelines.build import _clear_previous

    out = tmp_path / "out"
    _clear_previous(str(out), False, ["r5"])
    assert (out / "variants" / "r5" / ".lemur-corpus").is_file()
    _clear_previous(str(out), True, ["r5", "r20"])  # a rerun replaces the variants it wrote
    assert sorted(p.name for p in (out / "variants").iterdir()) == ["r20", "r5"]
    (out / "variants" / "mine").mkdir()
    (out / "variants" / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="variants/mine was not written by `corpus build`"):
        _clear_previous(str(out), True, ["r5"])
    assert (out / "variants" / "mine" / "notes.txt").read_text() == "mine"
