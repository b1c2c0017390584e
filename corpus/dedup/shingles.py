"""Shingles: the sets whose Jaccard similarity near-dedup estimates.

A shingle is `n` consecutive tokens joined by one space and encoded as UTF-8 (tokens never contain
whitespace, so the encoding is unambiguous). Two tokenizations:

- `words` (text): `re.findall(r"\\w+", text.lower())`, exactly the word definition of the labelled
  sets' `jaccard_w5` (and of the RefinedWeb/Gopher-style dedup), so our MinHash estimates that Jaccard.
- `code`: identifiers and numbers (`\\w+`) and every other non-space character as its own token
  (operators, brackets, quotes). Whitespace, indentation and line breaks are ignored, so re-indented
  or re-wrapped copies of a file have the same shingles; case is kept because code is case-sensitive.

Documents are read in blocks and tokens are produced lazily, so a 20 MB single-line document never
becomes one 20 MB token list: the signature uses at most `max_shingles` shingles, the first ones in
document order (see `corpus/dedup/config.py: NearDedupConfig.max_shingles`). A document with fewer
than `n` tokens is one shingle of all its tokens; one with no token at all has no shingle.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
from collections.abc import Iterator
from itertools import islice

import numpy as np

TOKEN_PATTERNS: dict[str, re.Pattern[str]] = {
    "words": re.compile(r"\w+"),
    "code": re.compile(r"\w+|[^\w\s]"),
}
LOWERCASE = {"words": True, "code": False}

BLOCK_CHARS = 1 << 20
"""Characters tokenized at a time: bounds the memory a huge document needs while it is read."""
_SPACE = re.compile(r"\s")
_NON_WORD = re.compile(r"\W")


def _cut(text: str, end: int, block: int) -> int:
    """Where a block that should end near `end` ends: after the next whitespace within one more
    block (no token and no lowercasing context, such as the Greek final sigma, crosses whitespace);
    else before the next non-word character (a line with no space, e.g. minified code); else at
    `end` (one word longer than a block is split: documented, harmless for near-dedup)."""
    match = _SPACE.search(text, end, end + block)
    if match:
        return match.end()
    match = _NON_WORD.search(text, end, end + block)
    return match.start() if match else end


def _blocks(text: str, block: int = BLOCK_CHARS) -> Iterator[str]:
    """`text` in blocks of about `block` characters cut between tokens (see `_cut`)."""
    start = 0
    while start < len(text):
        if start + block >= len(text):
            yield text[start:]
            return
        cut = _cut(text, start + block, block)
        yield text[start:cut]
        start = cut


def iter_tokens(text: str, tokens: str) -> Iterator[str]:
    """The tokens of `text` in order (`tokens` is `words` or `code`), produced block by block."""
    pattern = TOKEN_PATTERNS[tokens]
    lower = LOWERCASE[tokens]
    for block in _blocks(text):
        yield from pattern.findall(block.lower() if lower else block)


def shingle_count(num_tokens: int, n: int) -> int:
    """Shingles of a document with `num_tokens` tokens: short documents keep one shingle."""
    if num_tokens == 0:
        return 0
    return max(num_tokens - n + 1, 1)


@dataclasses.dataclass(slots=True)
class ShingleStats:
    """What `iter_shingle_blocks` saw, filled in as it goes."""

    shingles: int = 0
    """Shingles produced (after the cap; repeated shingles counted each time)."""
    capped: bool = False
    """The document had more than `max_shingles` shingles; the rest are not in its signature."""
    short: bool = False
    """The document had fewer than `n` tokens: its one shingle is all of them."""


@dataclasses.dataclass(frozen=True, slots=True)
class ShingleBlock:
    """Consecutive shingles of a document as one UTF-8 buffer of space-joined tokens and the byte
    range of each shingle in it: hashing needs no Python object per shingle."""

    buffer: bytes
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return int(self.starts.size)

    def as_bytes(self) -> list[bytes]:
        """Each shingle as its own bytes object (for hash functions called from Python, tests)."""
        return list(map(self.buffer.__getitem__, map(slice, self.starts.tolist(), self.ends.tolist())))


def ngram_block(tokens: list[str], n: int) -> ShingleBlock:
    """All `n`-grams of `tokens` (one of all of them when there are fewer than `n`).

    The tokens are joined by single spaces and encoded once; a token never contains a space byte
    (tokens hold no whitespace, and UTF-8 continuation bytes are >= 0x80), so the spaces of the
    buffer are exactly the token boundaries: no Python call per token."""
    return joined_ngram_block(" ".join(tokens).encode("utf-8", "surrogatepass"), len(tokens), n)


def joined_ngram_block(buffer: bytes, tokens: int, n: int) -> ShingleBlock:
    """`ngram_block` of the `tokens` tokens whose space-joined UTF-8 is `buffer`."""
    if tokens < n:
        return ShingleBlock(buffer, np.zeros(1, np.int64), np.array([len(buffer)], np.int64))
    spaces = np.flatnonzero(np.frombuffer(buffer, dtype=np.uint8) == 32)
    count = tokens - n + 1
    starts = np.empty(count, dtype=np.int64)
    starts[0] = 0
    starts[1:] = spaces[: count - 1] + 1
    ends = np.empty(count, dtype=np.int64)
    ends[:-1] = spaces[n - 1:]
    ends[-1] = len(buffer)
    return ShingleBlock(buffer, starts, ends)


@functools.cache
def word_char_table() -> np.ndarray:
    """For every code point, whether `\\w` (of a str pattern) matches it: what `str.isalnum()` or "_"
    says, found by the pattern itself over a string of all code points (once per process, ~0.04 s)."""
    every = np.arange(sys.maxunicode + 1, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    table = np.zeros(sys.maxunicode + 1, dtype=bool)
    for run in TOKEN_PATTERNS["words"].finditer(every):
        table[run.start():run.end()] = True
    return table


def joined_words(text: str) -> tuple[bytes, int]:
    """`" ".join(re.findall(r"\\w+", text)).encode("utf-8", "surrogatepass")` and the number of those
    words, computed over the code points with numpy: each word character is kept, each run of other
    characters between two words becomes one space. Five to ten times the regular expression's speed
    on web pages, whose tokenizing was most of a signature's cost."""
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    word = word_char_table()[points]
    after_word = np.zeros_like(word)
    after_word[1:] = word[:-1]
    count = int(np.count_nonzero(word & ~after_word))
    if not count:
        return b"", 0
    kept = np.where(word, points, np.uint32(32))[word | after_word]  # a run's first other character: a space
    if not word[-1]:
        kept = kept[:-1]  # the space after the last word
    return kept.tobytes().decode("utf-32-le", "surrogatepass").encode("utf-8", "surrogatepass"), count


