"""The accounting outputs of stages: what enters and leaves each stage, and what it drops.

Every document stage is a composite `PTransform` that returns `StageOutputs`: its documents, its
tallies (documents and bytes in and out, per source) and its drops (`Drop` records, one per document
it removed, split from the documents portably by `lemur_corpus.pipelines.outputs.MultiOutputParDo`).
No stage writes into a shared object: the build gathers the stages' outputs and `Accounting` folds
every tally into one table (a combine: no worker holds more than the table) for the manifest.

    normalized = docs | "Normalize" >> DocumentStage(NORMALIZE, StageFn(normalize_document, NORMALIZE))
    normalized.docs, normalized.tallies, normalized.drops
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils.windowed_value import WindowedValue

from lemur_corpus.accounting import Drop, Table, Tally, add_tallies, merge_tables, tally_drop, tally_in, tally_out
from lemur_corpus.document import Document
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.profile import BundleProfile, start

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

    def start_bundle(self) -> None:
        self.profile = BundleProfile()

    def finish_bundle(self) -> None:
        self.profile.flush()

    def process(self, doc: Document) -> Iterator[Document | beam.pvalue.TaggedOutput]:
        started = start(self.stage)
        result = self.fn(doc)
        self.profile.stop(self.stage, started, doc.nbytes)
        self.progress.tick(isinstance(result, Drop))
        if isinstance(result, Drop):
            yield beam.pvalue.TaggedOutput(DROPS, result)
        else:
            yield result


class StageOutputs(NamedTuple):
    """What a document stage gives the stages after it and the accounting."""

    docs: beam.PCollection
    tallies: beam.PCollection
    """`Tally` records of documents and bytes in and out of the stage (drops are tallied from `drops`)."""
    drops: beam.PCollection | None
    """`Drop` records; None for a stage that removes nothing (tokenize)."""


def by_source(doc: Any) -> str:
    return str(doc.source)


class CountDocumentsFn(beam.DoFn):
    """Sums a bundle's documents and bytes per group and emits one `Tally` per group when the bundle
    ends. A `Tally` per document (what this did before) put several elements per document through
    the runner's shuffles (each through the DirectRunner's driver) only to be added up;
    a bundle's sums are the same figures, and the accounting adds tallies whatever their size.
    Every runner this project supports delivers `finish_bundle` outputs (Beam's own DaskRunner
    lost them; `pipelines/dask_runner.py` does not)."""

    def __init__(self, stage: str, side: str, group: Callable[[Any], str]) -> None:
        self.make = tally_in if side == "in" else tally_out
        self.stage, self.group = stage, group

    def start_bundle(self) -> None:
        self.sums: dict[str, tuple[int, int]] = {}

    def process(self, doc: Any) -> None:
        group = self.group(doc)
        docs, nbytes = self.sums.get(group, (0, 0))
        self.sums[group] = (docs + 1, nbytes + doc.nbytes)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for group, (docs, nbytes) in sorted(self.sums.items()):
            yield GlobalWindows.windowed_value(self.make(self.stage, group, nbytes, docs))
        self.sums = {}


class CountDocuments(beam.PTransform):
    """Documents -> `Tally` records of their number and bytes for `stage` on `side` ("in" or
    "out"), per `group`: one per group and bundle (`CountDocumentsFn`)."""

    def __init__(self, stage: str, side: str, group: Callable[[Any], str] = by_source) -> None:
        super().__init__()
        self.stage, self.side, self.group = stage, side, group

    def expand(self, docs: beam.PCollection) -> beam.PCollection:
        return docs | "Tally" >> beam.ParDo(CountDocumentsFn(self.stage, self.side, self.group))


class DocumentStage(beam.PTransform):
    """A stage that keeps or drops documents one at a time: a DoFn yielding documents and, on the
    `drops` tag, `Drop` records; documents are counted in and out."""

    def __init__(self, stage: str, dofn: beam.DoFn, **side_inputs: Any) -> None:
        super().__init__()
        self.stage, self.dofn, self.fn_side_inputs = stage, dofn, side_inputs

    def expand(self, docs: beam.PCollection) -> StageOutputs:
        counted_in = docs | "CountIn" >> CountDocuments(self.stage, "in")
        result = docs | "Run" >> MultiOutputParDo(self.dofn, DROPS, main="docs", **self.fn_side_inputs)
        counted_out = result["docs"] | "CountOut" >> CountDocuments(self.stage, "out")
        tallies = (counted_in, counted_out) | "Tallies" >> beam.Flatten()
        return StageOutputs(result["docs"], tallies, result[DROPS])


class Ledger(NamedTuple):
    """Every stage's accounting outputs: all tallies of the build flattened, and each stage's drops."""

    tallies: beam.PCollection
    drops: tuple[beam.PCollection, ...]
    """Each stage's drops, not flattened: a reader applies its first step to each (`each_stage`), so
    that a distributed runner runs it with the stage that made them. One Flatten of every stage's
    drops held each stage's until the last stage had made its own (a Flatten's partition waits for
    all of its inputs)."""


def gather(p: beam.Pipeline, stages: Sequence[Any]) -> Ledger:
    """The stages' outputs (anything with `tallies` and `drops`) as one `Ledger`."""
    drops = tuple(s.drops for s in stages if s.drops is not None) or (p | "NoDrops" >> beam.Create([]),)
    tallies = [s.tallies for s in stages]
    # one stage's outputs as they are: a Flatten of one collection would still be a step (a stage's
    # boundary on the DirectRunner, between two Flattens)
    return Ledger(tallies[0] if len(tallies) == 1 else tallies | "AllTallies" >> beam.Flatten(), drops)


