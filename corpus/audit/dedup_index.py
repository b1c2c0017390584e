"""The audit of a build's dedup indexes: the one it wrote, and those it was deduplicated against.

A build that dedups against earlier indexes is only as reproducible as those indexes: if one is
deleted, truncated or replaced, the build's removals can no longer be traced or repeated. So every
index the manifest records must still exist, its header must hash to the recorded sha256, and every
data file the header lists must have its recorded size and sha256.
"""

from __future__ import annotations

import os
from typing import Any

from lemur_corpus.dedup.index import HEADER_NAME, DedupIndexError, open_index, sha256_file
from lemur_corpus.io import join


def _index_problems(label: str, header_path: str, kind: str, sha256: str) -> list[str]:
    if not os.path.isfile(header_path):
        return [f"{label} {header_path}: missing"]
    digest = sha256_file(header_path)
    if digest != sha256:
        return [f"{label} {header_path}: sha256 {digest[:16]}..., the manifest says {sha256[:16]}... (replaced)"]
    try:
        open_index(os.path.dirname(header_path), kind)
    except DedupIndexError as exc:
        return [f"{label}: {exc}"]
    return []


def dedup_index_problems(build_dir: str, manifest: dict[str, Any]) -> list[str]:
    """Every recorded index (written and against) against its file and checksums."""
    section = manifest.get("dedup_index")
    if not isinstance(section, dict):
        return []
    problems = []
    for kind, entry in sorted((section.get("written") or {}).items()):
        path = join(build_dir, str(entry.get("path", f"dedup-index/{kind}/{HEADER_NAME}")))
        problems += _index_problems("dedup index", path, kind, str(entry.get("sha256")))
    for entry in section.get("against") or []:
        problems += _index_problems("dedup index deduplicated against", str(entry.get("path")), str(entry.get("kind")),
                                    str(entry.get("sha256")))
    return problems
