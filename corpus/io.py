"""Files through Beam `FileSystems` (local, gs://, s3://...): matching, reading, atomic writing.

Compression is chosen by extension. Reading streams in chunks and checks integrity: a truncated
`.zst` or `.gz` raises `InputFileError` naming the file and the last complete line, instead of
yielding a silently shorter file (python-zstandard's stream reader does not notice truncation).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import os
import shutil
import stat
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import zstandard

from lemur_corpus.errors import InputFileError

if TYPE_CHECKING:
    from apache_beam.io.filesystems import FileSystems as _FileSystems

CHUNK = 1 << 20


def _filesystems() -> type[_FileSystems]:
    """Beam's `FileSystems`, imported on first use: importing this module (and so every filter that
    reads a word list through it) does not load Apache Beam."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _uncompressed() -> str:
    from apache_beam.io.filesystem import CompressionTypes

    return CompressionTypes.UNCOMPRESSED


@dataclasses.dataclass(frozen=True, slots=True)
class InputFile:
    path: str
    size: int


def match_files(patterns: list[str], *, allow_empty: bool = False,
                unmatched: list[str] | None = None) -> list[InputFile]:
    """Expand globs into a sorted, de-duplicated list of files. Every pattern must match something:
    all that match nothing are named in one error; when `unmatched` is given (an optional input),
    they are appended to it instead."""
    found: dict[str, int] = {}
    missing: list[tuple[str, str]] = []
    for pattern in patterns:
        try:
            results = _filesystems().match([pattern])[0].metadata_list
        except Exception as exc:  # Beam raises BeamIOError with per-pattern details
            raise InputFileError(pattern, f"cannot list files: {exc}") from None
        files = [m for m in results if not m.path.endswith("/")]
        if not files:
            missing.append((pattern, _nothing_matched(pattern)))
        for m in files:
            found[m.path] = m.size_in_bytes
    if missing and unmatched is None:
        if len(missing) == 1:
            raise InputFileError(*missing[0])
        raise InputFileError(missing[0][0], f"{missing[0][1]}; nor do {len(missing) - 1} more: "
                                            + ", ".join(p for p, _ in missing[1:]))
    if unmatched is not None:
        unmatched.extend(p for p, _ in missing)
    inputs = [InputFile(path, size) for path, size in sorted(found.items())]
    for f in inputs:
        if "://" not in f.path and (problem := _not_a_regular_file(f.path)):
            raise InputFileError(f.path, problem)
        if f.size == 0 and not allow_empty:
            raise InputFileError(f.path, "the file is empty (0 bytes); to accept empty files set "
                                         "allow_empty_files: true in the config (--allow-empty-files for corpus "
                                         "dedup and filter)")
        if "://" not in f.path and not os.access(f.path, os.R_OK):
            raise InputFileError(f.path, "the file is not readable (permission denied)")
    return inputs


