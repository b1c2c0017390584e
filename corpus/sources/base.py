"""What every source reader shares: the read task, and how records become Documents and Drops.

A `ReadTask` is the unit of parallel reading: the driver plans them, workers turn them into Documents.
This module imports no reader; `lemur_corpus.sources.registry` maps format and container names to the
reader modules and holds `plan_input` / `read_task`, which dispatch through it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from typing import Literal

from lemur_corpus.accounting import READ, Drop
from lemur_corpus.buckets import bucket_of, language_of
from lemur_corpus.config import BuildConfig, InputConfig
from lemur_corpus.document import Document, utf8_len
from lemur_corpus.errors import ConfigError, InputFileError
from lemur_corpus.io import InputFile, iter_lines, match_files, open_seekable
from lemur_corpus.sources.layouts import RecordParts, RecordProblem, text_fields_of

Container = Literal["jsonl", "parquet", "warc", "hf", "local_env"]
"""What a task reads, which picks the reader (`registry.READERS`): a file's type, or a whole source."""


log = logging.getLogger("corpus")


@dataclasses.dataclass(frozen=True, slots=True)
class ReadTask:
    input_name: str
    container: Container
    path: str = ""
    size: int = 0
    part: int = 0
    parts: int = 1
    files: tuple[tuple[str, str, str], ...] = ()
    """`local_env`: (kind, absolute path, id key) of each file of the batch."""

    @property
    def label(self) -> str:
        if self.container == "hf":
            return f"{self.path} (shard {self.part + 1}/{self.parts})"
        if self.container == "local_env":
            return f"local environment batch {self.part + 1}/{self.parts}"
        return self.path


def container_of(path: str, fmt: str) -> Container:
    lower = path.lower()
    for suffix in (".zst", ".zstd", ".gz"):
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
    if fmt == "warc" or lower.endswith((".warc", ".wet", ".arc")):
        return "warc"
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise ConfigError(
        f"{path}: cannot tell the file type from its name; expected .jsonl[.gz|.zst], .parquet "
        "or .warc[.gz]"
    )


def plan_files(inp: InputConfig, config: BuildConfig) -> tuple[list[ReadTask], list[InputFile]]:
    """The planner of every file format: one task per file its globs match, the container told by
    the file's name. Globs matching nothing are one error naming them all, or, for an `optional`
    input, one warning (the input reads what is there). Every file's first records (a Parquet
    file's schema) are checked for the text field its layout needs: a file without it is an error
    naming the fields it has, before any worker starts, not a silent drop of every row."""
    unmatched: list[str] | None = [] if inp.optional else None
    files = match_files(inp.paths, allow_empty=config.allow_empty_files, unmatched=unmatched)
    if unmatched:
        log.warning("input %s (optional): nothing matches %s", inp.name, ", ".join(unmatched))
    for f in files:
        check_text_field(inp, f.path)
    tasks = [
        ReadTask(inp.name, container_of(f.path, inp.format), path=f.path, size=f.size) for f in files
    ]
    return tasks, files


BYTES_PER_PLANNED_DOCUMENT = 1_000
"""Input bytes per document when the driver plans sizes before reading (`planned_documents`). For
every compressed real input in ../shared/data, bytes / 1,000 is its documents within a factor of 3
either way (tests/test_sources.py checks it; the low side a file of near-duplicates, which compress
into each other). A step sized from it is as much smaller or larger than its target; what the build
keeps does not depend on it (the drop log's split into files does, as the same inputs plan the same)."""
UNSIZED_TASK_DOCUMENTS = 100_000
"""Documents assumed for a task whose size the driver cannot know (a streamed Hugging Face shard,
typically one Parquet file of 10^4-10^6 rows)."""


