"""End-to-end builds on real data: shards megatron-core reads back exactly, byte-identical reruns,
every document accounted for, bad input counted or stopped with a clear message."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from lemur_corpus.cli import main
from lemur_corpus.config import TokenizerConfig
from lemur_corpus.errors import CorpusError
from lemur_corpus.filters.code.config import CODE_FILTER_NAMES
from lemur_corpus.filters.text.config import TEXT_FILTER_NAMES
from lemur_corpus.normalize import normalize_text
from lemur_corpus.pipelines.build import run_build
from lemur_corpus.shards import read_docs_index, read_shard_documents
from lemur_corpus.tokenizer import load_tokenizer, tokenizer_identity
from tests.buildutil import output_digest, slice_config
from tests.conftest import read_jsonl, shared_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def unmixed_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("unmixed")
    config = slice_config(mixture={"enabled": False}, shards={"target_tokens": 300_000, "write_jsonl": True},
                          filters=WITHOUT_PII)
    return out, run_build(config, str(out))


# The pii filter edits texts on purpose (tests/test_pii_build.py covers it); these tests check that the
# shards hold exactly the input's texts after normalization (and C4's line removal).
WITHOUT_PII = {kind: {"filters": [n for n in names if n != "pii"]}
               for kind, names in (("text", TEXT_FILTER_NAMES), ("code", CODE_FILTER_NAMES))}


def _inputs_by_id() -> dict[str, str]:
    texts = {f"stack/{r['hexsha']}": r["content"] for r in read_jsonl(shared_path("code", "code_sample.jsonl.zst"))}
    texts.update({f"web/{r['id']}": r["text"]
                  for r in read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))})
    texts.update({f"cc/{r['id']}": r["text"] for r in read_jsonl(shared_path("web", "commoncrawl_samples.jsonl.zst"))})
    return texts


def test_every_document_is_accounted_for(unmixed_build: tuple[Path, dict]) -> None:
    _, manifest = unmixed_build
    stages = manifest["accounting"]["stages"]
    assert manifest["accounting"]["balanced"] and not manifest["accounting"]["problems"]
    read_in = sum(g["in"]["docs"] for g in stages["read"].values())
    assert read_in == 400 + 150 + 73
    kept = sum(g["out"]["docs"] for g in stages["tokenize"].values())
    dropped = sum(d["docs"] for stage in stages.values() for g in stage.values() for d in g["dropped"].values())
    assert kept + dropped == read_in
    assert manifest["totals"]["documents"] == kept  # mixing disabled: each kept document once
    drops = sum(log["records"] for log in manifest["drop_logs"])
    assert drops == dropped


def test_megatron_reads_exactly_the_tokenizer_output(unmixed_build: tuple[Path, dict]) -> None:
    pytest.importorskip("torch")
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    out, manifest = unmixed_build
    tokenizer = load_tokenizer(TokenizerConfig())
    eos = tokenizer_identity(TokenizerConfig()).eos_id
    inputs = _inputs_by_id()
    seen = 0
    for shard in manifest["shards"]:
        prefix = str(out / shard["name"])
        dataset = indexed.IndexedDataset(prefix, mmap=True)
        rows = read_docs_index(prefix)
        written = read_jsonl(prefix + ".jsonl.zst")
        assert len(dataset) == len(rows) == len(written) == shard["documents"]
        for i, (row, text_row) in enumerate(zip(rows, written, strict=True)):
            tokens = dataset[i]
            assert tokens[-1] == eos and len(tokens) == row["tokens"]
            assert text_row["id"] == row["id"]
            assert list(tokens[:-1]) == tokenizer.encode(text_row["text"], add_special_tokens=False).ids
            original = normalize_text(inputs[row["id"]])
            if row["id"].startswith("stack/"):
                assert text_row["text"] == original  # code is never edited after normalization
            else:  # C4 removes lines; a kept line is an input line, stripped, without citation markers
                from lemur_corpus.filters.text.c4 import CITATION

                kept_lines = {CITATION.sub("", line.strip()) for line in original.split("\n")}
                assert all(line in kept_lines for line in text_row["text"].split("\n"))
            seen += 1
    assert seen == manifest["totals"]["documents"] > 300


def test_shards_are_atomic_and_listed(unmixed_build: tuple[Path, dict]) -> None:
    out, manifest = unmixed_build
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    listed = {f["path"] for s in manifest["shards"] for f in s["files"].values()}
    listed |= {d["path"] for d in manifest["drop_logs"]} | {"manifest.json", ".lemur-corpus"}  # + the folder's marker
    for entry in manifest["dedup_index"]["written"].values():  # the index of what the build kept: its header
        folder = entry["path"].rsplit("/", 1)[0]  # lists its parts
        header = json.loads((out / entry["path"]).read_text())
        listed |= {entry["path"]} | {f"{folder}/{f['name']}" for f in header["files"]}
    assert files == listed  # nothing half-written, nothing unlisted
    tokens = sum(len(t) for s in manifest["shards"] for t in read_shard_documents(str(out / s["name"])))
    assert tokens == manifest["totals"]["tokens"]


def test_same_input_same_bytes(unmixed_build: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = unmixed_build
    config = slice_config(mixture={"enabled": False}, shards={"target_tokens": 300_000, "write_jsonl": True},
                          filters=WITHOUT_PII)
    run_build(config, str(tmp_path))
    assert output_digest(tmp_path) == output_digest(out)


def test_record_level_problems_are_counted_and_the_build_goes_on(tmp_path: Path) -> None:
    pages = read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))[:40]
    lines = [json.dumps(p).encode() for p in pages]
    lines[3] = b"{broken json"
    lines[7] = json.dumps({"id": "no-text", "body": pages[7]["text"]}).encode()
    lines[11] = lines[11].replace(b'"text": "', b'"text": "\xff\xfe', 1)
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    config = slice_config(code_rows=50, inputs=[
        {"name": "web", "format": "dolma", "kind": "text", "source": "refinedweb", "paths": [str(bad)]},
        {"name": "stack", "format": "stack", "kind": "code",
         "paths": [str(shared_path("code", "code_sample.jsonl.zst"))], "limit_per_file": 50},
    ])
    manifest = run_build(config, str(tmp_path / "out"))
    read = manifest["accounting"]["stages"]["read"]["web"]
    assert read["in"]["docs"] == 40
    assert read["dropped"] == {
        "bad_json": {"docs": 1, "bytes": len(lines[3])},
        "invalid_utf8": {"docs": 1, "bytes": len(lines[11])},
        "missing_text_field": {"docs": 1, "bytes": len(lines[7])},
    }
    assert read["out"]["docs"] == 37


def test_file_level_problem_stops_the_build_with_its_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = shared_path("web", "trafilatura_pages.main.jsonl.zst").read_bytes()
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(raw[: len(raw) // 3])
    config = slice_config(inputs=[
        {"name": "web", "format": "dolma", "kind": "text", "source": "refinedweb", "paths": [str(cut)]},
        {"name": "stack", "format": "stack", "kind": "code",
         "paths": [str(shared_path("code", "code_sample.jsonl.zst"))], "limit_per_file": 30},
    ])
    with pytest.raises(CorpusError) as err:
        run_build(config, str(tmp_path / "out"))
    assert f"{cut}, line" in str(err.value) and "truncated zstd stream" in str(err.value)
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not list((tmp_path / "out").glob("shards/*"))


def test_cli_reports_config_and_path_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "inputs:\n  - {name: web, format: jsonl, kind: text, source: refinedweb, paths: [nothing/*.jsonl]}\n"
        "mixture:\n  sources: {refinedweb: {kind: text, weight: 100}}\n"
    )
    assert main(["build", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no file matches this path or pattern" in err and "Traceback" not in err
    config.write_text("inputs: []\nmixture:\n  sources: {refinedweb: {kind: text, weight: 100}}\nshard: {}\n")
    assert main(["build", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "shard: unknown key (did you mean 'shards'?)" in err
    assert main(["build", "--out", str(tmp_path / "o2"), "--", "--runner=NoSuchRunner"]) == 2
    assert "unknown Beam runner 'NoSuchRunner'" in capsys.readouterr().err


def test_refuses_to_overwrite_a_finished_build(unmixed_build: tuple[Path, dict]) -> None:
    out, _ = unmixed_build
    with pytest.raises(CorpusError, match="already holds a finished build"):
        run_build(slice_config(), str(out))


def test_token_arrays_are_int32_for_the_default_vocabulary(unmixed_build: tuple[Path, dict]) -> None:
    out, manifest = unmixed_build
    first = next(read_shard_documents(str(out / manifest["shards"][0]["name"])))
    assert first.dtype == np.int32 and manifest["tokenizer"]["dtype"] == "int32"


def test_only_the_kinds_a_build_reads_get_their_filters_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A text-only build loads no tree-sitter grammar, on the driver or on a worker; `local_env`
    (no `kind`: it yields both) gets both chains."""
    import lemur_corpus.pipelines.build as build
    from lemur_corpus.config import parse_config
    from lemur_corpus.defaults import embedded_default_config
    from lemur_corpus.pipelines.filter import FilterFn

    mixture = {"enabled": False, "sources": {"web": {"kind": "text", "weight": 100.0}}}
    text_only = parse_config({"name": "t", "mixture": mixture, "inputs": [
        {"name": "web", "format": "dolma", "kind": "text", "source": "web", "paths": ["unused.jsonl"]}]})
    both = embedded_default_config()  # one local_env input
    assert build.input_kinds(text_only) == ["text"] and build.input_kinds(both) == ["code", "text"]

    def no_grammars(*args: object) -> None:
        raise AssertionError("code filters checked for a build without code")

    monkeypatch.setattr(build, "check_code_filters", no_grammars)
    monkeypatch.setattr(build, "plan_inputs", lambda config: ([], {}))  # no files to list
    build.preflight(text_only)
    fn = FilterFn(text_only.filters, {}, build.input_kinds(text_only))
    fn.setup()
    assert fn.chains["code"] == [] and [f.name for f in fn.chains["text"]]
    everything = FilterFn(both.filters, {}, build.input_kinds(both))
    everything.setup()
    assert everything.chains["code"] and everything.chains["text"]
