"""The audit's checks: a re-measured build against its manifest and against its targets.

Each shard's files against its record; the copies of every document against the mixture plan (full
copies, one extra copy for a hashed subset, the pool written whole when r_s >= 1); the accounting
invariants, including against the per-document drop log; and the realized weights against targets
recomputed from the resolved config the manifest records (or from another config file). Every
disagreement becomes one readable line in `mismatches`: the audit never stops at the first.
`audit_build` runs them all and returns an `AuditResult`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lemur_corpus.accounting import imbalances
from lemur_corpus.audit.contamination import contamination_problems, contamination_rows
from lemur_corpus.audit.dedup_index import dedup_index_problems
from lemur_corpus.audit.migration import _listing, load_build_manifest
from lemur_corpus.audit.scan import (
    LengthHistogram,
    ShardMeasure,
    SourceCopies,
    _combined,
    _measure_all,
    file_digest,
)
from lemur_corpus.config import canonical_json
from lemur_corpus.errors import CorpusError
from lemur_corpus.io import exists, iter_lines, join, read_bytes
from lemur_corpus.manifest import schema_problems, stage_chain_problems
from lemur_corpus.mixture import MixtureError, redistribute, sequences

DEFAULT_TOLERANCE = 0.001
"""Largest accepted |realized - target| weight, as a fraction of all tokens (0.1 percentage point).
The mixture is token-exact to one document per source, so a real build misses by far less; a tiny
build whose documents are large against its total may need a looser `--tolerance`."""
FLOAT_SLACK = 1e-9
"""Relative slack when comparing a float the manifest recorded with the same float recomputed."""


# ---------------------------------------------------------------------------------------------
# Each shard against its record


def shard_problems(record: dict[str, Any], measure: ShardMeasure) -> list[str]:
    """The shard record of the manifest against what its files hold."""
    name = measure.name
    problems = list(measure.problems)
    for kind, (size, sha) in sorted(measure.files.items()):
        recorded = (record.get("files") or {}).get(kind) or {}
        label = str(recorded.get("path", f"{name} ({kind})"))
        if recorded.get("bytes") != size:
            problems.append(f"{label}: {size:,} bytes, the manifest says {recorded.get('bytes')}")
        if recorded.get("sha256") != sha:
            problems.append(f"{label}: sha256 {sha[:16]}…, the manifest says {str(recorded.get('sha256'))[:16]}… "
                            "(the file changed after the build)")
    if measure.dtype is not None and record.get("dtype") != measure.dtype:
        problems.append(f"{name}: the .idx stores {measure.dtype} tokens, the manifest says {record.get('dtype')}")
    if "idx" in measure.files and measure.dtype is not None:
        for field in ("tokens", "documents"):
            if record.get(field) != getattr(measure, field):
                problems.append(f"{name}: {getattr(measure, field):,} {field} in the files, the manifest says "
                                f"{record.get(field)}")
    if "docs" in measure.files:
        for field in ("tokens_by_source", "documents_by_source"):
            recorded = record.get(field) or {}
            measured = getattr(measure, field)
            for source in sorted(set(recorded) | set(measured)):
                if recorded.get(source, 0) != measured.get(source, 0):
                    problems.append(f"{name}: {field.split('_by_')[0]} of source {source}: {measured.get(source, 0):,} "
                                    f"in the files, the manifest says {recorded.get(source, 0):,}")
    return problems


# ---------------------------------------------------------------------------------------------
# Checks across the whole build


@dataclasses.dataclass
class SourceAudit:
    name: str
    kind: str
    tokens: int
    documents: int
    unique_documents: int
    target_weight: float
    configured_weight: float
    realized_weight: float
    target_tokens: int
    pool_tokens: int
    pool_documents: int
    realized_epochs: float
    """Tokens measured in the shards over the pool (the manifest's `realized_epochs`)."""
    status: str
    lengths: LengthHistogram
    planned_epochs: float = 0.0
    """The plan's rate r_s (the manifest's `rate`)."""
    reference_epochs: float | None = None
    """The paper's figure (Lemur Table 8), when the config gives one."""
    meets_target: bool = True
    """Within the tolerance of its target weight, or within one document of it."""
    untokenized_documents: int = 0
    """Documents of the pool left untokenized (`mixture.tokenize: sampled`): `pool_tokens` is then a
    lower bound, and `realized_epochs` an upper one."""

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "lengths"}
        out["length"] = self.lengths.summary()
        return out


