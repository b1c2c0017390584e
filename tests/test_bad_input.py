"""Bad input, on real files corrupted by the tests: a clear message naming the file (and line), or a
drop record with its reason, and in = out + Σ dropped at every stage.

Where each case is tested (this file adds what the others do not):

- truncated .zst / .gz: tests/test_io.py (file and line of the break), tests/test_build.py (the build
  stops, no manifest).
- non-JSON lines, invalid UTF-8, missing text: tests/test_build.py, tests/test_sources.py (drops with
  file:line); here: random mixes.
- wrong field types: here: any JSON value in any field of every layout is a Document or a Drop, never
  an exception.
- NUL bytes: here: escaped NULs are removed by normalization, raw NUL bytes make the line a `bad_json`
  drop.
- a 50 MB single-line document, binary files in a code source, duplicate ids, an empty compressed
  file: here, in one build.
- empty files: tests/test_io.py (0 bytes: an error naming the file); here: a compressed file holding
  no record.
- a path that matches nothing: tests/test_io.py, tests/test_build.py (the command line's one-line
  message).
- an unreadable file: here: a directory, a FIFO, a broken link (refused by name before reading), a
  file whose read fails (EIO), a file gone before its worker opens it. Tests run as root, for whom
  `chmod 000` stops nothing, so none of these rely on it.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lemur_corpus.accounting import Drop
from lemur_corpus.cli import main
from lemur_corpus.config import BuildConfig, lemur_mixture_sources, parse_config
from lemur_corpus.document import Document
from lemur_corpus.errors import CorpusError, InputFileError
from lemur_corpus.normalize import normalize_document
from lemur_corpus.pipelines.build import run_build
from lemur_corpus.pipelines.direct_runner import beam_pipeline
from lemur_corpus.sources import plan_input, planned_documents, read_task
from lemur_corpus.sources.files import record_to_item
from lemur_corpus.sources.layouts import LAYOUTS
from tests.buildutil import slice_config
from tests.conftest import read_jsonl, shared_path


def one_input(paths: list[str], fmt: str = "jsonl", **extra: Any) -> BuildConfig:
    return parse_config({
        "inputs": [{"name": "web", "format": fmt, "kind": "text", "source": "refinedweb", "paths": paths}],
        "mixture": {"sources": {"refinedweb": {"kind": "text", "weight": 100}}}, **extra,
    })


def read_all(config: BuildConfig) -> list[Document | Drop]:
    tasks, _ = plan_input(config.inputs[0], config)
    return [item for task in tasks for item in read_task(task, config)]


@pytest.fixture(scope="module")
def pages() -> list[dict]:
    return read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))[:40]


# ---------------------------------------------------------------------------------------------
# Files that cannot be read


def test_paths_that_are_not_files_are_refused_by_name_before_reading(tmp_path: Path) -> None:
    (tmp_path / "folder.jsonl").mkdir()
    os.mkfifo(tmp_path / "pipe.jsonl")
    (tmp_path / "gone.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    expected = {
        "folder.jsonl": "not a regular file: it is a directory",
        "pipe.jsonl": "not a regular file: it is a named pipe (FIFO)",  # reading it would block a worker forever
        "gone.jsonl": f"a broken symbolic link (its target {tmp_path / 'nowhere.jsonl'} does not exist)",
    }
    for name, message in expected.items():
        with pytest.raises(InputFileError) as err:
            read_all(one_input([str(tmp_path / name)], allow_empty_files=True))
        assert err.value.path == str(tmp_path / name) and message in err.value.reason, name


def test_the_command_line_names_the_bad_path_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    os.mkfifo(tmp_path / "pipe.jsonl.zst")
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(one_input([str(tmp_path / "pipe.jsonl.zst")]).resolved()))
    assert main(["build", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'pipe.jsonl.zst'}: not a regular file")
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_file_gone_before_its_worker_reads_it_names_the_file(tmp_path: Path, pages: list[dict]) -> None:
    path = tmp_path / "pages.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in pages[:3]))
    config = one_input([str(path)])
    tasks, _ = plan_input(config.inputs[0], config)
    path.unlink()  # between planning (driver) and reading (worker)
    with pytest.raises(InputFileError, match="cannot open") as err:
        list(read_task(tasks[0], config))
    assert err.value.path == str(path)


@pytest.mark.slow
def test_a_read_error_stops_the_build_naming_the_file_and_line(tmp_path: Path) -> None:
    """A file whose read fails with EIO even for root: /proc/self/mem (of the reading process) behind a
    link named like an input file. Its size is 0, so it passes only with allow_empty_files."""
    mem = tmp_path / "mem.jsonl"
    mem.symlink_to("/proc/self/mem")
    config = slice_config(code_rows=20, inputs=[
        {"name": "web", "format": "dolma", "kind": "text", "source": "refinedweb", "paths": [str(mem)]},
        {"name": "stack", "format": "stack", "kind": "code",
         "paths": [str(shared_path("code", "code_sample.jsonl.zst"))], "limit_per_file": 20},
    ], allow_empty_files=True)
    with pytest.raises(CorpusError) as err:
        run_build(config, str(tmp_path / "out"))
    assert f"{mem}, line 1: read error: [Errno 5] Input/output error" in str(err.value)
    assert not (tmp_path / "out" / "manifest.json").exists() and not list((tmp_path / "out").glob("shards/*"))


# ---------------------------------------------------------------------------------------------
# Records: every field of every layout, any type


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
FIELDS = ("text", "content", "id", "hexsha", "url", "meta", "metadata", "lang", "max_stars_repo_path",
          "max_stars_repo_name", "max_stars_repo_licenses", "max_stars_count", "path", "source", "lang_score")


LAYOUT_CONFIGS = {
    layout: parse_config({
        "inputs": [{"name": "x", "format": layout, "paths": ["x.jsonl"],
                    **({"kind": "code"} if layout == "stack" else {"kind": "text", "source": "refinedweb"})}],
        "mixture": {"sources": {k: v.model_dump() for k, v in lemur_mixture_sources().items()}},
    })
    for layout in LAYOUTS
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=st.sampled_from(sorted(LAYOUTS)), record=st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES))
def test_any_field_of_any_type_gives_a_document_or_a_drop(layout: str, record: dict) -> None:
    config = LAYOUT_CONFIGS[layout]
    item = record_to_item(record, config.inputs[0], config, "x.jsonl:7", 100)
    if isinstance(item, Drop):
        assert item.stage == "read" and item.origin == "x.jsonl:7"
        assert item.reason in ("missing_text_field", "wrong_field_type", "not_an_object")
    else:
        assert isinstance(item.text, str) and item.id.startswith("x/") and item.origin == "x.jsonl:7"
        json.dumps(item.meta)  # meta stays plain JSON whatever came in


# ---------------------------------------------------------------------------------------------
# Random mixes of good and bad records: nothing lost, every bad line named


def _kinds(page: dict, n: int) -> dict[str, tuple[bytes, str | None]]:
    """Lines of one kind each, built from a real page: (line, the reason it is dropped at read
    (None: read as a document), ...)."""
    text = page["text"]
    good = json.dumps({"id": f"p{n}", "text": text}).encode()
    return {
        "good": (good, None),
        "good_non_ascii": (json.dumps({"id": f"u{n}", "text": text}, ensure_ascii=False).encode(), None),
        "escaped_nul": (json.dumps({"id": f"z{n}", "text": text[:200] + "\x00" + text[200:400]}).encode(), None),
        "lone_surrogate": (json.dumps({"id": f"s{n}", "text": "\ud800 " + text[:300]}).encode(), None),
        "empty_text": (json.dumps({"id": f"e{n}", "text": " \n\t"}).encode(), None),
        "cut_json": (good[: len(good) // 2], "bad_json"),
        "raw_nul": (good.replace(b'"text": "', b'"text": "\x00', 1), "bad_json"),
        "invalid_utf8": (good.replace(b'"text": "', b'"text": "\xc3\x28', 1), "invalid_utf8"),
        "not_an_object": (json.dumps([text[:50]]).encode(), "not_an_object"),
        "missing_text": (json.dumps({"id": f"m{n}", "body": text[:50]}).encode(), "missing_text_field"),
        "wrong_type": (json.dumps({"id": f"w{n}", "text": [text[:50]]}).encode(), "wrong_field_type"),
        "deep_json": (b"[" * 100_000 + b"]" * 100_000, "bad_json"),
        "same_id": (json.dumps({"id": "same", "text": text}).encode(), None),  # dedup drops all but one
    }


KIND_NAMES = sorted(_kinds({"text": "x" * 500}, 0))
COMPRESSIONS = {"": lambda b: b, ".gz": lambda b: gzip.compress(b, mtime=0),
                ".zst": zstandard.ZstdCompressor().compress}


def write_mix(folder: Path, names: list[str], blank_every: int, suffix: str, pages: list[dict]) -> tuple[Path, list]:
    lines, expected = [], []
    for n, name in enumerate(names):
        line, reason = _kinds(pages[n % len(pages)], n)[name]
        if blank_every and n % blank_every == 0:
            lines.append(b"   ")  # blank lines separate nothing: not records
        lines.append(line)
        expected.append((len(lines), name, reason))
    path = folder / f"mix.jsonl{suffix}"
    path.write_bytes(COMPRESSIONS[suffix](b"\n".join(lines) + (b"\n" if lines else b"")))
    return path, expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(KIND_NAMES), min_size=1, max_size=25), blank_every=st.integers(0, 4),
       suffix=st.sampled_from(sorted(COMPRESSIONS)))
def test_random_mixes_lose_nothing_and_name_every_bad_line(names: list[str], blank_every: int, suffix: str,
                                                            tmp_path_factory: pytest.TempPathFactory,
                                                            pages: list[dict]) -> None:
    path, expected = write_mix(tmp_path_factory.mktemp("mix"), names, blank_every, suffix, pages)
    items = read_all(one_input([str(path)]))
    assert len(items) == len(expected)  # read: in = out + dropped, one item per record
    for (line, name, reason), item in zip(expected, items, strict=True):
        assert item.origin == f"{path}:{line}", name
        assert (item.reason if isinstance(item, Drop) else None) == reason, name
    documents = [i for i in items if isinstance(i, Document)]
    normalized = [normalize_document(d) for d in documents]  # normalize: in = out + dropped
    kept = [d for d in normalized if isinstance(d, Document)]
    dropped = [d for d in normalized if isinstance(d, Drop)]
    assert len(kept) + len(dropped) == len(documents)
    assert all(d.reason == "empty_text" for d in dropped)
    assert len(dropped) == names.count("empty_text")
    assert not any("\x00" in d.text or "\ud800" in d.text for d in kept)


@pytest.mark.slow
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(KIND_NAMES), min_size=1, max_size=30))
def test_the_pipeline_ledger_balances_on_random_mixes(names: list[str], tmp_path_factory: pytest.TempPathFactory,
                                                       pages: list[dict]) -> None:
    """read → normalize → filter → dedup in Beam, with the build's ledger: every stage balances."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from lemur_corpus.accounting import imbalances, to_report
    from lemur_corpus.pipelines.dedup import Dedup
    from lemur_corpus.pipelines.filter import FilterFn
    from lemur_corpus.pipelines.ledger import Accounting, DocumentStage, StageFn, gather
    from lemur_corpus.pipelines.read import ReadInputs

    folder = tmp_path_factory.mktemp("ledger")
    path, _ = write_mix(folder, names, 0, "", pages[:3])  # three pages: the same text recurs (exact duplicates)
    config = one_input([str(path)])
    tasks, _ = plan_input(config.inputs[0], config)
    out, drops_out = folder / "accounting.json", folder / "drops.json"
    with beam_pipeline(PipelineOptions()) as p:
        read = p | "Read" >> ReadInputs(tasks, config)
        normalized = read.docs | "Normalize" >> DocumentStage("normalize", StageFn(normalize_document, "normalize"))
        filtered = normalized.docs | "Filter" >> DocumentStage("filter", FilterFn(config.filters))
        deduped = filtered.docs | "Dedup" >> Dedup(config.dedup, planned_documents(tasks, config.inputs))
        ledger = gather(p, [read, normalized, filtered, deduped])
        _ = (ledger.tallies | "Accounting" >> Accounting(ledger.drops)
             | beam.Map(lambda table: out.write_text(json.dumps(to_report(table)))))
        all_drops = ledger.drops | "AllDrops" >> beam.Flatten()
        _ = (all_drops | "DropRecords" >> beam.Map(lambda d: d.to_dict()) | beam.combiners.ToList()
             | "WriteDrops" >> beam.Map(lambda drops: drops_out.write_text(json.dumps(drops))))
    report = json.loads(out.read_text())
    drops = json.loads(drops_out.read_text())
    assert imbalances(report) == []
    assert report["read"]["web"]["in"]["docs"] == len(names)
    kept = sum(g["out"]["docs"] for g in report.get("dedup", {}).values())
    dropped = sum(d["docs"] for stage in report.values() for g in stage.values() for d in g["dropped"].values())
    assert kept + dropped == len(names)
    # every copy of the shared id that reaches dedup but one is a duplicate_id drop (the filters may
    # drop some copies first: the text under the id is one of three real pages, two of them German)
    same_before_dedup = [d for d in drops if d["id"] == "web/same" and d["stage"] != "dedup"]
    reaching_dedup = names.count("same_id") - len(same_before_dedup)
    duplicate_ids = [d for d in drops if d["reason"] == "duplicate_id"]
    assert len(duplicate_ids) == max(reaching_dedup - 1, 0)
    if reaching_dedup > 1:
        assert report["dedup"]["refinedweb"]["dropped"]["duplicate_id"]["docs"] == reaching_dedup - 1


