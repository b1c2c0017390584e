"""`corpus dedup` (the build's Beam dedup transforms on files): labelled pairs, determinism, outputs,
bad input."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import pytest
import zstandard

from lemur_corpus.cli import main
from lemur_corpus.dedup.config import DedupConfig
from lemur_corpus.dedup.shingles import shingles
from lemur_corpus.errors import ConfigError, CorpusError
from lemur_corpus.pipelines.dedup_files import WriteTaskFn, command_config, run_dedup_files, task_of
from lemur_corpus.sources import plan_input
from tests.conftest import read_jsonl, shared_path


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def _clusters(out: Path) -> dict[str, dict]:
    return {row["id"]: row for row in read_jsonl(out / "clusters.jsonl")}


def _kept(out: Path) -> list[dict]:
    records = []
    for path in sorted(out.glob("kept-*.jsonl.zst")):
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
        records += [json.loads(line) for line in raw.decode().splitlines()]
    return records


@pytest.fixture(scope="module")
def forks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """code_forks deduplicated twice: once in-process, once on two threads with other shards' order
    (one build id: it names the kept documents in the dedup index, whose checksums the summary holds)."""
    path = shared_path("dups", "code_forks.docs.jsonl.zst")
    first, second = tmp_path_factory.mktemp("forks1"), tmp_path_factory.mktemp("forks2")
    assert main(["dedup", "--input", str(path), "--kind", "code", "--out", str(first), "--build-id", "forks"]) == 0
    run_dedup_files([str(path)], "code", str(second), DedupConfig(), build_id="forks",
                    beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_threading"])
    return first, second


def test_labelled_fork_pairs_are_clustered(forks: tuple[Path, Path]) -> None:
    clusters = _clusters(forks[0])
    docs = read_jsonl(shared_path("dups", "code_forks.docs.jsonl.zst"))
    assert set(clusters) == {d["id"] for d in docs}
    pairs = read_jsonl(shared_path("dups", "code_forks.pairs.jsonl"))
    same = {(p["a"], p["b"]): clusters[p["a"]]["cluster"] == clusters[p["b"]]["cluster"] for p in pairs}
    assert all(same[(p["a"], p["b"])] for p in pairs if p["identical"])
    assert all(same[(p["a"], p["b"])] for p in pairs if p["jaccard_w5"] >= 0.95)
    assert not any(same[(p["a"], p["b"])] for p in pairs if p["jaccard_w5"] < 0.6)


def test_one_kept_document_per_cluster_and_kept_records_unchanged(forks: tuple[Path, Path]) -> None:
    clusters = _clusters(forks[0])
    kept = _kept(forks[0])
    kept_ids = {r["id"] for r in kept}
    assert kept_ids == {i for i, row in clusters.items() if row["kept"]}
    for row in clusters.values():
        assert row["cluster"] in kept_ids  # every cluster is named by its one kept document
        assert row["kept"] == (row["cluster"] == row["id"])
    assert min(i for i, r in clusters.items() if r["cluster"] == "huggingface/datatrove:src/datatrove/data.py"
               or r["id"] == "huggingface/datatrove:src/datatrove/data.py") in kept_ids  # smallest id survives
    originals = {d["id"]: d for d in read_jsonl(shared_path("dups", "code_forks.docs.jsonl.zst"))}
    for record in kept:
        assert record == originals[record["id"]]  # the input record, field for field
    summary = json.loads((forks[0] / "summary.json").read_bytes())
    near = summary["dedup"]["near"]["code"]
    assert (summary["documents"] == len(originals)
            == summary["kept"] + summary["exact_removed"] + summary["near_removed"])
    assert near["removed"] > 0 and near["verified_edges"] >= near["clusters"] > 0
    assert near["component_nodes"] >= near["clusters"] + near["removed"] and near["unconverged_nodes"] == 0
    assert near["components"] > 0 and near["bands"] * near["rows"] <= near["num_perm"]


def test_every_removal_names_its_kept_twin_and_their_similarity(forks: tuple[Path, Path]) -> None:
    clusters = _clusters(forks[0])
    texts = {d["id"]: d["content"] for d in read_jsonl(shared_path("dups", "code_forks.docs.jsonl.zst"))}
    config = DedupConfig().code
    removed = [row for row in clusters.values() if not row["kept"]]
    assert {row["reason"] for row in removed} == {"exact_duplicate", "near_duplicate"}
    for row in removed:
        twin = clusters[row["duplicate_of"]]
        assert row["cluster"] == twin["id"] and twin["kept"]  # named, and kept
        a, b = (set(shingles(texts[i], config.tokens, config.ngram, config.max_shingles))
                for i in (row["id"], twin["id"]))
        assert row["similarity"] == pytest.approx(len(a & b) / len(a | b), abs=1e-4)
        assert row["similarity"] >= config.threshold
    for row in clusters.values():
        if row["kept"]:
            assert "duplicate_of" not in row and "similarity" not in row


def test_same_clusters_and_bytes_on_every_run(forks: tuple[Path, Path]) -> None:
    assert _outputs(forks[0]) == _outputs(forks[1])
    index = [p.relative_to(forks[0]) for p in sorted((forks[0] / "dedup-index").rglob("*")) if p.is_file()]
    assert len(index) == 5 and all((forks[0] / p).read_bytes() == (forks[1] / p).read_bytes() for p in index)


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_bad_documents_are_signed_or_counted(tmp_path: Path) -> None:
    page = read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))[3]["text"]
    huge = "lorem ipsum dolor sit amet " * (5_000_000 // 27)
    records = [
        {"id": "page", "text": page},
        {"id": "page-copy-edited", "text": page.replace(".", "!") + " One more closing sentence."},
        {"id": "empty", "text": ""},
        {"id": "empty2", "text": ""},
        {"id": "punctuation", "text": "?!?"},
        {"id": "short", "text": "Hello world"},
        {"id": "short-shout", "text": "HELLO, world!"},
        {"id": "huge", "text": huge},
        {"id": "huge-tail", "text": huge + " with another ending"},
        {"text": "no id: named by its place"},
    ]
    path = _write_jsonl(tmp_path / "in.jsonl", records)
    (tmp_path / "broken.jsonl").write_text('{"id": "ok", "text": "fine words here"}\n{not json\n')
    out = tmp_path / "out"
    run_dedup_files([str(path), str(tmp_path / "broken.jsonl")], "text", str(out), DedupConfig())
    clusters = _clusters(out)
    assert clusters["empty2"]["cluster"] == "empty" and not clusters["empty2"]["kept"]  # exact duplicates
    assert clusters["page-copy-edited"]["cluster"] == "page"
    assert clusters["short-shout"]["cluster"] == "short"  # short documents: one shingle of all their words
    assert clusters["huge-tail"]["cluster"] == "huge"  # same first 100,000 shingles (the cap)
    assert clusters["punctuation"]["kept"]
    assert f"{path}:10" in clusters
    summary = json.loads((out / "summary.json").read_bytes())
    near = summary["dedup"]["near"]["text"]
    assert near["empty_documents"] == 3 and near["short_documents"] >= 2 and near["capped_documents"] == 2
    assert summary["unreadable_records"] == 1
    dropped = read_jsonl(out / "dropped.jsonl")
    assert dropped[0]["reason"] == "bad_json" and dropped[0]["origin"].endswith("broken.jsonl:2")


def test_duplicate_ids_are_an_error_naming_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "text": "first text of a"}, {"id": "b", "text": "b"}, {"id": "a", "text": "second text of a"},
    ])
    out = tmp_path / "out"
    assert main(["dedup", "--input", str(path), "--kind", "text", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "1 id(s) occur more than once" in error and f"'a' (read at {path}:1, {path}:3)" in error
    assert not list(out.glob("kept-*")) and not (out / "clusters.jsonl").exists()


def test_arguments_are_checked_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--threshold"):
        main(["--debug", "dedup", "--input", "x.jsonl", "--kind", "text", "--out", str(tmp_path), "--threshold", "1.5"])
    with pytest.raises(CorpusError, match="no file matches"):
        run_dedup_files([str(tmp_path / "missing-*.jsonl")], "text", str(tmp_path / "o"), DedupConfig())


def test_outputs_follow_the_input_order_and_the_id_hash(tmp_path: Path) -> None:
    """Kept records are written from a second read of their file, so a shard holds its documents in
    input order (files in sorted order) and clusters.jsonl has one row per document in input order."""
    pages = [r["text"] for r in read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))[:40]]
    files = [_write_jsonl(tmp_path / f"part-{n}.jsonl", [{"id": f"{n}-{i:02d}-{'zyx'[i % 3]}", "text": pages[i]}
                                                          for i in range(n * 20, n * 20 + 20)]) for n in (1, 0)]
    duplicate = _write_jsonl(tmp_path / "part-2.jsonl", [{"id": "0-copy", "text": pages[3]}])
    out = tmp_path / "out"
    run_dedup_files([str(f) for f in (*files, duplicate)], "text", str(out), DedupConfig(), shards=3)
    ids = [r["id"] for f in sorted(tmp_path.glob("part-*.jsonl")) for r in read_jsonl(f)]
    assert [r["id"] for r in read_jsonl(out / "clusters.jsonl")] == ids
    for shard in range(3):
        raw = zstandard.ZstdDecompressor().decompress((out / f"kept-{shard:05d}-of-00003.jsonl.zst").read_bytes())
        kept = [json.loads(line)["id"] for line in raw.decode().splitlines()]
        assert kept == [i for i in ids if i in set(kept)] and "0-copy" not in kept
    assert sorted(r["id"] for r in _kept(out)) == sorted(set(ids) - {"0-copy"})
    assert not (out / ".kept-parts").exists() and not (out / ".clusters-parts").exists()


def test_read_tasks_are_found_by_the_origin_the_readers_give() -> None:
    tasks = {"gs://b/a:1.jsonl": 0, "x#row1.parquet": 1, "w.warc.gz": 2, "p#3": 3}
    assert task_of("gs://b/a:1.jsonl:12", tasks) == 0
    assert task_of("x#row1.parquet#row7", tasks) == 1
    assert task_of("w.warc.gz#<urn:uuid:0a1b>", tasks) == 2
    assert task_of("p#3:1", tasks) == 3
    with pytest.raises(ValueError, match="names none of the input files"):
        task_of("other.jsonl:1", tasks)


def test_a_file_that_reads_differently_the_second_time_fails_the_run(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}])
    config = command_config([str(path)], DedupConfig(), "id", "text")
    task = plan_input(config.inputs[0], config)[0][0]
    write = WriteTaskFn(config, "text", str(tmp_path / "out"), 1, "id", "text")
    row = {"id": "gone", "cluster": "a", "kept": False}

    def changes(count: int, removed: list) -> list[str]:
        outputs = list(write.process((0, {"task": [task], "removed": removed, "count": [count]}), failed=[]))
        return [o.value for o in outputs if isinstance(o, beam.pvalue.TaggedOutput)]

    assert changes(2, []) == []
    assert changes(3, []) == [f"{path}: changed while the run read it: 3 documents the first time, 2 the second"]
    assert changes(2, [("input/gone", row)]) == [
        f"{path}: changed while the run read it: 2 documents the first time, 2 the second, "
        "1 removed documents not found"]
