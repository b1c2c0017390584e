"""Thresholds of the code filters. Every default names the paper or tool it comes from.

Sources cited below:
- Codex: Chen et al. 2021, "Evaluating Large Language Models Trained on Code", §3.1 (files with an
  average line length > 100, a maximum line length > 1000, or few alphanumeric characters removed).
- The Stack v1: Kocetkov et al. 2022, "The Stack: 3 TB of permissively licensed source code", §3
  (files over 1 MB skipped; permissive licenses only; the Codex line/alphanumeric filters).
- StarCoder: Li et al. 2023, "StarCoder: may the source be with you!", §3-4 and the filtering code
  of bigcode-project/bigcode-dataset (`preprocessing/filtering.py`): the XML filter (`<?xml version=`
  in the first 100 characters), JSON/YAML kept only between 50 and 5,000 characters.
- StarCoder2: Lozhkov et al. 2024, "StarCoder 2 and The Stack v2", §3 (auto-generated files removed
  with go-enry's `IsGenerated`; encoded-data filter: base64, hexadecimal and `\\u` escape runs, a file
  removed when one run exceeds 1,024 characters or the runs make up over 50% of it).
- GitHub linguist (`lib/linguist/generated.rb`, `vendor.yml`): lock files, generated paths, minified
  files (average line length > 110), the tool markers of protoc, SWIG, Thrift, Qt moc, Bison, flex...

The tree-sitter thresholds were measured on real code (see `SyntaxConfig`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from lemur_corpus.configbase import StrictModel
from lemur_corpus.filters.decontam.config import DecontamConfig
from lemur_corpus.filters.pii.config import PiiConfig

CODE_FILTER_NAMES: tuple[str, ...] = (
    "decontam", "language", "license", "heuristics", "generated", "data_like", "syntax", "pii")
"""Every code filter, in its default run order: `decontam` first (it looks at every file anyway, for the
contamination report; lemur_corpus.filters.decontam says why), then cheap checks, tree-sitter (slowest)
last among the judges; `pii` after them all, so only kept files are redacted (it edits, it does not judge)."""


class LanguageConfig(StrictModel):
    allowed_buckets: list[str] | None = None
    """Mixture buckets whose files are kept; None keeps every bucket (the read stage already mapped
    each file's language to a bucket with `code_buckets`; files of a language with no bucket carry
    the source `unbucketed` and are always dropped)."""


# The Stack v1 keeps files whose repository licenses are all permissive (Kocetkov et al. 2022, §3.1,
# which draws its list from the Blue Oak Council's permissive list). These are the SPDX ids of that
# family that GitHub's license detection reports; extend the list in config for rarer ones.
STACK_PERMISSIVE_LICENSES: tuple[str, ...] = (
    "MIT", "MIT-0", "Apache-2.0", "Apache-1.1", "BSD-2-Clause", "BSD-3-Clause", "BSD-3-Clause-Clear",
    "BSD-2-Clause-Patent", "BSD-1-Clause", "0BSD", "ISC", "Unlicense", "CC0-1.0", "Zlib", "BSL-1.0",
    "Artistic-2.0", "PostgreSQL", "NCSA", "UPL-1.0", "X11", "WTFPL", "AFL-3.0", "ECL-2.0", "MS-PL",
    "Python-2.0", "PSF-2.0", "BlueOak-1.0.0", "Unicode-DFS-2016", "CC-BY-4.0", "CC-BY-3.0",
)


class LicenseConfig(StrictModel):
    allowed: list[str] = Field(default_factory=lambda: list(STACK_PERMISSIVE_LICENSES))
    """SPDX ids accepted (compared case-insensitively). Default: The Stack v1's permissive family."""
    policy: Literal["all", "any"] = "all"
    """`all`: every license the record lists must be allowed (The Stack v1); `any`: one suffices."""
    require_license: bool = False
    """Drop records that carry no license at all (default: the filter applies only when they do)."""
    fields: list[str] = Field(default_factory=lambda: ["licenses", "max_stars_repo_licenses", "license"])
    """Keys of the document's meta searched, in order, for the license list (or one SPDX expression)."""