# ---------------------------------------------------------------------------------------------
# One build: a 50 MB single-line document, binary files in a code source, duplicate ids, an
# empty compressed file


@pytest.fixture(scope="module")
def odd_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    folder = tmp_path_factory.mktemp("odd_input")
    code = read_jsonl(shared_path("code", "code_sample.jsonl.zst"))
    python = [r for r in code if r["lang"] == "Python"][:30]
    big = dict(python[0], hexsha="b" * 40, max_stars_repo_path="big.py")
    big["content"] = ("\n".join(r["content"] for r in python)).replace("\n", " ; ")  # one line
    big["content"] = (big["content"] * (50_000_000 // len(big["content"]) + 1))[:50_000_000]
    binary = []
    for i, warc in enumerate(sorted(shared_path("web", "warc").glob("*.warc.gz"))):
        blob = warc.read_bytes()[:30_000]  # a real binary file, as a lossy export would carry it
        binary.append(dict(python[1], hexsha=f"{i:040d}", max_stars_repo_path=f"data{i}.py",
                           content=blob.decode("latin-1" if i % 2 else "utf-8", "replace")))
    first = folder / "code-a.jsonl.zst"
    first.write_bytes(zstandard.ZstdCompressor().compress(
        "".join(json.dumps(r) + "\n" for r in python[:20] + [big] + binary).encode()))
    twin = dict(python[5], content=python[5]["content"] + "\n# another copy under the same hexsha\n")
    second = folder / "code-b.jsonl.zst"
    second.write_bytes(zstandard.ZstdCompressor().compress(
        "".join(json.dumps(r) + "\n" for r in [twin] + python[20:]).encode()))
    empty = folder / "code-c.jsonl.zst"
    empty.write_bytes(zstandard.ZstdCompressor().compress(b""))  # a valid file holding no record
    config = slice_config(inputs=[
        {"name": "stack", "format": "stack", "kind": "code", "paths": [str(first), str(second), str(empty)]},
        {"name": "cc", "format": "dolma", "kind": "text", "source": "wikipedia",
         "paths": [str(shared_path("web", "commoncrawl_samples.jsonl.zst"))]},
    ])
    out = tmp_path_factory.mktemp("odd_build")
    return out, run_build(config, str(out)), {"big": big, "binary": binary, "twin": twin, "first": first,
                                             "second": second, "empty": empty, "records": len(python) + 2 + len(binary)}


def _drops(out: Path) -> list[dict]:
    return [row for path in sorted(out.glob("drops/*.jsonl.zst")) for row in read_jsonl(path)]


@pytest.mark.slow
def test_odd_inputs_are_accounted_for_and_the_build_completes(odd_build: tuple[Path, dict, dict]) -> None:
    out, manifest, made = odd_build
    assert manifest["accounting"]["balanced"]
    assert manifest["accounting"]["stages"]["read"]["stack"]["in"]["docs"] == made["records"]
    stack = next(i for i in manifest["inputs"] if i["name"] == "stack")
    assert str(made["empty"]) in {f["path"] for f in stack["paths"]}  # the empty file is an input like the others
    drops = {row["id"]: row for row in _drops(out)}
    big = drops["stack/" + "b" * 40]
    assert (big["stage"], big["reason"]) == ("filter", "heuristics.too_large")
    assert big["origin"] == f"{made['first']}:21" and big["nbytes"] >= 50_000_000
    for i in range(len(made["binary"])):
        row = drops[f"stack/{i:040d}"]
        assert (row["stage"], row["reason"]) == ("filter", "heuristics.binary_content"), row


@pytest.mark.slow
def test_an_id_read_twice_keeps_the_first_and_names_where_the_other_was(odd_build: tuple[Path, dict, dict]) -> None:
    out, manifest, made = odd_build
    twin_id = "stack/" + made["twin"]["hexsha"]
    rows = [row for row in _drops(out) if row["id"] == twin_id]
    assert [(r["stage"], r["reason"]) for r in rows] == [("dedup", "duplicate_id")]
    assert rows[0]["origin"] == f"{made['second']}:1"
    assert rows[0]["detail"] == f"the id was also read at {made['first']}:6"
    assert manifest["accounting"]["stages"]["dedup"]["python"]["dropped"]["duplicate_id"]["docs"] == 1
