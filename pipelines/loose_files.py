"""What the loose-file commands (`corpus dedup`, `corpus filter`) share.

Both read the user's JSONL / Parquet files as the one input of a build config named `INPUT_NAME`,
so every document id is `input/<id>` inside the pipeline and `original_id` outside it; a record
without an id is identified by its place (`FILE:LINE`, or `FILE#rowN` for Parquet). Without a text
field on the command line, `detect_text_field` picks the one the files use. Both write into a local
folder: `kept-NNNNN-of-MMMMM.jsonl.zst` (the kept records, as read) beside the command's own files;
`prepare_out_dir` claims the folder (`lemur_corpus.folders`): finished output is refused unless told to
overwrite, unfinished output is cleared, and files the command did not write are never touched.
A failed run ends in one `CorpusError` listing every problem (`command_failed`); whatever fails or is
interrupted, `failing_honestly` leaves `FAILED.json` and none of the partial output.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from lemur_corpus.document import Document
from lemur_corpus.errors import ConfigError, CorpusError, interrupted
from lemur_corpus.folders import Owned, claim, clear
from lemur_corpus.io import exists, iter_lines, join, open_seekable, read_bytes, write_atomic
from lemur_corpus.sources.base import missing_text_field
from lemur_corpus.sources.layouts import content_key

INPUT_NAME = "input"
"""The name of the commands' one input: the prefix of every document id in the pipeline."""
KEPT_PREFIX = "kept-"
SUMMARY_NAME = "summary.json"
FAILED_NAME = "FAILED.json"


def original_id(doc_id: str) -> str:
    """The id as the input gave it (or the record's place), without the pipeline's input prefix."""
    return doc_id.removeprefix(f"{INPUT_NAME}/")


def as_command_document(doc: Document, kind: str) -> Document:
    """The command's kind, and for records without an id their place (`FILE:LINE`) as id instead of
    a content hash, so two identical texts stay two documents (exact duplicates, not an id clash)."""
    if doc.id == f"{INPUT_NAME}/{content_key(doc.text)}":
        return doc.replace(id=f"{INPUT_NAME}/{doc.origin}", kind=kind)
    return doc.replace(kind=kind)


def kept_record(doc: Document, id_field: str, text_field: str) -> dict[str, Any]:
    """A kept record as read: every field, with the id and text under the input's own names."""
    return {**doc.meta, id_field: original_id(doc.id), text_field: doc.text}


def kept_name(index: int, count: int) -> str:
    return f"{KEPT_PREFIX}{index:05d}-of-{count:05d}.jsonl.zst"


def json_line(record: dict[str, Any]) -> bytes:
    """One JSON Lines record as the commands write them (UTF-8, keys sorted)."""
    return (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def json_lines(records: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(json_line(r) for r in records)


def detect_text_field(path: str) -> str:
    """The text field when none is given: `text` if the first record has one, else `content`
    (The Stack's name), as the generic layout chooses, so kept records keep the input's field."""
    if path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        with open_seekable(path) as handle:
            names = pq.ParquetFile(handle).schema_arrow.names
        return "text" if "text" in names or "content" not in names else "content"
    for _, line in iter_lines(path):
        if line.strip():
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                return "text"
            return "content" if isinstance(record, dict) and "text" not in record and "content" in record else "text"
    return "text"


def check_text_field(paths: Iterable[str], text_field: str) -> None:
    """Before any pipeline runs: every file's first records must hold the text field, else one error
    naming the file, the fields it does have, and the flag that picks another."""
    for path in paths:
        if problem := missing_text_field(path, (text_field,), lambda name: f"pass --text-field {name}"):
            raise ConfigError(f"{path}: {problem}")


KEPT_FILE = re.compile(rf"{re.escape(KEPT_PREFIX)}\d{{5}}-of-\d{{5}}\.jsonl\.zst")


def command_folder(command: str, names: Iterable[str]) -> Owned:
    """What a loose-file command writes in its folder: `kept-*` files, `names`, the summary (its
    finished marker) and the failure marker."""
    return Owned(command=command, finished=SUMMARY_NAME,
                 names=frozenset(names) | {SUMMARY_NAME, FAILED_NAME}, patterns=(("", KEPT_FILE),))


def prepare_out_dir(out_dir: str, command: str, names: Iterable[str], overwrite: bool) -> None:
    """Claim the local output folder (`lemur_corpus.folders.claim`): a finished output is refused
    without `overwrite`, an unfinished or failed one is cleared, files the command did not write are
    never touched (and refused without `overwrite`)."""
    if "://" in out_dir:
        raise ConfigError(f"--out {out_dir}: `corpus {command}` writes to a local folder")
    claim(out_dir, command_folder(command, names), overwrite)


@contextlib.contextmanager
def failing_honestly(out_dir: str, command: str, names: Iterable[str]) -> Iterator[None]:
    """Run the command's work; if it fails or is interrupted, leave only `FAILED.json` (the problems
    it recorded, or the error) where partial output would have looked like a result."""
    try:
        yield
    except BaseException as exc:
        errors = read_failed(out_dir) or [_describe(exc)]
        clear(out_dir, command_folder(command, names))
        write_failed(out_dir, errors)
        raise


def _describe(exc: BaseException) -> str:
    if interrupted(exc):  # Ctrl-C, also as the runner re-raises it from a worker
        return "interrupted"
    if isinstance(exc, CorpusError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def command_failed(command: str, errors: list[str]) -> CorpusError:
    """The one error a failed run raises: every problem, one per line."""
    return CorpusError(f"{command} failed:\n  " + "\n  ".join(errors))


def write_failed(out_dir: str, errors: list[str]) -> None:
    """The failure marker: `FAILED.json` listing the problems, written instead of the output."""
    write_atomic(join(out_dir, FAILED_NAME), (json.dumps({"errors": errors}, indent=2) + "\n").encode())


def read_failed(out_dir: str) -> list[str] | None:
    """The problems of the failure marker, or None when the run did not fail."""
    path = join(out_dir, FAILED_NAME)
    if not exists(path):
        return None
    errors: list[str] = json.loads(read_bytes(path))["errors"]
    return errors
