"""The code filters one rule at a time: what each drops, with which reason and signals, and what it keeps.

Inputs are small files written the way real ones are (a protoc banner, a webpack bundle, a SQL dump);
the real-data checks (recall on labelled files, false drops on real code) are in
test_code_filters_real.py and the tree-sitter ones in test_code_filters_syntax.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lemur_corpus.filters.code as code_filters
from lemur_corpus.buckets import UNBUCKETED
from lemur_corpus.document import Document
from lemur_corpus.errors import ConfigError
from lemur_corpus.filters.base import run_chain, setup_filters
from lemur_corpus.filters.code import CODE_FILTER_NAMES, CodeFiltersConfig, build_code_filters, check_code_filters
from lemur_corpus.filters.code.config import DEFAULT_GRAMMARS
from lemur_corpus.filters.code.data_like import DataLikeFilter
from lemur_corpus.filters.code.generated import GeneratedFilter
from lemur_corpus.filters.code.heuristics import HeuristicsFilter, encoded_runs
from lemur_corpus.filters.code.language import LanguageFilter
from lemur_corpus.filters.code.license import LicenseFilter, expression_allowed
from lemur_corpus.filters.code.syntax import is_language_capsule
from lemur_corpus.filters.code.textstats import alnum_fraction, line_stats, merged_length

PY_MODULE = '''"""Small helpers for paths."""

import os


def split_all(path):
    """Every component of `path`, in order."""
    parts = []
    while path not in ("", os.sep):
        path, tail = os.path.split(path)
        parts.append(tail)
    return list(reversed(parts))
'''


def code_doc(text: str = PY_MODULE, lang: str = "Python", source: str = "python", **meta: object) -> Document:
    meta = {"path": "pkg/util.py", **meta}
    return Document(id="t/1", source=source, kind="code", text=text, lang=lang, meta=meta)


@pytest.fixture(scope="module")
def chain():  # type: ignore[no-untyped-def]
    filters = build_code_filters(CodeFiltersConfig())
    setup_filters(filters)
    return filters


# ---- building the chain ----------------------------------------------------------------------------


def test_default_chain_runs_cheap_filters_first_and_tree_sitter_last() -> None:
    names = [f.name for f in build_code_filters(CodeFiltersConfig())]
    assert names == ["decontam", "language", "license", "heuristics", "generated", "data_like", "syntax", "pii"]
    assert tuple(names) == CODE_FILTER_NAMES


def test_only_selects_and_orders_by_name_and_rejects_unknown_names() -> None:
    only = ["syntax", "language"]
    assert [f.name for f in build_code_filters(CodeFiltersConfig(), only=only)] == ["syntax", "language"]
    with pytest.raises(ConfigError, match="unknown code filter.*nope.*known: decontam, language"):
        build_code_filters(CodeFiltersConfig(), only=["language", "nope"])
    with pytest.raises(ConfigError, match="named twice: syntax"):
        build_code_filters(CodeFiltersConfig(), only=["syntax", "syntax"])


def test_config_filters_list_switches_filters_off_and_is_validated() -> None:
    config = CodeFiltersConfig(filters=["language", "heuristics"])
    assert [f.name for f in build_code_filters(config)] == ["language", "heuristics"]
    with pytest.raises(ValueError, match="unknown code filter"):
        CodeFiltersConfig(filters=["language", "minify"])
    with pytest.raises(ValueError, match="named twice: language"):
        CodeFiltersConfig(filters=["language", "language"])
    with pytest.raises(ValueError, match="extra"):
        CodeFiltersConfig.model_validate({"heuristics": {"max_line_lenght": 10}})


def test_module_docstring_documents_every_filter_name_for_the_filter_command() -> None:
    doc = code_filters.__doc__ or ""
    for name in CODE_FILTER_NAMES:
        assert f"`{name}`" in doc


def test_a_good_module_passes_the_whole_chain_with_signals_from_every_filter(chain) -> None:  # type: ignore[no-untyped-def]
    result = run_chain(code_doc(), chain)
    assert result.kept
    signals = result.signals()
    for name in CODE_FILTER_NAMES:
        assert any(key.startswith(name + ".") for key in signals), name
    assert signals["syntax.unparsed_share"] == 0.0
    assert signals["heuristics.max_line_length"] == max(map(len, PY_MODULE.splitlines()))


# ---- language ----------------------------------------------------------------------------------


def test_language_drops_unbucketed_and_unknown_languages() -> None:
    f = LanguageFilter(CodeFiltersConfig().language)
    assert f(code_doc()).keep
    markdown = f(code_doc("# Title\n", lang="Markdown", source=UNBUCKETED))
    assert not markdown.keep and markdown.reason == "language_not_allowed"
    assert markdown.signals == {"known_language": 1.0, "bucketed": 0.0, "allowed_bucket": 1.0}
    unknown = f(code_doc("x = 1\n", lang="", source=UNBUCKETED))
    assert not unknown.keep and unknown.reason == "language_not_allowed"
    assert unknown.signals["known_language"] == 0.0


def test_language_allow_list_restricts_buckets() -> None:
    f = LanguageFilter(CodeFiltersConfig.model_validate({"language": {"allowed_buckets": ["python"]}}).language)
    assert f(code_doc()).keep
    java = f(code_doc("class A {}\n", lang="Java", source="java"))
    assert not java.keep and java.signals["allowed_bucket"] == 0.0


# ---- license -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("licenses", "keep"),
    [
        (["MIT"], True),
        (["MIT", "Apache-2.0"], True),
        (["mit"], True),
        (["GPL-3.0-only"], False),
        (["MIT", "GPL-2.0"], False),  # The Stack: every license of the repository must be permissive
        (["MIT OR GPL-3.0-or-later"], True),
        (["MIT AND GPL-3.0-or-later"], False),
        (["(Apache-2.0 WITH LLVM-exception)"], True),
        ([{"item": "BSD-3-Clause"}], True),  # The Stack parquet export: list of structs
        ("['MIT', 'ISC']", True),  # a stringified list from a CSV/JSON export
        ([], True),  # no license recorded: nothing to check
    ],
)
def test_license_allow_list(licenses: object, keep: bool) -> None:
    f = LicenseFilter(CodeFiltersConfig().license)
    verdict = f(code_doc(max_stars_repo_licenses=licenses))
    assert verdict.keep is keep
    if not keep:
        assert verdict.reason == "license_not_allowed"
        assert verdict.signals["allowed_licenses"] < verdict.signals["licenses"]


def test_license_policy_any_and_required_license() -> None:
    any_policy = LicenseFilter(CodeFiltersConfig.model_validate({"license": {"policy": "any"}}).license)
    assert any_policy(code_doc(licenses=["MIT", "GPL-2.0"])).keep
    required = LicenseFilter(CodeFiltersConfig.model_validate({"license": {"require_license": True}}).license)
    verdict = required(code_doc())
    assert not verdict.keep and verdict.reason == "no_license"
    assert expression_allowed("Apache-2.0 OR MIT", frozenset({"mit"}))


# ---- heuristics ------------------------------------------------------------------------------------


def heuristics(**overrides: object) -> HeuristicsFilter:
    return HeuristicsFilter(CodeFiltersConfig.model_validate({"heuristics": overrides}).heuristics)


def test_starcoder_line_and_alphanumeric_rules() -> None:
    f = heuristics()
    assert f(code_doc()).keep
    long_line = f(code_doc(PY_MODULE + "DATA = '" + "ab " * 400 + "'\n"))
    assert long_line.reason == "max_line_length" and long_line.signals["max_line_length"] > 1000
    wide = f(code_doc("\n".join("x = '" + "word " * 25 + "'" for _ in range(20))))
    assert wide.reason == "avg_line_length" and wide.signals["avg_line_length"] > 100
    art = f(code_doc("# " + "-=+*/|\\ " * 30 + "\n" + "#    *** ### ~~~ +++ ---\n" * 40))
    assert art.reason == "alphanum_fraction" and art.signals["alphanum_fraction"] < 0.25


def test_size_bounds() -> None:
    f = heuristics(max_bytes=4000, min_bytes=10)
    assert f(code_doc("x = 1\n")).reason == "too_small"
    big = f(code_doc(PY_MODULE * 20))
    assert big.reason == "too_large" and big.signals["bytes"] > 4000


def test_encoded_data_base64_hex_and_unicode_escapes() -> None:
    pem = ('CERT = """\n-----BEGIN CERTIFICATE-----\n'
           + ("MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n" * 30))
    verdict = heuristics()(code_doc(PY_MODULE + pem + '-----END CERTIFICATE-----\n"""\n'))
    assert verdict.reason == "encoded_data" and verdict.signals["encoded_longest_run"] > 1024
    icon = "ICON = (\n" + "".join(f"    '{'QUJD' * 16}'\n" for _ in range(60)) + ")\n"
    verdict = heuristics()(code_doc(PY_MODULE + icon))
    assert verdict.reason == "encoded_data" and verdict.signals["encoded_fraction"] > 0.5
    table = ("static const unsigned char font[] = {\n"
             + "    0x00, 0x3c, 0x66, 0x66, 0x7e, 0x66, 0x66, 0x00,\n" * 80 + "};\n")
    assert heuristics()(code_doc(table, lang="C", path="font.c")).reason == "encoded_data"
    escapes = 'S = "' + "\\u0041\\u0042" * 300 + '"\n'
    total, longest = encoded_runs(escapes.encode())
    assert longest >= 3600 and total >= longest


