"""MinHash signatures, bit for bit those of `datasketch.MinHash` (2.x, scheme `affine32`).

For the same shingles, `num_perm`, `seed` and hash function, `MinHasher.signature_of(shingles)`
equals `datasketch.MinHash(num_perm, seed, hashfunc=...).update_batch(shingles)` (a test proves it):
the same permutation parameters (drawn from `numpy.random.RandomState(seed)`: odd `a`, any `b`), the
same MurmurHash3 32-bit finalizer applied once to each shingle hash, the same `a * h + b mod 2^32`.

Why it is faster (benchmarks/minhash_speed.py): datasketch calls the hash function once per shingle
from Python and then builds a `shingles x num_perm` array in several NumPy passes. Here two compiled
kernels (numba, `lemur_corpus.dedup.kernels`) work on a whole block of shingles: `xxh32` reads every
shingle straight from the block's joined UTF-8 buffer (no Python object per shingle), and
`permute_min` folds each hash into the signature in one fused pass (multiply, add, minimum) over a
signature that stays in L1 cache.
The kernels compile once per process (cached on disk), not per element.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from operator import methodcaller

import numpy as np
import xxhash

from lemur_corpus.dedup.shingles import ShingleBlock, ShingleStats, iter_shingle_blocks

HashFunction = Callable[[bytes], int]


def sha1_hash32(data: bytes) -> int:
    """datasketch's default shingle hash (`datasketch.hashfunc.sha1_hash32`): the first 4 bytes of the
    SHA-1 digest, little-endian. Written here because importing datasketch imports SciPy and pandas
    (about a third of a second in every worker process that signs documents)."""
    return int.from_bytes(hashlib.sha1(data).digest()[:4], "little")


HASH_FUNCTIONS: dict[str, HashFunction] = {
    "xxh32": xxhash.xxh32_intdigest,
    "sha1_32": sha1_hash32,
}
"""Shingle hash functions by config name, as the callables datasketch is given. `xxh32` (xxHash32,
seed 0; computed by a compiled kernel) is the default; `sha1_32` is datasketch's own default
(`datasketch.hashfunc.sha1_hash32`), called once per shingle, for signatures compatible with
datasketch indexes built without a `hashfunc`."""

_DIGEST = methodcaller("digest")

MAX_HASH = np.uint32(0xFFFFFFFF)
"""The value of a permutation no shingle has reached (datasketch's empty MinHash)."""

def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the affine32 permutations, as `datasketch.MinHash._init_permutations` draws them."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def block_of(shingles: list[bytes]) -> ShingleBlock:
    """A list of shingles as one block (for callers that hold shingles as bytes objects)."""
    lengths = np.fromiter(map(len, shingles), dtype=np.int64, count=len(shingles))
    ends = np.cumsum(lengths)
    return ShingleBlock(b"".join(shingles), ends - lengths, ends)


class MinHasher:
    """Signatures of one (num_perm, seed, hash) setting. Create one per worker (`DoFn.setup`)."""

    def __init__(self, num_perm: int, seed: int, hash_name: str) -> None:
        if hash_name not in HASH_FUNCTIONS:
            raise ValueError(f"unknown hash {hash_name!r}; known: {', '.join(HASH_FUNCTIONS)}")
        self.num_perm = num_perm
        self.seed = seed
        self.hash_name = hash_name
        self.a, self.b = permutations(num_perm, seed)
        from lemur_corpus.dedup import kernels  # numba: only where signatures are made

        self._xxh32_ranges, self._permute_min = kernels.xxh32_ranges, kernels.permute_min

    def empty(self) -> np.ndarray:
        return np.full(self.num_perm, MAX_HASH, dtype=np.uint32)

    def hash_block(self, block: ShingleBlock) -> np.ndarray:
        """The 32-bit hash of every shingle of the block."""
        if self.hash_name == "xxh32":
            buf = np.frombuffer(block.buffer, dtype=np.uint8)
            return self._xxh32_ranges(buf, block.starts, block.ends)
        # sha1_32: the first 4 bytes of each SHA-1 digest, little-endian (`sha1_hash32`), with the
        # digests made by C calls mapped in C and read as one array.
        digests = b"".join(map(_DIGEST, map(hashlib.sha1, block.as_bytes())))
        return np.frombuffer(digests, dtype="<u4").reshape(-1, 5)[:, 0].astype(np.uint32)

    def update(self, signature: np.ndarray, block: ShingleBlock) -> None:
        """Fold a block of shingles into `signature` in place."""
        if len(block):
            # the kernel is compiled without bounds checks: a signature of another shape or dtype
            # (one read back from a file of another setting) would write outside its array
            if signature.shape != self.a.shape or signature.dtype != np.uint32:
                raise ValueError(f"a signature of {signature.shape} {signature.dtype} for a "
                                 f"{self.num_perm}-permutation uint32 MinHash")
            self._permute_min(signature, self.hash_block(block), self.a, self.b)

    def signature_of(self, shingles: list[bytes]) -> np.ndarray:
        """The signature of a list of shingles (what datasketch's `update_batch` is given)."""
        signature = self.empty()
        self.update(signature, block_of(shingles))
        return signature

    def signature(self, text: str, tokens: str, n: int, max_shingles: int) -> tuple[np.ndarray | None, ShingleStats]:
        """(signature, what the shingling saw) of a document; None when it has no token at all."""
        signature, stats, _ = self.sign(text, tokens, n, max_shingles, with_set=False)
        return signature, stats

    def sign(self, text: str, tokens: str, n: int, max_shingles: int,
             with_set: bool = True) -> tuple[np.ndarray | None, ShingleStats, np.ndarray | None]:
        """(signature, what the shingling saw, shingle set) of a document: the set is the sorted
        distinct 32-bit hashes of the shingles the signature is made of (`with_set`), what exact
        verification compares (`lemur_corpus.dedup.verify`). Each shingle is hashed once for both."""
        signature = self.empty()
        stats = ShingleStats()
        hashes: list[np.ndarray] = []
        for block in iter_shingle_blocks(text, tokens, n, max_shingles, stats=stats):
            if len(block):
                block_hashes = self.hash_block(block)
                self._permute_min(signature, block_hashes, self.a, self.b)
                if with_set:
                    hashes.append(block_hashes)
        if not stats.shingles:
            return None, stats, None
        return signature, stats, (sorted_distinct(np.concatenate(hashes)) if with_set else None)


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (what `np.unique` gives; a sort and a mask are ~20x faster than
    numpy 2.4's hash-based `np.unique` on a few thousand uint32)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The share of permutations on which two signatures agree (datasketch's `MinHash.jaccard`)."""
    return float(np.count_nonzero(a == b)) / float(a.size)


def to_bytes(signature: np.ndarray) -> bytes:
    """The compact form that travels between workers: num_perm little-endian uint32."""
    return signature.astype("<u4", copy=False).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise ValueError(f"a MinHash signature is whole uint32 values; got {len(data)} bytes")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32, copy=False)
