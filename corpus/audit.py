"""Re-measure a finished build from its files, and compare it with its manifest and its targets.

Nothing here trusts the manifest's numbers. Every shard's `.bin`, `.idx` and `.docs.jsonl.zst` is
re-read and hashed; tokens and documents are counted again and attributed to their sources through the
docs index; the copies of every document are checked against the mixture plan (full copies, one extra
copy for a hashed subset, the pool written whole when r_s >= 1); the accounting invariants are
re-checked, including against the per-document drop log; and the realized weights are compared with
targets recomputed from the resolved config the manifest records (or from another config file).
Every disagreement becomes one readable line in `mismatches`: the audit never stops at the first.

The `.bin` files are streamed once each, in chunks (sha256, id range and end-of-document tokens in
the same pass), so memory stays bounded by the chunk size plus ~30 bytes per document copy.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import xxhash
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpus.accounting import imbalances
from corpus.config import canonical_json
from corpus.errors import CorpusError
from corpus.io import exists, iter_lines, join, read_bytes
from corpus.manifest import (
    FAILED_NAME,
    MANIFEST_NAME,
    SCHEMA_VERSION,
    schema_problems,
    stage_chain_problems,
)
from corpus.mixture import MixtureError, redistribute, sequences
from corpus.shards import ShardFormatError, parse_index
from corpus.tokenizer import token_dtype

DEFAULT_TOLERANCE = 0.001
"""Largest accepted |realized - target| weight, as a fraction of all tokens (0.1 percentage point).
The mixture is token-exact to one document per source, so a real build misses by far less; a tiny
build whose documents are large against its total may need a looser `--tolerance`."""
FLOAT_SLACK = 1e-9
"""Relative slack when comparing a float the manifest recorded with the same float recomputed."""
READ_CHUNK = 1 << 22
"""Bytes of `.bin` read at a time (a multiple of every token size)."""
LENGTH_BINS_PER_OCTAVE = 4
LENGTH_OCTAVES = 40
SHARD_FILES = ("bin", "idx", "docs")


class BuildStateError(CorpusError):
    """The folder is not a finished build (missing, unfinished, failed, unreadable manifest)."""


class ManifestVersionError(CorpusError):
    """The manifest's schema version is one this code cannot read, and no migration exists."""


# ---------------------------------------------------------------------------------------------
# Loading the manifest: build state, schema version, migrations

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
            raise BuildStateError(f"{build_dir} is a failed build (FAILED.json, no manifest):\n  " + "\n  ".join(errors))
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


# ---------------------------------------------------------------------------------------------
# Re-measuring shards


@dataclasses.dataclass
class LengthHistogram:
    """Document lengths in tokens on log2 bins (LENGTH_BINS_PER_OCTAVE per octave): bounded memory at
    any scale, fine enough for quantiles and plots."""

    counts: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(LENGTH_BINS_PER_OCTAVE * LENGTH_OCTAVES, dtype=np.int64))
    documents: int = 0
    tokens: int = 0
    shortest: int = 0
    longest: int = 0

    def add(self, lengths: np.ndarray) -> None:
        if not len(lengths):
            return
        lengths = np.asarray(lengths, dtype=np.int64)
        bins = np.floor(np.log2(np.maximum(lengths, 1)) * LENGTH_BINS_PER_OCTAVE).astype(np.int64)
        self.counts += np.bincount(np.minimum(bins, len(self.counts) - 1), minlength=len(self.counts))
        low, high = int(lengths.min()), int(lengths.max())
        self.shortest = low if not self.documents else min(self.shortest, low)
        self.longest = max(self.longest, high)
        self.documents += len(lengths)
        self.tokens += int(lengths.sum())

    def edges(self) -> np.ndarray:
        return 2.0 ** (np.arange(len(self.counts) + 1) / LENGTH_BINS_PER_OCTAVE)

    def quantile(self, q: float) -> float:
        """Approximate quantile: the geometric middle of the bin holding it, clipped to the real range."""
        if not self.documents:
            return 0.0
        position = int(np.searchsorted(np.cumsum(self.counts), q * self.documents, side="left"))
        edges = self.edges()
        middle = math.sqrt(edges[position] * edges[position + 1])
        return float(min(max(middle, self.shortest), self.longest))

    def summary(self) -> dict[str, float | int]:
        return {"documents": self.documents, "tokens": self.tokens, "min": self.shortest, "max": self.longest,
                "mean": self.tokens / self.documents if self.documents else 0.0,
                "p50": self.quantile(0.5), "p90": self.quantile(0.9), "p99": self.quantile(0.99)}