_LAST_LOWERED: list[tuple[str | None, tuple[bytes, int]]] = [(None, (b"", 0))]


def lowered_joined_words(text: str) -> tuple[bytes, int]:
    """`joined_words(text.lower())`, computed once for the text object the previous call saw: in a
    build the decontam filter and MinHash signing read the same document one after the other (the
    decontam filter first in the chain, signing after the chain, in the same fused step). Held as one
    tuple, so a thread sees a text and its own words or a miss."""
    last_text, last_words = _LAST_LOWERED[0]
    if last_text is text:
        return last_words
    words = joined_words(text.lower())
    _LAST_LOWERED[0] = (text, words)
    return words


def iter_shingle_blocks(text: str, tokens: str, n: int, max_shingles: int, block_shingles: int = 8192,
                        stats: ShingleStats | None = None) -> Iterator[ShingleBlock]:
    """The document's shingles in blocks of at most `block_shingles`, the first `max_shingles`
    only. Memory is O(block_shingles) whatever the document's size."""
    stats = stats if stats is not None else ShingleStats()
    if tokens == "words" and len(text) <= BLOCK_CHARS and max_shingles > 0:
        # a document of at most one block of characters (most are): its words at once (`joined_words`)
        buffer, count = lowered_joined_words(text)
        if count == 0:
            return
        every = joined_ngram_block(buffer, count, n)
        stats.shingles, stats.short = min(len(every), max_shingles), count < n
        stats.capped = len(every) > max_shingles
        for start in range(0, stats.shingles, block_shingles):
            end = min(start + block_shingles, stats.shingles)
            yield ShingleBlock(buffer, every.starts[start:end], every.ends[start:end])
        return
    stream = iter_tokens(text, tokens)
    window: list[str] = list(islice(stream, n - 1))
    if len(window) < n - 1:  # the stream is spent: fewer than n - 1 tokens in all
        if window and max_shingles > 0:
            stats.shingles, stats.short = 1, True
            yield ngram_block(window, n)
        return
    while stats.shingles < max_shingles:
        want = min(block_shingles, max_shingles - stats.shingles)
        fresh = list(islice(stream, want))
        if not fresh:
            if stats.shingles == 0 and window:  # exactly n - 1 tokens: one shingle of all of them
                stats.shingles, stats.short = 1, True
                yield ngram_block(window, n)
            return
        window += fresh
        stats.shingles += len(fresh)
        yield ngram_block(window, n)
        window = window[len(fresh):]
    stats.capped = next(stream, None) is not None


def shingles(text: str, tokens: str, n: int, max_shingles: int) -> list[bytes]:
    """All shingles of `text` (capped), in document order, repeats included, as bytes: what
    `datasketch.MinHash.update_batch` is given in the equality tests and the benchmarks."""
    out: list[bytes] = []
    for block in iter_shingle_blocks(text, tokens, n, max_shingles):
        out.extend(block.as_bytes())
    return out
