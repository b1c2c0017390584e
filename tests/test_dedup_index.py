"""Incremental dedup (#19): the dedup index every run writes, `--against` earlier indexes, merging
indexes, and every way an index can be unusable (one clear error, nothing written)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pytest

from lemur_corpus.cli import main
from lemur_corpus.dedup.config import DedupConfig, TextNearDedupConfig
from lemur_corpus.dedup.exact import DedupRecord
from lemur_corpus.dedup.index import (
    SKETCH_BITS,
    DedupIndexError,
    index_settings,
    min_sketch_agreements,
    open_index,
    part_bytes,
    part_name,
    read_part,
    settings_difference,
    shard_of,
    sketch_band_keys,
    sketch_of,
    sketch_similarity,
    table_rows,
    unpack_sketches,
)
from lemur_corpus.dedup.minhash import MinHasher
from lemur_corpus.pipelines.dedup_index import (
    DEFAULT_PARTS,
    PLANNED_DOCUMENTS_PER_PART,
    IndexTarget,
    WriteIndex,
    index_parts,
)
from lemur_corpus.pipelines.dedup_near import near_params
from tests.conftest import SHARED_DATA, read_jsonl, shared_path

THRESHOLD = 0.8


def _signature(text: str) -> np.ndarray:
    near = TextNearDedupConfig()
    signature, _ = MinHasher(near.num_perm, near.seed, near.hash).signature(text, near.tokens, near.ngram,
                                                                            near.max_shingles)
    assert signature is not None
    return signature


# --- sketches ---------------------------------------------------------------------------------------

def test_sketch_estimates_the_jaccard_of_the_labelled_pairs() -> None:
    """4-bit sketches of real near-duplicate pairs: the estimate's error is close to full signatures'."""
    docs = {d["id"]: d["text"] for d in read_jsonl(shared_path("dups", "web_neardup.docs.jsonl.zst"))}
    pairs = [p for p in read_jsonl(shared_path("dups", "web_neardup.pairs.jsonl"))
             if p["a"] in docs and p["b"] in docs][:300]
    sketch_errors, full_errors = [], []
    for pair in pairs:
        a, b = _signature(docs[pair["a"]]), _signature(docs[pair["b"]])
        agree = int(np.count_nonzero(unpack_sketches([sketch_of(a)], 256) == unpack_sketches([sketch_of(b)], 256)))
        sketch_errors.append(sketch_similarity(agree, 256) - pair["jaccard_w5"])
        full_errors.append(float(np.mean(a == b)) - pair["jaccard_w5"])
    sketch_rmse = float(np.sqrt(np.mean(np.square(sketch_errors))))
    full_rmse = float(np.sqrt(np.mean(np.square(full_errors))))
    assert len(pairs) >= 200
    assert sketch_rmse < 0.04 and sketch_rmse < 1.35 * full_rmse, (sketch_rmse, full_rmse)
    assert abs(float(np.mean(sketch_errors))) < 0.01  # unbiased: the chance agreements are subtracted


def test_sketch_band_keys_match_for_identical_and_differ_by_band() -> None:
    text = read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))[0]["text"]
    values = unpack_sketches([sketch_of(_signature(text))] * 2, 256)
    keys = sketch_band_keys(values, 23, 11)
    assert keys.shape == (2, 23) and (keys[0] == keys[1]).all() and len(set(keys[0].tolist())) == 23
    assert len(sketch_of(_signature(text))) == 256 * SKETCH_BITS // 8
    assert min_sketch_agreements(0.8, 256, margin_sd=0) == 208  # 256 x (1/16 + 15/16 x 0.8) = 208
    assert min_sketch_agreements(0.8, 256) == 212  # + half a standard deviation, sqrt(256 x 0.8125 x 0.1875) = 6.25


def test_settings_difference_names_the_setting() -> None:
    ours = index_settings("text", TextNearDedupConfig(), (23, 11))
    assert settings_difference(ours, ours) is None
    other = index_settings("text", TextNearDedupConfig(num_perm=128), (9, 13))
    assert "dedup.text.num_perm = 128 in the index, this run uses 256" in str(settings_difference(other, ours))
    assert "not text" in str(settings_difference(index_settings("code", None, None), ours))
    assert settings_difference(ours, index_settings("text", None, None)) is None  # hashes alone still serve


def test_part_files_are_deterministic_and_round_trip() -> None:
    rows = [("b2", "web", "z", b"\x01" * 16, b"\x12" * 128), ("b1", "web", "a", b"\x02" * 16, None)]
    data = part_bytes(rows)
    assert data == part_bytes(list(reversed(rows)))
    assert table_rows(read_part(data, "x")) == sorted(rows, key=lambda r: (r[0], r[2]))
    with pytest.raises(DedupIndexError, match="x.parquet: not readable Parquet"):
        read_part(data[: len(data) // 2], "x.parquet")


def test_a_kinds_parts_follow_the_documents_planned_for_it(tmp_path: Path) -> None:
    """More planned documents, more parts (at least `DEFAULT_PARTS`): a part holds about as many rows
    however large the corpus; each row lands in the part `shard_of` names, once, and the index opens
    whole (every file the header lists, checked)."""
    assert [index_parts(n) for n in (0, 1, DEFAULT_PARTS * PLANNED_DOCUMENTS_PER_PART)] == [DEFAULT_PARTS] * 3
    assert index_parts(DEFAULT_PARTS * PLANNED_DOCUMENTS_PER_PART + 1) == DEFAULT_PARTS + 1
    assert index_parts(10 * PLANNED_DOCUMENTS_PER_PART) == 10
    assert index_parts(0, minimum=1) == 1
    dedup = DedupConfig()
    params = near_params(dedup)
    settings = {kind: index_settings(kind, dedup.near(kind), params.get(kind)) for kind in ("code", "text")}
    target = IndexTarget(str(tmp_path), "b1", settings)
    nodes = [(DedupRecord(f"doc-{i}", "code", "stack", f"{i:032x}", 10, 0), bytes([i % 256]) * 64) for i in range(300)]
    planned = {"code": 6 * PLANNED_DOCUMENTS_PER_PART + 1}  # 7 parts; no text planned: the least
    with beam.Pipeline() as p:
        _ = p | beam.Create(nodes) | WriteIndex(target, planned)
    code, text = open_index(str(tmp_path), "code", settings["code"]), open_index(str(tmp_path), "text")
    assert [Path(path).name for path, _ in code.files()] == [part_name(i, 7) for i in range(7)]
    assert [Path(path).name for path, _ in text.files()] == [part_name(i, DEFAULT_PARTS) for i in range(DEFAULT_PARTS)]
    assert (code.header["documents"], text.header["documents"]) == (300, 0)
    seen = []
    for number, (path, _) in enumerate(code.files()):
        rows = table_rows(read_part(Path(path).read_bytes(), path))
        assert rows and all(shard_of("b1", row[2], 7) == number for row in rows)
        seen += [row[2] for row in rows]
    assert sorted(seen) == sorted(record.id for record, _ in nodes)


# --- `corpus dedup --against`: a chain of dumps ---------------------------------------------------

def _write_dump(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps({"id": d["id"], "text": d["text"]}) + "\n" for d in docs))
    return path


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """web_neardup split into two seeded dumps (near-duplicates fall on both sides); the second is
    deduplicated against the first's index, and also merged, and once more against the merge."""
    docs = read_jsonl(shared_path("dups", "web_neardup.docs.jsonl.zst"))
    order = np.random.default_rng(19).permutation(len(docs))
    first, second = [docs[i] for i in order[:1000]], [docs[i] for i in order[1000:]]
    work = tmp_path_factory.mktemp("chain")
    a, b = _write_dump(work / "a.jsonl", first), _write_dump(work / "b.jsonl", second)
    assert main(["dedup", "--input", str(a), "--kind", "text", "--out", str(work / "week1"),
                 "--build-id", "week1"]) == 0
    assert main(["dedup", "--input", str(b), "--kind", "text", "--out", str(work / "week2"), "--build-id", "week2",
                 "--against", str(work / "week1")]) == 0
    assert main(["dedup-index", "merge", str(work / "week1"), "--out", str(work / "merged")]) == 0
    assert main(["dedup", "--input", str(b), "--kind", "text", "--out", str(work / "week2m"), "--build-id", "week2",
                 "--against", str(work / "merged")]) == 0
    return {"work": work, "docs": first + second, "a": a, "b": b}


