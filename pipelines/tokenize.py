"""Stage 5, tokenize on the workers: the tokenizer loads once per worker, documents go in batches."""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from corpus.accounting import TOKENIZE
from corpus.config import TokenizerConfig
from corpus.document import Document
from corpus.tokenizer import TokenizerIdentity, encode_batch, load_tokenizer
from pipelines.ledger import Ledger, Progress


@dataclasses.dataclass(frozen=True, slots=True)
class TokenizedDoc:
    id: str
    source: str
    kind: str
    tokens: np.ndarray
    """Token ids, EOS last."""
    nbytes: int
    text: str | None = None
    """Kept only when the untokenized mixture is written too."""


class TokenizeFn(beam.DoFn):
    def __init__(self, config: TokenizerConfig, identity: TokenizerIdentity, keep_text: bool) -> None:
        self.config = config
        self.identity = identity
        self.keep_text = keep_text
        self.tokens = Metrics.counter("tokenize", "tokens")

    def setup(self) -> None:
        self.tokenizer = load_tokenizer(self.config)
        self.dtype = np.dtype(self.identity.dtype)
        self.progress = Progress(TOKENIZE)

    def process(self, batch: list[Document]):  # type: ignore[no-untyped-def]
        arrays = encode_batch(self.tokenizer, [d.text for d in batch], self.identity.eos_id, self.dtype)
        for doc, ids in zip(batch, arrays):
            self.tokens.inc(len(ids))
            self.progress.tick()
            yield TokenizedDoc(doc.id, doc.source, doc.kind, ids, doc.nbytes, doc.text if self.keep_text else None)


def tokenize(docs: beam.PCollection, config: TokenizerConfig, identity: TokenizerIdentity,
             keep_text: bool, ledger: Ledger) -> beam.PCollection:
    ledger.count("Tokenize", TOKENIZE, docs, "in")
    tokenized = (
        docs
        | "Batch" >> beam.BatchElements(min_batch_size=min(16, config.batch_size), max_batch_size=config.batch_size)
        | "Tokenize" >> beam.ParDo(TokenizeFn(config, identity, keep_text))
    )
    ledger.count("Tokenize", TOKENIZE, tokenized, "out")
    return tokenized
