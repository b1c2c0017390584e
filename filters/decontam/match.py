"""Which benchmark items a document contains: its n-grams looked up in the index, containment per part.

A part (a question, a solution, a prompt...) is in a document when at least `min_containment` of its
sampled n-grams are among the document's n-grams, and at least `min_ngrams` of them: one n-gram shared
by chance, or a template line, never makes a match. An item is matched through its best part; the
document is contaminated when any item is matched, and the benchmark named is the best item's
(highest containment, then most n-grams matched, then smallest id, so the choice is deterministic).

The document's distinct n-gram hashes are looked up with two binary searches each in the index's
sorted keys (numpy, no Python loop over n-grams); only the rare hits are grouped by part.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lemur_corpus.filters.decontam.index import PART_NAMES, DecontamIndex
from lemur_corpus.filters.decontam.tokens import text_ngrams


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

    @property
    def containment(self) -> float:
        return self.matched / self.size if self.size else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"benchmark": self.benchmark, "item": self.item, "part": self.part, "matched": self.matched,
                "size": self.size, "containment": round(self.containment, 4)}


@dataclasses.dataclass(frozen=True, slots=True)
class Contamination:
    """The items a document contains, best first (empty when it is clean)."""

    items: tuple[ItemMatch, ...]
    ngrams: int
    """Distinct n-grams of the document that were looked up."""

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

    def lookup(self, hashes: np.ndarray) -> Contamination:
        """Matches of a document given its distinct n-gram hashes (sorted)."""
        index = self.index
        keys = index.keys
        if not len(hashes) or not len(keys):
            return Contamination((), int(len(hashes)))
        lo = np.searchsorted(keys, hashes, side="left")
        hi = np.searchsorted(keys, hashes, side="right")
        hit = hi > lo
        if not hit.any():
            return Contamination((), int(len(hashes)))
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
            return Contamination((), int(len(hashes)))
        best: dict[int, ItemMatch] = {}
        for part, count, size in zip(parts[good].tolist(), matched[good].tolist(), sizes[good].tolist(), strict=True):
            item = int(index.part_item[part])
            found = ItemMatch(index.benchmarks[int(index.item_benchmark[item])], index.item_ids[item],
                              PART_NAMES[int(index.part_name[part])], int(count), int(size))
            if item not in best or _rank(found) < _rank(best[item]):
                best[item] = found
        return Contamination(tuple(sorted(best.values(), key=_rank)), int(len(hashes)))

    def match(self, text: str) -> Contamination:
        return self.lookup(text_ngrams(text, self.index.settings.ngram))


def _rank(m: ItemMatch) -> tuple[float, int, str, str]:
    return (-m.containment, -m.matched, m.item, m.part)
