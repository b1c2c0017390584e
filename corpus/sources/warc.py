"""WARC and WET files (Common Crawl layout) read with warcio; HTML main text with Resiliparse.

`response` records with an HTML body become documents (main content extracted, as RefinedWeb does
with trafilatura), `conversion` records (WET) are text already. Records that are not documents
(request, metadata, warcinfo) and non-HTML responses are counted under named drop reasons, so the
read stage still balances. Decompression goes through `lemur_corpus.io`, which notices truncated
files; warcio reads the stream without seeking and undoes chunked transfer and content encodings.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from warcio.archiveiterator import ArchiveIterator

from lemur_corpus.accounting import Drop
from lemur_corpus.config import BuildConfig, InputConfig
from lemur_corpus.document import Document
from lemur_corpus.errors import InputFileError
from lemur_corpus.io import iter_chunks
from lemur_corpus.sources.base import ReadTask, make_document, problem_drop
from lemur_corpus.sources.layouts import RecordParts, RecordProblem

_HTML_TYPES = ("text/html", "application/xhtml+xml")


class _ChunkStream(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (so warcio sees decompressed bytes)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]  # BufferedReader passes a memoryview
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"\'')
    return None


def html_to_text(body: bytes, charset: str | None) -> str:
    encoding = charset or detect_encoding(body)
    try:
        html = bytes_to_str(body, encoding)  # type: ignore[arg-type]  # detect_encoding: utf-8 when unsure, not None
    except LookupError:  # an unknown charset name in the headers
        html = bytes_to_str(body, detect_encoding(body))  # type: ignore[arg-type]  # utf-8 when unsure, not None
    return extract_plain_text(html, main_content=True, alt_texts=False, links=False)


def read_warc(task: ReadTask, inp: InputConfig, config: BuildConfig) -> Iterator[Document | Drop]:
    stream = io.BufferedReader(_ChunkStream(iter_chunks(task.path)), buffer_size=1 << 20)
    limit = inp.limit_per_file
    count = 0
    try:
        for record in ArchiveIterator(stream, arc2warc=True):
            if limit is not None and count >= limit:
                return
            count += 1
            headers = record.rec_headers
            warc_type = record.rec_type or "unknown"
            record_id = (headers.get_header("WARC-Record-ID") or f"record{count}").strip("<>")
            origin = f"{task.path}#{record_id}"
            url = (headers.get_header("WARC-Target-URI") or "").strip("<>")
            body = record.content_stream().read()
            if warc_type not in ("response", "conversion", "resource"):
                yield problem_drop(inp, RecordProblem(f"warc_{warc_type}_record"), origin, len(body))
                continue
            meta = {
                "url": url,
                "timestamp": headers.get_header("WARC-Date") or "",
                "warc_record_id": record_id,
                "warc_type": warc_type,
            }
            if warc_type == "conversion":
                text = bytes_to_str(body, "utf-8")
            else:
                if warc_type == "response" and record.http_headers is not None:
                    content_type = record.http_headers.get_header("Content-Type") or ""
                else:
                    content_type = headers.get_header("Content-Type") or ""
                mime = content_type.split(";")[0].strip().lower()
                if mime not in _HTML_TYPES:
                    yield problem_drop(inp, RecordProblem("non_html_content", mime or "no content type"), origin,
                                       len(body))
                    continue
                text = html_to_text(body, _charset(content_type))
            yield make_document(inp, config, RecordParts(url or record_id, text, "", meta), origin)
    except InputFileError:
        raise
    except Exception as exc:
        raise InputFileError(task.path, f"corrupted WARC data after record {count}: {exc}") from None