def each_stage(drops: Sequence[beam.PCollection], label: str, step: Callable[[], beam.PTransform]) -> beam.PCollection:
    """`step()` applied to each stage's drops (labelled `label` and the stage's number), flattened."""
    outs = [stage_drops | f"{label}{i}" >> step() for i, stage_drops in enumerate(drops)]
    return outs[0] if len(outs) == 1 else outs | f"{label}All" >> beam.Flatten()


class TallyDropsFn(beam.DoFn):
    """`Drop` records → their `Tally` records (`tally_drop`) summed per bundle: one per (stage,
    group, reason) and bundle, as `CountDocumentsFn` counts documents, not one per drop."""

    def start_bundle(self) -> None:
        self.sums: dict[tuple[str, str, str], tuple[int, int]] = {}

    def process(self, drop: Drop) -> None:
        tally = tally_drop(drop)
        key = (tally.stage, tally.group, tally.key)
        docs, nbytes = self.sums.get(key, (0, 0))
        self.sums[key] = (docs + tally.docs, nbytes + tally.nbytes)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for (stage, group, key), (docs, nbytes) in sorted(self.sums.items()):
            yield GlobalWindows.windowed_value(Tally(stage, group, key, docs, nbytes))
        self.sums = {}


class Accounting(beam.PTransform):
    """A ledger's tallies -> the accounting table {(stage, group, key): (docs, bytes)}, with its
    `drops` (`Ledger.drops`) tallied too: one element, or none for a ledger without tallies (read it
    with `accounting_side_input`)."""

    def __init__(self, drops: Sequence[beam.PCollection]) -> None:
        super().__init__()
        self.drops = tuple(drops)

    def expand(self, tallies: beam.PCollection) -> beam.PCollection:
        drop_tallies = each_stage(self.drops, "TallyDrops", lambda: beam.ParDo(TallyDropsFn()))
        return (
            (tallies, drop_tallies)
            | "Flatten" >> beam.Flatten()
            # no default element: Beam's default costs a stage of its own; `accounting_side_input`
            # reads an empty ledger as the empty table instead
            | "Table" >> beam.CombineGlobally(TableCombineFn()).without_defaults()
        )


def accounting_side_input(table: beam.PCollection) -> Any:
    """`Accounting`'s table as a side input: the table, or `{}` for a ledger with no tally."""
    return beam.pvalue.AsSingleton(table, default_value={})
