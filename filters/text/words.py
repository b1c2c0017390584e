"""Words and sentences for the Gopher and C4 rules, compatible with datatrove's English tokenizer.

Gopher's thresholds (mean word length, share of words with a letter, n-gram character fractions) and
C4's sentence minimum depend on what counts as a word. datatrove, the implementation our users compare
us with, uses spaCy's rule-based English tokenizer (`spacy.blank("en")`, no model) and its
`sentencizer`. Running spaCy per document would dominate our cost, so this module re-implements the
same algorithm (`Tokenizer._split_affixes` / `_attach_tokens` and `Sentencizer.predict`, spaCy 3.8)
with plain string operations: whitespace chunks, then prefixes and suffixes peeled off one at a time,
then special cases (contractions, abbreviations; `spacy_tables`), URLs and infixes. Two things spaCy
does over the whole text are done here too, where they can matter: whitespace runs other than one
space are tokens (`spacy_tokens`, for the sentencizer), and the special-case matcher can match across
chunks, which cancels a merge inside a chunk (`_needs_joining`).

The one known difference: a whitespace-free run over `MAX_CHUNK` characters stays one token, where
spaCy would peel its affixes (measured on ../shared/data/web: one of 2,751 documents, a 330,000-
character JSON blob, tokenized differently, decided the same).

Every step is linear in the length of the text: prefixes and suffixes are found by looking at the
characters at the two ends (never by searching the whole chunk), chunks are walked with indices (no
re-slicing), and the only regular expressions have no nested unbounded repetition.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import cast

from lemur_corpus.filters.text.spacy_tables import SENTENCE_END_CHARS, SPECIAL_CASES

# ---------------------------------------------------------------------------------------------
# Character classes, as spaCy's `lang/char_classes.py` defines them: Latin (with its case from
# Unicode), a few cased Cyrillic and Greek alphabets, and "uncased" scripts, which spaCy counts as
# both lower- and upper-case. Letters of other scripts (Thai, Georgian...) are not ALPHA for spaCy.

_LATIN_RANGES = (
    (0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x24F), (0x250, 0x2AF),
    (0x1D00, 0x1D25), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A), (0x1E00, 0x1EFF), (0x2C60, 0x2C7B),
    (0x2C7E, 0x2C7F), (0xA722, 0xA76F), (0xA771, 0xA787), (0xA78B, 0xA78E), (0xA790, 0xA7B9),
    (0xA7FA, 0xA7FA), (0xAB30, 0xAB5A), (0xAB60, 0xAB64), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A),
)
_CYRILLIC_GREEK_LOWER = "ёа-яәөүҗңһα-ωάέίόώήύіїєґѓѕјљњќѐѝ"
_CYRILLIC_GREEK_UPPER = "ЁА-ЯӘӨҮҖҢҺΑ-ΩΆΈΊΌΏΉΎІЇЄҐЃЅЈЉЊЌЀЍ"
_UNCASED = (
    "\u1200-\u137F\u0980-\u09FF\u0591-\u05F4\uFB1D-\uFB4F"  # Ethiopic, Bengali, Hebrew
    "\u0620-\u064A\u066E-\u06D5\u06E5-\u06FF\u0750-\u077F\u08A0-\u08BD\uFB50-\uFBB1"  # Arabic
    "\uFBD3-\uFD3D\uFD50-\uFDC7\uFDF0-\uFDFB\uFE70-\uFEFC\U0001EE00-\U0001EEBB"
    "\u0D80-\u0DFF\u0900-\u097F\u0C80-\u0CFF\u0B80-\u0BFF\u0C00-\u0C7F"  # Sinhala, Indic
    "\uAC00-\uD7AF\u1100-\u11FF\u3040-\u309F\u30A0-\u30FF"  # Hangul, kana
    "\u4E00-\u9FFF\u3400-\u4DBF\U00020000-\U0002EBEF\u2E80-\u2EFF\u2F00-\u2FDF"  # CJK
    "\u2FF0-\u2FFF\u3000-\u303F\u31C0-\u31EF\u3200-\u32FF\u3300-\u33FF\uF900-\uFAFF"
    "\uFE30-\uFE4F\U0001F200-\U0001F2FF\U0002F800-\U0002FA1F"
)


def _latin_chars(predicate: Callable[[str], bool]) -> str:
    return "".join(
        re.escape(chr(cp)) for a, b in _LATIN_RANGES for cp in range(a, b + 1) if predicate(chr(cp))
    )


_LATIN = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in _LATIN_RANGES)
_ALPHA = f"[{_LATIN}{_CYRILLIC_GREEK_LOWER}{_CYRILLIC_GREEK_UPPER}{_UNCASED}]"
_ALPHA_OR_DIGIT = f"[{_LATIN}{_CYRILLIC_GREEK_LOWER}{_CYRILLIC_GREEK_UPPER}{_UNCASED}0-9]"
_LOWER = f"{_latin_chars(str.islower)}{_CYRILLIC_GREEK_LOWER}{_UNCASED}"
_UPPER = f"{_latin_chars(str.isupper)}{_CYRILLIC_GREEK_UPPER}{_UNCASED}"

_PUNCT = "… , : ; ! ? ¿ ؟ ¡ ( ) [ ] { } < > _ # * & 。 ？ ！ ， 、 ； ： ～ · । ، ۔ ؛ ٪".split()
_QUOTES = "' \" ” “ ` ‘ ´ ’ ‚ , „ » « 「 」 『 』 （ ） 〔 〕 【 】 《 》 〈 〉 〈 〉 ⟦ ⟧".split()
_CURRENCY = "$ £ € ¥ ฿ US$ C$ A$ ₽ ﷼ ₴ ₠ ₡ ₢ ₣ ₤ ₥ ₦ ₧ ₨ ₩ ₪ ₫ € ₭ ₮ ₯ ₰ ₱ ₲ ₳ ₴ ₵ ₶ ₷ ₸ ₹ ₺ ₻ ₼ ₽ ₾ ₿".split()
_UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s km/h "
    "kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см см² см³ мм "
    "мм² мм³ нм кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тбكم كم² كم³ م م² م³ سم سم² "
    "سم³ مم مم² مم³ كم غرام جرام جم كغ ملغ كوب اكواب"
).split()
_ICONS = (
    "\u00a6\u00a9\u00ae\u00b0\u0482\u058d\u058e\u060e\u060f\u06de\u06e9\u06fd\u06fe\u07f6\u09fa\u0b70"
    "\u0bf3-\u0bf8\u0bfa\u0c7f\u0d4f\u0d79\u0f01-\u0f03\u0f13\u0f15-\u0f17\u0f1a-\u0f1f\u0f34"
    "\u0f36\u0f38\u0fbe-\u0fc5\u0fc7-\u0fcc\u0fce\u0fcf\u0fd5-\u0fd8\u109e\u109f\u1390-\u1399"
    "\u1940\u19de-\u19ff\u1b61-\u1b6a\u1b74-\u1b7c\u2100\u2101\u2103-\u2106\u2108\u2109\u2114\u2116"
    "\u2117\u211e-\u2123\u2125\u2127\u2129\u212e\u213a\u213b\u214a\u214c\u214d\u214f\u218a\u218b"
    "\u2195-\u2199\u219c-\u219f\u21a1\u21a2\u21a4\u21a5\u21a7-\u21ad\u21af-\u21cd\u21d0\u21d1\u21d3"
    "\u21d5-\u21f3\u2300-\u2307\u230c-\u231f\u2322-\u2328\u232b-\u237b\u237d-\u239a\u23b4-\u23db"
    "\u23e2-\u2426\u2440-\u244a\u249c-\u24e9\u2500-\u25b6\u25b8-\u25c0\u25c2-\u25f7\u2600-\u266e"
    "\u2670-\u2767\u2794-\u27bf\u2800-\u28ff\u2b00-\u2b2f\u2b45\u2b46\u2b4d-\u2b73\u2b76-\u2b95"
    "\u2b98-\u2bc8\u2bca-\u2bfe\u2ce5-\u2cea\u2e80-\u2e99\u2e9b-\u2ef3\u2f00-\u2fd5\u2ff0-\u2ffb"
    "\u3004\u3012\u3013\u3020\u3036\u3037\u303e\u303f\u3190\u3191\u3196-\u319f\u31c0-\u31e3"
    "\u3200-\u321e\u322a-\u3247\u3250\u3260-\u327f\u328a-\u32b0\u32c0-\u32fe\u3300-\u33ff\u4dc0-\u4dff"
    "\ua490-\ua4c6\ua828-\ua82b\ua836\ua837\ua839\uaa77-\uaa79\ufdfd\uffe4\uffe8\uffed\uffee\ufffc"
    "\ufffd\U00010137-\U0001013f\U00010179-\U00010189\U0001018c-\U0001018e\U00010190-\U0001019b"
    "\U000101a0\U000101d0-\U000101fc\U00010877\U00010878\U00010ac8\U0001173f\U00016b3c-\U00016b3f"
    "\U00016b45\U0001bc9c\U0001d000-\U0001d0f5\U0001d100-\U0001d126\U0001d129-\U0001d164"
    "\U0001d16a-\U0001d16c\U0001d183\U0001d184\U0001d18c-\U0001d1a9\U0001d1ae-\U0001d1e8"
    "\U0001d200-\U0001d241\U0001d245\U0001d300-\U0001d356\U0001d800-\U0001d9ff\U0001da37-\U0001da3a"
    "\U0001da6d-\U0001da74\U0001da76-\U0001da83\U0001da85\U0001da86\U0001ecac\U0001f000-\U0001f02b"
    "\U0001f030-\U0001f093\U0001f0a0-\U0001f0ae\U0001f0b1-\U0001f0bf\U0001f0c1-\U0001f0cf"
    "\U0001f0d1-\U0001f0f5\U0001f110-\U0001f16b\U0001f170-\U0001f1ac\U0001f1e6-\U0001f202"
    "\U0001f210-\U0001f23b\U0001f240-\U0001f248\U0001f250\U0001f251\U0001f260-\U0001f265"
    "\U0001f300-\U0001f3fa\U0001f400-\U0001f6d4\U0001f6e0-\U0001f6ec\U0001f6f0-\U0001f6f9"
    "\U0001f700-\U0001f773\U0001f780-\U0001f7d8\U0001f800-\U0001f80b\U0001f810-\U0001f847"
    "\U0001f850-\U0001f859\U0001f860-\U0001f887\U0001f890-\U0001f8ad\U0001f900-\U0001f90b"
    "\U0001f910-\U0001f93e\U0001f940-\U0001f970\U0001f973-\U0001f976\U0001f97a\U0001f97c-\U0001f9a2"
    "\U0001f9b0-\U0001f9b9\U0001f9c0-\U0001f9c2\U0001f9d0-\U0001f9ff\U0001fa60-\U0001fa6d"
)
_ICON = re.compile(f"[{_ICONS}]")
_LOWER_CHAR = re.compile(f"[{_LOWER}]")
_UPPER_CHAR = re.compile(f"[{_UPPER}]")

# Single characters that are a whole prefix / suffix by themselves.
_PREFIX_CHARS = frozenset("§%=—–") | frozenset(c for c in _PUNCT + _QUOTES if len(c) == 1) | frozenset(
    c for c in _CURRENCY if len(c) == 1
)
_SUFFIX_CHARS = frozenset(c for c in _PUNCT + _QUOTES if len(c) == 1) | frozenset("—–")
_MULTI_CURRENCY = tuple(c for c in _CURRENCY if len(c) > 1)
_MAX_UNIT = max(len(u) for u in _UNITS)
_UNIT_OR_CURRENCY = frozenset(_UNITS) | frozenset(_CURRENCY)
_UNIT_LAST_CHARS = frozenset(u[-1] for u in _UNIT_OR_CURRENCY)
# What may precede a period that is split off as a suffix (spaCy: `(?<=[0-9{al}%²\-\+{p}{q}])\.`).
_BEFORE_PERIOD = frozenset("%²-+|(?:)") | frozenset("".join(_PUNCT + _QUOTES))

_INFIX = re.compile(
    "|".join(
        [
            r"\.\.+",
            "…",
            f"[{_ICONS}]",
            r"(?<=[0-9])[+\-\*^](?=[0-9-])",
            f"(?<=[{_LOWER}{re.escape(''.join(_QUOTES))}])\\.(?=[{_UPPER}{re.escape(''.join(_QUOTES))}])",
            f"(?<={_ALPHA}),(?={_ALPHA})",
            f"(?<={_ALPHA_OR_DIGIT})(?:-|–|—|--|---|——|~)(?={_ALPHA})",
            f"(?<={_ALPHA_OR_DIGIT})[:<>=/](?={_ALPHA})",
        ]
    )
)

# URLs stay one token (spaCy's URL_MATCH, without its private-IP exclusions). The host is split on
# dots in Python, so no pattern repeats a repeated group.
_URL_SCHEME = re.compile(r"[\w+\-.]{2,}://")
_URL_LABEL = re.compile("[A-Za-z0-9\u00a1-\uffff](?:[A-Za-z0-9\u00a1-\uffff_-]{0,62}[A-Za-z0-9\u00a1-\uffff])?")
_URL_TLD = re.compile(f"[{_LOWER}]{{2,63}}")
_URL_IP = re.compile(r"(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
                     r"\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4])")
_URL_PORT = re.compile(r":\d{2,5}")
_URL_HOST_END = re.compile(r"[:/?#]")


def is_url(s: str) -> bool:
    """spaCy's URL_MATCH: optional scheme, optional `user@`, a host (labels + lowercase TLD, or an IPv4
    address), optional port, optional path starting with / ? or #."""
    if "." not in s:
        return False
    pos = 0
    scheme = _URL_SCHEME.match(s)
    if scheme:
        pos = scheme.end()
    at = s.rfind("@", pos)
    candidates = [pos] if at <= pos else [at + 1, pos]
    return any(_url_rest(s, start) for start in candidates)


