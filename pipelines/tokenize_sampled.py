"""Stage 5 with `mixture.tokenize: sampled`: tokenize first what the mixture can sample, then the rest
of only the sources where that does not settle the plan (`lemur_corpus.partial_pools` has the method
and why the shards are the same bytes as tokenizing everything).

    docs ─▶ park them  ─▶ byte histograms ─▶ first bounds ─┐
              └─▶ split by bound ─▶ first ─▶ unpark, encode ─┴─▶ partial pools ─▶ unsettled sources ─┐
                               └─▶ rest ────────────────────────────────────────────────────────┴─▶ unpark, encode
                                                                                                    or count

The documents left untokenized leave the stage counted (documents and bytes, as every document is)
and enter the mixture's pools as documents without tokens; none of their tokens is written.

Every document waits twice on Dask as a task result on the worker that made it: for the first
bounds, which need every document's size, and (the rest) for the partial pools, which need every
first document tokenized. Held with their texts, that was most of what the workers held
(`benchmarks/scale.py --runner dask-cluster`: the split's rest at a million documents, 1.8 of the
2.5 GB; the deduplicated documents waiting for the bounds, 387-455 MiB of the fullest sample at
250,000); held with their metadata (a text parked, the rest of the `Document` kept: its dict and
strings), they were still the largest rise of a worker's memory at a million documents, in Python's
small objects, which `dask.sizeof` underweighs (docs/measurements.md, 2026-12-06, twenty-ninth
session). So the stage first parks each whole document in a spill file of the build's folder
(`ParkDocumentFn`, `token_spill.park_document`, like the token ids after it) and sends on a flat
`ParkedDoc` (source, sample bin, bytes, place); the first documents are read back before they are
tokenized, the rest only for the unsettled sources (`UnparkDocuments`), and the spill files go with
the token ids' once the shards are written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam

from lemur_corpus.accounting import TOKENIZE
from lemur_corpus.config import BuildConfig
from lemur_corpus.document import Document
from lemur_corpus.mixture import histogram_bin, sample_point
from lemur_corpus.partial_pools import first_bounds, unsettled_sources
from lemur_corpus.pipelines.ledger import CountDocuments, StageOutputs
from lemur_corpus.pipelines.mix import HistogramFn, PartialPools, pool_point
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.profile import MIX, profiled, profiled_fn
from lemur_corpus.pipelines.profile import TOKENIZE as TOKENIZE_STAGE
from lemur_corpus.pipelines.tokenize import BundleSpillFn, Encode
from lemur_corpus.token_spill import PARKED_DTYPE, BundleSpill, SpilledTokens, park_document, read_documents
from lemur_corpus.tokenizer import TokenizerIdentity

REST = "rest"
REST_POINTS = "rest_points"


class SampledOutputs(NamedTuple):
    stage: StageOutputs
    """The tokenized documents (both passes) and the stage's tallies (every document in and out)."""
    partial: PartialPools
    """The pools with the untokenized documents counted, and the first pass's bounds, for `Mix`."""


def _byte_point(doc: ParkedDoc) -> tuple[str, tuple[int, int]]:
    return doc.source, (doc.u_bin, doc.nbytes)


@profiled_fn(MIX)
def _bounds(_: Any, byte_pools: dict[str, dict[str, Any]], config: BuildConfig) -> dict[str, int]:
    return first_bounds(config.all_mixtures(), byte_pools)


@profiled_fn(MIX)
def _unsettled(_: Any, pools: dict[str, dict[str, Any]], bounds: dict[str, int],
               config: BuildConfig) -> frozenset[str]:
    return unsettled_sources(config.all_mixtures(), config.seed, pools, bounds)


class Untokenized(NamedTuple):
    """What the pools and the accounting need of a document past its source's first bound."""

    source: str
    u_bin: int
    nbytes: int


class ParkedDoc(NamedTuple):
    """A document waiting for the bounds or the partial pools, whole in a spill file: what the
    bounds, the split and the pools read of it, and where it is. Flat, so that the hundreds of
    thousands a worker holds while they wait are one small tuple each, not a `Document` (its
    metadata dict and its strings, each an object of its own)."""

    source: str
    u_bin: int
    """The histogram bin of its sample point (`mixture.histogram_bin(sample_point(seed, id))`)."""
    nbytes: int
    """Its text's UTF-8 bytes (`Document.nbytes`: lone surrogates count 3)."""
    path: str
    offset: int
    length: int
    """Where it is: `token_spill.read_documents` reads it back (`place`)."""

    @property
    def place(self) -> SpilledTokens:
        return SpilledTokens(self.path, self.offset, self.length)


class ParkDocumentFn(BundleSpillFn):
    """Documents -> `ParkedDoc`s, each document in a bundle's spill file in `spill_folder` (complete
    when the bundle finishes, before the bounds that every reader of them waits for exist)."""

    def __init__(self, spill_folder: str, seed: int) -> None:
        self.spill_folder, self.seed = spill_folder, seed

    def setup(self) -> None:
        self.spill = BundleSpill(self.spill_folder, PARKED_DTYPE)

    @profiled(TOKENIZE_STAGE)
    def process(self, doc: Document) -> Iterator[ParkedDoc]:
        path, offset, length = park_document(self.spill, doc)
        yield ParkedDoc(doc.source, histogram_bin(sample_point(self.seed, doc.id)), doc.nbytes, path, offset, length)


