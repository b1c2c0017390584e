"""Gopher's repetition filter: the compiled n-gram kernel against the numpy form it replaced, one core.

    .venv/bin/python benchmarks/gopher_speed.py [--data ../shared/data] [--piece-kb 1.7] [--repeat 5]

Documents: the real English web pages of ../shared/data, cut at line ends into pieces of about
--piece-kb KB (default 1.7, the scale corpus's document size; 0: whole pages). Both forms run here,
alternating, best of --repeat each:

- "filter": `GopherRepetitionFilter` as a build runs it on each document (lines and paragraphs, the
  words, the n-gram rules), once with the n-gram rules of `filters/text/kernels.ngram_repetition` and
  once with the numpy form kept below (`NumpyRepetitionFilter`, the code before the kernel);
- "n-gram rules": the same two with each document's words given (tokenized once, outside the clock),
  so only the part that changed is timed.

The run checks that both give the same verdict and the same signals on every document, and prints the
ratio of the times.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import DEFAULT_DATA, pieces, positive_int, read_jsonl, require_data  # noqa: E402
from lemur_corpus.document import Document  # noqa: E402
from lemur_corpus.filters.text.config import GopherRepetitionConfig  # noqa: E402
from lemur_corpus.filters.text.gopher import GopherRepetitionFilter, word_ids  # noqa: E402
from lemur_corpus.filters.text.words import word_tokens  # noqa: E402

# ---------------------------------------------------------------------------------------------
# The baseline: the n-gram rules as numpy array calls per n-gram size (the code before the kernel).

SMALL_KEYS = 256
"""Up to this many keys, a dict numbers them faster than a sort (NumPy's per-call cost dominates)."""


def dense_ids(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(id of each key, count of each id): equal keys share an id, ids are 0..distinct-1."""
    if len(keys) > SMALL_KEYS:
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        return inverse.reshape(-1), counts
    numbering: defaultdict[int, int] = defaultdict(itertools.count().__next__)
    inverse = np.fromiter(map(numbering.__getitem__, keys.tolist()), dtype=np.int64, count=len(keys))
    return inverse, np.bincount(inverse, minlength=len(numbering))


def ngram_ids(ids: np.ndarray, max_n: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """For n = 2..max_n: (n, exact id of the n-gram at each position, count of each id), comparing
    only the positions whose first n-1 words repeat."""
    if not len(ids):
        return
    counts = np.bincount(ids)
    width = len(counts)
    current = ids
    for n in range(2, max_n + 1):
        positions = len(ids) - n + 1
        if positions < 1:
            return
        candidates = np.flatnonzero(counts[current[:positions]] >= 2)
        keys = current[candidates] * width + ids[candidates + n - 1]
        inverse, candidate_counts = dense_ids(keys)
        current = np.arange(len(candidate_counts), len(candidate_counts) + positions, dtype=np.int64)
        current[candidates] = inverse
        counts = np.concatenate((candidate_counts, np.ones(positions, dtype=np.int64)))
        yield n, current, counts


def top_ngram_chars(n: int, gram: np.ndarray, counts: np.ndarray, cumulative: np.ndarray) -> int:
    top = int(counts.max())
    start = int(np.argmax(counts[gram] == top))
    return (int(cumulative[start + n] - cumulative[start]) + n - 1) * top


def duplicate_ngram_chars(n: int, gram: np.ndarray, counts: np.ndarray, cumulative: np.ndarray,
                          length: int, max_fraction: float) -> int:
    repeated = np.flatnonzero(counts[gram] >= 2)
    if not len(repeated):
        return 0
    gram_chars = (cumulative[repeated + n] - cumulative[repeated]).tolist()
    seen: set[int] = set()
    chars = next_free = 0
    for position, gram_id, size in zip(repeated.tolist(), gram[repeated].tolist(), gram_chars, strict=True):
        if position < next_free:
            continue
        if gram_id in seen:
            chars += size
            next_free = position + n
            if chars / length > max_fraction:
                break
        else:
            seen.add(gram_id)
    return chars


class NumpyRepetitionFilter(GopherRepetitionFilter):
    """The filter with the n-gram rules as they were computed before `kernels.ngram_repetition`."""

    def _ngram_reason(self, text: str, words: Sequence[str], signals: dict[str, float]) -> str:
        if len(words) < 2 or self.max_n < 2:
            return ""
        length = len(text)
        ids, word_lengths = word_ids(words)
        cumulative = np.concatenate(([0], np.cumsum(word_lengths)))
        top = self.config.max_top_ngram_char_fraction
        duplicate = self.config.max_duplicate_ngram_char_fraction
        last_top = max(top, default=0)
        top_failed = duplicate_failed = ""
        for n, gram, counts in ngram_ids(ids, self.max_n):
            if n in top:
                chars = top_ngram_chars(n, gram, counts, cumulative)
                signals[f"top_{n}gram_char_fraction"] = chars / length
                if chars / length > top[n]:
                    top_failed = f"top_{n}gram"
                    break
            if n in duplicate and not duplicate_failed:
                chars = duplicate_ngram_chars(n, gram, counts, cumulative, length, duplicate[n])
                signals[f"duplicate_{n}gram_char_fraction"] = chars / length
                if chars / length > duplicate[n]:
                    duplicate_failed = f"duplicate_{n}gram"
            if duplicate_failed and n >= last_top:
                break
            if n >= last_top and counts.max() == 1:
                for m in duplicate:
                    if m > n:
                        signals[f"duplicate_{m}gram_char_fraction"] = 0.0
                break
        return top_failed or duplicate_failed


# ---------------------------------------------------------------------------------------------


def english_texts(data: Path, piece_chars: int) -> list[str]:
    require_data(data)
    pages = [r["text"] for name in sorted((data / "web").glob("*.jsonl.zst"))
             for r in read_jsonl(name) if r.get("lang", "en") == "en" and r.get("text")]
    if piece_chars:
        pages = [piece for page in pages for piece in pieces(page, piece_chars)]
    return [text for text in pages if text.strip()]


def cpu_seconds(run: Callable[[], object]) -> float:
    started = time.process_time()
    run()
    return time.process_time() - started


def alternating_best(repeat: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """The best CPU time of each run over `repeat` rounds, the runs alternating within a round."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            best[name] = min(best[name], cpu_seconds(run))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--piece-kb", type=float, default=1.7,
                        help="cut pages at line ends into pieces of about this many KB (0: whole pages)")
    parser.add_argument("--repeat", type=positive_int, default=5)
    args = parser.parse_args()
    if args.piece_kb < 0:
        parser.error("--piece-kb must be 0 or more")
    texts = english_texts(Path(args.data), int(args.piece_kb * 1000))
    docs = [Document(id=f"web/{i}", text=text, source="web", kind="text") for i, text in enumerate(texts)]
    megabytes = sum(doc.nbytes for doc in docs) / 1e6
    config = GopherRepetitionConfig()
    kernel, numpy_form = GopherRepetitionFilter(config), NumpyRepetitionFilter(config)
    kernel(docs[0])  # compile (or load from numba's cache) outside the clock

    verdicts = [(kernel(doc), numpy_form(doc)) for doc in docs]
    differing = sum(a != b for a, b in verdicts)
    dropped = sum(not a.keep for a, _ in verdicts)
    words = [word_tokens(doc.text) for doc in docs]
    filter_times = alternating_best(args.repeat, {
        "kernel": lambda: [kernel(doc) for doc in docs],
        "numpy": lambda: [numpy_form(doc) for doc in docs],
    })
    rule_times = alternating_best(args.repeat, {
        "kernel": lambda: [kernel._ngram_reason(d.text, w, {}) for d, w in zip(docs, words, strict=True)],
        "numpy": lambda: [numpy_form._ngram_reason(d.text, w, {}) for d, w in zip(docs, words, strict=True)],
    })
    print(f"{len(docs):,} English documents ({megabytes:.1f} MB, pieces of {args.piece_kb} KB), "
          f"{dropped:,} dropped; best of {args.repeat}, alternating, one core")
    for label, times in (("filter", filter_times), ("n-gram rules", rule_times)):
        print(f"  {label:13s} kernel {times['kernel']:.3f} s ({times['kernel'] / megabytes:.3f} s/MB), "
              f"numpy {times['numpy']:.3f} s ({times['numpy'] / megabytes:.3f} s/MB): "
              f"x{times['numpy'] / times['kernel']:.2f}")
    print(f"  verdicts and signals that differ: {differing}")
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