def copy_problems(source: str, plan: dict[str, Any], copies: SourceCopies, enabled: bool) -> tuple[list[str], int, int]:
    """(problems, unique documents, tokens of first copies): every document of the source must appear
    with copies 0..k-1 and, as the plan says, k = full copies or one more (mixing) or k = 1 (unmixed)."""
    hi, lo, copy, tokens = copies.arrays()
    n = len(copy)
    if not n:
        return [], 0, 0
    order = np.lexsort((copy, lo, hi))
    hi, lo, copy, tokens = hi[order], lo[order], copy[order], tokens[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n))
    problems = []
    expected_copy = np.arange(n) - np.repeat(starts, counts)
    if not np.array_equal(copy, expected_copy):
        bad = int(np.count_nonzero(copy != expected_copy))
        problems.append(f"source {source}: {bad:,} placement(s) break the copy numbering 0..k-1 "
                        "(a copy is duplicated or missing)")
    full = int(plan.get("full_copies", 1)) if enabled else 1
    extra = plan.get("extra_tokens")  # unknown (a plan without the field): allow both
    allowed = {full, full + 1} if enabled and (extra is None or extra > 0) else {full}
    allowed.discard(0)
    wrong = np.isin(counts, sorted(allowed), invert=True)
    if wrong.any():
        seen = ", ".join(str(int(c)) for c in np.unique(counts[wrong])[:5])
        problems.append(f"source {source}: {int(wrong.sum()):,} document(s) written {seen} time(s); the plan "
                        f"allows {' or '.join(map(str, sorted(allowed))) or 'none'}")
    return problems, len(starts), int(tokens[copy == 0].sum())


def target_weights(config: dict[str, Any],
                   pools: dict[str, int]) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """(configured weights, effective targets after redistribution, problems), recomputed from a resolved
    config and the pools the manifest recorded (docs/design.md, The mixture)."""
    mixture = config.get("mixture") or {}
    sources = mixture.get("sources") or {}
    weights = {s: float(v.get("weight", 0)) for s, v in sources.items()}
    total = sum(weights.values())
    if not total:
        return {}, {}, ["config: the mixture weights add up to 0"]
    configured = {s: w / total for s, w in weights.items()}
    if not mixture.get("enabled", True):
        return configured, configured, []
    minimum = int(mixture.get("min_pool_tokens", 1))
    usable = {s: (t if t >= minimum else 0) for s, t in pools.items()}
    kinds = {s: str(v.get("kind")) for s, v in sources.items()}
    try:
        effective, _ = redistribute(configured, kinds, usable, str(mixture.get("on_empty_source", "error")))
    except MixtureError as exc:
        return configured, configured, [f"config: {exc}"]
    return configured, effective, []


def within_target(tokens: int, weight: float, total: int, tolerance: float, granularity: int) -> bool:
    """Whether `tokens` of `total` meet a target `weight`: within `tolerance` of the weight, or within
    `granularity` tokens of it (one document: the mixture places whole documents; docs/design.md, The mixture)."""
    miss = abs(tokens - weight * total)
    return miss <= tolerance * total or miss <= granularity


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=FLOAT_SLACK, abs_tol=FLOAT_SLACK)


