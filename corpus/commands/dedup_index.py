"""`corpus dedup-index merge|check`: compaction of dedup indexes, and checking one."""

from __future__ import annotations

import argparse
import json
import os

from lemur_corpus.errors import ConfigError

MERGE_NAME = "merge.json"
"""Written last into a merge's --out: the inputs (with their header sha256) and the merged kinds."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dedup-index",
        help="merge many builds' dedup indexes into one (merge), or check one (check)",
        description="Dedup indexes are what `--dedup-against` / `--against` read: per kind, every kept "
        "document's content hash and MinHash sketch with its build and id (lemur_corpus.dedup.index).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    merge = actions.add_parser(
        "merge", help="fold several indexes (builds, `corpus dedup` outputs, merged indexes) into one",
        description="Checks every input whole (settings, files, sha256) before writing; writes every row of "
        "every input into --out/<kind>/ (deterministic: same inputs in the same order, same bytes), reads each "
        "file back against its checksum, then writes merge.json.")
    merge.add_argument("indexes", metavar="INDEX", nargs="+",
                       help="build folders, `corpus dedup` outputs or index folders")
    merge.add_argument("--out", metavar="DIR", required=True, help="the merged index's folder (local)")
    merge.add_argument("--kind", choices=("code", "text"), action="append", default=None,
                       help="merge only this kind (repeatable; default: every kind all inputs have)")
    merge.add_argument("--parts", metavar="N", type=int, default=4, help="data files per kind (default: 4)")
    merge.add_argument("--overwrite", action="store_true", help="replace an earlier merge in --out")
    merge.set_defaults(func=run_merge)
    check = actions.add_parser("check", help="check an index whole: header, files, sizes, sha256",
                               description="Exit 0 and one line per kind when the index is intact; exit 2 naming "
                               "the first problem otherwise.")
    check.add_argument("index", metavar="INDEX")
    check.set_defaults(func=run_check)


def owned() -> object:
    from lemur_corpus.folders import Owned
    from lemur_corpus.manifest import FAILED_NAME

    return Owned(command="dedup-index", finished=MERGE_NAME, names=frozenset({MERGE_NAME, FAILED_NAME, "code", "text"}))


def run_merge(args: argparse.Namespace) -> int:
    from lemur_corpus.dedup.merge import check_inputs, kinds_in, merge_kind
    from lemur_corpus.folders import Owned, check, claim
    from lemur_corpus.io import write_atomic

    if "://" in args.out:
        raise ConfigError(f"--out {args.out}: `corpus dedup-index merge` writes to a local folder")
    if args.parts < 1:
        raise ConfigError(f"--parts must be at least 1, got {args.parts}")
    folder = owned()
    assert isinstance(folder, Owned)
    check(args.out, folder, args.overwrite)  # a folder we may not write is refused before any reading
    kinds = args.kind or [k for k in ("code", "text") if all(k in kinds_in(p) for p in args.indexes)]
    if not kinds:
        raise ConfigError("no kind has a dedup index in every input: "
                          + "; ".join(f"{p}: {', '.join(kinds_in(p)) or 'none'}" for p in args.indexes))
    checked = {kind: check_inputs(args.indexes, kind) for kind in sorted(set(kinds))}
    claim(args.out, folder, args.overwrite)
    headers = {kind: merge_kind(handles, os.path.join(args.out, kind), args.parts) for kind, handles in checked.items()}
    record = {"inputs": [h.record() for handles in checked.values() for h in handles],
              "kinds": {kind: {"documents": h["documents"], "builds": [b["id"] for b in h["builds"]],
                               "files": len(h["files"])} for kind, h in headers.items()}}
    write_atomic(os.path.join(args.out, MERGE_NAME), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    for kind, header in headers.items():
        print(f"{kind}: {header['documents']:,} documents of {len(header['builds'])} build(s) "
              f"({', '.join(b['id'] for b in header['builds'])}) -> {os.path.join(args.out, kind)}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from lemur_corpus.dedup.index import open_index
    from lemur_corpus.dedup.merge import kinds_in

    kinds = kinds_in(args.index)
    if not kinds:
        raise ConfigError(f"{args.index}: no dedup index there")
    for kind in kinds:
        handle = open_index(args.index, kind)
        print(f"{kind}: ok, {handle.header['documents']:,} documents, {len(handle.header['files'])} files, builds "
              f"{', '.join(handle.builds)} (header sha256 {handle.header_sha256})")
    return 0
