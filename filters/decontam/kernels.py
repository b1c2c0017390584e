"""The compiled kernels of a document's lookup (numba): its words' hashes, and its word n-grams'
fingerprints screened by the index's bitmap, each in one pass.

The numpy form of the same arithmetic (`tokens.ngrams_of`, `tokens.fingerprints`, `Matcher.screen`)
makes about thirty array calls a document; on the scale corpus's ~2 KB documents their fixed cost,
not the n-grams, was most of the filter. Here every n-gram is made, finished, cut to its fingerprint
and tested against the bitmap in one loop, and only the few that pass (usually none) come back. The
values are the numpy form's exactly (tests/test_decontam.py compares them on real documents).

The words' hashes are XXH3-64 (seed 0), the index's word hash (`tokens.word_hashes`, through the
`xxhash` module and a cache of words), computed here over the document's space-joined words as they
lie in one buffer: per word, the Python form made a `bytes` object, looked it up in a dict and
hashed the misses, a large part of the filter's time (`benchmarks/decontam_speed.py`: the filter
x1.36 without it). The algorithm is the reference's
(xxhash.h, `XXH3_64bits` for inputs of at most 240 bytes, with its default secret); a longer word
(a base64 blob's run of letters, rare) is left to `xxhash` by the caller. Tests compare every
length from 0 to 240 with `xxhash.xxh3_64_intdigest`.
"""

from __future__ import annotations

import numba
import numpy as np
import xxhash

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


XXH3_MAX_BYTES = 240
"""The longest input `xxh3_64` hashes (XXH3's "mid-size" limit; longer inputs take its other path)."""
_SECRET = np.frombuffer(bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364"
    "eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e"
    "2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e"), dtype=np.uint8)
"""XXH3's default secret (`XXH3_kSecret`, 192 bytes)."""
_PRIME64_1 = np.uint64(0x9E3779B185EBCA87)
_PRIME64_2 = np.uint64(0xC2B2AE3D27D4EB4F)
_PRIME64_3 = np.uint64(0x165667B19E3779F9)
_PRIME_MX1 = np.uint64(0x165667919E3779F9)
_PRIME_MX2 = np.uint64(0x9FB21C651E98DF25)
_LOW32 = np.uint64(0xFFFFFFFF)


@numba.njit(cache=True)
def _le64(buf: np.ndarray, p: int) -> np.uint64:
    value = np.uint64(0)
    for k in range(7, -1, -1):
        value = (value << np.uint64(8)) | np.uint64(buf[p + k])
    return value


@numba.njit(cache=True)
def _le32(buf: np.ndarray, p: int) -> np.uint64:
    """As `dedup.kernels._read32`, kept here: numba's cache on disk is checked against the calling
    module's own file only, so a kernel calling another module's compiled function would keep a stale
    copy of it after that function changed."""
    return (np.uint64(buf[p]) | (np.uint64(buf[p + 1]) << np.uint64(8))
            | (np.uint64(buf[p + 2]) << np.uint64(16)) | (np.uint64(buf[p + 3]) << np.uint64(24)))


@numba.njit(cache=True)
def _rotl64(x: np.uint64, r: int) -> np.uint64:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(cache=True)
def _mul128_fold64(lhs: np.uint64, rhs: np.uint64) -> np.uint64:
    """The 128-bit product's low and high halves xored (`XXH3_mul128_fold64`), from 32-bit halves."""
    lo_lo = (lhs & _LOW32) * (rhs & _LOW32)
    hi_lo = (lhs >> np.uint64(32)) * (rhs & _LOW32)
    lo_hi = (lhs & _LOW32) * (rhs >> np.uint64(32))
    hi_hi = (lhs >> np.uint64(32)) * (rhs >> np.uint64(32))
    cross = (lo_lo >> np.uint64(32)) + (hi_lo & _LOW32) + lo_hi
    upper = (hi_lo >> np.uint64(32)) + (cross >> np.uint64(32)) + hi_hi
    lower = (cross << np.uint64(32)) | (lo_lo & _LOW32)
    return lower ^ upper


@numba.njit(cache=True)
def _xxh64_avalanche(h: np.uint64) -> np.uint64:
    h ^= h >> np.uint64(33)
    h *= _PRIME64_2
    h ^= h >> np.uint64(29)
    h *= _PRIME64_3
    return h ^ (h >> np.uint64(32))


@numba.njit(cache=True)
def _xxh3_avalanche(h: np.uint64) -> np.uint64:
    h ^= h >> np.uint64(37)
    h *= _PRIME_MX1
    return h ^ (h >> np.uint64(32))


@numba.njit(cache=True)
def _mix16(buf: np.ndarray, p: int, secret: np.ndarray, s: int) -> np.uint64:
    return _mul128_fold64(_le64(buf, p) ^ _le64(secret, s), _le64(buf, p + 8) ^ _le64(secret, s + 8))


