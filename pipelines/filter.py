"""Stages 2 and 3: normalize, then the filters of the document's kind (models load in `setup`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import apache_beam as beam

from lemur_corpus.accounting import FILTER, Drop
from lemur_corpus.config import FiltersConfig
from lemur_corpus.document import Document
from lemur_corpus.filters.base import Filter, run_chain, setup_filters
from lemur_corpus.filters.code import build_code_filters
from lemur_corpus.filters.text import build_text_filters
from lemur_corpus.pipelines.ledger import DROPS, Progress


def _detail(signals: dict[str, float]) -> str:
    rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in sorted(signals.items())}
    return json.dumps(rounded, sort_keys=True)[:500]


def build_chains(config: FiltersConfig) -> dict[str, list[Filter]]:
    return {
        "text": build_text_filters(config.text) if config.text.enabled else [],
        "code": build_code_filters(config.code) if config.code.enabled else [],
    }


class FilterFn(beam.DoFn):
    def __init__(self, config: FiltersConfig) -> None:
        self.config = config

    def setup(self) -> None:
        self.progress = Progress(FILTER)
        self.chains = build_chains(self.config)
        for chain in self.chains.values():
            setup_filters(chain)

    def process(self, doc: Document) -> Iterator[Document | beam.pvalue.TaggedOutput]:
        result = run_chain(doc, self.chains.get(doc.kind, []))
        self.progress.tick(result.doc is None)
        if result.doc is not None:
            yield result.doc
            return
        name, verdict = result.verdicts[-1]
        yield beam.pvalue.TaggedOutput(
            DROPS,
            Drop(FILTER, doc.source, result.reason, doc.nbytes, doc.id, doc.origin, _detail(dict(verdict.signals))),
        )
