"""manifests/schema/manifest.schema.json: a valid JSON Schema, the version corpus/manifest.py writes,
satisfied by every real manifest, and enforced when a manifest is written."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lemur_corpus.errors import CorpusError
from lemur_corpus.manifest import (
    MANIFEST_NAME,
    SCHEMA_PATH,
    SCHEMA_VERSION,
    ManifestSchemaError,
    cluster_size_metric,
    manifest_schema,
    schema_problems,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[1]


def committed_manifests() -> list[Path]:
    index = json.loads((REPO / "manifests" / "index.json").read_text())
    return [REPO / "manifests" / row["manifest"] for row in index["builds"]]


@pytest.fixture(scope="module")
def reference() -> dict:
    paths = committed_manifests()
    assert paths, "manifests/ holds the reference build of the embedded default"
    return json.loads(paths[0].read_text())


def test_the_schema_is_valid_and_versioned_like_the_writer() -> None:
    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert Path(SCHEMA_PATH) == REPO / "manifests" / "schema" / "manifest.schema.json"
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert SCHEMA_VERSION in schema["$id"] and SCHEMA_VERSION in schema["title"]


def test_every_committed_manifest_satisfies_the_schema() -> None:
    for path in committed_manifests():
        assert schema_problems(json.loads(path.read_text())) == [], path


def test_problems_name_the_field_and_what_is_wrong(reference: dict) -> None:
    broken = copy.deepcopy(reference)
    del broken["run"]["runner"]
    broken["shards"][0]["files"]["bin"]["sha256"] = "not-a-hash"
    broken["mixture"]["sources"]["python"]["realized_weight"] = "85%"
    broken["totals"]["tokenz"] = 1
    problems = schema_problems(broken)
    assert "run: 'runner' is a required property" in problems
    assert "shards[0].files.bin.sha256: 'not-a-hash' does not match '^[0-9a-f]{64}$'" in problems
    assert "mixture.sources.python.realized_weight: '85%' is not of type 'number'" in problems
    assert any(p.startswith("totals: Additional properties are not allowed ('tokenz'") for p in problems)


def test_an_invalid_manifest_is_never_written(reference: dict, tmp_path: Path) -> None:
    broken = copy.deepcopy(reference)
    broken["schema_version"] = "0.1"
    with pytest.raises(ManifestSchemaError, match="schema_version: '1.0' was expected"):
        write_manifest(str(tmp_path), broken)
    assert not (tmp_path / MANIFEST_NAME).exists()
    assert isinstance(ManifestSchemaError("x"), CorpusError)  # reported as one clear line by the CLI
    write_manifest(str(tmp_path), reference)
    assert json.loads((tmp_path / MANIFEST_NAME).read_text()) == reference


@given(st.integers(min_value=2, max_value=10**9))
def test_cluster_size_buckets_are_powers_of_two_that_hold_the_size(size: int) -> None:
    bound = int(cluster_size_metric(size).removeprefix("cluster_size_le_"))
    assert bound & (bound - 1) == 0 and bound // 2 < size <= bound


@pytest.mark.slow
def test_a_real_build_manifest_satisfies_the_schema(small_build: Path) -> None:
    manifest = json.loads((small_build / MANIFEST_NAME).read_text())
    assert schema_problems(manifest) == []
    assert manifest["schema_version"] == SCHEMA_VERSION


@pytest.mark.slow
def test_a_build_whose_manifest_breaks_the_schema_fails_clearly(tmp_path: Path, monkeypatch) -> None:
    """The schema demands a field the writer does not produce: the build must stop and say so."""
    import lemur_corpus.manifest
    from lemur_corpus.config import BuildConfig, InputConfig, LocalEnvConfig, MixtureConfig, lemur_mixture_sources
    from lemur_corpus.defaults import local_text_filters
    from lemur_corpus.pipelines.build import run_build

    stricter = copy.deepcopy(manifest_schema())
    stricter["properties"]["build"]["required"].append("owner")
    monkeypatch.setattr(lemur_corpus.manifest, "manifest_schema", lambda: stricter)
    monkeypatch.setattr("lemur_corpus.pipelines.build.manifest_schema", lambda: stricter)
    config = BuildConfig(
        name="tiny",
        inputs=[InputConfig(name="local", format="local_env", text_source="refinedweb",
                            local_env=LocalEnvConfig(max_files_per_bucket=6, max_text_files=12, max_file_bytes=8_000))],
        filters=local_text_filters(),
        mixture=MixtureConfig(sources=lemur_mixture_sources(), on_empty_source="redistribute", min_pool_tokens=200),
    )
    with pytest.raises(CorpusError, match="manifest schema: build: 'owner' is a required property"):
        run_build(config, str(tmp_path / "out"))
    assert not (tmp_path / "out" / MANIFEST_NAME).exists()
    assert (tmp_path / "out" / "FAILED.json").exists()
