"""Thresholds of the text filters (issue #4 fills this in; each default cites its paper)."""

from __future__ import annotations

from corpus.configbase import StrictModel


class TextFiltersConfig(StrictModel):
    enabled: bool = True