@dataclasses.dataclass
class SourceCopies:
    """The (document, copy) placements of one source: 128-bit id hashes, copy numbers, token counts."""

    id_hi: list[np.ndarray] = dataclasses.field(default_factory=list)
    id_lo: list[np.ndarray] = dataclasses.field(default_factory=list)
    copy: list[np.ndarray] = dataclasses.field(default_factory=list)
    tokens: list[np.ndarray] = dataclasses.field(default_factory=list)

    def extend(self, other: "SourceCopies") -> None:
        for name in ("id_hi", "id_lo", "copy", "tokens"):
            getattr(self, name).extend(getattr(other, name))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        return (cat(self.id_hi, np.uint64), cat(self.id_lo, np.uint64), cat(self.copy, np.int64),
                cat(self.tokens, np.int64))


@dataclasses.dataclass
class ShardMeasure:
    """What one shard's files really hold."""

    name: str
    files: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
    """kind -> (bytes, sha256) of every file that exists."""
    dtype: str | None = None
    tokens: int = 0
    documents: int = 0
    tokens_by_source: dict[str, int] = dataclasses.field(default_factory=dict)
    documents_by_source: dict[str, int] = dataclasses.field(default_factory=dict)
    copies: dict[str, SourceCopies] = dataclasses.field(default_factory=dict)
    max_token_id: int | None = None
    eos_misses: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    tokenizer_signs: list[str] = dataclasses.field(default_factory=list)
    """Evidence that another tokenizer wrote the shard (ids beyond the vocabulary, EOS, dtype)."""


def _file_path(build_dir: str, record: dict[str, Any], kind: str) -> str:
    extension = {"bin": ".bin", "idx": ".idx", "docs": ".docs.jsonl.zst", "jsonl": ".jsonl.zst"}[kind]
    relative = ((record.get("files") or {}).get(kind) or {}).get("path") or f"{record.get('name', '?')}{extension}"
    return join(build_dir, relative)


def _raw_chunks(path: str) -> Iterator[bytes]:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        while True:
            chunk = handle.read(READ_CHUNK)
            if not chunk:
                return
            yield chunk


def file_digest(path: str) -> tuple[int, str]:
    """(bytes, sha256) of a file as stored (compressed files are not decompressed)."""
    sha = hashlib.sha256()
    size = 0
    for chunk in _raw_chunks(path):
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest()


@dataclasses.dataclass
class BinScan:
    size: int
    sha256: str
    max_id: int | None
    min_id: int | None
    eos_misses: int


def scan_bin(path: str, dtype: np.dtype | None, ends: np.ndarray, eos_id: int) -> BinScan:
    """One streaming pass over a `.bin`: sha256, the id range, and how many documents (whose last token
    positions are `ends`) do not end in `eos_id`. With no dtype (a broken index) only the hash is taken."""
    sha = hashlib.sha256()
    size = 0
    carry = b""
    start = 0  # token position of the first token in `carry + chunk`
    max_id: int | None = None
    min_id: int | None = None
    misses = 0
    for chunk in _raw_chunks(path):
        sha.update(chunk)
        size += len(chunk)
        if dtype is None:
            continue
        data = carry + chunk if carry else chunk
        usable = len(data) - len(data) % dtype.itemsize
        carry = data[usable:]
        tokens = np.frombuffer(data[:usable], dtype=dtype)
        if not len(tokens):
            continue
        high, low = int(tokens.max()), int(tokens.min())
        max_id = high if max_id is None else max(max_id, high)
        min_id = low if min_id is None else min(min_id, low)
        lo, hi = np.searchsorted(ends, [start, start + len(tokens)])
        if hi > lo:
            misses += int(np.count_nonzero(tokens[ends[lo:hi] - start] != eos_id))
        start += len(tokens)
    return BinScan(size, sha.hexdigest(), max_id, min_id, misses)


def read_docs_lines(path: str) -> list[dict[str, Any]]:
    """The docs index of a shard (decompressed with truncation checks by `corpus.io`), parsed as one
    JSON array (7x faster than a `json.loads` per line); a bad line is then found and named."""
    lines = [line for line in read_bytes(path).split(b"\n") if line.strip()]
    try:
        return json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        for number, line in enumerate(lines, 1):
            try:
                json.loads(line)
            except ValueError as exc:
                raise ValueError(f"line {number}: {exc}") from None
        raise


