"""The build manifest: one JSON document that accounts for every document and every token.

It is written last, atomically, and is the commit marker of a build: a folder without `manifest.json`
is an unfinished (or failed) build. Everything in it is deterministic for the same inputs, config and
code, except the `run` section (runner, options, times), which comparisons leave out.
This module is the only place that assembles or writes a manifest.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from functools import lru_cache
from typing import Any

from lemur_corpus import __version__
from lemur_corpus.accounting import STAGES, Table, imbalances, to_report
from lemur_corpus.config import BuildConfig, InputConfig
from lemur_corpus.dedup.stats import with_rates
from lemur_corpus.errors import CorpusError
from lemur_corpus.io import InputFile, join, listing_sha256, read_bytes, write_atomic
from lemur_corpus.mixture import MixturePlan, sequences
from lemur_corpus.tokenizer import TokenizerIdentity

SCHEMA_VERSION = "1.0"
MANIFEST_NAME = "manifest.json"
FAILED_NAME = "FAILED.json"
VOLATILE_SECTIONS = ("run",)
"""Sections that differ between otherwise identical builds."""
SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "manifests", "schema", "manifest.schema.json")
"""The JSON Schema every manifest must satisfy; its `schema_version` const equals SCHEMA_VERSION."""
CLUSTER_SIZE_METRIC = "cluster_size_le_"
"""Dedup-stats metric prefix of the cluster-size histogram (see `cluster_size_metric`)."""


class ManifestSchemaError(CorpusError):
    """A manifest does not satisfy manifests/schema/manifest.schema.json: a bug in the writer."""


@lru_cache(maxsize=1)
def manifest_schema() -> dict[str, Any]:
    """The manifest's JSON Schema, read from the checkout (loaded on the driver, pickled to workers)."""
    try:
        with open(SCHEMA_PATH, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"cannot load the manifest schema {SCHEMA_PATH}: {exc}") from None


def schema_problems(manifest: dict[str, Any], schema: dict[str, Any] | None = None) -> list[str]:
    """Every place where `manifest` breaks the schema, as `dotted.path: message` lines."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_inline_refs(schema or manifest_schema()))
    problems = []
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path))):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
        problems.append(f"{where or '(top level)'}: {message}")
    return problems


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local `#/$defs/...` references replaced by their targets (the schema has
    no recursion): the same rules, validated ~2x faster, as every input path no longer needs a lookup."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                merged = {**defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in node.items() if k != "$ref"}}
                return resolve(merged)
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def validate_manifest(manifest: dict[str, Any], schema: dict[str, Any] | None = None) -> None:
    problems = schema_problems(manifest, schema)
    if problems:
        raise ManifestSchemaError(
            f"the manifest breaks its schema ({len(problems)} problem(s)):\n  " + "\n  ".join(problems))


def cluster_size_metric(size: int) -> str:
    """The dedup-stats metric that counts a duplicate cluster of `size` documents (survivor included).

    Power-of-two buckets (<=2, <=4, <=8, ...) keep the histogram to ~log2(N) keys at any scale; every
    dedup step emits `((section, group, cluster_size_metric(n)), 1)` per cluster so reports can draw it.
    """
    bound = 2
    while bound < size:
        bound *= 2
    return f"{CLUSTER_SIZE_METRIC}{bound}"


def code_version() -> dict[str, Any]:
    """The package version and, when the code runs from a git checkout, its commit."""
    here = os.path.dirname(os.path.abspath(__file__))
    info: dict[str, Any] = {"package": "lemur-corpus", "version": __version__, "git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
        info["git_commit"] = commit or None
        info["git_dirty"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def inputs_section(config: BuildConfig, files: dict[str, list[InputFile]]) -> list[dict[str, Any]]:
    out = []
    for inp in config.inputs:
        listed = files.get(inp.name, [])
        out.append({
            "name": inp.name,
            "format": inp.format,
            "kind": inp.kind or "code+text",
            "files": len(listed),
            "bytes": sum(f.size for f in listed),
            "listing_sha256": listing_sha256(listed),
            "filters": input_filter_chains(config, inp),
            **({"unmatched": [p for p in inp.paths if not any(fnmatch.fnmatchcase(f.path, p) for f in listed)]}
               if inp.optional else {}),
            "paths": [{"path": f.path, "bytes": f.size} for f in listed],
        })
    return out


def input_filter_chains(config: BuildConfig, inp: InputConfig) -> dict[str, list[str]]:
    """The chain each kind of an input's documents ran (none for a kind whose filters are off)."""
    kinds = [inp.kind] if inp.kind else ["code", "text"]
    chains = {}
    for kind in kinds:
        section = config.filters.text if kind == "text" else config.filters.code
        own = getattr(inp.filters, kind) if inp.filters else None
        chains[kind] = (list(own) if own is not None else list(section.filters)) if section.enabled else []
    return chains