def _url_rest(s: str, start: int) -> bool:
    end_match = _URL_HOST_END.search(s, start)
    host_end = end_match.start() if end_match else len(s)
    host = s[start:host_end]
    if not host:
        return False
    if not _URL_IP.fullmatch(host):
        labels = host.split(".")
        if len(labels) < 2 or not _URL_TLD.fullmatch(labels[-1]):
            return False
        if not all(_URL_LABEL.fullmatch(label) for label in labels[:-1]):
            return False
    rest = host_end
    port = _URL_PORT.match(s, rest)
    if port:
        rest = port.end()
    return rest == len(s) or s[rest] in "/?#"


_MAX_SPECIAL = max(len(k) for k in SPECIAL_CASES)



# ---------------------------------------------------------------------------------------------
# Prefixes and suffixes, found at the ends of s[start:end].


def _prefix_len(s: str, start: int, end: int) -> int:
    """Length of the prefix at `start` (spaCy's prefix_search: the first listed pattern that matches)."""
    c = s[start]
    if c == "+":
        return 0 if start + 1 < end and s[start + 1] in "0123456789" else 1
    if c in _PREFIX_CHARS:
        return 1
    if c == ".":
        run = start
        while run < end and s[run] == ".":
            run += 1
        return run - start if run - start >= 2 else 0
    for currency in _MULTI_CURRENCY:
        if s.startswith(currency, start, end):
            return len(currency)
    if _ICON.match(c):
        return 1
    return 0


