"""Stage 5, tokenize on the workers: the tokenizer loads once per worker, documents go in batches,
and each bundle's token ids go to a spill file (`corpus/token_spill.py`): a tokenized document carries
where its ids are, not the ids, while it waits for the mixture's plan."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from lemur_corpus.accounting import TOKENIZE
from lemur_corpus.config import TokenizerConfig
from lemur_corpus.document import Document, pickled_by_fields
from lemur_corpus.pipelines.ledger import CountDocuments, Progress, StageOutputs
from lemur_corpus.pipelines.profile import TOKENIZE as TOKENIZE_STAGE
from lemur_corpus.pipelines.profile import profiled
from lemur_corpus.pipelines.worker_memory import trim_heap
from lemur_corpus.token_spill import BundleSpill, SpilledTokens
from lemur_corpus.tokenizer import TokenizerIdentity, encode_batch, encode_on_calling_thread, load_tokenizer


@pickled_by_fields
@dataclasses.dataclass(frozen=True, slots=True)
class TokenizedDoc:
    id: str
    source: str
    kind: str
    spilled: SpilledTokens
    """Where its token ids (EOS last) are, in the build's token dtype (`read_spilled` reads them)."""
    nbytes: int
    text: str | None = None
    """Kept only when the untokenized mixture is written too."""

    @property
    def length(self) -> int:
        """Its number of tokens, EOS included."""
        return self.spilled.length


class BundleSpillFn(beam.DoFn):
    """A DoFn that writes a spill file per bundle (`self.spill`, a `BundleSpill` its `setup` makes):
    closed when the bundle finishes, so the file is complete before its bundle's outputs are."""

    spill: BundleSpill

    def start_bundle(self) -> None:
        self.spill.close()  # a bundle that failed before its end left its file open

    def finish_bundle(self) -> None:
        self.spill.close()

    def teardown(self) -> None:
        if hasattr(self, "spill"):  # setup may have failed before it
            self.spill.close()


TRIM_AFTER_BATCH = True
"""Whether `TokenizeFn` hands the heap's free pages back after each batch it encodes (at most every
`worker_memory.TRIM_INTERVAL_S`). `tokenizers` allocates and frees a batch's encodings in pieces that
glibc keeps inside its heap, batch after batch, until a trim: a runner trims after a task or bundle
(`dask_bundles.TRIM_HEAP`, `worker_memory.trim_after_each_bundle`), and one task encodes a partition's
documents, many batches. Off: only those trims (`benchmarks/dask_runner_speed.py --baseline
encode-trim`). Read when the driver makes the DoFn."""


class TokenizeFn(BundleSpillFn):
    """Batches of documents -> `TokenizedDoc`s; a bundle's token ids go to one spill file in
    `spill_folder`, complete when the bundle finishes (before anything downstream of the mixture's
    plan reads it)."""

    def __init__(self, config: TokenizerConfig, identity: TokenizerIdentity, keep_text: bool,
                 spill_folder: str) -> None:
        self.config = config
        self.identity = identity
        self.keep_text = keep_text
        self.spill_folder = spill_folder
        self.tokens = Metrics.counter("tokenize", "tokens")
        self.trim_after_batch = TRIM_AFTER_BATCH

    def setup(self) -> None:
        encode_on_calling_thread()  # one worker, one core: see its docstring
        self.tokenizer = load_tokenizer(self.config)
        self.dtype = np.dtype(self.identity.dtype)
        self.progress = Progress(TOKENIZE)
        self.spill = BundleSpill(self.spill_folder, self.dtype)

    @profiled(TOKENIZE_STAGE, size=lambda batch: sum(d.nbytes for d in batch))
    def process(self, batch: list[Document]) -> Iterator[TokenizedDoc]:
        arrays = encode_batch(self.tokenizer, [d.text for d in batch], self.identity.eos_id, self.dtype)
        if self.trim_after_batch:
            trim_heap()
        for doc, ids in zip(batch, arrays, strict=True):
            self.tokens.inc(len(ids))
            self.progress.tick()
            yield TokenizedDoc(doc.id, doc.source, doc.kind, self.spill.append(ids), doc.nbytes,
                               doc.text if self.keep_text else None)


class Encode(beam.PTransform):
    """Documents -> `TokenizedDoc`s, in batches of the config's `batch_size` (`TokenizeFn`)."""

    def __init__(self, config: TokenizerConfig, identity: TokenizerIdentity, keep_text: bool,
                 spill_folder: str) -> None:
        super().__init__()
        self.config, self.identity, self.keep_text = config, identity, keep_text
        self.spill_folder = spill_folder

    def expand(self, docs: beam.PCollection) -> beam.PCollection:
        batch_size = self.config.batch_size
        return (
            docs
            | "Batch" >> beam.BatchElements(min_batch_size=min(16, batch_size), max_batch_size=batch_size)
            | "Encode" >> beam.ParDo(TokenizeFn(self.config, self.identity, self.keep_text, self.spill_folder))
        )


class Tokenize(beam.PTransform):
    """Documents -> `TokenizedDoc`s, in batches of `batch_size`, their token ids spilled to files in
    `spill_folder` (the build's shard folder; `remove_spills` clears it); nothing is dropped."""

    def __init__(self, config: TokenizerConfig, identity: TokenizerIdentity, keep_text: bool,
                 spill_folder: str) -> None:
        super().__init__()
        self.encode = Encode(config, identity, keep_text, spill_folder)

    def expand(self, docs: beam.PCollection) -> StageOutputs:
        counted_in = docs | "CountIn" >> CountDocuments(TOKENIZE, "in")
        tokenized = docs | self.encode
        counted_out = tokenized | "CountOut" >> CountDocuments(TOKENIZE, "out")
        return StageOutputs(tokenized, (counted_in, counted_out) | "Tallies" >> beam.Flatten(), None)
