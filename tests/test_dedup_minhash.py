"""Shingles and MinHash signatures: the jaccard_w5 definition, bit-for-bit datasketch, bad input."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest
import xxhash
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus.dedup.config import DedupConfig, NearDedupConfig
from lemur_corpus.dedup.kernels import xxh32_ranges
from lemur_corpus.dedup.minhash import HASH_FUNCTIONS, MinHasher, block_of, estimated_jaccard
from lemur_corpus.dedup.shingles import (
    ShingleStats,
    iter_shingle_blocks,
    joined_words,
    lowered_joined_words,
    shingles,
    word_char_table,
)
from tests.conftest import read_jsonl, shared_path


def _w5(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + 5]) for i in range(len(words) - 4)}


@pytest.fixture(scope="module")
def web_docs() -> list[str]:
    return [r["text"] for r in read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))[:40]]


@pytest.fixture(scope="module")
def code_docs() -> list[str]:
    return [r["content"] for r in read_jsonl(shared_path("code", "code_sample.jsonl.zst"))[:40]]


def test_word_shingles_are_the_jaccard_w5_definition() -> None:
    records = {r["id"]: r["text"] for r in read_jsonl(shared_path("dups", "web_neardup.docs.jsonl.zst"))}
    pairs = read_jsonl(shared_path("dups", "web_neardup.pairs.jsonl"))[:120]
    for pair in pairs:
        a = set(shingles(records[pair["a"]], "words", 5, 10**7))
        b = set(shingles(records[pair["b"]], "words", 5, 10**7))
        assert len(a) == len(_w5(records[pair["a"]]))
        assert round(len(a & b) / len(a | b), 4) == pytest.approx(pair["jaccard_w5"], abs=1e-4)


def test_the_word_character_table_is_the_patterns_own_word_class() -> None:
    table = word_char_table()
    word = re.compile(r"\w")
    assert [cp for cp in range(len(table)) if bool(word.match(chr(cp))) != table[cp]] == []


def _findall_shingles(text: str, n: int) -> list[bytes]:
    words = re.findall(r"\w+", text.lower())
    if not words:
        return []
    if len(words) < n:
        return [" ".join(words).encode("utf-8", "surrogatepass")]
    return [" ".join(words[i:i + n]).encode("utf-8", "surrogatepass") for i in range(len(words) - n + 1)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(exclude_categories=()), max_size=40), min_size=1, max_size=6))
def test_the_words_of_the_previous_text_are_reused_only_for_that_text(texts: list[str]) -> None:
    """`lowered_joined_words` (the decontam filter's and MinHash's shared words of a document) is
    `joined_words(text.lower())` for any sequence of texts, repeats and equal copies included; the
    same text object twice in a row is not tokenized again."""
    for text in [*texts, texts[0], "".join(texts[-1:])]:
        assert lowered_joined_words(text) == joined_words(text.lower())
    again = lowered_joined_words(texts[-1])
    assert lowered_joined_words(texts[-1]) is again


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=())), st.integers(1, 6))
def test_words_tokenized_at_once_are_the_regular_expressions_words(text: str, n: int) -> None:
    """Any text, lone surrogates, combining marks and digits of every script included: the numpy
    tokenizer of a document's words (`joined_words`) gives what `re.findall(r"\\w+")` gives."""
    # a lone surrogate and a combining mark end a word; Arabic-Indic and Roman numerals are words
    assert joined_words("a\ud800b \u00e9_1 \u0663 \u216b x\u0301y ") == ("a b \u00e9_1 \u0663 \u216b x y".encode(), 7)
    found = re.findall(r"\w+", text)
    assert joined_words(text) == (" ".join(found).encode("utf-8", "surrogatepass"), len(found))
    expected = _findall_shingles(text, n)
    words = len(re.findall(r"\w+", text.lower()))
    for cap, block in ((10**6, 8192), (3, 2), (5, 1)):
        stats = ShingleStats()
        blocks = list(iter_shingle_blocks(text, "words", n, cap, block_shingles=block, stats=stats))
        assert all(0 < len(b) <= block for b in blocks)
        assert [s for b in blocks for s in b.as_bytes()] == expected[:cap]
        assert (stats.shingles, stats.short, stats.capped) == (min(len(expected), cap), 0 < words < n,
                                                               len(expected) > cap)