def _suffix_len(s: str, start: int, end: int) -> int:
    """Length of the suffix ending at `end` (spaCy's suffix_search: the leftmost match, so the longest)."""
    best = 0
    c = s[end - 1]
    if c in _SUFFIX_CHARS or _ICON.match(c):
        best = 1
    if c == "." or c == "…":
        if c == ".":
            run = end
            while run > start and s[run - 1] == ".":
                run -= 1
            if end - run >= 2:
                best = max(best, end - run)
            elif end - start >= 2:
                before = s[end - 2]
                if before in "0123456789" or before in _BEFORE_PERIOD or _LOWER_CHAR.match(before):
                    best = max(best, 1)
                elif end - start >= 3 and _UPPER_CHAR.match(before) and _UPPER_CHAR.match(s[end - 3]):
                    best = max(best, 1)
                elif end - start >= 3 and before in "FfCcKk" and s[end - 3] == "°":
                    best = max(best, 1)
        elif end - start >= 2 and s[end - 2] == "…":
            best = max(best, 2)
    if end - start >= 2 and s[end - 2] in "'’" and c in "sS":
        best = max(best, 2)
    # Currency and units directly after a digit: "10km", "5$".
    if c in _UNIT_LAST_CHARS:
        for length in range(min(_MAX_UNIT, end - start - 1), 0, -1):
            if s[end - length - 1] in "0123456789" and s[end - length : end] in _UNIT_OR_CURRENCY:
                best = max(best, length)
                break
    if c == "+" and end - start >= 2 and s[end - 2] in "0123456789":
        best = max(best, 1)
    return best


