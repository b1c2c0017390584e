"""Reading files: compression integrity (truncation is an error, never a shorter file), matching."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import zstandard

from lemur_corpus.errors import InputFileError
from lemur_corpus.io import iter_lines, match_files, read_bytes
from tests.conftest import shared_path


def _real_jsonl_bytes() -> bytes:
    raw = shared_path("code", "code_sample.jsonl.zst").read_bytes()
    return zstandard.ZstdDecompressor().decompressobj().decompress(raw)


def test_zst_and_gz_read_back_exactly(tmp_path: Path) -> None:
    data = _real_jsonl_bytes()
    zst = tmp_path / "a.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(data))
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    assert read_bytes(str(zst)) == data
    assert read_bytes(str(gz)) == data
    lines = list(iter_lines(str(zst)))
    assert len(lines) == data.count(b"\n")
    assert lines[0][0] == 1 and lines[-1][0] == len(lines)


def test_concatenated_frames_and_members(tmp_path: Path) -> None:
    data = _real_jsonl_bytes()
    half = data.index(b"\n", len(data) // 2) + 1
    zst = tmp_path / "multi.jsonl.zst"
    c = zstandard.ZstdCompressor()
    zst.write_bytes(c.compress(data[:half]) + c.compress(data[half:]))
    gz = tmp_path / "multi.jsonl.gz"
    gz.write_bytes(gzip.compress(data[:half]) + gzip.compress(data[half:]))
    assert read_bytes(str(zst)) == data
    assert read_bytes(str(gz)) == data


@pytest.mark.parametrize("suffix", [".zst", ".gz"])
def test_truncated_file_raises_naming_file_and_line(tmp_path: Path, suffix: str) -> None:
    data = _real_jsonl_bytes()
    packed = zstandard.ZstdCompressor().compress(data) if suffix == ".zst" else gzip.compress(data)
    path = tmp_path / f"cut.jsonl{suffix}"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputFileError) as err:
        list(iter_lines(str(path)))
    assert err.value.path == str(path)
    assert "truncated" in err.value.reason
    assert err.value.line is not None and err.value.line > 100
    assert f"{path}, line {err.value.line}:" in str(err.value)


def test_garbage_in_compressed_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.zst"
    path.write_bytes(b"this is not zstd at all" * 10)
    with pytest.raises(InputFileError, match="corrupted zstd data"):
        list(iter_lines(str(path)))


def test_match_files_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no file matches"):
        match_files([str(tmp_path / "*.jsonl")])
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="the file is empty"):
        match_files([str(empty)])
    assert [f.size for f in match_files([str(empty)], allow_empty=True)] == [0]


def test_match_files_sorted_and_deduplicated(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.jsonl", "c.jsonl"):
        (tmp_path / name).write_text('{"text": "x"}\n')
    found = match_files([str(tmp_path / "*.jsonl"), str(tmp_path / "a.jsonl")])
    assert [Path(f.path).name for f in found] == ["a.jsonl", "b.jsonl", "c.jsonl"]
