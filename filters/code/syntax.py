"""Syntax validity with tree-sitter: drop files that do not parse as their language, or end cut off.

Each language's grammar comes from its own wheel (`tree_sitter_python`, ...; never a bundle that
downloads at run time) and is loaded once per worker in `setup()`. A grammar that cannot be
imported or loaded is a `ConfigError` naming the language, raised where the filters are built, never
mid-build.

Signals of one parse:
- `error_share`: share of the file's bytes under ERROR nodes or inside the smallest node around a
  MISSING one (what the parser could not fit into the grammar, in its widest sense);
- `unparsed_share`: the part of that the parser really skipped: bytes under ERROR nodes outside any
  well-formed subtree. An ERROR node often wraps valid code (a whole class whose header confused the
  parser); counting only the skipped tokens is what separates macro-heavy but valid C++ (error_share
  up to 1.0 on nlohmann/json) from text that is not code;
- `error_nodes`, `missing_nodes`, `nodes` (all nodes of the tree), `comment_share` (bytes in comments),
  `parse_steps` (progress reports, one per ~100 parser operations);
- `eof_error`, `eof_missing`, `eof_open_token`: the file ends inside an unfinished construct.

Rules: `syntax_errors` when `unparsed_share` exceeds the language's threshold (grammars differ:
tree-sitter-sql knows few dialect extensions, C and C++ macros defeat any grammar; thresholds were
measured on real code, see `filters/code/config.py`); `truncated` when the file ends inside an open
construct — an ERROR that runs to the end of the file, a MISSING closing token at the end, or a last
token that cannot end a program (`{`, `(`, `[`, `,`, `:`, `=`, `then`, `do`...). Python is parsed
without its indentation checks by tree-sitter, so a file cut after `def f():` parses; the last-token
rule is what catches it. In C and C++, lines holding only an upper-case macro invocation
(`NLOHMANN_JSON_NAMESPACE_BEGIN`, `TEST_CASE("x")`) are blanked before parsing: unexpanded macros are
the main cause of tree-sitter errors on valid C/C++ (measured: 6% of valid C++ files with an error
running to the end of the file, 1.6% after blanking). Parsing has a deterministic budget of progress
steps proportional to the size, and a wall-clock guard; a parse over either is `parse_timeout`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import tree_sitter as ts

from lemur_corpus.document import Document
from lemur_corpus.errors import ConfigError
from lemur_corpus.filters.base import Verdict
from lemur_corpus.filters.code.config import SyntaxConfig
from lemur_corpus.filters.code.textstats import extension_of, merged_length, path_of

COMMENT_KINDS = ("comment", "line_comment", "block_comment", "html_comment")
OPEN_TOKENS = frozenset({"{", "(", "[", ",", ":", "=", "=>", "->", "${", "#{", "then", "do", "else", "elif", "in"})
"""Tokens no complete program ends with (measured: none of the valid files of the sample does)."""
MACRO_LINE = re.compile(rb"(?m)^[ \t]*[A-Z_][A-Z0-9_]{2,}(?:[ \t]*\([^;{}\n]*\))?[ \t]*:?[ \t]*$")
"""A line holding only an upper-case macro invocation, without a semicolon."""
HASH_COMMENT_LINE = re.compile(rb"(?m)^[ \t]*#[^\n]*")
"""A line holding only a `#` comment (inside a string its bytes are string content either way)."""
NOTEBOOK_LANGUAGE = "Jupyter Notebook"
# A notebook's kernel language (lowercase, from its metadata) to the language whose grammar parses it.
KERNEL_LANGUAGES = {"python": "Python", "python3": "Python", "ipython": "Python", "bash": "Shell", "sh": "Shell",
                    "javascript": "JavaScript", "typescript": "TypeScript", "ruby": "Ruby", "sql": "SQL",
                    "c++": "C++", "cpp": "C++", "c": "C", "java": "Java", "go": "Go", "rust": "Rust", "php": "PHP"}


def resolve_grammar(language: str, spec: str) -> Callable[[], Any]:
    """The function of a grammar wheel that returns its language pointer; a ConfigError otherwise."""
    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"filters.code.syntax.grammars[{language!r}]: cannot import {module_name!r} ({exc}); "
                          f"install the grammar wheel or remove the language") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"filters.code.syntax.grammars[{language!r}]: module {module_name!r} has no "
                          f"function {function_name!r}")
    return function


LANGUAGE_CAPSULE = b"tree_sitter.Language"
"""The name of the capsule every grammar wheel's `language()` returns (a `TSLanguage *` inside)."""