# ---------------------------------------------------------------------------------------------
# Tokenization.


def _split_chunk(chunk: str, out: list[str], specials: dict[str, tuple[str, ...]] = SPECIAL_CASES) -> None:
    """spaCy's `_split_affixes` then `_attach_tokens` for one whitespace-free chunk."""
    special = specials.get(chunk)
    if special is not None:
        out.extend(special)
        return
    start, end = 0, len(chunk)
    prefixes: list[str] = []
    suffixes: list[str] = []
    last = -1
    while start < end and end - start != last:
        if end - start <= _MAX_SPECIAL and chunk[start:end] in specials:
            break
        last = end - start
        pre = _prefix_len(chunk, start, end)
        if pre and start + pre < end and end - start - pre <= _MAX_SPECIAL and chunk[start + pre : end] in specials:
            prefixes.append(chunk[start : start + pre])
            start += pre
            break
        suf = _suffix_len(chunk, start + pre, end) if start + pre < end else 0
        if suf and end - suf > start and end - suf - start <= _MAX_SPECIAL and chunk[start : end - suf] in specials:
            suffixes.append(chunk[end - suf : end])
            end -= suf
            break
        if pre and suf and pre + suf <= end - start:
            prefixes.append(chunk[start : start + pre])
            suffixes.append(chunk[end - suf : end])
            start += pre
            end -= suf
        elif pre:
            prefixes.append(chunk[start : start + pre])
            start += pre
        elif suf:
            suffixes.append(chunk[end - suf : end])
            end -= suf
    out.extend(prefixes)
    if start < end:
        rest = chunk[start:end]
        special = specials.get(rest) if len(rest) <= _MAX_SPECIAL else None
        if special is not None:
            out.extend(special)
        elif is_url(rest):
            out.append(rest)
        else:
            _split_infixes(rest, out)
    out.extend(reversed(suffixes))


