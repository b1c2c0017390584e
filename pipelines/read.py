"""Stage 1, read: read tasks in, Documents out; bad records become drops, broken files file errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from lemur_corpus.accounting import READ, Drop, tally_in
from lemur_corpus.config import BuildConfig
from lemur_corpus.document import Document
from lemur_corpus.errors import InputFileError
from lemur_corpus.pipelines.ledger import DROPS, FILE_ERRORS, TALLIES, CountDocuments
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.profile import READ as READ_STAGE
from lemur_corpus.pipelines.profile import timed_items
from lemur_corpus.sources import ReadTask, read_task

log = logging.getLogger("corpus")


class ReadFn(beam.DoFn):
    def __init__(self, config: BuildConfig) -> None:
        self.config = config
        self.records = Metrics.counter("read", "records")
        self.bad = Metrics.counter("read", "bad_records")

    def process(self, task: ReadTask) -> Iterator[Document | beam.pvalue.TaggedOutput]:
        docs = drops = nbytes = 0
        try:
            for item in timed_items(READ_STAGE, read_task(task, self.config), _nbytes):
                if isinstance(item, Drop):
                    drops += 1
                    nbytes += item.nbytes
                    yield beam.pvalue.TaggedOutput(DROPS, item)
                else:
                    docs += 1
                    nbytes += item.nbytes
                    yield item
        except InputFileError as exc:
            log.error("read failed: %s", exc)
            yield beam.pvalue.TaggedOutput(FILE_ERRORS, exc.to_dict())
        self.records.inc(docs + drops)
        self.bad.inc(drops)
        if docs + drops:
            yield beam.pvalue.TaggedOutput(TALLIES, tally_in(READ, task.input_name, nbytes, docs + drops))
        log.info("read %s: %d documents, %d bad records", task.label, docs, drops)


def _nbytes(item: Document | Drop) -> int:
    return item.nbytes


def input_of(doc: Document) -> str:
    return doc.id.split("/", 1)[0]


class ReadOutputs(NamedTuple):
    docs: beam.PCollection
    tallies: beam.PCollection
    """Records read per input (every record, document or drop) and documents out."""
    drops: beam.PCollection
    """Records that are not documents (bad JSON, no text field...), with file and line."""
    file_errors: beam.PCollection
    """`InputFileError.to_dict()` of each file that could not be read at all: the build fails."""


class ReadInputs(beam.PTransform):
    """The pipeline's start: read tasks, spread over workers before reading, into documents."""

    def __init__(self, tasks: list[ReadTask], config: BuildConfig) -> None:
        super().__init__()
        self.tasks, self.config = tasks, config

    def expand(self, pbegin: beam.pvalue.PBegin) -> ReadOutputs:
        result = (
            pbegin
            | "Tasks" >> beam.Create(self.tasks, reshuffle=False)  # "Spread" reshuffles them
            | "Spread" >> beam.Reshuffle()
            | "Read" >> MultiOutputParDo(ReadFn(self.config), DROPS, TALLIES, FILE_ERRORS, main="docs")
        )
        # The read stage is accounted per input (a record's source is known only once it is parsed).
        counted_out = result["docs"] | "CountOut" >> CountDocuments(READ, "out", group=input_of)
        tallies = (result[TALLIES], counted_out) | "Tallies" >> beam.Flatten()
        return ReadOutputs(result["docs"], tallies, result[DROPS], result[FILE_ERRORS])
