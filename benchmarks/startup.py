"""A command's time with the package's bytecode compiled at install (what `make install` does with
compileall) against without it, where PYTHONDONTWRITEBYTECODE keeps Python from caching bytecode.

    .venv/bin/python benchmarks/startup.py [--docs 1000] [--repeat 5] [--workers 2]

pip compiles the bytecode of the packages it installs, but an editable install (`pip install -e .`)
leaves the project's own source folders as they are: with PYTHONDONTWRITEBYTECODE set (some CI images
and containers set it), every process then compiles the package's modules from source again, the
driver and each worker. Both sides run from a copy of the package (`corpus/`, `filters/`,
`pipelines/` laid out as `lemur_corpus/` on PYTHONPATH, which comes before the editable install's
finder), one compiled with compileall and one not, so nothing of the checkout is touched.

The command is `corpus dedup --kind text --threshold 0.8` of --docs English documents of real prose
(benchmarks/e2e_datatrove.py's input) on DirectRunner multi_processing with --workers workers, a
command whose time is mostly start-up at this size. Runs alternate (compiled, source, compiled, ...);
printed: each run's wall time, the medians and their ratio, the median of each back-to-back pair's
ratio, and that both sides kept the same documents.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"corpus": "lemur_corpus", "filters": "lemur_corpus/filters", "pipelines": "lemur_corpus/pipelines"}
"""The repository's source folders and where each sits in the package (pyproject.toml's package-dir)."""


def copy_package(target: Path, compiled: bool) -> Path:
    """The package laid out under `target` (on PYTHONPATH, it shadows the editable install), its
    bytecode compiled or not; returns `target`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for source, where in PACKAGE_DIRS.items():
        shutil.copytree(ROOT / source, target / where, ignore=ignore, dirs_exist_ok=True)
    if compiled and not compileall.compile_dir(str(target), quiet=1, workers=0):
        raise SystemExit(f"compileall failed under {target}")
    return target


def environment(package_root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(package_root), "PYTHONDONTWRITEBYTECODE": "1"}


def imported_from(package_root: Path) -> str:
    """Where `lemur_corpus` is imported from with that environment (checked: the copy, not the checkout)."""
    return subprocess.run([sys.executable, "-c", "import lemur_corpus; print(lemur_corpus.__file__)"],
                          env=environment(package_root), check=True, capture_output=True, text=True).stdout.strip()


def timed_dedup(corpus: Path, files: list[str], out: Path, package_root: Path, workers: int) -> float:
    started = time.perf_counter()
    subprocess.run([str(corpus), "dedup", "--input", *files, "--kind", "text", "--threshold", "0.8", "--out", str(out),
                    "--", "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"],
                   env=environment(package_root), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sys.path.insert(0, str(ROOT))
    from benchmarks.e2e_datatrove import add_input_arguments, checked_data, write_input

    add_input_arguments(parser)
    parser.set_defaults(docs=1000, repeat=5)
    args = parser.parse_args()
    corpus = Path(sys.executable).parent / "corpus"
    if not corpus.exists():
        raise SystemExit(f"{corpus} not found: run this with the project's .venv/bin/python")
    data = checked_data(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_input(folder, args, data)
        roots = {"compiled": copy_package(folder / "compiled", True), "source": copy_package(folder / "source", False)}
        for side, root in roots.items():
            where = imported_from(root)
            if not where.startswith(str(root)):
                raise SystemExit(f"{side}: lemur_corpus imported from {where}, not from the copy {root}")
        times: dict[str, list[float]] = {side: [] for side in roots}
        kept: dict[str, set[int]] = {side: set() for side in roots}
        for run in range(args.repeat):
            for side, root in roots.items():
                out = folder / f"{side}-{run}"
                times[side].append(timed_dedup(corpus, files, out, root, args.workers))
                kept[side].add(json.loads((out / "summary.json").read_text())["kept"])
            print(f"  run {run + 1}: compiled {times['compiled'][-1]:6.2f} s, source {times['source'][-1]:6.2f} s",
                  flush=True)
    if len(kept["compiled"] | kept["source"]) != 1:
        raise SystemExit(f"the two sides kept different documents: {kept}")
    compiled, source = statistics.median(times["compiled"]), statistics.median(times["source"])
    # A pair ran back to back, under about the same load from the machine's other tenants.
    pairs = statistics.median(c / s for c, s in zip(times["compiled"], times["source"], strict=True))
    print(f"  corpus dedup of {args.docs:,} documents, {args.workers} workers, PYTHONDONTWRITEBYTECODE=1, medians of "
          f"{args.repeat} runs: compiled {compiled:.2f} s, source {source:.2f} s, compiled / source "
          f"x{compiled / source:.2f}, median of the pairs' ratios x{pairs:.2f}; both kept "
          f"{kept['compiled'].pop():,} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
