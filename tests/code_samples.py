"""Real code as filter-ready Documents, for the code-filter tests and benchmarks (test fixtures,
not part of the package: `benchmarks/code_filters_speed.py` imports them as `tests.code_samples`).

Two sources: a The Stack-layout file (the shared sample `code/code_sample.jsonl.zst`) read through
the same layout, bucketing and normalization as `corpus build`, and the Python standard library of
the running interpreter (real, hand-written code on every machine). Both are deterministic.
"""

from __future__ import annotations

import os
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import xxhash

from lemur_corpus.buckets import CodeBucketsConfig, bucket_of, language_of
from lemur_corpus.config import FieldMap
from lemur_corpus.document import Document
from lemur_corpus.normalize import normalize_document
from lemur_corpus.sources.layouts import RecordParts, stack
from tests.conftest import read_jsonl


def code_document(parts: RecordParts, input_name: str, buckets: CodeBucketsConfig) -> Document:
    """A code Document as the read stage makes it (language from `lang` or extension, bucket)."""
    lang = language_of(parts.lang, parts.path, buckets)
    return Document(id=f"{input_name}/{parts.key}", source=bucket_of(lang, buckets), kind="code",
                    text=parts.text, lang=lang, meta=parts.meta, origin=input_name)


def stack_documents(path: Path | str, buckets: CodeBucketsConfig | None = None) -> list[Document]:
    """The records of a The Stack-layout file as normalized Documents, in file order. Records that
    normalization drops (empty, invalid notebooks) are left out."""
    buckets = buckets or CodeBucketsConfig()
    docs = []
    for record in read_jsonl(path):
        parts = stack(record, FieldMap())
        assert isinstance(parts, RecordParts)
        doc = normalize_document(code_document(parts, "sample", buckets))
        if isinstance(doc, Document):
            docs.append(doc)
    return docs


def stdlib_files(every: int = 1) -> list[Path]:
    """The standard library's .py files (site-packages excluded), sorted; with `every` > 1, a
    deterministic 1-in-`every` sample chosen by a hash of the relative path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "dist-packages", "__pycache__"))
        for name in sorted(files):
            if name.endswith(".py"):
                found.append(Path(folder, name))
    if every > 1:
        found = [p for p in found if xxhash.xxh64_intdigest(str(p.relative_to(root)).encode()) % every == 0]
    return found


def stdlib_documents(every: int = 1, buckets: CodeBucketsConfig | None = None) -> Iterator[Document]:
    """Standard-library modules as normalized Documents (undecodable files are skipped: a handful of
    test fixtures are deliberately not UTF-8)."""
    buckets = buckets or CodeBucketsConfig()
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in stdlib_files(every):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel = str(path.relative_to(root))
        parts = RecordParts(rel, text, "", {"path": rel}, rel)
        doc = normalize_document(code_document(parts, "stdlib", buckets))
        if isinstance(doc, Document):
            yield doc


# ---- deliberately broken copies, for the syntax filter's tests and measurements -------------------

_BLOCK_OPENERS: dict[str, re.Pattern[str]] = {
    "Python": re.compile(r":\s*(#.*)?$"),
    "Shell": re.compile(r"(\bthen|\bdo|\{)\s*$"),
    "Ruby": re.compile(r"(\bdo(\s*\|[^|]*\|)?|\{|\bthen)\s*$"),
}
_BRACE_OPENER = re.compile(r"[{(\[]\s*$")


def truncate_in_open_block(text: str, language: str) -> str | None:
    """The file cut just after the first line, past its middle, that opens a block (`{`, `(`, `[`,
    Python's `:`, shell's `then`/`do`): what a truncated download or a file cut at a size limit looks
    like when the cut falls inside a construct. None when no such line follows the middle."""
    opener = _BLOCK_OPENERS.get(language, _BRACE_OPENER)
    half = len(text) // 2
    position = 0
    lines = text.split("\n")
    for index, line in enumerate(lines):
        position += len(line) + 1
        if position >= half and opener.search(line):
            return "\n".join(lines[: index + 1]) + "\n"
    return None


def truncate_mid_byte(text: str) -> str:
    """The file cut at its middle character, wherever that falls (often mid-line)."""
    return text[: len(text) // 2]