@numba.njit(cache=True)
def xxh3_64(buf: np.ndarray, p: int, length: int, secret: np.ndarray) -> np.uint64:
    """XXH3-64 (seed 0, `secret` the default) of `buf[p:p + length]`, for a length of at most
    `XXH3_MAX_BYTES`: `XXH3_len_0to16_64b`, `XXH3_len_17to128_64b`, `XXH3_len_129to240_64b`."""
    size = np.uint64(length)
    if length > 128:
        acc = size * _PRIME64_1
        for i in range(8):
            acc += _mix16(buf, p + 16 * i, secret, 16 * i)
        acc_end = _mix16(buf, p + length - 16, secret, 136 - 17)
        acc = _xxh3_avalanche(acc)
        for i in range(8, length // 16):
            acc_end += _mix16(buf, p + 16 * i, secret, 16 * (i - 8) + 3)
        return _xxh3_avalanche(acc + acc_end)
    if length > 16:
        acc = size * _PRIME64_1
        if length > 32:
            if length > 64:
                if length > 96:
                    acc += _mix16(buf, p + 48, secret, 96)
                    acc += _mix16(buf, p + length - 64, secret, 112)
                acc += _mix16(buf, p + 32, secret, 64)
                acc += _mix16(buf, p + length - 48, secret, 80)
            acc += _mix16(buf, p + 16, secret, 32)
            acc += _mix16(buf, p + length - 32, secret, 48)
        acc += _mix16(buf, p, secret, 0)
        acc += _mix16(buf, p + length - 16, secret, 16)
        return _xxh3_avalanche(acc)
    if length > 8:
        low = _le64(buf, p) ^ (_le64(secret, 24) ^ _le64(secret, 32))
        high = _le64(buf, p + length - 8) ^ (_le64(secret, 40) ^ _le64(secret, 48))
        swapped = np.uint64(0)
        for k in range(8):  # XXH_swap64(low)
            swapped = (swapped << np.uint64(8)) | ((low >> np.uint64(8 * k)) & np.uint64(0xFF))
        return _xxh3_avalanche(size + swapped + high + _mul128_fold64(low, high))
    if length >= 4:
        keyed = (_le32(buf, p + length - 4) + (_le32(buf, p) << np.uint64(32))) ^ (_le64(secret, 8) ^ _le64(secret, 16))
        keyed ^= _rotl64(keyed, 49) ^ _rotl64(keyed, 24)  # XXH3_rrmxmx
        keyed *= _PRIME_MX2
        keyed ^= (keyed >> np.uint64(35)) + size
        keyed *= _PRIME_MX2
        return keyed ^ (keyed >> np.uint64(28))
    if length > 0:
        combined = ((np.uint64(buf[p]) << np.uint64(16)) | (np.uint64(buf[p + (length >> 1)]) << np.uint64(24))
                    | np.uint64(buf[p + length - 1]) | (size << np.uint64(8)))
        return _xxh64_avalanche(combined ^ (_le32(secret, 0) ^ _le32(secret, 4)))
    return _xxh64_avalanche(_le64(secret, 56) ^ _le64(secret, 64))


@numba.njit(cache=True)
def _xxh3_words(buf: np.ndarray, secret: np.ndarray, hashes: np.ndarray, longer: np.ndarray) -> int:
    """`hashes[i]` = the hash of word i; the index of each word too long for `xxh3_64` goes to
    `longer` (its hash left 0). Returns how many went there."""
    count = hashes.size
    word = 0
    start = 0
    left = 0
    size = buf.size
    for end in range(size + 1):
        if end < size and buf[end] != 32:
            continue
        if word < count:
            length = end - start
            if length <= XXH3_MAX_BYTES:
                hashes[word] = xxh3_64(buf, start, length, secret)
            else:
                hashes[word] = np.uint64(0)
                longer[left] = word
                left += 1
        word += 1
        start = end + 1
    return left


def joined_word_hashes(joined: bytes, count: int) -> np.ndarray:
    """`tokens.word_hashes` of the `count` words whose UTF-8 `joined` holds, separated by one space
    (`tokens.lowered_words`): XXH3-64 of each, the few longer than `XXH3_MAX_BYTES` by `xxhash`."""
    hashes = np.empty(count, dtype=np.uint64)
    longer = np.empty(count, dtype=np.int64)
    left = _xxh3_words(np.frombuffer(joined, dtype=np.uint8), _SECRET, hashes, longer)
    if left:
        spelled = joined.split(b" ")
        for index in longer[:left].tolist():
            hashes[index] = xxhash.xxh3_64_intdigest(spelled[index])
    return hashes
