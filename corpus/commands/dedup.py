"""`corpus dedup`: exact + MinHash near-dedup of any JSONL(.gz/.zst) or Parquet files."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from lemur_corpus.errors import ConfigError

if TYPE_CHECKING:  # imported where used: `corpus --help` stays quick
    from lemur_corpus.dedup.config import DedupConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dedup",
        help="remove exact and near-duplicate documents from JSONL/Parquet files",
        description="Exact (content hash) and near-duplicate (MinHash LSH, verified) dedup of one kind of "
        "documents, with the same transforms as `corpus build`. Writes kept-*.jsonl.zst (the kept records), "
        "clusters.jsonl (id, cluster, kept for every document), dropped.jsonl (unreadable records), "
        "dedup-index/ (the kept documents' dedup index, for a later --against) and summary.json into --out."
        " Everything after a bare `--` is passed to Beam unchanged.",
    )
    p.add_argument("--input", metavar="FILE", nargs="+", required=True,
                   help="files or globs: .jsonl, .jsonl.gz, .jsonl.zst or .parquet "
                        "(local or any Beam FileSystems path)")
    p.add_argument("--kind", choices=("code", "text"), required=True,
                   help="code: code-token shingles, threshold 0.85; text: word shingles, threshold 0.8")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (local)")
    p.add_argument("--id-field", metavar="F", default="id",
                   help="record field holding a unique id (default: id; records without it are named FILE:LINE)")
    p.add_argument("--text-field", metavar="F", default=None,
                   help="record field holding the text (default: text, or content when the records have no text)")
    p.add_argument("--threshold", metavar="T", type=float, default=None,
                   help="Jaccard similarity of near-duplicates, in (0, 1] (default: 0.85 code, 0.8 text)")
    p.add_argument("--keep", choices=("smallest_id", "most_stars", "longest"), default="smallest_id",
                   help="which document of a duplicate cluster is kept (default: smallest_id)")
    p.add_argument("--no-exact", action="store_true", help="skip exact dedup (near-dedup still finds identical texts)")
    p.add_argument("--shards", type=int, default=4, metavar="N",
                   help="files the kept records are written to, by a hash of the id, each in input order (default: 4)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier dedup output in --out (default: refuse)")
    p.add_argument("--against", metavar="DIR", nargs="+", default=None,
                   help="earlier `corpus dedup` outputs, builds or dedup indexes (`corpus dedup-index merge`): a "
                   "document that duplicates one they kept is removed, naming it and its build; theirs are never "
                   "removed. Each index is checked whole (settings, files, sha256) before anything is written")
    p.add_argument("--build-id", metavar="ID", default=None,
                   help="the id this run's kept documents get in the dedup index it writes into --out/dedup-index/ "
                   "(default: 'dedup-' and a digest of the settings and input files)")
    p.add_argument("--allow-empty-files", action="store_true",
                   help="accept input files of 0 bytes (default: an empty file is an error naming it)")
    p.set_defaults(func=run)


def dedup_config(kind: str, threshold: float | None, keep: str, exact: bool) -> DedupConfig:
    """The build's dedup config with the command's choices (validated like a config file)."""
    from lemur_corpus.dedup.config import DedupConfig

    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise ConfigError(f"--threshold must be in (0, 1], got {threshold:g}")
    overrides: dict = {"exact": exact, "keep": keep}
    if threshold is not None:
        overrides[kind] = {"threshold": threshold}
    return DedupConfig.model_validate(overrides)


def run(args: argparse.Namespace) -> int:
    if args.shards < 1:
        raise ConfigError(f"--shards must be at least 1, got {args.shards}")
    config = dedup_config(args.kind, args.threshold, args.keep, not args.no_exact)
    from lemur_corpus.pipelines.dedup_files import run_dedup_files

    started = time.monotonic()
    summary = run_dedup_files(args.input, args.kind, args.out, config, id_field=args.id_field,
                              text_field=args.text_field, shards=args.shards, beam_args=args.beam_args,
                              overwrite=args.overwrite, allow_empty_files=args.allow_empty_files,
                              against=args.against, build_id=args.build_id)
    near = summary["dedup"].get("near", {}).get(args.kind, {})
    print(f"{summary['documents']:,} documents: {summary['kept']:,} kept, {summary['exact_removed']:,} exact "
          f"and {summary['near_removed']:,} near duplicates removed ({near.get('clusters', 0):,} near-duplicate "
          f"clusters, {near.get('candidate_pairs', 0):,} candidate pairs, {near.get('verified_edges', 0):,} "
          f"verified); {summary['unreadable_records']:,} unreadable records")
    if args.against:
        against = summary["dedup"].get("against", {}).get(args.kind, {})
        print(f"against {against.get('index_documents', 0):,} earlier documents ({len(args.against)} index(es)): "
              f"{against.get('exact_removed', 0):,} exact and {against.get('near_removed', 0):,} near duplicates of "
              "them removed")
    print(f"output: {args.out.rstrip('/')}/ (kept-*.jsonl.zst, clusters.jsonl, summary.json)  "
          f"({time.monotonic() - started:.0f} s)")
    return 0
