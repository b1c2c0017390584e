"""The build manifest: one JSON document that accounts for every document and every token.

It is written last, atomically, and is the commit marker of a build: a folder without `manifest.json`
is an unfinished (or failed) build. Everything in it is deterministic for the same inputs, config and
code, except the `run` section (runner, options, times), which comparisons leave out.
This module is the only place that assembles or writes a manifest.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from corpus import __version__
from corpus.accounting import STAGES, Table, imbalances, to_report
from corpus.config import BuildConfig
from corpus.io import InputFile, join, listing_sha256, read_bytes, write_atomic
from corpus.mixture import MixturePlan, sequences
from corpus.tokenizer import TokenizerIdentity

SCHEMA_VERSION = "1.0"
MANIFEST_NAME = "manifest.json"
FAILED_NAME = "FAILED.json"
VOLATILE_SECTIONS = ("run",)
"""Sections that differ between otherwise identical builds."""


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
            "paths": [{"path": f.path, "bytes": f.size} for f in listed],
        })
    return out


def stage_chain_problems(report: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """What leaves one stage must enter the next (documents, summed over groups)."""
    problems = []
    present = [s for s in STAGES if s in report]
    for before, after in zip(present, present[1:]):
        out = sum(g["out"]["docs"] for g in report[before].values())
        into = sum(g["in"]["docs"] for g in report[after].values())
        if out != into:
            problems.append(f"{out} documents left stage {before}, but {into} entered stage {after}")
    return problems


def dedup_section(stats: list[tuple[tuple[str, str, str], int]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (section, group, metric), value in sorted(stats):
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
    for name, src in section["sources"].items():  # type: ignore[union-attr]
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
) -> tuple[dict[str, Any], list[str]]:
    """(manifest, problems). A manifest with problems must not be committed."""
    report = to_report(accounting)
    problems = imbalances(report) + stage_chain_problems(report)
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
    return manifest, problems


def dumps(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(out_dir: str, manifest: dict[str, Any]) -> str:
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
