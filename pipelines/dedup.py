"""Stage 4, dedup within each kind: decisions are made on small records, then joined to the bodies.

    docs ──▶ DedupRecord (id, hash, ...) ──▶ group by (kind, hash) ──▶ survivors ──▶ [near-dedup] ──┐
      │                                           └─ removed ids ───────────────────────────────────┤
      └──────────────────────── (id, doc) ─────── CoGroupByKey on id ◀─── decisions ◀────────────────┘

Document bodies cross the network once (the join). Two documents under one id are reported as
`duplicate_id` (the first by origin is kept).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import apache_beam as beam

from corpus.accounting import DEDUP, Drop
from corpus.config import BuildConfig
from corpus.dedup.exact import DedupRecord, dedup_record, split_group
from corpus.document import Document
from pipelines.ledger import DROPS, Ledger

STATS = "stats"


class Decision(NamedTuple):
    reason: str
    """`exact_duplicate` or `near_duplicate`."""
    survivor: str
    """The id of the document that stays for this one."""


class ExactGroupFn(beam.DoFn):
    def __init__(self, rule: str) -> None:
        self.rule = rule

    def process(self, element: tuple[Any, list[DedupRecord]]):  # type: ignore[no-untyped-def]
        (kind, _), records = element
        unique = {r.id: r for r in sorted(records, key=lambda r: r.id)}  # same id twice: see duplicate_id
        survivor, removed = split_group(unique.values(), self.rule)  # type: ignore[arg-type]
        yield survivor
        if removed:
            yield beam.pvalue.TaggedOutput(STATS, (("exact", kind, "clusters"), 1))
        for record in removed:
            yield beam.pvalue.TaggedOutput(STATS, (("exact", kind, "removed"), 1))
            yield beam.pvalue.TaggedOutput(STATS, (("exact", kind, "removed_bytes"), record.nbytes))
            yield beam.pvalue.TaggedOutput(STATS, (("exact_by_source", record.source, "removed"), 1))
            yield beam.pvalue.TaggedOutput("removed", (record.id, Decision("exact_duplicate", survivor.id)))


class ApplyDecisionsFn(beam.DoFn):
    def process(self, element: tuple[str, dict[str, list[Any]]]):  # type: ignore[no-untyped-def]
        doc_id, grouped = element
        docs: list[Document] = sorted(grouped["doc"], key=lambda d: (d.origin, d.text))
        decisions = sorted(d for d in grouped["decision"] if d.survivor != doc_id)
        if not docs:
            return
        first, rest = docs[0], docs[1:]
        if decisions:
            decision = decisions[0]
            yield beam.pvalue.TaggedOutput(
                DROPS, Drop(DEDUP, first.source, decision.reason, first.nbytes, first.id, first.origin,
                            f"duplicate of {decision.survivor}"),
            )
        else:
            yield first
        for other in rest:
            yield beam.pvalue.TaggedOutput(
                DROPS, Drop(DEDUP, other.source, "duplicate_id", other.nbytes, other.id, other.origin,
                            f"the id was also read at {first.origin}"),
            )


def dedup(docs: beam.PCollection, config: BuildConfig, ledger: Ledger) -> tuple[beam.PCollection, beam.PCollection]:
    """(kept documents, dedup statistics as ((section, group, metric), value) sums)."""
    ledger.count("Dedup", DEDUP, docs, "in")
    records = docs | "DedupRecords" >> beam.Map(dedup_record)
    decisions: list[beam.PCollection] = []
    stats: list[beam.PCollection] = []
    if config.dedup.exact:
        exact = (
            records
            | "KeyByHash" >> beam.Map(lambda r: ((r.kind, r.content_hash), r))
            | "GroupByHash" >> beam.GroupByKey()
            | "ExactGroups" >> beam.ParDo(ExactGroupFn(config.dedup.keep)).with_outputs(
                "removed", STATS, main="survivors")
        )
        decisions.append(exact.removed)
        stats.append(exact[STATS])
    p = docs.pipeline
    all_decisions = (decisions or [p | "NoDecisions" >> beam.Create([])]) | "FlattenDecisions" >> beam.Flatten()
    kept = (
        {"doc": docs | "KeyById" >> beam.Map(lambda d: (d.id, d)), "decision": all_decisions}
        | "JoinDecisions" >> beam.CoGroupByKey()
        | "ApplyDecisions" >> beam.ParDo(ApplyDecisionsFn()).with_outputs(DROPS, main="docs")
    )
    ledger.count("Dedup", DEDUP, kept.docs, "out")
    ledger.add_drops(kept[DROPS])
    all_stats = (
        (stats or [p | "NoDedupStats" >> beam.Create([])])
        | "FlattenDedupStats" >> beam.Flatten()
        | "SumDedupStats" >> beam.CombinePerKey(sum)
    )
    return kept.docs, all_stats
