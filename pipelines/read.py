"""Stage 1, read: read tasks in, Documents out; bad records become drops, broken files file errors."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.metrics import Metrics

from corpus.accounting import READ, Drop, tally_in
from corpus.config import BuildConfig
from corpus.document import Document
from corpus.errors import InputFileError
from corpus.sources import ReadTask, read_task
from pipelines.ledger import DROPS, FILE_ERRORS, TALLIES, Ledger
from pipelines.outputs import MultiOutputParDo

log = logging.getLogger("corpus")


class ReadFn(beam.DoFn):
    def __init__(self, config: BuildConfig) -> None:
        self.config = config
        self.records = Metrics.counter("read", "records")
        self.bad = Metrics.counter("read", "bad_records")

    def process(self, task: ReadTask):  # type: ignore[no-untyped-def]
        docs = drops = nbytes = 0
        try:
            for item in read_task(task, self.config):
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


def input_of(doc: Document) -> str:
    return doc.id.split("/", 1)[0]


def read_inputs(p: beam.Pipeline, tasks: list[ReadTask], config: BuildConfig, ledger: Ledger
                ) -> tuple[beam.PCollection, beam.PCollection]:
    """(documents, file errors). Tasks are spread over workers before reading."""
    result = (
        p
        | "ReadTasks" >> beam.Create(tasks)
        | "SpreadTasks" >> beam.Reshuffle()
        | "Read" >> MultiOutputParDo(ReadFn(config), DROPS, TALLIES, FILE_ERRORS, main="docs")
    )
    ledger.add_tallies(result[TALLIES])
    ledger.add_drops(result[DROPS])
    # The read stage is accounted per input (a record's source is known only once it is parsed).
    ledger.count("Read", READ, result["docs"], "out", group=input_of)
    return result["docs"], result[FILE_ERRORS]
