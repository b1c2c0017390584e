"""A build over real slices with benchmark items planted: the decontam filter drops them before dedup,
the manifest reports them (with those another filter dropped first) and records the index, and the
audit and its HTML page show and check the report."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.buildutil import slice_config
from tests.conftest import read_jsonl, shared_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def planted_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[str]]:
    from lemur_corpus.pipelines.build import run_build

    tmp = tmp_path_factory.mktemp("decontam")
    rng = random.Random(14)
    pages = [r for r in read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst")) if r.get("lang") == "en"]
    gsm8k = rng.sample(read_jsonl(shared_path("benchmarks", "gsm8k_test.jsonl")), 8)
    planted = [{"id": f"planted{i}", "text": rng.choice(pages)["text"] + "\n\nHomework help please:\n" + q["question"]}
               for i, q in enumerate(gsm8k[:5])]
    short = [{"id": f"short{i}", "text": q["question"]} for i, q in enumerate(gsm8k[5:])]  # too short for Gopher
    (tmp / "planted.jsonl").write_text("".join(json.dumps(r) + "\n" for r in planted), encoding="utf-8")
    (tmp / "short.jsonl").write_text("".join(json.dumps(r) + "\n" for r in short), encoding="utf-8")
    config = slice_config(code_rows=150, web_rows=60)
    data = config.model_dump(mode="json")
    data["inputs"] += [
        {"name": "planted", "format": "jsonl", "kind": "text", "source": "refinedweb",
         "paths": [str(tmp / "planted.jsonl")]},
        {"name": "short", "format": "jsonl", "kind": "text", "source": "stackexchange",
         "paths": [str(tmp / "short.jsonl")], "filters": {"text": ["gopher_quality", "decontam"]}},
    ]
    from lemur_corpus.config import parse_config

    out = tmp / "out"
    manifest = run_build(parse_config(data), str(out))
    return out, manifest, [q["id"] for q in gsm8k]


def test_planted_items_are_dropped_and_reported(planted_build: tuple[Path, dict[str, Any], list[str]]) -> None:
    _, manifest, ids = planted_build
    section = manifest["decontamination"]
    gsm8k = section["benchmarks"]["gsm8k"]
    assert set(gsm8k["items"]) == set(ids)
    assert (gsm8k["dropped"], gsm8k["dropped_by_other_filters"]) == (5, 3)
    assert gsm8k["by_source"]["refinedweb"]["dropped"] == 5
    assert gsm8k["by_source"]["stackexchange"] == {"documents": 3, "dropped": 0, "dropped_by_other_filters": 3}
    assert sum(section["other_filters"].values()) == 3  # Gopher's rules for short pages dropped them first
    assert all(reason.startswith("gopher_quality.") for reason in section["other_filters"])
    dropped = manifest["accounting"]["stages"]["filter"]["refinedweb"]["dropped"]
    assert dropped["decontam.gsm8k"]["docs"] == 5
    index = section["indexes"]["text"]
    assert index["index"] == "builtin:lemur-benchmarks.dcx" and len(index["index_sha256"]) == 64
    assert index["settings"]["ngram"] == 8 and index["benchmarks"]["mmlu"]["items"] == 14042
    assert set(section["indexes"]) == {"code", "text"}


def test_the_audit_checks_and_shows_the_report(planted_build: tuple[Path, dict[str, Any], list[str]],
                                               tmp_path: Path) -> None:
    from lemur_corpus.audit import audit_build
    from lemur_corpus.audit.contamination import contamination_problems
    from lemur_corpus.report import render_report

    out, manifest, _ = planted_build
    result = audit_build(str(out), workers=1)
    assert result.ok, result.mismatches
    rows = {r["benchmark"]: r for r in result.to_json()["contamination"]}
    assert rows["gsm8k"]["documents"] == 8 and rows["gsm8k"]["items"] == 1319 and rows["mmlu"]["documents"] == 0
    page = render_report(result)
    assert "<h2>Contamination</h2>" in page and "chart-contamination" in page
    tampered = json.loads(json.dumps(manifest))
    tampered["decontamination"]["benchmarks"]["gsm8k"]["by_source"]["refinedweb"]["dropped"] = 4
    assert contamination_problems(tampered) == [
        "decontamination: the report has 4 documents of source refinedweb dropped as decontam.gsm8k, the accounting 5"]
    del tampered["decontamination"]
    assert "no decontamination report" in contamination_problems(tampered)[0]
