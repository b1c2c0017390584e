"""The decontamination index: hashed n-grams of benchmark items, never their text.

Built from benchmark files (`build_index`, `corpus decontam index`), written as one file
(`write_index`), loaded by the filter (`load_index`). For every part of every item (benchmarks.py)
the index keeps a sample of its informative n-grams:

1. The part's words (tokens.py) give its n-grams.
2. Too-common n-grams carry no evidence and are left out: those found in `max_families` or more
   families of items (templates: MMLU's "which of the following", BBH's task instructions,
   HumanEval's test scaffolding) and those of the optional background files, ordinary code and
   prose (`background`).
3. A part with fewer than `min_ngrams` informative n-grams can never match alone: `return a + b`, a
   one-word answer, a BBH expression. It is counted (`trivial_parts`) and not indexed.
4. Of the rest, the `sketch` n-grams with the smallest hashes are kept: a bottom-k sample (Broder
   1997, "On the resemblance and containment of documents"). A document that contains a part
   contains every n-gram of its sample, and the share of the sample found in a document estimates
   the share of the part it contains, whatever the part's length.

The file: `LEMURDCX`, the format version and the header's length (two little-endian uint32), the
header (canonical JSON, readable with `head -c`: settings, the sources and their sha256, counts per
benchmark), then a zstd frame holding the arrays (sorted keys, their part, per part its item, name
and sample size) and the item table (ids and benchmarks). The same benchmark files and settings give
the same bytes. The index's identity is the sha256 of the whole file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from collections.abc import Iterable
from typing import Any

import numpy as np
import zstandard

from lemur_corpus import __version__
from lemur_corpus.errors import ConfigError, InputFileError
from lemur_corpus.filters.decontam.benchmarks import BenchmarkSource, Item, read_benchmarks
from lemur_corpus.filters.decontam.tokens import (
    TOKENIZATION,
    benchmark_words,
    distinct_ngrams,
    fingerprints,
    ngram_hashes,
)

MAGIC = b"LEMURDCX"
FORMAT_VERSION = 1
PART_NAMES: tuple[str, ...] = (
    "prompt", "description", "solution", "test", "text", "code", "tests", "question", "answer", "mc", "mc_plain",
    "input", "query", "target", "question_query",
)
"""Every part name a layout produces (benchmarks.py); the index stores a part's name as its position."""
EXTENDS: dict[str, str] = {"mc": "question", "mc_plain": "question", "question_query": "query"}
"""Parts that are another part plus more (a question with its choices): they are sampled from the
n-grams they add, so a question alone matches its `question` part, and the choices, wherever their
labels put them, match the `mc` parts."""
_ARRAYS: tuple[tuple[str, str], ...] = (
    ("part_keys", "<u4"), ("part_size", "<u2"), ("part_total", "<u2"), ("part_item", "<u4"), ("part_name", "<u1"),
    ("item_benchmark", "<u2"),
)


