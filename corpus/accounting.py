"""Where every document went: per stage and per group (input or source), in = out + Σ dropped.

Stages emit `Drop` records for what they remove and the pipeline counts what enters and leaves each
stage as `Tally` records; one combine folds all tallies into the `Accounting` table of the manifest.
Documents are the invariant's unit. Bytes are reported too; stages that edit text (normalization,
C4 line removal) also report `bytes_changed`, so bytes balance as in = out + dropped + changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from lemur_corpus.document import pickled_by_fields

# Stage names, in pipeline order.
READ = "read"
NORMALIZE = "normalize"
FILTER = "filter"
DEDUP = "dedup"
TOKENIZE = "tokenize"
STAGES: tuple[str, ...] = (READ, NORMALIZE, FILTER, DEDUP, TOKENIZE)


@pickled_by_fields
@dataclasses.dataclass(frozen=True, slots=True)
class Drop:
    """A document (or raw record) removed at `stage` for `reason`, with where it came from."""

    stage: str
    group: str
    """The mixture source; for the read stage, the input name (the source may not be known yet)."""
    reason: str
    nbytes: int
    id: str = ""
    origin: str = ""
    detail: str = ""
    duplicate_of: str = ""
    """Dedup removals: the id of the kept document this one duplicates."""
    similarity: float | None = None
    """Dedup removals: the Jaccard similarity with `duplicate_of` as verified (1.0: identical text)."""
    duplicate_of_build: str = ""
    """Removals for a document an earlier build published (`--dedup-against`): that build's id."""

    def to_dict(self) -> dict[str, Any]:
        """Every field; `duplicate_of` and `similarity` only for the dedup removals that have them,
        `duplicate_of_build` only for removals against an earlier build."""
        out = {name: getattr(self, name) for name in _DROP_FIELDS}  # what asdict gives, without its deep copies
        if not self.duplicate_of:
            del out["duplicate_of"], out["similarity"]
        if not self.duplicate_of_build:
            del out["duplicate_of_build"]
        return out


_DROP_FIELDS = tuple(field.name for field in dataclasses.fields(Drop))


@pickled_by_fields
@dataclasses.dataclass(frozen=True, slots=True)
class Tally:
    stage: str
    group: str
    key: str
    """`in`, `out`, `dropped:<reason>` or `changed` (bytes only)."""
    docs: int
    nbytes: int


def tally_in(stage: str, group: str, nbytes: int, docs: int = 1) -> Tally:
    return Tally(stage, group, "in", docs, nbytes)


def tally_out(stage: str, group: str, nbytes: int, docs: int = 1) -> Tally:
    return Tally(stage, group, "out", docs, nbytes)


def tally_drop(drop: Drop) -> Tally:
    return Tally(drop.stage, drop.group, f"dropped:{drop.reason}", 1, drop.nbytes)


Table = dict[tuple[str, str, str], tuple[int, int]]


def add_tallies(table: Table, tallies: Iterable[Tally]) -> Table:
    for t in tallies:
        docs, nbytes = table.get((t.stage, t.group, t.key), (0, 0))
        table[(t.stage, t.group, t.key)] = (docs + t.docs, nbytes + t.nbytes)
    return table


def merge_tables(tables: Iterable[Table]) -> Table:
    merged: Table = {}
    for table in tables:
        for key, (docs, nbytes) in table.items():
            d0, b0 = merged.get(key, (0, 0))
            merged[key] = (d0 + docs, b0 + nbytes)
    return merged


def to_report(table: Table) -> dict[str, dict[str, dict[str, Any]]]:
    """{stage: {group: {in, out, dropped: {reason: {docs, bytes}}, bytes_changed, balanced}}}."""
    report: dict[str, dict[str, dict[str, Any]]] = {}
    for (stage, group, key), (docs, nbytes) in sorted(table.items()):
        entry = report.setdefault(stage, {}).setdefault(
            group,
            {"in": {"docs": 0, "bytes": 0}, "out": {"docs": 0, "bytes": 0}, "dropped": {}},
        )
        if key in ("in", "out"):
            entry[key] = {"docs": docs, "bytes": nbytes}
        elif key.startswith("dropped:"):
            entry["dropped"][key.removeprefix("dropped:")] = {"docs": docs, "bytes": nbytes}
    ordered: dict[str, dict[str, dict[str, Any]]] = {}
    for stage in [s for s in STAGES if s in report] + sorted(set(report) - set(STAGES)):
        ordered[stage] = {}
        for group, entry in sorted(report[stage].items()):
            dropped_docs = sum(d["docs"] for d in entry["dropped"].values())
            dropped_bytes = sum(d["bytes"] for d in entry["dropped"].values())
            entry["bytes_changed"] = entry["in"]["bytes"] - entry["out"]["bytes"] - dropped_bytes
            entry["balanced"] = entry["in"]["docs"] == entry["out"]["docs"] + dropped_docs
            ordered[stage][group] = entry
    return ordered


def imbalances(report: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Readable statements of every place where in != out + Σ dropped."""
    problems = []
    for stage, groups in report.items():
        for group, entry in groups.items():
            dropped = sum(d["docs"] for d in entry["dropped"].values())
            if entry["in"]["docs"] != entry["out"]["docs"] + dropped:
                problems.append(
                    f"stage {stage}, {group}: {entry['in']['docs']} documents in, "
                    f"{entry['out']['docs']} out + {dropped} dropped"
                )
    return problems