def test_code_tokens_ignore_layout_and_keep_operators() -> None:
    compact = "def f(x):\n    return x+1\n"
    spread = "def  f( x ) :\n\n\treturn  x + 1"
    assert shingles(compact, "code", 3, 100) == shingles(spread, "code", 3, 100)
    assert shingles("a == b", "code", 1, 100) == [b"a", b"=", b"=", b"b"]
    assert shingles("Foo foo", "code", 1, 100) == [b"Foo", b"foo"]  # code keeps case


@pytest.mark.parametrize("hash_name", list(HASH_FUNCTIONS))
@pytest.mark.parametrize("tokens", ["words", "code"])
def test_signatures_equal_datasketch_bit_for_bit(web_docs: list[str], code_docs: list[str], hash_name: str,
                                                 tokens: str) -> None:
    docs = web_docs if tokens == "words" else code_docs
    for num_perm, seed in ((256, 1), (128, 42)):
        hasher = MinHasher(num_perm, seed, hash_name)
        for text in docs[:15]:
            sh = shingles(text, tokens, 5, 100_000)
            expected = MinHash(num_perm=num_perm, seed=seed, hashfunc=HASH_FUNCTIONS[hash_name])
            expected.update_batch(sh)
            signature, seen = hasher.signature(text, tokens, 5, 100_000)
            if not sh:  # an empty file: datasketch's MinHash stays empty, ours says there is nothing
                assert expected.is_empty() and signature is None
                continue
            assert signature is not None and signature.dtype == np.uint32
            assert np.array_equal(signature, expected.hashvalues)
            assert np.array_equal(hasher.signature_of(sh), expected.hashvalues)
            assert seen.shingles == len(sh)


def test_default_hash_matches_datasketch_default_when_asked() -> None:
    """`sha1_32` is what `datasketch.MinHash()` uses with no hashfunc at all."""
    sh = [b"the quick brown fox jumps", b"quick brown fox jumps over"]
    expected = MinHash(num_perm=256, seed=1)
    expected.update_batch(sh)
    assert np.array_equal(MinHasher(256, 1, "sha1_32").signature_of(sh), expected.hashvalues)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_sha1_32_is_datasketchs_own(data: bytes) -> None:
    """Ours, written out so that workers need not import datasketch (SciPy, pandas)."""
    from datasketch.hashfunc import sha1_hash32

    assert HASH_FUNCTIONS["sha1_32"](data) == sha1_hash32(data)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=70), min_size=1, max_size=30))
def test_compiled_xxh32_is_xxhash(items: list[bytes]) -> None:
    block = block_of(items)
    hashes = xxh32_ranges(np.frombuffer(block.buffer, dtype=np.uint8), block.starts, block.ends)
    assert hashes.tolist() == [xxhash.xxh32_intdigest(i) for i in items]


def test_estimate_tracks_exact_jaccard_on_real_near_duplicates() -> None:
    records = {r["id"]: r["text"] for r in read_jsonl(shared_path("dups", "web_neardup.docs.jsonl.zst"))}
    pairs = read_jsonl(shared_path("dups", "web_neardup.pairs.jsonl"))[:200]
    hasher = MinHasher(256, 1, "xxh32")
    errors = []
    for pair in pairs:
        a, _ = hasher.signature(records[pair["a"]], "words", 5, 100_000)
        b, _ = hasher.signature(records[pair["b"]], "words", 5, 100_000)
        errors.append(estimated_jaccard(a, b) - pair["jaccard_w5"])  # type: ignore[arg-type]
    errors_arr = np.array(errors)
    assert abs(errors_arr.mean()) < 0.01  # unbiased
    assert np.abs(errors_arr).max() < 0.13  # ~4 standard deviations of a 256-permutation estimate


