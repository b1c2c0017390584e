"""Each source adapter on real files of its layout (../shared/data), and bad records counted by name."""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path
from typing import Any, get_args

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lemur_corpus.accounting import Drop
from lemur_corpus.config import BuildConfig, InputFormat, parse_config
from lemur_corpus.document import Document, from_arrow, to_arrow
from lemur_corpus.errors import ConfigError, InputFileError
from lemur_corpus.sources import PLANNERS, READERS, ReadTask, plan_input, planned_documents, read_task
from lemur_corpus.sources.base import BYTES_PER_PLANNED_DOCUMENT, UNSIZED_TASK_DOCUMENTS, Container, plan_files
from tests.conftest import read_jsonl, shared_path

SOURCES = {
    "python": {"kind": "code", "weight": 40}, "others": {"kind": "code", "weight": 20},
    "javascript": {"kind": "code", "weight": 10}, "java": {"kind": "code", "weight": 10},
    "shell": {"kind": "code", "weight": 5}, "c": {"kind": "code", "weight": 5}, "cpp": {"kind": "code", "weight": 5},
    "php": {"kind": "code", "weight": 1}, "sql": {"kind": "code", "weight": 1},
    "notebooks": {"kind": "code", "weight": 1},
    "refinedweb": {"kind": "text", "weight": 1}, "wikipedia": {"kind": "text", "weight": 1},
}


def config_for(*inputs: dict[str, Any], **extra: Any) -> BuildConfig:
    return parse_config({"inputs": list(inputs), "mixture": {"sources": SOURCES}, **extra})


def read_all(config: BuildConfig) -> tuple[list[Document], list[Drop]]:
    docs: list[Document] = []
    drops: list[Drop] = []
    for inp in config.inputs:
        tasks, _ = plan_input(inp, config)
        for task in tasks:
            for item in read_task(task, config):
                (drops if isinstance(item, Drop) else docs).append(item)
    return docs, drops


def test_the_stack_jsonl_zst() -> None:
    path = shared_path("code", "code_sample.jsonl.zst")
    records = read_jsonl(path)
    docs, drops = read_all(config_for({"name": "stack", "format": "stack", "kind": "code", "paths": [str(path)]}))
    assert not drops and len(docs) == len(records) == 2218
    first, rec = docs[0], records[0]
    assert first.id == f"stack/{rec['hexsha']}"
    assert first.text == rec["content"] and first.lang == rec["lang"] == "Python"
    assert first.source == "python" and first.kind == "code"
    assert first.meta["path"] == rec["max_stars_repo_path"] and first.meta["repo"] == rec["max_stars_repo_name"]
    assert first.meta["licenses"] == rec["max_stars_repo_licenses"]
    assert first.origin == f"{path}:1"
    by_lang = {d.lang: d.source for d in docs}
    assert by_lang["C++"] == "cpp" and by_lang["Shell"] == "shell" and by_lang["TypeScript"] == "others"
    assert by_lang["Markdown"] == "unbucketed"  # prose is not code: the language filter drops it


def test_the_stack_parquet_matches_jsonl(tmp_path: Path) -> None:
    records = read_jsonl(shared_path("code", "code_sample.jsonl.zst"))[:300]
    path = tmp_path / "stack.parquet"
    pq.write_table(pa.Table.from_pylist(records), path, row_group_size=100)
    docs, drops = read_all(config_for({"name": "stack", "format": "stack", "kind": "code", "paths": [str(path)]}))
    assert not drops
    assert [(d.id, d.text, d.lang, d.source) for d in docs] == [
        (f"stack/{r['hexsha']}", r["content"], r["lang"], docs[i].source) for i, r in enumerate(records)
    ]
    assert docs[5].origin == f"{path}#row6"