def _matcher_patterns() -> dict[tuple[str, ...], str]:
    """Special cases that affix splitting would cut apart ("z." in "z.B.", ":)" in "(:)"), keyed by
    the tokens they are cut into: spaCy's `_special_matcher` merges such token runs back."""
    patterns: dict[tuple[str, ...], str] = {}
    for orth in SPECIAL_CASES:
        pieces: list[str] = []
        _split_chunk(orth, pieces, specials={})
        if len(pieces) > 1:
            patterns[tuple(pieces)] = orth
    return patterns


def _special_spans(tokens: Sequence[str]) -> dict[int, int]:
    """Where spaCy's `_special_matcher` retokenizes: {start: length} of the runs of `tokens` that spell
    a special case's pattern. All matches are found, then kept longest first and, among equal
    lengths, leftmost first, unless their first or last token was covered by a match already seen
    (spaCy's `_filter_special_spans`): a match that is dropped still covers its tokens."""
    matches = [
        (length, i)
        for i, token in enumerate(tokens)
        if token in _MATCHER_FIRST
        for length in _MATCHER_LENGTHS
        if i + length <= len(tokens) and tuple(tokens[i : i + length]) in _MATCHER_PATTERNS
    ]
    seen: set[int] = set()
    accepted: dict[int, int] = {}
    for length, i in sorted(matches, key=lambda m: (-m[0], m[1])):
        if i not in seen and i + length - 1 not in seen:
            accepted[i] = length
        seen.update(range(i, i + length))
    return accepted


