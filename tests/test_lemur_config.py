"""The shipped `configs/lemur.yaml` on a real download (issue 22): a miniature tree in the real layouts,
made from ../shared/data at test time — The Stack's parquet per language folder (some folders
missing: a partial download), RefinedWeb's parquet, RedPajama's `text` + `meta` jsonl, DM
Mathematics question/answer lines — built with the unedited config and only `--set` overrides.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lemur_corpus.cli import main
from lemur_corpus.config import load_config, with_settings
from lemur_corpus.errors import ConfigError
from lemur_corpus.mixture import MixtureConfig, MixtureError, MixtureSource, plan_totals
from tests.conftest import REPO, read_jsonl, shared_path

LEMUR = str(REPO / "configs" / "lemur.yaml")
STACK_LANGUAGES = {"Python": "python", "Shell": "shell", "Java": "java", "C": "c", "C++": "c++"}
"""Folders written; sql, jupyter-notebook, javascript, php and the "others" are missing."""


def write_tree(root: Path, drop_stack_column: str | None = None) -> Path:
    code = read_jsonl(shared_path("code", "code_sample.jsonl.zst"))
    for lang, folder in STACK_LANGUAGES.items():
        rows = [r for r in code if r.get("lang") == lang][:60]
        table = pa.Table.from_pylist(rows)  # licenses stay a list column, as in The Stack
        if drop_stack_column:
            table = table.drop_columns([drop_stack_column])
        out = root / "the-stack-dedup" / "data" / folder
        out.mkdir(parents=True)
        pq.write_table(table, out / "data-00000.parquet")
    pages = read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))
    web = pa.Table.from_pylist([{"content": p["text"], "url": p.get("url") or p["id"], "timestamp": "2023-01-01",
                                 "dump": "CC-MAIN-2023-06", "segment": "0"} for p in pages])
    (root / "refinedweb" / "data").mkdir(parents=True)
    pq.write_table(web, root / "refinedweb" / "data" / "part-00000.parquet")
    others = read_jsonl(shared_path("web", "commoncrawl_samples.jsonl.zst"))
    for n, subset in enumerate(("wikipedia", "book", "arxiv", "stackexchange")):
        folder = root / "redpajama" / subset
        folder.mkdir(parents=True)
        lines = [json.dumps({"text": r["text"], "meta": {"url": f"{subset}/{r['id']}", "language": "en"}})
                 for r in others[18 * n: 18 * (n + 1)]]  # other documents per subset: no cross-source copies
        (folder / f"{subset}_0000.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rng = random.Random(22)
    problems = []
    for i in range(200):  # DM Mathematics: one short question and its answer per line
        a, b, x = rng.randrange(2, 20), rng.randrange(1, 50), rng.randrange(-9, 10)
        problems.append(json.dumps({"text": f"Solve {a}*x + {b} = {a * x + b} for x.\n{x}", "id": f"dm-{i}"}))
    (root / "dm_mathematics").mkdir()
    (root / "dm_mathematics" / "train-easy.jsonl").write_text("\n".join(problems) + "\n", encoding="utf-8")
    return root


SMALL = ["--set", "mixture.total_tokens=null", "--set", "mixture.on_empty_source=redistribute",
         "--set", "shards.target_tokens=2000000"]


@pytest.mark.slow
def test_a_partial_download_builds_with_the_unedited_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LEMUR_DATA", str(write_tree(tmp_path / "data")))
    out = tmp_path / "build"
    assert main(["build", "--config", LEMUR, "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text())
    sources = manifest["mixture"]["sources"]
    # the missing language folders were a warning, their sources empty, their weight redistributed
    stack = next(i for i in manifest["inputs"] if i["name"] == "the_stack")
    assert any("/sql/" in p for p in stack["unmatched"]) and sources["sql"]["status"] != "mixed"
    assert "sql's weight went to" in printed.out
    # curated text kept: no web-page rules ran on it (its chain is recorded), DM Mathematics survives
    dm = next(i for i in manifest["inputs"] if i["name"] == "dm_mathematics")
    assert not {"lid", "gopher_repetition", "gopher_quality", "c4"} & set(dm["filters"]["text"])
    assert manifest["accounting"]["stages"]["filter"]["dm_mathematics"]["out"]["docs"] == 200
    assert sources["dm_mathematics"]["realized_tokens"] > 0 and sources["books"]["realized_tokens"] > 0
    assert manifest["config"]["mixture"]["total_tokens"] is None  # the --set overrides are in the record
    assert main(["audit", str(out)]) == 0


@pytest.mark.slow
def test_a_stack_file_without_its_text_column_fails_before_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LEMUR_DATA", str(write_tree(tmp_path / "data", drop_stack_column="content")))
    assert main(["validate", "--config", LEMUR, "--out", str(tmp_path / "b"), *SMALL[:0]]) == 2
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("error:"))
    assert "the-stack-dedup/data/" in line and "no record has the text field 'content'" in line
    assert "max_stars_repo_path" in line and "inputs.the_stack.fields.text" in line
    assert not (tmp_path / "b" / "shards").exists()


def test_set_overrides_any_key_and_names_a_wrong_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEMUR_DATA", "/nonexistent")
    config = load_config(LEMUR)
    changed = with_settings(config, ["mixture.total_tokens=null", "inputs.dm_mathematics.optional=true",
                                     "filters.text.lid.languages=[en, de]"])
    assert changed.mixture.total_tokens is None and changed.filters.text.lid.languages == ["en", "de"]
    assert next(i for i in changed.inputs if i.name == "dm_mathematics").optional
    assert with_settings(config, []).config_hash() == config.config_hash()
    with pytest.raises(ConfigError, match=r"mixture.totl: unknown key"):
        with_settings(config, ["mixture.totl=3"])
    with pytest.raises(ConfigError, match=r"no input named 'nope' \(inputs: the_stack, refinedweb"):
        with_settings(config, ["inputs.nope.kind=code"])
    with pytest.raises(ConfigError, match=r"mixture.total_tokens: expected an integer"):
        with_settings(config, ["mixture.total_tokens=lots"])
    with pytest.raises(ConfigError, match=r"unknown text filter\(s\): gopher"):
        with_settings(config, ["inputs.refinedweb.filters={text: [lid, gopher]}"])


def test_a_total_over_the_caps_names_the_binding_source_and_a_feasible_total() -> None:
    config = MixtureConfig(total_tokens=90_000_000_000, sources={
        "arxiv": MixtureSource(kind="text", weight=10, max_epochs=4),
        "python": MixtureSource(kind="code", weight=90, max_epochs=3),
    })
    pools = {"arxiv": 5_000_000_000, "python": 1_000_000_000}
    weights = config.normalized_weights()
    with pytest.raises(MixtureError) as error:
        plan_totals(config, pools, weights)
    message = str(error.value)
    # python needs 81 epochs, arxiv 1.8: python binds, though arxiv comes first alphabetically
    assert "source 'python'" in message and "(also over their caps" not in message
    assert "the largest total every cap allows is 3,333,333,333" in message
    assert "remove it" in message and "mixture.sources.python.max_epochs" in message
