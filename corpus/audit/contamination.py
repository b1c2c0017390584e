"""The contamination report of a build, as the audit shows and checks it.

`contamination_rows` flattens the manifest's `decontamination` section into one row per benchmark
(items in the index, items found, documents holding them, dropped by `decontam`, dropped anyway by
another filter, the sources they came from, the items found in most documents); `contamination_problems`
holds the report to the filter stage's accounting (every `decontam.<benchmark>` drop is in the report,
per source, and nothing else is) and to the config (a build whose chains ran `decontam` has a report).
"""

from __future__ import annotations

from typing import Any

from lemur_corpus.manifest import decontamination_problems

TOP_ITEMS = 5
"""Items listed per benchmark: those found in the most documents."""


def contamination_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per benchmark of the index(es) the build used, found or not (empty without a report)."""
    section = manifest.get("decontamination")
    if not isinstance(section, dict):
        return []
    indexed: dict[str, int] = {}
    for identity in (section.get("indexes") or {}).values():
        for name, stats in (identity.get("benchmarks") or {}).items():
            indexed[name] = max(indexed.get(name, 0), int((stats or {}).get("items", 0)))
    found = section.get("benchmarks") or {}
    rows = []
    for name in sorted(set(indexed) | set(found)):
        entry = found.get(name) or {}
        items = entry.get("items") or {}
        top = sorted(items.items(), key=lambda kv: (-int(kv[1].get("documents", 0)), kv[0]))[:TOP_ITEMS]
        rows.append({
            "benchmark": name,
            "items": indexed.get(name, 0),
            "items_matched": int(entry.get("items_matched", len(items))),
            "documents": int(entry.get("documents", 0)),
            "dropped": int(entry.get("dropped", 0)),
            "dropped_by_other_filters": int(entry.get("dropped_by_other_filters", 0)),
            "by_source": {s: int(c.get("documents", 0)) for s, c in sorted((entry.get("by_source") or {}).items())},
            "top_items": [{"item": item, "documents": int(row.get("documents", 0))} for item, row in top],
        })
    return rows


def _runs_decontam(config: dict[str, Any]) -> bool:
    filters = config.get("filters") or {}
    for kind in ("code", "text"):
        section = filters.get(kind) or {}
        chains = [section.get("filters") or []] + [
            ((inp.get("filters") or {}).get(kind) or []) for inp in config.get("inputs") or [] if isinstance(inp, dict)]
        if section.get("enabled", True) and any("decontam" in chain for chain in chains):
            return True
    return False


def contamination_problems(manifest: dict[str, Any]) -> list[str]:
    section = manifest.get("decontamination")
    if not isinstance(section, dict):
        if _runs_decontam(manifest.get("config") or {}):
            return ["decontamination: the config runs the decontam filter, but the manifest has no "
                    "decontamination report"]
        return []
    stages = (manifest.get("accounting") or {}).get("stages") or {}
    return decontamination_problems(section, stages)
