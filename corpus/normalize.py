"""Normalization: valid UTF-8 text in NFC without NUL bytes, LF line ends, notebooks as scripts."""

from __future__ import annotations

import re
import unicodedata

from lemur_corpus.accounting import NORMALIZE, Drop
from lemur_corpus.document import Document
from lemur_corpus.notebooks import NotebookError, notebook_to_script

NOTEBOOK_LANGUAGES = frozenset({"Jupyter Notebook"})
_SURROGATE = re.compile("[\ud800-\udfff]")


def normalize_text(text: str) -> str:
    """Lone surrogates become U+FFFD (they cannot be encoded as UTF-8), NUL bytes go, CRLF/CR become
    LF, and the text is put in Unicode normal form C."""
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    if "\x00" in text:
        text = text.replace("\x00", "")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return text


def normalize_document(doc: Document) -> Document | Drop:
    text = doc.text
    meta = doc.meta
    if doc.kind == "code" and doc.lang in NOTEBOOK_LANGUAGES:
        try:
            text, kernel = notebook_to_script(text)
        except NotebookError as exc:
            return Drop(NORMALIZE, doc.source, "invalid_notebook", doc.nbytes, doc.id, doc.origin, str(exc))
        meta = {**meta, "notebook_language": kernel}
    text = normalize_text(text)
    if not text.strip():
        return Drop(NORMALIZE, doc.source, "empty_text", doc.nbytes, doc.id, doc.origin)
    if text is doc.text and meta is doc.meta:
        return doc
    return doc.replace(text=text, meta=meta)
