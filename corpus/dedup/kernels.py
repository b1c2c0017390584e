"""The compiled kernels of MinHash signing (numba): xxHash32 of many byte ranges of one buffer, and
the fold of a block of shingle hashes into a signature. Kept apart from `minhash` so that a process
that only reads or compares signatures (the driver, the dedup index) does not import numba."""

from __future__ import annotations

import numba
import numpy as np

_MASK = np.uint64(0xFFFFFFFF)
_P1 = np.uint64(0x9E3779B1)
_P2 = np.uint64(0x85EBCA77)
_P3 = np.uint64(0xC2B2AE3D)
_P4 = np.uint64(0x27D4EB2F)
_P5 = np.uint64(0x165667B1)


@numba.njit(cache=True, inline="always")
def _rotl(x: np.uint64, r: int) -> np.uint64:
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _MASK


@numba.njit(cache=True, inline="always")
def _read32(buf: np.ndarray, p: int) -> np.uint64:
    return (np.uint64(buf[p]) | (np.uint64(buf[p + 1]) << np.uint64(8))
            | (np.uint64(buf[p + 2]) << np.uint64(16)) | (np.uint64(buf[p + 3]) << np.uint64(24)))


@numba.njit(cache=True, inline="always")
def _round(acc: np.uint64, lane: np.uint64) -> np.uint64:
    acc = (acc + lane * _P2) & _MASK
    return (_rotl(acc, 13) * _P1) & _MASK


@numba.njit(cache=True)
def xxh32_ranges(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """xxHash32 (seed 0) of `buf[starts[i]:ends[i]]` for every i: equal to `xxhash.xxh32_intdigest`
    of each slice (the reference algorithm, in 64-bit arithmetic masked to 32 bits)."""
    out = np.empty(starts.size, dtype=np.uint32)
    for i in range(starts.size):
        p = starts[i]
        end = ends[i]
        length = end - p
        if length >= 16:
            v1 = (_P1 + _P2) & _MASK
            v2 = _P2
            v3 = np.uint64(0)
            v4 = (np.uint64(0x100000000) - _P1) & _MASK
            while p <= end - 16:
                v1 = _round(v1, _read32(buf, p))
                v2 = _round(v2, _read32(buf, p + 4))
                v3 = _round(v3, _read32(buf, p + 8))
                v4 = _round(v4, _read32(buf, p + 12))
                p += 16
            h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _MASK
        else:
            h = _P5
        h = (h + np.uint64(length)) & _MASK
        while p + 4 <= end:
            h = (h + _read32(buf, p) * _P3) & _MASK
            h = (_rotl(h, 17) * _P4) & _MASK
            p += 4
        while p < end:
            h = (h + np.uint64(buf[p]) * _P5) & _MASK
            h = (_rotl(h, 11) * _P1) & _MASK
            p += 1
        h ^= h >> np.uint64(15)
        h = (h * _P2) & _MASK
        h ^= h >> np.uint64(13)
        h = (h * _P3) & _MASK
        h ^= h >> np.uint64(16)
        out[i] = np.uint32(h)
    return out


@numba.njit(cache=True)
def permute_min(signature: np.ndarray, hashes: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """signature[k] = min(signature[k], min over h of (a[k] * fmix32(h) + b[k]) mod 2^32), in place.
    The inner loop over permutations is contiguous and branch-free, so it compiles to SIMD."""
    num_perm = signature.size
    for i in range(hashes.size):
        h = np.uint32(hashes[i])
        # MurmurHash3's 32-bit finalizer, as datasketch applies it before the permutations.
        h ^= h >> np.uint32(16)
        h = np.uint32(h * np.uint32(0x85EBCA6B))
        h ^= h >> np.uint32(13)
        h = np.uint32(h * np.uint32(0xC2B2AE35))
        h ^= h >> np.uint32(16)
        for k in range(num_perm):
            signature[k] = min(signature[k], np.uint32(a[k] * h + b[k]))
