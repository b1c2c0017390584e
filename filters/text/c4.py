"""C4's line and page rules (Raffel et al. 2020, §2.2; tensorflow_datasets `c4_utils.py`).

Lines are cleaned first (citation markers removed; lines without terminal punctuation, with fewer
than three words, with a word over 1,000 characters, mentioning "javascript" or a cookie/terms-of-use
phrase are removed), then the page is judged on the lines that remain: fewer than five sentences,
"lorem ipsum" or a curly bracket drop it. A kept page's text is its kept lines, and the verdict says
how many lines each rule removed. Rule order and arithmetic follow datatrove's `C4QualityFilter`.

Sentences are counted like spaCy's `sentencizer` (datatrove's sentence splitter for English), on
spaCy's tokens with its whitespace tokens (in "We won the cup!  !!" the second space starts a
sentence, so that line is two), and only up to `min_sentences`: past that the count cannot change
the decision.

A known difference from datatrove 0.10 (its quirk, not copied): with its terminal-punctuation rule
off (`filter_no_terminal_punct=False`) and no minimum of words per line, it keeps blank lines and
counts one sentence for each (`split_into_sentences("")` returns `[""]`); we skip blank lines (our
`terminal_punctuation: []` with `min_words_per_line: null`; `compare_datatrove.py` reports a
terminal-punctuation setting other than datatrove's as not transferable).
"""

from __future__ import annotations

import re
from collections import Counter

from lemur_corpus.document import Document
from lemur_corpus.filters.base import Verdict
from lemur_corpus.filters.text.config import C4Config
from lemur_corpus.filters.text.words import sentence_count, spacy_tokens
from lemur_corpus.io import read_bytes

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
"""Wikipedia-style markers: `[12]`, `[]`, `[edit]`, `[citation needed]` (a linear pattern)."""
_WORD = re.compile(r"\w+")


def load_bad_words(path: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """(single words, phrases) from a file with one entry per line, lower-cased."""
    entries = {line.strip().lower() for line in read_bytes(path).decode("utf-8").splitlines()}
    entries.discard("")
    words = frozenset(e for e in entries if _WORD.fullmatch(e))
    phrases = tuple(sorted(entries - words))
    return words, phrases


def contains_bad_word(text: str, words: frozenset[str], phrases: tuple[str, ...]) -> bool:
    """Whether `text` contains a listed word (as a whole word) or phrase (not inside a word)."""
    lowered = text.lower()
    if words and not words.isdisjoint(_WORD.findall(lowered)):
        return True
    for phrase in phrases:
        start = lowered.find(phrase)
        while start != -1:
            end = start + len(phrase)
            before_ok = start == 0 or not (lowered[start - 1].isalnum() or lowered[start - 1] == "_")
            after_ok = end == len(lowered) or not (lowered[end].isalnum() or lowered[end] == "_")
            if before_ok and after_ok:
                return True
            start = lowered.find(phrase, start + 1)
    return False


class C4Filter:
    """C4's line removal and page rules; returns the cleaned text of a kept page."""

    name = "c4"

    def __init__(self, config: C4Config) -> None:
        self.config = config
        self.terminal = tuple(config.terminal_punctuation)
        self.policy = tuple(p.lower() for p in config.policy_phrases)
        self.bad_words: tuple[frozenset[str], tuple[str, ...]] | None = None

    def setup(self) -> None:
        if self.config.bad_words_path:
            self.bad_words = load_bad_words(self.config.bad_words_path)

    def __call__(self, doc: Document) -> Verdict:
        c = self.config
        if c.bad_words_path and self.bad_words is None:
            self.setup()
        removed: Counter[str] = Counter()
        kept: list[str] = []
        sentences = 0
        for raw in doc.text.splitlines():
            line = raw.strip()
            if not line:
                continue  # blank lines are layout, not content: they go without being counted
            words = line.split()
            if c.max_word_length is not None and max(map(len, words), default=0) > c.max_word_length:
                removed["lines.too_long_word"] += 1
                continue
            if c.remove_citations and "[" in line:
                line, cited = CITATION.subn("", line)
                removed["citations"] += cited
            if self.terminal and (not line.endswith(self.terminal) or line.endswith("...")):
                removed["lines.no_terminal_punctuation"] += 1
                continue
            if c.min_words_per_line is not None and len(words) < c.min_words_per_line:
                removed["lines.too_few_words"] += 1
                continue
            lowered = line.lower()
            if c.drop_lorem_ipsum and "lorem ipsum" in lowered:
                return self._dropped("lorem_ipsum", kept, removed, sentences)
            if c.remove_javascript_lines and "javascript" in lowered:
                removed["lines.javascript"] += 1
                continue
            if c.drop_curly_bracket and "{" in line:
                return self._dropped("curly_bracket", kept, removed, sentences)
            if self.policy and any(p in lowered for p in self.policy):
                removed["lines.policy"] += 1
                continue
            if c.min_sentences is not None and sentences < c.min_sentences:
                sentences += sentence_count(spacy_tokens(line))
            kept.append(line)
        if c.min_sentences is not None and sentences < c.min_sentences:
            return self._dropped("too_few_sentences", kept, removed, sentences)
        text = "\n".join(kept).strip()
        if self.bad_words is not None and contains_bad_word(text, *self.bad_words):
            return self._dropped("bad_words", kept, removed, sentences)
        signals = self._signals(kept, removed, sentences)
        return Verdict.kept(signals, text=text if text != doc.text else None, removed=dict(removed))

    def _signals(self, kept: list[str], removed: Counter[str], sentences: int) -> dict[str, float]:
        lines_removed = sum(v for k, v in removed.items() if k.startswith("lines."))
        return {"lines_kept": len(kept), "lines_removed": lines_removed, "sentences": sentences}

    def _dropped(self, reason: str, kept: list[str], removed: Counter[str], sentences: int) -> Verdict:
        return Verdict.dropped(reason, self._signals(kept, removed, sentences), removed=dict(removed))