def accounting_problems(manifest: dict[str, Any]) -> list[str]:
    """The per-stage invariants (in = out + Σ dropped; what leaves a stage enters the next), re-checked."""
    report = (manifest.get("accounting") or {}).get("stages") or {}
    problems = [f"accounting: {p}" for p in imbalances(report) + stage_chain_problems(report)]
    if (manifest.get("accounting") or {}).get("balanced") is not (not problems):
        problems.append("accounting: the manifest's `balanced` flag disagrees with its own numbers")
    pools = {s: v.get("pool_documents") for s, v in ((manifest.get("mixture") or {}).get("sources") or {}).items()}
    tokenized = {g: e["out"]["docs"] for g, e in report.get("tokenize", {}).items()}
    for source in sorted(set(pools) | set(tokenized)):
        if pools.get(source, 0) != tokenized.get(source, 0):
            problems.append(f"accounting: {tokenized.get(source, 0):,} documents of {source} left tokenize, but "
                            f"the mixture's pool has {pools.get(source, 0):,}")
    return problems


def drop_log_problems(build_dir: str, manifest: dict[str, Any]) -> list[str]:
    """Each drop log file against its record, and the logged drops against the accounting's counts."""
    problems = []
    logged: dict[tuple[str, str, str], int] = {}
    for record in manifest.get("drop_logs") or []:
        path = join(build_dir, str(record.get("path")))
        if not exists(path):
            problems.append(f"{record.get('path')}: the drop log is missing")
            continue
        size, sha = file_digest(path)
        if size != record.get("bytes") or sha != record.get("sha256"):
            problems.append(f"{record.get('path')}: {size:,} bytes, sha256 {sha[:16]}…; the manifest says "
                            f"{record.get('bytes')} bytes, {str(record.get('sha256'))[:16]}…")
        count = 0
        try:
            for _, line in iter_lines(path):
                if line.strip():
                    drop = json.loads(line)
                    key = (drop.get("stage"), drop.get("group"), drop.get("reason"))
                    logged[key] = logged.get(key, 0) + 1
                    count += 1
        except (CorpusError, ValueError) as exc:
            problems.append(f"{record.get('path')}: unreadable ({exc})")
            continue
        if count != record.get("records"):
            problems.append(f"{record.get('path')}: {count:,} records, the manifest says {record.get('records')}")
    counted = {(stage, group, reason): d["docs"]
               for stage, groups in ((manifest.get("accounting") or {}).get("stages") or {}).items()
               for group, entry in groups.items() for reason, d in entry.get("dropped", {}).items()}
    for key in sorted(set(counted) | set(logged)):
        if counted.get(key, 0) != logged.get(key, 0):
            problems.append(f"drop log: {logged.get(key, 0):,} documents logged as dropped at stage {key[0]}, "
                            f"{key[1]}, reason {key[2]}; the accounting counts {counted.get(key, 0):,}")
    return problems


