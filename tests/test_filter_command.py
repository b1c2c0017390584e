"""`corpus filter`: kept records and a verdict for every record, the build's filters, clear errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lemur_corpus.cli import main
from lemur_corpus.filters.text.config import LanguageIdConfig
from lemur_corpus.filters.text.lid import LanguageIdFilter
from lemur_corpus.normalize import normalize_text
from tests.conftest import read_jsonl, shared_path
from tests.test_text_filters import ENGLISH, GERMAN, doc


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def verdicts(out: Path) -> list[dict]:
    return read_jsonl(out / "verdicts.jsonl")


@pytest.fixture()
def mixed_input(tmp_path: Path) -> Path:
    records = [
        json.dumps({"id": "en-1", "text": ENGLISH, "url": "https://example.org/a", "lang": "en"}),
        json.dumps({"id": "de-1", "text": GERMAN, "url": "https://example.org/b"}),
        json.dumps({"id": "empty-1", "text": "   \n  "}),
        "{not json",
        json.dumps({"text": ENGLISH.replace("library", "museum")}),
        json.dumps({"id": "short-1", "text": "Hello there."}),
    ]
    return write_jsonl(tmp_path / "pages.jsonl", records)


def test_text_filter_writes_kept_records_verdicts_and_summary(mixed_input: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    assert main(["filter", "--input", str(mixed_input), "--kind", "text", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "6 records" in printed and "2 kept" in printed

    rows = verdicts(out)
    assert [r["id"] for r in rows] == ["en-1", "de-1", "empty-1", f"{mixed_input}:4", f"{mixed_input}:5", "short-1"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["en-1"]["kept"] and by_id["en-1"]["reason"] == ""
    assert by_id["en-1"]["meta"]["language"] == "en"
    assert by_id["en-1"]["signals"]["gopher_quality.words"] > 50
    assert by_id["de-1"]["reason"] == "lid.language" and by_id["de-1"]["meta"]["language"] == "de"
    assert by_id["empty-1"]["reason"] == "normalize.empty_text"
    assert by_id[f"{mixed_input}:4"]["reason"] == "read.bad_json"
    assert by_id[f"{mixed_input}:5"]["kept"]  # no id field: named by its place
    assert by_id["short-1"]["reason"].startswith(("gopher_", "c4."))

    kept = read_jsonl(out / "kept-00000-of-00001.jsonl.zst")
    assert [r["id"] for r in kept] == ["en-1", f"{mixed_input}:5"]
    assert kept[0]["url"] == "https://example.org/a" and kept[0]["language"] == "en"
    assert kept[0]["text"] == ENGLISH

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["documents"], summary["kept"]) == (6, 2)
    assert summary["documents"] == summary["kept"] + sum(d["docs"] for d in summary["dropped"].values())


def test_filters_and_settings_select_and_override(mixed_input: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["filter", "--input", str(mixed_input), "--kind", "text", "--out", str(out),
                 "--filters", "lid", "--set", "lid.languages=en,de"]) == 0
    by_id = {r["id"]: r for r in verdicts(out)}
    assert by_id["de-1"]["kept"] and by_id["en-1"]["kept"]
    assert set(by_id["en-1"]["signals"]) == {"lid.language_score"}  # only the named filter ran

    assert main(["filter", "--input", str(mixed_input), "--kind", "text", "--out", str(out), "--overwrite",
                 "--filters", "gopher_quality", "--set", "gopher_quality.min_words=1000"]) == 0
    assert {r["id"]: r for r in verdicts(out)}["en-1"]["reason"] == "gopher_quality.min_words"


@pytest.mark.parametrize("args,message", [
    (["--filters", "lid,gopher"], "unknown text filter"),
    (["--set", "gopher_quality.min_word=3"], "did you mean 'min_words'"),
    (["--set", "lid.min_score=lots"], "min_score"),
    (["--set", "nonsense"], "FILTER.PARAM=VALUE"),
    (["--filters", ","], "names no filter"),
])
def test_mistakes_are_reported_before_reading(mixed_input: Path, tmp_path: Path, capsys, args: list[str],  # type: ignore[no-untyped-def]
                                              message: str) -> None:
    out = tmp_path / "out"
    assert main(["filter", "--input", str(mixed_input), "--kind", "text", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (out / "verdicts.jsonl").exists()


def test_missing_input_and_existing_output(mixed_input: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    assert main(["filter", "--input", str(tmp_path / "nope.jsonl"), "--kind", "text", "--out", str(out)]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    assert main(["filter", "--input", str(mixed_input), "--kind", "text", "--out", str(out), "--filters", "lid"]) == 0
    assert main(["filter", "--input", str(mixed_input), "--kind", "text", "--out", str(out), "--filters", "lid"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_real_pages_match_the_filter_and_do_not_depend_on_workers(tmp_path: Path) -> None:
    source = shared_path("web", "chardet_multilingual.jsonl.zst")
    other = shared_path("web", "commoncrawl_samples.jsonl.zst")
    one, two = tmp_path / "one", tmp_path / "two"
    base = ["filter", "--input", str(source), str(other), "--kind", "text", "--filters", "lid"]
    assert main([*base, "--out", str(one)]) == 0
    assert main([*base, "--out", str(two), "--", "--direct_num_workers=2",
                 "--direct_running_mode=multi_threading"]) == 0
    assert (one / "verdicts.jsonl").read_bytes() == (two / "verdicts.jsonl").read_bytes()

    lid = LanguageIdFilter(LanguageIdConfig())
    rows = verdicts(one)
    records = read_jsonl(source) + read_jsonl(other)
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        expected = lid(doc(normalize_text(record["text"])))
        assert (row["id"], row["kept"], row["meta"]["language"]) == (record["id"], expected.keep,
                                                                       expected.meta["language"])


def test_code_kind_uses_the_stack_fields_and_the_code_filters(tmp_path: Path) -> None:
    source = shared_path("code", "code_sample.jsonl.zst")
    out = tmp_path / "out"
    assert main(["filter", "--input", str(source), "--kind", "code", "--out", str(out),
                 "--filters", "language,heuristics"]) == 0
    rows = verdicts(out)
    records = read_jsonl(source)
    assert [r["id"] for r in rows] == [r["hexsha"] for r in records]
    reasons = Counter(r["reason"].split(".")[0] for r in rows if not r["kept"])
    assert set(reasons) <= {"normalize", "language", "heuristics"}  # normalize: empty files
    assert reasons["language"] > 0  # Markdown, JSON, YAML: languages with no bucket
    kept = read_jsonl(out / "kept-00000-of-00001.jsonl.zst")
    assert kept and {"hexsha", "content", "max_stars_repo_path", "lang"} <= set(kept[0])
    assert len(kept) == sum(r["kept"] for r in rows)


def test_settings_reach_nested_thresholds_and_name_what_is_wrong() -> None:
    from lemur_corpus.commands.filter import apply_settings
    from lemur_corpus.errors import ConfigError
    from lemur_corpus.filters.text.config import TextFiltersConfig

    config = apply_settings(TextFiltersConfig(), [
        "gopher_repetition.max_top_ngram_char_fraction.2=0.3", "lid.languages=en,de", "c4.min_sentences=null"])
    assert config.gopher_repetition.max_top_ngram_char_fraction == {2: 0.3, 3: 0.18, 4: 0.16}
    assert (config.lid.languages, config.c4.min_sentences) == (["en", "de"], None)
    with pytest.raises(ConfigError, match=r"max_top_ngram_char_fraction\.7 \(known: 2, 3, 4\)"):
        apply_settings(TextFiltersConfig(), ["gopher_repetition.max_top_ngram_char_fraction.7=0.3"])
    with pytest.raises(ConfigError, match="less than or equal to 1"):
        apply_settings(TextFiltersConfig(), ["lid.min_score=2"])
