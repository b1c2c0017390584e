"""Data, not code: data formats outside StarCoder's size bounds, XML documents, and data dumps.

- `xml_declaration`: `<?xml version=` within the first 100 characters (StarCoder's XML filter; it
  removes Maven POMs, XML schemas and other XML documents filed under code languages). XSLT, a
  programming language written in XML, is exempt, as in StarCoder.
- `data_format_size`: JSON/YAML/CSV... outside 50-5,000 characters (StarCoder `large_and_small_files`).
- `literal_rows`: most lines are rows of literals only — SQL `INSERT ... VALUES (...)` dumps,
  tuples `(1, 'AC/DC'),`, hex/number tables, one-string-per-line tables — and there are many of them.
  A data dump wrapped in a programming language is still a data dump.
"""

from __future__ import annotations

import dataclasses

import re2

from lemur_corpus.document import Document
from lemur_corpus.filters.base import Verdict
from lemur_corpus.filters.code.config import DataLikeConfig

_LITERAL = (
    r"(?:[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)[uUlLfFdD]*"
    r"|[NnBbXxEe]?'(?:[^'\\\n]|''|\\.)*'"
    r"|\"(?:[^\"\\\n]|\\.)*\""
    r"|NULL|null|None|nil|undefined|true|false|TRUE|FALSE|True|False)"
)
LITERAL_ROW = re2.compile((
    r"(?mi)^[ \t]*(?:INSERT[ \t]+INTO[ \t]+[^\n(]+?(?:[ \t]*\([^)\n]*\))?[ \t]+VALUES[ \t]*)?"
    rf"[\[({{]?[ \t]*{_LITERAL}(?:[ \t]*,[ \t]*{_LITERAL})*[ \t]*[\])}}]?[ \t]*[,;]?[ \t]*"
    r"(?:(?:--|#|//|/\*)[^\n]*)?$"
).encode())
"""One row of literals (RE2: linear time, no backtracking blow-up on long lines)."""


def literal_rows(text: str, min_rows: int) -> tuple[int, int]:
    """(rows of literals only, non-blank lines); lines are only counted once there are `min_rows`."""
    rows = sum(1 for _ in LITERAL_ROW.finditer(text.encode("utf-8", "replace")))
    lines = sum(1 for line in text.split("\n") if line.strip()) if rows >= min_rows else 0
    return rows, lines


@dataclasses.dataclass
class DataLikeFilter:
    config: DataLikeConfig
    name: str = "data_like"

    def __post_init__(self) -> None:
        self._data_languages = frozenset(self.config.data_languages)
        self._xml_exempt = frozenset(self.config.xml_exempt_languages)

    def __call__(self, doc: Document) -> Verdict:
        cfg = self.config
        text = doc.text
        if doc.lang not in self._xml_exempt and "<?xml version=" in text[:100]:
            return Verdict.dropped("xml_declaration")
        if doc.lang in self._data_languages:
            chars = float(len(text))
            if not cfg.data_min_chars <= len(text) <= cfg.data_max_chars:
                return Verdict.dropped("data_format_size", {"chars": chars})
            return Verdict.kept({"chars": chars})
        if text.count("\n") + 1 < cfg.min_literal_rows:
            return Verdict.kept({"literal_row_fraction": 0.0})
        rows, lines = literal_rows(text, cfg.min_literal_rows)
        fraction = rows / lines if lines else 0.0
        signals = {"literal_rows": float(rows), "literal_row_fraction": round(fraction, 4)}
        if rows >= cfg.min_literal_rows and fraction > cfg.max_literal_row_fraction:
            return Verdict.dropped("literal_rows", signals)
        return Verdict.kept(signals)