class HeuristicsConfig(StrictModel):
    max_line_length: int = Field(default=1000, gt=0)
    """Codex §3.1 / The Stack v1 / StarCoder: drop when the longest line exceeds this."""
    max_avg_line_length: float = Field(default=100.0, gt=0)
    """Codex §3.1 / The Stack v1 / StarCoder: drop when the mean line length exceeds this."""
    min_alphanum_fraction: float = Field(default=0.25, ge=0, le=1)
    """Codex §3.1 / The Stack v1 / StarCoder: drop when fewer characters are alphanumeric."""
    max_bytes: int = Field(default=1_000_000, gt=0)
    """The Stack v1 §3: files over 1 MB are not collected."""
    min_bytes: int = Field(default=10, ge=0)
    """Fewer bytes than this (after normalization) is not a program: an empty `__init__.py` or a
    stub. 10 keeps one-line modules; on the Python standard library no non-empty module is shorter."""
    max_binary_fraction: float = Field(default=0.01, ge=0, le=1)
    """Drop (`binary_content`) when more than this share of the bytes are control characters (other
    than tab, newlines, form feed, ESC) or U+FFFD: a binary file decoded leniently. Real code measures
    at most 0.0026 (a test of control-character handling) on the sample and standard library."""
    max_encoded_run: int = Field(default=1024, gt=0)
    """StarCoder2 §3: drop when one base64/hex/`\\u` run is longer than this many characters."""
    max_encoded_fraction: float = Field(default=0.5, gt=0, le=1)
    """StarCoder2 §3: drop when encoded runs make up more than this share of the characters."""


