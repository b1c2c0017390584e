"""The language allow-list: keep a file only when its language maps to an allowed mixture bucket.

The read stage already resolved each code file's language (The Stack's `lang`, else the extension)
and its bucket (`code_buckets` in the build config); a language mapped to no bucket gives the source
`unbucketed`. This filter turns that into a verdict, first in the chain because it is the cheapest
and it removes whole classes of files (Markdown, JSON, YAML...) before anything reads their text.
"""

from __future__ import annotations

import dataclasses

from lemur_corpus.buckets import UNBUCKETED
from lemur_corpus.document import Document
from lemur_corpus.filters.base import Verdict
from lemur_corpus.filters.code.config import LanguageConfig

NOT_ALLOWED = "language_not_allowed"


@dataclasses.dataclass
class LanguageFilter:
    config: LanguageConfig
    name: str = "language"

    def __call__(self, doc: Document) -> Verdict:
        known = bool(doc.lang)
        bucketed = doc.source != UNBUCKETED
        allowed = self.config.allowed_buckets is None or doc.source in self.config.allowed_buckets
        signals = {"known_language": float(known), "bucketed": float(bucketed), "allowed_bucket": float(allowed)}
        # An unknown language (no `lang`, no known extension) is not allowed either: nothing says the
        # text is code of a bucket we want.
        if known and bucketed and allowed:
            return Verdict.kept(signals)
        return Verdict.dropped(NOT_ALLOWED, signals)