def test_refinedweb_parquet(tmp_path: Path) -> None:
    pages = read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))[:200]
    rows = [{"content": p["text"], "url": p["url"], "timestamp": "2023-01-01T00:00:00", "dump": "CC-MAIN-2023-06",
             "segment": "seg", "image_urls": []} for p in pages]
    path = tmp_path / "refinedweb.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    docs, _ = read_all(config_for({"name": "rw", "format": "refinedweb", "kind": "text", "source": "refinedweb",
                                   "paths": [str(path)]}))
    assert len(docs) == 200
    assert docs[0].id == f"rw/{pages[0]['url']}" and docs[0].text == pages[0]["text"]
    assert docs[0].meta["dump"] == "CC-MAIN-2023-06" and docs[0].source == "refinedweb"


def test_redpajama_jsonl_gz(tmp_path: Path) -> None:
    pages = read_jsonl(shared_path("web", "debian_reference_multilingual.jsonl.zst"))
    lines = [json.dumps({"text": p["text"], "meta": {"url": p.get("url") or p["id"], "language": p["lang"]}})
             for p in pages]
    path = tmp_path / "wiki.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    docs, drops = read_all(config_for({"name": "rp", "format": "redpajama", "kind": "text", "source": "wikipedia",
                                       "paths": [str(path)]}))
    assert not drops and len(docs) == len(pages)
    assert docs[0].lang == pages[0]["lang"] and docs[0].meta["url"] == (pages[0].get("url") or pages[0]["id"])


def test_ccnet_dolma_jsonl() -> None:
    path = shared_path("web", "commoncrawl_samples.jsonl.zst")
    records = read_jsonl(path)
    docs, drops = read_all(config_for({"name": "cc", "format": "dolma", "kind": "text", "source": "refinedweb",
                                       "paths": [str(path)]}))
    assert not drops and len(docs) == len(records)
    assert docs[0].id == f"cc/{records[0]['id']}" and docs[0].lang == records[0]["lang"]
    assert docs[0].meta["url"] == records[0]["url"]


def test_warc_files() -> None:
    folder = shared_path("web", "warc")
    config = config_for({"name": "crawl", "format": "warc", "kind": "text", "source": "refinedweb",
                         "paths": [str(folder / "*.warc.gz")]})
    docs, drops = read_all(config)
    # 53 response and 4 resource records; the resources are not HTML. Nothing else is a document.
    non_html = sum(1 for d in drops if d.reason == "non_html_content")
    assert len(docs) + non_html == 53 + 4 and len(docs) >= 50
    reasons = {d.reason for d in drops}
    assert {"warc_request_record", "warc_metadata_record", "warc_warcinfo_record"} <= reasons
    assert all(d.origin.startswith(str(folder)) for d in drops)
    by_url = {d.meta["url"]: d for d in docs}
    team = by_url["https://www.semanticscholar.org/research/research-team"]
    assert team.text.startswith("Meet Our Team")  # chunked transfer encoding removed, main text extracted
    assert all(not d.meta["url"].startswith("<") for d in docs)


