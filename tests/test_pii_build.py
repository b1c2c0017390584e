"""The `pii` filter in the pipelines: redactions counted per filter, source and type from the filter
stage to the manifest (`filter_edits`) and the audit report, `corpus filter --filters pii` alone, and
the planted sets of benchmarks/pii_quality.py on real documents (the issue's targets, one seed)."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from lemur_corpus.cli import main
from lemur_corpus.config import FiltersConfig
from lemur_corpus.document import Document
from lemur_corpus.filters.code.config import CodeFiltersConfig
from lemur_corpus.filters.text.config import TextFiltersConfig
from lemur_corpus.manifest import filter_edits_section, manifest_schema
from lemur_corpus.pipelines.direct_runner import beam_pipeline
from lemur_corpus.pipelines.filter import FilterStage
from lemur_corpus.report import redactions_html
from tests.conftest import read_jsonl, shared_path

PII_ONLY = FiltersConfig(code=CodeFiltersConfig(filters=["pii"]), text=TextFiltersConfig(filters=["pii"]))


def _doc(i: int, source: str, kind: str, text: str) -> Document:
    return Document(id=f"in/{i}", source=source, kind=kind, text=text, lang="Python" if kind == "code" else "en")


def test_filter_stage_sums_redactions_per_filter_source_and_type() -> None:
    docs = [
        _doc(1, "python", "code", "# Anna <anna@acme-corp.io>\nHOST = '93.184.216.34'\n"),
        _doc(2, "python", "code", "KEY = 'AKIAZ3MLQ7TRP4XKWD2N'  # bob@acme-corp.io\n"),
        _doc(3, "python", "code", "x = 1\n"),
        _doc(4, "refinedweb", "text", "Mail me: carla@acme-corp.io."),
    ]
    with beam_pipeline(PipelineOptions()) as p:
        out = p | beam.Create(docs) | FilterStage(PII_ONLY)
        assert_that(out.edits, equal_to([
            (("pii", "python", "documents"), 2), (("pii", "python", "email"), 2), (("pii", "python", "ipv4"), 1),
            (("pii", "python", "aws_access_key_id"), 1),
            (("pii", "refinedweb", "documents"), 1), (("pii", "refinedweb", "email"), 1),
        ]), label="edits")
        assert_that(out.docs | beam.Map(lambda d: d.text), equal_to([
            "# Anna <user1@example.com>\nHOST = '192.0.2.1'\n",
            "KEY = 'REDACTED_AWS_ACCESS_KEY_ID'  # user1@example.com\n", "x = 1\n", "Mail me: user1@example.com.",
        ]), label="docs")
        assert_that(out.drops | beam.Map(lambda d: (d.id, d.reason)), equal_to([]), label="drops")


def test_max_hits_drop_is_counted_and_its_redactions_are_not() -> None:
    docs = [_doc(1, "python", "code", "a@acme-corp.io b@acme-corp.io c@acme-corp.io\n"),
            _doc(2, "python", "code", "# d@acme-corp.io\n")]
    config = FiltersConfig(code=CodeFiltersConfig.model_validate({"filters": ["pii"], "pii": {"max_hits": 2}}),
                           text=TextFiltersConfig(filters=["pii"]))
    with beam_pipeline(PipelineOptions()) as p:
        out = p | beam.Create(docs) | FilterStage(config)
        assert_that(out.drops | beam.Map(lambda d: (d.id, d.reason)), equal_to([("in/1", "pii.too_many_hits")]),
                    label="drops")
        assert_that(out.edits, equal_to([(("pii", "python", "documents"), 1), (("pii", "python", "email"), 1)]),
                    label="edits")
        tallies = out.tallies | beam.Map(lambda t: (t.key, t.docs)) | beam.CombinePerKey(sum)
        assert_that(tallies, equal_to([("in", 2), ("out", 1)]), label="tallies")


def test_manifest_section_and_report() -> None:
    edits = [(("pii", "python", "email"), 3), (("pii", "python", "documents"), 2), (("pii", "shell", "ipv4"), 1),
             (("pii", "shell", "documents"), 1), (("c4", "refinedweb", "lines.javascript"), 4)]
    section = filter_edits_section(edits)
    assert section == {"c4": {"refinedweb": {"lines.javascript": 4}},
                       "pii": {"python": {"documents": 2, "email": 3}, "shell": {"documents": 1, "ipv4": 1}}}
    schema = manifest_schema()["properties"]["filter_edits"]
    import jsonschema

    jsonschema.validate(section, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"pii": {"python": {"email": -1}}}, schema)
    html = redactions_html(section)
    assert "<th>email</th>" in html and "<th>ipv4</th>" in html and "all sources" in html
    assert "lines.javascript 4" in html
    assert "No redactions" in redactions_html(None)


def test_corpus_filter_runs_pii_alone(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    records = [{"hexsha": "a1", "lang": "Python", "max_stars_repo_path": "app/settings.py",
                "content": "ADMINS = [('Anna', 'anna@acme-corp.io')]\n"
                           "SECRET_KEY = 'x7Rk2mQ9vT4bN8wLpZ3cYd6F1gH5jK0a'\n"},
               {"hexsha": "b2", "lang": "Python", "max_stars_repo_path": "app/clean.py", "content": "x = 1\n"}]
    src = tmp_path / "code.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out"
    assert main(["filter", "--input", str(src), "--kind", "code", "--out", str(out), "--filters", "pii"]) == 0
    assert "pii.email 1" in capsys.readouterr().out
    kept = read_jsonl(out / "kept-00000-of-00001.jsonl.zst")
    assert kept[0]["content"] == "ADMINS = [('Anna', 'user1@example.com')]\nSECRET_KEY = 'REDACTED_SECRET'\n"
    assert kept[1]["content"] == "x = 1\n"
    verdicts = read_jsonl(out / "verdicts.jsonl")
    assert verdicts[0]["signals"] == {"pii.hits": 2, "pii.email": 1, "pii.secret": 1}
    assert verdicts[0]["removed"] == {"pii.email": 1, "pii.secret": 1}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["edits"] == {"pii.email": 1, "pii.secret": 1} and summary["kept"] == 2


@pytest.mark.slow
def test_a_build_counts_its_redactions_in_the_manifest(small_build: Path) -> None:
    manifest = json.loads((small_build / "manifest.json").read_text())
    pii = manifest["filter_edits"]["pii"]
    assert pii, "the local Python installation has author addresses in its code and package metadata"
    for source, counts in pii.items():
        assert counts["documents"] >= 1 and sum(v for k, v in counts.items() if k != "documents") >= counts["documents"]
        assert source in manifest["mixture"]["sources"] or source == "unbucketed"
    assert manifest["config"]["filters"]["text"]["filters"][-1] == "pii"


def test_planted_sets_meet_the_targets() -> None:
    """benchmarks/pii_quality.py on one seed: recall >= 0.95 per type, >= 0.98 over secrets, >= 98% of
    look-alikes untouched, every document kept (random values in real formats on real documents)."""
    data = shared_path()
    from benchmarks.pii_planted import planted_set
    from benchmarks.pii_quality import evaluate
    from lemur_corpus.filters.pii import SECRET_TYPES, PiiConfig

    items = planted_set(data, seed=20, per_type=20)
    result = evaluate(items, PiiConfig())
    ours, totals = result["found"]["ours"], result["totals"]
    recall = {t: ours[("pii", t)] / n for (g, t), n in totals.items() if g == "pii"}
    assert min(recall.values()) >= 0.95, recall
    secrets = [t for t in recall if t in SECRET_TYPES]
    assert sum(ours[("pii", t)] for t in secrets) / sum(totals[("pii", t)] for t in secrets) >= 0.98
    looks = [(ours[k], n) for k, n in totals.items() if k[0] == "lookalike"]
    assert sum(a for a, _ in looks) / sum(n for _, n in looks) >= 0.98
    assert result["kept"] == len(items) and result["errors"] == 0
