"""The dedup index: what a build published, per kind, so that later builds dedup against it.

Layout (format `lemur-corpus-dedup-index`, version 1), one folder per kind:

    <root>/<kind>/index.json                      the header: format, version, kind, settings, builds,
                                                  documents, and every data file with its sha256
    <root>/<kind>/part-NNNNN-of-MMMMM.parquet     the rows, sorted by (build, doc_id)

A build writes `<build>/dedup-index/`, `corpus dedup` writes `<out>/dedup-index/`, `corpus
dedup-index merge` writes any folder. A row is one document that was kept (published):

| column | type | what |
|---|---|---|
| `build` | string (dictionary) | the id of the build that published it |
| `source` | string (dictionary) | its mixture source |
| `doc_id` | string | its id in that build |
| `content_hash` | fixed_size_binary(16) | xxh3-128 of its text (exact dedup's hash) |
| `sketch` | binary (num_perm / 2 bytes) or null | the 4-bit MinHash sketch (null: near-dedup off, or no token) |

Why a 4-bit sketch and no stored signature or band keys: a full signature is num_perm x 4 bytes
(1,024 B at the default 256 permutations) and the band keys 18 B x bands (414 B at 23 bands), each
alone over the 300 B a document may cost. The sketch keeps, for every permutation, 4 bits of a
multiplicative hash of the minimum (b-bit minwise hashing, Li and König 2010): 128 B at 256
permutations. Both things dedup needs come from it: band keys (`sketch_band_keys`: a band's values
hashed to 64 bits; two documents share a band when their 4-bit values agree on the whole band, which
a pair of Jaccard s does with probability (1/16 + 15/16 s)^rows, at least as often as with full
values) and verification (`SketchVerifier`: two sketches agree on a permutation with probability
1/16 + 15/16 J, so J is estimated as (agree/num_perm - 1/16) / (15/16); standard error about 0.026
at J = 0.8 and 256 permutations, against 0.025 for full signatures). A new document's sketch is made
from its full signature (`sketch_of`), so an index and a new build agree bit for bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from lemur_corpus.dedup.config import NearDedupConfig
from lemur_corpus.errors import CorpusError

FORMAT = "lemur-corpus-dedup-index"
VERSION = 1
HEADER_NAME = "index.json"
INDEX_DIR = "dedup-index"
"""The index folder inside a build's or `corpus dedup`'s output folder."""
SKETCH_BITS = 4
CONTENT_HASH = "xxh3_128"
COLUMNS = ("build", "source", "doc_id", "content_hash", "sketch")
NEAR_SETTINGS = ("tokens", "ngram", "num_perm", "seed", "hash", "threshold", "max_shingles", "sketch_bits",
                 "bands", "rows")

_MIX = np.uint64(0x9E3779B1)
_MASK32 = np.uint64(0xFFFFFFFF)
_K0 = np.uint64(0x9E3779B97F4A7C15)
_K1 = np.uint64(0xC2B2AE3D27D4EB4F)
_K2 = np.uint64(0x165667B19E3779F9)


class DedupIndexError(CorpusError):
    """An index that cannot be used: one line naming the index and what is wrong with it."""


def part_name(index: int, shards: int) -> str:
    return f"part-{index:05d}-of-{shards:05d}.parquet"


# --- settings ---------------------------------------------------------------------------------

def index_settings(kind: str, near: NearDedupConfig | None, bands_rows: tuple[int, int] | None) -> dict[str, Any]:
    """What must be equal for two runs to share an index: the exact hash, and the shingling,
    MinHash, banding and threshold of near-dedup (None when near-dedup of the kind is off)."""
    settings: dict[str, Any] = {"kind": kind, "content_hash": CONTENT_HASH, "near": None}
    if near is not None and near.enabled and bands_rows is not None:
        settings["near"] = {
            "tokens": near.tokens, "ngram": near.ngram, "num_perm": near.num_perm, "seed": near.seed,
            "hash": near.hash, "bands": bands_rows[0], "rows": bands_rows[1], "threshold": near.threshold,
            "max_shingles": near.max_shingles, "sketch_bits": SKETCH_BITS,
        }
    return settings


def settings_difference(index: dict[str, Any], ours: dict[str, Any]) -> str | None:
    """The first setting on which an index's settings and this run's differ, said as a sentence;
    None when the index can be used. A run without near-dedup uses any index's hashes alone."""
    if index.get("kind") != ours["kind"]:
        return f"it is an index of {index.get('kind')} documents, not {ours['kind']}"
    if index.get("content_hash") != ours["content_hash"]:
        return f"content_hash = {index.get('content_hash')!r}, this run uses {ours['content_hash']!r}"
    mine = ours["near"]
    if mine is None:
        return None
    theirs = index.get("near")
    if theirs is None:
        return f"it has no MinHash sketches (dedup.{ours['kind']} near-dedup was off), this run near-dedups"
    order = {key: i for i, key in enumerate(NEAR_SETTINGS)}  # what the user set first, what follows from it last
    for key in sorted(set(mine) | set(theirs), key=lambda k: (order.get(k, len(order)), k)):
        if mine.get(key) != theirs.get(key):
            return (f"dedup.{ours['kind']}.{key} = {theirs.get(key)!r} in the index, this run uses "
                    f"{mine.get(key)!r}")
    return None


