"""Which benchmark items a document contains: its n-grams looked up in the index, containment per part.

A part (a question, a solution, a prompt...) is in a document when at least `min_containment` of its
sampled n-grams are among the document's n-grams, and at least `min_ngrams` of them: one n-gram shared
by chance, or a template line, never makes a match. An item is matched through its best part; the
document is contaminated when any item is matched. Items are ranked by their evidence: first the
informative n-grams of the parts found whole (every sampled n-gram present), then those estimated found
over all their matched parts (containment times the part's informative n-grams). So a HumanEval task
copied whole (prompt, docstring, solution) outranks a MultiPL-E translation whose sample happens to
fall in the docstring they share, and a whole MultiPL-E prompt outranks the HumanEval docstring inside
it while the HumanEval prompt, found only in part, adds nothing; the benchmark named is the first
item's. Ties go by the best part's containment, then by id.

A document's n-gram fingerprints first meet a bitmap of the index (2^27 bits, 16 MB, one bit per
fingerprint's top 27 bits: about 0.5% set), which lets through the few that may be indexed; those
are looked up with two binary searches each in the index's sorted keys, and the hits grouped by
part. A document's words are hashed (`kernels.joined_word_hashes`) and its n-grams made and screened
by one compiled loop each (`kernels.screened_fingerprints`);
the rest is numpy over the few that pass, no Python loop over n-grams.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lemur_corpus.filters.decontam.index import PART_NAMES, DecontamIndex
from lemur_corpus.filters.decontam.kernels import joined_word_hashes, screened_fingerprints
from lemur_corpus.filters.decontam.tokens import lowered_words

BITMAP_SHIFT = 5
"""Fingerprints (32 bits) are screened on their top 27 bits."""


@dataclasses.dataclass(frozen=True, slots=True)
class ItemMatch:
    benchmark: str
    item: str
    part: str
    """The part that matched best."""
    matched: int
    """Sampled n-grams of that part found in the document."""
    size: int
    """The part's sample size."""
    total: int = 0
    """The part's informative n-grams (the sample's population)."""

    @property
    def containment(self) -> float:
        return self.matched / self.size if self.size else 0.0

    @property
    def found(self) -> float:
        """The part's informative n-grams estimated present in the document."""
        return self.containment * max(self.total, self.size)

    def to_dict(self) -> dict[str, object]:
        return {"benchmark": self.benchmark, "item": self.item, "part": self.part, "matched": self.matched,
                "size": self.size, "containment": round(self.containment, 4)}


@dataclasses.dataclass(frozen=True, slots=True)
class Contamination:
    """The items a document contains, best first (empty when it is clean)."""

    items: tuple[ItemMatch, ...]
    ngrams: int
    """N-grams of the document that were looked up."""

    @property
    def contaminated(self) -> bool:
        return bool(self.items)

    @property
    def benchmark(self) -> str:
        return self.items[0].benchmark if self.items else ""

    def benchmarks(self) -> list[str]:
        return sorted({m.benchmark for m in self.items})


class Matcher:
    """Looks documents up in one index; `ignore` names benchmarks whose matches are not counted."""

    def __init__(self, index: DecontamIndex, min_containment: float, min_ngrams: int,
                 ignore: list[str] | None = None) -> None:
        self.index = index
        self.min_containment = min_containment
        self.min_ngrams = min_ngrams
        ignored = {index.benchmarks.index(b) for b in ignore or [] if b in index.benchmarks}
        self.part_ignored = np.isin(index.item_benchmark[index.part_item], list(ignored)) if ignored else None
        self.bitmap = np.zeros(1 << (32 - BITMAP_SHIFT - 3), dtype=np.uint8)
        top = index.keys >> np.uint32(BITMAP_SHIFT)
        np.bitwise_or.at(self.bitmap, top >> np.uint32(3), (1 << (top & np.uint32(7))).astype(np.uint8))

    def screen(self, prints: np.ndarray) -> np.ndarray:
        """The distinct fingerprints of `prints` that may be in the index (sorted)."""
        top = prints >> np.uint32(BITMAP_SHIFT)
        maybe = (self.bitmap[top >> np.uint32(3)] >> (top & np.uint32(7)).astype(np.uint8)) & np.uint8(1)
        return np.unique(prints[maybe.astype(bool)])

    def lookup(self, prints: np.ndarray) -> Contamination:
        """Matches of a document given its n-gram fingerprints (any order, repeats allowed)."""
        screened = self.screen(prints) if len(prints) and len(self.index.keys) else prints[:0]
        return self.lookup_screened(screened, int(len(prints)))

    def lookup_screened(self, hashes: np.ndarray, total: int) -> Contamination:
        """Matches of a document given the distinct fingerprints of its `total` n-grams that passed
        the screen (sorted)."""
        index = self.index
        keys = index.keys
        if not len(hashes) or not len(keys):
            return Contamination((), total)
        lo = np.searchsorted(keys, hashes, side="left")
        hi = np.searchsorted(keys, hashes, side="right")
        hit = hi > lo
        if not hit.any():
            return Contamination((), total)
        lo, hi = lo[hit], hi[hit]
        lengths = hi - lo
        # the positions lo..hi-1 of every hit, flattened
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        positions = starts + np.arange(int(lengths.sum()))
        parts, matched = np.unique(index.key_part[positions], return_counts=True)
        sizes = index.part_size[parts].astype(np.int64)
        good = (matched >= self.min_ngrams) & (matched >= self.min_containment * sizes - 1e-9)
        if self.part_ignored is not None:
            good &= ~self.part_ignored[parts]
        if not good.any():
            return Contamination((), total)
        best: dict[int, ItemMatch] = {}
        whole: dict[int, float] = {}
        evidence: dict[int, float] = {}
        for part, count, size in zip(parts[good].tolist(), matched[good].tolist(), sizes[good].tolist(), strict=True):
            item = int(index.part_item[part])
            found = ItemMatch(index.benchmarks[int(index.item_benchmark[item])], index.item_ids[item],
                              PART_NAMES[int(index.part_name[part])], int(count), int(size),
                              int(index.part_total[part]))
            evidence[item] = evidence.get(item, 0.0) + found.found
            if found.matched == found.size:
                whole[item] = whole.get(item, 0.0) + found.found
            if item not in best or _rank(found) < _rank(best[item]):
                best[item] = found
        ranked = sorted(best, key=lambda item: (-round(whole.get(item, 0.0), 6), -round(evidence[item], 6),
                                                _rank(best[item])))
        return Contamination(tuple(best[item] for item in ranked), total)

    def match(self, text: str) -> Contamination:
        """Matches of a document's text: the same as `lookup(tokens.text_ngrams(text, n))`."""
        n = self.index.settings.ngram
        joined, count = lowered_words(text)
        if count < n:
            return Contamination((), 0)
        passed = screened_fingerprints(joined_word_hashes(joined, count), n, self.bitmap, BITMAP_SHIFT)
        return self.lookup_screened(np.unique(passed), count - n + 1)


def _rank(m: ItemMatch) -> tuple[float, float, int, str, str]:
    """An item's best part: the highest containment, then the most n-grams estimated found."""
    return (-m.containment, -m.found, -m.matched, m.item, m.part)
