"""Loading a build's manifest for the audit: what state the build folder is in, and the manifest
brought to the schema version this code reads.

`load_build_manifest` tells a finished build from a missing, unfinished or failed one
(`BuildStateError`); `migrate` chains the steps registered in `MIGRATIONS` from the manifest's
schema version up to SCHEMA_VERSION, or says why it cannot (`ManifestVersionError`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from apache_beam.io.filesystems import FileSystems

from lemur_corpus.errors import CorpusError
from lemur_corpus.io import exists, join, read_bytes
from lemur_corpus.manifest import FAILED_NAME, MANIFEST_NAME, SCHEMA_VERSION


class BuildStateError(CorpusError):
    """The folder is not a finished build (missing, unfinished, failed, unreadable manifest)."""


class ManifestVersionError(CorpusError):
    """The manifest's schema version is one this code cannot read, and no migration exists."""


Migration = Callable[[dict[str, Any]], dict[str, Any]]
MIGRATIONS: dict[str, tuple[str, Migration, str]] = {}
"""from version -> (to version, pure function, what it changes). Each schema bump that renames,
removes or re-means a field registers one step here; `migrate` chains them up to SCHEMA_VERSION."""


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (-1,)


def migrate(manifest: dict[str, Any], where: str = MANIFEST_NAME) -> tuple[dict[str, Any], list[str]]:
    """The manifest brought to SCHEMA_VERSION by the registered migrations, with a note per step."""
    version = manifest.get("schema_version")
    if not isinstance(version, str):
        raise ManifestVersionError(
            f"{where} has no schema_version: it was not written by lemur-corpus, or predates versioned "
            f"manifests (this version reads schema {SCHEMA_VERSION})")
    notes: list[str] = []
    seen = set()
    while version != SCHEMA_VERSION:
        if _version_key(version) > _version_key(SCHEMA_VERSION):
            raise ManifestVersionError(
                f"{where} has schema version {version}, newer than this lemur-corpus reads "
                f"({SCHEMA_VERSION}): upgrade lemur-corpus to audit it")
        if version not in MIGRATIONS or version in seen:
            code = manifest.get("code") or {}
            raise ManifestVersionError(
                f"{where} has schema version {version}; this lemur-corpus reads {SCHEMA_VERSION} and knows "
                f"no migration from {version} (known: {', '.join(sorted(MIGRATIONS)) or 'none'}). Audit it "
                f"with the version that wrote it ({code.get('version', '?')}, commit "
                f"{str(code.get('git_commit') or '?')[:12]}) or rebuild")
        seen.add(version)
        target, step, what = MIGRATIONS[version]
        manifest = step(json.loads(json.dumps(manifest)))
        manifest["schema_version"] = target
        notes.append(f"manifest migrated from schema {version} to {target}: {what}")
        version = target
    return manifest, notes


def load_build_manifest(build_dir: str) -> tuple[dict[str, Any], list[str]]:
    """(manifest at SCHEMA_VERSION, migration notes), or a `BuildStateError` saying what the folder is."""
    path = join(build_dir, MANIFEST_NAME)
    if not exists(path):
        if not exists(build_dir):
            raise BuildStateError(f"{build_dir}: no such build folder")
        failed = join(build_dir, FAILED_NAME)
        if exists(failed):
            try:
                errors = json.loads(read_bytes(failed)).get("errors", [])
            except (ValueError, CorpusError):
                errors = ["(FAILED.json is unreadable)"]
            raise BuildStateError(f"{build_dir} is a failed build (FAILED.json, no manifest):\n  "
                                  + "\n  ".join(errors))
        leftovers = _listing(join(build_dir, "shards"))
        raise BuildStateError(
            f"{build_dir} is an unfinished build: it has no {MANIFEST_NAME}, which a build writes last as "
            f"its commit marker ({len(leftovers)} file(s) under shards/). The build was interrupted or is "
            "still running; run it again (with --overwrite) before auditing")
    try:
        manifest = json.loads(read_bytes(path))
    except ValueError as exc:
        raise BuildStateError(f"{path} is not valid JSON ({exc}): truncated or edited by hand?") from None
    if not isinstance(manifest, dict):
        raise BuildStateError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    return migrate(manifest, path)


def _listing(folder: str) -> list[str]:
    """File names directly under `folder` (any FileSystems path); empty when it does not exist."""
    try:
        matched = FileSystems.match([join(folder, "*")])[0].metadata_list
    except Exception:  # Beam raises BeamIOError for a missing folder
        return []
    return sorted(m.path.rsplit("/", 1)[-1] for m in matched)