@dataclasses.dataclass(frozen=True, slots=True)
class IndexSettings:
    """What an index is built with; a config asking for other settings refuses the index."""

    ngram: int
    sketch: int
    min_ngrams: int
    max_families: int
    tokenization: str = TOKENIZATION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, other: IndexSettings) -> list[str]:
        """`name: ours vs theirs` for every setting that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]} vs {theirs[k]}" for k in mine if mine[k] != theirs[k]]


@dataclasses.dataclass
class DecontamIndex:
    settings: IndexSettings
    part_keys: np.ndarray
    """Every indexed part's sample of fingerprints (uint32), part after part, each sorted."""
    part_size: np.ndarray
    """The part's sample size: the denominator of its containment."""
    part_total: np.ndarray
    """The part's informative n-grams (at most 65,535): between two parts found whole, the larger is
    the more specific evidence (a MultiPL-E prompt over the HumanEval docstring it holds)."""
    part_item: np.ndarray
    part_name: np.ndarray
    """Position in PART_NAMES."""
    item_ids: list[str]
    item_benchmark: np.ndarray
    benchmarks: list[str]
    header: dict[str, Any]
    sha256: str = ""
    """Of the file it was read from (empty for an index built in memory)."""
    keys: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.uint32))
    """All fingerprints, sorted (a fingerprint of several parts once per part): what documents are looked up in."""
    key_part: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.uint32))

    @classmethod
    def from_parts(cls, settings: IndexSettings, part_keys: np.ndarray, part_size: np.ndarray,
                   part_total: np.ndarray, part_item: np.ndarray, part_name: np.ndarray, item_ids: list[str],
                   item_benchmark: np.ndarray, benchmarks: list[str], header: dict[str, Any],
                   sha256: str = "") -> DecontamIndex:
        owner = np.repeat(np.arange(len(part_size), dtype=np.uint32), part_size.astype(np.int64))
        order = np.argsort(part_keys, kind="stable")
        return cls(settings, part_keys, part_size, part_total, part_item, part_name, item_ids, item_benchmark,
                   benchmarks, header, sha256, part_keys[order], owner[order])

    @property
    def items(self) -> int:
        return len(self.item_ids)

    def merged(self, other: DecontamIndex) -> DecontamIndex:
        """This index and another built with the same settings (a config's own benchmark files added to
        the shipped index). An item id in both must be the same item: the other's copy is left out."""
        if self.settings != other.settings:
            raise ConfigError("cannot merge decontamination indexes built with other settings: "
                              + "; ".join(self.settings.differences(other.settings)))
        known = set(self.item_ids)
        benchmarks = sorted(set(self.benchmarks) | set(other.benchmarks))
        keep_item = np.array([i not in known for i in other.item_ids], dtype=bool)
        new_item = np.cumsum(keep_item) - 1 + self.items
        keep_part = keep_item[other.part_item] if len(other.part_item) else np.zeros(0, dtype=bool)
        keep_key = np.repeat(keep_part, other.part_size.astype(np.int64))
        mine = np.array([benchmarks.index(b) for b in self.benchmarks], dtype=np.uint16)
        theirs = np.array([benchmarks.index(b) for b in other.benchmarks], dtype=np.uint16)
        header = dict(self.header)
        header["sources"] = list(self.header.get("sources", [])) + list(other.header.get("sources", []))
        return DecontamIndex.from_parts(
            self.settings, np.concatenate([self.part_keys, other.part_keys[keep_key]]),
            np.concatenate([self.part_size, other.part_size[keep_part]]),
            np.concatenate([self.part_total, other.part_total[keep_part]]),
            np.concatenate([self.part_item, new_item[other.part_item[keep_part]].astype(np.uint32)]),
            np.concatenate([self.part_name, other.part_name[keep_part]]),
            self.item_ids + [i for i, k in zip(other.item_ids, keep_item, strict=True) if k],
            np.concatenate([mine[self.item_benchmark], theirs[other.item_benchmark[keep_item]]]).astype(np.uint16),
            benchmarks, header, self.sha256)


def background_ngrams(paths: Iterable[str], ngram: int) -> np.ndarray:
    """The distinct n-gram hashes of ordinary code and prose (files of text, or JSON Lines with a
    `text` or `content` field): benchmark n-grams found there are common, not evidence."""
    from lemur_corpus.io import iter_lines

    found: list[np.ndarray] = []
    for path in paths:
        json_lines = ".jsonl" in path or path.endswith(".json")
        if not json_lines:
            from lemur_corpus.io import read_bytes

            found.append(distinct_ngrams(read_bytes(path).decode("utf-8", errors="replace"), ngram))
            continue
        for line, raw in iter_lines(path):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError as exc:
                raise InputFileError(path, f"not valid JSON: {exc}", line) from None
            text = record.get("text", record.get("content")) if isinstance(record, dict) else None
            if isinstance(text, str):
                found.append(distinct_ngrams(text, ngram))
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint32)