_capsule_is_valid = ctypes.pythonapi.PyCapsule_IsValid
_capsule_is_valid.restype = ctypes.c_int
_capsule_is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]


def is_language_capsule(value: object) -> bool:
    """Whether `value` is what a grammar wheel returns: a PyCapsule named `tree_sitter.Language`.
    `tree_sitter.Language` also takes a plain integer as a raw `TSLanguage *` and dereferences it, so
    anything else reaching it (a config naming `os:getpid`) crashes the interpreter at random."""
    return type(value).__name__ == "PyCapsule" and _capsule_is_valid(value, LANGUAGE_CAPSULE) == 1


def grammar_capsule(language: str, spec: str, function: Callable[[], Any]) -> Any:
    """The language capsule `function` returns, checked before tree-sitter sees it; a ConfigError
    naming the key otherwise."""
    key = f"filters.code.syntax.grammars[{language!r}]"
    try:
        value = function()
    except Exception as exc:
        raise ConfigError(f"{key}: {spec} does not load: calling it raised {type(exc).__name__}: {exc}") from None
    if not is_language_capsule(value):
        raise ConfigError(f"{key}: {spec} does not load: it returned {type(value).__name__} {str(value)[:60]!r}, "
                          f"not a tree-sitter language (a PyCapsule named 'tree_sitter.Language', what "
                          f"the grammar wheels' language functions return)")
    return value


@dataclasses.dataclass(frozen=True)
class Grammar:
    name: str
    language: ts.Language
    parser: ts.Parser
    problems: ts.Query
    comments: ts.Query | None
    chunk: bytearray = dataclasses.field(default_factory=bytearray, compare=False, repr=False)
    """The one buffer every read of this grammar's parses answers with (`chunk_reader`)."""


def load_grammar(language: str, spec: str) -> Grammar:
    capsule = grammar_capsule(language, spec, resolve_grammar(language, spec))
    try:
        lang = ts.Language(capsule)
        parser = ts.Parser(lang)
        problems = ts.Query(lang, "(ERROR) @error (MISSING) @missing")
    except Exception as exc:  # an ABI mismatch, a broken build: stop before any document is read
        raise ConfigError(f"filters.code.syntax.grammars[{language!r}]: {spec} does not load with "
                          f"tree-sitter {getattr(ts, '__version__', '?')}: {exc}") from None
    kinds = [k for k in COMMENT_KINDS if lang.id_for_node_kind(k, True)]
    comments = ts.Query(lang, " ".join(f"({k}) @comment" for k in kinds)) if kinds else None
    return Grammar(language, lang, parser, problems, comments)


