"""Adversarial content: every regular expression and parser that reads input stays linear-time, nothing
from input is evaluated or unpickled, and tree-sitter parses are bounded.

Regular expressions, all of them (every module of corpus/, filters/ and pipelines/), checked by their
structure, never by a stopwatch:
- no unbounded repeat nested in another repeat (exponential backtracking; the check is the one of
  tests/test_text_filters_adversarial.py, applied to the whole code base here);
- no *quadratic search*: an unanchored pattern whose match can start at every character of a run
  that its first unbounded repeat then scans to the end, and fail after it. `re.search(r"\\s+AND\\s+",
  " " * 20_000)` tries 20,000 starts of 20,000 steps each: the license filter's SPDX parser took 9 s
  on 20,000 spaces of a license field (it now splits tokens). RE2 patterns are linear by construction.
Parsers (JSON records, notebooks, SPDX expressions, shingles) are run on pathological inputs of
size n and 8n and the Python lines they execute are counted: linear work is about 8x.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from lemur_corpus.document import Document
from tests.codebase import module_files
from tests.conftest import executed_lines
from tests.test_text_filters_adversarial import nested_unbounded_repeats, sre_constants, sre_parse

REPO = Path(__file__).resolve().parents[1]
PROBE = [chr(c) for c in range(128)] + ["\u00a0", "\u00e9", "\u4e2d", "\u2028"]
"""The characters a pattern item's set is evaluated on."""
CATEGORIES = {
    sre_constants.CATEGORY_DIGIT: r"\d", sre_constants.CATEGORY_NOT_DIGIT: r"\D",
    sre_constants.CATEGORY_SPACE: r"\s", sre_constants.CATEGORY_NOT_SPACE: r"\S",
    sre_constants.CATEGORY_WORD: r"\w", sre_constants.CATEGORY_NOT_WORD: r"\W",
}
REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT)


def _modules() -> list[Any]:
    return [importlib.import_module(name) for name in module_files()]


def _patterns_in(value: Any, depth: int = 0) -> Iterable[re.Pattern]:
    if isinstance(value, re.Pattern):
        yield value
    elif depth < 3 and isinstance(value, (tuple, list, frozenset, set)):
        for item in value:
            yield from _patterns_in(item, depth + 1)
    elif depth < 3 and isinstance(value, dict):
        for item in value.values():
            yield from _patterns_in(item, depth + 1)


def code_patterns() -> list[tuple[str, re.Pattern]]:
    """Every `re` pattern a module of the code base holds at module level (alone or in containers),
    named `module.variable`."""
    found: dict[tuple[str, int, str], tuple[str, re.Pattern]] = {}
    for module in _modules():
        for name, value in vars(module).items():
            for pattern in _patterns_in(value):
                found.setdefault((pattern.pattern, pattern.flags, name), (f"{module.__name__}.{name}", pattern))
    return sorted(found.values(), key=lambda item: item[0])


ONE_START = frozenset({"match", "fullmatch"})
"""Methods that try a pattern at one position only: no quadratic search whatever its shape."""


@functools.cache
def _trees() -> list[ast.AST]:
    return [ast.parse(path.read_text(encoding="utf-8")) for path in module_files().values()]


@functools.cache
def _method_uses() -> dict[str, frozenset[str]]:
    """name -> the methods the code base calls on a variable of that name (`_URL_SCHEME.match(s)`
    -> {"match"}), over every module (names are not resolved: a private name reused elsewhere only
    adds uses); any other use (passed on, returned, iterated) counts as "search"."""
    uses: dict[str, set[str]] = {}
    for tree in _trees():
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                parent = parents.get(node)
                call = parents.get(parent) if isinstance(parent, ast.Attribute) else None
                method = parent.attr if isinstance(call, ast.Call) and call.func is parent else "search"
                uses.setdefault(node.id, set()).add(method)
    return {name: frozenset(methods) for name, methods in uses.items()}


def inline_patterns() -> list[tuple[str, str, str]]:
    """(where, pattern, function) of patterns written inline in `re.<function>("...")` calls
    (module-level compiled ones are `code_patterns`)."""
    found = []
    for path in module_files().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                    and node.func.attr in ("search", "match", "fullmatch", "sub", "subn", "findall",
                                           "finditer", "split")
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, (str, bytes))):
                source = node.args[0].value
                text = source.decode("latin-1") if isinstance(source, bytes) else source
                found.append((f"{path.relative_to(REPO)}:{node.lineno}", text, node.func.attr))
    return found