def extra_shard_files(build_dir: str, shards: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(problems, notes): files under shards/ the manifest does not list; leftover temporary files."""
    listed = {str(f.get("path", "")).rsplit("/", 1)[-1] for s in shards for f in (s.get("files") or {}).values()}
    problems, notes = [], []
    for name in _listing(join(build_dir, "shards")):
        if ".tmp-" in name:
            notes.append(f"shards/{name}: a temporary file left by an interrupted worker (safe to delete)")
        elif name not in listed:
            problems.append(f"shards/{name} is not in the manifest (left from another build?)")
    return problems, notes


def variant_problems(build_dir: str, manifest: dict[str, Any]) -> list[str]:
    """A build with variants: each listed variant folder holds a finished build of that variant, of this
    build (its own shards are audited by `corpus audit` on the folder)."""
    problems = []
    for entry in manifest.get("variants") or []:
        path = join(build_dir, str(entry.get("path")), "manifest.json")
        if not exists(path):
            problems.append(f"variant {entry.get('name')}: {entry.get('path')}/manifest.json is missing")
            continue
        try:
            variant = json.loads(read_bytes(path))
        except (CorpusError, ValueError) as exc:
            problems.append(f"variant {entry.get('name')}: {entry.get('path')}/manifest.json is unreadable ({exc})")
            continue
        if (variant.get("build") or {}).get("config_hash") != entry.get("config_hash"):
            problems.append(f"variant {entry.get('name')}: its manifest's config hash differs from the one this "
                            "build recorded (rewritten by another build?)")
        if ((variant.get("variant") or {}).get("of") or {}).get("config_hash") != \
                (manifest.get("build") or {}).get("config_hash"):
            problems.append(f"variant {entry.get('name')}: its manifest names another build as its main mixture")
    return problems


# ---------------------------------------------------------------------------------------------
# The audit


@dataclasses.dataclass
class AuditResult:
    build_dir: str
    manifest: dict[str, Any]
    tolerance: float
    sources: list[SourceAudit]
    shards: list[dict[str, Any]]
    total_tokens: int
    total_documents: int
    code_tokens: int
    text_tokens: int
    target_code_text_ratio: float | None
    mismatches: list[str]
    notes: list[str]
    targets_from: str

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def code_text_ratio(self) -> float | None:
        return self.code_tokens / self.text_tokens if self.text_tokens else None

    def to_json(self) -> dict[str, Any]:
        build = self.manifest.get("build") or {}
        return {
            "ok": self.ok,
            "build_dir": self.build_dir,
            "build": {"name": build.get("name"), "config_hash": build.get("config_hash"),
                      "schema_version": self.manifest.get("schema_version"),
                      "finished": (self.manifest.get("run") or {}).get("finished")},
            "targets_from": self.targets_from,
            "tolerance": self.tolerance,
            "total_tokens": self.total_tokens,
            "total_documents": self.total_documents,
            "total_shards": len(self.shards),
            "code_tokens": self.code_tokens,
            "text_tokens": self.text_tokens,
            "code_text_ratio": self.code_text_ratio,
            "target_code_text_ratio": self.target_code_text_ratio,
            "sources": [s.to_dict() for s in self.sources],
            "shards": self.shards,
            "mismatches": self.mismatches,
            "notes": self.notes,
            "contamination": contamination_rows(self.manifest),
        }


def _mixture_problems(source: str, plan: dict[str, Any], tokens: int, documents: int, unique: int,
                      first_copy_tokens: int, longest: int, enabled: bool) -> list[str]:
    """One source's realized tokens against its plan: the recorded figures, the pool, the exact target."""
    problems = []
    for field, value in (("realized_tokens", tokens), ("realized_documents", documents)):
        if plan.get(field) != value:
            problems.append(f"source {source}: {value:,} {field.split('_')[1]} in the shards, the manifest's "
                            f"mixture says {plan.get(field)}")
    status = plan.get("status", "mixed")
    if status in ("empty", "below_min_pool"):
        if tokens:
            problems.append(f"source {source} is {status} in the plan, yet the shards hold {tokens:,} of its tokens")
        return problems
    whole_pool = not enabled or int(plan.get("full_copies", 0)) >= 1
    if whole_pool and unique and (unique != plan.get("pool_documents") or first_copy_tokens != plan.get("pool_tokens")):
        problems.append(f"source {source}: the shards hold {unique:,} distinct documents ({first_copy_tokens:,} "
                        f"tokens), the pool had {plan.get('pool_documents')} ({plan.get('pool_tokens')} tokens)")
    if enabled:
        target = int(plan.get("target_tokens", 0))
        if abs(tokens - target) > max(longest, 0):
            problems.append(f"source {source}: {tokens:,} tokens realized, the target is {target:,}: off by more "
                            f"than one document (longest {longest:,} tokens)")
    return problems


def config_hash_problems(manifest: dict[str, Any]) -> list[str]:
    """The recorded config must still hash to build.config_hash: otherwise it was edited afterwards."""
    actual = hashlib.sha256(canonical_json(manifest.get("config") or {}).encode()).hexdigest()
    recorded = str((manifest.get("build") or {}).get("config_hash"))
    if actual == recorded:
        return []
    return [f"config: the recorded config hashes to {actual[:16]}…, but build.config_hash is {recorded[:16]}… "
            "(the config was edited after the build)"]


def shard_findings(records: list[dict[str, Any]], measures: list[ShardMeasure],
                   tokenizer: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """(a row per shard, mismatches): each record against its files, and the tokenizer evidence
    gathered under one headline."""
    rows, mismatches, signs = [], [], []
    for record, measure in zip(records, measures, strict=True):
        problems = shard_problems(record, measure)
        mismatches.extend(problems)
        signs.extend(measure.tokenizer_signs)
        rows.append({"name": measure.name, "tokens": measure.tokens, "documents": measure.documents,
                     "bytes": sum(size for size, _ in measure.files.values()),
                     "ok": not problems and not measure.tokenizer_signs})
    if signs:
        mismatches.append(
            f"tokenizer: these shards do not look like output of the manifest's tokenizer "
            f"{tokenizer.get('name')!r} (vocabulary {tokenizer.get('vocab_size')}, EOS id {tokenizer.get('eos_id')}, "
            f"{tokenizer.get('dtype')} tokens): written with another tokenizer, or corrupted")
        mismatches.extend(f"tokenizer: {s}" for s in signs)
    return rows, mismatches


@dataclasses.dataclass(frozen=True)
class Targets:
    """What the realized mixture is held to: weights from a resolved config, and how strictly."""

    configured: dict[str, float]
    effective: dict[str, float]
    kinds: dict[str, str]
    enabled: bool
    """False when the config disables mixing: weights are then only measured."""
    tolerance: float
    against_plan: bool
    """The config is the build's own: its weights must also equal the ones the plan recorded."""


def audit_sources(manifest: dict[str, Any], measures: list[ShardMeasure],
                  targets: Targets) -> tuple[list[SourceAudit], list[str]]:
    """Per source: the copies against the plan, the realized tokens against the plan and the manifest,
    the realized weight against its target."""
    copies, tokens_by_source, docs_by_source = _combined(measures)
    mixture = manifest.get("mixture") or {}
    plans = mixture.get("sources") or {}
    enabled = bool(mixture.get("enabled", True))
    total = sum(tokens_by_source.values())
    sources, mismatches = [], []
    weight_changes: dict[str, list[str]] = {}
    for source in sorted(set(plans) | set(tokens_by_source) | set(targets.effective)):
        plan = plans.get(source, {})
        if source not in plans:
            mismatches.append(f"source {source}: not in the manifest's mixture plan")
        if source not in targets.effective:
            mismatches.append(f"source {source}: not a source of the config the targets come from")
        placed = copies.get(source, SourceCopies())
        problems, unique, first_tokens = copy_problems(source, plan, placed, enabled)
        lengths = LengthHistogram()
        _, _, copy_numbers, doc_tokens = placed.arrays()
        lengths.add(doc_tokens[copy_numbers == 0])
        tokens, documents = tokens_by_source.get(source, 0), docs_by_source.get(source, 0)
        if source in plans:
            problems += _mixture_problems(source, plan, tokens, documents, unique, first_tokens,
                                          max(lengths.longest, int(plan.get("largest_document_tokens", 0) or 0)),
                                          enabled)
        mismatches.extend(problems)
        realized = tokens / total if total else 0.0
        target = targets.effective.get(source, 0.0)
        if source in plans and targets.against_plan:
            for field, value in (("configured_weight", targets.configured.get(source)), ("weight", target)):
                if not _close(plan.get(field), value):
                    weight_changes.setdefault(field, []).append(
                        f"{source} {100 * (value or 0):.3f}% vs {100 * float(plan.get(field) or 0):.3f}%")
            if not _close(plan.get("realized_weight"), realized):
                mismatches.append(f"source {source}: realized weight {100 * realized:.4f}% in the shards, the manifest "
                                  f"says {100 * float(plan.get('realized_weight') or 0):.4f}%")
        # One document of the pool (recorded by the plan) is the granularity, even when none was selected.
        granularity = max(lengths.longest, int(plan.get("largest_document_tokens", 0) or 0))
        meets = not targets.enabled or within_target(tokens, target, total, targets.tolerance, granularity)
        if not meets:
            mismatches.append(f"source {source}: realized weight {100 * realized:.3f}% misses its target "
                              f"{100 * target:.3f}% by {100 * abs(realized - target):.3f} points (tolerance "
                              f"{100 * targets.tolerance:.3f}, or one document: {granularity:,} tokens)")
        pool = int(plan.get("pool_tokens", 0))
        sources.append(SourceAudit(
            source, targets.kinds.get(source) or str(plan.get("kind", "?")), tokens, documents, unique, target,
            targets.configured.get(source, 0.0), realized, int(plan.get("target_tokens", 0)), pool,
            int(plan.get("pool_documents", 0)), tokens / pool if pool else 0.0, str(plan.get("status", "?")),
            lengths, planned_epochs=float(plan.get("rate", 0.0)), reference_epochs=plan.get("reference_epochs"),
            meets_target=meets, untokenized_documents=int(plan.get("untokenized_documents", 0))))
    for field, changes in sorted(weight_changes.items()):
        label = "configured weights" if field == "configured_weight" else "weights after redistribution"
        mismatches.append(f"config: its {label} differ from those the build's mixture plan used, for "
                          f"{len(changes)} source(s) (config vs plan): " + "; ".join(changes))
    return sources, mismatches


def code_text_problems(manifest: dict[str, Any], sources: list[SourceAudit], targets: Targets) -> list[str]:
    """code:text as measured against the manifest's figures, and the code share against its target."""
    code = sum(s.tokens for s in sources if s.kind == "code")
    text = sum(s.tokens for s in sources if s.kind == "text")
    recorded = (manifest.get("mixture") or {}).get("code_text_ratio") or {}
    problems = []
    if not _close(recorded.get("realized"), code / text if text else None) or recorded.get("code_tokens") != code \
            or recorded.get("text_tokens") != text:
        problems.append(f"code:text: {code:,} code and {text:,} text tokens in the shards, the manifest says "
                        f"{recorded.get('code_tokens')} and {recorded.get('text_tokens')}")
    target_code = sum(s.target_weight for s in sources if s.kind == "code")
    slack = sum(s.lengths.longest for s in sources if s.kind == "code")
    total = code + text
    if targets.enabled and total and not within_target(code, target_code, total, targets.tolerance, slack):
        problems.append(f"code:text: code is {100 * code / total:.3f}% of the tokens, the target is "
                        f"{100 * target_code:.3f}% (tolerance {100 * targets.tolerance:.3f} points)")
    return problems


def make_targets(config: dict[str, Any], manifest: dict[str, Any], tolerance: float,
                 against_plan: bool) -> tuple[Targets, list[str]]:
    plans = (manifest.get("mixture") or {}).get("sources") or {}
    pools = {s: int(p.get("pool_tokens", 0)) for s, p in plans.items()}
    configured, effective, problems = target_weights(config, pools)
    mixture = config.get("mixture") or {}
    kinds = {s: str(v.get("kind")) for s, v in (mixture.get("sources") or {}).items()}
    return Targets(configured, effective, kinds, bool(mixture.get("enabled", True)), tolerance, against_plan), problems


def audit_build(build_dir: str, *, tolerance: float = DEFAULT_TOLERANCE, config: dict[str, Any] | None = None,
                config_origin: str = "", workers: int = 4,
                progress: Callable[[str], None] | None = None) -> AuditResult:
    """Re-measure `build_dir` and compare it with its manifest and with the targets of `config` (a resolved
    config; default: the one the manifest records). Raises `BuildStateError`/`ManifestVersionError` only
    when there is nothing to audit; every other problem is a mismatch in the result."""
    manifest, notes = load_build_manifest(build_dir)
    mismatches = [f"manifest schema: {p}" for p in schema_problems(manifest)] + config_hash_problems(manifest)
    if config is not None:
        notes.append(f"targets from {config_origin or 'the given config'}, not from the config of the build")
    targets, problems = make_targets(config if config is not None else manifest.get("config") or {}, manifest,
                                     tolerance, against_plan=config is None)
    mismatches.extend(problems)
    if not targets.enabled:
        notes.append("mixing is disabled in the config: weights are measured, not held to targets")

    records = [s for s in manifest.get("shards") or [] if isinstance(s, dict)]
    tokenizer = manifest.get("tokenizer") or {}
    measures = _measure_all(build_dir, records, tokenizer, workers, progress)
    shard_rows, problems = shard_findings(records, measures, tokenizer)
    mismatches.extend(problems)
    extra, leftover = extra_shard_files(build_dir, records)
    mismatches.extend(extra)
    notes.extend(leftover)

    sources, problems = audit_sources(manifest, measures, targets)
    mismatches.extend(problems)
    mismatches.extend(code_text_problems(manifest, sources, targets))
    total = sum(s.tokens for s in sources)
    mismatches.extend(_totals_problems(manifest, measures, total))
    mismatches.extend(accounting_problems(manifest))
    mismatches.extend(drop_log_problems(build_dir, manifest))
    mismatches.extend(contamination_problems(manifest))
    mismatches.extend(variant_problems(build_dir, manifest))
    mismatches.extend(dedup_index_problems(build_dir, manifest))
    target_code = sum(s.target_weight for s in sources if s.kind == "code")
    target_text = sum(s.target_weight for s in sources if s.kind == "text")
    return AuditResult(build_dir, manifest, tolerance, sources, shard_rows, total,
                       sum(s.documents for s in sources),
                       sum(s.tokens for s in sources if s.kind == "code"),
                       sum(s.tokens for s in sources if s.kind == "text"),
                       target_code / target_text if target_text else None, mismatches, notes,
                       config_origin if config is not None else "the build's own config")


def _totals_problems(manifest: dict[str, Any], measures: list[ShardMeasure], total_tokens: int) -> list[str]:
    totals = manifest.get("totals") or {}
    mixture = manifest.get("mixture") or {}
    shard_tokens = [m.tokens for m in measures]
    lengths = ((manifest.get("config") or {}).get("shards") or {}).get("sequence_lengths") or []
    measured = {
        "shards": len(measures),
        "tokens": sum(shard_tokens),
        "documents": sum(m.documents for m in measures),
        "bytes": sum(size for m in measures for size, _ in m.files.values()),
    }
    problems = [f"totals: {value:,} {field} measured, the manifest says {totals.get(field)}"
                for field, value in measured.items() if totals.get(field) != value]
    if total_tokens != measured["tokens"]:
        problems.append(f"totals: the docs indexes account for {total_tokens:,} tokens, the .idx files for "
                        f"{measured['tokens']:,}")
    if mixture.get("realized_total_tokens") != total_tokens:
        problems.append(f"mixture: {total_tokens:,} tokens realized, "
                        f"the manifest says {mixture.get('realized_total_tokens')}")
    for length in lengths:
        n = sequences(shard_tokens, int(length))
        if (totals.get("sequences") or {}).get(str(length)) != n:
            problems.append(f"totals: {n:,} sequences of {length} tokens, the manifest says "
                            f"{(totals.get('sequences') or {}).get(str(length))}")
    return problems