def _rows(out: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in read_jsonl(out / "clusters.jsonl")}


def test_removals_name_a_document_the_earlier_run_kept(chain: dict[str, Any]) -> None:
    week1, week2 = _rows(chain["work"] / "week1"), _rows(chain["work"] / "week2")
    against = [r for r in week2.values() if r.get("duplicate_of_build")]
    assert len(against) > 100
    for row in against:
        assert row["duplicate_of_build"] == "week1" and not row["kept"]
        assert week1[row["duplicate_of"]]["kept"], row  # never a document week 1 removed
        assert row["reason"] in ("published_exact_duplicate", "published_near_duplicate")
    summary = json.loads((chain["work"] / "week2" / "summary.json").read_text())
    assert summary["against_removed"] == len(against) and summary["documents"] == len(week2)
    assert summary["dedup_against"][0]["builds"] == ["week1"]
    index = json.loads((chain["work"] / "week2" / "dedup-index" / "text" / "index.json").read_text())
    assert index["documents"] == sum(r["kept"] for r in week2.values()) and index["builds"][0]["id"] == "week2"


def test_chain_meets_the_quality_targets_over_the_union(chain: dict[str, Any]) -> None:
    """`../shared/tools/eval_dedup.py` on the concatenated clusters files: removal precision >= 0.97,
    pair recall >= 0.95 against exact word 5-gram Jaccard >= 0.8."""
    tool = SHARED_DATA.parent / "tools" / "eval_dedup.py"
    if not tool.exists():
        pytest.skip(f"the shared evaluation tool is not at {tool}")
    spec = importlib.util.spec_from_file_location("eval_dedup", tool)
    assert spec and spec.loader
    evaluate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate)
    rows = {**_rows(chain["work"] / "week1"), **_rows(chain["work"] / "week2")}
    docs = chain["docs"]
    sets = [evaluate.shingles(d["text"]) for d in docs]
    kept = [rows[d["id"]]["kept"] for d in docs]
    labels = [rows[d["id"]]["cluster"] for d in docs]
    truth = evaluate.exact_pairs(sets, THRESHOLD)
    scores = evaluate.removals(labels, kept, sets, truth, THRESHOLD)
    assert scores["removal_precision"] >= 0.97 and scores["pair_recall"] >= 0.95, scores


