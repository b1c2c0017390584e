"""Where `corpus dedup`'s fixed cost goes: its stages on the multi_processing DirectRunner, and the
program's exit. The same input as `benchmarks/dedup_datatrove.py` (English pages, a third near-copies).

1. Stages: the dedup of the input, in this process as driver with `--workers` worker processes; every
   stage the runner executes is counted and timed (its wall time, from the driver), as is each stage it
   skips for having no input. Baseline in the same run: the same pipeline translated with Beam's own
   optimizer phases (`FnApiRunner.create_stages`, no Flatten sinking: `pipelines/flatten_sinks.py`).
2. Exit: the `corpus dedup` program (`cli.program`: ends with `os._exit` once the command returned)
   against the same command through `cli.main` and the interpreter's ordinary exit (its teardown of
   Beam, numba, pandas), alternating, `--repeat` times each; medians.

    .venv/bin/python benchmarks/dedup_stages.py [--docs 5000] [--files 8] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import DEFAULT_DATA  # noqa: E402
from benchmarks.e2e_datatrove import add_input_arguments, make_input  # noqa: E402

THRESHOLD = "0.8"


def census(files: list[str], out: Path, workers: int, beams_phases: bool) -> dict[str, Any]:
    """Run the dedup once in this process; its stages: how many ran, how many were skipped, their wall."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    from lemur_corpus.dedup.config import DedupConfig
    from lemur_corpus.pipelines import bounded_bundles, flatten_sinks
    from lemur_corpus.pipelines.dedup_files import run_dedup_files

    ran: list[float] = []
    skipped = [0]
    process_bundle = bounded_bundles.BoundedBundleManager.process_bundle
    create_stages = flatten_sinks.SinkingFnApiRunner.create_stages

    def counted(self: Any, inputs: Any, expected: Any, timers: Any, *rest: Any, **kwargs: Any) -> Any:
        if not timers and inputs and all(bounded_bundles.is_empty(b) for b in inputs.values()):
            skipped[0] += 1
            return process_bundle(self, inputs, expected, timers, *rest, **kwargs)
        started = time.perf_counter()
        try:
            return process_bundle(self, inputs, expected, timers, *rest, **kwargs)
        finally:
            ran.append(time.perf_counter() - started)

    bounded_bundles.BoundedBundleManager.process_bundle = counted  # type: ignore[method-assign]
    if beams_phases:
        flatten_sinks.SinkingFnApiRunner.create_stages = fn_runner.FnApiRunner.create_stages  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        run_dedup_files(files, "text", str(out), DedupConfig(),  # text threshold 0.8, as THRESHOLD
                        beam_args=["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"])
        wall = time.perf_counter() - started
    finally:
        bounded_bundles.BoundedBundleManager.process_bundle = process_bundle  # type: ignore[method-assign]
        flatten_sinks.SinkingFnApiRunner.create_stages = create_stages  # type: ignore[method-assign]
    return {"ran": len(ran), "skipped": skipped[0], "stage_s": sum(ran), "wall": wall,
            "median_stage_ms": 1000 * statistics.median(ran)}


def exits(files: list[str], folder: Path, workers: int, repeat: int) -> tuple[float, float]:
    """Median walls of the program and of `cli.main` with the ordinary exit, alternating."""
    program = [str(Path(sys.executable).parent / "corpus")]
    ordinary = [sys.executable, "-c", "import sys; from lemur_corpus.cli import main; sys.exit(main())"]
    walls: dict[str, list[float]] = {"program": [], "ordinary": []}
    for run in range(repeat):
        for name, command in (("program", program), ("ordinary", ordinary)):
            started = time.monotonic()
            done = subprocess.run([*command, "dedup", "--input", *files, "--kind", "text", "--threshold", THRESHOLD,
                                   "--out", str(folder / f"{name}-{run}"), "--",
                                   "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"],
                                  capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            walls[name].append(time.monotonic() - started)
    return statistics.median(walls["program"]), statistics.median(walls["ordinary"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    data = Path(args.data) if args.data else DEFAULT_DATA
    if not data.exists():
        raise SystemExit(f"real sample data not found at {data} (pass --data or set LEMUR_SHARED_DATA)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        files = make_input(folder / "in", args.docs, args.files, args.seed, data)
        print(f"{args.docs:,} documents in {len(files)} files, {args.workers} workers")
        ours = census(files, folder / "ours", args.workers, beams_phases=False)
        beams = census(files, folder / "beams", args.workers, beams_phases=True)
        for name, found in (("flatten sinking", ours), ("Beam's phases", beams)):
            print(f"  {name:16s} stages run {found['ran']:3d}, skipped {found['skipped']:3d} | stages' wall "
                  f"{found['stage_s']:5.2f} s, median {found['median_stage_ms']:5.1f} ms a stage | "
                  f"dedup {found['wall']:5.2f} s")
        print(f"  stages run: x{ours['ran'] / beams['ran']:.2f} of Beam's phases")
        program, ordinary = exits(files, folder, args.workers, args.repeat)
        print(f"  corpus program {program:5.2f} s, cli.main with the ordinary exit {ordinary:5.2f} s "
              f"(medians of {args.repeat}): x{program / ordinary:.2f}, {ordinary - program:+.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