def test_binary_content_nul_bytes_and_undecodable_bytes() -> None:
    raw = bytes(range(256)) * 8
    decoded = raw.decode("utf-8", "replace")  # what a binary file becomes when read leniently
    for text in (decoded, PY_MODULE + "\x00" * 200):
        verdict = heuristics()(code_doc(text))
        assert not verdict.keep and verdict.reason == "binary_content"
        assert verdict.signals["binary_fraction"] > 0.01


def test_a_20mb_minified_file_gets_a_reason_from_every_filter_that_sees_it(chain) -> None:  # type: ignore[no-untyped-def]
    minified = "!function(e,t){" + ";".join(f"var a{i}=function(n){{return n*{i}}}" for i in range(700_000)) + "}();"
    assert len(minified) > 20_000_000
    doc = code_doc(minified, lang="JavaScript", source="javascript", path="dist/app.js")
    result = run_chain(doc, chain)
    assert result.reason == "heuristics.too_large"
    assert GeneratedFilter(CodeFiltersConfig().generated)(doc).reason == "minified"
    alone = build_code_filters(CodeFiltersConfig(), only=["syntax"])
    assert run_chain(doc, alone).verdicts[-1][1].signals == {"parsed": 0.0, "too_large_to_parse": 1.0}


def test_signals_are_the_stack_metadata_columns() -> None:
    stats = line_stats("ab\ncdef\n\nx")
    assert (stats.lines, stats.max_line_length, stats.avg_line_length) == (4, 4, 1.75)
    assert alnum_fraction("a1_ é!") == pytest.approx(3 / 6)
    assert merged_length([(0, 5), (3, 8), (10, 12), (11, 11)]) == 10


