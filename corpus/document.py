"""The document record every stage passes along, and its Arrow schema.

A `Document` is immutable; stages make changed copies with `replace`. `meta` holds what the source
knew about the record (path, repo, licenses, url, stars...) and what filters learned (language score),
always JSON-serializable so it can be written to JSONL, Parquet and the manifest.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from typing import Any, Literal, TypeVar

import pyarrow as pa

Kind = Literal["code", "text"]
KINDS: tuple[str, ...] = ("code", "text")

R = TypeVar("R")


def pickled_by_fields(cls: type[R]) -> type[R]:
    """A slotted dataclass pickled as (class, its field values), as a tuple is.

    Records cross every Beam stage boundary pickled (no typed coder knows them), and Python pickles a
    `slots=True` dataclass through `dataclasses._dataclass_getstate`/`_setstate`, which walk
    `fields()` in Python for every object: measured, a Document's pickle round trip goes from 16 to
    8 us. Unpickling calls the class with the values, so a record comes back equal to the one sent.
    Apply it above `@dataclasses.dataclass`.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]  # a dataclass, see above
    values = operator.attrgetter(*names)
    single = len(names) == 1

    def __reduce__(self: R) -> tuple[type[R], tuple[Any, ...]]:
        return cls, ((values(self),) if single else values(self))

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]  # pickle's hook, set on the class
    return cls


@pickled_by_fields
@dataclasses.dataclass(frozen=True, slots=True)
class Document:
    id: str
    """Stable across runs: `<input name>/<natural key>` (hexsha+path, url, record id)."""
    source: str
    """The mixture source this document counts towards (e.g. `python`, `refinedweb`)."""
    kind: str
    """`code` or `text`: dedup runs within a kind."""
    text: str
    lang: str = ""
    """Programming language for code (The Stack's `lang`), ISO language code for text when known."""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    origin: str = ""
    """Where the record was read (`file:line` or `file#row`), for dead letters and error messages."""

    def replace(self, **changes: Any) -> Document:
        return dataclasses.replace(self, **changes)

    @property
    def nbytes(self) -> int:
        return utf8_len(self.text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "kind": self.kind,
            "lang": self.lang,
            "text": self.text,
            "meta": self.meta,
            "origin": self.origin,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Document:
        meta = record.get("meta") or {}
        if isinstance(meta, str):
            meta = json.loads(meta)
        return cls(
            id=record["id"],
            source=record["source"],
            kind=record["kind"],
            text=record["text"],
            lang=record.get("lang") or "",
            meta=meta,
            origin=record.get("origin") or "",
        )


_LAST_MEASURED: list[tuple[str, int]] = [("", 0)]


def utf8_len(text: str) -> int:
    """Bytes of `text` in UTF-8; lone surrogates (which normalization removes) count as 3 bytes.
    An ASCII string is one byte a character (`str.isascii` reads a flag Python keeps: no copy).
    Another is encoded once per text object in a row: a build asks a document's size some twenty
    times as it passes the stages and the profile's clocks, one document after the other. (Held as
    one tuple, so a thread sees a text and its own size or a miss.)"""
    if text.isascii():
        return len(text)
    last_text, last_size = _LAST_MEASURED[0]
    if last_text is text:
        return last_size
    size = len(text.encode("utf-8", "surrogatepass"))
    _LAST_MEASURED[0] = (text, size)
    return size


# `meta` is heterogeneous across sources, so it is stored as a JSON string column.
ARROW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("lang", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("meta", pa.string(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
    ]
)


def to_arrow(documents: list[Document]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in ARROW_SCHEMA.names}
    for doc in documents:
        columns["id"].append(doc.id)
        columns["source"].append(doc.source)
        columns["kind"].append(doc.kind)
        columns["lang"].append(doc.lang)
        columns["text"].append(doc.text)
        columns["meta"].append(json.dumps(doc.meta, sort_keys=True, ensure_ascii=False))
        columns["origin"].append(doc.origin)
    return pa.table(columns, schema=ARROW_SCHEMA)


def from_arrow(table: pa.Table) -> list[Document]:
    return [Document.from_dict(row) for row in table.to_pylist()]
