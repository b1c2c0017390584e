"""`corpus audit` on a real build (the session's `small_build`): it passes untouched, and it fails,
naming the problem, after each kind of damage a build folder can suffer."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from lemur_corpus.audit import BuildStateError, ManifestVersionError, audit_build
from lemur_corpus.cli import main
from lemur_corpus.manifest import SCHEMA_VERSION
from lemur_corpus.shards import ShardDoc, read_docs_index, read_shard_documents, write_shard

pytestmark = pytest.mark.slow


def copy_build(small_build: Path, tmp_path: Path) -> Path:
    target = tmp_path / "build"
    shutil.copytree(small_build, target)
    return target


def manifest_of(build: Path) -> dict[str, Any]:
    return json.loads((build / "manifest.json").read_text())


def edit_manifest(build: Path, change: Callable[[dict[str, Any]], None]) -> None:
    manifest = manifest_of(build)
    change(manifest)
    (build / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def mismatches(build: Path, **kwargs: Any) -> list[str]:
    result = audit_build(str(build), **kwargs)
    assert result.ok is (not result.mismatches)
    return result.mismatches


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_untouched_build_passes_and_json_has_the_promised_keys(small_build: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "audit", str(small_build), "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["mismatches"] == []
    manifest = manifest_of(small_build)
    assert data["total_tokens"] == manifest["totals"]["tokens"]
    assert data["total_documents"] == manifest["totals"]["documents"]
    assert data["code_text_ratio"] == pytest.approx(manifest["mixture"]["code_text_ratio"]["realized"])
    names = {s["name"] for s in data["sources"]}
    assert names == set(manifest["mixture"]["sources"])
    for source in data["sources"]:
        assert {"name", "kind", "tokens", "documents", "target_weight", "realized_weight"} <= set(source)
        planned = manifest["mixture"]["sources"][source["name"]]
        assert source["tokens"] == planned["realized_tokens"]
        assert source["realized_weight"] == pytest.approx(planned["realized_weight"])
        assert source["target_weight"] == pytest.approx(planned["weight"])
        # each field from its own figure (they were once passed by position, one place off)
        assert source["planned_epochs"] == pytest.approx(planned["rate"])
        assert source["reference_epochs"] == planned["reference_epochs"]
        assert source["meets_target"] is True
    assert sum(s["tokens"] for s in data["sources"]) == data["total_tokens"]


def test_people_get_a_table_and_a_verdict(small_build: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "audit", str(small_build))
    assert code == 0
    assert "audit passed" in out and "python" in out and "code:text" in out


def test_a_flipped_byte_in_a_bin_is_named(small_build: Path, tmp_path: Path, capsys) -> None:
    build = copy_build(small_build, tmp_path)
    target = build / "shards" / "shard-00001.bin"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    code, out, _ = run_cli(capsys, "audit", str(build))
    assert code == 1 and "audit FAILED" in out
    assert any("shards/shard-00001.bin: sha256" in m and "changed after the build" in m for m in mismatches(build))


def test_a_deleted_shard_is_named(small_build: Path, tmp_path: Path) -> None:
    build = copy_build(small_build, tmp_path)
    for path in (build / "shards").glob("shard-00002.*"):
        path.unlink()
    found = mismatches(build)
    for name in ("shard-00002.bin", "shard-00002.idx", "shard-00002.docs.jsonl.zst"):
        assert any(name in m and "missing" in m for m in found), name
    assert any(m.startswith("totals:") for m in found)
    assert any("realized" in m or "tokens in the shards" in m for m in found)  # the sources lost tokens


def test_a_truncated_idx_is_named(small_build: Path, tmp_path: Path) -> None:
    build = copy_build(small_build, tmp_path)
    idx = build / "shards" / "shard-00000.idx"
    idx.write_bytes(idx.read_bytes()[:-12])
    found = mismatches(build)
    assert any(m.startswith("shards/shard-00000.idx: index is") and "need" in m for m in found)
    assert any("shard-00000.idx" in m and "bytes, the manifest says" in m for m in found)


def test_an_edited_manifest_count_is_named(small_build: Path, tmp_path: Path) -> None:
    build = copy_build(small_build, tmp_path)

    def change(m: dict[str, Any]) -> None:
        m["shards"][1]["documents"] += 1
        m["mixture"]["sources"]["python"]["realized_tokens"] += 7

    edit_manifest(build, change)
    found = mismatches(build)
    assert any(m.startswith("shards/shard-00001:") and "documents in the files, the manifest says" in m
               for m in found)
    assert any(m.startswith("source python:") and "tokens in the shards, the manifest's mixture says" in m
               for m in found)


def test_a_weight_target_changed_in_the_recorded_config_is_named(small_build: Path, tmp_path: Path) -> None:
    build = copy_build(small_build, tmp_path)
    edit_manifest(build, lambda m: m["config"]["mixture"]["sources"]["python"].update(weight=40.0))
    found = mismatches(build)
    assert any(m.startswith("config: the recorded config hashes to") and "edited after the build" in m for m in found)
    assert any(m.startswith("source python: realized weight") and "misses its target" in m for m in found)
    assert any(m.startswith("config: its configured weights differ") and "python" in m for m in found)


def test_targets_from_another_config_file(small_build: Path, tmp_path: Path, capsys) -> None:
    config = manifest_of(small_build)["config"]
    config["mixture"]["sources"]["python"]["weight"] -= 20
    config["mixture"]["sources"]["refinedweb"]["weight"] += 20
    path = tmp_path / "intended.yaml"
    path.write_text(yaml.safe_dump(config))
    code, out, _ = run_cli(capsys, "audit", str(small_build), "--config", str(path), "--json")
    data = json.loads(out)
    assert code == 1 and data["targets_from"] == str(path)
    assert any(m.startswith("source python: realized weight") for m in data["mismatches"])
    assert any(m.startswith("source refinedweb: realized weight") for m in data["mismatches"])
    assert any(m.startswith("code:text: code is") for m in data["mismatches"])
    assert not any(m.startswith("config: the recorded config") for m in data["mismatches"])  # the build is intact


def test_a_wider_tolerance_accepts_what_the_default_rejects(small_build: Path, tmp_path: Path) -> None:
    config = manifest_of(small_build)["config"]
    config["mixture"]["sources"]["python"]["weight"] -= 5  # ~5 points: more than one document here
    config["mixture"]["sources"]["refinedweb"]["weight"] += 5
    assert any(m.startswith("source refinedweb: realized weight") for m in mismatches(small_build, config=config))
    assert mismatches(small_build, config=config, tolerance=0.08) == []


def rewrite_shards(build: Path, dtype: str, transform: Callable[[np.ndarray], np.ndarray]) -> None:
    """Rewrite every shard as another tokenizer would have written it, and record the new files in the
    manifest, so that only the tokenizer's identity disagrees with the shards."""
    manifest = manifest_of(build)
    for i, record in enumerate(manifest["shards"]):
        prefix = str(build / record["name"])
        lines = read_docs_index(prefix)
        docs = [ShardDoc(str(line["id"]), str(line["source"]), int(line["copy"]), transform(tokens))
                for line, tokens in zip(lines, read_shard_documents(prefix), strict=True)]
        manifest["shards"][i] = write_shard(prefix, record["name"], docs, np.dtype(dtype))
    manifest["totals"]["bytes"] = sum(f["bytes"] for s in manifest["shards"] for f in s["files"].values())
    (build / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def test_shards_of_a_small_vocabulary_tokenizer_are_detected(small_build: Path, tmp_path: Path) -> None:
    build = copy_build(small_build, tmp_path)

    def llama_like(tokens: np.ndarray) -> np.ndarray:  # 32k SentencePiece ids, EOS 2
        out = (tokens.astype(np.int64) % 32_000).astype(np.uint16)
        out[-1] = 2
        return out

    rewrite_shards(build, "uint16", llama_like)
    found = mismatches(build)
    assert found[0].startswith("tokenizer: these shards do not look like output of the manifest's tokenizer")
    assert any("tokens are uint16, but a vocabulary of 129,280 ids is written as int32" in m for m in found)
    assert any("do not end with EOS id 1" in m for m in found)


def test_token_ids_beyond_the_vocabulary_are_detected(small_build: Path, tmp_path: Path) -> None:
    build = copy_build(small_build, tmp_path)
    rewrite_shards(build, "int32", lambda t: t.astype(np.int32) + 130_000)
    found = mismatches(build)
    assert any("is beyond the vocabulary (129,280 ids)" in m for m in found)


def test_drop_log_and_stray_files_are_checked(small_build: Path, tmp_path: Path) -> None:
    build = copy_build(small_build, tmp_path)
    logs = manifest_of(build)["drop_logs"]
    assert logs, "the small build drops documents (normalize, filters, dedup)"
    (build / logs[0]["path"]).unlink()
    shutil.copy(build / "shards" / "shard-00000.idx", build / "shards" / "shard-00099.idx")
    (build / "shards" / "shard-00000.bin.tmp-0123456789ab").write_bytes(b"partial")
    result = audit_build(str(build))
    assert any(m == f"{logs[0]['path']}: the drop log is missing" for m in result.mismatches)
    assert any(m.startswith("drop log:") and "the accounting counts" in m for m in result.mismatches)
    assert "shards/shard-00099.idx is not in the manifest (left from another build?)" in result.mismatches
    assert any("temporary file" in n for n in result.notes)


def test_an_unfinished_or_failed_build_is_said_to_be_one(small_build: Path, tmp_path: Path, capsys) -> None:
    build = copy_build(small_build, tmp_path)
    (build / "manifest.json").unlink()
    with pytest.raises(BuildStateError, match="(?s)unfinished build.*no manifest.json.*commit marker"):
        audit_build(str(build))
    code, _, err = run_cli(capsys, "audit", str(build))
    assert code == 2 and "unfinished build" in err
    (build / "FAILED.json").write_text(json.dumps({"errors": ["mixture: no tokens left for source sql"]}))
    with pytest.raises(BuildStateError, match="(?s)failed build.*no tokens left for source sql"):
        audit_build(str(build))
    code, _, err = run_cli(capsys, "audit", str(tmp_path / "nowhere"))
    assert code == 2 and "no such build folder" in err


def test_older_schema_versions_are_explained_or_migrated(small_build: Path, tmp_path: Path, monkeypatch,
                                                         capsys) -> None:
    build = copy_build(small_build, tmp_path)

    def make_old(m: dict[str, Any]) -> None:  # a 0.9 layout: the realized share had another name
        m["schema_version"] = "0.9"
        for source in m["mixture"]["sources"].values():
            source["realized_share"] = source.pop("realized_weight")

    edit_manifest(build, make_old)
    with pytest.raises(ManifestVersionError, match="schema version 0.9.*knows no migration"):
        audit_build(str(build))
    code, _, err = run_cli(capsys, "audit", str(build))
    assert code == 2 and "schema version 0.9" in err

    def from_0_9(m: dict[str, Any]) -> dict[str, Any]:
        for source in m["mixture"]["sources"].values():
            source["realized_weight"] = source.pop("realized_share")
        return m

    monkeypatch.setattr("lemur_corpus.audit.migration.MIGRATIONS",
                        {"0.9": (SCHEMA_VERSION, from_0_9, "realized_share → realized_weight")})
    result = audit_build(str(build))
    assert result.ok, result.mismatches
    assert any("migrated from schema 0.9" in n for n in result.notes)


def test_bad_arguments_stop_before_any_work(small_build: Path, capsys, tmp_path: Path) -> None:
    assert run_cli(capsys, "audit", str(small_build), "--tolerance", "1.5")[0] == 2
    assert run_cli(capsys, "audit", str(small_build), "--report", str(tmp_path / "r.pdf"))[0] == 2
    assert not os.path.exists(tmp_path / "r.pdf")