# ---- generated -------------------------------------------------------------------------------------


def generated(doc: Document):  # type: ignore[no-untyped-def]
    return GeneratedFilter(CodeFiltersConfig().generated)(doc)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("web/package-lock.json", "lock_file"),
        ("Cargo.lock", "lock_file"),
        ("go.sum", "lock_file"),
        ("google/api/http_pb2.py", "generated_path"),
        ("api/v1/service.pb.go", "generated_path"),
        ("src/Forms/Main.Designer.cs", "generated_path"),
        ("build/moc_window.cpp", "generated_path"),
        ("app/node_modules/left-pad/index.js", "vendored_path"),
        ("dist/jquery.min.js", "minified"),
    ],
)
def test_generated_by_path(path: str, reason: str) -> None:
    verdict = generated(code_doc("x = 1\n", path=path))
    assert (verdict.keep, verdict.reason) == (False, reason)


@pytest.mark.parametrize(
    ("header", "reason", "signal"),
    [
        ("# Generated by the protocol buffer compiler.  DO NOT EDIT!\n# source: a.proto\n", "tool_marker",
         "protoc_marker_line"),
        ("/* This file was automatically generated by SWIG (https://www.swig.org). */\n", "tool_marker",
         "swig_marker_line"),
        ("/* A Bison parser, made by GNU Bison 3.8.2.  */\n", "tool_marker", "bison_marker_line"),
        ("/****************************************************************************\n"
         "** Meta object code from reading C++ file 'window.h'\n", "tool_marker", "qt_moc_marker_line"),
        ("/* AUTOGENERATED FILE. DO NOT EDIT. */\n", "header_marker", "do_not_edit_line"),
        ("# Auto-generated by Tools/build/generate_token.py\n", "header_marker", "generated_by_line"),
        ("// <auto-generated>\n//     This code was generated by a tool.\n// </auto-generated>\n", "header_marker",
         "this_file_generated_line"),
        ("/**\n * @generated SignedSource<<abc>>\n */\n", "header_marker", "at_generated_line"),
        ("-- WARNING: This file was generated by a tool and changes will be lost.\n", "header_marker",
         "this_file_generated_line"),
    ],
)
def test_generated_by_header_marker(header: str, reason: str, signal: str) -> None:
    verdict = generated(code_doc("// Copyright 2024 The Authors\n" + header + PY_MODULE))
    assert (verdict.keep, verdict.reason) == (False, reason)
    assert signal in verdict.signals