def blank_lines(pattern: re.Pattern[bytes], source: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """The matches of `pattern` replaced by spaces of the same length (byte offsets stay valid, so
    spans measured on the parse are spans of the original), and the blanked spans."""
    spans = [m.span() for m in pattern.finditer(source)]
    if not spans:
        return source, spans
    blanked = bytearray(source)
    for start, end in spans:
        blanked[start:end] = b" " * (end - start)
    return bytes(blanked), spans


@dataclasses.dataclass(frozen=True)
class ParseResult:
    timed_out: bool
    error_share: float = 0.0
    unparsed_share: float = 0.0
    error_nodes: int = 0
    missing_nodes: int = 0
    nodes: int = 0
    comment_share: float | None = 0.0
    """None: not measured yet (`measure_comments`)."""
    eof_error: bool = False
    eof_missing: bool = False
    eof_open_token: bool = False
    steps: int = 0
    tree: ts.Tree | None = dataclasses.field(default=None, compare=False, repr=False)
    """The parse, while its comments are still to be measured."""
    blanked_comments: Sequence[tuple[int, int]] = dataclasses.field(default=(), compare=False, repr=False)

    def signals(self) -> dict[str, float]:
        if self.timed_out:
            return {"parse_steps": float(self.steps)}
        comments = {} if self.comment_share is None else {"comment_share": round(self.comment_share, 4)}
        return {"error_share": round(self.error_share, 4), "unparsed_share": round(self.unparsed_share, 4),
                "error_nodes": float(self.error_nodes), "missing_nodes": float(self.missing_nodes),
                "nodes": float(self.nodes), **comments,
                "eof_error": float(self.eof_error), "eof_missing": float(self.eof_missing),
                "eof_open_token": float(self.eof_open_token), "parse_steps": float(self.steps)}


def skipped_spans(error: ts.Node) -> list[tuple[int, int]]:
    """The byte spans of an ERROR node not covered by its structured children (those with children
    of their own): the tokens and gaps the parser skipped. Nested ERROR children are subtracted
    here and measured on their own."""
    spans = []
    cursor = error.start_byte
    for child in error.children:
        if child.child_count > 0:
            if child.start_byte > cursor:
                spans.append((cursor, child.start_byte))
            cursor = max(cursor, child.end_byte)
    if error.end_byte > cursor:
        spans.append((cursor, error.end_byte))
    return spans


def last_token(root: ts.Node) -> ts.Node | None:
    """The last real token of the tree: comments and zero-width (MISSING, empty) nodes skipped (an
    ERROR node can be marked extra too; it is not skipped). Linear in the tree's size: each level's
    children are listed once and scanned from the end (tree-sitter's `prev_sibling` and `child(i)`
    walk from the first sibling, so stepping back over 30,000 trailing comments took seconds, and a
    generated file with a million took an hour; tests/test_adversarial.py)."""
    node = root
    while node.child_count:
        child = next((c for c in reversed(node.children)
                      if not ((c.is_extra and not c.is_error) or c.end_byte <= c.start_byte)), None)
        if child is None:
            return node if node is not root else None
        node = child
    return node


READ_CHUNK_BYTES = 1 << 16
"""The most bytes one answer to tree-sitter's read callback holds: a file is copied into the reused
buffer in pieces of this size, so a read costs a bounded copy however often tree-sitter asks."""


def chunk_reader(source: bytes, chunk: bytearray) -> Callable[[int, Any], bytearray]:
    """tree-sitter's read callback over `source` that answers every read with `chunk`, refilled.

    The callback, not the source, is what lets a parse report progress (tree-sitter ignores
    `progress_callback` for a bytestring). py-tree-sitter 0.25-0.26 keeps a reference to every object
    a read callback returns, for good: answering with slices of the source (or a memoryview's) kept
    every parsed file alive, and the slices too, and a worker's memory grew with the code it
    had filtered (tests/test_code_filters.py). Answering with the same buffer each time leaks
    nothing. tree-sitter needs an answer only until its next read, so the buffer can be refilled; a
    piece ends on a UTF-8 character boundary."""
    view = memoryview(source)
    size = len(source)

    def read(offset: int, _point: Any) -> bytearray:
        end = min(offset + READ_CHUNK_BYTES, size)
        while offset < end < size and source[end] & 0xC0 == 0x80:  # a continuation byte: back to the lead
            end -= 1
        chunk[:] = view[offset:end]
        return chunk

    return read


def parse(grammar: Grammar, source: bytes, max_steps: int, timeout_s: float,
          blanked_comments: Sequence[tuple[int, int]] = (), comments: bool = True) -> ParseResult:
    """Parse `source` within `max_steps` progress reports and `timeout_s` seconds and measure it;
    `blanked_comments` are comment spans blanked before parsing (they count in `comment_share`).
    Without `comments`, `comment_share` is left to `measure_comments` (the result keeps the tree)."""
    steps = 0
    deadline = time.monotonic() + timeout_s
    read = chunk_reader(source, grammar.chunk)

    def progress(_offset: int, _has_error: bool) -> bool:
        nonlocal steps
        steps += 1
        # The clock on every report: reports come every ~100 parser operations, but an operation's
        # cost is not bounded (tree-sitter-python slows down quadratically over a run of comment
        # lines, to 0.2 s between reports at 32,000 lines).
        return steps > max_steps or time.monotonic() > deadline

    try:
        tree = grammar.parser.parse(read, progress_callback=progress)
    except ValueError:  # tree-sitter cancelled the parse
        grammar.parser.reset()
        return ParseResult(timed_out=True, steps=steps)
    root = tree.root_node
    size = max(len(source), 1)
    end = len(source.rstrip())
    error_nodes = missing_nodes = 0
    error_share = unparsed_share = 0.0
    eof_error = eof_missing = False
    if root.has_error:
        captures = ts.QueryCursor(grammar.problems).captures(root)
        errors = captures.get("error", [])
        missing = captures.get("missing", [])
        error_nodes, missing_nodes = len(errors), len(missing)
        spans = [(n.start_byte, n.end_byte) for n in errors]
        spans += [(p.start_byte, p.end_byte) for n in missing if (p := n.parent) is not None]
        error_share = merged_length(spans) / size
        unparsed_share = merged_length([span for n in errors for span in skipped_spans(n)]) / size
        eof_error = any(n.end_byte >= end for n in errors)
        eof_missing = any(n.start_byte >= end and n.type != ";" for n in missing)
    token = last_token(root)
    eof_open_token = token is not None and token.type in OPEN_TOKENS
    result = ParseResult(False, error_share, unparsed_share, error_nodes, missing_nodes, root.descendant_count,
                         None, eof_error, eof_missing, eof_open_token, steps, tree, blanked_comments)
    return measure_comments(grammar, result, size) if comments else result


def measure_comments(grammar: Grammar, result: ParseResult, size: int) -> ParseResult:
    """`result` with its `comment_share` measured on its tree (the grammar's comment query: a walk of
    the whole tree; a build skipping it for kept files runs the code chain x1.15,
    `benchmarks/code_filters_speed.py`), the tree let go."""
    if result.tree is None:
        return result
    comment_spans = list(result.blanked_comments)
    if grammar.comments is not None:
        comments = ts.QueryCursor(grammar.comments).captures(result.tree.root_node).get("comment", [])
        comment_spans += [(n.start_byte, n.end_byte) for n in comments]
    return dataclasses.replace(result, comment_share=merged_length(comment_spans) / max(size, 1), tree=None,
                               blanked_comments=())


@dataclasses.dataclass
class SyntaxFilter:
    config: SyntaxConfig
    name: str = "syntax"
    kept_signals: bool = True
    """Whether a kept file's signals are read (`corpus filter`'s verdicts.jsonl). A build reads only a
    dropped document's (its drop log) and turns this off (`filters.base.drop_signals_only`): the
    comment query, which decides nothing, then runs only for the files dropped."""

    def __post_init__(self) -> None:
        # Import every grammar module now: a misconfigured grammar fails where the filters are built.
        for language, spec in sorted(self.config.grammars.items()):
            resolve_grammar(language, spec)
        for target in (*self.config.grammar_by_extension.values(), *self.config.header_fallback.values()):
            if target not in self.config.grammars:
                raise ConfigError(f"filters.code.syntax: {target!r} is used but has no grammar in 'grammars'")
        self._grammars: dict[str, Grammar] | None = None

    def setup(self) -> None:
        """Load every configured grammar (once per worker, from DoFn.setup)."""
        loaded: dict[str, Grammar] = {}
        by_spec: dict[str, Grammar] = {}
        for language, spec in sorted(self.config.grammars.items()):
            if spec not in by_spec:
                by_spec[spec] = load_grammar(language, spec)
            loaded[language] = dataclasses.replace(by_spec[spec], name=language)
        self._grammars = loaded

    def grammar_language(self, doc: Document) -> str | None:
        """Which configured grammar parses this document, if any."""
        language = self.config.grammar_by_extension.get(extension_of(path_of(doc)), doc.lang)
        if language == NOTEBOOK_LANGUAGE:
            kernel = str(doc.meta.get("notebook_language") or "python").lower()
            language = KERNEL_LANGUAGES.get(kernel, "")
        return language if language in self.config.grammars else None

    def threshold(self, language: str) -> float:
        return self.config.max_unparsed_share.get(language, self.config.default_max_unparsed_share)

    def failed(self, language: str, result: ParseResult, eof_language: str | None = None) -> str:
        """The rule a parse with `language`'s grammar breaks, or ''. `eof_language` decides whether an
        ERROR reaching the end counts (the original language when re-parsing with a fallback)."""
        if result.timed_out:
            return "parse_timeout"
        if result.unparsed_share > self.threshold(language):
            return "syntax_errors"
        eof_error = result.eof_error and (eof_language or language) not in self.config.eof_error_exempt
        if eof_error or result.eof_missing or result.eof_open_token:
            return "truncated"
        return ""

    def parse_as(self, language: str, source: bytes) -> ParseResult:
        assert self._grammars is not None
        cfg = self.config
        if language in cfg.macro_line_languages:  # unexpanded macros defeat the grammar
            source, _ = blank_lines(MACRO_LINE, source)
        blanked: list[tuple[int, int]] = []
        if language in cfg.comment_line_languages:
            # tree-sitter-python slows down quadratically over a run of comment lines (16,000 took
            # 6 s, 32,000 took 27 s); blank lines parse in linear time, and a comment is not syntax.
            # The blanked lines still count as comments.
            source, blanked = blank_lines(HASH_COMMENT_LINE, source)
        max_steps = max(cfg.min_parse_steps, int(cfg.max_parse_steps_per_kb * len(source) / 1024))
        return parse(self._grammars[language], source, max_steps, cfg.parse_timeout_s, blanked, self.kept_signals)

    def __call__(self, doc: Document) -> Verdict:
        language = self.grammar_language(doc)
        if language is None:
            return Verdict.kept({"parsed": 0.0})
        if self._grammars is None:
            self.setup()
        source = doc.text.encode("utf-8", "replace")
        if len(source) > self.config.max_parse_bytes:
            return Verdict.kept({"parsed": 0.0, "too_large_to_parse": 1.0})
        result = self.parse_as(language, source)
        rule = self.failed(language, result)
        fallback = self.config.header_fallback.get(language)
        if rule and fallback:
            # The fallback's verdict counts when it passes, or when it also fails but parsed more
            # of the file (its reason then says better what is wrong: a C++ header cut short).
            second = self.parse_as(fallback, source)
            second_rule = self.failed(fallback, second, eof_language=language)
            if not second_rule or (not second.timed_out and second.unparsed_share < result.unparsed_share):
                result, language, rule = second, fallback, second_rule
        if rule:
            assert self._grammars is not None
            result = measure_comments(self._grammars[language], result, len(source))
        signals = {"parsed": 1.0, "fallback": float(language == fallback), **result.signals()}
        if rule:
            return Verdict.dropped(rule, {**signals, "max_unparsed_share": self.threshold(language)})
        return Verdict.kept(signals)