def _charset(op: Any, arg: Any, ignore_case: bool) -> set[str] | None:
    """The probe characters one single-character item matches; None for anything else."""
    def member(c: str) -> bool:
        if op == sre_constants.LITERAL:
            return c == chr(arg) or (ignore_case and c.lower() == chr(arg).lower())
        if op == sre_constants.NOT_LITERAL:
            return c != chr(arg)
        if op == sre_constants.ANY:
            return c != "\n"
        if op == sre_constants.IN:
            negate = arg and arg[0][0] == sre_constants.NEGATE
            hit = False
            for sub_op, sub_arg in arg:
                if sub_op == sre_constants.LITERAL:
                    hit |= c == chr(sub_arg) or (ignore_case and c.lower() == chr(sub_arg).lower())
                elif sub_op == sre_constants.RANGE:
                    hit |= sub_arg[0] <= ord(c) <= sub_arg[1]
                elif sub_op == sre_constants.CATEGORY:
                    hit |= bool(re.fullmatch(CATEGORIES.get(sub_arg, r"(?!)"), c))
            return hit != bool(negate)
        return False

    if op not in (sre_constants.LITERAL, sre_constants.NOT_LITERAL, sre_constants.ANY, sre_constants.IN):
        return None
    return {c for c in PROBE if member(c)}


def _flatten(items: list) -> list:
    """A top-level sequence with plain groups opened up (they do not change what is matched)."""
    out = []
    for op, arg in items:
        if op == sre_constants.SUBPATTERN:
            out += _flatten(list(arg[-1]))
        else:
            out.append((op, arg))
    return out


def _can_fail(op: Any, arg: Any) -> bool:
    """Whether an item after the repeat can make an attempt fail (anything but an optional part)."""
    if op in REPEATS:
        return arg[0] > 0
    return op != sre_constants.AT or arg not in (sre_constants.AT_BOUNDARY, sre_constants.AT_NON_BOUNDARY)


def quadratic_search_risks(items: list, flags: int) -> list[str]:
    """Descriptions of the leading-run shape (see the module docstring) in one sequence; `flags`
    are the pattern's (inline ones included: `sre_parse` leaves `^` as AT_BEGINNING either way)."""
    items = _flatten(items)
    ignore_case = bool(flags & re.IGNORECASE)
    if items and items[0][0] == sre_constants.BRANCH:
        return [r for branch in items[0][1][1] for r in quadratic_search_risks(list(branch) + items[1:], flags)]
    prefix: list[set[str]] = []
    for index, (op, arg) in enumerate(items):
        if op == sre_constants.AT:
            if arg == sre_constants.AT_BEGINNING_STRING or (arg == sre_constants.AT_BEGINNING and not flags & re.M):
                return []  # tried at one position only
            if arg == sre_constants.AT_BEGINNING:
                prefix.append({"\n"})  # multiline: tried after each newline
            continue
        if op in REPEATS:
            low, high, body = arg
            body = _flatten(list(body))
            charset = _charset(*body[0], ignore_case) if len(body) == 1 else None
            if charset is None:
                return []
            if high == sre_constants.MAXREPEAT:
                if all(p & charset for p in prefix) and any(_can_fail(*rest) for rest in items[index + 1:]):
                    return [f"an unbounded repeat at item {index} rescans a run from every start"]
                return []
            if low == 0:
                continue  # optional: starts need not match it
            prefix.append(charset)
            continue
        charset = _charset(op, arg, ignore_case)
        if charset is None:
            return []
        prefix.append(charset)
    return []


def _parse(pattern: str | bytes, flags: int) -> Any:
    text = pattern.decode("latin-1") if isinstance(pattern, bytes) else pattern
    return sre_parse.parse(text, flags & ~re.ASCII if isinstance(pattern, bytes) else flags)


def _risks(pattern: str | bytes, flags: int) -> tuple[list[str], list[str]]:
    """(exponential, quadratic) problems of one pattern."""
    parsed = _parse(pattern, flags)
    return nested_unbounded_repeats(parsed), quadratic_search_risks(list(parsed), flags | parsed.state.flags)


def test_the_quadratic_search_check_catches_what_it_should() -> None:
    for bad in (r"\s+AND\s+", r"\d+x", r"[A-Z_][A-Z0-9_]{2,}X", r"(?m)^\s*x", r"\s+$", r"(?:a|b\w+;)",
                r"(?i)x+Y"):
        assert _risks(bad, 0)[1], bad
    for fine in (r"\w+", r"generated from \S+ by antlr", r"^\s*x", r"(?m)^[ \t]*x", r"x\d+y", r"\w+\s*",
                 r"[^\x00-\x7f]+", r"\s"):
        assert _risks(fine, 0) == ([], []), fine


def test_the_code_base_has_patterns_to_check() -> None:
    names = {name for name, _ in code_patterns()}
    assert {"lemur_corpus.normalize._SURROGATE", "lemur_corpus.dedup.shingles._SPACE",
            "lemur_corpus.filters.code.syntax.MACRO_LINE", "lemur_corpus.filters.text.c4.CITATION"} <= names
    assert len(inline_patterns()) >= 1


