"""Dedup settings: exact (content hash) for both kinds, then near-dedup (MinHash LSH) per kind.

Code and text run near-dedup with their own settings in one build. Defaults follow the dedup of
The Stack (Kocetkov et al. 2022, §3.3; the StarCoder pipeline: 256 permutations, 5-grams, Jaccard
0.85 for code) and the RefinedWeb/Gopher-style fuzzy dedup of web text (word 5-grams; Penedo et al.
2023 §G.3, threshold 0.8).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lemur_corpus.configbase import StrictModel

SurvivorRule = Literal["smallest_id", "most_stars", "longest"]
Tokens = Literal["words", "code"]
HashName = Literal["xxh32", "sha1_32"]


class NearDedupConfig(StrictModel):
    """MinHash LSH near-dedup of one kind (see `corpus/dedup/` for how each step works)."""

    enabled: bool = True
    tokens: Tokens
    """`words`: `re.findall(r"\\w+", text.lower())` (the labelled sets' `jaccard_w5` words);
    `code`: identifiers, numbers and each operator/bracket character, whitespace and layout ignored."""
    ngram: int = Field(default=5, ge=1, le=64)
    """Tokens per shingle (The Stack and RefinedWeb: 5)."""
    num_perm: int = Field(default=256, ge=16, le=4096)
    """Permutations per signature (The Stack/StarCoder: 256)."""
    seed: int = Field(default=1, ge=0, lt=2**32)
    """Seeds the permutations exactly as `datasketch.MinHash(seed=...)` does."""
    hash: HashName = "xxh32"
    """Shingle hash: `xxh32` (xxHash32, compiled; fast) or `sha1_32` (datasketch's default)."""
    threshold: float = Field(gt=0.0, le=1.0)
    """Jaccard similarity at which two documents are near-duplicates."""
    bands: int | None = Field(default=None, ge=1)
    rows: int | None = Field(default=None, ge=1)
    """LSH bands x rows per band. Leave both out to use datasketch's optimal parameters for the
    threshold, num_perm and `false_negative_weight`."""
    false_negative_weight: float | None = Field(default=None, gt=0.0, lt=1.0)
    """The weight of missed pairs in datasketch's parameter search (false positives weigh 1 minus
    this). Default: 0.9 when `verify` is on, because verification removes banding's false
    positives, so extra candidates cost only work while a missed pair is lost for good; 0.5
    (datasketch's own default) when it is off."""
    verify: bool = True
    """Keep a candidate pair only if its signature-estimated Jaccard reaches the threshold: removes
    the false merges banding alone makes."""
    max_shingles: int = Field(default=100_000, ge=1)
    """A document's signature uses its first `max_shingles` shingles in document order (about 600 KB
    of English text, 400 KB of code); the rest is read no further. Bounds the time and memory a
    huge document (a 20 MB single line) costs; such documents are counted as `capped_documents`."""

    def fn_weight(self) -> float:
        if self.false_negative_weight is not None:
            return self.false_negative_weight
        return 0.9 if self.verify else 0.5

    @model_validator(mode="after")
    def _bands_rows(self) -> NearDedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both 'bands' and 'rows', or neither (then they are derived from the threshold)")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


class CodeNearDedupConfig(NearDedupConfig):
    tokens: Tokens = "code"
    threshold: float = Field(default=0.85, gt=0.0, le=1.0)
    """The Stack's near-dedup threshold (Kocetkov et al. 2022)."""


class TextNearDedupConfig(NearDedupConfig):
    tokens: Tokens = "words"
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    """Web-text fuzzy dedup threshold (RefinedWeb-style word 5-grams)."""


class DedupConfig(StrictModel):
    exact: bool = True
    """Drop documents whose content hash equals another's (within code, within text)."""
    keep: SurvivorRule = "smallest_id"
    """Which member of a duplicate group survives: the smallest id, the most repository stars
    (ties: smallest id), or the longest text (ties: smallest id). Exact groups and near-duplicate
    clusters use the same rule."""
    code: CodeNearDedupConfig = Field(default_factory=CodeNearDedupConfig)
    """Near-dedup of code (The Stack: Jaccard 0.85)."""
    text: TextNearDedupConfig = Field(default_factory=TextNearDedupConfig)
    """Near-dedup of text (word 5-grams, Jaccard 0.8)."""

    def near(self, kind: str) -> NearDedupConfig:
        return self.code if kind == "code" else self.text
