"""StarCoder / The Stack heuristics: line lengths, alphanumeric share, size, inline encoded data.

The first three rules come from Codex and were kept by The Stack and StarCoder (thresholds in
`HeuristicsConfig`); the size bounds from The Stack v1; the encoded-data rule from StarCoder2, whose
three patterns find base64 blobs, hex byte lists (`0x1f, 0x8b, ...`, `\\x1f\\x8b...`) and runs of
`\\uXXXX` escapes: data pasted into source, not code. Binary content (control characters, or the
U+FFFD that undecodable bytes become) is dropped before any of those rules look at it.
"""

from __future__ import annotations

import dataclasses

import re2

from lemur_corpus.document import Document
from lemur_corpus.filters.base import Verdict
from lemur_corpus.filters.code.config import HeuristicsConfig
from lemur_corpus.filters.code.textstats import alnum_fraction, line_stats

# StarCoder2 §3, "encoded data": base64, hex bytes, \\u escapes. The hex separator is widened from
# `,` to `,\s*`: as published, the pattern cannot cross a comma followed by a space, so it misses
# `0x00, 0x3c, ...`, the usual C table style. RE2 runs the patterns as DFAs over the UTF-8 bytes (20x Python's
# `re` here); runs are pure ASCII, so bytes and characters agree on them.
ENCODED_PATTERNS: tuple[re2._Regexp, ...] = (
    re2.compile(rb"[a-zA-Z0-9+/\n=]{64,}"),
    re2.compile(rb"(?:\b(?:0x|\\x)?[0-9a-fA-F]{2}(?:,\s*|\b\s*)){8,}"),
    re2.compile(rb"(?:\\u[0-9a-fA-F]{4}){8,}"),
)


# C0 controls except tab, newlines, form feed and ESC; DEL; U+FFFD (what undecodable bytes become).
BINARY_CHARACTER = re2.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]|\x{FFFD}")  # RE2 reads bytes as UTF-8


def binary_fraction(data: bytes) -> float:
    """Share of the UTF-8 bytes that are control characters or replacement characters."""
    return len(BINARY_CHARACTER.findall(data)) / len(data) if data else 0.0


def encoded_runs(data: bytes) -> tuple[int, int]:
    """(bytes inside encoded-data runs, longest run) of UTF-8 `data`. Runs of different patterns
    rarely overlap; where they do the bytes count once per pattern, capped at the total."""
    total = longest = 0
    for pattern in ENCODED_PATTERNS:
        for match in pattern.finditer(data):
            n = match.end() - match.start()
            total += n
            longest = max(longest, n)
    return min(total, len(data)), longest


@dataclasses.dataclass
class HeuristicsFilter:
    config: HeuristicsConfig
    name: str = "heuristics"

    def __call__(self, doc: Document) -> Verdict:
        cfg = self.config
        text = doc.text
        data = text.encode("utf-8", "replace")
        nbytes = len(data)
        signals: dict[str, float] = {"bytes": float(nbytes)}
        if nbytes > cfg.max_bytes:
            return Verdict.dropped("too_large", signals)
        if nbytes < cfg.min_bytes:
            return Verdict.dropped("too_small", signals)
        signals["binary_fraction"] = round(binary_fraction(data), 5)
        if signals["binary_fraction"] > cfg.max_binary_fraction:
            return Verdict.dropped("binary_content", signals)
        stats = line_stats(text)
        signals.update(lines=float(stats.lines), max_line_length=float(stats.max_line_length),
                       avg_line_length=round(stats.avg_line_length, 3))
        if stats.max_line_length > cfg.max_line_length:
            return Verdict.dropped("max_line_length", signals)
        if stats.avg_line_length > cfg.max_avg_line_length:
            return Verdict.dropped("avg_line_length", signals)
        signals["alphanum_fraction"] = round(alnum_fraction(text), 4)
        if signals["alphanum_fraction"] < cfg.min_alphanum_fraction:
            return Verdict.dropped("alphanum_fraction", signals)
        encoded, longest = encoded_runs(data)
        signals.update(encoded_fraction=round(encoded / nbytes, 4), encoded_longest_run=float(longest))
        if longest > cfg.max_encoded_run or encoded / nbytes > cfg.max_encoded_fraction:
            return Verdict.dropped("encoded_data", signals)
        return Verdict.kept(signals)