def test_go_generated_convention_anywhere_in_the_file() -> None:
    text = ("// Copyright 2024\n" + "//\n" * 60
            + "// Code generated by stringer -type=Kind; DO NOT EDIT.\n\npackage kind\n")
    verdict = generated(code_doc(text, lang="Go", path="kind_string.go"))
    assert verdict.reason == "header_marker" and verdict.signals["go_code_generated_line"] == 61


@pytest.mark.parametrize(
    "text",
    [
        # spf13/cobra doc/util.go: a comment mentions generation, the file is hand-written
        "// Basically this is a test for a parent command or a subcommand which is\n"
        "// both not deprecated and not the autogenerated help command.\nfunc hasSeeAlso() bool { return true }\n",
        # CPython Lib/_compat_pickle.py
        "# This module is used to map the old Python 2 names to the new names used in\n"
        "# Python 3 for the pickle module.  This needed to make pickle streams\n"
        "# generated with Python 2 loadable by Python 3.\n",
        "generated = []\nfor item in items:\n    generated.append(item)\n",
        # beartype: a docstring sentence that runs on to a line starting with "generated by"
        'def f():\n    """Checks what type-checking wrapper functions\n'
        '    generated by the :func:`beartype` decorator do."""\n',
        "def generated_code_paths():\n    # files we generate are listed in BUILD\n    return []\n",
    ],
)
def test_mentions_of_generation_are_not_markers(text: str) -> None:
    assert generated(code_doc(text + PY_MODULE)).keep


def test_minified_by_content_and_bundles() -> None:
    minified = "var a=function(n){return n+1},b=function(n){return a(n)*2};" * 30 + "\n"
    verdict = generated(code_doc(minified * 3, lang="JavaScript", path="static/app.js"))
    assert verdict.reason == "minified" and verdict.signals["avg_line_length"] > 110
    webpack = "/******/ (function(modules) { // webpackBootstrap\n" + "/******/ \tvar x = __webpack_require__(1);\n" * 5
    assert generated(code_doc(webpack, lang="JavaScript", path="bundle.js")).reason == "bundle"
    amalgamation = "".join(f"// #include <lib/part{i}.hpp>\nint part{i}();\n" for i in range(5))
    verdict = generated(code_doc(amalgamation, lang="C++", path="single_include/lib.hpp"))
    assert verdict.reason == "bundle" and verdict.signals["amalgamated_include_markers"] == 5


# ---- data_like ----------------------------------------------------------------------------------------


def data_like(doc: Document):  # type: ignore[no-untyped-def]
    return DataLikeFilter(CodeFiltersConfig().data_like)(doc)


def test_xml_documents_and_data_formats_outside_starcoder_bounds() -> None:
    pom = '<?xml version="1.0" encoding="UTF-8"?>\n<project>\n  <modelVersion>4.0.0</modelVersion>\n</project>\n'
    assert data_like(code_doc(pom, lang="XML", path="pom.xml")).reason == "xml_declaration"
    xslt = '<?xml version="1.0"?>\n<xsl:stylesheet version="1.0"></xsl:stylesheet>\n'
    assert data_like(code_doc(xslt, lang="XSLT", path="t.xsl")).keep
    small = json.dumps({"name": "pkg", "version": "1.0.0", "main": "index.js", "license": "MIT"})
    assert data_like(code_doc(small, lang="JSON", path="package.json")).keep
    big = json.dumps([{"id": i, "name": f"item {i}"} for i in range(400)])
    verdict = data_like(code_doc(big, lang="JSON", path="fixtures.json"))
    assert verdict.reason == "data_format_size" and verdict.signals["chars"] > 5000


def test_sql_dump_and_literal_tables_are_data() -> None:
    rows = "".join(f"INSERT INTO `Track` (`TrackId`, `Name`, `Milliseconds`) VALUES ({i}, N'Song {i}', {i * 1000});\n"
                   for i in range(300))
    dump = "CREATE TABLE `Track` (`TrackId` INT NOT NULL, `Name` NVARCHAR(200));\n\n" + rows
    verdict = data_like(code_doc(dump, lang="SQL", source="sql", path="db.sql"))
    assert verdict.reason == "literal_rows" and verdict.signals["literal_row_fraction"] > 0.9
    tuples = ("INSERT INTO t VALUES\n" + "".join(f"    ({i}, 'x{i}', NULL, 2.5e-3),\n" for i in range(200))
              + "    (0, '', NULL, 0);\n")
    assert data_like(code_doc(tuples, lang="SQL", source="sql", path="t.sql")).reason == "literal_rows"
    constants = "ERRORS = {\n" + "".join(f"    {i}: 'error {i}',\n" for i in range(30)) + "}\n" + PY_MODULE * 8
    assert data_like(code_doc(constants)).keep