# --- sketches, band keys, verification ------------------------------------------------------------

def sketch_values_of(signature: np.ndarray) -> np.ndarray:
    """4 bits per permutation: the top bits of a multiplicative hash of the whole 32-bit minimum
    (its own top bits are almost always 0: it is a minimum; its low bits depend on few input bits)."""
    v = signature.astype(np.uint64)
    return (((v * _MIX) & _MASK32) >> np.uint64(32 - SKETCH_BITS)).astype(np.uint8)


def pack_sketch(values: np.ndarray) -> bytes:
    """Two 4-bit values a byte (the first in the low nibble)."""
    if values.size % 2:
        values = np.append(values, np.uint8(0))
    return (values[0::2] | (values[1::2] << np.uint8(4))).astype(np.uint8).tobytes()


def sketch_of(signature: np.ndarray) -> bytes:
    return pack_sketch(sketch_values_of(signature))


def unpack_sketches(data: Iterable[bytes], num_perm: int) -> np.ndarray:
    """Packed sketches (all of one length) → (n, num_perm) uint8 values."""
    raw = b"".join(data)
    width = (num_perm + 1) // 2
    if len(raw) % width:
        raise ValueError(f"sketches are {width} bytes each; got {len(raw)} bytes in all")
    packed = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width)
    values = np.empty((packed.shape[0], width * 2), dtype=np.uint8)
    values[:, 0::2] = packed & 0x0F
    values[:, 1::2] = packed >> 4
    return values[:, :num_perm]


