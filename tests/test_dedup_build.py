"""`corpus build` removes near-duplicates within code and within text, and its manifest says how."""

from __future__ import annotations

from pathlib import Path

import pytest

from lemur_corpus.config import parse_config
from lemur_corpus.pipelines.build import run_build
from lemur_corpus.shards import read_docs_index
from tests.buildutil import lemur_sources
from tests.conftest import read_jsonl, shared_path

pytestmark = pytest.mark.slow

TEXT_ROWS = 120


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("neardedup")
    config = parse_config({
        "name": "neardedup",
        "inputs": [
            {"name": "forks", "format": "jsonl", "kind": "code", "source": "python",
             "paths": [str(shared_path("dups", "code_forks.docs.jsonl.zst"))]},
            {"name": "web", "format": "jsonl", "kind": "text", "source": "refinedweb",
             "paths": [str(shared_path("dups", "web_neardup.docs.jsonl.zst"))], "limit_per_file": TEXT_ROWS},
        ],
        "filters": {"text": {"enabled": False}, "code": {"enabled": False}},  # dedup alone decides here
        "mixture": {"enabled": False, "sources": lemur_sources(), "on_empty_source": "redistribute"},
        "shards": {"target_tokens": 2_000_000},
    })
    return out, run_build(config, str(out))


def _kept_ids(out: Path) -> set[str]:
    return {str(d["id"]) for idx in sorted((out / "shards").glob("*.docs.jsonl.zst"))
            for d in read_docs_index(str(idx).removesuffix(".docs.jsonl.zst"))}


def test_near_duplicates_removed_within_code_and_text(build: tuple[Path, dict]) -> None:
    out, manifest = build
    dedup = manifest["accounting"]["stages"]["dedup"]
    assert dedup["python"]["dropped"]["near_duplicate"]["docs"] > 0
    assert dedup["refinedweb"]["dropped"]["near_duplicate"]["docs"] > 0
    assert manifest["accounting"]["balanced"]
    kept = _kept_ids(out)
    pairs = read_jsonl(shared_path("dups", "code_forks.pairs.jsonl"))
    for pair in pairs:
        a, b = f"forks/{pair['a']}", f"forks/{pair['b']}"
        if pair["jaccard_w5"] >= 0.95:
            assert not (a in kept and b in kept), pair
    web = {d["id"] for d in read_jsonl(shared_path("dups", "web_neardup.docs.jsonl.zst"))[:TEXT_ROWS]}
    for pair in read_jsonl(shared_path("dups", "web_neardup.pairs.jsonl")):
        if pair["a"] in web and pair["b"] in web and pair["jaccard_w5"] >= 0.95:
            assert not (f"web/{pair['a']}" in kept and f"web/{pair['b']}" in kept), pair


def test_manifest_records_candidates_edges_components_and_clusters(build: tuple[Path, dict]) -> None:
    _, manifest = build
    section = manifest["dedup"]
    for kind, source in (("code", "python"), ("text", "refinedweb")):
        near = section["near"][kind]
        assert near["candidate_pairs"] == near["verified_edges"] + near["rejected_pairs"]
        assert near["verified_edges"] > 0 and near["components"] > 0
        assert near["component_nodes"] >= near["clusters"] + near["removed"]
        # 0 rounds when verification's chunks sent stars that were settled from the start
        assert 0 <= near["component_rounds"] <= near["component_round_limit"] and near["unconverged_nodes"] == 0
        assert near["max_component_size"] >= near["max_cluster_size"] >= 2
        assert near["split_components"] == near["component_parts"] == near["edges_outside_parts"] == 0
        assert near["bucket_window"] == 16 and near["max_bucket_size"] >= 2
        assert 0 < near["duplicate_rate"] < 1
        assert near["removed"] == manifest["accounting"]["stages"]["dedup"][source]["dropped"]["near_duplicate"]["docs"]
        by_source = section["near_by_source"][source]
        assert by_source["removed"] == near["removed"] and by_source["documents"] == near["documents"]
        assert set(by_source) >= {"candidate_pairs", "verified_edges", "clusters", "duplicate_rate"}


def test_drop_log_names_the_kept_twin_of_every_dedup_removal(build: tuple[Path, dict]) -> None:
    out, manifest = build
    kept = _kept_ids(out)
    drops = [d for path in sorted((out / "drops").glob("*.jsonl.zst")) for d in read_jsonl(path)]
    removed = [d for d in drops if d["reason"] in ("exact_duplicate", "near_duplicate")]
    assert len(removed) == sum(g["dropped"].get(r, {}).get("docs", 0)
                               for g in manifest["accounting"]["stages"]["dedup"].values()
                               for r in ("exact_duplicate", "near_duplicate"))
    thresholds = {"python": 0.85, "refinedweb": 0.8}
    for drop in removed:
        assert drop["duplicate_of"] in kept, drop  # the document it matched is in the shards
        assert drop["similarity"] >= thresholds[drop["group"]]
        assert drop["detail"].startswith(f"duplicate of {drop['duplicate_of']}")
    assert all("duplicate_of" not in d for d in drops if d["stage"] != "dedup")
