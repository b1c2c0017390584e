"""The compiled kernel of Gopher's n-gram repetition rules (numba): every n-gram size in one call.

The numpy form numbered each size's n-grams with a sort over the positions whose first n-1 words
repeat, and scanned the repeats in Python: about ten array calls per size, ninety a document, whose
fixed cost was most of the rule on the scale corpus's ~2 KB pages. Here each size's n-grams get exact
ids (the dense rank of the pair (id of the first n-1 words, id of the last word): equal n-grams,
equal ids; never hashes) and both statistics in compiled loops. The values are the definitions'
exactly (tests/test_text_filters.py checks them against datatrove's on random word lists and real
pages, and `benchmarks/gopher_speed.py` against the numpy form it replaced).
"""

from __future__ import annotations

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
"""Fibonacci hashing's multiplier: the high bits of key x this spread any keys over the table."""


@numba.njit(cache=True)
def ngram_repetition(ids: np.ndarray, lengths: np.ndarray, max_n: int, length: int,
                     duplicate_limits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each n = 2..max_n (index n of each array; -1 where the document has fewer than n words):

    - `top`: characters covered by the most frequent n-gram (ties: the one seen first), counting the
      spaces between its words: `len(" ".join(ngram)) * count`;
    - `duplicate`: characters of n-grams equal to an earlier one, scanning left to right and jumping
      over an n-gram once counted (overlapping repeats are not counted twice); the scan stops as
      soon as they exceed `duplicate_limits[n]` of `length` (the rule has failed then);
    - `most`: how often the most frequent n-gram occurs.

    `ids` are the words' dense ids (int64, 0..distinct-1), `lengths` their characters. An n-gram can
    occur twice only where its first n-1 words do, so only those positions are looked up (in an
    open-addressing table keyed by the pair of ids, fewer with every n); every other position's
    n-gram gets an id of its own."""
    size = ids.size
    top = np.full(max_n + 1, -1, dtype=np.int64)
    duplicate = np.full(max_n + 1, -1, dtype=np.int64)
    most = np.zeros(max_n + 1, dtype=np.int64)
    if size < 2:
        return top, duplicate, most
    cumulative = np.zeros(size + 1, dtype=np.int64)
    width = 1
    for i in range(size):
        cumulative[i + 1] = cumulative[i] + lengths[i]
        width = max(width, ids[i] + 1)
    bits = 1
    while (1 << bits) < 2 * size:
        bits += 1
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    table_keys = np.full(1 << bits, -1, dtype=np.int64)
    table_ids = np.zeros(1 << bits, dtype=np.int64)
    used = np.empty(size, dtype=np.int64)  # the slots filled for one n, to empty them for the next
    current = ids.copy()  # the id of the (n-1)-gram at each position
    counts = np.zeros(size, dtype=np.int64)  # how often each id of `current` occurs
    for i in range(size):
        counts[ids[i]] += 1
    gram = np.empty(size, dtype=np.int64)
    gram_counts = np.zeros(size, dtype=np.int64)
    seen = np.zeros(size, dtype=np.bool_)
    for n in range(2, max_n + 1):
        positions = size - n + 1
        if positions < 1:
            break
        filled = 0
        next_id = 0
        for position in range(positions):
            if counts[current[position]] < 2:
                gram[position] = next_id  # its first n-1 words occur once: so does the n-gram
                next_id += 1
                continue
            key = current[position] * width + ids[position + n - 1]
            slot = np.int64((np.uint64(key) * _GOLDEN) >> shift)
            while table_keys[slot] != -1 and table_keys[slot] != key:
                slot = (slot + 1) & mask
            if table_keys[slot] == -1:
                table_keys[slot] = key
                table_ids[slot] = next_id
                used[filled] = slot
                filled += 1
                next_id += 1
            gram[position] = table_ids[slot]
        for k in range(filled):
            table_keys[used[k]] = -1
        for g in range(next_id):
            gram_counts[g] = 0
        for position in range(positions):
            gram_counts[gram[position]] += 1
        highest = 0
        for g in range(next_id):
            highest = max(highest, gram_counts[g])
        most[n] = highest
        start = 0
        while gram_counts[gram[start]] != highest:
            start += 1
        top[n] = (cumulative[start + n] - cumulative[start] + n - 1) * highest
        chars = 0
        if highest > 1:
            for g in range(next_id):
                seen[g] = False
            next_free = 0
            limit = duplicate_limits[n]
            for position in range(positions):
                if position < next_free:
                    continue
                g = gram[position]
                if gram_counts[g] < 2:
                    continue  # occurs once: never a repeat, and marking it seen changes nothing
                if seen[g]:
                    chars += cumulative[position + n] - cumulative[position]
                    next_free = position + n
                    if chars / length > limit:
                        break
                else:
                    seen[g] = True
        duplicate[n] = chars
        if highest == 1:  # no n-gram repeats, so no longer one does: each occurs once, the first is the top
            for m in range(n + 1, min(max_n, size) + 1):
                top[m] = cumulative[m] + m - 1
                duplicate[m] = 0
                most[m] = 1
            break
        current, gram = gram, current
        counts, gram_counts = gram_counts, counts
    return top, duplicate, most
