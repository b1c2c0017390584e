"""Where a build's CPU goes by library: the Python interpreter, Beam's compiled code, tokenizers,
tree-sitter, fastText, numpy, the C library, the kernel.

`benchmarks/scale.py`'s profile names each stage's own CPU and puts the rest under "runner and
bookkeeping". This says what that rest is made of: it runs one build of scale.py's corpus (the same
generator and config, multi_processing) under `perf record -e cpu-clock` (samples of CPU time, not of
wall time: a runnable thread waiting for a core is not sampled) and sums the samples of the build's
worker processes, and separately of its driver, by the shared object they fell in (a package under
site-packages, libpython, libc, the kernel). perf comes from the system (`apt install linux-perf`);
without it the script says so and exits 2.

    .venv/bin/python benchmarks/cpu_by_library.py [--docs 30000] [--workers 2] [--frequency 250]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, positive_int, require_data  # noqa: E402
from benchmarks.scale import DOCS_PER_FILE, _measure, build_config, files_per_kind, make_corpus  # noqa: E402

SAMPLE_LINE = re.compile(r"^\s*([\d.]+)%\s+(\d+):\S+\s+(.+?)\s*$")
"""A line of `perf report --sort pid,dso -v`: share of all samples, pid:command, the shared object's path."""
SHOWN = 14


def library(path: str) -> str:
    """A shared object's path as the library a reader knows it by."""
    if "site-packages/" in path:
        package = path.split("site-packages/", 1)[1].split("/", 1)[0].split(".", 1)[0]
        return "tree-sitter" if package.startswith("tree_sitter") else package  # the binding and each grammar
    name = path.rsplit("/", 1)[-1]
    if name == "[kernel.kallsyms]":
        return "kernel"
    if name.startswith("perf-") and name.endswith(".map"):  # code compiled at run time: the numba kernels
        return "numba kernels"
    if name.startswith("libpython"):
        return "python interpreter"
    if name.startswith(("libc.", "libm.", "ld-linux", "libstdc++", "libgcc")):
        return "C and C++ runtime"
    if "lib-dynload/" in path:  # the standard library's C modules: _pickle, _json, ...
        return "stdlib " + name.split(".", 1)[0].lstrip("_")
    return name


def shares(report: str, driver: int) -> tuple[collections.Counter, collections.Counter]:
    """(workers', driver's) percentage of all samples per library, from `perf report` text."""
    workers: collections.Counter = collections.Counter()
    driver_side: collections.Counter = collections.Counter()
    for line in report.splitlines():
        m = SAMPLE_LINE.match(line)
        if m:
            share, pid, path = float(m[1]), int(m[2]), m[3]
            (driver_side if pid == driver else workers)[library(path)] += share
    return workers, driver_side


def print_shares(title: str, counts: collections.Counter) -> None:
    total = sum(counts.values())
    print(f"  {title}: {total:.1f}% of all samples")
    for name, share in counts.most_common(SHOWN):
        print(f"    {100 * share / total:5.1f}%  {name}")
    rest = total - sum(share for _, share in counts.most_common(SHOWN))
    if rest > 0:
        print(f"    {100 * rest / total:5.1f}%  the rest")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--docs", type=positive_int, default=30_000)
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--frequency", type=positive_int, default=250, help="perf samples per CPU-second")
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args()
    if shutil.which("perf") is None:
        print("error: perf not found on PATH (Debian: apt install linux-perf)", file=sys.stderr)
        return 2
    data = require_data(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = make_corpus(folder, args.docs, files_per_kind(args.docs, DOCS_PER_FILE), 0.3, args.seed, data)
        config = folder / "config.json"
        config.write_text(json.dumps(build_config(inputs, args.docs)))
        pid_file, samples = folder / "driver.pid", folder / "perf.data"
        # the driver writes its pid, then becomes scale.py's build process (exec keeps the pid)
        exec_build = (f"import os, sys; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                      f"os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
        r = _measure(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(args.frequency), "-o", str(samples), "--",
                      sys.executable, "-c", exec_build, str(REPO / "benchmarks" / "scale.py"), "--measure", str(config),
                      "mp", str(args.workers), "auto"])
        report = subprocess.run(["perf", "report", "-i", str(samples), "--stdio", "--sort", "pid,dso", "-v"],
                                capture_output=True, text=True, check=True).stdout
        workers, driver = shares(report, int(pid_file.read_text()))
    mb = r["bytes_in"] / 1e6
    print(f"{r['docs_in']:,} documents ({mb:.1f} MB), multi_processing x{args.workers}: wall {r['wall_s']:.0f} s, "
          f"{r['cpu_s']:.1f} CPU-s ({r['cpu_s'] / mb:.2f} per MB), the driver {r['driver_cpu_s']:.1f}")
    print_shares("the workers", workers)
    print_shares("the driver", driver)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