def _index_problems(name: str, index: Any) -> list[str]:
    problems = []
    lengths = index.lengths.astype(np.int64)
    expected = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths) > 1:
        np.cumsum(lengths[:-1] * index.dtype.itemsize, out=expected[1:])
    if not np.array_equal(index.pointers, expected):
        problems.append(f"{name}.idx: byte pointers do not follow the sequence lengths")
    if not np.array_equal(index.document_indices, np.arange(len(lengths) + 1, dtype=np.int64)):
        problems.append(f"{name}.idx: document indices are not 0..{len(lengths)} (one sequence per document)")
    if len(lengths) and int(lengths.min()) <= 0:
        problems.append(f"{name}.idx: {int(np.count_nonzero(lengths <= 0))} document(s) of length <= 0")
    return problems


def _docs_measure(measure: ShardMeasure, lines: list[dict[str, Any]], lengths: np.ndarray | None) -> None:
    """Per-source counts and copy placements from the docs index, checked against the `.idx` lengths."""
    name = measure.name
    if lengths is not None and len(lines) != len(lengths):
        measure.problems.append(
            f"{name}.docs.jsonl.zst lists {len(lines):,} documents, the .idx {len(lengths):,}")
    by_source: dict[str, list[tuple[int, int, int, int]]] = {}
    disagree = 0
    for position, line in enumerate(lines):
        try:
            source, doc_id, copy, tokens = str(line["source"]), str(line["id"]), int(line["copy"]), int(line["tokens"])
        except (KeyError, TypeError, ValueError):
            measure.problems.append(f"{name}.docs.jsonl.zst, line {position + 1}: not a {{id, source, copy, tokens}} record")
            continue
        if lengths is not None and position < len(lengths) and int(lengths[position]) != tokens:
            disagree += 1
        digest = xxhash.xxh3_128_intdigest(doc_id.encode("utf-8", "surrogatepass"))
        by_source.setdefault(source, []).append((digest >> 64, digest & 0xFFFFFFFFFFFFFFFF, copy, tokens))
    if disagree:
        measure.problems.append(f"{name}.docs.jsonl.zst: {disagree:,} document length(s) differ from the .idx")
    for source, rows in sorted(by_source.items()):
        hi, lo, copy, tokens = (np.array(col, dtype=dt) for col, dt in
                                zip(zip(*rows), (np.uint64, np.uint64, np.int64, np.int64)))
        measure.copies[source] = SourceCopies([hi], [lo], [copy], [tokens])
        measure.tokens_by_source[source] = int(tokens.sum())
        measure.documents_by_source[source] = len(rows)


def measure_shard(build_dir: str, record: dict[str, Any], tokenizer: dict[str, Any]) -> ShardMeasure:
    """Re-read one shard's files; the record only says where they are and what dtype to expect."""
    name = str(record.get("name", "?"))
    measure = ShardMeasure(name)
    paths = {kind: _file_path(build_dir, record, kind) for kind in (*SHARD_FILES, *(
        k for k in (record.get("files") or {}) if k not in SHARD_FILES))}
    missing = [kind for kind, path in paths.items() if not exists(path)]
    for kind in missing:
        measure.problems.append(f"{name}: {paths[kind].rsplit('/', 1)[-1]} is missing (deleted or never written)")
    index = None
    if "idx" not in missing:
        raw = b"".join(_raw_chunks(paths["idx"]))
        measure.files["idx"] = (len(raw), hashlib.sha256(raw).hexdigest())
        try:
            index = parse_index(raw, f"{name}.idx")
        except ShardFormatError as exc:
            measure.problems.append(str(exc))
    if index is not None:
        measure.dtype = index.dtype.name
        measure.problems.extend(_index_problems(name, index))
        measure.documents = len(index.lengths)
        measure.tokens = int(index.lengths.astype(np.int64).sum())
    if "bin" not in missing:
        ends = np.cumsum(index.lengths.astype(np.int64)) - 1 if index is not None else np.zeros(0, np.int64)
        scan = scan_bin(paths["bin"], index.dtype if index is not None else None, ends, int(tokenizer.get("eos_id", -1)))
        measure.files["bin"] = (scan.size, scan.sha256)
        if index is not None:
            expected = measure.tokens * index.dtype.itemsize
            if scan.size != expected:
                measure.problems.append(f"{name}.bin is {scan.size:,} bytes, its .idx describes {expected:,} "
                                        f"({measure.tokens:,} {index.dtype.name} tokens)")
            else:
                _tokenizer_signs(measure, scan, index.dtype, tokenizer)
    if "docs" not in missing:
        measure.files["docs"] = file_digest(paths["docs"])
        try:
            lines = read_docs_lines(paths["docs"])
        except (CorpusError, ValueError) as exc:
            measure.problems.append(f"{name}.docs.jsonl.zst is unreadable: {exc}")
        else:
            _docs_measure(measure, lines, index.lengths if index is not None else None)
    for kind in paths:
        if kind not in SHARD_FILES and kind not in missing:
            measure.files[kind] = file_digest(paths[kind])
    return measure