def sketch_band_keys(values: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, num_perm) sketch values → (n, bands) uint64 band keys: each band's `rows` values hashed
    with the band's number (a 64-bit collision of two different bands only proposes a pair that
    verification then measures)."""
    n = values.shape[0]
    cut = values[:, : bands * rows].astype(np.uint64).reshape(n, bands, rows)
    with np.errstate(over="ignore"):
        h = np.broadcast_to((np.arange(bands, dtype=np.uint64) + np.uint64(1)) * _K0, (n, bands)).copy()
        for r in range(rows):
            h ^= cut[:, :, r]
            h *= _K1
            h ^= h >> np.uint64(31)
        h *= _K2
        h ^= h >> np.uint64(29)
    return h


SKETCH_MARGIN_SD = 0.5
"""How far above the threshold a sketch estimate must be, in standard deviations of the agreement
count at the threshold, before a new document is removed for an earlier one. Within a run, pairs
are verified exactly (shingle sets, `verify: exact`); an earlier document's shingles are not kept, so
its pairs are verified on the sketch, whose estimate errs by about 0.026 (256 permutations, J = 0.8):
without a margin, a pair of true Jaccard 0.77 is removed about one time in eight. Half a standard
deviation (+0.013 in Jaccard at 256 permutations) trades most of those wrong removals for keeping
some pairs just above the threshold: removal precision is what a user cannot repair later (a removed
document is gone), a kept near-duplicate only costs a little repetition. Measured by
benchmarks/incremental.py (3 dumps of web_neardup + 1,000 generated documents, seed 19; removal
precision / pair recall over the union / agreement with one full dedup on the new documents):
margin 0: 0.973 / 0.991 / 0.975; 0.5: 0.990 / 0.979 / 0.966; 1.0: 0.998 / 0.970 / 0.956."""


def min_sketch_agreements(threshold: float, num_perm: int, margin_sd: float = SKETCH_MARGIN_SD) -> int:
    """Permutations two sketches must agree on for an estimated Jaccard >= threshold, plus the margin."""
    chance = 2.0 ** -SKETCH_BITS
    expected = chance + (1.0 - chance) * threshold
    return math.ceil(num_perm * expected + margin_sd * math.sqrt(num_perm * expected * (1.0 - expected)) - 1e-9)


def sketch_similarity(agreements: int, num_perm: int) -> float:
    chance = 2.0 ** -SKETCH_BITS
    estimate = (agreements / num_perm - chance) / (1.0 - chance)
    return round(min(1.0, max(0.0, estimate)), 6)


class SketchVerifier:
    """Compares a new document's sketch with earlier documents' sketches (one kind)."""

    def __init__(self, threshold: float, num_perm: int) -> None:
        self.num_perm = num_perm
        self.needed = min_sketch_agreements(threshold, num_perm)

    def similarities(self, one: bytes, others: list[bytes]) -> list[tuple[float, bool]]:
        if not others:
            return []
        mine = unpack_sketches([one], self.num_perm)[0]
        agree = np.count_nonzero(unpack_sketches(others, self.num_perm) == mine[None, :], axis=1).tolist()
        return [(sketch_similarity(a, self.num_perm), a >= self.needed) for a in agree]


def hash_prefixes(content_hashes: Iterable[bytes]) -> np.ndarray:
    """The first 8 bytes of each 16-byte content hash as uint64 (what the exact filter compares)."""
    raw = b"".join(content_hashes)
    return np.frombuffer(raw, dtype="<u8").reshape(-1, 2)[:, 0].copy() if raw else np.zeros(0, dtype=np.uint64)


# --- the header and the checks of an index ----------------------------------------------------------

def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def make_header(settings: dict[str, Any], builds: list[dict[str, Any]], files: list[dict[str, Any]]) -> dict[str, Any]:
    files = sorted(files, key=lambda f: f["name"])
    return {"format": FORMAT, "version": VERSION, "kind": settings["kind"], "settings": settings,
            "builds": builds, "documents": sum(f["rows"] for f in files), "files": files}


def header_bytes(header: dict[str, Any]) -> bytes:
    return (json.dumps(header, indent=2, sort_keys=True) + "\n").encode()


@dataclasses.dataclass(frozen=True)
class IndexHandle:
    """An index folder of one kind whose header and files were checked."""

    folder: str
    header: dict[str, Any]
    header_sha256: str

    @property
    def kind(self) -> str:
        return str(self.header["kind"])

    @property
    def builds(self) -> list[str]:
        return [b["id"] for b in self.header["builds"]]

    def files(self) -> list[tuple[str, str]]:
        """(path, sha256) of every data file."""
        return [(os.path.join(self.folder, f["name"]), f["sha256"]) for f in self.header["files"]]

    def record(self) -> dict[str, Any]:
        """What a manifest records about an index it was deduplicated against."""
        return {"path": os.path.abspath(os.path.join(self.folder, HEADER_NAME)), "kind": self.kind,
                "sha256": self.header_sha256, "builds": self.builds, "documents": self.header["documents"]}


def find_kind_folder(path: str, kind: str) -> str:
    """The folder holding `kind`'s index under `path`: the kind folder itself, an index root
    (`<path>/<kind>/`) or a build / `corpus dedup` output (`<path>/dedup-index/<kind>/`)."""
    if not os.path.exists(path):
        raise DedupIndexError(f"dedup index {path}: no such file or folder")
    if os.path.isfile(path):
        path = os.path.dirname(path) or "."
    for candidate in (path, os.path.join(path, kind), os.path.join(path, INDEX_DIR, kind)):
        if os.path.isfile(os.path.join(candidate, HEADER_NAME)):
            header = _read_header(candidate)
            if header.get("kind") != kind:
                continue
            return candidate
    others = [os.path.join(base, other) for base in (path, os.path.join(path, INDEX_DIR))
              for other in ("code", "text") if other != kind and os.path.isfile(os.path.join(base, other, HEADER_NAME))]
    if os.path.isfile(os.path.join(path, HEADER_NAME)):
        others.append(path)
    if others:
        raise DedupIndexError(f"dedup index {path}: it holds an index of the other kind only ({others[0]}), "
                          f"no index of {kind} documents")
    raise DedupIndexError(f"dedup index {path}: no {HEADER_NAME} of {kind} documents there (looked in {path}, "
                      f"{os.path.join(path, kind)} and {os.path.join(path, INDEX_DIR, kind)})")


def _read_header(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, HEADER_NAME)
    try:
        with open(path, "rb") as handle:
            header = json.loads(handle.read())
    except OSError as exc:
        raise DedupIndexError(f"dedup index {path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DedupIndexError(f"dedup index {path}: not a JSON header, truncated or damaged ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DedupIndexError(f"dedup index {path}: not a {FORMAT} header")
    if header.get("version") != VERSION:
        raise DedupIndexError(f"dedup index {path}: format version {header.get('version')!r}, this code reads "
                              f"{VERSION}")
    for key in ("kind", "settings", "builds", "documents", "files"):
        if key not in header:
            raise DedupIndexError(f"dedup index {path}: the header has no {key!r}")
    return header


def open_index(path: str, kind: str, settings: dict[str, Any] | None = None, check_files: bool = True) -> IndexHandle:
    """Find `kind`'s index under `path` and check it whole: header, settings (when given: this run's
    `index_settings`), every data file present, of its recorded size and sha256. Any problem is an
    `DedupIndexError` naming the index and what differs; nothing has been written when it is raised."""
    folder = find_kind_folder(path, kind)
    header_path = os.path.join(folder, HEADER_NAME)
    header = _read_header(folder)
    if settings is not None:
        difference = settings_difference(header["settings"], settings)
        if difference is not None:
            raise DedupIndexError(f"dedup index {header_path} was built with other dedup settings: {difference}")
    if check_files:
        for entry in header["files"]:
            file_path = os.path.join(folder, entry["name"])
            if not os.path.isfile(file_path):
                raise DedupIndexError(f"dedup index {header_path}: its file {entry['name']} is missing")
            size = os.path.getsize(file_path)
            if size != entry["bytes"]:
                raise DedupIndexError(f"dedup index {header_path}: its file {entry['name']} has {size:,} bytes, the "
                                  f"header says {entry['bytes']:,} (truncated or replaced)")
            digest = sha256_file(file_path)
            if digest != entry["sha256"]:
                raise DedupIndexError(f"dedup index {header_path}: checksum mismatch of {entry['name']} (sha256 "
                                  f"{digest[:16]}..., the header says {entry['sha256'][:16]}...)")
    return IndexHandle(folder, header, sha256_file(header_path))


def content_build_id(name: str, identity: Any) -> str:
    """The id a run's documents get in its index when none is given: `<name>-<12 hex digits>` of the
    sha256 of `identity` (its settings and input files, as JSON). The same inputs and settings give
    the same id on any runner and in any output folder (the index and manifest stay byte-identical);
    new inputs (next week's dump) give a new one."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{name}-{digest}"


def open_indexes(paths: Iterable[str], kind: str, settings: dict[str, Any] | None,
                 build_id: str | None = None) -> list[IndexHandle]:
    """Every index of `kind` under `paths`, checked; a build id met twice (the same index passed twice,
    or an earlier build's id reused) is an error naming both."""
    handles: list[IndexHandle] = []
    seen: dict[str, str] = {}
    for path in paths:
        handle = open_index(path, kind, settings)
        for build in handle.builds:
            where = os.path.join(handle.folder, HEADER_NAME)
            if build in seen:
                raise DedupIndexError(f"dedup index {where}: build {build!r} is also in {seen[build]} (pass each "
                                  "build once; a merged index already holds the builds it was merged from)")
            if build_id is not None and build == build_id:
                raise DedupIndexError(f"dedup index {where} already holds build {build!r}: give this run another "
                                  "build id (--build-id)")
            seen[build] = where
        handles.append(handle)
    return handles


# --- data files ---------------------------------------------------------------------------------

IndexRow = tuple[str, str, str, bytes, bytes | None]
"""(build, source, doc_id, content_hash (16 bytes), sketch or None): one row of a data file."""


def _schema() -> Any:
    import pyarrow as pa

    words = pa.dictionary(pa.int32(), pa.string())
    return pa.schema([("build", words), ("source", words),
                      ("doc_id", pa.string()), ("content_hash", pa.binary(16)), ("sketch", pa.binary())])


def part_bytes(rows: Iterable[IndexRow]) -> bytes:
    """One data file: the rows sorted by (build, doc_id), zstd-compressed Parquet (deterministic for a
    given pyarrow version: no timestamps)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    ordered = sorted(rows, key=lambda r: (r[0], r[2]))
    columns: list[Any] = list(zip(*ordered, strict=True)) if ordered else [[] for _ in COLUMNS]
    arrays = [pa.array(list(columns[0]), pa.string()).dictionary_encode(),
              pa.array(list(columns[1]), pa.string()).dictionary_encode(),
              pa.array(list(columns[2]), pa.string()), pa.array(list(columns[3]), pa.binary(16)),
              pa.array(list(columns[4]), pa.binary())]
    table = pa.Table.from_arrays(arrays, schema=_schema())
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", use_dictionary=["build", "source"], write_statistics=False)
    return sink.getvalue()


def read_part(data: bytes, where: str) -> Any:
    """A data file's table (a pyarrow.Table with `COLUMNS`); an unreadable file names `where`."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise DedupIndexError(f"dedup index file {where}: not readable Parquet ({exc})") from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise DedupIndexError(f"dedup index file {where}: no column(s) {', '.join(missing)}")
    return table.select(list(COLUMNS))


def table_rows(table: Any) -> list[IndexRow]:
    columns = [table.column(c).to_pylist() for c in COLUMNS]
    return list(zip(*columns, strict=True))


def shard_of(build: str, doc_id: str, shards: int) -> int:
    import xxhash

    return xxhash.xxh64_intdigest(f"{build}\0{doc_id}".encode("utf-8", "surrogatepass")) % shards


def file_entry(name: str, data: bytes, rows: int) -> dict[str, Any]:
    return {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": rows}