# ---- every verdict carries a reason and signals; nothing crashes ----------------------------------


REASONS = re.compile(
    r"^(language\.language_not_allowed|license\.(license_not_allowed|no_license)"
    r"|heuristics\.(too_large|too_small|binary_content|max_line_length|avg_line_length|alphanum_fraction|encoded_data)"
    r"|generated\.(lock_file|generated_path|vendored_path|tool_marker|header_marker|minified|bundle)"
    r"|data_like\.(xml_declaration|data_format_size|literal_rows)"
    r"|syntax\.(syntax_errors|truncated|parse_timeout))$"
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(min_size=1, max_size=3000),
    lang=st.sampled_from(["Python", "C", "C++", "SQL", "Shell", "Jupyter Notebook", "JavaScript", "Markdown", ""]),
    path=st.sampled_from(["a.py", "a.h", "q.sql", "x.min.js", "package-lock.json", "a.tsx", ""]),
)
def test_any_input_gets_a_documented_verdict_with_signals(chain, text: str, lang: str, path: str) -> None:  # type: ignore[no-untyped-def]
    source = UNBUCKETED if lang in ("", "Markdown") else "python"
    result = run_chain(code_doc(text, lang=lang, source=source, path=path), chain)
    for _, verdict in result.verdicts:
        assert all(isinstance(v, float) for v in verdict.signals.values())
    if not result.kept:
        assert REASONS.match(result.reason), result.reason
        assert "error" not in result.verdicts[-1][1].meta


def grammars(**override: str) -> CodeFiltersConfig:
    return CodeFiltersConfig.model_validate({"syntax": {"grammars": {**DEFAULT_GRAMMARS, **override}}})


def test_only_a_tree_sitter_language_capsule_reaches_tree_sitter() -> None:
    import datetime

    import tree_sitter_python

    assert is_language_capsule(tree_sitter_python.language())
    assert not is_language_capsule(datetime.datetime_CAPI)  # a capsule, of another name
    for value in (os.getpid(), 0, 1, 2**40, None, "tree_sitter.Language", b"", 1.5, object()):
        assert not is_language_capsule(value)


def test_a_config_naming_a_function_that_returns_an_int_never_crashes() -> None:
    """Issue 23: `tree_sitter.Language(int)` dereferences the int, so whether it crashes depends on
    the process id. Fifty fresh processes (fifty pids) must each get the ConfigError, none a crash."""
    script = ("from lemur_corpus.errors import ConfigError\n"
              "from lemur_corpus.filters.code.syntax import load_grammar\n"
              "try:\n    load_grammar('Python', 'os:getpid')\n"
              "except ConfigError:\n    raise SystemExit(0)\n"
              "raise SystemExit(3)\n")
    codes = []
    for _ in range(50):
        codes.append(subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120).returncode)
    assert codes == [0] * 50, f"exit codes (a negative one is a signal, -11 a segfault): {codes}"


def test_a_grammar_that_does_not_load_is_a_start_up_error() -> None:
    missing = grammars(Python="tree_sitter_cobol:language")
    with pytest.raises(ConfigError, match=r"grammars\['Python'\]: cannot import 'tree_sitter_cobol'"):
        build_code_filters(missing)
    no_function = grammars(Python="tree_sitter_python:lang")
    with pytest.raises(ConfigError, match="has no function 'lang'"):
        check_code_filters(no_function)
    not_a_grammar = grammars(Python="os:getpid")  # returns an int: tree-sitter would take it for a pointer
    with pytest.raises(ConfigError, match=r"grammars\['Python'\]: os:getpid does not load: it returned int"):
        check_code_filters(not_a_grammar)
    raises = grammars(Python="json:loads")  # needs an argument: calling it raises
    with pytest.raises(ConfigError, match=r"json:loads does not load: calling it raised TypeError"):
        check_code_filters(raises)
    with pytest.raises(ValueError, match="is not '<module>:<function>'"):
        grammars(Python="tree_sitter_python")
    with pytest.raises(ConfigError, match="'TSX' is used but has no grammar"):
        build_code_filters(
            CodeFiltersConfig.model_validate({"syntax": {"grammars": {"Python": "tree_sitter_python:language"}}}))
    # only the syntax filter needs grammars: the others build without loading any
    assert [f.name for f in build_code_filters(missing, only=["heuristics"])] == ["heuristics"]
