"""Read tasks: the unit of parallel reading. The driver plans them, workers turn them into Documents.

`plan_input` runs on the driver before any data is read: it expands globs (a pattern that matches
nothing is an error naming it), checks files are non-empty and readable, and cuts the input into tasks
(one per file; one per Hugging Face shard; batches of files for the local environment).
`read_task` runs on a worker and yields `Document`s and `Drop`s (bad records, with file and line);
a file that cannot be read at all raises `InputFileError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from corpus.accounting import READ, Drop
from corpus.buckets import bucket_of, language_of
from corpus.config import BuildConfig, InputConfig
from corpus.document import Document, utf8_len
from corpus.errors import ConfigError
from corpus.io import InputFile, match_files
from corpus.sources.layouts import RecordParts, RecordProblem


@dataclasses.dataclass(frozen=True, slots=True)
class ReadTask:
    input_name: str
    container: str
    """`jsonl`, `parquet`, `warc`, `hf` or `local_env`."""
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


def container_of(path: str, fmt: str) -> str:
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


def plan_input(inp: InputConfig, config: BuildConfig) -> tuple[list[ReadTask], list[InputFile]]:
    """The read tasks of one input and the files it will read (for the manifest)."""
    if inp.format == "local_env":
        from corpus.sources.local_env import plan_local_env

        return plan_local_env(inp, config)
    if inp.format == "hf":
        from corpus.sources.hf import plan_hf

        return plan_hf(inp)
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


def read_task(task: ReadTask, config: BuildConfig) -> Iterator[Document | Drop]:
    inp = next(i for i in config.inputs if i.name == task.input_name)
    if task.container == "jsonl":
        from corpus.sources.files import read_jsonl

        yield from read_jsonl(task, inp, config)
    elif task.container == "parquet":
        from corpus.sources.files import read_parquet

        yield from read_parquet(task, inp, config)
    elif task.container == "warc":
        from corpus.sources.warc import read_warc

        yield from read_warc(task, inp, config)
    elif task.container == "hf":
        from corpus.sources.hf import read_hf

        yield from read_hf(task, inp, config)
    elif task.container == "local_env":
        from corpus.sources.local_env import read_local_env

        yield from read_local_env(task, inp, config)
    else:  # pragma: no cover - plan_input only makes the containers above
        raise ValueError(f"unknown container {task.container!r}")


def text_nbytes(text: str) -> int:
    return utf8_len(text)
