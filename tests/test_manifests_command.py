"""`corpus manifests regenerate|diff`: an idempotent index of audited builds, and what changed between two."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from lemur_corpus.cli import main
from lemur_corpus.commands.manifests import INDEX_NAME, build_id, build_index, diff_manifests, flatten

REPO = Path(__file__).resolve().parents[1]


def reference() -> dict:
    index = json.loads((REPO / "manifests" / INDEX_NAME).read_text())
    return json.loads((REPO / "manifests" / index["builds"][0]["manifest"]).read_text())


def test_the_committed_index_is_what_regenerate_writes() -> None:
    root = REPO / "manifests"
    written = json.loads((root / INDEX_NAME).read_text())
    assert build_index(str(root)) == written
    row = written["builds"][0]
    assert {"id", "date", "config_hash", "tokens", "code_text_ratio", "audit"} <= set(row)
    assert row["audit"] == "passed" and row["name"] == "default"


def test_build_ids_ignore_the_run_section_only() -> None:
    manifest = reference()
    rerun = copy.deepcopy(manifest)
    rerun["run"]["finished"] = "2031-01-01T00:00:00+00:00"
    assert build_id(rerun) == build_id(manifest) and build_id(manifest).startswith("default-")
    rerun["totals"]["tokens"] += 1
    assert build_id(rerun) != build_id(manifest)


def test_flatten_keys_named_lists_by_name() -> None:
    config = {"inputs": [{"name": "web", "paths": ["a", "b"]}], "mixture": {"sources": {"python": {"weight": 70}}},
              "shards": {"sequence_lengths": [4096]}}
    assert flatten(config) == {"inputs[web].name": "web", "inputs[web].paths": ["a", "b"],
                               "mixture.sources.python.weight": 70, "shards.sequence_lengths": [4096]}


def test_diff_of_two_manifests_reports_config_counts_and_weights() -> None:
    a = reference()
    b = copy.deepcopy(a)
    b["run"]["finished"] = "2031-01-01T00:00:00+00:00"
    assert diff_manifests(a, b)["same_build"] is True
    b["config"]["mixture"]["sources"]["python"]["weight"] = 70.0
    b["accounting"]["stages"]["normalize"]["refinedweb"]["dropped"]["empty_text"] = {"docs": 9, "bytes": 0}
    b["mixture"]["sources"]["python"]["realized_weight"] = 0.5
    b["inputs"][0]["paths"] = b["inputs"][0]["paths"][1:] + [{"path": "/new/file.py", "bytes": 10}]
    diff = diff_manifests(a, b)
    assert diff["same_build"] is False
    assert {"key": "mixture.sources.python.weight", "a": 72.73, "b": 70.0} in diff["config"]
    count = next(c for c in diff["counts"] if c["key"] == "normalize/refinedweb dropped:empty_text")
    assert count["b"] == 9 and count["delta"] == 9 - (count["a"] or 0)
    python = next(s for s in diff["sources"] if s["source"] == "python")
    assert python["realized_weight_b"] == 0.5
    (inputs,) = diff["inputs"]
    assert inputs["paths_added"] == 1 and inputs["paths_removed"] == 1
    assert inputs["examples_added"] == ["/new/file.py"]


@pytest.mark.slow
def test_regenerate_is_idempotent_and_records_audits(small_build: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "manifests"
    assert main(["manifests", "regenerate", "--root", str(root), str(small_build)]) == 0
    first = (root / INDEX_NAME).read_bytes()
    index = json.loads(first)
    (row,) = index["builds"]
    manifest = json.loads((small_build / "manifest.json").read_text())
    assert row["id"] == build_id(manifest) and row["audit"] == "passed"
    assert row["tokens"] == manifest["totals"]["tokens"] and row["config_hash"] == manifest["build"]["config_hash"]
    assert row["date"] == manifest["run"]["finished"]
    assert row["code_text_ratio"] == manifest["mixture"]["code_text_ratio"]["realized"]
    assert (root / row["manifest"]).read_bytes() == (small_build / "manifest.json").read_bytes()
    assert main(["manifests", "regenerate", "--root", str(root), str(small_build)]) == 0
    assert main(["manifests", "regenerate", "--root", str(root)]) == 0
    assert (root / INDEX_NAME).read_bytes() == first
    assert sorted(p.name for p in root.iterdir()) == sorted([INDEX_NAME, row["id"]])
    assert row["id"] in capsys.readouterr().out


@pytest.mark.slow
def test_failed_audits_and_unfinished_builds_show_in_the_index(small_build: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "manifests"
    damaged = tmp_path / "damaged"
    shutil.copytree(small_build, damaged)
    (damaged / "shards" / "shard-00000.docs.jsonl.zst").unlink()
    unfinished = tmp_path / "unfinished"
    (unfinished / "shards").mkdir(parents=True)
    code = main(["manifests", "regenerate", "--root", str(root), "--json", str(small_build), str(damaged),
                 str(unfinished)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "unfinished build" in err
    (row,) = json.loads(out)["builds"]  # the damaged copy has the same manifest, so the same id
    assert row["audit"] == "failed" and row["mismatches"] > 0
    assert "its audit failed" in err
    audit = json.loads((root / row["id"] / "audit.json").read_text())
    assert any("shard-00000.docs.jsonl.zst is missing" in m for m in audit["mismatches"])
    # A failed build stored earlier is shown, but does not fail later regenerations.
    assert main(["manifests", "regenerate", "--root", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["builds"][0]["audit"] == "failed"


@pytest.mark.slow
def test_prune_keeps_only_the_given_builds(small_build: Path, tmp_path: Path) -> None:
    root = tmp_path / "manifests"
    stale = root / "old-000000000000"
    stale.mkdir(parents=True)
    shutil.copy(small_build / "manifest.json", stale / "manifest.json")
    assert main(["manifests", "regenerate", "--root", str(root), "--prune", str(small_build)]) == 0
    assert not stale.exists()
    assert len(json.loads((root / INDEX_NAME).read_text())["builds"]) == 1


@pytest.mark.slow
def test_diff_command_between_a_folder_and_a_stored_id(small_build: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "manifests"
    assert main(["manifests", "regenerate", "--root", str(root), str(small_build)]) == 0
    stored = json.loads((root / INDEX_NAME).read_text())["builds"][0]["id"]
    changed = tmp_path / "changed"
    shutil.copytree(small_build, changed)
    manifest = json.loads((changed / "manifest.json").read_text())
    manifest["config"]["shards"]["target_tokens"] = 999
    (changed / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["manifests", "diff", "--root", str(root), stored, str(changed), "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["config"] == [{"key": "shards.target_tokens", "a": 150_000, "b": 999}]
    assert diff["counts"] == [] and diff["sources"] == []
    assert main(["manifests", "diff", "--root", str(root), stored, str(changed)]) == 0
    assert "shards.target_tokens" in capsys.readouterr().out
    assert main(["manifests", "diff", "--root", str(root), stored, "no-such-build"]) == 2
    assert "not a build folder, a manifest file, or a build id" in capsys.readouterr().err
