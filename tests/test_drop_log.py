"""The drop log's writer: each part's records sorted and streamed to its compressor, the parts fixed
before the run so that drops go to the grouping as soon as each stage makes them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import apache_beam as beam
import pytest
import zstandard
from apache_beam.testing.util import assert_that

from lemur_corpus.accounting import Drop
from lemur_corpus.io import iter_lines
from lemur_corpus.pipelines.shard import (
    DROP_LOG_RECORDS_PER_FILE,
    WriteDropLog,
    WriteDropLogFn,
    drop_log_parts,
    drop_order,
    jsonl_chunks,
)


def drops(count: int) -> list[Drop]:
    """Drops of every stage, with the fields a real log has (a long detail, non-ASCII, dedup twins)."""
    out = []
    for i in range(count):
        stage = ("normalize", "filter", "dedup")[i % 3]
        reason = ("empty_text", "gopher_quality", "near_duplicate")[i % 3]
        out.append(Drop(stage, ("stack", "refinedweb")[i % 2], reason,
                        100 + i, f"doc-{(i * 7919) % count:06d}", f"part-{i % 5}.jsonl.zst:{i + 1}",
                        json.dumps({"mean_word_length": i / 7, "note": "é漢字" * (i % 4)}) if stage == "filter" else "",
                        f"doc-{i // 3:06d}" if stage == "dedup" else "", 0.9 if stage == "dedup" else None))
    return out


def lines_of(path: Path) -> list[str]:
    return [line.decode("utf-8") for _, line in iter_lines(str(path))]


def test_a_part_is_its_records_sorted_one_line_each_and_its_record_describes_the_file(tmp_path: Path) -> None:
    logged = drops(2_000)
    record = WriteDropLogFn(str(tmp_path))._write(3, list(reversed(logged)), 7)
    path = tmp_path / record["path"]
    assert record["path"] == "drops/drops-00003-of-00007.jsonl.zst" and record["records"] == 2_000
    blob = path.read_bytes()
    assert record["bytes"] == len(blob) and record["sha256"] == hashlib.sha256(blob).hexdigest()
    expected = [json.dumps(d.to_dict(), ensure_ascii=False, sort_keys=True) for d in sorted(logged, key=drop_order)]
    assert lines_of(path) == expected
    # the frame names its size, so a streaming reader and a one-shot one (`decompress`) both read it
    text = "\n".join(expected) + "\n"
    assert zstandard.ZstdDecompressor().stream_reader(blob).read().decode("utf-8") == text
    assert zstandard.ZstdDecompressor().decompress(blob).decode("utf-8") == text
    # within one chunk, the bytes one-shot compression gives (the drop files of earlier builds)
    assert blob == zstandard.ZstdCompressor(level=10).compress(text.encode("utf-8"))
    assert not list(tmp_path.joinpath("drops").glob("*.tmp-*"))  # written under a temporary name, renamed


@pytest.mark.parametrize("chunk_bytes", [1, 100, 1 << 20])
def test_lines_go_to_the_compressor_in_whole_lines_of_about_the_chunk_size(chunk_bytes: int) -> None:
    logged = drops(300)
    chunks = list(jsonl_chunks(logged, chunk_bytes))
    whole = "".join(json.dumps(d.to_dict(), ensure_ascii=False, sort_keys=True) + "\n" for d in logged)
    assert b"".join(chunks).decode("utf-8") == whole
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    longest = max(len(json.dumps(d.to_dict(), ensure_ascii=False, sort_keys=True).encode()) + 1 for d in logged)
    assert all(len(chunk) < chunk_bytes + longest for chunk in chunks)
    if chunk_bytes == 1:
        assert len(chunks) == len(logged)  # a line at a time
    if chunk_bytes == 1 << 20:
        assert len(chunks) == 1  # the whole part in one piece
    assert list(jsonl_chunks([], chunk_bytes)) == []


def test_parts_follow_the_planned_documents_not_the_drops() -> None:
    assert drop_log_parts(0, 4) == 4
    assert drop_log_parts(3 * DROP_LOG_RECORDS_PER_FILE, 4) == 4
    assert drop_log_parts(10 * DROP_LOG_RECORDS_PER_FILE, 4) == 10
    assert drop_log_parts(10 * DROP_LOG_RECORDS_PER_FILE + 1, 4) == 11


def test_each_stages_drops_are_keyed_on_their_own_without_waiting_for_a_count(tmp_path: Path) -> None:
    """A drop's part needs nothing but the drop: no side input (a count of every stage's drops kept
    each stage's drops in the workers' memory until the last stage's were made), and no Flatten
    before the key (a Flatten's partition waits for every stage's)."""
    logged = drops(500)
    with beam.Pipeline() as p:
        file_errors = p | "NoErrors" >> beam.Create([])
        stages = (p | "Filter" >> beam.Create(logged[:200]), p | "Dedup" >> beam.Create(logged[200:]))
        records = stages | "WriteDropLog" >> WriteDropLog(str(tmp_path), 3, file_errors)
        written = records | beam.combiners.ToList()

        def check(values: list[list[dict]]) -> None:
            (files,) = values
            assert sorted(f["path"] for f in files) == [f"drops/drops-{k:05d}-of-00003.jsonl.zst" for k in range(3)]
            assert sum(f["records"] for f in files) == 500

        assert_that(written, check)
    writer = next(t for t in p.transforms_stack[0].parts if t.full_label == "WriteDropLog")
    keys = [t for t in writer.parts if t.full_label.startswith("WriteDropLog/Key")]
    assert [t.full_label for t in keys] == ["WriteDropLog/Key0", "WriteDropLog/Key1", "WriteDropLog/KeyAll"]
    assert not any(t.side_inputs for t in keys)  # each stage's drops keyed on their own, then flattened
    logged_lines = [line for path in sorted(tmp_path.glob("drops/*.jsonl.zst")) for line in lines_of(path)]
    assert sorted(logged_lines) == sorted(json.dumps(d.to_dict(), ensure_ascii=False, sort_keys=True) for d in logged)
