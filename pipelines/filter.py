"""Stages 2 and 3: normalize, then the filters of the document's kind (models load in `setup`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import apache_beam as beam

from lemur_corpus.accounting import FILTER, Drop
from lemur_corpus.config import FiltersConfig, InputConfig
from lemur_corpus.document import Document
from lemur_corpus.filters.base import Filter, run_chain, setup_filters
from lemur_corpus.filters.code import build_code_filters
from lemur_corpus.filters.text import build_text_filters
from lemur_corpus.pipelines.ledger import DROPS, Progress


def _detail(signals: dict[str, float]) -> str:
    rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in sorted(signals.items())}
    return json.dumps(rounded, sort_keys=True)[:500]


def build_chains(config: FiltersConfig, only: dict[str, list[str] | None] | None = None) -> dict[str, list[Filter]]:
    """The chain of each kind: the configured one, or the names in `only` (an input's own chains)."""
    only = only or {}
    return {
        "text": build_text_filters(config.text, only.get("text")) if config.text.enabled else [],
        "code": build_code_filters(config.code, only.get("code")) if config.code.enabled else [],
    }


def input_chains(inputs: list[InputConfig]) -> dict[str, dict[str, list[str] | None]]:
    """Input name -> its own chains per kind, for the inputs that set `filters:`."""
    return {inp.name: {"text": inp.filters.text, "code": inp.filters.code} for inp in inputs if inp.filters}


class FilterFn(beam.DoFn):
    """The filters of each document's kind; an input with chains of its own (`inputs[].filters`)
    gets those (a document's input is the first part of its id)."""

    def __init__(self, config: FiltersConfig, per_input: dict[str, dict[str, list[str] | None]] | None = None) -> None:
        self.config = config
        self.per_input = per_input or {}

    def setup(self) -> None:
        self.progress = Progress(FILTER)
        self.chains = build_chains(self.config)
        self.input_chains = {name: build_chains(self.config, only) for name, only in self.per_input.items()}
        for chains in (self.chains, *self.input_chains.values()):
            for chain in chains.values():
                setup_filters(chain)

    def process(self, doc: Document) -> Iterator[Document | beam.pvalue.TaggedOutput]:
        chains = self.input_chains.get(doc.id.split("/", 1)[0], self.chains)
        result = run_chain(doc, chains.get(doc.kind, []))
        self.progress.tick(result.doc is None)
        if result.doc is not None:
            yield result.doc
            return
        name, verdict = result.verdicts[-1]
        yield beam.pvalue.TaggedOutput(
            DROPS, Drop(FILTER, doc.source, result.reason, doc.nbytes, doc.id, doc.origin, _detail(dict(verdict.signals)))
        )
