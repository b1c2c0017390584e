"""Adversarial input: the text filters' work grows linearly with the text, whatever the text.

Two kinds of evidence, neither a stopwatch:
- every regular expression of the text filters is checked structurally: no unbounded repetition sits
  inside another repetition (the shape behind catastrophic backtracking), so each match attempt is
  linear and `search`/`finditer`/`split` stay linear overall;
- the Python work is counted: the lines our filter modules execute (`sys.settrace`) on pathological
  strings of size n and 4n. Linear work means about 4x the lines; quadratic work would mean 16x.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

try:  # Python 3.11+: the regex parser moved
    from re import _constants as sre_constants  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

from lemur_corpus.document import Document
from lemur_corpus.filters.text import c4, gopher, lid, spacy_tables, words
from lemur_corpus.filters.text.config import C4Config, GopherQualityConfig, GopherRepetitionConfig
from tests.conftest import executed_lines as count_executed_lines

MODULES = (words, spacy_tables, gopher, c4, lid)
REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, getattr(sre_constants, "POSSESSIVE_REPEAT", None)}


def compiled_patterns() -> list[tuple[str, re.Pattern[str]]]:
    found = []
    for module in MODULES:
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                found.append((f"{module.__name__}.{name}", value))
    return found


def nested_unbounded_repeats(parsed: Any, inside_repeat: bool = False) -> list[str]:
    """Descriptions of unbounded repeats found inside another repeat that can loop (max > 1)."""
    problems = []
    for op, arg in parsed:
        if op in REPEATS:
            low, high, body = arg
            unbounded = high == sre_constants.MAXREPEAT
            if unbounded and inside_repeat:
                problems.append(f"unbounded repeat {{{low},}} nested in a repeat")
            problems += nested_unbounded_repeats(body, inside_repeat or high > 1)
        elif op == sre_constants.SUBPATTERN:
            problems += nested_unbounded_repeats(arg[-1], inside_repeat)
        elif op == sre_constants.BRANCH:
            for branch in arg[1]:
                problems += nested_unbounded_repeats(branch, inside_repeat)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            problems += nested_unbounded_repeats(arg[1], inside_repeat)
    return problems


def test_there_are_patterns_to_check() -> None:
    names = {name for name, _ in compiled_patterns()}
    assert {"lemur_corpus.filters.text.words._INFIX", "lemur_corpus.filters.text.c4.CITATION",
            "lemur_corpus.filters.text.gopher._LINE_BREAKS"} <= names


@pytest.mark.parametrize("name,pattern", compiled_patterns(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_regex_nests_unbounded_repetition(name: str, pattern: re.Pattern[str]) -> None:
    assert nested_unbounded_repeats(sre_parse.parse(pattern.pattern, pattern.flags)) == [], name


def test_the_structural_check_catches_catastrophic_patterns() -> None:
    for bad in (r"(a+)+b", r"(?:\w+\s?)*$", r"(x|y+)*z"):
        assert nested_unbounded_repeats(sre_parse.parse(bad)), bad
    for fine in (r"\[\d*]", r"(?:ab){2,5}", r"a{0,62}b"):
        assert not nested_unbounded_repeats(sre_parse.parse(fine)), fine


# ---------------------------------------------------------------------------------------------
# Counted work


def executed_lines(run: Callable[[], object]) -> int:
    """Lines executed in the text filter modules while `run` runs."""
    words._CHUNK_CACHE.clear()
    return count_executed_lines(run, MODULES)


PATHOLOGICAL: dict[str, Callable[[int], str]] = {
    "open_brackets": lambda n: "(" * n,
    "dots": lambda n: "." * n,
    "letter_dot": lambda n: "a." * n,
    "citation_prefix": lambda n: "[1" * n,
    "hyphens_between_letters": lambda n: "a-" * n,
    "apostrophe_s": lambda n: "'s" * n,
    "url_labels": lambda n: "http://" + "a." * n + "b",
    "at_signs": lambda n: "a@" * n + ".com",
    "emoticons": lambda n: ":)" * n,
    "quotes_and_periods": lambda n: "\".'" * n,
    "newlines": lambda n: "x\n" * n,
    "blank_paragraphs": lambda n: "x\n\n" * n,
    "one_word_repeated": lambda n: "spam " * n,
    "distinct_words": lambda n: " ".join(f"w{i}" for i in range(n)),
    "curly_lines": lambda n: "Hello there my friend {.\n" * n,
    "whitespace_tokens": lambda n: "Done!  !! \t" * n,
    "one_space_run": lambda n: "a" + " " * n + "b",
    "matches_across_chunks": lambda n: "T: (:)h " * n,
    "sentences_with_whitespace_tokens": lambda n: "We won the cup!  !! And then?\u00a0Yes.\n" * n,
}

FILTERS: dict[str, Callable[[], Callable[[Document], object]]] = {
    "words": lambda: lambda d: words.word_tokens(d.text),
    "spacy_tokens": lambda: lambda d: words.spacy_tokens(d.text),
    "gopher_repetition": lambda: gopher.GopherRepetitionFilter(GopherRepetitionConfig()),
    "gopher_quality": lambda: gopher.GopherQualityFilter(GopherQualityConfig()),
    "c4": lambda: c4.C4Filter(C4Config()),
}


@pytest.mark.parametrize("shape", sorted(PATHOLOGICAL))
@pytest.mark.parametrize("filter_name", sorted(FILTERS))
def test_work_grows_linearly_on_pathological_text(shape: str, filter_name: str) -> None:
    run = FILTERS[filter_name]()
    small, large = (Document(id="t/x", source="s", kind="text", text=PATHOLOGICAL[shape](n)) for n in (600, 2400))
    lines_small = executed_lines(lambda: run(small))
    lines_large = executed_lines(lambda: run(large))
    # Linear: ~4x. Allow fixed costs and rounding, reject anything near quadratic (16x).
    assert lines_large <= 6 * lines_small + 200, (shape, filter_name, lines_small, lines_large)


def test_a_chunk_beyond_the_cap_is_one_token_and_costs_no_per_character_work() -> None:
    text = "(" * (words.MAX_CHUNK + 1)
    assert words.word_tokens(text) == [text]
    assert executed_lines(lambda: words.word_tokens(text)) < 50
