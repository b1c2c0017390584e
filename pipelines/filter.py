"""Stages 2 and 3: normalize, then the filters of the document's kind (models load in `setup`).

Filters that edit a kept document (C4's line removal, `pii`'s redactions) say what they changed in
their verdict's `removed`; `FilterStage` sums it per filter, source and key into its `edits` output,
the manifest's `filter_edits` (`filter_edits.pii.python.email`: addresses redacted in kept Python files).

For every document in which the `decontam` filter found benchmark items, including documents another
filter dropped before `decontam` ran, `FilterFn` also emits a `ContaminationRecord`
(lemur_corpus.filters.decontam.report); `FilterStage` folds them into the contamination report, the
manifest's `decontamination` section.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from lemur_corpus.accounting import FILTER, Drop
from lemur_corpus.config import FiltersConfig, InputConfig
from lemur_corpus.document import KINDS, Document
from lemur_corpus.filters.base import Clock, Filter, drop_signals_only, run_chain, setup_filters
from lemur_corpus.filters.code import build_code_filters
from lemur_corpus.filters.decontam import DecontamFilter
from lemur_corpus.filters.decontam.report import (
    ContaminationRecord,
    add_record,
    contamination_record,
    empty_report,
    merge_reports,
)
from lemur_corpus.filters.text import build_text_filters
from lemur_corpus.pipelines.ledger import DROPS, CountDocuments, Progress
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.profile import FILTER_PREFIX, TIMED_ONE_IN, BundleProfile, stage_cpu, timing_weight

EDITS = "edits"
"""Tag of the `((filter, source, key), count)` records of what filters changed in kept documents."""
CONTAMINATION = "contamination"
"""Tag of the `ContaminationRecord`s of documents holding benchmark items."""


def _detail(signals: dict[str, float]) -> str:
    rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in sorted(signals.items())}
    return json.dumps(rounded, sort_keys=True)[:500]


def build_chains(config: FiltersConfig, only: dict[str, list[str] | None] | None = None,
                 kinds: Collection[str] = KINDS) -> dict[str, list[Filter]]:
    """The chain of each kind: the configured one, or the names in `only` (an input's own chains);
    empty for a kind outside `kinds` (a build without code inputs loads no grammar)."""
    only = only or {}
    return {
        "text": build_text_filters(config.text, only.get("text")) if config.text.enabled and "text" in kinds else [],
        "code": build_code_filters(config.code, only.get("code")) if config.code.enabled and "code" in kinds else [],
    }


def input_chains(inputs: list[InputConfig]) -> dict[str, dict[str, list[str] | None]]:
    """Input name -> its own chains per kind, for the inputs that set `filters:`."""
    return {inp.name: {"text": inp.filters.text, "code": inp.filters.code} for inp in inputs if inp.filters}


class FilterFn(beam.DoFn):
    """The filters of each document's kind; an input with chains of its own (`inputs[].filters`)
    gets those (a document's input is the first part of its id). Only the chains of `kinds` (the
    kinds the build reads) are built and set up: a document of another kind passes unfiltered."""

    def __init__(self, config: FiltersConfig, per_input: dict[str, dict[str, list[str] | None]] | None = None,
                 kinds: Collection[str] = KINDS) -> None:
        self.config = config
        self.per_input = per_input or {}
        self.kinds = tuple(kinds)

    def setup(self) -> None:
        self.progress = Progress(FILTER)
        self.chains = build_chains(self.config, kinds=self.kinds)
        self.input_chains = {name: build_chains(self.config, only, self.kinds) for name, only in self.per_input.items()}
        for chains in (self.chains, *self.input_chains.values()):
            for chain in chains.values():
                setup_filters(chain)
                drop_signals_only(chain)  # a kept document's signals are not written (only `Drop.detail`)
        self.reported = {id(chain) for chains in (self.chains, *self.input_chains.values())
                         for chain in chains.values() if any(isinstance(f, DecontamFilter) for f in chain)}

    def start_bundle(self) -> None:
        self.edits: dict[tuple[str, str, str], int] = {}
        self.profile = BundleProfile()
        self.clocks = {weight: self._clock(weight) for weight in (0, 1, TIMED_ONE_IN)}

    def _clock(self, weight: int) -> Clock:
        """The filter chain's clock for a document that stands for `weight` documents in the profile
        (`timing_weight`: the filters of a document not timed hear 0 s, and are counted)."""
        add = self.profile.add

        def clock(name: str, seconds: float, nbytes: int) -> None:
            add(FILTER_PREFIX + name, seconds * weight, nbytes)

        return clock

    def finish_bundle(self) -> Iterator[beam.pvalue.TaggedOutput]:
        """The bundle's edits, summed per (filter, source, key): one element each, not one per document
        edited; and its filters' profile."""
        self.profile.flush()
        edits, self.edits = self.edits, {}
        for key, count in sorted(edits.items()):
            yield beam.pvalue.TaggedOutput(EDITS, GlobalWindows.windowed_value((key, count)))

    def process(self, doc: Document) -> Iterator[Document | beam.pvalue.TaggedOutput]:
        chains = self.input_chains.get(doc.id.split("/", 1)[0], self.chains)
        chain = chains.get(doc.kind, [])
        weight = timing_weight(FILTER)  # a document's whole chain is timed, or none of it
        result = run_chain(doc, chain, self.clocks[weight], stage_cpu if weight else None)
        self.progress.tick(result.doc is None)
        if id(chain) in self.reported:
            record = contamination_record(doc, result, chain)
            if record is not None:
                yield beam.pvalue.TaggedOutput(CONTAMINATION, record)
        if result.doc is not None:
            yield result.doc
            edits = self.edits
            for name, verdict in result.verdicts:
                if verdict.removed:
                    edits[(name, doc.source, "documents")] = edits.get((name, doc.source, "documents"), 0) + 1
                    for key, count in verdict.removed.items():
                        edits[(name, doc.source, key)] = edits.get((name, doc.source, key), 0) + count
            return
        name, verdict = result.verdicts[-1]
        yield beam.pvalue.TaggedOutput(
            DROPS,
            Drop(FILTER, doc.source, result.reason, doc.nbytes, doc.id, doc.origin, _detail(dict(verdict.signals))),
        )


class ContaminationReportFn(beam.CombineFn):
    """`ContaminationRecord`s -> the contamination report (sums and smallest example ids: order-free)."""

    def create_accumulator(self) -> dict[str, Any]:
        return empty_report()

    def add_input(self, acc: dict[str, Any], record: ContaminationRecord) -> dict[str, Any]:
        return add_record(acc, record)

    def merge_accumulators(self, accs: Iterable[dict[str, Any]]) -> dict[str, Any]:
        return merge_reports(accs)

    def extract_output(self, acc: dict[str, Any]) -> dict[str, Any]:
        return acc


class FilterOutputs(NamedTuple):
    docs: beam.PCollection
    tallies: beam.PCollection
    drops: beam.PCollection
    edits: beam.PCollection
    """((filter, source, key), count), summed: what the filters changed in the kept documents."""
    contamination: beam.PCollection
    """The contamination report (one dict, `lemur_corpus.filters.decontam.report`)."""


class FilterStage(beam.PTransform):
    """The filter stage: `FilterFn` over the documents, counted in and out, with its drops and the
    summed edits of its filters (`DocumentStage` plus one output)."""

    def __init__(self, config: FiltersConfig, per_input: dict[str, dict[str, list[str] | None]] | None = None,
                 kinds: Collection[str] = KINDS) -> None:
        super().__init__()
        self.config, self.per_input, self.kinds = config, per_input, kinds

    def expand(self, docs: beam.PCollection) -> FilterOutputs:
        counted_in = docs | "CountIn" >> CountDocuments(FILTER, "in")
        fn = FilterFn(self.config, self.per_input, self.kinds)
        result = docs | "Run" >> MultiOutputParDo(fn, DROPS, EDITS, CONTAMINATION, main="docs")
        counted_out = result["docs"] | "CountOut" >> CountDocuments(FILTER, "out")
        tallies = (counted_in, counted_out) | "Tallies" >> beam.Flatten()
        edits = result[EDITS] | "SumEdits" >> beam.CombinePerKey(sum)
        report = result[CONTAMINATION] | "Contamination" >> beam.CombineGlobally(ContaminationReportFn())
        return FilterOutputs(result["docs"], tallies, result[DROPS], edits, report)