@pytest.mark.parametrize("name,pattern", code_patterns(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_pattern_backtracks_exponentially_or_searches_quadratically(name: str, pattern: re.Pattern) -> None:
    exponential, quadratic = _risks(pattern.pattern, pattern.flags)
    assert exponential == [], name
    if _method_uses().get(name.rsplit(".", 1)[1], frozenset({"search"})) - ONE_START:  # searched, not only matched
        assert quadratic == [], name


@pytest.mark.parametrize("where,pattern,function", inline_patterns(), ids=lambda v: v if ".py:" in v else "")
def test_inline_patterns_are_safe_too(where: str, pattern: str, function: str) -> None:
    exponential, quadratic = _risks(pattern, 0)
    assert exponential == [], where
    assert function in ONE_START or quadratic == [], where


# ---------------------------------------------------------------------------------------------
# Parsers on pathological input: counted work


def _license_case(n: int) -> Callable[[], object]:
    from lemur_corpus.filters.code.license import expression_allowed

    return lambda: expression_allowed("MIT" + " " * n + "x" + " AND" * n, frozenset({"mit"}))


def _shingles_case(n: int) -> Callable[[], object]:
    from lemur_corpus.dedup.shingles import shingles

    return lambda: [shingles(text, kind, 5, 100_000) for kind in ("words", "code")
                    for text in ("(" * n, "a " * n, "\u00e9" * n, "x" + " " * n + "y")]


def _record_case(n: int) -> Callable[[], object]:
    from lemur_corpus.config import parse_config
    from lemur_corpus.sources.files import record_to_item

    config = parse_config({"inputs": [{"name": "w", "format": "jsonl", "kind": "text", "source": "refinedweb",
                                       "paths": ["x.jsonl"]}],
                           "mixture": {"sources": {"refinedweb": {"kind": "text", "weight": 100}}}})
    records = [{"text": "a" * n, "id": "i" * n, "meta": {f"k{i}": i for i in range(n)}},
               {"text": "x", "nested": [[[]]] * n}]
    return lambda: [record_to_item(r, config.inputs[0], config, "x.jsonl:1", n) for r in records]


def _notebook_case(n: int) -> Callable[[], object]:
    from lemur_corpus.notebooks import NotebookError, notebook_to_script

    cells = [{"cell_type": "code", "source": ["%magic?\n", "x = 1" + " " * n + "\n"]}] * (n // 10)
    notebook = json.dumps({"cells": cells, "metadata": {"kernelspec": {"language": "python"}}})

    def run() -> object:
        try:
            return notebook_to_script(notebook)
        except NotebookError as exc:
            return exc

    return run


def _pii_case(n: int) -> Callable[[], object]:
    from lemur_corpus.filters.pii import PiiConfig, PiiFilter

    pii = PiiFilter(PiiConfig())
    texts = ["1.2.3.4." * n, "password=" * n, "a@" * n, "key" + "1.2.3.4." * n, "://:" + "a1.b2@" * n,
             '"' + "\\\"" * n, "2a00:" * n, "-----BEGIN PRIVATE KEY-----\n" * (n // 10) + "QUJD" * n,
             "AKIA" + "A" * n + " SECRET_KEY = '" + "x1" * n]
    docs = [Document(id="t/x", source="refinedweb", kind="text", text=t, lang="en") for t in texts]
    return lambda: [pii(doc) for doc in docs]


PARSERS: dict[str, tuple[Callable[[int], Callable[[], object]], tuple[str, ...]]] = {
    "license expression": (_license_case, ("lemur_corpus.filters.code.license",)),
    "shingles": (_shingles_case, ("lemur_corpus.dedup.shingles",)),
    "record layouts": (_record_case,
                       ("lemur_corpus.sources.files", "lemur_corpus.sources.layouts", "lemur_corpus.sources.base")),
    "notebooks": (_notebook_case, ("lemur_corpus.notebooks",)),
    "pii": (_pii_case, ("lemur_corpus.filters.pii.scan", "lemur_corpus.filters.pii.secrets")),
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_parsers_do_linear_work_on_pathological_input(name: str) -> None:
    case, module_names = PARSERS[name]
    modules = [importlib.import_module(m) for m in module_names]
    small, large = (executed_lines(case(n), modules) for n in (500, 4000))
    # Linear: ~8x. Allow fixed costs, reject anything near quadratic (64x).
    assert 0 < large <= 12 * small + 200, (name, small, large)


def test_deeply_nested_json_is_a_bad_record_not_a_crash(tmp_path: Path) -> None:
    from lemur_corpus.config import parse_config
    from lemur_corpus.sources import plan_input, read_task

    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "ok"}\n' + "[" * 200_000 + "]" * 200_000 + "\n")
    config = parse_config({"inputs": [{"name": "w", "format": "jsonl", "kind": "text", "source": "refinedweb",
                                       "paths": [str(path)]}],
                           "mixture": {"sources": {"refinedweb": {"kind": "text", "weight": 100}}}})
    tasks, _ = plan_input(config.inputs[0], config)
    items = list(read_task(tasks[0], config))
    assert isinstance(items[0], Document)
    assert (items[1].reason, items[1].origin) == ("bad_json", f"{path}:2")


# ---------------------------------------------------------------------------------------------
# Nothing from input is evaluated or unpickled


DANGEROUS_CALLS = {("builtins", "eval"), ("builtins", "exec"), ("builtins", "compile"), ("pickle", "loads"),
                   ("pickle", "load"), ("marshal", "loads"), ("yaml", "load"), ("yaml", "unsafe_load"),
                   ("yaml", "full_load"), ("dill", "loads"), ("cloudpickle", "loads"), ("numpy", "load"),
                   ("shelve", "open"), ("subprocess", "*"), ("os", "system"), ("os", "popen")}
ALLOWED = {
    "corpus/manifest.py": {("subprocess", "*")},  # `git describe` of the checkout, no input
    "pipelines/sdk_workers.py": {("subprocess", "*")},  # an SDK worker: this interpreter, this module
    # the P2P shuffle's tables: items this run's own workers pickled a moment before, never input
    "pipelines/dask_p2p.py": {("pickle", "loads")},
    # a parked document: pickled by this run's own worker into a spill file of a random name in the
    # build's folder, read back by the same run (as Beam's and Dask's shuffles do), never input
    "corpus/token_spill.py": {("pickle", "loads")},
}


def dangerous_calls(path: Path) -> set[tuple[str, str]]:
    """(module, function) of calls that evaluate, unpickle or run something, as written in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if any(k.arg == "trust_remote_code" and getattr(k.value, "value", True) is not False for k in node.keywords):
            found.add(("datasets", "trust_remote_code"))  # a hub dataset's own Python code would run
        func = node.func
        if isinstance(func, ast.Name):
            target = aliases.get(func.id, f"builtins.{func.id}")
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            target = f"{aliases.get(func.value.id, func.value.id)}.{func.attr}"
        else:
            continue
        module, _, name = target.rpartition(".")
        for dangerous_module, dangerous_name in DANGEROUS_CALLS:
            if module == dangerous_module and dangerous_name in ("*", name):
                if not (name == "load" and module == "numpy" and _allows_pickle_false(node)):
                    found.add((dangerous_module, dangerous_name))
    return found


def _allows_pickle_false(call: ast.Call) -> bool:
    return not any(k.arg == "allow_pickle" and getattr(k.value, "value", False) is True for k in call.keywords)


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import pickle as p\nimport yaml\nfrom subprocess import run\n"
                      "p.loads(b'')\nyaml.load('')\nyaml.safe_load('')\neval('1')\nrun(['x'])\n"
                      "load_dataset('x', trust_remote_code=True)\n")
    assert dangerous_calls(sample) == {("pickle", "loads"), ("yaml", "load"), ("builtins", "eval"), ("subprocess", "*"),
                                       ("datasets", "trust_remote_code")}


def test_nothing_from_input_is_evaluated_or_unpickled() -> None:
    for path in module_files().values():
        relative = path.relative_to(REPO).as_posix()
        assert dangerous_calls(path) <= ALLOWED.get(relative, set()), relative


# ---------------------------------------------------------------------------------------------
# tree-sitter: a wall-clock guard on top of the deterministic step budget


def test_tree_sitter_parse_stops_at_its_wall_clock_guard() -> None:
    """The step budget is tested with the filter's own tests (tests/test_code_filters_syntax.py); here
    the other guard: with an unlimited step budget, a parse still stops at `parse_timeout_s`."""
    from lemur_corpus.filters.code.config import SyntaxConfig
    from lemur_corpus.filters.code.syntax import SyntaxFilter

    guarded = SyntaxFilter(SyntaxConfig(max_parse_steps_per_kb=10**9, min_parse_steps=10**9, parse_timeout_s=0.001))
    guarded.setup()
    nested = "x = " + "[" * 200_000 + "]" * 200_000 + "\n"
    doc = Document(id="t/x", source="python", kind="code", text=nested, lang="Python", meta={"path": "x.py"})
    verdict = guarded(doc)
    assert verdict.reason == "parse_timeout"
    assert verdict.signals["parse_steps"] < SyntaxConfig().max_parse_steps_per_kb * len(nested) / 1000
