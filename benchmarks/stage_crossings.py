"""What a document costs to cross a stage boundary on a runner, against a step fused inside a stage.

`benchmarks/scale.py`'s profile leaves a "runner and bookkeeping" share that no stage claims. A
runner fuses consecutive steps into one stage and runs each element through them as calls in one
worker; between stages (a grouping, or a step that waits for a side input computed from the whole of
its input) it encodes every element, moves it and decodes it again. On the DirectRunner in
multi_processing mode every element between stages also goes through the driver process, which
holds the PCollection and splits it among the workers. This measures both costs on the same
documents in one run, each pipeline in a fresh process (CPU of the driver and of its workers,
`getrusage`):

- `none`: read the documents and count them (the fixed costs: start-up, generation, the count);
- `fused`: the same with `FUSED_STEPS` x --steps `Map` steps in between (each fused into the stage
  before it);
- `grouped`: --steps crossings by a grouping (`GroupByKey` on the document's id, the shape of the
  build's joins on id);
- `records`: each document turned (in its stage) into its dedup record (`DedupRecord`: id, kind,
  source, content hash, size: what dedup's groupings move instead of bodies), then
  --steps groupings of the records on id: what a small record's crossing costs (the record's own
  making, a few microseconds a document once, is charged to its steps too);
- `waiting`: --steps crossings by a step that waits for a side input computed from all of its
  input (the shape of the build's passes that wait for a plan: the tokenize split, the mixture).

A step's cost per document is (its pipeline's CPU - `none`'s) / (documents x steps). The shapes run
side by side, all started at once, --repeat times (the median is printed): on a machine shared with
another tenant the CPU seconds of one pipeline move by a fifth and more from one minute to the next,
so shapes run one after the other subtract different moments (2026-12-04: one sequential run put a
grouping of dedup records at 50.7 us a record, the shapes side by side at 22.0). The documents are
real (../shared/data: the code sample and the English web pages, cut at line ends into pieces of
about --doc-chars characters, as scale.py's corpus is, and cycled with fresh ids to --docs).

    .venv/bin/python benchmarks/stage_crossings.py [--docs 40000] [--steps 3] [--repeat 3] [--doc-chars 1700]
        [--runner mp|direct]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, positive_int, read_jsonl, require_data  # noqa: E402

SHAPES = ("none", "fused", "grouped", "records", "waiting")
FUSED_STEPS = 20
"""Fused steps per step of the other shapes: one costs too little to measure against this machine's noise."""
DOC_CHARS = 1_700
"""The size of a document of `benchmarks/scale.py`'s corpus, about (84 MB in 50,000 documents)."""
DOCS_PER_TASK = 1_000
"""Documents each generating element makes (the work is spread over the workers from the start)."""


def pieces(text: str, size: int) -> list[str]:
    """`text` cut at line ends into pieces of about `size` characters (the last may be shorter)."""
    out, current = [], ""
    for line in text.splitlines(keepends=True):
        current += line
        if len(current) >= size:
            out.append(current)
            current = ""
    return out + ([current] if current.strip() else [])


def sample_records(data: Path, size: int) -> list[dict]:
    """The real documents (code with its language, the English web pages), cut into pieces of about
    `size` characters as `benchmarks/scale.py`'s corpus is made of blocks of real files and paragraphs."""
    require_data(data)
    texts = [("code", r["lang"].lower(), r["lang"], r["content"])
             for r in read_jsonl(data / "code" / "code_sample.jsonl.zst")]
    for name in sorted((data / "web").glob("*.jsonl.zst")):
        texts += [("text", "refinedweb", "en", r["text"]) for r in read_jsonl(name)]
    return [{"kind": kind, "source": source, "lang": lang, "text": piece}
            for kind, source, lang, text in texts for piece in pieces(text, size)]


def documents(records: list[dict], start: int, count: int):  # type: ignore[no-untyped-def]  # yields Documents
    from lemur_corpus.document import Document

    for i in range(start, start + count):
        r = records[i % len(records)]
        yield Document(f"sample/{i:09d}", r["source"], r["kind"], r["text"], r["lang"], {}, f"sample.jsonl:{i + 1}")


def runner_args(runner: str, workers: int) -> list[str]:
    return ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"] if runner == "mp" else []


