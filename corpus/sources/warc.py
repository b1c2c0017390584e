"""WARC and WET files (Common Crawl layout) read with FastWARC; HTML main text with Resiliparse.

`response` records with an HTML body become documents (main content extracted, as RefinedWeb does
with trafilatura), `conversion` records (WET) are text already. Records that are not documents
(request, metadata, warcinfo) and non-HTML responses are counted under named drop reasons, so the
read stage still balances. Decompression goes through `corpus.io`, which notices truncated files.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

from fastwarc.warc import ArchiveIterator, WarcRecordType
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding

from corpus.accounting import Drop
from corpus.config import BuildConfig, InputConfig
from corpus.document import Document
from corpus.errors import InputFileError
from corpus.io import iter_chunks
from corpus.sources.base import ReadTask, make_document, problem_drop
from corpus.sources.layouts import RecordParts, RecordProblem

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHUNK_SIZE = re.compile(rb"^([0-9a-fA-F]+)[^\r\n]*\r?\n")


class _ChunkStream(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (so FastWARC sees decompressed bytes)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[no-untyped-def]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def dechunk(body: bytes) -> bytes:
    """Undo HTTP/1.1 chunked transfer encoding (some crawlers store bodies still chunked)."""
    out = bytearray()
    pos = 0
    while pos < len(body):
        match = _CHUNK_SIZE.match(body, pos)
        if not match:
            return body  # not chunked after all: keep the body as it is
        size = int(match.group(1), 16)
        pos = match.end()
        if size == 0:
            break
        out += body[pos : pos + size]
        pos += size
        if body[pos : pos + 2] == b"\r\n":
            pos += 2
        elif body[pos : pos + 1] == b"\n":
            pos += 1
    return bytes(out)


def html_to_text(body: bytes, charset: str | None) -> str:
    encoding = charset or detect_encoding(body)
    html = bytes_to_str(body, encoding)
    return extract_plain_text(html, main_content=True, alt_texts=False, links=False)


def read_warc(task: ReadTask, inp: InputConfig, config: BuildConfig) -> Iterator[Document | Drop]:
    stream = io.BufferedReader(_ChunkStream(iter_chunks(task.path)), buffer_size=1 << 20)
    limit = inp.limit_per_file
    count = 0
    try:
        for record in ArchiveIterator(stream, parse_http=True, record_types=WarcRecordType.any_type):
            if limit is not None and count >= limit:
                return
            count += 1
            warc_type = record.headers.get("WARC-Type") or "unknown"
            record_id = record.record_id or f"record{count}"
            origin = f"{task.path}#{record_id}"
            url = (record.headers.get("WARC-Target-URI") or "").strip("<>")
            body = record.reader.read()
            if warc_type not in ("response", "conversion", "resource"):
                yield problem_drop(inp, RecordProblem(f"warc_{warc_type}_record"), origin, len(body))
                continue
            meta = {
                "url": url,
                "timestamp": record.headers.get("WARC-Date") or "",
                "warc_record_id": record_id,
                "warc_type": warc_type,
            }
            if warc_type == "conversion":
                text = bytes_to_str(body, "utf-8")
            else:
                content_type = (record.http_content_type if warc_type == "response" else
                                record.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if content_type not in _HTML_TYPES:
                    yield problem_drop(
                        inp, RecordProblem("non_html_content", content_type or "no content type"),
                        origin, len(body),
                    )
                    continue
                if warc_type == "response" and (record.http_headers.get("Transfer-Encoding") or "").lower() == "chunked":
                    body = dechunk(body)
                charset = record.http_charset if warc_type == "response" else None
                text = html_to_text(body, charset)
            key = url or record_id
            yield make_document(inp, config, RecordParts(key, text, "", meta), origin)
    except InputFileError:
        raise
    except Exception as exc:
        raise InputFileError(task.path, f"corrupted WARC data after record {count}: {exc}") from None
