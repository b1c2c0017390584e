"""Dask's `sizeof` for the records a build's tasks hand each other, so a worker knows what it holds.

A Dask worker weighs every task result it keeps with `dask.sizeof.sizeof`, and decides from those
weights when to spill results to its local disk (over 60% of `--memory-limit`), what to report as
managed memory, and what a transfer costs. For an object it has no rule for, that weight is
`sys.getsizeof`: the object's own header, not the strings and arrays it points to. A `Document`
weighed 72 bytes whatever its text, so a partition of web pages counted as a few percent of its
size, and the bodies waiting for dedup's final join were "unmanaged" memory, which a worker with a
memory limit spilled only once its whole process passed 70% of the limit. Each record class
registered here weighs its fields (strings, token arrays, meta dicts) too; `tests/test_dask_tasks.py`
checks a partition's weight against what it allocated, and what a cluster's worker reports.
"""

from __future__ import annotations

import dataclasses
import sys
import typing as t

from apache_beam.utils.windowed_value import WindowedValue
from dask.sizeof import sizeof

from lemur_corpus.accounting import Drop, Tally
from lemur_corpus.dedup.exact import DedupRecord
from lemur_corpus.document import Document
from lemur_corpus.filters.decontam.report import ContaminationRecord
from lemur_corpus.pipelines.tokenize import TokenizedDoc
from lemur_corpus.shards import PointedDoc, ShardDoc

RECORD_TYPES: tuple[type, ...] = (Document, DedupRecord, TokenizedDoc, ShardDoc, PointedDoc, Drop, Tally,
                                  ContaminationRecord)
"""The dataclasses a build's PCollections carry (NamedTuples are tuples, which Dask already weighs
item by item)."""


def fields_sizeof(record: t.Any) -> int:
    """The record's header, a `__dict__` if it has one, and every field's own weight."""
    own = sys.getsizeof(record) + (sys.getsizeof(record.__dict__) if hasattr(record, "__dict__") else 0)
    return own + sum(sizeof(getattr(record, field.name)) for field in dataclasses.fields(record))


def windowed_sizeof(value: WindowedValue) -> int:
    """A windowed value (a side input's materialized elements): its header and its value."""
    return sys.getsizeof(value) + sizeof(value.value)


def register() -> None:
    """Teach this process's Dask the weights above (idempotent). `pipelines/dask_bundles.py`, whose
    functions every task of a build runs, calls it on import: wherever a result is made, it is weighed so."""
    for record_type in RECORD_TYPES:
        sizeof.register(record_type)(fields_sizeof)
    sizeof.register(WindowedValue)(windowed_sizeof)
