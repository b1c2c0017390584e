"""Dedup settings: exact (content hash) for both kinds, then near-dedup (MinHash LSH) per kind.

Code and text run near-dedup with their own settings in one build. Defaults follow the dedup of
The Stack (Kocetkov et al. 2022, §3.3; the StarCoder pipeline: 256 permutations, 5-grams, Jaccard
0.85 for code) and the RefinedWeb/Gopher-style fuzzy dedup of web text (word 5-grams; Penedo et al.
2023 §G.3, threshold 0.8).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lemur_corpus.configbase import StrictModel

SurvivorRule = Literal["smallest_id", "most_stars", "longest"]
Tokens = Literal["words", "code"]
HashName = Literal["xxh32", "sha1_32"]
VerifyMode = Literal["exact", "signature", "off"]

VERIFY_ALIASES: dict[bool, VerifyMode] = {True: "signature", False: "off"}
"""Configs written before `verify` took a mode said `true` (signature-estimated Jaccard) or `false`
(no verification); they are read as the mode they meant, so an old config keeps its behaviour."""


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
    threshold, num_perm and `false_negative_weight`. At least 2 bands, as datasketch's `MinHashLSH`
    requires (one band makes a pair a candidate only when it agrees on one run of `rows` values)."""
    false_negative_weight: float | None = Field(default=None, gt=0.0, lt=1.0)
    """The weight of missed pairs in datasketch's parameter search (false positives weigh 1 minus
    this). Default: 0.9 when pairs are verified (`verify` exact or signature), because verification
    removes banding's false positives, so extra candidates cost only work while a missed pair is
    lost for good; 0.5 (datasketch's own default) with `verify: off`."""
    verify: VerifyMode = "exact"
    """How a candidate pair becomes an edge. `exact`: the Jaccard of the two documents' shingle sets
    (each document carries its distinct 32-bit shingle hashes, the ones its signature was made from,
    sorted: 4 bytes a shingle, at most `max_shingles`) reaches the threshold; `signature`: the MinHash
    estimate does (1 KiB a document at 256 permutations, standard error ~0.025 near 0.8); `off`: every
    candidate pair is an edge. `true` and `false` (the boolean of older configs) are read as
    `signature` and `off`."""
    bucket_window: int = Field(default=16, ge=1, le=4096)
    """Pairs verified inside one LSH bucket: its members are sorted in `keep` order and each is
    compared with the `bucket_window` members before it and with the bucket's first `bucket_window`
    (the likely survivors). A bucket of up to 2 x bucket_window + 1 documents has every pair
    verified; a larger one (a boilerplate page copied thousands of times) costs linear work, and the
    pairs left out are counted (`window_limited_buckets`, `pairs_not_compared`)."""
    max_component_size: int = Field(default=100_000, ge=2)
    """Documents of one connected component decided together on one worker. A larger component (a
    page copied 100,000 times with small edits) is split into parts of this many documents by the
    rank of their ids; each part is decided on its own (every document still gets a verdict; a part
    keeps at least one of them), counted as `split_components` and `component_parts`."""
    max_shingles: int = Field(default=100_000, ge=1)
    """A document's signature uses its first `max_shingles` shingles in document order (about 600 KB
    of English text, 400 KB of code); the rest is read no further. Bounds the time and memory a
    huge document (a 20 MB single line) costs; such documents are counted as `capped_documents`."""

    def fn_weight(self) -> float:
        if self.false_negative_weight is not None:
            return self.false_negative_weight
        return 0.9 if self.verify != "off" else 0.5

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_aliases(cls, value: Any) -> Any:
        return VERIFY_ALIASES.get(value, value) if isinstance(value, bool) else value

    @field_validator("bands")
    @classmethod
    def _two_bands(cls, value: int | None) -> int | None:
        if value is not None and value < 2:
            raise ValueError(f"{value} band: LSH needs at least 2 bands (datasketch's MinHashLSH refuses fewer)")
        return value

    @model_validator(mode="after")
    def _bands_rows(self) -> NearDedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both 'bands' and 'rows', or neither (then they are derived from the threshold)")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


class CodeNearDedupConfig(NearDedupConfig):
    tokens: Tokens = "words"
    """Identifiers and numbers, operators and layout ignored, as BigCode's near-dedup of The Stack
    (`near_deduplication/minhash_deduplication.py`: `NON_ALPHA = re.compile("[^A-Za-z_0-9]")`);
    also the words the dedup metric counts (`../shared/tools/eval_dedup.py`). `code` (operator
    characters as tokens too) made pairs that differ only in operators and spacing of dense code
    look closer than their words are: 3 wrong removals in 174 on code_forks at 0.7."""
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
    component_rounds: int = Field(default=12, ge=1, le=64)
    """Rounds of large-star/small-star (Kiveris et al. 2014) that compute the connected components
    of the verified edges across workers (Beam has no loops: the rounds are unrolled). A settled
    component leaves the rounds (its centre labels it), so a round after the graph has settled gets
    nothing (`pipelines/dedup_components.py`); components still unsettled after
    the last round are counted (`unconverged_nodes`) and decided in smaller groups, which can only
    keep more documents, never remove one without a verified edge to a kept document."""

    def near(self, kind: str) -> NearDedupConfig:
        return self.code if kind == "code" else self.text
