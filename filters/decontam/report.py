"""The contamination report: which benchmark items were found in which documents of which sources.

Every document the filter chain of its kind judged yields at most one `ContaminationRecord`: when the
`decontam` filter dropped it, from its verdict; when another filter dropped it first (`decontam` is
not first in a configured chain), the matcher still looks at it, so a contaminated document that a
quality filter removed anyway is counted too (`dropped_by_other_filters`) instead of vanishing from
the report. Records fold into one report (`add_record`, `merge_reports`: sums, and the smallest
example ids, so the result does not depend on how documents were spread over workers):

    documents, dropped, dropped_by_other_filters        documents with any match
    other_filters: {reason: documents}                   what removed them when decontam did not
    benchmarks: {benchmark: {documents, dropped, dropped_by_other_filters, items_matched,
                             by_source: {source: {documents, dropped, dropped_by_other_filters}},
                             items: {item: {documents, dropped_by_other_filters, by_source: {source: n},
                                            examples: [up to 3 document ids]}}}}

`dropped` of a benchmark counts the documents dropped under its name (`decontam.<benchmark>`, the
best match's benchmark): the filter stage's accounting must show the same numbers, which
`corpus audit` checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from lemur_corpus.document import Document
from lemur_corpus.errors import caused_by_interrupt
from lemur_corpus.filters.base import ChainResult, Filter
from lemur_corpus.filters.decontam.filter import CONTAMINATION_META, NAME, DecontamFilter

EXAMPLES = 3
"""Document ids kept per item (the smallest): enough to find the copies in the drop log."""


@dataclasses.dataclass(frozen=True, slots=True)
class ContaminationRecord:
    id: str
    source: str
    dropped_by: str
    """`decontam.<benchmark>`, or the reason of the filter that dropped the document first."""
    items: tuple[tuple[str, str], ...]
    """(benchmark, item id) of every matched item, sorted."""


def contamination_record(doc: Document, result: ChainResult, chain: Sequence[Filter]) -> ContaminationRecord | None:
    """The record of a document the chain judged (None when no item matched or no decontam runs)."""
    decontam = next((f for f in chain if isinstance(f, DecontamFilter)), None)
    if decontam is None:
        return None
    ran = [verdict for name, verdict in result.verdicts if name == NAME]
    if ran:
        if ran[0].keep:
            return None
        matches = ran[0].meta.get(CONTAMINATION_META) or []
        if not matches:  # `decontam.error`: nothing was matched
            return None
        items = sorted({(str(m["benchmark"]), str(m["item"])) for m in matches})
        return ContaminationRecord(doc.id, doc.source, ran[0].reason, tuple(items))
    if result.kept:
        return None
    try:
        found = decontam.probe(doc)
    except Exception as exc:  # the chain already dropped it; a failing probe must not fail the build
        if caused_by_interrupt(exc):  # a Ctrl-C a native library wrapped (`filters.base.run_chain`)
            raise
        return None
    if not found.contaminated:
        return None
    return ContaminationRecord(doc.id, doc.source, result.reason,
                               tuple(sorted({(m.benchmark, m.item) for m in found.items})))


def empty_report() -> dict[str, Any]:
    return {"documents": 0, "dropped": 0, "dropped_by_other_filters": 0, "other_filters": {}, "benchmarks": {}}


def _counts() -> dict[str, int]:
    return {"documents": 0, "dropped": 0, "dropped_by_other_filters": 0}


def add_record(report: dict[str, Any], record: ContaminationRecord) -> dict[str, Any]:
    """Count one record into `report` (in place) and return it."""
    by_decontam = record.dropped_by.startswith(f"{NAME}.")
    report["documents"] += 1
    if by_decontam:
        report["dropped"] += 1
    else:
        report["dropped_by_other_filters"] += 1
        report["other_filters"][record.dropped_by] = report["other_filters"].get(record.dropped_by, 0) + 1
    named = record.dropped_by.removeprefix(f"{NAME}.") if by_decontam else None
    for benchmark in sorted({b for b, _ in record.items}):
        entry = report["benchmarks"].setdefault(benchmark, {**_counts(), "by_source": {}, "items": {}})
        source = entry["by_source"].setdefault(record.source, _counts())
        for counts in (entry, source):
            counts["documents"] += 1
            if named == benchmark:
                counts["dropped"] += 1
            elif not by_decontam:
                counts["dropped_by_other_filters"] += 1
    for benchmark, item in record.items:
        items = report["benchmarks"][benchmark]["items"]
        row = items.setdefault(item, {"documents": 0, "dropped_by_other_filters": 0, "by_source": {}, "examples": []})
        row["documents"] += 1
        row["dropped_by_other_filters"] += 0 if by_decontam else 1
        row["by_source"][record.source] = row["by_source"].get(record.source, 0) + 1
        row["examples"] = sorted({*row["examples"], record.id})[:EXAMPLES]
    return report


def _merge_counts(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key in ("documents", "dropped", "dropped_by_other_filters"):
        if key in other:
            into[key] = into.get(key, 0) + other[key]


def merge_reports(reports: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One report from several (a combine over workers); the inputs are not changed."""
    out = empty_report()
    for report in reports:
        _merge_counts(out, report)
        for reason, n in report["other_filters"].items():
            out["other_filters"][reason] = out["other_filters"].get(reason, 0) + n
        for benchmark, entry in report["benchmarks"].items():
            into = out["benchmarks"].setdefault(benchmark, {**_counts(), "by_source": {}, "items": {}})
            _merge_counts(into, entry)
            for source, counts in entry["by_source"].items():
                _merge_counts(into["by_source"].setdefault(source, _counts()), counts)
            for item, row in entry["items"].items():
                target = into["items"].setdefault(
                    item, {"documents": 0, "dropped_by_other_filters": 0, "by_source": {}, "examples": []})
                target["documents"] += row["documents"]
                target["dropped_by_other_filters"] += row["dropped_by_other_filters"]
                for source, n in row["by_source"].items():
                    target["by_source"][source] = target["by_source"].get(source, 0) + n
                target["examples"] = sorted({*target["examples"], *row["examples"]})[:EXAMPLES]
    return out


def finished_report(report: dict[str, Any], indexes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The manifest's `decontamination` section: the report with every mapping sorted, each
    benchmark's `items_matched`, and the identity of the index each kind's chain used."""
    benchmarks = {}
    for name in sorted(report["benchmarks"]):
        entry = report["benchmarks"][name]
        benchmarks[name] = {
            **{k: entry[k] for k in ("documents", "dropped", "dropped_by_other_filters")},
            "items_matched": len(entry["items"]),
            "by_source": {s: dict(entry["by_source"][s]) for s in sorted(entry["by_source"])},
            "items": {i: {**entry["items"][i], "by_source": dict(sorted(entry["items"][i]["by_source"].items()))}
                      for i in sorted(entry["items"])},
        }
    return {
        "indexes": {kind: indexes[kind] for kind in sorted(indexes)},
        "documents": report["documents"],
        "dropped": report["dropped"],
        "dropped_by_other_filters": report["dropped_by_other_filters"],
        "other_filters": dict(sorted(report["other_filters"].items())),
        "benchmarks": benchmarks,
    }
