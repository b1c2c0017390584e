"""Lemur's published mixture (Xu et al. 2023, arXiv 2310.06830, Table 8), as data.

Weights are percentages of all output tokens; epochs are the passes over each source's pool that the
paper reports at 90B tokens (text epochs are not given). `configs/lemur.yaml` and the embedded default
config must encode exactly this table (tests check both).
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True, slots=True)
class TableRow:
    name: str
    kind: Literal["code", "text"]
    weight_percent: float
    reference_epochs: float | None
    label: str


LEMUR_TABLE8: tuple[TableRow, ...] = (
    TableRow("python", "code", 72.73, 2.98, "Python"),
    TableRow("sql", "code", 5.15, 0.69, "SQL"),
    TableRow("java", "code", 1.82, 0.06, "Java"),
    TableRow("shell", "code", 1.82, 1.26, "Shell"),
    TableRow("notebooks", "code", 1.71, 0.82, "Jupyter notebooks"),
    TableRow("javascript", "code", 1.69, 0.06, "JavaScript"),
    TableRow("c", "code", 1.61, 0.06, "C"),
    TableRow("php", "code", 1.33, 0.06, "PHP"),
    TableRow("cpp", "code", 1.21, 0.06, "C++"),
    TableRow("others", "code", 1.73, 0.06, "Others"),
    TableRow("refinedweb", "text", 6.82, None, "RefinedWeb"),
    TableRow("wikipedia", "text", 0.64, None, "Wikipedia"),
    TableRow("books", "text", 0.41, None, "Books"),
    TableRow("arxiv", "text", 0.41, None, "ArXiv"),
    TableRow("stackexchange", "text", 0.41, None, "StackExchange"),
    TableRow("dm_mathematics", "text", 0.41, None, "DM Mathematics"),
)

LEMUR_TOTAL_TOKENS = 90_000_000_000
"""Lemur continued Llama-2-70B on 90B tokens."""

CODE_BUCKETS: tuple[str, ...] = tuple(r.name for r in LEMUR_TABLE8 if r.kind == "code")
TEXT_SOURCES: tuple[str, ...] = tuple(r.name for r in LEMUR_TABLE8 if r.kind == "text")
