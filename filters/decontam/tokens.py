"""Words and hashed word n-grams: the one view of text that benchmark items and documents share.

A copy must match however it was laid out, so both sides are reduced to their words: Unicode word
characters (`\\w+`: letters, digits, underscore), lower-cased, with everything between them ignored.
That one rule makes indentation, blank lines, line wrapping, quote style (`'x'`, `"x"`, `'''x'''`),
comment markers (`#`, `//`, `/* */`, `--`, `;`), markdown, HTML-stripped punctuation and operator
spacing invisible, for code and prose alike. GSM8K's calculator annotations (`<<48/2=24>>`) are
removed before the words are taken, on both sides, so an answer copied with or without them reads
the same.

An n-gram is n consecutive words; its 64-bit hash is a polynomial over xxh3 hashes of the words,
finished with splitmix64's mixer, computed with numpy in n vectorized passes. The same words give
the same hashes on every machine (no salted `hash()`, unsigned arithmetic that wraps).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import cast

import numpy as np
import xxhash

from lemur_corpus.dedup.shingles import lowered_joined_words
from lemur_corpus.normalize import normalize_text

TOKENIZATION = "words-v1"
"""Names the rules above; an index records it and is refused by code with other rules."""
WORD = re.compile(r"\w+")
CALCULATOR_ANNOTATION = re.compile(r"<<[^<>\n]{0,200}=[^<>\n]{0,200}>>")
"""GSM8K's `<<expression=result>>` (always holding `=`); C++ `a << b >> c` has no `=` between."""
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.zeros(0, dtype=np.uint64)


def words(text: str) -> list[str]:
    """The lower-cased words of `text`, calculator annotations removed."""
    if "<<" in text:
        text = CALCULATOR_ANNOTATION.sub(" ", text)
    return WORD.findall(text.lower())


def lowered_words(text: str) -> tuple[bytes, int]:
    """The UTF-8 of `words(text)` joined by single spaces, and their number, found with numpy over
    the code points (`dedup.shingles.joined_words`, the same `\\w` table) instead of the regular
    expression; MinHash signing reads the same words of the same text, computed once."""
    if "<<" in text:
        text = CALCULATOR_ANNOTATION.sub(" ", text)
    return lowered_joined_words(text)


def word_bytes(text: str) -> list[bytes]:
    """The UTF-8 bytes of `words(text)` (`lowered_words`), hashed without being encoded again: the
    decontam filter x1.2-1.3 on web pages and code, x1.3-1.6 on whole code files, little on
    documents of ~2 KB, where numpy's cost per call dominates (`benchmarks/decontam_speed.py`)."""
    joined, count = lowered_words(text)
    return joined.split(b" ") if count else []


def benchmark_words(text: str) -> list[str]:
    """The words of a benchmark field, normalized as the build normalizes documents first."""
    return words(normalize_text(text))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit reaches every output bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def utf8_words(tokens: Sequence[str] | Sequence[bytes]) -> Sequence[bytes]:
    """Words as their UTF-8 bytes (`word_bytes` gives them so; `words` gives `str`)."""
    if tokens and isinstance(tokens[0], str):
        return [w.encode("utf-8") for w in cast(Sequence[str], tokens)]
    return cast(Sequence[bytes], tokens)


WORD_HASH_CACHE_SIZE = 1 << 18
"""Words whose hashes a process keeps (then the cache starts again): a few tens of MB at most."""
WORD_HASH_CACHED_BYTES = 64
"""Longer words are hashed every time (rare, and each would hold its bytes in the cache)."""


class _WordHashCache(dict[bytes, int]):
    """xxh3-64 of the words seen before, computed on a miss (`__missing__`): words repeat across a
    worker's documents (Zipf), so most lookups are a dict's C-level `__getitem__`. Bounded; the
    hashes do not depend on what it holds."""

    def __missing__(self, word: bytes) -> int:
        value = xxhash.xxh3_64_intdigest(word)
        if len(word) <= WORD_HASH_CACHED_BYTES:
            if len(self) >= WORD_HASH_CACHE_SIZE:
                self.clear()
            self[word] = value
        return value


_WORD_HASHES = _WordHashCache()


def word_hashes(tokens: Sequence[bytes]) -> np.ndarray:
    """xxh3-64 of each word's UTF-8 bytes, through the process's cache of word hashes (`map` looks
    them up in C; a per-document table of the distinct words cost half again as much)."""
    return np.fromiter(map(_WORD_HASHES.__getitem__, tokens), dtype=np.uint64, count=len(tokens))


def ngram_hashes(tokens: Sequence[str] | Sequence[bytes], n: int) -> np.ndarray:
    """The hashes of the word n-grams of `tokens`, in order (len(tokens) - n + 1 of them, or none)."""
    if len(tokens) < n:
        return _EMPTY
    return ngrams_of(word_hashes(utf8_words(tokens)), n)


def ngrams_of(hashed: np.ndarray, n: int) -> np.ndarray:
    """The n-gram hashes over the word hashes `hashed`, in order (none when fewer than n)."""
    count = len(hashed) - n + 1
    if count <= 0:
        return _EMPTY
    with np.errstate(over="ignore"):
        acc = hashed[:count].copy()
        for j in range(1, n):
            acc = acc * _MULTIPLIER + hashed[j : j + count]
        return _mix(acc)


def fingerprints(hashes: np.ndarray) -> np.ndarray:
    """The 32-bit fingerprints of n-gram hashes (their high half), in order: what an index stores. At
    under a million indexed n-grams a document's n-gram meets a stray fingerprint with probability
    ~2e-4, and a match needs several n-grams of one part (match.py), so chance collisions never add
    up to a match."""
    return (hashes >> np.uint64(32)).astype(np.uint32)


def text_ngrams(text: str, n: int) -> np.ndarray:
    """The n-gram fingerprints of a document's text, in order (repeats included)."""
    return fingerprints(ngram_hashes(word_bytes(text), n))


def distinct_ngrams(text: str, n: int) -> np.ndarray:
    """The distinct n-gram fingerprints of a text, sorted."""
    return np.unique(text_ngrams(text, n))