def _merge_specials(out: list[str], first: int) -> bool:
    """Replace runs of `out[first:]` (the tokens of one chunk) that spell a special case by its tokens;
    whether that changed them (such a chunk is a `MatchedChunk`: "it's" is split into the tokens of
    its special case already, a match there changes nothing)."""
    tokens = out[first:]
    accepted = _special_spans(tokens)
    if not accepted:
        return False
    merged: list[str] = []
    i = 0
    while i < len(tokens):
        span = accepted.get(i)
        if span is None:
            merged.append(tokens[i])
            i += 1
        else:
            merged.extend(SPECIAL_CASES[_MATCHER_PATTERNS[tuple(tokens[i : i + span])]])
            i += span
    if merged == tokens:
        return False
    out[first:] = merged
    return True


def _split_infixes(s: str, out: list[str]) -> None:
    pos = 0
    for match in _INFIX.finditer(s):
        a, b = match.span()
        if a == 0:
            continue  # an infix at the very start is not split off
        if a != pos:
            out.append(s[pos:a])
        if a != b:
            out.append(s[a:b])
        pos = b
    if pos < len(s):
        out.append(s[pos:])


_MATCHER_PATTERNS = _matcher_patterns()
_MATCHER_FIRST = frozenset(p[0] for p in _MATCHER_PATTERNS)
_MATCHER_LENGTHS = sorted({len(p) for p in _MATCHER_PATTERNS}, reverse=True)


MAX_CHUNK = 10_000
"""Longer whitespace-free runs stay one token. spaCy would peel their affixes one character at a
time; nothing that long is a word (C4 drops lines with a word over 1,000 characters, Gopher's mean
word length tops at 10), and the cap keeps the per-character Python work of one chunk bounded."""
_CHUNK_CACHE: dict[str, tuple[str, ...]] = {}
_CHUNK_CACHE_SIZE = 1 << 18
_CACHED_CHUNK_LENGTH = 64


def _word_and_mark(chunk: str) -> bool:
    """A word followed by one punctuation mark that `_split_chunk` would split off and nothing else."""
    core = chunk[:-1]
    if not core.isalpha() or chunk in SPECIAL_CASES or core in SPECIAL_CASES:
        return False
    mark = chunk[-1]
    if mark == ".":
        return bool(_LOWER_CHAR.match(core[-1])) or (
            len(core) >= 2 and bool(_UPPER_CHAR.match(core[-1])) and bool(_UPPER_CHAR.match(core[-2])))
    return mark in _SUFFIX_CHARS


class MatchedChunk(tuple[str, ...]):
    """The tokens of a chunk that spaCy's special-case matcher changed ("(:)h": "(:" ")" "h", not
    "(" ":" ")" "h"): the only chunks whose tokens a match reaching in from a neighbour can change
    (`_needs_joining`). Always two tokens or more."""

    __slots__ = ()


