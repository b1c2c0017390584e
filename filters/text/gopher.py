"""Gopher's quality and repetition filters (Rae et al. 2021, Appendix A.1.1 and Table A1).

Both read the document's words from `lemur_corpus.filters.text.words` (the same tokens datatrove's
English tokenizer produces); the second filter to run reuses the first one's tokens. The order and
the exact arithmetic of every rule follow datatrove's `GopherQualityFilter` /
`GopherRepetitionFilter`, so decisions can be compared one to one (`benchmarks/compare_datatrove.py`,
and `tests/test_text_filters_datatrove.py` against its recorded decisions). A word is a token with a
character outside datatrove's punctuation set (`NOT_WORD_CHARS`).

Repetition works on integer word ids (`word_ids`) and exact n-gram ids, every n-gram size in one
compiled call (`filters/text/kernels.ngram_repetition`): no n-gram string is ever built.

Known differences from datatrove 0.10 (its bugs, not copied), each with a reproduction:
- Its duplicate n-gram rule keys an n-gram by its words joined without spaces (`"".join(words)`), so
  ("ab", "c") and ("a", "bc") are one n-gram there. This page is dropped by datatrove
  (`duplicated_5_n_grams`) and kept by us, its repeated phrase being three different 5-grams:
      amber falcon crossed silent meadow. A farmer walked to the market with his brother on Tuesday morning.
      ambe rfalcon crossed silent meadow. She painted the kitchen window while the children read their letters.
      amber falconc rossed silent meadow. The council will ask an architect to prepare drawings next spring.
- A threshold of 0 switches its rule off (`if self.max_bullet_lines_ratio and ...`), so with
  `max_bullet_lines_ratio=0` it keeps a page of bullets. Ours applies 0 ("drop when any": a page
  with one bullet line among 71 is dropped as `bullet_lines`) and switches a rule off with null;
  `compare_datatrove.py` hands datatrove the smallest positive float for our 0, the same rule there.
- A page without a single token (" \n\t ") with `min_doc_words` off: it raises ZeroDivisionError
  (`text.count("#") / n_words`); we drop it as `no_words`.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from lemur_corpus.document import Document
from lemur_corpus.filters.base import Verdict
from lemur_corpus.filters.text.config import GopherQualityConfig, GopherRepetitionConfig
from lemur_corpus.filters.text.kernels import ngram_repetition
from lemur_corpus.filters.text.words import cached_word_tokens

_BULLETS = ("•", "-")
"""Gopher: "lines starting with a bullet point" (datatrove's reading: `•` or `-`)."""
_ELLIPSES = ("...", "…")
_PARAGRAPH_BREAK = re.compile(r"\n{2,}")
_LINE_BREAKS = re.compile(r"\n+")


# ---------------------------------------------------------------------------------------------
# Quality


NOT_WORD_CHARS = frozenset(
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~«´»։؝؞؟۔܀܁܂߹࠷࠹࠽࠾।॥၊။።፧፨᙮᜵᜶។៕៖៙៚᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᭽᭾᰻᰼᱾᱿–—’“”„…"
    "‼‽⁇⁈⁉∶━►⸮⸼⹓⹔、。〈〉《》「」【】꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟꫰꫱꯫﹒﹖﹗！％（），．１：；？～｡\U00010a56\U00010a57\U00010f55"
    "\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87\U00010f88\U00010f89\U00011047"
    "\U00011048\U000110be\U000110bf\U000110c0\U000110c1\U00011141\U00011142\U00011143\U000111c5"
    "\U000111c6\U000111cd\U000111de\U000111df\U00011238\U00011239\U0001123b\U0001123c\U000112a9"
    "\U0001144b\U0001144c\U000115c2\U000115c3\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd"
    "\U000115ce\U000115cf\U000115d0\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6"
    "\U000115d7\U00011641\U00011642\U0001173c\U0001173d\U0001173e\U00011944\U00011946\U00011a42"
    "\U00011a43\U00011a9b\U00011a9c\U00011c41\U00011c42\U00011ef7\U00011ef8\U00011f43\U00011f44"
    "\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44\U00016e98\U0001bc9f\U0001da88"
) | frozenset(map(chr, (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))))
"""datatrove's `PUNCTUATION_SET` (`datatrove/utils/text.py`, 0.10: its `PUNCTUATION` and
`TERMINAL_PUNCTUATION`): a token made only of these is not a word. ASCII punctuation, sentence
ends of many scripts, a few CJK and fullwidth marks (`１` among them) and control characters; not
`•` `©` `€` `°` `™` `→` or emoji, which are words."""


