"""Lemur's language buckets: a file's language (The Stack's `lang`, else its extension) and its bucket."""

from __future__ import annotations

import collections

import pytest

from lemur_corpus.buckets import (
    DEFAULT_BUCKET_BY_LANGUAGE,
    DEFAULT_LANGUAGE_BY_EXTENSION,
    UNBUCKETED,
    CodeBucketsConfig,
    bucket_of,
    language_of,
)
from lemur_corpus.lemur import CODE_BUCKETS
from tests.conftest import read_jsonl, shared_path

TABLE = CodeBucketsConfig()


def test_the_records_language_wins_then_the_extension() -> None:
    assert language_of("Python", "setup.sh", TABLE) == "Python"
    assert language_of("", "tools/Build.SH", TABLE) == "Shell"
    assert language_of(None, "src/main.cc", TABLE) == "C++"
    assert language_of("", "include/lib.h", TABLE) == "C"  # as The Stack files it
    assert language_of("", "notes/analysis.ipynb", TABLE) == "Jupyter Notebook"
    assert language_of("", "LICENSE", TABLE) == ""
    assert language_of("", "archive.tar.gz", TABLE) == ""
    assert language_of("", None, TABLE) == ""


def test_buckets_are_lemurs_and_everything_else_is_unbucketed() -> None:
    assert bucket_of("Python", TABLE) == "python"
    assert bucket_of("PLpgSQL", TABLE) == "sql"
    assert bucket_of("Jupyter Notebook", TABLE) == "notebooks"
    assert bucket_of("C++", TABLE) == "cpp"
    assert bucket_of("Rust", TABLE) == "others"
    for data_or_prose in ("Markdown", "JSON", "YAML", "XML", "CSV", "HTML", "reStructuredText", "", "Klingon"):
        assert bucket_of(data_or_prose, TABLE) == UNBUCKETED


def test_the_default_table_covers_every_lemur_code_bucket_and_nothing_else() -> None:
    buckets = set(DEFAULT_BUCKET_BY_LANGUAGE.values())
    assert buckets == set(CODE_BUCKETS)
    # Every extension names a language; the unbucketed ones are data, markup or prose formats.
    unbucketed = {lang for lang in DEFAULT_LANGUAGE_BY_EXTENSION.values() if lang not in DEFAULT_BUCKET_BY_LANGUAGE}
    assert unbucketed == {"Markdown", "reStructuredText", "JSON", "YAML", "XML", "CSV", "HTML", "CSS", "TOML"}
    assert all(ext.startswith(".") and ext == ext.lower() for ext in DEFAULT_LANGUAGE_BY_EXTENSION)


def test_the_table_is_config() -> None:
    custom = CodeBucketsConfig(bucket_by_language={"Python": "python", "Markdown": "others"})
    assert bucket_of("Markdown", custom) == "others"
    assert bucket_of("Java", custom) == UNBUCKETED
    with pytest.raises(ValueError, match="extra"):
        CodeBucketsConfig.model_validate({"buckets": {}})


def test_extensions_agree_with_the_stacks_languages_on_real_files() -> None:
    """For every real file whose extension is in the table, the table names The Stack's language."""
    records = read_jsonl(shared_path("code", "code_sample.jsonl.zst"))
    checked = collections.Counter()
    for record in records:
        path = record["max_stars_repo_path"]
        inferred = language_of("", path, TABLE)
        if inferred:
            assert inferred == record["lang"], path
            checked[inferred] += 1
    assert sum(checked.values()) > 1800
    buckets = collections.Counter(bucket_of(r["lang"], TABLE) for r in records)
    assert buckets[UNBUCKETED] == sum(1 for r in records if r["lang"] not in DEFAULT_BUCKET_BY_LANGUAGE)
    assert {"python", "shell", "java", "javascript", "c", "cpp", "php", "sql", "others"} <= set(buckets)
