"""Thresholds of the code filters (issue #5 fills this in; each default cites its source)."""

from __future__ import annotations

from corpus.configbase import StrictModel


class CodeFiltersConfig(StrictModel):
    enabled: bool = True