def stage_chain_problems(report: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """What leaves one stage must enter the next (documents, summed over groups)."""
    problems = []
    present = [s for s in STAGES if s in report]
    for before, after in zip(present, present[1:], strict=False):
        out = sum(g["out"]["docs"] for g in report[before].values())
        into = sum(g["in"]["docs"] for g in report[after].values())
        if out != into:
            problems.append(f"{out} documents left stage {before}, but {into} entered stage {after}")
    return problems


def dedup_section(stats: list[tuple[tuple[str, str, str], int]]) -> dict[str, Any]:
    """The build's combined dedup statistics, with each group's `duplicate_rate`, as nested sections."""
    out: dict[str, Any] = {}
    for (section, group, metric), value in sorted(with_rates(stats)):
        out.setdefault(section, {}).setdefault(group, {})[metric] = value
    return out


def mixture_section(plan: MixturePlan, shards: list[dict[str, Any]]) -> dict[str, Any]:
    realized_tokens: dict[str, int] = {}
    realized_docs: dict[str, int] = {}
    for shard in shards:
        for s, t in shard["tokens_by_source"].items():
            realized_tokens[s] = realized_tokens.get(s, 0) + t
        for s, d in shard["documents_by_source"].items():
            realized_docs[s] = realized_docs.get(s, 0) + d
    total = sum(realized_tokens.values())
    section = plan.to_dict()
    for name, src in section["sources"].items():
        tokens = realized_tokens.get(name, 0)
        src["realized_tokens"] = tokens
        src["realized_documents"] = realized_docs.get(name, 0)
        src["realized_weight"] = tokens / total if total else 0.0
        src["realized_epochs"] = tokens / src["pool_tokens"] if src["pool_tokens"] else 0.0
        src["target_error"] = (tokens - src["target_tokens"]) / src["target_tokens"] if src["target_tokens"] else 0.0
    code = sum(t for s, t in realized_tokens.items() if plan.sources.get(s) and plan.sources[s].kind == "code")
    text = total - code
    target_code = sum(p.weight for p in plan.sources.values() if p.kind == "code")
    target_text = sum(p.weight for p in plan.sources.values() if p.kind == "text")
    section["realized_total_tokens"] = total
    section["code_text_ratio"] = {
        "target": target_code / target_text if target_text else None,
        "realized": code / text if text else None,
        "code_tokens": code,
        "text_tokens": text,
    }
    return section


def filter_edits_section(edits: list[tuple[tuple[str, str, str], int]]) -> dict[str, dict[str, dict[str, int]]]:
    """{filter: {source: {key: count}}}: what filters changed in kept documents, e.g.
    `pii.python.email` (addresses redacted in kept Python files), `pii.python.documents` (files with at
    least one redaction), `c4.refinedweb.lines.javascript` (lines C4 removed)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for (name, source, key), count in sorted(edits):
        out.setdefault(name, {}).setdefault(source, {})[key] = int(count)
    return out


def build_manifest(
    *,
    config: BuildConfig,
    inputs: dict[str, list[InputFile]],
    tokenizer: TokenizerIdentity,
    accounting: Table,
    dedup_stats: list[tuple[tuple[str, str, str], int]],
    plan: MixturePlan,
    shards: list[dict[str, Any]],
    drop_logs: list[dict[str, Any]],
    code: dict[str, Any],
    run: dict[str, Any],
    filter_edits: list[tuple[tuple[str, str, str], int]] | None = None,
    decontamination: dict[str, Any] | None = None,
    dedup_index: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """(manifest, problems). A manifest with problems must not be committed. `decontamination` is the
    finished contamination report (lemur_corpus.filters.decontam.report), when a chain ran `decontam`."""
    report = to_report(accounting)
    problems = imbalances(report) + stage_chain_problems(report)
    if decontamination is not None:
        problems += decontamination_problems(decontamination, report)
    shards = sorted(shards, key=lambda s: s["name"])
    total_tokens = sum(s["tokens"] for s in shards)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "build": {"name": config.name, "config_hash": config.config_hash()},
        "code": code,
        "config": config.resolved(),
        "inputs": inputs_section(config, inputs),
        "tokenizer": tokenizer.to_dict(),
        "accounting": {"stages": report, "balanced": not problems, "problems": problems},
        "dedup": dedup_section(dedup_stats),
        "filter_edits": filter_edits_section(filter_edits or []),
        "mixture": mixture_section(plan, shards),
        "shards": shards,
        "totals": {
            "shards": len(shards),
            "tokens": total_tokens,
            "documents": sum(s["documents"] for s in shards),
            "bytes": sum(f["bytes"] for s in shards for f in s["files"].values()),
            "sequences": {str(length): sequences([s["tokens"] for s in shards], length)
                          for length in config.shards.sequence_lengths},
        },
        "drop_logs": sorted(drop_logs, key=lambda d: d["path"]),
        "run": run,
    }
    if decontamination is not None:
        manifest["decontamination"] = decontamination
    if dedup_index is not None:
        manifest["dedup_index"] = dedup_index
    return manifest, problems


DECONTAM_PREFIX = "decontam."
"""Drop reasons of the decontamination filter: `decontam.<benchmark>`."""


def decontamination_problems(section: dict[str, Any], stages: dict[str, Any]) -> list[str]:
    """The contamination report against the filter stage's accounting: per benchmark and source, the
    documents the report says `decontam` dropped are those the accounting counts under
    `decontam.<benchmark>` (a report that lost or invented documents cannot be trusted)."""
    counted: dict[tuple[str, str], int] = {}
    for group, entry in (stages.get("filter") or {}).items():
        for reason, dropped in (entry.get("dropped") or {}).items():
            if reason.startswith(DECONTAM_PREFIX) and reason != f"{DECONTAM_PREFIX}error":
                key = (reason.removeprefix(DECONTAM_PREFIX), group)
                counted[key] = counted.get(key, 0) + int(dropped.get("docs", 0))
    reported: dict[tuple[str, str], int] = {}
    for benchmark, entry in (section.get("benchmarks") or {}).items():
        for source, counts in (entry.get("by_source") or {}).items():
            if counts.get("dropped"):
                reported[(benchmark, source)] = int(counts["dropped"])
    return [f"decontamination: the report has {reported.get(k, 0):,} documents of source {k[1]} dropped as "
            f"decontam.{k[0]}, the accounting {counted.get(k, 0):,}"
            for k in sorted(set(counted) | set(reported)) if counted.get(k, 0) != reported.get(k, 0)]


def dumps(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(out_dir: str, manifest: dict[str, Any], schema: dict[str, Any] | None = None) -> str:
    """Validate against the schema (a failure is a bug: nothing is written), then write atomically."""
    validate_manifest(manifest, schema)
    path = join(out_dir, MANIFEST_NAME)
    write_atomic(path, dumps(manifest))
    return path


def write_failure(out_dir: str, errors: list[str]) -> str:
    path = join(out_dir, FAILED_NAME)
    write_atomic(path, (json.dumps({"errors": errors}, indent=2) + "\n").encode("utf-8"))
    return path


def read_manifest(out_dir: str) -> dict[str, Any]:
    return json.loads(read_bytes(join(out_dir, MANIFEST_NAME)))


def without_volatile(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if k not in VOLATILE_SECTIONS}