def test_short_and_empty_documents() -> None:
    hasher = MinHasher(64, 1, "xxh32")
    empty, seen = hasher.signature("", "words", 5, 100)
    assert empty is None and seen.shingles == 0
    punctuation, _ = hasher.signature("!!! ... ???", "words", 5, 100)
    assert punctuation is None  # no word at all: nothing to sign (exact dedup still sees it)
    short, seen = hasher.signature("Hello short world", "words", 5, 100)
    assert seen.short and seen.shingles == 1
    assert np.array_equal(short, hasher.signature_of([b"hello short world"]))  # type: ignore[arg-type]
    other, _ = hasher.signature("hello SHORT world!", "words", 5, 100)
    assert np.array_equal(short, other)  # type: ignore[arg-type]
    four, seen = hasher.signature("one two three four", "words", 5, 100)
    assert seen.short and seen.shingles == 1 and four is not None


def test_cap_keeps_the_first_shingles_and_says_so() -> None:
    text = " ".join(f"w{i}" for i in range(1000))
    stats = ShingleStats()
    blocks = list(iter_shingle_blocks(text, "words", 5, 100, block_shingles=32, stats=stats))
    assert stats.capped and stats.shingles == 100 and sum(len(b) for b in blocks) == 100
    assert blocks[0].as_bytes()[0] == b"w0 w1 w2 w3 w4"
    assert blocks[-1].as_bytes()[-1] == b"w99 w100 w101 w102 w103"
    exactly = ShingleStats()
    list(iter_shingle_blocks(text, "words", 5, 996, stats=exactly))
    assert not exactly.capped and exactly.shingles == 996


@pytest.mark.parametrize("line", ["spaced", "minified"])
def test_a_20mb_single_line_is_capped_in_bounded_memory(line: str) -> None:
    unit = "lorem ipsum dolor sit amet " if line == "spaced" else "a=b+c;f(x[1]);"
    text = unit * (20_000_000 // len(unit))
    near = NearDedupConfig(tokens="code" if line == "minified" else "words", threshold=0.8)
    hasher = MinHasher(near.num_perm, near.seed, near.hash)
    hasher.signature("warm up the kernels", near.tokens, near.ngram, near.max_shingles)
    tracemalloc.start()
    signature, seen = hasher.signature(text, near.tokens, near.ngram, near.max_shingles)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert signature is not None and seen.capped and seen.shingles == near.max_shingles
    assert peak < 80 * 2**20, f"peak {peak / 2**20:.0f} MiB while signing a 20 MB line"


def test_config_defaults_and_validation() -> None:
    config = DedupConfig()
    assert (config.code.tokens, config.code.threshold, config.code.num_perm) == ("words", 0.85, 256)
    assert (config.text.tokens, config.text.threshold, config.text.verify) == ("words", 0.8, "exact")
    assert DedupConfig.model_validate({"text": {"verify": True}}).text.verify == "signature"  # older configs
    assert DedupConfig.model_validate({"text": {"verify": False}}).text.verify == "off"
    with pytest.raises(ValueError, match="verify"):
        DedupConfig.model_validate({"text": {"verify": "sometimes"}})
    with pytest.raises(ValueError, match="at least 2 bands"):
        DedupConfig.model_validate({"text": {"bands": 1, "rows": 8}})
    assert DedupConfig.model_validate({"code": {"threshold": 0.9}}).code.tokens == "words"
    with pytest.raises(ValueError, match="both 'bands' and 'rows'"):
        DedupConfig.model_validate({"text": {"bands": 4}})
    with pytest.raises(ValueError, match="exceeds num_perm"):
        DedupConfig.model_validate({"text": {"bands": 30, "rows": 10}})
    with pytest.raises(ValueError):
        DedupConfig.model_validate({"text": {"hash": "md5"}})