@lru_cache(maxsize=1 << 16)
def token_kind(token: str) -> tuple[bool, bool]:
    """(is a word, contains a letter). A token is a word unless every character of it is in
    `NOT_WORD_CHARS`, as datatrove counts words: `,` `...` `！` `１` are tokens but not words; `•`,
    `€`, `©` and emoji are words."""
    if token.isalpha():
        return True, True  # no letter is in NOT_WORD_CHARS
    return not NOT_WORD_CHARS.issuperset(token), any(c.isalpha() for c in token)


def quality_signals(text: str, words: Sequence[str], stop_words: frozenset[str]) -> dict[str, float]:
    """Every Gopher quality statistic of a document (`words` are its tokens)."""
    counts = Counter(words)
    # Most tokens are letters only (`str.isalpha`: a word with a letter); those are summed by C-level
    # maps, and only the others go through `token_kind` (a Python-level call per distinct token).
    distinct, frequency = list(counts), list(counts.values())
    letters = list(map(str.isalpha, distinct))
    letter_frequency = list(itertools.compress(frequency, letters))
    n_words = alpha = sum(letter_frequency)
    word_chars = sum(map(operator.mul, map(len, itertools.compress(distinct, letters)), letter_frequency))
    for token, count, is_letters in zip(distinct, frequency, letters, strict=True):
        if is_letters:
            continue
        is_word, has_alpha = token_kind(token)
        if is_word:
            n_words += count
            word_chars += count * len(token)
        alpha += count * has_alpha
    n_tokens = len(words)
    lines = text.splitlines()
    signals: dict[str, float] = {"words": n_words, "tokens": n_tokens,
                                 "stop_words": len(stop_words.intersection(counts))}
    if n_words:
        signals["mean_word_length"] = word_chars / n_words
    if n_tokens:
        signals["hash_word_ratio"] = text.count("#") / n_tokens
        signals["ellipsis_word_ratio"] = (text.count("...") + text.count("…")) / n_tokens
        signals["alpha_word_fraction"] = alpha / n_tokens
    if lines:
        signals["bullet_line_fraction"] = sum(s.lstrip().startswith(_BULLETS) for s in lines) / len(lines)
        signals["ellipsis_line_fraction"] = sum(s.rstrip().endswith(_ELLIPSES) for s in lines) / len(lines)
    return signals


def quality_reason(signals: dict[str, float], config: GopherQualityConfig) -> str:
    """The first Gopher quality rule the document fails (datatrove's order), or ''.

    Without words the mean word length is undefined and its two rules are skipped (datatrove's mean
    of nothing is NaN, which fails no comparison); without tokens at all the ratios below are
    undefined too, and the document is dropped as `no_words` (datatrove raises ZeroDivisionError)."""
    c = config
    words = signals["words"]
    if c.min_words is not None and words < c.min_words:
        return "min_words"
    if c.max_words is not None and words > c.max_words:
        return "max_words"
    if words:
        mean = signals["mean_word_length"]
        if c.min_mean_word_length is not None and mean < c.min_mean_word_length:
            return "min_mean_word_length"
        if c.max_mean_word_length is not None and mean > c.max_mean_word_length:
            return "max_mean_word_length"
    if signals["tokens"] == 0:
        return "no_words"
    if c.max_hash_word_ratio is not None and signals["hash_word_ratio"] > c.max_hash_word_ratio:
        return "hash_word_ratio"
    if c.max_ellipsis_word_ratio is not None and signals["ellipsis_word_ratio"] > c.max_ellipsis_word_ratio:
        return "ellipsis_word_ratio"
    if c.max_bullet_line_fraction is not None and signals["bullet_line_fraction"] > c.max_bullet_line_fraction:
        return "bullet_lines"
    if c.max_ellipsis_line_fraction is not None and signals["ellipsis_line_fraction"] > c.max_ellipsis_line_fraction:
        return "ellipsis_lines"
    if c.min_alpha_word_fraction is not None and signals["alpha_word_fraction"] < c.min_alpha_word_fraction:
        return "alpha_words"
    if c.min_stop_words is not None and signals["stop_words"] < c.min_stop_words:
        return "stop_words"
    return ""


class GopherQualityFilter:
    """Drops documents outside Gopher's word-count, word-length, symbol, bullet, alphabetic and
    stop-word bounds."""

    name = "gopher_quality"

    def __init__(self, config: GopherQualityConfig) -> None:
        self.config = config
        self.stop_words = frozenset(config.stop_words)

    def __call__(self, doc: Document) -> Verdict:
        signals = quality_signals(doc.text, cached_word_tokens(doc.text), self.stop_words)
        reason = quality_reason(signals, self.config)
        return Verdict.dropped(reason, signals) if reason else Verdict.kept(signals)


# ---------------------------------------------------------------------------------------------
# Repetition


def duplicates(parts: Sequence[str]) -> tuple[int, int]:
    """(elements equal to an earlier element, their characters)."""
    seen: set[str] = set()
    count = chars = 0
    for part in parts:
        if part in seen:
            count += 1
            chars += len(part)
        else:
            seen.add(part)
    return count, chars


