"""Text filters: fastText language ID, Gopher quality and repetition, C4 rules."""

from __future__ import annotations

from filters.base import Filter
from filters.text.config import TextFiltersConfig


def build_text_filters(config: TextFiltersConfig, only: list[str] | None = None) -> list[Filter]:
    """The text filters in run order (cheap before expensive); `only` selects and orders by name."""
    return []