_NOT_FILES = (
    (stat.S_ISDIR, "a directory; name the files in it (e.g. DIR/*.jsonl.zst)"),
    (stat.S_ISFIFO, "a named pipe (FIFO): reading it would wait for a writer"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_a_regular_file(path: str) -> str | None:
    """Why a local path that matched cannot be an input file, or None: a directory would fail late
    in a worker, and a FIFO would block the worker forever."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    for test, what in _NOT_FILES:
        if test(mode):
            return f"not a regular file: it is {what}"
    return None


def _nothing_matched(pattern: str) -> str:
    if "://" not in pattern and os.path.islink(pattern) and not os.path.exists(pattern):
        return f"a broken symbolic link (its target {os.readlink(pattern)} does not exist)"
    return "no file matches this path or pattern"


def listing_sha256(files: list[InputFile]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.path}\t{f.size}\n".encode())
    return h.hexdigest()


def compression_of(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".zst") or lower.endswith(".zstd"):
        return "zstd"
    if lower.endswith(".gz"):
        return "gzip"
    return "none"


def _raw_chunks(path: str) -> Iterator[bytes]:
    try:
        handle = _filesystems().open(path, compression_type=_uncompressed())
    except Exception as exc:
        raise InputFileError(path, f"cannot open: {exc}") from None
    with handle:
        while True:
            try:
                chunk = handle.read(CHUNK)
            except OSError as exc:
                raise InputFileError(path, f"read error: {exc}") from None
            if not chunk:
                return
            yield chunk


def _multi_member_chunks(
    path: str, new_decompressor: Callable[[], Any], errors: type[Exception] | tuple[type[Exception], ...],
    name: str,
) -> Iterator[bytes]:
    """Decompress a stream of concatenated frames (zstd) or members (gzip), all legal, and raise
    when the last one ends early: the decompressors themselves return a shorter stream silently."""
    decomp = new_decompressor()
    open_member = False
    for chunk in _raw_chunks(path):
        data = chunk
        while data:
            try:
                out = decomp.decompress(data)
            except errors as exc:
                raise InputFileError(path, f"corrupted {name} data: {exc}") from None
            open_member = True
            if out:
                yield out
            if decomp.eof:  # this frame/member is complete; what follows starts the next one
                data = decomp.unused_data
                decomp = new_decompressor()
                open_member = False
            else:
                data = b""
    if open_member:
        raise InputFileError(path, f"truncated {name} stream (the last {name} frame is incomplete)")


def _zstd_chunks(path: str) -> Iterator[bytes]:
    dctx = zstandard.ZstdDecompressor()
    return _multi_member_chunks(path, dctx.decompressobj, zstandard.ZstdError, "zstd")


def _gzip_chunks(path: str) -> Iterator[bytes]:
    return _multi_member_chunks(path, lambda: zlib.decompressobj(zlib.MAX_WBITS | 16), zlib.error, "gzip")


def iter_chunks(path: str) -> Iterator[bytes]:
    """Decompressed bytes of a file, in chunks, with integrity checks."""
    kind = compression_of(path)
    if kind == "zstd":
        return _zstd_chunks(path)
    if kind == "gzip":
        return _gzip_chunks(path)
    return _raw_chunks(path)


def iter_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its newline) for every line of a (compressed) file.

    Only `\\n` separates records (JSON Lines); other Unicode line breaks stay inside the record.
    A truncation error names the line the file broke in.
    """
    buffer = b""
    lineno = 0
    try:
        for chunk in iter_chunks(path):
            buffer += chunk
            if b"\n" not in chunk:
                continue
            lines = buffer.split(b"\n")
            buffer = lines.pop()
            for line in lines:
                lineno += 1
                yield lineno, line
    except InputFileError as exc:
        raise InputFileError(exc.path, exc.reason, line=lineno + 1) from None
    if buffer:
        lineno += 1
        yield lineno, buffer


def read_bytes(path: str) -> bytes:
    return b"".join(iter_chunks(path))


def read_raw_bytes(path: str) -> bytes:
    """The file's bytes as stored (not decompressed): what a checksum of the file is taken over."""
    return b"".join(_raw_chunks(path))


def open_seekable(path: str) -> BinaryIO:
    """A seekable handle for formats that need random access (Parquet): local files directly."""
    if "://" not in path:
        return open(path, "rb")
    return io.BytesIO(read_bytes(path))


def open_ranged(path: str) -> BinaryIO:
    """A seekable handle that reads only what is asked for: a local file, or Beam's stream of a
    remote one (GCS, S3 and Azure streams fetch the ranges read), for files read in pieces."""
    if "://" not in path:
        return open(path, "rb")
    return _filesystems().open(path, compression_type=_uncompressed())


def join(base: str, *parts: str) -> str:
    return _filesystems().join(base, *parts)


def makedirs(path: str) -> None:
    if "://" not in path:
        os.makedirs(path, exist_ok=True)
    elif not _filesystems().exists(path):
        _filesystems().mkdirs(path)


def exists(path: str) -> bool:
    return _filesystems().exists(path)


def delete_if_present(paths: list[str]) -> None:
    """Remove the files of `paths` that exist (the project's own intermediate files; a second call
    with the same paths, from a retried bundle, does nothing)."""
    present = [path for path in paths if _filesystems().exists(path)]
    if present:
        _filesystems().delete(present)


def open_for_writing(path: str) -> BinaryIO:
    """A new file written in place, without the temporary name of `atomic_writer`: for the project's
    own intermediate files, which no reader opens before the writer is done (a remote file appears
    only when closed)."""
    if "://" not in path:
        return open(path, "wb")
    return _filesystems().create(path, compression_type=_uncompressed())


def names_in(folder: str, pattern: str) -> list[str]:
    """Names of the files directly in `folder` that match the glob `pattern` (none when it is absent)."""
    if "://" not in folder:
        import fnmatch

        if not os.path.isdir(folder):
            return []
        return sorted(name for name in os.listdir(folder) if fnmatch.fnmatchcase(name, pattern))
    matched = _filesystems().match([join(folder, pattern)])[0].metadata_list
    return sorted(m.path.rsplit("/", 1)[-1] for m in matched)


def write_atomic(path: str, data: bytes) -> None:
    """Write under a temporary name, then rename: readers never see a half-written file."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    if "://" not in path:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return
    with _filesystems().create(tmp, compression_type=_uncompressed()) as handle:
        handle.write(data)
    if _filesystems().exists(path):
        _filesystems().delete([path])
    _filesystems().rename([tmp], [path])


@contextlib.contextmanager
def atomic_writer(path: str) -> Iterator[BinaryIO]:
    """Stream a large file to a temporary name and rename it into place only on success."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    if "://" not in path:
        handle = open(tmp, "wb")
        try:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.replace(tmp, path)
        except BaseException:
            handle.close()
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    remote = _filesystems().create(tmp, compression_type=_uncompressed())
    try:
        yield remote
        remote.close()
    except BaseException:
        remote.close()
        _filesystems().delete([tmp])
        raise
    if _filesystems().exists(path):
        _filesystems().delete([path])
    _filesystems().rename([tmp], [path])


def gzip_bytes(data: bytes) -> bytes:
    # mtime=0 keeps the output byte-identical across runs.
    return gzip.compress(data, mtime=0)


def link_or_copy(source: str, path: str) -> bool:
    """Make `path` the same file as `source`: a hard link where the filesystem allows one (no bytes
    written), else a copy (across filesystems, on object stores). True when linked. Either way the new
    name appears atomically, replacing what was there."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    if "://" not in path and "://" not in source:
        try:
            os.link(source, tmp)
            linked = True
        except OSError:  # EXDEV (another filesystem), EPERM (no hard links there), ...
            shutil.copyfile(source, tmp)
            linked = False
        os.replace(tmp, path)
        return linked
    if _filesystems().exists(path):
        _filesystems().delete([path])
    _filesystems().copy([source], [path])
    return False
