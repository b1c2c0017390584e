"""Small real build configs over ../shared/data slices, shared by the end-to-end tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lemur_corpus.config import BuildConfig, parse_config
from lemur_corpus.lemur import LEMUR_TABLE8
from tests.conftest import shared_path

# Every language of the code sample goes to a Lemur bucket, so these builds do not depend on the
# language allow-list (which the code filters own).
ALL_LANGUAGES_TO_BUCKETS = {
    "Python": "python", "SQL": "sql", "Shell": "shell", "Java": "java", "JavaScript": "javascript",
    "C": "c", "PHP": "php", "C++": "cpp", "TypeScript": "others", "Markdown": "others", "Rust": "others",
    "YAML": "others", "Protocol Buffer": "others", "Go": "others", "C#": "others", "JSON": "others",
    "Ruby": "others", "XML": "others", "HTML": "others", "CSS": "others", "Makefile": "others",
    "Dockerfile": "others", "Text": "others", "TOML": "others", "Batchfile": "others", "CMake": "others",
    "Jupyter Notebook": "notebooks", "Kotlin": "others", "Swift": "others", "Lua": "others",
}


def lemur_sources() -> dict[str, Any]:
    return {r.name: {"kind": r.kind, "weight": r.weight_percent, "reference_epochs": r.reference_epochs}
            for r in LEMUR_TABLE8}


def slice_config(code_rows: int = 400, web_rows: int = 150, **overrides: Any) -> BuildConfig:
    data: dict[str, Any] = {
        "name": "slice",
        "inputs": [
            {"name": "stack", "format": "stack", "kind": "code",
             "paths": [str(shared_path("code", "code_sample.jsonl.zst"))], "limit_per_file": code_rows},
            {"name": "web", "format": "dolma", "kind": "text", "source": "refinedweb",
             "paths": [str(shared_path("web", "trafilatura_pages.main.jsonl.zst"))], "limit_per_file": web_rows},
            {"name": "cc", "format": "dolma", "kind": "text", "source": "wikipedia",
             "paths": [str(shared_path("web", "commoncrawl_samples.jsonl.zst"))]},
        ],
        "code_buckets": {"bucket_by_language": ALL_LANGUAGES_TO_BUCKETS},
        "mixture": {"sources": lemur_sources(), "on_empty_source": "redistribute"},
        "shards": {"target_tokens": 300_000},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_config(data)


def output_digest(out: Path) -> dict[str, str]:
    """sha256 of every file a build wrote, the manifest without its run section included."""
    digests = {}
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name == "manifest.json":
            manifest = json.loads(data)
            manifest.pop("run")
            data = json.dumps(manifest, sort_keys=True).encode()
        digests[str(path.relative_to(out))] = hashlib.sha256(data).hexdigest()
    return digests
