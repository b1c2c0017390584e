"""JSON Lines (plain, .gz, .zst) and Parquet files in any of the record layouts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow.parquet as pq

from lemur_corpus.accounting import Drop
from lemur_corpus.config import BuildConfig, FieldMap, InputConfig
from lemur_corpus.document import Document
from lemur_corpus.errors import InputFileError
from lemur_corpus.io import iter_lines, open_seekable
from lemur_corpus.sources.base import ReadTask, make_document, problem_drop
from lemur_corpus.sources.layouts import LAYOUTS, RecordParts, RecordProblem


def _layout(inp: InputConfig) -> Callable[[dict[str, Any], FieldMap], RecordParts | RecordProblem]:
    if inp.format == "hf" and inp.hf is not None:
        return LAYOUTS[inp.hf.layout]
    return LAYOUTS[inp.format if inp.format in LAYOUTS else "jsonl"]


def record_to_item(
    record: Any, inp: InputConfig, config: BuildConfig, origin: str, nbytes: int
) -> Document | Drop:
    if not isinstance(record, dict):
        return problem_drop(
            inp, RecordProblem("not_an_object", f"a JSON {type(record).__name__}, expected an object"),
            origin, nbytes,
        )
    parts = _layout(inp)(record, inp.fields)
    if isinstance(parts, RecordProblem):
        return problem_drop(inp, parts, origin, nbytes)
    return make_document(inp, config, parts, origin)


def read_jsonl(task: ReadTask, inp: InputConfig, config: BuildConfig) -> Iterator[Document | Drop]:
    limit = inp.limit_per_file
    count = 0
    for lineno, raw in iter_lines(task.path):
        if limit is not None and count >= limit:
            return
        origin = f"{task.path}:{lineno}"
        if not raw.strip():
            continue  # blank lines separate nothing in JSON Lines; they are not records
        count += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield problem_drop(
                inp, RecordProblem("invalid_utf8", f"byte {exc.start}: {exc.reason}"), origin, len(raw)
            )
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            yield problem_drop(inp, RecordProblem("bad_json", detail), origin, len(raw))
            continue
        yield record_to_item(record, inp, config, origin, len(raw))


def read_parquet(task: ReadTask, inp: InputConfig, config: BuildConfig) -> Iterator[Document | Drop]:
    limit = inp.limit_per_file
    row = 0
    try:
        handle = open_seekable(task.path)
        parquet = pq.ParquetFile(handle)
    except Exception as exc:
        raise InputFileError(task.path, f"not a readable Parquet file: {exc}") from None
    with handle:
        try:
            for batch in parquet.iter_batches(batch_size=512):
                for record in batch.to_pylist():
                    if limit is not None and row >= limit:
                        return
                    row += 1
                    nbytes = sum(len(v) for v in record.values() if isinstance(v, str))
                    yield record_to_item(record, inp, config, f"{task.path}#row{row}", nbytes)
        except InputFileError:
            raise
        except Exception as exc:
            raise InputFileError(task.path, f"corrupted Parquet data after row {row}: {exc}") from None
