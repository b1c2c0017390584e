"""A seeded generator of adversarial documents for the differential test of our text filters against
datatrove's (test fixtures, not part of the package: `benchmarks/compare_datatrove.py --fuzz/--record`
imports them as `tests.text_fuzz`).

Every document is built from its own random stream (`random.Random("<seed>:<index>")`, seeded with a
string: SHA-512 based, the same on every platform and Python 3 version), so document i of a set can be
regenerated alone and a set is the same on every machine. The text is ours: a small English
vocabulary, sentence templates and the characters that broke parity before (bullets, symbols, emoji,
whitespace runs, CRLF, combining marks, fullwidth digits, ellipses, curly braces, very long lines and
words, emoticon-like chunks that spaCy's special-case matcher treats across spaces). One kind of
document also takes a window of lines from a real page of `../shared/data/web` (third-party text,
read at run time, never stored): without that folder those documents have no text.

Documents are aimed at the decision boundaries (about 50 words, about five sentences, repetition
near Gopher's fractions), where a one-token difference flips a decision.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

GENERATOR_VERSION = 3
"""Bump when the generator changes what it produces: recordings of an older version are stale."""

STOP = "the be to of and that have with a in is it for on as was at by".split()
NOUNS = (
    "river town council water road bank committee budget library member station brother cup garden "
    "teacher school market price village bridge doctor report window kitchen winter summer student city "
    "letter mountain forest engine harbour museum festival neighbour farmer bakery painter chapter"
).split()
VERBS = (
    "rose met agreed walked won ran sat fell left asked opened closed built painted visited wrote read "
    "carried found lost moved watched helped finished started repaired counted"
).split()
ADJECTIVES = "old big small quiet heavy long short bright early late new local public narrow busy".split()
ADVERBS = "quickly slowly finally again together later nearly always often rarely".split()
EXTRA_TOKENS = (
    "can't won't isn't I'm she's they're we've it's don't Let's gonna cannot Dr. Mr. U.S. e.g. i.e. "
    "etc. a.m. 10km 5$ 3.5 1,000 2024 12pm co-op e-mail well-known x-ray http://example.com/a?b=1 "
    "www.example.org foo@bar.com C++ O'Neil rock'n'roll 3/4 a/b 50% #1 #tag @user :) ;-) (:) "
    "naïve café résumé Zürich São Ærø Łódź Москва Αθήνα 東京 北京市 서울 القاهرة"
).split()
BULLETS = ["•", "-", "·", "►", "▪", "*", "‣", "◦", "–", "—", "→", "✓", "➢", "○", "■", "1.", "a)"]
SYMBOLS = ["©", "®", "™", "€", "£", "$", "°", "→", "★", "§", "¶", "%", "&", "@", "|", "/", "+", "=",
           "±", "×", "÷", "µ", "¥", "₹", "‰", "†", "‡", "※", "♥", "☆", "✔", "←", "↑", "≥", "∞", "√",
           "^", "~", "`", "´", "¨", "¯", "¸", "\\", "<", ">", "_", "*", "#", "·", "‘", "’", "“", "”",
           "„", "«", "»", "‹", "›", "′", "″", "‐", "‑", "‒", "―", "⁄", "․", "‥", "¡", "¿", "։", "჻"]
EMOJI = ["😀", "👍", "👍🏽", "🎉", "🇺🇸", "🇫🇷", "👨‍👩‍👧", "❤️", "☀️", "🙂", "🔥", "✨", "🚀", "💯", "🤔", "⭐",
         "🏳️‍🌈", "✌🏿", "☕", "⚽"]
SPACE_RUNS = ["  ", "   ", "\t", " \t", "\t\t", "\xa0", " \xa0", "\xa0 ", "\u2009", " \u2009 ", "\u3000",
              "\u202f", "\u205f", "\u2002", "\u200a", " \u3000 ", "\x1f", "\u1680", "\x0b", "\x0c", "\x85",
              "\u2028", "\x1c"]
COMBINING = ["\u0301", "\u0300", "\u0308", "\u0302", "\u0327", "\u0303", "\u030a", "\u0323", "\u0331",
             "\u20d7", "\u0336", "\u0489", "\u1dc0", "\ufe20"]
FULLWIDTH_DIGITS = "０１２３４５６７８９"
ENDINGS = [".", ".", ".", "!", "?", '."', ".'", "...", "…", "?!", "!!", " !", " .", "  !!", ". .", ".)", "",
           ":", ";", ",", ".”", "’", "。", "！", "？", "‼", "؟", "।", "．", ".\u0301", "!\u0301",
           # a whitespace token between a sentence end and more punctuation starts a sentence (spaCy)
           ".  !!", "! \t!", ".\u00a0…", ".  ”", "!  ?", ".\u3000)", "?  ...", ".\t.", "!\u2009!", ".   \""]
CITATIONS = ["[1]", "[12]", "[]", "[edit]", "[citation needed]", "[a]", "[ 1 ]"]
POLICY = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
          "use cookies"]
PAGE_SPOILERS = ["lorem ipsum dolor sit amet", "Lorem Ipsum", "{", "}", "{{x}}", "javascript", "JavaScript"]
MATCHER_PHRASES = ["T: (:)h", "x: (:)h,", "\u0303:) )", "We: (:)b", "so: (:)h (:)", ":) (:)c"]
"""Chunks where spaCy's special-case matcher, run over the whole text, matches across a space and so
cancels a merge inside a chunk ("T: (:)h": "(" ":" ")" "h", where "(:)h" alone is "(:" ")" "h")."""
LINE_BREAKS = ["\n", "\n", "\n", "\r\n", "\r", "\n\n", "\r\n\r\n", "\n \n", "\n\t\n", "\n\n\n"]


class Stream:
    """The random choices of one document (only `random()`, stable across Python versions), and how
    adversarial it is: `odd` (symbols, emoji, glued marks), `spaces` (whitespace runs), `endings`
    (odd sentence ends) and `breaks` (CRLF, CR, blank lines) are chances per token, sentence or line."""

    def __init__(self, seed: int, index: int) -> None:
        self.rng = random.Random(f"lemur-text-fuzz:{seed}:{index}")
        self.odd = self.spaces = self.endings = self.breaks = 0.0

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def below(self, n: int) -> int:
        return min(int(self.rng.random() * n), n - 1)

    def between(self, low: int, high: int) -> int:
        return low + self.below(high - low + 1)

    def pick(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def knobs(self, odd: Sequence[float], spaces: Sequence[float] = (0.0, 0.02, 0.05, 0.15),
              endings: Sequence[float] = (0.0, 0.1, 0.3), breaks: Sequence[float] = (0.0, 0.1, 0.4)) -> None:
        self.odd = odd[self.below(len(odd))]
        self.spaces = spaces[self.below(len(spaces))]
        self.endings = endings[self.below(len(endings))]
        self.breaks = breaks[self.below(len(breaks))]


def word(s: Stream) -> str:
    roll = s.rng.random()
    if roll < 0.30:
        return s.pick(STOP)
    if roll < 0.55:
        return s.pick(NOUNS)
    if roll < 0.70:
        return s.pick(VERBS)
    if roll < 0.80:
        return s.pick(ADJECTIVES)
    if roll < 0.85:
        return s.pick(ADVERBS)
    return s.pick(EXTRA_TOKENS)


def odd_token(s: Stream) -> str:
    """A token that is not a plain word: a symbol, emoji, bullet, fullwidth digits, an ellipsis."""
    roll = s.rng.random()
    if roll < 0.35:
        return s.pick(SYMBOLS)
    if roll < 0.55:
        return s.pick(EMOJI)
    if roll < 0.65:
        return s.pick(BULLETS)
    if roll < 0.75:
        return "".join(s.pick(FULLWIDTH_DIGITS) for _ in range(s.between(1, 3)))
    if roll < 0.85:
        return s.pick(["...", "…", "....", "..", "……", ". . .", "#", "##", "#hash"])
    if roll < 0.9:
        return s.pick(MATCHER_PHRASES)
    return s.pick(SYMBOLS) + s.pick(EMOJI + SYMBOLS)


def attach(s: Stream, token: str) -> str:
    """A word with something glued to it: punctuation, a symbol, an emoji, a combining mark."""
    roll = s.rng.random()
    if roll < 0.25:
        return token + s.pick(SYMBOLS + EMOJI)
    if roll < 0.45:
        return s.pick(SYMBOLS + EMOJI + ["(", "'", '"', "“", "‘", "["]) + token
    if roll < 0.65:
        return token + s.pick([",", ";", ":", ")", "'", '"', "”", "’s", "'s", "-", "—", "/", "…", "..."])
    if roll < 0.85:
        position = s.between(0, len(token))
        return token[:position] + s.pick(COMBINING) + token[position:]
    return unicodedata.normalize("NFD", token)


def sentence(s: Stream, low: int = 2, high: int = 14) -> str:
    """Words of our vocabulary, some adversarial, ending in a (possibly odd) terminal mark."""
    tokens = []
    for _ in range(s.between(low, high)):
        if s.chance(s.odd):
            tokens.append(odd_token(s))
        elif s.chance(s.odd):
            tokens.append(attach(s, word(s)))
        else:
            tokens.append(word(s))
    if s.chance(0.8):
        tokens[0] = tokens[0][:1].upper() + tokens[0][1:]
    if s.chance(s.odd / 2):
        tokens.insert(s.below(len(tokens) + 1), s.pick(CITATIONS))
    return join_words(s, tokens) + (s.pick(ENDINGS) if s.chance(s.endings) else s.pick([".", ".", "!", "?"]))


def join_words(s: Stream, tokens: list[str]) -> str:
    out = tokens[0]
    for token in tokens[1:]:
        out += (s.pick(SPACE_RUNS) if s.chance(s.spaces) else " ") + token
    return out


def line(s: Stream, low: int = 2, high: int = 14) -> str:
    text = join_words(s, [sentence(s, low, high) for _ in range(s.between(1, 3))])
    if s.chance(s.odd / 2):
        text = s.pick(BULLETS) + s.pick([" ", "", "  ", "\t"]) + text
    if s.chance(s.spaces / 2):
        text = s.pick(SPACE_RUNS[:12]) + text
    if s.chance(s.spaces / 2):
        text = text + s.pick(SPACE_RUNS[:12])
    if s.chance(s.odd / 8):
        spoiler = s.pick(PAGE_SPOILERS + POLICY + CITATIONS)
        words = text.split(" ")
        words.insert(s.below(len(words) + 1), spoiler)
        text = " ".join(words)
    return text


def join_lines(s: Stream, lines: list[str]) -> str:
    if not lines:
        return ""
    out = lines[0]
    for text in lines[1:]:
        out += (s.pick(LINE_BREAKS) if s.chance(s.breaks) else "\n") + text
    return out


# ---------------------------------------------------------------------------------------------
# Kinds of documents


def prose(s: Stream, _pages: Sequence[str]) -> str:
    """A few lines of sentences: around five sentences."""
    s.knobs(odd=(0.0, 0.05, 0.1, 0.2, 0.35))
    return join_lines(s, [line(s) for _ in range(s.between(2, 9))])


def boundary(s: Stream, _pages: Sequence[str]) -> str:
    """Clean prose of about 50 words and five sentences (Gopher's and C4's minimums) with a few odd
    tokens, whitespace runs and line breaks: where what counts as a word or a sentence decides."""
    s.knobs(odd=(0.01, 0.03, 0.06), spaces=(0.0, 0.05, 0.15, 0.3), endings=(0.0, 0.1, 0.2, 0.35))
    target = s.between(40, 62)
    lines: list[str] = []
    while sum(len(text.split()) for text in lines) < target:
        lines.append(line(s, 5, 12))
    return join_lines(s, lines)


def listing(s: Stream, _pages: Sequence[str]) -> str:
    """Bulleted or short lines, some without terminal punctuation."""
    s.knobs(odd=(0.0, 0.1), breaks=(0.0, 0.3))
    bullet = s.pick(BULLETS)
    lines = []
    for _ in range(s.between(3, 25)):
        text = join_words(s, [word(s) for _ in range(s.between(1, 8))])
        if s.chance(0.7):
            text = s.pick([bullet, bullet, s.pick(BULLETS)]) + s.pick([" ", "", "  "]) + text
        if s.chance(0.5):
            text += s.pick(ENDINGS)
        lines.append(text)
    return join_lines(s, lines)


def repetitive(s: Stream, _pages: Sequence[str]) -> str:
    """Repeated lines, paragraphs and n-grams at rates near Gopher's Table A1 fractions."""
    s.knobs(odd=(0.0, 0.1, 0.2))
    pool = [line(s) for _ in range(s.between(1, 6))]
    phrase = join_words(s, [word(s) for _ in range(s.between(2, 11))])
    parts = []
    for _ in range(s.between(3, 16)):
        roll = s.rng.random()
        if roll < 0.45:
            parts.append(s.pick(pool))
        elif roll < 0.75:
            parts.append(line(s))
        else:
            parts.append(" ".join([phrase] * s.between(1, 4)) + s.pick(ENDINGS))
    separator = s.pick(["\n", "\n\n", "\r\n", "\n\n\n"])
    return separator.join(parts) if s.chance(0.6) else join_lines(s, parts)


