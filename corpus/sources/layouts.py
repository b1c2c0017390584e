"""Native record layouts mapped into Documents: The Stack, RefinedWeb, RedPajama, CCNet/dolma, generic.

A layout is a pure function from one parsed record (a dict) to the parts of a Document, or a
`RecordProblem` naming why the record cannot be one. Field names can be overridden per input.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import xxhash

from lemur_corpus.config import FieldMap


@dataclasses.dataclass(frozen=True, slots=True)
class RecordParts:
    key: str
    """The natural key; the document id is `<input>/<key>`."""
    text: str
    lang: str
    meta: dict[str, Any]
    path: str = ""
    """For code: the file path, used for the language when the record has none."""


@dataclasses.dataclass(frozen=True, slots=True)
class RecordProblem:
    reason: str
    detail: str = ""


def content_key(text: str) -> str:
    """Last-resort natural key: a content hash (stable, but identical texts share it)."""
    return "sha:" + xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))


def _get(record: dict[str, Any], name: str | None, default: str) -> Any:
    return record.get(name or default)


def _text(record: dict[str, Any], field: str) -> str | RecordProblem:
    if field not in record or record[field] is None:
        return RecordProblem("missing_text_field", f"no {field!r} field")
    value = record[field]
    if not isinstance(value, str):
        return RecordProblem("wrong_field_type", f"{field!r} is {type(value).__name__}, expected a string")
    return value


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_scalar(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _scalar(v) for k, v in value.items()}
    return str(value)


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def stack(record: dict[str, Any], fields: FieldMap) -> RecordParts | RecordProblem:
    """The Stack v1/v2: `content`, `hexsha`, `lang`, `ext`, `max_stars_repo_*`."""
    text = _text(record, fields.text or "content")
    if isinstance(text, RecordProblem):
        return text
    path = _get(record, fields.path, "max_stars_repo_path") or record.get("path") or ""
    repo = _get(record, fields.repo, "max_stars_repo_name") or record.get("repo_name") or ""
    hexsha = _get(record, fields.id, "hexsha") or record.get("blob_id")
    licenses = _get(record, fields.licenses, "max_stars_repo_licenses") or record.get("licenses")
    stars = _get(record, fields.stars, "max_stars_count")
    lang = _get(record, fields.lang, "lang") or record.get("language") or ""
    meta = {
        "path": str(path),
        "repo": str(repo),
        "licenses": _scalar(list(licenses)) if isinstance(licenses, (list, tuple)) else (
            [licenses] if isinstance(licenses, str) else []),
        "stars": int(stars) if isinstance(stars, (int, float)) else 0,
        "ext": str(record.get("ext") or ""),
        "hexsha": str(hexsha or ""),
    }
    key = str(hexsha) if hexsha else (f"{repo}/{path}" if path else content_key(text))
    return RecordParts(key, text, str(lang), meta, str(path))


def refinedweb(record: dict[str, Any], fields: FieldMap) -> RecordParts | RecordProblem:
    """RefinedWeb: `content, url, timestamp, dump, segment, image_urls`."""
    text = _text(record, fields.text or "content")
    if isinstance(text, RecordProblem):
        return text
    url = _get(record, fields.url, "url") or ""
    meta = {
        "url": str(url),
        "timestamp": str(record.get("timestamp") or ""),
        "dump": str(record.get("dump") or ""),
        "segment": str(record.get("segment") or ""),
    }
    key = str(_get(record, fields.id, "id") or url or content_key(text))
    return RecordParts(key, text, "", meta)


_REDPAJAMA_KEYS = ("url", "arxiv_id", "id", "question_id", "title", "path")


def redpajama(record: dict[str, Any], fields: FieldMap) -> RecordParts | RecordProblem:
    """RedPajama-1T subsets: `text` plus a `meta` object whose keys depend on the subset."""
    text = _text(record, fields.text or "text")
    if isinstance(text, RecordProblem):
        return text
    meta_in = _as_dict(record.get("meta"))
    meta = {str(k): _scalar(v) for k, v in meta_in.items()}
    key = record.get(fields.id) if fields.id else None
    if not key:
        key = next((meta_in[k] for k in _REDPAJAMA_KEYS if meta_in.get(k)), None)
    lang = str(meta_in.get("language") or meta_in.get("lang") or "")
    if lang and len(lang) > 3 and "-" not in lang:  # e.g. "en" vs a stringified dict
        lang = ""
    return RecordParts(str(key) if key else content_key(text), text, lang, meta)


def dolma(record: dict[str, Any], fields: FieldMap) -> RecordParts | RecordProblem:
    """CCNet / dolma: `id, text, source, metadata` (also `url`, `lang` at the top level in some dumps)."""
    text = _text(record, fields.text or "text")
    if isinstance(text, RecordProblem):
        return text
    metadata = _as_dict(record.get("metadata") or record.get("meta"))
    meta = {str(k): _scalar(v) for k, v in metadata.items()}
    for extra in ("source", "url", "added", "created"):
        if record.get(extra) is not None and extra not in meta:
            meta[extra] = _scalar(record[extra])
    lang = record.get(fields.lang or "lang") or metadata.get("language") or metadata.get("lang") or ""
    if isinstance(record.get("lang_score"), (int, float)):
        meta["lang_score"] = float(record["lang_score"])
    key = record.get(fields.id or "id") or meta.get("url") or content_key(text)
    return RecordParts(str(key), text, str(lang), meta)


def generic(record: dict[str, Any], fields: FieldMap) -> RecordParts | RecordProblem:
    """Any JSON object with a text field (default `text`, else `content`) and optionally an id."""
    field = fields.text or ("text" if "text" in record or "content" not in record else "content")
    text = _text(record, field)
    if isinstance(text, RecordProblem):
        return text
    id_field = fields.id or "id"
    key = record.get(id_field)
    if key is not None and not isinstance(key, (str, int)):
        return RecordProblem("wrong_field_type", f"{id_field!r} is {type(key).__name__}, expected a string")
    skip = {field, id_field}
    meta = {str(k): _scalar(v) for k, v in record.items() if k not in skip}
    lang = record.get(fields.lang or "lang")
    path = record.get(fields.path or "path") or meta.get("max_stars_repo_path") or ""
    url = record.get(fields.url or "url")
    if url is not None:
        meta["url"] = _scalar(url)
    return RecordParts(
        str(key) if key not in (None, "") else content_key(text),
        text,
        str(lang) if isinstance(lang, str) else "",
        meta,
        str(path),
    )


def text_fields_of(layout: str, fields: FieldMap) -> tuple[str, ...]:
    """The field names a layout reads its text from (any one will do), given the input's FieldMap."""
    if fields.text:
        return (fields.text,)
    return {"stack": ("content",), "refinedweb": ("content",), "redpajama": ("text",), "dolma": ("text",)}.get(
        layout, ("text", "content"))


LAYOUTS = {
    "stack": stack,
    "refinedweb": refinedweb,
    "redpajama": redpajama,
    "dolma": dolma,
    "jsonl": generic,
}
