"""The tree-sitter syntax filter: grammars load, valid real files pass, broken copies are caught.

Real files: the sample's code files not labelled generated/data and a deterministic sixth of the
standard library, both after the cheaper filters (what reaches `syntax` in a build). The per-language
figures are printed on every run.
"""

from __future__ import annotations

import collections
import gc
import tracemalloc
from typing import Any

import numpy as np
import pytest
import xxhash

from lemur_corpus.buckets import UNBUCKETED
from lemur_corpus.config import FiltersConfig
from lemur_corpus.document import Document
from lemur_corpus.filters.base import Verdict, drop_signals_only, run_chain, setup_filters
from lemur_corpus.filters.code import CodeFiltersConfig, build_code_filters
from lemur_corpus.filters.code import syntax as syntax_module
from lemur_corpus.filters.code.config import DEFAULT_GRAMMARS, SyntaxConfig
from lemur_corpus.filters.code.syntax import SyntaxFilter, chunk_reader, load_grammar
from lemur_corpus.pipelines.filter import FilterFn
from tests.code_samples import stack_documents, stdlib_documents, truncate_in_open_block, truncate_mid_byte
from tests.conftest import read_jsonl, shared_path

MIN_TRUNCATED_CAUGHT = 0.9
MAX_VALID_FLAGGED = 0.01
TRUNCATED_PER_LANGUAGE = 80

SNIPPETS = {
    "Python": "def add(a, b):\n    return a + b\n",
    "Java": "class A {\n    int add(int a, int b) { return a + b; }\n}\n",
    "JavaScript": "function add(a, b) {\n  return a + b;\n}\nmodule.exports = { add };\n",
    "TypeScript": "export function add(a: number, b: number): number {\n  return a + b;\n}\n",
    "TSX": "export const Hello = (p: { name: string }) => <div>Hello {p.name}</div>;\n",
    "C": "#include <stdio.h>\nint main(void) {\n    printf(\"hi\\n\");\n    return 0;\n}\n",
    "C++": ("#include <vector>\ntemplate <typename T> T sum(const std::vector<T>& v) {\n  T s{};\n"
            "  for (auto x : v) s += x;\n  return s;\n}\n"),
    "Cuda": "__global__ void scale(float* x, float a) {\n  x[threadIdx.x] *= a;\n}\n",
    "Go": "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
    "Rust": "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
    "Shell": "#!/bin/sh\nfor f in *.txt; do\n  if [ -s \"$f\" ]; then echo \"$f\"; fi\ndone\n",
    "Bash": "set -euo pipefail\nname=${1:-world}\necho \"hello $name\"\n",
    "SQL": "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20));\nSELECT name FROM t WHERE id = 1;\n",
    "PHP": "<?php\nfunction add($a, $b) {\n    return $a + $b;\n}\necho add(1, 2);\n",
    "Ruby": "def add(a, b)\n  a + b\nend\nputs add(1, 2)\n",
}


def doc_of(text: str, lang: str, path: str = "", **meta: object) -> Document:
    return Document(id="t/1", source="python", kind="code", text=text, lang=lang, meta={"path": path, **meta})


@pytest.fixture(scope="module")
def syntax() -> SyntaxFilter:
    f = SyntaxFilter(SyntaxConfig())
    f.setup()
    return f


@pytest.fixture(scope="module")
def sample() -> list[Document]:
    return stack_documents(shared_path("code", "code_sample.jsonl.zst"))


@pytest.fixture(scope="module")
def valid_files(sample: list[Document], syntax: SyntaxFilter) -> list[tuple[Document, str, Verdict]]:
    """Real code that reaches the syntax filter in a build — unlabelled, bucketed and kept by the
    cheaper filters; plus one standard-library module in six — with its grammar and verdict."""
    labels = {(r["hexsha"], r["repo"], r["path"]) for r in read_jsonl(shared_path("code", "code_sample.labels.jsonl"))
              if "labels" in r}
    cheap = build_code_filters(CodeFiltersConfig(),
                               only=["language", "license", "heuristics", "generated", "data_like"])
    setup_filters(cheap)
    docs = [d for d in sample if (d.meta["hexsha"], d.meta["repo"], d.meta["path"]) not in labels]
    docs += [d for d in stdlib_documents(every=6) if "badsyntax" not in d.meta["path"]]
    return [(d, language, syntax(d)) for d in docs
            if (language := syntax.grammar_language(d) or "") and run_chain(d, cheap).kept]


