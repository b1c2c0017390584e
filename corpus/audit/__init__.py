"""Re-measure a finished build from its files, and compare it with its manifest and its targets.

Nothing here trusts the manifest's numbers. Every shard's `.bin`, `.idx` and `.docs.jsonl.zst` is
re-read and hashed; tokens and documents are counted again and attributed to their sources through the
docs index; the copies of every document are checked against the mixture plan; the accounting
invariants are re-checked, including against the per-document drop log; and the realized weights are
compared with targets recomputed from the resolved config the manifest records (or from another config
file). Every disagreement becomes one readable line in `mismatches`: the audit never stops at the first.

The parts, each importing only those above it:

- `migration`: the build folder's state and its manifest, migrated from older schema versions;
- `scan`: the shards' files re-read, hashed and recounted per shard and per source;
- `checks`: those measures against the manifest and the targets, and `audit_build`, which runs it all.

This package re-exports what its callers use. Module-level settings (`scan.READ_CHUNK`,
`migration.MIGRATIONS`) are read where they are defined: patch them in their module, not here.
"""

from __future__ import annotations

from lemur_corpus.audit.checks import (
    DEFAULT_TOLERANCE,
    AuditResult,
    SourceAudit,
    accounting_problems,
    audit_build,
    copy_problems,
    target_weights,
    within_target,
)
from lemur_corpus.audit.migration import BuildStateError, ManifestVersionError, load_build_manifest, migrate
from lemur_corpus.audit.scan import LENGTH_BINS_PER_OCTAVE, LengthHistogram, SourceCopies, scan_bin

__all__ = [
    "DEFAULT_TOLERANCE",
    "LENGTH_BINS_PER_OCTAVE",
    "AuditResult",
    "BuildStateError",
    "LengthHistogram",
    "ManifestVersionError",
    "SourceAudit",
    "SourceCopies",
    "accounting_problems",
    "audit_build",
    "copy_problems",
    "load_build_manifest",
    "migrate",
    "scan_bin",
    "target_weights",
    "within_target",
]
