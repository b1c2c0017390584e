"""LSH banding: a signature cut into `bands` bands of `rows` values; two documents whose signatures
agree on a whole band share that band's bucket and become a candidate pair.

A pair with Jaccard s shares at least one bucket with probability 1 - (1 - s^rows)^bands. The bands
and rows come from the config, or from datasketch's own optimizer (`MinHashLSH`'s grid search that
minimizes the weighted integrated false-positive and false-negative probabilities around the
threshold). With verification on, missed pairs weigh 0.9: at threshold 0.8 and 256 permutations
that is 23 bands x 11 rows, which finds a pair of Jaccard 0.82 with probability 0.94, where
datasketch's equal weights (17 x 15) find it with probability 0.59.

A bucket is linked as a star, each member to the bucket's smallest id: a bucket of k documents
gives k - 1 candidate pairs, never k(k-1)/2, so a bucket of thousands of boilerplate pages costs
linear work. Members of one bucket all agree on the band, so the star keeps them connected.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

import numpy as np
import xxhash

from lemur_corpus.dedup.config import NearDedupConfig


@functools.lru_cache(maxsize=64)
def optimal_params(threshold: float, num_perm: int, false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) that datasketch's `MinHashLSH(threshold, num_perm, weights)` would use."""
    from datasketch.lsh import _optimal_param

    bands, rows = _optimal_param(threshold, num_perm, 1.0 - false_negative_weight, false_negative_weight)
    return int(bands), int(rows)


def lsh_params(config: NearDedupConfig) -> tuple[int, int]:
    """(bands, rows) of a kind's near-dedup: given in the config, else datasketch's optimum."""
    if config.bands is not None and config.rows is not None:
        return config.bands, config.rows
    return optimal_params(config.threshold, config.num_perm, config.fn_weight())


def collision_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that a pair with this Jaccard similarity shares at least one bucket."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One bucket key per band: the band's index and a 128-bit hash of its values (a collision of
    two different bands is a 2^-128 event, and verification would drop the pair anyway)."""
    values = np.ascontiguousarray(signature[: bands * rows].astype("<u4", copy=False)).reshape(bands, rows)
    return [i.to_bytes(2, "big") + xxhash.xxh3_128_digest(values[i].tobytes()) for i in range(bands)]


def star_pairs(members: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(member, smallest id) for every other member of one bucket: linear in the bucket's size."""
    ordered = sorted(set(members))
    if len(ordered) < 2:
        return
    root = ordered[0]
    for member in ordered[1:]:
        yield member, root
