"""`corpus validate`: every check `corpus build` makes before it starts, and nothing else.

A scheduler runs this as the first task of a build so that a wrong config path, a runner Beam does not
know, a missing input file or an output folder nobody can write stops the run at once, with one clear
message and no retry, before any worker starts and before a previous build is cleared. It runs the
build's own checks (`load_config`, then `lemur_corpus.pipelines.build.preflight`: runner, filters,
tokenizer, inputs), so the two can never disagree. Nothing is read but file listings, and the only
write is a probe file in --out, removed again.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from lemur_corpus.errors import ConfigError
from lemur_corpus.folders import PROBE_PREFIX


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check a build's config, runner, inputs and output folder without building",
        description="Make every check `corpus build` makes before it starts: the config parses, the Beam "
        "runner exists, every input file is listed and readable, the tokenizer loads, and the output "
        "folder can be written (a probe file is created and removed). Reads no records; never touches "
        "an existing build. Everything after a bare `--` is the Beam options the build would get.",
    )
    p.add_argument("--config", metavar="FILE",
                   help="build config (YAML). Default: the embedded default (configs/default.yaml)")
    p.add_argument("--out", metavar="DIR", default="build/default",
                   help="the output folder the build would write, local or any Beam FileSystems path "
                   "(default: build/default); created if missing")
    p.add_argument("--json", action="store_true", help="print what was checked as JSON")
    p.set_defaults(func=run)


def check_writable(out_dir: str) -> None:
    """Create `out_dir` if needed and write then delete a probe file; `ConfigError` if either fails.

    `os.access` is not enough: it says yes to root on a read-only mount, and knows nothing of gs://.
    """
    from lemur_corpus.io import join, makedirs, write_atomic

    probe = join(out_dir, f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}")
    try:
        makedirs(out_dir)
        write_atomic(probe, b"")
    except Exception as exc:  # OSError locally; Beam's BeamIOError (and others) for remote schemes
        raise ConfigError(f"output folder {out_dir} is not writable: {exc}") from None
    from apache_beam.io.filesystems import FileSystems

    FileSystems.delete([probe])


def validate(config_path: str | None, out_dir: str, beam_args: list[str]) -> dict[str, Any]:
    """Every pre-build check, in the order a user fixes them; the facts a scheduler logs and keeps."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from lemur_corpus.commands.build import load
    from lemur_corpus.folders import check
    from lemur_corpus.pipelines.build import BUILD_FOLDER, preflight

    config = load(config_path)
    if not out_dir:
        raise ConfigError("--out must name a folder")
    checked = preflight(config, beam_args)
    check(out_dir, BUILD_FOLDER, overwrite=True)  # a file, or another command's folder: no flag fixes that
    check_writable(out_dir)
    runner = PipelineOptions(checked.beam_args).view_as(StandardOptions).runner or "DirectRunner"
    identity = checked.tokenizer
    return {
        "config": config_path,
        "name": config.name,
        "config_hash": config.config_hash(),
        "runner": runner,
        "beam_args": checked.beam_args,
        "tokenizer": {"name": identity.name, "vocab_size": identity.vocab_size},
        "inputs": [
            {"name": name, "files": len(listed), "bytes": sum(f.size for f in listed)}
            for name, listed in checked.files.items()
        ],
        "read_tasks": len(checked.tasks),
        "out": out_dir,
    }


def run(args: argparse.Namespace) -> int:
    report = validate(args.config, args.out, args.beam_args)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    inputs = ", ".join(f"{i['name']} ({i['files']} files, {i['bytes']:,} bytes)" for i in report["inputs"])
    print(f"config {report['config'] or '(embedded default)'}: build {report['name']}, "
          f"config hash {report['config_hash'][:12]}")
    print(f"runner {report['runner']}; tokenizer {report['tokenizer']['name']} "
          f"({report['tokenizer']['vocab_size']:,} tokens)")
    print(f"inputs: {inputs}; {report['read_tasks']} read tasks")
    print(f"output folder {report['out']} is writable")
    print("ok: ready to build")
    return 0