def test_every_configured_grammar_loads_and_parses_valid_code(syntax: SyntaxFilter) -> None:
    assert set(SNIPPETS) == set(DEFAULT_GRAMMARS)
    for language, text in SNIPPETS.items():
        path = "x.tsx" if language == "TSX" else ""
        verdict = syntax(doc_of(text, "TypeScript" if language == "TSX" else language, path))
        assert verdict.keep, (language, verdict)
        assert verdict.signals["parsed"] == 1.0 and verdict.signals["nodes"] > 5
        # CUDA is parsed with the C++ grammar, which does not know `__global__`: some skipped bytes.
        limit = syntax.threshold(language) if language == "Cuda" else 0.0
        assert verdict.signals["unparsed_share"] <= limit, (language, verdict)


def test_valid_real_files_parse_under_their_language_threshold(syntax: SyntaxFilter, valid_files, capsys) -> None:  # type: ignore[no-untyped-def]
    by_language: dict[str, list[tuple[Document, Verdict]]] = collections.defaultdict(list)
    for doc, language, verdict in valid_files:
        by_language[language].append((doc, verdict))
    lines = ["valid real files: language, files, max unparsed_share (threshold), dropped"]
    for language, rows in sorted(by_language.items()):
        shares = [v.signals.get("unparsed_share", 0.0) for _, v in rows]
        dropped = [(d.meta["path"], v.reason) for d, v in rows if not v.keep]
        lines.append(f"  {language:11s} {len(rows):5d}  max {max(shares):.3f} "
                     f"({syntax.threshold(language):.2f})  {dropped}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert {"Python", "Java", "JavaScript", "TypeScript", "C", "C++", "Shell", "PHP", "Rust", "Go",
            "Ruby"} <= set(by_language)
    for language, rows in by_language.items():
        reasons = collections.Counter(v.reason for _, v in rows if not v.keep)
        assert reasons["syntax_errors"] == 0, (language, lines)
        assert sum(reasons.values()) <= MAX_VALID_FLAGGED * len(rows), (language, lines)


def sample_for_truncation(valid_files: list[tuple[Document, str, Verdict]]) -> dict[str, list[Document]]:
    """Up to TRUNCATED_PER_LANGUAGE valid files per language that the filter keeps, chosen by a hash
    of the id."""
    chosen: dict[str, list[Document]] = collections.defaultdict(list)
    for doc, language, verdict in sorted(valid_files, key=lambda row: xxhash.xxh64_intdigest(row[0].id.encode())):
        if verdict.keep and len(chosen[language]) < TRUNCATED_PER_LANGUAGE:
            chosen[language].append(doc)
    return chosen


def test_truncated_copies_of_valid_files_are_caught(syntax: SyntaxFilter, valid_files, capsys) -> None:  # type: ignore[no-untyped-def]
    lines = ["truncated copies caught: language, cut in an open block (asserted), cut at the middle byte (reported)"]
    failures = []
    for language, docs in sorted(sample_for_truncation(valid_files).items()):
        block = [syntax(d.replace(text=cut)) for d in docs if (cut := truncate_in_open_block(d.text, d.lang))]
        mid = [syntax(d.replace(text=truncate_mid_byte(d.text))) for d in docs]
        block_rate = np.mean([not v.keep for v in block]) if block else float("nan")
        reasons = collections.Counter(v.reason for v in block if not v.keep)
        lines.append(f"  {language:11s} block {block_rate:.3f} of {len(block):3d} {dict(reasons)}   "
                     f"mid {np.mean([not v.keep for v in mid]):.3f} of {len(mid)}")
        if len(block) >= 10 and block_rate < MIN_TRUNCATED_CAUGHT:
            failures.append(language)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert not failures, lines


