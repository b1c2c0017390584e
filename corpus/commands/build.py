"""`corpus build`: the whole pipeline; the embedded default when no config is given."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from lemur_corpus.errors import ConfigError

if TYPE_CHECKING:  # imported where used: `corpus --help` stays quick
    from lemur_corpus.config import BuildConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="run the whole pipeline (the embedded default when no --config is given)",
        description="Read, normalize, filter, dedup, tokenize, mix and shard the configured inputs, then "
        "write the manifest. Everything after a bare `--` is passed to Beam unchanged, e.g. "
        "`corpus build -- --runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing`, "
        "or `corpus build -- --runner=DaskRunner --dask_workers=4` (a local Dask cluster of 4 worker processes; "
        "`--dask_client_address=HOST:8786` uses a running one). Output bytes are the same on every runner.",
    )
    p.add_argument("--config", metavar="FILE",
                   help="build config (YAML). Default: the embedded default, a small real corpus made from "
                   "the local Python installation (configs/default.yaml)")
    p.add_argument("--out", metavar="DIR", default="build/default",
                   help="output folder, local or any Beam FileSystems path (default: build/default)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished build in --out (default: refuse)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="settings",
                   help="override any config key, e.g. --set mixture.total_tokens=null or "
                   "--set inputs.stack.optional=true (repeatable; VALUE is read as YAML; validated like the "
                   "config file and recorded in the manifest's resolved config)")
    p.add_argument("--max-bad-records", metavar="N", type=int, default=None,
                   help="fail when more than N input records cannot be read as documents (bad JSON, no text "
                   "field...), naming the first ones; overrides the config's max_bad_records (default: no limit, "
                   "every bad record is dropped and logged with its file and line)")
    p.add_argument("--dedup-against", metavar="BUILD_OR_INDEX", nargs="+", default=None,
                   help="earlier builds (their dedup-index/) or dedup indexes (`corpus dedup-index merge`): a document "
                   "that duplicates one they published is removed, naming it and its build (drop reasons "
                   "published_exact_duplicate, published_near_duplicate); theirs are never removed. Each index is "
                   "checked whole (settings, files, sha256) before anything is written; the manifest records them")
    p.add_argument("--build-id", metavar="ID", default=None,
                   help="this build's id in the dedup index it writes (dedup-index/; default: the config's name and a "
                   "digest of the config and input files)")
    p.add_argument("--json", action="store_true", help="print the manifest's summary as JSON instead of tables")
    p.set_defaults(func=run)


def load(path: str | None) -> BuildConfig:
    from lemur_corpus.config import load_config
    from lemur_corpus.defaults import embedded_default_config

    return embedded_default_config() if path is None else load_config(path)


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    if args.settings:
        from lemur_corpus.config import with_settings

        config = with_settings(config, args.settings)
    if args.max_bad_records is not None:
        if args.max_bad_records < 0:
            raise ConfigError("--max-bad-records must be 0 or more")
        config.max_bad_records = args.max_bad_records
    if not args.out:
        raise ConfigError("--out must name a folder")
    from lemur_corpus.pipelines.build import run_build
    from lemur_corpus.summary import print_summary

    started = time.monotonic()
    manifest = run_build(config, args.out, args.beam_args, overwrite=args.overwrite, against=args.dedup_against,
                         build_id=args.build_id)
    print_summary(manifest, args.out, time.monotonic() - started, as_json=args.json)
    return 0


