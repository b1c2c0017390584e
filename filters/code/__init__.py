"""Code filters: language buckets, StarCoder heuristics, generated/data files, tree-sitter syntax."""

from __future__ import annotations

from filters.base import Filter
from filters.code.config import CodeFiltersConfig


def build_code_filters(config: CodeFiltersConfig, only: list[str] | None = None) -> list[Filter]:
    """The code filters in run order (cheap before expensive); `only` selects and orders by name."""
    return []