def build_index(items: list[Item], sources: list[BenchmarkSource], settings: IndexSettings,
                background: np.ndarray | None = None, background_sources: list[BenchmarkSource] | None = None,
                ) -> DecontamIndex:
    """The index of `items` (in their order) under `settings`."""
    part_prints: list[np.ndarray] = []
    part_item: list[int] = []
    part_name: list[int] = []
    part_base: list[int] = []
    """The position of the part a part extends (EXTENDS), else -1."""
    families: dict[str, int] = {}
    part_family: list[int] = []
    for index, item in enumerate(items):
        family = families.setdefault(item.family, len(families))
        own: dict[str, tuple[int, np.ndarray]] = {}
        for name, text in item.parts:
            prints = np.unique(fingerprints(ngram_hashes(benchmark_words(text), settings.ngram)))
            base = own.get(EXTENDS.get(name, ""))
            own[name] = (len(part_prints), prints)
            if base is not None:  # only what the extension adds is its evidence
                prints = np.setdiff1d(prints, base[1], assume_unique=True)
            part_prints.append(prints)
            part_item.append(index)
            part_name.append(PART_NAMES.index(name))
            part_base.append(base[0] if base is not None else -1)
            part_family.append(family)
    common = _common_ngrams(part_prints, part_family, settings.max_families)
    if background is not None and len(background):
        common = np.union1d(common, background)
    benchmarks = sorted({i.benchmark for i in items})
    stats = {b: {"items": 0, "indexed_items": 0, "parts": 0, "trivial_parts": 0, "covered_parts": 0}
             for b in benchmarks}
    for item in items:
        stats[item.benchmark]["items"] += 1
    samples: list[np.ndarray] = []
    totals: list[int] = []
    kept_item: list[int] = []
    kept_name: list[int] = []
    indexed: set[int] = set()
    informative_parts: set[int] = set()
    for position, (prints, item_index, name_index, base_position) in enumerate(
            zip(part_prints, part_item, part_name, part_base, strict=True)):
        entry = stats[items[item_index].benchmark]
        informative = prints[~np.isin(prints, common, assume_unique=True)] if len(common) else prints
        if len(informative) < settings.min_ngrams:
            entry["trivial_parts"] += 1
            continue
        if base_position in informative_parts:  # the part it extends matches alone, wherever it is
            entry["covered_parts"] += 1
            continue
        informative_parts.add(position)
        samples.append(informative[: settings.sketch])  # sorted: the smallest fingerprints, a bottom-k sample
        totals.append(min(len(informative), 65535))
        kept_item.append(item_index)
        kept_name.append(name_index)
        indexed.add(item_index)
        entry["parts"] += 1
    for item_index in indexed:
        stats[items[item_index].benchmark]["indexed_items"] += 1
    sizes = np.array([len(sample) for sample in samples], dtype=np.uint16)
    part_keys = np.concatenate(samples) if samples else np.zeros(0, dtype=np.uint32)
    header = {
        "format": "lemur-corpus decontamination index",
        "format_version": FORMAT_VERSION,
        "created_by": f"lemur-corpus {__version__}",
        "settings": settings.to_dict(),
        "sources": [dataclasses.asdict(s) for s in sources],
        "background": [dataclasses.asdict(s) for s in background_sources or []],
        "common_ngrams": int(len(common)),
        "benchmarks": stats,
        "entries": int(len(part_keys)),
    }
    return DecontamIndex.from_parts(
        settings, part_keys, sizes, np.array(totals, dtype=np.uint16), np.array(kept_item, dtype=np.uint32),
        np.array(kept_name, dtype=np.uint8),
        [i.id for i in items], np.array([benchmarks.index(i.benchmark) for i in items], dtype=np.uint16),
        benchmarks, header)


def _common_ngrams(part_prints: list[np.ndarray], part_family: list[int], max_families: int) -> np.ndarray:
    """The fingerprints found in `max_families` or more families of items."""
    if not part_prints:
        return np.zeros(0, dtype=np.uint32)
    prints = np.concatenate(part_prints).astype(np.uint64)
    family = np.repeat(np.array(part_family, dtype=np.uint64), [len(p) for p in part_prints])
    pairs = np.unique((prints << np.uint64(32)) | family)  # one per (n-gram, family)
    distinct, counts = np.unique((pairs >> np.uint64(32)).astype(np.uint32), return_counts=True)
    return distinct[counts >= max_families]