def test_truncated_warc_is_a_file_error(tmp_path: Path) -> None:
    raw = shared_path("web", "warc", "dolma__sample-0000.warc.gz").read_bytes()
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(raw[: len(raw) // 2])
    config = config_for(
        {"name": "crawl", "format": "warc", "kind": "text", "source": "refinedweb", "paths": [str(path)]})
    with pytest.raises(InputFileError, match="truncated gzip"):
        read_all(config)


def test_hugging_face_dataset_offline_from_local_parquet(tmp_path: Path) -> None:
    records = read_jsonl(shared_path("code", "code_sample.jsonl.zst"))[:50]
    path = tmp_path / "hf.parquet"
    pq.write_table(pa.Table.from_pylist(records), path)
    config = config_for({"name": "hfstack", "format": "hf", "kind": "code",
                         "hf": {"id": "parquet", "data_files": [str(path)], "layout": "stack"}})
    docs, drops = read_all(config)
    assert not drops and [d.id for d in docs] == [f"hfstack/{r['hexsha']}" for r in records]
    assert docs[0].lang == "Python" and docs[0].meta["repo"] == records[0]["max_stars_repo_name"]


def test_hugging_face_unknown_id_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets.config
    import huggingface_hub.constants

    # Offline, as on a machine without the hub (the libraries read these at import time).
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    config = config_for({"name": "hub", "format": "hf", "kind": "text", "source": "refinedweb",
                         "hf": {"id": "tiiuae/falcon-refinedweb", "layout": "refinedweb"}})
    with pytest.raises(InputFileError, match="hf:tiiuae/falcon-refinedweb.*cannot load the dataset"):
        read_all(config)


def test_local_environment_source_is_capped_and_deterministic() -> None:
    inp = {"name": "local", "format": "local_env", "text_source": "refinedweb",
           "local_env": {"max_files_per_bucket": 5, "max_text_files": 5}}
    docs, drops = read_all(config_for(inp))
    again, _ = read_all(config_for(inp))
    assert [d.id for d in docs] == [d.id for d in again]
    kinds = {d.kind for d in docs}
    assert kinds == {"code", "text"}
    per_source: dict[str, int] = {}
    for d in docs:
        per_source[d.source] = per_source.get(d.source, 0) + 1
    assert per_source["python"] == 5 and per_source["refinedweb"] <= 5
    assert all(d.id.startswith("local/") for d in docs)


def _planned(config: BuildConfig) -> dict[str, int]:
    return planned_documents([t for inp in config.inputs for t in plan_input(inp, config)[0]], config.inputs)


def test_planned_documents_estimate_each_kind_before_reading(tmp_path: Path) -> None:
    """Every real compressed input here is planned within a factor of 3 of what is read (near-
    duplicates compress into each other, so web_neardup is the low side); a local environment is
    one document a file; `limit_per_file` caps a file; a local Hugging Face parquet is its bytes."""
    paths = {"code": ["code/code_sample.jsonl.zst", "dups/code_forks.docs.jsonl.zst"],
             "text": ["web/trafilatura_pages.main.jsonl.zst", "web/chardet_multilingual.jsonl.zst",
                      "dups/web_neardup.docs.jsonl.zst"]}
    for kind, names in paths.items():
        for name in names:
            path = shared_path(*name.split("/"))
            source = "python" if kind == "code" else "refinedweb"
            inp = {"name": "in", "format": "jsonl", "kind": kind, "source": source, "paths": [str(path)]}
            read = len(read_jsonl(path))
            planned = _planned(config_for(inp))
            assert set(planned) == {kind} and read / 3 <= planned[kind] <= 3 * read, (name, planned, read)
            assert _planned(config_for({**inp, "limit_per_file": 7})) == {kind: 7}
    local = {"name": "local", "format": "local_env", "text_source": "refinedweb",
             "local_env": {"max_files_per_bucket": 5, "max_text_files": 5}}
    docs, _ = read_all(config_for(local))
    assert _planned(config_for(local)) == {k: sum(d.kind == k for d in docs) for k in ("code", "text")}
    records = read_jsonl(shared_path("code", "code_sample.jsonl.zst"))[:400]
    parquet = tmp_path / "hf.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet)
    hf = config_for({"name": "hfstack", "format": "hf", "kind": "code",
                     "hf": {"id": "parquet", "data_files": [str(parquet)], "layout": "stack"}})
    assert _planned(hf) == {"code": -(-parquet.stat().st_size // BYTES_PER_PLANNED_DOCUMENT)}
    streamed = ReadTask("hub", "hf", path="hf:org/set[train]", part=0, parts=4)  # no size the driver can know
    hub = config_for({"name": "hub", "format": "hf", "kind": "text", "source": "refinedweb",
                      "hf": {"id": "org/set", "layout": "refinedweb"}})
    assert planned_documents([streamed] * 4, hub.inputs) == {"text": 4 * UNSIZED_TASK_DOCUMENTS}
    empty = tmp_path / "empty.jsonl"  # an empty file (allow_empty_files): no documents, not an unknown size
    empty.write_text("")
    allowed = config_for({"name": "in", "format": "jsonl", "kind": "text", "source": "refinedweb",
                          "paths": [str(empty)]}, allow_empty_files=True)
    assert _planned(allowed) == {"text": 0}


def test_bad_records_are_counted_with_file_and_line(tmp_path: Path) -> None:
    good = read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))[:3]
    lines = [json.dumps(good[0]).encode(), b"{not json", json.dumps({"id": "x", "body": "no text"}).encode(),
             json.dumps({"id": "y", "text": 42}).encode(), b'{"id": "z", "text": "caf\xe9"}', b"[1, 2]",
             json.dumps(good[1]).encode(), b"", json.dumps(good[2]).encode()]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    docs, drops = read_all(config_for({"name": "web", "format": "jsonl", "kind": "text", "source": "refinedweb",
                                       "paths": [str(path)]}))
    assert [d.text for d in docs] == [g["text"] for g in good]
    assert [(d.reason, d.origin) for d in drops] == [
        ("bad_json", f"{path}:2"), ("missing_text_field", f"{path}:3"), ("wrong_field_type", f"{path}:4"),
        ("invalid_utf8", f"{path}:5"), ("not_an_object", f"{path}:6"),
    ]
    assert all(d.stage == "read" and d.group == "web" for d in drops)


def test_arrow_schema_round_trip() -> None:
    docs, _ = read_all(config_for({"name": "cc", "format": "dolma", "kind": "text", "source": "refinedweb",
                                   "paths": [str(shared_path("web", "commoncrawl_samples.jsonl.zst"))]}))
    assert from_arrow(to_arrow(docs)) == docs


# ---------------------------------------------------------------------------------------------
# The registry: one table per name space, and no import circle


def test_every_format_has_a_planner_and_every_container_a_reader() -> None:
    assert set(PLANNERS) == set(get_args(InputFormat))
    assert set(READERS) == set(get_args(Container))
    file_formats = set(get_args(InputFormat)) - {"hf", "local_env"}
    assert {f for f, plan in PLANNERS.items() if plan is plan_files} == file_formats


def test_unknown_format_is_a_config_error(tmp_path: Path) -> None:
    config = config_for({"name": "web", "format": "jsonl", "kind": "text", "source": "refinedweb",
                         "paths": [str(tmp_path / "*.jsonl")]})
    inp = config.inputs[0].model_copy(update={"format": "nope"})
    with pytest.raises(ConfigError, match="unknown format 'nope'"):
        plan_input(inp, config)


def _sources_imports() -> dict[str, set[str]]:
    """Module name (`base`, `files`...) -> the modules of lemur_corpus.sources it imports, anywhere in it."""
    import lemur_corpus.sources

    package = "lemur_corpus.sources"
    graph: dict[str, set[str]] = {}
    for path in sorted(Path(lemur_corpus.sources.__file__).parent.glob("*.py")):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package if node.level else (node.module or "")
                module = f"{base}.{node.module}" if node.level and node.module else base
                names = [module] + [f"{module}.{a.name}" for a in node.names]
            else:
                continue
            imported |= {n[len(package) + 1:].split(".")[0] for n in names if n.startswith(package + ".")}
        graph[path.stem] = imported - {path.stem}
    return graph


def test_only_the_package_imports_the_registry_and_the_sources_have_no_import_circle() -> None:
    graph = _sources_imports()
    assert {"registry", "base", "files", "hf", "local_env", "warc"} <= set(graph)
    assert {m for m, imported in graph.items() if "registry" in imported} == {"__init__"}
    assert graph["base"] <= {"layouts"}  # base imports no reader
    done: set[str] = set()

    def visit(module: str, stack: tuple[str, ...]) -> None:
        assert module not in stack, " -> ".join((*stack, module))
        if module not in done:
            for target in sorted(graph.get(module, ())):
                visit(target, (*stack, module))
            done.add(module)

    for module in sorted(graph):
        visit(module, ())