def test_a_build_measures_comments_only_for_the_files_it_drops(syntax: SyntaxFilter,  # type: ignore[no-untyped-def]
                                                               valid_files) -> None:
    """With `kept_signals` off (what a build's `FilterFn` sets: it writes only a dropped document's
    signals), every verdict is the same, a dropped file's signals too (`comment_share` included);
    a kept file's lack only `comment_share`, the one signal measured to describe it."""
    build = SyntaxFilter(SyntaxConfig())
    build.setup()
    chain = [build]
    drop_signals_only(chain)
    assert not build.kept_signals and syntax.kept_signals
    docs = [doc for doc, _, _ in valid_files[:400]]
    docs += [d.replace(text=cut) for d in docs[:200] if (cut := truncate_in_open_block(d.text, d.lang))]
    dropped = 0
    for doc in docs:
        full, lean = syntax(doc), build(doc)
        assert (full.keep, full.reason) == (lean.keep, lean.reason), doc.id
        if full.keep:
            assert lean.signals == {k: v for k, v in full.signals.items() if k != "comment_share"}, doc.id
        else:
            dropped += 1
            assert lean.signals == full.signals and "comment_share" in lean.signals, doc.id
    assert dropped >= 50
    fn = FilterFn(FiltersConfig(), kinds=("code",))  # the build's filter step turns it off
    fn.setup()
    assert [f.kept_signals for f in fn.chains["code"] if isinstance(f, SyntaxFilter)] == [False]


def test_prose_labelled_as_code_is_caught(syntax: SyntaxFilter, sample: list[Document]) -> None:
    prose = [d for d in sample if d.lang == "Markdown" and 500 < len(d.text) < 20_000][:30]
    assert len(prose) == 30
    for language in ("Python", "Java", "JavaScript", "C", "C++", "Go", "Rust", "Ruby", "Shell"):
        caught = np.mean([not syntax(d.replace(lang=language, meta={"path": ""})).keep for d in prose])
        assert caught >= 0.85, (language, caught)
    # Text outside `<?php` is valid PHP (it is printed), so prose labelled PHP parses.
    assert np.mean([syntax(d.replace(lang="PHP", meta={"path": ""})).keep for d in prose]) > 0.9
    # SQL is measured, never dropped for errors: tree-sitter-sql misses common PostgreSQL (config.py).
    sql = [syntax(d.replace(lang="SQL", meta={"path": ""})) for d in prose[:10]]
    assert all(v.signals["unparsed_share"] > 0.5 for v in sql)


def test_parse_budget_stops_pathological_input_deterministically() -> None:
    tight = SyntaxFilter(SyntaxConfig(max_parse_steps_per_kb=1, min_parse_steps=5))
    nested = "x = " + "[" * 20000 + "]" * 20000 + "\n"
    first, second = tight(doc_of(nested, "Python")), tight(doc_of(nested, "Python"))
    assert first.reason == "parse_timeout" and first.signals == second.signals
    assert first.signals["parse_steps"] > 5
    verdict = SyntaxFilter(SyntaxConfig())(doc_of(nested, "Python"))  # the default budget: parses
    assert verdict.signals["parsed"] == 1.0