def build_pipeline(p, shape: str, steps: int, docs: int, data: Path, size: int) -> None:  # type: ignore[no-untyped-def]
    import apache_beam as beam

    from lemur_corpus.dedup.exact import dedup_record

    class DocumentsFn(beam.DoFn):
        """A task's documents; each worker reads the sample once (`setup`)."""

        def setup(self) -> None:
            self.records = sample_records(data, size)

        def process(self, start: int):  # type: ignore[no-untyped-def]
            return documents(self.records, start, min(DOCS_PER_TASK, docs - start))

    pcoll = p | "Tasks" >> beam.Create(list(range(0, docs, DOCS_PER_TASK))) | "Documents" >> beam.ParDo(DocumentsFn())
    for i in range(0 if shape == "none" else steps * FUSED_STEPS if shape == "fused" else steps):
        if shape == "fused":
            pcoll = pcoll | f"Step{i}" >> beam.Map(lambda d: d)
        elif shape == "records":
            if i == 0:
                pcoll = pcoll | "Record" >> beam.Map(dedup_record)
            pcoll = (pcoll | f"Key{i}" >> beam.Map(lambda r: (r.id, r)) | f"Group{i}" >> beam.GroupByKey()
                     | f"First{i}" >> beam.MapTuple(lambda _, rs: rs[0]))
        elif shape == "grouped":
            pcoll = (pcoll | f"Key{i}" >> beam.Map(lambda d: (d.id, d)) | f"Group{i}" >> beam.GroupByKey()
                     | f"First{i}" >> beam.MapTuple(lambda _, ds: ds[0]))
        else:
            total = pcoll | f"Bytes{i}" >> beam.Map(lambda d: d.nbytes) | f"Total{i}" >> beam.CombineGlobally(sum)
            pcoll = pcoll | f"Wait{i}" >> beam.Map(lambda d, total: d, total=beam.pvalue.AsSingleton(total))
    _ = pcoll | "Count" >> beam.combiners.Count.Globally()


def measure_shape(shape: str, steps: int, docs: int, runner: str, workers: int, data: Path, size: int) -> dict:
    """Runs in a fresh process: one pipeline, then its CPU (driver, and workers once they have exited)."""
    import logging

    from apache_beam.options.pipeline_options import PipelineOptions

    from lemur_corpus.pipelines.direct_runner import beam_pipeline

    logging.basicConfig(level=logging.WARNING)
    with beam_pipeline(PipelineOptions(runner_args(runner, workers))) as p:
        build_pipeline(p, shape, steps, docs, data, size)
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    nbytes = sum(d.nbytes for d in documents(sample_records(data, size), 0, docs))  # after the CPU was read
    return {"driver_s": own.ru_utime + own.ru_stime, "workers_s": children.ru_utime + children.ru_stime,
            "bytes": nbytes}


def run_shapes(args: argparse.Namespace) -> dict[str, dict]:
    """Every shape's pipeline in a fresh process, all started at once: the same moments' load for each."""
    started = {}
    for shape in SHAPES:
        command = [sys.executable, __file__, "--measure", shape, "--docs", str(args.docs), "--steps",
                   str(args.steps), "--runner", args.runner, "--workers", str(args.workers), "--data",
                   str(args.data), "--doc-chars", str(args.doc_chars)]
        started[shape] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found = {}
    for shape, process in started.items():
        out, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"the {shape} pipeline failed:\n{err[-3000:]}")
        found[shape] = json.loads(out.strip().splitlines()[-1])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=positive_int, default=40_000)
    parser.add_argument("--steps", type=positive_int, default=3)
    parser.add_argument("--repeat", type=positive_int, default=3, help="rounds of the shapes side by side (median)")
    parser.add_argument("--runner", choices=("mp", "direct"), default="mp",
                        help="mp: DirectRunner multi_processing (as scale.py); direct: in-process")
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--doc-chars", type=positive_int, default=DOC_CHARS,
                        help="cut the real documents into pieces of about this many characters")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--measure", choices=SHAPES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_shape(args.measure, args.steps, args.docs, args.runner, args.workers, args.data,
                                       args.doc_chars)))
        return 0
    require_data(args.data)
    rounds = [run_shapes(args) for _ in range(args.repeat)]
    mb = rounds[0]["none"]["bytes"] / 1e6
    print(f"{args.docs:,} real documents ({mb:.1f} MB, {rounds[0]['none']['bytes'] / args.docs:,.0f} bytes each), "
          f"{args.steps} steps, runner {args.runner}" + (f" x{args.workers}" if args.runner == "mp" else "")
          + f", the shapes side by side, median of {args.repeat}")
    base = {key: statistics.median(r["none"][key] for r in rounds) for key in ("driver_s", "workers_s")}
    print(f"  none (start-up, generation, count): driver {base['driver_s']:.2f} CPU-s, workers {base['workers_s']:.2f}")
    per_step = {}
    for shape in SHAPES[1:]:
        n = args.docs * args.steps * (FUSED_STEPS if shape == "fused" else 1)
        driver = statistics.median((r[shape]["driver_s"] - r["none"]["driver_s"]) / n * 1e6 for r in rounds)
        workers = statistics.median((r[shape]["workers_s"] - r["none"]["workers_s"]) / n * 1e6 for r in rounds)
        per_step[shape] = driver + workers
        print(f"  {shape:8}: {driver + workers:7.1f} CPU-us per document and step (driver {driver:6.1f}, "
              f"workers {workers:6.1f}); {(driver + workers) * args.docs / 1e6 / mb:.3f} CPU-s per input MB a step")
    fused = max(per_step["fused"], 1e-3)  # a fused step can measure as ~0 on a quiet machine
    print(f"a crossing costs x{per_step['grouped'] / fused:.0f} (grouped) and x{per_step['waiting'] / fused:.0f} "
          f"(waiting for a side input) a fused step, per document; a dedup record's grouping "
          f"x{per_step['records'] / max(per_step['grouped'], 1e-3):.2f} a document's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