def _tokenizer_signs(measure: ShardMeasure, scan: BinScan, dtype: np.dtype, tokenizer: dict[str, Any]) -> None:
    name = measure.name
    vocab = tokenizer.get("vocab_size")
    measure.max_token_id = scan.max_id
    measure.eos_misses = scan.eos_misses
    if isinstance(vocab, int):
        try:
            wanted = token_dtype(vocab).name
        except CorpusError:
            wanted = None
        if wanted and dtype.name != wanted:
            measure.tokenizer_signs.append(
                f"{name}: tokens are {dtype.name}, but a vocabulary of {vocab:,} ids is written as {wanted}")
        if scan.max_id is not None and scan.max_id >= vocab:
            measure.tokenizer_signs.append(f"{name}: token id {scan.max_id:,} is beyond the vocabulary ({vocab:,} ids)")
    if scan.min_id is not None and scan.min_id < 0:
        measure.tokenizer_signs.append(f"{name}: negative token id {scan.min_id}")
    if scan.eos_misses:
        measure.tokenizer_signs.append(
            f"{name}: {scan.eos_misses:,} of {measure.documents:,} documents do not end with EOS id "
            f"{tokenizer.get('eos_id')} ({tokenizer.get('eos_token')!r})")


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
    epochs: float
    status: str
    lengths: LengthHistogram
    meets_target: bool = True
    """Within the tolerance of its target weight, or within one document of it."""

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


def target_weights(config: dict[str, Any], pools: dict[str, int]) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """(configured weights, effective targets after redistribution, problems), recomputed from a resolved
    config and the pools the manifest recorded (DESIGN §2)."""
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
    `granularity` tokens of it (one document: the mixture places whole documents, DESIGN §2)."""
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
        }


def _measure_all(build_dir: str, records: list[dict[str, Any]], tokenizer: dict[str, Any],
                 workers: int, progress: Callable[[str], None] | None) -> list[ShardMeasure]:
    """Shards are independent: hash and scan them on a few threads (hashlib and numpy release the GIL)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(measure_shard, build_dir, r, tokenizer) for r in records]
        measures = []
        for record, future in zip(records, futures):
            measures.append(future.result())
            if progress:
                progress(str(record.get("name")))
    return measures


def _combined(measures: list[ShardMeasure]) -> tuple[dict[str, SourceCopies], dict[str, int], dict[str, int]]:
    copies: dict[str, SourceCopies] = {}
    tokens: dict[str, int] = {}
    documents: dict[str, int] = {}
    for m in measures:
        for source, placed in m.copies.items():
            copies.setdefault(source, SourceCopies()).extend(placed)
        for source, t in m.tokens_by_source.items():
            tokens[source] = tokens.get(source, 0) + t
        for source, d in m.documents_by_source.items():
            documents[source] = documents.get(source, 0) + d
    return copies, tokens, documents


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
    for record, measure in zip(records, measures):
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
            lengths, meets))
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
        problems.append(f"mixture: {total_tokens:,} tokens realized, the manifest says {mixture.get('realized_total_tokens')}")
    for length in lengths:
        n = sequences(shard_tokens, int(length))
        if (totals.get("sequences") or {}).get(str(length)) != n:
            problems.append(f"totals: {n:,} sequences of {length} tokens, the manifest says "
                            f"{(totals.get('sequences') or {}).get(str(length))}")
    return problems