class GeneratedConfig(StrictModel):
    header_lines: int = Field(default=40, gt=0)
    """Lines searched for generator markers. linguist looks at the first few lines; 40 also covers a
    licence banner followed by the generator's notice (the Chinook SQL scripts put it on line 12)."""
    minified_avg_line_length: float = Field(default=110.0, gt=0)
    """linguist `minified_files?`: a .js/.css file whose mean line length exceeds 110 is minified."""
    minified_max_whitespace: float = Field(default=0.08, ge=0, le=1)
    """For other extensions, also require whitespace under this share of the characters: the
    minified jQuery builds of the sample measure 0.014; the rule only looks at files whose mean line
    is over 110 characters, which hand-written code almost never has (heuristics drops > 100)."""
    bundle_min_markers: int = Field(default=3, gt=0)
    """Bundler/amalgamation markers of one kind (webpack `/******/` module frames or
    `__webpack_require__`, an amalgamated header's commented-out `// #include <...>`, `Begin file`
    banners) needed to call a file a bundle. Hand-written files on the sample have at most one
    commented-out include; nlohmann's amalgamated json.hpp has 153."""
    bundle_min_license_banners: int = Field(default=2, gt=0)
    """`SPDX-License-Identifier:` lines needed: a source file carries one; two mean files pasted
    together (nlohmann's json_fwd.hpp: 2, json.hpp: 45; no other file of the sample or the standard
    library has more than one)."""
    lock_files: list[str] = Field(default_factory=lambda: [
        "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock",
        "Cargo.lock", "poetry.lock", "Pipfile.lock", "pdm.lock", "uv.lock", "composer.lock",
        "Gemfile.lock", "go.sum", "mix.lock", "pubspec.lock", "Podfile.lock", "packages.lock.json",
        "flake.lock", "gradle.lockfile", "conda-lock.yml", "Package.resolved",
    ])
    """File names of dependency lock files (linguist `generated.rb`)."""
    generated_path_patterns: list[str] = Field(default_factory=lambda: [
        r"_pb2(_grpc)?\.pyi?$", r"\.pb\.(go|cc|h|swift)$", r"\.pb\.gw\.go$", r"_grpc\.pb\.go$",
        r"(_grpc)?_pb\.(js|d\.ts)$", r"\.g\.(dart|cs)$", r"\.designer\.(cs|vb)$", r"(^|/)moc_[^/]+\.cpp$",
        r"(^|/)ui_[^/]+\.h$", r"(^|/)qrc_[^/]+\.cpp$", r"(^|/)__generated__/", r"(^|/)zz_generated\.[^/]+$",
        r"\.generated\.[a-z]+$", r"(^|/)[^/]+_generated\.(go|rs|py|ts|h|cc|cpp)$",
    ])
    """Regexes (searched in the lowercased path) of files generators write (linguist `generated.rb`)."""
    vendored_path_patterns: list[str] = Field(default_factory=lambda: [
        r"(^|/)node_modules/", r"(^|/)bower_components/",
    ])
    """Regexes of installed third-party trees (linguist `vendor.yml`); never hand-written in the repo."""

    @field_validator("generated_path_patterns", "vendored_path_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return patterns


class DataLikeConfig(StrictModel):
    data_languages: list[str] = Field(default_factory=lambda: ["JSON", "YAML", "CSV", "TSV", "JSON5", "JSONLD"])
    """Languages that are data, not code; kept only within the size bounds below."""
    data_min_chars: int = Field(default=50, ge=0)
    """StarCoder (filtering.py `large_and_small_files`): JSON/YAML under 50 characters dropped."""
    data_max_chars: int = Field(default=5000, gt=0)
    """StarCoder: JSON/YAML over 5,000 characters dropped (mostly data, not configuration)."""
    xml_exempt_languages: list[str] = Field(default_factory=lambda: ["XSLT"])
    """StarCoder's XML filter drops `<?xml version=` in the first 100 characters except for XSLT."""
    max_literal_row_fraction: float = Field(default=0.5, gt=0, le=1)
    """Drop when over this share of the non-blank lines are rows of literals only (SQL `INSERT ...
    VALUES (1, 'x', 2.5);`, `(1, 'x'),`, `0x00, 0x01, ...`). Measured on the sample and the standard
    library, files with 100+ such rows: hand-written code at most 0.41 (test files with tables of
    cases); number tables 0.77-0.95 (serde's float tables), codec tables 0.88, SQL dumps 0.93-0.99."""
    min_literal_rows: int = Field(default=100, gt=0)
    """...and at least this many such rows (a short table of constants is code, a dump is not)."""


# Grammars: "<module>:<function>" returning the tree-sitter language pointer (per-language wheels).
DEFAULT_GRAMMARS: dict[str, str] = {
    "Python": "tree_sitter_python:language",
    "Java": "tree_sitter_java:language",
    "JavaScript": "tree_sitter_javascript:language",
    "TypeScript": "tree_sitter_typescript:language_typescript",
    "TSX": "tree_sitter_typescript:language_tsx",
    "C": "tree_sitter_c:language",
    "C++": "tree_sitter_cpp:language",
    "Cuda": "tree_sitter_cpp:language",
    "Go": "tree_sitter_go:language",
    "Rust": "tree_sitter_rust:language",
    "Shell": "tree_sitter_bash:language",
    "Bash": "tree_sitter_bash:language",
    "SQL": "tree_sitter_sql:language",
    "PHP": "tree_sitter_php:language_php",
    "Ruby": "tree_sitter_ruby:language",
}

# Maximum `unparsed_share` (bytes the parser skipped) per language, set from measurements on valid
# real code: the shared sample (../shared/data/code, files not labelled generated/data) and the Python
# 3.11 standard library, 3,386 files. Maximum measured unparsed_share on valid files, per language:
#   Python 0.014 (n=1,865; test_compile.py's deliberately odd continuation lines), Java 0 (264),
#   JavaScript 0 (257), TypeScript 0 (317), Go 0 (36), PHP 0 (74), Ruby 0 (16), Shell 0 (299),
#   Rust 0.016 (67), C 0.003 (70, after macro-line blanking; 0.139 without), C++ 0.213 (121, after
#   blanking; 0.493 without: nlohmann/json's macros and templates).
# The same files as Markdown prose mislabelled as each language: median unparsed_share 0.14 (Shell)
# to 0.73 (C++), and 89-100% caught; PHP is the exception (text outside `<?php` is valid PHP).
# SQL: the Chinook scripts (5 dialects) stay under 0.003, but PostgreSQL 15's own 159 extension and
# system scripts measure median 0.33, p99 0.98: tree-sitter-sql 0.3 does not cover common PostgreSQL
# statements (ALTER FUNCTION ... PARALLEL SAFE, CREATE OPERATOR CLASS...), so SQL is measured but
# never dropped for syntax errors (threshold 1.0), and an ERROR reaching its end is not truncation.
DEFAULT_MAX_UNPARSED_SHARE: dict[str, float] = {
    "Python": 0.05,
    "Java": 0.05,
    "JavaScript": 0.05,
    "TypeScript": 0.05,
    "TSX": 0.05,
    "C": 0.05,
    "C++": 0.25,
    "Cuda": 0.25,
    "Go": 0.05,
    "Rust": 0.05,
    "Shell": 0.05,
    "Bash": 0.05,
    "SQL": 1.0,
    "PHP": 0.05,
    "Ruby": 0.05,
}


class SyntaxConfig(StrictModel):
    grammars: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_GRAMMARS))
    """Language (The Stack's `lang`) to grammar `module:function`; other languages are not parsed."""
    grammar_by_extension: dict[str, str] = Field(default_factory=lambda: {".tsx": "TSX", ".cu": "Cuda", ".cuh": "Cuda"})
    """Extensions whose grammar differs from their language's (TypeScript JSX needs the TSX grammar)."""
    header_fallback: dict[str, str] = Field(default_factory=lambda: {"C": "C++"})
    """A file of the key language that fails is re-parsed with the value's grammar and the better
    parse counts: The Stack labels every `.h` as C, and many of them are C++ headers."""
    max_unparsed_share: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MAX_UNPARSED_SHARE))
    """Per language: drop (`syntax_errors`) when more than this share of the bytes was skipped by the
    parser (under ERROR nodes, outside any well-formed subtree)."""
    default_max_unparsed_share: float = Field(default=0.05, ge=0, le=1)
    """For a grammar configured without its own threshold."""
    macro_line_languages: list[str] = Field(default_factory=lambda: ["C", "C++", "Cuda"])
    """Languages whose macro-only lines are blanked before parsing (unexpanded macros defeat the
    grammar; see filters/code/syntax.py)."""
    comment_line_languages: list[str] = Field(default_factory=lambda: ["Python"])
    """Languages whose `#` comment-only lines are blanked before parsing: tree-sitter-python is
    quadratic over a run of them (measured; the other grammars are linear). Their bytes still count
    in `comment_share`."""
    eof_error_exempt: list[str] = Field(default_factory=lambda: ["C++", "Cuda", "SQL"])
    """Languages where an ERROR running to the end of the file is not taken as truncation (valid
    C++ does it where templates and macros confuse the grammar: measured 1.6% of valid files; SQL
    where the grammar lacks the dialect); a MISSING closing token or an open last token still counts.
    Measured on copies cut just after a block-opening line past the middle: 96-100% caught in every
    language (Python 98.9%, C 96.1%, C++ 100%, TypeScript 96.5%); cut at the middle byte, wherever it
    falls: 26% (C++) to 100% (PHP), as a cut can leave valid code."""
    max_parse_steps_per_kb: float = Field(default=200.0, gt=0)
    """Deterministic parse budget: tree-sitter reports progress every ~100 parser operations; real
    code takes median 7, p99 13.5, at most 20 reports per KB (minified jQuery; measured on the
    sample and the standard library), so 200 is 10x the worst real file.
    A parse over budget is dropped as `parse_timeout`, identically on every run and machine."""
    min_parse_steps: int = Field(default=2000, gt=0)
    """Budget floor, so small files are never cut short."""
    max_parse_bytes: int = Field(default=2_000_000, gt=0)
    """Larger files are not parsed (kept, with the signal `parsed: 0`): the chain's `heuristics`
    filter drops anything over 1 MB first, so this only matters when `syntax` runs alone."""
    parse_timeout_s: float = Field(default=10.0, gt=0)
    """Wall-clock guard on one parse, for pathological inputs on slow machines (the step budget
    normally stops them first; only this guard depends on the machine)."""

    @field_validator("grammars")
    @classmethod
    def _grammar_specs(cls, grammars: dict[str, str]) -> dict[str, str]:
        for language, spec in grammars.items():
            module, _, function = spec.partition(":")
            if not module or not function:
                raise ValueError(f"grammar of {language!r}: {spec!r} is not '<module>:<function>'")
        return grammars


class CodeFiltersConfig(StrictModel):
    enabled: bool = True
    filters: list[str] = Field(default_factory=lambda: list(CODE_FILTER_NAMES))
    """The filters that run, in this order; leave a name out to switch that filter off."""
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    license: LicenseConfig = Field(default_factory=LicenseConfig)
    heuristics: HeuristicsConfig = Field(default_factory=HeuristicsConfig)
    generated: GeneratedConfig = Field(default_factory=GeneratedConfig)
    data_like: DataLikeConfig = Field(default_factory=DataLikeConfig)
    syntax: SyntaxConfig = Field(default_factory=SyntaxConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)

    @field_validator("filters")
    @classmethod
    def _known_filters(cls, names: list[str]) -> list[str]:
        from lemur_corpus.filters.base import filter_name_problem

        problem = filter_name_problem("code", names, CODE_FILTER_NAMES)
        if problem:
            raise ValueError(problem)
        return names
