"""Verification: whether a candidate pair of documents is a near-duplicate edge, and how similar.

LSH only proposes pairs; each proposed pair is measured before it can remove anything. What travels
with a document for that (`payload`) depends on the kind's `verify` mode:

- `exact`: its shingle set, the sorted distinct 32-bit hashes of the shingles its signature is made
  of (`MinHasher.sign`), 4 bytes a distinct shingle, at most `max_shingles` (400 KB for a capped
  document; ~4 KB for a typical web page, about 0.7 x its UTF-8 text). The similarity is the exact
  Jaccard of the two sets: with 32-bit hashes two different shingles of a 100,000-shingle pair
  collide about twice, a Jaccard error below 1e-4. Carrying the set rather than joining the text
  keeps the join smaller than the text and spares re-tokenizing it.
- `signature`: its MinHash signature (num_perm x 4 bytes); the similarity is the share of
  permutations on which the two agree (datasketch's `MinHash.jaccard`), standard error
  sqrt(J(1-J)/num_perm), about 0.025 at J = 0.8 and 256 permutations.
- `off`: the signature, to report the estimated similarity; every candidate is an edge.
"""

from __future__ import annotations

import math

import numpy as np

from lemur_corpus.dedup.config import VerifyMode


def to_set_bytes(shingle_set: np.ndarray) -> bytes:
    """The compact form of a shingle set that travels between workers: little-endian uint32."""
    return shingle_set.astype("<u4", copy=False).tobytes()


def set_from_bytes(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise ValueError(f"a shingle set is whole uint32 values; got {len(data)} bytes")
    return np.frombuffer(data, dtype="<u4")


def set_jaccard(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(intersection, union) sizes of two sorted sets of distinct hashes."""
    inter = int(np.intersect1d(a, b, assume_unique=True).size)
    return inter, int(a.size + b.size - inter)


def min_agreements(threshold: float, num_perm: int) -> int:
    """Permutations two signatures must agree on for an estimated Jaccard >= threshold."""
    return math.ceil(threshold * num_perm - 1e-9)


def reaches(numerator: int, denominator: int, threshold: float) -> bool:
    """numerator / denominator >= threshold, decided on integers (no rounding at the boundary)."""
    return numerator >= math.ceil(threshold * denominator - 1e-9)


class Verifier:
    """Compares one document's payload with several others' (`similarities`) for one kind."""

    def __init__(self, mode: VerifyMode, threshold: float) -> None:
        self.mode, self.threshold = mode, threshold

    def decode(self, payload: bytes) -> np.ndarray:
        return set_from_bytes(payload)

    def similarities(self, one: bytes, others: list[bytes]) -> list[tuple[float, bool]]:
        """(similarity, is an edge) of `one` with each of `others`; similarity rounded to 6 digits."""
        if not others:
            return []
        mine = self.decode(one)
        if self.mode == "exact":
            out = []
            for other in others:
                inter, union = set_jaccard(mine, self.decode(other))
                out.append((round(inter / union, 6) if union else 1.0, reaches(inter, union, self.threshold)))
            return out
        matrix = np.stack([self.decode(o) for o in others])
        agree = np.count_nonzero(matrix == mine[None, :], axis=1).tolist()
        needed = min_agreements(self.threshold, mine.size)
        verify = self.mode == "signature"
        return [(round(a / mine.size, 6), (a >= needed) if verify else True) for a in agree]