def chunk_tokens(chunk: str) -> tuple[str, ...]:
    """The tokens of one whitespace-free chunk. Words repeat (Zipf), so results are cached like
    spaCy caches them; the cache is bounded and the result does not depend on it."""
    tokens = _CHUNK_CACHE.get(chunk)
    if tokens is not None:
        return tokens
    if len(chunk) > MAX_CHUNK or ((chunk.isalpha() or chunk.isdecimal()) and chunk not in SPECIAL_CASES):
        tokens = (chunk,)  # no prefix, suffix, infix or special case can apply: most words
    elif _word_and_mark(chunk):
        tokens = (chunk[:-1], chunk[-1])  # "word," "word." (the commonest split, taken directly)
    else:
        out: list[str] = []
        _split_chunk(chunk, out)
        tokens = MatchedChunk(out) if len(out) > 1 and _merge_specials(out, 0) else tuple(out)
    if len(chunk) <= _CACHED_CHUNK_LENGTH:
        if len(_CHUNK_CACHE) >= _CHUNK_CACHE_SIZE:
            _CHUNK_CACHE.clear()
        _CHUNK_CACHE[chunk] = tokens
    return tokens


def word_tokens(text: str) -> list[str]:
    """The words of `text` as datatrove's English `word_tokenize` returns them (spaCy tokens, blanks
    dropped): punctuation split off, contractions split, abbreviations and URLs kept whole."""
    return _chunk_words(text, text.split())


def _chunk_words(text: str, chunks: list[str]) -> list[str]:
    """`word_tokens` of `text`, whose whitespace-separated chunks are `chunks`."""
    out: list[str] = []
    matched: list[str] = []
    for chunk in chunks:
        tokens = _CHUNK_CACHE.get(chunk) or chunk_tokens(chunk)
        if len(tokens) == 1:
            out.append(tokens[0])
        else:
            out.extend(tokens)
            if type(tokens) is MatchedChunk:
                matched.append(chunk)
    if matched and _needs_joining(chunks, matched):
        return _joined_words(text, chunks)
    return out


def _raw_tokens(chunks: Sequence[str]) -> tuple[list[str], list[int]]:
    """The tokens of `chunks` before the matcher merges anything, and the chunk each one is from."""
    tokens: list[str] = []
    owners: list[int] = []
    for index, chunk in enumerate(chunks):
        start = len(tokens)
        merged = _CHUNK_CACHE.get(chunk) or chunk_tokens(chunk)
        if type(merged) is MatchedChunk:
            _split_chunk(chunk, tokens)
        else:
            tokens.extend(merged)  # no pattern inside: the chunk's tokens are unmerged
        owners.extend([index] * (len(tokens) - start))
    return tokens, owners


def _needs_joining(chunks: list[str], matched: list[str]) -> bool:
    """Whether spaCy's matcher, run over `chunks` together as spaCy runs it over a document, may
    decide differently than chunk by chunk: a match across chunks ("(:)h (:)" holds ":" "(" of the
    special ":(" across the space) merges nothing, since its text has a space, but it covers its
    tokens and so can cancel a match inside a chunk that it overlaps. Only the `matched` chunks
    (`MatchedChunk`, in order), with the neighbours a pattern can reach, are looked at."""
    reach = max(_MATCHER_LENGTHS) - 1  # chunks are a token or more: a match spans at most this many
    index = -1
    for chunk in matched:
        index = chunks.index(chunk, index + 1)
        tokens, owners = _raw_tokens(chunks[max(0, index - reach) : index + reach + 1])
        across: list[tuple[int, int]] = []
        inside: list[tuple[int, int]] = []
        for i, token in enumerate(tokens):
            if token in _MATCHER_FIRST:
                for length in _MATCHER_LENGTHS:
                    end = i + length
                    if end <= len(tokens) and tuple(tokens[i:end]) in _MATCHER_PATTERNS:
                        (inside if owners[i] == owners[end - 1] else across).append((i, end))
        if any(a < d and c < b for a, b in across for c, d in inside):
            return True
    return False