def index_benchmarks(specs: list[str], settings: IndexSettings, background: list[str] | None = None) -> DecontamIndex:
    """Read benchmark files (and background files) and build their index."""
    items, sources = read_benchmarks(specs)
    common = None
    background_sources: list[BenchmarkSource] = []
    if background:
        from lemur_corpus.io import match_files, read_raw_bytes

        files = [f.path for f in match_files(background)]
        common = background_ngrams(files, settings.ngram)
        background_sources = [BenchmarkSource(path, hashlib.sha256(read_raw_bytes(path)).hexdigest(), 0)
                              for path in files]
    return build_index(items, sources, settings, common, background_sources)


def index_bytes(index: DecontamIndex) -> bytes:
    """The file's bytes (deterministic for the same index)."""
    arrays = {"part_keys": index.part_keys, "part_size": index.part_size, "part_total": index.part_total,
              "part_item": index.part_item,
              "part_name": index.part_name, "item_benchmark": index.item_benchmark}
    body = b"".join(np.ascontiguousarray(arrays[name], dtype=dtype).tobytes() for name, dtype in _ARRAYS)
    table = json.dumps({"benchmarks": index.benchmarks, "items": index.item_ids}, separators=(",", ":"),
                       ensure_ascii=False).encode("utf-8")
    header = dict(index.header)
    header["arrays"] = [[name, dtype, int(len(arrays[name]))] for name, dtype in _ARRAYS]
    header["table_bytes"] = len(table)
    head = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    compressed = zstandard.ZstdCompressor(level=19, write_checksum=True, write_content_size=True).compress(body + table)
    return MAGIC + struct.pack("<II", FORMAT_VERSION, len(head)) + head + compressed


def write_index(index: DecontamIndex, path: str) -> str:
    """Write the index atomically; returns its sha256."""
    from lemur_corpus.io import write_atomic

    data = index_bytes(index)
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def read_header(data: bytes, origin: str) -> tuple[dict[str, Any], int]:
    """(header, offset of the body) of an index file's bytes."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise ConfigError(f"{origin}: not a decontamination index (built by `corpus decontam index`)")
    version, length = struct.unpack_from("<II", data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise ConfigError(f"{origin}: decontamination index format {version}; this version of lemur-corpus reads "
                          f"format {FORMAT_VERSION}: rebuild it with `corpus decontam index`")
    start = len(MAGIC) + 8
    try:
        header = json.loads(data[start : start + length])
    except ValueError as exc:
        raise ConfigError(f"{origin}: damaged decontamination index header ({exc})") from None
    return header, start + length


def parse_index(data: bytes, origin: str) -> DecontamIndex:
    header, offset = read_header(data, origin)
    try:
        body = zstandard.ZstdDecompressor().decompress(data[offset:])
        arrays: dict[str, np.ndarray] = {}
        position = 0
        for name, dtype, length in header["arrays"]:
            size = np.dtype(dtype).itemsize * int(length)
            arrays[name] = np.frombuffer(body, dtype=dtype, count=int(length), offset=position).astype(
                np.dtype(dtype).newbyteorder("="))
            position += size
        table = json.loads(body[position : position + int(header["table_bytes"])])
        settings = IndexSettings(**header["settings"])
    except (zstandard.ZstdError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: damaged decontamination index ({type(exc).__name__}: {exc})") from None
    return DecontamIndex.from_parts(settings, arrays["part_keys"], arrays["part_size"], arrays["part_total"],
                                    arrays["part_item"], arrays["part_name"], list(table["items"]),
                                    arrays["item_benchmark"],
                                    list(table["benchmarks"]), header, hashlib.sha256(data).hexdigest())
