"""LSH banding: a signature cut into `bands` bands of `rows` values; two documents whose signatures
agree on a whole band share that band's bucket and become a candidate pair.

A pair with Jaccard s shares at least one bucket with probability 1 - (1 - s^rows)^bands. The bands
and rows come from the config, or from datasketch's own optimizer (`MinHashLSH`'s grid search that
minimizes the weighted integrated false-positive and false-negative probabilities around the
threshold). With verification on, missed pairs weigh 0.9: at threshold 0.8 and 256 permutations
that is 23 bands x 11 rows, which finds a pair of Jaccard 0.82 with probability 0.94, where
datasketch's equal weights (17 x 15) find it with probability 0.59.

Inside a bucket, members are sorted in `keep` order and each is paired with the `window` members
before it and with the bucket's first `window` members (`bucket_pairs`). A bucket of up to
2 x window + 1 documents gives every one of its pairs; a bigger one (thousands of pages of one
template, a boilerplate page copied 100,000 times) gives at most 2 x window pairs per member, linear
work, and says how many pairs it left out. Linking a bucket as a star to its smallest id (what this
module did before) loses true pairs: when the root resembles neither B nor C, the pair B~C is never
compared. The first `window` members are the documents a walk in keep order keeps first, so every
member is also compared with the likely survivors.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import numpy as np
import xxhash

from lemur_corpus.dedup.config import NearDedupConfig
from lemur_corpus.errors import ConfigError

MIN_BANDS = 2
"""datasketch's `MinHashLSH` refuses fewer bands (`b < 2`); so do we, naming the keys."""


@functools.lru_cache(maxsize=64)
def optimal_params(threshold: float, num_perm: int, false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) that datasketch's `MinHashLSH(threshold, num_perm, weights)` would use: the
    (b, r) with b x r <= num_perm minimizing the weighted integrals of the false-positive
    probability 1 - (1 - s^r)^b over [0, threshold] and the false-negative one over [threshold, 1],
    the first minimum in datasketch's order (b, then r, ascending).

    datasketch integrates each candidate with SciPy's `quad`, and importing it pulls in SciPy,
    both on every build's start. The integrands are
    polynomials of degree b x r <= num_perm, so Gauss-Legendre quadrature with num_perm // 2 + 1
    nodes integrates them exactly; all candidates at once (tests/test_dedup_lsh.py checks the
    result equals datasketch's over a grid of thresholds, permutations and weights)."""
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=float)
    bands, rows = pairs[:, :1], pairs[:, 1:]
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def integral(lo: float, hi: float, missed: bool) -> np.ndarray:
        s = (hi - lo) / 2 * nodes + (hi + lo) / 2
        collide = 1.0 - (1.0 - s**rows) ** bands
        return ((1.0 - collide if missed else collide) @ weights) * (hi - lo) / 2

    error = (integral(0.0, threshold, False) * (1.0 - false_negative_weight)
             + integral(threshold, 1.0, True) * false_negative_weight)
    best = int(np.argmin(error))
    return int(pairs[best, 0]), int(pairs[best, 1])


def lsh_params(config: NearDedupConfig, where: str = "dedup.<kind>") -> tuple[int, int]:
    """(bands, rows) of a kind's near-dedup (`where`: its config path, for errors): given in the
    config, else datasketch's optimum. Fewer than 2 bands is a `ConfigError` naming the keys."""
    if config.bands is not None and config.rows is not None:
        bands, rows = config.bands, config.rows
        if bands < MIN_BANDS:
            raise ConfigError(f"{where}.bands = {bands}: LSH needs at least {MIN_BANDS} bands "
                              "(datasketch's MinHashLSH refuses fewer)")
        return bands, rows
    bands, rows = optimal_params(config.threshold, config.num_perm, config.fn_weight())
    if bands < MIN_BANDS:
        raise ConfigError(
            f"{where}.threshold = {config.threshold:g} with {where}.num_perm = {config.num_perm}: datasketch's "
            f"optimal banding is {bands} band of {rows} rows, and LSH needs at least {MIN_BANDS} bands "
            f"(datasketch's MinHashLSH refuses fewer); raise {where}.num_perm, lower {where}.threshold, or "
            f"set {where}.bands and {where}.rows")
    return bands, rows


def collision_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that a pair with this Jaccard similarity shares at least one bucket."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One bucket key per band: the band's index and a 128-bit hash of its values (a collision of
    two different bands is a 2^-128 event, and verification would drop the pair anyway)."""
    values = np.ascontiguousarray(signature[: bands * rows].astype("<u4", copy=False)).reshape(bands, rows)
    return [i.to_bytes(2, "big") + xxhash.xxh3_128_digest(values[i].tobytes()) for i in range(bands)]


def bucket_pairs(ordered: Sequence[str], window: int) -> Iterator[tuple[str, str]]:
    """(earlier, later) pairs to verify in one bucket whose distinct members are `ordered` in keep
    order: each member with the `window` members before it and with the first `window` members."""
    for j in range(1, len(ordered)):
        later = ordered[j]
        start = max(0, j - window)
        for i in range(min(window, start)):
            yield ordered[i], later
        for i in range(start, j):
            yield ordered[i], later


def bucket_pair_count(size: int, window: int) -> int:
    """How many pairs `bucket_pairs` gives for a bucket of `size` members (without listing them)."""
    total = 0
    for j in range(1, size):
        start = max(0, j - window)
        total += min(window, start) + (j - start)
    return total


def pairs_left_out(size: int, window: int) -> int:
    """Pairs of a bucket of `size` members that `bucket_pairs` does not give (0 up to 2 x window + 1)."""
    return size * (size - 1) // 2 - bucket_pair_count(size, window)