def test_a_long_run_of_python_comment_lines_parses_without_the_guard(syntax: SyntaxFilter) -> None:
    """tree-sitter-python is quadratic over a run of comment lines (32,000 took 27 s, 200,000 would
    take about 18 minutes and end as `parse_timeout`, a verdict that depends on the machine); blanked
    before parsing, they cost nothing and still count as comments."""
    code = "import os\n\n\ndef f(x):\n    return os.path.join(x, 'y')\n"
    comments = "# 0x00\n"  # 200,000 lines, 1.4 MB: under `max_parse_bytes`
    text = code + comments * 200_000 + code.replace("def f", "def g")
    verdict = syntax(doc_of(text, "Python", "big.py"))
    assert verdict.keep and verdict.signals["parsed"] == 1.0, verdict
    comment_bytes = len(comments.rstrip("\n")) * 200_000
    assert verdict.signals["comment_share"] == pytest.approx(comment_bytes / len(text), abs=1e-4)
    truncated = syntax(doc_of(text + "def h(:\n    return (", "Python", "cut.py"))
    assert truncated.reason in ("syntax_errors", "truncated"), truncated


def test_blanking_comment_lines_does_not_change_python_verdicts(valid_files, sample: list[Document]) -> None:  # type: ignore[no-untyped-def]
    """On every real Python file of the sample and its truncated copy: the verdict with comment lines
    blanked equals the verdict of a parse of the file as it is."""
    as_is = SyntaxFilter(SyntaxConfig(comment_line_languages=[]))
    as_is.setup()
    blanking = SyntaxFilter(SyntaxConfig())
    blanking.setup()
    python = [d for d, language, _ in valid_files if language == "Python"][:150]
    assert len(python) >= 50
    docs = python + [doc_of(d.text[: len(d.text) // 2], "Python", d.meta["path"]) for d in python]
    differ = [d.meta["path"] for d in docs
              if (as_is(d).reason, as_is(d).signals["parsed"]) != (blanking(d).reason, blanking(d).signals["parsed"])]
    assert len(differ) <= len(docs) // 100, differ


def test_last_token_lists_children_instead_of_walking_siblings() -> None:
    """tree-sitter's `prev_sibling` and `child(i)` walk from the first sibling: stepping back over n
    trailing comments with them is quadratic (a generated file hung a worker for an hour)."""
    from lemur_corpus.filters.code.syntax import last_token

    class FakeNode:
        def __init__(self, kind: str, start: int, end: int, extra: bool = False, children: tuple = ()) -> None:
            self.type, self.start_byte, self.end_byte, self.is_extra = kind, start, end, extra
            self.is_error, self.children, self.child_count = False, list(children), len(children)

        def child(self, index: int):  # type: ignore[no-untyped-def]
            raise AssertionError("child(i) walks from the first child")

        @property
        def prev_sibling(self):  # type: ignore[no-untyped-def]
            raise AssertionError("prev_sibling walks from the first sibling")

    token = FakeNode("integer", 4, 5)
    statement = FakeNode("expression_statement", 0, 5, children=(FakeNode("identifier", 0, 1), token))
    trailing = [FakeNode("comment", 6 + 4 * i, 9 + 4 * i, extra=True) for i in range(1000)]
    root = FakeNode("module", 0, 4006, children=(statement, *trailing, FakeNode("MISSING", 4006, 4006)))
    assert last_token(root) is token  # type: ignore[arg-type]


def test_nul_bytes_and_replacement_characters_get_a_verdict(syntax: SyntaxFilter) -> None:
    text = "def f():\n    return 1\n" + "\x00\ufffd" * 50 + "\n"
    verdict = syntax(doc_of(text, "Python"))
    assert verdict.signals["parsed"] == 1.0 and verdict.reason in ("", "syntax_errors")


def test_cpp_header_filed_as_c_falls_back_to_the_cpp_grammar(syntax: SyntaxFilter) -> None:
    header = ("#pragma once\n#include <string>\nnamespace util {\nclass Name {\n public:\n"
              "  explicit Name(std::string v) : value_(std::move(v)) {}\n"
              "  const std::string& get() const { return value_; }\n private:\n  std::string value_;\n};\n"
              "}  // namespace util\n")
    verdict = syntax(doc_of(header, "C", "include/util/name.h"))
    assert verdict.keep and verdict.signals["fallback"] == 1.0
    truncated = syntax(doc_of(header[: header.index("private")], "C", "include/util/name.h"))
    assert not truncated.keep and truncated.reason == "truncated"


def test_tsx_files_use_the_tsx_grammar(syntax: SyntaxFilter) -> None:
    component = SNIPPETS["TSX"] * 3
    assert syntax(doc_of(component, "TypeScript", "src/Hello.tsx")).keep
    assert not syntax(doc_of(component, "TypeScript", "src/Hello.ts")).keep


def test_notebooks_are_parsed_with_their_kernel_grammar(syntax: SyntaxFilter) -> None:
    script = "# # Title\n\nimport math\n\n# %matplotlib inline\nprint(math.pi)\n"
    verdict = syntax(doc_of(script, "Jupyter Notebook", "a.ipynb", notebook_language="python"))
    assert verdict.keep and verdict.signals["parsed"] == 1.0
    notebook = doc_of("x <- c(1, 2)\n", "Jupyter Notebook", "a.ipynb", notebook_language="r")
    assert syntax(notebook).signals == {"parsed": 0.0}
    assert syntax(doc_of("# Title\n", "Markdown", "README.md")).signals == {"parsed": 0.0}
    assert UNBUCKETED  # the language filter, not this one, drops unbucketed files


def node_spans(node: Any) -> list[tuple[str, int, int]]:
    """Every node of a tree, named or not, as (type, start byte, end byte), in document order."""
    spans: list[tuple[str, int, int]] = []
    stack = [node]
    while stack:
        node = stack.pop()
        spans.append((node.type, node.start_byte, node.end_byte))
        stack.extend(reversed(node.children))
    return spans


@pytest.mark.parametrize("piece_bytes", [5, syntax_module.READ_CHUNK_BYTES])
def test_a_file_read_in_pieces_parses_to_the_tree_of_the_whole_bytestring(  # type: ignore[no-untyped-def]
        valid_files, monkeypatch: pytest.MonkeyPatch, piece_bytes: int) -> None:
    """`chunk_reader` answers tree-sitter's reads with one reused buffer, in pieces cut on UTF-8
    character boundaries: the tree is the one the whole file gives, for real files of every grammar,
    for multi-byte text and for a file cut inside a character."""
    monkeypatch.setattr(syntax_module, "READ_CHUNK_BYTES", piece_bytes)
    by_language: dict[str, list[Document]] = collections.defaultdict(list)
    for doc, language, _ in valid_files:
        if len(by_language[language]) < 6:
            by_language[language].append(doc)
    wide = "# 注释 — ünïcödé 🚀\ns = '日本語のテキスト' * 3  # é\n" * 40
    by_language["Python"] += [doc_of(wide, "Python"), doc_of(wide + "def f(:\n  '𝔘", "Python")]
    assert len(by_language) >= 10
    for language, docs in sorted(by_language.items()):
        grammar = load_grammar(language, DEFAULT_GRAMMARS[language])
        for doc in docs:
            source = doc.text.encode("utf-8", "replace")
            source = source[:-1] if doc.text.endswith("𝔘") else source  # ends inside a character
            whole = node_spans(grammar.parser.parse(source).root_node)
            assert node_spans(grammar.parser.parse(chunk_reader(source, grammar.chunk)).root_node) == whole, \
                (language, doc.meta.get("path"))
            assert len(grammar.chunk) <= piece_bytes


def test_parsing_thousands_of_files_keeps_none_of_them_alive(syntax: SyntaxFilter) -> None:
    """py-tree-sitter keeps a reference to every object a read callback returns: slices of each
    source kept every parsed file alive (16 MB for these 400 files of 40 KB), so a worker's memory
    grew with the code it had filtered. Answered with one reused buffer, nothing stays."""
    files = [f"def f{n}(x):\n    return x + {n}\n" * 1400 for n in range(400)]
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for text in files:
            assert syntax(doc_of(text, "Python")).keep
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    parsed = sum(len(text) for text in files)
    assert parsed > 15_000_000
    assert after - before < 1_000_000, f"{after - before:,} bytes still held after parsing {parsed:,}"
