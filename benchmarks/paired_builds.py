"""Two versions of the code base, built at the same time on the same corpus: the CPU of one over the other's.

On a shared machine the CPU seconds of one build move by a fifth and more from one run to the next
(another tenant's load slows every core's work: caches, SMT siblings), so builds run one after the
other compare moments, not code. Run side by side, both versions share every moment's load, and the
ratio of their CPU seconds is the change's (the pairs agree to about a percent). Each pair starts
both builds together (which one starts first alternates) on scale.py's corpus
(`benchmarks/scale.py`: 70% code, 30% English web text, seeded near-duplicates, Lemur's mixture)
with scale.py's config, each as `scale.py --measure` in a fresh process with its version's package
first on `PYTHONPATH` (the multi_processing workers inherit it).

A version is a git revision (`git archive` of corpus/, filters/, pipelines/ and manifests/schema,
laid out as the installed `lemur_corpus` package) or `worktree`: the checkout's files as they are,
committed or not. The harness (scale.py's generator, its config and its measurement) is this
checkout's for both. Each pair prints both builds' CPU seconds (driver and workers) and wall time,
and the ratio; then the median ratio, and whether the two versions wrote the same bytes (scale.py's
digest of the shards, their indexes and the drop log). Before the pairs, both versions build a small
corpus once, side by side and not counted (`--warmup-docs`): a version's numba kernels compile on
their first use and are cached in its exported package, so without it the first pair charges one
version (a new or changed kernel) its compilation.

    .venv/bin/python benchmarks/paired_builds.py [--base HEAD] [--head worktree] [--docs 20000] [--pairs 3]
        [--warmup-docs 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, non_negative_int, positive_int, require_data  # noqa: E402

WORKTREE = "worktree"
"""--base / --head: the checkout's files as they are, instead of a git revision."""
PACKAGE_FOLDERS = {"corpus": "lemur_corpus", "filters": "lemur_corpus/filters", "pipelines": "lemur_corpus/pipelines"}
"""The source folders and where each lands in the package (pyproject.toml's `package-dir`)."""
DATA_FOLDERS = ("manifests/schema",)
"""Read at run time from beside the package (`lemur_corpus.manifest.SCHEMA_PATH`)."""


def export_version(version: str, into: Path, repo: Path = REPO) -> Path:
    """`version`'s package laid out under `into` (a folder to put first on PYTHONPATH); raises
    ValueError with git's message for a revision git does not know."""
    source = into / "source"
    source.mkdir(parents=True)
    folders = [*PACKAGE_FOLDERS, *DATA_FOLDERS]
    if version == WORKTREE:
        for folder in folders:
            shutil.copytree(repo / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", version, *folders],
                                 capture_output=True)
        if archive.returncode:
            raise ValueError(f"--base/--head {version!r}: {archive.stderr.decode(errors='replace').strip()}")
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    package = into / "package"
    for folder, target in PACKAGE_FOLDERS.items():  # corpus/ first: the others land inside it
        shutil.copytree(source / folder, package / target)
    for folder in DATA_FOLDERS:
        shutil.copytree(source / folder, package / folder)
    return package


def start_build(package: Path, config_file: Path, workers: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(package)}
    command = [sys.executable, str(REPO / "benchmarks" / "scale.py"), "--measure", str(config_file), "mp",
               str(workers), "auto"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result_of(process: subprocess.Popen[str], version: str, package: Path) -> dict:
    out, err = process.communicate()
    if process.returncode:
        raise SystemExit(f"the build of {version} failed:\n{err[-4000:]}")
    r = json.loads(out.strip().splitlines()[-1])
    if not Path(r["package"]).is_relative_to(package):  # the version under test, not the installed one
        raise SystemExit(f"the build of {version} imported lemur_corpus from {r['package']}, not {package}")
    return r


def run_pair(packages: dict[str, Path], config_file: Path, workers: int, base_first: bool) -> dict[str, dict]:
    """Both builds at once; `base_first`: which one's process starts first."""
    order = ["base", "head"] if base_first else ["head", "base"]
    started = {side: start_build(packages[side], config_file, workers) for side in order}
    try:
        return {side: result_of(process, side, packages[side]) for side, process in started.items()}
    finally:  # one build failed (or Ctrl-C): the other must not go on writing into a removed folder
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="a git revision, or 'worktree' (default HEAD)")
    parser.add_argument("--head", default=WORKTREE, help="a git revision, or 'worktree' (the default)")
    parser.add_argument("--docs", type=positive_int, default=20_000, help="documents in scale.py's corpus")
    parser.add_argument("--pairs", type=positive_int, default=3)
    parser.add_argument("--warmup-docs", type=non_negative_int, default=1_000,
                        help="documents of the uncounted build each version makes first (0: none)")
    parser.add_argument("--workers", type=positive_int, default=2, help="multi_processing workers per build")
    parser.add_argument("--dup-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    require_data(args.data)
    try:
        return compare(args)
    except ValueError as error:  # a revision git does not know: one line, as argparse's mistakes
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # both builds are stopped (run_pair) and the temporary folder removed
        print("interrupted", file=sys.stderr)
        return 130


def compare(args: argparse.Namespace) -> int:
    from benchmarks.scale import DOCS_PER_FILE, build_config, files_per_kind, make_corpus

    with tempfile.TemporaryDirectory(prefix="paired-builds-") as tmp:
        folder = Path(tmp)
        packages = {side: export_version(version, folder / side)
                    for side, version in (("base", args.base), ("head", args.head))}

        def corpus_config(name: str, docs: int) -> Path:
            (folder / name).mkdir()
            inputs = make_corpus(folder / name, docs, files_per_kind(docs, DOCS_PER_FILE), args.dup_rate, args.seed,
                                 args.data)
            config_file = folder / f"{name}.json"
            config_file.write_text(json.dumps(build_config(inputs, docs)))
            return config_file

        print(f"base {args.base}, head {args.head}: {args.docs:,} documents, {args.pairs} pairs, "
              f"multi_processing x{args.workers} each, both builds at once")
        if args.warmup_docs:  # compiles and caches each version's kernels; not counted
            run_pair(packages, corpus_config("warmup", args.warmup_docs), args.workers, base_first=True)
            print(f"warm-up: both versions built {args.warmup_docs:,} documents first (not counted)")
        config_file = corpus_config("corpus", args.docs)
        ratios, digests = [], set()
        for i in range(args.pairs):
            r = run_pair(packages, config_file, args.workers, base_first=i % 2 == 0)
            base, head = r["base"], r["head"]
            ratio = head["cpu_s"] / base["cpu_s"]
            ratios.append(ratio)
            digests.update((base["shards_sha256"], head["shards_sha256"]))
            print(f"  pair {i + 1}: base {base['cpu_s']:6.1f} CPU-s (driver {base['driver_cpu_s']:5.1f}, wall "
                  f"{base['wall_s']:5.1f} s), head {head['cpu_s']:6.1f} (driver {head['driver_cpu_s']:5.1f}, wall "
                  f"{head['wall_s']:5.1f} s): head / base x{ratio:.3f}")
        mb = base["bytes_in"] / 1e6
        print(f"median head / base CPU: x{statistics.median(ratios):.3f} (pairs {min(ratios):.3f} to "
              f"{max(ratios):.3f}); {mb:.1f} input MB, base {base['cpu_s'] / mb:.2f} and head "
              f"{head['cpu_s'] / mb:.2f} CPU-s per MB in the last pair")
        print("the same bytes (shards, indexes, drop log)" if len(digests) == 1 else
              f"DIFFERENT bytes: {len(digests)} digests among the builds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
