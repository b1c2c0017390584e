"""The ledger: counts what enters and leaves every stage and collects what each stage drops.

Stages register with `Ledger.stage(...)`, which runs a DoFn that returns documents on its main output
and `Drop` records on the `drops` tag (split portably by `pipelines.outputs`), and counts both sides. `Ledger.accounting()` folds every tally
into one table (a combine: no worker holds more than the table) for the manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import apache_beam as beam

from corpus.accounting import Drop, Table, Tally, add_tallies, merge_tables, tally_drop, tally_in, tally_out
from corpus.document import Document
from pipelines.outputs import MultiOutputParDo

log = logging.getLogger("corpus")

DROPS = "drops"
TALLIES = "tallies"
FILE_ERRORS = "file_errors"


class TableCombineFn(beam.CombineFn):
    """Sums tallies into {(stage, group, key): (docs, bytes)}."""

    def create_accumulator(self) -> Table:
        return {}

    def add_input(self, acc: Table, tally: Tally) -> Table:
        return add_tallies(acc, [tally])

    def merge_accumulators(self, accs: Iterable[Table]) -> Table:
        return merge_tables(accs)

    def extract_output(self, acc: Table) -> Table:
        return acc


class Progress:
    """Logs a stage's running count on this worker at 1, 2, 5 x 10^k documents: visible progress
    without a line per document."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.seen = 0
        self.dropped = 0
        self.next_report = 1000

    def tick(self, dropped: bool = False) -> None:
        self.seen += 1
        self.dropped += dropped
        if self.seen >= self.next_report:
            log.info("%s: %d documents on this worker (%d dropped)", self.stage, self.seen, self.dropped)
            base = 10 ** (len(str(self.next_report)) - 1)
            lead = self.next_report // base
            self.next_report = (2 * base if lead == 1 else 5 * base if lead == 2 else 10 * base)


class StageFn(beam.DoFn):
    """Applies `fn(doc) -> Document | Drop | None` (None: the document leaves silently: not allowed)."""

    def __init__(self, fn: Callable[[Document], Document | Drop], stage: str) -> None:
        self.fn = fn
        self.stage = stage

    def setup(self) -> None:
        self.progress = Progress(self.stage)

    def process(self, doc: Document):  # type: ignore[no-untyped-def]
        result = self.fn(doc)
        self.progress.tick(isinstance(result, Drop))
        if isinstance(result, Drop):
            yield beam.pvalue.TaggedOutput(DROPS, result)
        else:
            yield result


class Ledger:
    def __init__(self) -> None:
        self.tallies: list[beam.PCollection] = []
        self.drops: list[beam.PCollection] = []

    def count(self, label: str, stage: str, docs: beam.PCollection, side: str,
              group: Callable[[Document], str] = lambda d: d.source) -> None:
        make = tally_in if side == "in" else tally_out
        self.tallies.append(
            docs | f"{label}Count{side.title()}" >> beam.Map(lambda d, s=stage: make(s, group(d), d.nbytes))
        )

    def add_drops(self, drops: beam.PCollection) -> None:
        self.drops.append(drops)

    def add_tallies(self, tallies: beam.PCollection) -> None:
        self.tallies.append(tallies)

    def stage(self, label: str, stage: str, docs: beam.PCollection, dofn: beam.DoFn,
              count_in: bool = True, **side_inputs: Any) -> beam.PCollection:
        if count_in:
            self.count(label, stage, docs, "in")
        result = docs | label >> MultiOutputParDo(dofn, DROPS, main="docs", **side_inputs)
        self.count(label, stage, result["docs"], "out")
        self.add_drops(result[DROPS])
        return result["docs"]

    def all_drops(self, p: beam.Pipeline) -> beam.PCollection:
        if getattr(self, "_all_drops", None) is None:
            self._all_drops = (self.drops or [p | "NoDrops" >> beam.Create([])]) | "FlattenDrops" >> beam.Flatten()
        return self._all_drops

    def accounting(self, p: beam.Pipeline) -> beam.PCollection:
        drop_tallies = self.all_drops(p) | "TallyDrops" >> beam.Map(tally_drop)
        return (
            [*self.tallies, drop_tallies]
            | "FlattenTallies" >> beam.Flatten()
            | "Accounting" >> beam.CombineGlobally(TableCombineFn())
        )