def test_against_a_merged_index_decides_the_same(chain: dict[str, Any]) -> None:
    work = chain["work"]
    assert _rows(work / "week2") == _rows(work / "week2m")
    assert (work / "merged" / "merge.json").exists()
    merged = open_index(str(work / "merged"), "text")
    kept = sum(r["kept"] for r in _rows(work / "week1").values())
    assert merged.builds == ["week1"] and merged.header["documents"] == kept


def test_merge_is_deterministic_and_refuses_a_build_twice(chain: dict[str, Any], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    work = chain["work"]
    assert main(["dedup-index", "merge", str(work / "week1"), str(work / "week2"), "--out", str(tmp_path / "m1")]) == 0
    assert main(["dedup-index", "merge", str(work / "week1"), str(work / "week2"), "--out", str(tmp_path / "m2")]) == 0
    files = sorted(p.relative_to(tmp_path / "m1") for p in (tmp_path / "m1").rglob("*") if p.is_file())
    assert files and all((tmp_path / "m1" / f).read_bytes() == (tmp_path / "m2" / f).read_bytes() for f in files)
    capsys.readouterr()
    assert main(["dedup-index", "merge", str(tmp_path / "m1"), str(work / "week2"), "--out", str(tmp_path / "m3")]) == 2
    assert "build 'week2' is also in" in capsys.readouterr().err and not (tmp_path / "m3").exists()


# --- bad input: one line naming the index and what differs, nothing written ---------------------------

def _copy_index(chain: dict[str, Any], tmp_path: Path) -> Path:
    copy = tmp_path / "earlier"
    shutil.copytree(chain["work"] / "week1", copy)
    return copy


@pytest.mark.parametrize("case, expected", [
    ("settings", "was built with other dedup settings: dedup.text.threshold = 0.8 in the index, this run uses 0.7"),
    ("truncated", "has 1,000 bytes, the header says"),
    ("checksum", "checksum mismatch of part-00000-of-00004.parquet"),
    ("missing_file", "its file part-00001-of-00004.parquet is missing"),
    ("missing_header", "no index.json of text documents there"),
    ("bad_header", "not a JSON header, truncated or damaged"),
    ("other_kind", "holds an index of the other kind only"),
    ("same_build", "already holds build 'week1': give this run another build id"),
])
def test_an_unusable_index_stops_the_run_before_anything_is_written(
        chain: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, expected: str) -> None:
    index = _copy_index(chain, tmp_path)
    folder = index / "dedup-index" / "text"
    part = folder / "part-00000-of-00004.parquet"
    args = ["dedup", "--input", str(chain["b"]), "--kind", "text", "--out", str(tmp_path / "out"),
            "--against", str(index)]
    if case == "settings":
        args += ["--threshold", "0.7"]
    elif case == "truncated":
        part.write_bytes(part.read_bytes()[:1000])
    elif case == "checksum":
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))
    elif case == "missing_file":
        (folder / "part-00001-of-00004.parquet").unlink()
    elif case == "missing_header":
        (folder / "index.json").unlink()
    elif case == "bad_header":
        (folder / "index.json").write_text((folder / "index.json").read_text()[:200])
    elif case == "other_kind":
        args[args.index("text")] = "code"
    elif case == "same_build":
        args += ["--build-id", "week1"]
    capsys.readouterr()
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert expected in error and str(index) in error, error
    assert len(error.splitlines()) == 1
    assert not (tmp_path / "out").exists()
