"""`corpus filter`: the filters of one kind over any JSONL / Parquet / WARC files."""

from __future__ import annotations

import argparse
import difflib
import time
from typing import Any

import yaml
from pydantic import ValidationError

from lemur_corpus.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "filter",
        help="run the text or code filters over JSONL/Parquet/WARC files; write kept records and verdicts",
        description="Read files with the build's readers, normalize, and run the filters of one kind exactly "
        "as `corpus build` does. Writes into --out: kept-*.jsonl.zst (the kept records, one file per input "
        "file, in input order), verdicts.jsonl (id, kept, reason, signals for every record, so decisions "
        "can be inspected and compared) and summary.json. Text filters: decontam, lid, gopher_repetition, "
        "gopher_quality, c4, pii. Code filters: decontam, language, license, heuristics, generated, data_like, "
        "syntax, pii (`--filters pii` redacts e-mail addresses, public IPs and secrets alone; `--filters decontam` "
        "drops records holding benchmark items and reports them per benchmark and item). "
        "Everything after a bare `--` is passed to Beam unchanged.",
    )
    p.add_argument("--input", metavar="FILE", nargs="+", required=True,
                   help="files or globs: .jsonl, .jsonl.gz, .jsonl.zst, .parquet, .warc(.gz) "
                   "(local or any Beam FileSystems path)")
    p.add_argument("--kind", choices=("text", "code"), required=True, help="which filters run")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (local)")
    p.add_argument("--id-field", metavar="F", default=None,
                   help="record field holding a unique id (default: id for text, hexsha for code; records "
                   "without one are named FILE:LINE)")
    p.add_argument("--text-field", metavar="F", default=None,
                   help="record field holding the text (default: content for code; for text, text, or "
                   "content when the records have no text)")
    p.add_argument("--lang-field", metavar="F", default=None,
                   help="record field holding the language (default: lang)")
    p.add_argument("--path-field", metavar="F", default=None,
                   help="record field holding the file path, for code records without a language "
                   "(default: max_stars_repo_path for code)")
    p.add_argument("--filters", metavar="NAME,...", default=None,
                   help="run only these filters, in this order (default: the configured list, all of them)")
    p.add_argument("--set", metavar="FILTER.PARAM=VALUE", action="append", default=[], dest="settings",
                   help="override a filter setting, e.g. --set gopher_quality.min_words=100 or "
                   "--set lid.languages=en,de (repeatable; VALUE is read as YAML: null switches a rule off)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier filter output in --out (default: refuse)")
    p.add_argument("--allow-empty-files", action="store_true",
                   help="accept input files of 0 bytes (default: an empty file is an error naming it)")
    p.set_defaults(func=run)


def _parse_setting(setting: str) -> tuple[list[str], Any]:
    key, sep, raw = setting.partition("=")
    path = [part for part in key.strip().split(".") if part]
    if not sep or len(path) < 2:
        raise ConfigError(f"--set {setting!r}: expected FILTER.PARAM=VALUE, e.g. gopher_quality.min_words=100")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return path, value


def _key(node: Any, part: str) -> Any:
    """The key of a config mapping that a dotted-path part names (n-gram sizes are integer keys)."""
    if not isinstance(node, dict):
        return None
    if part in node:
        return part
    if part.isdigit() and int(part) in node:
        return int(part)
    return None


def apply_settings(section: Any, settings: list[str]) -> Any:
    """A copy of a filters config section (text or code) with `--set` overrides, validated as a config
    file would be: unknown names and wrong values are errors naming the setting."""
    data = section.model_dump()
    for setting in settings:
        path, value = _parse_setting(setting)
        node, key = data, None
        for depth, part in enumerate(path):
            if key is not None:
                node = node[key]
            key = _key(node, part)
            if key is None:
                known = sorted(str(k) for k in node) if isinstance(node, dict) else []
                hint = difflib.get_close_matches(part, known, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else (
                    f" (known: {', '.join(known)})" if known else "")
                raise ConfigError(f"--set {setting!r}: unknown setting {'.'.join(path[: depth + 1])}{suggestion}")
        if isinstance(node[key], list) and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        node[key] = value
    try:
        return type(section).model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"--set: invalid value ({problems})") from None


def run(args: argparse.Namespace) -> int:
    from lemur_corpus.config import FieldMap, FiltersConfig

    filters = FiltersConfig()
    section = apply_settings(getattr(filters, args.kind), args.settings)
    filters = filters.model_copy(update={args.kind: section})
    only = [n.strip() for n in args.filters.split(",") if n.strip()] if args.filters is not None else None
    if only is not None and not only:
        raise ConfigError("--filters names no filter")
    fields = FieldMap(text=args.text_field, id=args.id_field, lang=args.lang_field, path=args.path_field)
    from lemur_corpus.pipelines.filter_files import run_filter_files

    started = time.monotonic()
    summary = run_filter_files(args.input, args.kind, args.out, filters, only=only, fields=fields,
                               beam_args=args.beam_args, overwrite=args.overwrite,
                               allow_empty_files=args.allow_empty_files)
    print_summary(summary, args.out, time.monotonic() - started)
    return 0


def print_summary(summary: dict[str, Any], out_dir: str, seconds: float) -> None:
    docs, kept = summary["documents"], summary["kept"]
    share = f" ({kept / docs:.1%})" if docs else ""
    print(f"{docs:,} records ({summary['bytes']:,} bytes): {kept:,} kept{share}, {docs - kept:,} dropped")
    for reason, entry in list(summary["dropped"].items())[:12]:
        print(f"  {entry['docs']:>8,}  {reason}")
    if len(summary["dropped"]) > 12:
        print(f"  ... {len(summary['dropped']) - 12} more reasons in summary.json")
    edits = summary.get("edits") or {}
    if edits:
        print("in the kept records: " + ", ".join(f"{key} {count:,}" for key, count in edits.items()))
    contamination = summary.get("contamination") or {}
    for name, entry in sorted((contamination.get("benchmarks") or {}).items()):
        print(f"benchmark {name}: {entry['documents']:,} records hold {len(entry['items']):,} of its items "
              f"({entry['dropped']:,} dropped by decontam, {entry['dropped_by_other_filters']:,} by other filters)")
    print(f"output: {out_dir.rstrip('/')}/ (kept-*.jsonl.zst, verdicts.jsonl, summary.json)  ({seconds:.0f} s)")
