"""The compiled kernel of a document's lookup (numba): its word n-grams' fingerprints, screened by the
index's bitmap, in one pass.

The numpy form of the same arithmetic (`tokens.ngrams_of`, `tokens.fingerprints`, `Matcher.screen`)
makes about thirty array calls a document; on the scale corpus's ~2 KB documents their fixed cost,
not the n-grams, was most of the filter. Here every n-gram is made, finished, cut to its fingerprint
and tested against the bitmap in one loop, and only the few that pass (usually none) come back. The
values are the numpy form's exactly (tests/test_decontam.py compares them on real documents).
"""

from __future__ import annotations

import numba
import numpy as np

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


@numba.njit(cache=True)
def screened_fingerprints(hashed: np.ndarray, n: int, bitmap: np.ndarray, shift: int) -> np.ndarray:
    """The fingerprints of the n-grams over the word hashes `hashed` (uint64) whose top bits are set
    in `bitmap` (bit `f >> shift` of fingerprint f), in document order, repeats included: what
    `Matcher.screen(fingerprints(ngrams_of(hashed, n)))` keeps, before it sorts and dedups them."""
    count = hashed.size - n + 1
    out = np.empty(max(count, 0), dtype=np.uint32)
    kept = 0
    for i in range(count):
        acc = hashed[i]
        for j in range(1, n):
            acc = acc * _MULTIPLIER + hashed[i + j]  # uint64: wraps, as numpy's
        acc ^= acc >> np.uint64(30)  # splitmix64's finalizer (`tokens._mix`)
        acc *= _MIX_1
        acc ^= acc >> np.uint64(27)
        acc *= _MIX_2
        acc ^= acc >> np.uint64(31)
        fingerprint = np.uint32(acc >> np.uint64(32))
        top = fingerprint >> np.uint32(shift)
        if (bitmap[top >> np.uint32(3)] >> (top & np.uint32(7))) & np.uint8(1):
            out[kept] = fingerprint
            kept += 1
    return out[:kept]
