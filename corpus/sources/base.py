"""What every source reader shares: the read task, and how records become Documents and Drops.

A `ReadTask` is the unit of parallel reading: the driver plans them, workers turn them into Documents.
This module imports no reader; `lemur_corpus.sources.registry` maps format and container names to the
reader modules and holds `plan_input` / `read_task`, which dispatch through it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from lemur_corpus.accounting import READ, Drop
from lemur_corpus.buckets import bucket_of, language_of
from lemur_corpus.config import BuildConfig, InputConfig
from lemur_corpus.document import Document, utf8_len
from lemur_corpus.errors import ConfigError
from lemur_corpus.io import InputFile, match_files
from lemur_corpus.sources.layouts import RecordParts, RecordProblem

Container = Literal["jsonl", "parquet", "warc", "hf", "local_env"]
"""What a task reads, which picks the reader (`registry.READERS`): a file's type, or a whole source."""


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
    """The planner of every file format: one task per file its globs match (a glob matching nothing is
    an error naming it), the container told by the file's name."""
    files = match_files(inp.paths, allow_empty=config.allow_empty_files)
    tasks = [
        ReadTask(inp.name, container_of(f.path, inp.format), path=f.path, size=f.size) for f in files
    ]
    return tasks, files


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