class SplitByBoundFn(beam.DoFn):
    """A parked document in its source's first bound goes on (the main output); one past it goes to
    `REST`, and its `Untokenized` record to `REST_POINTS`."""

    @profiled_fn(MIX, flat=True)
    def process(self, parked: ParkedDoc, bounds: dict[str, int]) -> Iterator[Any]:
        if parked.u_bin <= bounds.get(parked.source, parked.u_bin):
            yield parked
            return
        yield beam.pvalue.TaggedOutput(REST, parked)
        yield beam.pvalue.TaggedOutput(REST_POINTS, Untokenized(parked.source, parked.u_bin, parked.nbytes))


class UnparkFn(beam.DoFn):
    """Batches of `ParkedDoc`s -> their documents, read back (one read per run of nearby documents
    of a spill file)."""

    @profiled(TOKENIZE_STAGE)
    def process(self, batch: list[ParkedDoc]) -> Iterator[Document]:
        yield from read_documents([parked.place for parked in batch])


class UnparkDocuments(beam.PTransform):
    """`ParkedDoc`s -> their documents, read back in batches (`UnparkFn`)."""

    def expand(self, parked: beam.PCollection) -> beam.PCollection:
        return (
            parked
            | "Batch" >> beam.BatchElements(min_batch_size=16, max_batch_size=1_000)
            | "Read" >> beam.ParDo(UnparkFn())
        )


def _untokenized_point(record: Untokenized) -> tuple[str, tuple[int, None]]:
    return record.source, (record.u_bin, None)


def _source_in(doc: ParkedDoc | Untokenized, sources: frozenset[str]) -> bool:
    return doc.source in sources


def _source_out(doc: ParkedDoc | Untokenized, sources: frozenset[str]) -> bool:
    return doc.source not in sources


class TokenizeSampled(beam.PTransform):
    """Documents -> `SampledOutputs`: the tokenized ones and the pools the mixture plans from."""

    def __init__(self, config: BuildConfig, identity: TokenizerIdentity, spill_folder: str) -> None:
        super().__init__()
        self.config = config
        self.identity, self.spill_folder = identity, spill_folder

    def _encode(self) -> Encode:
        return Encode(self.config.tokenizer, self.identity, self.config.shards.write_jsonl, self.spill_folder)

    def expand(self, docs: beam.PCollection) -> SampledOutputs:
        config, seed = self.config, self.config.seed
        parked = docs | "Park" >> beam.ParDo(ParkDocumentFn(self.spill_folder, seed))
        counted_in = parked | "CountIn" >> CountDocuments(TOKENIZE, "in")
        byte_pools = (
            parked
            | "BytePoints" >> beam.Map(_byte_point)
            | "BytePools" >> beam.CombinePerKey(HistogramFn())
        )
        bounds = (
            docs.pipeline
            | "BoundsSeed" >> beam.Create([None])
            | "Bounds" >> beam.Map(_bounds, byte_pools=beam.pvalue.AsDict(byte_pools), config=config)
        )
        bounds_side = beam.pvalue.AsSingleton(bounds)
        split = parked | "Split" >> MultiOutputParDo(SplitByBoundFn(), REST, REST_POINTS,
                                                     main="first", bounds=bounds_side)
        first = split["first"] | "UnparkFirst" >> UnparkDocuments() | "EncodeFirst" >> self._encode()
        first_points = first | "FirstPoints" >> beam.Map(pool_point, seed)
        rest_points = split[REST_POINTS] | "RestPoints" >> beam.Map(_untokenized_point)
        partial = (
            (first_points, rest_points) | "PartialPoints" >> beam.Flatten()
            | "PartialPools" >> beam.CombinePerKey(HistogramFn())
        )
        unsettled = beam.pvalue.AsSingleton(
            docs.pipeline
            | "UnsettledSeed" >> beam.Create([None])
            | "Unsettled" >> beam.Map(_unsettled, pools=beam.pvalue.AsDict(partial), bounds=bounds_side,
                                      config=config)
        )
        second = (
            split[REST]
            | "RestOfUnsettled" >> beam.Filter(_source_in, unsettled)
            | "Unpark" >> UnparkDocuments()
            | "EncodeRest" >> self._encode()
        )
        untokenized = split[REST_POINTS] | "Untokenized" >> beam.Filter(_source_out, unsettled)
        pools = (
            (first_points, second | "SecondPoints" >> beam.Map(pool_point, seed),
             untokenized | "UntokenizedPoints" >> beam.Map(_untokenized_point))
            | "AllPoints" >> beam.Flatten()
            | "Pools" >> beam.CombinePerKey(HistogramFn())
        )
        tokenized = (first, second) | "Tokenized" >> beam.Flatten()
        counted_out = (
            (tokenized | "CountTokenized" >> CountDocuments(TOKENIZE, "out"),
             untokenized | "CountUntokenized" >> CountDocuments(TOKENIZE, "out"))
            | "CountedOut" >> beam.Flatten()
        )
        tallies = (counted_in, counted_out) | "Tallies" >> beam.Flatten()
        return SampledOutputs(StageOutputs(tokenized, tallies, None), PartialPools(pools, bounds))
