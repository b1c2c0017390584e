"""Dedup settings. Exact dedup is cheap and on by default; near-dedup (MinHash LSH) is issue #3."""

from __future__ import annotations

from typing import Literal

from corpus.configbase import StrictModel

SurvivorRule = Literal["smallest_id", "most_stars", "longest"]


class DedupConfig(StrictModel):
    exact: bool = True
    """Drop documents whose content hash equals another's (within code, within text)."""
    keep: SurvivorRule = "smallest_id"
    """Which member of a duplicate group survives: the smallest id, the most repository stars
    (ties: smallest id), or the longest text (ties: smallest id)."""