def shifted_words(s: Stream, _pages: Sequence[str]) -> str:
    """A phrase repeated with a letter moved across a word boundary each time ("the old dog",
    "th eold dog"): different words, the same letters. datatrove keys its duplicate n-grams by the
    words joined without spaces, so it counts these as repeats; we do not (its documented bug)."""
    s.knobs(odd=(0.0, 0.05))
    base = [s.pick(NOUNS + VERBS + ADJECTIVES) for _ in range(s.between(5, 12))]
    sentences = []
    for _ in range(s.between(3, 9)):
        shifted = list(base)
        k = s.below(len(shifted) - 1)
        if s.chance(0.5) and len(shifted[k]) > 1:
            shifted[k], shifted[k + 1] = shifted[k][:-1], shifted[k][-1] + shifted[k + 1]
        elif len(shifted[k + 1]) > 1:
            shifted[k], shifted[k + 1] = shifted[k] + shifted[k + 1][0], shifted[k + 1][1:]
        sentences.append(" ".join(shifted) + ".")
        for _ in range(s.between(0, 2)):
            sentences.append(sentence(s))
    return join_lines(s, [" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)])


def symbols(s: Stream, _pages: Sequence[str]) -> str:
    """Text dense with symbols, emoji, hashes, ellipses and fullwidth digits."""
    s.knobs(odd=(0.3, 0.5, 0.7))
    return join_lines(s, [line(s) for _ in range(s.between(2, 8))])


def long_lines(s: Stream, _pages: Sequence[str]) -> str:
    """A very long line (thousands of words), or a word of about 1,000 characters."""
    s.knobs(odd=(0.0, 0.1, 0.3))
    lines = [line(s) for _ in range(s.between(1, 6))]
    roll = s.rng.random()
    if roll < 0.4:
        lines.insert(s.below(len(lines) + 1), " ".join(sentence(s) for _ in range(s.between(200, 900))))
    elif roll < 0.8:
        size = s.pick([999, 1000, 1001, 1002, 2000])
        glued = (s.pick(["a", "x", "ab", "é", "-"]) * size)[:size]
        lines.insert(s.below(len(lines) + 1), f"The {glued} word is here and it is long.")
    else:
        lines.insert(s.below(len(lines) + 1), "{" * s.between(1, 3) + " ".join(word(s) for _ in range(3000)))
    return join_lines(s, lines)


def web_window(s: Stream, pages: Sequence[str]) -> str:
    """A window of lines of a real page, perturbed like the generated kinds."""
    s.knobs(odd=(0.0, 0.0, 0.05, 0.15, 0.3))
    page = pages[s.below(len(pages))].splitlines()
    start = s.below(max(1, len(page)))
    window = page[start : start + s.between(3, 40)]
    perturbed = []
    for text in window:
        if text and s.chance(s.odd):
            tokens = text.split(" ")
            position = s.below(len(tokens))
            roll = s.rng.random()
            if roll < 0.4:
                tokens[position] = attach(s, tokens[position]) if tokens[position] else odd_token(s)
            elif roll < 0.7:
                tokens.insert(position, odd_token(s))
            else:
                tokens = [join_words(s, tokens)]
            text = " ".join(tokens)
        elif text and s.chance(s.spaces):
            text = join_words(s, text.split(" "))
        if s.chance(s.endings / 2):
            text += s.pick(ENDINGS)
        perturbed.append(text)
    return join_lines(s, perturbed)


KINDS: dict[str, tuple[float, Callable[[Stream, Sequence[str]], str]]] = {
    "boundary": (0.30, boundary),
    "prose": (0.16, prose),
    "listing": (0.07, listing),
    "repetitive": (0.12, repetitive),
    "shifted_words": (0.02, shifted_words),
    "symbols": (0.07, symbols),
    "long_lines": (0.04, long_lines),
    "web": (0.22, web_window),
}


def fuzz_document(seed: int, index: int, pages: Sequence[str] | None) -> tuple[str, str | None]:
    """(kind, text) of document `index` of set `seed`. Without `pages` (the real data is absent) a web
    window has no text (None); every other document is the same with or without them."""
    s = Stream(seed, index)
    roll = s.rng.random()
    for kind, (weight, make) in KINDS.items():
        roll -= weight
        if roll < 0 or kind == "web":
            if kind == "web" and not pages:
                return kind, None
            return kind, make(s, pages or ())
    raise AssertionError("unreachable")


def fuzz_documents(seed: int, count: int, pages: Sequence[str] | None) -> list[tuple[str, str, str | None]]:
    """(id, kind, text) of the `count` documents of set `seed`."""
    return [(f"fuzz-{seed}-{i}", *fuzz_document(seed, i, pages)) for i in range(count)]


def web_pages(folder: Path) -> list[str]:
    """The texts of the JSON Lines pages under `folder` (web/*.jsonl.zst), in a fixed order."""
    from tests.conftest import read_jsonl

    pages: list[str] = []
    for path in sorted(folder.glob("*.jsonl.zst")):
        pages.extend(record["text"] for record in read_jsonl(path) if record.get("text"))
    return pages


# ---------------------------------------------------------------------------------------------
# The recorded sets: `benchmarks/compare_datatrove.py --record` runs datatrove on each and writes its
# decisions to tests/data/datatrove_decisions.json; tests/test_text_filters_datatrove.py replays them.

THRESHOLD_VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {},
    # 0 is a threshold in our config (and null switches a rule off); datatrove switches a rule off
    # at 0, so the recorder hands it the equivalent positive threshold (`upper_bound`).
    "zeros": {
        "gopher_quality": {"min_words": 0, "max_bullet_line_fraction": 0, "max_ellipsis_line_fraction": 0,
                           "min_alpha_word_fraction": 0, "min_stop_words": 0},
        "gopher_repetition": {"max_duplicate_line_fraction": 0, "max_duplicate_paragraph_char_fraction": 0},
        "c4": {"min_sentences": 0, "min_words_per_line": 0},
    },
    "nulls": {
        "gopher_quality": {"min_words": None, "max_mean_word_length": None, "max_hash_word_ratio": None,
                           "max_ellipsis_word_ratio": None, "min_stop_words": None},
        "gopher_repetition": {"max_duplicate_paragraph_fraction": None, "max_duplicate_line_char_fraction": None},
        "c4": {"min_sentences": None, "max_word_length": None, "min_words_per_line": None},
    },
}
"""Named threshold settings (overrides of the text filters' defaults) the sets are judged under."""


@dataclass(frozen=True)
class FuzzSet:
    name: str
    seed: int
    count: int
    variant: str = "default"
    purpose: str = field(default="", compare=False)


RECORDED_SETS = (
    FuzzSet("dev", 1, 3200, purpose="the set the three causes of issue 17 were found and fixed on"),
    FuzzSet("holdout", 2, 3200, purpose="unseen while fixing: generated and recorded after the fixes"),
    FuzzSet("zeros", 3, 800, "zeros", purpose="thresholds of 0 (datatrove's switch-off value)"),
    FuzzSet("nulls", 4, 800, "nulls", purpose="rules switched off"),
)


def variant_config(variant: str) -> dict[str, Any]:
    """`TextFiltersConfig` fields of a threshold variant (the defaults with its overrides)."""
    from lemur_corpus.filters.text import TextFiltersConfig

    config = TextFiltersConfig().model_dump(mode="python")
    for section, overrides in THRESHOLD_VARIANTS[variant].items():
        config[section].update(overrides)
    return config


# ---------------------------------------------------------------------------------------------
# datatrove's GopherRepetitionFilter, rule for rule (0.10, `pipeline/filters/gopher_repetition_filter.py`),
# to tell its n-gram key bug from any other difference: it keys the n-grams of its duplicate n-gram
# rule by the words joined without spaces, so ("ab", "c") and ("a", "bc") are the same n-gram there.


def reference_repetition_reason(text: str, words: Sequence[str], thresholds: dict[str, Any], join_key: bool) -> str:
    """The first repetition rule `text` fails (our rule names), or '': datatrove's order and arithmetic,
    on the given words. `join_key`: key duplicate n-grams as datatrove does (words joined without
    spaces); otherwise by the words themselves, as our filter does."""
    import re
    from collections import Counter

    t = thresholds
    if not text:
        return "empty"

    def duplicates(parts: list[str]) -> tuple[int, int]:
        seen: set[str] = set()
        count = chars = 0
        for part in parts:
            if part in seen:
                count, chars = count + 1, chars + len(part)
            seen.add(part)
        return count, chars

    for unit, parts in (("paragraph", re.split(r"\n{2,}", text.strip())), ("line", re.split(r"\n+", text))):
        count, chars = duplicates(parts)
        fraction, char_fraction = t[f"max_duplicate_{unit}_fraction"], t[f"max_duplicate_{unit}_char_fraction"]
        if fraction is not None and count / len(parts) > fraction:
            return f"duplicate_{unit}s"
        if char_fraction is not None and chars / len(text) > char_fraction:
            return f"duplicate_{unit}_chars"
    for n, fraction in sorted((int(n), f) for n, f in t["max_top_ngram_char_fraction"].items()):
        grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        if grams:
            top, count = Counter(grams).most_common(1)[0]
            if len(top) * count / len(text) > fraction:
                return f"top_{n}gram"
    for n, fraction in sorted((int(n), f) for n, f in t["max_duplicate_ngram_char_fraction"].items()):
        if reference_duplicate_chars(words, n, join_key=join_key) / len(text) > fraction:
            return f"duplicate_{n}gram"
    return ""


def reference_duplicate_chars(words: Sequence[str], n: int, *, join_key: bool = False) -> int:
    """datatrove's `find_all_duplicate`: characters of the n-grams seen before, skipping past each.
    It keys an n-gram by `"".join(words)` (`join_key`, its bug); on word tuples it is the definition
    our numpy version follows."""
    seen: set[object] = set()
    chars = index = 0
    while index < len(words) - n + 1:
        gram = words[index : index + n]
        key: object = "".join(gram) if join_key else tuple(gram)
        if key in seen:
            chars += sum(map(len, gram))
            index += n
        else:
            seen.add(key)
            index += 1
    return chars