def planned_documents(tasks: Sequence[ReadTask], inputs: Sequence[InputConfig]) -> dict[str, int]:
    """An estimate, made before anything is read, of the documents each kind's read tasks hold: a file's
    bytes / `BYTES_PER_PLANNED_DOCUMENT`, `UNSIZED_TASK_DOCUMENTS` for a task of unknown size, at most
    `limit_per_file` per task, one per file of a local-environment batch. It sizes work (dedup's
    bucket groups, the drop log's files), never decides what a document becomes: every shard and
    every drop is the same whatever it says."""
    by_name = {inp.name: inp for inp in inputs}
    planned: dict[str, int] = {}
    for task in tasks:
        inp = by_name[task.input_name]
        if task.container == "local_env":
            for kind, _, _ in task.files:
                planned[kind] = planned.get(kind, 0) + 1
            continue
        if task.container == "hf" and not task.size:  # a streamed dataset: no size before it is read
            documents = UNSIZED_TASK_DOCUMENTS
        else:  # a file's bytes (0: an empty file, allowed by allow_empty_files)
            documents = -(-task.size // BYTES_PER_PLANNED_DOCUMENT)
        if inp.limit_per_file is not None:
            documents = min(documents, inp.limit_per_file)
        assert inp.kind is not None  # every input but local_env names its kind (InputConfig)
        planned[inp.kind] = planned.get(inp.kind, 0) + documents
    return planned


FIELD_SAMPLE = 100
"""Records whose fields are looked at before the run (a Parquet file: its schema)."""
TEXT_FIELD_NAMES = ("text", "content", "body", "raw_content", "code", "document", "contents")


def first_fields(path: str, sample: int = FIELD_SAMPLE) -> list[str] | None:
    """The field names of a file's first `sample` records in first-seen order (a Parquet file: every
    column, read from its footer); None when none of them parses (the read stage names those lines).
    A file that cannot be opened or decompressed raises `InputFileError` naming it."""
    if container_of(path, "jsonl") == "parquet":
        import pyarrow.parquet as pq

        try:
            with open_seekable(path) as handle:
                return list(pq.ParquetFile(handle).schema_arrow.names)
        except InputFileError:
            raise
        except Exception as exc:  # a cut or foreign file: pyarrow says why
            raise InputFileError(path, f"not a readable Parquet file: {exc}") from None
    names: dict[str, None] = {}
    parsed = 0
    for _, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # the read stage names the line (bad_json)
            continue
        if isinstance(record, dict):
            names.update(dict.fromkeys(record))
            parsed += 1
        if parsed >= sample:
            break
    return list(names) if parsed else None


def missing_text_field(path: str, wanted: Sequence[str], fix: Callable[[str], str]) -> str | None:
    """Why a file cannot feed its input (none of its first records has any of the `wanted` text
    fields), naming the fields it does have and the setting that picks another; None when it can."""
    fields = first_fields(path)
    if fields is None or any(name in fields for name in wanted):
        return None
    shown = ", ".join(fields[:12]) + (", ..." if len(fields) > 12 else "")
    candidates = [name for name in fields if name in TEXT_FIELD_NAMES]
    expected = " or ".join(repr(w) for w in wanted)
    suggestion = fix(candidates[0] if candidates else "NAME")
    return f"no record has the text field {expected} (its fields: {shown}); {suggestion}"


def check_text_field(inp: InputConfig, path: str) -> None:
    """`missing_text_field` for an input of the build: an `InputFileError` naming the file."""
    if container_of(path, inp.format) == "warc":
        return
    wanted = text_fields_of(inp.format, inp.fields)
    if problem := missing_text_field(path, wanted, lambda name: f"set inputs.{inp.name}.fields.text to {name}"):
        raise InputFileError(path, problem)


def make_document(
    inp: InputConfig, config: BuildConfig, parts: RecordParts, origin: str, kind: str | None = None
) -> Document:
    kind = kind or inp.kind or "text"
    meta = parts.meta
    if kind == "code":
        lang = language_of(parts.lang, parts.path, config.code_buckets)
        source = inp.source or bucket_of(lang, config.code_buckets)
        if parts.path and not meta.get("path"):  # code filters read the path from meta["path"]
            meta = {**meta, "path": parts.path}
    else:
        lang = parts.lang
        source = inp.source or inp.text_source or ""
    return Document(
        id=f"{inp.name}/{parts.key}",
        source=source,
        kind=kind,
        text=parts.text,
        lang=lang,
        meta=meta,
        origin=origin,
    )


def problem_drop(inp: InputConfig, problem: RecordProblem, origin: str, nbytes: int) -> Drop:
    return Drop(READ, inp.name, problem.reason, nbytes, origin=origin, detail=problem.detail)


def text_nbytes(text: str) -> int:
    return utf8_len(text)
