"""The license allow-list (The Stack v1): keep a file whose repository licenses are permissive.

Records of The Stack list the SPDX ids GitHub detected in the repository
(`max_stars_repo_licenses`); a list may hold several, and an entry may be an SPDX expression
(`MIT OR Apache-2.0`). An `OR` is satisfied by one allowed alternative, an `AND` needs all parts.
Records that carry no license pass (the filter only applies when there is something to check)
unless `require_license` is set.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lemur_corpus.document import Document
from lemur_corpus.filters.base import Verdict
from lemur_corpus.filters.code.config import LicenseConfig
from lemur_corpus.filters.code.textstats import meta_value


def license_list(value: Any) -> list[str]:
    """The license entries of a meta value: a list of ids, or one id/expression, or a JSON-ish string."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            return [p.strip().strip("'\"") for p in text[1:-1].split(",") if p.strip().strip("'\"")]
        return [text] if text else []
    if isinstance(value, (list, tuple)):
        out: list[str] = []
        for item in value:
            if isinstance(item, dict):  # parquet list-of-struct exports: {"item": "MIT"}
                item = item.get("item") or item.get("spdx_id") or item.get("key")
            if isinstance(item, str) and item.strip():
                out.append(item.strip())
        return out
    return [str(value)]


def _split_at(tokens: list[str], operator: str) -> list[list[str]]:
    """The runs of tokens between occurrences of `operator` (case-insensitive)."""
    runs: list[list[str]] = [[]]
    for token in tokens:
        if token.upper() == operator:
            runs.append([])
        else:
            runs[-1].append(token)
    return runs


def _license_id(tokens: list[str]) -> str:
    """One license of an expression, lowercase, without its `WITH <exception>`."""
    end = next((i for i, token in enumerate(tokens) if token.upper() == "WITH"), len(tokens))
    return " ".join(tokens[:end]).strip("() ").lower()


def expression_allowed(expression: str, allowed: frozenset[str]) -> bool:
    """Whether an SPDX license expression is satisfied by the allowed ids (exceptions are ignored:
    `Apache-2.0 WITH LLVM-exception` only adds permissions). Parsed as whitespace-separated tokens,
    in linear time: the field is input, and a search for `\\s+AND\\s+` over a long run of spaces is
    quadratic (20,000 spaces took 9 s; tests/test_adversarial.py)."""
    tokens = expression.strip().strip("()").split()
    return any(
        all(_license_id(part) in allowed for part in _split_at(alternative, "AND"))
        for alternative in _split_at(tokens, "OR")
    )


@dataclasses.dataclass
class LicenseFilter:
    config: LicenseConfig
    name: str = "license"

    def __post_init__(self) -> None:
        self._allowed = frozenset(lic.lower() for lic in self.config.allowed)

    def __call__(self, doc: Document) -> Verdict:
        licenses = license_list(meta_value(doc.meta, self.config.fields))
        permitted = sum(expression_allowed(lic, self._allowed) for lic in licenses)
        signals = {"licenses": float(len(licenses)), "allowed_licenses": float(permitted)}
        if not licenses:
            if self.config.require_license:
                return Verdict.dropped("no_license", signals)
            return Verdict.kept(signals)
        ok = permitted == len(licenses) if self.config.policy == "all" else permitted > 0
        if ok:
            return Verdict.kept(signals)
        return Verdict.dropped("license_not_allowed", signals)
