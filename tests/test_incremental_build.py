"""`corpus build --dedup-against` (#19): a build dedups against an earlier build's index, never
removes what it published, names it in every removal, records it in the manifest; the audit checks
that the recorded indexes still exist and match; an unusable index stops the build before it writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from lemur_corpus.audit.checks import audit_build
from lemur_corpus.cli import main
from lemur_corpus.config import parse_config
from lemur_corpus.pipelines.build import default_build_id, preflight, run_build
from lemur_corpus.shards import read_docs_index
from tests.buildutil import lemur_sources
from tests.conftest import read_jsonl, shared_path

pytestmark = pytest.mark.slow


def _config(rows: int, threshold: float = 0.8) -> Any:
    return parse_config({
        "name": "weekly",
        "inputs": [{"name": "web", "format": "jsonl", "kind": "text", "source": "refinedweb",
                    "paths": [str(shared_path("dups", "web_neardup.docs.jsonl.zst"))], "limit_per_file": rows}],
        "filters": {"text": {"enabled": False}, "code": {"enabled": False}},
        "dedup": {"text": {"threshold": threshold}},
        "mixture": {"enabled": False, "sources": lemur_sources(), "on_empty_source": "redistribute"},
        "shards": {"target_tokens": 2_000_000},
    })


def _kept_ids(out: Path) -> set[str]:
    return {str(d["id"]) for idx in sorted((out / "shards").glob("*.docs.jsonl.zst"))
            for d in read_docs_index(str(idx).removesuffix(".docs.jsonl.zst"))}


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("weekly")
    first = run_build(_config(120), str(root / "week1"), build_id="week1")
    second = run_build(_config(260), str(root / "week2"), against=[str(root / "week1")], build_id="week2")
    return {"root": root, "first": first, "second": second}


def test_the_second_build_removes_what_the_first_published_and_names_it(builds: dict[str, Any]) -> None:
    root, second = builds["root"], builds["second"]
    published = _kept_ids(root / "week1")
    dropped = second["accounting"]["stages"]["dedup"]["refinedweb"]["dropped"]
    assert dropped["published_exact_duplicate"]["docs"] >= len(published)  # the first 120 rows, read again
    assert dropped["published_near_duplicate"]["docs"] > 0
    drops = [d for path in sorted((root / "week2" / "drops").glob("*.zst")) for d in read_jsonl(path)]
    earlier = [d for d in drops if d.get("duplicate_of_build")]
    assert len(earlier) == dropped["published_exact_duplicate"]["docs"] + dropped["published_near_duplicate"]["docs"]
    assert all(d["duplicate_of_build"] == "week1" and d["duplicate_of"] in published for d in earlier)
    assert not (_kept_ids(root / "week2") & published)  # nothing published twice
    record = second["dedup_index"]
    assert record["build_id"] == "week2" and [a["kind"] for a in record["against"]] == ["code", "text"]
    assert {tuple(a["builds"]) for a in record["against"]} == {("week1",)}
    assert record["written"]["text"]["documents"] == second["totals"]["documents"]
    assert second["dedup"]["against"]["text"]["index_documents"] == len(published)


def test_the_audit_checks_the_recorded_indexes(builds: dict[str, Any], tmp_path: Path) -> None:
    root = builds["root"]
    assert audit_build(str(root / "week2")).ok
    header = root / "week1" / "dedup-index" / "text" / "index.json"
    saved = header.read_bytes()
    try:
        header.write_bytes(saved.replace(b'"documents"', b'"documents" ', 1))
        mismatches = audit_build(str(root / "week2")).mismatches
        assert any("deduplicated against" in m and "the manifest says" in m for m in mismatches), mismatches
        header.unlink()
        assert any("deduplicated against" in m and "missing" in m for m in audit_build(str(root / "week2")).mismatches)
    finally:
        header.write_bytes(saved)
    own = root / "week2" / "dedup-index" / "text" / "part-00000-of-00004.parquet"
    data = own.read_bytes()
    try:
        own.write_bytes(data[:-4])
        assert any("truncated or replaced" in m for m in audit_build(str(root / "week2")).mismatches)
    finally:
        own.write_bytes(data)


def test_a_build_against_an_index_of_other_settings_stops_before_writing(
        builds: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "other.json"
    config.write_text(json.dumps(_config(50, threshold=0.7).model_dump(mode="json", exclude_none=True)))
    capsys.readouterr()
    code = main(["build", "--config", str(config), "--out", str(tmp_path / "out"),
                 "--dedup-against", str(builds["root"] / "week1")])
    error = capsys.readouterr().err
    assert code == 2 and "dedup.text.threshold = 0.8 in the index, this run uses 0.7" in error, error
    assert not (tmp_path / "out").exists()
    copy = tmp_path / "week1"
    shutil.copytree(builds["root"] / "week1", copy)
    (copy / "dedup-index" / "code" / "part-00002-of-00004.parquet").unlink()
    assert main(["build", "--config", str(config), "--set", "dedup.text.threshold=0.8", "--out", str(tmp_path / "out"),
                 "--dedup-against", str(copy)]) == 2
    assert "part-00002-of-00004.parquet is missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_default_build_id_follows_config_and_inputs_not_the_folder(builds: dict[str, Any]) -> None:
    """Without --build-id the index and manifest are the same bytes in any folder (the id is a
    digest of the config and input files), and other inputs give another id."""
    config = _config(120)
    files = preflight(config).files
    same = default_build_id(config, files)
    assert same == default_build_id(_config(120), preflight(_config(120)).files)
    assert same.startswith(f"{config.name}-") and same != default_build_id(_config(260), preflight(_config(260)).files)