def word_ids(words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(dense id of each word, in order of first appearance; character length of each word)."""
    # one pass in C: a missing word gets the next id from the counter
    vocabulary: defaultdict[str, int] = defaultdict(itertools.count().__next__)
    ids = np.fromiter(map(vocabulary.__getitem__, words), dtype=np.int64, count=len(words))
    lengths = np.fromiter(map(len, vocabulary), dtype=np.int64, count=len(vocabulary))
    return ids, lengths[ids]


class GopherRepetitionFilter:
    """Drops documents whose lines, paragraphs or word n-grams repeat beyond Gopher's Table A1."""

    name = "gopher_repetition"

    def __init__(self, config: GopherRepetitionConfig) -> None:
        self.config = config
        sizes = [*config.max_top_ngram_char_fraction, *config.max_duplicate_ngram_char_fraction]
        self.max_n = max(sizes, default=1)
        # the duplicate n-gram scan of size n stops past its threshold; other sizes scan to the end
        self.duplicate_limits = np.full(self.max_n + 1, np.inf)
        for n, fraction in config.max_duplicate_ngram_char_fraction.items():
            self.duplicate_limits[n] = fraction

    def setup(self) -> None:
        """Load the compiled n-gram kernel (numba's cache on disk; compiled there on first use) once per
        worker, from `DoFn.setup`, not on a worker's first document."""
        ids = np.arange(2, dtype=np.int64)
        ngram_repetition(ids, ids, 2, 2, np.full(3, np.inf))

    def __call__(self, doc: Document) -> Verdict:
        text = doc.text
        if not text:
            return Verdict.dropped("empty")
        reason, signals = self.judge(text)
        return Verdict.dropped(reason, signals) if reason else Verdict.kept(signals)

    def judge(self, text: str, words: Sequence[str] | None = None) -> tuple[str, dict[str, float]]:
        """(first failed rule or '', signals) of a non-empty text; its words are tokenized only if the
        line and paragraph rules pass, unless given."""
        signals: dict[str, float] = {}
        reason = self._duplicate_reason(text, signals)
        if not reason:
            reason = self._ngram_reason(text, cached_word_tokens(text) if words is None else words, signals)
        return reason, signals

    def _duplicate_reason(self, text: str, signals: dict[str, float]) -> str:
        """Repeated paragraphs, then repeated lines (datatrove's order and splits)."""
        c = self.config
        units = (
            ("paragraph", _PARAGRAPH_BREAK.split(text.strip()), c.max_duplicate_paragraph_fraction,
             c.max_duplicate_paragraph_char_fraction),
            ("line", _LINE_BREAKS.split(text), c.max_duplicate_line_fraction, c.max_duplicate_line_char_fraction),
        )
        for unit, parts, max_fraction, max_char_fraction in units:
            count, chars = duplicates(parts)
            signals[f"duplicate_{unit}_fraction"] = count / len(parts)
            signals[f"duplicate_{unit}_char_fraction"] = chars / len(text)
            if max_fraction is not None and count / len(parts) > max_fraction:
                return f"duplicate_{unit}s"
            if max_char_fraction is not None and chars / len(text) > max_char_fraction:
                return f"duplicate_{unit}_chars"
        return ""

    def _ngram_reason(self, text: str, words: Sequence[str], signals: dict[str, float]) -> str:
        if len(words) < 2 or self.max_n < 2:
            return ""
        length = len(text)
        ids, word_lengths = word_ids(words)
        top_chars, duplicate_chars, most = ngram_repetition(ids, word_lengths, self.max_n, length,
                                                            self.duplicate_limits)
        top = self.config.max_top_ngram_char_fraction
        duplicate = self.config.max_duplicate_ngram_char_fraction
        last_top = max(top, default=0)
        top_failed = duplicate_failed = ""
        # datatrove checks every top n-gram rule (n ascending) before any duplicate n-gram rule.
        for n in range(2, self.max_n + 1):
            if top_chars[n] < 0:  # fewer than n words
                break
            if n in top:
                chars = int(top_chars[n])
                signals[f"top_{n}gram_char_fraction"] = chars / length
                if chars / length > top[n]:
                    top_failed = f"top_{n}gram"
                    break
            if n in duplicate and not duplicate_failed:
                chars = int(duplicate_chars[n])
                signals[f"duplicate_{n}gram_char_fraction"] = chars / length
                if chars / length > duplicate[n]:
                    duplicate_failed = f"duplicate_{n}gram"
            if duplicate_failed and n >= last_top:
                break
            if n >= last_top and most[n] == 1:  # no n-gram repeats, so no longer one does either
                for m in duplicate:
                    if m > n:
                        signals[f"duplicate_{m}gram_char_fraction"] = 0.0
                break
        return top_failed or duplicate_failed
