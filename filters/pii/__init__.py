"""The `pii` filter: personal data and credentials redacted in code and text, look-alikes left alone.

It keeps the document and returns its redacted text (a kept verdict with new text, as C4's line
removal); its signals and `removed` count redactions per type (`email`, `ipv4`, `ipv6`, the secret
formats, `password_in_url`, `password`, `secret`: `config.PII_TYPES`), which the build sums per
source into the manifest's `filter_edits.pii`. With `max_hits` set, a document with more redactions
is dropped (`pii.too_many_hits`). A document the scanner cannot handle is a `pii.error` drop, as any
filter exception is (`run_chain`), never a crash.

What it finds and why each look-alike stays (`scan`, `secrets`): e-mail addresses must end in a real
top-level domain and not be an example domain (RFC 2606), a URL's user or an scp remote
(`git@github.com:org/repo`); decorators, annotations, npm scopes and CSS at-rules have no local part.
IP addresses must be global unicast (`ipaddress`: private, loopback, link-local, documentation,
shared and reserved ranges, netmasks and multicast stay) and not read as a version or section number
(`1.2.3.4.5`, `pkg==1.2.3.4`, `Version 1.2.3.4`). Secrets are vendor formats, private-key armour
with a body, passwords in URLs and connection strings, and literals assigned to credential names;
documented examples, placeholders, templates, environment reads and prompts, git SHAs, checksums
and UUIDs are not.

Why not detect-secrets itself (the scanner StarCoder's redaction used; on PyPI, Apache-2.0, offline
unless asked to verify keys online): it runs 27 plugins per line in Python, 0.05 MB/s with its
false-positive filters and 0.14-0.6 MB/s without, against the code-filter stage's 1.4-4 MB/s. Its
formats are kept here, compiled into one RE2 pattern (benchmarks/pii_speed.py measures both).
"""

from __future__ import annotations

import dataclasses

from lemur_corpus.document import Document
from lemur_corpus.filters.base import Verdict
from lemur_corpus.filters.pii.config import PII_TYPES, SECRET_TYPES, PiiConfig
from lemur_corpus.filters.pii.scan import ScanContext, redact, unquoted_literals


class PiiFilter:
    """Redacts e-mail addresses, public IP addresses and secrets; keeps the document."""

    name = "pii"

    def __init__(self, config: PiiConfig) -> None:
        self.config = config
        base = ScanContext.for_document(config, "text", "")
        self._contexts = {flag: dataclasses.replace(base, unquoted_literals=flag) for flag in (False, True)}
        self._unquoted: dict[tuple[str, str, str], bool] = {}

    def context(self, doc: Document) -> ScanContext:
        path = str(doc.meta.get("path") or "")
        key = (doc.kind, doc.lang, path[path.rfind("/") + 1:].lower())
        flag = self._unquoted.get(key)
        if flag is None:
            if len(self._unquoted) >= 10_000:
                self._unquoted.clear()
            flag = self._unquoted[key] = unquoted_literals(self.config, doc.kind, doc.lang, path)
        return self._contexts[flag]

    def __call__(self, doc: Document) -> Verdict:
        text, counts = redact(doc.text, self.context(doc))
        hits = sum(counts.values())
        signals: dict[str, float] = {"hits": float(hits), **{k: float(v) for k, v in sorted(counts.items())}}
        if self.config.max_hits is not None and hits > self.config.max_hits:
            return Verdict.dropped("too_many_hits", signals)
        if not hits:
            return Verdict.kept(signals)
        return Verdict.kept(signals, text=text, removed=dict(sorted(counts.items())))


__all__ = ["PII_TYPES", "SECRET_TYPES", "PiiConfig", "PiiFilter", "redact", "ScanContext"]
