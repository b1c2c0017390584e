"""Text filters: fastText language ID, Gopher repetition and quality, C4 rules.

The filters, by name, in their default run order (the first drop ends the chain, so each filter only
sees what the ones before it kept). These names are what `filters.text.filters` in the build config
and `corpus filter --kind text --filters a,b` accept; drop reasons read `<name>.<rule>`:

Each filter: its name, the rules it drops by, then where the rules come from:

- `decontam`: `<benchmark>` (`decontam.gsm8k`, `decontam.mmlu`, ...); the page holds an item of a
  benchmark Lemur is judged on: n-grams of its words against the shipped index
  (`lemur_corpus.filters.decontam`, shared with the code chain). First, because it must see every
  page anyway (the contamination report counts contaminated pages other filters drop too) and the
  text as read, before C4 removes lines; it costs about a third of language ID (benchmarks/decontam_speed.py).
- `lid`: `language`, `low_score`, `no_text`; RefinedWeb: fastText lid.176, top language allowed and
  scoring >= 0.65.
- `gopher_repetition`: `duplicate_paragraphs`, `duplicate_paragraph_chars`, `duplicate_lines`,
  `duplicate_line_chars`, `top_<n>gram`, `duplicate_<n>gram`, `empty`; Gopher Table A1.
- `gopher_quality`: `min_words`, `max_words`, `no_words`, `min_mean_word_length`,
  `max_mean_word_length`, `hash_word_ratio`, `ellipsis_word_ratio`, `bullet_lines`, `ellipsis_lines`,
  `alpha_words`, `stop_words`; Gopher App. A.1.1.
- `c4`: `too_few_sentences`, `lorem_ipsum`, `curly_bracket`, `bad_words` (and removes lines); C4 §2.2.
- `pii`: `too_many_hits` (only with `pii.max_hits` set); redacts e-mail addresses, public IP addresses
  and secrets (`lemur_corpus.filters.pii`, shared with the code chain). Last, so it redacts the text
  that is kept, as C4 left it.

Why this order (cost measured per core on ../shared/data/web): language ID costs about what one
Gopher filter costs (2.4 vs 2.1-2.3 MB/s) but removes most of a multilingual crawl, so it goes first
and spares the others most documents. The two Gopher filters share one tokenization (the second
reuses the first's words); on the English pages either order of the two costs the same, so they run
in FineWeb's order, repetition first (its line and paragraph checks need no words). C4 is the
cheapest (12 MB/s) yet goes last because it edits the text: the Gopher statistics are measured on
the page as crawled, as in RefinedWeb and FineWeb.
"""

from __future__ import annotations

from collections.abc import Callable

from lemur_corpus.filters.base import Filter, build_chain
from lemur_corpus.filters.decontam import DecontamFilter
from lemur_corpus.filters.pii import PiiFilter
from lemur_corpus.filters.text.c4 import C4Filter
from lemur_corpus.filters.text.config import TEXT_FILTER_NAMES, TextFiltersConfig
from lemur_corpus.filters.text.gopher import GopherQualityFilter, GopherRepetitionFilter
from lemur_corpus.filters.text.lid import LanguageIdFilter

_FACTORIES: dict[str, Callable[[TextFiltersConfig], Filter]] = {
    "decontam": lambda c: DecontamFilter(c.decontam),
    "lid": lambda c: LanguageIdFilter(c.lid),
    "gopher_repetition": lambda c: GopherRepetitionFilter(c.gopher_repetition),
    "gopher_quality": lambda c: GopherQualityFilter(c.gopher_quality),
    "c4": lambda c: C4Filter(c.c4),
    "pii": lambda c: PiiFilter(c.pii),
}
assert tuple(_FACTORIES) == TEXT_FILTER_NAMES


def build_text_filters(config: TextFiltersConfig, only: list[str] | None = None) -> list[Filter]:
    """The text filters in run order (cheap before expensive); `only` selects and orders by name.

    Without `only`, the configured `filters` list decides (all of them by default)."""
    return build_chain("text", list(only) if only is not None else list(config.filters), _FACTORIES, config)


def check_text_filters(config: TextFiltersConfig, only: list[str] | None = None) -> None:
    """Check on the driver what a worker would load (a configured fastText model, the decontamination
    index), so a file that does not load is a ConfigError at start-up rather than a hung or crashed worker."""
    for text_filter in build_text_filters(config, only):
        if isinstance(text_filter, LanguageIdFilter):
            text_filter.check()
        elif isinstance(text_filter, DecontamFilter):
            text_filter.setup()


__all__ = ["TEXT_FILTER_NAMES", "TextFiltersConfig", "build_text_filters", "check_text_filters"]