def _joined_words(text: str, chunks: list[str]) -> list[str]:
    """`word_tokens` where a match across chunks matters: spaCy's matcher over the whole text."""
    if " ".join(chunks) != text.strip():  # whitespace tokens between chunks stop matches: split there
        return [token for token in spacy_tokens(text) if not token.isspace()]
    out: list[str] = []
    _joined_tokens(chunks, out)
    return out


def _joined_tokens(chunks: Sequence[str], out: list[str]) -> None:
    """The tokens of chunks one space apart, spaCy's matcher run over all of them together."""
    if len(chunks) == 1:
        out.extend(_CHUNK_CACHE.get(chunks[0]) or chunk_tokens(chunks[0]))
        return
    tokens, owners = _raw_tokens(chunks)
    spans = _special_spans(tokens)
    i = 0
    while i < len(tokens):
        length = spans.get(i, 1)
        if length > 1 and owners[i] == owners[i + length - 1]:
            out.extend(SPECIAL_CASES[_MATCHER_PATTERNS[tuple(tokens[i : i + length])]])
        else:
            out.extend(tokens[i : i + length])
        i += length


_WHITESPACE_RUN = re.compile(r"\s+")
"""A run of whitespace (`\\s` is `str.isspace`, the whitespace spaCy and `str.split` split on)."""


def _segments(text: str) -> Iterator[tuple[bool, str]]:
    """`text` cut at spaCy's whitespace tokens: (True, a whitespace token) or (False, the text between
    two, whose chunks are one space apart). spaCy splits text into runs of whitespace and of other
    characters; a single space after a chunk belongs to that chunk, and any other run (two spaces, a
    tab, a no-break space, whitespace at the start) less that space is a token."""
    start = 0  # of the current segment
    for match in _WHITESPACE_RUN.finditer(text):
        a, b = match.span()
        if a and b - a == 1 and text[a] == " ":
            continue  # one space after a chunk: no token
        if a > start:
            yield False, text[start:a]
        token = text[a + 1 : b] if a and text[a] == " " else text[a:b]
        if token:
            yield True, token
        start = b
    if start < len(text):
        yield False, text[start:]


def spacy_tokens(text: str) -> list[str]:
    """spaCy's tokens of `text`, whitespace tokens included (its sentencizer sees them; datatrove's
    `split_into_words` strips them away): in "cup!  !!" the second space is a token, not punctuation,
    so a sentence starts there. No special-case pattern holds a whitespace token, so the text between
    two is tokenized on its own."""
    chunks = text.split()
    if " ".join(chunks) == text:  # one space between chunks: no whitespace token
        return _chunk_words(text, chunks)
    out: list[str] = []
    for is_space, piece in _segments(text):
        if is_space:
            out.append(piece)
        else:
            out.extend(word_tokens(piece))
    return out


_last_text: list[object] = [None, None]


def cached_word_tokens(text: str) -> list[str]:
    """`word_tokens` of the text the previous call saw, without tokenizing it again: the Gopher
    quality and repetition filters read the same document one after the other."""
    last_text, last_words = _last_text
    if last_text is text:
        return cast("list[str]", last_words)
    words = word_tokens(text)
    _last_text[:] = [text, words]
    return words


@lru_cache(maxsize=4096)
def is_punct(token: str) -> bool:
    """spaCy's `is_punct`: every character is Unicode punctuation (category P*)."""
    return all(unicodedata.category(c).startswith("P") for c in token)


def sentence_count(tokens: list[str]) -> int:
    """spaCy's Sentencizer on `spacy_tokens`: a sentence ends at a sentence-final punctuation token,
    and the next one starts at the first following token that is not punctuation (a whitespace token
    is not). datatrove's `split_into_sentences` returns one piece per spaCy sentence, a sentence of
    whitespace alone included."""
    if not tokens:
        return 0
    count = 1
    seen_end = False
    for token in tokens:
        is_end = token in SENTENCE_END_CHARS
        if seen_end and not is_end and not is_punct(token):
            count += 1
            seen_end = False
        elif is_end:
            seen_end = True
    return count

